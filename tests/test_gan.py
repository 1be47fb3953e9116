"""gan.py: the losses equal their definitions, their gradients behave as the paper says, the
networks fit every dataset, and the script trains, resumes and generates on tiny data."""
import json
import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import common
import gan

# Within |l| <= 15 the reference, computed from probabilities in float64, is itself accurate to
# 1e-9; beyond that log(1 - sigmoid(l)) from a probability loses digits (which is why the code
# works on logits), so the tails are checked against softplus's asymptote instead.
logits = st.lists(st.floats(-15, 15, allow_nan=False), min_size=1, max_size=16)
extreme = st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=16)


def sigmoid(value):
    return 1 / (1 + math.exp(-value))


@settings(max_examples=200, deadline=None)
@given(logits, logits)
def test_losses_equal_their_definitions(real, fake):
    real_t = torch.tensor(real, dtype=torch.float64)
    fake_t = torch.tensor(fake, dtype=torch.float64)
    # L_D = -[log D(x) + log(1 - D(G(z)))], averaged over each batch, from probabilities
    expected_d = -np.mean([math.log(sigmoid(r)) for r in real]) \
        - np.mean([math.log1p(-sigmoid(f)) for f in fake])
    expected_minimax = np.mean([math.log1p(-sigmoid(f)) for f in fake])   # log(1 - D(G(z)))
    expected_logistic = -np.mean([math.log(sigmoid(f)) for f in fake])    # -log D(G(z))
    assert gan.discriminator_loss(real_t, fake_t).item() == pytest.approx(expected_d, rel=1e-7,
                                                                          abs=1e-9)
    assert gan.generator_loss(fake_t, "minimax").item() == pytest.approx(expected_minimax,
                                                                         rel=1e-7, abs=1e-9)
    assert gan.generator_loss(fake_t, "logistic").item() == pytest.approx(expected_logistic,
                                                                          rel=1e-7, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(extreme, extreme)
def test_losses_finite_for_extreme_logits(real, fake):
    real_t, fake_t = torch.tensor(real), torch.tensor(fake)
    for value in (gan.discriminator_loss(real_t, fake_t), gan.generator_loss(fake_t, "minimax"),
                  gan.generator_loss(fake_t, "logistic")):
        assert torch.isfinite(value)
    # softplus(a) = max(a, 0) + log(1 + e^-|a|) exactly, and that form is stable for any a
    def softplus(values):
        return np.mean([max(a, 0.0) + math.log1p(math.exp(-abs(a))) for a in values])
    expected_d = softplus([-r for r in real]) + softplus(fake)
    assert gan.discriminator_loss(real_t, fake_t).item() == pytest.approx(expected_d, rel=1e-5,
                                                                          abs=1e-5)
    assert gan.generator_loss(fake_t, "minimax").item() == pytest.approx(-softplus(fake),
                                                                         rel=1e-5, abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.floats(-50, 50, allow_nan=False))
def test_generator_gradients(logit):
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l) and d/dl -log sigmoid(l) = -(1 - sigmoid(l))."""
    for loss, expected in (("minimax", -sigmoid(logit)), ("logistic", -(1 - sigmoid(logit)))):
        fake_logit = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
        gan.generator_loss(fake_logit, loss).backward()
        # abs 1e-8: torch.softplus(l) returns l itself above l = 20, off by e^-20 there
        assert fake_logit.grad.item() == pytest.approx(expected, rel=1e-9, abs=1e-8)


def test_minimax_gradient_vanishes_when_discriminator_wins():
    """As D(G(z)) -> 0 the minimax signal vanishes; the logistic one tends to its maximum."""
    previous = None
    for logit in (-2.0, -5.0, -10.0, -20.0):
        grads = {}
        for loss in ("minimax", "logistic"):
            fake_logit = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
            gan.generator_loss(fake_logit, loss).backward()
            grads[loss] = abs(fake_logit.grad.item())
        assert grads["logistic"] > 0.88
        if previous is not None:
            assert grads["minimax"] < previous / 10
        previous = grads["minimax"]
    assert previous < 1e-8


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 33), st.sampled_from(["mlp", "dcgan"]),
       st.sampled_from(list(common.DATASETS)))
def test_network_shapes(batch, arch, dataset):
    shape = common.DATASETS[dataset]["shape"]
    generator, discriminator = gan.build_networks({"arch": arch, "z_dim": 7, "image_shape": shape,
                                                  "d_dropout": 0.3})
    generator.eval(), discriminator.eval()       # batch norm in training mode needs batch > 1
    images = generator(torch.randn(batch, 7))
    assert images.shape == (batch, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (batch,)


def test_discriminator_dropout():
    shape = (1, 28, 28)
    plain = gan.MLPDiscriminator(shape)   # dropout 0: the same layers, and no randomness
    dropped = gan.MLPDiscriminator(shape, 0.5)
    assert [name for name, _ in plain.named_parameters()] == [
        name for name, _ in dropped.named_parameters()]
    assert sum(p.numel() for p in dropped.parameters()) == sum(p.numel() for p in
                                                              plain.parameters())
    images = torch.randn(8, *shape)
    assert torch.equal(plain(images), plain(images))
    assert not torch.equal(dropped(images), dropped(images))   # training: a new mask each pass
    dropped.eval()
    assert torch.equal(dropped(images), dropped(images))


class PixelMean(torch.nn.Module):
    """A stand-in discriminator whose logit is the mean pixel, behind a heavy dropout."""
    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.9)

    def forward(self, images):
        return self.drop(images).mean((1, 2, 3))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(0, 20), st.integers(0, 10**6))
def test_overfitting_gap(count, extra, seed):
    generator = torch.Generator().manual_seed(seed)
    train_images = torch.rand(count, 1, 2, 2, generator=generator)
    test_images = torch.rand(count, 1, 2, 2, generator=generator)
    stub = PixelMean()
    # equal sizes: every training image is used, so the gap is the difference of the two means,
    # and it is measured without dropout (with it the logits would be scaled and masked)
    assert gan.overfitting_gap(stub, train_images, test_images) == pytest.approx(
        (train_images.mean() - test_images.mean()).item(), abs=1e-6)
    assert stub.training                      # training mode is restored
    # a larger training set: a random subset as large as the test set
    constant_train = torch.full((count + extra, 1, 2, 2), 0.25)
    assert gan.overfitting_gap(stub, constant_train, test_images) == pytest.approx(
        0.25 - test_images.mean().item(), abs=1e-6)


def test_record_quality_keeps_every_number(tmp_path):
    history = {"eval_iteration": [5], "eval_fid": [9.0], "eval_class_entropy": [2.0],
               "eval_gap": [0.25]}
    common.record_quality(history, 10, {"n": 4, "fid": 8.0, "class_entropy": 2.1,
                                        "class_histogram": [4] + [0] * 9, "gap": 0.5}, tmp_path)
    assert history == {"eval_iteration": [5, 10], "eval_fid": [9.0, 8.0],
                       "eval_class_entropy": [2.0, 2.1], "eval_gap": [0.25, 0.5]}
    assert (tmp_path / "quality.png").is_file()


def run_gan(*argv):
    return gan.main([str(arg) for arg in argv])


def test_train_resume_generate(tiny_data, tiny_classifier, tmp_path):
    out = tmp_path / "run"
    run_gan("--data-dir", tiny_data, "--iters", 30, "--batch-size", 8, "--sample-every", 10,
            "--out", out, "--classifier", tiny_classifier, "--eval-every", 15,
            "--eval-samples", 20)
    for name in ("checkpoint.pt", "curves.png", "progress.gif", "metrics.json",
                 "samples_0000030.png"):
        assert (out / name).is_file(), name
    assert len(common.load_gif_frames(out / "progress.gif")) == 3
    assert not list(out.glob(".*partial*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 20 and sum(metrics["class_histogram"]) == 20
    assert math.isfinite(metrics["fid"]) and 0 <= metrics["class_entropy"] <= math.log(10) + 1e-9
    state = common.load_checkpoint(out / "checkpoint.pt", "gan")
    assert state["history"]["eval_iteration"] == [15, 30]
    assert len(state["history"]["eval_d_overfitting_gap"]) == 2
    assert state["config"]["d_dropout"] == 0.3 and math.isfinite(metrics["d_overfitting_gap"])
    # resume to 50: the history continues from 30, the GIF grows
    run_gan("--data-dir", tiny_data, "--iters", 50, "--batch-size", 8, "--sample-every", 10,
            "--resume", out / "checkpoint.pt", "--classifier", tiny_classifier, "--eval-every",
            15, "--eval-samples", 20, "--parzen")
    state = common.load_checkpoint(out / "checkpoint.pt", "gan")
    assert state["iteration"] == 50 and state["history"]["iteration"][-1] == 50
    assert len(common.load_gif_frames(out / "progress.gif")) == 5
    assert "parzen_log_likelihood" in json.loads((out / "metrics.json").read_text())
    run_gan("--checkpoint", out / "checkpoint.pt", "--generate", 12, "--out", tmp_path / "s.npz")
    samples = np.load(tmp_path / "s.npz")
    assert samples["images"].shape == (12, 1, 28, 28) and "labels" not in samples
    assert samples["images"].dtype == np.float32
    assert 0 <= samples["images"].min() and samples["images"].max() <= 1


def test_same_seed_same_run(tiny_data, tiny_classifier, tmp_path):
    for name in ("a", "b"):
        run_gan("--data-dir", tiny_data, "--iters", 5, "--batch-size", 4, "--out", tmp_path / name,
                "--loss", "minimax", "--seed", 3, "--classifier", tiny_classifier,
                "--eval-samples", 10)
    first = common.load_checkpoint(tmp_path / "a" / "checkpoint.pt", "gan")
    second = common.load_checkpoint(tmp_path / "b" / "checkpoint.pt", "gan")
    for key in first["generator"]:
        assert torch.equal(first["generator"][key], second["generator"][key])


def test_time_limit_stops_training(tiny_data, tiny_classifier, tmp_path):
    run_gan("--data-dir", tiny_data, "--iters", 1000, "--batch-size", 4, "--minutes", 0.00001,
            "--out", tmp_path / "t", "--classifier", tiny_classifier, "--eval-samples", 10)
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["iterations"] == 1 and metrics["n"] == 10     # stopped, and still measured
    assert common.load_checkpoint(tmp_path / "t" / "checkpoint.pt", "gan")["iteration"] == 1


def fake_clock(monkeypatch):
    """time.perf_counter() one second later at every reading: each training step, timed by two
    readings, takes exactly one second."""
    ticks = iter(range(10 ** 9))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))


def test_time_limit_counts_training_only(tiny_data, tiny_classifier, tmp_path, monkeypatch):
    """An evaluation that takes longer than the whole budget does not end the run early."""
    fake_clock(monkeypatch)
    measure = common.sample_quality

    def slow_quality(*args, **kwargs):
        for _ in range(100):                         # 100 seconds on the fake clock
            time.perf_counter()
        return measure(*args, **kwargs)
    monkeypatch.setattr(common, "sample_quality", slow_quality)
    # six one-second steps fit the 6.6-second budget; with the evaluations counted, the budget
    # would run out at the first of them
    run_gan("--data-dir", tiny_data, "--iters", 6, "--batch-size", 4, "--minutes", 0.11,
            "--eval-every", 1, "--out", tmp_path / "t", "--classifier", tiny_classifier,
            "--eval-samples", 10)
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["iterations"] == 6


@pytest.mark.parametrize("lr", [2e-4, 1e-3])
def test_linear_lr_decay(tiny_data, tmp_path, lr):
    run_gan("--data-dir", tiny_data, "--dataset", "fashion", "--iters", 4, "--batch-size", 4,
            "--lr", lr, "--lr-decay", "linear", "--out", tmp_path / "d")
    state = common.load_checkpoint(tmp_path / "d" / "checkpoint.pt", "gan")
    # lr_i = lr (1 - (i - 1) / iters): the last of 4 steps used lr / 4
    for key in ("opt_g", "opt_d"):
        assert state[key]["param_groups"][0]["lr"] == pytest.approx(lr / 4)


def test_the_decay_follows_the_time_budget_when_it_ends_first(tiny_data, tmp_path, monkeypatch):
    # one-second steps, a 6-second budget and 1,000 iterations asked: the run stops after step 6,
    # which started with 5 of the 6 seconds spent, so its rate is lr (1 - 5/6), not lr (1 - 5/1000)
    fake_clock(monkeypatch)
    run_gan("--data-dir", tiny_data, "--dataset", "fashion", "--iters", 1000, "--batch-size", 4,
            "--lr", 1e-3, "--lr-decay", "linear", "--minutes", 0.1, "--out", tmp_path / "d")
    state = common.load_checkpoint(tmp_path / "d" / "checkpoint.pt", "gan")
    assert state["iteration"] == 6
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 6)


@pytest.mark.parametrize("dataset", ["fashion", "cifar10"])
def test_dcgan_on_other_datasets(tiny_data, tmp_path, dataset):
    run_gan("--data-dir", tiny_data, "--dataset", dataset, "--arch", "dcgan", "--iters", 3,
            "--batch-size", 4, "--out", tmp_path / dataset)
    state = common.load_checkpoint(tmp_path / dataset / "checkpoint.pt", "gan")
    assert state["config"]["image_shape"] == list(common.DATASETS[dataset]["shape"])


def test_user_errors_are_one_line(tiny_data, tiny_classifier, tmp_path, capsys):
    common.save_checkpoint({"model": "wgan", "config": {}}, tmp_path / "w.pt")
    with pytest.raises(SystemExit) as exit_info:
        run_gan("--checkpoint", tmp_path / "w.pt", "--generate", 4, "--out", tmp_path / "s.npz")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'w.pt'} is a checkpoint of wgan.py, not gan.py"]
    with pytest.raises(SystemExit):                     # missing data, offline
        run_gan("--data-dir", tmp_path / "empty", "--iters", 2, "--out", tmp_path / "r",
                "--classifier", tiny_classifier)
    assert "could not be downloaded" in capsys.readouterr().err
    for bad in (["--loss", "hinge"], ["--iters", "0"], ["--generate", "5"], ["--ema", "1"],
                ["--d-dropout", "1"], ["--arch", "dcgan", "--d-dropout", "0.3"]):
        with pytest.raises(SystemExit) as exit_info:
            run_gan(*bad)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("gan.py: error: "), error
