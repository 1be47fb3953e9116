"""The vanilla GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.

A generator G maps noise z ~ N(0, I) to an image; a discriminator D maps an image to the
probability that it is real. They play the minimax game (the paper's equation 1)

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

D is a network that outputs a logit l, with D = sigmoid(l). Every loss below is written on logits
with softplus(a) = log(1 + e^a), because log(sigmoid(l)) = -softplus(-l) and
log(1 - sigmoid(l)) = -softplus(l) are exact and finite for any l, while log of a probability
that has rounded to 0 is -inf.

    discriminator   L_D = -[log D(x) + log(1 - D(G(z)))]  = softplus(-l_real) + softplus(l_fake)
    --loss minimax  L_G = log(1 - D(G(z)))                 = -softplus(l_fake)
    --loss logistic L_G = -log D(G(z))                     =  softplus(-l_fake)

Why the minimax generator loss saturates: early in training the fakes are poor, D rejects them
easily and l_fake is very negative. The gradient of -softplus(l) is -sigmoid(l) = -D(G(z)), which
goes to 0 as D(G(z)) -> 0: the generator gets almost no signal exactly when it is worst. The
non-saturating (logistic) loss has the same fixed point but gradient -(1 - D(G(z))), close to -1
in that regime. Section 3 of the paper recommends it for this reason.

Networks (--arch mlp, the default, as in the paper): multilayer perceptrons.
    G: z (100) -> 256 -> 512 -> 1024 -> 784, LeakyReLU(0.2), tanh output in [-1, 1] like the data.
       Widening layer by layer gives the last layer enough units to draw every pixel.
    D: 784 -> 512 -> 256 -> 1 logit, LeakyReLU(0.2), dropout 0.3 after each hidden layer
       (--d-dropout), as the paper's D had. Without it, D memorizes the 60,000 training images
       over a long run: its mean logit on them rises above its mean logit on held-out test
       images, its verdicts stop describing digits in general, and the mix of digits G draws
       drifts. Every evaluation prints that gap (Karras et al. 2020 use it to detect a
       discriminator that overfits); docs/GUIDE.md shows the runs with and without dropout.
--arch dcgan (Radford et al. 2016): transposed convolutions with batch norm in G, strided
convolutions with LeakyReLU in D; the same loop, for 28x28 (MNIST, Fashion-MNIST) and 32x32x3
(CIFAR-10) images. Unlike the paper, D has no batch norm: real and fake go through D as one batch
(one pass instead of two), and the generator step shows D fakes alone, so with batch norm D could
tell the two kinds of batch apart by their statistics instead of judging each image.

Samples are drawn from an exponential moving average (EMA) of G's weights,
theta_ema <- decay * theta_ema + (1 - decay) * theta, which averages over the step-to-step
oscillation of the adversarial game (--ema 0 samples the raw generator).
--lr-decay linear lowers both learning rates linearly towards 0 over the run: over --iters, or
over --minutes if that budget ends sooner.

    python gan.py --loss logistic                       # 20,000 iterations on MNIST
    python gan.py --checkpoint runs/gan/X/checkpoint.pt --generate 1000 --out samples.npz
"""
import copy
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import common


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    parser.add_argument("--loss", choices=["minimax", "logistic"], default="logistic",
                        help="generator loss: log(1 - D(G(z))) or -log D(G(z))")
    parser.add_argument("--arch", choices=["mlp", "dcgan"], default="mlp")
    parser.add_argument("--dataset", choices=list(common.DATASETS), default="mnist")
    common.add_gan_arguments(parser, iters=20000)
    parser.add_argument("--lr-decay", choices=["none", "linear"], default="none",
                        help="linear: the learning rate falls linearly over the run, towards 0 "
                             "at --iters, or at --minutes if the budget ends sooner (long runs)")
    common.add_run_arguments(parser, "gan", sample_every=1000, eval_every=5000,
                             checkpoint_every=5000)
    args = parser.parse_args(argv)
    common.check_run_arguments(parser, args)
    common.check_d_dropout(parser, args)
    if (args.generate is None) != (args.checkpoint is None):
        parser.error("--generate N and --checkpoint CKPT go together")
    return args


# ---------------------------------------------------------------------------------------------
# Networks

