"""Small DICOM reads shared by the converters (header size without pixels; pixels), with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError


def dicom_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        return int(header.Columns), int(header.Rows)
    except Exception as exc:  # pydicom raises many types for a broken file
        raise InputError(path, f"not a readable DICOM image: {exc}") from None


def dicom_pixels(path: Path) -> np.ndarray:
    """The stored pixel values (no LUTs: converters only look at masks)."""
    import pydicom

    try:
        return pydicom.dcmread(path).pixel_array
    except Exception as exc:
        raise InputError(path, f"cannot decode the pixels: {exc}") from None
