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

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from support.synthetic import (
    PATIENT_ORIENTATION,
    breast_image as _breast_image,
    ellipse_findings,
    identity_transform,
    model_report,
    write_image,
)

from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
from MammoDNNLib.study import Study, View

# (rows, cols) per view and (row, col) spacing in mm.
SIZES = {"R-CC": (96, 72), "L-CC": (96, 74), "R-MLO": (110, 80), "L-MLO": (108, 80)}
SPACING = (0.5, 0.4)


def breast_image(shape: tuple[int, int], chest_wall_right: bool, seed: int, polarity: int = 1) -> np.ndarray:
    """A half-ellipse 'breast' attached to one edge, bright tissue on dark background (or inverted)."""
    image = _breast_image(
        shape, chest_wall_right, seed, extent=(0.75, 0.47), tissue=(600, 300), background=(40, 10)
    ).astype(np.float32)
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
    placements = [  # (id, centre (x, y), radii) of each of support.synthetic.ELLIPTICAL_LESIONS, in order
        ("lesion_001", (30.0, 40.0), (8.0, 6.0)),
        ("lesion_002", (36.0, 44.0), (5.0, 7.0)),
        ("lesion_003", (40.0, 50.0), (7.0, 9.0)),
        ("lesion_005", (50.0, 70.0), (6.0, 4.0)),
    ]
    # Quadrant probabilities and extra details (with a separator in a key) on the elliptical findings.
    findings = [
        replace(
            finding,
            quadrant_probabilities={
                finding.quadrant: 0.7,
                "middle" if finding.quadrant != "middle" else "inner": 0.3,
            },
            extra={"source": "test", "raw|score": [finding.score, 1.0]},
        )
        for finding in ellipse_findings(placements, SIZES)
    ]
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
            transform=identity_transform(v.size, flip_x=v.laterality == "R"),
        )
        for key, v in study.views.items()
    ]
    return model_report(
        views,
        make_findings(),
        breasts={"R": Summary(0.72, "4B", 3), "L": Summary(0.12, "3", 3, note="one view only? no")},
        exam=Summary(0.72, "4B", 6),
        timings={"detect": 1.5},
        warnings=["a warning | with a bar"],
        options={"tta": True},
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
    laterality, view = key.split("-")
    attributes = {"ImageLaterality": laterality, "ViewPosition": view} if identity else {}
    if orientation:
        attributes["PatientOrientation"] = PATIENT_ORIENTATION[key]
    return write_image(
        path,
        np.clip(pixels, 0, 4095).astype(np.uint16),
        study_uid="1.2.826.0.1.3680043.8.498.1",
        bits_stored=12,
        PatientID="SCENE-TEST",
        PatientName="Scene^Test",
        StudyDate="20240501",
        PresentationIntentType="FOR PRESENTATION",
        ImagerPixelSpacing=[float(spacing[0]), float(spacing[1])],
        **attributes,
    )


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
            transform=identity_transform(v.size, flip_x=v.chest_wall_side == "right"),
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
