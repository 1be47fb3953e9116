"""Stable Diffusion in miniature: Rombach et al., "High-Resolution Image Synthesis with Latent
Diffusion Models", CVPR 2022. diffusion.py's DDPM (its noise schedule, residual blocks, training
step, DDPM and DDIM samplers and classifier-free guidance, imported as they are) run in the small
latent space of an autoencoder instead of on the pixels, with the class given as a prompt read
by cross-attention:

1. An autoencoder (0.2M parameters), trained first and then frozen: the encoder E maps a 28x28
   image to a 4x7x7 latent (4 times fewer numbers), the decoder D maps it back;
   L_AE = || x - D(E(x)) ||^2. One command trains both stages, and --minutes bounds their total.
2. The latents are shifted and scaled to mean 0 and variance 1, z = (E(x) - mu) / sigma, as Stable
   Diffusion scales its latents. The schedule was designed for data of unit spread: x_T must be
   pure N(0, I) noise and each t must keep the intended signal-to-noise ratio. Latents ten times
   wider would still show at t = T; ten times narrower, they would drown in the first steps.
   Stable Diffusion's regularized latents need one number, sigma. A plain autoencoder's channels
   sit at different offsets with different spreads, so here mu and sigma are per channel: with
   one number for all, the offsets between channels would pass for spread, and the digits (the
   variation within each channel) would be a few tenths of it. mu and sigma are stored with the
   autoencoder's weights: encode() applies them, decode() undoes them.
3. A denoiser eps_theta(z_t, t, prompt) on the 7x7 latent (0.46M parameters): residual blocks
   with t as a scale and shift (diffusion.py's, without the class), each followed by
   cross-attention to the prompt, the only way the class gets in. Queries come from the
   latent's 49 positions, keys and values from the prompt's L tokens P:
       Q = norm(h) W_q  (49 x d),   K = P W_k,  V = P W_v  (L x d)
       h <- h + softmax(Q K^T / sqrt(d)) V W_o
   so every position takes its own mixture of the tokens (in four heads, each with its own
   quarter of the channels, as Stable Diffusion's eight). The prompt has several tokens,
   "<start> a picture of 7 <end>": with a single token the softmax over the keys would be 1 at
   every position, and cross-attention would collapse into adding one learned vector per class.
   The empty prompt "<start> <end> <end> ..." means "no class" for classifier-free guidance.
   Stable Diffusion embeds its prompt with a frozen CLIP text encoder; here the token embeddings
   are learned with the denoiser. Each step is cheap, so the denoiser takes many of them with a
   large learning rate (AdamW 2e-3) that falls linearly towards 0 over the run (--lr-decay
   linear: over --iters, or over --minutes if the budget ends sooner): the weights
   settle at the end instead of jittering.
4. Sampling walks the reverse process on the latent, clipping each x0_hat to the largest |z| of
   the training latents (as diffusion.py clips to the pixels' [-1, 1]), then decodes once:
   x = D(z_0). Each step costs a 7x7 network instead of a 28x28 U-Net: that is what the latent
   space buys.

    python latent_diffusion.py                                      # train on MNIST
    python latent_diffusion.py --checkpoint runs/latent_diffusion/X/checkpoint.pt --digit 3 \\
        --out threes.png
    python latent_diffusion.py --checkpoint CKPT --generate 1000 --out s.npz
"""
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import common
import diffusion
from diffusion import CLASSES


def parse_args(argv=None):
    parser = common.argument_parser(__doc__, __file__)
    diffusion.add_arguments(parser, "latent_diffusion", iters=17000, channels=64, lr=2e-3,
                            lr_decay="linear")
    parser.add_argument("--latent-channels", type=common.bounded(int, at_least=1), default=4,
                        help="channels of the 7x7 latent")
    parser.add_argument("--ae-iters", type=common.bounded(int, at_least=1), default=1500,
                        help="training steps of the autoencoder, before the diffusion model")
    args = parser.parse_args(argv)
    diffusion.check_arguments(parser, args)
    return args


# ---------------------------------------------------------------------------------------------
# The autoencoder, the prompt, cross-attention and the latent denoiser

