"""wgan.py: clipping bounds, the critic loss and gradient penalty against their definitions,
n_critic critic steps per generator step, shapes for every dataset, and a smoke run."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import common
import wgan


def setup(shape=(1, 28, 28), penalty=None, seed=0):
    torch.manual_seed(seed)
    generator, critic = wgan.Generator(50, shape), wgan.Critic(shape)
    return generator, critic, *wgan.make_optimizers(generator, critic, None, penalty)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.001, 0.1), st.integers(0, 1000))
def test_after_a_critic_step_every_parameter_lies_in_the_clip_range(clip, seed):
    generator, critic, opt_g, opt_f = setup(seed=seed)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    wgan.train_step(generator, critic, opt_g, opt_f, real, len(real), 50, 1, clip, None)
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
                           torch.tensor(fake, dtype=torch.float64))
    assert got.item() == pytest.approx(expected, abs=1e-9)


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
    generator, critic, opt_g, opt_f = setup(penalty=penalty)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    for _ in range(2):
        wgan.train_step(generator, critic, opt_g, opt_f, real, len(real), 50, n_critic, 0.01,
                        penalty)
    critic_steps = {int(state["step"]) for state in opt_f.state.values()}
    generator_steps = {int(state["step"]) for state in opt_g.state.values()}
    assert critic_steps == {2 * n_critic} and generator_steps == {2}


@pytest.mark.parametrize("dataset", list(common.DATASETS))
@pytest.mark.parametrize("batch", [1, 5])
def test_shapes_for_every_dataset(dataset, batch):
    shape = common.DATASETS[dataset]["shape"]
    generator, critic = wgan.Generator(50, shape).eval(), wgan.Critic(shape)
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
                ["--gradient-penalty", "-1"]):
        with pytest.raises(SystemExit):
            wgan.parse_args(bad)
