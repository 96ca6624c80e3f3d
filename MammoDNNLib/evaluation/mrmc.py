"""Multi-reader multi-case (MRMC) analysis of empirical AUCs by the Obuchowski-Rockette (OR) method.

This is the analysis of the field's standard tools (the Iowa OR-DBM MRMC program, R's RJafroc and MRMCaov, FDA's
iMRMC) for a fully crossed study: every reader reads every case under every treatment (modality).

* Figure of merit: each reader's empirical (trapezoidal, Wilcoxon) AUC under each treatment.
* Error covariance of the t·r AUCs, by case resampling: ``jackknife`` (leave one case out, covariance scaled by
  (N−1)/N, as Iowa/RJafroc/MRMCaov), ``delong`` (DeLong's structural components, S10/m + S01/n), or
  ``bootstrap`` (cases resampled within truth strata, sample covariance of the replicate AUCs).
  Var is the mean error variance; Cov1 the mean covariance between treatments for the same reader, Cov2 between
  readers for the same treatment, Cov3 between different readers and different treatments.
* Random readers and cases (RRRC): F = MS(T) / [MS(T×R) + r·max(Cov2 − Cov3, 0)] with Hillis' (2007)
  denominator degrees of freedom ddf_H = [MS(T×R) + r·max(Cov2 − Cov3, 0)]² / {MS(T×R)² / [(t−1)(r−1)]}.
  When Cov2 < Cov3 (the Franken data), the max() truncates and ddf_H = (t−1)(r−1).
* Fixed readers, random cases (FRRC): χ² = (t−1)·MS(T) / [Var − Cov1 + (r−1)·max(Cov2 − Cov3, 0)] on t−1 df,
  normal-theory CIs; and each reader's own treatment difference with SE √(2(Var_j − Cov1_j)).
* Random readers, fixed cases (RRFC): the treatment × reader ANOVA F = MS(T)/MS(T×R) on (t−1, (t−1)(r−1)) df.
* OR variance components: σ²_TR = MS(T×R) − Var + Cov1 + Cov2 − Cov3 and
  σ²_R = [MS(R) − σ²_TR − Var − (t−1)Cov1 + Cov2 + (t−1)Cov3] / t (ANOVA estimates; they can be negative).

Treatment differences are "first − second" in the treatment order given (or the natural order of the labels).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

from ..errors import InputError
from .roc import delong_placements

CovarianceMethod = Literal["jackknife", "delong", "bootstrap"]
COVARIANCE_METHODS: tuple[str, ...] = ("jackknife", "delong", "bootstrap")


@dataclass(frozen=True)
class MrmcData:
    """A fully crossed reader study: ``scores[treatment, reader, case]`` and one truth per case."""

    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray  # (c,) bool
    scores: np.ndarray  # (t, r, c) float

    def __post_init__(self) -> None:
        t, r, c = len(self.treatments), len(self.readers), len(self.cases)
        if self.scores.shape != (t, r, c):
            raise ValueError(f"scores must have shape (treatments, readers, cases) = {(t, r, c)}")
        if self.truth.shape != (c,):
            raise ValueError("truth must hold one value per case")


@dataclass(frozen=True)
class ErrorCovariance:
    """OR error variance and covariances, overall and per treatment / per reader."""

    method: str
    var: float
    cov1: float
    cov2: float
    cov3: float
    matrix: np.ndarray = field(repr=False, compare=False)  # (t·r) × (t·r), index i·r + j
    var_by_treatment: tuple[float, ...] = ()
    cov2_by_treatment: tuple[float, ...] = ()
    var_by_reader: tuple[float, ...] = ()
    cov1_by_reader: tuple[float, ...] = ()


@dataclass(frozen=True)
class VarianceComponents:
    var_r: float
    var_tr: float
    cov1: float
    cov2: float
    cov3: float
    var_error: float

    def correlations(self) -> dict[str, float]:
        def ratio(c: float) -> float:
            return c / self.var_error if self.var_error > 0 else math.nan

        return {"r1": ratio(self.cov1), "r2": ratio(self.cov2), "r3": ratio(self.cov3)}

    def to_dict(self) -> dict:
        return {
            "var_r": self.var_r,
            "var_tr": self.var_tr,
            "cov1": self.cov1,
            "cov2": self.cov2,
            "cov3": self.cov3,
            "var_error": self.var_error,
            "correlations": {k: _num(v) for k, v in self.correlations().items()},
        }


@dataclass(frozen=True)
class Difference:
    """One treatment difference (a − b) with its SE, test statistic and CI under one analysis."""

    a: str
    b: str
    estimate: float
    se: float
    df: float | None  # None: normal theory (fixed readers)
    statistic: float  # t (random readers) or z (fixed readers)
    p: float
    ci: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "estimate": self.estimate,
            "se": self.se,
            "df": _num(self.df),
            "statistic": _num(self.statistic),
            "p": _num(self.p),
            "ci": [_num(self.ci[0]), _num(self.ci[1])],
        }


@dataclass(frozen=True)
class SingleTreatment:
    """A treatment's reader-averaged AUC with its SE, df and CI under one analysis (its own data only)."""

    treatment: str
    auc: float
    se: float
    df: float | None
    ci: tuple[float, float]

    def to_dict(self) -> dict:
        return {"auc": self.auc, "se": self.se, "df": _num(self.df), "ci": [_num(self.ci[0]), _num(self.ci[1])]}


