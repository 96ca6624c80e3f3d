"""Prepare a view as the study describes: breast mask, crop, orientation, resampling, gray normalization.

For each :class:`~MammoDNNLib.study.View`:

1. **Breast segmentation** on a coarse working grid (``segmentation_spacing_mm``): Gaussian smoothing, a
   triangle-method threshold on the gray-level histogram (the histogram peak is taken on the background side;
   film padding at the image minimum is left out when a film background of its own is present), holes filled,
   the largest component after a small opening (which detaches labels and film-edge strips touching the
   breast), grown back to full detail within the threshold mask; then extended over the faint periphery
   towards the skin line (a bounded hysteresis) and brought back to the original grid.
2. **Orientation**: the chest-wall side is read from the image content (the breast meets the chest wall along
   a straight vertical edge and curves towards the nipple); the laterality convention (IHE:
   right breast, chest wall on the image's right edge; left breast, left edge) is recorded beside it and a
   warning is given when the two disagree. Prepared images are flipped left-right so that the chest wall is on
   the LEFT; they are never flipped vertically (the top is assumed superior on MLO and lateral on CC, as IHE
   displays them).
3. **Crop** to the mask's bounding box plus ``crop_margin_mm``, **resample** to ``spacing_mm`` square pixels
   and **flip**; :class:`~MammoDNNLib.geometry.Transform` records crop, size and flip so every result maps
   back to the original pixel grid exactly.
4. **Gray mapping**: a linear map sending the ``low_percentile`` / ``high_percentile`` breast-pixel values to
   0 / 1 (defaults 5 / 95: 5 % of breast pixels below 0, 90 % in [0, 1], 5 % above 1).
5. **Landmarks** (:mod:`MammoDNNLib.landmarks`): nipple, pectoral line (MLO) and chest-wall edge in original
   pixels.

:func:`write_preprocessed` writes the per-view files and ``preprocess.json`` (schema in
``docs/preprocessing.md``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError
from .geometry import Transform
from .landmarks import LandmarkConfig, Landmarks, find_landmarks, resample
from .study import Study, View

log = logging.getLogger(__name__)

PREPROCESS_SCHEMA = "mammodnn.preprocess"
PREPROCESS_SCHEMA_VERSION = 1
# 16-bit PNG encoding of prepared images: 0 stands for PNG_VALUE_RANGE[0], 65535 for PNG_VALUE_RANGE[1];
# values outside are clipped (outside the breast that is background only).
PNG_VALUE_RANGE: tuple[float, float] = (-0.5, 1.5)
PREPARED_CHEST_WALL_SIDE = "left"
SUPERIOR_ASSUMPTION = (
    "top of the image (assumed: IHE orientation; MLO superior, CC lateral at the top); "
    "never flipped vertically"
)
MIN_IMAGE_PIXELS = 32  # a side
MIN_IMAGE_MM = 20.0  # a side


@dataclass
class PreprocessConfig:
    """Every option of the preparation with its default (JSON: :meth:`to_dict` / :meth:`from_dict`)."""

    spacing_mm: float = 0.15  # prepared pixel size (square)
    low_percentile: float = 5.0  # breast-pixel percentile mapped to 0
    high_percentile: float = 95.0  # breast-pixel percentile mapped to 1
    chest_wall_side: str = PREPARED_CHEST_WALL_SIDE  # side of the chest wall in every prepared image (fixed)
    # Segmentation (millimetres).
    segmentation_spacing_mm: float = 0.5  # working grid of the segmentation (never finer than the input)
    smoothing_mm: float = 1.0  # Gaussian sigma before the triangle threshold
    fine_smoothing_mm: float = 0.3  # Gaussian sigma when the mask edge is sharpened on the original grid
    histogram_bins: int = 256
    periphery_mm: float = 10.0  # reach of the faint-periphery extension beyond the triangle mask (0: off)
    # Periphery threshold: this fraction of the way from the background peak to the triangle threshold, and at
    # least this many background standard deviations above the peak (and above the nearby background).
    periphery_fraction: float = 1.0 / 3.0
    background_sigmas: float = 4.0
    opening_mm: float = 6.0  # opening that detaches labels, edge strips and edge glow before the largest part
    crop_margin_mm: float = 2.0  # margin around the breast's bounding box, clipped to the image
    min_breast_area_mm2: float = 400.0  # smaller largest components mean "no breast found" (InputError)
    small_breast_fraction: float = 0.05  # warn when the breast covers less than this fraction of the image
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)

    def __post_init__(self) -> None:
        if isinstance(self.landmarks, dict):
            self.landmarks = LandmarkConfig.from_dict(self.landmarks)
        if self.spacing_mm <= 0 or self.segmentation_spacing_mm <= 0:
            raise ValueError("spacings must be positive")
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise ValueError("need 0 <= low_percentile < high_percentile <= 100")
        if self.chest_wall_side != PREPARED_CHEST_WALL_SIDE:
            raise ValueError("prepared views always have the chest wall on the left (chest_wall_side='left')")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["landmarks"] = self.landmarks.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing option(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@dataclass(frozen=True)
class GrayMapping:
    """The linear gray map ``(value - low) / (high - low)``; ``low``, ``high``: original pixel values."""

    low: float
    high: float
    low_percentile: float
    high_percentile: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float32) - self.low) / (self.high - self.low)).astype(np.float32)

    def invert(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32) * (self.high - self.low) + self.low

    def to_dict(self) -> dict:
        return {
            "low": float(self.low),
            "high": float(self.high),
            "low_percentile": self.low_percentile,
            "high_percentile": self.high_percentile,
            "formula": "(value - low) / (high - low)",
        }


@dataclass(frozen=True)
class Segmentation:
    """How the breast mask was made (the mask itself lives on :class:`PreparedView`)."""

    threshold: float  # gray level (original units) above which smoothed pixels are breast candidates
    working_spacing_mm: tuple[float, float]  # (row, col) of the segmentation grid
    padding_excluded: bool  # film padding at the image minimum was left out of the histogram
    area_mm2: float
    borders_touched: tuple[str, ...]  # image borders the breast mask reaches

    def to_dict(self) -> dict:
        return {
            "method": "triangle threshold (background-side peak) on the smoothed histogram, holes filled, "
            "largest "
            "component after opening",
            "threshold": float(self.threshold),
            "working_spacing_mm": [float(v) for v in self.working_spacing_mm],
            "padding_excluded_from_histogram": self.padding_excluded,
            "breast_area_mm2": round(float(self.area_mm2), 1),
            "borders_touched": list(self.borders_touched),
        }


@dataclass(frozen=True)
class Orientation:
    """Where the chest wall is in the original image and how that was decided."""

    chest_wall_side: str  # "left" | "right" in the ORIGINAL image
    source: str  # "image content: ..." or "laterality convention: ..."
    content_side: str | None  # what the image content says (None when inconclusive)
    convention_side: str  # what the laterality says under the IHE convention
    agrees_with_convention: bool | None  # None when the content was inconclusive
    evidence: dict  # the measurements behind content_side
    superior: str = SUPERIOR_ASSUMPTION

    @property
    def flip_x(self) -> bool:
        return self.chest_wall_side != PREPARED_CHEST_WALL_SIDE

    def to_dict(self) -> dict:
        return {
            "chest_wall_side_in_original": self.chest_wall_side,
            "source": self.source,
            "content_side": self.content_side,
            "laterality_convention_side": self.convention_side,
            "agrees_with_convention": self.agrees_with_convention,
            "evidence": self.evidence,
            "superior": self.superior,
            "prepared_chest_wall_side": PREPARED_CHEST_WALL_SIDE,
        }


@dataclass
class PreparedView:
    """A view prepared for the models, with everything needed to map results back to its original grid."""

    key: str  # "R-CC", ...
    image: np.ndarray  # (H, W) float32, prepared grid, gray-normalized
    breast_mask: np.ndarray  # (H, W) bool, prepared grid
    transform: Transform  # original <-> prepared (crop in original pixels, prepared size, flip_x)
    gray: GrayMapping
    landmarks: Landmarks  # original pixels
    orientation: Orientation
    segmentation: Segmentation
    spacing_mm: float  # prepared pixel size
    original_spacing: tuple[float, float]  # (row, col) mm of the original grid
    laterality: str
    view: str
    source: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def chest_wall_side(self) -> str:
        """Chest-wall side in the ORIGINAL image ("left"/"right"); prepared images have it on the left."""
        return self.orientation.chest_wall_side

    def original_breast_mask(self) -> np.ndarray:
        """The breast mask on the full original grid (bool, original rows x cols)."""
        return original_breast_mask(self)

    def to_dict(self) -> dict:
        """JSON-able record of the preparation (no pixel arrays); original pixels throughout."""
        return {
            "key": self.key,
            "source": self.source,
            "laterality": self.laterality,
            "view": self.view,
            "original_size": list(self.transform.original_size),
            "original_spacing_mm": [float(v) for v in self.original_spacing],
            "crop_box": list(self.transform.crop),
            "prepared_size": list(self.transform.prepared_size),
            "prepared_spacing_mm": float(self.spacing_mm),
            "scale": [float(v) for v in self.transform.scale],
            "flip_x": bool(self.transform.flip_x),
            "transform": self.transform.to_dict(),
            "orientation": self.orientation.to_dict(),
            "gray_mapping": self.gray.to_dict(),
            "segmentation": self.segmentation.to_dict(),
            "nipple": None if self.landmarks.nipple is None else self.landmarks.nipple.to_dict(),
            "pectoral_line": None if self.landmarks.pectoral is None else self.landmarks.pectoral.to_dict(),
            "chest_wall_line": self.landmarks.chest_wall.to_dict(),
            "landmark_details": self.landmarks.details,
            "warnings": list(self.warnings),
        }


def original_breast_mask(prepared: PreparedView) -> np.ndarray:
    """The prepared breast mask on the full original grid (nearest neighbour, False outside the crop)."""
    return prepared.transform.mask_to_original(prepared.breast_mask.astype(np.uint8)).astype(bool)


# ------------------------------------------------------------------------------------------------------------
# Segmentation
# ------------------------------------------------------------------------------------------------------------


def _validate_pixels(pixels: np.ndarray, spacing: tuple[float, float], source) -> np.ndarray:
    image = np.asarray(pixels)
    if image.ndim != 2:
        raise InputError(source, f"expected a 2-D image, got shape {image.shape}")
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise InputError(source, f"pixels must be numbers, got {image.dtype}")
    image = image.astype(np.float32, copy=False)
    bad = ~np.isfinite(image)
    if bad.any():
        raise InputError(source, f"{int(bad.sum())} pixel(s) are NaN or infinite")
    rows, cols = image.shape
    if not all(s > 0 and np.isfinite(s) for s in spacing):
        raise InputError(source, f"pixel spacing must be positive, got {spacing}")
    if min(rows, cols) < MIN_IMAGE_PIXELS or min(rows * spacing[0], cols * spacing[1]) < MIN_IMAGE_MM:
        raise InputError(
            source,
            f"image is too small to hold a breast: {cols} x {rows} pixels = {cols * spacing[1]:.1f} x "
            f"{rows * spacing[0]:.1f} mm (need at least {MIN_IMAGE_PIXELS} pixels and {MIN_IMAGE_MM:g} mm "
            "a side)",
        )
    if float(image.max()) == float(image.min()):
        raise InputError(source, f"image is blank (every pixel is {float(image.min()):g}); no breast found")
    return image


def triangle_threshold(values: np.ndarray, nbins: int = 256) -> tuple[float, float]:
    """Triangle-method threshold (Zack et al. 1977) with the peak taken on the background side.

    ImageJ's and scikit-image's versions start the triangle at the global histogram maximum; on digitized film
    that can be a bright film-edge strip, and once film padding is left out it can be the breast itself. Here
    the peak is the highest bin darker than the Otsu threshold (the background mode), the triangle's far end
    is the 99.9th percentile at zero height, and the threshold is the bin farthest below that line. Returns
    ``(threshold, peak value)``.
    """
    from skimage.filters import threshold_otsu

    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(np.percentile(values, 99.9))
    if hi <= lo:
        return lo, lo
    hist, edges = np.histogram(values, bins=nbins, range=(lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    otsu = threshold_otsu(values, nbins=nbins)
    limit = max(1, int(np.searchsorted(centers, otsu)))
    peak = int(np.argmax(hist[:limit]))
    end = nbins - 1
    if end <= peak:
        return float(centers[peak]), float(centers[peak])
    x = np.arange(peak, end + 1, dtype=np.float64)
    y = hist[peak:].astype(np.float64)
    # Signed distance (up to a constant factor) from the line (peak, hist[peak]) -> (end, 0); most negative is
    # the deepest point under it.
    below = y[0] * (x - peak) + (end - peak) * (y - y[0])
    return float(centers[peak + int(np.argmin(below))]), float(centers[peak])


def _working_grid(shape: tuple[int, int], spacing: tuple[float, float], target_mm: float):
    ws = max(float(target_mm), float(spacing[0]), float(spacing[1]))
    work_shape = (
        max(8, int(round(shape[0] * spacing[0] / ws))),
        max(8, int(round(shape[1] * spacing[1] / ws))),
    )
    work_spacing = (shape[0] * spacing[0] / work_shape[0], shape[1] * spacing[1] / work_shape[1])
    return work_shape, work_spacing


def _largest(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask)
    if count == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


@dataclass
class _CoarseSegmentation:
    mask: np.ndarray  # working grid
    image: np.ndarray  # smoothed working image
    spacing: tuple[float, float]  # working (row, col) mm
    threshold: float
    padding_excluded: bool
    low_threshold: float  # periphery (hysteresis) threshold; equal to threshold when not used
    has_padding: bool  # more than 1 % of the image sits at its minimum value (film padding)


# Digital mammography IODs (For Presentation, For Processing): a detector image has no scanned-film padding, and
# its background may sit exactly at the minimum, which must not be mistaken for padding around a film.
DIGITAL_MAMMOGRAPHY_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1"})


def is_digital_acquisition(view: View) -> bool:
    """The view comes from a digital mammography detector (by its DICOM SOP class), not a digitized film."""
    header = view.header
    return header is not None and str(getattr(header, "SOPClassUID", "")) in DIGITAL_MAMMOGRAPHY_SOP_CLASSES


def _segment_coarse(
    image: np.ndarray, spacing: tuple[float, float], config: PreprocessConfig, *, film_padding: bool = True
) -> _CoarseSegmentation:
    from scipy import ndimage as ndi
    from skimage.filters import gaussian
    from skimage.morphology import disk

    work_shape, ws = _working_grid(image.shape, spacing, config.segmentation_spacing_mm)
    work = resample(image, work_shape)
    smooth = gaussian(
        work, sigma=(config.smoothing_mm / ws[0], config.smoothing_mm / ws[1]), preserve_range=True
    )
    # Film padding: pixels at the image minimum (exactly), e.g. the black frame around a scanned film. When
    # the film itself has a background (fog) of its own, the histogram peak must be that background, so
    # padding is left out; when there is no background mode left without it, the full histogram is used.
    padding = resample(image <= image.min(), work_shape) > 0.5
    has_padding = film_padding and 0.01 < padding.mean() < 0.99
    padding_excluded = False
    if has_padding:
        values = smooth[~padding]
        threshold, peak = triangle_threshold(values, config.histogram_bins)
        v_lo, v_hi = float(values.min()), float(np.percentile(values, 99.9))
        padding_excluded = peak <= v_lo + 0.15 * (v_hi - v_lo)  # a background mode of the film's own
    if not padding_excluded:
        values = smooth.ravel()
        threshold, peak = triangle_threshold(values, config.histogram_bins)
    candidates = ndi.binary_fill_holes(smooth > threshold)
    radius = max(1, int(round(config.opening_mm / min(ws))))
    footprint = disk(radius)
    core = _largest(ndi.binary_opening(candidates, structure=footprint))
    if not core.any():
        core = _largest(candidates)
    # Grow the opened core back to full detail, but only within reach of the opening radius, so that a strip
    # or label joined by a thin bridge stays out.
    mask = _largest(candidates & ndi.binary_dilation(core, structure=footprint))
    mask = ndi.binary_fill_holes(mask)
    low = threshold
    if config.periphery_mm > 0:
        mask, low = _grow_periphery(mask, smooth, values, padding, threshold, peak, ws, config)
    return _CoarseSegmentation(
        mask,
        smooth.astype(np.float32),
        ws,
        float(threshold),
        bool(padding_excluded),
        float(low),
        bool(has_padding),
    )


def _grow_periphery(
    mask: np.ndarray,
    smooth: np.ndarray,
    values: np.ndarray,
    padding: np.ndarray,
    threshold: float,
    peak: float,
    ws: tuple[float, float],
    config: PreprocessConfig,
) -> tuple[np.ndarray, float]:
    """Extend the mask over the thin, faint breast periphery that the triangle threshold leaves out.

    Towards the skin line the compressed breast thins out and its gray level falls gradually to the
    background; on fatty breasts the triangle threshold can sit several millimetres inside the skin. Pixels
    above a lower threshold (``periphery_fraction`` of the way from the background peak to the triangle
    threshold, and at least ``background_sigmas`` background standard deviations above the peak) that are
    connected to the mask within ``periphery_mm`` of it are added (hysteresis with a bounded reach, so
    background cannot leak far). The lower threshold also stays above the upper end of the background right
    next to the breast.
    """
    from scipy import ndimage as ndi

    darker = values[values <= peak]
    sigma = 1.4826 * float(np.median(peak - darker)) if darker.size > 10 else 0.0
    low = max(peak + config.periphery_fraction * (threshold - peak), peak + config.background_sigmas * sigma)
    distance = ndi.distance_transform_edt(~mask, sampling=ws)
    # The background next to the breast (a ring 1.5 to 3 times the reach away, film padding left out): stay
    # above its robust upper end, median + background_sigmas x MAD, so that skewed film fog, scanner streaks
    # and halo are not taken for skin. Labels and strips there are a minority and do not move these
    # statistics.
    ring = (distance > 1.5 * config.periphery_mm) & (distance <= 3.0 * config.periphery_mm) & ~padding
    if ring.sum() > 100:
        near = smooth[ring]
        median = float(np.median(near))
        low = max(low, median + config.background_sigmas * 1.4826 * float(np.median(np.abs(near - median))))
    if low >= threshold:
        return mask, threshold
    reach = distance <= config.periphery_mm
    # Only the faint band between the two thresholds: anything brighter outside the mask is a separate object
    # (a label or strip left out by the largest-component step) and must not be joined through the periphery.
    faint = (smooth > low) & (smooth <= threshold)
    grown = ndi.binary_propagation(mask, mask=faint & reach | mask)
    return ndi.binary_fill_holes(grown), float(low)


def _full_resolution_mask(
    coarse: _CoarseSegmentation, image: np.ndarray, spacing: tuple[float, float], config: PreprocessConfig
) -> np.ndarray:
    """Bring the working-grid mask to the original grid and sharpen its edge there.

    Upsampling alone would let the coarse grid and its smoothing spill about a millimetre into the background
    (visible along straight film edges); pixels of the lightly smoothed original at or below the lower
    (periphery) threshold, and film padding, are therefore dropped again, holes filled and the largest
    component kept.
    """
    from scipy import ndimage as ndi
    from skimage.filters import gaussian

    rows, cols = image.shape
    up_weights = resample(coarse.mask, (rows, cols))
    up = up_weights >= 0.5
    if not up.any():  # a sliver thinner than half a working pixel
        up = up_weights > 0
    ys = np.flatnonzero(up.any(axis=1))
    xs = np.flatnonzero(up.any(axis=0))
    r0, r1, c0, c1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    sigma = (config.fine_smoothing_mm / spacing[0], config.fine_smoothing_mm / spacing[1])
    raw = image[r0:r1, c0:c1]
    crop = gaussian(raw, sigma=sigma, preserve_range=True) if min(sigma) >= 0.3 else raw
    fine = crop > coarse.low_threshold
    if coarse.has_padding:  # padding (pixels at the image minimum) is never breast, even next to an edge
        fine &= raw > image.min()
    refined = up[r0:r1, c0:c1] & fine
    if not refined.any():
        return up
    refined = ndi.binary_fill_holes(_largest(refined))
    out = np.zeros_like(up)
    out[r0:r1, c0:c1] = refined
    return out


def _borders_touched(mask: np.ndarray) -> tuple[str, ...]:
    sides = {"top": mask[0, :], "bottom": mask[-1, :], "left": mask[:, 0], "right": mask[:, -1]}
    return tuple(name for name, edge in sides.items() if edge.mean() > 0.02)


# ------------------------------------------------------------------------------------------------------------
# Orientation
# ------------------------------------------------------------------------------------------------------------


def convention_side(laterality: str) -> str:
    """Chest-wall side under the IHE display convention: right breast -> right edge, left -> left edge."""
    return "right" if laterality == "R" else "left"


def detect_chest_wall_side(mask: np.ndarray, image: np.ndarray) -> tuple[str | None, dict]:
    """Chest-wall side of a breast mask from its shape (and, if that is inconclusive, its gray levels).

    The breast meets the chest wall (an image or film edge) along a straight vertical line and curves towards
    the nipple: on the chest-wall side most rows end at the same column. For each side, the fraction of rows
    whose outermost mask pixel lies within 3 % of the mask's width of the most common outermost column is
    compared (decisive when the two differ by at least 0.15; a few rows of film border or axilla do not move
    it). Otherwise the side with the denser half (mean gray level at least 5 % higher) is taken. Returns
    ``(side or None, evidence)``.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    tolerance = max(1, int(round(0.03 * (c1 - c0))))
    leftmost = np.argmax(mask[rows], axis=1)
    rightmost = mask.shape[1] - 1 - np.argmax(mask[rows, ::-1], axis=1)

    def straightness(extreme: np.ndarray) -> float:
        counts = np.bincount(extreme)
        window = np.convolve(counts, np.ones(2 * tolerance + 1, dtype=np.int64), mode="same")
        return float(window.max() / len(extreme))

    left, right = straightness(leftmost), straightness(rightmost)
    evidence: dict = {"rows_on_left_edge_line": round(left, 3), "rows_on_right_edge_line": round(right, 3)}
    if abs(left - right) >= 0.15:
        evidence["decided_by"] = "shape"
        return ("left" if left > right else "right"), evidence
    mid = (c0 + c1) // 2
    left_mean = float(image[:, c0:mid][mask[:, c0:mid]].mean()) if mask[:, c0:mid].any() else 0.0
    right_mean = float(image[:, mid:c1][mask[:, mid:c1]].mean()) if mask[:, mid:c1].any() else 0.0
    evidence.update(
        {"mean_gray_left_half": round(left_mean, 3), "mean_gray_right_half": round(right_mean, 3)}
    )
    reference = max(abs(left_mean), abs(right_mean), 1e-6)
    if abs(left_mean - right_mean) / reference >= 0.05:
        evidence["decided_by"] = "gray levels"
        return ("left" if left_mean > right_mean else "right"), evidence
    evidence["decided_by"] = "inconclusive"
    return None, evidence


