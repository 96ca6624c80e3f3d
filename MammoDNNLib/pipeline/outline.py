"""Lesion outlines from detection boxes.

Faster R-CNN gives boxes, but reports, segments and the localization and malignancy networks need a lesion
mask. :func:`outline_lesion` derives one inside the box on the prepared (gray-normalized) image:

* **masses, asymmetries** — ``otsu``: the box, lightly smoothed, thresholded by Otsu's method computed on the
  box's own pixels, kept inside an ellipse prior (the ellipse inscribed in the box, scaled by
  ``ellipse_slack`` and clipped to the box), opened, the component at (or nearest to) the box centre, holes
  filled. ``chan_vese``: scikit-image's morphological Chan-Vese level set started from the inscribed ellipse,
  with the same prior and clean-up. ``ellipse``: the inscribed ellipse.
* **calcification clusters** — bright specks (white top-hat of radius ``tophat_mm``, above ``tophat_sigmas``
  robust standard deviations of the box's top-hat values); the convex hull of the specks widened by
  ``calc_margin_mm`` (the way the phantom draws a cluster's outline), clipped to the box.
* **architectural distortions** — the inscribed ellipse (a distortion has no edge of its own to follow).

A segmentation whose area is implausible against the box (outside ``[min_area_fraction, max_area_fraction]``
of
the inscribed ellipse's area) or whose extent covers too little of the box falls back to the inscribed
ellipse;
:class:`Outline` says which method gave the mask and why a fallback happened.

Masks are :class:`~MammoDNNLib.geometry.LesionMask` crops. :func:`transfer_mask` carries one between grids
exactly through the view's :class:`~MammoDNNLib.geometry.Transform` (each target pixel takes the value of the
source pixel under its centre), without building a full-size array per finding. The inscribed-ellipse mask of
the original grid is drawn on the original grid itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..geometry import Box, LesionMask, Transform
from .config import OutlineConfig

log = logging.getLogger(__name__)

PointMap = Callable[[np.ndarray], np.ndarray]


@dataclass
class Outline:
    """A lesion's mask on the prepared grid and on the original grid, and how it was made."""

    prepared: LesionMask
    original: LesionMask
    method: str  # what made the mask: "otsu" | "chan_vese" | "tophat_hull" | "ellipse"
    attempted: str  # the method the finding type asked for
    fallback: str | None = None  # why the inscribed ellipse replaced the segmentation (None: no fallback)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "attempted": self.attempted,
            "fallback": self.fallback,
            "area_px": self.original.area,
        }


