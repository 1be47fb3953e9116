"""What the averaged generator's batch-norm statistics cost: one checkpoint, two sets of statistics.

A generator with batch norm samples in eval mode with running means and variances. Its averaged
(EMA) weights need statistics of their own: those of the live generator describe other weights.
For each run folder this draws the same N samples (the same z) from the checkpoint's averaged
generator twice and measures both with the committed classifier:
  - borrowed: the live generator's running statistics copied into the averaged one;
  - standing: common.standing_statistics, the averaged weights' own (what the scripts use).

    DATA_DIR=/path/to/data python benchmarks/ema_batch_norm.py runs/wgan/gan-20min runs/gan/dcgan-10min \
        --json docs/runs/measures/ema_batch_norm.json
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cgan  # noqa: E402
import common  # noqa: E402
import gan  # noqa: E402
import wgan  # noqa: E402

SCRIPTS = {"gan": gan, "cgan": cgan, "wgan": wgan}


def measure(run, samples, data_dir, classifier):
    """[run, iteration, FID borrowed, FID standing, entropy borrowed, entropy standing]."""
    path = Path(run) / "checkpoint.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    script, config = SCRIPTS[state["model"]], state["config"]
    live, _ = script.build_networks(config)
    averaged, _ = script.build_networks(config)
    live.load_state_dict(state["generator"])
    averaged.load_state_dict(state["ema_generator"])
    classes = cgan.CLASSES if state["model"] == "cgan" else None
    numbers = {}
    for name in ("borrowed", "standing"):
        if name == "borrowed":
            for ema_buffer, buffer in zip(averaged.buffers(), live.buffers()):
                ema_buffer.copy_(buffer)
        else:
            common.standing_statistics(averaged, config["z_dim"], classes)
        averaged.eval()
        common.seed_everything(0)                  # the same z for both
        labels = common.class_labels(samples, None, "cpu") if classes else None
        with torch.no_grad():
            if classes:
                images = cgan.draw_samples(averaged, labels, config["z_dim"])
            else:
                images = common.draw_samples(averaged, samples, config["z_dim"], "cpu")
        numbers[name] = common.sample_quality(images, labels, classifier, data_dir)
    return [run, state["iteration"], round(numbers["borrowed"]["fid"], 2),
            round(numbers["standing"]["fid"], 2),
            round(numbers["borrowed"]["class_entropy"], 3),
            round(numbers["standing"]["class_entropy"], 3)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders with a checkpoint.pt")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="write the table here (docs/runs/...)")
    args = parser.parse_args()
    classifier = common.load_classifier()
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.samples, args.data_dir, classifier))
        print(" | ".join(str(value) for value in rows[-1]), flush=True)
    if args.json:
        common.write_json({
            "title": f"The averaged generator's batch-norm statistics: the live generator's "
                     f"(borrowed) or its own (standing), the same checkpoint and z, "
                     f"N = {args.samples}",
            "columns": ["run", "iteration", "FID borrowed", "FID standing",
                        "entropy borrowed", "entropy standing"],
            "rows": rows, "provenance": common.provenance()}, args.json)


if __name__ == "__main__":
    main()
