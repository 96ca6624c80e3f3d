"""Scoring reports against phantom truth: what the end-to-end tests and ``benchmarks/pipeline_eval.py``
measure.

A finding *hits* a true lesion projection when the finding's box centre lies in the true box (edges included;
the
FROC rule of :mod:`MammoDNNLib.evaluation.froc`); a finding hitting several is credited to the one whose box
centre is nearest. On the findings that hit a lesion (detected lesions):

* **detection** — found projections (any type; and of the right type), findings on no lesion (false
positives);
* **localization** — quadrant equal to the truth's, absolute depth error;
* **matching** — predicted CC-MLO pairs scored by :func:`MammoDNNLib.matching.metrics.pair_metrics` (a pair is
  right when both findings hit the same lesion; a true pair is a lesion seen in both views, missed whether the
  detector or the matcher lost it; ``recall_detectable`` counts only pairs whose two projections were found);
* **malignancy** — the calibrated probability of each detected lesion projection against its pathology.

:class:`RecordingDetector` wraps a detector to keep its raw output (every score, before the operating point)
for
FROC analysis and for choosing the operating point (:func:`detection_f1_by_threshold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..findings import Finding, Report


def hits(finding: Finding | Any, box: Sequence[float]) -> bool:
    x = (finding.box[0] + finding.box[2]) / 2.0
    y = (finding.box[1] + finding.box[3]) / 2.0
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


@dataclass
class Projection:
    lesion: str
    view: str
    type: str
    pathology: str
    visibility: str
    quadrant: str
    depth: float
    found_by: list[str] = field(default_factory=list)  # finding ids credited with it, best score first


@dataclass
class StudyEvaluation:
    study: str
    projections: list[Projection]
    credited: dict[str, str | None]  # finding id -> lesion id (None: a false positive)
    quadrant_correct: list[bool]  # per found projection (its best finding)
    depth_errors: list[float]
    type_correct: list[bool]
    malignancy: list[tuple[int, float]]  # (malignant, probability) per found projection with a probability
    pairs: Any  # matching.metrics.PairMetrics
    findings: int
    views: int


def credit(report: Report, truth) -> tuple[dict[str, str | None], list[Projection]]:
    """Which lesion each finding is credited to, and the projections with the findings that found them."""
    projections = [
        Projection(lesion.id, key, lesion.type, lesion.pathology, v.visibility, v.quadrant, v.depth)
        for lesion in truth.lesions
        for key, v in lesion.views.items()
    ]
    boxes = {(lesion.id, key): v.box for lesion in truth.lesions for key, v in lesion.views.items()}
    by_key = {(p.lesion, p.view): p for p in projections}
    credited: dict[str, str | None] = {}
    for f in sorted(report.findings, key=lambda f: -f.score):
        candidates = [
            (lesion_id, box) for (lesion_id, key), box in boxes.items() if key == f.view_key and hits(f, box)
        ]
        if not candidates:
            credited[f.id] = None
            continue
        cx, cy = f.center
        lesion_id, _ = min(
            candidates,
            key=lambda c: ((c[1][0] + c[1][2]) / 2 - cx) ** 2 + ((c[1][1] + c[1][3]) / 2 - cy) ** 2,
        )
        credited[f.id] = lesion_id
        by_key[(lesion_id, f.view_key)].found_by.append(f.id)
    return credited, projections


def evaluate_report(report: Report, truth, study_id: str | None = None) -> StudyEvaluation:
    from ..matching.metrics import pair_metrics

    credited, projections = credit(report, truth)
    quadrant, depth, types, malignancy = [], [], [], []
    for p in projections:
        if not p.found_by:
            continue
        best = report.finding(p.found_by[0])
        types.append(best.type == p.type)
        if best.quadrant is not None:
            quadrant.append(best.quadrant == p.quadrant)
        if best.depth is not None:
            depth.append(abs(best.depth - p.depth))
        if best.malignancy is not None:
            malignancy.append((int(p.pathology == "malignant"), float(best.malignancy)))
    predicted = [
        (credited[f.id], credited[f.match_id])
        for f in report.findings
        if f.view == "CC" and f.match_id is not None
    ]
    found = {(p.lesion, p.view) for p in projections if p.found_by}
    views = {v.key for v in report.views}
    true_pairs = [
        lesion.id for lesion in truth.lesions if len(lesion.views) == 2 and set(lesion.views) <= views
    ]
    detectable = [i for i in true_pairs if all((i, k) in found for k in truth_lesion(truth, i).views)]
    return StudyEvaluation(
        study_id or truth.study_id,
        projections,
        credited,
        quadrant,
        depth,
        types,
        malignancy,
        pair_metrics(predicted, true_pairs, detectable),
        len(report.findings),
        len(report.views),
    )


def truth_lesion(truth, lesion_id: str):
    return next(lesion for lesion in truth.lesions if lesion.id == lesion_id)


def summarize(evaluations: Sequence[StudyEvaluation]) -> dict[str, Any]:
    """Totals over studies (JSON-ready)."""
    from ..evaluation.roc import roc_curve
    from ..matching.metrics import total

    projections = [p for e in evaluations for p in e.projections]
    visible = [p for p in projections if p.visibility != "occult"]
    false_positives = sum(1 for e in evaluations for v in e.credited.values() if v is None)
    views = sum(e.views for e in evaluations)
    quadrant = [q for e in evaluations for q in e.quadrant_correct]
    depth = [d for e in evaluations for d in e.depth_errors]
    types = [t for e in evaluations for t in e.type_correct]
    labels = [m for e in evaluations for m, _ in e.malignancy]
    scores = [s for e in evaluations for _, s in e.malignancy]
    pairs = total(e.pairs for e in evaluations)
    auc = None
    if 0 < sum(labels) < len(labels):
        curve = roc_curve(labels, scores)
        auc = {
            "auc": curve.auc,
            "ci": list(curve.ci) if getattr(curve, "ci", None) is not None else None,
            "n": len(labels),
            "malignant": int(sum(labels)),
        }
    return {
        "studies": len(evaluations),
        "views": views,
        "projections": len(projections),
        "visible_projections": len(visible),
        "sensitivity": _ratio(sum(1 for p in projections if p.found_by), len(projections)),
        "sensitivity_visible": _ratio(sum(1 for p in visible if p.found_by), len(visible)),
        "false_positives_per_view": _ratio(false_positives, views),
        "findings": sum(e.findings for e in evaluations),
        "type_accuracy": _ratio(sum(types), len(types)),
        "quadrant_accuracy": _ratio(sum(quadrant), len(quadrant)),
        "quadrant_n": len(quadrant),
        "depth_mae": float(np.mean(depth)) if depth else None,
        "depth_median_error": float(np.median(depth)) if depth else None,
        "matching": pairs.to_dict(),
        "malignancy_auc": auc,
    }


def _ratio(a: float, b: float) -> float | None:
    return float(a) / b if b else None


class RecordingDetector:
    """A detector that keeps its last raw output (``last``: view key -> detections, every score) and the
    prepared
    views it was given (``views``)."""

    def __init__(self, detector):
        self.detector = detector
        self.last: dict[str, list[Any]] = {}
        self.views: Mapping[str, Any] = {}

    @property
    def spacing_mm(self) -> float:
        return self.detector.spacing_mm

    def predict(self, views, **options):
        self.views = views
        self.last = self.detector.predict(views, **options)
        return self.last


def froc_inputs(study_id: str, truth, detections: Mapping[str, Iterable[Any]], views: Iterable[str]):
    """(lesions, detections, images) for :func:`MammoDNNLib.evaluation.froc.froc` of one study (image name
    ``<study>/<view>``; types kept for the per-class curves)."""
    from ..evaluation.froc import Detection as FrocDetection
    from ..evaluation.froc import Lesion

    images = [f"{study_id}/{key}" for key in views]
    lesions = [
        Lesion(f"{study_id}/{key}", tuple(v.box), lesion.id, lesion.type)
        for lesion in truth.lesions
        for key, v in lesion.views.items()
        if f"{study_id}/{key}" in images
    ]
    found = [
        FrocDetection(f"{study_id}/{key}", float(d.score), tuple(d.box), d.label)
        for key, ds in detections.items()
        for d in ds
    ]
    return lesions, found, images


def detection_f1_by_threshold(
    records: Sequence[tuple[Any, Mapping[str, Any], Mapping[str, Any]]], thresholds: Sequence[float], options
) -> list[dict[str, float]]:
    """For each operating point: the findings the pipeline would report (its selection rules applied to the
    raw
    detections), their precision (share hitting a lesion), the sensitivity over the lesion projections, F1 and
    false positives per view. ``records``: (truth, raw detections, prepared views) per study."""
    from .stages import select_detections

    rows = []
    for threshold in thresholds:
        chosen = options.replace(score_threshold=float(threshold))
        tp_findings = findings = found = total_projections = views = 0
        for truth, detections, prepared in records:
            selected = select_detections(detections, prepared, chosen)
            views += len(prepared)
            for key, candidates in selected.items():
                boxes = [v.box for lesion in truth.lesions for k, v in lesion.views.items() if k == key]
                findings += len(candidates)
                tp_findings += sum(1 for c in candidates if any(hits(c, b) for b in boxes))
                total_projections += len(boxes)
                found += sum(1 for b in boxes if any(hits(c, b) for c in candidates))
        precision = tp_findings / findings if findings else 1.0
        recall = found / total_projections if total_projections else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "threshold": float(threshold),
                "precision": precision,
                "sensitivity": recall,
                "f1": f1,
                "fp_per_view": (findings - tp_findings) / views if views else 0.0,
                "findings": findings,
            }
        )
    return rows
