"""Calibrate the quality numbers: a measure that cannot tell real digits from noise, or from one
image repeated, is broken. Prints FID, conditional accuracy, class entropy and (with --parzen) the
Parzen log-likelihood for three sets of 10,000 images, and how long each took.

    DATA_DIR=/path/to/data python benchmarks/calibrate_metrics.py --parzen \\
        --json docs/runs/measures/calibration.json
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--parzen", action="store_true")
    parser.add_argument("--json", help="also write the table to this file (docs/runs/...)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.manual_seed(0)
    images, labels = common.load_dataset("mnist", train=True, data_dir=args.data_dir)
    real = common.to_training_tensor(images[:args.n], "cpu")
    sets = {
        f"{args.n} real MNIST training images": (real, torch.from_numpy(labels[:args.n])),
        "uniform noise": (torch.rand(args.n, 1, 28, 28) * 2 - 1, torch.from_numpy(labels[:args.n])),
        "one training image repeated": (real[:1].repeat(args.n, 1, 1, 1),
                                        torch.full((args.n,), int(labels[0]))),
    }
    classifier = common.load_classifier()   # loaded outside the timings
    columns = ["set", "FID", "conditional accuracy", "class entropy (nats)", "Parzen log-likelihood"]
    rows = []
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for name, (samples, intended) in sets.items():
        started = time.perf_counter()
        quality = common.sample_quality(samples, intended, classifier, args.data_dir)
        seconds = time.perf_counter() - started
        parzen, parzen_seconds = "not run", 0.0
        if args.parzen:
            started = time.perf_counter()
            score = common.parzen_score(samples, args.data_dir)
            parzen_seconds = time.perf_counter() - started
            parzen = (f"{score['parzen_log_likelihood']:.1f} "
                      f"+- {score['parzen_standard_error']:.1f}"
                      f" (sigma {score['parzen_sigma']:.3f})")
        rows.append([name, round(quality["fid"], 2), f"{quality['conditional_accuracy']:.2%}",
                     f"{quality['class_entropy']:.3f}", parzen])
        print("| " + " | ".join(str(cell) for cell in rows[-1]) + " |", flush=True)
        print(f"  ({seconds:.1f} s for FID/accuracy/entropy, {parzen_seconds:.1f} s for Parzen)",
              file=sys.stderr, flush=True)
    if args.json:
        common.write_json({"title": f"The quality numbers on {args.n:,} images of known sets",
                           "columns": columns, "rows": rows, "provenance": common.provenance()},
                          args.json)


if __name__ == "__main__":
    main()
