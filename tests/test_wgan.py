"""wgan.py: clipping bounds, the critic loss and gradient penalty against their definitions,
n_critic critic steps per generator step, a critic that scores each sample on its own, the
default recipes, shapes for every dataset, a smoke run; and benchmarks/wgan_figure.py's reading
of a run's history."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import common
import wgan


def config(loss="wasserstein", penalty=None, clip=0.01, n_critic=1, shape=(1, 28, 28)):
    return {"loss": loss, "gradient_penalty": penalty, "clip": clip, "n_critic": n_critic,
            "z_dim": 50, "dropout": 0.2, "lr": 1e-4, "critic_lr": 1e-4, "image_shape": list(shape)}


def setup(settings, seed=0):
    torch.manual_seed(seed)
    generator, critic = wgan.build_networks(settings)
    return generator, critic, *wgan.make_optimizers(generator, critic, settings)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.001, 0.1), st.integers(0, 1000))
def test_after_a_critic_step_every_parameter_lies_in_the_clip_range(clip, seed):
    settings = config(clip=clip)
    generator, critic, opt_g, opt_f = setup(settings, seed=seed)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    wgan.train_step(generator, critic, opt_g, opt_f, real, len(real), settings)
    for parameter in critic.parameters():
        assert parameter.abs().max() <= clip
    assert max(p.abs().max().item() for p in critic.parameters()) == pytest.approx(clip)  # clipped


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=8),
       st.lists(st.floats(-100, 100), min_size=1, max_size=8))
def test_critic_loss_equals_its_formula(real, fake):
    # L_f = E[f(G(z))] - E[f(x)]
    expected = np.mean(fake) - np.mean(real)
    got = wgan.critic_loss(torch.tensor(real, dtype=torch.float64),
                           torch.tensor(fake, dtype=torch.float64), "wasserstein")
    assert got.item() == pytest.approx(expected, abs=1e-9)


def sigmoid(value):
    return 1 / (1 + math.exp(-value))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-15, 15), min_size=1, max_size=8),
       st.lists(st.floats(-15, 15), min_size=1, max_size=8))
def test_the_gan_loss_on_logits_equals_its_definition(real, fake):
    # L_D = -[log D(x) + log(1 - D(G(z)))] and L_G = -log D(G(z)), with D = sigmoid(l)
    expected_d = -np.mean([math.log(sigmoid(r)) for r in real]) \
        - np.mean([math.log1p(-sigmoid(f)) for f in fake])
    expected_g = -np.mean([math.log(sigmoid(f)) for f in fake])
    real_t = torch.tensor(real, dtype=torch.float64)
    fake_t = torch.tensor(fake, dtype=torch.float64)
    assert wgan.critic_loss(real_t, fake_t, "gan").item() == pytest.approx(expected_d, rel=1e-7,
                                                                           abs=1e-9)
    assert wgan.generator_loss(fake_t, "gan").item() == pytest.approx(expected_g, rel=1e-7,
                                                                      abs=1e-9)
    # and the Wasserstein generator loss: L_G = -E[f(G(z))]
    assert wgan.generator_loss(fake_t, "wasserstein").item() == pytest.approx(-np.mean(fake))


def test_both_losses_build_identical_networks(tiny_data, tmp_path, monkeypatch):
    """Only the loss, the optimizer and the constraint differ: the script builds the same
    layers with the same initial weights (from the same seed) for --loss gan and wasserstein."""
    built = {}
    build = wgan.build_networks

    def recording_build(settings):                      # what train() builds, before any step
        networks = build(settings)
        built[settings["loss"]] = [(str(net), {k: v.clone() for k, v in net.state_dict().items()})
                                   for net in networks]
        return networks
    monkeypatch.setattr(wgan, "build_networks", recording_build)
    states = {}
    for loss in ("gan", "wasserstein"):
        wgan.main(["--data-dir", str(tiny_data), "--dataset", "fashion", "--loss", loss,
                   "--batch-size", "4", "--iters", "2", "--out", str(tmp_path / loss)])
        states[loss] = common.load_checkpoint(tmp_path / loss / "checkpoint.pt", "wgan")
    for (gan_layers, gan_weights), (w_layers, w_weights) in zip(built["gan"], built["wasserstein"]):
        assert gan_layers == w_layers
        assert gan_weights.keys() == w_weights.keys()
        assert all(torch.equal(gan_weights[name], w_weights[name]) for name in gan_weights)
    assert isinstance(states["gan"]["opt_f"]["state"][0].get("exp_avg"), torch.Tensor)   # Adam
    assert "square_avg" in states["wasserstein"]["opt_f"]["state"][0]                   # RMSprop
    assert states["gan"]["config"]["n_critic"] == 1
    assert "loss_d" in states["gan"]["history"] and "wasserstein" not in states["gan"]["history"]


class LinearCritic(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, images):
        return images.flatten(1) @ self.weight


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.floats(0.1, 5))
def test_gradient_penalty(seed, norm):
    torch.manual_seed(seed)
    direction = torch.randn(12, dtype=torch.float64)
    real = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    # f(x) = w . x has gradient w everywhere: penalty = (||w|| - 1)^2 exactly
    unit = LinearCritic(direction / direction.norm())
    assert wgan.gradient_penalty(unit, real, fake).item() == pytest.approx(0, abs=1e-12)
    scaled = LinearCritic(norm * direction / direction.norm())
    assert wgan.gradient_penalty(scaled, real, fake).item() == pytest.approx((norm - 1) ** 2)
    if abs(norm - 1) > 1e-3:
        assert wgan.gradient_penalty(scaled, real, fake) > 0


@pytest.mark.parametrize("penalty", [None, 10.0])
@pytest.mark.parametrize("n_critic", [1, 3, 5])
def test_n_critic_steps_per_generator_step(penalty, n_critic):
    settings = config(penalty=penalty, n_critic=n_critic)
    generator, critic, opt_g, opt_f = setup(settings)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    for _ in range(2):
        wgan.train_step(generator, critic, opt_g, opt_f, real, len(real), settings)
    critic_steps = {int(state["step"]) for state in opt_f.state.values()}
    generator_steps = {int(state["step"]) for state in opt_g.state.values()}
    assert critic_steps == {2 * n_critic} and generator_steps == {2}


@pytest.mark.parametrize("dataset", list(common.DATASETS))
@pytest.mark.parametrize("batch", [1, 5])
def test_shapes_for_every_dataset(dataset, batch):
    shape = common.DATASETS[dataset]["shape"]
    generator, critic = wgan.build_networks(config(shape=shape))
    generator.eval()
    images = generator(torch.randn(batch, 50))
    assert images.shape == (batch, *shape)
    assert critic(images).shape == (batch,)


def test_smoke_run_resume_generate(tiny_data, tiny_classifier, tmp_path):
    out = tmp_path / "run"
    flags = ["--data-dir", str(tiny_data), "--batch-size", "8", "--n-critic", "2",
             "--sample-every", "3", "--eval-every", "3", "--eval-samples", "16",
             "--classifier", str(tiny_classifier)]
    wgan.main(flags + ["--iters", "6", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 6 and metrics["n"] == 16
    for name in ("checkpoint.pt", "progress.gif", "curves.png", "quality.png"):
        assert (out / name).is_file(), name
    wgan.main(flags + ["--iters", "8", "--resume", str(out / "checkpoint.pt"),
                       "--gradient-penalty", "10"])   # the run's own config (clipping) wins
    state = common.load_checkpoint(out / "checkpoint.pt", "wgan")
    assert state["iteration"] == 8 and state["config"]["gradient_penalty"] is None
    wgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--generate", "7",
               "--out", str(tmp_path / "s.npz")])
    assert np.load(tmp_path / "s.npz")["images"].shape == (7, 1, 28, 28)


def test_time_limit_stops_training(tiny_data, tmp_path):
    wgan.main(["--data-dir", str(tiny_data), "--dataset", "cifar10", "--batch-size", "4",
               "--gradient-penalty", "10", "--minutes", "0.0001", "--out", str(tmp_path / "c")])
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["iterations"] == 1 and metrics["variant"].startswith("WGAN-GP")


def test_flags():
    with pytest.warns(UserWarning, match="outside"):
        wgan.parse_args(["--clip", "0.5"])
    for bad in (["--z-dim", "20"], ["--z-dim", "300"], ["--clip", "0"], ["--n-critic", "0"],
                ["--gradient-penalty", "-1"], ["--loss", "gan", "--gradient-penalty", "10"],
                ["--dropout", "1"], ["--gif-samples", "0"]):
        with pytest.raises(SystemExit):
            wgan.parse_args(bad)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000), st.integers(2, 6))
def test_the_critic_scores_each_sample_on_its_own(seed, batch):
    """Layer norm, not batch norm: a sample's score does not depend on the rest of its batch,
    which the per-sample gradient penalty needs; the norm does rescale each layer's output."""
    torch.manual_seed(seed)
    critic = wgan.Critic((1, 28, 28)).eval()                 # eval: dropout off
    images = torch.rand(batch, 1, 28, 28) * 2 - 1
    alone = torch.cat([critic(images[i:i + 1]) for i in range(batch)])
    assert torch.allclose(critic(images), alone, atol=1e-6)
    outputs = []                                             # every normalization layer's
    norms = [module for module in critic.modules() if isinstance(module, nn.GroupNorm)]
    for norm in norms:
        norm.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    critic(images)
    assert len(outputs) == len(norms) >= 2
    for normalized in outputs:
        normalized = normalized.flatten(1)
        assert torch.allclose(normalized.mean(1), torch.zeros(batch), atol=1e-5)
        assert torch.allclose(normalized.std(1, correction=0), torch.ones(batch), atol=1e-3)
    for norm in norms:
        assert not list(norm.parameters())           # no gain or shift for the clamp to shrink


