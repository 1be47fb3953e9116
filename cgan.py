"""The conditional GAN: Mirza and Osindero, "Conditional Generative Adversarial Nets", 2014.

The vanilla GAN (gan.py) draws a random digit; nobody can ask it for a 3. The conditional GAN
gives both networks the label y as a second input, so the game becomes

    min_G max_D  E_{x,y}[log D(x | y)] + E_{z,y}[log(1 - D(G(z | y) | y))].

D no longer asks "is this a real image?" but "is this a real image of a y?": a sharp 7 handed in
as a 3 is a fake. G can only win by drawing the digit it was asked for. Losses, on logits l as in
gan.py (non-saturating generator loss):

    L_D = -[log D(x|y) + log(1 - D(G(z|y')|y'))] = softplus(-l_real) + softplus(l_fake)
    L_G = -log D(G(z|y')|y')                     = softplus(-l_fake)

with (x, y) a real image and its label, and y' drawn uniformly from the classes for the fakes.

How the label enters (`--arch mlp`, the default, as in the paper): a learned embedding of y (10
numbers, the same as a one-hot vector times a weight matrix) is concatenated with z at G's input,
and with the flattened image at D's input; the networks are otherwise gan.py's MLPs.
`--arch conv`, a conditional DCGAN: G gets [z, embedding(y)] before its first layer, as above;
D uses the projection of Miyato and Koyama (2018): logit = w . phi(x) + embedding(y) . phi(x),
where phi(x) are D's features of the image. Why not just append y as extra image channels: then D
may learn to judge realism and ignore the channels; the projection term is an explicit "does this
image match this class" score that D cannot leave out, which gives better class fidelity.

GAN and CGAN differ only in their inputs: the architecture, the losses and the training loop are
the same. What changes is the use: a CGAN is a controllable generator (draw any chosen class, or a
balanced data set), and the class-per-column grids show the split the networks learn between the
label (which digit) and z (the style: slant, thickness, width; one row = one z).

    python cgan.py                                          # MLP CGAN on MNIST
    python cgan.py --checkpoint runs/cgan/X/checkpoint.pt --digit 3 --out threes.png
    python cgan.py --dataset fashion --arch conv
"""
import copy
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import common

CLASSES = 10


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    parser.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    parser.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    common.add_gan_arguments(parser, iters=30000)
    common.add_run_arguments(parser, "cgan", sample_every=1000, eval_every=5000,
                             checkpoint_every=5000, gif_samples=100)
    parser.add_argument("--digit", type=common.bounded(int, at_least=0, at_most=CLASSES - 1),
                        metavar="D",
                        help="generate only class D (0-9): a 10x10 grid to --out FILE.png "
                             "(default: beside the checkpoint), or N samples with --generate")
    parser.add_argument("--class-name", help="generate only this class, by name (Fashion-MNIST)")
    args = parser.parse_args(argv)
    common.check_run_arguments(parser, args)
    common.check_d_dropout(parser, args)
    if args.gif_samples % CLASSES:
        parser.error(f"--gif-samples {args.gif_samples}: one class per column needs a multiple "
                     f"of {CLASSES}")
    if args.digit is not None and args.class_name is not None:
        parser.error("give --digit or --class-name, not both")
    asks_generation = args.generate is not None or args.digit is not None or args.class_name
    if asks_generation and not args.checkpoint:
        parser.error("--generate, --digit and --class-name need --checkpoint CKPT")
    if args.checkpoint and not asks_generation:
        parser.error("--checkpoint needs --generate N, --digit D or --class-name NAME")
    return args


# ---------------------------------------------------------------------------------------------
# Networks: gan.py's, with the label as a second input

def check_labels(labels):
    if labels.numel() and (labels.min() < 0 or labels.max() >= CLASSES):
        raise ValueError(f"labels must be in 0-{CLASSES - 1}, got {labels.min().item()} to "
                         f"{labels.max().item()}")


