"""The shared toolbox: data, run plumbing, figures, checkpoints, the measuring classifier.

A student may skip this file: each script (gan.py, cgan.py, wgan.py, diffusion.py,
latent_diffusion.py, adversarial.py, toy2d.py) holds its own algorithm and takes from here only
what every script does the same way. It imports no script.

    errors       UserError, exit_on_user_error (one line, no traceback)
    data         load_dataset, to_training_tensor, dataset_tensors, sample_batch, file_digest
    run          argument_parser, bounded (a flag's type with its bounds), add_run_arguments,
                 add_gan_arguments, add_shared_arguments, check_run_arguments, check_d_dropout,
                 pick_device, seed_everything, adam_pair, ema_update, standing_statistics,
                 decay_learning_rate, Progress,
                 TrainingRun (what a training loop does besides learning), draw_samples,
                 class_labels, save_samples, save_class_samples
    figures      atomic_path, make_run_dir, image_grid, save_grid, save_labeled_grid, save_gif,
                 save_curves, pyplot, save_figure, write_json (every file whole or not at all),
                 provenance (command, date, commit and machine of a result)
    checkpoints  save_checkpoint, load_checkpoint, load_weights
    measurement  Classifier, load_classifier, sample_quality (FID, class entropy, conditional
                 accuracy), record_quality, parzen_score

Datasets are read from their original files by our own code (no torchvision):
    MNIST, Fashion-MNIST   IDX files, gzipped or raw, in <data-dir>/mnist or <data-dir>/fashion
    CIFAR-10               the python pickle batches, as cifar-10-python.tar.gz or its extracted
                           folder cifar-10-batches-py/, in <data-dir>/cifar10
The data folder is --data-dir, else $DATA_DIR, else ./data. Missing files are downloaded from the
original hosts and checked against their published MD5 sums; with no network the error says which
files to put where.
"""
import argparse
import contextlib
import functools
import gzip
import hashlib
import io
import json
import math
import operator
import os
import pickle
import platform
import random
import shlex
import subprocess
import sys
import tarfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


class UserError(Exception):
    """An error shown as one line with no traceback: bad input, or a run that cannot go on."""


def exit_on_user_error(main):
    """Decorate a script's main(): a UserError becomes 'error: ...' on stderr and exit status 2."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2)
    return wrapped


# ---------------------------------------------------------------------------------------------
# Data: the original files, checked as they are read

DATASETS = {
    "mnist": {
        "shape": (1, 28, 28),
        "classes": [str(digit) for digit in range(10)],
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        # MD5 of the original .gz downloads, as published with the dataset.
        "files": {
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion": {
        "shape": (1, 28, 28),
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        "mirrors": ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                    "data/fashion/"],
        "files": {
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
    "cifar10": {
        "shape": (3, 32, 32),
        "classes": ["airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck"],
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    },
}
IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS = 0x00000803, 0x00000801  # unsigned bytes, 3 or 1 dimensions


def data_root(data_dir=None):
    """--data-dir, else $DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("DATA_DIR") or "data")


