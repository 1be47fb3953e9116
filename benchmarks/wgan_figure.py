"""The DCGAN-against-WGAN figures and tables, from finished wgan.py runs (their checkpoint.pt,
metrics.json and last sample grid).

    --compare RUN...  one figure: each run's own curve over training minutes (a critic's
                      E[f(x)] - E[f(G(z))], on the scale of that critic; the GAN discriminator's
                      loss), the FID of all runs, and the samples of each run side by side
    --sweep RUN...    the clip sweep: per run, the critic's estimate, a histogram of the critic's
                      weights, and the last samples
    the tables        printed as markdown (and with --json written for docs/RESULTS.md): per
                      run, FID, class entropy and generator steps; what the critic's estimate (or
                      D's loss) did over the evaluations; the checkpoint that the lowest
                      generator loss would pick against best.pt; for the sweep, the share of
                      critic weights at the bound
    --refit RUN...    is the clipped critic too weak, or only one step behind? Freezes the run's
                      last generator and trains a copy of its last critic on its own (the run's
                      optimizer, learning rate and clip): the estimate it reaches against a
                      generator that no longer moves, beside the one logged in training

    python benchmarks/wgan_figure.py --compare runs/wgan/gan runs/wgan/clip-0.01 runs/wgan/gp \\
        --out docs/wgan_vs_gan.png
    python benchmarks/wgan_figure.py --sweep runs/wgan/clip-0.1 runs/wgan/clip-0.01 \\
        runs/wgan/clip-0.001 --out docs/wgan_clip_sweep.png
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def load(run):
    """(checkpoint state, metrics, last sample grid as an array) of one run folder."""
    state = common.load_checkpoint(Path(run) / "checkpoint.pt", "wgan")
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    from PIL import Image
    with Image.open(sorted(Path(run).glob("samples_*.png"))[-1]) as grid:
        return state, metrics, np.array(grid)


def lowest_generator_loss_pick(history):
    """Among the evaluated checkpoints, the one whose logged generator loss is lowest, as a
    "keep the best checkpoint by G's loss" rule would pick it: (its iteration, its FID)."""
    best = int(np.argmin(logged_at_evaluations(history, "loss_g")))
    return history["eval_iteration"][best], history["eval_fid"][best]


def logged_at_evaluations(history, key):
    """The running mean of `key` logged at or just before each evaluation."""
    logged = np.array(history["iteration"])
    index = np.searchsorted(logged, history["eval_iteration"], side="right") - 1
    return np.array(history[key])[index.clip(min=0)]


def rank_correlation(a, b):
    """Spearman's rank correlation: 1 when b rises whenever a does, -1 when it falls."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def compare_table(runs):
    """Per run: its length and quality, what its curve (the critic's estimate, or D's loss) did
    over the evaluations and how it ranks with FID, and the pick of a lowest-G-loss rule."""
    columns = ["run", "generator steps", "FID", "FID at the last 5 evaluations: lowest-highest",
               "class entropy", "best FID (best.pt) at",
               "the curve", "at the first / highest / last evaluation",
               "rank correlation with FID", "lowest G loss picks", "lr, n_critic, dropout"]
    rows = []
    for run in runs:
        state, metrics, _ = load(run)
        history, config = state["history"], state["config"]
        pick_iteration, pick_fid = lowest_generator_loss_pick(history)
        curve = "wasserstein" if config["loss"] == "wasserstein" else "loss_d"
        at_evaluations = logged_at_evaluations(history, curve)
        correlation = rank_correlation(at_evaluations, history["eval_fid"])
        last_five = history["eval_fid"][-5:]
        rows.append([metrics["variant"], f"{metrics['iterations']:,}", f"{metrics['fid']:.1f}",
                     f"{min(last_five):.1f}-{max(last_five):.1f}",
                     f"{metrics['class_entropy']:.3f}",
                     f"{metrics['best_fid']:.1f} at {metrics['best_iteration']:,}",
                     "critic's E[f(x)] - E[f(G(z))]" if curve == "wasserstein" else "D's loss",
                     " / ".join(f"{value:.3g}" for value in (at_evaluations[0],
                                                              at_evaluations.max(),
                                                              at_evaluations[-1])),
                     f"{correlation:+.2f}", f"FID {pick_fid:.1f} at {pick_iteration:,}",
                     f"{config['lr']:g}, {config['n_critic']}"
                     + (" (100 at G's first 25 steps and every 500th)"
                        if config.get("critic_schedule") == "paper" else "")
                     + f", {config['dropout']:g}"])
    return columns, rows


