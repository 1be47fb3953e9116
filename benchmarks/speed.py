"""Seconds per 1,000 training iterations of gan.py's MLP GAN (batch 64), fed two ways:

  in-memory   the whole set as one tensor, batches drawn by random index (what gan.py does)
  DataLoader  torch.utils.data.DataLoader over a Dataset that turns each uint8 image into a
              PIL image, then a float tensor, then normalizes it: the per-sample transforms of
              a typical torchvision pipeline (ToTensor + Normalize), written out here

Both run the same networks, optimizers and training step (gan.train_step) in the same process.

    DATA_DIR=../shared/data python benchmarks/speed.py
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import gan  # noqa: E402


class PerSampleDataset(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images                                  # (N, 1, 28, 28) uint8

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        picture = Image.fromarray(self.images[index, 0])      # as a torchvision dataset returns it
        tensor = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]  # ToTensor
        return (tensor - 0.5) / 0.5                           # Normalize((0.5,), (0.5,))


def time_iterations(batches, iterations, warmup=50):
    """Seconds per 1,000 iterations of gan.train_step on the batches an iterator yields."""
    torch.manual_seed(0)
    config = {"arch": "mlp", "z_dim": 100, "image_shape": [1, 28, 28]}
    generator, discriminator = gan.build_networks(config)
    opt_g, opt_d = gan.make_optimizers(generator, discriminator, 2e-4, 0.5)
    for iteration in range(warmup + iterations):
        if iteration == warmup:
            started = time.perf_counter()
        real = next(batches)
        gan.train_step(generator, discriminator, opt_g, opt_d, real,
                       torch.randn(len(real), 100), "logistic")
    return (time.perf_counter() - started) / iterations * 1000


def loader_batches(images, batch_size, workers):
    loader = torch.utils.data.DataLoader(PerSampleDataset(images), batch_size=batch_size,
                                         shuffle=True, drop_last=True, num_workers=workers)
    while True:
        yield from loader


def memory_batches(images, batch_size):
    tensor = common.to_training_tensor(images, "cpu")
    while True:
        yield common.sample_batch(tensor, batch_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    images, _ = common.load_dataset("mnist", data_dir=args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.iterations} timed iterations each, batch 64")
    memory = time_iterations(memory_batches(images, 64), args.iterations)
    loader = time_iterations(loader_batches(images, 64, args.workers), args.iterations)
    print(f"in-memory tensor:       {memory:6.2f} s per 1,000 iterations "
          f"-> 20,000 iterations in {memory * 20 / 60:.1f} min")
    print(f"DataLoader ({args.workers} workers): {loader:6.2f} s per 1,000 iterations "
          f"-> 20,000 iterations in {loader * 20 / 60:.1f} min")
    print(f"speed-up: {loader / memory:.2f}x")


if __name__ == "__main__":
    main()
