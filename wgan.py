"""DCGAN against WGAN: the same networks, trained with the GAN loss or the Wasserstein loss.

The GAN loss is that of Goodfellow et al. (2014); the Wasserstein loss that of Arjovsky, Chintala
and Bottou, "Wasserstein GAN", ICML 2017; with --gradient-penalty, WGAN-GP: Gulrajani et al.,
"Improved Training of Wasserstein GANs", 2017.

The standard GAN's discriminator loss tells little about sample quality. Against the best D, G's
loss is -log 4 + 2 JSD(P_data || P_G), and the Jensen-Shannon divergence is stuck at log 2
whenever the two distributions do not overlap, however far apart they are: D's loss then goes to
0 and the minimax generator's gradient vanishes. The WGAN replaces it with the Earth-Mover
(Wasserstein-1) distance, through its dual form (Kantorovich-Rubinstein, the paper's equation 3):

    W(P_data, P_G) = sup over 1-Lipschitz f of  E_x[f(x)] - E_z[f(G(z))],

which keeps shrinking as P_G moves towards P_data. A critic f that is K-Lipschitz gives at most
K * W, and one that is not at the supremum gives less: its estimate is a number to watch within
one run, on the scale of that critic, not W itself.

The second network is the same in both runs; only how its output is read, the loss, the
optimizer and the constraint change:

    --loss gan          D(x) = sigmoid(l(x)), on logits as in gan.py, Adam, no constraint:
                        L_D = softplus(-l_real) + softplus(l_fake),  L_G = softplus(-l_fake)
                        (G's non-saturating loss, as gan.py --loss logistic)
    --loss wasserstein  a "critic" f (no sigmoid: a score, not a probability), RMSprop:
                        L_f = E[f(G(z))] - E[f(x)]  (minimized; -L_f is the estimate),
                        L_G = -E[f(G(z))]

The hard part is "1-Lipschitz". The paper clamps every critic weight to [-c, c] after each critic
step (`--clip c`, default 0.01). For a network of linear layers and ReLUs that bounds the slope of
f by a constant K(c). This critic's layer norms divide each layer's output by that image's own
spread (plus a tiny epsilon), so the clamp does not bound its slope by anything of c: the slope
grows where an image's activations are nearly constant. Here clipping keeps the weights small and
the critic slow to change, no more; the WGAN paper's own critic, with batch norm, was in the same
position. WGAN-GP (`--gradient-penalty LAMBDA`)
drops clipping and adds

    LAMBDA * E[(||grad_x f(x_hat)||_2 - 1)^2],   x_hat = e x + (1 - e) G(z),  e ~ U[0, 1],

at points between real and generated images, where an optimal critic has gradient norm 1; it
uses Adam with beta1 = 0 and beta2 = 0.9, as in that paper.

-E[f(G(z))] + E[f(x)] estimates K * W only for a critic near its optimum. The papers train the
critic `--n-critic` = 5 times per generator step, with learning rates of 5e-5 (RMSprop, clipping)
and 1e-4 (Adam, WGAN-GP), for hundreds of thousands of critic steps; the WGAN authors' code also
trains it 100 times before each of the first 25 generator steps and every 500th, so that G starts
against a critic near its optimum and the critic is brought back to it now and then
(`--critic-schedule paper`, 5 steps otherwise). On a CPU budget of minutes those critic steps eat
the time the generator needs. The defaults here: WGAN-GP trains its critic once per generator
step, as the GAN its discriminator, with Adam at 5e-4 (the GAN: 2e-4, as in gan.py); the clipped
critic, which learns more slowly, twice, with RMSprop at 2e-4. `--critic-lr` gives the critic a
learning rate of its own (two time scales, Heusel et al. 2017).

The networks of the course's exercise, sized for a CPU:
    generator:     dense z -> (64, s, s), then transposed conv -> (32, 2s, 2s), transposed conv
                   -> (16, 4s, 4s), conv -> (C, 4s, 4s), tanh; batch norm + ReLU between
                   (s = 7 for 28x28, 8 for 32x32): 1 dense + 3 conv layers
    discriminator  conv -> 16, conv -> 32, conv -> 64 channels (stride 2 each: 4x4 left),
    or critic:     LeakyReLU and dropout (--d-dropout; none under the penalty) after each, then
                   dense -> 1 number:
                   3 conv + 1 dense layers; layer norm after each convolution. Not batch
                   norm: the gradient penalty is taken per sample, and batch norm would mix the
                   samples of a batch (WGAN-GP's paper uses layer norm for that reason). It also
                   helps the clipped critic: each layer's output is rescaled to unit size, so
                   weights clamped to [-c, c] no longer shrink the signal layer after layer (the
                   norm has no learned gain, which the clamp would hold below c).

    python wgan.py --loss gan --minutes 20           # the DCGAN of the comparison
    python wgan.py --minutes 20                      # clipped WGAN (c = 0.01) on MNIST
    python wgan.py --minutes 20 --gradient-penalty 10   # WGAN-GP
    python wgan.py --clip 0.1 --minutes 5            # see what a looser clip does
"""
import copy
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

