"""Probability calibration of a binary score: Platt scaling and isotonic regression, and how to measure it.

Both calibrators map a network's raw malignancy *logit* to a probability, are fitted on validation data (never
on the data they are judged on), and are stored as plain JSON numbers in a model manifest (no pickles):

* :class:`PlattCalibrator` — ``p = sigmoid(a * logit + b)`` fitted by maximum likelihood with Platt's (1999)
  smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, which keeps the fit finite on separable data.
* :class:`IsotonicCalibrator` — the pool-adjacent-violators (PAV) solution of least squares under a
  non-decreasing constraint (Barlow et al. 1972; what scikit-learn's ``IsotonicRegression`` computes), stored
  as the blocks' (mean logit, mean outcome) knots and evaluated by linear interpolation between them, flat
  beyond the ends. Interpolating (rather than the step function) keeps distinct scores distinct inside a
  block's span, so ranking — and the AUC — is barely touched.
* :class:`IdentityCalibrator` — ``sigmoid(logit)``: the uncalibrated network.

:func:`expected_calibration_error` (equal-width bins, weighted by bin size; Naeini et al. 2015, Guo et al.
2017) and :func:`brier_score` measure the result; :func:`select_calibrator` picks a method by cross-validated
log loss on the validation data alone.

Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

CALIBRATION_METHODS: tuple[str, ...] = ("identity", "platt", "isotonic")
_EPS = 1e-7


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


class Calibrator(Protocol):
    method: str

    def __call__(self, logits: np.ndarray | Sequence[float] | float) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


def _as_fit_data(logits, truth) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} scores but {y.size} outcomes")
    if x.size < 2:
        raise ValueError("calibration needs at least two cases")
    if not np.all(np.isfinite(x)):
        raise ValueError("calibration scores must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("calibration outcomes must be 0 or 1")
    return x, y


@dataclass(frozen=True)
class IdentityCalibrator:
    method: str = "identity"

    def __call__(self, logits) -> np.ndarray:
        return sigmoid(logits)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method}


@dataclass(frozen=True)
class PlattCalibrator:
    """``p = sigmoid(a * logit + b)``."""

    a: float
    b: float
    method: str = "platt"

    @classmethod
    def fit(cls, logits, truth) -> "PlattCalibrator":
        """Maximum likelihood with Platt's smoothed targets (Newton's method, backtracking line search)."""
        x, y = _as_fit_data(logits, truth)
        n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
        target = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        a, b = 1.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))

        def loss(params: np.ndarray) -> float:
            z = params[0] * x + params[1]
            # -[t log s(z) + (1 - t) log(1 - s(z))] = log(1 + e^z) - t z
            return float(np.sum(np.logaddexp(0.0, z) - target * z))

        params = np.array([a, b])
        current = loss(params)
        for _ in range(100):
            p = sigmoid(params[0] * x + params[1])
            residual = p - target
            grad = np.array([np.dot(residual, x), residual.sum()])
            w = p * (1.0 - p) + 1e-12
            hessian = np.array([[np.dot(w, x * x), np.dot(w, x)], [np.dot(w, x), w.sum()]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hessian, grad)
            scale = 1.0
            while scale > 1e-8:
                trial = params - scale * step
                value = loss(trial)
                if value <= current:
                    break
                scale *= 0.5
            else:
                break
            converged = abs(current - value) < 1e-12 * max(1.0, abs(current))
            params, current = trial, value
            if converged or np.max(np.abs(scale * step)) < 1e-10:
                break
        return cls(float(params[0]), float(params[1]))

    def __call__(self, logits) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Non-decreasing piecewise-linear map through the PAV blocks' (mean logit, mean outcome) knots."""

    x: tuple[float, ...]  # knot positions (logits), strictly increasing
    y: tuple[float, ...]  # knot probabilities, non-decreasing, in [0, 1]
    method: str = "isotonic"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or not self.x:
            raise ValueError("an isotonic calibrator needs the same positive number of x and y knots")
        if any(b <= a for a, b in zip(self.x, self.x[1:])):
            raise ValueError("isotonic knots must be strictly increasing in x")
        if any(b < a for a, b in zip(self.y, self.y[1:])) or min(self.y) < 0 or max(self.y) > 1:
            raise ValueError("isotonic knot values must be non-decreasing probabilities")

    @classmethod
    def fit(cls, logits, truth, *, prior_strength: float = 1.0) -> "IsotonicCalibrator":
        """PAV on the outcomes sorted by score; tied scores are pooled first.

        Each block's mean outcome is shrunk towards the overall rate with ``prior_strength`` pseudo-cases (a
        beta prior), so that a small block of all-benign or all-malignant cases does not produce a probability
        of exactly 0 or 1; ``prior_strength=0`` gives the plain PAV fit.
        """
        x, y = _as_fit_data(logits, truth)
        order = np.argsort(x, kind="mergesort")
        x, y = x[order], y[order]
        unique, start = np.unique(x, return_index=True)
        counts = np.diff(np.append(start, len(x))).astype(np.float64)
        sums = np.add.reduceat(y, start)
        xsum = unique * counts
        # Pool adjacent violators: a stack of blocks (sum of y, sum of x, count).
        block_y: list[float] = []
        block_x: list[float] = []
        block_n: list[float] = []
        for sy, sx, n in zip(sums, xsum, counts):
            block_y.append(float(sy))
            block_x.append(float(sx))
            block_n.append(float(n))
            while len(block_y) > 1 and block_y[-2] / block_n[-2] >= block_y[-1] / block_n[-1]:
                sy2, sx2, n2 = block_y.pop(), block_x.pop(), block_n.pop()
                block_y[-1] += sy2
                block_x[-1] += sx2
                block_n[-1] += n2
        n = np.asarray(block_n)
        rate = float(y.mean())
        values = (np.asarray(block_y) + prior_strength * rate) / (n + prior_strength)
        knots = np.asarray(block_x) / n
        values = np.maximum.accumulate(values)  # the shrinkage keeps the order; guard against rounding
        return cls(tuple(float(v) for v in knots), tuple(float(v) for v in np.clip(values, 0.0, 1.0)))

    def __call__(self, logits) -> np.ndarray:
        x = np.asarray(logits, dtype=np.float64)
        return np.interp(x, np.asarray(self.x), np.asarray(self.y))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}


