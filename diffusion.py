"""A conditional denoising diffusion model: Ho, Jain and Abbeel, "Denoising Diffusion Probabilistic
Models", NeurIPS 2020, with classifier-free guidance (Ho and Salimans, 2022) and the DDIM sampler
(Song, Meng and Ermon, "Denoising Diffusion Implicit Models", ICLR 2021).

A GAN learns to draw an image in one step and is trained by a game. A diffusion model learns to
undo noise, one small step at a time, and is trained by plain regression. The forward process
adds Gaussian noise over T steps with variances beta_1 ... beta_T:

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
                       alpha_t = 1 - beta_t,  alpha_bar_t = alpha_1 * ... * alpha_t

so x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with eps ~ N(0, I) in one draw, and
x_T is almost pure noise. A network eps_theta(x_t, t, c) learns to predict the noise that was
added (the paper's simplified loss, equation 14), with c the class:

    L = E_{x_0, c, t, eps} || eps - eps_theta(x_t, t, c) ||^2

Sampling runs the process backwards. Given a noise estimate, x_0 is estimated as
x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), and the true reverse step
q(x_{t-1} | x_t, x_0) is a Gaussian with

    mean     = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) x_0
               + (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) x_t
    variance = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

DDPM (ancestral) sampling takes all T steps, each with fresh noise. DDIM (eta = 0) takes a
deterministic jump along a short subsequence of timesteps, here 50 of the 1000:

    x_{t'} = sqrt(alpha_bar_{t'}) x0_hat + sqrt(1 - alpha_bar_{t'}) eps     (t' < t)

Both use the same trained network: DDIM only changes how the reverse process is walked.

Classifier-free guidance: in training the class is replaced by "no class" with probability
p_uncond = 0.1, so the one network learns both eps(x_t, c) and eps(x_t). At sampling time

    eps = (1 + w) eps(x_t, c) - w eps(x_t, no class)

pushes each step further in the direction that makes the image more like class c. w = 0 is the
plain conditional model; larger w gives more typical, less varied digits (the guidance figure).

The U-Net (about a million parameters: small enough to train on a laptop CPU): 28x28 with 32
channels -> 14x14, 64 -> 7x7, 128 (two blocks, where a 3x3 convolution sees the whole digit;
32x32, 16x16 and 8x8 for CIFAR-10) -> back up, each level joined with the skip connection of its
size. Each residual block is GroupNorm -> SiLU -> conv, twice. The time t (sinusoidal features)
and the class (one-hot, 11 slots: ten digits and "no class") are joined and passed through a
small MLP, and every block turns that embedding into a scale and a shift of its normalized
features: the class can then change what each feature means, not only add a constant to it,
which a bias per channel would. No self-attention: at 7x7 the convolutions already cover the image.

Every x0_hat is clipped to the pixels' range [-1, 1] at every step of both samplers ("static
thresholding"): no sample leaves the images' range, at the price of pushing strongly guided
pixels against the bound (Imagen's dynamic thresholding softens this). latent_diffusion.py
(Stable Diffusion in miniature) runs this file's schedule, blocks, training step, samplers and
guidance on an autoencoder's latents.

    python diffusion.py                                             # train on MNIST
    python diffusion.py --checkpoint runs/diffusion/X/checkpoint.pt --digit 3 --out threes.png
    python diffusion.py --checkpoint CKPT --generate 1000 --out s.npz --sampler ddpm
"""
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import common

