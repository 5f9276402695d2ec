"""Label shift (kmnist.engine.label_shift): balanced decisions meet the prior's class totals exactly
and optimally, EM recovers a known shifted prior, a temperature fit recovers a known temperature."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kmnist.engine.label_shift import (
    apply_prior,
    apply_temperature,
    balanced_assignment,
    class_totals,
    confident_rows,
    estimate_prior,
    fit_temperature,
    probs_temperature,
)
from kmnist.errors import ConfigError


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def biased_classifier(n: int = 2000, classes: int = 10, bias: float = 1.0, seed: int = 0):
    """A balanced set (n / classes rows per class) read by a noisy classifier that favours class 1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 2.5
    logits[:, 1] += bias
    return softmax(logits), labels


def test_uniform_prior_meets_the_totals_and_raises_accuracy():
    probs, labels = biased_classifier()
    plain = probs.argmax(1)
    assert np.bincount(plain, minlength=10)[1] > 1.5 * 200  # the bias is there to correct
    adjusted = apply_prior(probs, "uniform")
    np.testing.assert_allclose(adjusted.sum(1), 1.0, atol=1e-12)
    # Exactly N / C decisions per class, also once stored as float32 (probs.npy).
    assert np.bincount(adjusted.argmax(1), minlength=10).tolist() == [200] * 10
    assert np.bincount(adjusted.astype(np.float32).argmax(1), minlength=10).tolist() == [200] * 10
    assert (adjusted.argmax(1) == labels).mean() > (plain == labels).mean() + 0.02


def test_balanced_assignment_is_the_most_probable_assignment_with_those_totals():
    """Brute force over every assignment of 8 rows with totals (2, 3, 3): none scores higher."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        probs = rng.dirichlet(np.full(3, 0.5), size=8)
        prior = [0.25, 0.375, 0.375]
        choice = balanced_assignment(probs, prior).argmax(1)
        assert np.bincount(choice, minlength=3).tolist() == [2, 3, 3]
        log_p = np.log(probs)
        ours = log_p[np.arange(8), choice].sum()
        best = max(
            log_p[np.arange(8), list(a)].sum()
            for a in itertools.product(range(3), repeat=8)
            if np.bincount(a, minlength=3).tolist() == [2, 3, 3]
        )
        assert ours == pytest.approx(best, abs=1e-9)


def test_balanced_assignment_splits_identical_rows_and_honours_a_zero_share():
    twins = np.tile([[0.6, 0.4]], (10, 1))
    assert np.bincount(balanced_assignment(twins).argmax(1)).tolist() == [5, 5]
    probs, _ = biased_classifier(n=900, classes=3)
    choice = balanced_assignment(probs, prior=[0.0, 0.5, 0.5]).argmax(1)
    assert np.bincount(choice, minlength=3).tolist() == [0, 450, 450]


def test_class_totals_round_by_largest_remainder():
    assert class_totals(np.full(3, 1 / 3), 10).tolist() == [4, 3, 3]
    assert class_totals(np.array([0.5, 0.25, 0.25]), 7).tolist() == [3, 2, 2]
    assert class_totals(np.array([0.1, 0.9]), 0).tolist() == [0, 0]


def gaussian_posteriors(prior: np.ndarray, n: int, seed: int = 0):
    """Rows drawn from a known generative model (class k: a 2-D Gaussian around a point on a circle)
    with class shares `prior`, and their exact posteriors under a uniform training prior."""
    rng = np.random.default_rng(seed)
    classes = len(prior)
    angles = 2 * np.pi * np.arange(classes) / classes
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = rng.choice(classes, size=n, p=prior)
    x = centres[labels] + rng.normal(size=(n, 2))
    log_lik = -0.5 * ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    return softmax(log_lik), labels


def test_estimate_recovers_a_known_shifted_prior():
    shifted = np.array([0.4, 0.25, 0.15, 0.1, 0.1])
    posteriors, labels = gaussian_posteriors(shifted, n=20_000)
    naive = posteriors.mean(0)  # the plain average is pulled towards uniform
    assert np.abs(naive - shifted).max() > 0.03
    prior, adjusted = estimate_prior(posteriors)
    assert np.abs(prior - shifted).max() < 0.015
    np.testing.assert_allclose(adjusted.sum(1), 1.0, atol=1e-12)
    assert (adjusted.argmax(1) == labels).mean() > (posteriors.argmax(1) == labels).mean() + 0.01
    # Through the door, a balanced set stays balanced: EM finds the uniform prior again.
    balanced, _ = gaussian_posteriors(np.full(5, 0.2), n=20_000, seed=1)
    assert np.abs(estimate_prior(balanced)[0] - 0.2).max() < 0.015
    np.testing.assert_allclose(apply_prior(posteriors, "estimate"), adjusted)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = 3.0 * rng.normal(size=(10_000, 10))
    true = softmax(logits / 2.0)
    labels = (true.cumsum(1) > rng.random((10_000, 1))).argmax(1)  # labels drawn from softmax(z / 2)
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)
    # Log-probabilities give the same temperature as logits (softmax ignores a per-row shift).
    log_p = np.log(softmax(logits))
    assert fit_temperature(log_p, labels) == pytest.approx(fit_temperature(logits, labels), rel=1e-6)
    np.testing.assert_allclose(apply_temperature(logits, 2.0), true, atol=1e-12)
    np.testing.assert_allclose(probs_temperature(softmax(logits), 2.0), true, atol=1e-9)


def test_a_sharpening_temperature_for_an_underconfident_model():
    """Label smoothing caps confidence: probabilities too soft for their accuracy get T < 1."""
    calibrated, labels = gaussian_posteriors(np.full(5, 0.2), n=5000)
    soft = probs_temperature(calibrated, 3.0)
    temperature = fit_temperature(np.log(soft), labels)
    assert temperature == pytest.approx(1 / 3, rel=0.1)


def test_apply_prior_none_is_the_input_and_unknown_modes_are_one_line():
    probs, _ = biased_classifier(n=100)
    np.testing.assert_array_equal(apply_prior(probs, "none"), probs)
    with pytest.raises(ConfigError) as err:
        apply_prior(probs, "balanced")
    assert str(err.value) == "prior=balanced: expected one of none, uniform, estimate"
    with pytest.raises(ConfigError, match=r"prior=\[.*\]: expected 10 non-negative shares"):
        balanced_assignment(probs, prior=[0.5, 0.5])
    with pytest.raises(ConfigError, match="temperature=0"):
        apply_temperature(np.log(probs), 0)


def test_confident_rows_balanced_by_class():
    probs, labels = biased_classifier()
    rows, chosen = confident_rows(probs, 0.5)
    assert np.bincount(chosen, minlength=10)[1] > 1.3 * np.bincount(chosen, minlength=10)[0]  # the bias
    rows, chosen = confident_rows(probs, 0.5, "uniform")
    counts = np.bincount(chosen, minlength=10)
    assert counts.min() == counts.max() > 50
    assert (probs[rows, chosen] >= 0.5).all()
    assert (chosen == labels[rows]).mean() > 0.9
