"""Greedy CC-MLO assignment, display numbering and pair metrics on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from MammoDNNLib.matching.assign import Match, display_numbers, greedy_assign
from MammoDNNLib.matching.metrics import PairMetrics, pair_metrics, total


def test_highest_first_each_used_once():
    m = np.array([[0.9, 0.2], [0.8, 0.7]])
    assert greedy_assign(m, 0.5) == [Match(0, 0, 0.9), Match(1, 1, 0.7)]


def test_greedy_keeps_the_confident_pair_rather_than_the_best_sum():
    # Optimal (Hungarian) assignment would take (0,1) + (1,0) = 1.65; greedy keeps the 0.9 pair, and the leftover
    # (1,1) = 0.1 is below the threshold, so CC 1 stays single.
    m = np.array([[0.9, 0.85], [0.8, 0.1]])
    assert greedy_assign(m, 0.5) == [Match(0, 0, 0.9)]


def test_threshold_is_inclusive_and_below_stays_single():
    m = np.array([[0.5, 0.49], [0.3, 0.2]])
    assert greedy_assign(m, 0.5) == [Match(0, 0, 0.5)]
    assert greedy_assign(m, 0.51) == []
    assert greedy_assign(m, 0.0) == [Match(0, 0, 0.5), Match(1, 1, 0.2)]


def test_ties_break_by_row_then_column():
    m = np.full((2, 3), 0.6)
    assert greedy_assign(m, 0.5) == [Match(0, 0, 0.6), Match(1, 1, 0.6)]
    m = np.array([[0.1, 0.7], [0.7, 0.7]])
    assert greedy_assign(m, 0.5) == [Match(0, 1, 0.7), Match(1, 0, 0.7)]


def test_nan_never_taken_and_empty_shapes():
    m = np.array([[np.nan, 0.6], [0.9, np.nan]])
    assert greedy_assign(m, 0.5) == [Match(1, 0, 0.9), Match(0, 1, 0.6)]
    assert greedy_assign(np.zeros((0, 3)), 0.5) == []
    assert greedy_assign(np.zeros((2, 0)), 0.5) == []
    assert greedy_assign(np.array([[0.7], [0.8], [0.6]]), 0.5) == [Match(1, 0, 0.8)]


def test_bad_input_refused():
    with pytest.raises(ValueError):
        greedy_assign(np.zeros(3), 0.5)
    with pytest.raises(ValueError):
        greedy_assign(np.zeros((2, 2)), math.nan)


def _reference_greedy(m: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """An independent, slow greedy: repeatedly take the first maximum (row-major) of what is left."""
    m = np.where(np.isnan(m), -np.inf, m.astype(float))
    pairs = []
    while m.size and np.max(m) >= threshold and np.isfinite(np.max(m)):
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)  # argmax returns the first, i.e. row-major order
        pairs.append((int(r), int(c)))
        m[r, :] = -np.inf
        m[:, c] = -np.inf
    return pairs


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(0, 6)),
           elements=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0, math.nan])),
    st.sampled_from([0.0, 0.3, 0.5, 0.8]),
)
def test_greedy_matches_an_independent_implementation(m, threshold):
    matches = greedy_assign(m, threshold)
    assert [(x.cc, x.mlo) for x in matches] == _reference_greedy(m, threshold)
    rows = [x.cc for x in matches]
    cols = [x.mlo for x in matches]
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    probs = [x.probability for x in matches]
    assert all(p >= threshold for p in probs)
    assert probs == sorted(probs, reverse=True)


def test_display_numbers_cc_first_by_score_matched_mlo_shares():
    cc_scores = [0.4, 0.9, 0.6]  # numbered 3, 1, 2
    mlo_scores = [0.5, 0.8, 0.3, 0.95]
    matches = [Match(1, 2, 0.9), Match(0, 0, 0.7)]  # CC1 (no. 1) <-> MLO2 ; CC0 (no. 3) <-> MLO0
    cc_numbers, mlo_numbers = display_numbers(cc_scores, mlo_scores, matches)
    assert cc_numbers == [3, 1, 2]
    # Unmatched MLO findings continue after the CC count, in descending score: MLO3 (0.95) = 4, MLO1 (0.8) = 5.
    assert mlo_numbers == [3, 5, 1, 4]


def test_pair_metrics_counts():
    # Truth: lesions A, B, C seen in both views; C's MLO projection was not detected.
    predicted = [("A", "A"), ("B", None), (None, None), ("B", "B"), ("A", "A")]  # last one: a duplicate of A
    m = pair_metrics(predicted, {"A", "B", "C"}, detectable={"A", "B"})
    assert (m.tp, m.fp, m.fn, m.detectable) == (2, 3, 1, 2)
    assert m.precision == pytest.approx(2 / 5)
    assert m.recall == pytest.approx(2 / 3)
    assert m.recall_detectable == pytest.approx(1.0)
    assert m.f1 == pytest.approx(2 * 2 / (2 * 2 + 3 + 1))
    assert total([m, PairMetrics(1, 0, 0, 1)]) == PairMetrics(3, 3, 1, 3)
    empty = pair_metrics([], set())
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 1.0, 1.0)
