"""The study's analysis of a reader study: Tables 1–4 and the MRMC analysis.

* Table 1 — per finding type and reader group × modality, readers pooled (each reading is one observation, as the
  study did): AUC with 95 % CI, SE, p against AUC 0.5, and the Youden cut-off with its sensitivity and
  specificity (:mod:`MammoDNNLib.evaluation.roc` conventions).
* Table 2 — DeLong tests between pooled curves: within a group, unaided vs aided is paired (the same readers read
  the same cases; readings are matched by reader and case); between groups (same modality) the readings come from
  different readers, so the test is pROC's unpaired DeLong test. For junior/senior groups these are exactly the
  study's J_noAI vs J_AI, S_AI vs J_AI, S_noAI vs J_noAI and S_noAI vs S_AI.
* Table 3 — reading times per group: median (min–max) without and with the aid, the paired Wilcoxon signed-rank
  test (readings matched by reader and case) and Shapiro–Wilk on the paired differences.
* Table 4 — Cohen's kappa between every two readers of a group, without and with the aid, on BI-RADS and on each
  type's presence call, with the Landis–Koch label.
* MRMC — Obuchowski–Rockette analysis of unaided vs aided per finding type, for all readers and for each group
  with at least two readers (the field's standard, which models reader and case variability that pooling
  ignores).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from ..evaluation.kappa import WEIGHTS, KappaResult, cohen_kappa
from ..evaluation.mrmc import COVARIANCE_METHODS, MrmcData, MrmcResult, analyze_mrmc
from ..evaluation.roc import CI_METHODS, RocComparison, RocCurve, delong_test, delong_unpaired_test, roc_curve
from ..evaluation.wilcoxon import ShapiroResult, Summary, summarize, wilcoxon_signed_rank
from .format import MODALITIES, ReaderStudy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisConfig:
    confidence: float = 0.95
    ci_method: str = "delong"  # or "binomial-exact"
    mrmc_covariance: str = "jackknife"  # or "delong", "bootstrap"
    kappa_weights: str = "none"  # for BI-RADS; presence calls are binary
    n_bootstrap: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method must be one of {', '.join(CI_METHODS)}")
        if self.mrmc_covariance not in COVARIANCE_METHODS:
            raise ValueError(f"mrmc_covariance must be one of {', '.join(COVARIANCE_METHODS)}")
        if self.kappa_weights not in WEIGHTS:
            raise ValueError(f"kappa_weights must be one of {', '.join(WEIGHTS)}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError("confidence must be in (0.5, 1)")


@dataclass(frozen=True)
class Table1Row:
    finding_type: str
    group: str
    modality: str
    label: str  # J_noAI, ...
    n_readers: int
    curve: RocCurve = field(repr=False)

    def to_dict(self) -> dict:
        c = self.curve
        return {
            "finding_type": self.finding_type, "group": self.group, "modality": self.modality, "label": self.label,
            "n_readers": self.n_readers, "n_positive": c.n_positive, "n_negative": c.n_negative, "auc": c.auc,
            "ci_lower": c.ci[0], "ci_upper": c.ci[1], "se": c.se, "p_vs_half": c.p_vs_half,
            "sensitivity": c.youden.sensitivity, "specificity": c.youden.specificity,
            "cutoff": _finite(c.youden.threshold), "cutoff_min_positive_score": _finite(c.youden.min_positive_score),
        }


@dataclass(frozen=True)
class Table2Row:
    finding_type: str
    comparison: RocComparison  # a and b are the study labels (J_noAI, ...)

    def to_dict(self) -> dict:
        c = self.comparison
        return {
            "finding_type": self.finding_type, "a": c.a, "b": c.b, "auc_a": c.auc_a, "auc_b": c.auc_b,
            "difference": c.difference, "statistic": _finite(c.statistic), "p": c.p,
            "test": "paired DeLong (Z)" if c.paired else "unpaired DeLong (D)", "df": c.df,
            "ci_lower": None if c.ci is None else c.ci[0], "ci_upper": None if c.ci is None else c.ci[1],
        }


@dataclass(frozen=True)
class Table3Row:
    group: str  # a group name or "all"
    n_readings: int
    unaided: Summary
    aided: Summary
    statistic: float  # Wilcoxon V (unaided − aided)
    p: float
    method: str
    shapiro: ShapiroResult | None

    def to_dict(self) -> dict:
        return {
            "group": self.group, "n_readings": self.n_readings,
            "unaided_median": self.unaided.median, "unaided_min": self.unaided.min, "unaided_max": self.unaided.max,
            "aided_median": self.aided.median, "aided_min": self.aided.min, "aided_max": self.aided.max,
            "wilcoxon_v": self.statistic, "p": self.p, "method": self.method,
            "shapiro_w": None if self.shapiro is None else self.shapiro.w,
            "shapiro_p": None if self.shapiro is None else self.shapiro.p,
        }


@dataclass(frozen=True)
class Table4Row:
    group: str
    modality: str
    label: str
    item: str  # "birads" or a finding type (its presence call)
    reader_a: str
    reader_b: str
    result: KappaResult

    def to_dict(self) -> dict:
        k = self.result
        return {
            "group": self.group, "modality": self.modality, "label": self.label, "item": self.item,
            "reader_a": self.reader_a, "reader_b": self.reader_b, "n": k.n, "weights": k.weights,
            "kappa": _finite(k.kappa), "se": _finite(k.se), "ci_lower": _finite(k.ci[0]),
            "ci_upper": _finite(k.ci[1]), "z": _finite(k.z), "p": _finite(k.p), "strength": k.label,
        }


@dataclass(frozen=True)
class MrmcRow:
    finding_type: str
    readers: str  # "all" or a group name
    result: MrmcResult

    def to_dict(self) -> dict:
        return {"finding_type": self.finding_type, "readers": self.readers, **self.result.to_dict()}


@dataclass(frozen=True)
class ReaderStudyAnalysis:
    config: AnalysisConfig
    readers: dict[str, list[str]]  # group -> readers
    n_cases: int
    positives: dict[str, int]  # type -> positive cases
    score_source: dict[str, str]
    table1: tuple[Table1Row, ...]
    table2: tuple[Table2Row, ...]
    table3: tuple[Table3Row, ...]
    table4: tuple[Table4Row, ...]
    mrmc: tuple[MrmcRow, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "config": self.config.__dict__,
            "readers": self.readers,
            "n_cases": self.n_cases,
            "positives": self.positives,
            "score_source": self.score_source,
            "table1": [r.to_dict() for r in self.table1],
            "table2": [r.to_dict() for r in self.table2],
            "table3": [r.to_dict() for r in self.table3],
            "table4": [r.to_dict() for r in self.table4],
            "mrmc": [r.to_dict() for r in self.mrmc],
            "notes": list(self.notes),
        }


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    return float(value) if math.isfinite(value) else None


def _pooled(study: ReaderStudy, kind: str, group: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth of every reading by the group's readers in a modality, ordered by (reader, case)."""
    i = MODALITIES.index(modality)
    readers = study.readers_in(group)
    scores = study.scores[kind][i, readers, :].reshape(-1)
    truth = np.tile(study.truth[kind], len(readers))
    return scores, truth


