"""Breast landmarks (nipple, pectoral-muscle edge, chest-wall edge) and the geometric depth and quadrant.

Detection works on a *prepared* view (see :mod:`MammoDNNLib.preprocess`: chest wall on the left, superior /
lateral side at the top) resampled to a coarse working grid, and reports every landmark in the ORIGINAL pixel
grid of the view, with where it came from and a confidence in [0, 1]:

* **pectoral line** (MLO only): the straight line that best separates a bright band (the muscle) from darker
  tissue in the upper chest-wall corner. Lines from the top of the breast down towards the chest wall (top
  intercept 3 mm .. 75 % of the breast width from the chest wall, 0..65 degrees from vertical, reaching the
  chest wall within 85 % of the breast height) are scored by the mean gray-level step across them (muscle side
  minus breast side, 5 mm either side, gray-normalized units) times a length factor, coarse to fine; the best
  line is refined by a trimmed least-squares fit to the strongest step along each sample's normal. It is
  reported only when the mean step reaches ``LandmarkConfig.pectoral_min_contrast``.
* **nipple**: on the breast front (the outermost mask pixel of each row, measured from the chest-wall edge), a
  nipple seen in profile (a narrow bump) if there is one on the anterior part of the front, else the apex of
  the breast mound (the most anterior local maximum), leaving out the front next to an image border that cuts
  the breast; on a flat front the middle of the stretch within ``nipple_tolerance_mm`` of the maximum. The
  alternative reference ``nipple_reference="pectoral"`` (distance from the pectoral line) is kept for
  comparison; on mini-MIAS it places the nipple far too low (docs/preprocessing.md).
* **chest-wall edge**: the vertical line at the breast's chest-wall side (the image or film edge it touches).

:func:`geometric_depth` and :func:`geometric_quadrant` turn a point (original pixels) into depth (0 = nipple,
1 = pectoral line on MLO / chest-wall edge on CC) and a quadrant name from :data:`vocabulary.QUADRANTS`; the
rules are written out in their docstrings and in ``docs/preprocessing.md``. Distances are in millimetres,
using the view's (row, column) pixel spacing, so anisotropic pixels are handled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from .vocabulary import QUADRANTS

if TYPE_CHECKING:
    from .geometry import Transform

log = logging.getLogger(__name__)

NIPPLE_SOURCE_PROFILE = "heuristic: nipple seen in profile (a narrow bump on the breast-mask front)"
NIPPLE_SOURCE_PECTORAL = "heuristic: apex of the breast-mask front, farthest from the pectoral line"
NIPPLE_SOURCE_CHEST_WALL = "heuristic: apex of the breast-mask front, farthest from the chest-wall edge"
PECTORAL_SOURCE = (
    "heuristic: straight-line search for the strongest bright-to-dark step in the upper chest-wall corner"
)
CHEST_WALL_SOURCE = "breast-mask edge on the chest-wall side"


@dataclass
class LandmarkConfig:
    """Options of the landmark heuristics and of the geometric quadrant rules (millimetres unless stated)."""

    working_spacing_mm: float = (
        0.5  # landmarks are searched on a grid this coarse (never finer than the input)
    )
    smoothing_mm: float = 1.0  # Gaussian sigma applied before the pectoral search
    # Pectoral line search (MLO).
    pectoral_angle_range_deg: tuple[float, float] = (0.0, 65.0)  # from vertical, top end towards the nipple
    pectoral_angle_step_deg: float = 1.5
    pectoral_top_min_mm: float = 3.0  # top intercept at least this far from the chest-wall edge
    pectoral_top_max_fraction: float = 0.75  # ... and at most this fraction of the breast width
    pectoral_max_length_fraction: float = 0.85  # search the line down to this fraction of the breast height
    pectoral_band_mm: float = 5.0  # gray levels compared this far on either side of the line
    pectoral_full_length_mm: float = 40.0  # lines shorter than this are penalized (sqrt of the fraction)
    pectoral_min_contrast: float = 0.10  # mean step (gray-normalized units) to accept a line
    pectoral_refine_mm: float = 4.0  # refinement looks for the edge within this distance of the coarse line
    # Nipple: the boundary point farthest from this reference ("chest_wall": the chest-wall edge, i.e. the
    # most anterior point; "pectoral": the pectoral line on MLO views where one was found).
    nipple_reference: str = "chest_wall"
    nipple_tolerance_mm: float = 2.0  # boundary points this close to the farthest count as the front
    nipple_min_prominence_mm: float = 2.0  # the breast mound's apex must stand out this much
    nipple_border_margin_mm: float = (
        15.0  # ignore the front this close to an image border that cuts the breast
    )
    # Nipple in profile: a bump on the breast front this high (0: off), at most this wide at half height,
    # found against a running median of the front over the window, within this fraction of the most anterior
    # point.
    nipple_bump_height_mm: float = 1.0
    nipple_bump_min_width_mm: float = 3.0
    nipple_bump_max_width_mm: float = 12.0
    nipple_bump_window_mm: float = 30.0
    nipple_bump_anterior_fraction: float = 0.8
    nipple_bump_search_mm: float = 30.0  # when the mound has an apex, look for the bump this close to it
    # Geometric quadrants.
    areola_radius_mm: float = 20.0  # points within this distance of the nipple are "areola"
    middle_fraction: float = (
        1.0 / 3.0
    )  # middle band: this fraction of the breast on either side of the nipple axis
    middle_band_mm: float = 20.0  # half-width of the middle band when no breast mask is given
    axillary_min_depth: float = 0.7  # MLO upper-region points at least this deep are "axillary_tail"

    def __post_init__(self) -> None:
        angles = tuple(float(v) for v in self.pectoral_angle_range_deg)
        self.pectoral_angle_range_deg = angles  # type: ignore[assignment]
        if self.working_spacing_mm <= 0:
            raise ValueError("working_spacing_mm must be positive")
        if self.nipple_reference not in ("chest_wall", "pectoral"):
            raise ValueError("nipple_reference must be 'chest_wall' or 'pectoral'")
        if not 0 < self.middle_fraction < 1:
            raise ValueError("middle_fraction must be in (0, 1)")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pectoral_angle_range_deg"] = list(self.pectoral_angle_range_deg)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LandmarkConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown landmark option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class PointEstimate:
    """A landmark point in original pixels (x, y), with where it came from and a confidence in [0, 1]."""

    xy: tuple[float, float]
    source: str
    confidence: float

    def to_dict(self) -> dict:
        return {
            "xy": [float(self.xy[0]), float(self.xy[1])],
            "source": self.source,
            "confidence": round(float(self.confidence), 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PointEstimate:
        return cls(
            (float(data["xy"][0]), float(data["xy"][1])), str(data["source"]), float(data["confidence"])
        )


@dataclass
class LineEstimate:
    """A landmark line through two points in original pixels (x, y), with its source and a confidence."""

    points: tuple[tuple[float, float], tuple[float, float]]
    source: str
    confidence: float

    def to_dict(self) -> dict:
        return {
            "points": [[float(v) for v in p] for p in self.points],
            "source": self.source,
            "confidence": round(float(self.confidence), 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LineEstimate:
        p0, p1 = data["points"]
        return cls(
            ((float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))),
            str(data["source"]),
            float(data["confidence"]),
        )


@dataclass
class Landmarks:
    """Landmarks of one view, all in its original pixel grid.

    ``spacing`` is the view's (row, column) pixel spacing in mm, so that the geometric functions can measure
    in millimetres. ``pectoral`` is None on CC views and on MLO views where no pectoral edge was found.
    """

    nipple: PointEstimate | None
    pectoral: LineEstimate | None
    chest_wall: LineEstimate
    spacing: tuple[float, float]
    details: dict = field(default_factory=dict)  # scores behind the estimates, for reports and debugging

    def to_dict(self) -> dict:
        return {
            "nipple": None if self.nipple is None else self.nipple.to_dict(),
            "pectoral_line": None if self.pectoral is None else self.pectoral.to_dict(),
            "chest_wall_line": self.chest_wall.to_dict(),
            "spacing_mm": [float(v) for v in self.spacing],
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Landmarks:
        return cls(
            None if data.get("nipple") is None else PointEstimate.from_dict(data["nipple"]),
            None if data.get("pectoral_line") is None else LineEstimate.from_dict(data["pectoral_line"]),
            LineEstimate.from_dict(data["chest_wall_line"]),
            (float(data["spacing_mm"][0]), float(data["spacing_mm"][1])),
            dict(data.get("details", {})),
        )


# ------------------------------------------------------------------------------------------------------------
# Detection on the prepared grid
# ------------------------------------------------------------------------------------------------------------


def resample(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D array to ``shape`` = (rows, cols), image edges to image edges, as float32.

    Bilinear, anti-aliased when shrinking (Pillow's convolution resampling, several times faster than
    ``skimage.transform.resize`` here); used for the working grids of the segmentation and the landmarks.
    """
    from PIL import Image

    rows, cols = int(shape[0]), int(shape[1])
    source = np.ascontiguousarray(array, dtype=np.float32)
    if source.shape == (rows, cols):
        return source.copy()
    return np.asarray(Image.fromarray(source).resize((cols, rows), Image.Resampling.BILINEAR))  # mode "F"