@pytest.mark.parametrize("loss", [["--loss", "gan"], [], ["--gradient-penalty", "10"]])
def test_a_loss_s_defaults_fill_only_the_flags_not_given(loss):
    # each loss brings its own recipe; a flag given on the command line always wins
    defaults = wgan.parse_args(loss)
    assert None not in (defaults.n_critic, defaults.lr, defaults.critic_lr, defaults.dropout)
    assert defaults.critic_lr == defaults.lr                 # the critic follows G's rate
    given = wgan.parse_args(loss + ["--n-critic", "7", "--lr", "3e-5", "--dropout", "0.1"])
    assert (given.n_critic, given.lr, given.critic_lr, given.dropout) == (7, 3e-5, 3e-5, 0.1)


@pytest.mark.parametrize("iteration, expected", [(1, 100), (25, 100), (26, 5), (500, 5),
                                                 (501, 100), (502, 5), (1000, 5), (1001, 100)])
def test_the_paper_s_critic_schedule(iteration, expected):
    # the WGAN authors' code: 100 critic steps while fewer than 25 generator steps are done and
    # whenever the steps done are a multiple of 500; --n-critic (5 by default) otherwise
    args = wgan.parse_args(["--critic-schedule", "paper"])
    settings = {"critic_schedule": args.critic_schedule, "n_critic": args.n_critic}
    assert wgan.critic_steps(iteration, settings) == expected
    assert wgan.critic_steps(iteration, {**settings, "critic_schedule": "constant"}) == 5
    assert wgan.critic_steps(iteration, {"n_critic": 2}) == 2   # a config without the key


