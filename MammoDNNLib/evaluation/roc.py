"""Empirical ROC analysis: AUC, DeLong standard errors and tests, Youden cut-offs.

Conventions (the same as R's pROC unless stated):

* Higher scores mean "more likely positive" (``direction="higher"``); ``direction="lower"`` negates the scores.
  The direction is never guessed from the data, because guessing biases the AUC upwards.
* The AUC is the Mann-Whitney statistic with ties counting one half (the trapezoidal area).
* Its variance and the covariances between AUCs of several scores on the same cases come from DeLong, DeLong and
  Clarke-Pearson (1988), computed with the O(n log n) algorithm of Sun and Xu (2014): the structural components
  ("placements") follow from three mid-rankings, so no n_pos × n_neg comparison matrix is ever formed.
* The default 95 % CI is the normal interval AUC ± z·SE (pROC's ``ci.auc(method="delong")``), clipped to [0, 1].
  ``ci_method="binomial-exact"`` gives a Clopper-Pearson interval that treats the AUC as a proportion of the
  n_pos + n_neg cases (the "binomial exact" interval MedCalc offers as its default).
* Thresholds are pROC's: the midpoints between adjacent distinct observed scores (plus ±inf); a case is called
  positive when its score is above the threshold (equivalently ≥, since no score equals a midpoint).
  The Youden cut-off maximises sensitivity + specificity − 1; ties go to the highest threshold (the most
  specific operating point). ``min_positive_score`` is the lowest observed score called positive there.
* The p value "against 0.5" is the two-sided Wald test z = (AUC − 0.5)/SE with the DeLong SE.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

CiMethod = Literal["delong", "binomial-exact"]
Direction = Literal["higher", "lower"]
CI_METHODS: tuple[str, ...] = ("delong", "binomial-exact")


@dataclass(frozen=True)
class Youden:
    """The operating point of maximum Youden index J = sensitivity + specificity − 1."""

    threshold: float
    sensitivity: float
    specificity: float
    index: float
    min_positive_score: float  # the lowest observed score called positive at this threshold

    def to_dict(self) -> dict:
        return {
            "threshold": _finite_or_none(self.threshold),
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "index": self.index,
            "min_positive_score": _finite_or_none(self.min_positive_score),
        }


@dataclass(frozen=True)
class RocCurve:
    """One score's empirical ROC curve and its summary statistics."""

    auc: float
    se: float
    ci: tuple[float, float]
    ci_method: str
    confidence: float
    p_vs_half: float  # two-sided Wald test of AUC = 0.5 with the DeLong SE
    youden: Youden
    n_positive: int
    n_negative: int
    # The curve itself (pROC order: thresholds ascending, so sensitivity falls and specificity rises).
    thresholds: np.ndarray = field(repr=False, compare=False)
    sensitivity: np.ndarray = field(repr=False, compare=False)
    specificity: np.ndarray = field(repr=False, compare=False)

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out = {
            "auc": self.auc,
            "se": self.se,
            "ci": list(self.ci),
            "ci_method": self.ci_method,
            "confidence": self.confidence,
            "p_vs_half": self.p_vs_half,
            "youden": self.youden.to_dict(),
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
        }
        if include_curve:
            out["curve"] = {
                "threshold": [_finite_or_none(t) for t in self.thresholds.tolist()],
                "sensitivity": self.sensitivity.tolist(),
                "specificity": self.specificity.tolist(),
            }
        return out


@dataclass(frozen=True)
class RocComparison:
    """DeLong test of AUC(a) − AUC(b) = 0: paired (same cases, z test) or unpaired (Welch-type t test)."""

    a: str
    b: str
    auc_a: float
    auc_b: float
    difference: float  # auc_a − auc_b
    se: float
    statistic: float  # Z (paired) or D (unpaired)
    p: float
    ci: tuple[float, float] | None  # CI of the difference (paired test only, as pROC)
    paired: bool
    df: float | None = None  # unpaired test only

    @property
    def z(self) -> float:
        return self.statistic

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "auc_a": self.auc_a,
            "auc_b": self.auc_b,
            "difference": self.difference,
            "se": self.se,
            "z": _finite_or_none(self.statistic),
            "p": self.p,
            "ci": None if self.ci is None else list(self.ci),
            "paired": self.paired,
            "df": self.df,
        }