def file_digest(path, algorithm):
    """The hex digest of a file: "md5" for the datasets' published sums, "sha256" for ours."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download(dataset, filename, folder):
    """Fetch one original file into folder, checked against its published MD5; atomic."""
    info = DATASETS[dataset]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    partial = folder / (filename + ".partial")
    for mirror in info["mirrors"]:
        try:
            print(f"downloading {mirror}{filename} ...", file=sys.stderr)
            with urllib.request.urlopen(mirror + filename, timeout=30) as response, \
                    open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError:
            partial.unlink(missing_ok=True)
            continue
        expected = info["files"][filename.removesuffix(".gz")]
        if file_digest(partial, "md5") != expected:
            partial.unlink()
            raise UserError(f"{mirror}{filename} does not match its published MD5 {expected}")
        os.replace(partial, target)
        return target
    wanted = ", ".join(name + ("" if dataset == "cifar10" else ".gz") for name in info["files"])
    raise UserError(f"{dataset} is not in {folder} and could not be downloaded: "
                    f"put {wanted} there (or pass --data-dir / set DATA_DIR)")


def _find_or_download(dataset, name, folder):
    """The raw file if present, else its .gz, else download the .gz."""
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return _download(dataset, name + ".gz", folder)


def read_idx(path, expected_magic):
    """Read one IDX file (raw or .gz) into a uint8 array, checking magic, dimensions and length.

    IDX layout: a big-endian int32 magic (0x0803 images, 0x0801 labels: type 08 = unsigned byte,
    then the number of dimensions), one big-endian int32 per dimension, then the bytes.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:  # BadGzipFile is an OSError; truncated gzip is EOFError
        raise UserError(f"{path}: cannot be read ({error}); delete it and get the original again")
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != expected_magic:
        found = raw[:4].hex() if len(raw) >= 4 else "too short"
        raise UserError(f"{path}: not an IDX file of the expected kind "
                        f"(magic {found}, expected {expected_magic:08x})")
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise UserError(f"{path}: holds {len(raw) - header} data bytes, its header promises "
                        f"{int(np.prod(shape))} for shape {shape} (truncated or corrupt)")
    # a writable copy: torch.from_numpy warns on read-only buffers
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _load_idx_dataset(dataset, folder, train):
    """(images N x 1 x 28 x 28, labels N) of one split of MNIST or Fashion-MNIST, checked."""
    prefix = "train" if train else "t10k"
    images_path = _find_or_download(dataset, f"{prefix}-images-idx3-ubyte", folder)
    labels_path = _find_or_download(dataset, f"{prefix}-labels-idx1-ubyte", folder)
    images = read_idx(images_path, IDX_MAGIC_IMAGES)
    labels = read_idx(labels_path, IDX_MAGIC_LABELS)
    if images.shape[1:] != (28, 28):
        raise UserError(f"{images_path}: images are {images.shape[1:]}, expected 28 x 28")
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} "
                        f"has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise UserError(f"{labels_path}: label {labels.max()} outside 0-9")
    return images[:, None], labels.astype(np.int64)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow numpy arrays and nothing else, so a file cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        """The only classes a CIFAR batch may build: numpy arrays and their dtypes."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden object {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(raw, name):
    """(images N x 3 x 32 x 32, labels N) of one CIFAR-10 batch file's bytes, checked."""
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # any unpickling failure means a corrupt or foreign file
        raise UserError(f"{name}: not a CIFAR-10 python batch ({error})")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise UserError(f"{name}: a CIFAR-10 batch needs the keys b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or len(data) != len(labels):
        raise UserError(f"{name}: data of shape {data.shape} ({data.dtype}) with {len(labels)} "
                        f"labels, expected N x 3072 uint8 with N labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"{name}: labels outside 0-9")
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major.
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar10(folder, train):
    """The five training batches, or the test batch, from the archive or its extracted folder."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    extracted = folder / "cifar-10-batches-py"
    if extracted.is_dir():
        raws = {}
        for name in names:
            if not (extracted / name).is_file():
                raise UserError(f"{extracted / name} is missing")
            raws[name] = (extracted / name).read_bytes()
    else:
        archive = folder / "cifar-10-python.tar.gz"
        if not archive.is_file():
            archive = _download("cifar10", "cifar-10-python.tar.gz", folder)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                raws = {name: tar.extractfile(f"cifar-10-batches-py/{name}").read()
                        for name in names}
        except (tarfile.TarError, KeyError, OSError, EOFError) as error:
            raise UserError(f"{archive}: not a complete cifar-10-python.tar.gz ({error})")
    batches = [_read_cifar_batch(raws[name], name) for name in names]
    return (np.concatenate([images for images, _ in batches]),
            np.concatenate([labels for _, labels in batches]))


def load_dataset(name, train=True, data_dir=None):
    """(images uint8 N x C x H x W, labels int64 N) of one split of mnist, fashion or cifar10."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    folder = data_root(data_dir) / name
    if name == "cifar10":
        return _load_cifar10(folder, train)
    return _load_idx_dataset(name, folder, train)


def to_training_tensor(images, device):
    """The whole set as one float tensor on the device, scaled from bytes to [-1, 1].

    Batches are then drawn by random index (sample_batch): no per-sample Python work, which is
    what makes CPU training fast compared with a DataLoader that transforms one image at a time.
    """
    return torch.from_numpy(images).to(device).float().div_(127.5).sub_(1.0)


def dataset_tensors(dataset, device, data_dir=None, train=True):
    """A dataset's training (or test) split as tensors on the device: the images (N, C, H, W) in
    [-1, 1] and their labels (N,)."""
    images, labels = load_dataset(dataset, train=train, data_dir=data_dir)
    return to_training_tensor(images, device), torch.from_numpy(labels).to(device)


def sample_batch(images, batch_size, labels=None):
    """A random batch (with replacement) of the in-memory set, and its labels if given."""
    index = torch.randint(len(images), (batch_size,), device=images.device)
    return images[index] if labels is None else (images[index], labels[index])


# ---------------------------------------------------------------------------------------------
# Run plumbing: the command line, the device, and everything a training loop does besides learning

def argument_parser(docstring, script_file):
    """argparse with the docstring's first line as description and the defaults in --help;
    errors are one line ('gan.py: error: ...', exit status 2), like every other bad input."""
    parser = argparse.ArgumentParser(prog=Path(script_file).name,
                                     description=docstring.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message}\n")
    return parser


def bounded(kind, at_least=None, above=None, at_most=None, below=None):
    """An argparse type: a number of `kind` (int or float), finite and within the bounds given;
    anything else is a one-line usage error naming the flag (exit status 2)."""
    limits = [(bound, sign, test) for bound, sign, test in (
        (at_least, ">=", operator.ge), (above, ">", operator.gt), (at_most, "<=", operator.le),
        (below, "<", operator.lt)) if bound is not None]

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or not all(test(value, bound) for bound, _, test in limits):
            raise argparse.ArgumentTypeError(
                f"{text} is not " + " and ".join(f"{sign} {bound:g}" for bound, sign, _ in limits))
        return value
    parse.__name__ = kind.__name__     # argparse names the type in its messages
    parse.limits = {sign: bound for bound, sign, _ in limits}   # for the tests
    return parse


def add_run_arguments(parser, script, sample_every, eval_every, checkpoint_every, minutes=0.0,
                      gif_samples=64, eval_samples=10000):
    """The flags every generative script shares: data, device, seed, outputs, time budget,
    evaluation, checkpoints, resume and the --generate mode."""
    positive = bounded(int, at_least=1)
    add_shared_arguments(parser, script, generates=True)
    parser.add_argument("--ema", type=bounded(float, at_least=0, below=1), default=0.999,
                        help="EMA decay of the sampled network's weights (0: off)")
    parser.add_argument("--minutes", type=bounded(float, at_least=0), default=minutes,
                        help="stop once training has taken this long, counted across --resume "
                             "(0: no limit; sampling and evaluation are not counted)")
    parser.add_argument("--sample-every", type=positive, default=sample_every,
                        help="grid + GIF frame")
    parser.add_argument("--gif-samples", type=positive, default=gif_samples,
                        help="fixed samples in each grid and GIF frame")
    parser.add_argument("--eval-every", type=positive, default=eval_every,
                        help="FID and class entropy during training (MNIST only)")
    parser.add_argument("--eval-samples", type=positive, default=eval_samples,
                        help="samples per evaluation")
    parser.add_argument("--parzen", action="store_true",
                        help="also the Parzen log-likelihood at the end (about a minute)")
    parser.add_argument("--classifier", help="another measuring classifier, for example one made "
                                             "by adversarial.py --retrain (default: the "
                                             "committed one)")
    parser.add_argument("--checkpoint-every", type=positive, default=checkpoint_every)
    parser.add_argument("--resume", metavar="CKPT", help="continue the run of this checkpoint")
    parser.add_argument("--checkpoint", metavar="CKPT", help="generate from this checkpoint")
    parser.add_argument("--generate", type=positive, metavar="N",
                        help="write N samples, no training")


def add_gan_arguments(parser, iters):
    """The GAN's own flags (gan.py, cgan.py): its sizes, Adam's rate and beta1, D's dropout."""
    positive = bounded(int, at_least=1)
    parser.add_argument("--z-dim", type=positive, default=100, help="latent size")
    parser.add_argument("--iters", type=positive, default=iters, help="total training iterations")
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--lr", type=bounded(float, above=0), default=2e-4,
                        help="Adam learning rate, both nets")
    parser.add_argument("--beta1", type=bounded(float, at_least=0, below=1), default=0.5,
                        help="Adam beta1 (0.5 as in DCGAN)")
    parser.add_argument("--d-dropout", type=float, default=None,
                        help="dropout rate in the MLP discriminator's hidden layers (default 0.3; "
                             "with 0, D memorizes the training images on long runs)")


def add_shared_arguments(parser, script, generates=False):
    """The flags of every script that reads data: data, seed, device, output."""
    parser.add_argument("--data-dir", help="data folder (default: $DATA_DIR, else ./data)")
    parser.add_argument("--seed", type=bounded(int, at_least=0, below=2 ** 32), default=0)
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--out", help=f"run folder (default runs/{script}/<time>)"
                        + ("; with --generate, the .npz file to write" if generates else ""))