def sweep_table(runs):
    """Per clip value: quality, the critic's estimate and how many weights sit at the bound."""
    columns = ["clip c", "generator steps", "FID", "class entropy",
               "critic's estimate: the last logged mean", "lowest / highest logged",
               "critic weights at the bound"]
    rows = []
    for run in runs:
        state, metrics, _ = load(run)
        clip, estimate = state["config"]["clip"], np.array(state["history"]["wasserstein"])
        rows.append([f"{clip:g}", f"{metrics['iterations']:,}", f"{metrics['fid']:.1f}",
                     f"{metrics['class_entropy']:.3f}", f"{metrics['final_wasserstein']:.3g}",
                     f"{estimate.min():.3g} / {estimate.max():.3g}",
                     f"{np.mean(np.abs(critic_weights(state)) >= clip):.0%}"])
    return columns, rows


def critic_weights(state):
    """Every weight of the critic's convolutions, norms and dense layer, as one array."""
    return torch.cat([value.flatten() for name, value in state["critic"].items()
                      if name.endswith("weight")]).numpy()


def refit_curve(run, steps=1500, every=300, batch_size=64, held_out=2000):
    """The estimate E[f(x)] - E[f(G(z))] of a copy of the run's critic, trained `steps` more
    critic steps against its frozen generator, measured every `every` steps (dropout off) on
    `held_out` real images and samples that it never trains on."""
    import wgan
    state = common.load_checkpoint(Path(run) / "checkpoint.pt", "wgan")
    config = state["config"]
    common.seed_everything(0)
    generator, critic = wgan.build_networks(config)
    generator.load_state_dict(state["generator"])      # the G the critic last faced, not G_ema
    critic.load_state_dict(state["critic"])
    generator.eval().requires_grad_(False)
    _, opt_f = wgan.make_optimizers(generator, critic, config)
    images, _ = common.load_dataset(config["dataset"], train=True)
    shuffled = common.to_training_tensor(images, "cpu")[torch.randperm(len(images))]
    real_test, train_images = shuffled[:held_out], shuffled[held_out:]
    fake_test = generator(torch.randn(held_out, config["z_dim"]))

    def estimate():
        critic.eval()
        with torch.no_grad():
            value = (critic(real_test).mean() - critic(fake_test).mean()).item()
        critic.train()
        return value

    estimates = [estimate()]
    for step in range(1, steps + 1):
        real = common.sample_batch(train_images, batch_size)
        fake = generator(torch.randn(batch_size, config["z_dim"]))
        wgan.critic_step(critic, opt_f, real, fake, config)
        if step % every == 0:
            estimates.append(estimate())
    return config["clip"], estimates


def refit_table(runs, steps=1500, every=300, batch_size=64, held_out=2000):
    """One column per clipped run: its critic's estimate as it trains on alone, and in the header
    the estimate that the run logged last (a mean over its last logging interval)."""
    columns, curves = ["critic steps against the frozen generator"], []
    for run in runs:
        clip, estimates = refit_curve(run, steps, every, batch_size, held_out)
        logged = json.loads((Path(run) / "metrics.json").read_text())["final_wasserstein"]
        columns.append(f"clip {clip:g}: estimate (in training: {logged:.3g})")
        curves.append(estimates)
    rows = [[index * every] + [f"{curve[index]:.3g}" for curve in curves]
            for index in range(len(curves[0]))]
    return columns, rows


