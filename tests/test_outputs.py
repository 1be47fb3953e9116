"""Outputs are whole or absent, checkpoints round-trip, and a wrong checkpoint is a clear error."""
import numpy as np
import pytest
import torch

import common


def test_checkpoint_round_trip(tmp_path):
    network = torch.nn.Linear(3, 2)
    state = {"model": "gan", "config": {"z_dim": 3}, "weights": network.state_dict(),
             "history": {"loss": [0.5, 0.25]}, "rng": torch.get_rng_state()}
    common.save_checkpoint(state, tmp_path / "checkpoint.pt")
    loaded = common.load_checkpoint(tmp_path / "checkpoint.pt", "gan")   # weights_only=True
    assert loaded["config"] == {"z_dim": 3} and loaded["history"] == {"loss": [0.5, 0.25]}
    restored = torch.nn.Linear(3, 2)
    common.load_weights(restored, loaded["weights"], "checkpoint.pt")
    assert torch.equal(restored.weight, network.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_checkpoint_of_another_model_or_shape(tmp_path):
    common.save_checkpoint({"model": "cgan", "config": {}}, tmp_path / "c.pt")
    with pytest.raises(common.UserError, match="checkpoint of cgan.py, not gan.py"):
        common.load_checkpoint(tmp_path / "c.pt", "gan")
    with pytest.raises(common.UserError, match="do not fit this network"):
        common.load_weights(torch.nn.Linear(3, 2), torch.nn.Linear(4, 2).state_dict(), "c.pt")


def test_garbage_or_missing_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(common.UserError, match="not a readable checkpoint"):
        common.load_checkpoint(tmp_path / "junk.pt", "gan")
    with pytest.raises(common.UserError, match="does not exist"):
        common.load_checkpoint(tmp_path / "nope.pt", "gan")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(common.UserError, match="not a checkpoint of this project"):
        common.load_checkpoint(tmp_path / "foreign.pt", "gan")


def test_interrupted_write_leaves_nothing(tmp_path):
    (tmp_path / "metrics.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with common.atomic_path(tmp_path / "metrics.json") as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert (tmp_path / "metrics.json").read_text() == "old"


def test_image_grid_layout():
    images = torch.full((5, 1, 4, 3), -1.0)
    images[4] = 1.0                                       # the last image is white
    grid = common.image_grid(images, ncol=2)              # 3 rows, 2 columns, 2-pixel borders
    assert grid.shape == (2 + 3 * 6, 2 + 2 * 5, 3) and grid.dtype == np.uint8
    assert (grid[14:18, 2:5] == 255).all() and grid[2:6, 2:5].max() == 0


def test_save_samples(tmp_path):
    images = torch.rand(7, 3, 8, 8) * 2 - 1
    common.save_samples(images, tmp_path / "s.npz", labels=torch.arange(7))
    data = np.load(tmp_path / "s.npz")
    assert data["images"].dtype == np.float32 and data["images"].shape == (7, 3, 8, 8)
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    np.testing.assert_allclose(data["images"], (images.numpy() + 1) / 2, atol=1e-6)
    assert data["labels"].dtype == np.int64
    assert (tmp_path / "s.png").is_file()
    with pytest.raises(common.UserError, match="must end in .npz"):
        common.save_samples(images, tmp_path / "s.png")


def test_gif_round_trip(tmp_path):
    frames = [np.full((6, 6, 3), value, np.uint8) for value in (0, 128, 255)]
    common.save_gif(frames, tmp_path / "p.gif")
    loaded = common.load_gif_frames(tmp_path / "p.gif")
    assert len(loaded) == 3 and loaded[2].shape == (6, 6, 3) and loaded[2].min() == 255


def test_ema_update():
    model, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    common.ema_update(ema, model, 0.9)
    # theta_ema <- 0.9 theta_ema + 0.1 theta
    torch.testing.assert_close(ema.weight, 0.9 * before + 0.1 * model.weight)
    common.ema_update(ema, model, 0.0)
    assert torch.equal(ema.weight, model.weight)


def test_device_errors():
    assert common.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(common.UserError):
        common.pick_device("tpu")


def test_progress_time_left_counts_the_given_clock(capsys):
    """With a time limit, "time left" is what the clock (training seconds) has not yet spent,
    not wall-clock time: evaluations and sampling between steps do not use up the budget."""
    training_seconds = 50.0
    progress = common.Progress(10**9, every=1, time_limit=60, clock=lambda: training_seconds)
    progress.update(1, loss=0.5)
    assert capsys.readouterr().out.rstrip().endswith("0m10s left")
    training_seconds = 75.0                                     # over the limit: nothing left
    progress.update(2, loss=0.5)
    assert capsys.readouterr().out.rstrip().endswith("0m00s left")


def test_the_gpu_random_stream_is_saved_and_restored_on_its_device(monkeypatch):
    saved = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["cuda state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", saved.append)
    state = common.gpu_random_state("cuda")
    assert state == {"gpu_rng": ["cuda state"]}
    common.set_gpu_random_state(state, "cuda")
    assert saved == [["cuda state"]]
    assert common.gpu_random_state("cpu") == {}            # a CPU run has only the CPU stream
    common.set_gpu_random_state({}, "cuda")                # a CPU checkpoint resumed on a GPU
    assert saved == [["cuda state"]]


def test_a_resumed_run_continues_the_random_stream(tiny_data, tmp_path):
    # 6 iterations straight, or 3 then a resume to 6 (both sample, measure and save at 3): the
    # same weights
    import wgan
    flags = ["--data-dir", str(tiny_data), "--batch-size", "4", "--sample-every", "3",
             "--checkpoint-every", "3", "--eval-every", "3", "--eval-samples", "8",
             "--loss", "gan", "--minutes", "0"]
    wgan.main(flags + ["--iters", "6", "--out", str(tmp_path / "straight")])
    wgan.main(flags + ["--iters", "3", "--out", str(tmp_path / "resumed")])
    wgan.main(flags + ["--iters", "6", "--resume", str(tmp_path / "resumed" / "checkpoint.pt")])
    straight, resumed = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
                         for name in ("straight", "resumed"))
    for key in ("generator", "critic", "ema_generator"):
        for name, tensor in straight[key].items():
            assert torch.equal(tensor, resumed[key][name]), (key, name)


@pytest.mark.parametrize("damage", ["empty", "truncated", "junk", "another script's", "folder"])
def test_a_damaged_checkpoint_is_one_line_and_exit_2(damage, tmp_path, capsys):
    import wgan
    path = tmp_path / "checkpoint.pt"
    good = tmp_path / "good.pt"
    common.save_checkpoint({"model": "gan" if damage == "another script's" else "wgan",
                            "config": {"z_dim": 50}, "weights": torch.randn(1000)}, good)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    elif damage == "junk":
        path.write_bytes(b"\x00\x01 not a checkpoint")
    elif damage == "folder":
        path.mkdir()
    else:
        path = good
    with pytest.raises(SystemExit) as exit_info:
        wgan.main(["--checkpoint", str(path), "--generate", "4", "--out", str(tmp_path / "s.npz")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and str(path) in error[0], error
