"""Overlay PNGs for people who would rather look than read: one per view, and the four-view ``overview.png``.

Each view is shown downsampled (longest side at most ``max_size`` pixels) with a breast-friendly window
(robust percentiles of the breast pixels, not of the black background), every finding's box and outline in its
type's colour, a label ``"1 Mass 0.91 M:0.72 4B"`` (number, type, detection score, malignancy, BI-RADS; a
matched CC/MLO pair shares its number), a legend of the types shown, and the view key with "Research use only"
in the corner.

The overview hangs R-CC | L-CC over R-MLO | L-MLO with the chest walls facing each other (right breast views
with the chest wall on their right, left breast views on their left), mirroring a view when needed.

Drawing uses matplotlib's Agg backend with axes spanning the original pixel-edge coordinates, so boxes are
drawn exactly where they are stored; the drawing is composited over the downsampled image pixel for pixel. Box
edges are drawn without antialiasing so their pixels carry the exact type colour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..vocabulary import FINDING_TYPES, VIEW_KEYS, finding_type, split_view_key
from .common import overlay_label

if TYPE_CHECKING:
    from ..findings import Finding

log = logging.getLogger(__name__)

DISCLAIMER = "Research use only"
DEFAULT_MAX_SIZE = 1600
OVERVIEW_PANEL_SIZE = 900
_BACKGROUND = (26, 26, 26)
_PNG_COMPRESSION = 4  # zlib level: overlays of noisy images gain little from more, and cost seconds


@dataclass
class OverlayView:
    """What an overlay needs of one view: its pixels (presentation values, brighter = denser) and findings.

    ``pixels`` may be a downsampled copy of the view; ``size`` is then the (width, height) of the original
    grid the findings are stored in (default: the pixels' own size).
    """

    key: str
    pixels: np.ndarray
    findings: Sequence["Finding"]
    chest_wall_right: bool | None = None  # None: estimated from the pixels
    size: tuple[int, int] | None = None

    @property
    def original_size(self) -> tuple[int, int]:
        return self.size if self.size is not None else (self.pixels.shape[1], self.pixels.shape[0])

    def downsampled(self, max_size: int) -> "OverlayView":
        """The same view with pixels at most ``max_size`` on their longest side (findings unchanged)."""
        rows, cols = self.pixels.shape
        scale = min(1.0, max_size / max(rows, cols))
        if scale >= 1.0:
            return self
        shape = (max(1, int(round(rows * scale))), max(1, int(round(cols * scale))))
        return OverlayView(
            self.key,
            _downsample(self.pixels, shape),
            self.findings,
            self.chest_wall_right,
            self.original_size,
        )


def read_display_pixels(
    path: str | Path,
    *,
    laterality: str | None = None,
    view: str | None = None,
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Presentation pixels of a source image (:func:`MammoDNNLib.io.load_view`: LUTs applied, MONOCHROME1
    inverted); ``laterality``/``view``/``spacing`` stand in for what a header-less image lacks."""
    from ..io import load_view

    return load_view(path, spacing=spacing, laterality=laterality, view=view).pixels


def render_view(
    view: OverlayView, *, max_size: int = DEFAULT_MAX_SIZE, mirror: bool = False, legend: bool = True
) -> np.ndarray:
    """The overlay of one view as an RGB uint8 array (downsampled; mirrored left-right if ``mirror``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon, Rectangle

    cols, rows = view.original_size
    small = view.downsampled(max_size).pixels
    out_h, out_w = small.shape
    gray = (255.0 * _window(small)).astype(np.uint8)
    if mirror:
        gray = gray[:, ::-1]

    # The drawing is rasterized on a transparent canvas and laid over the image with its alpha (matplotlib's
    # Agg buffer is straight, not premultiplied, RGBA): much faster than having matplotlib resample the image.
    dpi = 100.0
    figure = Figure(figsize=(out_w / dpi, out_h / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    figure.patch.set_alpha(0.0)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_axis_off()
    axes.patch.set_alpha(0.0)
    # The axes span the original pixel-edge coordinates, so findings are drawn in their stored coordinates.
    axes.set_xlim(0, cols)
    axes.set_ylim(rows, 0)

    px = cols / out_w  # one output pixel in original units
    line_px = max(2.0, round(out_w / 500.0))
    points_per_px = 72.0 / dpi
    font = max(7.0, min(16.0, out_w / 70.0))
    for finding in view.findings:
        color = finding_type(finding.type).color
        x0, y0, x1, y1 = finding.box
        if mirror:
            x0, x1 = cols - x1, cols - x0
        axes.add_patch(
            Rectangle(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor=color,
                linewidth=line_px * points_per_px,
                antialiased=False,
                joinstyle="miter",
            )
        )
        if len(finding.outline) >= 3:
            outline = np.asarray(finding.outline, dtype=np.float64)
            if mirror:
                outline = np.column_stack([cols - outline[:, 0], outline[:, 1]])
            axes.add_patch(
                Polygon(
                    outline,
                    closed=True,
                    fill=False,
                    edgecolor=color,
                    alpha=0.85,
                    linestyle="--",
                    linewidth=0.6 * line_px * points_per_px,
                )
            )
        # The label sits above the box, or below it when the box touches the top.
        text_y, vertical = y0 - 2 * line_px * px, "bottom"
        if text_y < 3 * font * px:
            text_y, vertical = y1 + 2 * line_px * px, "top"
        axes.text(
            x0,
            text_y,
            overlay_label(finding),
            color="black",
            fontsize=font,
            va=vertical,
            ha="left",
            bbox={"facecolor": color, "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
            clip_on=True,
        )

    axes.text(
        0.01 * cols,
        0.01 * rows,
        f"{view.key}\n{DISCLAIMER}",
        color="white",
        fontsize=font * 1.1,
        va="top",
        ha="left",
        bbox={"facecolor": "black", "edgecolor": "none", "alpha": 0.6, "pad": 2.0},
    )
    if legend:
        shown = {f.type for f in view.findings}
        handles = [
            Rectangle((0, 0), 1, 1, facecolor="none", edgecolor=t.color, linewidth=2.0, label=t.label)
            for t in FINDING_TYPES
            if t.key in shown
        ]
        if handles:
            axes.legend(
                handles=handles,
                loc="lower right",
                fontsize=font,
                framealpha=0.6,
                facecolor="black",
                labelcolor="white",
                edgecolor="none",
            )
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())[:out_h, :out_w].astype(np.float32)
    alpha = rgba[:, :, 3:4] / 255.0
    composed = gray[:, :, np.newaxis].astype(np.float32) * (1.0 - alpha) + rgba[:, :, :3] * alpha
    return np.ascontiguousarray(np.clip(np.rint(composed), 0, 255).astype(np.uint8))


def write_view_overlay(path: str | Path, view: OverlayView, *, max_size: int = DEFAULT_MAX_SIZE) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(render_view(view, max_size=max_size)).save(path, compress_level=_PNG_COMPRESSION)
    return path


def render_overview(
    views: Mapping[str, OverlayView], *, panel_size: int = OVERVIEW_PANEL_SIZE, title: str | None = None
) -> np.ndarray:
    """R-CC | L-CC over R-MLO | L-MLO, chest walls facing each other, as an RGB uint8 array."""
    from PIL import Image, ImageDraw, ImageFont

    panels: dict[str, np.ndarray] = {}
    for key in VIEW_KEYS:
        view = views.get(key)
        if view is None:
            continue
        view = view.downsampled(panel_size)
        laterality, _ = split_view_key(key)
        chest_wall_right = view.chest_wall_right
        if chest_wall_right is None:
            chest_wall_right = estimate_chest_wall_right(view.pixels)
        # Right breast views hang on the left with the chest wall on their right; left breast views the
        # opposite.
        mirror = chest_wall_right != (laterality == "R")
        panels[key] = render_view(view, max_size=panel_size, mirror=mirror, legend=False)
    if not panels:
        raise ValueError("an overview needs at least one view")
    cell_h = max(p.shape[0] for p in panels.values())
    cell_w = max(p.shape[1] for p in panels.values())
    gap = max(4, cell_w // 100)
    width = 2 * cell_w + gap
    font = ImageFont.load_default(size=max(10, min(28, width // 45)))
    line = int(font.size * 1.5)
    header = 2 * line + gap
    canvas = Image.new("RGB", (width, 2 * cell_h + gap + header), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, gap // 2), title or f"MammoDNN - {DISCLAIMER}", fill=(255, 255, 255), font=font)
    x = gap
    for t in FINDING_TYPES:
        rgb = tuple(int(round(255 * c)) for c in t.color)
        top = gap // 2 + line
        draw.rectangle(
            (x, top + 2, x + font.size, top + font.size), outline=rgb, width=max(2, font.size // 6)
        )
        draw.text((x + font.size + 6, top), t.label, fill=(255, 255, 255), font=font)
        x += int(font.size + 16 + draw.textlength(t.label, font=font))
    for index, key in enumerate(VIEW_KEYS):
        row, col = divmod(index, 2)
        x = col * (cell_w + gap)
        y = header + row * (cell_h + gap)
        panel = panels.get(key)
        if panel is None:
            draw.text((x + gap, y + gap), f"{key}: not available", fill=(200, 200, 200), font=font)
            continue
        # Chest walls face each other: right-breast panels hug the centre line from the left, left-breast ones
        # from the right.
        left = x + (cell_w - panel.shape[1] if col == 0 else 0)
        canvas.paste(Image.fromarray(panel), (left, y + (cell_h - panel.shape[0]) // 2))
    return np.asarray(canvas)


def write_overview(path: str | Path, views: Mapping[str, OverlayView], *, title: str | None = None) -> Path:
    from PIL import Image

    path = Path(path)
    Image.fromarray(render_overview(views, title=title)).save(path, compress_level=_PNG_COMPRESSION)
    return path


def estimate_chest_wall_right(pixels: np.ndarray) -> bool:
    """Whether the chest wall is on the image's right: the breast touches the chest-wall edge, so the brighter
    edge band (after removing the background level) is the chest wall."""
    small = _downsample(pixels, (min(256, pixels.shape[0]), min(256, pixels.shape[1])))
    band = max(1, small.shape[1] // 10)
    background = float(np.percentile(small, 5))
    left = float(np.mean(small[:, :band] - background))
    right = float(np.mean(small[:, -band:] - background))
    return right > left


def _downsample(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average to ``shape`` = (rows, cols)."""
    from PIL import Image

    array = np.asarray(pixels, dtype=np.float32)
    if array.shape == shape:
        return array
    image = Image.fromarray(array, mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), resample=Image.Resampling.BOX), dtype=np.float32)


def _window(pixels: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] with percentiles of the breast (pixels clearly above the background)."""
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return np.zeros_like(pixels)
    low_all, high_all = np.percentile(finite, [1.0, 99.9])
    threshold = low_all + 0.05 * (high_all - low_all)
    breast = finite[finite > threshold]
    if breast.size < 0.02 * finite.size:
        breast = finite
    low, high = np.percentile(breast, [0.5, 99.7])
    low = min(low, threshold)
    if high <= low:
        high = low + 1.0
    return np.clip((np.nan_to_num(pixels, nan=low) - low) / (high - low), 0.0, 1.0)