@dataclass(frozen=True)
class MrmcTest:
    """The global test of equal treatment AUCs and the pairwise differences under one set of random factors."""

    analysis: str  # "random readers and random cases", ...
    f: float
    df1: float
    df2: float | None  # None: infinite (fixed readers: chi-square / (t−1))
    p: float
    difference: Difference | None  # the first pair (the only one with two treatments)
    differences: tuple[Difference, ...]
    treatments: tuple[SingleTreatment, ...]
    denominator: float  # the F test's error term
    chi2: float | None = None  # fixed readers: the chi-square statistic, (t−1)·F

    @property
    def ci(self) -> tuple[float, float] | None:
        return None if self.difference is None else self.difference.ci

    def to_dict(self) -> dict:
        out = {
            "analysis": self.analysis,
            "f": _num(self.f),
            "df1": self.df1,
            "df2": _num(self.df2),
            "p": _num(self.p),
            "ci": None if self.ci is None else [_num(self.ci[0]), _num(self.ci[1])],
            "se": None if self.difference is None else self.difference.se,
            "denominator": self.denominator,
            "differences": [d.to_dict() for d in self.differences],
            "treatments": {s.treatment: s.to_dict() for s in self.treatments},
        }
        if self.chi2 is not None:
            out["chi2"] = _num(self.chi2)
        return out


@dataclass(frozen=True)
class MrmcResult:
    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    n_positive: int
    n_negative: int
    reader_aucs: np.ndarray = field(repr=False, compare=False)  # (t, r)
    treatment_aucs: tuple[float, ...] = ()
    difference: float = math.nan  # first − second treatment, reader-averaged
    ms_t: float = math.nan
    ms_r: float = math.nan
    ms_tr: float = math.nan
    ms_r_by_treatment: tuple[float, ...] = ()
    covariance: ErrorCovariance | None = None
    components: VarianceComponents | None = None
    random: MrmcTest | None = None  # None when there is a single reader
    fixed_readers: MrmcTest | None = None
    fixed_cases: MrmcTest | None = None  # None when there is a single reader
    per_reader: tuple[Difference, ...] = ()  # fixed readers: each reader's own difference (first pair)

    def to_dict(self) -> dict:
        return {
            "treatments": {
                t: {
                    "auc": self.treatment_aucs[i],
                    "reader_aucs": {r: float(self.reader_aucs[i, j]) for j, r in enumerate(self.readers)},
                }
                for i, t in enumerate(self.treatments)
            },
            "difference": self.difference,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "anova": {
                "ms_t": self.ms_t,
                "ms_r": self.ms_r,
                "ms_tr": self.ms_tr,
                "ms_r_by_treatment": dict(zip(self.treatments, self.ms_r_by_treatment)),
            },
            "covariance_method": None if self.covariance is None else self.covariance.method,
            "random": None if self.random is None else self.random.to_dict(),
            "fixed_readers": None if self.fixed_readers is None else self.fixed_readers.to_dict(),
            "fixed_cases": None if self.fixed_cases is None else self.fixed_cases.to_dict(),
            "per_reader": [dict(d.to_dict(), reader=r) for r, d in zip(self.readers, self.per_reader)],
            "components": None if self.components is None else self.components.to_dict(),
        }


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------- input


