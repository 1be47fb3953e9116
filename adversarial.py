"""Adversarial examples: fool a well-trained MNIST classifier (Goodfellow, Shlens and Szegedy,
"Explaining and Harnessing Adversarial Examples", ICLR 2015; the iterated attack is the basic
iterative method of Kurakin, Goodfellow and Bengio, "Adversarial Examples in the Physical World",
2017, which Madry et al. 2018 call projected gradient descent once it starts at a random point).

A classifier f maps an image x (pixels in [0, 1]) to logits; training made the cross-entropy
CE(f(x), y) small for the training images by following its gradient with respect to the weights.
The same gradient can be taken with respect to the input instead: grad_x CE(f(x), t) says how to
change each pixel to make the network read class t. That is all an adversarial example is.

Targeted attack (here 4 -> 9), the basic iterative method (BIM): sign steps, each projected back
into the L-infinity ball of radius eps around the image and into [0, 1]:

    x_0 = x            (--random-start: x_0 = x + U[-eps, eps]^784, Madry et al.'s PGD)
    x_{k+1} = clip_[0,1]( clip_[x - eps, x + eps]( x_k - step * sign(grad_x CE(f(x_k), t)) ) )

stopping for each image as soon as argmax f(x_k) = t, and, as a second run under the rule of the
noise experiment below, once p(t | x_k) >= --confidence. The ball keeps every pixel within eps of
the original, so the change stays small; sign() spends the whole step budget on every pixel.
FGSM is the single step x' = clip(x - eps * sign(grad)): cheaper, and much weaker, because one
linear step from x is a poor guide once the network bends.

Why small, structured perturbations flip confident predictions (the linearity argument): a logit
is close to w . x for some effective weight vector w. Moving every pixel by eps in the direction
sign(w) changes the logit by eps * ||w||_1, which grows with the number of pixels (784 here) even
when eps is too small to see. Networks built from ReLUs and linear layers are piecewise linear,
so this holds for them too.

Why noise can become a confident "9": training only shapes f near the training images. Far from
the data (a uniform-noise image is far from every digit) nothing in the loss penalizes a
confident answer, and the logits there are just the extrapolation of those linear pieces. A few
gradient steps reach a region where the "9" logit dominates, while the image still looks like
noise: the classifier learned features that separate the digits, not what a digit is.

The classifier attacked here is the one that measures every generative model of the project
(common.Classifier, its weights committed in weights/mnist_classifier.pt). --retrain trains a new
one from scratch (Adam with a one-cycle learning rate, a few epochs), attacks that one instead,
and says how to make it the project's yardstick.

    python adversarial.py                       # attack the committed classifier, 4 -> 9
    python adversarial.py --source 3 --target 8 --eps 0.2
    python adversarial.py --retrain             # rebuild the classifier, then attack it
"""
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import common


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    digit, positive = common.bounded(int, at_least=0, at_most=9), common.bounded(int, at_least=1)
    parser.add_argument("--source", type=digit, default=4, help="digit to attack")
    parser.add_argument("--target", type=digit, default=9, help="digit the classifier should read")
    parser.add_argument("--eps", type=common.bounded(float, above=0, at_most=1), default=0.2,
                        help="L-infinity radius, in (0, 1]: pixels are in [0, 1]")
    parser.add_argument("--random-start", action="store_true",
                        help="start each attack at a random point of the eps ball (PGD, Madry et "
                             "al. 2018) instead of at the image (BIM)")
    parser.add_argument("--step-size", "--step", dest="step", type=common.bounded(float, above=0),
                        default=0.01, metavar="S",
                        help="sign step size")
    parser.add_argument("--iters", "--steps", dest="steps", type=positive, default=100, metavar="N",
                        help="most iterations of the attack per image")
    parser.add_argument("--noise", choices=["uniform", "gaussian"], default="uniform",
                        help="starting images of the noise -> target experiment")
    parser.add_argument("--noise-images", type=positive, default=16)
    parser.add_argument("--confidence", type=common.bounded(float, above=0, below=1), default=0.99,
                        help="target probability at which an image counts as converted (the "
                             "noise images, and the second attack on the source digits)")
    parser.add_argument("--sweep-images", type=positive,
                        help="source images used for the success-rate-vs-eps curve (default: all)")
    parser.add_argument("--classifier", help="the classifier to attack (default: the committed "
                                             "one, weights/mnist_classifier.pt)")
    parser.add_argument("--retrain", action="store_true",
                        help="train a new classifier into the run folder and attack it")
    parser.add_argument("--epochs", type=positive, default=3, help="classifier training epochs")
    common.add_shared_arguments(parser, "adversarial")
    args = parser.parse_args(argv)
    if args.source == args.target:
        parser.error(f"--source and --target are both {args.source}: pick two different digits")
    if args.retrain and args.classifier:
        parser.error("--retrain trains a new classifier: give --retrain or --classifier, not both")
    return args


