"""Paired Wilcoxon signed-rank test exactly as R's ``wilcox.test(x, y, paired = TRUE)`` computes it.

* Differences d = x − y; zero differences are dropped before ranking (Wilcoxon's convention, as R).
* V is the sum of the ranks of |d| over the positive differences (R's statistic ``V``).
* With fewer than 50 non-zero differences and no ties among |d| (and no zeros), the p value is exact
  (the null distribution of V by counting); otherwise it is the normal approximation with R's tie correction
  and continuity correction.
* Each column's median (min–max) is reported over all pairs, and Shapiro–Wilk (scipy, Royston's algorithm as in
  R's ``shapiro.test``) is run on the differences to judge whether a parametric test would have been defensible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

EXACT_LIMIT = 50  # R: exact when n < 50


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}

    def text(self, digits: int = 1) -> str:
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}–{self.max:.{digits}f})"


@dataclass(frozen=True)
class ShapiroResult:
    w: float
    p: float

    def to_dict(self) -> dict:
        return {"w": self.w, "p": self.p}


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # V: sum of the ranks of the positive differences
    p: float  # two-sided
    method: str  # "exact" or "normal approximation with continuity correction"
    n: int  # pairs
    n_nonzero: int  # pairs with a non-zero difference (those ranked)
    ties: bool
    x: Summary
    y: Summary
    shapiro: ShapiroResult | None  # None where Shapiro-Wilk is undefined (n < 3 or constant differences)

    def to_dict(self) -> dict:
        return {
            "statistic": self.statistic,
            "p": self.p,
            "method": self.method,
            "n": self.n,
            "n_nonzero": self.n_nonzero,
            "ties": self.ties,
            "x": self.x.to_dict(),
            "y": self.y.to_dict(),
            "shapiro": None if self.shapiro is None else self.shapiro.to_dict(),
        }


def summarize(values) -> Summary:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to summarise")
    return Summary(float(np.median(values)), float(values.min()), float(values.max()), int(values.size))


@lru_cache(maxsize=64)
def _signrank_counts(n: int) -> np.ndarray:
    """Number of sign assignments giving each value of V = 0 .. n(n+1)/2 (R's ``dsignrank`` × 2^n)."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1, dtype=np.float64)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[: top + 1 - k].copy()
    return counts


def signrank_cdf(v: float, n: int) -> float:
    """P(V ≤ v) under H0 for n non-zero, untied differences (R's ``psignrank``)."""
    counts = _signrank_counts(n)
    k = math.floor(v + 1e-7)
    if k < 0:
        return 0.0
    return float(counts[: min(k, counts.size - 1) + 1].sum() / counts.sum())


def shapiro_wilk(values) -> ShapiroResult | None:
    values = np.asarray(values, dtype=np.float64)
    if values.size < 3 or np.ptp(values) == 0:
        return None
    w, p = stats.shapiro(values)
    return ShapiroResult(float(w), float(p))


def wilcoxon_signed_rank(x, y, *, exact: bool | None = None, correct: bool = True) -> WilcoxonResult:
    """Paired, two-sided Wilcoxon signed-rank test of x against y (R's defaults: ``exact=None``, ``correct=TRUE``)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be paired one-dimensional samples; got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no pairs to test")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite numbers")
    d = x - y
    zeros = bool((d == 0).any())
    d = d[d != 0]
    n = int(d.size)
    shapiro = shapiro_wilk(x - y)
    if n == 0:
        raise ValueError("every pair is equal; the signed-rank test is undefined")
    ranks = stats.rankdata(np.abs(d), method="average")
    v = float(ranks[d > 0].sum())
    _, tie_counts = np.unique(ranks, return_counts=True)
    ties = bool((tie_counts > 1).any())
    use_exact = (n < EXACT_LIMIT) if exact is None else exact
    if use_exact and not ties and not zeros:
        if v > n * (n + 1) / 4:
            tail = 1.0 - signrank_cdf(v - 1, n)
        else:
            tail = signrank_cdf(v, n)
        p = min(1.0, 2.0 * tail)
        method = "exact"
    else:
        z = v - n * (n + 1) / 4.0
        sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_counts**3 - tie_counts).sum()) / 48.0)
        correction = math.copysign(0.5, z) if (correct and z != 0) else 0.0
        z = (z - correction) / sigma if sigma > 0 else 0.0
        p = float(2.0 * min(stats.norm.cdf(z), stats.norm.sf(z)))
        method = "normal approximation" + (" with continuity correction" if correct else "")
    return WilcoxonResult(
        statistic=v, p=float(p), method=method, n=int(x.size), n_nonzero=n, ties=ties,
        x=summarize(x), y=summarize(y), shapiro=shapiro,
    )
