"""Lesion-level FROC analysis of a detector (or reader) that marks boxes with scores.

Definitions:

* A lesion is *found* at threshold s when at least one detection with score ≥ s *hits* it. The default hit rule
  is the detection's centre inside the lesion box (edges included); ``iou:T`` asks for intersection over union
  ≥ T instead. Boxes are ``[x0, y0, x1, y1]`` in pixel-edge coordinates of the image.
* A detection with score ≥ s that hits no lesion is a false positive; a detection that hits an already-found
  lesion is neither a true nor a false positive.
* Sensitivity = found lesions / all lesions; FPI = false positives / images. Images are the caller's list, or
  the union of the images in the truth and the detections (images without lesions count as normal images).
* The FROC curve has one point per distinct detection score (thresholds descending, from (0, 0)).
  The sensitivity reported at a given FPI is the highest sensitivity of the curve points whose FPI does not
  exceed it (a step function, never interpolated); beyond the last point it is the final sensitivity.
* Confidence intervals are percentile bootstraps resampling cases (images, or groups of images given as cases)
  with replacement; the curve is recomputed on each replicate.
* With lesion and detection types, the analysis is repeated per type: a type's lesions are hit only by
  detections of that type, and that type's detections that hit none of its lesions are its false positives.

The functions take and return dataclasses; :func:`image_level_roc` gives the image-level ROC (an image's score
is its highest detection score) that a model card reports beside the FROC.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from .roc import RocCurve, roc_curve
from .tables import Table, read_table

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
DEFAULT_FPI: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_BOOTSTRAP_CHUNK = 100


@dataclass(frozen=True)
class Lesion:
    image: str
    box: Box
    lesion_id: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Detection:
    image: str
    score: float
    box: Box
    type: str | None = None


@dataclass(frozen=True)
class HitCriterion:
    """When a detection hits a lesion: its centre lies in the lesion box, or their IoU reaches a threshold."""

    kind: Literal["center", "iou"] = "center"
    iou_threshold: float = 0.5

    @classmethod
    def parse(cls, text: str) -> HitCriterion:
        """``"center"`` or ``"iou:T"`` with 0 < T ≤ 1."""
        text = text.strip().lower()
        if text in ("center", "centre"):
            return cls("center")
        if text.startswith("iou:"):
            try:
                threshold = float(text[4:])
            except ValueError:
                threshold = math.nan
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"IoU threshold must be in (0, 1]; got {text[4:]!r}")
            return cls("iou", threshold)
        raise ValueError(f"hit criterion must be 'center' or 'iou:T'; got {text!r}")

    def __str__(self) -> str:
        return "center" if self.kind == "center" else f"iou:{self.iou_threshold:g}"


@dataclass(frozen=True)
class FrocConfig:
    hit: HitCriterion = HitCriterion()
    fpi: tuple[float, ...] = DEFAULT_FPI
    n_bootstrap: int = 1000  # 0: no confidence intervals
    confidence: float = 0.95
    seed: int = 0
    per_type: bool = True


@dataclass(frozen=True)
class FrocPoint:
    fpi: float
    sensitivity: float
    ci: tuple[float, float] | None
    threshold: float  # the score threshold of the curve point used (inf: no detection needed)

    def to_dict(self) -> dict:
        return {
            "fpi": self.fpi,
            "sensitivity": self.sensitivity,
            "ci": None if self.ci is None else [_num(self.ci[0]), _num(self.ci[1])],
            "threshold": _num(self.threshold),
        }


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    fpi: float
    sensitivity: float

    def to_dict(self) -> dict:
        return {"threshold": _num(self.threshold), "fpi": self.fpi, "sensitivity": self.sensitivity}


@dataclass(frozen=True)
class FrocResult:
    points: tuple[FrocPoint, ...]
    curve: tuple[CurvePoint, ...] = field(repr=False)
    n_images: int
    n_lesions: int
    n_detections: int
    n_found: int  # lesions found at the lowest threshold
    n_false_positives: int  # false positives at the lowest threshold
    hit: str = "center"
    by_type: dict[str, FrocResult] = field(default_factory=dict)

    @property
    def mean_sensitivity(self) -> float:
        """Mean sensitivity over the reported FPI points (the CPM score when they are 1/8 … 8)."""
        return float(np.mean([p.sensitivity for p in self.points])) if self.points else math.nan

    def sensitivity_at(self, fpi: float) -> float:
        """Sensitivity at any FPI, by the same step rule as the reported points."""
        best = 0.0
        for point in self.curve:
            if point.fpi <= fpi + 1e-12:
                best = max(best, point.sensitivity)
        return best

    def to_dict(self, *, include_curve: bool = True) -> dict:
        out = {
            "points": [p.to_dict() for p in self.points],
            "mean_sensitivity": _num(self.mean_sensitivity),
            "n_images": self.n_images,
            "n_lesions": self.n_lesions,
            "n_detections": self.n_detections,
            "n_found": self.n_found,
            "n_false_positives": self.n_false_positives,
            "hit": self.hit,
        }
        if include_curve:
            out["curve"] = [c.to_dict() for c in self.curve]
        if self.by_type:
            out["by_type"] = {k: v.to_dict(include_curve=include_curve) for k, v in self.by_type.items()}
        return out


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------------- geometry


def _hits(lesions: np.ndarray, detections: np.ndarray, hit: HitCriterion) -> np.ndarray:
    """Boolean (n_detections, n_lesions): does detection d hit lesion l (boxes as rows x0, y0, x1, y1)."""
    if lesions.size == 0 or detections.size == 0:
        return np.zeros((len(detections), len(lesions)), dtype=bool)
    d = detections[:, None, :]
    l_ = lesions[None, :, :]
    if hit.kind == "center":
        cx = (d[..., 0] + d[..., 2]) / 2.0
        cy = (d[..., 1] + d[..., 3]) / 2.0
        return (cx >= l_[..., 0]) & (cx <= l_[..., 2]) & (cy >= l_[..., 1]) & (cy <= l_[..., 3])
    iw = np.clip(np.minimum(d[..., 2], l_[..., 2]) - np.maximum(d[..., 0], l_[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(d[..., 3], l_[..., 3]) - np.maximum(d[..., 1], l_[..., 1]), 0.0, None)
    inter = iw * ih
    area_d = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
    area_l = (l_[..., 2] - l_[..., 0]) * (l_[..., 3] - l_[..., 1])
    union = area_d + area_l - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou >= hit.iou_threshold - 1e-12


@dataclass(frozen=True)
class _Events:
    """Per-lesion best hit scores and false-positive scores, with the case each belongs to."""

    lesion_score: np.ndarray  # -inf: never hit
    lesion_case: np.ndarray
    fp_score: np.ndarray
    fp_case: np.ndarray
    images_per_case: np.ndarray
    n_detections: int


def _events(
    lesions: Sequence[Lesion],
    detections: Sequence[Detection],
    images: Sequence[str],
    case_of: dict[str, int],
    n_cases: int,
    hit: HitCriterion,
) -> _Events:
    by_image_l: dict[str, list[int]] = {}
    by_image_d: dict[str, list[int]] = {}
    for i, lesion in enumerate(lesions):
        by_image_l.setdefault(lesion.image, []).append(i)
    for i, det in enumerate(detections):
        by_image_d.setdefault(det.image, []).append(i)
    lesion_score = np.full(len(lesions), -np.inf)
    fp_scores: list[float] = []
    fp_cases: list[int] = []
    for image in images:
        li = by_image_l.get(image, [])
        di = by_image_d.get(image, [])
        if not di:
            continue
        dboxes = np.array([detections[i].box for i in di], dtype=np.float64)
        dscores = np.array([detections[i].score for i in di], dtype=np.float64)
        lboxes = np.array([lesions[i].box for i in li], dtype=np.float64).reshape(-1, 4)
        hits = _hits(lboxes, dboxes, hit)
        for col, lesion_index in enumerate(li):
            if hits[:, col].any():
                lesion_score[lesion_index] = dscores[hits[:, col]].max()
        missed = ~hits.any(axis=1)
        fp_scores.extend(dscores[missed].tolist())
        fp_cases.extend([case_of[image]] * int(missed.sum()))
    images_per_case = np.bincount([case_of[i] for i in images], minlength=n_cases).astype(np.float64)
    return _Events(
        lesion_score=lesion_score,
        lesion_case=np.array([case_of[lesion.image] for lesion in lesions], dtype=np.int64),
        fp_score=np.array(fp_scores, dtype=np.float64),
        fp_case=np.array(fp_cases, dtype=np.int64),
        images_per_case=images_per_case,
        n_detections=len(detections),
    )


def _curves(events: _Events, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FROC curves for each row of case weights (B × n_cases): thresholds (G,), FPI (B, G), sensitivity (B, G).

    Point 0 is threshold +inf (nothing called); then one point per distinct finite score, descending.
    """
    scores = np.concatenate([events.lesion_score, events.fp_score])
    is_lesion = np.concatenate([np.ones(events.lesion_score.size, bool), np.zeros(events.fp_score.size, bool)])
    cases = np.concatenate([events.lesion_case, events.fp_case])
    finite = np.isfinite(scores)
    order = np.argsort(-scores[finite], kind="stable")
    s = scores[finite][order]
    lesion_flag = is_lesion[finite][order]
    case_idx = cases[finite][order]
    w = weights[:, case_idx]  # (B, E)
    tp = np.cumsum(w * lesion_flag, axis=1)
    fp = np.cumsum(w * ~lesion_flag, axis=1)
    # keep the last event of each run of equal scores: all detections at a threshold count together
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, dtype=np.int64)
    thresholds = np.concatenate([[np.inf], s[last]])
    zeros = np.zeros((weights.shape[0], 1))
    tp = np.concatenate([zeros, tp[:, last]], axis=1)
    fp = np.concatenate([zeros, fp[:, last]], axis=1)
    n_lesions = (weights[:, events.lesion_case]).sum(axis=1, keepdims=True)
    n_images = (weights * events.images_per_case[None, :]).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = tp / n_lesions
        fpi = fp / n_images
    return thresholds, fpi, sensitivity


