"""diffusion.py: the scheduler's closed forms, the guidance rule, the samplers on a model that
knows the answer, the U-Net's shapes, label dropout, and the script end to end on tiny data."""
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import common
import diffusion


def schedule_of(kind, timesteps=1000):
    return diffusion.NoiseSchedule(timesteps, kind)


# --- the noise schedule -----------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["linear", "cosine"]), st.integers(2, 2000))
def test_alpha_bar_is_strictly_decreasing_inside_0_1(kind, timesteps):
    alpha_bar = schedule_of(kind, timesteps).alpha_bar.double()
    assert (alpha_bar > 0).all() and (alpha_bar < 1).all()
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()


def test_the_linear_schedule_is_the_papers():
    schedule = schedule_of("linear")
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    # alpha_bar_t is the running product of (1 - beta_s)
    expected = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    assert np.allclose(schedule.alpha_bar.numpy(), expected, rtol=1e-5)
    assert schedule.alpha_bar[-1] < 1e-4                     # x_T is almost pure noise


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["linear", "cosine"]), st.integers(0, 999), st.floats(-1, 1))
def test_q_sample_has_the_closed_form_mean_and_variance(kind, t, pixel):
    schedule = schedule_of(kind)
    generator = torch.Generator().manual_seed(t)
    count = 200_000
    x0 = torch.full((count, 1, 1, 1), pixel)
    noise = torch.randn(count, 1, 1, 1, generator=generator)
    x_t = schedule.q_sample(x0, torch.full((count,), t), noise)
    alpha_bar = schedule.alpha_bar[t].item()
    # mean sqrt(alpha_bar) x0 and variance 1 - alpha_bar, within 5 standard errors
    standard_error = math.sqrt((1 - alpha_bar) / count)
    assert abs(x_t.mean().item() - math.sqrt(alpha_bar) * pixel) < 5 * standard_error + 1e-6
    assert x_t.var().item() == pytest.approx(1 - alpha_bar, rel=0.02, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["linear", "cosine"]), st.integers(0, 999), st.integers(0, 10_000))
def test_the_true_noise_recovers_x0(kind, t, seed):
    schedule = schedule_of(kind)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(4, 1, 5, 5, generator=generator) * 2 - 1
    noise = torch.randn(4, 1, 5, 5, generator=generator)
    t_batch = torch.full((4,), t)
    x_t = schedule.q_sample(x0, t_batch, noise)
    # loose where x_t is almost all noise: x0 is then divided out of a sqrt(alpha_bar) ~ 0.01
    tolerance = 1e-5 / schedule.alpha_bar[t].sqrt().item()
    assert torch.allclose(schedule.predict_x0(x_t, t_batch, noise), x0, atol=tolerance)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["linear", "cosine"]), st.integers(1, 999), st.integers(0, 10_000))
def test_posterior_mean_is_the_product_of_the_two_gaussians(kind, t, seed):
    """q(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0): its mean is the
    precision-weighted mean of the two, computed here independently of the coefficients."""
    schedule = schedule_of(kind)
    generator = torch.Generator().manual_seed(seed)
    x0, x_t = torch.randn(2, 3, 1, 4, 4, generator=generator).double()
    betas = schedule.betas.double()                 # the rest rebuilt from them in double
    alpha_bars = torch.cumprod(1 - betas, 0)
    beta, alpha = betas[t], 1 - betas[t]
    alpha_bar_prev = alpha_bars[t - 1]
    precision = 1 / (1 - alpha_bar_prev) + alpha / beta
    mean = (alpha_bar_prev.sqrt() * x0 / (1 - alpha_bar_prev) + alpha.sqrt() * x_t / beta) \
        / precision
    t_batch = torch.full((3,), t)
    assert torch.allclose(schedule.posterior_mean(x0, x_t, t_batch).double(), mean, atol=1e-4)
    assert schedule.posterior_variance[t].item() == pytest.approx(1 / precision.item(), rel=1e-4)


