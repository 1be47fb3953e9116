"""cgan.py: the label reaches both networks, bad labels are clear errors, and the script trains,
resumes and generates chosen classes on tiny data."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import cgan
import gan
import common


def networks(arch, seed=0):
    torch.manual_seed(seed)
    generator, discriminator = cgan.build_networks({"arch": arch, "z_dim": 8, "d_dropout": 0.3,
                                                    "image_shape": [1, 28, 28]})
    return generator.eval(), discriminator.eval()


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 17), st.sampled_from(["mlp", "conv"]), st.integers(0, 9))
def test_shapes_for_any_batch_and_label(batch, arch, label):
    generator, discriminator = networks(arch)
    labels = torch.full((batch,), label)
    images = generator(torch.randn(batch, 8), labels)
    assert images.shape == (batch, 1, 28, 28) and images.abs().max() <= 1
    assert discriminator(images, labels).shape == (batch,)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("bad", [-1, 10, 11])
def test_label_outside_the_range_is_a_clear_error(arch, bad):
    generator, discriminator = networks(arch)
    with pytest.raises(ValueError, match="labels must be in 0-9"):
        generator(torch.randn(2, 8), torch.tensor([0, bad]))
    with pytest.raises(ValueError, match="labels must be in 0-9"):
        discriminator(torch.zeros(2, 1, 28, 28), torch.tensor([bad, 1]))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_changing_only_the_label_changes_the_output(arch):
    generator, discriminator = networks(arch)
    z = torch.randn(1, 8).repeat(10, 1)                    # one latent, ten labels
    images = generator(z, torch.arange(10))
    for other in range(1, 10):
        assert not torch.allclose(images[0], images[other])
    # and nothing else: alone in a batch, the same (z, 3) gives the same image (up to rounding)
    assert torch.allclose(generator(z[:1], torch.tensor([3])), images[3:4], atol=1e-5)
    scores = discriminator(images[:1].repeat(10, 1, 1, 1), torch.arange(10))
    assert len(set(scores.tolist())) == 10                 # D's verdict depends on the label too


def test_train_resume_and_generate(tiny_data, tiny_classifier, tmp_path):
    out = tmp_path / "run"
    common_flags = ["--data-dir", str(tiny_data), "--batch-size", "8", "--sample-every", "10",
                    "--classifier", str(tiny_classifier), "--eval-samples", "20"]
    cgan.main(common_flags + ["--iters", "20", "--out", str(out)])
    for name in ("checkpoint.pt", "progress.gif", "curves.png", "quality.png", "classes.png",
                 "samples_0000020.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["conditional_accuracy"] <= 1 and metrics["n"] == 20
    cgan.main(common_flags + ["--iters", "30", "--resume", str(out / "checkpoint.pt")])
    assert common.load_checkpoint(out / "checkpoint.pt", "cgan")["iteration"] == 30

    cgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--generate", "25",
               "--out", str(tmp_path / "s.npz")])
    samples = np.load(tmp_path / "s.npz")
    assert samples["images"].shape == (25, 1, 28, 28)
    assert samples["labels"].tolist() == [i % 10 for i in range(25)]   # spread evenly
    cgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--digit", "3", "--generate", "5",
               "--out", str(tmp_path / "threes.npz")])
    assert np.load(tmp_path / "threes.npz")["labels"].tolist() == [3] * 5
    cgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--digit", "7"])
    assert (out / "class_7.png").is_file()


def test_fashion_class_names(tiny_data, tmp_path, capsys):
    out = tmp_path / "fashion"
    cgan.main(["--data-dir", str(tiny_data), "--dataset", "fashion", "--arch", "conv", "--iters",
               "3", "--batch-size", "4", "--out", str(out)])
    assert "MNIST only" in capsys.readouterr().out
    cgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--class-name", "ankle BOOT",
               "--out", str(tmp_path / "boots.png")])
    assert (tmp_path / "boots.png").is_file()
    with pytest.raises(SystemExit):
        cgan.main(["--checkpoint", str(out / "checkpoint.pt"), "--class-name", "Hat"])
    assert "Ankle boot" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--digit", "11"], ["--digit", "-1"], ["--digit", "3"],
                                   ["--checkpoint", "c.pt"], ["--arch", "resnet"]])
def test_bad_flags(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cgan.main(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cgan.py: error: "), error


def test_checkpoint_of_another_model(tmp_path, capsys):
    common.save_checkpoint({"model": "gan", "config": {}}, tmp_path / "g.pt")
    with pytest.raises(SystemExit):
        cgan.main(["--checkpoint", str(tmp_path / "g.pt"), "--digit", "2"])
    assert "checkpoint of gan.py, not cgan.py" in capsys.readouterr().err


def test_the_mlp_discriminator_has_gan_py_s_dropout_by_default():
    # in train mode two passes of one batch differ (a fresh dropout mask each), in eval mode not
    args = cgan.parse_args([])
    assert args.d_dropout == gan.parse_args([]).d_dropout > 0
    _, discriminator = cgan.build_networks({"arch": "mlp", "z_dim": 8, "d_dropout": args.d_dropout,
                                            "image_shape": [1, 28, 28]})
    images, labels = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    assert not torch.equal(discriminator.train()(images, labels), discriminator(images, labels))
    assert torch.equal(discriminator.eval()(images, labels), discriminator(images, labels))
    with pytest.raises(SystemExit):
        cgan.parse_args(["--arch", "conv", "--d-dropout", "0.3"])


def test_a_checkpoint_without_the_discriminator_s_dropout_is_one_line(tmp_path, capsys):
    path = tmp_path / "old.pt"
    common.save_checkpoint({"model": "cgan", "config": {"arch": "mlp", "z_dim": 8,
                                                        "image_shape": [1, 28, 28]}}, path)
    with pytest.raises(SystemExit):
        cgan.main(["--checkpoint", str(path), "--digit", "3", "--out", str(tmp_path / "x.png")])
    assert "older version" in capsys.readouterr().err
