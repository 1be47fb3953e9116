"""toy2d.py: it runs the scripts' own functions (spies see them called), its mode-coverage
measures on hand-made point sets, shapes, and seeded runs that repeat."""
import json
import math

import numpy as np
import pytest
import torch
from conftest import one_line_exit
from hypothesis import given, settings, strategies as st

import diffusion
import gan
import toy2d
import wgan


def spy(monkeypatch, module, name):
    """Replace module.name by a wrapper that counts its calls and then calls the original."""
    original, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_the_gan_game_runs_gan_py_s_own_step_and_losses(monkeypatch, tmp_path):
    steps = spy(monkeypatch, gan, "train_step")
    losses = spy(monkeypatch, gan, "generator_loss")
    metrics = toy2d.main(["gan", "--loss", "minimax", "--steps", "3", "--d-warmup", "2",
                          "--out", str(tmp_path / "gan")])
    assert len(steps) == 3 and losses                      # the arrows are gan.py's loss too
    for name in ("gan.png", "progress.gif", "metrics.json"):
        assert (tmp_path / "gan" / name).is_file()
    assert 0 <= metrics["modes_covered"] <= 8 and 0 <= metrics["high_quality"] <= 1


def test_the_critics_run_wgan_py_s_own_step_clamp_and_penalty(monkeypatch, tmp_path):
    steps = spy(monkeypatch, wgan, "train_step")
    clamps = spy(monkeypatch, wgan, "clip_weights")
    penalties = spy(monkeypatch, wgan, "gradient_penalty")
    metrics = toy2d.main(["critic", "--steps", "2", "--out", str(tmp_path / "critic")])
    assert len(steps) == 2 * len(toy2d.CRITICS)
    # the game: 2 steps x 5 critic steps; Figure 1: 3 data sets x 2 steps; Figure 2: 2 steps
    assert len(clamps) == 2 * 5 + 3 * 2
    assert len(penalties) == 2 * 5 + 3 * 2 + 2
    assert (tmp_path / "critic" / "critic_fixed.png").is_file()
    assert len(metrics["figure_1"]["settled_at"]) == 6


def test_the_toy_wgans_follow_the_wgan_gp_paper_s_toy_recipe():
    # gan_toy.py: 5 critic steps; RMSprop, c = 0.01; Adam (0.5, 0.9), lambda 0.1
    clipped, penalized = toy2d.CRITICS["WGAN, clip 0.01"], toy2d.CRITICS["WGAN-GP, lambda 0.1"]
    assert clipped["n_critic"] == penalized["n_critic"] == 5
    *_, opt_f, config = toy2d.make_wgan(clipped)
    assert isinstance(opt_f, torch.optim.RMSprop) and config["clip"] == 0.01
    *_, opt_f, config = toy2d.make_wgan(penalized)
    assert opt_f.param_groups[0]["betas"] == (0.5, 0.9) and config["gradient_penalty"] == 0.1
    assert opt_f.param_groups[0]["lr"] == config["lr"] == config["critic_lr"]


def test_coverage_trains_every_loss_for_every_seed(monkeypatch, tmp_path):
    gan_steps, wgan_steps = spy(monkeypatch, gan, "train_step"), spy(monkeypatch, wgan, "train_step")
    metrics = toy2d.main(["coverage", "--steps", "3", "--seeds", "2", "--out", str(tmp_path)])
    assert len(gan_steps) == 2 * 2 * 3 and len(wgan_steps) == 2 * 2 * 3
    assert [row["seed"] for rows in metrics["runs"].values() for row in rows] == [0, 1] * 4


def test_the_toy_diffusion_runs_diffusion_py_s_step_sampler_and_guidance(monkeypatch, tmp_path):
    steps = spy(monkeypatch, diffusion, "train_step")
    guided = spy(monkeypatch, diffusion, "guided_eps")
    metrics = toy2d.main(["diffusion", "--steps", "2", "--out", str(tmp_path / "d")])
    assert len(steps) == 2 and guided
    assert set(metrics["guidance"]) == {"w=0", "w=1", "w=3"}


def test_a_sigmoid_before_the_losses_on_logits_confines_d_s_belief(tmp_path):
    # the losses apply sigmoid to what D returns: sigmoid(sigmoid(l)) lies in (0.5, 0.7311)
    metrics = toy2d.main(["gan", "--double-sigmoid", "--steps", "3", "--d-warmup", "2",
                          "--out", str(tmp_path / "bug")])
    low, high = metrics["d_believed_range"]
    assert 0.5 < low <= high < 1 / (1 + math.exp(-1)) + 1e-4
    assert metrics["double_sigmoid"] is True
    correct = toy2d.main(["gan", "--steps", "3", "--d-warmup", "2", "--out", str(tmp_path / "ok")])
    assert correct["d_believed_range"][0] < 0.5 and correct["double_sigmoid"] is False


def test_the_game_on_the_grid_counts_25_modes(tmp_path):
    metrics = toy2d.main(["gan", "--data", "grid", "--steps", "2", "--d-warmup", "1",
                          "--out", str(tmp_path / "grid")])
    assert metrics["modes"] == 25 and 0 <= metrics["modes_covered"] <= 25


def test_two_seeded_runs_give_the_same_numbers(tmp_path):
    runs = [toy2d.main(["gan", "--steps", "5", "--d-warmup", "3", "--out", str(tmp_path / f"r{i}")])
            for i in range(2)]
    for metrics in runs:
        metrics.pop("seconds"), metrics.pop("provenance")
    assert runs[0] == runs[1]
    assert json.loads((tmp_path / "r0" / "metrics.json").read_text())["history"] == \
        runs[0]["history"]