def test_posterior_at_t0_is_x0_with_no_noise():
    schedule = schedule_of("linear")
    x0, x_t = torch.randn(2, 3, 1, 4, 4)
    assert torch.allclose(schedule.posterior_mean(x0, x_t, torch.zeros(3, dtype=torch.long)), x0,
                          atol=1e-6)
    assert schedule.posterior_variance[0].item() == 0


# --- guidance and the samplers ------------------------------------------------------------------

class LabelModel(torch.nn.Module):
    """A stand-in network whose answer depends on x, t and the label in a known way."""

    def forward(self, x, t, labels):
        return x * 0.5 + t.view(-1, 1, 1, 1) * 1e-3 + labels.view(-1, 1, 1, 1).float()


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 10), st.integers(1, 9), st.integers(0, 9))
def test_guidance_combines_as_the_formula_says(w, batch, label):
    model = LabelModel()
    x_t, t = torch.randn(batch, 1, 3, 3), torch.randint(1000, (batch,))
    labels = torch.full((batch,), label)
    eps_cond = model(x_t, t, labels)
    eps_uncond = model(x_t, t, torch.full_like(labels, diffusion.NO_CLASS))
    expected = (1 + w) * eps_cond - w * eps_uncond
    assert torch.allclose(diffusion.guided_eps(model, x_t, t, labels, w), expected, atol=1e-4)


def test_guidance_zero_is_the_conditional_prediction():
    model = LabelModel()
    x_t, t, labels = torch.randn(5, 1, 3, 3), torch.randint(1000, (5,)), torch.arange(5)
    assert torch.equal(diffusion.guided_eps(model, x_t, t, labels, 0.0), model(x_t, t, labels))


class Oracle(torch.nn.Module):
    """The ideal noise predictor for a data set of one image x0: eps = (x_t - sqrt(ab) x0) /
    sqrt(1 - ab), whatever the label."""

    def __init__(self, schedule, x0):
        super().__init__()
        self.schedule, self.x0 = schedule, x0

    def forward(self, x_t, t, labels):
        alpha_bar = self.schedule.at(self.schedule.alpha_bar, t, x_t)
        return (x_t - alpha_bar.sqrt() * self.x0) / (1 - alpha_bar).sqrt()


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 999), st.integers(0, 998), st.integers(0, 1000))
def test_one_ddim_step_with_the_true_noise_moves_along_q(t, t_prev, seed):
    """With the true eps, a DDIM step from x_t = q_sample(x0, t, n) lands on q_sample(x0, t', n)."""
    t_prev = min(t_prev, t - 1)
    schedule = schedule_of("linear")
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(2, 1, 4, 4, generator=generator) * 2 - 1
    noise = torch.randn(2, 1, 4, 4, generator=generator)
    x_t = schedule.q_sample(x0, torch.full((2,), t), noise)
    x_prev = diffusion.ddim_step(schedule, x_t, t, t_prev, noise)
    assert torch.allclose(x_prev, schedule.q_sample(x0, torch.full((2,), t_prev), noise),
                          atol=2e-3)


def test_one_ddpm_step_is_the_posterior_mean_plus_its_noise():
    schedule = schedule_of("linear")
    torch.manual_seed(0)
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    noise, z = torch.randn(2, 3, 1, 4, 4)
    t = 400
    t_batch = torch.full((3,), t)
    x_t = schedule.q_sample(x0, t_batch, noise)
    x_prev = diffusion.ddpm_step(schedule, x_t, t, noise, z)
    expected = schedule.posterior_mean(x0, x_t, t_batch) + schedule.posterior_variance[t].sqrt() * z
    assert torch.allclose(x_prev, expected, atol=1e-4)


@pytest.mark.parametrize("sampler,steps", [("ddim", 50), ("ddim", 7), ("ddpm", None)])
def test_both_samplers_end_at_the_one_image_the_oracle_knows(sampler, steps):
    schedule = schedule_of("linear", 100)
    torch.manual_seed(0)
    x0 = torch.rand(1, 1, 4, 4) * 2 - 1
    x_T = torch.randn(3, 1, 4, 4)
    images = diffusion.sample(Oracle(schedule, x0), schedule, x_T, torch.arange(3),
                              guidance=2.0, sampler=sampler, steps=steps or 1)
    assert torch.allclose(images, x0.expand(3, -1, -1, -1), atol=1e-4)


