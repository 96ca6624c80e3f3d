"""Training augmentation of a whole study (numpy): random rescale with crop (0.8-1.2x) and horizontal flip.

One draw per study (:class:`StudyAugmentation`): the scale, the flip and the crop position are the same for
every view, so the detector's left-right fusion still sees mirrored contralateral pairs and its CC-MLO fusion
views of one breast at one scale.

Per view, with prepared size ``(W, H)`` and scale ``s``:

- ``s > 1``: the view is enlarged by ``s`` and a ``W x H`` window is cut from it at the study's relative
  position ``(u, v)`` in ``[0, 1]^2`` (0 = left/top edge, 1 = right/bottom edge, in the prepared grid);
- ``s <= 1``: the whole view is shrunk by ``s`` (no padding: the detector takes images of any size);
- then, if the study is flipped, the result is mirrored left-right.

The window is snapped to whole ORIGINAL pixels, so the result is again an exact :class:`~MammoDNNLib.geometry.
Transform` of the original image: predictions on an augmented view map back to the original grid with its
``transform``. Pixels are resampled from the prepared image (bilinear; Gaussian pre-filter when shrinking),
masks with nearest neighbour. Boxes follow the transform, are clipped to the new image and dropped when less
than ``min_visible_fraction`` (default one half) of their area stays visible - a lesion mostly cut off would
teach the detector that a fragment of its border is a whole lesion (and a cut box thinner than
``min_box_side`` prepared pixels is dropped too, where asked).

This is the one augmentation of the library: :class:`~MammoDNNLib.data.dataset.StudyDataset` applies it per
item, and the detector's training loop (:func:`MammoDNNLib.training.batches.training_batch`) per drawn study.

Everything is deterministic for a given :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import LesionMask, Transform
from .samples import StudySample, ViewSample, ViewTarget


@dataclass(frozen=True)
class AugmentConfig:
    scale_range: tuple[float, float] = (0.8, 1.2)
    horizontal_flip: float = 0.5  # probability of mirroring a whole study
    min_visible_fraction: float = 0.5  # a box keeping less of its area than this after cropping is dropped
    min_box_side: float = 0.0  # a box the crop cuts to a side shorter than this (prepared pixels) is dropped

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range {self.scale_range} must satisfy 0 < low <= high")
        if not 0 <= self.horizontal_flip <= 1:
            raise ValueError(f"horizontal_flip {self.horizontal_flip} is a probability")
        if not 0 <= self.min_visible_fraction <= 1:
            raise ValueError(f"min_visible_fraction {self.min_visible_fraction} must be in [0, 1]")
        if self.min_box_side < 0:
            raise ValueError(f"min_box_side {self.min_box_side} must not be negative")


@dataclass(frozen=True)
class StudyAugmentation:
    """One study's draw."""

    scale: float
    flip: bool
    position: tuple[float, float]  # (u, v): where the crop window sits within the enlarged view, 0..1


