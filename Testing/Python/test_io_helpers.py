"""Builders for the io tests: small DICOM mammograms made with pydicom, a JPEG lossless encoder, input guards.

No tests here; test_io*.py import these.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from MammoDNNLib.errors import InputError
from MammoDNNLib.io import load_view

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def ramp(rows: int = 48, cols: int = 40, bits: int = 12, seed: int = 0) -> np.ndarray:
    """A deterministic test image using the whole stored range: a ramp plus noise."""
    rng = np.random.default_rng(seed)
    top = 2**bits - 1
    base = np.linspace(0, top, rows * cols).reshape(rows, cols)
    noisy = base + rng.normal(0, top / 50, (rows, cols))
    return np.clip(np.rint(noisy), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


def mammogram(
    pixels: np.ndarray | None = None,
    *,
    bits: int = 12,
    photometric: str = "MONOCHROME2",
    laterality: str | None = "L",
    view: str | None = "CC",
    spacing: tuple[float, float] | None = (0.1, 0.1),
    patient_id: str = "PAT-1",
    study_uid: str = STUDY_UID,
    **attributes,
) -> Dataset:
    """A Digital Mammography X-Ray (For Presentation) data set; ``None`` leaves an attribute out."""
    pixels = ramp(bits=bits) if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "MG"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.BodyPartExamined = "BREAST"
    if laterality is not None:
        ds.ImageLaterality = laterality
    if view is not None:
        ds.ViewPosition = view
    if spacing is not None:
        ds.ImagerPixelSpacing = list(spacing)
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits)
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                del ds[keyword]
        else:
            setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def file_hashes(*paths: Path) -> dict[Path, str]:
    """sha256 of every file under the given files/folders."""
    hashes = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@contextlib.contextmanager
def untouched(*paths: Path) -> Iterator[None]:
    """Assert that loading (including its error paths) leaves every input file byte-identical and adds
    none."""
    before = file_hashes(*paths)
    try:
        yield
    finally:
        after = file_hashes(*paths)
        assert after == before, "an input file was modified, added or removed"


def load(path: Path, **kwargs):
    """``load_view(path, **kwargs)``, checking that the file is left untouched."""
    with untouched(path):
        return load_view(path, **kwargs)


def load_error(path: Path, error: type = InputError, **kwargs) -> str:
    """The message of the ``error`` that ``load_view(path, **kwargs)`` raises, checking that the error names
    the file and that the file is left untouched."""
    with untouched(path), pytest.raises(error) as caught:
        load_view(path, **kwargs)
    assert caught.value.path == str(path)
    return str(caught.value)


def encode_jpeg_lossless_sv1(image: np.ndarray, precision: int) -> bytes:
    """A JPEG lossless (ITU T.81 process 14, predictor 1) codestream, written from the standard.

    One Huffman table whose 17 difference categories all have 5-bit codes; point transform 0. Used to test the
    JPEG Lossless SV1 transfer syntax with a truth we construct (no encoder for it is installed).
    """
    rows, cols = image.shape
    x = image.astype(np.int64)
    prediction = np.empty_like(x)
    prediction[0, 0] = 1 << (precision - 1)
    prediction[0, 1:] = x[0, :-1]
    prediction[1:, 0] = x[:-1, 0]
    prediction[1:, 1:] = x[1:, :-1]
    differences = (x - prediction) % 65536
    differences[differences > 32768] -= 65536

    bits: list[int] = []
    for d in differences.ravel().tolist():
        category = 16 if d == 32768 else abs(d).bit_length()
        bits.extend((category >> (4 - i)) & 1 for i in range(5))  # canonical code of symbol k is k in 5 bits
        if 0 < category < 16:
            extra = d if d > 0 else d + (1 << category) - 1
            bits.extend((extra >> (category - 1 - i)) & 1 for i in range(category))
    bits.extend([1] * (-len(bits) % 8))
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i : i + 8])), 2)
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0x00)

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    counts = bytes([0, 0, 0, 0, 17] + [0] * 11)
    huffman = segment(0xC4, bytes([0x00]) + counts + bytes(range(17)))
    frame = segment(
        0xC3, bytes([precision]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    )
    start_of_scan = segment(0xDA, bytes([1, 1, 0x00, 1, 0, 0]))
    return b"\xff\xd8" + huffman + frame + start_of_scan + bytes(scan) + b"\xff\xd9"


def dicom_window_linear(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR), written from the standard's pseudo-code."""
    x = x.astype(np.float64)
    out = ((x - (center - 0.5)) / (width - 1) + 0.5) * (y_max - y_min) + y_min
    out[x <= center - 0.5 - (width - 1) / 2] = y_min
    out[x > center - 0.5 + (width - 1) / 2] = y_max
    return out
