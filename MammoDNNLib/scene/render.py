"""A picture of the 2×2 hanging layout drawn from the MRML nodes alone (no render window needed).

Each panel shows a view volume's pixels with its display window, oriented as its hanging slice view shows it
(horizontal flip read from the slice node's orientation), the outline of every segment (from the segment's
labelmap), every ROI (from its RAS bounds) and every labelled centre point (from the point list), all mapped
back to pixels through the volume's own IJK→RAS. Because everything is read back from the nodes, the picture
shows what is in the scene, not what the report said. Used for the documentation figure and for quick looks
from scripts; needs matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..vocabulary import VIEW_KEYS
from .layout import SLICE_VIEWS, slice_node_for
from .results import ResultNodes, find_results, segment_mask
from .volume_geometry import ras_to_pixel
from .volumes import volume_ijk_to_ras, volume_pixels, volume_shape


@dataclass
class RenderedView:
    """What one panel shows, in the panel's display pixels (x right, y down, after any flip)."""

    key: str
    flipped: bool  # mirrored left-right relative to the stored image
    boxes: dict[str, tuple[float, float, float, float]] = field(
        default_factory=dict
    )  # finding id -> x0, y0, x1, y1
    points: dict[str, tuple[float, float]] = field(default_factory=dict)  # finding id -> x, y
    outlines: dict[str, int] = field(default_factory=dict)  # finding id -> number of mask pixels drawn


def _is_flipped(scene, key: str, volume) -> bool:
    """Whether the hanging slice view mirrors the image (its screen x runs against the volume's i axis)."""
    slice_node = slice_node_for(scene, key, create=False)
    if slice_node is None:
        return False
    m = slice_node.GetSliceToRAS()
    screen_x = np.array([m.GetElement(r, 0) for r in range(3)])
    i_axis = volume_ijk_to_ras(volume)[:3, 0]
    return float(np.dot(screen_x, i_axis)) < 0


def _window(volume, pixels: np.ndarray) -> tuple[float, float]:
    display = volume.GetDisplayNode()
    if display is not None and display.GetWindow() > 0:
        level, window = display.GetLevel(), display.GetWindow()
        return level - window / 2, level + window / 2
    low, high = np.percentile(pixels, [1, 99.5])
    return float(low), float(high)


def render_hanging_layout(
    scene,
    path: str | Path | None = None,
    *,
    result_id: str | None = None,
    title: str | None = None,
    dpi: int = 150,
    panel_inches: float = 3.2,
) -> tuple[Any, dict[str, RenderedView]]:
    """Draw the results of ``result_id`` (default: the latest) in the 2×2 layout; save to ``path`` if given.

    Returns the matplotlib figure and, per view, what was drawn where (for checks).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's (e.g. Slicer's) backend alone
    from matplotlib.patches import Rectangle

    nodes: ResultNodes = find_results(scene, result_id)
    figure = Figure(figsize=(2 * panel_inches, 2 * panel_inches * 1.15), dpi=dpi)
    axes = figure.subplots(2, 2)
    figure.patch.set_facecolor("black")
    rendered: dict[str, RenderedView] = {}
    for index, key in enumerate(VIEW_KEYS):
        ax = axes[index // 2][index % 2]
        ax.set_facecolor("black")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#444444")
        label = SLICE_VIEWS[key][1]
        view = nodes.views.get(key)
        volume = view.volume if view is not None else None
        if volume is None:
            ax.set_title(f"{label} (no image)", color="white", fontsize=9)
            continue
        rows, cols = volume_shape(volume)
        pixels = volume_pixels(volume)
        flipped = _is_flipped(scene, key, volume)
        shown = pixels[:, ::-1] if flipped else pixels
        low, high = _window(volume, pixels)
        ax.imshow(shown, cmap="gray", vmin=low, vmax=high, interpolation="lanczos")
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
        ax.set_title(label, color=SLICE_VIEWS[key][2], fontsize=10, fontweight="bold")
        result = RenderedView(key, flipped)
        matrix = volume_ijk_to_ras(volume)

        def to_display(xy: np.ndarray, flipped: bool = flipped, cols: int = cols) -> np.ndarray:
            xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
            if flipped:
                xy[:, 0] = cols - xy[:, 0]
            return xy - 0.5  # pixel-edge units -> imshow coordinates (pixel centres at integers)

        segmentation = view.segmentation.GetSegmentation()
        for s in range(segmentation.GetNumberOfSegments()):
            segment_id = segmentation.GetNthSegmentID(s)
            mask = segment_mask(view.segmentation, segment_id, volume)
            if flipped:
                mask = mask[:, ::-1]
            color = segmentation.GetNthSegment(s).GetColor()
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.2)
                ax.imshow(
                    np.ma.masked_where(~mask, np.ones_like(mask, float)),
                    cmap=ListedColormap([color]),
                    alpha=0.25,
                    interpolation="nearest",
                )
            result.outlines[segment_id] = int(mask.sum())

        for finding_id, roi in view.rois.items():
            bounds = [0.0] * 6
            roi.GetRASBounds(bounds)
            corners = np.array([[bounds[0], bounds[2], 0.0], [bounds[1], bounds[3], 0.0]])
            corners[:, 2] = matrix[2, 3]
            xy = to_display(ras_to_pixel(corners, matrix))
            x0, x1 = sorted(xy[:, 0])
            y0, y1 = sorted(xy[:, 1])
            color = roi.GetDisplayNode().GetColor()
            ax.add_patch(
                Rectangle(
                    (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.2, linestyle="--"
                )
            )
            result.boxes[finding_id] = (float(x0 + 0.5), float(y0 + 0.5), float(x1 + 0.5), float(y1 + 0.5))

        centres = view.centres
        if centres is not None:
            for p in range(centres.GetNumberOfControlPoints()):
                position = [0.0, 0.0, 0.0]
                centres.GetNthControlPointPosition(p, position)
                ((x, y),) = to_display(ras_to_pixel([position], matrix))
                ax.plot([x], [y], marker="+", color="white", markersize=7, markeredgewidth=1.2)
                ax.annotate(
                    centres.GetNthControlPointLabel(p),
                    (x, y),
                    xytext=(4, -4),
                    textcoords="offset points",
                    color="white",
                    fontsize=7,
                )
                result.points[centres.GetNthControlPointDescription(p)] = (float(x + 0.5), float(y + 0.5))
        rendered[key] = result
    figure.suptitle(title or "MammoDNN — research use only", color="white", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    if path is not None:
        figure.savefig(path, facecolor=figure.get_facecolor())
    return figure, rendered
