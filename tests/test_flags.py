"""Every flag's bounds, in all six scripts: a value out of range, or a flag that does nothing in
the mode asked for, is refused by argparse with one line and exit status 2, before any work."""
import pytest

import adversarial
import cgan
import common
import diffusion
import gan
import latent_diffusion
import toy2d
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


# --- every numeric and choice flag of every script, fuzzed ----------------------------------------

def parser_of(script, monkeypatch):
    """The argparse parser that script.parse_args builds (caught as common makes it)."""
    made = []
    original = common.argument_parser
    monkeypatch.setattr(common, "argument_parser",
                        lambda *args: made.append(original(*args)) or made[-1])
    script.parse_args(["gan"] if script is toy2d else [])
    return made[-1]


def bad_values(action):
    """Values a flag must refuse: of the wrong type, empty, past its bounds, not a choice."""
    if action.choices is not None:
        return ["not-a-choice", ""]
    kind = getattr(action.type, "__name__", None)
    if kind not in ("int", "float"):
        return []
    values = ["abc", "", "1.5"] if kind == "int" else ["abc", "", "nan", "inf"]
    for sign, bound in getattr(action.type, "limits", {}).items():   # just past each bound
        step = 1 if kind == "int" else 1e-9 * max(1.0, abs(bound))
        values.append(str(bound - step if sign in (">=", ">") and kind == "int" else
                          bound if sign in (">", "<") else
                          bound - step if sign == ">=" else bound + step))
    return values


SCRIPTS = [gan, cgan, wgan, diffusion, latent_diffusion, adversarial, toy2d]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda module: module.__name__)
def test_every_numeric_and_choice_flag_refuses_bad_values_in_one_line(script, monkeypatch,
                                                                    capsys):
    parser = parser_of(script, monkeypatch)
    required = ["gan"] if script is toy2d else []          # toy2d's experiment comes first
    tried = 0
    for action in parser._actions:
        if not action.option_strings:
            continue
        for value in bad_values(action):
            with pytest.raises(SystemExit) as exit_info:
                script.parse_args(required + [action.option_strings[0], value])
            error = capsys.readouterr().err.strip().splitlines()
            assert exit_info.value.code == 2, (action.option_strings[0], value)
            assert error and f"{script.__name__}.py: error: " in error[-1], (action.dest, value)
            tried += 1
    assert tried >= 10, tried     # every script has at least a few numeric or choice flags


@pytest.mark.parametrize("script, new, old, value", [
    (wgan, "--d-dropout", "--dropout", "0.1"), (diffusion, "--ddim-steps", "--steps", "20"),
    (toy2d, "--iters", "--steps", "30"), (adversarial, "--iters", "--steps", "30"),
    (adversarial, "--step-size", "--step", "0.02")])
def test_a_renamed_flag_keeps_its_old_name(script, new, old, value):
    # one name for one idea across the scripts; the commands printed in the docs still run
    required = ["gan"] if script is toy2d else []
    assert vars(script.parse_args(required + [new, value])) == \
        vars(script.parse_args(required + [old, value]))
    assert vars(script.parse_args(required + [new, value])) != vars(script.parse_args(required))