def _orientation(mask: np.ndarray, image: np.ndarray, laterality: str) -> tuple[Orientation, list[str]]:
    content, evidence = detect_chest_wall_side(mask, image)
    convention = convention_side(laterality)
    warnings: list[str] = []
    if content is None:
        source = (
            f"laterality convention: {laterality} breast -> chest wall on the {convention} "
            "(image content inconclusive)"
        )
        side, agrees = convention, None
        warnings.append(
            "chest-wall side could not be read from the image; the laterality convention was used"
        )
    else:
        how = "breast shape" if evidence["decided_by"] == "shape" else "denser half"
        source = (
            f"image content: {how} (most rows end on a straight edge on the {content})"
            if evidence["decided_by"] == "shape"
            else f"image content: {how} on the {content}"
        )
        side, agrees = content, content == convention
        if not agrees:
            breast = "right" if laterality == "R" else "left"
            warnings.append(
                f"chest wall found on the {content} of the image, but a {breast} breast is displayed with it "
                f"on the {convention} (IHE); the image may be mirrored or the laterality wrong"
            )
    return Orientation(side, source, content, convention, agrees, evidence), warnings


# ------------------------------------------------------------------------------------------------------------
# Preparation
# ------------------------------------------------------------------------------------------------------------


def prepare_view(view: View, config: PreprocessConfig | None = None) -> PreparedView:
    """Segment, orient, crop, resample and gray-normalize one view and find its landmarks."""
    config = config or PreprocessConfig()
    source = view.source if view.source is not None else view.key
    spacing = (float(view.spacing[0]), float(view.spacing[1]))
    image = _validate_pixels(view.pixels, spacing, source)
    warnings: list[str] = []

    coarse = _segment_coarse(image, spacing, config, film_padding=not is_digital_acquisition(view))
    cell_mm2 = coarse.spacing[0] * coarse.spacing[1]
    area_mm2 = float(coarse.mask.sum()) * cell_mm2
    if area_mm2 < config.min_breast_area_mm2:
        raise InputError(
            source,
            f"no breast found: the largest bright region covers {area_mm2:.0f} mm^2 "
            f"(less than {config.min_breast_area_mm2:g} mm^2)",
        )
    fraction = float(coarse.mask.mean())
    if fraction < config.small_breast_fraction:
        warnings.append(f"the breast covers only {100 * fraction:.1f} % of the image; check the segmentation")
    if fraction > 0.97:
        warnings.append("the breast mask covers the whole image; no background was found")
    borders = _borders_touched(coarse.mask)
    if len(borders) >= 3:
        warnings.append(
            f"the breast touches {len(borders)} image borders ({', '.join(borders)}); the image may be "
            "cropped through the breast or the background was not separated"
        )

    orientation, orient_warnings = _orientation(coarse.mask, coarse.image, view.laterality)
    warnings += orient_warnings

    # Full-resolution mask and crop box in original pixels.
    rows, cols = image.shape
    full_mask = _full_resolution_mask(coarse, image, spacing, config)
    ys = np.flatnonzero(full_mask.any(axis=1))
    xs = np.flatnonzero(full_mask.any(axis=0))
    margin_x = int(round(config.crop_margin_mm / spacing[1]))
    margin_y = int(round(config.crop_margin_mm / spacing[0]))
    x0, x1 = max(0, int(xs[0]) - margin_x), min(cols, int(xs[-1]) + 1 + margin_x)
    y0, y1 = max(0, int(ys[0]) - margin_y), min(rows, int(ys[-1]) + 1 + margin_y)
    prepared_size = (
        max(1, int(round((x1 - x0) * spacing[1] / config.spacing_mm))),
        max(1, int(round((y1 - y0) * spacing[0] / config.spacing_mm))),
    )
    transform = Transform((cols, rows), (x0, y0, x1, y1), prepared_size, orientation.flip_x)

    prepared_raw = transform.image_to_prepared(image, order=1).astype(np.float32)
    prepared_mask = transform.image_to_prepared(full_mask.astype(np.uint8), order=0).astype(bool)

    breast_values = prepared_raw[prepared_mask]
    low, high = (
        float(v) for v in np.percentile(breast_values, [config.low_percentile, config.high_percentile])
    )
    if not high > low:
        warnings.append("the breast's gray levels are uniform; the gray mapping uses a unit range")
        high = low + 1.0
    gray = GrayMapping(low, high, config.low_percentile, config.high_percentile)
    prepared = gray.apply(prepared_raw)

    landmarks, landmark_warnings = find_landmarks(
        prepared, prepared_mask, transform, config.spacing_mm, view.view, spacing, config.landmarks
    )
    warnings += landmark_warnings
    for message in warnings:
        log.warning("%s (%s): %s", source, view.key, message)

    segmentation = Segmentation(coarse.threshold, coarse.spacing, coarse.padding_excluded, area_mm2, borders)
    return PreparedView(
        key=view.key,
        image=prepared,
        breast_mask=prepared_mask,
        transform=transform,
        gray=gray,
        landmarks=landmarks,
        orientation=orientation,
        segmentation=segmentation,
        spacing_mm=float(config.spacing_mm),
        original_spacing=spacing,
        laterality=view.laterality,
        view=view.view,
        source=None if view.source is None else os.fspath(view.source),
        warnings=warnings,
    )


