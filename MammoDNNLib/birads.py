"""BI-RADS assessment suggestions from calibrated malignancy probabilities: per lesion, per breast, per exam.

A lesion's category follows the likelihood-of-malignancy bands of the BI-RADS Atlas, 5th edition (2013):

=========  ===========================================
category   calibrated probability of malignancy ``p``
=========  ===========================================
2          ``p <= benign_max`` ("essentially 0 %")
3          ``benign_max < p <= 0.02``
4A         ``0.02 < p <= 0.10``
4B         ``0.10 < p <= 0.50``
4C         ``0.50 < p < 0.95``
5          ``p >= 0.95``
=========  ===========================================

The Atlas separates 2 (benign) from 3 (probably benign) by the finding's appearance, not by a number; a model
only has its probability, so :attr:`BiradsMapping.benign_max` (default 0.5 %) stands in for "essentially zero".
Detection confidence then caps the category (:attr:`BiradsMapping.score_caps`): a finding the detector itself
doubts (score below 0.3 by default) is never suggested above 4A, and one below 0.5 never above 4B, because a high
malignancy probability of something that may not be a lesion at all should not read as a near-certain cancer.

A breast takes the highest category of its findings ("1", negative, when it has none); the exam takes the highest
of its breasts. Categories 0 (incomplete) and 6 (known malignancy) are the reader's and never suggested.

The mapping is data (:class:`BiradsMapping`, JSON ``MammoDNNLib/configs/birads.json``; ``docs/birads.md``).
Calibration of the raw malignancy score (Platt scaling or isotonic regression on held-out validation data) comes
before this mapping: :mod:`MammoDNNLib.models.calibration`, stored with the malignancy model.
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .findings import Finding, Summary
from .vocabulary import BIRADS_CATEGORIES, LATERALITIES, VIEW_KEYS, split_view_key, view_key

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "birads.json"
CONFIG_FORMAT = "mammodnn-birads-mapping"
CONFIG_VERSION = 1


def category_rank(category: str) -> int:
    """Order of a suggestion category ("1" lowest, "5" highest); raises ``ValueError`` for anything else."""
    try:
        return BIRADS_CATEGORIES.index(category)
    except ValueError:
        raise ValueError(f"unknown BI-RADS category {category!r}; expected one of {', '.join(BIRADS_CATEGORIES)}") from None


def highest_category(categories: Iterable[str], default: str = "1") -> str:
    """The most suspicious of ``categories`` (``default`` when there are none)."""
    best = default
    for category in categories:
        if category_rank(category) > category_rank(best):
            best = category
    return best


@dataclass(frozen=True)
class ScoreCap:
    """Findings whose detection score is below ``below_score`` are suggested no higher than ``max_category``."""

    below_score: float
    max_category: str


def _default_caps() -> tuple[ScoreCap, ...]:
    return (ScoreCap(0.3, "4A"), ScoreCap(0.5, "4B"))


@dataclass(frozen=True)
class BiradsMapping:
    """Calibrated malignancy probability (+ detection score) -> BI-RADS suggestion. Defaults: 5th edition bands."""

    benign_max: float = 0.005  # p <= this: category 2 (use 0 to never suggest 2 from a probability)
    probably_benign_max: float = 0.02  # p <= this: 3
    category_4a_max: float = 0.10  # p <= this: 4A
    category_4b_max: float = 0.50  # p <= this: 4B
    category_5_min: float = 0.95  # p >= this: 5 (between 4B and 5: 4C)
    score_caps: tuple[ScoreCap, ...] = field(default_factory=_default_caps)
    name: str = "bi-rads-5th-edition"

    def __post_init__(self) -> None:
        object.__setattr__(self, "score_caps", tuple(
            c if isinstance(c, ScoreCap) else ScoreCap(**c) for c in self.score_caps  # type: ignore[arg-type]
        ))
        problems = self.problems()
        if problems:
            raise ValueError("invalid BI-RADS mapping: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out: list[str] = []
        bounds = [
            ("benign_max", self.benign_max), ("probably_benign_max", self.probably_benign_max),
            ("category_4a_max", self.category_4a_max), ("category_4b_max", self.category_4b_max),
            ("category_5_min", self.category_5_min),
        ]
        for name, value in bounds:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                out.append(f"{name} must be a number, got {value!r}")
            elif not 0.0 <= value <= 1.0:
                out.append(f"{name} must be in [0, 1], got {value}")
        if not out:
            values = [v for _, v in bounds]
            if any(b < a for a, b in pairwise(values)):
                out.append("the bounds must not decrease: benign_max <= probably_benign_max <= category_4a_max <= "
                           f"category_4b_max <= category_5_min, got {values}")
        for cap in self.score_caps:
            if not isinstance(cap.below_score, (int, float)) or not 0.0 <= cap.below_score <= 1.0:
                out.append(f"score cap below_score must be in [0, 1], got {cap.below_score!r}")
            if cap.max_category not in BIRADS_CATEGORIES:
                out.append(f"score cap max_category {cap.max_category!r} is not one of {', '.join(BIRADS_CATEGORIES)}")
        return out

    # -- mapping -----------------------------------------------------------------------------------------------
    def category(self, probability: float, score: float | None = None) -> str:
        """The suggestion for one lesion: the band of ``probability``, capped by the detection ``score``."""
        p = float(probability)
        if not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise ValueError(f"a malignancy probability must be in [0, 1], got {probability!r}")
        if p >= self.category_5_min:
            category = "5"
        elif p > self.category_4b_max:
            category = "4C"
        elif p > self.category_4a_max:
            category = "4B"
        elif p > self.probably_benign_max:
            category = "4A"
        elif p > self.benign_max:
            category = "3"
        else:
            category = "2"
        return category if score is None else self.cap(category, score)

    def cap(self, category: str, score: float) -> str:
        """``category`` lowered to the tightest cap whose ``below_score`` exceeds the detection ``score``."""
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"a detection score must be finite, got {score!r}")
        for cap in self.score_caps:
            if s < cap.below_score and category_rank(category) > category_rank(cap.max_category):
                category = cap.max_category
        return category

    # -- JSON --------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score_caps"] = [asdict(c) for c in self.score_caps]
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | Path | None = None) -> BiradsMapping:
        """Build from a (possibly partial) mapping; missing keys keep their defaults, unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise InputError(source, "a BI-RADS mapping is a JSON object")
        data = dict(data)
        fmt = data.pop("format", CONFIG_FORMAT)
        version = data.pop("version", CONFIG_VERSION)
        if fmt != CONFIG_FORMAT:
            raise InputError(source, f"format is {fmt!r}, expected {CONFIG_FORMAT!r}")
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise InputError(source, f"BI-RADS mapping version {version!r} is not supported (up to {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, f"unknown BI-RADS mapping key(s) {', '.join(unknown)}")
        if "score_caps" in data:
            caps = data["score_caps"]
            if not isinstance(caps, list) or not all(isinstance(c, Mapping) for c in caps):
                raise InputError(source, "score_caps must be a list of {below_score, max_category} objects")
            try:
                data["score_caps"] = tuple(ScoreCap(float(c["below_score"]), str(c["max_category"])) for c in caps)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(source, f"bad score_caps entry ({exc!r})") from None
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise InputError(source, str(exc)) from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> BiradsMapping:
        """The mapping in ``path`` (default: the shipped ``configs/birads.json``)."""
        path = Path(path) if path is not None else DEFAULT_CONFIG
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"cannot read the BI-RADS mapping: {exc}") from None
        return cls.from_dict(data, path)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