def _order(labels: Sequence[str], given: Sequence[str] | None, what: str, source: str | None) -> tuple[str, ...]:
    distinct = set(labels)
    if given is not None:
        given = tuple(given)
        unknown = [g for g in given if g not in distinct]
        if unknown:
            raise InputError(source, f"{what} {', '.join(map(repr, unknown))} not found in the table")
        rest = sorted(distinct - set(given))
        return given + tuple(rest)
    ordered = sorted(distinct)
    try:
        return tuple(sorted(ordered, key=float))
    except ValueError:
        return tuple(ordered)


def mrmc_data(
    reader: Sequence[str],
    treatment: Sequence[str],
    case: Sequence[str],
    truth: Sequence[bool],
    score: Sequence[float],
    *,
    treatments: Sequence[str] | None = None,
    source: str | None = None,
    lines: Sequence[int] | None = None,
) -> MrmcData:
    """Arrange long-format rows (one per reader × treatment × case) into a fully crossed :class:`MrmcData`.

    Raises :class:`InputError` (naming ``source`` and the offending lines) for duplicated readings, readings
    missing from the crossed design, a case whose truth differs between rows, or a single truth class.
    """
    n = len(reader)
    if not (len(treatment) == len(case) == len(truth) == len(score) == n):
        raise ValueError("reader, treatment, case, truth and score must have equal lengths")
    if n == 0:
        raise InputError(source, "no readings")
    line = (lambda i: lines[i]) if lines is not None else (lambda i: i + 1)
    reader = [str(x) for x in reader]
    treatment = [str(x) for x in treatment]
    case = [str(x) for x in case]
    t_order = _order(treatment, treatments, "treatment", source)
    r_order = _order(reader, None, "reader", source)
    c_order = _order(case, None, "case", source)
    if len(t_order) < 2:
        raise InputError(source, f"MRMC analysis needs at least two treatments; found only {t_order[0]!r}")
    ti = {v: i for i, v in enumerate(t_order)}
    ri = {v: i for i, v in enumerate(r_order)}
    ci = {v: i for i, v in enumerate(c_order)}
    scores = np.full((len(t_order), len(r_order), len(c_order)), np.nan)
    seen: dict[tuple[int, int, int], int] = {}
    case_truth: dict[int, tuple[bool, int]] = {}
    for k in range(n):
        key = (ti[treatment[k]], ri[reader[k]], ci[case[k]])
        if key in seen:
            raise InputError(
                source,
                f"reader {reader[k]!r}, treatment {treatment[k]!r}, case {case[k]!r} is read twice "
                f"(lines {line(seen[key])} and {line(k)})",
            )
        seen[key] = k
        value = float(score[k])
        if not math.isfinite(value):
            raise InputError(source, f"the score at line {line(k)} is not a finite number")
        scores[key] = value
        c = key[2]
        label = bool(truth[k])
        if c in case_truth and case_truth[c][0] != label:
            raise InputError(
                source,
                f"case {case[k]!r} has a different truth at line {line(k)} than at line {line(case_truth[c][1])}",
            )
        case_truth.setdefault(c, (label, k))
    missing = np.argwhere(np.isnan(scores))
    if missing.size:
        examples = ", ".join(
            f"(reader {r_order[j]!r}, treatment {t_order[i]!r}, case {c_order[c]!r})" for i, j, c in missing[:3]
        )
        raise InputError(
            source,
            f"the design is not fully crossed: {len(missing)} reading(s) missing (unpaired rows), e.g. {examples}; "
            "every reader must read every case under every treatment",
        )
    truth_arr = np.array([case_truth[c][0] for c in range(len(c_order))], dtype=bool)
    if truth_arr.all() or not truth_arr.any():
        raise InputError(source, "all cases have the same truth; MRMC ROC analysis needs both classes")
    return MrmcData(t_order, r_order, c_order, truth_arr, scores)


