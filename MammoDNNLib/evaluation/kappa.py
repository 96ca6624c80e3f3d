"""Cohen's kappa (unweighted, linear or quadratic weights) with large-sample standard errors.

Standard errors follow Fleiss, Cohen and Everitt (1969), as SAS PROC FREQ, R's vcd and irr use them:

* ``se`` is the asymptotic SE under the alternative (the ASE of the estimate), used for the CI κ ± z·se;
* ``se0`` is the SE under H0: κ = 0, used for the test z = κ / se0 (two-sided p).

Weights are agreement weights on the category index (not on the category's numeric value, as irr's ``kappa2``
and scikit-learn's ``cohen_kappa_score`` do): linear ``1 − |i−j|/(k−1)``, quadratic ``1 − (i−j)²/(k−1)²``.
Categories are the union of both raters' labels, ordered numerically when all are numbers, in BI-RADS order when
all are BI-RADS categories, else as text (or as the caller lists them).

The strength label is Landis and Koch's (1977), with the bounds the study uses: < 0 poor, 0–0.20 slight,
0.21–0.40 fair, 0.41–0.60 moderate, 0.61–0.80 substantial, 0.81–1 almost perfect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from ..vocabulary import BIRADS_CATEGORIES

Weights = Literal["none", "linear", "quadratic"]
WEIGHTS: tuple[str, ...] = ("none", "linear", "quadratic")

LANDIS_KOCH: tuple[tuple[float, str], ...] = (
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (math.inf, "almost perfect"),
)


@dataclass(frozen=True)
class KappaResult:
    kappa: float
    se: float  # asymptotic SE of the estimate (Fleiss, Cohen & Everitt 1969)
    ci: tuple[float, float]
    se0: float  # SE under H0: kappa = 0
    z: float  # kappa / se0
    p: float  # two-sided
    label: str  # Landis-Koch strength of agreement
    weights: str
    n: int
    categories: tuple[str, ...]
    observed_agreement: float
    expected_agreement: float
    confidence: float = 0.95

    def to_dict(self) -> dict:
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "kappa": num(self.kappa),
            "se": num(self.se),
            "ci": [num(self.ci[0]), num(self.ci[1])],
            "se0": num(self.se0),
            "z": num(self.z),
            "p": num(self.p),
            "label": self.label,
            "weights": self.weights,
            "n": self.n,
            "categories": list(self.categories),
            "observed_agreement": self.observed_agreement,
            "expected_agreement": self.expected_agreement,
            "confidence": self.confidence,
        }


def landis_koch_label(kappa: float) -> str:
    """Landis & Koch (1977) strength of agreement; kappa is judged at two decimals, as tables print it."""
    if not math.isfinite(kappa):
        return "undefined"
    value = round(kappa, 2)
    if value < 0:
        return "poor"
    for upper, label in LANDIS_KOCH:
        if value <= upper:
            return label
    return "almost perfect"  # pragma: no cover - the last bound is infinite


def order_categories(labels: Sequence[str]) -> tuple[str, ...]:
    """Numeric order if every label is a number, BI-RADS order if every label is a BI-RADS category, else text."""
    distinct = sorted({str(label) for label in labels})
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        pass
    if all(label.upper() in BIRADS_CATEGORIES for label in distinct):
        return tuple(sorted(distinct, key=lambda label: BIRADS_CATEGORIES.index(label.upper())))
    return tuple(distinct)


def weight_matrix(k: int, weights: Weights) -> np.ndarray:
    """Agreement weights (1 on the diagonal) for k ordered categories."""
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; expected one of {', '.join(WEIGHTS)}")
    if weights == "none" or k == 1:
        return np.eye(k)
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    return 1.0 - (distance if weights == "linear" else distance**2)


def kappa_from_table(
    table,
    *,
    weights: Weights = "none",
    categories: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> KappaResult:
    """Kappa of a k × k contingency table (rows: rater 1, columns: rater 2, categories in order)."""
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a kappa table must be square; got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("a kappa table cannot hold negative counts")
    n = counts.sum()
    if n <= 0:
        raise ValueError("a kappa table needs at least one rated subject")
    k = counts.shape[0]
    w = weight_matrix(k, weights)
    p = counts / n
    rows = p.sum(axis=1)
    cols = p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(rows, cols)).sum())
    names = tuple(categories) if categories is not None else tuple(str(i + 1) for i in range(k))
    if math.isclose(pe, 1.0):
        # Both raters used one and the same category: chance agreement is total and kappa is undefined.
        nan = math.nan
        return KappaResult(nan, nan, (nan, nan), nan, nan, nan, "undefined", weights, int(n), names, po, pe,
                           confidence)
    kappa = (po - pe) / (1.0 - pe)
    w_row = w @ cols  # w̄_i. = Σ_j p_.j w_ij
    w_col = rows @ w  # w̄_.j = Σ_i p_i. w_ij
    spread = np.add.outer(w_row, w_col)
    var = ((p * (w - spread * (1.0 - kappa)) ** 2).sum() - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    var0 = ((np.outer(rows, cols) * (w - spread) ** 2).sum() - pe**2) / (n * (1.0 - pe) ** 2)
    se = math.sqrt(max(float(var), 0.0))
    se0 = math.sqrt(max(float(var0), 0.0))
    half = float(stats.norm.ppf(0.5 + confidence / 2.0)) * se
    if se0 > 0:
        z = kappa / se0
        pval = float(2.0 * stats.norm.sf(abs(z)))
    else:
        z, pval = math.nan, math.nan
    return KappaResult(
        kappa=float(kappa), se=se, ci=(kappa - half, kappa + half), se0=se0, z=float(z), p=pval,
        label=landis_koch_label(kappa), weights=weights, n=round(n), categories=names,
        observed_agreement=po, expected_agreement=pe, confidence=confidence,
    )


def contingency_table(
    rater_a: Sequence, rater_b: Sequence, categories: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cross-tabulate two raters' labels over the ordered categories (the union of both, unless given)."""
    a = [str(x) for x in rater_a]
    b = [str(x) for x in rater_b]
    if len(a) != len(b):
        raise ValueError(f"the raters rated different numbers of subjects ({len(a)} and {len(b)})")
    if not a:
        raise ValueError("no subjects to compare")
    cats = tuple(categories) if categories is not None else order_categories(a + b)
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({x for x in a + b if x not in index})
    if unknown:
        raise ValueError(f"labels {', '.join(map(repr, unknown))} are not among the categories {list(cats)}")
    table = np.zeros((len(cats), len(cats)))
    np.add.at(table, ([index[x] for x in a], [index[x] for x in b]), 1.0)
    return table, cats


def cohen_kappa(
    rater_a: Sequence,
    rater_b: Sequence,
    *,
    weights: Weights = "none",
    categories: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> KappaResult:
    """Cohen's kappa between two raters' labels for the same subjects (in the same order)."""
    table, cats = contingency_table(rater_a, rater_b, categories)
    return kappa_from_table(table, weights=weights, categories=cats, confidence=confidence)
