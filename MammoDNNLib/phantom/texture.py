"""Fibroglandular tissue: power-law random fields, duct-like radial structure, Cooper's ligaments, and the
projected glandular thickness of a view calibrated to the breast's density category.

Mammographic parenchyma has a power-law spectrum ``P(f) ~ 1/f**beta`` with ``beta`` close to 3 (Burgess et al.
2001, Med. Phys. 28:419). The projected glandular fraction of a view is a soft threshold of such a field
(which leaves round fat lobules between dense strands), mixed with a field that is elongated along rays from
the nipple (ducts and trabeculae converge on it), inside an envelope that is the projection of the breast's 3D
glandular lobes. Thin curvilinear septa (the zero set of a band-limited field) add Cooper's ligaments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft, ndimage

from .anatomy import BreastAnatomy
from .raster import ViewFrame, ellipsoid_chord, splat

# Log-odds (in texture standard deviations) between no lobe and the lobes' core.
PRIOR_WEIGHT = 2.4
# Projected glandular fraction of the most fatty and of the most glandular rays.
FRACTION_RANGE = (0.04, 0.82)


def power_law_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    beta: float,
    f0: float = 1.0 / 60.0,
    stretch: tuple[float, float] = (1.0, 1.0),
    highpass: float | None = None,
) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian field with spectrum ``(f**2 + f0**2)**(-beta/2)`` (f in cycles/mm).

    ``stretch = (sx, sy)`` lengthens the correlation along x and y; ``highpass`` (cycles/mm) removes the large
    scales.
    """
    amplitude = _spectrum(tuple(shape), float(spacing), float(beta), float(f0), tuple(stretch), highpass)
    white = rng.standard_normal(shape, dtype=np.float32)
    # The DC term is zero, so the mean is exactly 0; the spectrum is scaled to unit expected variance.
    field = fft.irfft2(fft.rfft2(white, workers=1) * amplitude, s=shape, workers=1)
    return field.astype(np.float32, copy=False)


@lru_cache(maxsize=32)
def _spectrum(
    shape: tuple[int, int],
    spacing: float,
    beta: float,
    f0: float,
    stretch: tuple[float, float],
    highpass: float | None,
) -> np.ndarray:
    rows, cols = shape
    fy = np.fft.fftfreq(rows, d=spacing).astype(np.float32)[:, None] * np.float32(stretch[1])
    fx = np.fft.rfftfreq(cols, d=spacing).astype(np.float32)[None, :] * np.float32(stretch[0])
    f2 = fx * fx + fy * fy
    amplitude = np.exp(np.log(f2 + np.float32(f0 * f0)) * np.float32(-beta / 4.0))
    if highpass is not None:
        amplitude *= 1.0 - np.exp(-f2 / np.float32(highpass * highpass))
    amplitude[0, 0] = 0.0
    # Variance of white noise filtered by the amplitude: the full spectrum's mean square (the half spectrum of
    # rfft counts its inner columns twice).
    weights = np.full(amplitude.shape[1], 2.0)
    weights[0] = 1.0
    if cols % 2 == 0:
        weights[-1] = 1.0
    variance = float((amplitude.astype(np.float64) ** 2 * weights).sum()) / (rows * cols)
    amplitude /= np.float32(np.sqrt(max(variance, 1e-24)))
    amplitude.setflags(write=False)
    return amplitude


@dataclass
class PolarGrid:
    """Polar coordinates of every pixel about the nipple, for fields that converge on it.

    The bilinear weights are computed once and shared by every field sampled on the grid.
    """

    theta_index: np.ndarray  # (H, W) float32 grid index along the arc
    rho_index: np.ndarray  # (H, W) float32 grid index along the radius
    shape: tuple[int, int]  # (n_theta, n_rho)
    step: float
    fade: np.ndarray  # (H, W) weights that vanish at the nipple (no singular star there)

    def __post_init__(self) -> None:
        t = np.clip(self.theta_index, 0.0, self.shape[0] - 1.001)
        r = np.clip(self.rho_index, 0.0, self.shape[1] - 1.001)
        t0 = t.astype(np.int64)
        r0 = r.astype(np.int64)
        self._flat = t0 * self.shape[1] + r0
        self._wt = (t - t0).astype(np.float32)
        self._wr = (r - r0).astype(np.float32)

    def sample(self, field: np.ndarray) -> np.ndarray:
        """Values of a polar field of this grid's shape at every pixel."""
        flat = field.ravel()
        n = self.shape[1]
        a = flat[self._flat]
        b = flat[self._flat + 1]
        c = flat[self._flat + n]
        d = flat[self._flat + n + 1]
        top = a + (b - a) * self._wr
        bottom = c + (d - c) * self._wr
        return (top + (bottom - top) * self._wt).astype(np.float32)


