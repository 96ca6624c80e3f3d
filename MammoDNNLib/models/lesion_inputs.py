"""Network inputs for the per-lesion models, built from a prepared view and one lesion's mask on its grid.

Both inputs are two-channel images: the gray-normalized prepared image and the lesion mask.

* **Localization** (:func:`localization_input`): the *whole* prepared view fitted into a fixed canvas
  (``height`` x ``width``, aspect ratio preserved, anchored at the top-left so the chest wall stays on the
  left edge and the top stays the top; the rest is padded with the background value), and the lesion mask on
  the same canvas as the fraction of each canvas cell it covers, rescaled so that its maximum is 1 (a 3 mm
  lesion on a 2 mm canvas cell still marks its place clearly). Preserving the aspect ratio keeps the angles
  that depth depends on (the pectoral line's slope).
* **Malignancy** (:func:`malignancy_input`): a square region of interest centred on the lesion's box, of side
  ``context`` times the box's longer side (at least ``min_side_mm``; calcification clusters get a tighter
  window capped at 24 mm so that their specks stay resolvable), resampled to ``size`` x ``size`` with
  anti-aliasing, and the mask on the same window. The window is defined in millimetres, so a view prepared at
  another spacing gives the same field of view (at its own resolution).

Lesion masks in the pipeline come from detections (boxes with a classical outline inside), not from ground
truth; :func:`perturb_mask` makes the imperfect masks the networks are trained on (dilated / eroded / shifted
outlines, ellipses and filled boxes on jittered boxes).

Training builds its inputs with the same functions inference uses, from the same prepared views, so what the
networks see at training and in the pipeline differs only by the mask's origin. Everything runs on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from ..geometry import LesionMask
from ..vocabulary import FINDING_TYPE_KEYS

IMAGE_CLIP: tuple[float, float] = (
    -0.5,
    1.5,
)  # gray-normalized range kept (prepared views: 90 % of breast in [0, 1])


def _config_from_dict(cls, data: Mapping[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
    values = dict(data)
    for name in ("clip",):
        if name in values:
            values[name] = tuple(values[name])
    return cls(**values)


@dataclass(frozen=True)
class LocalizationInputConfig:
    height: int = 128  # canvas rows (along the chest wall)
    width: int = 96  # canvas columns (chest wall -> nipple)
    clip: tuple[float, float] = IMAGE_CLIP

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clip"] = list(self.clip)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LocalizationInputConfig":
        return _config_from_dict(cls, data)


def _default_context_by_type() -> dict[str, float]:
    # Calcification clusters are judged by their specks: a tight window keeps them resolvable.
    return {"calcification": 1.25}


def _default_max_side_by_type() -> dict[str, float]:
    return {"calcification": 24.0}


@dataclass(frozen=True)
class MalignancyInputConfig:
    size: int = 64  # output side, pixels
    context: float = 2.0  # window side / the box's longer side
    min_side_mm: float = 16.0  # smallest window side (small lesions keep some surrounding tissue)
    clip: tuple[float, float] = IMAGE_CLIP
    context_by_type: dict[str, float] = field(default_factory=_default_context_by_type)  # overrides per type
    max_side_mm_by_type: dict[str, float] = field(default_factory=_default_max_side_by_type)  # cap per type

    def __post_init__(self) -> None:
        for mapping in (self.context_by_type, self.max_side_mm_by_type):
            unknown = set(mapping) - set(FINDING_TYPE_KEYS)
            if unknown:
                raise ValueError(
                    f"unknown finding type(s) {', '.join(sorted(unknown))} in the malignancy inputs"
                )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clip"] = list(self.clip)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MalignancyInputConfig":
        return _config_from_dict(cls, data)


def as_lesion_mask(mask: LesionMask | np.ndarray) -> LesionMask:
    """A :class:`LesionMask` from either itself or a full-grid boolean array."""
    if isinstance(mask, LesionMask):
        return mask
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a lesion mask is a 2-D array or a LesionMask, got shape {array.shape}")
    return LesionMask.from_full(array.astype(bool))


def finding_type_index(finding_type: str) -> int:
    """0-based index of a finding type in :data:`vocabulary.FINDING_TYPE_KEYS`."""
    try:
        return FINDING_TYPE_KEYS.index(finding_type)
    except ValueError:
        raise ValueError(
            f"unknown finding type {finding_type!r}; expected one of {', '.join(FINDING_TYPE_KEYS)}"
        ) from None


# -- localization
# ---------------------------------------------------------------------------------------------
@dataclass
class ViewCanvas:
    """A prepared view fitted into the localization canvas: ``image`` (H, W) and the prepared->canvas
    scale."""

    image: np.ndarray  # (H, W) float32, clipped, padded with the background value
    scale: float  # canvas pixels per prepared pixel (same in x and y)
    prepared_shape: tuple[int, int]  # (rows, cols) of the prepared view


def fit_view(image: np.ndarray, config: LocalizationInputConfig = LocalizationInputConfig()) -> ViewCanvas:
    """Resample a prepared image into the canvas, aspect ratio kept, anchored top-left."""
    import torch
    import torch.nn.functional as F

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"a prepared image is a 2-D array of at least 2 x 2 pixels, got shape {image.shape}")
    rows, cols = image.shape
    scale = min(config.height / rows, config.width / cols)
    out_rows = min(config.height, max(1, round(rows * scale)))
    out_cols = min(config.width, max(1, round(cols * scale)))
    low, high = config.clip
    tensor = torch.from_numpy(np.clip(image, low, high))[None, None]
    resized = F.interpolate(
        tensor, size=(out_rows, out_cols), mode="bilinear", align_corners=False, antialias=True
    )[0, 0].numpy()
    canvas = np.full((config.height, config.width), low, dtype=np.float32)
    canvas[:out_rows, :out_cols] = resized
    return ViewCanvas(canvas, float(scale), (rows, cols))


def mask_on_canvas(mask: LesionMask, canvas: ViewCanvas) -> np.ndarray:
    """The fraction of each canvas cell the mask covers, divided by its maximum (so the peak is 1)."""
    height, width = canvas.image.shape
    out = np.zeros((height, width), dtype=np.float64)
    if mask.empty:
        return out.astype(np.float32)
    rows, cols = np.nonzero(mask.array)
    s = canvas.scale
    r = np.clip(((rows + mask.origin[1] + 0.5) * s).astype(int), 0, height - 1)
    c = np.clip(((cols + mask.origin[0] + 0.5) * s).astype(int), 0, width - 1)
    np.add.at(out, (r, c), s * s)
    return (out / out.max()).astype(np.float32)


def localization_input(
    image: np.ndarray | ViewCanvas,
    mask: LesionMask | np.ndarray,
    config: LocalizationInputConfig = LocalizationInputConfig(),
) -> np.ndarray:
    """``(2, height, width)`` float32: the fitted view and the lesion mask (prepared grid) on the same canvas.

    ``image`` may be a :class:`ViewCanvas` already fitted with :func:`fit_view` (several lesions of one view).
    """
    canvas = image if isinstance(image, ViewCanvas) else fit_view(image, config)
    if canvas.image.shape != (config.height, config.width):
        raise ValueError(
            f"canvas {canvas.image.shape} does not match the configuration ({config.height}, {config.width})"
        )
    lesion = as_lesion_mask(mask)
    if lesion.empty:
        raise ValueError("the lesion mask is empty")
    return np.stack([canvas.image, mask_on_canvas(lesion, canvas)]).astype(np.float32)


# -- malignancy
# -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoiWindow:
    """A square window in prepared pixels: centre and side."""

    cx: float
    cy: float
    side: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        h = self.side / 2.0
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


def roi_window(
    box: tuple[float, float, float, float],
    spacing_mm: float,
    config: MalignancyInputConfig = MalignancyInputConfig(),
    finding_type: str | None = None,
) -> RoiWindow:
    """The malignancy window of a lesion box (prepared pixels at ``spacing_mm``): ``context`` (or the type's
    own) times the box's longer side, at least ``min_side_mm`` and at most the type's
    ``max_side_mm_by_type``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"empty lesion box {box}")
    context = config.context_by_type.get(finding_type, config.context) if finding_type else config.context
    side = max(context * max(x1 - x0, y1 - y0), config.min_side_mm / float(spacing_mm))
    cap = config.max_side_mm_by_type.get(finding_type) if finding_type else None
    if cap is not None:
        side = min(side, max(cap, config.min_side_mm) / float(spacing_mm))
    return RoiWindow((x0 + x1) / 2.0, (y0 + y1) / 2.0, side)


