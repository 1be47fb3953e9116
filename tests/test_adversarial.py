"""adversarial.py: the attack stays in its ball and in [0, 1], a step moves a known linear model
exactly as the closed form says, and the script runs on tiny data."""
import json

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import adversarial
import common


def linear_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).requires_grad_(False)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.floats(0, 0.3), st.floats(0.001, 0.2), st.integers(1, 6),
       st.integers(0, 9), st.integers(0, 1000))
def test_the_attack_stays_in_the_ball_and_in_range(batch, eps, step, steps, target, seed):
    model = linear_model(seed)
    images = torch.rand(batch, 1, 28, 28)
    targets = torch.full((batch,), target)
    adv, iterations = adversarial.targeted_attack(model, images, targets, eps, step, steps)
    assert (adv - images).abs().max() <= eps + 1e-6
    # PGD's random start lies in the ball too, and so does every step from it
    started, _ = adversarial.targeted_attack(model, images, targets, eps, step, 0,
                                             random_start=True)
    assert (started - images).abs().max() <= eps + 1e-6
    assert eps < 0.01 or not torch.equal(started, images)
    adv_pgd, _ = adversarial.targeted_attack(model, images, targets, eps, step, steps,
                                             random_start=True)
    assert (adv_pgd - images).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (iterations <= steps).all()
    fgsm = adversarial.fgsm(model, images, targets, eps)
    assert (fgsm - images).abs().max() <= eps + 1e-6 and fgsm.min() >= 0 and fgsm.max() <= 1


