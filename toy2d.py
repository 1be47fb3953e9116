"""The GANs, WGANs and diffusion models of this project at work on points in the plane, in
seconds: the scripts' own losses, training steps and samplers, imported, on 2-D data small
enough to draw completely.

An image model's samples can only be looked at; a 2-D model's whole state can be drawn: the data,
the samples, the discriminator's verdict D(x) at every point of the plane, and the direction in
which each sample is pushed. The ideas are those of GAN Lab (Kahng et al., 2018), the WGAN
paper's Figure 2 (Arjovsky, Chintala and Bottou, 2017) and the Swiss roll of the diffusion papers;
the code that learns is not this file's but gan.py's, wgan.py's and diffusion.py's.

    python toy2d.py gan --loss minimax     # the GAN game on a ring of 8 Gaussians
    python toy2d.py gan --loss logistic    # the same game with the non-saturating loss
    python toy2d.py gan --double-sigmoid   # the course's bug: a sigmoid in D, then losses on logits
    python toy2d.py critic                 # what D and the WGAN's critics measure, 2-D and 1-D
    python toy2d.py diffusion              # a Swiss roll noised, denoised, and guided
    python toy2d.py coverage               # modes covered by four losses over five seeds

gan: gan.discriminator_loss, gan.generator_loss and gan.train_step on the ring of the
unrolled-GAN paper (Metz et al., 2017: radius 2, each Gaussian's standard deviation sigma = 0.02),
or (--data grid) a 5 x 5 grid of Gaussians (spacing 1.2, sigma = 0.05).
D first trains alone for --d-warmup steps, so the game starts where D wins. --double-sigmoid
shows the bug the course warns of: D's last layer a sigmoid, fed to gan.py's losses on logits,
which apply the sigmoid again, so D's believed probability sigmoid(sigmoid(l)) can only lie in
(sigmoid(0), sigmoid(1)) = (0.5, 0.73): D can never call a point fake. The arrow at each
generated point x is the step G's loss asks of it, -grad_x l_G(x), with the per-point loss

    minimax   l_G = log(1 - D(x))  gives  -grad_x l_G = D(x) grad_x logit(x)
    logistic  l_G = -log D(x)      gives  -grad_x l_G = (1 - D(x)) grad_x logit(x)

so where D is sure a point is fake (D(x) near 0) the minimax arrow vanishes and the logistic one
does not (Adam then rescales G's whole update, so the minimax loss weights each point by D(x)
rather than stopping G). Mode coverage: a generated point is of high quality when it lies within
3 sigma of the nearest mode, as in VEEGAN (Srivastava et al., 2017); a mode is covered here when
at least 1% of the points are high-quality points of it (VEEGAN counts a mode with one such point).
A run's count can jump from 8 to 0 within 50 steps, so the critic and coverage experiments report
the mean over the last 10 evaluations, one every 50 steps.

critic: wgan.train_step (its critic loss, its clamp, its gradient penalty) for the GAN loss, the
WGAN with clipping and WGAN-GP, as the WGAN-GP paper trains them on points (below, CRITICS), each
score drawn over the plane; then that paper's Figure 1: a clipped and a penalized critic trained
against a generator held fixed at the data plus Gaussian noise, their level sets on the ring, the
grid and the Swiss roll (critic_fixed.png); then the WGAN paper's Figure 2 in one dimension: the
optimal discriminator between two Gaussians, D*(x) = p_real(x) / (p_real(x) + p_fake(x)), is flat
where it is sure (its probability has no gradient there), while a critic is a slope across both
(the paper's critic was clipped; this one has the gradient penalty).

diffusion: diffusion.NoiseSchedule.q_sample on a Swiss roll at several t, diffusion.train_step
with label dropout, diffusion.sample with DDPM (stochastic) and DDIM (deterministic) drawn as
paths from noise to data, and classifier-free guidance (diffusion.guided_eps) with three classes,
three pieces of the roll, at w = 0, 1 and 3.

Each experiment writes its figure, metrics.json and (but coverage) a GIF over training to --out
(default runs/toy2d/<experiment>).
"""
import math
import time

import numpy as np
import torch
import torch.nn as nn

import common
import diffusion
import gan
import wgan

