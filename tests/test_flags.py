"""Every flag's bounds, in all six scripts: a value out of range, or a flag that does nothing in
the mode asked for, is refused by argparse with one line and exit status 2, before any work."""
import pytest

import adversarial
import cgan
import diffusion
import gan
import latent_diffusion
import wgan

SHARED = [["--iters", "0"], ["--batch-size", "0"], ["--lr", "0"], ["--lr", "-1e-3"],
          ["--ema", "1"], ["--ema", "-0.1"], ["--minutes", "-1"], ["--sample-every", "0"],
          ["--eval-every", "0"], ["--eval-samples", "0"], ["--checkpoint-every", "0"],
          ["--gif-samples", "0"], ["--generate", "0", "--checkpoint", "x.pt", "--out", "x.npz"]]

BAD = {
    gan: SHARED + [["--z-dim", "0"], ["--beta1", "1"], ["--beta1", "-0.5"], ["--d-dropout", "1"],
                   ["--arch", "dcgan", "--d-dropout", "0.3"], ["--loss", "hinge"],
                   ["--generate", "4"]],
    cgan: SHARED + [["--z-dim", "0"], ["--beta1", "1"], ["--d-dropout", "-0.1"],
                    ["--arch", "conv", "--d-dropout", "0.3"], ["--gif-samples", "64"],
                    ["--digit", "10"], ["--digit", "-1"], ["--digit", "3"],
                    ["--checkpoint", "x.pt", "--digit", "3", "--class-name", "3"]],
    wgan: SHARED + [["--z-dim", "49"], ["--z-dim", "201"], ["--n-critic", "0"],
                    ["--critic-lr", "0"], ["--clip", "0"], ["--clip", "-0.01"],
                    ["--dropout", "1"], ["--gradient-penalty", "0"],
                    ["--loss", "gan", "--gradient-penalty", "10"],
                    ["--loss", "gan", "--clip", "0.01"],
                    ["--gradient-penalty", "10", "--clip", "0.01"]],
    diffusion: SHARED[:-1] + [["--generate", "0"], ["--timesteps", "1"], ["--steps", "0"], ["--steps", "2000"],
                         ["--channels", "12"], ["--p-uncond", "1.5"], ["--guidance", "-1"],
                         ["--gif-samples", "64"], ["--digit", "10"], ["--digit", "3"],
                         ["--latent-channels", "8"], ["--ae-iters", "100"], ["--space", "latent"]],
    latent_diffusion: SHARED[:-1] + [["--generate", "0"], ["--ae-iters", "0"],
                                     ["--latent-channels", "0"], ["--steps", "2000"],
                                     ["--p-uncond", "1"], ["--guidance", "-1"], ["--digit", "3"]],
    adversarial: [["--eps", "0"], ["--eps", "1.5"], ["--eps", "-0.2"], ["--step", "0"],
                  ["--steps", "0"], ["--source", "10"], ["--target", "-1"],
                  ["--source", "9", "--target", "9"], ["--confidence", "1"],
                  ["--noise-images", "0"], ["--sweep-images", "0"], ["--epochs", "0"],
                  ["--retrain", "--classifier", "c.pt"], ["--noise", "salt"]],
}


@pytest.mark.parametrize("script, flags", [(script, flags) for script, cases in BAD.items()
                                           for flags in cases],
                         ids=[f"{script.__name__} {' '.join(flags)}" for script, cases in BAD.items()
                              for flags in cases])
def test_a_flag_out_of_its_bounds_is_one_line_and_exit_2(script, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{script.__name__}.py: error: " in error, error


@pytest.mark.parametrize("script", [gan, cgan, wgan, diffusion, latent_diffusion, adversarial],
                         ids=lambda module: module.__name__)
def test_the_defaults_pass_their_own_bounds(script):
    script.parse_args([])