def test_ddim_uses_the_asked_number_of_steps_and_ddpm_all():
    schedule = schedule_of("linear")
    ddim = diffusion.sampling_timesteps(schedule, "ddim", 50)
    assert len(ddim) == 50 and ddim[0] == 999 and ddim[-1] == 0 and ddim == sorted(ddim)[::-1]
    assert diffusion.sampling_timesteps(schedule, "ddpm", 50) == list(range(999, -1, -1))


def test_the_chain_has_the_asked_snapshots():
    schedule = schedule_of("linear", 100)
    x0 = torch.zeros(1, 1, 4, 4)
    x_T = torch.randn(2, 1, 4, 4)
    images, chain = diffusion.sample(Oracle(schedule, x0), schedule, x_T, torch.arange(2),
                                     sampler="ddpm", keep=11)
    assert len(chain) == 11 and chain[0] is x_T and torch.equal(chain[-1], images)


# --- the U-Net and the training step -----------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(0, 999), st.integers(0, diffusion.NO_CLASS),
       st.sampled_from([(1, 28, 28), (3, 32, 32)]))
def test_unet_keeps_the_shape_for_any_batch_time_and_label(batch, t, label, shape):
    torch.manual_seed(0)
    model = diffusion.UNet(shape[0], channels=8)
    x = torch.randn(batch, *shape)
    out = model(x, torch.full((batch,), t), torch.full((batch,), label))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unet_listens_to_the_label_and_the_time():
    torch.manual_seed(0)
    model = diffusion.UNet(1, channels=8)
    x = torch.randn(1, 1, 28, 28).repeat(11, 1, 1, 1)
    by_label = model(x, torch.full((11,), 500), torch.arange(11))
    assert len({round(v, 6) for v in by_label.flatten(1).sum(1).tolist()}) == 11
    by_time = model(x[:2], torch.tensor([10, 900]), torch.tensor([3, 3]))
    assert not torch.allclose(by_time[0], by_time[1])


@pytest.mark.parametrize("bad", [-1, diffusion.NO_CLASS + 1])
def test_unet_refuses_labels_out_of_range(bad):
    model = diffusion.UNet(1, channels=8)
    with pytest.raises(ValueError, match="labels must be in 0-9"):
        model(torch.zeros(1, 1, 28, 28), torch.tensor([5]), torch.tensor([bad]))


@settings(max_examples=10, deadline=None)
@given(st.floats(0, 1))
def test_labels_are_dropped_at_the_p_uncond_rate(p):
    torch.manual_seed(0)
    count = 40_000
    labels = torch.randint(10, (count,))
    dropped = diffusion.drop_labels(labels, p)
    is_dropped = dropped == diffusion.NO_CLASS
    assert torch.equal(dropped[~is_dropped], labels[~is_dropped])    # the rest are untouched
    rate = is_dropped.float().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / count) + 1e-9


def test_a_training_step_lowers_the_loss_on_one_batch():
    torch.manual_seed(0)
    schedule = schedule_of("linear", 50)
    model = diffusion.UNet(1, channels=8)
    optimizer = torch.optim.AdamW(model.parameters(), 2e-3)
    x0, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    # the same t and noise each time, so the losses are comparable
    losses = []
    for _ in range(15):
        torch.manual_seed(1)
        losses.append(diffusion.train_step(model, optimizer, schedule, x0, labels, 0.0).item())
    assert losses[-1] < 0.7 * losses[0]


# --- the script ---------------------------------------------------------------------------------

