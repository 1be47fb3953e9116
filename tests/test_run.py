"""The run plumbing every generative script shares (common.TrainingRun) and the one measuring
classifier: a diverging run stops at its first bad iteration with its last good checkpoint
intact, --minutes is one budget across --resume, and the committed classifier is checked."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cgan
import common
import diffusion
import gan
import wgan
from conftest import NO_REAL_MNIST, REAL_MNIST

ROOT = Path(__file__).resolve().parents[1]

# Each script, with flags that make a run of a few iterations on the tiny data quick (a test's
# own flags come after these, and win).
SCRIPTS = {
    "gan": (gan, ["--batch-size", "4", "--gif-samples", "16"]),
    "cgan": (cgan, ["--batch-size", "4", "--gif-samples", "10"]),
    "wgan": (wgan, ["--batch-size", "4", "--n-critic", "2", "--gif-samples", "16"]),
    "diffusion": (diffusion, ["--batch-size", "4", "--channels", "8", "--timesteps", "10",
                              "--steps", "2", "--gif-samples", "10"]),
}


def run_script(name, tiny_data, tiny_classifier, *flags):
    module, own_flags = SCRIPTS[name]
    return module.main(["--data-dir", str(tiny_data), "--classifier", str(tiny_classifier),
                        "--eval-samples", "10", *own_flags, *map(str, flags)])


def one_line_error(capsys):
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    return error[0]


def test_importing_common_imports_no_script():
    scripts = ["gan", "cgan", "wgan", "diffusion", "adversarial"]
    imported = subprocess.run(
        [sys.executable, "-c", f"import sys, common; print([m for m in {scripts} "
                               "if m in sys.modules])"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"


# --- a diverging run --------------------------------------------------------------------------

def poison(monkeypatch, module, at_call, what):
    """Wrap module.train_step so that its call number `at_call` goes wrong: with what="loss" it
    returns a NaN loss (and leaves NaN weights, as a real divergence would); with
    what="weights" the losses stay finite but the weights it leaves behind are NaN."""
    original, calls = module.train_step, []

    def train_step(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == at_call:
            with torch.no_grad():
                for parameter in args[0].parameters():     # the first argument: G or the U-Net
                    parameter.fill_(float("nan"))
            if what == "loss":   # the first number the step returns becomes NaN
                nan = torch.tensor(float("nan"))
                if isinstance(result, dict):
                    return {key: nan if i == 0 else value
                            for i, (key, value) in enumerate(result.items())}
                return (nan, *result[1:]) if isinstance(result, tuple) else nan
        return result
    monkeypatch.setattr(module, "train_step", train_step)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_a_nan_loss_stops_the_run_at_that_iteration(name, tiny_data, tiny_classifier, tmp_path,
                                                    monkeypatch, capsys):
    out = tmp_path / "run"
    poison(monkeypatch, SCRIPTS[name][0], at_call=8, what="loss")
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, tiny_data, tiny_classifier, "--iters", 20, "--checkpoint-every", 5,
                   "--sample-every", 1, "--eval-every", 5, "--out", out)
    assert exit_info.value.code != 0
    error = one_line_error(capsys)
    assert error.startswith("error: training diverged at iteration 8: ")
    assert f"the last good checkpoint is {out / 'checkpoint.pt'} (iteration 5)" in error
    state = common.load_checkpoint(out / "checkpoint.pt", name)    # intact, and finite
    assert state["iteration"] == 5
    for key, value in state.items():
        if isinstance(value, dict) and value and all(torch.is_tensor(v) for v in value.values()):
            assert all(torch.isfinite(v).all() for v in value.values()), key
    assert (out / "samples_0000007.png").is_file()
    assert not (out / "samples_0000008.png").exists() and not (out / "metrics.json").exists()
    assert not list(out.glob(".*partial*"))


def test_a_resumed_run_that_diverges_names_the_checkpoint_it_resumed(tiny_data, tiny_classifier,
                                                                    tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    run_script("cgan", tiny_data, tiny_classifier, "--iters", 4, "--out", out)
    poison(monkeypatch, cgan, at_call=2, what="loss")
    with pytest.raises(SystemExit):
        run_script("cgan", tiny_data, tiny_classifier, "--iters", 10, "--resume",
                   out / "checkpoint.pt")
    error = one_line_error(capsys)
    assert error.startswith("error: training diverged at iteration 6: loss_d is nan; ")
    assert f"the last good checkpoint is {out / 'checkpoint.pt'} (iteration 4)" in error
    assert common.load_checkpoint(out / "checkpoint.pt", "cgan")["iteration"] == 4


def test_non_finite_weights_are_never_sampled_or_saved(tiny_data, tiny_classifier, tmp_path,
                                                       monkeypatch, capsys):
    """The losses of step 4 are finite, but the weights it leaves are not: the run stops before
    it draws the grid of iteration 4 from them or saves them."""
    out = tmp_path / "run"
    poison(monkeypatch, gan, at_call=4, what="weights")
    with pytest.raises(SystemExit):
        run_script("gan", tiny_data, tiny_classifier, "--iters", 20, "--checkpoint-every", 2,
                   "--sample-every", 4, "--ema", 0, "--out", out)
    error = one_line_error(capsys)
    assert error.startswith("error: training diverged at iteration 4: the weights of generator "
                            "are not finite")
    assert common.load_checkpoint(out / "checkpoint.pt", "gan")["iteration"] == 2
    assert not (out / "samples_0000004.png").exists()


def test_a_real_divergence(tiny_data, tmp_path, capsys):
    """An absurd learning rate: the run stops with the message, not a traceback."""
    with pytest.raises(SystemExit) as exit_info:
        diffusion.main(["--data-dir", str(tiny_data), "--dataset", "fashion", "--channels", "8",
                        "--timesteps", "10", "--steps", "2", "--batch-size", "4", "--lr", "1e6",
                        "--iters", "50", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "training diverged at iteration" in one_line_error(capsys)


# --- the time budget across --resume ------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCRIPTS))
def test_minutes_is_one_budget_across_resume(name, tiny_data, tiny_classifier, tmp_path,
                                              capsys):
    out = tmp_path / "run"
    run_script(name, tiny_data, tiny_classifier, "--iters", 50, "--minutes", 1e-6, "--out", out)
    first = common.load_checkpoint(out / "checkpoint.pt", name)
    assert first["iteration"] == 1 and first["train_seconds"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_seconds"] == round(first["train_seconds"], 1)
    capsys.readouterr()
    # The same budget again: it is spent, so the resumed run refuses to start.
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, tiny_data, tiny_classifier, "--iters", 50, "--minutes", 1e-6,
                   "--resume", out / "checkpoint.pt")
    assert exit_info.value.code == 2
    assert "ask for more with --minutes" in one_line_error(capsys)
    # A larger budget: the run goes on, and its training time adds to the first one's.
    run_script(name, tiny_data, tiny_classifier, "--iters", 3, "--minutes", 10,
               "--resume", out / "checkpoint.pt")
    second = common.load_checkpoint(out / "checkpoint.pt", name)
    assert second["iteration"] == 3 and second["train_seconds"] > first["train_seconds"]
    assert second["history"]["train_minutes"][-1] == round(second["train_seconds"] / 60, 3)


# --- the measuring classifier -------------------------------------------------------------------

def test_the_committed_classifier_is_the_one_its_checksum_names():
    classifier = common.load_classifier()
    assert classifier.sha256 == common.CLASSIFIER_SHA256 and not classifier.training
    assert common.CLASSIFIER_PATH.stat().st_size < 2 * 1024 * 1024


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=NO_REAL_MNIST)
def test_the_committed_classifier_reads_mnist():
    classifier = common.load_classifier()
    images, labels = common.load_dataset("mnist", train=False, data_dir=REAL_MNIST.parent)
    with torch.no_grad():
        predictions = classifier(torch.from_numpy(images).float() / 255).argmax(1)
    assert (predictions == torch.from_numpy(labels)).float().mean() > 0.99


def test_an_altered_or_missing_classifier_is_a_one_line_error(tiny_data, tmp_path, monkeypatch,
                                                              capsys):
    copy = tmp_path / "weights" / "mnist_classifier.pt"
    copy.parent.mkdir()
    shutil.copy(common.CLASSIFIER_PATH, copy)
    monkeypatch.setattr(common, "CLASSIFIER_PATH", copy)
    assert common.load_classifier().sha256 == common.CLASSIFIER_SHA256    # the copy is whole
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF                                          # one byte altered
    copy.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exit_info:
        gan.main(["--data-dir", str(tiny_data), "--iters", "2", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    error = one_line_error(capsys)
    assert "altered or damaged" in error and "git checkout -- weights/mnist_classifier.pt" in error
    assert "python adversarial.py --retrain" in error
    copy.unlink()
    with pytest.raises(common.UserError, match="is missing: restore it"):
        common.load_classifier()


# --- best.pt and the GIF's samples --------------------------------------------------------------

def test_best_checkpoint_is_the_one_with_the_lowest_recorded_fid(tiny_data, tiny_classifier,
                                                                  tmp_path, monkeypatch):
    fids = iter([5.0, 3.0, 4.0, 6.0, 3.5, 2.5])

    def scripted_quality(images, labels, classifier, data_dir=None):
        return {"n": len(images), "fid": next(fids), "class_histogram": [len(images)] + [0] * 9,
                "class_entropy": 0.0}
    monkeypatch.setattr(common, "sample_quality", scripted_quality)
    out = tmp_path / "run"
    run_script("gan", tiny_data, tiny_classifier, "--iters", 4, "--eval-every", 1, "--out", out)
    best = common.load_checkpoint(out / "best.pt", "gan")
    assert best["iteration"] == 2 and best["history"]["eval_fid"] == [5.0, 3.0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["best_fid"], metrics["best_iteration"], metrics["fid"]) == (3.0, 2, 6.0)
    # a resumed run keeps the best of the whole run: 3.5 is not better than 3.0, 2.5 is
    run_script("gan", tiny_data, tiny_classifier, "--iters", 6, "--eval-every", 1,
               "--resume", out / "checkpoint.pt")
    assert common.load_checkpoint(out / "best.pt", "gan")["iteration"] == 6
    # --generate takes either checkpoint
    gan.main(["--checkpoint", str(out / "best.pt"), "--generate", "3",
              "--out", str(tmp_path / "s.npz")])
    assert (tmp_path / "s.npz").is_file()


@pytest.mark.parametrize("name, count, shape", [("gan", 49, (212, 212)), ("wgan", 10, (92, 122)),
                                                ("cgan", 30, (92, 302))])
def test_gif_samples(name, count, shape, tiny_data, tiny_classifier, tmp_path):
    from PIL import Image
    out = tmp_path / "run"
    run_script(name, tiny_data, tiny_classifier, "--iters", 2, "--gif-samples", count,
               "--out", out)
    frames = common.load_gif_frames(out / "progress.gif")
    assert frames[-1].shape[:2] == shape           # 7 x 7, 4 x 3 and 10 x 3 images of 28 + 2
    with Image.open(out / "samples_0000002.png") as grid:
        assert grid.size == shape[::-1]


def test_one_class_per_column_needs_a_multiple_of_ten(capsys):
    for module in (cgan, diffusion):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--gif-samples", "25"])
        assert exit_info.value.code == 2
        assert "multiple of 10" in capsys.readouterr().err
