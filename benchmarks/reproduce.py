"""Seeded short runs of every script, and a comparison of two sets of them: a change that only
reorganizes code must leave every number as it was.

    DATA_DIR=/path/to/data python benchmarks/reproduce.py run /tmp/before     # at one commit
    DATA_DIR=/path/to/data python benchmarks/reproduce.py run /tmp/after      # at the next
    python benchmarks/reproduce.py compare /tmp/before /tmp/after

run: each training script on real MNIST for a few steps with evaluations, snapshots and
checkpoints every few steps, a gan.py run stopped and resumed, sampling from both diffusion
scripts' checkpoints, and toy2d.py's experiments, on one thread (so that sums add up in the same
order). compare: every tensor of every checkpoint (weights, optimizer states, random state, fixed
input), the histories, metrics.json and every PNG, GIF and NPZ, byte for byte or value for value;
it ignores only what measures time or names the run (training seconds and minutes, provenance,
the --out path) and prints every other difference, such as a configuration key that one version
has and the other not. Exit status 1 when something differs.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EVERY = ["--sample-every", "5", "--eval-every", "5", "--checkpoint-every", "5",
         "--eval-samples", "200", "--gif-samples", "16"]
LATENT = (["latent_diffusion.py"] if (ROOT / "latent_diffusion.py").exists()
          else ["diffusion.py", "--space", "latent"])
RUNS = {
    "gan-mlp": ["gan.py", "--iters", "10", *EVERY],
    "gan-dcgan": ["gan.py", "--arch", "dcgan", "--iters", "10", "--lr-decay", "linear", *EVERY],
    "cgan-mlp": ["cgan.py", "--iters", "10", *EVERY[:-2], "--gif-samples", "20"],
    "cgan-conv": ["cgan.py", "--arch", "conv", "--iters", "10", *EVERY[:-2],
                  "--gif-samples", "20"],
    "wgan-clip": ["wgan.py", "--iters", "10", *EVERY],
    "wgan-gp": ["wgan.py", "--iters", "10", "--gradient-penalty", "10", *EVERY],
    "wgan-gan": ["wgan.py", "--iters", "10", "--loss", "gan", *EVERY],
    "diffusion-pixel": ["diffusion.py", "--iters", "4", "--sample-every", "2", "--eval-every",
                        "4", "--checkpoint-every", "2", "--eval-samples", "20", "--gif-samples",
                        "10", "--steps", "5", "--channels", "8"],
    "diffusion-latent": [*LATENT, "--iters", "4", "--ae-iters", "10", "--sample-every", "2",
                         "--eval-every", "4", "--checkpoint-every", "2", "--eval-samples", "20",
                         "--gif-samples", "10", "--steps", "5", "--channels", "16"],
    "toy2d-gan": ["toy2d.py", "gan", "--steps", "40", "--d-warmup", "5"],
    "toy2d-critic": ["toy2d.py", "critic", "--steps", "40"],
    "toy2d-diffusion": ["toy2d.py", "diffusion", "--steps", "40"],
    "toy2d-coverage": ["toy2d.py", "coverage", "--steps", "60", "--seeds", "2"],
}
TIMING = {"train_seconds", "wall_seconds_this_run", "seconds", "provenance", "train_minutes",
          "eval_train_minutes", "out"}


def run(folder):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name, command in RUNS.items():
        out = Path(folder) / name
        print(f"{name}: python {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, *command, "--out", str(out)], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL)
    resumed = Path(folder) / "gan-mlp-resumed"                   # stopped at 5, resumed to 10
    for iters, more in (("5", []), ("10", ["--resume", str(resumed / "checkpoint.pt")])):
        subprocess.run([sys.executable, *RUNS["gan-mlp"], "--iters", iters, "--out", str(resumed),
                        *more], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    for checkpoint in ("diffusion-pixel", "diffusion-latent"):   # and sampling from a checkpoint
        command = RUNS[checkpoint][:1] if checkpoint == "diffusion-pixel" else LATENT[:1]
        subprocess.run([sys.executable, *command, "--checkpoint",
                        str(Path(folder) / checkpoint / "checkpoint.pt"), "--generate", "12",
                        "--steps", "5", "--out", str(Path(folder) / f"{checkpoint}-samples.npz")],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def differences(a, b, where):
    """Every place where two loaded structures differ, ignoring the timing keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            if key in TIMING:
                continue
            if key not in a or key not in b:
                found.append(f"{where}.{key}: only in {'after' if key in b else 'before'}")
            else:
                found += differences(a[key], b[key], f"{where}.{key}")
        return found
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    return [] if a == b else [f"{where}: {str(a)[:60]} against {str(b)[:60]}"]


def compare(before, after):
    before, after = Path(before), Path(after)
    names = sorted({p.relative_to(before) for p in before.rglob("*") if p.is_file()}
                   | {p.relative_to(after) for p in after.rglob("*") if p.is_file()})
    found, compared = [], 0
    for name in names:
        a, b = before / name, after / name
        if not (a.exists() and b.exists()):
            found.append(f"{name}: only in {'after' if b.exists() else 'before'}")
            continue
        compared += 1
        if name.suffix == ".pt":
            found += differences(torch.load(a, weights_only=True), torch.load(b, weights_only=True),
                                 str(name))
        elif name.suffix == ".json":
            one, two = json.loads(a.read_text()), json.loads(b.read_text())
            for metrics in (one, two):   # the run folder's own paths
                for path in ("out", "resume"):
                    metrics.get("flags", {}).pop(path, None)
            found += differences(one, two, str(name))
        elif name.suffix == ".npz":
            x, y = np.load(a), np.load(b)
            found += [f"{name}[{key}] differs" for key in x.files
                      if key not in y.files or not np.array_equal(x[key], y[key])]
        elif a.read_bytes() != b.read_bytes():
            found.append(f"{name}: the bytes differ")
    print(f"compared {compared} files of {len(RUNS) + 3} runs")
    print("\n".join(found) if found else "identical: every tensor, number, image and GIF")
    return 1 if found else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["run", "compare"])
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args()
    if len(args.folders) != (1 if args.action == "run" else 2):
        parser.error("run takes one folder, compare two")
    if args.action == "run":
        run(args.folders[0])
    else:
        sys.exit(compare(*args.folders[:2]))


if __name__ == "__main__":
    main()
