"""Pieces of the synthetic studies (``test_export_support``, ``test_scene_support``) and of DICOM test files.

Each study module keeps its own sizes, spacings, identities and lesions; the code that turns them into pixels,
files, findings and reports lives here, once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from MammoDNNLib.findings import Finding, ModelInfo, Report
from MammoDNNLib.geometry import LesionMask

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
# Stored orientation as in IHE / DICOM PatientOrientation: right-breast images have the chest wall on the
# right.
PATIENT_ORIENTATION = {"R-CC": ["P", "L"], "L-CC": ["A", "R"], "R-MLO": ["P", "F"], "L-MLO": ["A", "F"]}


def ellipse_mask(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """Pixels whose centres lie in the ellipse (centre and radii in pixel-edge (x, y) units)."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    return ((xx + 0.5 - centre[0]) / radii[0]) ** 2 + ((yy + 0.5 - centre[1]) / radii[1]) ** 2 <= 1.0


def breast_image(
    shape: tuple[int, int],
    chest_wall_right: bool,
    seed: int,
    *,
    extent: tuple[float, float],
    tissue: tuple[float, float],
    background: tuple[float, float],
) -> np.ndarray:
    """A half-ellipse 'breast' attached to one edge (float64).

    Its half-axes are ``extent[0] * cols`` (from the chest wall) and ``extent[1] * rows``; pixels inside are
    ``tissue[0] + tissue[1] * u``, outside ``background[0] + background[1] * u`` (u uniform in [0, 1)).
    """
    rows, cols = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    distance = (cols - 1 - xx) if chest_wall_right else xx
    inside = (distance / (extent[0] * cols)) ** 2 + ((yy - rows / 2) / (extent[1] * rows)) ** 2 <= 1.0
    return np.where(
        inside,
        tissue[0] + tissue[1] * rng.random(shape),
        background[0] + background[1] * rng.random(shape),
    )


def write_image(
    path: Path,
    pixels: np.ndarray,
    *,
    sop_class: str = MG_FOR_PRESENTATION,
    modality: str = "MG",
    study_uid: str | None = None,
    series_uid: str | None = None,
    bits_stored: int | None = None,
    **attributes,
) -> Path:
    """A DICOM file (MONOCHROME2, explicit VR little endian) of ``pixels`` as they are: uint8 or uint16, so
    8 or 16 bits allocated, ``bits_stored`` of them used (default all). Study and series UIDs are new unless
    given; ``attributes`` (DICOM keywords) are set as given."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"pixels must be uint8 or uint16, not {pixels.dtype}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = modality
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# The elliptical lesions of the synthetic studies, in this order: a matched R-CC / R-MLO pair of masses (first
# and third; their match ids assume the ids lesion_001 and lesion_003), an R-CC calcification overlapping the
# first, and an L-MLO distortion. Each study gives them ids, centres and radii that fit its own view sizes.
ELLIPTICAL_LESIONS = [
    # view, type, number, score, malignancy, birads, quadrant, depth, match id
    ("R-CC", "mass", 1, 0.91, 0.72, "4B", "outer", 0.42, "lesion_003"),
    ("R-CC", "calcification", 2, 0.55, 0.31, "4A", "middle", 0.2, None),
    ("R-MLO", "mass", 1, 0.87, 0.70, "4B", "upper", 0.5, "lesion_001"),
    ("L-MLO", "distortion", 1, 0.42, 0.12, "3", "axillary_tail", 0.8, None),
]


def ellipse_findings(
    placements: list[tuple[str, tuple[float, float], tuple[float, float]]], sizes: dict[str, tuple[int, int]]
) -> list[Finding]:
    """The findings of :data:`ELLIPTICAL_LESIONS`, placed as given: (id, centre (x, y), radii) in pixel-edge
    units; each has the exact mask of its ellipse in a view of ``sizes[view]`` (rows, cols) pixels. Matched
    findings have match probability 0.83, masses a fixed mass-shape distribution."""
    findings = []
    for (fid, centre, radii), lesion in zip(placements, ELLIPTICAL_LESIONS, strict=True):
        key, type_, number, score, mal, birads, quadrant, depth, match = lesion
        mask = LesionMask.from_full(ellipse_mask(sizes[key], centre, radii))
        findings.append(
            Finding(
                id=fid,
                view_key=key,
                type=type_,
                score=score,
                box=mask.box,
                number=number,
                mask=mask,
                quadrant=quadrant,
                depth=depth,
                match_id=match,
                match_probability=0.83 if match else None,
                malignancy=mal,
                morphology={"mass_shape": {"oval": 0.6, "round": 0.3, "irregular": 0.1}}
                if type_ == "mass"
                else {},
                birads=birads,
            )
        )
    return findings



def identity_transform(size: tuple[int, int], flip_x: bool) -> dict:
    """The transform of a view preprocessing kept whole (no crop, no resampling); ``size`` is (cols, rows)."""
    return {
        "original_size": list(size),
        "crop": [0, 0, *size],
        "prepared_size": list(size),
        "flip_x": flip_x,
    }


def model_report(views, findings, **fields) -> Report:
    """A report of the test model (fixed model, software version and creation time) with ``fields``."""
    return Report(
        model=ModelInfo("test-model", "0.0.1", "ab" * 32),
        views=views,
        findings=findings,
        software={"mammodnn": "0.1.0"},
        created="2024-05-01T12:00:00+00:00",
        **fields,
    )