def _at_fpi(fpi: np.ndarray, sensitivity: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the highest sensitivity with FPI ≤ target, and the index of that point."""
    allowed = fpi <= target + 1e-12
    masked = np.where(allowed, sensitivity, -np.inf)
    index = np.argmax(masked, axis=1)
    best = masked[np.arange(masked.shape[0]), index]
    return np.where(np.isfinite(best), best, np.nan), index


def _analyze(
    lesions: Sequence[Lesion],
    detections: Sequence[Detection],
    images: Sequence[str],
    case_of: dict[str, int],
    n_cases: int,
    config: FrocConfig,
) -> FrocResult:
    events = _events(lesions, detections, images, case_of, n_cases, config.hit)
    ones = np.ones((1, n_cases))
    thresholds, fpi, sens = _curves(events, ones)
    curve = tuple(CurvePoint(float(t), float(f), float(s)) for t, f, s in zip(thresholds, fpi[0], sens[0]))
    boot_sens: np.ndarray | None = None
    if config.n_bootstrap > 0 and lesions:
        rng = np.random.default_rng(config.seed)
        chunks = []
        for start in range(0, config.n_bootstrap, _BOOTSTRAP_CHUNK):  # bounded memory on large studies
            size = min(_BOOTSTRAP_CHUNK, config.n_bootstrap - start)
            draws = rng.integers(0, n_cases, size=(size, n_cases))
            weights = np.stack([np.bincount(row, minlength=n_cases) for row in draws]).astype(np.float64)
            _, b_fpi, b_sens = _curves(events, weights)
            chunks.append(np.stack([_at_fpi(b_fpi, b_sens, x)[0] for x in config.fpi], axis=1))
        boot_sens = np.concatenate(chunks, axis=0)  # (B, P)
    points = []
    alpha = 1.0 - config.confidence
    for p, x in enumerate(config.fpi):
        value, index = _at_fpi(fpi, sens, x)
        ci = None
        if boot_sens is not None:
            column = boot_sens[:, p]
            column = column[np.isfinite(column)]
            if column.size:
                ci = (float(np.quantile(column, alpha / 2)), float(np.quantile(column, 1 - alpha / 2)))
        points.append(FrocPoint(float(x), float(value[0]) if lesions else math.nan, ci, float(thresholds[index[0]])))
    return FrocResult(
        points=tuple(points),
        curve=curve,
        n_images=len(images),
        n_lesions=len(lesions),
        n_detections=events.n_detections,
        n_found=int(np.isfinite(events.lesion_score).sum()),
        n_false_positives=int(events.fp_score.size),
        hit=str(config.hit),
    )


def _image_set(
    lesions: Sequence[Lesion], detections: Sequence[Detection], images: Sequence[str] | None
) -> list[str]:
    if images is not None:
        ordered = list(dict.fromkeys(images))
        if not ordered:
            raise ValueError("the image list is empty")
        return ordered
    return list(dict.fromkeys([lesion.image for lesion in lesions] + [d.image for d in detections]))


def froc(
    lesions: Sequence[Lesion],
    detections: Sequence[Detection],
    *,
    images: Sequence[str] | None = None,
    cases: dict[str, str] | None = None,
    config: FrocConfig = FrocConfig(),
) -> FrocResult:
    """Lesion-level FROC with bootstrap CIs; per type as well when every lesion and detection has a type.

    ``images`` restricts the analysis to those images (lesions and detections elsewhere are ignored, and
    logged); ``cases`` maps image → case for the bootstrap (default: each image is its own case).
    """
    image_list = _image_set(lesions, detections, images)
    keep = set(image_list)
    kept_lesions = [lesion for lesion in lesions if lesion.image in keep]
    kept_detections = [d for d in detections if d.image in keep]
    if len(kept_lesions) < len(lesions) or len(kept_detections) < len(detections):
        log.info(
            "FROC: ignoring %d lesion(s) and %d detection(s) on images outside the image list",
            len(lesions) - len(kept_lesions), len(detections) - len(kept_detections),
        )
    if not kept_lesions:
        raise ValueError("no lesions on the analysed images; sensitivity is undefined")
    case_names = [(cases or {}).get(image, image) for image in image_list]
    case_index = {name: i for i, name in enumerate(dict.fromkeys(case_names))}
    case_of = {image: case_index[name] for image, name in zip(image_list, case_names)}
    result = _analyze(kept_lesions, kept_detections, image_list, case_of, len(case_index), config)
    typed = all(lesion.type for lesion in kept_lesions) and all(d.type for d in kept_detections)
    if config.per_type and typed:
        by_type = {}
        for kind in sorted({lesion.type for lesion in kept_lesions} | {d.type for d in kept_detections}):
            type_lesions = [lesion for lesion in kept_lesions if lesion.type == kind]
            if not type_lesions:
                continue
            type_dets = [d for d in kept_detections if d.type == kind]
            by_type[kind] = _analyze(type_lesions, type_dets, image_list, case_of, len(case_index), config)
        result = FrocResult(**{**result.__dict__, "by_type": by_type})
    return result


def image_level_roc(
    lesions: Sequence[Lesion],
    detections: Sequence[Detection],
    *,
    images: Sequence[str] | None = None,
    type: str | None = None,
) -> RocCurve:
    """Image-level ROC: an image is positive when it holds a lesion (of ``type``, if given) and its score is its
    highest detection score (of that type); images without detections score below every detection."""
    image_list = _image_set(lesions, detections, images)
    positive = {lesion.image for lesion in lesions if type is None or lesion.type == type}
    best: dict[str, float] = {}
    for det in detections:
        if type is None or det.type == type:
            best[det.image] = max(best.get(det.image, -math.inf), det.score)
    floor = min(best.values(), default=0.0) - 1.0
    truth = np.array([image in positive for image in image_list], dtype=bool)
    scores = np.array([best.get(image, floor) for image in image_list], dtype=np.float64)
    if truth.all() or not truth.any():
        raise ValueError("image-level ROC needs images with and without lesions")
    return roc_curve(truth, scores)


# --------------------------------------------------------------------------------------------------- files


def _boxes(table: Table) -> np.ndarray:
    table.require("x0", "y0", "x1", "y1")
    boxes = np.stack([table.numeric(c) for c in ("x0", "y0", "x1", "y1")], axis=1)
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        raise InputError(table.path, f"box at line {table.line_of(int(bad[0]))} has x1 < x0 or y1 < y0")
    return boxes


def read_lesions(path: str | Path, *, image_column: str = "image") -> list[Lesion]:
    """Truth table: columns ``image, x0, y0, x1, y1`` (any order), optionally ``lesion_id`` and ``type``."""
    table = read_table(path)
    table.require(image_column, "x0", "y0", "x1", "y1")
    images = table.text(image_column)
    boxes = _boxes(table)
    ids = table.text("lesion_id", allow_missing=True) if table.has("lesion_id") else [None] * len(table)
    types = table.text("type", allow_missing=True) if table.has("type") else [None] * len(table)
    return [
        Lesion(image, tuple(map(float, box)), lesion_id or None, kind or None)
        for image, box, lesion_id, kind in zip(images, boxes, ids, types)
    ]


def read_detections(path: str | Path, *, image_column: str = "image") -> list[Detection]:
    """Detection table: columns ``image, score, x0, y0, x1, y1`` (any order), optionally ``type``."""
    table = read_table(path)
    table.require(image_column, "score", "x0", "y0", "x1", "y1")
    images = table.text(image_column)
    scores = table.numeric("score")
    boxes = _boxes(table)
    types = table.text("type", allow_missing=True) if table.has("type") else [None] * len(table)
    return [
        Detection(image, float(score), tuple(map(float, box)), kind or None)
        for image, score, box, kind in zip(images, scores, boxes, types)
    ]


def read_image_list(path: str | Path) -> tuple[list[str], dict[str, str] | None]:
    """Images to analyse: a text file with one image per line, or a table with an ``image`` column (and an
    optional ``case`` column grouping images for the bootstrap)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    text = path.read_text(encoding="utf-8-sig")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(path, "the image list is empty")
    header = [h.strip() for h in lines[0].replace("\t", ",").split(",")]
    if "image" in header:
        table = read_table(path)
        images = table.text("image")
        cases = dict(zip(images, table.text("case"))) if table.has("case") else None
        return images, cases
    return lines, None
