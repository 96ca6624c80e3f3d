"""Synthetic views with known truth for the preprocessing and landmark tests (builder + its own sanity tests).

A view is a half ellipse (the breast; on MLO it runs off the top edge, towards the axilla) against the
chest-wall image edge, brighter towards the chest wall, with (on MLO) a brighter pectoral triangle in the
upper chest-wall corner, a film label in the far corner and Gaussian noise; its true mask, nipple (the
ellipse's apex) and pectoral line are known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from MammoDNNLib.study import View


@dataclass
class SyntheticTruth:
    mask: np.ndarray  # bool, original grid
    nipple: tuple[float, float]  # (x, y) pixel edges
    pectoral: tuple[tuple[float, float], tuple[float, float]] | None  # top point, chest-wall point
    label: np.ndarray | None  # bool, the film label's pixels
    chest_wall_side: str


def synthetic_view(
    *,
    width_mm: float = 120.0,
    height_mm: float = 150.0,
    spacing: float = 0.3,
    chest_wall: str = "left",
    laterality: str | None = None,
    view: str = "MLO",
    depth_mm: float = 75.0,  # nipple's distance from the chest wall
    half_height_mm: float | None = None,  # default: 74 mm on MLO (reaching the top edge), 55 mm on CC
    centre_y_mm: float = 70.0,
    pectoral_top_mm: float = 45.0,  # pectoral edge meets the top at this distance from the chest wall
    pectoral_wall_mm: float = 70.0,  # ... and the chest wall this far down
    label: bool = True,
    noise: float = 3.0,
    seed: int = 0,
) -> tuple[View, SyntheticTruth]:
    rng = np.random.default_rng(seed)
    if half_height_mm is None:
        half_height_mm = 74.0 if view == "MLO" else 55.0
    rows, cols = int(round(height_mm / spacing)), int(round(width_mm / spacing))
    yy, xx = np.mgrid[0:rows, 0:cols]
    x_mm = (xx + 0.5) * spacing  # distance of pixel centres from the left edge
    y_mm = (yy + 0.5) * spacing
    if chest_wall == "right":
        x_mm = width_mm - x_mm
    r = np.sqrt((x_mm / depth_mm) ** 2 + ((y_mm - centre_y_mm) / half_height_mm) ** 2)
    breast = r <= 1.0
    image = np.full((rows, cols), 12.0)
    # Thicker (brighter) towards the chest wall, falling to the skin; a little texture.
    image[breast] = 70.0 + 90.0 * np.sqrt(1.0 - r[breast] ** 2)
    image += rng.normal(0.0, 4.0, size=image.shape) * breast
    pectoral = None
    if view == "MLO":
        muscle = breast & (x_mm / pectoral_top_mm + y_mm / pectoral_wall_mm <= 1.0)
        image[muscle] += 60.0
        top = (pectoral_top_mm, 0.0)
        wall = (0.0, pectoral_wall_mm)
        if chest_wall == "right":
            top, wall = (width_mm - top[0], top[1]), (width_mm - wall[0], wall[1])
        pectoral = ((top[0] / spacing, top[1] / spacing), (wall[0] / spacing, wall[1] / spacing))
    label_mask = None
    if label:
        label_mask = np.zeros_like(breast)
        lx0 = int(round((width_mm - 25.0) / spacing)) if chest_wall == "left" else int(round(5.0 / spacing))
        label_mask[int(5 / spacing) : int(20 / spacing), lx0 : lx0 + int(18 / spacing)] = True
        label_mask &= ~breast
        image[label_mask] = 250.0
    image += rng.normal(0.0, noise, size=image.shape)
    nipple_x = depth_mm / spacing if chest_wall == "left" else (width_mm - depth_mm) / spacing
    truth = SyntheticTruth(breast, (nipple_x, centre_y_mm / spacing), pectoral, label_mask, chest_wall)
    if laterality is None:
        laterality = "L" if chest_wall == "left" else "R"
    return View(image.astype(np.float32), (spacing, spacing), laterality, view), truth


def test_builder_truth_is_consistent():
    view, truth = synthetic_view(chest_wall="right", spacing=0.5)
    assert view.pixels.shape == truth.mask.shape
    # The breast touches the right edge (chest wall) over most of its height and the nipple is its apex.
    assert truth.mask[:, -1].sum() > 0.6 * truth.mask.any(axis=1).sum()
    x, y = truth.nipple
    assert truth.mask[int(y), int(np.ceil(x)) + 1] and not truth.mask[int(y), int(np.floor(x)) - 2]
    assert not (truth.label & truth.mask).any()


@pytest.mark.parametrize("chest_wall", ["left", "right"])
def test_builder_pectoral_is_brighter(chest_wall):
    view, truth = synthetic_view(chest_wall=chest_wall, noise=0.0)
    (tx, _), (wx, wy) = truth.pectoral
    # Halfway between the edge's two ends, a quarter of the way down: inside the muscle triangle.
    inside = view.pixels[int(wy / 4), int((tx + wx) / 2)]
    outside = view.pixels[int(wy / 4), int(tx + (tx - wx) * 0.2)]
    assert inside > outside + 40
