"""Simulated reader studies with known truth (Roe & Metz 1997 style), for tests, examples and power checks.

For every finding type, case c, reader j and modality i the reader's latent suspicion is

    X = d[g(j), i] · m[type] · truth[c] + C[c] + MC[i, c] + RC[j, c] + E[i, j, c]

with independent normal case (C), modality × case (MC), reader × case (RC) and residual (E) effects whose
variances sum to one, so each reader's ROC curve is binormal with equal variances and AUC Φ(d·m/√2); the shared
case effects make readings of the same case correlated across readers and modalities, as in real studies.
``d`` is the group's separation without and with the aid (plus an optional per-reader spread), ``m`` the type's
conspicuity. Scores are reported on a 0–100 confidence scale (100·Φ(X − 1), rounded), presence is a score at or
above a threshold, BI-RADS follows the highest type score, and reading times are log-normal with reader and case
effects around each group's median without and with the aid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..vocabulary import FINDING_TYPE_KEYS
from .format import MODALITIES, ReaderStudy

# BI-RADS from the highest type score: upper bounds of each category on the 0-100 scale.
_BIRADS_BOUNDS: tuple[tuple[float, str], ...] = (
    (10.0, "1"), (30.0, "2"), (50.0, "3"), (65.0, "4A"), (80.0, "4B"), (90.0, "4C"), (math.inf, "5"),
)


@dataclass(frozen=True)
class GroupSpec:
    """One reader group: its size, its separation (d') without and with the aid, and its reading times."""

    name: str
    n_readers: int
    separation_unaided: float
    separation_aided: float
    time_median_unaided_s: float
    time_median_aided_s: float
    reader_skill_sd: float = 0.0  # spread of each reader's d' around the group's


def _default_groups() -> tuple[GroupSpec, ...]:
    return (
        GroupSpec("junior", 3, 1.1, 1.6, 95.0, 70.0),
        GroupSpec("senior", 3, 1.6, 1.9, 80.0, 62.0),
    )


@dataclass(frozen=True)
class SimulationConfig:
    n_cases: int = 120
    prevalence: dict[str, float] = field(
        default_factory=lambda: {"mass": 0.35, "calcification": 0.30, "asymmetry": 0.20, "distortion": 0.15}
    )
    conspicuity: dict[str, float] = field(
        default_factory=lambda: {"mass": 1.0, "calcification": 1.1, "asymmetry": 0.8, "distortion": 0.7}
    )
    groups: tuple[GroupSpec, ...] = field(default_factory=_default_groups)
    case_variance: float = 0.3  # σ²_C, shared by every reading of a case
    modality_case_variance: float = 0.1  # σ²_MC, shared by the readers within a modality
    reader_case_variance: float = 0.2  # σ²_RC, shared by a reader's two readings of a case
    time_sigma: float = 0.30  # log-scale SD of a single reading time
    time_reader_sigma: float = 0.15
    time_case_sigma: float = 0.20
    presence_threshold: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_cases < 4:
            raise ValueError("a simulated study needs at least 4 cases")
        residual = 1.0 - self.case_variance - self.modality_case_variance - self.reader_case_variance
        if residual <= 0 or min(self.case_variance, self.modality_case_variance, self.reader_case_variance) < 0:
            raise ValueError("variance components must be non-negative and sum to less than 1")
        unknown = set(self.prevalence) - set(FINDING_TYPE_KEYS)
        if unknown:
            raise ValueError(f"unknown finding types {sorted(unknown)}; expected {', '.join(FINDING_TYPE_KEYS)}")
        for kind, p in self.prevalence.items():
            if not 0.0 < p < 1.0:
                raise ValueError(f"prevalence of {kind} must be in (0, 1)")
        if not self.groups or any(g.n_readers < 1 for g in self.groups):
            raise ValueError("every group needs at least one reader")
        if len({g.name for g in self.groups}) != len(self.groups):
            raise ValueError("group names must differ")

    @property
    def residual_variance(self) -> float:
        return 1.0 - self.case_variance - self.modality_case_variance - self.reader_case_variance


@dataclass(frozen=True)
class SimulationTruth:
    """What the simulation knows: each reader's separation and the expected AUCs."""

    reader_separation: dict[tuple[str, str, str], float]  # (reader, modality, type) -> d'·m
    expected_auc: dict[tuple[str, str, str], float]  # (group, modality, type) -> Φ(d·m/√2) for the group's d

    def expected_reader_auc(self, reader: str, modality: str, kind: str) -> float:
        return float(stats.norm.cdf(self.reader_separation[(reader, modality, kind)] / math.sqrt(2.0)))


def _birads(max_score: np.ndarray) -> np.ndarray:
    out = np.empty(max_score.shape, dtype=object)
    lower = -math.inf
    for upper, label in _BIRADS_BOUNDS:
        out[(max_score >= lower) & (max_score < upper)] = label
        lower = upper
    return out


def simulate_reader_study(config: SimulationConfig = SimulationConfig()) -> tuple[ReaderStudy, SimulationTruth]:
    """A fully crossed study (every reader reads every case without and with the aid) and its truth."""
    rng = np.random.default_rng(config.seed)
    kinds = [k for k in FINDING_TYPE_KEYS if k in config.prevalence]
    n = config.n_cases
    cases = tuple(f"C{k + 1:03d}" for k in range(n))
    readers: list[str] = []
    reader_group: dict[str, str] = {}
    initials_differ = len({g.name[:1].upper() for g in config.groups}) == len(config.groups)
    for spec in config.groups:
        prefix = spec.name[:1].upper() if initials_differ else f"{spec.name}-"  # J1, S1 … or staff-1, senior-1 …
        for j in range(spec.n_readers):
            name = f"{prefix}{j + 1}"
            readers.append(name)
            reader_group[name] = spec.name
    spec_of = {spec.name: spec for spec in config.groups}
    r = len(readers)

    truth: dict[str, np.ndarray] = {}
    for kind in kinds:
        while True:  # both classes must occur for the ROC analysis
            flags = rng.random(n) < config.prevalence[kind]
            if 0 < flags.sum() < n:
                break
        truth[kind] = flags

    skill = {
        (reader, modality): (
            (spec_of[reader_group[reader]].separation_unaided if modality == "unaided"
             else spec_of[reader_group[reader]].separation_aided)
            + spec_of[reader_group[reader]].reader_skill_sd * rng.standard_normal()
        )
        for reader in readers
        for modality in MODALITIES
    }
    sd = {
        "c": math.sqrt(config.case_variance),
        "mc": math.sqrt(config.modality_case_variance),
        "rc": math.sqrt(config.reader_case_variance),
        "e": math.sqrt(config.residual_variance),
    }
    scores: dict[str, np.ndarray] = {}
    separation: dict[tuple[str, str, str], float] = {}
    for kind in kinds:
        m = config.conspicuity.get(kind, 1.0)
        d = np.array([[skill[(reader, modality)] * m for reader in readers] for modality in MODALITIES])  # (2, r)
        for i, modality in enumerate(MODALITIES):
            for j, reader in enumerate(readers):
                separation[(reader, modality, kind)] = float(d[i, j])
        latent = (
            d[:, :, None] * truth[kind][None, None, :]
            + sd["c"] * rng.standard_normal(n)[None, None, :]
            + sd["mc"] * rng.standard_normal((2, 1, n))
            + sd["rc"] * rng.standard_normal((1, r, n))
            + sd["e"] * rng.standard_normal((2, r, n))
        )
        scores[kind] = np.clip(np.round(100.0 * stats.norm.cdf(latent - 1.0)), 0.0, 100.0)
    present = {kind: scores[kind] >= config.presence_threshold for kind in kinds}
    highest = np.max(np.stack([scores[k] for k in kinds]), axis=0)
    birads = _birads(highest)

    log_median = np.array(
        [[math.log(spec_of[reader_group[reader]].time_median_unaided_s if modality == "unaided"
                   else spec_of[reader_group[reader]].time_median_aided_s) for reader in readers]
         for modality in MODALITIES]
    )
    log_time = (
        log_median[:, :, None]
        + config.time_reader_sigma * rng.standard_normal((1, r, 1))
        + config.time_case_sigma * rng.standard_normal((1, 1, n))
        + config.time_sigma * rng.standard_normal((2, r, n))
    )
    time_s = np.round(np.exp(log_time), 1)

    expected = {}
    for spec in config.groups:
        for modality in MODALITIES:
            base = spec.separation_unaided if modality == "unaided" else spec.separation_aided
            for kind in kinds:
                d = base * config.conspicuity.get(kind, 1.0)
                expected[(spec.name, modality, kind)] = float(stats.norm.cdf(d / math.sqrt(2.0)))

    groups = tuple(g.name for g in config.groups)
    order = {"junior": 0, "senior": 1}
    groups = tuple(sorted(groups, key=lambda g: (order.get(g, 2), g if g not in order else "")))
    reader_order = sorted(range(r), key=lambda j: (groups.index(reader_group[readers[j]]), j))
    study = ReaderStudy(
        readers=tuple(readers[j] for j in reader_order),
        groups=groups,
        reader_group=reader_group,
        cases=cases,
        finding_types=tuple(kinds),
        truth=truth,
        scores={k: v[:, reader_order, :] for k, v in scores.items()},
        score_source={k: "score" for k in kinds},
        present={k: v[:, reader_order, :] for k, v in present.items()},
        birads=birads[:, reader_order, :],
        time_s=time_s[:, reader_order, :],
    )
    return study, SimulationTruth(separation, expected)
