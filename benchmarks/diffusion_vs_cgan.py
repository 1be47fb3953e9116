"""Diffusion on pixels, latent diffusion and the conditional GAN, from the checkpoints of finished
runs: how long each trained (in steps; what a step costs on a CPU is measured by
benchmarks/step_costs.py, on one machine), what it costs per sample, and what its samples score,
for the same asked digits.

Prints one table row per setting: the conditional GAN; the pixel diffusion model with DDIM (50
steps) at several guidance weights; the latent model (Stable Diffusion in miniature) likewise;
with --unguided, a model trained without label dropout, at w = 0 (problem 2(a) of the course:
against the guided model's rows); and DDPM (all 1000 steps) against DDIM on the same labels.
Every row draws labels 0-9 spread evenly, is timed in this one process (so the models are compared on the same machine and load),
and is measured by common.sample_quality (FID at the row's N: compare FIDs only at equal N).
Writes a figure of the same asked digits from the three models.

    DATA_DIR=/path/to/data python benchmarks/diffusion_vs_cgan.py \\
        --diffusion runs/diffusion/pixel/checkpoint.pt --latent runs/diffusion/latent/checkpoint.pt \\
        --cgan runs/cgan/mlp-30k/checkpoint.pt --figure docs/diffusion_vs_cgan.png
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cgan  # noqa: E402
import common  # noqa: E402
import diffusion  # noqa: E402
import latent_diffusion  # noqa: E402


COLUMNS = ["model", "training steps", "N", "ms per sample", "conditional accuracy", "FID",
           "class entropy"]
ROWS = []   # the table, also written with --json for docs/RESULTS.md


def measure(name, draw, labels, classifier, data_dir, train_steps):
    """Time draw(labels), measure the images, print a table row."""
    torch.manual_seed(0)
    started = time.perf_counter()
    images = draw(labels)
    seconds = time.perf_counter() - started
    quality = common.sample_quality(images, labels, classifier, data_dir)
    accuracy, n = quality["conditional_accuracy"], len(labels)
    standard_error = (accuracy * (1 - accuracy) / n) ** 0.5
    ROWS.append([name, train_steps, n, float(f"{seconds / n * 1000:.3g}"),
                 f"{accuracy:.2%} +- {standard_error:.2%}", round(quality["fid"], 1),
                 round(quality["class_entropy"], 3)])
    print("| " + " | ".join(str(cell) for cell in ROWS[-1]) + " |", flush=True)
    return images


def load_diffusion(path):
    """(denoiser, schedule, shape sampled, where x0_hat is clipped, decode, training steps) of a
    diffusion.py or a latent_diffusion.py checkpoint."""
    script = common.load_checkpoint(path, None)
    if script == "latent_diffusion":
        model, schedule, config, autoencoder = latent_diffusion.load_model(path, "cpu")
        shape, clip = latent_diffusion.latent_shape(config), autoencoder.latent_bound.item()
        decode = lambda z: latent_diffusion.decode(autoencoder, z)   # noqa: E731
    else:                                  # diffusion.py's, or a one-line error naming its script
        model, schedule, config = diffusion.load_model(path, "cpu")
        shape, clip, decode = config["image_shape"], 1.0, (lambda x: x)
    return model, schedule, shape, clip, decode, common.load_checkpoint(path, script)["iteration"]


def diffusion_rows(name, path, guidances, default, labels, classifier, data_dir):
    """One row per guidance weight (DDIM 50 steps); returns the images at the default weight."""
    model, schedule, shape, clip, decode, train_steps = load_diffusion(path)
    kept = None
    for guidance in guidances:
        images = measure(f"{name}, DDIM 50 steps, w = {guidance:g}"
                         + (" (default)" if guidance == default else ""),
                         lambda wanted: decode(diffusion.draw_samples(
                             model, schedule, wanted, shape, guidance=guidance, clip=clip)),
                         labels, classifier, data_dir, train_steps)
        if guidance == default:
            kept = images
    return kept, (model, schedule, shape, train_steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", help="diffusion.py checkpoint (pixels)")
    parser.add_argument("--latent", help="latent_diffusion.py checkpoint")
    parser.add_argument("--cgan", required=True, help="cgan.py checkpoint")
    parser.add_argument("--samples", type=int, default=1000, help="N of the DDIM and cgan rows")
    parser.add_argument("--ddpm-samples", type=int, default=200,
                        help="N of the DDPM-against-DDIM rows (DDPM costs 1000 steps a sample; "
                             "0: no such rows)")
    parser.add_argument("--unguided", help="a diffusion.py or latent_diffusion.py checkpoint "
                                           "trained with --p-uncond 0 (no label dropout): one "
                                           "row, at w = 0")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--default-guidance", type=float, default=1.0)
    parser.add_argument("--figure", help="PNG of the same digits from the models")
    parser.add_argument("--json", help="also write the table to this file (docs/runs/...)")
    parser.add_argument("--title", default="Diffusion on pixels, latent diffusion and the "
                                           "conditional GAN: the same asked digits",
                        help="the table's title in docs/RESULTS.md")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.diffusion and common.load_checkpoint(args.diffusion, None) != "diffusion":
        parser.error(f"--diffusion {args.diffusion}: not a checkpoint of diffusion.py (pixels)")
    torch.set_grad_enabled(False)
    classifier = common.load_classifier()          # loaded outside the timings

    state = common.load_checkpoint(args.cgan, "cgan")
    generator, _ = cgan.build_networks(state["config"])
    common.load_weights(generator, state["ema_generator"], args.cgan)
    z_dim = state["config"]["z_dim"]

    labels = common.class_labels(args.samples, None, "cpu")
    print("| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|")
    rows = {"cgan": measure("cgan.py (one generator pass)",
                            lambda wanted: cgan.draw_samples(generator, wanted, z_dim), labels,
                            classifier, args.data_dir, state["iteration"])}
    if args.diffusion:
        rows["pixel diffusion"], pixel = diffusion_rows(
            "pixel diffusion", args.diffusion, args.guidance, args.default_guidance, labels,
            classifier, args.data_dir)
    if args.latent:
        rows["latent diffusion"], _ = diffusion_rows(
            "latent diffusion", args.latent, args.guidance, args.default_guidance, labels,
            classifier, args.data_dir)
    if args.unguided:
        diffusion_rows("no label dropout (--p-uncond 0)", args.unguided, [0], None, labels,
                       classifier, args.data_dir)
    few = common.class_labels(args.ddpm_samples, None, "cpu")
    for sampler in ("ddim", "ddpm") if args.ddpm_samples and args.diffusion else ():
        model, schedule, shape, train_steps = pixel
        steps = len(diffusion.sampling_timesteps(schedule, sampler, 50))
        measure(f"pixel diffusion, {sampler.upper()} {steps} steps, w = "
                f"{args.default_guidance:g}",
                lambda wanted: diffusion.draw_samples(
                    model, schedule, wanted, shape,
                    guidance=args.default_guidance, sampler=sampler),
                few, classifier, args.data_dir, train_steps)

    if args.figure:   # the first 30 samples of each model: labels 0-9 in every row
        names = [name for name in ("pixel diffusion", "latent diffusion", "cgan") if name in rows]
        common.save_labeled_grid(torch.cat([rows[name][:30] for name in names]),
                                 [str(digit) for digit in range(10)], args.figure,
                                 row_titles=[f"{name} {i + 1}" for name in names
                                             for i in range(3)],
                                 title=f"the same asked digits (diffusion: DDIM 50, w = "
                                       f"{args.default_guidance:g})")
        print(f"wrote {args.figure}")
    if args.json:
        common.write_json({"title": args.title, "columns": COLUMNS,
                           "rows": ROWS, "provenance": common.provenance()}, args.json)


if __name__ == "__main__":
    main()