def test_the_training_loop_takes_the_scheduled_critic_steps(tiny_data, tmp_path):
    # 3 generator steps under the paper's schedule: 100 critic steps before each
    wgan.main(["--critic-schedule", "paper", "--iters", "3", "--data-dir", str(tiny_data),
               "--out", str(tmp_path / "run"), "--batch-size", "8", "--gif-samples", "4",
               "--eval-samples", "16"])
    state = common.load_checkpoint(tmp_path / "run" / "checkpoint.pt", "wgan")
    assert {int(s["step"]) for s in state["opt_f"]["state"].values()} == {300}
    assert {int(s["step"]) for s in state["opt_g"]["state"].values()} == {3}


@pytest.mark.parametrize("betas", [(0.5, 0.9), (0.0, 0.99)])
def test_a_recipe_s_adam_betas(betas):
    for loss, penalty in (("gan", None), ("wasserstein", 10.0)):
        settings = {**config(loss=loss, penalty=penalty), "betas": betas}
        _, _, opt_g, opt_f = setup(settings)
        assert opt_g.param_groups[0]["betas"] == opt_f.param_groups[0]["betas"] == betas
    _, _, opt_g, _ = setup(config(loss="gan"))
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.999)


def test_the_clipped_critic_trains_more_often_than_its_generator():
    # the clipped WGAN's estimate needs a critic near its optimum (Arjovsky et al.'s n_critic)
    assert wgan.parse_args([]).n_critic > 1


@pytest.mark.parametrize("flags", [["--loss", "gan"], [], ["--gradient-penalty", "10"]])
def test_the_critic_learns_at_its_own_rate(flags):
    args = wgan.parse_args(flags + ["--lr", "3e-4", "--critic-lr", "7e-5"])
    config = {"loss": args.loss, "gradient_penalty": args.gradient_penalty, "lr": args.lr,
              "critic_lr": args.critic_lr}
    generator, critic = wgan.Generator(100, (1, 28, 28)), wgan.Critic((1, 28, 28))
    opt_g, opt_f = wgan.make_optimizers(generator, critic, config)
    assert opt_g.param_groups[0]["lr"] == 3e-4 and opt_f.param_groups[0]["lr"] == 7e-5