def test_train_resume_generate(tiny_data, tiny_classifier, tmp_path):
    out = tmp_path / "run"
    flags = ["--data-dir", str(tiny_data), "--channels", "8", "--timesteps", "20", "--steps", "5",
             "--batch-size", "4", "--sample-every", "3", "--eval-every", "3", "--eval-samples",
             "10", "--classifier", str(tiny_classifier), "--gif-samples", "10"]
    diffusion.main(flags + ["--iters", "3", "--out", str(out)])
    for name in ("checkpoint.pt", "progress.gif", "curves.png", "quality.png", "classes.png",
                 "chain.png", "guidance.png", "samples_0000003.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["conditional_accuracy"] <= 1 and metrics["n"] == 10
    diffusion.main(flags + ["--iters", "5", "--resume", str(out / "checkpoint.pt")])
    assert common.load_checkpoint(out / "checkpoint.pt", "diffusion")["iteration"] == 5

    for sampler in ("ddim", "ddpm"):
        diffusion.main(["--checkpoint", str(out / "checkpoint.pt"), "--generate", "12",
                        "--sampler", sampler, "--out", str(tmp_path / f"{sampler}.npz")])
        samples = np.load(tmp_path / f"{sampler}.npz")
        assert samples["images"].shape == (12, 1, 28, 28)
        assert samples["images"].min() >= 0 and samples["images"].max() <= 1
        assert samples["labels"].tolist() == [i % 10 for i in range(12)]
    diffusion.main(["--checkpoint", str(out / "checkpoint.pt"), "--digit", "4", "--generate", "3",
                    "--out", str(tmp_path / "fours.npz")])
    assert np.load(tmp_path / "fours.npz")["labels"].tolist() == [4] * 3
    diffusion.main(["--checkpoint", str(out / "checkpoint.pt"), "--digit", "7", "--guidance", "0"])
    assert (out / "class_7.png").is_file()


def test_a_model_without_label_dropout_samples_unguided_only(tiny_data, tmp_path, capsys):
    # --p-uncond 0 never trains eps(x_t, no class): its runs sample at w = 0, guidance is refused
    out = tmp_path / "plain"
    diffusion.main(["--data-dir", str(tiny_data), "--channels", "8", "--timesteps", "10",
                    "--steps", "3", "--batch-size", "2", "--iters", "2", "--p-uncond", "0",
                    "--eval-samples", "10", "--out", str(out)])
    assert json.loads((out / "metrics.json").read_text())["sampling"]["guidance"] == 0
    assert (out / "classes.png").is_file() and not (out / "guidance.png").exists()
    diffusion.main(["--checkpoint", str(out / "checkpoint.pt"), "--digit", "1", "--steps", "3"])
    for flags in (["--p-uncond", "0", "--guidance", "1"],
                  ["--checkpoint", str(out / "checkpoint.pt"), "--digit", "1", "--guidance", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            diffusion.main(flags)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "--p-uncond 0" in error[0], error


def test_cifar_and_the_time_limit(tiny_data, tmp_path, capsys):
    out = tmp_path / "cifar"
    diffusion.main(["--data-dir", str(tiny_data), "--dataset", "cifar10", "--channels", "8",
                    "--timesteps", "10", "--steps", "3", "--batch-size", "2", "--iters", "1000",
                    "--minutes", "0.0001", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "MNIST only" in printed and "stopped at iteration 1 " in printed
    state = common.load_checkpoint(out / "checkpoint.pt", "diffusion")
    assert state["config"]["image_shape"] == [3, 32, 32] and state["iteration"] == 1


@pytest.mark.parametrize("flags", [["--digit", "10"], ["--digit", "3"], ["--guidance", "-1"],
                                   ["--p-uncond", "1.5"], ["--steps", "2000"],
                                   ["--checkpoint", "c.pt"], ["--sampler", "euler"],
                                   ["--channels", "12"], ["--timesteps", "1"]])
def test_bad_flags(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        diffusion.main(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("diffusion.py: error: "), error


def test_checkpoint_of_another_model(tmp_path, capsys):
    common.save_checkpoint({"model": "cgan", "config": {}}, tmp_path / "c.pt")
    with pytest.raises(SystemExit):
        diffusion.main(["--checkpoint", str(tmp_path / "c.pt"), "--digit", "2"])
    assert "checkpoint of cgan.py, not diffusion.py" in capsys.readouterr().err