def analyze_reader_study(study: ReaderStudy, config: AnalysisConfig = AnalysisConfig()) -> ReaderStudyAnalysis:
    notes: list[str] = []
    table1: list[Table1Row] = []
    table2: list[Table2Row] = []
    for kind in study.finding_types:
        for group in study.groups:
            for modality in MODALITIES:
                scores, truth = _pooled(study, kind, group, modality)
                curve = roc_curve(truth, scores, ci_method=config.ci_method, confidence=config.confidence)
                table1.append(Table1Row(kind, group, modality, study.label(group, modality),
                                        len(study.readers_in(group)), curve))
        # The study's order: J_noAI vs J_AI, S_AI vs J_AI, S_noAI vs J_noAI, S_noAI vs S_AI.
        within = []
        for group in study.groups:  # within a group: unaided vs aided, paired by reader and case
            a, truth = _pooled(study, kind, group, "unaided")
            b, _ = _pooled(study, kind, group, "aided")
            names = (study.label(group, "unaided"), study.label(group, "aided"))
            within.append(Table2Row(kind, delong_test(truth, a, b, names=names, confidence=config.confidence)))
        between = []
        for modality in reversed(MODALITIES):  # between groups: unpaired (different readers)
            for g1, g2 in itertools.combinations(reversed(study.groups), 2):
                a, ta = _pooled(study, kind, g1, modality)
                b, tb = _pooled(study, kind, g2, modality)
                names = (study.label(g1, modality), study.label(g2, modality))
                between.append(Table2Row(kind, delong_unpaired_test(ta, a, tb, b, names=names)))
        table2 += within[:1] + between + within[1:]
        if study.score_source[kind] == "present":
            notes.append(f"{kind}: ROC from the binary presence calls (no scores in the table).")

    table3: list[Table3Row] = []
    if study.time_s is not None:
        scopes = [(g, study.readers_in(g)) for g in study.groups]
        if len(study.groups) > 1:
            scopes.append(("all", list(range(len(study.readers)))))
        for name, readers in scopes:
            x = study.time_s[0, readers, :].reshape(-1)
            y = study.time_s[1, readers, :].reshape(-1)
            try:
                w = wilcoxon_signed_rank(x, y)
                table3.append(Table3Row(name, int(x.size), w.x, w.y, w.statistic, w.p, w.method, w.shapiro))
            except ValueError as exc:
                notes.append(f"reading times, {name}: {exc}")
                table3.append(Table3Row(name, int(x.size), summarize(x), summarize(y), math.nan, math.nan,
                                        "not computed", None))
    else:
        notes.append("No 'time_s' column: Table 3 (reading times) is omitted.")

    table4: list[Table4Row] = []
    items: list[tuple[str, np.ndarray]] = []
    if study.birads is not None:
        items.append(("birads", study.birads))
    else:
        notes.append("No 'birads' column: BI-RADS agreement is omitted from Table 4.")
    for kind in study.finding_types:
        if kind in study.present:
            items.append((kind, study.present[kind].astype(int)))
    for group in study.groups:
        readers = study.readers_in(group)
        if len(readers) < 2:
            notes.append(f"Group {group} has a single reader: no inter-reader kappa.")
            continue
        for i, modality in enumerate(MODALITIES):
            for item, values in items:
                weights = config.kappa_weights if item == "birads" else "none"
                for ja, jb in itertools.combinations(readers, 2):
                    result = cohen_kappa(values[i, ja, :].tolist(), values[i, jb, :].tolist(), weights=weights,
                                         confidence=config.confidence)
                    table4.append(Table4Row(group, modality, study.label(group, modality), item,
                                            study.readers[ja], study.readers[jb], result))

    mrmc: list[MrmcRow] = []
    scopes = [("all", list(range(len(study.readers))))]
    if len(study.groups) > 1:
        scopes += [(g, study.readers_in(g)) for g in study.groups]
    for kind in study.finding_types:
        for name, readers in scopes:
            if len(readers) < 2:
                notes.append(f"MRMC for {kind}, {name}: a single reader; only the fixed-reader analysis applies.")
            data = MrmcData(
                treatments=("aided", "unaided"),
                readers=tuple(study.readers[j] for j in readers),
                cases=study.cases,
                truth=study.truth[kind],
                scores=study.scores[kind][::-1][:, readers, :],
            )
            result = analyze_mrmc(data, covariance=config.mrmc_covariance, confidence=config.confidence,
                                  n_bootstrap=config.n_bootstrap, seed=config.seed)
            mrmc.append(MrmcRow(kind, name, result))

    return ReaderStudyAnalysis(
        config=config,
        readers={g: [study.readers[j] for j in study.readers_in(g)] for g in study.groups},
        n_cases=len(study.cases),
        positives={k: int(v.sum()) for k, v in study.truth.items()},
        score_source=dict(study.score_source),
        table1=tuple(table1),
        table2=tuple(table2),
        table3=tuple(table3),
        table4=tuple(table4),
        mrmc=tuple(mrmc),
        notes=tuple(notes),
    )