# -- geometry helpers
# -------------------------------------------------------------------------------------------
def box_pixels(box: Box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): the pixels whose centres lie in ``box`` (at least the one holding its centre),
    clipped."""
    x0, y0, x1, y1 = box
    rows, cols = shape
    c0, c1 = int(np.ceil(x0 - 0.5)), int(np.floor(x1 - 0.5)) + 1
    r0, r1 = int(np.ceil(y0 - 0.5)), int(np.floor(y1 - 0.5)) + 1
    if c1 <= c0:
        c0 = int(np.floor((x0 + x1) / 2.0))
        c1 = c0 + 1
    if r1 <= r0:
        r0 = int(np.floor((y0 + y1) / 2.0))
        r1 = r0 + 1
    c0, c1 = max(c0, 0), min(c1, cols)
    r0, r1 = max(r0, 0), min(r1, rows)
    return r0, max(r1, r0), c0, max(c1, c0)


def inscribed_ellipse(box: Box, shape: tuple[int, int], scale: float = 1.0) -> LesionMask:
    """The pixels whose centres lie in the ellipse inscribed in ``box`` (semi-axes scaled by ``scale``),
    clipped
    to the box and to ``shape`` = (rows, cols); at least the pixel under the box centre."""
    x0, y0, x1, y1 = box
    r0, r1, c0, c1 = box_pixels(box, shape)
    if r1 <= r0 or c1 <= c0:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    a, b = max((x1 - x0) / 2.0 * scale, 1e-6), max((y1 - y0) / 2.0 * scale, 1e-6)
    ys = np.arange(r0, r1) + 0.5
    xs = np.arange(c0, c1) + 0.5
    inside = ((xs[None, :] - cx) / a) ** 2 + ((ys[:, None] - cy) / b) ** 2 <= 1.0
    if not inside.any():
        r = min(max(int(np.floor(cy)), r0), r1 - 1) - r0
        c = min(max(int(np.floor(cx)), c0), c1 - 1) - c0
        inside[r, c] = True
    return LesionMask.from_full_crop(inside, (c0, r0))


def clip_to_box(mask: LesionMask, box: Box, shape: tuple[int, int]) -> LesionMask:
    """``mask`` restricted to the pixels whose centres lie in ``box``."""
    if mask.empty:
        return mask
    r0, r1, c0, c1 = box_pixels(box, shape)
    full_r0, full_c0 = mask.origin[1], mask.origin[0]
    rows, cols = mask.array.shape
    rr0, rr1 = max(r0, full_r0), min(r1, full_r0 + rows)
    cc0, cc1 = max(c0, full_c0), min(c1, full_c0 + cols)
    if rr1 <= rr0 or cc1 <= cc0:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    crop = mask.array[rr0 - full_r0 : rr1 - full_r0, cc0 - full_c0 : cc1 - full_c0]
    return LesionMask.from_full_crop(crop, (cc0, rr0))


def transfer_mask(
    mask: LesionMask, forward: PointMap, inverse: PointMap, shape: tuple[int, int]
) -> LesionMask:
    """Carry a mask from grid A to grid B (``shape`` = B's (rows, cols)): every B pixel whose centre maps
    (``inverse``: B -> A) into a mask pixel of A is set. ``forward`` (A -> B) only bounds the work to the
    mask's
    footprint. A mask too small to cover any B pixel centre keeps the B pixel under its centroid."""
    if mask.empty:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    x0, y0, x1, y1 = mask.box
    corners = forward(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64))
    rows, cols = shape
    c0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
    c1 = min(int(np.ceil(corners[:, 0].max())) + 1, cols)
    r0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
    r1 = min(int(np.ceil(corners[:, 1].max())) + 1, rows)
    if c1 <= c0 or r1 <= r0:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    source = inverse(np.column_stack([xs.ravel(), ys.ravel()]))
    sc = np.floor(source[:, 0]).astype(np.int64) - mask.origin[0]
    sr = np.floor(source[:, 1]).astype(np.int64) - mask.origin[1]
    h, w = mask.array.shape
    ok = (sr >= 0) & (sr < h) & (sc >= 0) & (sc < w)
    values = np.zeros(len(source), dtype=bool)
    values[ok] = mask.array[sr[ok], sc[ok]]
    values = values.reshape(ys.shape)
    if not values.any():
        rr, cc = np.nonzero(mask.array)
        centroid = np.array([[cc.mean() + 0.5 + mask.origin[0], rr.mean() + 0.5 + mask.origin[1]]])
        x, y = forward(centroid)[0]
        col, row = int(np.clip(np.floor(x), 0, cols - 1)), int(np.clip(np.floor(y), 0, rows - 1))
        return LesionMask(np.ones((1, 1), bool), (col, row))
    return LesionMask.from_full_crop(values, (c0, r0))


def prepared_to_original(mask: LesionMask, transform: Transform) -> LesionMask:
    """A prepared-grid mask on the original grid of its view."""
    width, height = transform.original_size
    return transfer_mask(mask, transform.to_original, transform.to_prepared, (height, width))


def original_to_prepared(mask: LesionMask, transform: Transform) -> LesionMask:
    """An original-grid mask on a prepared grid."""
    width, height = transform.prepared_size
    return transfer_mask(mask, transform.to_prepared, transform.to_original, (height, width))


# -- segmentation
# -----------------------------------------------------------------------------------------------
def _disk(radius_px: float) -> np.ndarray:
    from skimage.morphology import disk

    return disk(max(int(round(radius_px)), 0))


def _component_at_centre(mask: np.ndarray, centre_rc: tuple[float, float]) -> np.ndarray:
    """The connected component holding the centre pixel, else the one nearest to it."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    r = int(np.clip(np.floor(centre_rc[0]), 0, mask.shape[0] - 1))
    c = int(np.clip(np.floor(centre_rc[1]), 0, mask.shape[1] - 1))
    label = labels[r, c]
    if label == 0:
        rr, cc = np.nonzero(labels)
        nearest = int(np.argmin((rr + 0.5 - centre_rc[0]) ** 2 + (cc + 0.5 - centre_rc[1]) ** 2))
        label = labels[rr[nearest], cc[nearest]]
    return labels == label


def _core_and_ring(shape: tuple[int, int], box: Box, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The central half of the box's inscribed ellipse, and a ring from 1.2x that ellipse out to 1.2x + 3
    mm."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    a, b = max((x1 - x0) / 2.0, 0.5), max((y1 - y0) / 2.0, 0.5)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    radius = np.sqrt(((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2)
    reach = 3.0 / spacing_mm / max(min(a, b), 1.0)
    return radius <= 0.5, (radius > 1.2) & (radius <= 1.2 + reach)


def _dense_region(
    crop: np.ndarray,
    prior: np.ndarray,
    local_box: Box,
    centre_rc,
    spacing_mm: float,
    config: OutlineConfig,
    method: str,
) -> np.ndarray:
    """The dense lesion inside ``prior`` on a crop of the prepared image (mass / asymmetry)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(crop.astype(np.float64), config.smoothing_mm / spacing_mm)
    if method == "chan_vese":
        from skimage.segmentation import morphological_chan_vese

        scaled = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-9)
        region = morphological_chan_vese(
            scaled,
            config.chan_vese_iterations,
            init_level_set=prior.astype(np.int8),
            smoothing=config.chan_vese_smoothing,
        ).astype(bool)
        # The level set labels one phase 1; the lesion is the brighter one.
        if region.any() and (~region).any() and smooth[region].mean() < smooth[~region].mean():
            region = ~region
    else:
        # The lesion against its surroundings: the box's ellipse and a ring just outside it.
        core, ring = _core_and_ring(prior.shape, local_box, spacing_mm)
        if method == "midpoint":
            if not core.any() or not ring.any():
                return np.zeros_like(prior)
            inside, outside = float(np.median(smooth[core])), float(np.median(smooth[ring]))
            if inside <= outside:
                return np.zeros_like(prior)
            threshold = 0.5 * (inside + outside)
        else:
            values = smooth[prior | ring]
            if values.size < 4 or np.ptp(values) <= 0:
                return np.zeros_like(prior)
            threshold = threshold_otsu(values)
        region = smooth > threshold
    region &= prior
    radius = config.opening_mm / spacing_mm
    if radius >= 1.0:
        opened = ndimage.binary_opening(region, structure=_disk(radius))
        region = opened if opened.any() else region
    region = ndimage.binary_fill_holes(_component_at_centre(region, centre_rc))
    sigma = config.boundary_smoothing_mm / spacing_mm
    if sigma > 0 and region.any():
        # Texture overlapping the lesion makes the raw edge ragged; a lesion's outline is smoother than that.
        smoothed = ndimage.gaussian_filter(region.astype(np.float64), sigma) > 0.5
        region = _component_at_centre(smoothed & prior, centre_rc) if (smoothed & prior).any() else region
    return region


def _speck_hull(
    crop: np.ndarray, box_in_crop: np.ndarray, spacing_mm: float, config: OutlineConfig
) -> np.ndarray:
    """Convex hull of the bright specks in the box, widened (calcification clusters); empty when too few."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image, white_tophat

    tophat = white_tophat(crop.astype(np.float64), _disk(max(config.tophat_mm / spacing_mm, 1.0)))
    values = tophat[box_in_crop]
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median)))
    if spread <= 0:
        spread = float(values.std()) or 1e-6
    specks = (tophat > median + config.tophat_sigmas * spread) & box_in_crop
    _, count = ndimage.label(specks)
    if count < config.min_specks:
        return np.zeros_like(specks)
    if specks.sum() >= 3:
        try:
            hull = convex_hull_image(specks)
        except ValueError:  # collinear points: the specks themselves
            hull = specks
    else:
        hull = specks
    radius = config.calc_margin_mm / spacing_mm
    if radius >= 0.5:
        hull = ndimage.binary_dilation(hull, structure=_disk(max(radius, 1.0)))
    return hull & box_in_crop