EXPERIMENTS = ["gan", "critic", "diffusion", "coverage"]
RING_RADIUS, RING_STD, RING_MODES = 2.0, 0.02, 8
GRID_SPACING, GRID_STD = 1.2, 0.05           # a 5 x 5 grid of Gaussians, centers -2.4 ... 2.4
PLANE = 3.0                                   # the figures show [-3, 3] x [-3, 3]
Z_DIM = 2                                     # the generators' noise
ARROW_SCALE = 10                              # an arrow of length 10 is drawn 1 unit long
FIRST_STEPS = 200                             # the arrows' mean length is taken over these
EVAL_EVERY, EVAL_LAST = 50, 10                # coverage: every 50 steps, the mean of the last 10


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--loss", choices=["minimax", "logistic"],
                        help="gan: G's loss (default logistic)")
    parser.add_argument("--data", choices=["ring", "grid"],
                        help="gan: a ring of 8 Gaussians or a 5 x 5 grid of 25 (default ring)")
    positive = common.bounded(int, at_least=1)
    parser.add_argument("--double-sigmoid", action="store_true", default=None,
                        help="gan: D ends in a sigmoid, and the losses on logits apply another")
    parser.add_argument("--d-warmup", type=common.bounded(int, at_least=0),
                        help="gan: steps D trains alone before the game, so it starts ahead "
                             "(default 300)")
    parser.add_argument("--g-hidden", type=positive,
                        help="gan and coverage: G's hidden units (default 128)")
    parser.add_argument("--iters", "--steps", dest="steps", type=positive, metavar="N",
                        help="training steps (default: gan and critic 2000, diffusion 6000, "
                             "coverage 2000 a run; critic's fixed-generator and 1-D figures: at "
                             "most 1000)")
    parser.add_argument("--seeds", type=positive, help="coverage: N runs a loss, seeds --seed ... "
                                                  "--seed + N - 1 (default 5)")
    parser.add_argument("--seed", type=common.bounded(int, at_least=0, below=2 ** 32), default=0)
    parser.add_argument("--out", help="folder (default runs/toy2d/<experiment>)")
    args = parser.parse_args(argv)
    own = {"loss": ["gan"], "data": ["gan"], "d_warmup": ["gan"], "g_hidden": ["gan", "coverage"],
           "seeds": ["coverage"], "double_sigmoid": ["gan"]}
    for name, experiments in own.items():
        if getattr(args, name) is not None and args.experiment not in experiments:
            parser.error(f"--{name.replace('_', '-')} is for {' and '.join(experiments)}")
    defaults = {"loss": "logistic", "data": "ring", "d_warmup": 300, "g_hidden": 128, "seeds": 5,
                "double_sigmoid": False,
                "steps": 6000 if args.experiment == "diffusion" else 2000}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ---------------------------------------------------------------------------------------------
# Data and networks

def ring(count, generator=None):
    """count points of the ring of 8 Gaussians, and the 8 centers."""
    angles = torch.arange(RING_MODES) * 2 * math.pi / RING_MODES
    centers = RING_RADIUS * torch.stack([angles.cos(), angles.sin()], 1)        # (8, 2)
    mode = torch.randint(RING_MODES, (count,), generator=generator)
    return centers[mode] + RING_STD * torch.randn(count, 2, generator=generator), centers


def grid(count, generator=None):
    """count points of the 5 x 5 grid of Gaussians, and the 25 centers."""
    axis = GRID_SPACING * torch.arange(-2, 3, dtype=torch.float32)
    centers = torch.cartesian_prod(axis, axis)                                  # (25, 2)
    mode = torch.randint(len(centers), (count,), generator=generator)
    return centers[mode] + GRID_STD * torch.randn(count, 2, generator=generator), centers


def mixture(name, count):
    """(points, centers, std) of the ring or the grid."""
    if name == "ring":
        return (*ring(count), RING_STD)
    return (*grid(count), GRID_STD)


def swiss_roll(count, generator=None):
    """count points of a Swiss roll in [-1, 1]^2, and their class: which third of the roll."""
    s = 1.5 * math.pi + 3 * math.pi * torch.rand(count, generator=generator)    # the angle
    points = torch.stack([s * s.cos(), s * s.sin()], 1) / 15
    points = points + 0.02 * torch.randn(count, 2, generator=generator)
    return points, ((s - 1.5 * math.pi) / math.pi).long().clamp(max=2)


def mlp(inputs, hidden, outputs):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, outputs))


class Critic(nn.Module):
    """D (its output a logit) or the WGAN's critic f: a point (B, D) -> a score (B,)."""

    def __init__(self, dimensions=2, hidden=128):
        super().__init__()
        self.net = mlp(dimensions, hidden, 1)

    def forward(self, x):
        return self.net(x).squeeze(1)