class MLPGenerator(nn.Module):
    def __init__(self, z_dim, image_shape):
        super().__init__()
        self.image_shape = tuple(image_shape)
        pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.label_embedding = nn.Embedding(CLASSES, 10)
        self.net = nn.Sequential(
            nn.Linear(z_dim + 10, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, pixels), nn.Tanh())

    def forward(self, z, labels):                              # (B, z_dim), (B,)
        check_labels(labels)
        inputs = torch.cat([z, self.label_embedding(labels)], dim=1)    # (B, z_dim + 10)
        return self.net(inputs).view(-1, *self.image_shape)   # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_shape, dropout=0.0):
        super().__init__()
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.label_embedding = nn.Embedding(CLASSES, 10)
        # gan.py's D with the label appended, dropout included: it keeps D from memorizing
        self.net = nn.Sequential(
            nn.Linear(pixels + 10, 512), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(256, 1))

    def forward(self, images, labels):                         # (B, C, H, W), (B,)
        check_labels(labels)
        inputs = torch.cat([images.flatten(1), self.label_embedding(labels)], dim=1)
        return self.net(inputs).squeeze(1)                     # (B,) logits


class ConvGenerator(nn.Module):
    def __init__(self, z_dim, image_shape):
        super().__init__()
        self.start = image_shape[1] // 4                       # 7 for 28x28
        self.label_embedding = nn.Embedding(CLASSES, 10)
        self.project = nn.Sequential(
            nn.Linear(z_dim + 10, 128 * self.start ** 2), nn.BatchNorm1d(128 * self.start ** 2),
            nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            # (B, 64, 14, 14)
            nn.ConvTranspose2d(64, image_shape[0], 4, stride=2, padding=1), nn.Tanh())
            # (B, C, 28, 28)

    def forward(self, z, labels):
        check_labels(labels)
        inputs = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.net(self.project(inputs).view(-1, 128, self.start, self.start))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, image_shape, features=256):
        super().__init__()
        side = image_shape[1] // 4
        self.phi = nn.Sequential(
            nn.Conv2d(image_shape[0], 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            # (B, 64, 14, 14)
            nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            # (B, 128, 7, 7): no batch norm in D (see gan.py's docstring)
            nn.Flatten(), nn.Linear(128 * side * side, features), nn.LeakyReLU(0.2))
            # (B, features)
        self.realism = nn.Linear(features, 1)
        self.label_embedding = nn.Embedding(CLASSES, features)

    def forward(self, images, labels):
        check_labels(labels)
        phi = self.phi(images)
        # logit = w . phi(x) + b + embedding(y) . phi(x): realism plus class match
        return self.realism(phi).squeeze(1) + (self.label_embedding(labels) * phi).sum(1)


def build_networks(config):
    shape = config["image_shape"]
    if config["arch"] == "mlp":
        return (MLPGenerator(config["z_dim"], shape),
                MLPDiscriminator(shape, config["d_dropout"]))
    return ConvGenerator(config["z_dim"], shape), ProjectionDiscriminator(shape)


# ---------------------------------------------------------------------------------------------
# Training

def train_step(generator, discriminator, opt_g, opt_d, real, real_labels, z, fake_labels):
    batch = len(real)
    fake = generator(z, fake_labels)                                      # (B, C, H, W)
    # Discriminator step, real and fake in one pass, each judged against its own label.
    logits = discriminator(torch.cat([real, fake.detach()]), torch.cat([real_labels, fake_labels]))
    real_logits, fake_logits = logits[:batch], logits[batch:]
    # L_D = -[log D(x|y) + log(1 - D(G(z|y')|y'))] = softplus(-l_real) + softplus(l_fake)
    loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # Generator step against the updated D (frozen: its weight gradients are not needed).
    discriminator.requires_grad_(False)
    # L_G = -log D(G(z|y')|y') = softplus(-l_fake)
    loss_g = F.softplus(-discriminator(fake, fake_labels)).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    discriminator.requires_grad_(True)
    return loss_d.detach(), loss_g.detach(), real_logits.detach(), fake_logits.detach()


@torch.no_grad()
def draw_samples(generator, labels, z_dim, chunk=1000):
    """G(z | y) for each label y, z ~ N(0, I), in chunks (eval mode for batch norm)."""
    generator.eval()
    return torch.cat([generator(torch.randn(len(part), z_dim, device=labels.device), part)
                      for part in labels.split(chunk)])


def train(args):
    config = {"arch": args.arch, "dataset": args.dataset, "z_dim": args.z_dim,
              "d_dropout": args.d_dropout,
              "image_shape": list(common.DATASETS[args.dataset]["shape"])}
    run = common.TrainingRun(args, "cgan", config)   # with --resume, the checkpoint's config
    config, device = run.config, run.device
    train_images, train_labels = common.dataset_tensors(config["dataset"], device, args.data_dir)
    generator, discriminator = (net.to(device) for net in build_networks(config))
    ema_generator = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g, opt_d = common.adam_pair(generator, discriminator, args.lr, (args.beta1, 0.999))
    # The grid: row r, column c is G(z_r | c), so a row keeps one style across the ten classes.
    fixed_z = torch.randn(args.gif_samples // CLASSES, config["z_dim"],
                          device=device).repeat_interleave(CLASSES, 0)
    run.track({"generator": generator, "discriminator": discriminator,
               "ema_generator": ema_generator}, {"opt_g": opt_g, "opt_d": opt_d}, fixed_z)
    run.load_resumed()                  # --resume: the checkpoint's weights, optimizers, RNG
    grid_labels = torch.arange(CLASSES, device=device).repeat(len(fixed_z) // CLASSES)

    @torch.no_grad()
    def snapshot():         # G_ema(z | y); the conv generator's batch norms get its own statistics
        common.standing_statistics(ema_generator, config["z_dim"], CLASSES)
        return ema_generator(fixed_z, grid_labels)

    def draw(count):        # the samples that are measured: labels spread evenly over classes
        common.standing_statistics(ema_generator, config["z_dim"], CLASSES)
        wanted = common.class_labels(count, None, device)
        return draw_samples(ema_generator, wanted, config["z_dim"]), wanted

    for iteration in range(run.start + 1, args.iters + 1):
        started = time.perf_counter()
        real, real_labels = common.sample_batch(train_images, args.batch_size, train_labels)
        z = torch.randn(args.batch_size, config["z_dim"], device=device)
        fake_labels = torch.randint(CLASSES, (args.batch_size,), device=device)  # y' uniform
        loss_d, loss_g, real_logits, fake_logits = train_step(
            generator, discriminator, opt_g, opt_d, real, real_labels, z, fake_labels)
        common.ema_update(ema_generator, generator, args.ema)
        run.log(iteration, time.perf_counter() - started, loss_d=loss_d, loss_g=loss_g,
                d_real=torch.sigmoid(real_logits).mean(), d_fake=torch.sigmoid(fake_logits).mean())

        if run.due(iteration, args.sample_every):   # a class per column, a GIF frame, the curves
            run.save_snapshot(snapshot(), [["loss_d", "loss_g"], ["d_real", "d_fake"]],
                              ncol=CLASSES)
        if run.classifier is not None and run.due(iteration, args.eval_every):
            run.evaluate(*draw(args.eval_samples))          # FID, entropy, conditional accuracy
        if run.due(iteration, args.checkpoint_every):
            run.save_checkpoint()
        if run.finished(iteration):                         # --iters, or --minutes spent
            break

    common.save_labeled_grid(snapshot(), common.DATASETS[config["dataset"]]["classes"],
                             run.out / "classes.png",
                             title=f"one class per column, one latent z per row ({iteration} it)")
    return run.finish(parzen_images=draw(10000)[0] if args.parzen and run.classifier is not None
                      else None)


def generate(args):
    """From a checkpoint: N samples with labels spread over the classes (or all of one class)
    to FILE.npz, or with --digit / --class-name alone a 10x10 grid of that class to a PNG."""
    state = common.load_checkpoint(args.checkpoint, "cgan", config_keys=["d_dropout"])
    names = common.DATASETS[state["config"]["dataset"]]["classes"]
    wanted_class = args.digit
    if args.class_name is not None:
        lowered = [name.lower() for name in names]
        if args.class_name.lower() not in lowered:
            raise common.UserError(f"--class-name {args.class_name!r}: this checkpoint's classes "
                                   f"are {', '.join(names)}")
        wanted_class = lowered.index(args.class_name.lower())
    device = common.pick_device(args.device)
    common.seed_everything(args.seed)
    generator, _ = build_networks(state["config"])
    common.load_weights(generator, state["ema_generator"], args.checkpoint)
    common.standing_statistics(generator.to(device), state["config"]["z_dim"], CLASSES)
    labels = common.class_labels(args.generate or 100, wanted_class, device)
    images = draw_samples(generator, labels, state["config"]["z_dim"])
    common.save_class_samples(images, labels, args, wanted_class,
                              None if wanted_class is None else names[wanted_class])


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint:
        generate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
