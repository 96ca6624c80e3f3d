"""Test-time augmentation and the merging of several sets of boxes (TTA passes, ensemble members).

Flips act on a study's whole padded canvas (every view of the study together), so the four-view fusion sees the
same left-right and CC-MLO correspondences in every pass; :func:`flip_boxes` maps boxes between the flipped and
unflipped canvas exactly (it is its own inverse).

Two merges: weighted box fusion (Solovyev, Wang & Gabruseva 2019, "Weighted boxes fusion: ensembling boxes from
different object detection models", arXiv:1910.13302; the ``avg`` confidence type of their reference
implementation ``ensemble-boxes``), which averages the coordinates of the boxes of one cluster weighted by their
scores and lowers the score of a cluster that not every set contributed to; and plain class-wise NMS over the
union. Both carry each box's class-probability vector along (WBF: score-weighted mean of the cluster's vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np


@dataclass
class BoxSet:
    """Detections of one view from one pass, in one coordinate frame."""

    boxes: np.ndarray  # (N, 4) float [x0, y0, x1, y1]
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int, class index 1..K
    probs: np.ndarray  # (N, K + 1) class probabilities (background first)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        self.probs = np.asarray(self.probs, dtype=np.float64).reshape(n, -1) if n else np.zeros((0, 0))
        if not (len(self.scores) == len(self.labels) == n):
            raise ValueError("boxes, scores and labels must have the same length")

    @classmethod
    def empty(cls, num_classes: int) -> "BoxSet":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, num_classes)))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: np.ndarray) -> "BoxSet":
        return BoxSet(self.boxes[index], self.scores[index], self.labels[index], self.probs[index])

    def sorted(self) -> "BoxSet":
        return self.select(np.argsort(-self.scores, kind="stable"))


def flip_boxes(
    boxes: np.ndarray, width: float, height: float, horizontal: bool, vertical: bool
) -> np.ndarray:
    """Boxes on a ``width`` x ``height`` canvas mirrored left-right and/or top-bottom (pixel-edge convention)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    if horizontal:
        out[:, [0, 2]] = width - out[:, [2, 0]]
    if vertical:
        out[:, [1, 3]] = height - out[:, [3, 1]]
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (M, 4) boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_boxes_fusion(
    sets: Sequence[BoxSet],
    iou_thresh: float = 0.55,
    skip_score: float = 0.0,
    weights: Sequence[float] | None = None,
) -> BoxSet:
    """Weighted box fusion of ``sets`` (one per model / pass), class by class."""
    if not sets:
        raise ValueError("weighted_boxes_fusion needs at least one set of boxes")
    weights = np.ones(len(sets)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(sets):
        raise ValueError("one weight per set of boxes")
    num_probs = max((s.probs.shape[1] for s in sets if len(s)), default=0)
    pooled = [
        (s.boxes[i], s.scores[i] * w, s.labels[i], s.probs[i], w)
        for s, w in zip(sets, weights)
        for i in range(len(s))
        if s.scores[i] >= skip_score
    ]
    out_boxes, out_scores, out_labels, out_probs = [], [], [], []
    for label in sorted({int(p[2]) for p in pooled}):
        members = sorted((p for p in pooled if p[2] == label), key=lambda p: -p[1])
        clusters: list[list[tuple]] = []
        fused: list[np.ndarray] = []
        for item in members:
            best, best_iou = -1, iou_thresh
            if fused:
                ious = box_iou(item[0][None], np.stack(fused))[0]
                j = int(np.argmax(ious))
                if ious[j] > best_iou:
                    best = j
            if best < 0:
                clusters.append([item])
                fused.append(item[0].copy())
            else:
                clusters[best].append(item)
                fused[best] = _fuse_coords(clusters[best])
        for cluster, box in zip(clusters, fused):
            scores = np.array([c[1] for c in cluster])
            contributed = min(len(cluster), len(weights))
            out_boxes.append(box)
            out_scores.append(scores.mean() * contributed / weights.sum())
            out_labels.append(label)
            out_probs.append(
                np.average(np.stack([c[3] for c in cluster]), axis=0, weights=np.maximum(scores, 1e-12))
            )
    if not out_boxes:
        return BoxSet.empty(num_probs)
    return BoxSet(
        np.stack(out_boxes), np.array(out_scores), np.array(out_labels), np.stack(out_probs)
    ).sorted()


def _fuse_coords(cluster: list[tuple]) -> np.ndarray:
    scores = np.array([c[1] for c in cluster])
    boxes = np.stack([c[0] for c in cluster])
    return (boxes * scores[:, None]).sum(axis=0) / scores.sum()


def nms_merge(sets: Sequence[BoxSet], iou_thresh: float = 0.55, skip_score: float = 0.0) -> BoxSet:
    """Class-wise non-maximum suppression over the union of ``sets``."""
    if not sets:
        raise ValueError("nms_merge needs at least one set of boxes")
    num_probs = max((s.probs.shape[1] for s in sets if len(s)), default=0)
    nonempty = [s for s in sets if len(s)]
    if not nonempty:
        return BoxSet.empty(num_probs)
    union = BoxSet(
        np.concatenate([s.boxes for s in nonempty]),
        np.concatenate([s.scores for s in nonempty]),
        np.concatenate([s.labels for s in nonempty]),
        np.concatenate([s.probs for s in nonempty]),
    )
    union = union.select(np.flatnonzero(union.scores >= skip_score)).sorted()
    keep: list[int] = []
    suppressed = np.zeros(len(union), bool)
    for i in range(len(union)):
        if suppressed[i]:
            continue
        keep.append(i)
        same = union.labels == union.labels[i]
        overlap = box_iou(union.boxes[i][None], union.boxes)[0] > iou_thresh
        suppressed |= same & overlap
    return union.select(np.array(keep, dtype=np.int64))


def merge_box_sets(
    sets: Sequence[BoxSet], method: Literal["wbf", "nms"], iou_thresh: float, skip_score: float = 0.0
) -> BoxSet:
    """One set from several; a single set passes through unchanged (no score rescaling)."""
    if len(sets) == 1:
        return sets[0].sorted()
    if method == "wbf":
        return weighted_boxes_fusion(sets, iou_thresh, skip_score)
    if method == "nms":
        return nms_merge(sets, iou_thresh, skip_score)
    raise ValueError(f"unknown merge method {method!r}; expected 'wbf' or 'nms'")