CLASSES = 10
NO_CLASS = CLASSES            # the 11th slot of the one-hot label: "no class" (unconditional)


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    add_arguments(parser, "diffusion", iters=7000, channels=32, lr=5e-4, lr_decay="none")
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def add_arguments(parser, script, iters, channels, lr, lr_decay):
    """The flags of a diffusion model and of its sampling, with that model's defaults (the latent
    model's script takes them too)."""
    positive = common.bounded(int, at_least=1)
    parser.add_argument("--dataset", choices=list(common.DATASETS), default="mnist")
    parser.add_argument("--timesteps", type=common.bounded(int, at_least=2), default=1000,
                        help="T, the diffusion steps")
    parser.add_argument("--schedule", choices=["linear", "cosine"], default="linear",
                        help="betas linear from 1e-4 to 0.02, or the cosine alpha_bar")
    parser.add_argument("--channels", type=positive, default=channels,
                        help="the network's width (a multiple of 8: GroupNorm uses 8 groups)")
    parser.add_argument("--iters", type=positive, default=iters, help="training steps")
    parser.add_argument("--batch-size", type=positive, default=64, help="images per training step")
    parser.add_argument("--lr", type=common.bounded(float, above=0), default=lr,
                        help="AdamW learning rate")
    parser.add_argument("--lr-decay", choices=["none", "linear"], default=lr_decay,
                        help="linear: the learning rate falls linearly over the run, towards 0 "
                             "at --iters, or at --minutes if the budget ends sooner")
    parser.add_argument("--p-uncond", type=common.bounded(float, at_least=0, below=1),
                        default=0.1, help="probability of dropping the label to 'no class' in "
                        "training; 0 trains a plain conditional model, which cannot be guided")
    parser.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    parser.add_argument("--ddim-steps", "--steps", dest="steps", type=positive, default=50,
                        metavar="N", help="DDIM sampling steps")
    parser.add_argument("--guidance", type=common.bounded(float, at_least=0),
                        help="classifier-free guidance w: 0 is the plain conditional model; a "
                             "larger w gives more typical, less varied samples (default 1, or 0 "
                             "for a model trained with --p-uncond 0)")
    parser.add_argument("--digit", type=common.bounded(int, at_least=0, at_most=CLASSES - 1),
                        metavar="D", help="with --checkpoint: only class D, a 10x10 grid to "
                                          "--out FILE.png, or N samples with --generate")
    # each sample costs 50 network passes (x2 with guidance): 1,000 per evaluation
    common.add_run_arguments(parser, script, sample_every=500, eval_every=1750,
                             checkpoint_every=500, gif_samples=100, eval_samples=1000)


def check_arguments(parser, args):
    """The checks that involve two flags, as one-line errors."""
    common.check_run_arguments(parser, args)
    if args.steps > args.timesteps:
        parser.error(f"--ddim-steps {args.steps}: at most --timesteps ({args.timesteps})")
    if args.p_uncond == 0 and args.guidance and not (args.resume or args.checkpoint):
        parser.error("--guidance needs the unconditional model: a model trained with "
                     "--p-uncond 0 samples at --guidance 0 only")
    if args.channels % 8:
        parser.error("--channels must be a multiple of 8 (GroupNorm uses 8 groups)")
    if args.gif_samples % CLASSES:
        parser.error(f"--gif-samples {args.gif_samples}: a class a column needs a multiple of 10")
    if (args.generate is not None or args.digit is not None) and not args.checkpoint:
        parser.error("--generate and --digit need --checkpoint CKPT")
    if args.checkpoint and args.generate is None and args.digit is None:
        parser.error("--checkpoint needs --generate N or --digit D")


# ---------------------------------------------------------------------------------------------
# The noise schedule: every constant of the forward and reverse process, computed once

