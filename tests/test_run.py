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
from conftest import REAL_MNIST

ROOT = Path(__file__).resolve().parents[1]

# Each script, with flags that make a run of a few iterations on the tiny data quick.
SCRIPTS = {
    "gan": (gan, ["--batch-size", "4"]),
    "cgan": (cgan, ["--batch-size", "4"]),
    "wgan": (wgan, ["--batch-size", "4", "--n-critic", "2"]),
    "diffusion": (diffusion, ["--batch-size", "4", "--channels", "8", "--timesteps", "10",
                              "--steps", "2"]),
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
            if what == "loss":
                nan = torch.tensor(float("nan"))
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


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="real MNIST is not beside the checkout")
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