def test_the_figure_script_reads_the_curve_at_each_evaluation():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import wgan_figure
    history = {"iteration": [50, 100, 150, 200], "loss_g": [3.0, 1.0, 2.0, 0.5],
               "eval_iteration": [100, 175, 200], "eval_fid": [90.0, 40.0, 60.0]}
    # the value logged at or just before each evaluation: 100 -> 1.0, 175 -> 2.0, 200 -> 0.5
    assert list(wgan_figure.logged_at_evaluations(history, "loss_g")) == [1.0, 2.0, 0.5]
    assert wgan_figure.lowest_generator_loss_pick(history) == (200, 60.0)
    assert wgan_figure.rank_correlation([1, 2, 3], [10, 20, 30]) == pytest.approx(1)
    assert wgan_figure.rank_correlation([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)


def test_the_refit_trains_a_copy_of_the_critic_against_a_frozen_generator(
        tiny_data, tiny_classifier, tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import wgan_figure
    out = tmp_path / "run"
    wgan.main(["--data-dir", str(tiny_data), "--batch-size", "4", "--iters", "3",
               "--eval-samples", "8", "--classifier", str(tiny_classifier), "--out", str(out)])
    monkeypatch.setenv("DATA_DIR", str(tiny_data))
    before = (out / "checkpoint.pt").read_bytes()
    clip, estimates = wgan_figure.refit_curve(out, steps=4, every=2, batch_size=4, held_out=8)
    assert clip == 0.01 and len(estimates) == 3 and all(map(math.isfinite, estimates))
    assert estimates[1] != estimates[0]                        # the copy did learn
    assert (out / "checkpoint.pt").read_bytes() == before      # the run itself is not touched
    columns, rows = wgan_figure.refit_table([out], steps=4, every=2, batch_size=4, held_out=8)
    assert [row[0] for row in rows] == [0, 2, 4] and "clip 0.01" in columns[1]
    assert rows[0][1] == f"{estimates[0]:.3g}"                 # seeded: the same refit again


def test_the_averaged_generator_samples_with_the_statistics_of_its_own_weights():
    torch.manual_seed(0)
    live = wgan.Generator(50, [1, 28, 28])
    averaged = wgan.Generator(50, [1, 28, 28])           # other weights than the live ones
    live.train()(torch.randn(64, 50))                      # the live generator's own statistics
    common.ema_update(averaged, live, 0.5)                 # weights averaged, statistics not copied
    rng_before = torch.get_rng_state()
    common.standing_statistics(averaged, 50, batches=10, batch_size=500)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training's random stream untouched
    assert not averaged.training
    first_norm, live_norm = averaged.dense[1], live.dense[1]
    assert not torch.allclose(first_norm.running_mean, live_norm.running_mean, atol=1e-3)
    # they are the batch means and variances of its first layer's output, averaged over the same
    # 10 batches of 500 z
    stream = torch.Generator().manual_seed(0)
    with torch.no_grad():
        hidden = torch.stack([averaged.dense[0](torch.randn(500, 50, generator=stream))
                              for _ in range(10)])             # (10, 500, features)
    assert torch.allclose(first_norm.running_mean, hidden.mean(1).mean(0), atol=1e-5)
    assert torch.allclose(first_norm.running_var, hidden.var(1).mean(0), rtol=1e-4)
    # and the same weights always get the same statistics
    kept = first_norm.running_var.clone()
    common.standing_statistics(averaged, 50, batches=10, batch_size=500)
    assert torch.equal(first_norm.running_var, kept)


def test_without_dropout_the_penalty_and_the_loss_see_the_same_critic():
    images = torch.rand(8, 1, 28, 28)
    for dropout, same in ((0.0, True), (0.2, False)):
        _, critic = wgan.build_networks({**config(penalty=10.0), "dropout": dropout})
        critic.train()                                     # as in a critic step
        assert torch.equal(critic(images), critic(images)) is same
    # by default: the penalty's critic is the loss's; the GAN's D keeps the course's dropout
    for flags, same in ((["--gradient-penalty", "10"], True), (["--loss", "gan"], False)):
        args = wgan.parse_args(flags)
        _, critic = wgan.build_networks({**config(), "dropout": args.dropout})
        critic.train()
        assert torch.equal(critic(images), critic(images)) is same
