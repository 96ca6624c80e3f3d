"""Training samples: one study's prepared views with their targets, in the prepared grid, as numpy arrays.

This is the contract between the data side (manifests, converters, loading, preprocessing, augmentation:
:mod:`MammoDNNLib.data`) and the model side (:mod:`MammoDNNLib.models`, which turns samples into tensors). Targets
are in the *prepared* grid of their view; ``transform`` maps them back to the original grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import LesionMask, Transform


@dataclass
class ViewTarget:
    boxes: np.ndarray  # (N, 4) float32, [x0, y0, x1, y1] prepared pixel edges
    labels: np.ndarray  # (N,) int64, vocabulary.class_index (1..4)
    lesion_ids: list[str]  # links the CC and MLO projections of one lesion within a study
    masks: list[LesionMask] | None = None  # prepared grid, where the source has outlines
    # Per lesion: pathology/morphology/quadrant/depth where the source knows them (None otherwise).
    attributes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.boxes) != len(self.labels) or len(self.labels) != len(self.lesion_ids):
            raise ValueError("boxes, labels and lesion_ids must have the same length")

    @classmethod
    def empty(cls) -> "ViewTarget":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), [], [], [])


@dataclass
class ViewSample:
    key: str  # "R-CC", ...
    image: np.ndarray  # (H, W) float32 prepared, gray-normalized (90 % of breast pixels in [0, 1])
    breast_mask: np.ndarray  # (H, W) bool, prepared grid
    transform: Transform  # original <-> prepared
    target: ViewTarget | None  # None when the view is unlabelled
    source: str | None = None  # image file, for messages


@dataclass
class StudySample:
    study_id: str
    views: dict[str, ViewSample]  # keyed by vocabulary.VIEW_KEYS; missing views are absent
    labelled: bool  # False for the unlabelled studies used by semi-supervised training
