"""What a training iteration and a sample cost on this CPU, each timed in this one process:

  a training iteration   batch 64 at the scripts' defaults: cgan.py's MLPs, diffusion.py's pixel
                         U-Net, latent_diffusion.py's autoencoder (its stage 1) and its latent
                         denoiser, each with its optimizer step and its EMA update; times the
                         default number of iterations, the training time of the default run
                         (sampling and evaluation not counted)
  memory layout          a pixel U-Net iteration with the weights and the batch in channels-last
                         layout, as diffusion.py trains, or in PyTorch's default (contiguous) one
  batch size             pixel U-Net training images per second at batch 32, 64 (the default), 128
  sampling chunk         milliseconds per sample of diffusion.draw_samples (pixel U-Net, DDIM,
                         w = 1: two network passes per step) when the labels are sampled 25, 100
                         (the default) or 500 at a time; timed with --sampling-steps steps, since
                         the cost per sample grows with the steps and the chunk acts on each pass

The networks are untrained and the data random: speed does not depend on either. Each variant is
timed --repeats times, in turn with the others, and the fastest time counts (the least disturbed).
Run it with nothing else on the cores:

    python benchmarks/step_costs.py --json docs/runs/speed/step_costs.json
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cgan  # noqa: E402
import common  # noqa: E402
import diffusion  # noqa: E402
import latent_diffusion  # noqa: E402

BATCH = 64


def cgan_iteration():
    """One iteration of cgan.py's default run: its train_step, then the EMA update."""
    args = cgan.parse_args([])
    config = {"arch": args.arch, "z_dim": args.z_dim, "d_dropout": args.d_dropout,
              "image_shape": [1, 28, 28]}
    generator, discriminator = cgan.build_networks(config)
    ema_generator = copy.deepcopy(generator).requires_grad_(False)
    opt_g, opt_d = common.adam_pair(generator, discriminator, args.lr, (args.beta1, 0.999))
    real, real_labels = torch.rand(BATCH, 1, 28, 28) * 2 - 1, torch.randint(10, (BATCH,))

    def iteration():
        z, fake_labels = torch.randn(BATCH, args.z_dim), torch.randint(10, (BATCH,))
        cgan.train_step(generator, discriminator, opt_g, opt_d, real, real_labels, z, fake_labels)
        common.ema_update(ema_generator, generator, args.ema)
    return iteration, args.iters


def denoiser_iteration(script, layout=torch.channels_last, batch_size=BATCH):
    """One iteration of the default run of diffusion.py or latent_diffusion.py: diffusion's
    train_step, then the EMA update."""
    args = script.parse_args([])
    config = diffusion.run_config(args)
    if script is diffusion:
        model, shape = diffusion.UNet(1, args.channels), config["image_shape"]
    else:
        config.update(latent_channels=args.latent_channels)
        model, _ = latent_diffusion.build_networks(config)
        shape = latent_diffusion.latent_shape(config)
    model = model.to(memory_format=layout)
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), args.lr, fused=True)
    schedule = diffusion.NoiseSchedule(config["timesteps"], config["schedule"])
    x0 = torch.randn(batch_size, *shape)
    labels = torch.randint(10, (batch_size,))

    def iteration():
        diffusion.train_step(model, optimizer, schedule, x0, labels, config["p_uncond"])
        common.ema_update(ema_model, model, args.ema)
    return iteration, args.iters


def autoencoder_iteration():
    """One iteration of stage 1 of the latent model: latent_diffusion.autoencoder_step."""
    args = latent_diffusion.parse_args([])
    autoencoder = latent_diffusion.Autoencoder(1, args.latent_channels)
    optimizer = torch.optim.AdamW(autoencoder.parameters(), 2e-3, fused=True)
    x = torch.rand(BATCH, 1, 28, 28) * 2 - 1

    def iteration():
        latent_diffusion.autoencoder_step(autoencoder, optimizer, x)
    return iteration, args.ae_iters


def seconds_per_iteration(make, iterations, repeats):
    """The fastest of `repeats` timings of `iterations` calls, per call (after one warm-up)."""
    torch.manual_seed(0)
    iteration, _ = make()
    iteration()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            iteration()
        timings.append((time.perf_counter() - started) / iterations)
    return min(timings)


def seconds_per_sample(chunk, count, steps, repeats):
    """The fastest of `repeats` timings of draw_samples for `count` labels, per sample."""
    torch.manual_seed(0)
    model = diffusion.UNet(1, diffusion.parse_args([]).channels)
    schedule = diffusion.NoiseSchedule(1000)
    labels = torch.arange(count) % 10
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        diffusion.draw_samples(model, schedule, labels, (1, 28, 28), chunk=chunk, guidance=1.0,
                               sampler="ddim", steps=steps)
        timings.append((time.perf_counter() - started) / count)
    return min(timings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="training iterations a timing")
    parser.add_argument("--samples", type=int, default=500, help="samples a sampling timing")
    parser.add_argument("--sampling-steps", type=int, default=10, help="DDIM steps a sample")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the table to this file (docs/runs/...)")
    args = parser.parse_args(argv)
    if min(args.iterations, args.samples, args.sampling_steps, args.repeats) < 1:
        parser.error("--iterations, --samples, --sampling-steps and --repeats must be at least 1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []

    def row(what, variant, cost, at_default=""):
        rows.append([what, variant, cost, at_default])
        print(" | ".join(rows[-1]), flush=True)

    for name, make in [("cgan.py, MLPs", cgan_iteration),
                       ("diffusion.py, pixel U-Net", lambda: denoiser_iteration(diffusion)),
                       ("latent_diffusion.py, autoencoder", autoencoder_iteration),
                       ("latent_diffusion.py, denoiser",
                        lambda: denoiser_iteration(latent_diffusion))]:
        seconds = seconds_per_iteration(make, args.iterations, args.repeats)
        default_iterations = make()[1]
        row("a training iteration, batch 64", name, f"{seconds * 1000:.1f} ms",
            f"{default_iterations:,} iterations: {default_iterations * seconds / 60:.1f} min")
    for name, layout in [("channels-last (diffusion.py)", torch.channels_last),
                         ("contiguous", torch.contiguous_format)]:
        seconds = seconds_per_iteration(lambda: denoiser_iteration(diffusion, layout),
                                        args.iterations, args.repeats)
        row("memory layout, pixel U-Net iteration", name, f"{seconds * 1000:.1f} ms")
    for batch_size in (32, 64, 128):
        seconds = seconds_per_iteration(
            lambda: denoiser_iteration(diffusion, batch_size=batch_size), args.iterations,
            args.repeats)
        row("batch size, pixel U-Net training", f"{batch_size}" + " (diffusion.py)" *
            (batch_size == 64), f"{batch_size / seconds:.0f} images per second")
    for chunk in (25, 100, 500):
        seconds = seconds_per_sample(chunk, args.samples, args.sampling_steps, args.repeats)
        row(f"sampling chunk, pixel U-Net, DDIM {args.sampling_steps} steps at w = 1",
            f"{chunk}" + " (diffusion.py)" * (chunk == 100), f"{seconds * 1000:.1f} ms per sample")
    if args.json:
        common.write_json({"title": f"What a step costs on a CPU: fastest of {args.repeats} "
                                    f"timings of {args.iterations} training iterations or "
                                    f"{args.samples} samples",
                           "columns": ["what is timed", "variant", "cost", "at the default length"],
                           "rows": rows, "provenance": common.provenance(),
                           "classifier_sha256": None}, args.json)


if __name__ == "__main__":
    main()