@dataclass(frozen=True)
class RocAnalysis:
    """Several scores on the same cases: one curve per score and the paired DeLong test for every pair."""

    curves: dict[str, RocCurve]
    comparisons: list[RocComparison]
    covariance: np.ndarray = field(repr=False, compare=False)  # DeLong covariance of the AUCs, in curve order

    def to_dict(self, *, include_curves: bool = False) -> dict:
        return {
            "curves": {name: curve.to_dict(include_curve=include_curves) for name, curve in self.curves.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


@dataclass(frozen=True)
class Placements:
    """DeLong structural components of k scores on the same cases (Sun & Xu 2014)."""

    aucs: np.ndarray  # (k,)
    positive: np.ndarray  # (k, m): V10, for each positive case the fraction of negatives it outranks
    negative: np.ndarray  # (k, n): V01, for each negative case the fraction of positives outranking it

    @property
    def n_positive(self) -> int:
        return self.positive.shape[1]

    @property
    def n_negative(self) -> int:
        return self.negative.shape[1]

    def covariance(self) -> np.ndarray:
        """DeLong covariance matrix of the AUCs: S10/m + S01/n with unbiased (n−1) sample covariances."""
        m, n = self.n_positive, self.n_negative
        s10 = np.atleast_2d(np.cov(self.positive, ddof=1)) if m > 1 else np.full((len(self.aucs),) * 2, np.nan)
        s01 = np.atleast_2d(np.cov(self.negative, ddof=1)) if n > 1 else np.full((len(self.aucs),) * 2, np.nan)
        return s10 / m + s01 / n


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _as_truth(truth) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.dtype != bool:
        if not np.isin(truth, (0, 1)).all():
            raise ValueError("truth must be boolean or 0/1")
        truth = truth.astype(bool)
    if truth.ndim != 1:
        raise ValueError("truth must be one-dimensional")
    if truth.all() or not truth.any():
        raise ValueError("truth needs both positive and negative cases")
    return truth


def _as_scores(scores, n: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None, :]
    if scores.ndim != 2 or scores.shape[1] != n:
        raise ValueError(f"scores must have one value per case ({n}); got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite numbers")
    return scores


def _midranks(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (ties get the mean of their ranks) along the last axis."""
    return stats.rankdata(x, method="average", axis=-1)


def delong_placements(truth, scores, *, direction: Direction = "higher") -> Placements:
    """Structural components of one score (1-D) or several scores (k × N) on the same cases, in O(k N log N)."""
    truth = _as_truth(truth)
    scores = _as_scores(scores, truth.size)
    if direction == "lower":
        scores = -scores
    elif direction != "higher":
        raise ValueError(f"direction must be 'higher' or 'lower', not {direction!r}")
    pos = scores[:, truth]
    neg = scores[:, ~truth]
    m, n = pos.shape[1], neg.shape[1]
    tx = _midranks(pos)
    ty = _midranks(neg)
    tz = _midranks(np.concatenate([pos, neg], axis=1))
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return Placements(aucs=aucs, positive=v10, negative=v01)


def delong_covariance(truth, scores, *, direction: Direction = "higher") -> tuple[np.ndarray, np.ndarray]:
    """``(aucs, covariance)`` of k scores (k × N) on the same cases, by the fast DeLong algorithm."""
    placements = delong_placements(truth, scores, direction=direction)
    return placements.aucs, placements.covariance()


def auc_ci(
    auc: float, se: float, n_positive: int, n_negative: int, *, method: CiMethod = "delong", confidence: float = 0.95
) -> tuple[float, float]:
    """Confidence interval of an AUC: DeLong normal interval (clipped to [0, 1]) or binomial exact."""
    alpha = 1.0 - confidence
    if method == "delong":
        if not math.isfinite(se):
            return (math.nan, math.nan)
        half = float(stats.norm.ppf(1.0 - alpha / 2.0)) * se
        return (max(0.0, auc - half), min(1.0, auc + half))
    if method == "binomial-exact":
        n = n_positive + n_negative
        x = auc * n
        lower = 0.0 if x <= 0 else float(stats.beta.ppf(alpha / 2.0, x, n - x + 1.0))
        upper = 1.0 if x >= n else float(stats.beta.ppf(1.0 - alpha / 2.0, x + 1.0, n - x))
        return (lower, upper)
    raise ValueError(f"unknown CI method {method!r}; expected one of {', '.join(CI_METHODS)}")


def roc_points(truth, score, *, direction: Direction = "higher") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pROC's curve: ``(thresholds ascending, sensitivity, specificity)`` with midpoint thresholds and ±inf."""
    truth = _as_truth(truth)
    score = _as_scores(score, truth.size)[0]
    if direction == "lower":
        score = -score
    values = np.unique(score)
    thresholds = np.concatenate([[-np.inf], (values[:-1] + values[1:]) / 2.0, [np.inf]])
    pos = np.sort(score[truth])
    neg = np.sort(score[~truth])
    # positive call: score > threshold
    sensitivity = (pos.size - np.searchsorted(pos, thresholds, side="right")) / pos.size
    specificity = np.searchsorted(neg, thresholds, side="right") / neg.size
    if direction == "lower":
        thresholds = -thresholds[::-1]
        sensitivity = sensitivity[::-1]
        specificity = specificity[::-1]
    return thresholds, sensitivity, specificity


def youden_point(truth, score, *, direction: Direction = "higher") -> Youden:
    """The maximum-Youden operating point (ties → the most specific)."""
    return _youden(*roc_points(truth, score, direction=direction), score, direction)


def _youden(
    thresholds: np.ndarray, sensitivity: np.ndarray, specificity: np.ndarray, score, direction: Direction
) -> Youden:
    j = sensitivity + specificity - 1.0
    best = np.flatnonzero(np.isclose(j, j.max(), rtol=0.0, atol=1e-12))
    # ties → the most specific point (highest specificity, then highest sensitivity)
    pick = best[np.lexsort((sensitivity[best], specificity[best]))[-1]]
    threshold = float(thresholds[pick])
    score = np.asarray(score, dtype=np.float64)
    called = score[score > threshold] if direction == "higher" else score[score < threshold]
    extreme = (called.min() if direction == "higher" else called.max()) if called.size else math.nan
    return Youden(
        threshold=threshold,
        sensitivity=float(sensitivity[pick]),
        specificity=float(specificity[pick]),
        index=float(j[pick]),
        min_positive_score=float(extreme),
    )


def _p_two_sided(z: float) -> float:
    return float(2.0 * stats.norm.sf(abs(z)))


def roc_curve(
    truth,
    score,
    *,
    direction: Direction = "higher",
    ci_method: CiMethod = "delong",
    confidence: float = 0.95,
) -> RocCurve:
    """Empirical ROC curve of one score: AUC, DeLong SE, CI, p against 0.5, Youden cut-off, counts."""
    truth = _as_truth(truth)
    placements = delong_placements(truth, score, direction=direction)
    auc = float(placements.aucs[0])
    variance = float(placements.covariance()[0, 0])
    se = math.sqrt(variance) if variance > 0 else (0.0 if variance == 0 else math.nan)
    if se > 0:
        p = _p_two_sided((auc - 0.5) / se)
    else:
        p = 1.0 if auc == 0.5 else 0.0
    thresholds, sensitivity, specificity = roc_points(truth, score, direction=direction)
    youden = _youden(thresholds, sensitivity, specificity, score, direction)
    return RocCurve(
        auc=auc,
        se=se,
        ci=auc_ci(auc, se, placements.n_positive, placements.n_negative, method=ci_method, confidence=confidence),
        ci_method=ci_method,
        confidence=confidence,
        p_vs_half=p,
        youden=youden,
        n_positive=placements.n_positive,
        n_negative=placements.n_negative,
        thresholds=thresholds,
        sensitivity=sensitivity,
        specificity=specificity,
    )


def _paired_from_covariance(
    a: str, b: str, aucs: np.ndarray, cov: np.ndarray, i: int, j: int, confidence: float
) -> RocComparison:
    difference = float(aucs[i] - aucs[j])
    variance = float(cov[i, i] + cov[j, j] - 2.0 * cov[i, j])
    se = math.sqrt(max(variance, 0.0))
    if se > 0:
        z = difference / se
    else:
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    half = float(stats.norm.ppf(0.5 + confidence / 2.0)) * se
    return RocComparison(
        a=a, b=b, auc_a=float(aucs[i]), auc_b=float(aucs[j]), difference=difference, se=se, statistic=z,
        p=_p_two_sided(z) if math.isfinite(z) else 0.0, ci=(difference - half, difference + half), paired=True,
    )


def delong_test(
    truth, score_a, score_b, *, names: tuple[str, str] = ("a", "b"), direction: Direction = "higher",
    confidence: float = 0.95,
) -> RocComparison:
    """Paired DeLong test of two scores on the same cases (pROC's ``roc.test(..., method="delong")``)."""
    aucs, cov = delong_covariance(truth, np.vstack([score_a, score_b]), direction=direction)
    return _paired_from_covariance(names[0], names[1], aucs, cov, 0, 1, confidence)


def delong_unpaired_test(
    truth_a, score_a, truth_b, score_b, *, names: tuple[str, str] = ("a", "b"), direction: Direction = "higher",
) -> RocComparison:
    """DeLong test of two ROC curves on different cases: D = ΔAUC / SE with Welch-Satterthwaite df (pROC)."""
    pa = delong_placements(truth_a, score_a, direction=direction)
    pb = delong_placements(truth_b, score_b, direction=direction)
    var_a = float(pa.covariance()[0, 0])
    var_b = float(pb.covariance()[0, 0])
    difference = float(pa.aucs[0] - pb.aucs[0])
    se = math.sqrt(var_a + var_b)
    n_a = pa.n_positive + pa.n_negative
    n_b = pb.n_positive + pb.n_negative
    if se > 0:
        d = difference / se
        df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
        p = float(2.0 * stats.t.sf(abs(d), df))
    else:
        d, df = (0.0 if difference == 0 else math.copysign(math.inf, difference)), math.nan
        p = 1.0 if difference == 0 else 0.0
    return RocComparison(
        a=names[0], b=names[1], auc_a=float(pa.aucs[0]), auc_b=float(pb.aucs[0]), difference=difference, se=se,
        statistic=d, p=p, ci=None, paired=False, df=float(df),
    )


def analyze_roc(
    truth,
    scores: dict[str, np.ndarray],
    *,
    direction: Direction = "higher",
    ci_method: CiMethod = "delong",
    confidence: float = 0.95,
) -> RocAnalysis:
    """Curves for every score and the paired DeLong test for every pair (in the order the scores are given)."""
    if not scores:
        raise ValueError("no scores to analyse")
    truth = _as_truth(truth)
    names = list(scores)
    matrix = np.vstack([np.asarray(scores[name], dtype=np.float64) for name in names])
    aucs, cov = delong_covariance(truth, matrix, direction=direction)
    curves = {
        name: roc_curve(truth, matrix[i], direction=direction, ci_method=ci_method, confidence=confidence)
        for i, name in enumerate(names)
    }
    comparisons = [
        _paired_from_covariance(names[i], names[j], aucs, cov, i, j, confidence)
        for i, j in itertools.combinations(range(len(names)), 2)
    ]
    return RocAnalysis(curves=curves, comparisons=comparisons, covariance=cov)


def naive_auc_variance(truth, score) -> tuple[float, float]:
    """``(auc, DeLong variance)`` by the textbook O(n_pos·n_neg) pairwise kernel — a reference for tests and the
    speed benchmark, not for use on large data."""
    truth = _as_truth(truth)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = score[truth], score[~truth]
    psi = (pos[:, None] > neg[None, :]).astype(np.float64) + 0.5 * (pos[:, None] == neg[None, :])
    auc = float(psi.mean())
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    return auc, float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