def _plausible(mask: LesionMask, ellipse: LesionMask, box: Box, config: OutlineConfig) -> str | None:
    """None when ``mask`` is a plausible outline for ``box``; else the reason it is not."""
    if mask.empty:
        return "the segmentation found nothing"
    ratio = mask.area / max(ellipse.area, 1)
    if ratio < config.min_area_fraction:
        return f"the segmentation covers {ratio:.2f} of the box's ellipse (< {config.min_area_fraction})"
    if ratio > config.max_area_fraction:
        return f"the segmentation covers {ratio:.2f} of the box's ellipse (> {config.max_area_fraction})"
    x0, y0, x1, y1 = box
    mx0, my0, mx1, my1 = mask.box
    extent = min((mx1 - mx0) / max(x1 - x0, 1e-9), (my1 - my0) / max(y1 - y0, 1e-9))
    if extent < config.min_extent_fraction:
        return f"the segmentation spans {extent:.2f} of the box (< {config.min_extent_fraction})"
    return None


def segment_prepared(
    image: np.ndarray, box: Box, finding_type: str, spacing_mm: float, config: OutlineConfig | None = None
) -> tuple[LesionMask, str, str | None]:
    """(mask on the prepared grid, method, fallback reason) for a lesion of ``finding_type`` in ``box``
    (prepared pixel edges) of the gray-normalized prepared ``image``."""
    config = config or OutlineConfig()
    shape = image.shape[:2]
    ellipse = inscribed_ellipse(box, shape)
    method = {
        "mass": config.mass_method,
        "asymmetry": config.asymmetry_method,
        "calcification": "tophat_hull",
    }.get(finding_type, "ellipse")
    if method == "ellipse" or ellipse.empty:
        return ellipse, "ellipse", None
    r0, r1, c0, c1 = box_pixels(box, shape)
    margin = int(np.ceil(max(config.tophat_mm, config.smoothing_mm * 2, 4.0) / spacing_mm)) + 1
    R0, R1 = max(r0 - margin, 0), min(r1 + margin, shape[0])
    C0, C1 = max(c0 - margin, 0), min(c1 + margin, shape[1])
    crop = np.asarray(image[R0:R1, C0:C1], dtype=np.float64)
    local_box = (box[0] - C0, box[1] - R0, box[2] - C0, box[3] - R0)
    crop_shape = crop.shape
    in_box = np.zeros(crop_shape, bool)
    in_box[r0 - R0 : r1 - R0, c0 - C0 : c1 - C0] = True
    if method == "tophat_hull":
        region = _speck_hull(crop, in_box, spacing_mm, config)
    else:
        prior = inscribed_ellipse(local_box, crop_shape, config.ellipse_slack).full(crop_shape) & in_box
        centre_rc = ((local_box[1] + local_box[3]) / 2.0, (local_box[0] + local_box[2]) / 2.0)
        region = _dense_region(crop, prior, local_box, centre_rc, spacing_mm, config, method)
    mask = LesionMask.from_full_crop(region, (C0, R0))
    problem = _plausible(mask, ellipse, box, config)
    if problem is not None:
        return ellipse, method, problem
    return mask, method, None