@settings(max_examples=40, deadline=None)
@given(st.floats(0.001, 0.4), st.integers(0, 9), st.integers(0, 1000))
def test_one_step_raises_the_target_logit_by_the_closed_form(step, target, seed):
    """f(x) = W x with only row t nonzero: grad_x CE = -(1 - p_t) W_t, so one sign step moves x
    by +step * sign(W_t) and raises the target logit by exactly step * ||W_t||_1 (x = 0.5
    leaves room for any step below 0.5 before the [0, 1] clip)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, bias=False)).requires_grad_(False)
    model[1].weight.zero_()
    # small weights keep p_t away from 1, where the CE gradient (1 - p_t) W_t would round to 0
    model[1].weight[target] = 0.01 * torch.randn(784)
    model[1].weight[target][torch.randperm(784)[:100]] = 0.0     # some pixels do not matter
    image = torch.full((1, 1, 28, 28), 0.5)
    labels = torch.tensor([target])
    adv = adversarial.fgsm(model, image, labels, step)
    gain = model(adv)[0, target] - model(image)[0, target]
    assert gain.item() == pytest.approx(step * model[1].weight[target].abs().sum().item(), rel=1e-4)
    assert gain >= 0


def test_attack_of_an_image_already_read_as_target_changes_nothing():
    model = linear_model(0)
    images = torch.rand(4, 1, 28, 28)
    already = model(images).argmax(1)
    adv, iterations = adversarial.targeted_attack(model, images, already, 0.3, 0.05, 10)
    assert torch.equal(adv, images) and (iterations == 0).all()


@pytest.mark.parametrize("flags", [["--source", "4", "--target", "4"], ["--target", "10"],
                                   ["--source", "-1"], ["--eps", "-0.1"], ["--steps", "0"]])
def test_bad_flags_are_clear_errors(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        adversarial.main(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("adversarial.py: error: "), error


def test_classifier_shapes():
    classifier = common.Classifier().eval()
    images = torch.rand(3, 1, 28, 28)
    assert classifier(images).shape == (3, 10)
    assert classifier.features(images).shape == (3, 128)


def test_retrain_writes_a_new_classifier_into_the_run_folder(tiny_data, tmp_path, capsys):
    committed = common.file_digest(common.CLASSIFIER_PATH, "sha256")
    classifier = adversarial.retrain_classifier(tmp_path, tiny_data, 1, "cpu", 0)
    path = tmp_path / "mnist_classifier.pt"
    assert path.is_file() and not classifier.training
    assert classifier.sha256 == common.file_digest(path, "sha256")
    printed = capsys.readouterr().out
    assert f"--classifier {path}" in printed and classifier.sha256 in printed
    assert common.file_digest(common.CLASSIFIER_PATH, "sha256") == committed   # untouched
    common.save_checkpoint({"model": "gan", "config": {}}, path)
    with pytest.raises(common.UserError, match="not adversarial.py"):
        common.load_classifier(path)


def test_script_on_tiny_data(tiny_data, tmp_path):
    # A classifier that reads every image as "1", so the tiny set's 1s are all correctly read.
    classifier = common.Classifier()
    with torch.no_grad():
        classifier.head[1].bias[1] = 50.0
    path = tmp_path / "classifier.pt"
    common.save_checkpoint({"model": "adversarial", "config": {},
                            "classifier": classifier.state_dict()}, path)
    adversarial.main(["--data-dir", str(tiny_data), "--classifier", str(path), "--steps", "3",
                      "--sweep-images", "2", "--noise-images", "2", "--source", "1",
                      "--target", "7", "--out", str(tmp_path / "run")])
    for name in ("attack.png", "noise.png", "success_vs_eps.png", "metrics.json"):
        assert (tmp_path / "run" / name).is_file(), name
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["iterative"]["images"] == 7                  # the 1s among 64 cycling labels
    assert metrics["iterative"]["linf_max"] <= metrics["eps"] + 1e-6
    assert metrics["iterative_confident"]["linf_max"] <= metrics["eps"] + 1e-6
    assert metrics["attack"] == "BIM" and len(metrics["sweep"]["iterative"]) == 7


def test_confidence_stop_without_a_ball():
    """The noise experiment: no eps ball, each image stops once p(target) >= confidence."""
    model = linear_model(1)
    noise = torch.rand(6, 1, 28, 28)
    target = torch.full((6,), 9)
    converted, iterations = adversarial.targeted_attack(model, noise, target, None, 0.05, 40,
                                                     confidence=0.9)
    probability = torch.softmax(model(converted), 1)[:, 9]
    assert ((probability >= 0.9) | (iterations == 40)).all()
    assert converted.min() >= 0 and converted.max() <= 1
    # one step fewer and the image had not yet reached the confidence
    for image, steps in zip(noise, iterations.tolist()):
        if steps:
            before, _ = adversarial.targeted_attack(model, image[None], target[:1], None, 0.05,
                                                 steps - 1, confidence=0.9)
            assert torch.softmax(model(before), 1)[0, 9] < 0.9


@pytest.mark.parametrize("eps", ["0", "-0.1", "1.5", "5"])
def test_a_radius_outside_the_pixel_range_is_refused(eps, capsys):
    with pytest.raises(SystemExit):
        adversarial.parse_args(["--eps", eps])
    assert "--eps" in capsys.readouterr().err


@settings(max_examples=50, deadline=None)
@given(st.floats(0.001, 1.0), st.sampled_from([1 / 255, 0.005, 0.01, 0.02]),
       st.integers(1, 200))
def test_the_sweep_s_steps_reach_the_ball_s_edge_and_few_more(eps, step, most):
    # Kurakin et al.: min(eps + 4, 1.25 eps) steps of one grey level (eps in grey levels): the
    # distance walked reaches the edge (eps) and goes on at most 4 grey levels
    steps = adversarial.sweep_steps(eps, step, most)
    assert steps <= most
    if most >= (eps + 4 / 255) / step + 1:
        assert eps - 1e-9 <= steps * step < eps + 4 / 255 + step
    assert adversarial.sweep_steps(0.0, step, most) == 0
    assert adversarial.sweep_steps(0.35, 0.01, 100) == 37      # 0.35 + 4/255 = 0.3657: 37 steps