# ------------------------------------------------------------------------------------------- covariances


def _jackknife_covariance(data: MrmcData) -> np.ndarray:
    t, r, c = data.scores.shape
    placements = delong_placements(data.truth, data.scores.reshape(t * r, c))
    m, n = placements.n_positive, placements.n_negative
    theta = placements.aucs[:, None]
    # Leaving out one case changes the AUC through that case's placement only.
    without_pos = (m * theta - placements.positive) / (m - 1)
    without_neg = (n * theta - placements.negative) / (n - 1)
    pseudo = np.concatenate([without_pos, without_neg], axis=1)  # (t·r, N)
    total = m + n
    centred = pseudo - pseudo.mean(axis=1, keepdims=True)
    return (total - 1) / total * centred @ centred.T


def _delong_covariance(data: MrmcData) -> np.ndarray:
    t, r, c = data.scores.shape
    return delong_placements(data.truth, data.scores.reshape(t * r, c)).covariance()


def _bootstrap_covariance(data: MrmcData, n_bootstrap: int, seed: int) -> np.ndarray:
    """Covariance of the AUCs over case bootstraps that keep the numbers of positive and negative cases."""
    t, r, c = data.scores.shape
    scores = data.scores.reshape(t * r, c)
    pos = scores[:, data.truth]
    neg = scores[:, ~data.truth]
    m, n = pos.shape[1], neg.shape[1]
    rng = np.random.default_rng(seed)
    w_pos = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(n_bootstrap)]).astype(float)
    w_neg = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_bootstrap)]).astype(float)
    aucs = np.empty((n_bootstrap, t * r))
    for k in range(t * r):
        order = np.argsort(neg[k], kind="stable")
        sorted_neg = neg[k][order]
        below = np.searchsorted(sorted_neg, pos[k], side="left")
        upto = np.searchsorted(sorted_neg, pos[k], side="right")
        cw = np.concatenate([np.zeros((n_bootstrap, 1)), np.cumsum(w_neg[:, order], axis=1)], axis=1)
        wins = cw[:, below] + 0.5 * (cw[:, upto] - cw[:, below])  # (B, m): weighted negatives each positive beats
        aucs[:, k] = (w_pos * wins).sum(axis=1) / (m * n)
    return np.atleast_2d(np.cov(aucs, rowvar=False, ddof=1))


def error_covariance(
    data: MrmcData, method: CovarianceMethod = "jackknife", *, n_bootstrap: int = 2000, seed: int = 0
) -> ErrorCovariance:
    """OR error variance and covariances of the reader × treatment AUCs of a crossed study."""
    if method == "jackknife":
        matrix = _jackknife_covariance(data)
    elif method == "delong":
        matrix = _delong_covariance(data)
    elif method == "bootstrap":
        if n_bootstrap < 2:
            raise ValueError("bootstrap covariance needs at least two replicates")
        matrix = _bootstrap_covariance(data, n_bootstrap, seed)
    else:
        raise ValueError(f"unknown covariance method {method!r}; expected one of {', '.join(COVARIANCE_METHODS)}")
    t, r = len(data.treatments), len(data.readers)
    block = matrix.reshape(t, r, t, r)
    same_t = np.equal.outer(np.arange(t), np.arange(t))[:, None, :, None]
    same_r = np.equal.outer(np.arange(r), np.arange(r))[None, :, None, :]

    def mean_of(mask: np.ndarray) -> float:
        mask = np.broadcast_to(mask, block.shape)
        return float(block[mask].mean()) if mask.any() else 0.0

    var = mean_of(same_t & same_r)
    cov1 = mean_of(~same_t & same_r)
    cov2 = mean_of(same_t & ~same_r)
    cov3 = mean_of(~same_t & ~same_r)
    var_t, cov2_t = [], []
    for i in range(t):
        sub = block[i, :, i, :]
        var_t.append(float(np.diag(sub).mean()))
        off = sub[~np.eye(r, dtype=bool)]
        cov2_t.append(float(off.mean()) if off.size else 0.0)
    var_r, cov1_r = [], []
    for j in range(r):
        sub = block[:, j, :, j]
        var_r.append(float(np.diag(sub).mean()))
        cov1_r.append(float(sub[~np.eye(t, dtype=bool)].mean()))
    return ErrorCovariance(method, var, cov1, cov2, cov3, matrix, tuple(var_t), tuple(cov2_t), tuple(var_r),
                           tuple(cov1_r))