def _window_slices(window: RoiWindow) -> tuple[int, int, int, int]:
    """Integer pixel range ``[x0, x1) x [y0, y1)`` of a window (at least 2 pixels a side)."""
    x0 = int(math.floor(window.cx - window.side / 2.0))
    y0 = int(math.floor(window.cy - window.side / 2.0))
    n = max(2, int(round(window.side)))
    return x0, y0, x0 + n, y0 + n


def _take(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``image`` on ``[x0, x1) x [y0, y1)``; coordinates beyond the image repeat its edge pixel."""
    height, width = image.shape
    cols = np.clip(np.arange(x0, x1), 0, width - 1)
    rows = np.clip(np.arange(y0, y1), 0, height - 1)
    return image[np.ix_(rows, cols)]


def _render_mask(mask: LesionMask, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return LesionMask(mask.array, (mask.origin[0] - x0, mask.origin[1] - y0)).full((y1 - y0, x1 - x0))


def crop_roi(
    image: np.ndarray,
    mask: LesionMask,
    window: RoiWindow,
    size: int,
    *,
    clip: tuple[float, float] = IMAGE_CLIP,
    spacing_mm: float | None = None,
    native_spacing_mm: float | None = None,
) -> np.ndarray:
    """``(2, size, size)`` float32: image and mask on ``window``, resampled with anti-aliasing.

    When the view (``spacing_mm``) is finer than the spacing the network was trained at
    (``native_spacing_mm``), the window is first brought down to that spacing, so the network sees the same
    level of detail whatever spacing the pipeline prepared the view at.
    """
    import torch
    import torch.nn.functional as F

    x0, y0, x1, y1 = _window_slices(window)
    pixels = np.clip(_take(np.asarray(image), x0, y0, x1, y1).astype(np.float32), clip[0], clip[1])
    lesion = _render_mask(mask, x0, y0, x1, y1).astype(np.float32)
    stack = torch.from_numpy(np.stack([pixels, lesion]).astype(np.float32))[None]
    if spacing_mm is not None and native_spacing_mm is not None and native_spacing_mm > spacing_mm * 1.05:
        native = max(2, int(round((x1 - x0) * spacing_mm / native_spacing_mm)))
        if native < size:
            stack = F.interpolate(
                stack, size=(native, native), mode="bilinear", align_corners=False, antialias=True
            )
    resized = F.interpolate(stack, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return resized.numpy()


def malignancy_input(
    image: np.ndarray,
    mask: LesionMask | np.ndarray,
    spacing_mm: float,
    config: MalignancyInputConfig = MalignancyInputConfig(),
    native_spacing_mm: float | None = None,
    finding_type: str | None = None,
) -> np.ndarray:
    """``(2, size, size)`` float32: the region of interest around the lesion and its mask (prepared grid).

    ``spacing_mm`` is the prepared view's pixel size; ``native_spacing_mm`` the one the network was trained
    at; ``finding_type`` selects the type's window (calcifications: tighter, capped).
    """
    lesion = as_lesion_mask(mask)
    if lesion.empty:
        raise ValueError("the lesion mask is empty")
    window = roi_window(lesion.box, spacing_mm, config, finding_type)
    return crop_roi(
        image,
        lesion,
        window,
        config.size,
        clip=config.clip,
        spacing_mm=spacing_mm,
        native_spacing_mm=native_spacing_mm,
    )


SIZE_FEATURES: tuple[str, ...] = ("log_longest_side_cm", "log_equivalent_diameter_cm")


def lesion_size_features(mask: LesionMask | np.ndarray, spacing_mm: float) -> np.ndarray:
    """``(2,)`` float32: log of the box's longest side and of the mask's equivalent diameter, in centimetres.

    The malignancy window is scaled to the lesion, so the image alone no longer tells its size; these two
    numbers
    give it back (malignant masses are larger on average, clusters more extensive).
    """
    lesion = as_lesion_mask(mask)
    if lesion.empty:
        raise ValueError("the lesion mask is empty")
    x0, y0, x1, y1 = lesion.box
    longest = max(x1 - x0, y1 - y0) * spacing_mm / 10.0
    diameter = 2.0 * math.sqrt(lesion.area / math.pi) * spacing_mm / 10.0
    return np.log(np.array([longest, diameter], dtype=np.float32))


# -- mask perturbation
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskPerturbation:
    """How training masks imitate detection masks (probabilities of each kind; sizes relative or in mm)."""

    keep: float = 0.25  # the true mask unchanged
    box: float = 0.15  # the filled (jittered) bounding box
    ellipse: float = 0.15  # the ellipse inscribed in the (jittered) box
    morph: float = 0.45  # the true mask dilated or eroded, inside the jittered box
    box_jitter: float = 0.15  # box edges move by up to this fraction of the box's side
    max_morph_mm: float = 2.5  # dilation / erosion radius up to this

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MaskPerturbation":
        return _config_from_dict(cls, data)


def jitter_box(
    box: tuple[float, float, float, float], rng: np.random.Generator, fraction: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer box with each edge moved by up to ``fraction`` of its side, clipped to ``shape`` (rows,
    cols)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dx = rng.uniform(-fraction, fraction, 2) * w
    dy = rng.uniform(-fraction, fraction, 2) * h
    nx0, nx1 = int(round(x0 + dx[0])), int(round(x1 + dx[1]))
    ny0, ny1 = int(round(y0 + dy[0])), int(round(y1 + dy[1]))
    rows, cols = shape
    nx0, ny0 = max(0, min(nx0, cols - 1)), max(0, min(ny0, rows - 1))
    nx1, ny1 = min(cols, max(nx1, nx0 + 1)), min(rows, max(ny1, ny0 + 1))
    return nx0, ny0, nx1, ny1


def _ellipse(x0: int, y0: int, x1: int, y1: int) -> LesionMask:
    rows, cols = y1 - y0, x1 - x0
    yy = (np.arange(rows) + 0.5 - rows / 2.0) / (rows / 2.0)
    xx = (np.arange(cols) + 0.5 - cols / 2.0) / (cols / 2.0)
    inside = yy[:, None] ** 2 + xx[None, :] ** 2 <= 1.0
    if not inside.any():
        inside[rows // 2, cols // 2] = True
    return LesionMask(inside, (x0, y0))


def perturb_mask(
    mask: LesionMask,
    shape: tuple[int, int],
    spacing_mm: float,
    rng: np.random.Generator,
    config: MaskPerturbation = MaskPerturbation(),
) -> LesionMask:
    """A detection-like version of a true mask (never empty), on a grid of ``shape`` (rows, cols)."""
    from scipy import ndimage as ndi

    if mask.empty:
        raise ValueError("cannot perturb an empty mask")
    weights = np.array([config.keep, config.box, config.ellipse, config.morph], dtype=np.float64)
    kind = int(rng.choice(4, p=weights / weights.sum()))
    if kind == 0:
        return mask
    x0, y0, x1, y1 = jitter_box(mask.box, rng, config.box_jitter, shape)
    if kind == 1:
        return LesionMask(np.ones((y1 - y0, x1 - x0), bool), (x0, y0))
    if kind == 2:
        return _ellipse(x0, y0, x1, y1)
    radius = rng.uniform(0.5, config.max_morph_mm) / spacing_mm
    pad = int(math.ceil(radius)) + 1
    grid = np.pad(mask.array, pad)
    structure = _disk(radius)
    if rng.random() < 0.5:
        changed = ndi.binary_dilation(grid, structure)
    else:
        changed = ndi.binary_erosion(grid, structure)
        if not changed.any():
            changed = grid
    # Calcification clusters are specks: a closing turns them into the filled outline a detector draws.
    changed = (
        ndi.binary_fill_holes(ndi.binary_closing(changed, _disk(max(radius, 2.0)), iterations=1)) | changed
    )
    full = LesionMask(changed, (mask.origin[0] - pad, mask.origin[1] - pad))
    window = _render_mask(full, x0, y0, x1, y1)
    if not window.any():
        return LesionMask(np.ones((y1 - y0, x1 - x0), bool), (x0, y0))
    return LesionMask.from_full_crop(window, (x0, y0))


def _disk(radius: float) -> np.ndarray:
    r = max(1, int(math.ceil(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return xx**2 + yy**2 <= max(radius, 1.0) ** 2
