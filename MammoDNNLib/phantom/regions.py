"""Quadrant and depth truth of a point in a view, from the view's geometry (the rules docs/phantom.md states).

- Depth: 0 at the nipple, 1 at the pectoralis major: the point's distance from the chest-wall line (CC: the
  chest-wall image edge; MLO: the pectoral line), measured along the posterior nipple line (perpendicular to
  that line), divided by the nipple's distance from it.
- CC: outer / middle / inner by thirds of the breast's width (lateral skin line to medial skin line, measured
  perpendicular to the nipple axis at the chest wall).
- MLO: upper / middle / lower by thirds of the breast body's extent along the pectoral line; ``axillary_tail``
  when the point lies above the body, in the superolateral extension towards the axilla.
- ``areola`` in either view when the point is within ``areola_radius_mm`` of that view's nipple.
"""

from __future__ import annotations

import numpy as np

from ..vocabulary import QUADRANT_COMPATIBILITY
from .anatomy import ViewGeometry


def depth_in_view(geometry: ViewGeometry, nipple_mm: np.ndarray, point_mm: np.ndarray) -> float:
    """Depth of a prepared-orientation point (mm) in [0, 1]."""
    d_point = float(np.dot(np.asarray(point_mm) - geometry.origin, geometry.normal))
    d_nipple = float(np.dot(np.asarray(nipple_mm) - geometry.origin, geometry.normal))
    return float(np.clip(1.0 - d_point / d_nipple, 0.0, 1.0))


def quadrant_in_view(
    geometry: ViewGeometry, nipple_mm: np.ndarray, point_mm: np.ndarray, areola_radius_mm: float
) -> str:
    point = np.asarray(point_mm, float)
    if np.linalg.norm(point - np.asarray(nipple_mm)) <= areola_radius_mm:
        return "areola"
    t = float(np.dot(point - geometry.origin, geometry.up))
    plus, minus = geometry.body_half_widths
    if geometry.view == "MLO" and t > plus:
        return "axillary_tail"
    fraction = (t + minus) / (plus + minus)
    if geometry.view == "CC":
        return "outer" if fraction > 2 / 3 else "inner" if fraction < 1 / 3 else "middle"
    return "upper" if fraction > 2 / 3 else "lower" if fraction < 1 / 3 else "middle"


def quadrants_compatible(cc: str, mlo: str) -> bool:
    """Whether a CC quadrant and an MLO quadrant can hold the two projections of one lesion."""
    return mlo in QUADRANT_COMPATIBILITY.get(cc, ())