def reader_aucs(data: MrmcData) -> np.ndarray:
    """Empirical AUC of every reader under every treatment, shape (t, r)."""
    t, r, c = data.scores.shape
    return delong_placements(data.truth, data.scores.reshape(t * r, c)).aucs.reshape(t, r)


# ------------------------------------------------------------------------------------------------ analysis


def _t_ci(estimate: float, se: float, df: float | None, confidence: float) -> tuple[float, float]:
    if not math.isfinite(se):
        return (math.nan, math.nan)
    q = stats.norm.ppf(0.5 + confidence / 2) if df is None or not math.isfinite(df) else stats.t.ppf(
        0.5 + confidence / 2, df
    )
    return (estimate - float(q) * se, estimate + float(q) * se)


def _two_sided(statistic: float, df: float | None) -> float:
    if not math.isfinite(statistic):
        return 0.0 if math.isinf(statistic) else math.nan
    if df is None or not math.isfinite(df):
        return float(2 * stats.norm.sf(abs(statistic)))
    return float(2 * stats.t.sf(abs(statistic), df))


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.nan if num == 0 else math.inf


def analyze_mrmc(
    data: MrmcData,
    *,
    covariance: CovarianceMethod = "jackknife",
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> MrmcResult:
    """Obuchowski-Rockette analysis with Hillis' ddf: random readers & cases, fixed readers, fixed cases."""
    theta = reader_aucs(data)
    t, r = theta.shape
    cov = error_covariance(data, covariance, n_bootstrap=n_bootstrap, seed=seed)
    mean_t = theta.mean(axis=1)
    mean_r = theta.mean(axis=0)
    grand = float(theta.mean())
    ms_t = r * float(((mean_t - grand) ** 2).sum()) / (t - 1)
    ms_r = t * float(((mean_r - grand) ** 2).sum()) / (r - 1) if r > 1 else math.nan
    resid = theta - mean_t[:, None] - mean_r[None, :] + grand
    ms_tr = float((resid**2).sum()) / ((t - 1) * (r - 1)) if r > 1 else math.nan
    ms_r_t = tuple(float(theta[i].var(ddof=1)) if r > 1 else math.nan for i in range(t))
    pairs = list(itertools.combinations(range(t), 2))
    names = data.treatments
    cov_excess = max(cov.cov2 - cov.cov3, 0.0)

    # ---- random readers, random cases (Hillis 2007 ddf)
    random = fixed_cases = None
    components = None
    if r > 1:
        denominator = ms_tr + r * cov_excess
        f = _ratio(ms_t, denominator)
        df1 = float(t - 1)
        ddf = denominator**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > 0 else math.inf
        p = float(stats.f.sf(f, df1, ddf)) if math.isfinite(f) else (0.0 if math.isinf(f) else math.nan)
        se_diff = math.sqrt(2.0 / r * denominator)
        diffs = tuple(_difference(names, a, b, mean_t, se_diff, ddf, confidence) for a, b in pairs)
        singles = []
        for i in range(t):
            term = ms_r_t[i] + r * max(cov.cov2_by_treatment[i], 0.0)
            se = math.sqrt(term / r)
            df = term**2 / (ms_r_t[i] ** 2 / (r - 1)) if ms_r_t[i] > 0 else math.inf
            singles.append(SingleTreatment(names[i], float(mean_t[i]), se, df, _t_ci(float(mean_t[i]), se, df,
                                                                                      confidence)))
        random = MrmcTest("random readers and random cases", f, df1, ddf, p, diffs[0], diffs, tuple(singles),
                          denominator)

        # ---- random readers, fixed cases: the treatment × reader ANOVA of AUCs
        f_rc = _ratio(ms_t, ms_tr)
        ddf_rc = float((t - 1) * (r - 1))
        p_rc = float(stats.f.sf(f_rc, t - 1, ddf_rc)) if math.isfinite(f_rc) else (0.0 if math.isinf(f_rc) else
                                                                                    math.nan)
        se_rc = math.sqrt(2.0 / r * ms_tr)
        diffs_rc = tuple(_difference(names, a, b, mean_t, se_rc, ddf_rc, confidence) for a, b in pairs)
        singles_rc = tuple(
            SingleTreatment(names[i], float(mean_t[i]), math.sqrt(ms_r_t[i] / r), float(r - 1),
                            _t_ci(float(mean_t[i]), math.sqrt(ms_r_t[i] / r), float(r - 1), confidence))
            for i in range(t)
        )
        fixed_cases = MrmcTest("random readers and fixed cases", f_rc, float(t - 1), ddf_rc, p_rc, diffs_rc[0],
                               diffs_rc, singles_rc, ms_tr)

        var_tr = ms_tr - cov.var + cov.cov1 + cov.cov2 - cov.cov3
        var_r = (ms_r - var_tr - cov.var - (t - 1) * cov.cov1 + cov.cov2 + (t - 1) * cov.cov3) / t
        components = VarianceComponents(var_r, var_tr, cov.cov1, cov.cov2, cov.cov3, cov.var)

    # ---- fixed readers, random cases (normal theory)
    denominator_fr = cov.var - cov.cov1 + (r - 1) * cov_excess
    chi2 = _ratio((t - 1) * ms_t, denominator_fr)
    p_fr = float(stats.chi2.sf(chi2, t - 1)) if math.isfinite(chi2) else (0.0 if math.isinf(chi2) else math.nan)
    se_fr = math.sqrt(max(2.0 / r * denominator_fr, 0.0))
    diffs_fr = tuple(_difference(names, a, b, mean_t, se_fr, None, confidence) for a, b in pairs)
    singles_fr = []
    for i in range(t):
        se = math.sqrt(max((cov.var_by_treatment[i] + (r - 1) * max(cov.cov2_by_treatment[i], 0.0)) / r, 0.0))
        singles_fr.append(SingleTreatment(names[i], float(mean_t[i]), se, None,
                                          _t_ci(float(mean_t[i]), se, None, confidence)))
    fixed_readers = MrmcTest("fixed readers and random cases", chi2 / (t - 1), float(t - 1), None, p_fr,
                             diffs_fr[0], diffs_fr, tuple(singles_fr), denominator_fr, chi2=chi2)
    per_reader = []
    for j in range(r):
        se = math.sqrt(max(2.0 * (cov.var_by_reader[j] - cov.cov1_by_reader[j]), 0.0))
        per_reader.append(_difference(names, 0, 1, theta[:, j], se, None, confidence))

    return MrmcResult(
        treatments=names,
        readers=data.readers,
        n_positive=int(data.truth.sum()),
        n_negative=int((~data.truth).sum()),
        reader_aucs=theta,
        treatment_aucs=tuple(float(x) for x in mean_t),
        difference=float(mean_t[0] - mean_t[1]),
        ms_t=ms_t,
        ms_r=ms_r,
        ms_tr=ms_tr,
        ms_r_by_treatment=ms_r_t,
        covariance=cov,
        components=components,
        random=random,
        fixed_readers=fixed_readers,
        fixed_cases=fixed_cases,
        per_reader=tuple(per_reader),
    )


def _difference(
    names: Sequence[str], a: int, b: int, means: np.ndarray, se: float, df: float | None, confidence: float
) -> Difference:
    estimate = float(means[a] - means[b])
    statistic = _ratio(estimate, se) if se > 0 else (0.0 if estimate == 0 else math.copysign(math.inf, estimate))
    return Difference(names[a], names[b], estimate, se, df, statistic, _two_sided(statistic, df),
                      _t_ci(estimate, se, df, confidence))