class NoiseSchedule:
    def __init__(self, timesteps=1000, kind="linear", device="cpu"):
        self.timesteps = timesteps
        double = torch.float64   # the products of 1000 alphas are computed in double precision
        if kind == "linear":
            # The paper's 1e-4 ... 0.02 for T = 1000, scaled so other T keep the same end point
            scale = 1000 / timesteps
            betas = torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps, dtype=double)
        elif kind == "cosine":
            # Nichol and Dhariwal (2021): alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s)
            # * pi/2); noise is added more slowly at the start than with linear betas.
            s = 0.008
            f = torch.cos((torch.arange(timesteps + 1, dtype=double) / timesteps + s) / (1 + s)
                          * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)         # beta_t = 1 - ab_t / ab_{t-1}
        else:
            raise ValueError(f"unknown schedule {kind!r}")
        alphas = 1 - betas                                        # alpha_t = 1 - beta_t
        alpha_bar = torch.cumprod(alphas, 0)                      # alpha_bar_t = prod alpha_s
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=double), alpha_bar[:-1]])
        # q(x_{t-1} | x_t, x_0) = N(x0_coef x_0 + xt_coef x_t, posterior_variance), in double
        # precision: 1 - alpha_bar_{t-1} is tiny near t = 0 and loses its digits in float32
        posterior_x0_coef = betas * alpha_bar_prev.sqrt() / (1 - alpha_bar)
        posterior_xt_coef = (1 - alpha_bar_prev) * alphas.sqrt() / (1 - alpha_bar)
        posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
        for name, value in [("betas", betas), ("alphas", alphas), ("alpha_bar", alpha_bar),
                            ("posterior_x0_coef", posterior_x0_coef),
                            ("posterior_xt_coef", posterior_xt_coef),
                            ("posterior_variance", posterior_variance)]:
            setattr(self, name, value.float().to(device))

    @staticmethod
    def at(values, t, x):
        """values[t] shaped (B, 1, ..., 1), to broadcast over a batch x of images (B, C, H, W)
        or of points (B, D)."""
        return values[t].view(-1, *[1] * (x.dim() - 1))

    def q_sample(self, x0, t, noise):
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        alpha_bar = self.at(self.alpha_bar, t, x0)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def predict_x0(self, x_t, t, eps):
        """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        alpha_bar = self.at(self.alpha_bar, t, x_t)
        return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    def posterior_mean(self, x0, x_t, t):
        """Mean of q(x_{t-1} | x_t, x_0): beta_t sqrt(ab_{t-1}) / (1 - ab_t) x_0
        + (1 - ab_{t-1}) sqrt(alpha_t) / (1 - ab_t) x_t."""
        return (self.at(self.posterior_x0_coef, t, x0) * x0
                + self.at(self.posterior_xt_coef, t, x_t) * x_t)


# ---------------------------------------------------------------------------------------------
# The U-Net

def timestep_embedding(t, dim):
    """Sinusoidal features of t as in the Transformer: sin and cos of t / 10000^(2i/dim)."""
    frequencies = torch.exp(-math.log(10000) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.float()[:, None] * frequencies[None]                 # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)           # (B, dim)


def check_labels(labels):
    if labels.numel() and (labels.min() < 0 or labels.max() > NO_CLASS):
        raise ValueError(f"labels must be in 0-{CLASSES - 1}, or {NO_CLASS} for no class")


class ResidualBlock(nn.Module):
    """x + convs(x), an embedding (of t and the class in the U-Net, of t alone in the latent
    denoiser) entering as a scale and shift of the features."""

    def __init__(self, in_channels, out_channels, embedding_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.scale_shift = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(8, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels \
            else nn.Identity()

    def forward(self, x, embedding):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.scale_shift(F.silu(embedding))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift                     # FiLM: (B, C, H, W)
        return self.conv2(F.silu(h)) + self.skip(x)


class UNet(nn.Module):
    def __init__(self, image_channels=1, channels=32, embedding_dim=128):
        super().__init__()
        c1, c2, c3 = channels, 2 * channels, 4 * channels
        self.time_dim = channels * 2
        self.embed = nn.Sequential(nn.Linear(self.time_dim + CLASSES + 1, embedding_dim), nn.SiLU(),
                                   nn.Linear(embedding_dim, embedding_dim))
        self.conv_in = nn.Conv2d(image_channels, c1, 3, padding=1)
        self.down1 = ResidualBlock(c1, c1, embedding_dim)
        self.downsample1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResidualBlock(c1, c2, embedding_dim)
        self.downsample2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.middle1 = ResidualBlock(c2, c3, embedding_dim)
        self.middle2 = ResidualBlock(c3, c3, embedding_dim)
        self.up2 = ResidualBlock(c3 + c2, c2, embedding_dim)
        self.up1 = ResidualBlock(c2 + c1, c1, embedding_dim)
        self.conv_out = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(),
                                      nn.Conv2d(c1, image_channels, 3, padding=1))

    def forward(self, x, t, labels):          # (B, C, H, W), (B,) in [0, T), (B,) in 0-10
        check_labels(labels)
        one_hot = F.one_hot(labels, CLASSES + 1).float()                          # (B, 11)
        embedding = self.embed(torch.cat([timestep_embedding(t, self.time_dim), one_hot], 1))
        skip1 = self.down1(self.conv_in(x), embedding)                            # (B, c1, H, W)
        skip2 = self.down2(self.downsample1(skip1), embedding)                    # (B, c2, H/2, W/2)
        h = self.middle1(self.downsample2(skip2), embedding)                      # (B, c3, H/4, W/4)
        h = self.middle2(h, embedding)
        h = F.interpolate(h, size=skip2.shape[-2:], mode="nearest")               # (B, c3, H/2, W/2)
        h = self.up2(torch.cat([h, skip2], 1), embedding)                         # (B, c2, H/2, W/2)
        h = F.interpolate(h, size=skip1.shape[-2:], mode="nearest")
        h = self.up1(torch.cat([h, skip1], 1), embedding)                         # (B, c1, H, W)
        return self.conv_out(h)                                                   # (B, C, H, W)


# ---------------------------------------------------------------------------------------------
# Training: predict the noise

def drop_labels(labels, p_uncond):
    """Each label replaced by NO_CLASS with probability p_uncond (classifier-free guidance)."""
    dropped = torch.rand(labels.shape, device=labels.device) < p_uncond
    return torch.where(dropped, torch.full_like(labels, NO_CLASS), labels)


def train_step(model, optimizer, schedule, x0, labels, p_uncond):
    t = torch.randint(schedule.timesteps, (len(x0),), device=x0.device)   # t ~ U{0, ..., T-1}
    noise = torch.randn_like(x0)                                          # eps ~ N(0, I)
    x_t = schedule.q_sample(x0, t, noise)
    # L = || eps - eps_theta(x_t, t, c) ||^2, c dropped to "no class" with probability p_uncond
    loss = F.mse_loss(model(x_t, t, drop_labels(labels, p_uncond)), noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# Sampling

def guided_eps(model, x_t, t, labels, guidance):
    """eps = (1 + w) eps(x_t, c) - w eps(x_t, no class); at w = 0 just eps(x_t, c)."""
    if guidance == 0:
        return model(x_t, t, labels)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]),                # one pass for both
                 torch.cat([labels, torch.full_like(labels, NO_CLASS)]))
    eps_cond, eps_uncond = both.chunk(2)
    return (1 + guidance) * eps_cond - guidance * eps_uncond


def ddpm_step(schedule, x_t, t, eps, noise, clip=1.0):
    """x_{t-1} = mean of q(x_{t-1} | x_t, x0_hat) + sqrt(posterior variance) z (0 at t = 0).
    x0_hat is clipped to the data's range [-clip, clip]: [-1, 1] for pixels."""
    t_batch = torch.full((len(x_t),), t, device=x_t.device)
    x0_hat = schedule.predict_x0(x_t, t_batch, eps).clamp(-clip, clip)
    return (schedule.posterior_mean(x0_hat, x_t, t_batch)
            + schedule.posterior_variance[t].sqrt() * noise)


