"""The discriminator-overfitting figure, from the checkpoints of finished gan.py runs: FID, the
class entropy, and D's mean logit on training images minus on held-out test images, against
iterations, one line per run.

    python benchmarks/gan_dropout_figure.py runs/gan/logistic-100k-no-dropout \\
        runs/gan/logistic-100k --out docs/gan_dropout.png
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

PANELS = [("eval_fid", "FID (10,000 samples)", "log"),
          ("eval_class_entropy", "class entropy (nats; uniform 2.303)", "linear"),
          ("eval_d_overfitting_gap", "D's mean logit: training minus test images", "linear")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="gan.py run folders")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    figure, axes = common.pyplot().subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.8))
    for run in args.runs:
        state = common.load_checkpoint(Path(run) / "checkpoint.pt", "gan")
        config, history = state["config"], state["history"]
        name = f"{config['loss']}, D dropout {config.get('d_dropout', 0.0):g}"
        for axis, (key, _, _) in zip(axes, PANELS):
            if key in history:
                axis.plot(history["eval_iteration"], history[key], marker="o", markersize=3,
                          label=name)
    for axis, (_, title, scale) in zip(axes, PANELS):
        axis.set_title(title, fontsize=10)
        axis.set_yscale(scale)
        axis.set_xlabel("iteration")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    common.save_figure(figure, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