class MLPGenerator(nn.Module):
    def __init__(self, z_dim, image_shape):
        super().__init__()
        self.image_shape = tuple(image_shape)
        pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.net = nn.Sequential(
            nn.Linear(z_dim, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, pixels), nn.Tanh())

    def forward(self, z):                                      # (B, z_dim)
        return self.net(z).view(-1, *self.image_shape)         # (B, C, H, W) in [-1, 1]


class MLPDiscriminator(nn.Module):
    def __init__(self, image_shape, dropout=0.0):
        super().__init__()
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(
            nn.Flatten(),                                      # (B, C*H*W)
            nn.Linear(pixels, 512), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(256, 1))

    def forward(self, images):                                 # (B, C, H, W)
        return self.net(images).squeeze(1)                     # (B,) logits


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim, image_shape):
        super().__init__()
        self.start = image_shape[1] // 4                       # 7 for 28x28, 8 for 32x32
        self.project = nn.Sequential(
            nn.Linear(z_dim, 128 * self.start ** 2), nn.BatchNorm1d(128 * self.start ** 2),
            nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            # (B, 64, 2s, 2s)
            nn.ConvTranspose2d(64, image_shape[0], 4, stride=2, padding=1), nn.Tanh())
            # (B, C, 4s, 4s)

    def forward(self, z):                                      # (B, z_dim)
        features = self.project(z).view(-1, 128, self.start, self.start)  # (B, 128, s, s)
        return self.net(features)


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_shape):
        super().__init__()
        side = image_shape[1] // 4
        self.net = nn.Sequential(
            nn.Conv2d(image_shape[0], 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            # (B, 64, H/2, W/2)
            nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            # (B, 128, H/4, W/4)
            nn.Flatten(), nn.Linear(128 * side * side, 1))

    def forward(self, images):
        return self.net(images).squeeze(1)                     # (B,) logits


def build_networks(config):
    shape = config["image_shape"]
    if config["arch"] == "mlp":
        return (MLPGenerator(config["z_dim"], shape),
                MLPDiscriminator(shape, config["d_dropout"]))
    return DCGANGenerator(config["z_dim"], shape), DCGANDiscriminator(shape)


# ---------------------------------------------------------------------------------------------
# Losses, on logits (see the docstring for the derivations)

def discriminator_loss(real_logits, fake_logits):
    # L_D = -[log D(x) + log(1 - D(G(z)))] = softplus(-l_real) + softplus(l_fake)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits, loss):
    if loss == "minimax":
        # L_G = log(1 - D(G(z))) = -softplus(l_fake): saturates as D(G(z)) -> 0
        return -F.softplus(fake_logits).mean()
    # L_G = -log D(G(z)) = softplus(-l_fake): the non-saturating logistic loss
    return F.softplus(-fake_logits).mean()


# ---------------------------------------------------------------------------------------------
# Training

def train_step(generator, discriminator, opt_g, opt_d, real, z, loss):
    """One discriminator step, then one generator step, on a real batch and the fakes G(z)."""
    batch = len(real)
    fake = generator(z)                                                   # (B, C, H, W)
    # Discriminator step: ascend log D(x) + log(1 - D(G(z))); G's output is held fixed.
    # Real and fake go through D as one batch of 2B: one pass instead of two.
    logits = discriminator(torch.cat([real, fake.detach()]))              # (2B,)
    real_logits, fake_logits = logits[:batch], logits[batch:]
    loss_d = discriminator_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # Generator step: the updated D judges the same fakes, and G moves to fool it. D's own
    # weight gradients are not needed here, so D is frozen for this backward pass.
    discriminator.requires_grad_(False)
    loss_g = generator_loss(discriminator(fake), loss)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    discriminator.requires_grad_(True)
    return loss_d.detach(), loss_g.detach(), real_logits.detach(), fake_logits.detach()


@torch.no_grad()
def overfitting_gap(discriminator, train_images, test_images):
    """Mean logit of D on training images minus on held-out test images (Karras et al. 2020).
    Near 0 while D judges digits in general; it grows as D memorizes the images it trains on,
    and then its verdicts stop telling G what real digits look like."""
    discriminator.eval()   # no dropout while measuring
    index = torch.randperm(len(train_images), device=train_images.device)[:len(test_images)]
    gap = discriminator(train_images[index]).mean() - discriminator(test_images).mean()
    discriminator.train()
    return gap.item()


def train(args):
    config = {"arch": args.arch, "dataset": args.dataset, "z_dim": args.z_dim, "loss": args.loss,
              "image_shape": list(common.DATASETS[args.dataset]["shape"]),
              "d_dropout": args.d_dropout}
    run = common.TrainingRun(args, "gan", config)   # with --resume, the checkpoint's config
    config, device = run.config, run.device
    train_images, _ = common.dataset_tensors(config["dataset"], device, args.data_dir)
    if run.classifier is not None:   # MNIST: held-out images, to see whether D memorizes
        test_images, _ = common.dataset_tensors("mnist", device, args.data_dir, train=False)
    generator, discriminator = (net.to(device) for net in build_networks(config))
    ema_generator = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g, opt_d = common.adam_pair(generator, discriminator, args.lr, (args.beta1, 0.999))
    fixed_z = torch.randn(args.gif_samples, config["z_dim"], device=device)  # every GIF frame
    run.track({"generator": generator, "discriminator": discriminator,
               "ema_generator": ema_generator}, {"opt_g": opt_g, "opt_d": opt_d}, fixed_z)
    run.load_resumed()                  # --resume: the checkpoint's weights, optimizers, RNG

    @torch.no_grad()
    def snapshot():         # G_ema(fixed z); a DCGAN's batch norms get its own statistics
        common.standing_statistics(ema_generator, config["z_dim"])
        return ema_generator(fixed_z)

    def draw(count):        # the samples that are measured: G_ema(z), no labels
        common.standing_statistics(ema_generator, config["z_dim"])
        return common.draw_samples(ema_generator, count, config["z_dim"], device)

    for iteration in range(run.start + 1, args.iters + 1):
        started = time.perf_counter()
        real = common.sample_batch(train_images, args.batch_size)        # (B, C, H, W)
        z = torch.randn(args.batch_size, config["z_dim"], device=device)
        if args.lr_decay == "linear":   # the same for G and D
            common.decay_learning_rate((opt_g, opt_d), args.lr, run.fraction_done(iteration))
        loss_d, loss_g, real_logits, fake_logits = train_step(
            generator, discriminator, opt_g, opt_d, real, z, config["loss"])
        common.ema_update(ema_generator, generator, args.ema)
        # D(x) and D(G(z)): the discriminator's mean belief that real and fake images are real
        run.log(iteration, time.perf_counter() - started, loss_d=loss_d, loss_g=loss_g,
                d_real=torch.sigmoid(real_logits).mean(), d_fake=torch.sigmoid(fake_logits).mean())

        if run.due(iteration, args.sample_every):         # a grid, a GIF frame, the curves
            run.save_snapshot(snapshot(), [["loss_d", "loss_g"], ["d_real", "d_fake"]])
        if run.classifier is not None and run.due(iteration, args.eval_every):   # FID, entropy
            # and D's overfitting gap: does it judge digits, or remember the training images?
            run.evaluate(draw(args.eval_samples), d_overfitting_gap=overfitting_gap(
                discriminator, train_images, test_images))
        if run.due(iteration, args.checkpoint_every):
            run.save_checkpoint()
        if run.finished(iteration):                       # --iters, or --minutes spent
            break
    return run.finish(parzen_images=draw(10000) if args.parzen and run.classifier is not None
                      else None)


def generate(args):
    """--checkpoint CKPT --generate N --out FILE.npz: samples of the EMA generator, no training."""
    state = common.load_checkpoint(args.checkpoint, "gan")
    device = common.pick_device(args.device)
    common.seed_everything(args.seed)
    generator, _ = build_networks(state["config"])
    common.load_weights(generator, state["ema_generator"], args.checkpoint)
    common.standing_statistics(generator.to(device), state["config"]["z_dim"])
    images = common.draw_samples(generator, args.generate, state["config"]["z_dim"],
                                 device)
    common.save_samples(images, args.out)
    print(f"wrote {args.generate} samples to {args.out} and a grid to "
          f"{Path(args.out).with_suffix('.png')}")


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.generate is not None:
        generate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