def ddim_step(schedule, x_t, t, t_prev, eps, clip=1.0):
    """x_{t'} = sqrt(alpha_bar_{t'}) x0_hat + sqrt(1 - alpha_bar_{t'}) eps (eta = 0); t' = -1
    means the end of the chain (alpha_bar = 1, so x_{t'} = x0_hat)."""
    t_batch = torch.full((len(x_t),), t, device=x_t.device)
    alpha_bar = schedule.alpha_bar[t]
    alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.ones_like(alpha_bar)
    x0_hat = schedule.predict_x0(x_t, t_batch, eps).clamp(-clip, clip)   # the data's range
    eps = (x_t - alpha_bar.sqrt() * x0_hat) / (1 - alpha_bar).sqrt()   # consistent with the clip
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def sampling_timesteps(schedule, sampler, steps):
    """DDPM walks every t from T-1 down to 0; DDIM `steps` evenly spaced ones."""
    if sampler == "ddpm":
        return list(range(schedule.timesteps - 1, -1, -1))
    return torch.linspace(schedule.timesteps - 1, 0, steps).round().long().unique_consecutive() \
        .tolist()


@torch.no_grad()
def sample(model, schedule, x_T, labels, guidance=1.0, sampler="ddim", steps=50, keep=0,
           clip=1.0):
    """Run the reverse process from the noise x_T and return x_0, clamped to the data's range
    [-clip, clip] ([-1, 1] for pixels), where every x0_hat is clipped too. With keep=K also return
    the chain at up to K points (x_T first, then after evenly spaced steps, the last step's x
    last), for the denoising figure."""
    timesteps = sampling_timesteps(schedule, sampler, steps)
    x, chain = x_T, [x_T]
    keep_at = {round(i * (len(timesteps) - 1) / (keep - 1)) for i in range(1, keep)} if keep > 1 \
        else set()
    for index, t in enumerate(timesteps):
        eps = guided_eps(model, x, torch.full((len(x),), t, device=x.device), labels, guidance)
        if sampler == "ddpm":
            x = ddpm_step(schedule, x, t, eps, torch.randn_like(x), clip)
        else:
            t_prev = timesteps[index + 1] if index + 1 < len(timesteps) else -1
            x = ddim_step(schedule, x, t, t_prev, eps, clip)
        if index in keep_at:
            chain.append(x)
    x = x.clamp(-clip, clip)
    return (x, chain) if keep else x