@pytest.mark.parametrize("flags", [["critic", "--loss", "minimax"], ["diffusion", "--seeds", "2"],
                                   ["critic", "--double-sigmoid"],
                                   ["critic", "--data", "grid"], ["gan", "--data", "moons"],
                                   ["gan", "--steps", "0"], ["coverage", "--d-warmup", "5"],
                                   ["gan", "--d-warmup", "-1"], ["swiss"]])
def test_a_flag_of_another_experiment_or_out_of_range_is_one_line(flags, capsys):
    assert one_line_exit(toy2d.main, flags, capsys).startswith("toy2d.py: error: ")


# --- the mode-coverage measures ------------------------------------------------------------------

CENTERS = toy2d.ring(1)[1]
STD = toy2d.RING_STD


def near(center, count, seed):
    """count points within 2 std of center (inside the 3-std window)."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(count, 2, generator=generator)
    radius = 2 * STD * torch.rand(count, 1, generator=generator)
    return center + radius * direction / direction.norm(dim=1, keepdim=True)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000))
def test_points_on_every_mode_cover_all_eight(per_mode, seed):
    points = torch.cat([near(center, per_mode, seed + i) for i, center in enumerate(CENTERS)])
    assert toy2d.mode_coverage(points, CENTERS, STD) == (8, 1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 7), st.integers(1, 300), st.integers(0, 10_000))
def test_points_on_one_mode_cover_one(mode, count, seed):
    assert toy2d.mode_coverage(near(CENTERS[mode], count, seed), CENTERS, STD) == (1, 1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.floats(3.5, 20), st.integers(0, 10_000))
def test_points_far_from_every_mode_cover_none(count, distance, seed):
    # points at `distance` std from the nearest center: between two modes or outside the ring
    generator = torch.Generator().manual_seed(seed)
    angles = 2 * math.pi * torch.rand(count, generator=generator)
    radius = toy2d.RING_RADIUS + distance * STD * torch.where(torch.rand(count) < 0.5, 1, -1)
    points = radius[:, None] * torch.stack([angles.cos(), angles.sin()], 1)
    points = points[torch.cdist(points, CENTERS).min(1).values > 3 * STD]
    if len(points):
        assert toy2d.mode_coverage(points, CENTERS, STD) == (0, 0.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 100), st.integers(0, 100), st.integers(0, 10_000))
def test_the_high_quality_share_counts_the_points_near_a_mode(good, far, seed):
    if good + far == 0:
        return
    points = torch.cat([near(CENTERS[seed % 8], good, seed), torch.full((far, 2), 10.0)])
    covered, share = toy2d.mode_coverage(points, CENTERS, STD)
    assert share == pytest.approx(good / (good + far))
    assert covered == (1 if good >= max(1, 0.01 * (good + far)) else 0)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=1, max_size=30), st.integers(0, 10_000))
def test_the_averaged_coverage_is_the_mean_of_the_last_ten_evaluations(modes_per_step, seed):
    # one point set per evaluation, with points on the first k modes: k modes, share 1; and
    # 3 far points beside them, so the share is the points' own fraction
    evaluations = []
    for k in modes_per_step:
        points = torch.cat([near(CENTERS[i], 50, seed + i) for i in range(k)]
                           + [torch.full((3, 2), 10.0)])
        evaluations.append(toy2d.mode_coverage(points, CENTERS, STD))
    modes, share = toy2d.averaged_coverage(evaluations)
    last = modes_per_step[-10:]
    assert modes == pytest.approx(np.mean(last))
    assert share == pytest.approx(np.mean([50 * k / (50 * k + 3) for k in last]))


# --- shapes ---------------------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(st.integers(1, 64), st.integers(0, 999), st.sampled_from([0, 1, 2, diffusion.NO_CLASS]))
def test_the_toy_networks_keep_the_shapes_of_points(batch, t, label):
    assert toy2d.Critic()(torch.randn(batch, 2)).shape == (batch,)
    eps = toy2d.Denoiser()(torch.randn(batch, 2), torch.full((batch,), t),
                           torch.full((batch,), label))
    assert eps.shape == (batch, 2)


def test_the_data_and_the_schedule_on_points():
    points, centers = toy2d.ring(1000, torch.Generator().manual_seed(0))
    assert points.shape == (1000, 2) and centers.shape == (8, 2)
    assert torch.cdist(points, centers).min(1).values.max() < 6 * STD
    points, centers = toy2d.grid(1000, torch.Generator().manual_seed(0))
    assert points.shape == (1000, 2) and centers.shape == (25, 2)
    assert torch.cdist(points, centers).min(1).values.max() < 6 * toy2d.GRID_STD
    roll, classes = toy2d.swiss_roll(1000, torch.Generator().manual_seed(0))
    assert roll.shape == (1000, 2) and set(classes.tolist()) == {0, 1, 2}
    assert roll.abs().max() < 1.1
    # q_sample on points: x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps, as for images
    schedule = diffusion.NoiseSchedule(1000)
    t, noise = torch.randint(1000, (1000,)), torch.randn(1000, 2)
    alpha_bar = schedule.alpha_bar[t][:, None]
    assert torch.allclose(schedule.q_sample(roll, t, noise),
                          alpha_bar.sqrt() * roll + (1 - alpha_bar).sqrt() * noise)
