"""The quality numbers: FID, class entropy, conditional accuracy and the Parzen estimate each
match their definition on cases where the answer is known."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import common


def random_covariance(rng, dimension):
    factor = rng.normal(size=(dimension, dimension))
    return factor @ factor.T + 0.1 * np.eye(dimension)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 10_000))
def test_fid_of_a_set_against_itself_is_zero(dimension, seed):
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(size=dimension), random_covariance(rng, dimension)
    assert abs(common.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * (1 + np.trace(sigma))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 10_000), st.floats(0.01, 10))
def test_fid_grows_with_a_shift_of_the_mean(dimension, seed, size):
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(size=dimension), random_covariance(rng, dimension)
    shift = rng.normal(size=dimension)
    shift *= size / np.linalg.norm(shift)
    # same covariance: FID = ||shift||^2 exactly
    distance = common.frechet_distance(mu, sigma, mu + shift, sigma)
    assert distance == pytest.approx(size ** 2, rel=1e-6, abs=1e-6 * (1 + np.trace(sigma)))
    assert common.frechet_distance(mu, sigma, mu + 2 * shift, sigma) > distance


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5), st.floats(0.01, 5), st.floats(-3, 3)),
                min_size=1, max_size=10))
def test_fid_closed_form_for_diagonal_covariances(entries):
    """Diagonal S_1, S_2: FID = ||mu_1 - mu_2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b, mean_gap = (np.array(column) for column in zip(*entries))
    expected = (mean_gap ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    distance = common.frechet_distance(np.zeros(len(a)), np.diag(a), mean_gap, np.diag(b))
    assert distance == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_class_entropy():
    assert common.class_entropy([0, 0, 10000, 0, 0, 0, 0, 0, 0, 0]) == 0
    assert common.class_entropy([7] * 10) == pytest.approx(math.log(10))
    assert 0 < common.class_entropy([5, 1, 0, 0, 0, 0, 0, 0, 0, 0]) < math.log(2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.floats(0.05, 2),
       st.integers(0, 10_000))
def test_parzen_matches_brute_force(samples, points, dimension, sigma, seed):
    rng = np.random.default_rng(seed)
    s, x = rng.random((samples, dimension)), rng.random((points, dimension))
    expected = []
    for point in x:   # log (1/N) sum_i N(x; s_i, sigma^2 I), one Gaussian at a time
        densities = [np.exp(-((point - centre) ** 2).sum() / (2 * sigma ** 2))
                     / (2 * np.pi * sigma ** 2) ** (dimension / 2) for centre in s]
        expected.append(np.log(np.mean(densities)))
    got = common.parzen_log_likelihood(torch.from_numpy(s), torch.from_numpy(x), sigma, chunk=2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_parzen_is_finite_far_from_every_sample():
    """Points hundreds of sigma away: a naive sum of densities underflows to log 0 = -inf."""
    got = common.parzen_log_likelihood(torch.zeros(3, 784), torch.ones(2, 784), sigma=0.05)
    assert torch.isfinite(got).all()


def biased_classifier(favourite):
    """A classifier that reads every image as `favourite`."""
    classifier = common.Classifier().eval()
    with torch.no_grad():
        classifier.head[1].bias[favourite] = 50.0
    return classifier.requires_grad_(False)


def test_sample_quality(tiny_data):
    classifier = biased_classifier(3)
    test_images, _ = common.load_dataset("mnist", train=False, data_dir=tiny_data)
    test_set = torch.from_numpy(test_images).float() / 127.5 - 1
    same = common.sample_quality(test_set, torch.full((64,), 3), classifier, tiny_data)
    assert abs(same["fid"]) < 1e-3                        # the test set against itself
    assert same["conditional_accuracy"] == 1.0
    assert same["class_histogram"] == [0, 0, 0, 64, 0, 0, 0, 0, 0, 0]
    assert same["class_entropy"] == 0 and same["n"] == 64
    # One blank image repeated: its features are a single point f, so S = 0 and
    # FID = ||f - mu_test||^2 + Tr(S_test) exactly.
    blank = torch.full((64, 1, 28, 28), -1.0)
    other = common.sample_quality(blank, torch.full((64,), 5), classifier, tiny_data)
    features = classifier.features(test_set.add(1).div(2)).double()
    point = classifier.features(torch.zeros(1, 1, 28, 28)).double()[0]
    expected = ((point - features.mean(0)) ** 2).sum() + torch.cov(features.T).trace()
    assert other["fid"] == pytest.approx(expected.item(), rel=1e-4)
    assert other["conditional_accuracy"] == 0.0
    with pytest.raises(common.UserError, match="MNIST-shaped"):
        common.sample_quality(torch.zeros(4, 3, 32, 32), None, classifier)


def test_parzen_score_on_tiny_data(tiny_data):
    train_images, _ = common.load_dataset("mnist", train=True, data_dir=tiny_data)
    samples = torch.from_numpy(train_images).float() / 127.5 - 1
    score = common.parzen_score(samples, tiny_data, validation=16)
    assert math.isfinite(score["parzen_log_likelihood"]) and score["parzen_standard_error"] > 0
    assert score["parzen_sigma"] in [float(s) for s in np.logspace(-1.3, -0.3, 11)]


def test_parzen_warns_when_the_best_sigma_is_at_the_edge_of_its_grid(tiny_data):
    train_images, _ = common.load_dataset("mnist", train=True, data_dir=tiny_data)
    samples = torch.from_numpy(train_images).float() / 127.5 - 1
    # a grid of tiny sigmas: the likelihood grows with sigma over all of it, so the best is the last
    with pytest.warns(UserWarning, match="edge of the grid"):
        score = common.parzen_score(samples, tiny_data, sigmas=np.array([1e-4, 2e-4, 4e-4]),
                                    validation=16)
    assert score["parzen_sigma_at_grid_edge"]
