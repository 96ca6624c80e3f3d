"""Raster helpers shared by the texture, lesion and projection code: the per-pixel compressed frame of a view,
windows, ellipsoid chords, splatting and pixel-integrated Gaussian specks.

Everything here works in the *prepared* orientation (chest wall on the left) in millimetres; pixel ``[r, c]``
has its centre at ``((c + 0.5) s, (r + 0.5) s)`` for spacing ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import erf

from .anatomy import Ellipsoid, ViewGeometry, compressed_quadric


@dataclass
class ViewFrame:
    """Per-pixel coordinates of a view in its compressed frame."""

    geometry: ViewGeometry
    x_mm: np.ndarray  # (W,) pixel-centre x
    y_mm: np.ndarray  # (H,) pixel-centre y
    a_img: np.ndarray  # (H, W) warped a' (distance from the chest wall / pectoral line along the nipple axis)
    a_lin: np.ndarray  # (H, W) linear compressed a'
    t: np.ndarray  # (H, W)
    spacing: float  # of this grid (the view's, or a coarser one)

    @classmethod
    def build(cls, geometry: ViewGeometry, factor: int = 1) -> "ViewFrame":
        """The frame of the view's pixel grid, or of a grid ``factor`` times coarser over the same origin."""
        s = geometry.spacing * factor
        x = ((np.arange(-(-geometry.width_px // factor)) + 0.5) * s).astype(np.float32)
        y = ((np.arange(-(-geometry.height_px // factor)) + 0.5) * s).astype(np.float32)
        a_img, t = geometry.mm_to_frame(x[None, :], y[:, None])
        a_img = a_img.astype(np.float32)
        return cls(geometry, x, y, a_img, geometry.unwarp_a(a_img), t.astype(np.float32), s)

    @property
    def shape(self) -> tuple[int, int]:
        return self.a_img.shape  # type: ignore[return-value]

    def window(self, x0_mm: float, y0_mm: float, x1_mm: float, y1_mm: float) -> tuple[slice, slice] | None:
        """Pixel slices covering a box in mm, clipped to the frame (None when empty)."""
        s = self.spacing
        off_x = self.x_mm[0] / s - 0.5
        off_y = self.y_mm[0] / s - 0.5
        c0 = max(int(np.floor(x0_mm / s - off_x)), 0)
        c1 = min(int(np.ceil(x1_mm / s - off_x)), len(self.x_mm))
        r0 = max(int(np.floor(y0_mm / s - off_y)), 0)
        r1 = min(int(np.ceil(y1_mm / s - off_y)), len(self.y_mm))
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1)

    def window_around(self, centre_mm: np.ndarray, radius_mm: float) -> tuple[slice, slice] | None:
        cx, cy = float(centre_mm[0]), float(centre_mm[1])
        return self.window(cx - radius_mm, cy - radius_mm, cx + radius_mm, cy + radius_mm)

    def frame_window(
        self, a_range: tuple[float, float], t_range: tuple[float, float]
    ) -> tuple[slice, slice] | None:
        """Pixel slices covering a rectangle of the linear compressed (a', t) plane."""
        g = self.geometry
        a_img = g.warp_a(np.array(a_range))
        corners = np.array([[a, t] for a in a_img for t in t_range])
        xy = g.origin + corners[:, :1] * g.normal + corners[:, 1:2] * g.up
        return self.window(xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())


def ellipsoid_chord(
    frame: ViewFrame, ellipsoid: Ellipsoid, stiffness: float = 0.0, margin_mm: float = 0.0
) -> tuple[tuple[slice, slice] | None, np.ndarray]:
    """Path length (mm) of each ray (along the compression axis) through an ellipsoid, in the window it
    covers."""
    centre, m = compressed_quadric(frame.geometry, ellipsoid, stiffness)
    m2 = m[:2, :2] - np.outer(m[:2, 2], m[:2, 2]) / m[2, 2]
    half = np.sqrt(np.maximum(np.diag(np.linalg.inv(m2)), 0.0)) + margin_mm
    win = frame.frame_window(
        (centre[0] - half[0], centre[0] + half[0]), (centre[1] - half[1], centre[1] + half[1])
    )
    if win is None:
        return None, np.zeros((0, 0), np.float32)
    da = frame.a_lin[win] - centre[0]
    dt = frame.t[win] - centre[1]
    b = m[0, 2] * da + m[1, 2] * dt
    c = m[0, 0] * da * da + 2.0 * m[0, 1] * da * dt + m[1, 1] * dt * dt - 1.0
    disc = b * b - m[2, 2] * c
    chord = 2.0 * np.sqrt(np.maximum(disc, 0.0)) / m[2, 2]
    return win, chord.astype(np.float32)


def upsample_by(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Linear interpolation from a grid ``factor`` times coarser (same origin) onto ``shape``."""
    if factor == 1:
        return coarse[: shape[0], : shape[1]]
    out = coarse
    for axis, n in enumerate(shape):
        x = (np.arange(n, dtype=np.float32) + 0.5) / factor - 0.5
        x = np.clip(x, 0.0, coarse.shape[axis] - 1)
        i0 = x.astype(np.int64)
        i1 = np.minimum(i0 + 1, coarse.shape[axis] - 1)
        w = (x - i0).astype(np.float32)
        if axis == 0:
            out = out[i0] * (1 - w)[:, None] + out[i1] * w[:, None]
        else:
            out = out[:, i0] * (1 - w) + out[:, i1] * w
    return out.astype(np.float32)


def splat(shape: tuple[int, int], xy_px: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear splat of weighted points (pixel-edge coordinates) onto a zero image of ``shape``."""
    out = np.zeros(shape[0] * shape[1], dtype=np.float64)
    if len(xy_px) == 0:
        return out.reshape(shape).astype(np.float32)
    x = xy_px[:, 0] - 0.5
    y = xy_px[:, 1] - 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = x - x0
    fy = y - y0
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi = x0 + dx
        yi = y0 + dy
        ok = (xi >= 0) & (xi < shape[1]) & (yi >= 0) & (yi < shape[0])
        out += np.bincount(yi[ok] * shape[1] + xi[ok], weights=(weights * w)[ok], minlength=out.size)
    return out.reshape(shape).astype(np.float32)


def resample_polyline(
    points: np.ndarray, values: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Points every ``step`` along a polyline (any dimension), with linearly interpolated values."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return points[:1], values[:1], step
    n = max(int(np.ceil(arc[-1] / step)), 1) + 1
    s = np.linspace(0.0, arc[-1], n)
    out = np.column_stack([np.interp(s, arc, points[:, k]) for k in range(points.shape[1])])
    return out, np.interp(s, arc, values), arc[-1] / (n - 1)


def draw_tubes(
    shape: tuple[int, int],
    spacing: float,
    polylines_px: list[np.ndarray],
    radii_mm: list[np.ndarray],
    sigma_mm: float,
    depth_mm: list[float] | None = None,
) -> np.ndarray:
    """Projected path length (mm) of thin tubes along 2D polylines (pixel coordinates) of given radii.

    A tube of radius r contributes pi r^2 mm^3 per mm of length; splatting that line density and blurring it
    with a Gaussian of about the tube's radius gives its projected path-length profile (peak ~ 2 r). With
    ``depth_mm`` a polyline is a ribbon instead: 2 r wide in the image and ``depth`` deep along the beam
    (fibrous sheets).
    """
    pts: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    for i, (line, radii) in enumerate(zip(polylines_px, radii_mm, strict=True)):
        dense, r, ds_px = resample_polyline(line, radii, 0.5)
        pts.append(dense)
        section = np.pi * r**2 if depth_mm is None else 2.0 * r * depth_mm[i]
        wts.append(section * ds_px * spacing / spacing**2)
    if not pts:
        return np.zeros(shape, np.float32)
    image = splat(shape, np.concatenate(pts), np.concatenate(wts))
    return ndimage.gaussian_filter(image, max(sigma_mm / spacing, 0.5), mode="constant", truncate=2.5)


def add_specks(
    image: np.ndarray, spacing: float, xy_px: np.ndarray, sigma_mm: np.ndarray, integral: np.ndarray
) -> None:
    """Add round Gaussian specks integrated over each pixel (exact partial-volume), in place.

    ``integral`` is each speck's attenuation integrated over the image plane (mm^2: mu * volume / 1 mm); the
    value added to a pixel is the speck's mean over that pixel.
    """
    rows, cols = image.shape
    for (x, y), sig_mm, total in zip(xy_px, sigma_mm, integral, strict=True):
        sig = max(sig_mm / spacing, 0.05)
        reach = int(np.ceil(3.5 * sig)) + 1
        c0, c1 = max(int(x) - reach, 0), min(int(x) + reach + 1, cols)
        r0, r1 = max(int(y) - reach, 0), min(int(y) + reach + 1, rows)
        if c1 <= c0 or r1 <= r0:
            continue
        edges_x = np.arange(c0, c1 + 1, dtype=np.float64)
        edges_y = np.arange(r0, r1 + 1, dtype=np.float64)
        cdf_x = 0.5 * (1 + erf((edges_x - x) / (np.sqrt(2) * sig)))
        cdf_y = 0.5 * (1 + erf((edges_y - y) / (np.sqrt(2) * sig)))
        px = np.diff(cdf_x)
        py = np.diff(cdf_y)
        image[r0:r1, c0:c1] += (total / spacing**2) * np.outer(py, px).astype(image.dtype)


def ring_mask(mask: np.ndarray, inner_px: float, outer_px: float) -> np.ndarray:
    """The ring of pixels farther than ``inner_px`` and at most ``outer_px`` from a mask."""
    distance = ndimage.distance_transform_edt(~mask)
    return (distance > inner_px) & (distance <= outer_px)
