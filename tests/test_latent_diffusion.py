"""latent_diffusion.py (Stable Diffusion in miniature): the autoencoder's shapes and its
latent scaling, the prompt, cross-attention's weights, prompt sensitivity, and the mode end to end
on tiny data."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import common
import diffusion
import latent_diffusion

MNIST_NAMES = common.DATASETS["mnist"]["classes"]


# --- the autoencoder and its latent scaling ------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5), st.sampled_from([(1, 28, 28), (3, 32, 32)]), st.integers(1, 6))
def test_the_autoencoder_maps_to_a_quarter_size_latent_and_back(batch, shape, latent_channels):
    torch.manual_seed(0)
    autoencoder = latent_diffusion.Autoencoder(shape[0], latent_channels, channels=16)
    x = torch.rand(batch, *shape) * 2 - 1
    z = autoencoder.encode(x)
    assert z.shape == (batch, latent_channels, shape[1] // 4, shape[2] // 4)
    decoded = autoencoder.decode(z)
    assert decoded.shape == x.shape and decoded.min() >= -1 and decoded.max() <= 1


@settings(max_examples=10, deadline=None)
@given(st.floats(-5, 5), st.floats(0.01, 10))
def test_the_scaling_is_applied_when_encoding_and_undone_when_decoding(mean, std):
    torch.manual_seed(0)
    autoencoder = latent_diffusion.Autoencoder(1, 4, channels=16)
    autoencoder.latent_mean.fill_(mean)
    autoencoder.latent_std.fill_(std)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        raw = autoencoder.encoder(x)
        assert torch.allclose(autoencoder.encode(x), (raw - mean) / std, atol=1e-4, rtol=1e-4)
        assert torch.allclose(autoencoder.decode(autoencoder.encode(x)),
                              autoencoder.decoder(raw).clamp(-1, 1), atol=1e-4)


def test_training_the_autoencoder_reconstructs_and_scales_its_latents_to_unit_variance():
    torch.manual_seed(0)
    images = torch.zeros(256, 1, 28, 28) - 1                 # bars of random height and place
    for index, (row, height) in enumerate(torch.randint(0, 20, (256, 2)).tolist()):
        images[index, 0, row:row + 4 + height // 3, 6:22] = 1
    autoencoder = latent_diffusion.Autoencoder(1, 4, channels=16)
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(autoencoder.decoder(autoencoder.encoder(images)),
                                              images).item()
    latent_diffusion.train_autoencoder(autoencoder, images, iterations=150, batch_size=32)
    latents = latent_diffusion.encode_dataset(autoencoder, images)
    assert abs(latents.mean().item()) < 1e-3 and abs(latents.std().item() - 1) < 1e-3
    assert autoencoder.latent_bound.item() == pytest.approx(latents.abs().max().item(), rel=1e-5)
    after = torch.nn.functional.mse_loss(autoencoder.decode(latents), images).item()
    assert after < 0.3 * before
    assert not any(p.requires_grad for p in autoencoder.parameters())     # frozen for stage 2


# --- the prompt and cross-attention ------------------------------------------------------------

def test_every_prompt_has_several_tokens_and_only_the_class_word_differs():
    words, prompts = latent_diffusion.prompt_vocabulary(MNIST_NAMES)
    assert prompts.shape == (diffusion.CLASSES + 1, 6)
    assert [words[i] for i in prompts[7]] == ["<start>", "a", "picture", "of", "7", "<end>"]
    assert [words[i] for i in prompts[diffusion.NO_CLASS]] == ["<start>"] + ["<end>"] * 5
    differs = (prompts[:diffusion.CLASSES] != prompts[0]).any(0)
    assert differs.tolist() == [False, False, False, False, True, False]


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 8), st.sampled_from([8, 16]), st.sampled_from([1, 2, 4]),
       st.integers(2, 7), st.integers(0, 1000))
def test_cross_attention_rows_are_distributions_over_the_tokens(batch, tokens, channels, heads,
                                                                 size, seed):
    torch.manual_seed(seed)
    attention = latent_diffusion.CrossAttention(channels, token_dim=5, heads=heads)
    h, prompt = torch.randn(batch, channels, size, size), torch.randn(batch, tokens, 5)
    weights = attention.weights(h, prompt)
    assert weights.shape == (batch, heads, size * size, tokens)
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(batch, heads, size * size), atol=1e-5)
    assert attention(h, prompt).shape == h.shape
    if tokens > 1:   # each position weighs the tokens its own way
        assert not torch.allclose(weights[:, :, :1].expand_as(weights), weights, atol=1e-4)
    else:            # the trap of a one-token prompt: every weight is 1, nothing is chosen
        assert torch.allclose(weights, torch.ones_like(weights))


@pytest.mark.parametrize("heads", [1, 4])
def test_cross_attention_reads_the_values_it_attends_to(heads):
    torch.manual_seed(0)
    attention = latent_diffusion.CrossAttention(8, token_dim=8, heads=heads)
    h, prompt = torch.randn(2, 8, 3, 3), torch.randn(2, 4, 8)
    weights = attention.weights(h, prompt)                              # (B, heads, 9, 4)
    values = attention.to_value(prompt)                                 # (B, 4, 8)
    d = 8 // heads
    read = torch.cat([weights[:, head] @ values[..., head * d:(head + 1) * d]   # head by head
                      for head in range(heads)], dim=-1)                # softmax(QK^T/sqrt d) V
    expected = h + attention.to_out(read).transpose(1, 2).reshape(h.shape)
    assert torch.allclose(attention(h, prompt), expected, atol=1e-6)
    queries = attention.to_query(attention.norm(h).flatten(2).transpose(1, 2))
    keys = attention.to_key(prompt)
    scores = queries[..., :d] @ keys[..., :d].transpose(1, 2) / d ** 0.5    # the first head
    assert torch.allclose(weights[:, 0], scores.softmax(-1), atol=1e-6)


def test_the_denoiser_listens_to_the_prompt_and_keeps_the_latent_shape():
    torch.manual_seed(0)
    model = latent_diffusion.LatentDenoiser(4, MNIST_NAMES, channels=16)
    z = torch.randn(1, 4, 7, 7).repeat(11, 1, 1, 1)
    out = model(z, torch.full((11,), 500), torch.arange(11))            # only the prompt differs
    assert out.shape == z.shape
    assert len({round(v, 6) for v in out.flatten(1).sum(1).tolist()}) == 11
    with pytest.raises(ValueError, match="labels must be in 0-9"):
        model(z[:1], torch.tensor([5]), torch.tensor([diffusion.NO_CLASS + 1]))


# --- the script --------------------------------------------------------------------------------

FLAGS = ["--channels", "8", "--ae-iters", "10", "--timesteps", "20",
         "--steps", "5", "--batch-size", "8", "--sample-every", "2", "--eval-every", "3",
         "--eval-samples", "10", "--gif-samples", "10"]


def test_the_latent_model_trains_resumes_and_generates(tiny_data, tiny_classifier, tmp_path):
    out = tmp_path / "run"
    flags = FLAGS + ["--data-dir", str(tiny_data), "--classifier", str(tiny_classifier)]
    latent_diffusion.main(flags + ["--iters", "3", "--out", str(out)])
    for name in ("checkpoint.pt", "best.pt", "progress.gif", "classes.png", "chain.png",
                 "guidance.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["latent_channels"] == 4 and metrics["autoencoder"]["compression"] == 4
    assert metrics["autoencoder"]["test_mse"] >= 0 and 0 <= metrics["autoencoder"]["accuracy"] <= 1
    state = common.load_checkpoint(out / "checkpoint.pt", "latent_diffusion")
    mean, std = state["autoencoder"]["latent_mean"], state["autoencoder"]["latent_std"]
    assert mean.shape == std.shape == (4, 1, 1)            # one shift and one scale per channel
    assert not torch.equal(mean, torch.zeros_like(mean)) and not torch.equal(std, torch.ones_like(std))
    assert state["train_seconds"] > 0

    # the latent default: the learning rate falls linearly, lr_i = lr (1 - (i - 1) / iters)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-3 / 3)

    latent_diffusion.main(flags + ["--iters", "5", "--resume", str(out / "checkpoint.pt")])
    state = common.load_checkpoint(out / "checkpoint.pt", "latent_diffusion")
    assert state["iteration"] == 5                       # the autoencoder was not trained again
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-3 / 5)
    assert torch.equal(state["autoencoder"]["latent_mean"], mean)
    assert torch.equal(state["autoencoder"]["latent_std"], std)

    latent_diffusion.main(["--checkpoint", str(out / "checkpoint.pt"), "--generate", "12",
                           "--out", str(tmp_path / "s.npz")])
    samples = np.load(tmp_path / "s.npz")
    assert samples["images"].shape == (12, 1, 28, 28)
    assert samples["images"].min() >= 0 and samples["images"].max() <= 1
    assert samples["labels"].tolist() == [i % 10 for i in range(12)]

    # a checkpoint of the latent model in the older layout (written by diffusion.py with
    # config "space": "latent") loads here, and diffusion.py names this script for it
    older = {**state, "model": "diffusion", "config": {**state["config"], "space": "latent"}}
    torch.save(older, tmp_path / "older.pt")
    latent_diffusion.main(["--checkpoint", str(tmp_path / "older.pt"), "--digit", "3",
                           "--out", str(tmp_path / "threes.png")])
    assert (tmp_path / "threes.png").is_file()
    with pytest.raises(common.UserError, match="checkpoint of latent_diffusion.py, not diffusion"):
        diffusion.load_model(tmp_path / "older.pt", "cpu")


def test_a_checkpoint_given_to_the_other_script_names_the_right_one(tiny_data, tmp_path, capsys):
    out = tmp_path / "pixel"
    diffusion.main(["--data-dir", str(tiny_data), "--channels", "8", "--timesteps", "10",
                    "--steps", "3", "--batch-size", "4", "--iters", "1", "--eval-samples", "10",
                    "--out", str(out)])
    capsys.readouterr()
    for flags in (["--resume", str(out / "checkpoint.pt"), "--iters", "2"],
                  ["--checkpoint", str(out / "checkpoint.pt"), "--digit", "3"]):
        with pytest.raises(SystemExit) as exit_info:
            latent_diffusion.main(flags)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "is a checkpoint of diffusion.py, not latent_diffusion.py" \
            in error[0], error


def test_the_two_models_defaults_differ_and_a_flag_given_wins():
    pixel, latent = diffusion.parse_args([]), latent_diffusion.parse_args([])
    assert (pixel.lr, pixel.lr_decay, pixel.iters, pixel.channels) == (5e-4, "none", 7000, 32)
    assert (latent.lr, latent.lr_decay, latent.iters, latent.channels) == (2e-3, "linear", 17000, 64)
    chosen = latent_diffusion.parse_args(["--lr-decay", "none", "--lr", "1e-3", "--iters", "5",
                                          "--channels", "16"])
    assert (chosen.lr, chosen.lr_decay, chosen.iters, chosen.channels) == (1e-3, "none", 5, 16)


def test_a_budget_spent_by_the_autoencoder_stops_before_any_diffusion_step(
        tiny_data, tiny_classifier, tmp_path, monkeypatch, capsys):
    # a fake clock: every reading is a minute later, so the autoencoder stage "takes" a minute
    clock = iter(range(0, 10 ** 6, 60))
    monkeypatch.setattr(latent_diffusion.time, "perf_counter", lambda: float(next(clock)))
    steps = []
    monkeypatch.setattr(diffusion, "train_step", lambda *args: steps.append(1))
    flags = FLAGS + ["--data-dir", str(tiny_data), "--classifier", str(tiny_classifier)]
    with pytest.raises(SystemExit):
        latent_diffusion.main(flags + ["--iters", "3", "--minutes", "0.5",
                                       "--out", str(tmp_path / "r")])
    assert "no time is left for diffusion" in capsys.readouterr().err
    assert steps == []
