"""Check generated digits for what the numbers hide: a figure of the samples a model gets wrong.

Reads an .npz written by any script's --generate (images in [0, 1], labels for conditional
models) and shows three rows of evidence, each with its count in the title:
  1. the samples the MNIST classifier is least sure of (lowest top probability): broken strokes,
     two digits blended into one, blobs;
  2. for conditional models, samples read as another class than the one asked for (asked -> read);
  3. samples beside their nearest MNIST training image (pixel L2): a sample that is almost a
     copy (distance near 0) is memorized, not generated. Real test digits give the reference.

    python gan.py --checkpoint runs/gan/X/checkpoint.pt --generate 2000 --out gan.npz
    DATA_DIR=/path/to/data python benchmarks/inspect_samples.py gan.npz --out docs/inspect_gan.png \
        --json docs/runs/inspect/gan.json
"""
import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def nearest_training_distance(samples, train, chunk=500):
    """(distance, index) of each sample's nearest training image, L2 over pixels in [0, 1]."""
    train_norms = (train ** 2).sum(1)
    distances, indices = [], []
    for start in range(0, len(samples), chunk):
        batch = samples[start:start + chunk]
        squared = (batch ** 2).sum(1, keepdim=True) + train_norms - 2 * batch @ train.T
        best = squared.min(1)
        distances.append(best.values.clamp(min=0).sqrt())
        indices.append(best.indices)
    return torch.cat(distances), torch.cat(indices)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help=".npz from --generate")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--show", type=int, default=10, help="images per row")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="also write the numbers as a table (docs/runs/...)")
    args = parser.parse_args()
    with np.load(args.samples) as arrays:
        images = torch.from_numpy(arrays["images"]).float()
        asked = torch.from_numpy(arrays["labels"]) if "labels" in arrays else None
    classifier = common.load_classifier()
    with torch.no_grad():
        probabilities = classifier.head(classifier.features(images)).softmax(1)
    confidence, read = probabilities.max(1)
    rows, titles = [], []
    numbers = [["samples", len(images)],
               ["top probability below 0.9", f"{(confidence < 0.9).float().mean():.1%}"]]

    unsure = confidence.argsort()[:args.show]
    rows.append(images[unsure])
    titles.append(f"least sure: top p {confidence[unsure].min():.2f}-{confidence[unsure].max():.2f}"
                  f"; {(confidence < 0.9).float().mean():.1%} of {len(images)} below 0.9")
    if asked is not None:
        wrong = (read != asked).nonzero().flatten()
        print(f"read as another class than asked: {len(wrong)} of {len(images)}")
        for index in wrong[:args.show].tolist():
            print(f"  sample {index}: asked {asked[index].item()}, read {read[index].item()} "
                  f"(p {confidence[index]:.2f})")
        confusions = collections.Counter(f"{asked[i]} -> {read[i]}" for i in wrong.tolist())
        numbers.append(["read as another class than asked",
                        f"{len(wrong)} ({len(wrong) / len(images):.1%}): " + ", ".join(
                            f"{pair} x{count}" if count > 1 else pair
                            for pair, count in confusions.most_common())])
        if len(wrong):
            rows.append(images[wrong[:args.show]])
            pairs = ", ".join(f"{asked[i]}->{read[i]}" for i in wrong[:args.show].tolist())
            titles.append(f"asked -> read, {len(wrong)} of {len(images)}: {pairs}")

    train_images, _ = common.load_dataset("mnist", train=True, data_dir=args.data_dir)
    test_images, _ = common.load_dataset("mnist", train=False, data_dir=args.data_dir)
    train = torch.from_numpy(train_images).flatten(1).float() / 255
    test = torch.from_numpy(test_images[:len(images)]).flatten(1).float() / 255
    distance, nearest = nearest_training_distance(images.flatten(1), train)
    test_distance, _ = nearest_training_distance(test, train)
    closest = distance.argsort()[:args.show // 2]
    pairs = torch.stack([images[closest], train[nearest[closest]].view(-1, 1, 28, 28)], 1)
    rows.append(pairs.flatten(0, 1))
    titles.append(f"closest to training (sample | nearest): L2 {distance[closest].min():.2f}-"
                  f"{distance[closest].max():.2f}; median {distance.median():.2f}, real test "
                  f"digits {test_distance.median():.2f} (min {test_distance.min():.2f})")
    print("\n".join(titles))
    numbers += [["median L2 to the nearest training image", f"{distance.median():.2f}"],
                ["the same for real test digits (their minimum)",
                 f"{test_distance.median():.2f} ({test_distance.min():.2f})"],
                [f"the {len(closest)} closest samples: L2, and the digit read",
                 f"{distance[closest].min():.2f}-{distance[closest].max():.2f}: "
                 + ", ".join(str(digit) for digit in read[closest].tolist())]]
    if args.json:
        common.write_json({"title": f"What the averages hide: {Path(args.samples).name}",
                           "columns": ["measure", "value"], "rows": numbers,
                           "provenance": common.provenance()}, args.json)

    plt = common.pyplot()
    figure, axes = plt.subplots(len(rows), 1, figsize=(args.show * 0.55 + 0.5, 1.1 * len(rows)),
                                squeeze=False)
    for axis, row, title in zip(axes[:, 0], rows, titles):
        axis.imshow(common.image_grid(row * 2 - 1, ncol=args.show))
        axis.set_title(title, fontsize=7)
        axis.axis("off")
    common.save_figure(figure, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
