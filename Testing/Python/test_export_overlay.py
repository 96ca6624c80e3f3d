"""Overlay PNGs: size, type colours on the box edges, the overview's hanging, chest-wall side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.synthetic import ellipse_mask
from test_export_support import breast_pixels
from MammoDNNLib.export import export_all
from MammoDNNLib.export.overlay import OverlayView, estimate_chest_wall_right, render_overview, render_view
from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
from MammoDNNLib.geometry import LesionMask
from MammoDNNLib.vocabulary import finding_type

ROWS, COLS = 400, 300


def _finding(fid: str, key: str, type_: str, centre, radii, number: int = 1) -> Finding:
    mask = LesionMask.from_full(ellipse_mask((ROWS, COLS), centre, radii))
    return Finding(fid, key, type_, 0.9, mask.box, number=number, mask=mask, malignancy=0.7, birads="4C")


def _edge_colour_fraction(image: np.ndarray, box, scale: float, rgb: tuple[int, int, int]) -> float:
    """Share of pixels on the box's left, right and bottom edges (band of +-1 px) that have the colour."""
    x0, y0, x1, y1 = (v * scale for v in box)
    c0, c1, r0, r1 = int(round(x0)), int(round(x1)), int(round(y0)), int(round(y1))
    hits, total = 0, 0
    for rows, cols in (
        (slice(r0 + 2, r1 - 2), slice(c0 - 1, c0 + 2)),
        (slice(r0 + 2, r1 - 2), slice(c1 - 2, c1 + 1)),
        (slice(r1 - 1, r1 + 2), slice(c0 + 2, c1 - 2)),
    ):
        band = image[rows, cols].reshape(-1, 3).astype(int)
        close = np.all(np.abs(band - np.asarray(rgb)) <= 1, axis=1)
        # A 2-px line in a 3-px band: at least one pixel per row/column of the band has the colour.
        hits += int(close.sum())
        total += band.shape[0] // 3
    return hits / max(total, 1)


def test_view_overlay_has_type_colours_on_the_boxes() -> None:
    pixels = breast_pixels((ROWS, COLS), chest_wall_right=False, seed=1).astype(np.float32)
    findings = [
        _finding("lesion_001", "L-CC", "mass", (120.0, 150.0), (30.0, 22.0)),
        _finding("lesion_002", "L-CC", "asymmetry", (180.0, 300.0), (25.0, 35.0), number=2),
    ]
    image = render_view(OverlayView("L-CC", pixels, findings), max_size=200)
    assert image.shape == (200, 150, 3)  # longest side 200, aspect kept
    for finding in findings:
        rgb = tuple(int(round(255 * c)) for c in finding_type(finding.type).color)
        assert _edge_colour_fraction(image, finding.box, 0.5, rgb) > 0.9
    # Far from any box the image is gray (R = G = B).
    patch = image[5:40, 100:140].astype(int)
    assert np.all(patch[:, :, 0] == patch[:, :, 1]) and np.all(patch[:, :, 1] == patch[:, :, 2])


def test_overview_hangs_chest_walls_facing_each_other() -> None:
    # An R-CC stored with its chest wall on the LEFT must be mirrored in the overview (R views face right).
    pixels = breast_pixels((ROWS, COLS), chest_wall_right=False, seed=2).astype(np.float32)
    finding = _finding("lesion_001", "R-CC", "calcification", (60.0, 100.0), (15.0, 15.0))
    views = {"R-CC": OverlayView("R-CC", pixels, [finding], chest_wall_right=False)}
    overview = render_overview(views, panel_size=300)
    rgb = np.array([int(round(255 * c)) for c in finding_type("calcification").color])
    gap = max(4, COLS // 100)
    header = overview.shape[0] - 2 * 300 - gap  # the title and legend strip above the 300-pixel-high cells
    ys, xs = np.nonzero(np.all(np.abs(overview[header:].astype(int) - rgb) <= 1, axis=2))
    assert xs.size > 0
    # Mirrored, the box (x 45..75 of 300) lands at 225..255 of the left cell, which hugs the centre line.
    cell_w = (overview.shape[1] - gap) // 2
    assert xs.min() > cell_w * 0.6 and xs.max() < cell_w


def test_chest_wall_side_is_estimated_from_the_pixels() -> None:
    assert estimate_chest_wall_right(breast_pixels((ROWS, COLS), chest_wall_right=True, seed=3))
    assert not estimate_chest_wall_right(breast_pixels((ROWS, COLS), chest_wall_right=False, seed=4))


def test_export_reads_the_source_and_writes_png_files(tmp_path: Path) -> None:
    source = tmp_path / "R-MLO.png"
    pixels = breast_pixels((ROWS, COLS), chest_wall_right=True, seed=5)
    Image.fromarray((pixels // 16).astype(np.uint8)).save(source)
    finding = _finding("lesion_001", "R-MLO", "distortion", (200.0, 200.0), (20.0, 20.0))
    report = Report(
        model=ModelInfo("m", "1", "0" * 64),
        views=[ViewInfo("R-MLO", source.name, "R", "MLO", (COLS, ROWS), (0.1, 0.1))],
        findings=[finding],
        breasts={"R": Summary(0.7, "4C", 1)},
        exam=Summary(0.7, "4C", 1),
    )
    report_path = report.save(tmp_path / "report.json")
    result = export_all(report, tmp_path / "out", what=("overlay",), report_path=report_path)
    names = sorted(p.name for p in result.files["overlay"])
    assert names == ["R-MLO.overlay.png", "overview.png"]
    with Image.open(tmp_path / "out" / "R-MLO.overlay.png") as png:
        assert png.size == (COLS, ROWS) and png.mode == "RGB"


def test_missing_source_pixels_are_an_error_when_asked(tmp_path: Path) -> None:
    from MammoDNNLib.errors import InputError

    report = Report(
        model=ModelInfo("m", "1", "0" * 64),
        views=[ViewInfo("L-CC", "gone.png", "L", "CC", (COLS, ROWS), (0.1, 0.1))],
        findings=[],
        breasts={},
        exam=Summary(None, "1", 0),
    )
    with pytest.raises(InputError, match="gone.png"):
        export_all(report, tmp_path / "out", what=("overlay",), report_path=tmp_path / "report.json")
