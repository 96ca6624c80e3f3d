"""Network batches for the detector's training loop: augment each drawn study, pad its views onto one canvas.

Every view of a study gets the same random rescale (0.8-1.2x; when enlarged, cropped back to the view's size
at one random position) from :mod:`MammoDNNLib.data.augment`, and the flips act on the study's whole padded
canvas, so that the left-right and CC-MLO correspondences the fusion relies on survive augmentation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..data.augment import AugmentConfig, StudyAugmentation, apply_augmentation
from ..data.samples import StudySample
from ..models.config import TrainingConfig
from ..models.network import ViewBatch, make_view_batch
from ..models.tta import flip_boxes

MIN_BOX_SIDE = 2.0  # prepared pixels; thinner remnants of cropped boxes are dropped
MIN_KEPT_AREA = 0.4  # a cropped box is kept when at least this fraction of it is still in the image


def training_batch(
    studies: Sequence[StudySample],
    config: TrainingConfig,
    rng: np.random.Generator | None,
    size_divisible: int = 32,
) -> tuple[ViewBatch, list[dict[str, torch.Tensor]]]:
    """A batch and its targets (prepared-grid boxes on the canvas); ``rng=None`` for no augmentation.

    Per study the scale and then the crop position are drawn; per batch whether the canvas is flipped
    horizontally, then vertically (``config.horizontal_flip`` / ``vertical_flip`` probabilities).
    """
    # The study-level flip of data.augment stays off: the canvas flips below replace it.
    augment = AugmentConfig(
        config.scale_range, horizontal_flip=0.0, min_visible_fraction=MIN_KEPT_AREA, min_box_side=MIN_BOX_SIDE
    )
    per_study = []
    for study in studies:
        if rng is not None:
            scale = float(rng.uniform(*config.scale_range))
            position = (float(rng.random()), float(rng.random()))
            study = apply_augmentation(study, StudyAugmentation(scale, False, position), augment)
        per_study.append(study.views)
    batch = make_view_batch([{k: v.image for k, v in views.items()} for views in per_study], size_divisible)
    horizontal = rng is not None and rng.random() < config.horizontal_flip
    vertical = rng is not None and rng.random() < config.vertical_flip
    height, width = batch.canvas
    targets = []
    for s, key in zip(batch.study_index, batch.keys):
        target = per_study[s][key].target
        boxes = np.zeros((0, 4)) if target is None else target.boxes.astype(np.float64)
        labels = np.zeros((0,), np.int64) if target is None else target.labels
        boxes = flip_boxes(boxes, width, height, horizontal, vertical)
        targets.append(
            {
                "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.as_tensor(labels, dtype=torch.int64),
            }
        )
    return batch.flipped(horizontal, vertical), targets