import common


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    parser.add_argument("--dataset", choices=list(common.DATASETS), default="mnist")
    positive = common.bounded(int, at_least=1)
    parser.add_argument("--z-dim", type=common.bounded(int, at_least=50, at_most=200), default=100,
                        help="latent size, 50-200 (the course's DCGAN exercise)")
    parser.add_argument("--iters", type=positive, default=100000, help="most generator iterations")
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--loss", choices=["wasserstein", "gan"], default="wasserstein",
                        help="the second network: W's critic, or the GAN's discriminator")
    parser.add_argument("--n-critic", type=positive, help="critic (or D) steps per G step (default "
                        "2 with clipping, else 1; with --critic-schedule paper 5)")
    parser.add_argument("--critic-schedule", choices=["constant", "paper"], default="constant",
                        help="paper: 100 critic steps before each of G's first 25 steps and "
                             "every 500th, --n-critic otherwise (the WGAN authors' code)")
    above_0 = common.bounded(float, above=0)
    parser.add_argument("--clip", type=above_0, help="critic weights in [-c, c] (the clipped WGAN "
                                                     "only; default 0.01)")
    parser.add_argument("--gradient-penalty", type=above_0, metavar="LAMBDA",
                        help="WGAN-GP with this weight instead of clipping (the paper: 10)")
    parser.add_argument("--lr", type=above_0, help="default 2e-4 (RMSprop, clipping), 5e-4 "
                        "with --gradient-penalty, 2e-4 with --loss gan (Adam)")
    parser.add_argument("--critic-lr", type=above_0, help="the critic's (or D's) own learning rate "
                        "(default: --lr)")
    parser.add_argument("--d-dropout", "--dropout", dest="dropout", metavar="P",
                        type=common.bounded(float, at_least=0, below=1),
                        help="dropout after each convolution of the critic or D (default 0.2; "
                             "0 with --gradient-penalty, whose penalty must see f itself)")
    common.add_run_arguments(parser, "wgan", sample_every=200, eval_every=1000,
                             checkpoint_every=1000, minutes=20.0)
    args = parser.parse_args(argv)
    clipped = args.loss == "wasserstein" and args.gradient_penalty is None
    if args.clip is not None and not clipped:
        parser.error("--clip is for the clipped WGAN (--loss wasserstein without "
                     "--gradient-penalty)")
    if args.loss == "gan" and args.gradient_penalty is not None:
        parser.error("--gradient-penalty is for --loss wasserstein")
    if (args.generate is None) != (args.checkpoint is None):
        parser.error("--generate N and --checkpoint CKPT go together")
    common.check_run_arguments(parser, args)
    fill_recipe(args, clipped)
    return args


def fill_recipe(args, clipped):
    """The flags not given take the recipe of the loss asked for (see the docstring)."""
    if clipped and args.clip is None:
        args.clip = 0.01
    if args.n_critic is None:
        args.n_critic = 5 if args.critic_schedule == "paper" else 2 if clipped else 1
    if args.dropout is None:
        args.dropout = 0.0 if args.gradient_penalty else 0.2
    if args.lr is None:   # Adam for the GAN and WGAN-GP, RMSprop for the clipped WGAN
        args.lr = 5e-4 if args.gradient_penalty else 2e-4
    if args.critic_lr is None:
        args.critic_lr = args.lr
    if clipped and not 0.001 <= args.clip <= 0.1:
        warnings.warn(f"--clip {args.clip} is outside [0.001, 0.1]: expect a critic that cannot "
                      "learn (too small) or trains very slowly (too large)", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Networks: generator = 1 dense + 3 conv layers, critic = 3 conv + 1 dense with dropout, the same
# for both losses

class Generator(nn.Module):
    def __init__(self, z_dim, image_shape):
        super().__init__()
        self.start = image_shape[1] // 4                       # 7 for 28x28, 8 for 32x32
        self.dense = nn.Sequential(nn.Linear(z_dim, 64 * self.start ** 2),
                                   nn.BatchNorm1d(64 * self.start ** 2), nn.ReLU())
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            # (B, 32, 2s, 2s)
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            # (B, 16, 4s, 4s)
            nn.Conv2d(16, image_shape[0], 3, padding=1), nn.Tanh())
            # (B, C, 4s, 4s) in [-1, 1]

    def forward(self, z):                                      # (B, z_dim)
        return self.conv(self.dense(z).view(-1, 64, self.start, self.start))


