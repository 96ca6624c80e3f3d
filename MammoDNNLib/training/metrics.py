"""The lesion FROC of a detector on labelled samples, for monitoring training and comparing settings
(ablations, TTA merges) on held-out data.

The analysis is :func:`MammoDNNLib.evaluation.froc.froc` (hit = the detection's centre inside the lesion's
box, no bootstrap here); this module only turns per-view boxes into its lesions and detections and sums the
result up as sensitivity at fixed mean numbers of false positives per view, with the mean over 0.125-8 FP/view
(the CPM of the LUNA16 challenge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..evaluation.froc import DEFAULT_FPI, Detection, FrocConfig, FrocResult, Lesion
from ..evaluation.froc import froc as lesion_froc
from ..models.tta import BoxSet

FP_RATES: tuple[float, ...] = DEFAULT_FPI


@dataclass
class FROCResult:
    """Sensitivity at ``fp_rates`` false positives per view; ``full``: the whole analysis (curve, counts)."""

    full: FrocResult

    @property
    def fp_rates(self) -> tuple[float, ...]:
        return tuple(p.fpi for p in self.full.points)

    @property
    def sensitivities(self) -> tuple[float, ...]:
        return tuple(p.sensitivity for p in self.full.points)

    @property
    def lesions(self) -> int:
        return self.full.n_lesions

    @property
    def views(self) -> int:
        return self.full.n_images

    @property
    def mean_sensitivity(self) -> float:
        return self.full.mean_sensitivity

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


def froc(pairs: Iterable[tuple[BoxSet, np.ndarray]], fp_rates: Sequence[float] = FP_RATES) -> FROCResult:
    """``pairs``: per view, (detections, truth boxes (N, 4)); every view counts for the false positives per
    view, with or without lesions and detections. Raises ``ValueError`` when there are no lesions."""
    lesions: list[Lesion] = []
    detections: list[Detection] = []
    images: list[str] = []
    for v, (found, truth) in enumerate(pairs):
        image = f"view-{v}"
        images.append(image)
        boxes = np.asarray(truth, np.float64).reshape(-1, 4)
        lesions += [Lesion(image, tuple(map(float, box))) for box in boxes]
        detections += [
            Detection(image, float(score), tuple(map(float, box)))
            for box, score in zip(found.boxes, found.scores)
        ]
    config = FrocConfig(fpi=tuple(float(r) for r in fp_rates), n_bootstrap=0, per_type=False)
    return FROCResult(lesion_froc(lesions, detections, images=images, config=config))


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
