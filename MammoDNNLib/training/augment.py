"""Study-level augmentation and the conversion of :class:`StudySample` objects into network batches.

Every view of a study gets the same random rescale (the issue's 0.8-1.2x, followed by a random crop back to the
view's size when enlarged) and the flips act on the study's whole padded canvas, so that the left-right and CC-MLO
correspondences the fusion relies on survive augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.samples import StudySample, ViewTarget
from ..models.config import TrainingConfig
from ..models.network import ViewBatch, make_view_batch
from ..models.tta import flip_boxes

MIN_BOX_SIDE = 2.0  # prepared pixels; smaller remnants of cropped boxes are dropped
MIN_KEPT_AREA = 0.4  # a cropped box is kept when at least this fraction of it is still in the image


@dataclass
class AugmentedView:
    image: torch.Tensor  # (H, W)
    boxes: np.ndarray  # (N, 4)
    labels: np.ndarray  # (N,)


def augment_view(
    image: np.ndarray, target: ViewTarget | None, scale: float, offset: tuple[float, float]
) -> AugmentedView:
    """Rescale by ``scale``; when enlarged, crop back to the original size at the relative ``offset`` (0..1)."""
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
    boxes = np.zeros((0, 4)) if target is None else target.boxes.astype(np.float64).copy()
    labels = np.zeros((0,), np.int64) if target is None else target.labels.copy()
    height, width = tensor.shape
    if abs(scale - 1.0) > 1e-6:
        size = (max(8, round(height * scale)), max(8, round(width * scale)))
        tensor = F.interpolate(
            tensor[None, None], size=size, mode="bilinear", align_corners=False, antialias=scale < 1
        )[0, 0]
        boxes = boxes * np.array([size[1] / width, size[0] / height] * 2)
        if size[0] > height or size[1] > width:
            y0 = int(offset[1] * max(size[0] - height, 0))
            x0 = int(offset[0] * max(size[1] - width, 0))
            tensor = tensor[y0 : y0 + height, x0 : x0 + width]
            area = _area(boxes)
            boxes = boxes - np.array([x0, y0, x0, y0])
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, tensor.shape[1])
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, tensor.shape[0])
            keep = (
                (_area(boxes) >= MIN_KEPT_AREA * np.maximum(area, 1e-9))
                & (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE)
                & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE)
            )
            boxes, labels = boxes[keep], labels[keep]
    return AugmentedView(tensor.contiguous(), boxes, labels)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def training_batch(
    studies: Sequence[StudySample],
    config: TrainingConfig,
    rng: np.random.Generator | None,
    size_divisible: int = 32,
) -> tuple[ViewBatch, list[dict[str, torch.Tensor]]]:
    """A batch and its targets (prepared-grid boxes on the canvas); ``rng=None`` for no augmentation."""
    per_study = []
    for study in studies:
        if rng is None:
            scale, offset = 1.0, (0.0, 0.0)
        else:
            scale = float(rng.uniform(*config.scale_range))
            offset = (float(rng.random()), float(rng.random()))
        per_study.append({k: augment_view(v.image, v.target, scale, offset) for k, v in study.views.items()})
    batch = make_view_batch([{k: v.image for k, v in views.items()} for views in per_study], size_divisible)
    horizontal = rng is not None and rng.random() < config.horizontal_flip
    vertical = rng is not None and rng.random() < config.vertical_flip
    height, width = batch.canvas
    targets = []
    for s, key in zip(batch.study_index, batch.keys):
        view = per_study[s][key]
        boxes = flip_boxes(view.boxes, width, height, horizontal, vertical)
        targets.append(
            {
                "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.as_tensor(view.labels, dtype=torch.int64),
            }
        )
    return batch.flipped(horizontal, vertical), targets
