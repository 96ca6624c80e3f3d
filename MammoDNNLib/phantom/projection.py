"""One view from the 3D model: footprint, thickness, tissue, lesions, X-ray physics, noise and presentation.

Physics (log domain, line integrals of linear attenuation at ~20 keV): fat 0.046/mm, glandular tissue, skin,
muscle 0.080/mm, tumour 0.082-0.096/mm, blood 0.075/mm, hydroxyapatite specks 2.6/mm (Johns & Yaffe 1987). The
compressed breast is a slab of the paddle thickness with a rounded periphery (semi-elliptic profile); the skin
is a shell, so its projected path peaks tangentially at the skin line. The detector blurs (Gaussian MTF) and
counts quanta (Poisson noise in the log image, with the automatic exposure control fixing the counts behind
the breast interior); its gain non-uniformity and row/column banding are the same in every view of a study.

Presentation (vendor-like "For Presentation" processing): the fat-equivalent thickness is subtracted
(peripheral equalization, keeping a gentle darkening towards the skin), the glandular excess is scaled so that
fully glandular tissue reaches ``dense_level``, local contrast is enhanced by an unsharp mask, and the result
is quantized to ``bits_stored`` bits: background near 0, fat dark grey, glandular tissue and muscle bright,
calcifications saturated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import BreastAnatomy, ViewGeometry
from .config import AnatomyConfig, ImagingConfig
from .lesions import (
    DELTA_GLAND,
    MU_FAT,
    LesionModel,
    LesionRender,
    RenderContext,
    render_lesion,
    render_obscuring_tissue,
)
from .raster import ViewFrame, add_specks, draw_tubes, ring_mask, upsample_by
from .texture import calibrate_bias, gland_fraction, gland_prior, power_law_field, tissue_fields

MU_SKIN = 0.080
MU_MUSCLE = 0.080
MU_BLOOD = 0.075
MU_CALCIUM = 2.6
# Visibility categories by lesion signal-to-surround ratio, set by looking at rendered lesions: below 0.45 a
# reader who knows where to look barely sees it; above 1.2 it stands out.
VISIBILITY_SUBTLE = 0.45
# The least glandular path (fraction of the compressed thickness) that the presentation maps to
# ``dense_level``.
DENSE_PATH_FRACTION = 0.3
SHOULDER_KNEE = 0.72
THICKNESS_MODULATION = 0.2
FOOTPRINT_GRID_MM = 1.0  # the analytic outline is evaluated on this grid, smoothed and interpolated
PERIPHERY_GAMMA = 1.6  # partial peripheral equalization: the thin rim fades towards the skin line
VISIBILITY_OBVIOUS = 1.2


@dataclass
class ViewBase:
    """The parts of a view that depend on anatomy and geometry only (lesions are placed against these)."""

    geometry: ViewGeometry
    frame: ViewFrame
    footprint: np.ndarray  # (H, W) bool: inside the skin line (muscle included)
    distance: np.ndarray  # (H, W) mm from the skin line, inside
    thickness: np.ndarray  # (H, W) total path through the breast, mm
    tissue: np.ndarray  # (H, W) path inside the skin, mm
    skin: np.ndarray  # (H, W) path through skin, mm
    muscle: np.ndarray  # (H, W) path through pectoral muscle, mm
    pectoral_mask: np.ndarray  # (H, W) bool
    nipple_mm: np.ndarray  # (2,) prepared mm, on the skin line at the most anterior point


def _body_outline(geometry: ViewGeometry, upper_only: bool, n: int = 90) -> np.ndarray:
    """Points (a', t) on the body's outline (the superellipse), the upper (t >= 0) half or both."""
    p = geometry.a_exponent
    q_plus, q_minus = geometry.exponents
    plus, minus = geometry.body_half_widths
    u = np.linspace(0.0, 1.0, n)
    a = geometry.body_depth * u
    top = plus * np.clip(1.0 - u**p, 0.0, None) ** (1.0 / q_plus)
    points = [np.column_stack([a, top])]
    if not upper_only:
        points.append(np.column_stack([a, -minus * np.clip(1.0 - u**p, 0.0, None) ** (1.0 / q_minus)]))
    return np.concatenate(points)


def footprint_mask(geometry: ViewGeometry, frame: ViewFrame) -> np.ndarray:
    """Inside the skin line: the analytic outline on a grid of about 1 mm, smoothed (1.2 mm) and
    interpolated onto the pixel grid, then thresholded (fine grids get smooth, exact-enough outlines cheaply).
    """
    factor = max(1, round(FOOTPRINT_GRID_MM / geometry.spacing))
    coarse = frame if factor == 1 else ViewFrame.build(geometry, factor)
    smooth = upsample_by(_footprint(geometry, coarse), factor, frame.shape)
    return smooth > 0.5


def _footprint(geometry: ViewGeometry, frame: ViewFrame) -> np.ndarray:
    a = frame.a_lin
    t = frame.t
    plus, minus = geometry.body_half_widths
    q_plus, q_minus = geometry.exponents
    upper = t >= 0
    u = np.clip(a / geometry.body_depth, 0.0, None) ** geometry.a_exponent
    across = np.where(upper, (np.abs(t) / plus) ** q_plus, (np.abs(t) / minus) ** q_minus)
    body = (a >= 0) & (u + across <= 1.0)
    bump = (a - geometry.body_depth) ** 2 + t**2 <= geometry.nipple_bump**2
    centre, m2 = geometry.tail_shadow
    da = a - centre[0]
    dt = t - centre[1]
    tail = (m2[0, 0] * da * da + 2 * m2[0, 1] * da * dt + m2[1, 1] * dt * dt <= 1.0) & (a >= 0)
    inside = body | bump | tail | _axilla(geometry, frame)
    if geometry.view == "MLO":
        inside |= frame.a_img < 0  # the pectoral muscle and the body behind the pectoral line
    return ndimage.gaussian_filter(inside.astype(np.float32), 1.2 / frame.spacing, truncate=2.5)


def _axilla(geometry: ViewGeometry, frame: ViewFrame) -> np.ndarray:
    """The convex hull of the upper body, the axillary tail and (MLO) the axilla anchors.

    On MLO this is the fatty axillary extension that reaches the top edge along the muscle; on CC it blends
    the axillary tail into the lateral posterior contour.
    """
    from PIL import Image, ImageDraw
    from scipy.spatial import ConvexHull

    centre, m2 = geometry.tail_shadow
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    circle = np.column_stack([np.cos(angles), np.sin(angles)])
    tail = centre + circle @ np.linalg.cholesky(np.linalg.inv(m2)).T
    points = np.concatenate(
        [
            _body_outline(geometry, upper_only=True),
            tail[tail[:, 0] >= 0],
            geometry.axilla_anchors,
            [[0.0, 0.0], [-1.0, 0.0]],
        ]
    )
    hull = points[ConvexHull(points).vertices]
    xy = geometry.compressed_to_mm(hull)
    s = frame.spacing
    cols = (xy[:, 0] - frame.x_mm[0]) / s  # pixel-centre coordinates
    rows = (xy[:, 1] - frame.y_mm[0]) / s
    image = Image.new("1", (frame.shape[1], frame.shape[0]), 0)
    ImageDraw.Draw(image).polygon([(float(c), float(r)) for c, r in zip(cols, rows, strict=True)], fill=1)
    return np.asarray(image, dtype=bool)


def _muscle_border(geometry: ViewGeometry, t: np.ndarray) -> np.ndarray:
    """a' of the pectoral muscle's anterior border (0 = the straight pectoral line, positive = bulging)."""
    pec = geometry.pectoral
    assert pec is not None
    t_top = float(np.dot(np.asarray(pec.top) - geometry.origin, geometry.up))
    t_edge = float(np.dot(np.asarray(pec.edge) - geometry.origin, geometry.up))
    mid = 0.5 * (t_top + t_edge)
    half = max(0.5 * abs(t_top - t_edge), 1.0)
    return pec.bow_mm * np.clip(1.0 - ((t - mid) / half) ** 2, 0.0, None)


def build_view_base(geometry: ViewGeometry, anatomy: BreastAnatomy) -> ViewBase:
    s = geometry.spacing
    frame = ViewFrame.build(geometry)
    footprint = footprint_mask(geometry, frame)
    # The EDT does not count the array border as outside: where the breast leaves the image (chest-wall edge,
    # axilla) it continues at full thickness, as it does in reality.
    distance = np.maximum(ndimage.distance_transform_edt(footprint).astype(np.float32) * s - 0.5 * s, 0.0)
    distance *= footprint

    thick = geometry.thickness
    radius = geometry.edge_radius
    skin = anatomy.skin_mm
    one = np.float32(1.0)
    outer_d = np.minimum(distance * np.float32(1.0 / radius), one)
    outer = np.float32(thick) * np.sqrt(one - (one - outer_d) ** 2)
    inner_d = np.clip((distance - np.float32(skin)) * np.float32(1.0 / (radius - skin)), 0.0, 1.0)
    inner = np.float32(thick - 2 * skin) * np.sqrt(one - (one - inner_d) ** 2)
    outer *= footprint
    inner *= footprint
    skin_path = outer - inner

    # Nipple: the skin line at the breast's most anterior pixel (of those, the one nearest the nipple axis),
    # half a pixel outwards along the posterior nipple line.
    a_in = np.where(footprint, frame.a_img, -np.inf)
    a_max = float(a_in.max())
    candidates = np.nonzero(a_in >= a_max - 0.25 * s)
    best = int(np.argmin(np.abs(frame.t[candidates])))
    row, col = candidates[0][best], candidates[1][best]
    nipple = np.array([frame.x_mm[col], frame.y_mm[row]]) + 0.5 * s * geometry.normal
    # The nipple and areola are skin-dense.
    bump = footprint & (frame.a_img >= geometry.nipple_depth - 1.5 * geometry.nipple_bump)
    skin_path = np.where(bump, np.maximum(0.5 * outer, skin_path), skin_path)
    dist_nipple = np.hypot(
        frame.x_mm[None, :] - np.float32(nipple[0]), frame.y_mm[:, None] - np.float32(nipple[1])
    )
    skin_path = skin_path * (1.0 + 0.4 * np.exp(-((dist_nipple / 12.0) ** 2))).astype(np.float32)
    skin_path = np.minimum(skin_path, outer)
    inner = outer - skin_path

    muscle = np.zeros(frame.shape, np.float32)
    pectoral_mask = np.zeros(frame.shape, bool)
    if geometry.pectoral is not None:
        pec = geometry.pectoral
        depth_behind = _muscle_border(geometry, frame.t) - frame.a_img
        pectoral_mask = footprint & (depth_behind > 0)
        fill = pec.thickness_fraction * (1.0 - np.exp(-np.maximum(depth_behind, 0.0) / pec.decay_mm))
        muscle = np.where(pectoral_mask, fill * inner, 0.0).astype(np.float32)
    elif geometry.cc_pectoral is not None:
        cp = geometry.cc_pectoral
        border = cp.width_mm * np.sqrt(
            np.clip(1.0 - ((frame.t - cp.centre_t) / cp.half_height_mm) ** 2, 0.0, None)
        )
        depth_behind = border - frame.a_img
        pectoral_mask = footprint & (depth_behind > 0) & (border > 0)
        fill = cp.thickness_fraction * (1.0 - np.exp(-np.maximum(depth_behind, 0.0) / 3.0))
        muscle = np.where(pectoral_mask, fill * inner, 0.0).astype(np.float32)
    return ViewBase(
        geometry, frame, footprint, distance, outer, inner, skin_path, muscle, pectoral_mask, nipple
    )


@dataclass
class RenderedView:
    """A rendered view in the prepared orientation."""

    base: ViewBase
    pixels: np.ndarray  # (H, W) uint16 stored values
    presentation: np.ndarray  # (H, W) float32 in [0, 1] before quantization
    lesions: dict[str, LesionRender]
    visibility: dict[str, tuple[str, float, float]]  # id -> (category, signal-to-noise, contrast)
    percent_density: float
    gain: float


def shoulder(values: np.ndarray, knee: float) -> np.ndarray:
    """Identity below ``knee``, then a smooth roll-off that approaches 1 (a film-like shoulder)."""
    span = np.float32(1.0 - knee)
    above = np.float32(knee) + span * np.tanh((values - np.float32(knee)) / span)
    return np.where(values > knee, above, values).astype(np.float32)


def smooth_large(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A Gaussian blur of large sigma, computed on a subsampled grid (the result is smooth anyway)."""
    factor = int(max(1, sigma_px // 4))
    if factor == 1:
        return ndimage.gaussian_filter(image, sigma_px, truncate=2.5)
    rows, cols = image.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(image, ((0, pr), (0, pc)), mode="edge")
    small = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(
        axis=(1, 3)
    )
    small = ndimage.gaussian_filter(small, sigma_px / factor, truncate=2.5)
    from .texture import upsample

    return upsample(small, padded.shape)[:rows, :cols]


def density_region(base: ViewBase) -> np.ndarray:
    """Where percent density is measured: the breast interior (compressed thickness at least half the paddle
    height, so the thin skin-line periphery and the axillary fat are left out), muscle excluded."""
    return base.footprint & ~base.pectoral_mask & (base.thickness >= 0.5 * base.geometry.thickness)


def fixed_pattern(
    rng: np.random.Generator, shape: tuple[int, int], spacing: float, amplitude: float
) -> np.ndarray:
    """Detector gain non-uniformity (smooth) plus row and column banding, in log units."""
    smooth = power_law_field(rng, shape, spacing, beta=3.0, f0=1 / 150.0) * np.float32(amplitude)
    rows = rng.normal(0.0, amplitude * 0.5, size=(shape[0], 1)).astype(np.float32)
    cols = rng.normal(0.0, amplitude * 0.3, size=(1, shape[1])).astype(np.float32)
    return smooth + rows + cols


def render_view(
    base: ViewBase,
    anatomy: BreastAnatomy,
    lesions: list[LesionModel],
    anatomy_config: AnatomyConfig,
    imaging: ImagingConfig,
    texture_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    detector_pattern: np.ndarray,
) -> RenderedView:
    geometry = base.geometry
    frame = base.frame
    s = geometry.spacing
    region = base.footprint & ~base.pectoral_mask
    fields = tissue_fields(texture_rng, frame, anatomy, base.nipple_mm, region)
    limit = np.maximum(base.tissue - 2.0 * anatomy.subcutaneous_fat_mm, 0.0)
    limit[base.pectoral_mask] = 0.0
    if geometry.pectoral is not None:  # retromammary fat between the gland and the muscle
        ramp = np.clip((frame.a_img - anatomy.retromammary_fat_mm) / anatomy.retromammary_fat_mm, 0.0, 1.0)
        limit *= ramp * ramp * (3.0 - 2.0 * ramp)
    prior = gland_prior(frame, anatomy, region)
    interior = density_region(base)
    bias = calibrate_bias(
        limit,
        base.tissue,
        fields.parenchyma,
        fields.fine,
        prior,
        interior,
        anatomy.texture_sharpness,
        anatomy.percent_density_target,
        anatomy_config.dense_threshold,
    )
    fraction = gland_fraction(fields.parenchyma, fields.fine, prior, anatomy.texture_sharpness, bias)
    # Dense tissue is not uniformly thick: a smooth +-20 % modulation keeps texture inside dense regions.
    modulation = np.clip(1.0 + THICKNESS_MODULATION * fields.thickness, 0.4, 1.6)
    gland = np.minimum(limit * fraction * modulation, base.tissue)
    dense = gland >= anatomy_config.dense_threshold * np.maximum(base.tissue, 1e-3)
    percent_density = float(dense[interior].mean()) if interior.any() else 0.0
    # Cooper's ligaments and septa: thin fibrous strands through the fat (and at the gland's scalloped
    # margins).
    septa = fields.ligaments * (1.0 - fraction) * np.minimum(base.tissue, 12.0) * np.float32(0.3)
    # Trabecular strands and ducts converging on the nipple: a few mm of fibrous tissue along thin lines.
    strands = (
        fields.strands
        * np.minimum(base.tissue, 20.0)
        * (np.float32(0.3) + np.float32(0.7) * prior)
        * np.float32(anatomy.strand_strength)
    )
    gland = np.minimum(gland + (septa + strands) * region, base.tissue)

    ctx = RenderContext(
        frame,
        gland.astype(np.float32),
        base.tissue,
        fields.parenchyma,
        fields.fine,
        prior,
        anatomy.texture_sharpness,
        bias,
    )
    for lesion in lesions:
        render_obscuring_tissue(ctx, lesion)
    renders = {lesion.id: render_lesion(ctx, lesion) for lesion in lesions}
    gland = np.minimum(ctx.gland, base.tissue)

    muscle = base.muscle * (1.0 + 0.04 * fields.muscle) if geometry.pectoral is not None else base.muscle
    attenuation = (
        MU_FAT * base.tissue + MU_SKIN * base.skin + DELTA_GLAND * gland + (MU_MUSCLE - MU_FAT) * muscle
    ).astype(np.float32)
    # Vessels displace whatever tissue is there: they show against fat, hardly against glandular tissue.
    local = np.clip(gland / np.maximum(base.tissue, 1e-3), 0.0, 1.0)
    attenuation += _vessels(frame, anatomy) * (
        np.float32(MU_BLOOD - MU_FAT) - np.float32(DELTA_GLAND) * local
    )
    if len(anatomy.scattered_specks):
        pos = geometry.to_mm(anatomy.scattered_specks[:, :3]) / s
        d = anatomy.scattered_specks[:, 3]
        add_specks(attenuation, s, pos, d / 2.6, MU_CALCIUM * np.pi / 6 * d**3)
    for render in renders.values():
        attenuation[render.layer_window] += render.added
    attenuation *= base.footprint

    # Detector: blur, quantum noise at AEC-fixed exposure, electronic noise, fixed pattern.
    blurred = ndimage.gaussian_filter(attenuation, imaging.detector_blur_px, truncate=3.0)
    inside = blurred[region]
    reference = float(np.median(inside[:: max(1, inside.size // 20000)])) if inside.size else 0.0
    counts = imaging.photons_per_mm2 * s * s * np.exp(-(blurred - reference))
    white = ndimage.gaussian_filter(noise_rng.standard_normal(blurred.shape, dtype=np.float32), 0.5)
    white /= np.float32(max(float(white.std()), 1e-6))
    noisy = blurred + white / np.sqrt(counts).astype(np.float32)
    noisy += noise_rng.normal(0.0, 0.0015, size=blurred.shape).astype(np.float32) + detector_pattern

    # Presentation processing.
    excess = noisy - MU_FAT * base.thickness
    enhanced = excess + np.float32(imaging.local_contrast_gain) * (
        excess - smooth_large(excess, imaging.local_contrast_sigma_mm / s)
    )
    # Like a vendor's processing, the gain adapts to the image: the densest tissue of this breast (97th
    # percentile of its excess over fat, muscle excluded) maps to dense_level; a breast with little glandular
    # tissue is not stretched beyond DENSE_PATH_FRACTION of its thickness.
    sample = (blurred - MU_FAT * base.thickness)[region][:: max(1, int(region.sum()) // 20000)]
    top_excess = float(np.percentile(sample, 97)) if sample.size else 0.0
    reference_excess = max(top_excess, DELTA_GLAND * DENSE_PATH_FRACTION * geometry.thickness)
    gain = (imaging.dense_level - imaging.fat_level) / reference_excess
    fat = imaging.fat_level * np.power(
        np.clip(base.thickness / geometry.thickness, 0.0, 1.0), PERIPHERY_GAMMA
    )
    linear = (imaging.background_level + fat + gain * enhanced).astype(np.float32)
    presentation = shoulder(linear, SHOULDER_KNEE)
    top = (1 << imaging.bits_stored) - 1
    pixels = np.clip(np.rint(presentation * top), 0, top).astype(np.uint16)

    visibility = {lid: _visibility(render, presentation, region, gain, s) for lid, render in renders.items()}
    return RenderedView(base, pixels, presentation, renders, visibility, percent_density, float(gain))


def _vessels(frame: ViewFrame, anatomy: BreastAnatomy) -> np.ndarray:
    g = frame.geometry
    lines = [g.to_mm(v.points) / g.spacing for v in anatomy.vessels]
    radii = [v.radii for v in anatomy.vessels]
    return draw_tubes(frame.shape, g.spacing, lines, radii, sigma_mm=0.7)


def _visibility(
    render: LesionRender, presentation: np.ndarray, region: np.ndarray, gain: float, spacing: float
) -> tuple[str, float, float]:
    """(category, signal-to-noise, contrast): the lesion's signal against the spread of the image around it.

    Masses and asymmetries: the signal is the presentation-scaled attenuation the lesion adds (mean over its
    outline) or the measured contrast (mean inside the outline minus the mean of a ring 2-8 mm around it),
    whichever is smaller, over the ring's standard deviation after removing a plane (the local gradient).
    Specks and lines: the mean of their peaks (values above a quarter of the maximum) over the fine-scale (<
    1.5 mm) spread in the ring.
    """
    rows, cols = render.mask_window
    pad = int(np.ceil(8.0 / spacing)) + 1
    r0, r1 = max(rows.start - pad, 0), min(rows.stop + pad, presentation.shape[0])
    c0, c1 = max(cols.start - pad, 0), min(cols.stop + pad, presentation.shape[1])
    mask = np.zeros((r1 - r0, c1 - c0), bool)
    mask[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = render.mask
    signal_full = np.zeros(mask.shape, np.float32)
    lr, lc = render.layer_window
    sr0, sr1 = max(lr.start, r0), min(lr.stop, r1)
    sc0, sc1 = max(lc.start, c0), min(lc.stop, c1)
    if sr1 > sr0 and sc1 > sc0:
        signal_full[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = render.signal[
            sr0 - lr.start : sr1 - lr.start, sc0 - lc.start : sc1 - lc.start
        ]
    image = presentation[r0:r1, c0:c1]
    ring = ring_mask(mask, 2.0 / spacing, 8.0 / spacing) & region[r0:r1, c0:c1]
    if not mask.any() or ring.sum() < 8:
        return "occult", 0.0, 0.0
    values = signal_full[mask] * gain
    if _is_sparse(values):  # specks and lines: their peaks against the fine-scale noise around them
        signal = float(values[values >= 0.25 * values.max()].mean())
        detail = image - ndimage.gaussian_filter(image, 1.5 / spacing)
        noise = float(detail[ring].std()) + 1e-6
        contrast = float(image[mask].mean() - image[ring].mean())
    else:
        # What a reader sees: the lesion's own signal, unless the surroundings out-shine it (masking).
        contrast = float(image[mask].mean() - image[ring].mean())
        signal = min(float(np.mean(values)), contrast)
        noise = _detrended_std(image, ring) + 1e-6
    snr = signal / noise
    category = "obvious" if snr >= VISIBILITY_OBVIOUS else "subtle" if snr >= VISIBILITY_SUBTLE else "occult"
    return category, snr, contrast


def _detrended_std(image: np.ndarray, where: np.ndarray) -> float:
    """Spread of the image over ``where`` after removing a plane (a reader adapts to smooth gradients)."""
    rows, cols = np.nonzero(where)
    values = image[rows, cols].astype(np.float64)
    design = np.column_stack([np.ones_like(values), rows, cols])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(np.std(values - design @ coef))


def _is_sparse(values: np.ndarray) -> bool:
    """Specks and lines cover a small part of their outline: judge them by their peaks."""
    if values.size == 0:
        return False
    peak = float(values.max())
    return peak > 0 and float(np.mean(values > 0.25 * peak)) < 0.35
