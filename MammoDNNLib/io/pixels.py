"""DICOM pixel data to presentation values: decode (native, RLE, JPEG, JPEG-LS, JPEG 2000), then the modality
LUT, then the VOI LUT or the first window as DICOM PS3.3 C.11 defines them, then MONOCHROME1 inversion, so
that brighter means denser. Every step's source goes into the view's provenance.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset

from ..errors import InputError
from ..study import View
from .attributes import as_list, explanation, integer, number, short, text, transfer_syntax
from .conventions import Candidate
from .dicom import PIXEL_DATA_KEYWORDS, read_dataset, truncation_message

# Decoder plugins in the order tried: compiled codecs first (CharLS is the JPEG-LS reference implementation),
# pydicom's pure-Python RLE decoder last because it is about three times slower on a 13-megapixel film.
DECODER_PREFERENCE = ("pyjpegls", "pylibjpeg", "pillow", "gdcm", "pydicom")


def decode_dicom(candidate: Candidate) -> View:
    """Read the file again in full, decode it and return the :class:`View` in presentation values."""
    path = candidate.path
    dataset, messages = read_dataset(path)
    truncation = truncation_message(messages)
    if truncation or not any(k in dataset for k in PIXEL_DATA_KEYWORDS):
        raise InputError(path, f"corrupt or truncated DICOM file ({truncation or 'pixel data missing'})")
    notes = list(candidate.warnings)
    stored, decoder_source = decode_stored_values(path, dataset, notes)
    pixels, presentation = presentation_values(path, dataset, stored, notes)
    for keyword in PIXEL_DATA_KEYWORDS:
        if keyword in dataset:
            del dataset[keyword]
    return View(
        pixels=pixels,
        spacing=candidate.spacing,
        laterality=candidate.laterality,
        view=candidate.view,
        source=path,
        provenance={**candidate.provenance, **presentation, "decoder": decoder_source},
        header=dataset,
        warnings=notes,
    )


def decode_stored_values(path: Path, dataset: Dataset, notes: list[str]) -> tuple[np.ndarray, str]:
    """The stored values of the one frame.

    Decoder plugins are tried in :data:`DECODER_PREFERENCE` order. A plugin that does not support the stream
    (Pillow and 12-bit JPEG, for instance) passes it on to the next; a plugin that finds the stream invalid
    makes the file corrupt: falling back to a more lenient decoder would hand back plausible-looking garbage.
    """
    from pydicom.pixels import get_decoder

    syntax = transfer_syntax(path, dataset)
    decoder = get_decoder(syntax)
    if decoder.is_native:
        plugins = [""]
    else:
        rank = {name: i for i, name in enumerate(DECODER_PREFERENCE)}
        plugins = sorted(decoder.available_plugins, key=lambda name: rank.get(name, len(rank)))
    unsupported: list[str] = []
    for plugin in plugins:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                array, _ = decoder.as_array(dataset, index=0, decoding_plugin=plugin)
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except BaseException as exc:  # noqa: BLE001 - Rust codecs panic with a BaseException subclass
                reason = f"{plugin or 'pydicom'}: {short(exc)}"
                if plugin and _is_unsupported(reason):
                    unsupported.append(reason)
                    continue
                raise InputError(
                    path, f"corrupt or truncated pixel data: {syntax.name} could not be decoded ({reason})"
                ) from None
        notes.extend(f"{path}: pydicom: {w.message}" for w in caught)
        if array.ndim != 2:
            raise InputError(path, f"decoded pixel data has shape {array.shape}, expected one 2-D frame")
        return array, f"{syntax.name} ({syntax})" + (f" via {plugin}" if plugin else ": native")
    reasons = "; ".join(unsupported)
    raise InputError(path, f"no installed decoder supports this {syntax.name} stream ({reasons})")


def _is_unsupported(reason: str) -> bool:
    lowered = reason.lower()
    phrases = ("does not support", "not supported", "unsupported", "requires")
    return any(phrase in lowered for phrase in phrases)


def presentation_values(
    path: Path, dataset: Dataset, stored: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, dict[str, str]]:
    """Stored values -> modality LUT -> VOI LUT (preferred, as pydicom does) or the first window ->
    MONOCHROME1 inversion over the VOI output range, as float32 (brighter = denser).

    Returns the pixels and the provenance of ``modality_lut``, ``voi`` and ``photometric``.
    """
    values, (low, high), modality_source = _modality_lut(path, dataset, stored)
    values, (low, high), voi_source = _voi(path, dataset, values, (low, high), notes)
    photometric = text(dataset, "PhotometricInterpretation")
    if photometric == "MONOCHROME1":
        values = (low + high) - np.asarray(values, dtype=np.float64)
        photometric_source = f"MONOCHROME1 (inverted as (low + high) - value over [{low:g}, {high:g}])"
    else:
        photometric_source = "MONOCHROME2"
        if text(dataset, "PresentationLUTShape") == "INVERSE":
            notes.append(
                f"{path}: PresentationLUTShape INVERSE with MONOCHROME2 is inconsistent; read as "
                "MONOCHROME2 (brighter = denser)"
            )
    pixels = np.ascontiguousarray(values, dtype=np.float32)
    return pixels, {"modality_lut": modality_source, "voi": voi_source, "photometric": photometric_source}


def _modality_lut(
    path: Path, dataset: Dataset, stored: np.ndarray
) -> tuple[np.ndarray, tuple[float, float], str]:
    """Modality LUT Sequence or rescale; also the output range (PS3.3 C.11.1), which VOI and inversion use."""
    from pydicom.pixels import apply_modality_lut

    low, high = _stored_range(dataset)
    if dataset.get("ModalityLUTSequence"):
        item = dataset.ModalityLUTSequence[0]
        try:
            values = apply_modality_lut(stored, dataset)
            bits = int(item.LUTDescriptor[2])
        except Exception as exc:
            raise InputError(path, f"corrupt ModalityLUTSequence (0028,3000): {short(exc)}") from exc
        return (
            values,
            (0, 2**bits - 1),
            f"ModalityLUTSequence (0028,3000){explanation(item, 'LUTExplanation')}",
        )
    if "RescaleSlope" in dataset and "RescaleIntercept" in dataset:
        slope, intercept = number(dataset, "RescaleSlope"), number(dataset, "RescaleIntercept")
        if slope is None or intercept is None or slope == 0:
            raise InputError(path, f"corrupt header: RescaleSlope {slope}, RescaleIntercept {intercept}")
        source = f"RescaleSlope/RescaleIntercept (0028,1053/1052) {slope:g}/{intercept:g}"
        if (slope, intercept) == (1.0, 0.0):
            return stored, (low, high), source + " (identity)"
        ends = sorted((low * slope + intercept, high * slope + intercept))
        return apply_modality_lut(stored, dataset), (ends[0], ends[1]), source
    return stored, (low, high), "none (stored values)"


def _voi(
    path: Path, dataset: Dataset, values: np.ndarray, output_range: tuple[float, float], notes: list[str]
) -> tuple[np.ndarray, tuple[float, float], str]:
    from pydicom.pixels import apply_windowing

    window_present = "WindowCenter" in dataset and "WindowWidth" in dataset
    if dataset.get("VOILUTSequence"):
        item = dataset.VOILUTSequence[0]
        try:
            table, first_mapped, bits = _lut_table(dataset, item)
            integral = np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values
            mapped = _through_table(
                integral,
                lambda domain: table[np.clip(domain.astype(np.int64) - first_mapped, 0, len(table) - 1)],
            )
            source = f"VOILUTSequence (0028,3010) item 1 of {len(dataset.VOILUTSequence)}"
            source += explanation(item, "LUTExplanation")
            if window_present:
                source += " (WindowCenter/WindowWidth also present, not used)"
            return mapped, (0, 2**bits - 1), source
        except Exception as exc:  # a broken LUT leaves the image readable in modality values
            notes.append(
                f"{path}: VOILUTSequence (0028,3010) could not be applied ({short(exc)}); modality "
                "values used"
            )
    elif window_present:
        centers, widths = as_list(dataset.WindowCenter), as_list(dataset.WindowWidth)
        function = text(dataset, "VOILUTFunction") or "LINEAR"
        try:
            mapped = _through_table(values, lambda domain: apply_windowing(domain, dataset, index=0))
            explanations = as_list(dataset.get("WindowCenterWidthExplanation"))
            named = f" {str(explanations[0])!r}" if explanations and str(explanations[0]) else ""
            several = f", first of {len(centers)}" if len(centers) > 1 else ""
            source = (
                f"WindowCenter/WindowWidth (0028,1050/1051) {float(centers[0]):g}/{float(widths[0]):g} "
                f"{function}{named}{several}"
            )
            return mapped, output_range, source
        except Exception as exc:
            notes.append(
                f"{path}: window (0028,1050/1051) {centers}/{widths} {function} could not be applied "
                f"({short(exc)}); modality values used"
            )
    return values, output_range, "none: no VOI LUT or window in the header (modality values)"


def _lut_table(dataset: Dataset, item: Dataset) -> tuple[np.ndarray, int, int]:
    """(entries, first stored value mapped, bits per entry) of a LUT item (PS3.3 C.11.2.1.1).

    Written here rather than with pydicom's ``apply_voi``, which indexes through the LUT's own dtype and so
    wraps around for 8-bit LUTs with more than 256 entries (pydicom 3.0.2).
    """
    descriptor = [int(v) for v in item.LUTDescriptor]
    entries, first_mapped, bits = descriptor[0] or 65536, descriptor[1], descriptor[2]
    if integer(dataset, "PixelRepresentation") == 1 and first_mapped >= 32768:
        first_mapped -= 65536  # the descriptor's second value is signed for signed pixels
    element = item["LUTData"]
    if isinstance(element.value, (bytes, bytearray)):
        little = transfer_syntax(Path(), dataset).is_little_endian
        data = np.frombuffer(element.value, dtype="<u2" if little else ">u2")
    else:
        data = np.asarray(as_list(element.value), dtype=np.int64)
    if len(data) < entries:
        raise ValueError(f"LUTData has {len(data)} entries, the descriptor says {entries}")
    return data[:entries].astype(np.float64), first_mapped, bits


def _through_table(values: np.ndarray, operation: Callable[[np.ndarray], Any]) -> np.ndarray:
    """Apply a pointwise operation through a table over the integer values present: the same result as
    applying it to every pixel, an order of magnitude faster on a 14-megapixel image."""
    if values.dtype.kind not in "iu" or values.size < 65536:
        return np.asarray(operation(values))
    low, high = int(values.min()), int(values.max())
    if high - low > 2**20:
        return np.asarray(operation(values))
    table = np.asarray(operation(np.arange(low, high + 1, dtype=values.dtype)))
    if low == 0:
        return table[values]
    if values.dtype.kind == "u":  # every value is >= low: no wrap-around
        return table[values - values.dtype.type(low)]
    return table[values.astype(np.int64) - low]


def _stored_range(dataset: Dataset) -> tuple[float, float]:
    bits = int(dataset.BitsStored)
    if integer(dataset, "PixelRepresentation") == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1
