"""The loaders read the original formats exactly and refuse broken files with a clear error."""
import gzip
import hashlib
import io
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import common
from conftest import NO_REAL_MNIST, REAL_MNIST, cifar_batch_bytes, idx_bytes, write_cifar, write_idx_dataset


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dataset_round_trip(tmp_path, no_network, gz):
    arrays = write_idx_dataset(tmp_path / "mnist", count=20, gz=gz)
    for train, prefix in ((True, "train"), (False, "t10k")):
        images, labels = common.load_dataset("mnist", train=train, data_dir=tmp_path)
        assert images.shape == (20, 1, 28, 28) and images.dtype == np.uint8
        np.testing.assert_array_equal(images[:, 0], arrays[prefix][0])
        np.testing.assert_array_equal(labels, arrays[prefix][1])
        assert labels.dtype == np.int64


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2**31 - 1))
def test_read_idx_any_shape(tmp_path_factory, shape, seed):
    array = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("idx") / "file.gz"
    path.write_bytes(gzip.compress(idx_bytes(array, 0x800 + len(shape))))
    np.testing.assert_array_equal(common.read_idx(path, 0x800 + len(shape)), array)


def test_wrong_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), 0x801 + 0x1000))
    with pytest.raises(common.UserError, match="train-images-idx3-ubyte.*magic"):
        common.read_idx(path, common.IDX_MAGIC_IMAGES)


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8), 0x803)[:-100])
    with pytest.raises(common.UserError, match="truncated or corrupt"):
        common.read_idx(path, common.IDX_MAGIC_IMAGES)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8), 0x803))[:-30])
    with pytest.raises(common.UserError, match="train-images-idx3-ubyte.gz: cannot be read"):
        common.read_idx(path, common.IDX_MAGIC_IMAGES)


def test_image_and_label_counts_must_agree(tmp_path, no_network):
    write_idx_dataset(tmp_path / "mnist", count=10)
    labels = idx_bytes(np.zeros(7, np.uint8), 0x801)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(common.UserError, match="10 images but .* 7 labels"):
        common.load_dataset("mnist", data_dir=tmp_path)


def test_missing_files_offline_say_where_to_put_them(tmp_path, no_network):
    with pytest.raises(common.UserError) as error:
        common.load_dataset("fashion", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "fashion") in message and "train-images-idx3-ubyte.gz" in message
    assert not list((tmp_path / "fashion").glob("*.partial"))


def test_data_dir_from_environment(tmp_path, no_network, monkeypatch):
    write_idx_dataset(tmp_path / "mnist", count=5)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert common.load_dataset("mnist")[0].shape == (5, 1, 28, 28)
    assert common.data_root("elsewhere") == common.Path("elsewhere")  # --data-dir wins


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_the_published_md5(tmp_path, monkeypatch):
    payload = gzip.compress(idx_bytes(np.zeros(4, np.uint8), 0x801))
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: FakeResponse(payload))
    files = dict(common.DATASETS["mnist"]["files"])
    monkeypatch.setitem(common.DATASETS["mnist"], "files", files)
    files["train-labels-idx1-ubyte"] = hashlib.md5(payload).hexdigest()
    path = common._download("mnist", "train-labels-idx1-ubyte.gz", tmp_path)
    assert path.read_bytes() == payload
    files["train-labels-idx1-ubyte"] = "0" * 32                # a mirror serving other bytes
    path.unlink()
    with pytest.raises(common.UserError, match="does not match its published MD5"):
        common._download("mnist", "train-labels-idx1-ubyte.gz", tmp_path)
    assert os.listdir(tmp_path) == []                        # nothing half-written is left


@pytest.mark.parametrize("extracted", [False, True])
def test_cifar10_round_trip(tmp_path, no_network, extracted):
    batches = write_cifar(tmp_path / "cifar10", per_batch=4, extracted=extracted)
    images, labels = common.load_dataset("cifar10", train=True, data_dir=tmp_path)
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    first, first_labels = batches["data_batch_1"]
    # Row layout: 1024 red values, then 1024 green, then 1024 blue, each image row-major.
    np.testing.assert_array_equal(images[0, 1, 2, 3], first[0, 1024 + 2 * 32 + 3])
    np.testing.assert_array_equal(labels[:4], first_labels)
    test_images, _ = common.load_dataset("cifar10", train=False, data_dir=tmp_path)
    np.testing.assert_array_equal(test_images.reshape(4, -1), batches["test_batch"][0])


def test_cifar_batch_with_wrong_keys_or_shape_is_a_clear_error(tmp_path):
    with pytest.raises(common.UserError, match="needs the keys"):
        common._read_cifar_batch(pickle.dumps({b"pixels": 1}), "data_batch_1")
    bad = cifar_batch_bytes(np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(common.UserError, match="expected N x 3072"):
        common._read_cifar_batch(bad, "data_batch_1")


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    with pytest.raises(common.UserError, match="not a CIFAR-10 python batch"):
        common._read_cifar_batch(pickle.dumps(Payload()), "data_batch_1")
    assert not (tmp_path / "pwned").exists()


def test_truncated_cifar_archive_is_a_clear_error(tmp_path, no_network):
    write_cifar(tmp_path / "cifar10")
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(common.UserError, match="cifar-10-python.tar.gz"):
        common.load_dataset("cifar10", data_dir=tmp_path)


def test_unknown_dataset():
    with pytest.raises(common.UserError, match="unknown dataset 'svhn'"):
        common.load_dataset("svhn")


def test_training_tensor_and_batches():
    images = np.array([[[[0, 255]]], [[[128, 64]]]], dtype=np.uint8)
    tensor = common.to_training_tensor(images, "cpu")
    assert tensor.dtype == torch.float32
    assert tensor.min() == -1 and tensor.max() == 1
    batch, labels = common.sample_batch(tensor, 5, torch.tensor([3, 7]))
    assert batch.shape == (5, 1, 1, 2)
    for image, label in zip(batch, labels):                  # each image keeps its own label
        assert torch.equal(image, tensor[0 if label == 3 else 1])


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=NO_REAL_MNIST)
def test_real_mnist():
    train_images, train_labels = common.load_dataset("mnist", True, REAL_MNIST.parent)
    test_images, test_labels = common.load_dataset("mnist", False, REAL_MNIST.parent)
    assert train_images.shape == (60000, 1, 28, 28) and test_images.shape == (10000, 1, 28, 28)
    assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                  6265, 5851, 5949]
    assert abs(train_images.mean() - 33.318) < 1e-3