def check_run_arguments(parser, args):
    """parser.error (one line, exit 2) for what the shared flags' types cannot check alone."""
    if args.generate is not None and not args.out:
        parser.error("--generate needs --out FILE.npz")


def check_d_dropout(parser, args):
    """--d-dropout of gan.py and cgan.py: 0.3 by default for their MLP discriminator (it keeps D
    from memorizing the training images), refused with a convolutional one (--arch)."""
    if args.d_dropout is None:
        args.d_dropout = 0.3 if args.arch == "mlp" else 0.0
    elif args.arch != "mlp" and args.d_dropout:
        parser.error("--d-dropout is for the MLP discriminator (--arch mlp)")
    elif not 0 <= args.d_dropout < 1:
        parser.error("--d-dropout must be in [0, 1)")


def pick_device(name=None):
    """cuda, then mps, then cpu, unless --device names one."""
    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if name == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps: MPS is not available on this machine")
        try:
            return torch.device(name)
        except RuntimeError:
            raise UserError(f"--device {name}: not a device (try cpu, cuda, mps)")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed):
    """Same seed, same CPU run: Python, NumPy and torch generators all start from it."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def gpu_random_state(device):
    """{"gpu_rng": ...}: the state of the GPU's random stream (CUDA or MPS) where a run draws
    from it, so that a resumed run continues it as it continues the CPU's; {} on a CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        return {"gpu_rng": torch.cuda.get_rng_state_all()}
    if kind == "mps":
        return {"gpu_rng": torch.mps.get_rng_state()}
    return {}


def set_gpu_random_state(state, device):
    """Restore what gpu_random_state() saved; nothing where the checkpoint holds none (it was
    written on a CPU)."""
    kind = torch.device(device).type
    if "gpu_rng" in state and kind == "cuda":
        torch.cuda.set_rng_state_all(state["gpu_rng"])
    elif "gpu_rng" in state and kind == "mps":
        torch.mps.set_rng_state(state["gpu_rng"])


@torch.no_grad()
def ema_update(ema_model, model, decay):
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, for the weights only. Batch-norm
    statistics are not copied: the live generator's describe the live weights, not the averaged
    ones; standing_statistics() measures the averaged weights' own."""
    for ema_param, param in zip(ema_model.parameters(), model.parameters()):
        ema_param.lerp_(param, 1.0 - decay)


@torch.no_grad()
def standing_statistics(generator, z_dim, classes=None, batches=10, batch_size=500, seed=0):
    """Give a generator's batch norms the statistics of its own weights ("standing statistics",
    Brock et al. 2019, BigGAN): the plain average of the batch means and variances over `batches`
    batches of z ~ N(0, I) (labels 0, 1, 2, ... if `classes`), then eval mode. Recomputed, not
    averaged along with the weights: averaged statistics would still be the live weights'. Its z
    comes from a random stream of its own, seeded with `seed`, so it draws nothing from the
    training's. A generator without batch norm is left as it is."""
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(generator.parameters()).device
    stream = torch.Generator().manual_seed(seed)
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None          # None: a cumulative average over the batches, not an EMA
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch_size, z_dim, generator=stream).to(device)
        if classes is None:
            generator(z)
        else:
            generator(z, torch.arange(batch_size, device=device) % classes)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    generator.eval()


def adam_pair(generator, discriminator, lr, betas=(0.5, 0.999), discriminator_lr=None):
    """The two Adam optimizers of a GAN (gan.py, cgan.py, wgan.py): betas (0.5, 0.999) as in
    DCGAN unless given; D (or the critic) at its own rate if given. fused=True: one kernel for all
    of Adam's update instead of several per tensor, faster on a CPU."""
    return (torch.optim.Adam(generator.parameters(), lr, betas, fused=True),
            torch.optim.Adam(discriminator.parameters(), discriminator_lr or lr, betas,
                             fused=True))