def outline_lesion(
    prepared_view,
    box_prepared: Box,
    box_original: Box,
    finding_type: str,
    config: OutlineConfig | None = None,
    original_pixels: np.ndarray | None = None,
) -> Outline:
    """The lesion's :class:`Outline` (prepared and original grids) from its detection boxes.

    ``prepared_view`` needs ``image``, ``transform`` and ``spacing_mm`` (a ``preprocess.PreparedView``). The
    original-grid mask is the prepared one carried over exactly, restricted to the original box; where the
    inscribed ellipse is the answer it is drawn on the original grid directly. Calcification specks are often
    finer than the prepared grid: with ``original_pixels`` (the view's pixels) and ``config.calc_working_mm``
    set,
    a cluster is segmented on the original image resampled to that spacing (``gray`` of the prepared view maps
    it to the same gray levels) and the prepared mask is carried from there.
    """
    config = config or OutlineConfig()
    transform: Transform = prepared_view.transform
    width, height = transform.original_size
    original_shape = (height, width)
    if finding_type == "calcification" and original_pixels is not None and config.calc_working_mm > 0:
        original, fallback = _fine_calcification(original_pixels, prepared_view, box_original, config)
        if fallback is None:
            prepared = original_to_prepared(original, transform)
            return Outline(prepared, original, "tophat_hull_fine", "tophat_hull_fine", None)
        ellipse = inscribed_ellipse(box_original, original_shape)
        return Outline(
            original_to_prepared(ellipse, transform), ellipse, "ellipse", "tophat_hull_fine", fallback
        )
    prepared, method, fallback = segment_prepared(
        prepared_view.image, box_prepared, finding_type, float(prepared_view.spacing_mm), config
    )
    if method == "ellipse" or fallback is not None:
        original = inscribed_ellipse(box_original, original_shape)
    elif config.fit_ellipse and method in ("otsu", "midpoint", "chan_vese"):
        # The segmentation places and sizes the lesion; its outline is the ellipse of the same second moments,
        # drawn exactly on the original grid through the transform.
        prepared = moment_ellipse(prepared, image_shape(prepared_view))
        original = clip_to_box(
            draw_on_grid(prepared, transform, original_shape), box_original, original_shape
        )
    else:
        original = clip_to_box(prepared_to_original(prepared, transform), box_original, original_shape)
        if original.empty:
            original = inscribed_ellipse(box_original, original_shape)
            fallback = "the segmentation vanished on the original grid"
    if fallback is not None:
        log.debug("outline of a %s at %s: %s; inscribed ellipse used", finding_type, box_original, fallback)
    return Outline(prepared, original, "ellipse" if fallback is not None else method, method, fallback)


