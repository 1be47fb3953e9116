"""Seconds per 1,000 training iterations of gan.py's MLP GAN (batch 64), fed two ways:

  in-memory   the whole set as one tensor, batches drawn by random index (what gan.py does)
  DataLoader  torch.utils.data.DataLoader over a Dataset that turns each uint8 image into a
              PIL image, then a float tensor, then normalizes it: the per-sample transforms of
              a typical torchvision pipeline (ToTensor + Normalize), written out here

Both run the same networks as gan.py's default (dropout 0.3 in D), optimizers and training step
(gan.train_step) in the same process, so their ratio is what the data path alone is worth. Each
is timed --repeats times, in turn, and the fastest time counts (the least disturbed). Two more
lines put it in context:

  batches alone   the cost of assembling 1,000 batches each way, with no training
  typical script  the DataLoader path with the training step of a typical MLP GAN script:
                  D judges real and fake in two passes, the generator step runs a third pass
                  that also computes D's weight gradients, and Adam is PyTorch's default
                  (not fused). Same networks and losses; this is what gan.py's whole recipe buys.

    DATA_DIR=/path/to/data python benchmarks/speed.py --json docs/runs/speed/speed.json
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


def typical_train_step(generator, discriminator, opt_g, opt_d, real, z, loss):
    """The step most GAN scripts write: the same losses, without gan.train_step's savings."""
    fake = generator(z)
    loss_g = gan.generator_loss(discriminator(fake), loss)      # D's weight gradients computed
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    loss_d = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()


def time_iterations(batches, iterations, warmup=50, typical=False):
    """Seconds per 1,000 iterations of a training step on the batches an iterator yields."""
    torch.manual_seed(0)
    config = {"arch": "mlp", "z_dim": 100, "image_shape": [1, 28, 28], "d_dropout": 0.3}
    generator, discriminator = gan.build_networks(config)
    if typical:
        step = typical_train_step
        opt_g = torch.optim.Adam(generator.parameters(), 2e-4, (0.5, 0.999))
        opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, (0.5, 0.999))
    else:
        step = gan.train_step
        opt_g, opt_d = common.adam_pair(generator, discriminator, 2e-4)
    for iteration in range(warmup + iterations):
        if iteration == warmup:
            started = time.perf_counter()
        real = next(batches)
        step(generator, discriminator, opt_g, opt_d, real, torch.randn(len(real), 100),
             "logistic")
    return (time.perf_counter() - started) / iterations * 1000


def time_batches(batches, count=1000, warmup=50):
    """Seconds per 1,000 batches drawn, with no training."""
    for _ in range(warmup):
        next(batches)
    started = time.perf_counter()
    for _ in range(count):
        next(batches)
    return (time.perf_counter() - started) / count * 1000


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
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="also write the numbers as a table (docs/runs/...)")
    args = parser.parse_args()
    images, _ = common.load_dataset("mnist", data_dir=args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.iterations} timed iterations each, batch 64")
    runs = {"memory": [], "loader": [], "typical": []}
    for _ in range(args.repeats):
        runs["memory"].append(time_iterations(memory_batches(images, 64), args.iterations))
        runs["loader"].append(time_iterations(loader_batches(images, 64, args.workers),
                                              args.iterations))
        runs["typical"].append(time_iterations(loader_batches(images, 64, args.workers),
                                               args.iterations, typical=True))
    memory, loader, typical = (min(times) for times in runs.values())
    memory_alone = time_batches(memory_batches(images, 64))
    loader_alone = time_batches(loader_batches(images, 64, args.workers))
    print("all timings: " + ", ".join(f"{name} {' / '.join(f'{t:.2f}' for t in times)}"
                                       for name, times in runs.items()))
    print(f"in-memory tensor:       {memory:6.2f} s per 1,000 iterations "
          f"-> 20,000 iterations in {memory * 20 / 60:.1f} min")
    print(f"DataLoader ({args.workers} workers): {loader:6.2f} s per 1,000 iterations "
          f"-> 20,000 iterations in {loader * 20 / 60:.1f} min")
    print(f"speed-up: {loader / memory:.2f}x")
    print(f"batches alone, no training: in-memory {memory_alone:.3f} s, DataLoader "
          f"{loader_alone:.3f} s per 1,000 ({loader_alone / memory_alone:.0f}x faster)")
    print(f"typical script (DataLoader, {args.workers} workers): {typical:6.2f} s per 1,000 "
          f"iterations; gan.py is {typical / memory:.2f}x faster")
    if args.json:
        loader_name = f"DataLoader ({args.workers} workers), per-sample transforms"
        rows = [["gan.py: in-memory tensor", f"{memory:.2f}", f"{memory_alone:.3f}",
                 f"{memory * 20 / 60:.1f}"],
                [f"{loader_name}, gan.py's step", f"{loader:.2f}", f"{loader_alone:.3f}",
                 f"{loader * 20 / 60:.1f}"],
                [f"{loader_name}, a typical script's step", f"{typical:.2f}", "",
                 f"{typical * 20 / 60:.1f}"]]
        common.write_json({"title": f"Speed of gan.py's MLP GAN, batch 64, fastest of "
                                    f"{args.repeats} timings of {args.iterations:,} iterations",
                           "columns": ["data path and training step", "s per 1,000 iterations",
                                       "s per 1,000 batches alone", "min per 20,000 iterations"],
                           "rows": rows, "provenance": common.provenance(),
                           "classifier_sha256": None}, args.json)


if __name__ == "__main__":
    main()