def calibrator_from_dict(data: dict[str, Any]) -> IdentityCalibrator | PlattCalibrator | IsotonicCalibrator:
    method = data.get("method")
    if method == "identity":
        return IdentityCalibrator()
    if method == "platt":
        return PlattCalibrator(float(data["a"]), float(data["b"]))
    if method == "isotonic":
        return IsotonicCalibrator(tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"]))
    raise ValueError(
        f"unknown calibration method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}"
    )


def fit_calibrator(method: str, logits, truth):
    if method == "identity":
        _as_fit_data(logits, truth)
        return IdentityCalibrator()
    if method == "platt":
        return PlattCalibrator.fit(logits, truth)
    if method == "isotonic":
        return IsotonicCalibrator.fit(logits, truth)
    raise ValueError(
        f"unknown calibration method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}"
    )


# -- measures
# ---------------------------------------------------------------------------------------------------
def expected_calibration_error(probabilities, truth, n_bins: int = 10) -> float:
    """ECE: ``sum_b (n_b / N) |mean(y_b) - mean(p_b)|`` over ``n_bins`` equal-width bins of [0, 1].

    Bins are half-open ``[k/B, (k+1)/B)`` except the last, which includes 1.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise ValueError("need the same positive number of probabilities and outcomes")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            total += inside.sum() / p.size * abs(float(y[inside].mean()) - float(p[inside].mean()))
    return float(total)


def brier_score(probabilities, truth) -> float:
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise ValueError("need the same positive number of probabilities and outcomes")
    return float(np.mean((p - y) ** 2))


def log_loss(probabilities, truth) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), _EPS, 1 - _EPS)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


@dataclass(frozen=True)
class CalibrationReport:
    """Calibration of one set of probabilities against outcomes."""

    ece: float
    brier: float
    log_loss: float
    n: int
    n_bins: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ece": round(self.ece, 4),
            "brier": round(self.brier, 4),
            "log_loss": round(self.log_loss, 4),
            "n": self.n,
            "n_bins": self.n_bins,
        }


def calibration_report(probabilities, truth, n_bins: int = 10) -> CalibrationReport:
    return CalibrationReport(
        expected_calibration_error(probabilities, truth, n_bins),
        brier_score(probabilities, truth),
        log_loss(probabilities, truth),
        int(np.size(probabilities)),
        n_bins,
    )


def reliability_curve(probabilities, truth, n_bins: int = 10) -> dict[str, list[float]]:
    """Per equal-width bin: mean probability, observed rate and count (empty bins left out)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    out: dict[str, list[float]] = {"mean_probability": [], "observed_rate": [], "count": []}
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            out["mean_probability"].append(round(float(p[inside].mean()), 4))
            out["observed_rate"].append(round(float(y[inside].mean()), 4))
            out["count"].append(int(inside.sum()))
    return out


MIN_ISOTONIC_GROUPS = 500


def select_calibrator(
    logits,
    truth,
    *,
    folds: int = 5,
    seed: int = 0,
    methods: Sequence[str] = CALIBRATION_METHODS,
    groups: Sequence[Any] | None = None,
    min_isotonic_groups: int = MIN_ISOTONIC_GROUPS,
) -> tuple[str, dict[str, float]]:
    """The method with the lowest ``folds``-fold cross-validated log loss on these (validation) data.

    Returns ``(method, {method: cross-validated log loss})``. Folds are stratified by outcome; with ``groups``
    (e.g. one id per lesion, whose CC and MLO projections are both cases) every group stays within one fold,
    so correlated cases do not leak between fitting and scoring. Isotonic regression is a candidate only with
    at least ``min_isotonic_groups`` independent groups (cases without ``groups``): on smaller calibration
    sets it overfits where Platt scaling does not (Niculescu-Mizil & Caruana 2005), and cross-validation on a
    few hundred cases is too noisy to show it.
    """
    x, y = _as_fit_data(logits, truth)
    independent = len(set(repr(g) for g in groups)) if groups is not None else len(y)
    if independent < min_isotonic_groups:
        methods = [m for m in methods if m != "isotonic"]
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    if groups is None:
        for label in (0, 1):
            idx = np.flatnonzero(y == label)
            rng.shuffle(idx)
            fold_of[idx] = np.arange(len(idx)) % folds
    else:
        keys = [repr(g) for g in groups]
        if len(keys) != len(y):
            raise ValueError(f"{len(keys)} groups for {len(y)} cases")
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        group_of = np.array([index[k] for k in keys])
        # Stratify groups by whether they hold a positive case, then deal them out round-robin.
        positive = np.zeros(len(index), bool)
        positive[group_of[y == 1]] = True
        group_fold = np.empty(len(index), dtype=int)
        for label in (False, True):
            idx = np.flatnonzero(positive == label)
            rng.shuffle(idx)
            group_fold[idx] = np.arange(len(idx)) % folds
        fold_of = group_fold[group_of]
    scores: dict[str, float] = {}
    for method in methods:
        predicted = np.empty(len(y))
        for k in range(folds):
            test = fold_of == k
            train = ~test
            if not test.any():
                continue
            if len(np.unique(y[train])) < 2:
                predicted[test] = sigmoid(x[test])
                continue
            predicted[test] = fit_calibrator(method, x[train], y[train])(x[test])
        scores[method] = log_loss(predicted, y)
    best = min(
        scores, key=lambda m: (scores[m], CALIBRATION_METHODS.index(m) if m in CALIBRATION_METHODS else 9)
    )
    return best, {k: round(v, 5) for k, v in scores.items()}


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
