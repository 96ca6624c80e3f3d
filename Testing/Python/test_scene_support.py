"""Shared builders for the scene tests (``test_scene*.py``): a synthetic four-view study and its truth report.

The truth is constructed here, independently of the scene code: elliptical lesions with exact masks, one
finding known only by its outline and one only by its box, a matched CC/MLO pair, two overlapping findings,
view sizes that differ and non-square pixels (so any swap of rows/columns or spacings shows). Images are
written as MG "For Presentation" DICOM files when a test needs files. The two tests at the bottom check the
builders themselves.

:func:`report_from_phantom` turns the phantom's truth (``MammoDNNLib.phantom``) into the report a perfect
model would give, for the end-to-end test on a phantom study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
from MammoDNNLib.geometry import LesionMask
from MammoDNNLib.study import Study, View

# (rows, cols) per view and (row, col) spacing in mm.
SIZES = {"R-CC": (96, 72), "L-CC": (96, 74), "R-MLO": (110, 80), "L-MLO": (108, 80)}
SPACING = (0.5, 0.4)
# Stored orientation as in IHE / DICOM PatientOrientation: right-breast images have the chest wall on the
# right.
PATIENT_ORIENTATION = {"R-CC": ["P", "L"], "L-CC": ["A", "R"], "R-MLO": ["P", "F"], "L-MLO": ["A", "F"]}
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def ellipse(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse ((x, y) pixel-edge units)."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    return ((xx + 0.5 - centre[0]) / radii[0]) ** 2 + ((yy + 0.5 - centre[1]) / radii[1]) ** 2 <= 1.0


def breast_image(shape: tuple[int, int], chest_wall_right: bool, seed: int, polarity: int = 1) -> np.ndarray:
    """A half-ellipse 'breast' attached to one edge, bright tissue on dark background (or inverted)."""
    rows, cols = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    distance = (cols - 1 - xx) if chest_wall_right else xx
    inside = (distance / (0.75 * cols)) ** 2 + ((yy - rows / 2) / (0.47 * rows)) ** 2 <= 1.0
    image = np.where(inside, 600 + 300 * rng.random(shape), 40 + 10 * rng.random(shape)).astype(np.float32)
    return image if polarity > 0 else (1000 - image).astype(np.float32)


def make_study(seed: int = 0) -> Study:
    views = {}
    for index, (key, shape) in enumerate(SIZES.items()):
        laterality, view = key.split("-")
        views[key] = View(
            pixels=breast_image(shape, chest_wall_right=laterality == "R", seed=seed + index),
            spacing=SPACING,
            laterality=laterality,
            view=view,
            provenance={"pixels": "synthetic test image"},
        )
    return Study(views=views)


def make_findings() -> list[Finding]:
    """Findings with constructed geometry (see the module doc)."""
    specs = [
        # id, view, type, centre, radii, number, score, malignancy, birads, quadrant, depth, match
        (
            "lesion_001",
            "R-CC",
            "mass",
            (30.0, 40.0),
            (8.0, 6.0),
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
            (36.0, 44.0),
            (5.0, 7.0),
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
            (40.0, 50.0),
            (7.0, 9.0),
            1,
            0.87,
            0.70,
            "4B",
            "upper",
            0.5,
            "lesion_001",
        ),
        (
            "lesion_005",
            "L-MLO",
            "distortion",
            (50.0, 70.0),
            (6.0, 4.0),
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
        mask = LesionMask.from_full(ellipse(SIZES[key], centre, radii))
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
                birads=birads,
                quadrant_probabilities={quadrant: 0.7, "middle" if quadrant != "middle" else "inner": 0.3},
                morphology={"mass_shape": {"oval": 0.6, "round": 0.3, "irregular": 0.1}}
                if type_ == "mass"
                else {},
                extra={"source": "test", "raw|score": [score, 1.0]},
            )
        )
    # Known only by an outline (a triangle with fractional vertices) and only by a box.
    findings.append(
        Finding(
            id="lesion_004",
            view_key="L-CC",
            type="asymmetry",
            score=0.33,
            box=(40.25, 20.5, 60.0, 36.75),
            number=1,
            outline=[(40.25, 20.5), (60.0, 24.0), (48.5, 36.75)],
            quadrant="inner",
            depth=0.3,
        )
    )
    findings.append(
        Finding(id="lesion_006", view_key="L-CC", type="mass", score=0.21, box=(10, 60, 22, 71), number=2)
    )
    return findings


def make_report(study: Study | None = None) -> Report:
    study = study or make_study()
    views = [
        ViewInfo(
            key=key,
            file=None,
            laterality=v.laterality,
            view=v.view,
            size=v.size,
            spacing=v.spacing,
            transform={
                "original_size": list(v.size),
                "crop": [0, 0, *v.size],
                "prepared_size": list(v.size),
                "flip_x": v.laterality == "R",
            },
        )
        for key, v in study.views.items()
    ]
    return Report(
        model=ModelInfo("test-model", "0.0.1", "ab" * 32),
        views=views,
        findings=make_findings(),
        breasts={"R": Summary(0.72, "4B", 3), "L": Summary(0.12, "3", 3, note="one view only? no")},
        exam=Summary(0.72, "4B", 6),
        timings={"detect": 1.5},
        warnings=["a warning | with a bar"],
        options={"tta": True},
        software={"mammodnn": "0.1.0"},
        created="2024-05-01T12:00:00+00:00",
    )


def truth_analysis(report: Report, calls: list | None = None):
    """An analysis function (the pipeline's signature) that returns ``report`` after checking its input."""

    def analyze(study: Study, *, model=None, device="cpu", tta=True, progress=None, **options) -> Report:
        for info in report.views:
            if info.key in study.views:
                assert study[info.key].size == tuple(info.size), "the study's view differs from the report's"
        if progress is not None:
            progress(0.5, "half way")
        if calls is not None:
            calls.append({"views": list(study.views), "model": model, "device": device, "tta": tta})
        return report

    return analyze


def write_dicom(
    path: Path,
    key: str,
    pixels: np.ndarray,
    *,
    spacing=SPACING,
    orientation: bool = True,
    identity: bool = True,
) -> Path:
    """An MG For Presentation file (ImagerPixelSpacing, no magnification, no IPP/IOP) of ``pixels``."""
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
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.PatientID = "SCENE-TEST"
    ds.PatientName = "Scene^Test"
    ds.StudyDate = "20240501"
    ds.PresentationIntentType = "FOR PRESENTATION"
    if identity:
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
    if orientation:
        ds.PatientOrientation = PATIENT_ORIENTATION[key]
    ds.ImagerPixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.clip(pixels, 0, 4095).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass
class StudyFiles:
    folder: Path
    files: dict[str, Path]
    study: Study


def write_study(folder: Path, seed: int = 0) -> StudyFiles:
    study = make_study(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {key: write_dicom(folder / f"{key}.dcm", key, view.pixels) for key, view in study.views.items()}
    return StudyFiles(folder, files, study)


def headless():
    """A fresh headless Slicer scene (skips where slicer-core is not installed)."""
    pytest.importorskip("slicer", reason="the scene tests need slicer-core (pip install slicer-core)")
    from MammoDNNLib.scene.headless import create_headless_slicer

    return create_headless_slicer()


def report_from_phantom(phantom) -> Report:
    """The phantom's truth as the report a perfect model would give (one finding per lesion and view)."""
    from MammoDNNLib.vocabulary import VIEW_KEYS

    truth = phantom.truth
    ids: dict[tuple[str, str], str] = {}
    ordered = [(lesion, key) for key in VIEW_KEYS for lesion in truth.lesions if key in lesion.views]
    for index, (lesion, key) in enumerate(ordered, start=1):
        ids[(lesion.id, key)] = f"lesion_{index:03d}"
    findings = []
    for lesion, key in ordered:
        seen = lesion.views[key]
        other = [k for k in lesion.views if k != key]
        number = int("".join(ch for ch in lesion.id if ch.isdigit()) or 0)
        findings.append(
            Finding(
                id=ids[(lesion.id, key)],
                view_key=key,
                type=lesion.type,
                score=1.0,
                box=seen.box,
                number=number,
                mask=seen.mask,
                quadrant=seen.quadrant,
                depth=seen.depth,
                match_id=ids[(lesion.id, other[0])] if other else None,
                match_probability=1.0 if other else None,
                malignancy=1.0 if lesion.pathology == "malignant" else 0.0,
                birads=lesion.birads,
                morphology={group: {value: 1.0} for group, value in lesion.morphology.items()},
                extra={"truth_id": lesion.id, "visibility": seen.visibility},
            )
        )
    views = [
        ViewInfo(
            key=key,
            file=v.file,
            laterality=v.laterality,
            view=v.view,
            size=tuple(v.size),
            spacing=tuple(v.spacing),
            transform={
                "original_size": list(v.size),
                "crop": [0, 0, *v.size],
                "prepared_size": list(v.size),
                "flip_x": v.chest_wall_side == "right",
            },
        )
        for key, v in truth.views.items()
    ]
    breasts = {
        side: Summary(
            score=float(any(truth.lesion(i).pathology == "malignant" for i in b.lesion_ids)),
            birads=b.birads,
            findings=sum(f.laterality == side for f in findings),
        )
        for side, b in truth.breasts.items()
    }
    exam = Summary(
        score=max([s.score for s in breasts.values()] or [0.0]),
        birads=truth.exam_birads,
        findings=len(findings),
    )
    return Report(
        ModelInfo("phantom-truth", "1", "0" * 64),
        views,
        findings,
        breasts,
        exam,
        created="phantom " + truth.study_id,
    )


def phantom_study(seed: int = 2):
    """A small phantom study (seed 2 has lesions in all four views), or skip if the phantom is unavailable."""
    phantom = pytest.importorskip("MammoDNNLib.phantom")
    return phantom.generate_study(seed, size="small")


def test_synthetic_findings_are_inside_their_views_and_consistent():
    report = make_report()
    for finding in report.findings:
        rows, cols = SIZES[finding.view_key]
        x0, y0, x1, y1 = finding.box
        assert 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows
        mask = finding.lesion_mask((rows, cols))
        assert mask.area > 0
        if finding.mask is not None:
            assert mask.box == finding.box
        if finding.match_id:
            partner = report.finding(finding.match_id)
            assert partner.match_id == finding.id and partner.number == finding.number
            assert partner.laterality == finding.laterality and partner.view != finding.view
    first, second = report.finding("lesion_001"), report.finding("lesion_002")
    overlap = first.lesion_mask(SIZES["R-CC"]).full(SIZES["R-CC"]) & second.lesion_mask(SIZES["R-CC"]).full(
        SIZES["R-CC"]
    )
    assert overlap.any(), "the test data must hold overlapping findings"


def test_breast_image_puts_tissue_on_the_named_edge():
    image = breast_image((60, 40), chest_wall_right=True, seed=1)
    assert image[:, -1].mean() > 3 * image[:, 0].mean()