def compare_figure(runs, out):
    """Top: each run's own curve on its own axis (a critic's estimate has the scale of its own
    Lipschitz constant, so two critics' estimates do not share an axis; the GAN's is D's loss),
    then the FID of every run; bottom: the last samples. One colour per run in every panel."""
    plt = common.pyplot()
    loaded = [load(run) for run in runs]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure = plt.figure(figsize=(4.2 * (len(loaded) + 1), 8.5))
    columns = len(loaded) + 1
    fid_axis = figure.add_subplot(2, columns, columns)
    for index, (state, metrics, grid) in enumerate(loaded):
        history, name, colour = state["history"], metrics["variant"], colours[index]
        axis = figure.add_subplot(2, columns, index + 1)
        if state["config"]["loss"] == "wasserstein":
            axis.plot(history["train_minutes"], history["wasserstein"], linewidth=1, color=colour)
            axis.set_title(f"{name}:\ncritic's E[f(x)] - E[f(G(z))]", fontsize=9)
        else:
            axis.plot(history["train_minutes"], history["loss_d"], linewidth=1, color=colour)
            axis.axhline(2 * np.log(2), color="gray", linestyle=":", linewidth=1)
            axis.set_title(f"{name}: discriminator's loss\n(dotted: 2 log 2)", fontsize=9)
        axis.set_xlabel("training minutes")
        axis.grid(alpha=0.3)
        fid_axis.plot(history["eval_train_minutes"], history["eval_fid"], marker="o",
                      markersize=3, color=colour, label=name)
        samples = figure.add_subplot(2, len(loaded), len(loaded) + index + 1)
        samples.imshow(grid)
        samples.set_title(f"{name}: FID {metrics['fid']:.1f}", fontsize=9, color=colour)
        samples.axis("off")
    fid_axis.set_title(f"FID ({loaded[0][1]['n']:,} samples)", fontsize=9)
    fid_axis.set_yscale("log")
    fid_axis.set_xlabel("training minutes")
    fid_axis.grid(alpha=0.3)
    fid_axis.legend(fontsize=8)
    common.save_figure(figure, out)


def sweep_figure(runs, out):
    plt = common.pyplot()
    figure, axes = plt.subplots(3, len(runs), figsize=(4.5 * len(runs), 11), squeeze=False)
    for column, run in enumerate(runs):
        state, metrics, grid = load(run)
        history, clip = state["history"], state["config"]["clip"]
        axes[0, column].plot(history["train_minutes"], history["wasserstein"], linewidth=1)
        axes[0, column].set_title(f"clip {clip:g}: critic's estimate of W", fontsize=9)
        axes[0, column].set_xlabel("training minutes")
        axes[0, column].grid(alpha=0.3)
        weights = critic_weights(state)
        axes[1, column].hist(weights / clip, bins=50, log=True)
        axes[1, column].set_title(f"critic weights / c: {np.mean(np.abs(weights) >= clip):.0%} "
                                  "at the bound", fontsize=9)
        axes[1, column].set_xlabel("weight / clip value")
        axes[2, column].imshow(grid)
        axes[2, column].set_title(f"FID {metrics['fid']:.1f}, class entropy "
                                  f"{metrics['class_entropy']:.2f}", fontsize=9)
        axes[2, column].axis("off")
    common.save_figure(figure, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", nargs="+", help="wgan.py run folders, --loss gan included")
    parser.add_argument("--sweep", nargs="+", help="wgan.py run folders of the clip sweep")
    parser.add_argument("--refit", nargs="+", help="clipped wgan.py run folders")
    parser.add_argument("--out", help="the figure to write")
    parser.add_argument("--json", help="also write the table (docs/runs/wgan/...) for RESULTS.md")
    args = parser.parse_args()
    if args.refit:
        columns, rows = refit_table(args.refit)
        title = "The clipped critic against a generator that stops"
    else:
        if bool(args.compare) == bool(args.sweep) or not args.out:
            parser.error("give --compare or --sweep, with --out (or --refit)")
        runs = args.compare or args.sweep
        (compare_figure if args.compare else sweep_figure)(runs, args.out)
        columns, rows = (compare_table if args.compare else sweep_table)(runs)
        title = ("The same networks, two losses: over training" if args.compare
                 else "The clip sweep")
        print(f"wrote {args.out}")
    print("\n".join("| " + " | ".join(map(str, row)) + " |"
                    for row in [columns, ["---"] * len(columns)] + rows))
    if args.json:
        common.write_json({"title": title, "columns": columns, "rows": rows,
                           "provenance": common.provenance()}, args.json)
    return None


if __name__ == "__main__":
    main()