def _fine_calcification(
    pixels: np.ndarray, prepared_view, box: Box, config: OutlineConfig
) -> tuple[LesionMask, str | None]:
    """A cluster's hull segmented on the original pixels around ``box`` at ``calc_working_mm`` (never finer
    than
    the original), as an original-grid mask; (ellipse-free) reason when implausible."""
    from skimage.transform import resize

    rows_mm, cols_mm = (float(v) for v in prepared_view.original_spacing)
    shape = pixels.shape[:2]
    working = max(config.calc_working_mm, min(rows_mm, cols_mm))
    margin_mm = config.tophat_mm + config.calc_margin_mm + 1.0
    x0, y0, x1, y1 = box
    c0 = max(int(np.floor(x0 - margin_mm / cols_mm)), 0)
    c1 = min(int(np.ceil(x1 + margin_mm / cols_mm)), shape[1])
    r0 = max(int(np.floor(y0 - margin_mm / rows_mm)), 0)
    r1 = min(int(np.ceil(y1 + margin_mm / rows_mm)), shape[0])
    crop = np.asarray(pixels[r0:r1, c0:c1], dtype=np.float64)
    size = (
        max(1, int(round((r1 - r0) * rows_mm / working))),
        max(1, int(round((c1 - c0) * cols_mm / working))),
    )
    if size != crop.shape:
        crop = resize(
            crop, size, order=1, mode="edge", anti_aliasing=size[0] < crop.shape[0], preserve_range=True
        )
    crop = prepared_view.gray.apply(crop).astype(np.float64)
    sy, sx = size[0] / (r1 - r0), size[1] / (c1 - c0)  # working pixels per original pixel

    def to_working(points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - [c0, r0]) * [sx, sy]

    def to_original(points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) / [sx, sy] + [c0, r0]

    local_box = tuple(to_working(np.array([[x0, y0], [x1, y1]])).ravel())
    br0, br1, bc0, bc1 = box_pixels(local_box, size)
    in_box = np.zeros(size, bool)
    in_box[br0:br1, bc0:bc1] = True
    hull = _speck_hull(crop, in_box, working, config)
    if not hull.any():
        return LesionMask(np.zeros((0, 0), bool), (0, 0)), "fewer specks than min_specks"
    original = clip_to_box(
        transfer_mask(LesionMask.from_full(hull), to_original, to_working, shape), box, shape
    )
    problem = _plausible(original, inscribed_ellipse(box, shape), box, config)
    return original, problem