def draw_augmentation(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> StudyAugmentation:
    scale = float(rng.uniform(*config.scale_range))
    flip = bool(rng.random() < config.horizontal_flip)
    u, v = (float(x) for x in rng.random(2))
    return StudyAugmentation(scale, flip, (u, v))


def augment_study(
    sample: StudySample, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> StudySample:
    """A new, augmented sample (the input is not modified)."""
    params = draw_augmentation(rng, config)
    return apply_augmentation(sample, params, config)


def apply_augmentation(
    sample: StudySample, params: StudyAugmentation, config: AugmentConfig = AugmentConfig()
) -> StudySample:
    views = {key: augment_view(view, params, config) for key, view in sample.views.items()}
    return StudySample(sample.study_id, views, sample.labelled)


def augmented_transform(transform: Transform, params: StudyAugmentation) -> Transform:
    """The original -> augmented transform of a view prepared with ``transform``."""
    width, height = transform.prepared_size
    s = params.scale
    if s > 1.0:
        # The window in the (unscaled) prepared grid, then in the original grid, snapped to whole pixels.
        u, v = params.position
        win_w, win_h = width / s, height / s
        px0, py0 = u * (width - win_w), v * (height - win_h)
        corners = transform.to_original([(px0, py0), (px0 + win_w, py0 + win_h)])
        x0, x1 = sorted(corners[:, 0])
        y0, y1 = sorted(corners[:, 1])
        cx0, cy0, cx1, cy1 = transform.crop
        ix0, ix1 = _snap(x0, x1, cx0, cx1)
        iy0, iy1 = _snap(y0, y1, cy0, cy1)
        sx, sy = transform.scale
        # Snapping can widen the window by a fraction of a pixel; the view never grows past its prepared size
        # (a pixel more could cost the training batch a whole size_divisible step of padding).
        size = (
            min(width, max(1, round((ix1 - ix0) * sx * s))),
            min(height, max(1, round((iy1 - iy0) * sy * s))),
        )
        crop = (ix0, iy0, ix1, iy1)
    else:
        crop = transform.crop
        size = (max(1, round(width * s)), max(1, round(height * s)))
    return Transform(transform.original_size, crop, size, transform.flip_x != params.flip)


def augment_view(
    view: ViewSample, params: StudyAugmentation, config: AugmentConfig = AugmentConfig()
) -> ViewSample:
    old = view.transform
    new = augmented_transform(old, params)
    # prepared-old coordinates of augmented-grid points: old.matrix @ inv(new.matrix), axis-aligned.
    composite = old.matrix() @ np.linalg.inv(new.matrix())
    shape = (new.prepared_size[1], new.prepared_size[0])
    image = _resample(view.image.astype(np.float32, copy=False), composite, shape, order=1, smooth=True)
    breast = _resample(view.breast_mask.astype(np.uint8), composite, shape, order=0, smooth=False).astype(
        bool
    )
    target = None if view.target is None else _target(view.target, old, new, composite, shape, config)
    return ViewSample(view.key, image, breast, new, target, view.source)


def _snap(lo: float, hi: float, low_limit: int, high_limit: int) -> tuple[int, int]:
    a = min(max(int(round(lo)), low_limit), high_limit - 1)
    b = max(min(int(round(hi)), high_limit), a + 1)
    return a, b


def _resample(
    array: np.ndarray, composite: np.ndarray, shape: tuple[int, int], *, order: int, smooth: bool
) -> np.ndarray:
    """Sample ``array`` (old prepared grid) on the new grid: new pixel centre -> old point -> old index.

    The map is axis-aligned, so the interpolation is separable: rows, then columns (``order`` 1: bilinear,
    0: nearest; edge pixels extend beyond the array). This gives ``scipy.ndimage.affine_transform``'s values
    (mode "nearest") several times faster, which matters in the detector's training loop.
    """
    mx, tx = composite[0, 0], composite[0, 2]
    my, ty = composite[1, 1], composite[1, 2]
    source = array
    if smooth:
        from scipy import ndimage as ndi

        # Shrinking by f (|m| > 1 old pixels per new pixel) aliases without a low-pass first.
        sigma = (max(0.0, (abs(my) - 1.0) / 2.0), max(0.0, (abs(mx) - 1.0) / 2.0))
        if max(sigma) > 0.05:
            source = ndi.gaussian_filter(array, sigma, mode="nearest")
    # output index (r, c) = centre (c + .5, r + .5) -> old point (mx (c + .5) + tx, ...) -> old index (- .5)
    rows = my * (np.arange(shape[0]) + 0.5) + ty - 0.5
    cols = mx * (np.arange(shape[1]) + 0.5) + tx - 0.5
    if order == 0:
        r = np.clip(np.floor(rows + 0.5).astype(np.intp), 0, source.shape[0] - 1)
        c = np.clip(np.floor(cols + 0.5).astype(np.intp), 0, source.shape[1] - 1)
        return source[r][:, c]
    r0, r1, wr = _linear_taps(rows, source.shape[0], source.dtype)
    c0, c1, wc = _linear_taps(cols, source.shape[1], source.dtype)
    along_rows = source[r0] * (1 - wr)[:, None] + source[r1] * wr[:, None]
    return along_rows[:, c0] * (1 - wc) + along_rows[:, c1] * wc


def _linear_taps(position: np.ndarray, size: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two neighbouring indices (clamped to the array) and the weight of the second, per position."""
    low = np.floor(position)
    weight = (position - low).astype(dtype if np.issubdtype(dtype, np.floating) else np.float32)
    low = low.astype(np.intp)
    return np.clip(low, 0, size - 1), np.clip(low + 1, 0, size - 1), weight


def _target(
    target: ViewTarget,
    old: Transform,
    new: Transform,
    composite: np.ndarray,
    shape: tuple[int, int],
    config: AugmentConfig,
) -> ViewTarget:
    height, width = shape
    if len(target.boxes) == 0:
        return ViewTarget(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.int64),
            [],
            None if target.masks is None else [],
            [],
        )
    mapped = new.boxes_to_prepared(old.boxes_to_original(target.boxes.astype(np.float64)))
    clipped = mapped.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, width)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, height)
    area = (mapped[:, 2] - mapped[:, 0]) * (mapped[:, 3] - mapped[:, 1])
    visible = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(
        clipped[:, 3] - clipped[:, 1], 0, None
    )
    fraction = np.where(area > 0, visible / np.maximum(area, 1e-12), 0.0)
    cut = np.any(clipped != mapped, axis=1)
    thin = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]) < config.min_box_side
    keep = np.flatnonzero((visible > 0) & (fraction >= config.min_visible_fraction - 1e-9) & ~(cut & thin))
    masks = None
    if target.masks is not None:
        masks = [_map_mask(target.masks[i], composite, shape, old) for i in keep]
    attributes = [target.attributes[i] for i in keep] if len(target.attributes) == len(target.boxes) else []
    return ViewTarget(
        clipped[keep].astype(np.float32),
        target.labels[keep],
        [target.lesion_ids[i] for i in keep],
        masks,
        attributes,
    )


def _map_mask(mask: LesionMask, composite: np.ndarray, shape: tuple[int, int], old: Transform) -> LesionMask:
    if mask.empty:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    # Only the part of the new grid that can see the mask is resampled.
    inverse = np.linalg.inv(composite)
    x0, y0, x1, y1 = mask.box
    corners = np.array([[x0, y0, 1.0], [x1, y1, 1.0]]) @ inverse.T
    cx0 = max(int(math.floor(min(corners[:, 0]))) - 1, 0)
    cx1 = min(int(math.ceil(max(corners[:, 0]))) + 1, shape[1])
    cy0 = max(int(math.floor(min(corners[:, 1]))) - 1, 0)
    cy1 = min(int(math.ceil(max(corners[:, 1]))) + 1, shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    full = mask.full((old.prepared_size[1], old.prepared_size[0])).astype(np.uint8)
    # Shift the composite so that output index (0, 0) is new pixel (cy0, cx0).
    shifted = composite @ np.array([[1.0, 0.0, cx0], [0.0, 1.0, cy0], [0.0, 0.0, 1.0]])
    part = _resample(full, shifted, (cy1 - cy0, cx1 - cx0), order=0, smooth=False).astype(bool)
    return LesionMask.from_full_crop(part, (cx0, cy0))