def prepare_study(study: Study, config: PreprocessConfig | None = None) -> dict[str, PreparedView]:
    """:func:`prepare_view` for every view of a study, keyed like the study (hanging order)."""
    config = config or PreprocessConfig()
    return {key: prepare_view(view, config) for key, view in study.views.items()}


# ------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------


def encode_png16(image: np.ndarray) -> np.ndarray:
    """Prepared image -> uint16 for a 16-bit PNG: ``PNG_VALUE_RANGE`` spans 0..65535 (outside: clipped)."""
    lo, hi = PNG_VALUE_RANGE
    scaled = (np.asarray(image, dtype=np.float64) - lo) / (hi - lo) * 65535.0
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


def decode_png16(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_png16` (exact to (hi - lo) / 65535 = 3.1e-5 inside the range)."""
    lo, hi = PNG_VALUE_RANGE
    return (np.asarray(array, dtype=np.float64) / 65535.0 * (hi - lo) + lo).astype(np.float32)


def _software_versions() -> dict:
    import PIL
    import scipy
    import skimage

    return {
        "mammodnn": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "pillow": PIL.__version__,
    }


def write_preprocessed(
    views: Mapping[str, View],
    prepared: Mapping[str, PreparedView],
    out_dir: str | os.PathLike,
    config: PreprocessConfig,
    source: str | os.PathLike | None = None,
) -> Path:
    """Write ``<name>_breast_mask.png``, ``<name>_preprocessed.png`` per view and ``preprocess.json``.

    ``<name>`` is the view's file stem (its key when made in memory; the key is appended when two views share
    a stem). The mask PNG is 8-bit 0/255 on the original grid; the preprocessed PNG is 16-bit, see
    :func:`encode_png16`. Returns the path of ``preprocess.json``.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {key: views[key].name for key in prepared}
    stems = list(names.values())
    for key, name in names.items():
        if stems.count(name) > 1:
            names[key] = f"{name}_{key}"
    record_views: dict[str, dict] = {}
    for key, prep in prepared.items():
        name = names[key]
        mask_file, image_file = f"{name}_breast_mask.png", f"{name}_preprocessed.png"
        Image.fromarray(original_breast_mask(prep).astype(np.uint8) * 255).save(out / mask_file)
        Image.fromarray(encode_png16(prep.image)).save(out / image_file)
        inside = prep.image[prep.breast_mask]
        lo, hi = PNG_VALUE_RANGE
        record = {"name": name, **prep.to_dict()}
        record["files"] = {
            "breast_mask": mask_file,
            "breast_mask_encoding": "8-bit PNG on the original grid: 255 = breast, 0 = not",
            "preprocessed": image_file,
            "preprocessed_encoding": {
                "bit_depth": 16,
                "value_at_0": lo,
                "value_at_65535": hi,
                "decode": f"value = png / 65535 * {hi - lo:g} + ({lo:g})",
                "breast_pixels_clipped": int(np.count_nonzero((inside < lo) | (inside > hi))),
            },
        }
        record_views[key] = record
    document = {
        "schema": PREPROCESS_SCHEMA,
        "schema_version": PREPROCESS_SCHEMA_VERSION,
        "source": None if source is None else os.fspath(source),
        "coordinates": "original pixel grid of each view; (x, y) = (column, row), pixel edges "
        "(pixel [r, c] covers [c, c+1) x [r, r+1)); boxes [x0, y0, x1, y1], half-open",
        "software": _software_versions(),
        "config": config.to_dict(),
        "views": record_views,
    }
    path = out / "preprocess.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