# ----------------------------------------------------------------------------------------------------------------
# Findings, breasts and the exam
# ----------------------------------------------------------------------------------------------------------------


def assign_birads(findings: Iterable[Finding], mapping: BiradsMapping | None = None) -> None:
    """Fill ``Finding.birads`` from each finding's calibrated ``malignancy`` and detection ``score``.

    A finding without a malignancy probability keeps ``birads = None`` (not assessed) and does not count towards
    its breast's category.
    """
    mapping = mapping or BiradsMapping()
    for finding in findings:
        finding.birads = None if finding.malignancy is None else mapping.category(finding.malignancy, finding.score)


def _lesion_count(findings: Sequence[Finding]) -> int:
    """Distinct lesions: a matched CC/MLO pair (same display ``number``) counts once; unnumbered findings singly."""
    numbers = {f.number for f in findings if f.number > 0}
    return len(numbers) + sum(1 for f in findings if f.number <= 0)


def breast_summary(
    laterality: str,
    findings: Iterable[Finding],
    views_present: Collection[str],
    *,
    matching_note: str | None = None,
) -> Summary:
    """The summary of one breast: highest category of its findings' ``birads`` ("1" when none is assessed).

    ``views_present`` are the study's view keys; ``complete`` is whether both CC and MLO of this breast are among
    them. The note says which view is missing (and so that matching was not done) and how many findings were not
    assessed; ``matching_note`` (e.g. from :func:`MammoDNNLib.matching.match_findings`) is added as given.
    """
    if laterality not in LATERALITIES:
        raise ValueError(f"laterality must be 'R' or 'L', got {laterality!r}")
    own = [f for f in findings if f.laterality == laterality]
    present = [view for view in ("CC", "MLO") if view_key(laterality, view) in views_present]
    notes: list[str] = []
    if len(present) == 1:
        missing = "MLO" if present == ["CC"] else "CC"
        notes.append(f"{laterality} breast: {missing} missing, matching not done")
    elif not present:
        notes.append(f"{laterality} breast: no views")
    unassessed = sum(1 for f in own if f.birads is None)
    if unassessed:
        notes.append(f"{laterality} breast: {unassessed} finding(s) without a malignancy estimate, not graded")
    if matching_note and matching_note not in notes:
        notes.append(matching_note)
    malignancies = [f.malignancy for f in own if f.malignancy is not None]
    return Summary(
        score=max(malignancies) if malignancies else None,
        birads=highest_category(f.birads for f in own if f.birads is not None),
        findings=_lesion_count(own),
        complete=len(present) == 2,
        note="; ".join(notes) or None,
    )


