"""Greedy one-to-one assignment of CC to MLO candidates from a probability matrix, and display numbering.

:func:`greedy_assign` takes the highest remaining probability first, pairs its CC row with its MLO column, and
removes both; it stops when the highest remaining probability is below the threshold. Every lesion is used at most
once; lesions left over stay single. Ties are broken by the lower row, then the lower column, so the result does
not depend on anything but the matrix.

Greedy rather than the optimal (Hungarian) assignment because it is what a reader does — the most convincing
correspondence first — and because a confident pair should never be given up to raise the sum of weaker ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    """A pair: row ``cc`` and column ``mlo`` of the probability matrix."""

    cc: int
    mlo: int
    probability: float


def greedy_assign(matrix: np.ndarray, threshold: float) -> list[Match]:
    """Pairs in the order taken (highest probability first); a pair needs ``probability >= threshold``.

    NaN entries are never taken. An empty matrix (no CC or no MLO candidates) gives no pairs.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"a probability matrix is two-dimensional, got shape {m.shape}")
    if not math.isfinite(threshold):
        raise ValueError(f"the threshold must be finite, got {threshold!r}")
    if m.size == 0:
        return []
    rows, cols = np.nonzero(np.nan_to_num(m, nan=-np.inf) >= threshold)
    values = m[rows, cols]
    # lexsort sorts by the last key first: probability descending, then row, then column ascending.
    order = np.lexsort((cols, rows, -values))
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    matches: list[Match] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_rows or c in used_cols:
            continue
        used_rows.add(r)
        used_cols.add(c)
        matches.append(Match(r, c, float(values[k])))
        if len(used_rows) == m.shape[0] or len(used_cols) == m.shape[1]:
            break
    return matches


def display_numbers(
    cc_scores: list[float] | np.ndarray, mlo_scores: list[float] | np.ndarray, matches: list[Match]
) -> tuple[list[int], list[int]]:
    """Display numbers (1, 2, ...) for one breast's CC and MLO findings.

    CC findings are numbered first, in descending detection score (ties: original order); a matched MLO finding
    takes its CC partner's number; the unmatched MLO findings then continue the count in descending score. So
    "R CC 1" and "R MLO 1" are the same lesion, and a number seen in one view only is a single finding.
    """
    cc_scores = np.asarray(cc_scores, dtype=np.float64)
    mlo_scores = np.asarray(mlo_scores, dtype=np.float64)
    cc_numbers = [0] * len(cc_scores)
    mlo_numbers = [0] * len(mlo_scores)
    for number, i in enumerate(np.argsort(-cc_scores, kind="stable"), start=1):
        cc_numbers[int(i)] = number
    partner = {match.mlo: match.cc for match in matches}
    for j, i in partner.items():
        mlo_numbers[j] = cc_numbers[i]
    next_number = len(cc_scores) + 1
    for j in np.argsort(-mlo_scores, kind="stable"):
        if int(j) not in partner:
            mlo_numbers[int(j)] = next_number
            next_number += 1
    return cc_numbers, mlo_numbers