POLAR_REFERENCE_MM = 50.0  # arc length per radian at which a polar field is isotropic before stretching


def polar_grid(frame: ViewFrame, nipple_mm: np.ndarray, region: np.ndarray | None = None) -> PolarGrid:
    g = frame.geometry
    step = max(g.spacing, 0.35)
    dx = (frame.x_mm[None, :] - nipple_mm[0]).astype(np.float32)
    dy = (frame.y_mm[:, None] - nipple_mm[1]).astype(np.float32)
    rho = np.sqrt(dx * dx + dy * dy)
    back = (-g.normal).astype(np.float32)  # theta = 0 points from the nipple back into the breast
    theta = np.arctan2(dx * back[1] - dy * back[0], dx * back[0] + dy * back[1])
    inside = region if region is not None and region.any() else np.ones(rho.shape, bool)
    rho_max = float(rho[inside].max()) + 2 * step
    theta_max = min(float(np.abs(theta[inside]).max()) + 0.05, np.pi)
    n_rho = int(np.ceil(rho_max / step)) + 2
    n_theta = int(np.ceil(2 * theta_max * POLAR_REFERENCE_MM / step)) + 2
    return PolarGrid(
        theta_index=(theta + np.float32(theta_max)) * np.float32(POLAR_REFERENCE_MM / step),
        rho_index=rho / np.float32(step),
        shape=(n_theta, n_rho),
        step=step,
        fade=np.float32(1.0) - np.exp(-rho / np.float32(25.0)),
    )


def radial_field(rng: np.random.Generator, grid: PolarGrid, beta: float, stretch: float) -> np.ndarray:
    """A power-law field drawn in polar coordinates about the nipple: streaks that converge on the nipple."""
    polar = power_law_field(rng, grid.shape, grid.step, beta, f0=1 / 80.0, stretch=(stretch, 1.0))
    return grid.sample(polar) * grid.fade


