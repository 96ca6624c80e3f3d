"""A 2x2 overview figure of a phantom study (hanging order R-CC | L-CC over R-MLO | L-MLO) with its truth
drawn on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..vocabulary import VIEW_KEYS, finding_type
from .generate import PhantomStudy
from .truth import PhantomTruth, load_truth


def _load_folder(folder: Path) -> tuple[dict[str, np.ndarray], PhantomTruth]:
    import pydicom

    truth = load_truth(folder)
    pixels = {key: pydicom.dcmread(folder / view.file).pixel_array for key, view in truth.views.items()}
    return pixels, truth


def plot_study(
    study: PhantomStudy | str | Path,
    path: str | Path,
    *,
    width_in: float = 7.0,
    dpi: int = 110,
    outlines: bool = True,
) -> Path:
    """Save the four views with lesion outlines (finding-type colours), nipples and pectoral lines."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(study, PhantomStudy):
        pixels, truth = study.pixel_data, study.truth
    else:
        pixels, truth = _load_folder(Path(study))
    shape = pixels["R-CC"].shape
    aspect = shape[0] / shape[1]
    fig, axes = plt.subplots(2, 2, figsize=(width_in, width_in * aspect + 0.6), facecolor="black")
    for ax, key in zip(axes.ravel(), VIEW_KEYS, strict=True):
        view = truth.views[key]
        ax.imshow(pixels[key], cmap="gray", vmin=0, vmax=float(2**12 - 1), interpolation="lanczos")
        ax.set_axis_off()
        breast = truth.breasts[view.laterality]
        ax.set_title(f"{key}   density {breast.density}   BI-RADS {breast.birads}", color="white", fontsize=8)
        if not outlines:
            continue
        ax.plot(*view.nipple, marker="+", color="cyan", markersize=6, mew=0.8)
        if view.pectoral_line is not None:
            (x0, y0), (x1, y1) = view.pectoral_line
            ax.plot([x0, x1], [y0, y1], color="yellow", lw=0.6, ls="--")
        for lesion in truth.lesions_in(key):
            lv = lesion.views[key]
            colour = finding_type(lesion.type).color
            if lv.mask is not None:
                outline = lv.mask.to_polygon()
                if len(outline):
                    closed = np.vstack([outline, outline[:1]])
                    ax.plot(closed[:, 0] - 0.5, closed[:, 1] - 0.5, color=colour, lw=0.7)
            x0, y0, x1, y1 = lv.box
            ax.text(
                x1 + 4,
                y0,
                f"{lesion.id} {finding_type(lesion.type).short} {lesion.pathology[:3]}\n"
                f"{lv.quadrant} d={lv.depth:.2f}",
                color=colour,
                fontsize=5.5,
                va="top",
            )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.02, hspace=0.08)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="black")
    plt.close(fig)
    if path.suffix.lower() == ".png":
        _to_palette(path)
    return path


def _to_palette(path: Path) -> None:
    """Rewrite a PNG with a fixed palette (a grey ramp plus the overlay colours): a third of the RGB size."""
    from PIL import Image

    colours = [
        tuple(int(round(255 * c)) for c in finding_type(k).color)
        for k in ("mass", "calcification", "asymmetry", "distortion")
    ]
    colours += [(0, 255, 255), (255, 255, 0), (255, 255, 255)]
    greys = [(v, v, v) for v in np.linspace(0, 255, 256 - len(colours)).round().astype(int)]
    palette = Image.new("P", (1, 1))
    palette.putpalette([c for rgb in greys + colours for c in rgb])
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    rgb.quantize(palette=palette, dither=Image.Dither.NONE).save(path, optimize=True)
