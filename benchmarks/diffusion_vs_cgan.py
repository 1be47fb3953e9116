"""Diffusion against the conditional GAN, from the checkpoints of finished runs: what each costs
per sample and what its samples score, for the same asked digits.

Prints one table row per setting: the conditional GAN; the diffusion model with DDIM (50 steps)
at several guidance weights; and DDPM (all 1000 steps) against DDIM on the same labels. Every
row draws labels 0-9 spread evenly and is measured by common.sample_quality (FID at the row's N,
so compare FIDs only at equal N). Writes a figure of the same ten digits from both models.

    DATA_DIR=/path/to/data python benchmarks/diffusion_vs_cgan.py \\
        --diffusion runs/diffusion/main/checkpoint.pt --cgan runs/cgan/mlp-30k/checkpoint.pt \\
        --figure docs/diffusion_vs_cgan.png
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


def measure(name, draw, labels, classifier, data_dir):
    """Time draw(labels), measure the images, print a table row."""
    torch.manual_seed(0)
    started = time.perf_counter()
    images = draw(labels)
    seconds = time.perf_counter() - started
    quality = common.sample_quality(images, labels, classifier, data_dir)
    accuracy, n = quality["conditional_accuracy"], len(labels)
    standard_error = (accuracy * (1 - accuracy) / n) ** 0.5
    print(f"| {name} | {n} | {seconds / n * 1000:.3g} | {accuracy:.2%} +- {standard_error:.2%} | "
          f"{quality['fid']:.1f} | {quality['class_entropy']:.3f} |", flush=True)
    return images


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", required=True, help="diffusion.py checkpoint")
    parser.add_argument("--cgan", required=True, help="cgan.py checkpoint")
    parser.add_argument("--samples", type=int, default=1000, help="N of the DDIM and cgan rows")
    parser.add_argument("--ddpm-samples", type=int, default=200,
                        help="N of the DDPM-against-DDIM rows (DDPM costs 1000 steps a sample)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--default-guidance", type=float, default=1.0)
    parser.add_argument("--figure", help="PNG of the same digits from both models")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    classifier = common.load_classifier()          # loaded outside the timings

    model, schedule, config = diffusion.load_model(args.diffusion, "cpu")
    shape = config["image_shape"]
    state = common.load_checkpoint(args.cgan, "cgan")
    generator, _ = cgan.build_networks(state["config"])
    common.load_weights(generator, state["ema_generator"], args.cgan)
    z_dim = state["config"]["z_dim"]

    def diffusion_draw(guidance, sampler="ddim"):
        return lambda labels: diffusion.draw_samples(model, schedule, labels, shape,
                                                     guidance=guidance, sampler=sampler)

    labels = common.class_labels(args.samples, None, "cpu")
    print("| model | N | ms per sample | conditional accuracy | FID | class entropy |")
    print("|---|---|---|---|---|---|")
    cgan_images = measure("cgan.py (one generator pass)",
                          lambda wanted: cgan.draw_samples(generator, wanted, z_dim), labels,
                          classifier, args.data_dir)
    diffusion_images = None
    for guidance in args.guidance:
        images = measure(f"diffusion, DDIM 50 steps, w = {guidance:g}", diffusion_draw(guidance),
                         labels, classifier, args.data_dir)
        if guidance == args.default_guidance:
            diffusion_images = images
    few = common.class_labels(args.ddpm_samples, None, "cpu")
    for sampler in ("ddim", "ddpm"):
        steps = len(diffusion.sampling_timesteps(schedule, sampler, 50))
        measure(f"diffusion, {sampler.upper()} {steps} steps, w = {args.default_guidance:g}",
                diffusion_draw(args.default_guidance, sampler), few, classifier, args.data_dir)

    if args.figure and diffusion_images is not None:
        # the first 50 samples of each model: labels 0-9 in every row
        rows = torch.cat([diffusion_images[:50], cgan_images[:50]])
        common.save_labeled_grid(rows, [str(digit) for digit in range(10)], args.figure,
                                 row_titles=[f"diffusion {i + 1}" for i in range(5)]
                                 + [f"cgan {i + 1}" for i in range(5)],
                                 title=f"the same asked digits: diffusion (DDIM 50, w = "
                                       f"{args.default_guidance:g}) above, cgan below")
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