class Critic(nn.Module):
    """The WGAN's critic f, or the GAN's discriminator (its output then a logit l)."""

    def __init__(self, image_shape, dropout=0.2):
        super().__init__()
        # GroupNorm with one group is layer norm over (C, H, W) of each sample on its own;
        # without a learned gain and shift, which clipping would clamp to [-c, c] too, shrinking
        # every layer's output to size c and letting the next layer's biases drown it
        self.net = nn.Sequential(
            nn.Conv2d(image_shape[0], 16, 4, stride=2, padding=1),
            nn.GroupNorm(1, 16, affine=False), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            # (B, 16, H/2, W/2)
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.GroupNorm(1, 32, affine=False), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            # (B, 32, H/4, W/4): 7 or 8
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.GroupNorm(1, 64, affine=False), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            # (B, 64, 4, 4)
            nn.Flatten(), nn.Linear(64 * 4 * 4, 1))            # (B, 1): no sigmoid

    def forward(self, images):
        return self.net(images).squeeze(1)                     # (B,)


def build_networks(config):
    """The generator and the critic: the same for --loss gan and --loss wasserstein."""
    return (Generator(config["z_dim"], config["image_shape"]),
            Critic(config["image_shape"], config["dropout"]))


# ---------------------------------------------------------------------------------------------
# Losses

def critic_loss(real_scores, fake_scores, loss):
    if loss == "gan":
        # L_D = -[log D(x) + log(1 - D(G(z)))] = softplus(-l_real) + softplus(l_fake)
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    # L_f = E[f(G(z))] - E[f(x)]; its negative is the critic's estimate of W (up to a scale)
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores, loss):
    if loss == "gan":
        # L_G = -log D(G(z)) = softplus(-l_fake), the non-saturating loss
        return F.softplus(-fake_scores).mean()
    # L_G = -E[f(G(z))]
    return -fake_scores.mean()


def gradient_penalty(critic, real, fake):
    """E[(||grad_x f(x_hat)||_2 - 1)^2], x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per sample."""
    e = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    gradients, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((gradients.flatten(1).norm(dim=1) - 1) ** 2).mean()


def clip_weights(critic, clip):
    """The paper's Lipschitz bound: every critic parameter clamped to [-c, c]."""
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.clamp_(-clip, clip)


def critic_step(critic, opt_f, real, fake, config):
    """One step of the critic (or D) on a real and a generated batch, then, for the clipped
    WGAN, the clamp. Returns its loss and the scores of both batches."""
    penalty = config["gradient_penalty"]
    scores = critic(torch.cat([real, fake]))                   # one pass for both: (2B,)
    real_scores, fake_scores = scores[:len(real)], scores[len(real):]
    loss_f = critic_loss(real_scores, fake_scores, config["loss"])
    if penalty:
        # WGAN-GP: L_f + LAMBDA * E[(||grad f(x_hat)|| - 1)^2]
        loss_f = loss_f + penalty * gradient_penalty(critic, real, fake)
    opt_f.zero_grad(set_to_none=True)
    loss_f.backward()
    opt_f.step()
    if config["loss"] == "wasserstein" and not penalty:
        clip_weights(critic, config["clip"])
    return loss_f.detach(), real_scores.detach(), fake_scores.detach()


def critic_steps(iteration, config):
    """How many critic steps come before generator step `iteration` (1, 2, ...): --n-critic; with
    the paper's schedule 100 before each of the first 25 and before every 500th (1, 501, 1001,
    ...: the WGAN authors' code counts the generator steps already taken, 0, 500, 1000, ...)."""
    if config.get("critic_schedule") == "paper" and (iteration <= 25 or iteration % 500 == 1):
        return 100
    return config["n_critic"]


def train_step(generator, critic, opt_g, opt_f, train_images, batch_size, config, n_critic=None):
    """n_critic (default config["n_critic"]) critic steps, each on a fresh real batch and fresh z,
    then one generator step. Returns the numbers to log: for the WGAN the critic's estimate
    E[f(x)] - E[f(G(z))] of its last step, for the GAN the discriminator's loss; and G's loss."""
    loss, z_dim = config["loss"], config["z_dim"]
    for _ in range(n_critic or config["n_critic"]):
        real = common.sample_batch(train_images, batch_size)       # (B, C, H, W)
        with torch.no_grad():
            fake = generator(torch.randn(len(real), z_dim, device=real.device))
        loss_f, real_scores, fake_scores = critic_step(critic, opt_f, real, fake, config)

    critic.requires_grad_(False)                               # only G learns in this step
    fake_scores_g = critic(generator(torch.randn(len(real), z_dim, device=real.device)))
    loss_g = generator_loss(fake_scores_g, loss)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    critic.requires_grad_(True)
    if loss == "gan":
        return {"loss_d": loss_f, "loss_g": loss_g.detach()}
    return {"wasserstein": real_scores.mean() - fake_scores.mean(), "loss_g": loss_g.detach()}


