"""A lesion-level FROC for monitoring training and comparing settings (ablations, TTA merges) on held-out data.

A detection hits a lesion when its centre lies inside the lesion's box (the usual CAD criterion); further
detections of an already-hit lesion are neither hits nor false positives. Sensitivity is reported at fixed mean
numbers of false positives per view, and the mean over 0.125-8 FP/view (the CPM of the LUNA16 challenge) sums it
up. The project's reporting FROC lives in :mod:`MammoDNNLib.evaluation`; this one needs only boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..models.tta import BoxSet

FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class FROCResult:
    fp_rates: tuple[float, ...]
    sensitivities: tuple[float, ...]
    lesions: int
    views: int

    @property
    def mean_sensitivity(self) -> float:
        return float(np.mean(self.sensitivities))

    def at(self, fp_rate: float) -> float:
        return self.sensitivities[self.fp_rates.index(fp_rate)]

    def to_dict(self) -> dict:
        return {
            "fp_per_view": list(self.fp_rates),
            "sensitivity": [round(s, 4) for s in self.sensitivities],
            "mean_sensitivity": round(self.mean_sensitivity, 4),
            "lesions": self.lesions,
            "views": self.views,
        }


def froc(
    pairs: Iterable[tuple[BoxSet, np.ndarray]],
    fp_rates: Sequence[float] = FP_RATES,
    classes: bool = False,
    truth_labels: Iterable[np.ndarray] | None = None,
) -> FROCResult:
    """``pairs``: per view, (detections, truth boxes (N, 4)). ``classes=True`` also requires the label to match
    (``truth_labels`` then gives each view's truth labels)."""
    records: list[tuple[float, int, int]] = []  # (score, view index, lesion index or -1 for FP)
    lesions = 0
    views = 0
    label_iter = iter(truth_labels) if truth_labels is not None else None
    for v, (found, truth) in enumerate(pairs):
        views += 1
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        labels = next(label_iter) if label_iter is not None else None
        base = lesions
        lesions += len(truth)
        order = np.argsort(-found.scores, kind="stable")
        for i in order:
            cx = (found.boxes[i, 0] + found.boxes[i, 2]) / 2
            cy = (found.boxes[i, 1] + found.boxes[i, 3]) / 2
            inside = (truth[:, 0] <= cx) & (cx <= truth[:, 2]) & (truth[:, 1] <= cy) & (cy <= truth[:, 3])
            if classes and labels is not None:
                inside &= np.asarray(labels) == found.labels[i]
            hits = np.flatnonzero(inside)
            records.append((float(found.scores[i]), v, base + int(hits[0]) if len(hits) else -1))
    records.sort(key=lambda r: -r[0])
    hit: set[int] = set()
    false_positives = 0
    curve: list[tuple[float, float]] = [(0.0, 0.0)]  # (fp per view, sensitivity) after each detection
    for _, _, lesion in records:
        if lesion < 0:
            false_positives += 1
        elif lesion not in hit:
            hit.add(lesion)
        else:
            continue
        curve.append((false_positives / max(views, 1), len(hit) / max(lesions, 1)))
    sensitivities = tuple(max(s for f, s in curve if f <= rate) for rate in fp_rates)
    return FROCResult(tuple(fp_rates), sensitivities, lesions, views)


def evaluate_detector(
    detector,
    samples: Sequence,
    *,
    tta: bool | None = False,
    merge: str | None = None,
    ensemble: bool = True,
    fp_rates: Sequence[float] = FP_RATES,
) -> FROCResult:
    """FROC of ``detector`` (a :class:`~MammoDNNLib.models.detector.Detector`) on labelled ``samples``
    (:class:`~MammoDNNLib.data.samples.StudySample`), in the prepared grid."""
    pairs = []
    for study in samples:
        images = {k: v.image for k, v in study.views.items()}
        masks = {k: v.breast_mask for k, v in study.views.items()}
        found = detector.predict_images(images, masks, tta=tta, merge=merge, ensemble=ensemble)
        for key, view in study.views.items():
            if view.target is not None:
                pairs.append((found[key], view.target.boxes))
    return froc(pairs, fp_rates)
