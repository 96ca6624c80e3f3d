"""A small synthetic four-view study for the export tests: MG For Presentation DICOM files and a report whose
findings have exact masks (truths constructed here, not taken from the exporters).

Sizes differ per view and row spacing differs from column spacing, so any swap of rows/columns or of spacings
shows up as a wrong position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from support.synthetic import (
    PATIENT_ORIENTATION,
    breast_image,
    ellipse_findings,
    identity_transform,
    model_report,
    write_image,
)

from MammoDNNLib.findings import Finding, Report, Summary, ViewInfo

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-4711-XYZ"
STUDY_DATE = "20190314"
BIRTH_DATE = "19580211"
# (rows, cols) per view, and ImagerPixelSpacing (row, col).
SIZES = {"R-CC": (150, 118), "L-CC": (150, 118), "R-MLO": (170, 126), "L-MLO": (170, 126)}
IMAGER_SPACING = (0.1, 0.085)


@dataclass
class SyntheticStudy:
    folder: Path
    files: dict[str, Path]
    report: Report
    report_path: Path


def breast_pixels(shape: tuple[int, int], chest_wall_right: bool, seed: int) -> np.ndarray:
    image = breast_image(
        shape, chest_wall_right, seed, extent=(0.8, 0.48), tissue=(2200, 600), background=(80, 20)
    )
    return image.astype(np.uint16)


def write_mg(path: Path, key: str, pixels: np.ndarray, study_uid: str) -> None:
    laterality, view = key.split("-")
    write_image(
        path,
        pixels,
        study_uid=study_uid,
        bits_stored=12,
        PatientName=PATIENT_NAME,
        PatientID=PATIENT_ID,
        PatientBirthDate=BIRTH_DATE,
        PatientSex="F",
        StudyDate=STUDY_DATE,
        StudyTime="101500",
        SeriesDate=STUDY_DATE,
        ContentDate=STUDY_DATE,
        ContentTime="101501",
        AccessionNumber="ACC998877",
        StudyID="S42",
        ReferringPhysicianName="Who^Doctor",
        InstitutionName="Test Hospital",
        Manufacturer="Synthetic",
        SeriesNumber=1,
        InstanceNumber=1,
        ImageLaterality=laterality,
        ViewPosition=view,
        PresentationIntentType="FOR PRESENTATION",
        PatientOrientation=PATIENT_ORIENTATION[key],
        ImagerPixelSpacing=list(IMAGER_SPACING),
        EstimatedRadiographicMagnificationFactor=1.1,
    )


def make_findings() -> list[Finding]:
    """Findings with exact masks: a matched R-CC/R-MLO pair, two overlapping R-CC findings, one in L-MLO."""
    placements = [  # (id, centre (x, y), radii) of each of support.synthetic.ELLIPTICAL_LESIONS, in order
        ("lesion_001", (40.0, 60.0), (12.0, 9.0)),
        ("lesion_002", (48.0, 66.0), (7.0, 10.0)),
        ("lesion_003", (52.0, 80.0), (11.0, 13.0)),
        ("lesion_004", (75.0, 100.0), (9.0, 6.0)),
    ]
    return ellipse_findings(placements, SIZES)


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
                transform=identity_transform((cols, rows), flip_x=laterality == "R"),
            )
        )
    findings = [f for f in make_findings() if f.view_key in keys]
    report = model_report(
        views,
        findings,
        breasts={
            "R": Summary(score=0.72, birads="4B", findings=3),
            "L": Summary(score=0.12, birads="3", findings=1),
        },
        exam=Summary(score=0.72, birads="4B", findings=4),
        timings={"detect": 1.5, "match": 0.1},
        warnings=[f"example warning about {files[keys[0]]}"],
    )
    report_path = report.save(folder / "report.json")
    return SyntheticStudy(folder, files, report, report_path)