def image_shape(prepared_view) -> tuple[int, int]:
    return tuple(prepared_view.image.shape[:2])  # type: ignore[return-value]


def _moments(mask: LesionMask) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) and covariance of a mask's pixel area (each pixel a uniform square)."""
    rows, cols = np.nonzero(mask.array)
    xy = np.column_stack([cols + 0.5 + mask.origin[0], rows + 0.5 + mask.origin[1]]).astype(np.float64)
    centre = xy.mean(axis=0)
    cov = np.cov(xy, rowvar=False, bias=True) if len(xy) > 1 else np.zeros((2, 2))
    return centre, cov + np.eye(2) / 12.0


def _ellipse_inside(points: np.ndarray, centre: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Points inside the ellipse whose uniform area has covariance ``cov`` (semi-axes 2 sqrt(eigenvalues))."""
    d = points - centre
    return np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) <= 4.0


def moment_ellipse(mask: LesionMask, shape: tuple[int, int]) -> LesionMask:
    """The ellipse with the same area moments as ``mask``, on the same grid."""
    centre, cov = _moments(mask)
    half = 2.0 * np.sqrt(np.diag(cov)) + 1.0
    box = (centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1])
    r0, r1, c0, c1 = box_pixels(box, shape)
    xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    inside = _ellipse_inside(np.column_stack([xs.ravel(), ys.ravel()]), centre, cov).reshape(xs.shape)
    return LesionMask.from_full_crop(inside, (c0, r0)) if inside.any() else mask


def draw_on_grid(
    ellipse_mask: LesionMask, transform: Transform, original_shape: tuple[int, int]
) -> LesionMask:
    """The moment ellipse of a prepared-grid mask drawn on the original grid (pixel centres mapped
    exactly)."""
    centre, cov = _moments(ellipse_mask)
    x0, y0, x1, y1 = ellipse_mask.box
    corners = transform.to_original(np.array([[x0, y0], [x1, y1]], dtype=np.float64))
    box = (corners[:, 0].min() - 1, corners[:, 1].min() - 1, corners[:, 0].max() + 1, corners[:, 1].max() + 1)
    r0, r1, c0, c1 = box_pixels(box, original_shape)
    xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    points = transform.to_prepared(np.column_stack([xs.ravel(), ys.ravel()]))
    inside = _ellipse_inside(points, centre, cov).reshape(xs.shape)
    if not inside.any():
        return prepared_to_original(ellipse_mask, transform)
    return LesionMask.from_full_crop(inside, (c0, r0))


def dice(a: LesionMask, b: LesionMask) -> float:
    """Dice coefficient of two masks on the same grid (1 when both are empty)."""
    if a.empty and b.empty:
        return 1.0
    x0 = min(a.origin[0], b.origin[0])
    y0 = min(a.origin[1], b.origin[1])
    x1 = max(a.origin[0] + a.array.shape[1], b.origin[0] + b.array.shape[1])
    y1 = max(a.origin[1] + a.array.shape[0], b.origin[1] + b.array.shape[0])
    shape = (y1 - y0, x1 - x0)
    fa = LesionMask(a.array, (a.origin[0] - x0, a.origin[1] - y0)).full(shape)
    fb = LesionMask(b.array, (b.origin[0] - x0, b.origin[1] - y0)).full(shape)
    total = int(fa.sum() + fb.sum())
    return 2.0 * int((fa & fb).sum()) / total if total else 1.0
