"""What the CC-MLO matcher knows about a lesion (:class:`MatchCandidate`) and about a pair (:data:`FEATURE_NAMES`).

A candidate is built from a :class:`~MammoDNNLib.findings.Finding` and its view (:class:`ViewContext`, usually
made from the preprocessing's ``PreparedView``):

* **type** and detection **score**;
* **size**: area in mm² (exact mask, else the outline, else the ellipse inscribed in the box), the box's sides in
  mm;
* **position** relative to the landmarks of its view, in mm of the original grid: depth (the finding's own, else
  :func:`~MammoDNNLib.landmarks.geometric_depth`), depth in mm along the nipple axis, the straight **distance from
  the nipple** (radiologists' "arc" rule: a lesion lies about as far from the nipple in CC as in MLO), and the
  signed offset from the nipple axis (lateral+ on CC, superior+ on MLO);
* **quadrant probabilities** (the finding's, else its quadrant, else the geometric quadrant, as one-hot);
* **intensity** inside the lesion and in a ring around it (``ring_inner_mm`` .. ``ring_outer_mm`` outside the
  outline, within the breast) on the gray-normalized prepared image;
* **texture** inside the lesion: GLCM contrast and homogeneity (distances 1 and 2 px, four angles, symmetric,
  normalized, ``glcm_levels`` gray levels over ``gray_range``) and the uniform LBP histogram (P = 8, R = 1).

Intensity and texture are measured on a window resampled to ``texture_spacing_mm`` (0.5 mm) whatever the prepared
spacing, so the same lesion gives the same numbers at any model spacing.

A pair's features (:func:`pair_feature_matrix`) are differences, ratios and agreements of the two candidates,
the quadrant compatibility of ``vocabulary.QUADRANT_COMPATIBILITY`` weighted by the quadrant probabilities, and
the pair's rank among the other pairs of the same CC (row) and MLO (column) candidate. Every feature is finite for
candidates whose views have a nipple landmark; a missing landmark gives NaN, which LightGBM treats as missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..findings import Finding
from ..geometry import LesionMask, Transform
from ..vocabulary import QUADRANT_COMPATIBILITY, QUADRANTS, class_index, split_view_key

LBP_POINTS = 8
LBP_BINS = LBP_POINTS + 2  # uniform LBP codes 0..P+1


@dataclass(frozen=True)
class CandidateConfig:
    """How candidates are measured. Stored in the matcher's manifest: a model is used with the settings it was
    trained with."""

    texture_spacing_mm: float = 0.5
    ring_inner_mm: float = 1.0
    ring_outer_mm: float = 5.0
    glcm_levels: int = 32
    gray_range: tuple[float, float] = (-0.5, 1.5)  # gray-normalized values quantized for the GLCM

    def __post_init__(self) -> None:
        object.__setattr__(self, "gray_range", tuple(float(v) for v in self.gray_range))
        if self.texture_spacing_mm <= 0:
            raise ValueError("texture_spacing_mm must be positive")
        if not 0 <= self.ring_inner_mm < self.ring_outer_mm:
            raise ValueError("need 0 <= ring_inner_mm < ring_outer_mm")
        if not 2 <= self.glcm_levels <= 256:
            raise ValueError("glcm_levels must be in 2..256")
        if not self.gray_range[0] < self.gray_range[1]:
            raise ValueError("gray_range must be increasing")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gray_range"] = list(self.gray_range)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown candidate option(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@dataclass
class ViewContext:
    """What the features need of a view: the gray-normalized prepared image with its breast mask and transform,
    and the landmarks (original pixels, with the original (row, col) spacing in mm)."""

    key: str
    image: np.ndarray  # (H, W) float32 prepared, gray-normalized
    breast_mask: np.ndarray  # (H, W) bool prepared
    transform: Transform
    spacing_mm: float  # prepared pixel size
    landmarks: Any  # MammoDNNLib.landmarks.Landmarks (original pixels, .spacing = original (row, col) mm)
    _original_mask: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_prepared(cls, prepared: Any) -> ViewContext:
        """From a ``preprocess.PreparedView`` (or anything with the same attributes)."""
        return cls(prepared.key, prepared.image, prepared.breast_mask, prepared.transform, float(prepared.spacing_mm),
                   prepared.landmarks)

    @property
    def view(self) -> str:
        return split_view_key(self.key)[1]

    @property
    def original_spacing(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.landmarks.spacing)  # type: ignore[return-value]

    @property
    def original_shape(self) -> tuple[int, int]:
        width, height = self.transform.original_size
        return height, width

    def original_breast_mask(self) -> np.ndarray:
        """The breast mask on the original grid (computed once)."""
        if self._original_mask is None:
            self._original_mask = self.transform.mask_to_original(self.breast_mask.astype(np.uint8)).astype(bool)
        return self._original_mask


@dataclass
class MatchCandidate:
    """One finding as the matcher sees it (all lengths in mm)."""

    id: str
    view_key: str
    type: str
    score: float
    center: tuple[float, float]  # original pixels (mask centroid, else box centre)
    area_mm2: float
    width_mm: float  # box sides
    height_mm: float
    depth: float  # 0 nipple .. 1 pectoralis / chest wall
    depth_mm: float  # behind the nipple along the nipple axis
    nipple_distance_mm: float
    offset_mm: float  # from the nipple axis along the chest-wall/pectoral line, towards the top of the image
    quadrant_probabilities: dict[str, float]
    mean_inside: float
    std_inside: float
    p90_inside: float
    mean_ring: float
    std_ring: float
    glcm_contrast: float
    glcm_homogeneity: float
    lbp_histogram: tuple[float, ...]
    truth_id: str | None = None  # the true lesion it belongs to (training and evaluation only)

    @property
    def laterality(self) -> str:
        return split_view_key(self.view_key)[0]

    @property
    def view(self) -> str:
        return split_view_key(self.view_key)[1]


# ----------------------------------------------------------------------------------------------------------------
# Candidates
# ----------------------------------------------------------------------------------------------------------------


def _ellipse_mask(box: tuple[float, float, float, float], shape: tuple[int, int]) -> LesionMask:
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    t = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    mask = LesionMask.from_polygon(np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]), shape)
    if mask.empty:  # smaller than a pixel: the pixel under the centre
        c = int(np.clip(np.floor(cx), 0, shape[1] - 1))
        r = int(np.clip(np.floor(cy), 0, shape[0] - 1))
        mask = LesionMask(np.ones((1, 1), bool), (c, r))
    return mask


def finding_mask(finding: Finding, shape: tuple[int, int]) -> LesionMask:
    """The exact mask, else the rasterized outline, else the ellipse inscribed in the box (``shape`` = rows, cols)."""
    if finding.mask is not None and not finding.mask.empty:
        return finding.mask
    if len(finding.outline) >= 3:
        mask = LesionMask.from_polygon(finding.outline, shape)
        if not mask.empty:
            return mask
    return _ellipse_mask(finding.box, shape)


def _landmark_frame(landmarks: Any, view: str):
    """(nipple, a point of the reference line, unit normal towards the nipple, unit tangent towards the top of the
    image, nipple distance from the line), in mm of the original grid, or None without a nipple.

    The same frame as :func:`MammoDNNLib.landmarks.geometric_depth` (reference line from
    :func:`~MammoDNNLib.landmarks.depth_reference`), so depth here equals the geometric depth.
    """
    from ..landmarks import depth_reference

    if landmarks.nipple is None:
        return None
    scale = np.array([landmarks.spacing[1], landmarks.spacing[0]], dtype=np.float64)
    a, b = (np.asarray(p, dtype=np.float64) * scale for p in depth_reference(landmarks, view).points)
    nipple = np.asarray(landmarks.nipple.xy, dtype=np.float64) * scale
    tangent = b - a
    length = float(np.linalg.norm(tangent))
    if length == 0:
        return None
    tangent /= length
    if tangent[1] > 0 or (tangent[1] == 0 and tangent[0] < 0):
        tangent = -tangent  # towards the top of the image (lateral on CC, superior on MLO)
    normal = np.array([-tangent[1], tangent[0]])
    distance = float((nipple - a) @ normal)
    if distance < 0:
        normal, distance = -normal, -distance
    if distance == 0:
        return None
    return nipple, a, normal, tangent, distance


def _quadrant_probabilities(finding: Finding, context: ViewContext, center: tuple[float, float]) -> dict[str, float]:
    names = QUADRANTS[context.view]
    if finding.quadrant_probabilities:
        probs = {q: float(finding.quadrant_probabilities.get(q, 0.0)) for q in names}
        total = sum(probs.values())
        if total > 0:
            return {q: p / total for q, p in probs.items()}
    quadrant = finding.quadrant
    if quadrant not in names:
        from ..landmarks import geometric_quadrant

        try:
            quadrant = geometric_quadrant(center, context.landmarks, context.view, context.original_breast_mask())
        except ValueError:  # no nipple: nothing known
            return {q: 1.0 / len(names) for q in names}
    return {q: float(q == quadrant) for q in names}


def make_candidate(
    finding: Finding,
    context: ViewContext,
    config: CandidateConfig | None = None,
    truth_id: str | None = None,
) -> MatchCandidate:
    """Measure ``finding`` in its view (see the module docstring for every quantity)."""
    config = config or CandidateConfig()
    if finding.view_key != context.key:
        raise ValueError(f"finding {finding.id} is in {finding.view_key}, the view given is {context.key}")
    shape = context.original_shape
    mask = finding_mask(finding, shape)
    row_mm, col_mm = context.original_spacing
    rows, cols = np.nonzero(mask.array)
    center = (float(cols.mean() + 0.5 + mask.origin[0]), float(rows.mean() + 0.5 + mask.origin[1]))
    x0, y0, x1, y1 = finding.box

    frame = _landmark_frame(context.landmarks, context.view)
    if frame is None:
        depth = depth_mm = nipple_distance = offset = math.nan
    else:
        nipple, ref, normal, tangent, pnl = frame
        p = np.array([center[0] * col_mm, center[1] * row_mm])
        depth_mm = pnl - float((p - ref) @ normal)
        nipple_distance = float(np.linalg.norm(p - nipple))
        offset = float((p - nipple) @ tangent)
        depth = float(np.clip(depth_mm / pnl, 0.0, 1.0))
    if finding.depth is not None and math.isfinite(finding.depth):
        depth = float(finding.depth)

    texture = _intensity_and_texture(mask, context, config)
    return MatchCandidate(
        id=finding.id,
        view_key=finding.view_key,
        type=finding.type,
        score=float(finding.score),
        center=center,
        area_mm2=float(mask.area * row_mm * col_mm),
        width_mm=float((x1 - x0) * col_mm),
        height_mm=float((y1 - y0) * row_mm),
        depth=float(depth),
        depth_mm=float(depth_mm),
        nipple_distance_mm=float(nipple_distance),
        offset_mm=float(offset),
        quadrant_probabilities=_quadrant_probabilities(finding, context, center),
        truth_id=truth_id,
        **texture,
    )


def _intensity_and_texture(mask: LesionMask, context: ViewContext, config: CandidateConfig) -> dict[str, Any]:
    """Statistics of the prepared image inside the lesion and in a ring around it, at ``texture_spacing_mm``."""
    from scipy import ndimage
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
    from skimage.transform import resize

    transform = context.transform
    row_mm, col_mm = context.original_spacing
    pad_x, pad_y = config.ring_outer_mm / col_mm + 1, config.ring_outer_mm / row_mm + 1
    bx0, by0, bx1, by1 = mask.box
    window = transform.boxes_to_prepared([(bx0 - pad_x, by0 - pad_y, bx1 + pad_x, by1 + pad_y)])[0]
    height, width = context.image.shape
    c0, r0 = max(int(np.floor(window[0])), 0), max(int(np.floor(window[1])), 0)
    c1, r1 = min(int(np.ceil(window[2])), width), min(int(np.ceil(window[3])), height)
    if c1 <= c0 or r1 <= r0:  # the lesion lies outside the prepared crop (should not happen): nothing measurable
        return _empty_texture()
    crop = context.image[r0:r1, c0:c1].astype(np.float64)
    factor = context.spacing_mm / config.texture_spacing_mm
    out_shape = (max(int(round((r1 - r0) * factor)), 3), max(int(round((c1 - c0) * factor)), 3))
    image = resize(crop, out_shape, order=1, mode="edge", anti_aliasing=factor < 1, preserve_range=True)
    breast = resize(context.breast_mask[r0:r1, c0:c1].astype(np.float32), out_shape, order=0, mode="edge",
                    anti_aliasing=False, preserve_range=True) > 0.5
    # The lesion mask on the resampled window: each pixel centre mapped back to the original grid.
    ys = r0 + (np.arange(out_shape[0]) + 0.5) * (r1 - r0) / out_shape[0]
    xs = c0 + (np.arange(out_shape[1]) + 0.5) * (c1 - c0) / out_shape[1]
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    orig = transform.to_original(grid)
    mc = np.floor(orig[:, 0]).astype(int) - mask.origin[0]
    mr = np.floor(orig[:, 1]).astype(int) - mask.origin[1]
    inside_bounds = (mr >= 0) & (mr < mask.array.shape[0]) & (mc >= 0) & (mc < mask.array.shape[1])
    lesion = np.zeros(len(grid), bool)
    lesion[inside_bounds] = mask.array[mr[inside_bounds], mc[inside_bounds]]
    lesion = lesion.reshape(out_shape)
    if not lesion.any():  # smaller than one texture pixel: the pixel under its centre
        centre = transform.to_prepared([[(bx0 + bx1) / 2, (by0 + by1) / 2]])[0]
        r = int(np.clip((centre[1] - r0) * factor, 0, out_shape[0] - 1))
        c = int(np.clip((centre[0] - c0) * factor, 0, out_shape[1] - 1))
        lesion[r, c] = True
    step = config.texture_spacing_mm
    inner = ndimage.binary_dilation(lesion, iterations=max(int(round(config.ring_inner_mm / step)), 0)) \
        if config.ring_inner_mm > 0 else lesion
    outer = ndimage.binary_dilation(lesion, iterations=max(int(round(config.ring_outer_mm / step)), 1))
    ring = outer & ~inner & breast
    values = image[lesion]
    ring_values = image[ring] if ring.sum() >= 4 else image[~lesion] if (~lesion).any() else values

    lo, hi = config.gray_range
    levels = config.glcm_levels
    quantized = np.clip(((image - lo) / (hi - lo) * levels).astype(int), 0, levels - 1).astype(np.uint8)
    rows_any, cols_any = np.nonzero(lesion.any(axis=1))[0], np.nonzero(lesion.any(axis=0))[0]
    patch = quantized[rows_any[0]:rows_any[-1] + 1, cols_any[0]:cols_any[-1] + 1]
    if min(patch.shape) < 3:  # too small for a co-occurrence at distance 2: take the 5x5 around it
        rc, cc = (rows_any[0] + rows_any[-1]) // 2, (cols_any[0] + cols_any[-1]) // 2
        patch = quantized[max(rc - 2, 0):rc + 3, max(cc - 2, 0):cc + 3]
    glcm = graycomatrix(patch, distances=[1, 2], angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels,
                        symmetric=True, normed=True)
    # A constant patch has no co-occurring pair at some offsets (all-zero slices): average the rest.
    valid = glcm.sum(axis=(0, 1)) > 0
    contrast = graycoprops(glcm, "contrast")[valid]
    homogeneity = graycoprops(glcm, "homogeneity")[valid]
    # LBP on 8-bit levels of the same gray range: integer input keeps ties exact (skimage's advice).
    levels8 = np.clip((image - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    lbp = local_binary_pattern(levels8, LBP_POINTS, 1, method="uniform")
    histogram = np.bincount(lbp[lesion].astype(int), minlength=LBP_BINS)[:LBP_BINS].astype(np.float64)
    histogram /= max(histogram.sum(), 1.0)
    return {
        "mean_inside": float(values.mean()),
        "std_inside": float(values.std()),
        "p90_inside": float(np.percentile(values, 90)),
        "mean_ring": float(ring_values.mean()),
        "std_ring": float(ring_values.std()),
        "glcm_contrast": float(contrast.mean()) if contrast.size else 0.0,
        "glcm_homogeneity": float(homogeneity.mean()) if homogeneity.size else 1.0,
        "lbp_histogram": tuple(float(v) for v in histogram),
    }


def _empty_texture() -> dict[str, Any]:
    return {"mean_inside": math.nan, "std_inside": math.nan, "p90_inside": math.nan, "mean_ring": math.nan,
            "std_ring": math.nan, "glcm_contrast": math.nan, "glcm_homogeneity": math.nan,
            "lbp_histogram": tuple([math.nan] * LBP_BINS)}


# ----------------------------------------------------------------------------------------------------------------
# Pair features
# ----------------------------------------------------------------------------------------------------------------

# The fixed feature list of a pair (CC candidate, MLO candidate); a trained model stores it and refuses others.
FEATURE_NAMES: tuple[str, ...] = (
    "same_type",  # 1 when both candidates have the same finding type
    "type_cc",  # class index (vocabulary.class_index, 1..4)
    "type_mlo",
    "score_cc",
    "score_mlo",
    "score_min",
    "score_abs_diff",
    "depth_cc",
    "depth_mlo",
    "depth_abs_diff",
    "depth_mm_abs_diff",
    "nipple_distance_cc_mm",
    "nipple_distance_mlo_mm",
    "nipple_distance_abs_diff_mm",
    "nipple_distance_ratio",  # smaller / larger
    "offset_cc_mm",
    "offset_mlo_mm",
    "size_cc_mm",  # sqrt(area)
    "size_mlo_mm",
    "area_log_ratio_abs",
    "box_long_log_ratio_abs",
    "box_short_log_ratio_abs",
    "quadrant_compatibility",  # sum over compatible (CC, MLO) quadrant pairs of p_cc * p_mlo
    "quadrant_compatible_top",  # the two most probable quadrants are compatible
    "contrast_cc",  # mean inside - mean of the ring (gray-normalized)
    "contrast_mlo",
    "contrast_abs_diff",
    "mean_inside_abs_diff",
    "p90_inside_abs_diff",
    "std_inside_log_ratio_abs",
    "glcm_contrast_log_ratio_abs",
    "glcm_homogeneity_abs_diff",
    "lbp_chi2",  # chi-square distance of the LBP histograms
    "n_cc",  # candidates of this breast in each view
    "n_mlo",
    "score_rank_cc",  # rank of the CC candidate by score in its view (0 = highest)
    "score_rank_mlo",
    "nipple_rank_row",  # rank of this pair by nipple-distance difference among the CC candidate's pairs (0 = best)
    "nipple_rank_col",  # ... among the MLO candidate's pairs
    "depth_rank_row",
    "depth_rank_col",
    "nipple_margin_row_mm",  # this pair's nipple-distance difference minus the best other one in its row
    "nipple_margin_col_mm",
)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _per_candidate(candidates: Sequence[MatchCandidate]) -> dict[str, np.ndarray]:
    def col(name: str) -> np.ndarray:
        return np.array([getattr(c, name) for c in candidates], dtype=np.float64)

    out = {name: col(name) for name in (
        "score", "area_mm2", "width_mm", "height_mm", "depth", "depth_mm", "nipple_distance_mm", "offset_mm",
        "mean_inside", "std_inside", "p90_inside", "mean_ring", "glcm_contrast", "glcm_homogeneity",
    )}
    out["type"] = np.array([class_index(c.type) for c in candidates], dtype=np.float64)
    out["lbp"] = np.array([c.lbp_histogram for c in candidates], dtype=np.float64).reshape(len(candidates), LBP_BINS)
    out["contrast"] = out["mean_inside"] - out["mean_ring"]
    order = np.argsort(-out["score"], kind="stable")
    ranks = np.empty(len(candidates))
    ranks[order] = np.arange(len(candidates))
    out["score_rank"] = ranks
    return out


def _quadrant_matrix() -> np.ndarray:
    cc, mlo = QUADRANTS["CC"], QUADRANTS["MLO"]
    return np.array([[float(m in QUADRANT_COMPATIBILITY[c]) for m in mlo] for c in cc])


def _log_ratio_abs(a: np.ndarray, b: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    return np.abs(np.log(np.maximum(a[:, None], floor)) - np.log(np.maximum(b[None, :], floor)))


def _ranks(values: np.ndarray, axis: int) -> np.ndarray:
    """Rank of each entry along ``axis`` (0 = smallest; NaN last)."""
    filled = np.where(np.isnan(values), np.inf, values)
    return np.argsort(np.argsort(filled, axis=axis, kind="stable"), axis=axis, kind="stable").astype(np.float64)


def _margin(values: np.ndarray, axis: int) -> np.ndarray:
    """Each entry minus the smallest *other* entry along ``axis`` (0 when it has no other)."""
    n = values.shape[axis]
    if n < 2:
        return np.zeros_like(values)
    s = np.sort(values, axis=axis)
    best, second = np.take(s, [0], axis=axis), np.take(s, [1], axis=axis)
    other_best = np.where(values == best, second, best)
    return values - other_best


def pair_feature_matrix(cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray:
    """Features of every (CC, MLO) pair of one breast: ``(len(cc), len(mlo), len(FEATURE_NAMES))`` float64."""
    for c in cc:
        if c.view != "CC":
            raise ValueError(f"candidate {c.id} ({c.view_key}) is not a CC candidate")
    for m in mlo:
        if m.view != "MLO":
            raise ValueError(f"candidate {m.id} ({m.view_key}) is not an MLO candidate")
    sides = {c.laterality for c in cc} | {m.laterality for m in mlo}
    if len(sides) > 1:
        raise ValueError("CC and MLO candidates must come from the same breast")
    n, m = len(cc), len(mlo)
    out = np.zeros((n, m, len(FEATURE_NAMES)), dtype=np.float64)
    if n == 0 or m == 0:
        return out
    a, b = _per_candidate(cc), _per_candidate(mlo)

    def put(name: str, value) -> None:
        out[:, :, FEATURE_INDEX[name]] = np.broadcast_to(value, (n, m))

    def rows(x: np.ndarray) -> np.ndarray:
        return x[:, None]

    def cols(x: np.ndarray) -> np.ndarray:
        return x[None, :]

    put("same_type", (rows(a["type"]) == cols(b["type"])).astype(np.float64))
    put("type_cc", rows(a["type"]))
    put("type_mlo", cols(b["type"]))
    put("score_cc", rows(a["score"]))
    put("score_mlo", cols(b["score"]))
    put("score_min", np.minimum(rows(a["score"]), cols(b["score"])))
    put("score_abs_diff", np.abs(rows(a["score"]) - cols(b["score"])))
    put("depth_cc", rows(a["depth"]))
    put("depth_mlo", cols(b["depth"]))
    depth_diff = np.abs(rows(a["depth"]) - cols(b["depth"]))
    put("depth_abs_diff", depth_diff)
    put("depth_mm_abs_diff", np.abs(rows(a["depth_mm"]) - cols(b["depth_mm"])))
    put("nipple_distance_cc_mm", rows(a["nipple_distance_mm"]))
    put("nipple_distance_mlo_mm", cols(b["nipple_distance_mm"]))
    nipple_diff = np.abs(rows(a["nipple_distance_mm"]) - cols(b["nipple_distance_mm"]))
    put("nipple_distance_abs_diff_mm", nipple_diff)
    lo = np.minimum(rows(a["nipple_distance_mm"]), cols(b["nipple_distance_mm"]))
    hi = np.maximum(rows(a["nipple_distance_mm"]), cols(b["nipple_distance_mm"]))
    put("nipple_distance_ratio", np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 1.0))
    put("offset_cc_mm", rows(a["offset_mm"]))
    put("offset_mlo_mm", cols(b["offset_mm"]))
    put("size_cc_mm", rows(np.sqrt(a["area_mm2"])))
    put("size_mlo_mm", cols(np.sqrt(b["area_mm2"])))
    put("area_log_ratio_abs", _log_ratio_abs(a["area_mm2"], b["area_mm2"]))
    put("box_long_log_ratio_abs", _log_ratio_abs(np.maximum(a["width_mm"], a["height_mm"]),
                                                 np.maximum(b["width_mm"], b["height_mm"])))
    put("box_short_log_ratio_abs", _log_ratio_abs(np.minimum(a["width_mm"], a["height_mm"]),
                                                  np.minimum(b["width_mm"], b["height_mm"])))
    pa = np.array([[c.quadrant_probabilities.get(q, 0.0) for q in QUADRANTS["CC"]] for c in cc])
    pb = np.array([[c.quadrant_probabilities.get(q, 0.0) for q in QUADRANTS["MLO"]] for c in mlo])
    compat = _quadrant_matrix()
    put("quadrant_compatibility", pa @ compat @ pb.T)
    put("quadrant_compatible_top", compat[np.argmax(pa, axis=1)][:, np.argmax(pb, axis=1)])
    put("contrast_cc", rows(a["contrast"]))
    put("contrast_mlo", cols(b["contrast"]))
    put("contrast_abs_diff", np.abs(rows(a["contrast"]) - cols(b["contrast"])))
    put("mean_inside_abs_diff", np.abs(rows(a["mean_inside"]) - cols(b["mean_inside"])))
    put("p90_inside_abs_diff", np.abs(rows(a["p90_inside"]) - cols(b["p90_inside"])))
    put("std_inside_log_ratio_abs", _log_ratio_abs(a["std_inside"], b["std_inside"]))
    put("glcm_contrast_log_ratio_abs", _log_ratio_abs(a["glcm_contrast"], b["glcm_contrast"]))
    put("glcm_homogeneity_abs_diff", np.abs(rows(a["glcm_homogeneity"]) - cols(b["glcm_homogeneity"])))
    ha, hb = a["lbp"][:, None, :], b["lbp"][None, :, :]
    total = ha + hb
    put("lbp_chi2", 0.5 * np.sum(np.where(total > 0, (ha - hb) ** 2 / np.where(total > 0, total, 1.0), 0.0), axis=2))
    put("n_cc", float(n))
    put("n_mlo", float(m))
    put("score_rank_cc", rows(a["score_rank"]))
    put("score_rank_mlo", cols(b["score_rank"]))
    put("nipple_rank_row", _ranks(nipple_diff, axis=1))
    put("nipple_rank_col", _ranks(nipple_diff, axis=0))
    put("depth_rank_row", _ranks(depth_diff, axis=1))
    put("depth_rank_col", _ranks(depth_diff, axis=0))
    put("nipple_margin_row_mm", _margin(nipple_diff, axis=1))
    put("nipple_margin_col_mm", _margin(nipple_diff, axis=0))
    return out


def pair_features(
    cc: MatchCandidate,
    mlo: MatchCandidate,
    cc_candidates: Sequence[MatchCandidate] | None = None,
    mlo_candidates: Sequence[MatchCandidate] | None = None,
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` vector of one pair; the rank features are taken among ``cc_candidates`` x
    ``mlo_candidates`` (which must hold ``cc`` and ``mlo``) or, without them, among this pair alone."""
    ccs = list(cc_candidates) if cc_candidates is not None else [cc]
    mlos = list(mlo_candidates) if mlo_candidates is not None else [mlo]
    try:
        i = next(k for k, c in enumerate(ccs) if c is cc)
        j = next(k for k, c in enumerate(mlos) if c is mlo)
    except StopIteration:
        raise ValueError("the pair's candidates must be among the candidate lists given") from None
    return pair_feature_matrix(ccs, mlos)[i, j]


__all__ = [
    "FEATURE_NAMES", "CandidateConfig", "MatchCandidate", "ViewContext", "finding_mask",
    "make_candidate", "pair_feature_matrix", "pair_features",
]