def exam_summary(breasts: Mapping[str, Summary], views_present: Collection[str]) -> Summary:
    """The exam: the highest category and malignancy of its breasts; complete when all four views are present."""
    scores = [s.score for s in breasts.values() if s.score is not None]
    notes = [s.note for s in breasts.values() if s.note]
    missing = [k for k in VIEW_KEYS if k not in views_present]
    for side in LATERALITIES:
        if side not in breasts and not any(view_key(side, v) in views_present for v in ("CC", "MLO")):
            notes.append(f"{side} breast: no views")
    return Summary(
        score=max(scores) if scores else None,
        birads=highest_category(s.birads for s in breasts.values()),
        findings=sum(s.findings for s in breasts.values()),
        complete=not missing,
        note="; ".join(notes) or None,
    )


def summarize(
    findings: Sequence[Finding],
    views_present: Collection[str],
    mapping: BiradsMapping | None = None,
    *,
    matching_notes: Mapping[str, str | None] | None = None,
    assign: bool = True,
) -> tuple[dict[str, Summary], Summary]:
    """Grade every finding (unless ``assign`` is False) and build the breast (``{"R", "L"}``, each breast with at
    least one view) and exam summaries for ``Report.breasts`` / ``Report.exam``."""
    for key in views_present:
        split_view_key(key)
    if assign:
        assign_birads(findings, mapping)
    notes = matching_notes or {}
    breasts = {
        side: breast_summary(side, findings, views_present, matching_note=notes.get(side))
        for side in LATERALITIES
        if any(view_key(side, v) in views_present for v in ("CC", "MLO"))
    }
    return breasts, exam_summary(breasts, views_present)