class SigmoidAtTheEnd(nn.Module):
    """A discriminator whose last layer is a sigmoid: its output is a probability, not the logit
    that gan.py's losses expect (--double-sigmoid)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return torch.sigmoid(self.network(x))


class Denoiser(nn.Module):
    """eps_theta(x_t, t, c) for points: the sinusoidal features of t (diffusion.py's) and an
    embedding of the class (0-2, or diffusion.NO_CLASS for no class) joined to x."""

    def __init__(self, hidden=128, time_dim=32):
        super().__init__()
        self.time_dim = time_dim
        # rows 0-2 for the classes and row diffusion.NO_CLASS (10) for "no class"; 3-9 unused
        self.class_embedding = nn.Embedding(diffusion.NO_CLASS + 1, 16)
        self.net = mlp(2 + time_dim + 16, hidden, 2)

    def forward(self, x, t, labels):
        diffusion.check_labels(labels)
        features = [x, diffusion.timestep_embedding(t, self.time_dim), self.class_embedding(labels)]
        return self.net(torch.cat(features, 1))


# ---------------------------------------------------------------------------------------------
# Measures

def mode_coverage(points, centers, std, min_share=0.01):
    """(modes covered, share of high-quality points): a point is of high quality within 3 std of
    its nearest center; a mode is covered when at least min_share of all points (and at least
    one) are high-quality points of it."""
    distance, nearest = torch.cdist(points, centers).min(1)
    good = distance <= 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return int((counts >= max(1.0, min_share * len(points))).sum()), good.float().mean().item()


def averaged_coverage(evaluations, last=EVAL_LAST):
    """The mean (modes covered, high-quality share) over the last `last` of a run's evaluations,
    each a mode_coverage() pair."""
    modes, shares = zip(*evaluations[-last:])
    return float(np.mean(modes)), float(np.mean(shares))


def generator_arrows(discriminator, points, loss):
    """-grad_x l_G(x) at each point, l_G the per-point generator loss of gan.py; and D(x)."""
    points = points.detach().requires_grad_(True)
    logits = discriminator(points)
    # the mean times B is the sum of the per-point losses; D has no batch norm, so each point's
    # loss depends on that point alone and its gradient is that point's arrow
    per_point = gan.generator_loss(logits, loss) * len(points)
    gradient, = torch.autograd.grad(per_point, points)
    return -gradient, torch.sigmoid(logits).detach()


# ---------------------------------------------------------------------------------------------
# Drawing

def plane_grid(size=101):
    """The points of a size x size grid over the drawn square, (size^2, 2), and its axes."""
    axis = torch.linspace(-PLANE, PLANE, size)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xs.flatten(), ys.flatten()], 1), axis


@torch.no_grad()
def draw_field(axis, network, title, probability=False, real=None, fake=None):
    """A network's score over the plane as the background (D(x) in [0, 1] with probability=True),
    with the real (black) and generated (orange) points."""
    grid, ticks = plane_grid()
    values = network(grid).view(len(ticks), len(ticks))
    values = torch.sigmoid(values) if probability else values
    levels = np.linspace(0, 1, 21) if probability else 20   # D(x): one scale in every frame
    image = axis.contourf(ticks, ticks, values, levels=levels, cmap="RdBu_r")
    if real is not None:
        axis.scatter(*real[:500].T, s=2, c="black", label="data")
    if fake is not None:
        axis.scatter(*fake[:500].T, s=2, c="orange", label="generated")
    axis.set(xlim=(-PLANE, PLANE), ylim=(-PLANE, PLANE), aspect="equal", title=title)
    axis.set_xticks([]), axis.set_yticks([])
    return image


def figure_frame(figure):
    """The figure as a uint8 (H, W, 3) array for a GIF frame; the figure is closed."""
    figure.canvas.draw()
    frame = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    common.pyplot().close(figure)
    return frame


def finish(out, name, figure, frames, metrics, started):
    """The figure, the GIF and metrics.json (with the experiment's seconds and provenance)."""
    common.save_figure(figure, out / f"{name}.png")
    if frames:
        common.save_gif(frames, out / "progress.gif", 0.2)
    metrics.update(seconds=round(time.perf_counter() - started, 1),
                   provenance=common.provenance())
    common.write_json(metrics, out / "metrics.json")
    print(f"{name}: {', '.join(f'{k} {v}' for k, v in metrics.items() if k != 'provenance')}")
    print(f"wrote {out}/{name}.png, {'progress.gif, ' if frames else ''}metrics.json")
    return metrics


# ---------------------------------------------------------------------------------------------
# 1. The GAN game

def make_gan(g_hidden, lr=1e-3):
    generator, discriminator = mlp(Z_DIM, g_hidden, 2), Critic()
    return (generator, discriminator, torch.optim.Adam(generator.parameters(), lr, (0.5, 0.999)),
            torch.optim.Adam(discriminator.parameters(), lr, (0.5, 0.999)))


def warm_up_discriminator(generator, discriminator, opt_d, data, steps, batch=256):
    """D alone against G's first fakes: the game then starts where D wins."""
    for _ in range(steps):
        real = common.sample_batch(data, batch)
        with torch.no_grad():
            fake = generator(torch.randn(batch, Z_DIM))
        loss_d = gan.discriminator_loss(discriminator(real), discriminator(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()


def gan_game(args, out):
    started = time.perf_counter()
    common.seed_everything(args.seed)
    data, centers, std = mixture(args.data, 50_000)
    modes_in_all = len(centers)
    generator, discriminator, opt_g, opt_d = make_gan(args.g_hidden)
    if args.double_sigmoid:   # the same network and optimizer, a sigmoid after its last layer
        discriminator = SigmoidAtTheEnd(discriminator)
    warm_up_discriminator(generator, discriminator, opt_d, data, args.d_warmup)
    fixed_z = torch.randn(1000, Z_DIM)
    frames, history, lengths = [], {"step": [], "modes": [], "high_quality": []}, []
    losses = []                                     # (L_D, L_G) of every step
    pairs = {"minimax": [], "logistic": []}   # (D(G(z)), arrow length) of both losses, same fakes
    for step in range(1, args.steps + 1):
        real, z = common.sample_batch(data, 256), torch.randn(256, Z_DIM)
        if step <= FIRST_STEPS:   # the arrows' mean length over the first steps, before each
            arrows, _ = generator_arrows(discriminator, generator(z).detach(), args.loss)
            lengths.append(arrows.norm(dim=1).mean().item())
        if step == 1 or step % max(1, args.steps // 40) == 0:
            fakes = generator(fixed_z[:100]).detach()
            for loss in pairs:
                arrows, d_fake = generator_arrows(discriminator, fakes, loss)
                pairs[loss].append(torch.stack([d_fake, arrows.norm(dim=1)], 1))
        losses.append([value.item() for value in gan.train_step(
            generator, discriminator, opt_g, opt_d, real, z, args.loss)[:2]])
        if step % max(1, args.steps // 40) == 0 or step == args.steps:
            with torch.no_grad():
                fakes = generator(fixed_z)
            modes, good = mode_coverage(fakes, centers, std)
            history["step"].append(step), history["modes"].append(modes)
            history["high_quality"].append(good)
            frames.append(figure_frame(gan_panels(discriminator, data, fakes, args.loss, step,
                                                  f"{modes}/{modes_in_all}", good)[0]))
    figure, axes = gan_panels(discriminator, data, fakes, args.loss, args.steps,
                              f"{modes}/{modes_in_all}", good, extra=2)
    for loss, color in (("minimax", "tab:red"), ("logistic", "tab:blue")):
        d_fake, length = torch.cat(pairs[loss]).clamp(min=1e-6).T
        axes[1].scatter(d_fake, length, s=2, c=color, alpha=0.5, label=f"--loss {loss}")
    axes[1].set(xscale="log", yscale="log", xlabel="D(G(z))", ylabel="arrow length",
                title=f"the fakes of this run, both losses'\narrows (the run trains {args.loss})")
    axes[1].legend()
    axes[2].plot(history["step"], history["modes"], label=f"modes covered (of {modes_in_all})")
    axes[2].plot(history["step"], [modes_in_all * g for g in history["high_quality"]],
                 label=f"high-quality share x {modes_in_all}")
    axes[2].set(xlabel="step", ylim=(-0.3, modes_in_all + 0.3), title="mode coverage")
    axes[2].legend()
    with torch.no_grad():   # what D believes, sigmoid of its output, over the drawn plane
        believed = torch.sigmoid(discriminator(plane_grid()[0]))
    loss_d, loss_g = np.mean(losses[-100:], axis=0)
    return finish(out, "gan", figure, frames, {
        "loss": args.loss, "data": args.data, "modes": modes_in_all, "steps": args.steps,
        "double_sigmoid": args.double_sigmoid,
        "d_believed_range": [round(believed.min().item(), 4), round(believed.max().item(), 4)],
        "loss_d_last_100": round(float(loss_d), 4), "loss_g_last_100": round(float(loss_g), 4),
        "d_warmup": args.d_warmup, "seed": args.seed,
        "g_hidden": args.g_hidden, "modes_covered": modes, "high_quality": round(good, 4),
        "arrow_mean_length_first_steps": round(float(np.mean(lengths)), 4),
        "first_steps": len(lengths),
        "history": history}, started)


def gan_panels(discriminator, data, fakes, loss, step, modes, good, extra=0):
    """D(x) over the plane, the data, the fakes and each fake's arrow; `extra` empty panels."""
    figure, axes = common.pyplot().subplots(1, 1 + extra, figsize=(4.2 * (1 + extra), 4.2),
                                            squeeze=False)
    axes = axes[0]
    bug = "D ends in a sigmoid,\n" if isinstance(discriminator, SigmoidAtTheEnd) else ""
    image = draw_field(axes[0], discriminator, f"{bug}--loss {loss}, step {step}:\n{modes} "
                       f"modes, {good:.0%} high quality", True, data, fakes)
    shown = fakes[::10]
    arrows, _ = generator_arrows(discriminator, shown, loss)   # one scale in every frame and run
    axes[0].quiver(*shown.T, *arrows.T, angles="xy", scale_units="xy", scale=ARROW_SCALE,
                   width=0.004)
    figure.colorbar(image, ax=axes[0], fraction=0.046, label="D(x)")
    return figure, axes


# ---------------------------------------------------------------------------------------------
# 2. The critic

# The WGAN-GP paper's recipes on points (Gulrajani et al. 2017, its code gan_toy.py): 5 critic
# steps a generator step; the clipped critic with RMSprop and c = 0.01, the penalized one with
# Adam (0.5, 0.9) and lambda 0.1 (its toy lambda: 10 is its images'). Their learning rates are
# the paper's (5e-5, 1e-4) times 10, since a run here takes 2,000 of its 100,000 steps, and the
# networks have 2 hidden layers of 128 units instead of its 3 of 512, so a run takes seconds.
# The GAN's D trains as in the game above: 1 step a generator step, Adam 1e-3 (0.5, 0.999).
CRITICS = {"GAN's D (--loss gan)": {"loss": "gan", "gradient_penalty": 0, "n_critic": 1},
           "WGAN, clip 0.01": {"loss": "wasserstein", "gradient_penalty": 0, "clip": 0.01,
                               "n_critic": 5, "lr": 5e-4},
           "WGAN-GP, lambda 0.1": {"loss": "wasserstein", "gradient_penalty": 0.1, "n_critic": 5,
                                   "betas": (0.5, 0.9), "lr": 1e-3}}


def make_wgan(recipe, g_hidden=128):
    """G, the critic, wgan.py's optimizers for this recipe, and its config for wgan.train_step."""
    generator, critic = mlp(Z_DIM, g_hidden, 2), Critic()
    lr = recipe.get("lr", 1e-3)
    config = {"z_dim": Z_DIM, "lr": lr, "critic_lr": lr, **recipe}
    return (generator, critic, *wgan.make_optimizers(generator, critic, config), config)


def critics(args, out):
    started = time.perf_counter()
    common.seed_everything(args.seed)
    data, centers = ring(50_000)
    runs = {name: make_wgan(recipe) for name, recipe in CRITICS.items()}
    fixed_z, frames = torch.randn(1000, Z_DIM), []
    evaluations = {name: [] for name in runs}
    for step in range(1, args.steps + 1):
        for name, (generator, critic, opt_g, opt_f, config) in runs.items():
            wgan.train_step(generator, critic, opt_g, opt_f, data, 256, config)
            if step % EVAL_EVERY == 0 or step == args.steps:
                with torch.no_grad():
                    evaluations[name].append(mode_coverage(generator(fixed_z), centers, RING_STD))
        if step % max(1, args.steps // 20) == 0 or step == args.steps:
            figure, _ = critic_panels(runs, data, fixed_z, step)
            frames.append(figure_frame(figure))
    figure, axes = critic_panels(runs, data, fixed_z, args.steps, extra=1)
    one_d = figure_2(axes[-1], args.seed, min(1000, args.steps))
    metrics = {"steps": args.steps, "seed": args.seed, "figure_2": one_d,
               "figure_1": figure_1(out, args.seed, min(1000, args.steps))}
    for name, recipe in CRITICS.items():
        modes, good = averaged_coverage(evaluations[name])
        metrics[name] = {**recipe, "modes_covered": round(modes, 2), "high_quality": round(good, 4)}
    return finish(out, "critic", figure, frames, metrics, started)


def figure_1(out, seed, steps=1000):
    """The WGAN-GP paper's Figure 1: the clipped and the penalized critic of CRITICS trained
    against a generator held fixed at the data plus N(0, I) noise, the data scaled to unit
    spread as in the paper; each critic's level sets over the plane on the ring, the grid and the
    Swiss roll, and its loss over the steps. Returns, for each, the first step at which its loss
    (a mean over 100 steps) had come within 5% of its whole fall (from its first mean to its
    lowest)."""
    torch.manual_seed(seed)
    datasets = {"ring": ring(50_000)[0], "5 x 5 grid": grid(50_000)[0],
                "Swiss roll": swiss_roll(50_000)[0]}
    recipes = {name: CRITICS[name] for name in ("WGAN, clip 0.01", "WGAN-GP, lambda 0.1")}
    figure, axes = common.pyplot().subplots(2, 4, figsize=(16, 8))
    grid_points, ticks = plane_grid()
    settled = {}
    for row, (name, recipe) in enumerate(recipes.items()):
        for column, (data_name, data) in enumerate(datasets.items()):
            data = data / data.std()
            _, critic, _, opt_f, config = make_wgan(recipe)
            losses = []
            for _ in range(steps):
                real = common.sample_batch(data, 256)
                fake = common.sample_batch(data, 256) + torch.randn(256, 2)   # the fixed "G"
                losses.append(wgan.critic_step(critic, opt_f, real, fake, config)[0].item())
            smooth = np.convolve(losses, np.ones(100) / 100, mode="valid") if steps >= 100 \
                else np.array(losses)
            reached = smooth <= smooth.min() + 0.05 * (smooth[0] - smooth.min())
            settled[f"{name}, {data_name}"] = int(np.argmax(reached)) + (100 if steps >= 100 else 1)
            with torch.no_grad():
                values = critic(grid_points).view(len(ticks), len(ticks))
            axis = axes[row][column]
            axis.scatter(*data[:1000].T, s=1, c="black", alpha=0.5)
            axis.contour(ticks, ticks, values, levels=20, cmap="RdBu_r", linewidths=0.8)
            axis.set(title=f"{name}: {data_name}", aspect="equal",
                     xlim=(-PLANE, PLANE), ylim=(-PLANE, PLANE), xticks=[], yticks=[])
            axes[row][3].plot(np.arange(len(smooth)) + (100 if steps >= 100 else 1), smooth,
                              linewidth=1,
                              label=data_name)
        axes[row][3].set(xlabel="critic step", ylabel="L_f (mean of the last 100 steps)",
                         title=f"{name}: the critic loss")
        axes[row][3].legend(fontsize=8)
    figure.suptitle("Critics against a generator held fixed at data + N(0, I): level sets of f")
    common.save_figure(figure, out / "critic_fixed.png")
    return {"steps": steps, "settled_at": settled}


def critic_panels(runs, data, fixed_z, step, extra=0):
    figure, axes = common.pyplot().subplots(1, len(runs) + extra,
                                            figsize=(4 * (len(runs) + extra), 4))
    for axis, (name, (generator, critic, *_rest)) in zip(axes, runs.items()):
        with torch.no_grad():
            fakes = generator(fixed_z)
        image = draw_field(axis, critic, f"{name}, step {step}", False, data, fakes)
        figure.colorbar(image, ax=axis, fraction=0.046, label="the logit l(x)" if
                        name.startswith("GAN") else "the score f(x), its own scale")
    return figure, axes


def figure_2(axis, seed, steps=1000):
    """The WGAN paper's Figure 2 in 1-D: real N(2, 0.3^2) against fake N(-2, 0.3^2), D trained
    with gan.discriminator_loss, the critic with wgan.py's penalized loss, beside the optimal
    D*(x) = sigmoid(log p_real(x) - log p_fake(x)) = sigmoid(400 x / 9); returns the mean slopes
    |dD/dx| and |df/dx| at the fake points."""
    torch.manual_seed(seed)
    real, fake = 2 + 0.3 * torch.randn(2000, 1), -2 + 0.3 * torch.randn(2000, 1)
    discriminator, critic = Critic(1), Critic(1)
    opt_d = torch.optim.Adam(discriminator.parameters(), 1e-3)
    opt_f = torch.optim.Adam(critic.parameters(), 1e-3, (0.0, 0.9))
    config = {"loss": "wasserstein", "gradient_penalty": 10}
    for _ in range(steps):
        r, f = common.sample_batch(real, 256), common.sample_batch(fake, 256)
        loss_d = gan.discriminator_loss(discriminator(r), discriminator(f))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        wgan.critic_step(critic, opt_f, r, f, config)
    x = torch.linspace(-4, 4, 401)[:, None].requires_grad_(True)
    d_of_x, f_of_x = torch.sigmoid(discriminator(x)), critic(x)
    d_slope, = torch.autograd.grad(d_of_x.sum(), x)
    f_slope, = torch.autograd.grad(f_of_x.sum(), x)
    xs = x.detach().squeeze(1)
    near_fake = (xs + 2).abs() < 0.6                                  # within 2 std of -2
    for mean, color, name in ((2, "black", "real"), (-2, "orange", "fake")):
        axis.fill_between(xs, torch.exp(-((xs - mean) / 0.3) ** 2 / 2), alpha=0.3, color=color,
                          label=f"{name}, N({mean}, 0.3^2) (scaled)")
    axis.plot(xs, torch.sigmoid(400 * xs / 9), color="black", linestyle="--", linewidth=1,
              label="D*(x), the optimal D")
    axis.plot(xs, d_of_x.detach(), color="tab:red", label=f"D(x), trained {steps} steps")
    f_values = f_of_x.detach()
    axis.plot(xs, (f_values - f_values.min()) / (f_values.max() - f_values.min()),
              color="tab:blue", label="critic f(x), rescaled to [0, 1]")
    axis.set(xlabel="x", title="1-D: D saturates, the critic is a slope")
    axis.legend(fontsize=7)
    return {"d_slope_at_fakes": float(f"{d_slope[near_fake].abs().mean():.3g}"),
            "critic_slope_at_fakes": float(f"{f_slope[near_fake].abs().mean():.3g}")}


# ---------------------------------------------------------------------------------------------
# 3. Diffusion

def diffusion_toy(args, out):
    started = time.perf_counter()
    common.seed_everything(args.seed)
    data, labels = swiss_roll(50_000)
    schedule = diffusion.NoiseSchedule(1000, "linear")
    model = Denoiser()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    noise, wanted = torch.randn(600, 2), torch.arange(600) % 3
    frames, losses = [], []
    for step in range(1, args.steps + 1):
        x0, c = common.sample_batch(data, 256, labels)
        losses.append(diffusion.train_step(model, optimizer, schedule, x0, c, p_uncond=0.1).item())
        if step % max(1, args.steps // 20) == 0 or step == args.steps:
            samples = diffusion.sample(model.eval(), schedule, noise, wanted, guidance=1)
            model.train()
            figure, axis = common.pyplot().subplots(figsize=(4, 4))
            scatter_classes(axis, samples, wanted, f"DDIM 50 steps, w = 1, step {step}")
            frames.append(figure_frame(figure))
    model.eval()
    figure, axes = common.pyplot().subplots(3, 4, figsize=(15, 11))
    for axis, t in zip(axes[0], (0, 25, 100, 999)):                  # the forward process
        x_t = schedule.q_sample(data[:1500], torch.full((1500,), t), torch.randn(1500, 2))
        scatter_classes(axis, x_t, labels[:1500], f"forward: x_t ~ q(x_t | x_0), t = {t}",
                        limit=2.5)
    scatter_classes(axes[1][0], data[:1500], labels[:1500], "the data: three classes")
    for axis, sampler, count in zip(axes[1][1:3], ("ddpm", "ddim"), (12, 40)):  # the reverse
        # the chain at 200 points of DDPM's 1,000 steps, and after each of DDIM's 50
        _, chain = diffusion.sample(model, schedule, noise[:count], wanted[:count], guidance=1,
                                    sampler=sampler, keep=201 if sampler == "ddpm" else 101)
        paths = torch.stack(chain)                                    # (snapshots, count, 2)
        axis.scatter(*data[:1500].T, s=1, c="lightgray")              # where the paths must end
        for path in paths.unbind(1):
            axis.plot(*path.T, linewidth=0.5, color="gray")
        axis.scatter(*paths[0].T, s=8, c="black", label="x_T (noise)", zorder=3)
        axis.scatter(*paths[-1].T, s=8, c="tab:red", label="x_0", zorder=3)
        axis.set(title=f"reverse, {sampler.upper()}: {count} paths\nfrom noise to data, w = 1",
                 aspect="equal",
                 xlim=(-2.5, 2.5), ylim=(-2.5, 2.5))
        axis.legend(fontsize=7)
    axes[1][3].plot(np.convolve(losses, np.ones(50) / 50, mode="valid"), linewidth=1)
    axes[1][3].set(xlabel="step", ylabel="|| eps - eps_theta ||^2 (mean of 50)",
                   title="diffusion.train_step's loss")
    guidance = {}
    for axis, w in zip(axes[2], (0, 1, 3)):                           # classifier-free guidance
        samples = diffusion.sample(model, schedule, noise, wanted, guidance=w)
        guidance[f"w={w}"] = class_measures(samples, wanted, data, labels)
        scatter_classes(axis, samples, wanted, f"guidance w = {w}: spread "
                        f"{guidance[f'w={w}']['spread']:.2f},\n"
                        f"{guidance[f'w={w}']['on_class']:.0%} on their piece")
    axes[2][3].bar(list(guidance), [row["spread"] for row in guidance.values()])
    axes[2][3].set(ylabel="mean distance to the class's mean",
                   title="spread per class (lower: tighter)")
    return finish(out, "diffusion", figure, frames, {
        "steps": args.steps, "seed": args.seed, "guidance": guidance}, started)


def scatter_classes(axis, points, classes, title, limit=1.2):
    colors = np.array(["tab:blue", "tab:green", "tab:purple"])
    axis.scatter(*points.T, s=2, c=colors[classes.numpy()])
    axis.set(title=title, aspect="equal", xlim=(-limit, limit), ylim=(-limit, limit))


def class_measures(samples, wanted, data, labels):
    """on_class: the share of samples whose nearest data point is of the asked class; spread: the
    samples' mean distance to their class's mean, averaged over the classes."""
    nearest = torch.cdist(samples, data[:10_000]).argmin(1)
    on_class = (labels[:10_000][nearest] == wanted).float().mean().item()
    spread = np.mean([(samples[wanted == c] - samples[wanted == c].mean(0)).norm(dim=1)
                      .mean().item() for c in range(3)])
    return {"on_class": round(on_class, 4), "spread": round(float(spread), 4)}


# ---------------------------------------------------------------------------------------------
# 4. Mode coverage over seeds

def coverage(args, out):
    """The ring, four losses, --seeds seeds each: modes covered and high-quality share, each the
    mean over a run's last 10 evaluations (every 50 steps, 2,500 points of a fixed z). The GAN
    losses train with gan.train_step (no warm-up), the WGANs with wgan.train_step and CRITICS'
    recipes."""
    started, results = time.perf_counter(), {}
    data, centers = ring(50_000, torch.Generator().manual_seed(12345))
    variants = {"minimax": None, "logistic": None, "WGAN, clip 0.01": CRITICS["WGAN, clip 0.01"],
                "WGAN-GP, lambda 0.1": CRITICS["WGAN-GP, lambda 0.1"]}
    for name, recipe in variants.items():
        results[name] = []
        for seed in range(args.seed, args.seed + args.seeds):
            common.seed_everything(seed)
            if recipe is None:
                generator, discriminator, opt_g, opt_d = make_gan(args.g_hidden)
            else:
                generator, critic, opt_g, opt_f, config = make_wgan(recipe, args.g_hidden)
            fixed_z, evaluations = torch.randn(2500, Z_DIM), []
            for step in range(1, args.steps + 1):
                if recipe is None:
                    gan.train_step(generator, discriminator, opt_g, opt_d,
                                   common.sample_batch(data, 256), torch.randn(256, Z_DIM), name)
                else:
                    wgan.train_step(generator, critic, opt_g, opt_f, data, 256, config)
                if step % EVAL_EVERY == 0 or step == args.steps:
                    with torch.no_grad():
                        evaluations.append(mode_coverage(generator(fixed_z), centers, RING_STD))
            modes, good = averaged_coverage(evaluations)
            results[name].append({"seed": seed, "modes_covered": round(modes, 2),
                                  "high_quality": round(good, 4)})
            print(f"{name}, seed {seed}: {modes:.1f}/8 modes, {good:.1%} high quality "
                  f"(the mean of the last {min(EVAL_LAST, len(evaluations))} evaluations)",
                  flush=True)
    figure, axis = common.pyplot().subplots(figsize=(6, 3.5))
    for index, (name, rows) in enumerate(results.items()):
        axis.scatter([index] * len(rows), [row["modes_covered"] for row in rows], s=30)
    axis.set(xticks=range(len(results)), ylabel="modes covered (of 8)", ylim=(-0.3, 8.3),
             title=f"the ring after {args.steps} steps, {args.seeds} seeds each: the mean over "
                   f"\nthe last {EVAL_LAST} evaluations (every {EVAL_EVERY} steps)")
    axis.set_xticklabels(list(results), fontsize=8)
    return finish(out, "coverage", figure, None,
                  {"steps": args.steps, "g_hidden": args.g_hidden, "runs": results}, started)


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    out = common.make_run_dir("toy2d", args.out or f"runs/toy2d/{args.experiment}")
    run = {"gan": gan_game, "critic": critics, "diffusion": diffusion_toy, "coverage": coverage}
    return run[args.experiment](args, out)


if __name__ == "__main__":
    main()