class Autoencoder(nn.Module):
    """E: image (C, H, W) -> latent (latent_channels, H/4, W/4) and D: back. encode() and
    decode() apply and undo the scaling z = (E(x) - mu) / sigma; mu, sigma (and the largest |z|
    of the first 10,000 training latents, where sampling clips x0_hat) are buffers, saved with
    the weights."""

    def __init__(self, image_channels=1, latent_channels=4, channels=64):
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(image_channels, c // 2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c // 2, c, 4, stride=2, padding=1), nn.SiLU(),             # H/2
            nn.Conv2d(c, c, 4, stride=2, padding=1), nn.SiLU(),                  # H/4
            nn.Conv2d(c, latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.SiLU(),         # H/2
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.SiLU(),    # H
            nn.Conv2d(c // 2, image_channels, 3, padding=1))   # linear (a tanh output here
        # got stuck drawing the mean image in training); decode() clips to the pixels' range
        self.register_buffer("latent_mean", torch.zeros(latent_channels, 1, 1))   # per channel
        self.register_buffer("latent_std", torch.ones(latent_channels, 1, 1))
        self.register_buffer("latent_bound", torch.tensor(1.0))

    def encode(self, x):
        return (self.encoder(x) - self.latent_mean) / self.latent_std       # z = (E(x) - mu) / sigma

    def decode(self, z):
        x = self.decoder(z * self.latent_std + self.latent_mean)            # x = D(sigma z + mu)
        return x.clamp(-1, 1)                                               # the pixels' range


def prompt_vocabulary(class_names):
    """The words, and the token ids of each class's prompt "<start> a picture of <name> <end>"
    (row c) and of the empty prompt "<start> <end> <end> ..." (row NO_CLASS), padded with <end>
    to one length as Stable Diffusion pads its prompts."""
    words = ["<end>", "<start>", "a", "picture", "of", *class_names]
    prompts = [["<start>", "a", "picture", "of", name, "<end>"] for name in class_names]
    prompts.append(["<start>"] + ["<end>"] * 5)
    return words, torch.tensor([[words.index(word) for word in prompt] for prompt in prompts])


class CrossAttention(nn.Module):
    """h <- h + softmax(Q K^T / sqrt(d)) V W_o: each latent position reads the prompt's tokens.
    With several heads, each does this on its own d = C / heads slice of Q, K and V, so a position
    can read several tokens at once."""

    def __init__(self, channels, token_dim, heads=4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.to_query = nn.Linear(channels, channels, bias=False)         # W_q
        self.to_key = nn.Linear(token_dim, channels, bias=False)          # W_k
        self.to_value = nn.Linear(token_dim, channels, bias=False)        # W_v
        self.to_out = nn.Linear(channels, channels)                       # W_o

    def split_heads(self, x):                          # (B, N, C) -> (B, heads, N, C / heads)
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def weights(self, h, tokens):
        """softmax(Q K^T / sqrt(d)), (B, heads, H*W, L): per head, one distribution over the
        tokens at each position."""
        queries = self.split_heads(self.to_query(self.norm(h).flatten(2).transpose(1, 2)))
        keys = self.split_heads(self.to_key(tokens))              # Q: (B, heads, H*W, d), K: L
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])   # Q K^T
        return scores.softmax(dim=-1)                                              # over tokens

    def forward(self, h, tokens):                      # (B, C, H, W), (B, L, token_dim)
        values = self.split_heads(self.to_value(tokens))                     # V: (B, heads, L, d)
        read = (self.weights(h, tokens) @ values).transpose(1, 2).flatten(2)  # (B, H*W, C)
        return h + self.to_out(read).transpose(1, 2).reshape(h.shape)


class LatentDenoiser(nn.Module):
    """eps_theta(z_t, t, prompt) on the 7x7 latent: a convolution in, residual blocks with t as
    scale and shift, each followed by cross-attention to the embedded prompt, a convolution out.
    No down-sampling: at 7x7 a few 3x3 convolutions already see the whole latent."""

    def __init__(self, latent_channels, class_names, channels=64, blocks=4, embedding_dim=128):
        super().__init__()
        words, prompts = prompt_vocabulary(class_names)
        self.register_buffer("prompts", prompts)                  # (11, L) token ids, row = label
        self.token_embedding = nn.Embedding(len(words), channels)
        self.position_embedding = nn.Parameter(0.1 * torch.randn(prompts.shape[1], channels))
        self.time_dim = channels
        self.embed_time = nn.Sequential(nn.Linear(self.time_dim, embedding_dim), nn.SiLU(),
                                        nn.Linear(embedding_dim, embedding_dim))
        self.conv_in = nn.Conv2d(latent_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList([diffusion.ResidualBlock(channels, channels, embedding_dim)
                                     for _ in range(blocks)])
        self.attentions = nn.ModuleList([CrossAttention(channels, channels)
                                         for _ in range(blocks)])
        self.conv_out = nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(),
                                      nn.Conv2d(channels, latent_channels, 3, padding=1))

    def embed_prompt(self, labels):
        """The tokens of each label's prompt (NO_CLASS: the empty one), embedded: (B, L, C)."""
        return self.token_embedding(self.prompts[labels]) + self.position_embedding

    def forward(self, z, t, labels):          # (B, latent C, 7, 7), (B,) in [0, T), (B,) in 0-10
        diffusion.check_labels(labels)
        tokens = self.embed_prompt(labels)
        embedding = self.embed_time(diffusion.timestep_embedding(t, self.time_dim))
        h = self.conv_in(z)
        for block, attention in zip(self.blocks, self.attentions):
            h = attention(block(h, embedding), tokens)
        return self.conv_out(h)


def autoencoder_step(autoencoder, optimizer, x):
    """One step of stage 1: minimize || x - D(E(x)) ||^2 on the batch x."""
    loss = F.mse_loss(autoencoder.decoder(autoencoder.encoder(x)), x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_autoencoder(autoencoder, train_images, iterations, batch_size=64, lr=2e-3):
    """Stage 1 of latent diffusion: minimize || x - D(E(x)) ||^2, then freeze the autoencoder and
    set the scaling from the training set: mu and sigma of E(x) per channel, and the largest |z|
    of its first 10,000 latents.
    Returns the scaled latents of the training set, the data of stage 2."""
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr, fused=True)
    progress = common.Progress(iterations, every=500)
    for iteration in range(1, iterations + 1):
        loss = autoencoder_step(autoencoder, optimizer, common.sample_batch(train_images,
                                                                            batch_size))
        progress.update(iteration, autoencoder_mse=loss.item())
    autoencoder.eval().requires_grad_(False)
    with torch.no_grad():
        raw = torch.cat([autoencoder.encoder(batch) for batch in train_images.split(1000)])
        autoencoder.latent_mean.copy_(raw.mean((0, 2, 3))[:, None, None])
        autoencoder.latent_std.copy_(raw.std((0, 2, 3))[:, None, None])
    latents = encode_dataset(autoencoder, train_images)
    autoencoder.latent_bound.fill_(latents[:10000].abs().max())
    return latents


@torch.no_grad()
def encode_dataset(autoencoder, images):
    """The scaled latents of all images, computed once: stage 2 learns on these, so the encoder
    runs once per image instead of once per training step."""
    autoencoder.eval()
    return torch.cat([autoencoder.encode(batch) for batch in images.split(1000)])


def first_stage(run, autoencoder, train_images, args):
    """Stage 1: train the autoencoder (a resumed run loads it), measure how well it reconstructs
    the test set, and return the scaled latents of the training set, the data of stage 2.
    --minutes bounds both stages."""
    if run.start > 0:
        return encode_dataset(autoencoder, train_images)   # resumed: the saved autoencoder
    started = time.perf_counter()
    latents = train_autoencoder(autoencoder, train_images, run.config["ae_iters"])
    run.train_seconds += time.perf_counter() - started
    if run.out_of_time():
        raise common.UserError(f"the autoencoder took {run.train_seconds / 60:.1f} minutes, all "
                               f"of --minutes {args.minutes}: no time is left for diffusion; "
                               f"raise --minutes or lower --ae-iters")
    images, labels = common.load_dataset(run.config["dataset"], train=False,
                                         data_dir=args.data_dir)
    test_images = common.to_training_tensor(images, run.device)
    with torch.no_grad():
        reconstructed = torch.cat([autoencoder.decode(autoencoder.encode(batch))
                                   for batch in test_images.split(1000)])
    numbers = {"train_minutes": round(run.train_seconds / 60, 3),
               "test_mse": F.mse_loss(reconstructed, test_images).item(),
               "compression": test_images[0].numel() / autoencoder.encoder(
                   test_images[:1]).numel(),
               "parameters": sum(p.numel() for p in autoencoder.parameters())}
    if run.classifier is not None:   # what the classifier reads in the reconstructions
        quality = common.sample_quality(reconstructed, torch.from_numpy(labels),
                                        run.classifier, args.data_dir)
        numbers.update(fid=quality["fid"], accuracy=quality["conditional_accuracy"])
    run.history["autoencoder"] = numbers
    print(f"autoencoder: {numbers}")
    return latents


# ---------------------------------------------------------------------------------------------
# The training loop: stage 1, then diffusion.py's training step on the latents

def build_networks(config):
    """The latent denoiser and its autoencoder."""
    classes = common.DATASETS[config["dataset"]]["classes"]
    return (LatentDenoiser(config["latent_channels"], classes, config["channels"]),
            Autoencoder(config["image_shape"][0], config["latent_channels"]))


def latent_shape(config):
    """(C_z, H/4, W/4): the shape of what is diffused."""
    _, height, width = config["image_shape"]
    return [config["latent_channels"], height // 4, width // 4]


@torch.no_grad()
def decode(autoencoder, latents, chunk=100):
    """The images x = D(z) of sampled latents, `chunk` at a time."""
    return torch.cat([autoencoder.decode(z) for z in latents.split(chunk)])


def train(args):
    config = {**diffusion.run_config(args), "latent_channels": args.latent_channels,
              "ae_iters": args.ae_iters}
    run = common.TrainingRun(args, "latent_diffusion", config)   # --resume: the checkpoint's
    config, device = run.config, run.device
    sampling = {"guidance": diffusion.guidance_weight(args, config, args.resume),
                "sampler": "ddim", "steps": args.steps}
    train_images, train_labels = common.dataset_tensors(config["dataset"], device, args.data_dir)
    schedule = diffusion.NoiseSchedule(config["timesteps"], config["schedule"], device)
    model, autoencoder = build_networks(config)
    model = model.to(device, memory_format=torch.channels_last)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), args.lr, fused=True)
    shape = latent_shape(config)
    fixed_noise = torch.randn(args.gif_samples, *shape, device=device)   # every GIF frame
    run.track({"denoiser": model, "ema_model": ema_model, "autoencoder": autoencoder.to(device)},
              {"optimizer": optimizer}, fixed_noise)
    run.load_resumed()                  # --resume: the checkpoint's weights, optimizers, RNG
    latents = first_stage(run, autoencoder, train_images, args)   # stage 1: the data of stage 2
    grid_labels = torch.arange(CLASSES, device=device).repeat(len(fixed_noise) // CLASSES)
    clip = autoencoder.latent_bound.item()            # where x0_hat is clipped, as pixels at 1

    for iteration in range(run.start + 1, args.iters + 1):
        started = time.perf_counter()
        z0, labels = common.sample_batch(latents, args.batch_size, train_labels)
        if args.lr_decay == "linear":
            common.decay_learning_rate([optimizer], args.lr, run.fraction_done(iteration))
        loss = diffusion.train_step(model, optimizer, schedule, z0, labels, config["p_uncond"])
        common.ema_update(ema_model, model, min(args.ema, (1 + iteration) / (10 + iteration)))
        run.log(iteration, time.perf_counter() - started, loss=loss)

        if run.due(iteration, args.sample_every):          # the fixed noises denoised, decoded
            run.save_snapshot(decode(autoencoder, diffusion.sample(
                ema_model, schedule, fixed_noise, grid_labels, clip=clip, **sampling)),
                [["loss"]], ncol=CLASSES)
        if run.classifier is not None and run.due(iteration, args.eval_every):
            run.evaluate(*draw(ema_model, schedule, autoencoder, shape, args.eval_samples,
                               clip=clip, **sampling))   # FID, entropy, conditional accuracy
        if run.due(iteration, args.checkpoint_every):
            run.save_checkpoint()
        if run.finished(iteration):                        # --iters, or --minutes spent
            break

    diffusion.save_figures(ema_model, schedule, run.out,
                           common.DATASETS[config["dataset"]]["classes"], shape,
                           sampling["guidance"], device, steps=args.steps,
                           can_guide=config["p_uncond"] > 0, clip=clip,
                           decode=lambda z: decode(autoencoder, z))
    parzen_images = draw(ema_model, schedule, autoencoder, shape, 10000, clip=clip,
                         **sampling)[0] if args.parzen and run.classifier is not None else None
    return run.finish(parzen_images=parzen_images, sampling=sampling,
                      parameters=sum(p.numel() for p in model.parameters()),
                      autoencoder=run.history.get("autoencoder"))


def draw(model, schedule, autoencoder, shape, count, **sampling):
    """(images, labels): `count` samples to measure, decoded, their labels spread evenly over
    the classes."""
    wanted = common.class_labels(count, None, schedule.alpha_bar.device)
    return decode(autoencoder, diffusion.draw_samples(model, schedule, wanted, shape,
                                                      **sampling)), wanted


# ---------------------------------------------------------------------------------------------
# Sampling from a checkpoint

def load_model(path, device):
    """(EMA denoiser, its schedule, its config, its autoencoder) from a checkpoint."""
    state = common.load_checkpoint(path, "latent_diffusion")
    config = state["config"]
    model, autoencoder = build_networks(config)
    common.load_weights(model, state["ema_model"], path)
    common.load_weights(autoencoder, state["autoencoder"], path)
    schedule = diffusion.NoiseSchedule(config["timesteps"], config["schedule"], device)
    return model.to(device).eval(), schedule, config, autoencoder.to(device).eval()


def generate(args):
    """--generate N to FILE.npz (labels spread evenly, or all --digit D), or --digit D alone: a
    10x10 grid of that class."""
    device = common.pick_device(args.device)
    model, schedule, config, autoencoder = load_model(args.checkpoint, device)
    guidance = diffusion.guidance_weight(args, config, args.checkpoint)
    common.seed_everything(args.seed)
    labels = common.class_labels(args.generate or 100, args.digit, device)
    images = diffusion.timed_samples(model, schedule, labels, latent_shape(config), guidance, args,
                                     clip=autoencoder.latent_bound.item(),
                                     decode=lambda z: decode(autoencoder, z))
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