def decay_learning_rate(optimizers, lr, done):
    """lr (1 - done), with `done` the fraction of the run trained (TrainingRun.fraction_done): the
    learning rate falls linearly from lr at the first step towards 0 at the end of the run, so
    the weights settle instead of jittering."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * (1 - done)


def format_seconds(seconds):
    """1h02m or 3m07s."""
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 \
        else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """One line every `every` iterations: iteration, the given numbers, it/s, time left (the
    sooner of the iterations left and what remains of `time_limit` seconds, if given, as counted
    by `clock()`: the training seconds so far; wall-clock time since the start by default)."""

    def __init__(self, total, start=0, every=500, time_limit=None, clock=None):
        self.total, self.every, self.time_limit = total, every, time_limit
        self.started = self.last_time = time.perf_counter()
        self.clock = clock or (lambda: time.perf_counter() - self.started)
        self.last_iteration = start

    def update(self, iteration, last=False, **numbers):
        """Print the line every `every` iterations, at the end, and whenever last=True."""
        if iteration % self.every and iteration != self.total and not last:
            return
        now = time.perf_counter()
        speed = (iteration - self.last_iteration) / max(now - self.last_time, 1e-9)
        self.last_iteration, self.last_time = iteration, now
        shown = " ".join(f"{key} {value:.3f}" for key, value in numbers.items())
        seconds_left = (self.total - iteration) / max(speed, 1e-9)
        if self.time_limit:
            seconds_left = min(seconds_left, max(self.time_limit - self.clock(), 0))
        left = format_seconds(seconds_left)
        print(f"it {iteration:>7d}/{self.total} | {shown} | {speed:7.1f} it/s | {left} left",
              flush=True)


class TrainingRun:
    """What a training loop does besides learning, one small method a job, each called from the
    script's own loop where it happens (gan.py's train() shows them all). Only the seconds handed
    to log() count against --minutes, a budget that a resumed run continues. A logged number or a
    weight that is not finite stops the run with one line, before anything is drawn or saved."""

    def __init__(self, args, script, config, log_every=100):
        self.args, self.script, self.log_every = args, script, log_every
        self.device = pick_device(args.device)
        self.provenance = provenance(self.device)   # the code as it was when the run started
        self.state = None
        if args.resume:   # the checkpoint's own config wins over the flags
            self.state = load_checkpoint(args.resume, script, config_keys=config)
            config = self.state["config"]
            args.out = args.out or str(Path(args.resume).parent)
        self.config = config
        # The classifier is loaded before seeding: building a network draws random numbers.
        self.classifier = (load_classifier(args.classifier, self.device)
                           if config["dataset"] == "mnist" else None)
        seed_everything(args.seed)
        self.start = self.state["iteration"] if self.state else 0
        self.train_seconds = self.state["train_seconds"] if self.state else 0.0
        self.history = self.state["history"] if self.state else {"iteration": []}
        if self.start >= args.iters:
            raise UserError(f"the checkpoint is at iteration {self.start}; "
                            f"ask for more with --iters")
        if self.out_of_time():
            raise UserError(f"the checkpoint has trained for {self.train_seconds / 60:.2f} "
                            f"minutes already; ask for more with --minutes")
        self.iteration, self.sums, self.count, self.quality = self.start, None, 0, None
        self.resumed = False
        # (path, iteration) of the last checkpoint written, named if the run diverges
        self.saved = (Path(args.resume), self.start) if self.state else None
        self.best_fid = min(self.history.get("eval_fid") or [float("inf")])   # of best.pt

    def track(self, networks, optimizers, fixed_input):
        """Name what a checkpoint holds (dicts: key -> network or optimizer) and the fixed input
        of the snapshots; make the run folder."""
        self.networks, self.optimizers, self.fixed_input = networks, optimizers, fixed_input
        self.out = make_run_dir(self.script, self.args.out)
        self.gif_frames = load_gif_frames(self.out / "progress.gif") if self.state else []
        self.progress = Progress(self.args.iters, self.start, every=5 * self.log_every,
                                 time_limit=self.args.minutes * 60,
                                 clock=lambda: self.train_seconds)
        print(f"{self.script}: {self.config} on {self.device}, writing to {self.out}")
        self.wall_started = time.perf_counter()

    def load_resumed(self):
        """On --resume: the checkpoint's weights, optimizer states, random state and fixed input,
        loaded into what track() named, in place. Without --resume, nothing."""
        self.resumed = True   # log() checks that the script made this call
        if not self.state:
            return
        for key, network in self.networks.items():
            load_weights(network, self.state[key], self.args.resume)
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(self.state[key])
        torch.set_rng_state(self.state["rng"])
        set_gpu_random_state(self.state, self.device)
        if self.state["fixed_input"].shape != self.fixed_input.shape:
            raise UserError(f"{self.args.resume} draws {len(self.state['fixed_input'])} fixed "
                            f"samples per grid: resume with that --gif-samples")
        self.fixed_input.copy_(self.state["fixed_input"])

    def out_of_time(self):
        """Has training taken --minutes (across --resume)?"""
        return bool(self.args.minutes) and self.train_seconds >= self.args.minutes * 60

    def fraction_done(self, iteration):
        """The fraction of the run trained before step `iteration`: (i - 1) / --iters, or the
        fraction of --minutes spent if larger, so that a schedule on it ends with the run on a
        fast machine or a slow one."""
        by_steps = (iteration - 1) / self.args.iters
        if not self.args.minutes:
            return by_steps
        return max(by_steps, min(self.train_seconds / (self.args.minutes * 60), 1.0))

    def finished(self, iteration):
        """The last iteration: --iters reached, or --minutes spent."""
        return iteration >= self.args.iters or self.out_of_time()

    def due(self, iteration, every):
        """Every `every` iterations, and at the last one."""
        return iteration % every == 0 or self.finished(iteration)

    def log(self, iteration, seconds, **values):
        """Count the step's `seconds` of training and keep the running means of its numbers,
        written to the history every `log_every` iterations (and at the last)."""
        assert self.resumed, "a training loop calls run.load_resumed() after run.track()"
        self.iteration = iteration
        self.train_seconds += seconds
        with torch.no_grad():
            stacked = torch.stack([torch.as_tensor(value).detach().float()
                                   for value in values.values()])
        if not torch.isfinite(stacked).all():      # one number read back per step
            key, value = next((k, v) for k, v in zip(values, stacked.tolist())
                              if not math.isfinite(v))
            self._diverged(f"{key} is {value}")
        self.keys = list(values)
        self.sums = stacked if self.sums is None else self.sums + stacked
        self.count += 1
        if iteration % self.log_every == 0 or self.finished(iteration):
            means = dict(zip(self.keys, (self.sums / self.count).tolist()))
            self.sums, self.count = None, 0
            self.history["iteration"].append(iteration)
            self.history.setdefault("train_minutes", []).append(round(self.train_seconds / 60, 3))
            for key, value in means.items():
                self.history.setdefault(key, []).append(value)
            self.progress.update(iteration, last=self.finished(iteration), **means)

    def save_snapshot(self, images, panels, ncol=None):
        """A grid PNG of the fixed samples, one more GIF frame, and the loss curves (panels: the
        logged keys of each subplot; ncol: the grid's columns, default as square as it gets)."""
        self._check_weights()
        self.gif_frames.append(image_grid(images, ncol=ncol))
        save_grid(images, self.out / f"samples_{self.iteration:07d}.png", ncol=ncol)
        save_gif(self.gif_frames, self.out / "progress.gif")
        if self.history["iteration"]:   # once the first running means are logged
            save_curves(self.history, self.out / "curves.png", panels=panels)

    def evaluate(self, images, labels=None, **more):
        """The quality numbers of the samples (and the script's `more` numbers), recorded,
        printed and plotted; best.pt when the FID is the lowest so far."""
        self._check_weights()
        quality = {**sample_quality(images, labels, self.classifier, self.args.data_dir),
                   **more}
        self.history.setdefault("eval_train_minutes", []).append(
            round(self.train_seconds / 60, 3))
        record_quality(self.history, self.iteration, quality, self.out)
        self.quality = quality
        if quality["fid"] < self.best_fid:
            self.best_fid = quality["fid"]
            self._write_checkpoint("best.pt")

    def save_checkpoint(self):
        """checkpoint.pt: everything needed to resume the run exactly where it is."""
        self._check_weights()
        self._write_checkpoint("checkpoint.pt")
        self.saved = (self.out / "checkpoint.pt", self.iteration)

    def finish(self, parzen_images=None, **metrics):
        """metrics.json: the config and flags, iterations, training time, the last logged means,
        the last and the best quality numbers and every evaluation, the Parzen estimate of
        `parzen_images` if given, the script's own `metrics`, and the provenance."""
        if self.out_of_time():
            print(f"stopped at iteration {self.iteration} after --minutes {self.args.minutes} "
                  f"of training")
        result = {"config": self.config, "flags": vars(self.args),
                  "iterations": self.iteration, "train_seconds": round(self.train_seconds, 1),
                  "wall_seconds_this_run": round(time.perf_counter() - self.wall_started, 1),
                  **{f"final_{key}": self.history[key][-1] for key in self.keys}, **metrics,
                  "provenance": self.provenance}
        if self.classifier is not None:
            evaluated = self.history["eval_fid"]
            best = evaluated.index(min(evaluated))
            result.update(self.quality, best_fid=evaluated[best],
                          best_iteration=self.history["eval_iteration"][best],
                          classifier_sha256=self.classifier.sha256,
                          evaluations={key: value for key, value in self.history.items()
                                       if key.startswith("eval_")})
            if parzen_images is not None:
                result.update(parzen_score(parzen_images, self.args.data_dir))
                print(f"Parzen log-likelihood {result['parzen_log_likelihood']:.1f} +- "
                      f"{result['parzen_standard_error']:.1f} (sigma {result['parzen_sigma']:.3f})")
        else:
            print(f"the quality numbers are for MNIST only: skipped for {self.config['dataset']}")
        write_json(result, self.out / "metrics.json")
        print(f"done: {self.iteration} iterations, {format_seconds(self.train_seconds)} of "
              f"training, {self.out / 'checkpoint.pt'}")
        return self.out

    def _check_weights(self):
        """Stop the run if any tracked network holds a weight that is not finite."""
        for name, network in self.networks.items():
            if not all(torch.isfinite(p).all() for p in network.parameters()):
                self._diverged(f"the weights of {name} are not finite")

    def _diverged(self, what):
        """End the run with one line naming the iteration and the last good checkpoint."""
        saved = (f"the last good checkpoint is {self.saved[0]} (iteration {self.saved[1]}), "
                 f"left as it was" if self.saved else "no checkpoint was written before it")
        raise UserError(f"training diverged at iteration {self.iteration}: {what}; {saved}. "
                        f"Try a lower --lr.")

    def _write_checkpoint(self, name):
        save_checkpoint({
            "model": self.script, "config": self.config, "iteration": self.iteration,
            "train_seconds": self.train_seconds, "history": self.history,
            "fixed_input": self.fixed_input, "rng": torch.get_rng_state(),
            **gpu_random_state(self.device),
            **{key: network.state_dict() for key, network in self.networks.items()},
            **{key: optimizer.state_dict() for key, optimizer in self.optimizers.items()}},
            self.out / name)


@torch.no_grad()
def draw_samples(generator, count, z_dim, device, chunk=1000):
    """count samples G(z), z ~ N(0, I), in chunks (eval mode: batch norm uses its averages)."""
    generator.eval()
    return torch.cat([generator(torch.randn(min(chunk, count - start), z_dim, device=device))
                      for start in range(0, count, chunk)])


def class_labels(count, wanted_class, device, classes=10):
    """count labels spread evenly over the classes (0 1 ... 9 0 1 ...), or all wanted_class."""
    if wanted_class is None:
        return torch.arange(count, device=device) % classes
    return torch.full((count,), wanted_class, device=device)


def save_samples(images, path, labels=None, ncol=None):
    """The shared --generate output: FILE.npz with `images` (float32 N x C x H x W in [0, 1]) and
    `labels` (int64) for conditional models, plus FILE.png, a grid of the first 100."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"--out {path}: the samples file must end in .npz")
    arrays = {"images": ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()}
    if labels is not None:
        arrays["labels"] = labels.detach().cpu().to(torch.int64).numpy()
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)
    save_grid(images[:100], path.with_suffix(".png"), ncol=ncol)


def save_class_samples(images, labels, args, wanted_class, class_name):
    """The shared output of a conditional model's generate mode: with --generate, FILE.npz with
    labels (and a grid beside it); else a 10-column grid of one class, to --out FILE.png or to
    class_<k>.png beside the checkpoint."""
    if args.generate:
        save_samples(images, args.out, labels, ncol=10)
        print(f"wrote {len(images)} samples with labels to {args.out}")
        return
    out = Path(args.out or Path(args.checkpoint).parent / f"class_{wanted_class}.png")
    if out.suffix != ".png":
        raise UserError(f"--out {out}: a class grid is written as a .png file")
    save_grid(images, out, ncol=10)
    print(f"wrote {len(images)} samples of class {wanted_class} ({class_name}) to {out}")


# ---------------------------------------------------------------------------------------------
# Figures and other outputs: every file is written to a temporary name first, then renamed into
# place, so an interrupted run never leaves a half-written grid, GIF, JSON or checkpoint behind.

@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def make_run_dir(script, out=None):
    """--out, else runs/<script>/<date-time>."""
    folder = Path(out) if out else Path("runs") / script / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def image_grid(images, ncol=None):
    """Images in [-1, 1], (N, C, H, W) -> one uint8 (rows*H, ncol*W, 3) array, 2-pixel borders."""
    images = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    count, channels, height, width = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(count)))
    nrow = int(np.ceil(count / ncol))
    pad = 2
    grid = np.zeros((pad + nrow * (height + pad), pad + ncol * (width + pad), 3), dtype=np.uint8)
    for index, image in enumerate(images.numpy()):
        row, col = divmod(index, ncol)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        grid[top:top + height, left:left + width] = image.transpose(1, 2, 0)  # 1 channel broadcasts
    return grid


def save_grid(images, path, ncol=None):
    """image_grid as a PNG file."""
    from PIL import Image
    with atomic_path(path) as temporary:
        Image.fromarray(image_grid(images, ncol)).save(temporary, format="PNG")


def save_labeled_grid(images, column_titles, path, title=None, row_titles=None):
    """A grid whose columns are named (class names under a class-per-column grid), and its rows
    too if row_titles are given."""
    grid = image_grid(images, ncol=len(column_titles))
    figure, axis = pyplot().subplots(figsize=(grid.shape[1] / 40 + (1.2 if row_titles else 0.5),
                                              grid.shape[0] / 40 + 0.8))
    axis.imshow(grid)
    cell = (grid.shape[1] - 2) / len(column_titles)
    axis.set_xticks([2 + cell * (i + 0.5) for i in range(len(column_titles))], column_titles,
                    rotation=45 if max(map(len, column_titles)) > 2 else 0, fontsize=7)
    row_cell = (grid.shape[0] - 2) / len(row_titles or [None])
    axis.set_yticks([2 + row_cell * (i + 0.5) for i in range(len(row_titles or []))],
                    row_titles or [], fontsize=7)
    if title:
        axis.set_title(title, fontsize=9)
    save_figure(figure, path)


def save_gif(frames, path, seconds_per_frame=0.25):
    """A GIF of uint8 (H, W, 3) frames, looping, the last frame held longer."""
    from PIL import Image
    pictures = [Image.fromarray(frame) for frame in frames]
    durations = [int(seconds_per_frame * 1000)] * (len(pictures) - 1) + [2000]
    with atomic_path(path) as temporary:
        pictures[0].save(temporary, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=durations, loop=0)


def load_gif_frames(path):
    """The frames of a GIF written by save_gif (to extend it when a run resumes)."""
    from PIL import Image, ImageSequence
    if not Path(path).is_file():
        return []
    with Image.open(path) as gif:
        return [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


def save_curves(history, path, panels, x_key="iteration"):
    """One subplot per panel, each a list of history keys plotted against history[x_key]."""
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5 * len(panels), 3.5),
                                     squeeze=False)
    for axis, keys in zip(axes[0], panels):
        for key in keys:
            axis.plot(history[x_key], history[key], label=key, linewidth=1)
        axis.set_xlabel(x_key)
        axis.legend()
        axis.grid(alpha=0.3)
    save_figure(figure, path)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path, dpi=100):
    """Lay out, write atomically as PNG, and close a matplotlib figure."""
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    pyplot().close(figure)


def provenance(device="cpu"):
    """How and where a result was made, for metrics.json and docs/RESULTS.md: the command, the
    date (UTC), the commit (with "+changes" when the code differs from it), the machine."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, text=True,
                                  capture_output=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "*.py", "requirements*.txt",
           "weights"):
        commit += "+changes"   # the code differs from the commit
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), cpu)
    return {"command": shlex.join(["python", *sys.argv]),
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit,
            "machine": f"{cpu}, {torch.get_num_threads()} threads, {device}, torch "
                       f"{torch.__version__}"}


