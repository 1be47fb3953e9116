"""How much the quality numbers move by chance, and what they say of samples without variety.

draws: for each checkpoint, --draws independent draws of N samples at each N of --n, measured by
common.sample_quality as a run's evaluation is (labels 0-9 spread evenly for the conditional
models). A draw redoes everything random at sampling time: z (or the diffusion noise) and, for
a generator with batch norm, its standing statistics (common.standing_statistics from a stream
seeded with the draw's number; a run's own evaluations use seed 0). Prints each number's mean
and standard deviation over the draws. The diffusion models sample with DDIM 50
steps at w = 1, as their runs evaluate.

control (--control): 10,000 images with the ten classes balanced and little or no variety inside
a class: one training image per class repeated 1,000 times, ten per class repeated 100 times, a
hundred per class repeated 10 times; beside 10,000 real training images and one image repeated
10,000 times (FID's reference is the test set).

    DATA_DIR=/path/to/data python benchmarks/noise.py \\
        gan-mlp=runs/gan/logistic-20k-seed1/checkpoint.pt --draws 5 --n 1000 10000 --control \\
        --json docs/runs/noise/draws.json
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import cgan  # noqa: E402
import common  # noqa: E402
import diffusion  # noqa: E402
import diffusion_vs_cgan  # noqa: E402
import gan  # noqa: E402
import wgan  # noqa: E402

MEASURES = ("fid", "class_entropy", "conditional_accuracy")


def sampler(path):
    """(what the checkpoint is, draw(n, seed) -> (images in [-1, 1], labels or None))."""
    model = common.load_checkpoint(path, None)
    if model in ("diffusion", "latent_diffusion"):
        denoiser, schedule, shape, clip, decode, _ = diffusion_vs_cgan.load_diffusion(path)

        def draw(n, seed):
            torch.manual_seed(seed)
            labels = common.class_labels(n, None, "cpu")
            return decode(diffusion.draw_samples(denoiser, schedule, labels, shape, clip=clip,
                                                 guidance=1.0, sampler="ddim", steps=50)), labels
        return f"{model}.py", draw
    if model not in ("gan", "cgan", "wgan"):
        raise common.UserError(f"{path}: a checkpoint of {model}.py, which draws no samples")
    state = common.load_checkpoint(path, model)
    config = state["config"]
    script = {"gan": gan, "cgan": cgan, "wgan": wgan}[model]
    generator, _ = script.build_networks(config)
    common.load_weights(generator, state["ema_generator"], path)
    generator.eval()
    classes = cgan.CLASSES if model == "cgan" else None

    def draw(n, seed):
        common.standing_statistics(generator, config["z_dim"], classes, seed=seed)
        torch.manual_seed(seed)
        if model == "cgan":
            labels = common.class_labels(n, None, "cpu")
            return cgan.draw_samples(generator, labels, config["z_dim"]), labels
        return common.draw_samples(generator, n, config["z_dim"], "cpu"), None
    return f"{model}.py {config.get('arch', '')}".strip(), draw


def draw_noise(name, path, counts, draws, classifier, data_dir, diffusion_n):
    """{N: {measure: [one value per draw]}} for one checkpoint, and what it is; a diffusion
    model's samples are costly: only the N up to diffusion_n."""
    kind, draw = sampler(path)
    results = {}
    for n in [n for n in counts if n <= diffusion_n or "diffusion" not in kind]:
        values = {measure: [] for measure in MEASURES}
        for seed in range(draws):
            images, labels = draw(n, seed)
            quality = common.sample_quality(images, labels, classifier, data_dir)
            for measure in MEASURES:
                if measure in quality:
                    values[measure].append(quality[measure])
        results[str(n)] = {measure: v for measure, v in values.items() if v}
        shown = ", ".join(f"{measure} {np.mean(v):.4g} +- {np.std(v, ddof=1):.2g}"
                          for measure, v in results[str(n)].items())
        print(f"{name} ({kind}), N = {n}, {draws} draws: {shown}", flush=True)
    return {"checkpoint": str(path), "model": kind, "draws": draws, "by_n": results}


def repeated(images, labels, per_class, n):
    """n images, the classes balanced: the first `per_class` images of each class, each repeated
    n / (10 per_class) times."""
    chosen = torch.cat([torch.nonzero(labels == digit).flatten()[:per_class]
                        for digit in range(10)])
    times = n // len(chosen)
    return images[chosen].repeat_interleave(times, 0), labels[chosen].repeat_interleave(times)


def control(classifier, data_dir, n=10000):
    """The variety control's rows: [set, FID, class entropy]."""
    train_images, train_labels = common.load_dataset("mnist", train=True, data_dir=data_dir)
    images = common.to_training_tensor(train_images, "cpu")
    labels = torch.from_numpy(train_labels).long()
    sets = {f"{n:,} real training images": (images[:n], labels[:n])}
    for per_class in (1, 10, 100):
        sets[f"{per_class} training image{'s' if per_class > 1 else ''} per class, each "
             f"repeated {n // (10 * per_class):,} times"] = repeated(images, labels, per_class, n)
    sets[f"one training image repeated {n:,} times"] = (images[:1].repeat(n, 1, 1, 1),
                                                         labels[:1].repeat(n))
    rows = []
    for name, (samples, intended) in sets.items():
        quality = common.sample_quality(samples, intended, classifier, data_dir)
        rows.append([name, round(quality["fid"], 2), round(quality["class_entropy"], 3)])
        print("| " + " | ".join(str(cell) for cell in rows[-1]) + " |", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="*", metavar="NAME=CKPT",
                        help="a name for the table and a checkpoint of gan.py, cgan.py, wgan.py, "
                             "diffusion.py or latent_diffusion.py")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--diffusion-n", type=int, default=1000,
                        help="the largest N drawn from a diffusion model (its N in the docs)")
    parser.add_argument("--control", action="store_true", help="also the variety control")
    parser.add_argument("--json", help="write the results to this file (docs/runs/...)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.draws < 2 or min(args.n) < 2:
        parser.error("a spread needs --draws of at least 2 and N of at least 2")
    pairs = [item.split("=", 1) for item in args.checkpoints]
    if any(len(pair) != 2 for pair in pairs):
        parser.error("give each checkpoint as NAME=CKPT")
    torch.set_grad_enabled(False)
    classifier = common.load_classifier()
    results = {"draws": {name: draw_noise(name, path, args.n, args.draws, classifier,
                                          args.data_dir, args.diffusion_n)
                         for name, path in pairs}}
    if args.control:
        results["control"] = {"columns": ["set", "FID", "class entropy"],
                              "rows": control(classifier, args.data_dir)}
    if args.json:
        common.write_json({**results, "provenance": common.provenance()}, args.json)


if __name__ == "__main__":
    main()