def make_optimizers(generator, critic, config):
    """RMSprop for the clipped WGAN; Adam for the GAN (betas (0.5, 0.999), as in gan.py) and for
    WGAN-GP ((0, 0.9), its paper's), or the betas config["betas"] names."""
    lr, critic_lr = config["lr"], config["critic_lr"]
    if config["loss"] == "wasserstein" and not config["gradient_penalty"]:
        # The WGAN paper: RMSprop (momentum-based optimizers made the clipped critic unstable)
        return (torch.optim.RMSprop(generator.parameters(), lr),
                torch.optim.RMSprop(critic.parameters(), critic_lr))
    betas = config.get("betas") or ((0.5, 0.999) if config["loss"] == "gan" else (0.0, 0.9))
    return common.adam_pair(generator, critic, lr, tuple(betas), critic_lr)


# ---------------------------------------------------------------------------------------------
# Training

def variant(config):
    """GAN, WGAN-GP (lambda 10) or WGAN, clip 0.01."""
    if config["loss"] == "gan":
        return "GAN"
    if config["gradient_penalty"]:
        return f"WGAN-GP (lambda {config['gradient_penalty']})"
    return f"WGAN, clip {config['clip']}"


def train(args):
    config = {"dataset": args.dataset, "loss": args.loss, "z_dim": args.z_dim,
              "n_critic": args.n_critic, "critic_schedule": args.critic_schedule,
              "clip": args.clip, "dropout": args.dropout,
              "gradient_penalty": args.gradient_penalty, "lr": args.lr, "critic_lr": args.critic_lr,
              "image_shape": list(common.DATASETS[args.dataset]["shape"])}
    run = common.TrainingRun(args, "wgan", config, log_every=50)   # --resume: its config
    config, device = run.config, run.device
    train_images, _ = common.dataset_tensors(config["dataset"], device, args.data_dir)
    generator, critic = (net.to(device) for net in build_networks(config))
    ema_generator = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g, opt_f = make_optimizers(generator, critic, config)
    fixed_z = torch.randn(args.gif_samples, config["z_dim"], device=device)  # every GIF frame
    run.track({"generator": generator, "critic": critic, "ema_generator": ema_generator},
              {"opt_g": opt_g, "opt_f": opt_f}, fixed_z)
    run.load_resumed()                  # --resume: the checkpoint's weights, optimizers, RNG

    @torch.no_grad()
    def snapshot():         # G_ema(fixed z), with the batch-norm statistics of its own weights
        common.standing_statistics(ema_generator, config["z_dim"])
        return ema_generator(fixed_z)

    def draw(count):        # the samples that are measured: G_ema(z), no labels
        common.standing_statistics(ema_generator, config["z_dim"])
        return common.draw_samples(ema_generator, count, config["z_dim"], device)

    panels = [["loss_d"], ["loss_g"]] if config["loss"] == "gan" else [["wasserstein"], ["loss_g"]]
    for iteration in range(run.start + 1, args.iters + 1):
        started = time.perf_counter()
        numbers = train_step(generator, critic, opt_g, opt_f, train_images, args.batch_size,
                             config, critic_steps(iteration, config))
        common.ema_update(ema_generator, generator, args.ema)
        run.log(iteration, time.perf_counter() - started, **numbers)

        if run.due(iteration, args.sample_every):          # a grid, a GIF frame, the curves
            run.save_snapshot(snapshot(), panels)
        if run.classifier is not None and run.due(iteration, args.eval_every):
            run.evaluate(draw(args.eval_samples))           # FID, class entropy; best.pt
        if run.due(iteration, args.checkpoint_every):
            run.save_checkpoint()
        if run.finished(iteration):                        # --iters, or --minutes spent
            break
    return run.finish(parzen_images=draw(10000) if args.parzen and run.classifier is not None
                      else None, variant=variant(config))


def generate(args):
    state = common.load_checkpoint(args.checkpoint, "wgan")
    device = common.pick_device(args.device)
    common.seed_everything(args.seed)
    generator, _ = build_networks(state["config"])
    common.load_weights(generator, state["ema_generator"], args.checkpoint)
    common.standing_statistics(generator.to(device), state["config"]["z_dim"])
    images = common.draw_samples(generator, args.generate, state["config"]["z_dim"],
                                 device)
    common.save_samples(images, args.out)
    print(f"wrote {args.generate} samples to {args.out}")


@common.exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.generate is not None:
        generate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