def write_json(data, path):
    """data as indented JSON."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Checkpoints: plain dicts of tensors and numbers, so torch.load(weights_only=True) can read them.

CHECKPOINT_FORMAT = 2   # raised whenever a change makes older checkpoints unreadable


def save_checkpoint(state, path):
    """torch.save of the dict `state` (with "model" and "config"), atomically."""
    with atomic_path(path) as temporary:
        torch.save({**state, "format": CHECKPOINT_FORMAT}, temporary)


def load_checkpoint(path, model, config_keys=()):
    """Load a checkpoint written by the script called `model`, whose config has `config_keys`;
    anything else is a UserError. model=None: only the name of the script that wrote it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} " + ("is not a file" if path.exists()
                                                 else "does not exist"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        # the first sentence of torch's message ("" for some errors: then the error's name)
        first = (str(error).splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise UserError(f"{path}: not a readable checkpoint ({first})")
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path}: not a checkpoint of this project")
    written_by = state["model"]
    if written_by == "diffusion" and state["config"].get("space") == "latent":
        written_by = "latent_diffusion"   # the latent model, in the older layout of its checkpoint
    if model is None:                     # asked only which script wrote it
        return written_by
    if written_by != model:
        raise UserError(f"{path} is a checkpoint of {written_by}.py, not {model}.py")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} was written by an older version of {model}.py: train it again")
    missing = sorted(set(config_keys) - set(state["config"]))
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} in its configuration: written by an "
                        f"older version of {model}.py or for another mode")
    return state


