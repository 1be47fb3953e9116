"""The WGAN teaching figure, from the checkpoints of finished runs: the critic's estimate of the
Wasserstein distance falls as FID falls, while the standard GAN's discriminator loss says little.

    python benchmarks/wgan_figure.py --wgan runs/wgan/clip-0.01 runs/wgan/gp-10 \\
        --gan runs/gan/dcgan-5min --out docs/wgan_vs_gan.png
    python benchmarks/wgan_figure.py --wgan runs/wgan/clip-0.1 runs/wgan/clip-0.01 \\
        runs/wgan/clip-0.001 --out docs/wgan_clip_sweep.png
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def label(run, state):
    config = state["config"]
    if state["model"] == "gan":
        return f"{config['arch'].upper()} GAN ({Path(run).name})"
    return f"WGAN-GP, lambda {config['gradient_penalty']:g}" if config["gradient_penalty"] \
        else f"WGAN, clip {config['clip']:g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wgan", nargs="+", default=[], help="wgan.py run folders")
    parser.add_argument("--gan", nargs="*", default=[], help="gan.py run folders")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    panels = 3 if args.gan else 2
    figure, axes = common.pyplot().subplots(1, panels, figsize=(5 * panels, 3.8))
    for run in args.wgan:
        state = common.load_checkpoint(Path(run) / "checkpoint.pt", "wgan")
        history, name = state["history"], label(run, state)
        axes[0].plot(history["train_minutes"], history["wasserstein"], label=name, linewidth=1)
        axes[1].plot(history["eval_train_minutes"], history["eval_fid"], marker="o", label=name)
    for run in args.gan:
        state = common.load_checkpoint(Path(run) / "checkpoint.pt", "gan")
        history, name = state["history"], label(run, state)
        axes[1].plot(history["eval_train_minutes"], history["eval_fid"], marker="s", label=name)
        axes[2].plot(history["train_minutes"], history["loss_d"], color="gray", linewidth=1,
                     label="discriminator loss")
        twin = axes[2].twinx()
        twin.plot(history["eval_train_minutes"], history["eval_fid"], marker="s",
                  color="tab:green", label="FID")
        twin.set_ylabel("FID", color="tab:green")
        axes[2].set_title(f"{name}: D loss and FID")
        axes[2].set_xlabel("training minutes")
        axes[2].set_ylabel("discriminator loss")
    axes[0].set_title("critic's estimate E[f(x)] - E[f(G(z))]")
    axes[1].set_title("FID (10,000 samples)")
    axes[1].set_yscale("log")
    for axis in axes[:2]:
        axis.set_xlabel("training minutes")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    common.save_figure(figure, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
