"""Header-less images: PNG (8/16-bit), PGM/PNM (mini-MIAS P5 files), TIFF.

They carry no pixel spacing, side or view, so the caller gives them (``spacing=``, ``laterality=``,
``view=``), or, for side and view, the file name does (``R-CC.png``, ``case7_L_MLO.pgm``). Stored values are
taken as presentation values (brighter = denser), except TIFF MINISWHITE, which is inverted like DICOM
MONOCHROME1. Grayscale images stored as RGB with three equal channels are read as grayscale; true colour is
refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..study import View
from .conventions import (
    Candidate,
    Skippable,
    Spacing,
    format_spacing,
    non_square_warning,
    side_view_from_file_name,
)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".pgm", ".pnm", ".ppm", ".tif", ".tiff")
_FORMAT_NAMES = {"PNG": "PNG", "PNM": "PGM/PNM", "TIFF": "TIFF"}


class UnnamedImage(Skippable):
    """A header-less image whose side or view neither the caller nor the file name gives."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG", "PNM", "TIFF"
    description: str  # e.g. "PNG mode I;16", "TIFF uint16 MINISBLACK (compression ADOBE_DEFLATE)"
    shape: tuple[int, int]


def sniff_format(path: Path) -> str | None:
    """ "PNG", "PNM" or "TIFF" from the file's first bytes (extensions are not trusted); None otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and head[2:3].isspace():
        return "PNM"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    return None


def inspect_image(
    path: Path, *, spacing: Spacing | None, laterality: str | None, view: str | None
) -> Candidate:
    """Check a header-less image and take spacing, side and view from the caller or its file name."""
    image_format = sniff_format(path)
    if image_format is None:
        raise InputError(path, "not a DICOM file or a supported image (PNG, PGM, TIFF)")
    _read_info(path, image_format)  # refuses multi-frame, 1-bit and colour-model images before any decoding
    named = side_view_from_file_name(path)
    provenance: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, given, from_name in (
        ("laterality", laterality, named[0] if named else None),
        ("view", view, named[1] if named else None),
    ):
        if given is not None:
            if from_name is not None and from_name != given:
                raise InputError(path, f"{name}={given!r} was given but the file name says {from_name}")
            values[name], provenance[name] = given, f"caller ({name}={given!r})"
        elif from_name is not None:
            values[name], provenance[name] = from_name, f"file name {path.name!r} (naming convention)"
    missing = [n for n in ("laterality", "view") if n not in values] + (
        ["spacing"] if spacing is None else []
    )
    if missing:
        how = (
            f"give {', '.join(missing)} "
            "(Python: load_view(path, spacing=0.2, laterality='L', view='MLO'); "
            "command line: --spacing, --laterality, --view)"
        )
        if "laterality" in missing or "view" in missing:
            how += " or name the file by side and view, e.g. R-CC.png, L_MLO.pgm"
        problem = (
            f"a {_FORMAT_NAMES[image_format]} image has no header to give its {', '.join(missing)}: {how}"
        )
        raise (UnnamedImage if "laterality" in missing or "view" in missing else InputError)(path, problem)
    assert spacing is not None
    provenance["spacing"] = f"caller (spacing={format_spacing(spacing)} mm)"
    notes = [w for w in [non_square_warning(path, spacing)] if w]
    return Candidate(
        path=path,
        kind="image",
        laterality=values["laterality"],
        view=values["view"],
        spacing=spacing,
        provenance=provenance,
        warnings=notes,
        metadata={},
    )


def decode_image(candidate: Candidate) -> View:
    path = candidate.path
    image_format = sniff_format(path)
    if image_format is None:
        raise InputError(path, "not a DICOM file or a supported image (PNG, PGM, TIFF)")
    notes = list(candidate.warnings)
    if image_format == "TIFF":
        pixels, decoder, photometric = _decode_tiff(path, notes)
    else:
        pixels, decoder, photometric = _decode_with_pillow(path, image_format, notes)
    provenance = {
        **candidate.provenance,
        "photometric": photometric,
        "modality_lut": "none (header-less image)",
        "voi": "none (header-less image: stored values are taken as presentation values)",
        "decoder": decoder,
    }
    return View(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        spacing=candidate.spacing,
        laterality=candidate.laterality,
        view=candidate.view,
        source=path,
        provenance=provenance,
        header=None,
        warnings=notes,
    )


# --- decoding


def _read_info(path: Path, image_format: str) -> ImageInfo:
    """Header-level checks (no pixel decode): frames, bit depth, colour model."""
    if image_format == "TIFF":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series
                page = tif.pages[0]
                axes, shape = series[0].axes, series[0].shape
                photometric = page.photometric.name
                compression = page.compression.name
                dtype = str(series[0].dtype)
        except Exception as exc:
            raise InputError(path, f"corrupt or unreadable TIFF ({_short(exc)})") from exc
        frames = int(np.prod([n for a, n in zip(axes, shape, strict=True) if a not in "YXS"] or [1]))
        if len(series) > 1 or frames > 1:
            raise InputError(
                path, f"multi-image TIFF ({max(len(series), frames)} images): not a single mammogram"
            )
        if page.bitspersample == 1:
            raise InputError(path, "1-bit (binary) TIFF: a mask, not a mammogram")
        yx = tuple(n for a, n in zip(axes, shape, strict=True) if a in "YX")
        return ImageInfo("TIFF", f"TIFF {dtype} {photometric} (compression {compression})", yx)  # type: ignore[arg-type]

    from PIL import Image

    try:
        with Image.open(path) as image:
            mode, size, frames = image.mode, image.size, getattr(image, "n_frames", 1)
    except Exception as exc:
        raise InputError(
            path, f"corrupt or unreadable {_FORMAT_NAMES[image_format]} ({_short(exc)})"
        ) from exc
    if frames > 1:
        raise InputError(path, f"animated image ({frames} frames): not a single mammogram")
    if mode == "1":
        raise InputError(path, "1-bit (binary) image: a mask, not a mammogram")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        raise InputError(path, f"colour image (mode {mode}): not a mammogram, which is grayscale")
    description = f"{image_format} mode {mode}"
    if image_format == "PNM":
        maxval = _pnm_maxval(path)
        if maxval is not None and maxval not in (255, 65535):
            description += (
                f", maxval {maxval} (Pillow scales it to the full {8 if maxval < 256 else 16}-bit range)"
            )
    return ImageInfo(image_format, description, (size[1], size[0]))


def _decode_with_pillow(path: Path, image_format: str, notes: list[str]) -> tuple[np.ndarray, str, str]:
    from PIL import Image

    info = _read_info(path, image_format)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "PA"):
                image = image.convert("RGBA")
                mode = "RGBA"
            array = np.asarray(image)
    except InputError:
        raise
    except Exception as exc:  # truncated or damaged streams
        raise InputError(path, f"corrupt or truncated {_FORMAT_NAMES[image_format]} ({_short(exc)})") from exc
    pixels = _grayscale(path, array, mode, notes)
    return (
        pixels,
        f"Pillow: {info.description}",
        f"grayscale {_FORMAT_NAMES[image_format]} (brighter = denser)",
    )


def _decode_tiff(path: Path, notes: list[str]) -> tuple[np.ndarray, str, str]:
    import tifffile

    info = _read_info(path, "TIFF")
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            photometric = page.photometric.name
            bits = page.bitspersample
            colormap = page.colormap
            array = tif.series[0].asarray()
        decoder = f"tifffile: {info.description}"
    except Exception as exc:
        if "imagecodecs" in str(exc):  # a compression tifffile decodes only with imagecodecs (LZW, JPEG, ...)
            logger.debug("%s: tifffile cannot decode (%s); trying Pillow", path, exc)
            return _decode_with_pillow_tiff(path, notes, info)
        raise InputError(path, f"corrupt or truncated TIFF ({_short(exc)})") from exc
    while array.ndim > 2 and array.shape[0] == 1:  # singleton page axes
        array = array[0]
    if photometric == "PALETTE" and colormap is not None:
        array = np.moveaxis(np.asarray(colormap)[:, array], 0, -1)
        mode = "RGB"
    elif photometric in ("RGB", "YCBCR", "SEPARATED", "CIELAB", "ICCLAB", "ITULAB"):
        if photometric != "RGB":
            raise InputError(path, f"colour TIFF ({photometric}): not a mammogram, which is grayscale")
        mode = "RGBA" if array.shape[-1] == 4 else "RGB"
    elif array.ndim == 3 and array.shape[-1] == 2:
        mode = "LA"
    else:
        mode = "L"
    pixels = _grayscale(path, array, mode, notes)
    if photometric == "MINISWHITE":
        if np.issubdtype(pixels.dtype, np.unsignedinteger):
            top = float(2**bits - 1)
            pixels = top - pixels.astype(np.float64)
            return pixels, decoder, f"TIFF MINISWHITE (inverted as {top:g} - value: brighter = denser)"
        low, high = float(pixels.min()), float(pixels.max())
        pixels = (low + high) - pixels.astype(np.float64)
        return pixels, decoder, f"TIFF MINISWHITE (inverted as {low:g} + {high:g} - value: brighter = denser)"
    return pixels, decoder, "grayscale TIFF (brighter = denser)"


def _decode_with_pillow_tiff(path: Path, notes: list[str], info: ImageInfo) -> tuple[np.ndarray, str, str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "PA"):
                image, mode = image.convert("RGBA"), "RGBA"
            array = np.asarray(image)
    except Exception as exc:
        raise InputError(
            path, f"corrupt TIFF or a compression neither tifffile nor Pillow decodes ({_short(exc)})"
        ) from exc
    if "MINISWHITE" in info.description:
        raise InputError(
            path, "TIFF MINISWHITE in a compression only Pillow decodes: convert it to MINISBLACK"
        )
    return (
        _grayscale(path, array, mode, notes),
        f"Pillow: {info.description}",
        "grayscale TIFF (brighter = denser)",
    )


def _grayscale(path: Path, array: np.ndarray, mode: str, notes: list[str]) -> np.ndarray:
    """One channel from a grayscale, gray+alpha or RGB(A) array; colour that is really colour is refused."""
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise InputError(path, f"image array of shape {array.shape}: not a single 2-D image")
    channels = array.shape[-1]
    has_alpha = mode in ("LA", "RGBA", "PA") or channels in (2, 4)
    color = array[..., : channels - 1] if has_alpha else array
    alpha = array[..., -1] if has_alpha else None
    if alpha is not None and np.any(alpha != alpha.max()):
        notes.append(f"{path}: the alpha channel is ignored (some pixels are transparent)")
    if color.shape[-1] == 1:
        return color[..., 0]
    if all(np.array_equal(color[..., 0], color[..., c]) for c in range(1, color.shape[-1])):
        notes.append(f"{path}: stored as {mode} with equal channels: read as grayscale")
        return color[..., 0]
    raise InputError(
        path, f"colour image ({mode} with differing channels): not a mammogram, which is grayscale"
    )


def _pnm_maxval(path: Path) -> int | None:
    """The maxval of a PGM/PNM header (tokens after the magic, comments skipped)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    tokens: list[bytes] = []
    for line in head.split(b"\n"):
        tokens.extend(line.split(b"#", 1)[0].split())
        if len(tokens) >= 4:
            break
    try:
        return int(tokens[3]) if tokens[:1] in ([b"P2"], [b"P5"], [b"P3"], [b"P6"]) else None
    except (IndexError, ValueError):
        return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
