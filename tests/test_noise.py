"""benchmarks/noise.py: the variety control's sets (balanced classes, the asked images repeated),
and draws from one checkpoint that differ from each other but repeat for the same seed."""
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import common
import gan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import noise  # noqa: E402


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([1, 2, 5]), st.sampled_from([100, 1000]), st.integers(0, 1000))
def test_the_control_repeats_per_class_images_with_the_classes_balanced(per_class, n, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randperm(200, generator=generator) % 10          # 20 images of each class
    images = torch.arange(200.0)[:, None, None, None]               # image i is the number i
    chosen, chosen_labels = noise.repeated(images, labels, per_class, n)
    assert len(chosen) == len(chosen_labels) == n
    assert torch.bincount(chosen_labels, minlength=10).tolist() == [n // 10] * 10
    distinct = chosen.flatten().unique().long()
    assert len(distinct) == 10 * per_class                          # no variety beyond these
    assert torch.equal(labels[distinct].sort().values, chosen_labels.unique().repeat_interleave(
        per_class))                                                 # per_class of each class
    for index in distinct:                                          # each repeated equally
        assert (chosen.flatten() == index).sum() == n // (10 * per_class)
        assert (chosen_labels[chosen.flatten() == index] == labels[index]).all()


def test_draws_differ_and_repeat_with_their_seed_batch_norm_statistics_too(tiny_data, tmp_path):
    gan.main(["--arch", "dcgan", "--iters", "2", "--batch-size", "8", "--data-dir",
              str(tiny_data), "--gif-samples", "4", "--eval-samples", "16",
              "--out", str(tmp_path / "run")])
    kind, draw = noise.sampler(tmp_path / "run" / "checkpoint.pt")
    assert kind == "gan.py dcgan"
    first, labels = draw(8, 0)
    again, _ = draw(8, 0)
    second, _ = draw(8, 1)
    assert labels is None and first.shape == (8, 1, 28, 28)
    assert torch.equal(first, again) and not torch.equal(first, second)
    state = common.load_checkpoint(tmp_path / "run" / "checkpoint.pt", "gan")
    generator, _ = gan.build_networks(state["config"])
    means = []
    for seed in (0, 0, 1):
        common.standing_statistics(generator, state["config"]["z_dim"], seed=seed)
        means.append(torch.cat([m.running_mean for m in generator.modules()
                                if isinstance(m, torch.nn.BatchNorm2d)]))
    assert torch.equal(means[0], means[1]) and not torch.equal(means[0], means[2])


def test_a_checkpoint_of_no_script_is_one_line(tmp_path):
    torch.save({"model": "gan"}, tmp_path / "x.pt")
    with pytest.raises(common.UserError):
        noise.sampler(tmp_path / "x.pt")
