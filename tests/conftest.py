"""Writers for the original dataset formats, so loaders and scripts run on tiny files made here."""
import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

# With pytest -n (pytest-xdist) every core runs its own test process: one torch thread each, so
# that the processes do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Real MNIST, for the few tests that need it: $DATA_DIR/mnist, else ./data/mnist in the checkout;
# they skip when it is absent.
REAL_MNIST = Path(os.environ.get("DATA_DIR")
                  or Path(__file__).resolve().parents[1] / "data") / "mnist"
NO_REAL_MNIST = "no real MNIST in $DATA_DIR/mnist or ./data/mnist"


def idx_bytes(array, magic):
    """An IDX file: big-endian int32 magic, one int32 per dimension, then the uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_dataset(folder, count=64, seed=0, gz=True):
    """train and t10k IDX files of `count` random 28x28 images with labels cycling 0-9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        arrays[prefix] = (images, labels)
        for kind, array, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array, magic)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return arrays


def cifar_batch_bytes(data, labels):
    return pickle.dumps({b"batch_label": b"test", b"labels": list(map(int, labels)),
                         b"data": data, b"filenames": [b"x.png"] * len(labels)})


def write_cifar(folder, per_batch=8, seed=0, extracted=False):
    """cifar-10-python.tar.gz (or its extracted folder) with 5 train batches and a test batch."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        batches[name] = (data, labels)
    if extracted:
        (folder / "cifar-10-batches-py").mkdir()
        for name, (data, labels) in batches.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(cifar_batch_bytes(data, labels))
    else:
        with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, (data, labels) in batches.items():
                raw = cifar_batch_bytes(data, labels)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return batches


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails as it would offline."""
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.fixture
def tiny_data(tmp_path, no_network):
    """A data folder with tiny MNIST, Fashion-MNIST and CIFAR-10 in their original formats."""
    root = tmp_path / "data"
    write_idx_dataset(root / "mnist", seed=1)
    write_idx_dataset(root / "fashion", seed=2, gz=False)
    write_cifar(root / "cifar10")
    return root


@pytest.fixture
def tiny_classifier(tmp_path):
    """A saved (untrained) classifier, so that tests of a script can pass --classifier and get
    quality numbers quickly, whatever the tiny data."""
    import torch
    import common
    torch.manual_seed(0)
    path = tmp_path / "classifier.pt"
    common.save_checkpoint({"model": "adversarial", "config": {},
                            "classifier": common.Classifier().state_dict()}, path)
    return path


@pytest.fixture(autouse=True)
def small_standing_statistics(monkeypatch):
    """Training runs in tests give an averaged generator's batch norms the statistics of 2
    batches of 64 z instead of 10 of 500: the same code on less work (the unit test of
    common.standing_statistics passes its own sizes)."""
    import functools

    import common
    monkeypatch.setattr(common, "standing_statistics",
                        functools.partial(common.standing_statistics, batches=2, batch_size=64))


def one_line_exit(main, argv, capsys):
    """Run a script's main(argv), expect exit status 2 and exactly one line on stderr; return it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    return error[0]
