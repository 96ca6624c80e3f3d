"""Pixel ↔ IJK ↔ RAS on a volume node's own matrix (pure numpy).

Which IJK→RAS a view gets when MammoDNN creates its volume node is decided in ONE place,
:mod:`MammoDNNLib.export.space` (the geometry Slicer's DICOM loader gives the view's file; the ``.seg.nrrd``
and ``.mrk.json`` writers use it too). This module only maps points with a given matrix, so it works the same
for volumes MammoDNN made and for volumes a user loaded.

Pixel convention (:mod:`MammoDNNLib.geometry`): a point ``(x, y)`` is in pixel-edge units, pixel ``[r, c]``
covering ``[c, c+1) × [r, r+1)``; IJK has voxel centres at integers, so ``(x, y) → IJK (x − 0.5, y − 0.5,
0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import Box


def pixel_to_ijk(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 2) pixel-edge points (x, y) → (N, 3) IJK (x − 0.5, y − 0.5, 0)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([pts - 0.5, np.zeros(len(pts))])


def ijk_to_pixel(ijk: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 3) IJK → (N, 2) pixel-edge points (the k coordinate is dropped)."""
    return np.asarray(ijk, dtype=np.float64).reshape(-1, 3)[:, :2] + 0.5


def transform_points(matrix: np.ndarray, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Apply a 4×4 homogeneous matrix to (N, 3) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return pts @ np.asarray(matrix)[:3, :3].T + np.asarray(matrix)[:3, 3]


def pixel_to_ras(points: np.ndarray | Sequence[Sequence[float]], ijk_to_ras_matrix: np.ndarray) -> np.ndarray:
    """(N, 2) pixel-edge points → (N, 3) RAS on the view's plane."""
    return transform_points(ijk_to_ras_matrix, pixel_to_ijk(points))


def ras_to_pixel(points: np.ndarray | Sequence[Sequence[float]], ijk_to_ras_matrix: np.ndarray) -> np.ndarray:
    """(N, 3) RAS → (N, 2) pixel-edge points (projected onto the view's plane)."""
    return ijk_to_pixel(transform_points(np.linalg.inv(ijk_to_ras_matrix), points))


def volume_axes(ijk_to_ras_matrix: np.ndarray) -> np.ndarray:
    """3×3 rotation: columns are the unit i, j, k directions in RAS (k flipped if IJK is left-handed)."""
    axes = np.asarray(ijk_to_ras_matrix, dtype=np.float64)[:3, :3].copy()
    axes /= np.linalg.norm(axes, axis=0, keepdims=True)
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    return axes


@dataclass(frozen=True)
class OrientedBox:
    """A finding's box in RAS: centre, edge lengths along the volume's axes (mm), and those axes (columns)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    axes: np.ndarray  # 3x3, columns = unit i, j, k directions in RAS


def box_to_ras(box: Box, ijk_to_ras_matrix: np.ndarray) -> OrientedBox:
    """A pixel-edge box ``(x0, y0, x1, y1)`` as an oriented box in RAS, one slice thick."""
    x0, y0, x1, y1 = (float(v) for v in box)
    m = np.asarray(ijk_to_ras_matrix, dtype=np.float64)
    center = pixel_to_ras([((x0 + x1) / 2.0, (y0 + y1) / 2.0)], m)[0]
    scale = np.linalg.norm(m[:3, :3], axis=0)
    size = (abs(x1 - x0) * scale[0], abs(y1 - y0) * scale[1], scale[2])
    return OrientedBox(tuple(center.tolist()), tuple(float(s) for s in size), volume_axes(m))
