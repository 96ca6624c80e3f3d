"""A small synthetic four-view study for the export tests: MG For Presentation DICOM files and a report whose
findings have exact masks (truths constructed here, not taken from the exporters).

Sizes differ per view and row spacing differs from column spacing, so any swap of rows/columns or of spacings
shows up as a wrong position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
from MammoDNNLib.geometry import LesionMask

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-4711-XYZ"
STUDY_DATE = "20190314"
BIRTH_DATE = "19580211"
# (rows, cols) per view, and ImagerPixelSpacing (row, col).
SIZES = {"R-CC": (150, 118), "L-CC": (150, 118), "R-MLO": (170, 126), "L-MLO": (170, 126)}
IMAGER_SPACING = (0.1, 0.085)
ORIENTATION = {"R-CC": ["P", "L"], "L-CC": ["A", "R"], "R-MLO": ["P", "F"], "L-MLO": ["A", "F"]}


@dataclass
class SyntheticStudy:
    folder: Path
    files: dict[str, Path]
    report: Report
    report_path: Path


def ellipse_mask(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """Pixels whose centres lie in the ellipse (centre and radii in pixel-edge (x, y) units)."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    return ((xx + 0.5 - centre[0]) / radii[0]) ** 2 + ((yy + 0.5 - centre[1]) / radii[1]) ** 2 <= 1.0


def breast_pixels(shape: tuple[int, int], chest_wall_right: bool, seed: int) -> np.ndarray:
    rows, cols = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    distance = (cols - 1 - xx) if chest_wall_right else xx
    inside = (distance / (0.8 * cols)) ** 2 + ((yy - rows / 2) / (0.48 * rows)) ** 2 <= 1.0
    image = np.where(inside, 2200 + 600 * rng.random(shape), 80 + 20 * rng.random(shape))
    return image.astype(np.uint16)


def write_mg(
    path: Path, key: str, pixels: np.ndarray, study_uid: str, *, with_orientation: bool = True
) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    laterality, view = key.split("-")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = "101500"
    ds.SeriesDate = STUDY_DATE
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = "101501"
    ds.AccessionNumber = "ACC998877"
    ds.StudyID = "S42"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.InstitutionName = "Test Hospital"
    ds.Manufacturer = "Synthetic"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    ds.PresentationIntentType = "FOR PRESENTATION"
    if with_orientation:
        ds.PatientOrientation = ORIENTATION[key]
    ds.ImagerPixelSpacing = list(IMAGER_SPACING)
    ds.EstimatedRadiographicMagnificationFactor = 1.1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_findings() -> list[Finding]:
    """Findings with exact masks: a matched R-CC/R-MLO pair, two overlapping R-CC findings, one in L-MLO."""
    specs = [
        # id, view, type, centre (x, y), radii, number, score, malignancy, birads, quadrant, depth, match
        (
            "lesion_001",
            "R-CC",
            "mass",
            (40.0, 60.0),
            (12.0, 9.0),
            1,
            0.91,
            0.72,
            "4B",
            "outer",
            0.42,
            "lesion_003",
        ),
        (
            "lesion_002",
            "R-CC",
            "calcification",
            (48.0, 66.0),
            (7.0, 10.0),
            2,
            0.55,
            0.31,
            "4A",
            "middle",
            0.2,
            None,
        ),
        (
            "lesion_003",
            "R-MLO",
            "mass",
            (52.0, 80.0),
            (11.0, 13.0),
            1,
            0.87,
            0.70,
            "4B",
            "upper",
            0.5,
            "lesion_001",
        ),
        (
            "lesion_004",
            "L-MLO",
            "distortion",
            (75.0, 100.0),
            (9.0, 6.0),
            1,
            0.42,
            0.12,
            "3",
            "axillary_tail",
            0.8,
            None,
        ),
    ]
    findings = []
    for fid, key, type_, centre, radii, number, score, mal, birads, quadrant, depth, match in specs:
        mask = LesionMask.from_full(ellipse_mask(SIZES[key], centre, radii))
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


def make_study(
    folder: Path, *, relative: bool = True, keys: tuple[str, ...] = tuple(SIZES)
) -> SyntheticStudy:
    """Write the four DICOM files and report.json into ``folder``."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    files: dict[str, Path] = {}
    views = []
    for index, key in enumerate(keys):
        rows, cols = SIZES[key]
        laterality, view = key.split("-")
        path = folder / f"{PATIENT_ID}_{key}.dcm"
        write_mg(
            path, key, breast_pixels((rows, cols), chest_wall_right=laterality == "R", seed=index), study_uid
        )
        import pydicom

        files[key] = path
        views.append(
            ViewInfo(
                key=key,
                file=path.name if relative else str(path),
                laterality=laterality,
                view=view,
                size=(cols, rows),
                spacing=(IMAGER_SPACING[0] / 1.1, IMAGER_SPACING[1] / 1.1),
                provenance={
                    "spacing": "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.1",
                    "file": str(path),
                },
                sop_instance_uid=str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID),
                transform={
                    "original_size": [cols, rows],
                    "crop": [0, 0, cols, rows],
                    "prepared_size": [cols, rows],
                    "flip_x": laterality == "R",
                },
            )
        )
    findings = [f for f in make_findings() if f.view_key in keys]
    report = Report(
        model=ModelInfo("test-model", "0.0.1", "ab" * 32),
        views=views,
        findings=findings,
        breasts={
            "R": Summary(score=0.72, birads="4B", findings=3),
            "L": Summary(score=0.12, birads="3", findings=1),
        },
        exam=Summary(score=0.72, birads="4B", findings=4),
        timings={"detect": 1.5, "match": 0.1},
        warnings=[f"example warning about {files[keys[0]]}"],
        software={"mammodnn": "0.1.0"},
        created="2024-05-01T12:00:00+00:00",
    )
    report_path = report.save(folder / "report.json")
    return SyntheticStudy(folder, files, report, report_path)