def draw_samples(model, schedule, labels, shape, chunk=100, **sampling):
    """Samples for many labels, `chunk` at a time (eval mode, fresh noise of `shape`). On a CPU
    smaller chunks are faster per sample, their activations staying in the cache
    (benchmarks/step_costs.py times 25, 100 and 500 at a time)."""
    model.eval()
    return torch.cat([sample(model, schedule, torch.randn(len(part), *shape, device=part.device),
                             part, **sampling) for part in labels.split(chunk)])


# ---------------------------------------------------------------------------------------------
# Figures of a trained model

def save_figures(model, schedule, out, class_names, shape, guidance, device, digit=8, steps=50,
                 can_guide=True, clip=1.0, decode=None):
    """classes.png (a class a column, DDIM with the run's --ddim-steps), chain.png (DDPM, x_T ...
    x_0 of one sample per class) and, for a model that learned the unconditional eps,
    guidance.png (the same digit from the same noise at w = 0, 0.5, 1, 2, 4). `decode` turns
    what is sampled into images (the latent model's decoder; pixels are images already)."""
    latent, decode = decode is not None, decode or (lambda x: x)
    model.eval()
    generator = torch.Generator(device="cpu").manual_seed(1)   # the same noise in every figure
    noise = torch.randn(CLASSES * CLASSES, *shape, generator=generator).to(device)
    labels = torch.arange(CLASSES, device=device).repeat(CLASSES)
    images = decode(sample(model, schedule, noise, labels, guidance, steps=steps, clip=clip))
    common.save_labeled_grid(images, class_names, out / "classes.png",
                             title=f"one class per column (DDIM {steps} steps, guidance {guidance})")
    _, chain = sample(model, schedule, noise[:CLASSES], labels[:CLASSES], guidance,
                      sampler="ddpm", keep=11, clip=clip)
    # rows: one class each; columns: x_T, ..., x_0 at 11 evenly spaced points of the T steps
    rows = torch.stack([decode(x) for x in chain], dim=1).flatten(0, 1)
    common.save_labeled_grid(rows, [""] * 11, out / "chain.png",
                             title=f"DDPM, x_T (noise, left) to x_0 (right) at 11 evenly spaced "
                                   f"points of the {schedule.timesteps} steps; a class per row"
                                   + ("; each latent decoded" if latent else ""))
    if not can_guide:
        return
    weights = [0, 0.5, 1, 2, 4]
    digits = torch.full((CLASSES,), digit, device=device)
    rows = torch.cat([decode(sample(model, schedule, noise[:CLASSES], digits, w, steps=steps,
                                   clip=clip)) for w in weights])
    common.save_labeled_grid(rows, [""] * CLASSES, out / "guidance.png",
                             row_titles=[f"w = {w}" for w in weights],
                             title=f"class {class_names[digit]}, the same noise per column")


# ---------------------------------------------------------------------------------------------
# The training loop

def run_config(args):
    """What a checkpoint needs to rebuild the model."""
    return {"dataset": args.dataset, "timesteps": args.timesteps, "schedule": args.schedule,
            "channels": args.channels, "p_uncond": args.p_uncond,
            "image_shape": list(common.DATASETS[args.dataset]["shape"])}


def guidance_weight(args, config, path):
    """--guidance, by default 1. A model trained with --p-uncond 0 never learned eps(x_t, no
    class), so it samples at w = 0 only."""
    if config["p_uncond"] > 0:
        return 1.0 if args.guidance is None else args.guidance
    if args.guidance:
        raise common.UserError(f"--guidance {args.guidance}: {path or 'this model'} was trained "
                               f"with --p-uncond 0 and cannot be guided; use --guidance 0")
    return 0.0


