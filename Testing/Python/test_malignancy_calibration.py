"""Calibration of the malignancy probability: Platt scaling, isotonic regression, ECE and Brier score, checked
against scikit-learn (an independent implementation) and constructed truths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from MammoDNNLib.models.calibration import (
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    brier_score,
    calibrator_from_dict,
    expected_calibration_error,
    fit_calibrator,
    select_calibrator,
    sigmoid,
)


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes with P(y=1) = sigmoid(z); the 'network' reports the overconfident, shifted logit 3 z + 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < sigmoid(z)).astype(int)
    return 3.0 * z + 1.0, y


def test_ece_and_brier_on_a_hand_computed_example():
    p = np.array([0.05, 0.15, 0.85, 0.95, 0.95])
    y = np.array([0, 1, 1, 1, 0])
    # Bins [0, .1): p .05 y 0 -> |0 - .05|; [.1, .2): .15 vs 1 -> .85; [.8, .9): .85 vs 1 -> .15;
    # [.9, 1]: mean p .95, mean y .5 -> .45 (two cases).
    expected = (0.05 + 0.85 + 0.15 + 2 * 0.45) / 5
    assert expected_calibration_error(p, y, n_bins=10) == pytest.approx(expected)
    assert brier_score(p, y) == pytest.approx(np.mean((p - y) ** 2))
    assert expected_calibration_error([1.0], [1]) == 0.0  # p = 1 falls in the last bin
    with pytest.raises(ValueError):
        expected_calibration_error([1.2], [1])


def test_platt_recovers_the_generating_map_and_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    logits, y = _miscalibrated(8000, 0)
    platt = PlattCalibrator.fit(logits, y)
    # True map from the reported logit s = 3 z + 1 to the truth: sigmoid((s - 1) / 3).
    assert platt.a == pytest.approx(1 / 3, abs=0.03) and platt.b == pytest.approx(-1 / 3, abs=0.06)
    reference = LogisticRegression(C=np.inf, tol=1e-8, max_iter=1000).fit(logits[:, None], y)
    # Platt's smoothed targets differ from hard labels by O(1/n): the fits agree closely.
    assert platt.a == pytest.approx(reference.coef_[0, 0], abs=2e-3)
    assert platt.b == pytest.approx(reference.intercept_[0], abs=2e-3)


def test_platt_stays_finite_on_separable_data():
    logits = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    platt = PlattCalibrator.fit(logits, y)
    assert np.isfinite(platt.a) and np.isfinite(platt.b) and platt.a > 0
    # Smoothed targets (n+1)/(n+2) = 0.8 and 1/(n+2) = 0.2 bound the fitted probabilities away from 0 and 1.
    assert 0.0 < platt(-3.0) < 0.2 and 0.8 < platt(3.0) < 1.0


def test_isotonic_matches_scikit_learn_at_the_knots_and_is_monotone():
    from sklearn.isotonic import IsotonicRegression

    logits, y = _miscalibrated(3000, 1)
    logits = np.round(logits, 1)  # ties are pooled like scikit-learn does
    ours = IsotonicCalibrator.fit(logits, y, prior_strength=0.0)
    reference = IsotonicRegression(out_of_bounds="clip").fit(logits, y)
    knots = np.asarray(ours.x)
    assert np.allclose(ours(knots), reference.predict(knots), atol=1e-9)
    grid = np.linspace(logits.min() - 5, logits.max() + 5, 2001)
    values = ours(grid)
    assert np.all(np.diff(values) >= -1e-12)
    assert values[0] == ours.y[0] and values[-1] == ours.y[-1]  # flat beyond the ends
    shrunk = IsotonicCalibrator.fit(logits, y)  # default beta prior keeps probabilities off 0 and 1
    assert 0.0 < min(shrunk.y) and max(shrunk.y) < 1.0
    assert np.all(np.diff(shrunk(grid)) >= -1e-12)


def test_isotonic_by_hand():
    # Pool adjacent violators: scores (1, 2, 3, 4) -> labels (1, 0, 1, 1): the first two pool to 0.5 at their
    # mean score 1.5, the last two (equal means pool too) to 1.0 at 3.5.
    cal = IsotonicCalibrator.fit([1, 2, 3, 4], [1, 0, 1, 1], prior_strength=0.0)
    assert cal.x == pytest.approx((1.5, 3.5)) and cal.y == pytest.approx((0.5, 1.0))
    # Tied scores pool first: 1 -> mean 0.5 (2 cases), 2 -> 0, 3 -> 1; 0.5 > 0 violates, pooled (1+0+0)/3 at 4/3.
    cal = IsotonicCalibrator.fit([1, 1, 2, 3], [1, 0, 0, 1], prior_strength=0.0)
    assert cal.x == pytest.approx((4 / 3, 3.0)) and cal.y == pytest.approx((1 / 3, 1.0))
    assert cal([0, 2.5, 9]) == pytest.approx([1 / 3, 0.8, 1.0])  # flat outside, linear between knots


def test_calibration_input_errors():
    with pytest.raises(ValueError):
        fit_calibrator("platt", [0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        fit_calibrator("isotonic", [0.1, np.nan], [0, 1])
    with pytest.raises(ValueError):
        fit_calibrator("platt", [0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError):
        fit_calibrator("beta", [0.1, 0.2], [0, 1])


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fitted_on_one_sample_improves_ece_on_another(method):
    fit_logits, fit_y = _miscalibrated(4000, 2)
    test_logits, test_y = _miscalibrated(4000, 3)
    calibrator = fit_calibrator(method, fit_logits, fit_y)
    before = expected_calibration_error(sigmoid(test_logits), test_y)
    after = expected_calibration_error(calibrator(test_logits), test_y)
    assert before > 0.08 and after < 0.03 and after < before / 3
    assert brier_score(calibrator(test_logits), test_y) < brier_score(sigmoid(test_logits), test_y)


def test_calibrators_round_trip_through_json():
    logits, y = _miscalibrated(500, 4)
    for calibrator in (
        IdentityCalibrator(),
        PlattCalibrator.fit(logits, y),
        IsotonicCalibrator.fit(logits, y),
    ):
        data = json.loads(json.dumps(calibrator.to_dict()))
        again = calibrator_from_dict(data)
        assert again == calibrator
        assert np.allclose(again(logits), calibrator(logits))
    with pytest.raises(ValueError):
        calibrator_from_dict({"method": "temperature"})
    with pytest.raises(ValueError):
        IsotonicCalibrator((0.0, 1.0), (0.6, 0.4))  # decreasing


def test_selection_prefers_a_calibrator_when_the_scores_are_miscalibrated():
    logits, y = _miscalibrated(1000, 5)
    method, scores = select_calibrator(logits, y)
    assert method in ("platt", "isotonic")
    assert scores["identity"] > scores[method]
    # Isotonic regression needs a large calibration set: with fewer independent groups it is not a candidate.
    method, scores = select_calibrator(logits, y, groups=(np.arange(1000) // 4).tolist())
    assert "isotonic" not in scores and method == "platt"
    # Already calibrated scores: identity is as good as anything (within cross-validation noise).
    rng = np.random.default_rng(6)
    z = rng.normal(0, 1.5, 1000)
    y2 = (rng.random(1000) < sigmoid(z)).astype(int)
    _, scores2 = select_calibrator(z, y2)
    assert scores2["identity"] <= min(scores2.values()) + 0.01


def test_grouped_cross_validation_keeps_duplicated_cases_out_of_their_own_fit():
    """Each lesion counted four times (CC/MLO, true/perturbed mask): without groups, isotonic regression
    'learns' the held-out folds from their duplicates even when the scores carry no information at all."""
    rng = np.random.default_rng(7)
    logits = np.repeat(rng.normal(size=80), 4)
    truth = np.repeat(rng.integers(0, 2, 80), 4)
    groups = np.repeat(np.arange(80), 4)
    _, leaky = select_calibrator(logits, truth, min_isotonic_groups=0)
    _, grouped = select_calibrator(logits, truth, groups=groups.tolist(), min_isotonic_groups=0)
    assert leaky["isotonic"] < grouped["isotonic"] - 0.01
    assert grouped["isotonic"] > grouped["platt"]  # noise: the flexible fit is the worse one out of sample