def load_weights(network, weights, path):
    """network.load_state_dict, with a shape mismatch reported as one line."""
    try:
        network.load_state_dict(weights)
    except RuntimeError as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise UserError(f"{path}: its weights do not fit this network ({first_line})")


# ---------------------------------------------------------------------------------------------
# Measurement: one MNIST classifier, committed with the code, is the yardstick of every model.
#
# Its weights lie in weights/mnist_classifier.pt and are checked against CLASSIFIER_SHA256 when
# loaded, so the same samples get the same numbers on every machine. adversarial.py --retrain
# rebuilds it (and is also the script that attacks it).
#
# FID (Heusel et al. 2017) compares two sets through the Gaussians N(mu, S) fitted to their
# features; here the features are the classifier's penultimate layer, not Inception's:
#     FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
# It is 0 for identical statistics and grows with both a shift of the mean (quality) and a
# mismatch of the spread (diversity). It falls as N grows, so every FID says its N.

CLASSIFIER_PATH = Path(__file__).resolve().parent / "weights" / "mnist_classifier.pt"
CLASSIFIER_SHA256 = "d0cdd584d658178305976aff7284486df13ac74504c99485dbaf0276d7450c79"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Classifier(nn.Module):
    """Two conv blocks and a dense head; takes pixels in [0, 1]. About 420k parameters."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())           # (B, 128)
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(128, 10))   # (B, 10) logits

    def features(self, images):
        """The penultimate layer, (B, 128): the space in which FID compares image sets."""
        return self.conv((images - MNIST_MEAN) / MNIST_STD)

    def forward(self, images):
        return self.head(self.features(images))


def load_classifier(path=None, device="cpu"):
    """The measuring classifier, frozen, with its file's SHA-256 as `.sha256`: the committed one
    (checked against CLASSIFIER_SHA256), or the file at `path` (--classifier)."""
    path = Path(path or CLASSIFIER_PATH)
    rebuild = ("restore it with `git checkout -- weights/mnist_classifier.pt`, or rebuild it "
               "with `python adversarial.py --retrain`")
    if not path.is_file():
        raise UserError(f"the measuring classifier {path} is missing: {rebuild}")
    digest = file_digest(path, "sha256")
    if path == CLASSIFIER_PATH and digest != CLASSIFIER_SHA256:
        raise UserError(f"{path} has SHA-256 {digest[:16]}..., not the committed "
                        f"{CLASSIFIER_SHA256[:16]}... (altered or damaged): {rebuild}")
    state = load_checkpoint(path, "adversarial")
    classifier = Classifier()
    load_weights(classifier, state["classifier"], path)
    classifier.sha256 = digest
    return classifier.to(device).eval().requires_grad_(False)


def frechet_distance(mu_1, sigma_1, mu_2, sigma_2):
    """||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^(1/2)), in float64.

    (S_1 S_2)^(1/2) has the same eigenvalues as the symmetric S_1^(1/2) S_2 S_1^(1/2), so its
    trace is the sum of their square roots: no general matrix square root needed.
    """
    mu_1, mu_2 = np.asarray(mu_1, np.float64), np.asarray(mu_2, np.float64)
    sigma_1, sigma_2 = np.asarray(sigma_1, np.float64), np.asarray(sigma_2, np.float64)
    values, vectors = np.linalg.eigh(sigma_1)
    sqrt_sigma_1 = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    cross = np.linalg.eigvalsh(sqrt_sigma_1 @ sigma_2 @ sqrt_sigma_1).clip(min=0)
    return float(((mu_1 - mu_2) ** 2).sum() + np.trace(sigma_1) + np.trace(sigma_2)
                 - 2 * np.sqrt(cross).sum())


def _gaussian(features):
    """Mean and covariance of (N, D) features, in float64."""
    features = features.double().cpu().numpy()
    return features.mean(0), np.cov(features, rowvar=False)


def class_entropy(histogram):
    """H = -sum_k p_k log p_k in nats: 0 for one class, log 10 = 2.303 for ten equal classes."""
    p = np.asarray(histogram, np.float64) / max(np.sum(histogram), 1)
    p = p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum()))   # max: one class gives -0.0, shown as 0


def _classify(classifier, images_01, batch_size=1000):
    """(features, predicted class) of images in [0, 1], batch by batch."""
    features, predictions = [], []
    with torch.no_grad():
        for start in range(0, len(images_01), batch_size):
            batch_features = classifier.features(images_01[start:start + batch_size])
            features.append(batch_features)
            predictions.append(classifier.head(batch_features).argmax(1))
    return torch.cat(features), torch.cat(predictions)


_TEST_GAUSSIANS = {}   # (classifier, data folder) -> the feature Gaussian of the MNIST test set


def sample_quality(images, labels, classifier, data_dir=None):
    """FID, conditional accuracy (when `labels` says what each image should be), the predicted-
    class histogram and its entropy, for MNIST-shaped images in [-1, 1]."""
    if tuple(images.shape[1:]) != (1, 28, 28):
        raise UserError(f"the quality numbers are for MNIST-shaped images, not {images.shape[1:]}")
    device = next(classifier.parameters()).device
    key = (id(classifier), str(data_root(data_dir)))
    if key not in _TEST_GAUSSIANS:   # the classifier is kept too, so that its id stays unique
        test_images, _ = load_dataset("mnist", train=False, data_dir=data_dir)
        test_features, _ = _classify(classifier, torch.from_numpy(test_images).float().div(255)
                                     .to(device))
        _TEST_GAUSSIANS[key] = (classifier, *_gaussian(test_features))
    features, predictions = _classify(classifier, ((images.to(device) + 1) / 2).clamp(0, 1))
    histogram = torch.bincount(predictions.cpu(), minlength=10).tolist()
    result = {"n": len(images),
              "fid": frechet_distance(*_gaussian(features), *_TEST_GAUSSIANS[key][1:]),
              "class_histogram": histogram, "class_entropy": class_entropy(histogram)}
    if labels is not None:
        result["conditional_accuracy"] = (predictions.cpu() == labels.cpu()).float().mean().item()
    return result


def record_quality(history, iteration, quality, out):
    """Append one evaluation (every float in `quality`) to the history as eval_<key>, print it,
    and redraw quality.png."""
    keys = [key for key, value in quality.items() if isinstance(value, float)]
    history.setdefault("eval_iteration", []).append(iteration)
    for key in keys:
        history.setdefault(f"eval_{key}", []).append(quality[key])
    shown = ", ".join(f"FID {quality[key]:.2f}" if key == "fid" else
                      f"{key.replace('_', ' ')} {quality[key]:.3f}" for key in keys)
    print(f"it {iteration:>7d} quality ({quality['n']} samples): {shown} (class entropy of "
          f"ten equal classes: log 10 = 2.303), classes {quality['class_histogram']}")
    save_curves(history, out / "quality.png", x_key="eval_iteration",
                panels=[[f"eval_{key}"] for key in keys])


# Parzen-window log-likelihood, the protocol of Goodfellow et al. (2014, section 5): fit a
# Gaussian kernel density p(x) = (1/N) sum_i N(x; s_i, sigma^2 I) on N generated samples s_i
# (pixels in [0, 1]), choose sigma on held-out validation images, report the mean log p(x) of the
# MNIST test images and its standard error. The paper's Table 1 gives 225 +- 2 for its GAN.
# A poor measure of quality: in 784 dimensions, 10,000 kernels cover almost nothing; the number
# rewards samples that sit near many test images in plain pixel distance (blurry averages can
# score well) and punishes sharp samples slightly off a stroke; it can rank a model that memorized
# the training set above one that generalizes (Theis, van den Oord and Bethge 2016).

def parzen_log_likelihood(samples, points, sigma, chunk=1000):
    """log p(x) for each point x under the kernel density of the samples, all (N, D) in [0, 1]:
    log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - (D/2) log(2 pi sigma^2)."""
    samples, points = samples.double(), points.double()
    dimension, count = samples.shape[1], samples.shape[0]
    sample_norms = (samples ** 2).sum(1)
    log_likelihoods = []
    for start in range(0, len(points), chunk):
        batch = points[start:start + chunk]
        # ||x - s||^2 = ||x||^2 + ||s||^2 - 2 x.s, one matrix product per chunk
        squared = ((batch ** 2).sum(1, keepdim=True) + sample_norms - 2 * batch @ samples.T)
        log_likelihoods.append(torch.logsumexp(-squared.clamp(min=0) / (2 * sigma ** 2), dim=1))
    return (torch.cat(log_likelihoods) - np.log(count)
            - dimension / 2 * np.log(2 * np.pi * sigma ** 2))


def parzen_score(images, data_dir=None, sigmas=np.logspace(-1.3, -0.3, 11), validation=1000):
    """Mean test log-likelihood +- standard error, sigma chosen on the last `validation` MNIST
    training images. The paper chose it on a held-out validation set; our models train on all
    60,000 images, so these are not held out, which slightly favours a model that memorizes."""
    samples = ((images.detach().cpu().flatten(1) + 1) / 2).clamp(0, 1)
    train_images, _ = load_dataset("mnist", train=True, data_dir=data_dir)
    test_images, _ = load_dataset("mnist", train=False, data_dir=data_dir)
    validation_points = torch.from_numpy(train_images[-validation:]).flatten(1).double() / 255
    scores = [parzen_log_likelihood(samples, validation_points, s).mean().item() for s in sigmas]
    best = int(np.argmax(scores))
    sigma = float(sigmas[best])
    if best in (0, len(sigmas) - 1):   # the true optimum may lie beyond the grid
        warnings.warn(f"Parzen: the best sigma, {sigma:.3f}, is at the edge of the grid "
                      f"{sigmas[0]:.3f}-{sigmas[-1]:.3f}: the estimate is a lower bound",
                      stacklevel=2)
    test_points = torch.from_numpy(test_images).flatten(1).double() / 255
    log_likelihoods = parzen_log_likelihood(samples, test_points, sigma)
    return {"parzen_log_likelihood": log_likelihoods.mean().item(),
            "parzen_standard_error": (log_likelihoods.std() / np.sqrt(len(log_likelihoods))).item(),
            "parzen_sigma": sigma, "parzen_sigma_at_grid_edge": best in (0, len(sigmas) - 1),
            "parzen_n": len(images)}