def train(args):
    run = common.TrainingRun(args, "diffusion", run_config(args))   # --resume: the checkpoint's
    config, device = run.config, run.device
    sampling = {"guidance": guidance_weight(args, config, args.resume), "sampler": "ddim",
                "steps": args.steps}
    train_images, train_labels = common.dataset_tensors(config["dataset"], device, args.data_dir)
    schedule = NoiseSchedule(config["timesteps"], config["schedule"], device)
    # channels-last memory layout: a training step runs faster with it on a CPU
    model = UNet(config["image_shape"][0], config["channels"]).to(
        device, memory_format=torch.channels_last)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), args.lr, fused=True)
    # The GIF: the same starting noises (row = noise, column = class), DDIM is deterministic,
    # so every frame shows the same samples as the model learns.
    shape = config["image_shape"]
    fixed_noise = torch.randn(args.gif_samples, *shape, device=device)
    run.track({"denoiser": model, "ema_model": ema_model}, {"optimizer": optimizer}, fixed_noise)
    run.load_resumed()                  # --resume: the checkpoint's weights, optimizers, RNG
    grid_labels = torch.arange(CLASSES, device=device).repeat(len(fixed_noise) // CLASSES)

    for iteration in range(run.start + 1, args.iters + 1):
        started = time.perf_counter()
        x0, labels = common.sample_batch(train_images, args.batch_size, train_labels)
        if args.lr_decay == "linear":
            common.decay_learning_rate([optimizer], args.lr, run.fraction_done(iteration))
        loss = train_step(model, optimizer, schedule, x0, labels, config["p_uncond"])
        # EMA with a warm-up, decay min(ema, (1 + i) / (10 + i)): a short run is not dominated
        # by the random initial weights
        common.ema_update(ema_model, model, min(args.ema, (1 + iteration) / (10 + iteration)))
        run.log(iteration, time.perf_counter() - started, loss=loss)

        if run.due(iteration, args.sample_every):          # the fixed noises denoised: grid, GIF
            run.save_snapshot(sample(ema_model, schedule, fixed_noise, grid_labels, **sampling),
                              [["loss"]], ncol=CLASSES)
        if run.classifier is not None and run.due(iteration, args.eval_every):
            run.evaluate(*draw(ema_model, schedule, shape, args.eval_samples,
                               **sampling))   # FID, entropy, conditional accuracy
        if run.due(iteration, args.checkpoint_every):
            run.save_checkpoint()
        if run.finished(iteration):                        # --iters, or --minutes spent
            break

    save_figures(ema_model, schedule, run.out, common.DATASETS[config["dataset"]]["classes"],
                 shape, sampling["guidance"], device, steps=args.steps,
                 can_guide=config["p_uncond"] > 0)
    parzen_images = draw(ema_model, schedule, shape, 10000, **sampling)[0] \
        if args.parzen and run.classifier is not None else None
    return run.finish(parzen_images=parzen_images, sampling=sampling,
                      parameters=sum(p.numel() for p in model.parameters()))


def draw(model, schedule, shape, count, **sampling):
    """(images, labels): `count` samples to measure, labels spread evenly over the classes."""
    wanted = common.class_labels(count, None, schedule.alpha_bar.device)
    return draw_samples(model, schedule, wanted, shape, **sampling), wanted


# ---------------------------------------------------------------------------------------------
# Sampling from a checkpoint

def load_model(path, device):
    """(EMA U-Net, its schedule, its config) from a checkpoint."""
    state = common.load_checkpoint(path, "diffusion")
    config = state["config"]
    model = UNet(config["image_shape"][0], config["channels"])
    common.load_weights(model, state["ema_model"], path)
    schedule = NoiseSchedule(config["timesteps"], config["schedule"], device)
    return model.to(device).eval(), schedule, config


def timed_samples(model, schedule, labels, shape, guidance, args, clip=1.0, decode=None):
    """The images of --generate or --digit (`decode` turns a latent model's samples into images),
    with the time per sample of the chosen sampler, decoding included."""
    started = time.perf_counter()
    samples = draw_samples(model, schedule, labels, shape, guidance=guidance, sampler=args.sampler,
                           steps=args.steps, clip=clip)
    samples = decode(samples) if decode else samples
    seconds = time.perf_counter() - started
    steps = len(sampling_timesteps(schedule, args.sampler, args.steps))
    print(f"{len(labels)} samples, {args.sampler.upper()} with {steps} steps, guidance "
          f"{guidance}: {seconds:.1f} s ({seconds / len(labels) * 1000:.1f} ms per sample)")
    return samples


def generate(args):
    """--generate N to FILE.npz (labels spread evenly, or all --digit D), or --digit D alone: a
    10x10 grid of that class."""
    device = common.pick_device(args.device)
    model, schedule, config = load_model(args.checkpoint, device)
    guidance = guidance_weight(args, config, args.checkpoint)
    common.seed_everything(args.seed)
    labels = common.class_labels(args.generate or 100, args.digit, device)
    images = timed_samples(model, schedule, labels, config["image_shape"], guidance, args)
    common.save_class_samples(images, labels, args, args.digit, args.digit)


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint:
        generate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