# ---------------------------------------------------------------------------------------------
# The classifier (common.Classifier): its accuracy, and how it is trained

def evaluate_accuracy(classifier, images, labels, batch_size=2000):
    with torch.no_grad():
        predictions = torch.cat([classifier(images[i:i + batch_size]).argmax(1)
                                 for i in range(0, len(images), batch_size)])
    return (predictions == labels).float().mean().item()


def train_classifier(data_dir=None, epochs=3, device="cpu", seed=0):
    """Adam with a one-cycle learning rate, a few epochs of shuffled batches of 128."""
    common.seed_everything(seed)
    images, labels = common.load_dataset("mnist", train=True, data_dir=data_dir)
    train_images = torch.from_numpy(images).to(device).float() / 255      # (60000, 1, 28, 28)
    train_labels = torch.from_numpy(labels).to(device)
    classifier = common.Classifier().to(device)
    batch_size, batches = 128, max(len(train_images) // 128, 1)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3,
                                                   total_steps=epochs * batches)
    progress = common.Progress(epochs * batches, every=batches)
    for epoch in range(epochs):
        order = torch.randperm(len(train_images), device=device)
        for batch in range(batches):
            index = order[batch * batch_size:(batch + 1) * batch_size]
            loss = F.cross_entropy(classifier(train_images[index]), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            progress.update(epoch * batches + batch + 1, loss=loss.item())
    return classifier.eval()


def retrain_classifier(out, data_dir, epochs, device, seed):
    """Train a new classifier, save it as out/mnist_classifier.pt, and say how to make it the
    project's measuring classifier. The committed file is never overwritten here."""
    print(f"training a new MNIST classifier ({epochs} epochs)")
    started = time.perf_counter()
    classifier = train_classifier(data_dir, epochs, device, seed)
    seconds = time.perf_counter() - started
    images, labels = common.load_dataset("mnist", train=False, data_dir=data_dir)
    accuracy = evaluate_accuracy(classifier, torch.from_numpy(images).to(device).float() / 255,
                                 torch.from_numpy(labels).to(device))
    path = out / "mnist_classifier.pt"
    common.save_checkpoint({"model": "adversarial", "config": {"epochs": epochs, "seed": seed},
                            "classifier": classifier.state_dict(), "test_accuracy": accuracy},
                           path)
    print(f"classifier: test accuracy {accuracy:.2%}, trained in {seconds:.0f} s, saved as {path}"
          f"\nto measure with it, pass --classifier {path} to a script; to make it the project's "
          f"yardstick, copy it to weights/mnist_classifier.pt and set CLASSIFIER_SHA256 in "
          f"common.py to {common.file_digest(path, 'sha256')} (every published number then "
          f"has to be measured again)")
    return common.load_classifier(path, device)


# ---------------------------------------------------------------------------------------------
# The attacks

def input_gradient(classifier, images, target):
    """grad_x CE(f(x), t): the direction in pixel space that raises the target's loss."""
    images = images.detach().requires_grad_(True)
    loss = F.cross_entropy(classifier(images), target, reduction="sum")  # sum: per-image gradients
    return torch.autograd.grad(loss, images)[0]


def fgsm(classifier, images, target, eps):
    """One step: x' = clip_[0,1](x - eps * sign(grad_x CE(f(x), t)))."""
    return (images - eps * input_gradient(classifier, images, target).sign()).clamp(0, 1)


def targeted_attack(classifier, images, target, eps, step, steps, confidence=None,
                    random_start=False):
    """Iterated sign steps toward the target, projected into the eps ball and [0, 1] (BIM; with
    random_start, PGD); each image stops as soon as it is read as the target (or, with
    `confidence`, once p(target) reaches it). eps=None means no ball (the noise experiment).
    Returns the adversarial images and the number of steps each one took."""
    adversarial = images.clone()
    if random_start and eps is not None:   # x_0 uniform in the ball, kept in [0, 1]
        adversarial = (images + torch.empty_like(images).uniform_(-eps, eps)).clamp(0, 1)
    iterations = torch.zeros(len(images), dtype=torch.long, device=images.device)
    for _ in range(steps):
        with torch.no_grad():
            logits = classifier(adversarial)
        if confidence is None:
            active = logits.argmax(1) != target                    # images not yet fooled
        else:
            active = F.softmax(logits, 1).gather(1, target[:, None])[:, 0] < confidence
        if not active.any():
            break
        gradient = input_gradient(classifier, adversarial[active], target[active])
        # x_{k+1} = x_k - step * sign(grad): descend the cross-entropy toward the target class
        moved = adversarial[active] - step * gradient.sign()
        if eps is not None:
            # project back into the L-infinity ball: |x_{k+1} - x| <= eps, pixel by pixel
            original = images[active]
            moved = torch.minimum(torch.maximum(moved, original - eps), original + eps)
        adversarial[active] = moved.clamp(0, 1)                    # and keep valid pixels
        iterations[active] += 1
    return adversarial, iterations


def attack_report(classifier, originals, adversarial, target, iterations=None):
    """Success rate, perturbation sizes, steps and target probability of a batch of attacks."""
    with torch.no_grad():
        probabilities = F.softmax(classifier(adversarial), dim=1)
    success = probabilities.argmax(1) == target
    delta = (adversarial - originals).flatten(1)
    report = {"images": len(originals), "success_rate": success.float().mean().item(),
              "linf_mean": delta.abs().amax(1).mean().item(),
              "linf_max": delta.abs().amax(1).max().item(),
              "l2_mean": delta.norm(dim=1).mean().item(), "l2_max": delta.norm(dim=1).max().item(),
              "target_probability_mean": probabilities[:, target[0]].mean().item()}
    if iterations is not None:
        report["iterations_mean"] = iterations.float().mean().item()
    return report


# ---------------------------------------------------------------------------------------------
# Figures

def save_attack_figure(classifier, originals, adversarial, path, rows=6):
    """Each row: original | perturbation (amplified) | adversarial, with prediction and prob."""
    with torch.no_grad():
        probabilities = {"original": F.softmax(classifier(originals[:rows]), 1),
                         "adversarial": F.softmax(classifier(adversarial[:rows]), 1)}
    delta = (adversarial[:rows] - originals[:rows]).cpu()
    scale = delta.abs().max().item() or 1.0
    figure, axes = common.pyplot().subplots(rows, 3, figsize=(6, 2.1 * rows))
    for row in range(min(rows, len(originals))):
        panels = [(originals[row], "original", probabilities["original"][row]),
                  (delta[row] / (2 * scale) + 0.5, f"perturbation x{0.5 / scale:.1f}", None),
                  (adversarial[row], "adversarial", probabilities["adversarial"][row])]
        for axis, (image, title, probs) in zip(axes[row], panels):
            axis.imshow(image.detach().cpu().squeeze(0), cmap="gray", vmin=0, vmax=1)
            if probs is not None:
                title += f"\nreads {probs.argmax().item()} ({probs.max().item():.2f})"
            else:
                title += f"\n(max |delta| {scale:.2f})"
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    common.save_figure(figure, path, dpi=90)


def save_noise_figure(classifier, before, after, path, columns=8):
    columns = min(columns, len(before))
    with torch.no_grad():
        probabilities = [F.softmax(classifier(images[:columns]), 1) for images in (before, after)]
    figure, axes = common.pyplot().subplots(2, columns, figsize=(1.5 * columns, 3.6),
                                            squeeze=False)
    for row, (images, probs, name) in enumerate(zip((before, after), probabilities,
                                                    ("noise", "after"))):
        for col in range(columns):
            axes[row, col].imshow(images[col].detach().cpu().squeeze(0), cmap="gray",
                                  vmin=0, vmax=1)
            axes[row, col].set_title(f"{name}: {probs[col].argmax().item()} "
                                     f"({probs[col].max().item():.2f})", fontsize=7)
            axes[row, col].axis("off")
    common.save_figure(figure, path, dpi=90)


def save_sweep_figure(sweep, path, source, target):
    figure, axis = common.pyplot().subplots(figsize=(5, 3.5))
    for method, name in (("iterative", "BIM (iterated)"), ("fgsm", "FGSM (one step)")):
        axis.plot(sweep["eps"], sweep[method], marker="o", label=name)
    axis.set_xlabel("eps (L-infinity radius, pixels in [0, 1])")
    axis.set_ylabel(f"success rate {source} -> {target}")
    axis.grid(alpha=0.3)
    axis.legend()
    common.save_figure(figure, path)


# ---------------------------------------------------------------------------------------------
# The experiments

def attack_sources(classifier, sources, args):
    """The targeted iterative attack from every source image, stopping at the first flip and,
    the rule of the noise experiment, at p(target) >= --confidence; and FGSM at the same eps."""
    target = torch.full((len(sources),), args.target, device=sources.device)
    started = time.perf_counter()
    adversarial, iterations = targeted_attack(classifier, sources, target, args.eps, args.step,
                                              args.steps, random_start=args.random_start)
    flipped = attack_report(classifier, sources, adversarial, target, iterations)
    flipped["seconds"] = time.perf_counter() - started
    confident_images, confident_iterations = targeted_attack(
        classifier, sources, target, args.eps, args.step, args.steps, confidence=args.confidence,
        random_start=args.random_start)
    confident = attack_report(classifier, sources, confident_images, target, confident_iterations)
    confident["converted_share"] = converted_share(classifier, confident_images, args)
    fgsm_report = attack_report(classifier, sources, fgsm(classifier, sources, target, args.eps),
                                target)
    return adversarial, flipped, confident, fgsm_report


def converted_share(classifier, images, args):
    """The share of images whose p(target) reached --confidence."""
    with torch.no_grad():
        probability = F.softmax(classifier(images), 1)[:, args.target]
    return (probability >= args.confidence).float().mean().item()


def sweep_steps(eps, step, most):
    """Kurakin et al.'s budget for the basic iterative method: min(eps + 4, 1.25 eps) steps of one
    grey level (eps in grey levels), a distance of min(eps + 4/255, 1.25 eps) in pixels, walked
    here in steps of `step`: enough to reach the ball's edge and move along it a little; at most
    `most`. (Rounded to 9 digits first, so that 0.35 / 0.01 = 34.999... counts as 35.)"""
    return min(most, math.ceil(round(min(eps + 4 / 255, 1.25 * eps) / step, 9)))


def eps_sweep(classifier, sources, args):
    """Success rate (the class flips) against eps on the first --sweep-images sources (default:
    all): where does the classifier start to give way? Each eps runs sweep_steps() steps, since
    an image that has not flipped by the time it reached the ball's edge rarely flips later."""
    subset = sources[:args.sweep_images]
    target = torch.full((len(subset),), args.target, device=subset.device)
    sweep = {"images": len(subset), "eps": [round(e, 3) for e in np.linspace(0, 0.3, 7).tolist()],
             "steps": [], "iterative": [], "fgsm": []}
    for eps in sweep["eps"]:
        steps = sweep_steps(eps, args.step, args.steps)
        attacked, _ = targeted_attack(classifier, subset, target, eps, args.step, steps,
                                      random_start=args.random_start)
        sweep["steps"].append(steps)
        sweep["iterative"].append(attack_report(classifier, subset, attacked,
                                                target)["success_rate"])
        sweep["fgsm"].append(attack_report(classifier, subset, fgsm(classifier, subset, target,
                                                                    eps), target)["success_rate"])
        print(f"sweep: eps {eps:.2f}, {steps} steps: {sweep['iterative'][-1]:.1%} of "
              f"{len(subset)} flipped (FGSM {sweep['fgsm'][-1]:.1%})", flush=True)
    return sweep


def noise_to_target(classifier, args, device):
    """The same steps from noise images, with no ball, until p(target) reaches --confidence
    (or --iters runs out). Returns the noise, the converted images and their report."""
    shape = (args.noise_images, 1, 28, 28)
    noise = torch.rand(shape, device=device) if args.noise == "uniform" else \
        (0.5 + 0.25 * torch.randn(shape, device=device)).clamp(0, 1)
    target = torch.full((args.noise_images,), args.target, device=device)
    converted, iterations = targeted_attack(classifier, noise, target, None, args.step,
                                            args.steps, confidence=args.confidence)
    report = attack_report(classifier, noise, converted, target, iterations)
    report["converted_share"] = converted_share(classifier, converted, args)
    return noise, converted, {"kind": args.noise, **report}


def print_summary(results, args):
    name = "PGD" if args.random_start else "BIM"
    flipped, confident, fgsm_report, sweep, noise = (
        results[key] for key in ("iterative", "iterative_confident", "fgsm", "sweep", "noise"))
    for report, rule in ((flipped, "until the class flips"),
                         (confident, f"until p(target) >= {args.confidence}")):
        print(f"{name} {args.source}->{args.target} at eps {args.eps}, {rule}: success "
              f"{report['success_rate']:.1%} of {report['images']}, mean Linf "
              f"{report['linf_mean']:.3f} (max {report['linf_max']:.3f}), mean L2 "
              f"{report['l2_mean']:.2f} (max {report['l2_max']:.2f}), "
              f"{report['iterations_mean']:.1f} steps, p(target) "
              f"{report['target_probability_mean']:.3f}")
    print(f"FGSM at eps {args.eps}: success {fgsm_report['success_rate']:.1%}, "
          f"p(target) {fgsm_report['target_probability_mean']:.3f}")
    print(f"success vs eps ({sweep['images']} images): " + ", ".join(
        f"{e:.2f}: {name} {p:.0%} FGSM {f:.0%}"
        for e, p, f in zip(sweep["eps"], sweep["iterative"], sweep["fgsm"])))
    print(f"{args.noise} noise -> {args.target}: p(target) {noise['target_probability_mean']:.3f}"
          f", {noise['converted_share']:.0%} past {args.confidence}, "
          f"{noise['iterations_mean']:.1f} steps, mean L2 change {noise['l2_mean']:.2f}")


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    device = common.pick_device(args.device)
    out = common.make_run_dir("adversarial", args.out)
    if args.retrain:
        classifier = retrain_classifier(out, args.data_dir, args.epochs, device, args.seed)
    else:
        classifier = common.load_classifier(args.classifier, device)
    common.seed_everything(args.seed)
    images, labels = common.load_dataset("mnist", train=False, data_dir=args.data_dir)
    test_images = torch.from_numpy(images).to(device).float() / 255
    test_labels = torch.from_numpy(labels).to(device)
    accuracy = evaluate_accuracy(classifier, test_images, test_labels)
    print(f"classifier test accuracy: {accuracy:.2%}")

    # Every test image of the source digit that the classifier gets right.
    with torch.no_grad():
        correct = classifier(test_images).argmax(1) == test_labels
    sources = test_images[(test_labels == args.source) & correct]
    if len(sources) == 0:
        raise common.UserError(f"no correctly classified test image of digit {args.source}")
    print(f"attacking the {len(sources)} test {args.source}s it reads right: {args.target} is "
          f"the target, eps {args.eps}, both stopping rules and FGSM", flush=True)
    adversarial, flipped, confident, fgsm_report = attack_sources(classifier, sources, args)
    sweep = eps_sweep(classifier, sources, args)
    print(f"{args.noise_images} {args.noise} noise images -> {args.target}", flush=True)
    noise, converted, noise_report = noise_to_target(classifier, args, device)

    save_attack_figure(classifier, sources, adversarial, out / "attack.png")
    save_noise_figure(classifier, noise, converted, out / "noise.png")
    save_sweep_figure(sweep, out / "success_vs_eps.png", args.source, args.target)
    results = {"classifier_test_accuracy": accuracy, "classifier_sha256": classifier.sha256,
               "source": args.source, "target": args.target, "eps": args.eps, "step": args.step,
               "steps": args.steps, "confidence": args.confidence,
               "attack": "PGD" if args.random_start else "BIM", "iterative": flipped,
               "iterative_confident": confident, "fgsm": fgsm_report, "sweep": sweep,
               "noise": noise_report, "provenance": common.provenance(device)}
    common.write_json(results, out / "metrics.json")
    print_summary(results, args)
    print(f"figures and metrics.json in {out}")
    return results


if __name__ == "__main__":
    main()