def radial_strands(rng: np.random.Generator, grid: PolarGrid, spacing: float, width_mm: float) -> np.ndarray:
    """Thin strands (ducts, trabeculae) running towards the nipple: the zero set of a radially elongated
    field."""
    polar = power_law_field(
        rng, grid.shape, grid.step, beta=3.2, f0=1 / 6.0, stretch=(18.0, 1.0), highpass=1 / 10.0
    )
    field = grid.sample(polar)
    gy, gx = np.gradient(field, spacing)
    distance = np.abs(field) / (np.sqrt(gx * gx + gy * gy) + 1e-3)
    factor = 4  # the gate is smooth: a coarser polar grid is plenty
    coarse = (grid.shape[0] // factor + 2, grid.shape[1] // factor + 2)
    gate = grid.sample(
        upsample(
            power_law_field(rng, coarse, grid.step * factor, beta=3.5, f0=1 / 30.0, stretch=(4.0, 1.0)),
            grid.shape,
        )
    )
    return (np.exp(-0.5 * (distance / width_mm) ** 2) * np.clip(gate, 0.0, 1.0) * grid.fade).astype(
        np.float32
    )


def line_network(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    scale_mm: float,
    width_mm: float,
    keep: float = 0.35,
) -> np.ndarray:
    """Sparse thin curvilinear lines (values in [0, 1]) along parts of a band-limited field's zero set."""
    field = power_law_field(rng, shape, spacing, beta=4.0, f0=1.0 / scale_mm, highpass=0.5 / scale_mm)
    gy, gx = np.gradient(field, spacing)
    gradient = np.sqrt(gx * gx + gy * gy) + 1e-3
    distance = np.abs(field) / gradient  # approximate distance (mm) to the zero set
    lines = np.exp(-0.5 * (distance / width_mm) ** 2)
    # Only some stretches of the network show: gate it with a smooth random field.
    gate = coarse_field(rng, shape, spacing, max(spacing, 2.0), beta=3.5, f0=1.0 / (2 * scale_mm))
    threshold = np.float32(np.sqrt(2.0) * _erfinv(1.0 - 2.0 * keep))
    return (lines * np.clip(gate - threshold + 0.5, 0.0, 1.0)).astype(np.float32)


def _erfinv(x: float) -> float:
    from scipy.special import erfinv

    return float(erfinv(x))


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of linear interpolation between pixel centres of two grids over the same extent."""
    x = (np.arange(n_out, dtype=np.float32) + 0.5) * np.float32(n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1)
    i0 = np.minimum(x.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)


def upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear interpolation of a coarse field onto a finer grid covering the same area (separable, fast)."""
    if coarse.shape == shape:
        return coarse.astype(np.float32, copy=False)
    r0, r1, wr = _axis_weights(coarse.shape[0], shape[0])
    c0, c1, wc = _axis_weights(coarse.shape[1], shape[1])
    rows = coarse[r0] * (1 - wr)[:, None] + coarse[r1] * wr[:, None]
    return (rows[:, c0] * (1 - wc) + rows[:, c1] * wc).astype(np.float32)


def coarse_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    step: float,
    beta: float,
    f0: float,
    stretch: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """A smooth power-law field drawn on a grid of ``step`` mm and interpolated onto ``shape``."""
    if step <= spacing:
        return power_law_field(rng, shape, spacing, beta, f0=f0, stretch=stretch)
    coarse = (
        max(int(np.ceil(shape[0] * spacing / step)), 2),
        max(int(np.ceil(shape[1] * spacing / step)), 2),
    )
    return upsample(power_law_field(rng, coarse, step, beta, f0=f0, stretch=stretch), shape)


def lobule_field(
    rng: np.random.Generator, shape: tuple[int, int], spacing: float, coverage: float
) -> np.ndarray:
    """Fat lobules: a shot-noise field of round Gaussian bumps 2-8 mm in radius (peak about 1 each)."""
    area = shape[0] * shape[1] * spacing * spacing
    out = np.zeros(shape, np.float32)
    for radius, share in ((2.5, 0.3), (4.5, 0.4), (7.0, 0.3)):
        n = rng.poisson(coverage * share * area / (np.pi * radius * radius))
        xy = rng.uniform(0.0, 1.0, size=(n, 2)) * np.array([shape[1], shape[0]])
        sigma_px = radius / 1.3 / spacing
        pts = splat(shape, xy, np.full(n, 2.0 * np.pi * sigma_px * sigma_px))
        out += ndimage.gaussian_filter(pts, sigma_px, truncate=3.0)
    return out


@dataclass
class TissueFields:
    """The random fields of one view's parenchyma (all (H, W) float32)."""

    parenchyma: np.ndarray  # unit-variance mix: smooth isotropic, radial streaks, minus fat lobules
    strands: np.ndarray  # [0, 1] thin strands converging on the nipple
    fine: np.ndarray  # small-scale texture
    thickness: np.ndarray  # unit-variance smooth field: how thick the glandular tissue is where it is
    ligaments: np.ndarray  # [0, 1] curvilinear septa
    muscle: np.ndarray  # striations along the pectoral line


COARSE_STEP_MM = 1.0  # smooth fields are drawn on this grid and interpolated


def tissue_fields(
    rng: np.random.Generator,
    frame: ViewFrame,
    anatomy: BreastAnatomy,
    nipple_mm: np.ndarray,
    region: np.ndarray | None = None,
) -> TissueFields:
    g = frame.geometry
    shape = frame.shape
    step = g.spacing if g.spacing >= 0.45 else COARSE_STEP_MM
    coarse = (int(np.ceil(shape[0] * g.spacing / step)), int(np.ceil(shape[1] * g.spacing / step)))
    iso = upsample(power_law_field(rng, coarse, step, beta=3.3, f0=1 / 50.0), shape)
    lobule_step = 2.0  # smooth blobs: a 2 mm grid is plenty
    lobule_shape = (
        int(np.ceil(shape[0] * g.spacing / lobule_step)),
        int(np.ceil(shape[1] * g.spacing / lobule_step)),
    )
    lobules = lobule_field(rng, lobule_shape, lobule_step, coverage=anatomy.lobule_coverage)
    lobules = upsample((lobules - lobules.mean()) / max(float(lobules.std()), 1e-6), shape)
    grid = polar_grid(frame, nipple_mm, region)
    radial = radial_field(rng, grid, beta=3.0, stretch=8.0)
    strands = radial_strands(rng, grid, g.spacing, width_mm=0.35)
    w = anatomy.radial_weight
    parenchyma = (
        np.float32(np.sqrt(1 - w * w)) * iso
        + np.float32(w) * radial
        - np.float32(anatomy.lobule_weight) * lobules
    )
    parenchyma /= max(float(parenchyma.std()), 1e-6)
    fine = power_law_field(rng, shape, g.spacing, beta=2.6, f0=1 / 6.0)
    thickness = coarse_field(rng, shape, g.spacing, max(g.spacing, 1.5), beta=3.0, f0=1 / 25.0)
    ligaments = line_network(rng, shape, g.spacing, scale_mm=40.0, width_mm=0.3, keep=0.25)
    if g.pectoral is not None:  # fibres run along the pectoral line
        m_step = max(g.spacing, 2.0)
        m_shape = (int(np.ceil(shape[0] * g.spacing / m_step)), int(np.ceil(shape[1] * g.spacing / m_step)))
        muscle = power_law_field(rng, m_shape, m_step, beta=3.0, f0=1 / 15.0, stretch=(1.0, 3.0))
        angle = np.degrees(np.arctan2(g.up[0], -g.up[1]))
        muscle = upsample(ndimage.rotate(muscle, -angle, reshape=False, order=1, mode="reflect"), shape)
    else:
        muscle = np.zeros(shape, np.float32)
    return TissueFields(
        parenchyma.astype(np.float32), strands, fine, thickness, ligaments, muscle.astype(np.float32)
    )


def gland_prior(frame: ViewFrame, anatomy: BreastAnatomy, region: np.ndarray) -> np.ndarray:
    """Where glandular tissue is likely, in [0, 1]: the projection of the 3D lobes, saturating and smoothed.

    It is used as a log-odds prior of the texture threshold, so it moves the dense tissue towards the lobes
    without drawing their outlines.
    """
    chords = np.zeros(frame.shape, np.float32)
    for lobe, weight in zip(anatomy.gland_lobes, anatomy.gland_weights, strict=True):
        win, chord = ellipsoid_chord(frame, lobe)
        if win is not None:
            chords[win] += np.float32(weight) * chord
    from .projection import smooth_large

    chords = smooth_large(chords, 5.0 / frame.geometry.spacing)
    saturation = np.float32(0.35 * frame.geometry.thickness)
    return (1.0 - np.exp(-chords / saturation)) * region


def gland_fraction(
    parenchyma: np.ndarray, fine: np.ndarray, prior: np.ndarray | float, sharpness: float, bias: float
) -> np.ndarray:
    """Local glandular fraction in [0, 1]: a soft threshold of the texture (fat lobules where it is low)."""
    z = (
        parenchyma
        + np.float32(0.1) * fine
        + np.float32(PRIOR_WEIGHT) * (prior - np.float32(0.5))
        + np.float32(bias)
    )
    # A ray crosses many compartments: its glandular fraction never reaches 0 or 1 over a whole slab.
    return (
        FRACTION_RANGE[0]
        + (FRACTION_RANGE[1] - FRACTION_RANGE[0]) * 0.5 * (1.0 + np.tanh(0.5 * sharpness * z))
    ).astype(np.float32)


def calibrate_bias(
    limit: np.ndarray,
    tissue: np.ndarray,
    parenchyma: np.ndarray,
    fine: np.ndarray,
    prior: np.ndarray,
    region: np.ndarray,
    sharpness: float,
    target: float,
    threshold: float,
) -> float:
    """The texture bias at which the view's percent density (dense-area fraction of ``region``) hits
    ``target``."""
    step = max(1, int(np.sqrt(region.size / 20000)))
    sub = (slice(None, None, step), slice(None, None, step))
    keep = region[sub]
    lim = limit[sub][keep]
    need = threshold * np.maximum(tissue[sub][keep], 1e-3)
    par = parenchyma[sub][keep]
    fin = fine[sub][keep]
    pri = prior[sub][keep]
    if lim.size == 0:
        return 0.0
    lo, hi = -8.0, 3.0  # beyond +3 the texture would saturate into a featureless white
    for _ in range(16):  # resolves the bias to 11/2**16: far below what the texture can show
        mid = 0.5 * (lo + hi)
        dense = np.mean(lim * gland_fraction(par, fin, pri, sharpness, mid) >= need)
        if dense < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