def find_landmarks(
    image: np.ndarray,
    breast_mask: np.ndarray,
    transform: Transform,
    spacing_mm: float,
    view: str,
    original_spacing: tuple[float, float],
    config: LandmarkConfig | None = None,
) -> tuple[Landmarks, list[str]]:
    """Find the landmarks of a prepared view and return them in original pixels, with any warnings.

    ``image`` (gray-normalized) and ``breast_mask`` are on the prepared grid (``spacing_mm`` square pixels,
    chest wall on the left); ``transform`` maps them back to the original grid, whose pixel spacing is
    ``original_spacing`` (row, col).
    """
    from skimage.filters import gaussian

    config = config or LandmarkConfig()
    warnings: list[str] = []
    if view not in QUADRANTS:
        raise ValueError(f"view must be 'CC' or 'MLO', got {view!r}")
    ws = max(float(config.working_spacing_mm), float(spacing_mm))
    height, width = breast_mask.shape
    work_shape = (max(8, int(round(height * spacing_mm / ws))), max(8, int(round(width * spacing_mm / ws))))
    # Exact working-to-prepared scale per axis (the working grid spans the prepared grid edge to edge).
    to_prepared = np.array([width / work_shape[1], height / work_shape[0]])
    mask = resample(breast_mask, work_shape) >= 0.5
    if not mask.any():
        raise ValueError("the breast mask is empty")
    work = resample(image, work_shape)
    work = gaussian(work, sigma=config.smoothing_mm / ws, preserve_range=True)
    px_mm = to_prepared * spacing_mm  # mm per working pixel (x, y)

    def to_original(points_work: np.ndarray) -> np.ndarray:
        return transform.to_original(np.asarray(points_work, dtype=np.float64).reshape(-1, 2) * to_prepared)

    details: dict = {"working_spacing_mm": [float(px_mm[0]), float(px_mm[1])]}
    chest_x = _chest_wall_x(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cw_points = np.array([[chest_x, rows[0]], [chest_x, rows[-1] + 1.0]])
    cw_orig = to_original(cw_points)
    chest_wall = LineEstimate(
        ((float(cw_orig[0, 0]), float(cw_orig[0, 1])), (float(cw_orig[1, 0]), float(cw_orig[1, 1]))),
        CHEST_WALL_SOURCE,
        1.0,
    )

    pectoral: LineEstimate | None = None
    pectoral_work: np.ndarray | None = None
    if view == "MLO":
        result = _find_pectoral(work, mask, chest_x, px_mm, config)
        details["pectoral_search"] = result.details
        if result.line is not None:
            pectoral_work = result.line
            p_orig = to_original(result.line)
            pectoral = LineEstimate(
                ((float(p_orig[0, 0]), float(p_orig[0, 1])), (float(p_orig[1, 0]), float(p_orig[1, 1]))),
                PECTORAL_SOURCE,
                result.confidence,
            )
        else:
            warnings.append(
                "no pectoral-muscle edge found on this MLO view; "
                "depth is measured from the chest-wall edge instead"
            )

    use_pectoral = config.nipple_reference == "pectoral" and pectoral_work is not None
    # Image borders that cut the breast (the crop reaches them and the mask touches them).
    _, y0, _, y1 = transform.crop
    cut_top = y0 == 0 and bool(mask[0].any())
    cut_bottom = y1 == transform.original_size[1] and bool(mask[-1].any())
    nipple_work, nipple_conf, nipple_details = _find_nipple(
        mask, chest_x, pectoral_work if use_pectoral else None, px_mm, config, cut_top, cut_bottom
    )
    details["nipple_search"] = nipple_details
    nipple: PointEstimate | None = None
    if nipple_work is None:
        warnings.append("no nipple position found (the breast boundary lies on the image border)")
    else:
        n_orig = to_original(nipple_work)[0]
        if nipple_details.get("in_profile"):
            source = NIPPLE_SOURCE_PROFILE
        else:
            source = NIPPLE_SOURCE_PECTORAL if use_pectoral else NIPPLE_SOURCE_CHEST_WALL
        nipple = PointEstimate((float(n_orig[0]), float(n_orig[1])), source, nipple_conf)
        if nipple_conf < 0.3:
            warnings.append(
                "the nipple position is uncertain (no nipple in profile, no clear apex of the breast front)"
            )
    spacing = (float(original_spacing[0]), float(original_spacing[1]))
    return Landmarks(nipple, pectoral, chest_wall, spacing, details), warnings


def _chest_wall_x(mask: np.ndarray) -> float:
    """x (working pixel edges) of the chest-wall edge: where the breast's left boundary sits on most rows."""
    rows = np.flatnonzero(mask.any(axis=1))
    leftmost = np.argmax(mask[rows], axis=1)
    return float(np.percentile(leftmost, 5))


@dataclass
class _PectoralResult:
    line: np.ndarray | None  # (2, 2) working-grid points (top end, lower end), pixel-edge coordinates
    confidence: float
    details: dict


def _line_scores(
    image: np.ndarray,
    mask: np.ndarray,
    x_tops: np.ndarray,
    angles: np.ndarray,
    y_top: float,
    y_bottom: float,
    chest_x: float,
    step: float,
    n_samples: int,
    band: float,
    bilinear: bool,
) -> dict[str, np.ndarray]:
    """Mean muscle-minus-tissue step and valid length of every candidate line (array index coordinates)."""
    from scipy.ndimage import map_coordinates

    xt, th = np.meshgrid(x_tops, angles, indexing="ij")
    sin, cos = np.sin(th)[..., None], np.cos(th)[..., None]
    t = np.arange(n_samples) * step  # distance along the line from its top end (pixels)
    px = xt[..., None] - t * sin  # direction (-sin, cos): down towards the chest wall
    py = y_top + t * cos
    nx, ny = cos, sin  # unit normal pointing away from the muscle (towards the nipple)
    height, width = mask.shape

    def sample(array: np.ndarray, x: np.ndarray, y: np.ndarray, smooth: bool) -> np.ndarray:
        if smooth:
            return map_coordinates(array, np.stack([y.ravel(), x.ravel()]), order=1, mode="nearest").reshape(
                x.shape
            )
        col = np.clip(np.rint(x).astype(np.intp), 0, width - 1)
        row = np.clip(np.rint(y).astype(np.intp), 0, height - 1)
        return array[row, col]

    mx, my = px - band * nx, py - band * ny
    tx, ty = px + band * nx, py + band * ny
    inside_image = (mx >= 0) & (my >= 0) & (tx < width) & (ty < height)
    val_m = sample(image, mx, my, bilinear)
    val_t = sample(image, tx, ty, bilinear)
    in_m = sample(mask, mx, my, False) & inside_image
    in_t = sample(mask, tx, ty, False) & inside_image
    reaches = (px >= chest_x) & (py < y_bottom)
    run = np.cumprod(reaches, axis=-1).astype(bool)  # a line ends at the chest wall or the breast's bottom
    valid = run & in_m & in_t
    n_valid = valid.sum(axis=-1)
    contrast = np.where(valid, val_m - val_t, 0.0).sum(axis=-1) / np.maximum(n_valid, 1)
    return {
        "x_top": xt,
        "angle": th,
        "contrast": contrast,
        "n_valid": n_valid,
        "valid": valid,
        "px": px,
        "py": py,
    }


def _find_pectoral(
    image: np.ndarray, mask: np.ndarray, chest_x: float, px_mm: np.ndarray, config: LandmarkConfig
) -> _PectoralResult:
    """Pectoral line on the working grid (chest wall on the left), in pixel-edge coordinates (x, y)."""
    from scipy.ndimage import map_coordinates

    mm = float(np.mean(px_mm))  # working pixels are square up to rounding
    rows = np.flatnonzero(mask.any(axis=1))
    # Index coordinates (pixel centres at integers) inside the search; converted to edges at the end.
    y_top, y_bottom = float(rows[0]), float(rows[-1] + 1)
    cx = chest_x - 0.5 + 0.5 / mm  # half a millimetre inside the chest-wall edge, as an index coordinate
    breast_height = y_bottom - y_top
    right = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    breast_width = float(right[rows].max()) - chest_x
    x_lo = chest_x + config.pectoral_top_min_mm / mm
    x_hi = chest_x + config.pectoral_top_max_fraction * breast_width
    details: dict = {"chest_wall_x": chest_x}
    if x_hi <= x_lo or breast_height * mm < 10:
        details["reason"] = "breast too small for a pectoral search"
        return _PectoralResult(None, 0.0, details)
    max_len = config.pectoral_max_length_fraction * breast_height
    band = config.pectoral_band_mm / mm
    lo, hi = config.pectoral_angle_range_deg
    step_deg = config.pectoral_angle_step_deg

    def score_of(found: dict, sample_step: float) -> np.ndarray:
        length_mm = found["n_valid"] * sample_step * mm
        length_factor = np.sqrt(np.minimum(length_mm / config.pectoral_full_length_mm, 1.0))
        # The muscle is a triangle in the upper chest-wall corner: its edge must reach the chest wall within
        # the searched height (this also rules out vertical edges of dense tissue).
        with np.errstate(divide="ignore"):
            closes = (found["x_top"] - chest_x) / np.tan(found["angle"]) <= max_len
        return np.where((found["n_valid"] >= 5) & closes, found["contrast"] * length_factor, -np.inf)

    # Coarse search (2 mm, 2 x the angle step, nearest-neighbour samples every 2 mm), then a fine one around
    # the best line (0.5 mm, half the angle step, bilinear samples every millimetre).
    def scan(xs: np.ndarray, angles_deg: np.ndarray, sample_step: float, bilinear: bool) -> dict:
        angles = np.deg2rad(angles_deg)
        samples = int(max_len / sample_step) + 1
        return _line_scores(
            image, mask, xs, angles, y_top, y_bottom, cx, sample_step, samples, band, bilinear=bilinear
        )

    sample_step = 2.0 / mm
    coarse = scan(
        np.arange(x_lo, x_hi, 2.0 / mm), np.arange(lo, hi + 1e-9, 2 * step_deg), sample_step, False
    )
    coarse_score = score_of(coarse, sample_step)
    best = np.unravel_index(int(np.argmax(coarse_score)), coarse_score.shape)
    if not np.isfinite(coarse_score[best]):
        details["reason"] = "no candidate line inside the breast"
        return _PectoralResult(None, 0.0, details)
    x0, a0 = float(coarse["x_top"][best]), float(np.rad2deg(coarse["angle"][best]))
    sample_step = 1.0 / mm
    fine = scan(
        np.arange(max(x_lo, x0 - 2.0 / mm), min(x_hi, x0 + 2.0 / mm) + 1e-9, 0.5 / mm),
        np.arange(max(lo, a0 - 2 * step_deg), min(hi, a0 + 2 * step_deg) + 1e-9, step_deg / 2),
        sample_step,
        True,
    )
    fine_score = score_of(fine, sample_step)
    best = np.unravel_index(int(np.argmax(fine_score)), fine_score.shape)
    best_contrast = float(fine["contrast"][best])
    details.update(
        {
            "best_contrast": round(best_contrast, 4),
            "best_length_mm": round(float(fine["n_valid"][best] * sample_step * mm), 1),
            "best_angle_deg": round(float(np.rad2deg(fine["angle"][best])), 2),
        }
    )
    if not np.isfinite(fine_score[best]) or best_contrast < config.pectoral_min_contrast:
        details["reason"] = f"no line with a mean step >= {config.pectoral_min_contrast}"
        return _PectoralResult(None, 0.0, details)

    # Refine: strongest step along each valid sample's normal, then a robust line fit through those edge
    # points.
    theta = float(fine["angle"][best])
    sel = fine["valid"][best]
    base_x, base_y = fine["px"][best][sel], fine["py"][best][sel]
    offsets = np.arange(-config.pectoral_refine_mm, config.pectoral_refine_mm + 1e-9, 0.5) / mm
    d = 1.0 / mm  # step measured over +-1 mm
    ex = base_x[:, None] + offsets[None, :] * np.cos(theta)
    ey = base_y[:, None] + offsets[None, :] * np.sin(theta)
    before = map_coordinates(
        image,
        np.stack([(ey - d * np.sin(theta)).ravel(), (ex - d * np.cos(theta)).ravel()]),
        order=1,
        mode="nearest",
    ).reshape(ex.shape)
    after = map_coordinates(
        image,
        np.stack([(ey + d * np.sin(theta)).ravel(), (ex + d * np.cos(theta)).ravel()]),
        order=1,
        mode="nearest",
    ).reshape(ex.shape)
    k = np.argmax(before - after, axis=1)
    edge = np.column_stack([ex[np.arange(len(k)), k], ey[np.arange(len(k)), k]])
    x_top_fit, slope = _fit_line(edge, y_top, (float(fine["x_top"][best]), float(np.tan(theta))))
    # Report the segment from the top of the breast down to where the line meets the chest-wall edge (or the
    # lowest refined edge point, if the line leaves the breast first).
    y_end = float(edge[:, 1].max())
    if slope > 1e-6:
        y_end = min(max(y_end, y_top + (x_top_fit - cx) / slope), y_bottom)
    # The top end on the breast's top edge (half a row above the top row's centre).
    top = np.array([x_top_fit + 0.5 * slope, y_top - 0.5])
    end = np.array([x_top_fit - (y_end - y_top) * slope, y_end])
    confidence = float(np.clip(best_contrast / (2.0 * config.pectoral_min_contrast), 0.0, 1.0))
    details["refined_angle_deg"] = round(float(np.rad2deg(np.arctan(slope))), 2)
    line = np.vstack([top, end]) + 0.5  # index -> pixel-edge coordinates
    return _PectoralResult(line, confidence, details)


def _fit_line(edge: np.ndarray, y_top: float, coarse: tuple[float, float]) -> tuple[float, float]:
    """Fit ``x = a - (y - y_top) * b`` through refined edge points (iteratively trimmed least squares).

    ``coarse`` is the search's (a, b); it is kept when too few points agree or the fit tilts the wrong way.
    """
    if len(edge) < 6:
        return coarse
    keep = np.ones(len(edge), dtype=bool)
    a, b = coarse
    for _ in range(3):
        ys, xs = edge[keep, 1] - y_top, edge[keep, 0]
        if keep.sum() < 6:
            return coarse
        design = np.column_stack([np.ones_like(ys), -ys])
        (a, b), *_ = np.linalg.lstsq(design, xs, rcond=None)
        resid = np.abs(edge[:, 0] - (a - (edge[:, 1] - y_top) * b))
        scale = max(1.4826 * float(np.median(resid[keep])), 1.0)
        keep = resid <= 2.5 * scale
    if b < -0.05:  # the fit tilted the wrong way (muscle edge cannot run down-right): keep the coarse line
        return coarse
    return float(a), float(max(b, 0.0))


def _find_nipple(
    mask: np.ndarray,
    chest_x: float,
    pectoral: np.ndarray | None,
    px_mm: np.ndarray,
    config: LandmarkConfig,
    cut_top: bool = False,
    cut_bottom: bool = False,
) -> tuple[np.ndarray | None, float, dict]:
    """Nipple on the working grid (chest wall on the left), its confidence and the search details.

    The breast front is the rightmost mask pixel of each row; its distance from the reference (chest-wall
    edge, or the pectoral line) is smoothed over 3 mm and the nipple is taken at the most distant *local
    maximum* (the apex of the breast mound) with a prominence of at least ``nipple_min_prominence_mm``, moved
    to a nipple seen in profile (:func:`_nipple_in_profile`) within ``nipple_bump_search_mm`` of it if there
    is one. Rows within ``nipple_border_margin_mm`` of an image border that cuts the breast are left out:
    there the front keeps growing towards the border (the axilla on MLO views) without being the nipple. On a
    flat front the middle of the stretch within ``nipple_tolerance_mm`` of the maximum is taken.
    """
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import find_peaks

    height, width = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    right = width - np.argmax(mask[rows, ::-1], axis=1)  # right edge of the rightmost pixel
    points = np.column_stack([right.astype(np.float64), rows + 0.5])
    if pectoral is not None:
        a, b = pectoral
        direction = (b - a) * px_mm
        direction /= np.linalg.norm(direction)
        normal = np.array([-direction[1], direction[0]])
        if normal[0] < 0:  # point away from the chest wall
            normal = -normal
        dist = ((points - a) * px_mm) @ normal
    else:
        dist = (points[:, 0] - chest_x) * px_mm[0]
    row_mm = float(px_mm[1])
    window = max(1, int(round(3.0 / row_mm)))
    profile = uniform_filter1d(dist, size=window, mode="nearest")
    margin = config.nipple_border_margin_mm / row_mm
    ok = right < width - 0.5  # a front on the right image border is a cut, not the skin
    if cut_top:
        ok &= rows >= margin
    if cut_bottom:
        ok &= rows < height - margin
    details: dict = {}
    if not ok.any():
        return None, 0.0, {"reason": "the breast front lies on the image border"}
    peaks, _ = find_peaks(profile, prominence=config.nipple_min_prominence_mm)
    peaks = peaks[ok[peaks]]
    if peaks.size:
        best = int(peaks[np.argmax(profile[peaks])])
        prominent = True
    else:
        best = int(np.flatnonzero(ok)[np.argmax(profile[ok])])
        prominent = False
    # A nipple seen in profile refines the apex: searched near the apex when the mound has one, else anywhere
    # on the anterior front.
    near_apex = ok.copy()
    if prominent:
        near_apex &= np.abs(rows - rows[best]) * row_mm <= config.nipple_bump_search_mm
    bump = _nipple_in_profile(dist, near_apex, row_mm, config)
    if bump is not None:
        x, y = points[bump]
        details.update({"distance_mm": round(float(dist[bump]), 2), "in_profile": True})
        return np.array([x, y]), 0.9, details
    near = ok & (profile >= profile[best] - config.nipple_tolerance_mm)
    lo = best
    while lo > 0 and near[lo - 1]:
        lo -= 1
    hi = best
    while hi < len(rows) - 1 and near[hi + 1]:
        hi += 1
    mid = (lo + hi) // 2
    front_mm = float((hi - lo + 1) * row_mm)
    confidence = float(np.clip(1.0 - max(front_mm - 10.0, 0.0) / 60.0, 0.3, 1.0))
    if not prominent:
        confidence *= 0.5
    details.update(
        {
            "distance_mm": round(float(dist[mid]), 2),
            "front_length_mm": round(front_mm, 2),
            "apex_found": prominent,
        }
    )
    return points[mid], confidence, details


def _nipple_in_profile(dist: np.ndarray, ok: np.ndarray, row_mm: float, config: LandmarkConfig) -> int | None:
    """Row index of a nipple seen in profile: a narrow bump on the breast front, or None.

    The front (distance from the reference, mm, one value per row) minus its running median over
    ``nipple_bump_window_mm`` leaves bumps; one at least ``nipple_bump_height_mm`` high and
    ``nipple_bump_min_width_mm`` to ``nipple_bump_max_width_mm`` wide (at half height), on the anterior part
    of the front (at least ``nipple_bump_anterior_fraction`` of its maximum), is taken as the nipple; the
    highest such bump wins.
    """
    from scipy.ndimage import median_filter, uniform_filter1d
    from scipy.signal import find_peaks

    if config.nipple_bump_height_mm <= 0 or ok.sum() < 5:
        return None
    smooth = uniform_filter1d(dist, size=max(1, int(round(1.0 / row_mm))), mode="nearest")
    window = max(3, int(round(config.nipple_bump_window_mm / row_mm)) | 1)
    residual = smooth - median_filter(smooth, size=window, mode="nearest")
    peaks, props = find_peaks(
        residual,
        height=config.nipple_bump_height_mm,
        width=(config.nipple_bump_min_width_mm / row_mm, config.nipple_bump_max_width_mm / row_mm),
        rel_height=0.5,
    )
    anterior = config.nipple_bump_anterior_fraction * float(smooth[ok].max())
    keep = [i for i, p in enumerate(peaks) if ok[p] and smooth[p] >= anterior]
    if not keep:
        return None
    best = max(keep, key=lambda i: props["peak_heights"][i])
    return int(peaks[best])


# ------------------------------------------------------------------------------------------------------------
# Geometric depth and quadrant (original pixels, millimetres)
# ------------------------------------------------------------------------------------------------------------


def depth_reference(landmarks: Landmarks, view: str) -> LineEstimate:
    """The line depth is measured from: the pectoral line on MLO views where found, else the chest wall."""
    if view not in QUADRANTS:
        raise ValueError(f"view must be 'CC' or 'MLO', got {view!r}")
    if view == "MLO" and landmarks.pectoral is not None:
        return landmarks.pectoral
    return landmarks.chest_wall


def _to_mm(points: np.ndarray | Sequence[float], spacing: tuple[float, float]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts * np.array([spacing[1], spacing[0]])


def _frame(landmarks: Landmarks, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(nipple, a point of the reference line, unit normal towards the nipple, unit tangent towards the top
    of the image, nipple distance), all in mm."""
    if landmarks.nipple is None:
        raise ValueError("these landmarks have no nipple position; depth and quadrant need one")
    line = depth_reference(landmarks, view)
    a, b = _to_mm(line.points, landmarks.spacing)
    nipple = _to_mm(landmarks.nipple.xy, landmarks.spacing)[0]
    tangent = b - a
    norm = float(np.linalg.norm(tangent))
    if norm == 0:
        raise ValueError("the reference line's two points coincide")
    tangent /= norm
    if tangent[1] > 0 or (tangent[1] == 0 and tangent[0] < 0):
        tangent = -tangent  # towards the top of the image (superior on MLO, lateral on CC)
    normal = np.array([-tangent[1], tangent[0]])
    nipple_distance = float((nipple - a) @ normal)
    if nipple_distance < 0:
        normal, nipple_distance = -normal, -nipple_distance
    if nipple_distance == 0:
        raise ValueError("the nipple lies on the reference line; depth is undefined")
    return nipple, a, normal, tangent, nipple_distance


def geometric_depth(
    point_xy: Sequence[float], landmarks: Landmarks, view: str, *, clip: bool = True
) -> float:
    """Depth of a point (original pixels): 0 at the nipple, 1 at the pectoral line (MLO) / chest wall (CC).

    Measured perpendicular to the reference line (:func:`depth_reference`) and normalized by the nipple's
    distance to it: ``depth = 1 - d(point) / d(nipple)``, with ``d`` the signed distance in mm (positive on
    the nipple's side). Points in front of the nipple give negative values and points beyond the reference
    line (inside the pectoral muscle) values above 1; ``clip`` limits the result to [0, 1].
    """
    _, a, normal, _, nipple_distance = _frame(landmarks, view)
    p = _to_mm(point_xy, landmarks.spacing)[0]
    depth = 1.0 - float((p - a) @ normal) / nipple_distance
    return float(np.clip(depth, 0.0, 1.0)) if clip else depth


def geometric_quadrant(
    point_xy: Sequence[float],
    landmarks: Landmarks,
    view: str,
    breast_mask: np.ndarray | None = None,
    config: LandmarkConfig | None = None,
) -> str:
    """Quadrant name (:data:`vocabulary.QUADRANTS`) of a point in original pixels.

    Rules (distances in mm; "top" is the top of the image: lateral on CC, superior on MLO, per IHE):

    1. ``areola`` when the point lies within ``areola_radius_mm`` of the nipple.
    2. The *nipple axis* runs through the nipple perpendicular to the reference line (pectoral line on MLO,
       chest-wall edge on CC). ``s`` is the point's signed offset from that axis along the reference line,
       positive towards the top.
    3. With ``breast_mask`` (original grid, e.g. :func:`preprocess.original_breast_mask`): the breast's chord
       through the point parallel to the reference line runs from ``s_bottom < 0`` to ``s_top > 0``; the point
       is in the upper region if ``s > middle_fraction * s_top``, the lower region if ``s < middle_fraction *
       s_bottom``, else the middle. Without a mask (or if the point is outside it) the middle band is ``|s| <=
       middle_band_mm``.
    4. CC: upper = ``outer``, middle = ``middle``, lower = ``inner``. MLO: upper = ``upper``
       (``axillary_tail`` when its depth, unclipped, is at least ``axillary_min_depth``), middle = ``middle``,
       lower = ``lower``.
    """
    config = config or LandmarkConfig()
    nipple, _, _, tangent, _ = _frame(landmarks, view)
    p = _to_mm(point_xy, landmarks.spacing)[0]
    if float(np.linalg.norm(p - nipple)) <= config.areola_radius_mm:
        return "areola"
    s = float((p - nipple) @ tangent)
    chord = None if breast_mask is None else _chord(p, tangent, breast_mask, landmarks.spacing)
    if chord is not None:
        s_top, s_bottom = s + chord[0], s - chord[1]
        upper = s_top > 0 and s > config.middle_fraction * s_top
        lower = s_bottom < 0 and s < config.middle_fraction * s_bottom
    else:
        upper = s > config.middle_band_mm
        lower = s < -config.middle_band_mm
    if view == "CC":
        return "outer" if upper else "inner" if lower else "middle"
    if upper:
        deep = geometric_depth(point_xy, landmarks, view, clip=False) >= config.axillary_min_depth
        return "axillary_tail" if deep else "upper"
    return "lower" if lower else "middle"


def _chord(
    p_mm: np.ndarray, tangent: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]
) -> tuple[float, float] | None:
    """Distances (mm) to the mask boundary along +tangent and -tangent; None for a point outside it."""
    mask = np.asarray(mask, dtype=bool)
    step = 0.5 * min(spacing)
    scale = np.array([spacing[1], spacing[0]])

    def inside(q_mm: np.ndarray) -> np.ndarray:
        xy = q_mm / scale
        col, row = np.floor(xy[..., 0]).astype(int), np.floor(xy[..., 1]).astype(int)
        ok = (row >= 0) & (row < mask.shape[0]) & (col >= 0) & (col < mask.shape[1])
        out = np.zeros(col.shape, dtype=bool)
        out[ok] = mask[row[ok], col[ok]]
        return out

    if not inside(p_mm[None])[0]:
        return None
    max_steps = int(np.hypot(mask.shape[0] * spacing[0], mask.shape[1] * spacing[1]) / step) + 2
    offsets = np.arange(1, max_steps + 1) * step
    extents = []
    for sign in (1.0, -1.0):
        q = p_mm[None, :] + sign * offsets[:, None] * tangent[None, :]
        ins = inside(q)
        first_out = int(np.argmin(ins)) if not ins.all() else len(ins)
        extents.append(float(first_out * step))
    return extents[0], extents[1]
