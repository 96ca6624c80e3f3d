"""DICOM SEG and SR: round trips through highdicom's readers, dciodvfy, anonymization, inputs, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_export_support import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, SIZES, STUDY_DATE, make_study
from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.errors import InputError
from MammoDNNLib.export import export_all
from MammoDNNLib.export.common import sha256_of
from MammoDNNLib.export.dicom_seg import read_segmentation
from MammoDNNLib.export.dicom_sr import read_report_sr
from MammoDNNLib.export.report_schema import report_errors

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:highdicom.*")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("dicom") / "in")


@pytest.fixture(scope="module")
def exported(study, tmp_path_factory):
    before = {p.name: sha256_of(p) for p in study.folder.iterdir()}
    out = tmp_path_factory.mktemp("dicom_out")
    result = export_all(study.report, out, report_path=study.report_path)
    after = {p.name: sha256_of(p) for p in study.folder.iterdir()}
    return result, out, before, after


def test_inputs_are_untouched(exported) -> None:
    _, _, before, after = exported
    assert before == after


def test_seg_round_trip_gives_the_masks(study, exported) -> None:
    import pydicom

    result, out, _, _ = exported
    assert sorted(p.name for p in result.files["dicom-seg"]) == [
        "L-MLO.seg.dcm",
        "R-CC.seg.dcm",
        "R-MLO.seg.dcm",
    ]
    assert "dicom-seg L-CC" in result.skipped  # no findings there
    tracking = {}
    for key in ("R-CC", "R-MLO", "L-MLO"):
        source = pydicom.dcmread(study.files[key], stop_before_pixels=True)
        records = read_segmentation(out / f"{key}.seg.dcm", str(source.SOPInstanceUID))
        findings = sorted(study.report.findings_in(key), key=lambda f: (f.number, f.id))
        assert [r.finding_id for r in records] == [f.id for f in findings]
        for record, finding in zip(records, findings, strict=True):
            assert record.type_key == finding.type
            assert record.laterality == finding.laterality
            np.testing.assert_array_equal(record.mask, finding.mask.full(SIZES[key]))
            tracking[finding.id] = record.tracking_uid
        segmentation = pydicom.dcmread(out / f"{key}.seg.dcm")
        assert (
            str(segmentation.PatientName) == PATIENT_NAME
        )  # identifiers copied from the source, as DICOM requires
        assert segmentation.StudyInstanceUID == source.StudyInstanceUID
        assert list(segmentation.PatientOrientation) == list(source.PatientOrientation)
        algorithm = segmentation.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "MammoDNN"
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
    assert tracking["lesion_001"] == tracking["lesion_003"]  # the matched CC/MLO pair is one lesion
    assert len({tracking["lesion_001"], tracking["lesion_002"], tracking["lesion_004"]}) == 3


def test_sr_round_trip_gives_the_findings(study, exported) -> None:
    import pydicom

    _, out, _, _ = exported
    content = read_report_sr(out / "findings.sr.dcm")
    by_id = {f.finding_id: f for f in content.findings}
    assert sorted(by_id) == sorted(f.id for f in study.report.findings)
    sop_uids = {
        k: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for k, p in study.files.items()
    }
    for finding in study.report.findings:
        got = by_id[finding.id]
        assert got.view_key == finding.view_key
        assert got.type_key == finding.type
        assert got.laterality == finding.laterality
        assert got.source_sop_instance_uid == sop_uids[finding.view_key]
        assert got.score == pytest.approx(finding.score)
        assert got.malignancy == pytest.approx(finding.malignancy)
        assert got.depth == pytest.approx(finding.depth)
        assert got.birads == finding.birads
        assert got.quadrant == finding.quadrant
        assert (got.match_probability is None) == (finding.match_probability is None)
        closed = np.vstack([np.asarray(finding.outline), np.asarray(finding.outline)[:1]])
        np.testing.assert_allclose(got.outline, closed, atol=1e-4)
    assert by_id["lesion_004"].depth_third == "posterior"  # depth 0.8
    assert content.matches() == {"lesion_001": "lesion_003", "lesion_003": "lesion_001"}
    assert content.exam.birads == "4B" and content.exam.score == pytest.approx(0.72)
    assert content.breasts["L"].birads == "3"


def _dciodvfy(path: Path) -> list[str]:
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    completed = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    return (completed.stdout + completed.stderr).splitlines()


def test_dciodvfy_finds_no_errors(exported) -> None:
    result, _, _, _ = exported
    for path in result.files["dicom-seg"] + result.files["dicom-sr"]:
        lines = _dciodvfy(path)
        errors = [line for line in lines if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"
        # The only warnings allowed are the private coding scheme, which dciodvfy cannot know.
        warnings = [line for line in lines if line.startswith("Warning") and "99MAMMODNN" not in line]
        assert not warnings, f"{path.name}: {warnings}"


def _all_strings(dataset) -> list[str]:
    values = []
    for element in dataset.iterall():
        if element.VR in ("SQ", "OB", "OW", "OF", "UN"):
            continue
        values.append(str(element.value))
    return values


def test_anonymized_outputs_hold_no_identifier(study, tmp_path: Path, capsys) -> None:
    import pydicom

    out = tmp_path / "anon"
    code = cli_main(["export", str(study.report_path), "--out", str(out), "--anonymize", "--json"])
    assert code == 0
    written = json.loads(capsys.readouterr().out)
    files = [Path(p) for paths in written["files"].values() for p in paths]
    assert {p.name for p in files} >= {
        "report.json",
        "findings.sr.dcm",
        "R-CC.seg.dcm",
        "R-CC.seg.nrrd",
        "R-CC.mrk.json",
        "R-CC.overlay.png",
        "overview.png",
    }
    source_uids = []
    for path in study.files.values():
        header = pydicom.dcmread(path, stop_before_pixels=True)
        source_uids += [
            str(header.SOPInstanceUID),
            str(header.StudyInstanceUID),
            str(header.SeriesInstanceUID),
        ]
    forbidden = [
        PATIENT_NAME,
        "Doe",
        PATIENT_ID,
        STUDY_DATE,
        BIRTH_DATE,
        "ACC998877",
        "Test Hospital",
        "Who^Doctor",
        *source_uids,
    ]
    for path in files:
        raw = path.read_bytes()
        for text in forbidden:
            assert text.encode() not in raw, f"{path.name} holds {text!r}"
        if path.suffix == ".dcm":
            dataset = pydicom.dcmread(path)
            strings = " ".join(_all_strings(dataset))
            for text in forbidden:
                assert text not in strings, f"{path.name} holds {text!r}"
            assert dataset.PatientIdentityRemoved == "YES"
            assert str(dataset.PatientName) == "Anonymous^Patient"
            assert not [line for line in _dciodvfy(path) if line.startswith("Error")]
    report = json.loads((out / "report.json").read_text())
    assert report_errors(report) == []
    assert [v["file"] for v in report["views"]] == [f"{k}.dcm" for k in SIZES]


def test_anonymized_seg_still_references_its_anonymized_source(study, tmp_path: Path) -> None:
    import pydicom

    from MammoDNNLib.export.anonymize import anonymized_uid

    export_all(study.report, tmp_path, what=("dicom-seg",), report_path=study.report_path, anonymize=True)
    segmentation = pydicom.dcmread(tmp_path / "R-CC.seg.dcm")
    source = pydicom.dcmread(study.files["R-CC"], stop_before_pixels=True)
    referenced = (
        segmentation.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    )
    assert referenced == anonymized_uid(str(source.SOPInstanceUID))


def test_explicit_dicom_outputs_need_dicom_sources(study, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    report_path = moved / "report.json"
    shutil.copy(study.report_path, report_path)
    with pytest.raises(InputError, match="PID-4711-XYZ_R-CC.dcm.*DICOM source"):
        export_all(study.report, tmp_path / "out", what=("dicom-seg",), report_path=report_path)
    # Without an explicit list, what can be made is made and the rest is skipped with a reason.
    result = export_all(study.report, tmp_path / "auto", report_path=report_path)
    assert {"seg-nrrd", "markups"} <= set(result.files)
    assert "overlay" not in result.files and "dicom-sr" not in result.files
    assert "not found" in result.skipped["dicom-sr R-CC"]
    # --sources finds them by name.
    found = export_all(
        study.report,
        tmp_path / "found",
        what=("dicom-sr",),
        report_path=report_path,
        search_dirs=[study.folder],
    )
    assert found.files["dicom-sr"][0].is_file()


def test_non_dicom_source_is_refused_for_dicom_seg(study, tmp_path: Path) -> None:
    from dataclasses import replace

    from PIL import Image

    png = tmp_path / "R-CC.png"
    Image.fromarray(np.zeros((SIZES["R-CC"]), np.uint8)).save(png)
    views = [
        replace(v, file=str(png)) if v.key == "R-CC" else replace(v, file=str(study.files[v.key]))
        for v in study.report.views
    ]
    report = replace(study.report, views=views)
    with pytest.raises(InputError, match="R-CC.png.*not a DICOM file"):
        export_all(report, tmp_path / "out", what=("dicom-seg",))


def test_a_source_of_another_size_is_refused(study, tmp_path: Path) -> None:
    from dataclasses import replace

    views = [
        replace(v, size=(v.size[0] + 1, v.size[1])) if v.key == "L-CC" else v for v in study.report.views
    ]
    report = replace(study.report, views=views)
    with pytest.raises(
        InputError, match=r"PID-4711-XYZ_L-CC.dcm: image is 118x150 but the report's L-CC view is 119x150"
    ):
        export_all(report, tmp_path / "out", what=("seg-nrrd",), report_path=study.report_path)


def test_cli_reports_a_missing_report(tmp_path: Path, capsys) -> None:
    code = cli_main(["export", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "nope.json: no such file" in capsys.readouterr().err


def test_sources_without_orientation_or_imager_spacing(study, tmp_path: Path) -> None:
    """Like CBIS-DDSM and digitized films: no Patient Orientation, no Imager Pixel Spacing."""
    import pydicom

    folder = tmp_path / "in"
    shutil.copytree(study.folder, folder)
    path = folder / study.files["R-CC"].name
    dataset = pydicom.dcmread(path)
    del dataset.PatientOrientation
    del dataset.ImagerPixelSpacing
    dataset.save_as(path)
    result = export_all(
        study.report,
        tmp_path / "out",
        what=("dicom-seg", "dicom-sr", "seg-nrrd"),
        report_path=folder / "report.json",
    )
    segmentation = pydicom.dcmread(tmp_path / "out" / "R-CC.seg.dcm")
    assert "PatientOrientation" in segmentation and segmentation.PatientOrientation in (None, "", [])
    for output in result.files["dicom-seg"] + result.files["dicom-sr"]:
        assert not [line for line in _dciodvfy(output) if line.startswith("Error")], output.name
    content = read_report_sr(tmp_path / "out" / "findings.sr.dcm")
    assert sorted(f.finding_id for f in content.findings) == sorted(f.id for f in study.report.findings)


def test_sources_without_type2_patient_and_study_attributes(study, tmp_path: Path) -> None:
    """Type-2 attributes the SEG and SR copy (birth date, sex, accession number, ...) may be missing in a source;
    the outputs then have them empty, as DICOM requires, and the source files stay untouched."""
    import pydicom

    folder = tmp_path / "in"
    shutil.copytree(study.folder, folder)
    dropped = ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID")
    for path in folder.glob("*.dcm"):
        dataset = pydicom.dcmread(path)
        for keyword in dropped:
            if keyword in dataset:
                delattr(dataset, keyword)
        dataset.save_as(path)
    before = {p.name: sha256_of(p) for p in folder.iterdir()}
    result = export_all(
        study.report, tmp_path / "out", what=("dicom-seg", "dicom-sr"), report_path=folder / "report.json"
    )
    assert {p.name: sha256_of(p) for p in folder.iterdir()} == before
    for output in result.files["dicom-seg"] + result.files["dicom-sr"]:
        dataset = pydicom.dcmread(output)
        assert all(keyword in dataset and not dataset.get(keyword) for keyword in dropped), output.name
        assert not [line for line in _dciodvfy(output) if line.startswith("Error")], output.name


@pytest.mark.slow
def test_real_cbis_ddsm_case(mammogram_cases, tmp_path: Path) -> None:
    """A real four-view case (RLE Secondary Capture, no spacing): SEG and SR round trip and pass dciodvfy."""
    import pydicom

    from support.synthetic import ellipse_mask
    from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
    from MammoDNNLib.geometry import LesionMask

    keys = {"rcc": "R-CC", "lcc": "L-CC", "rmlo": "R-MLO", "lmlo": "L-MLO"}
    case = mammogram_cases[0]
    views, findings = [], []
    for name, path in case.items():
        key = keys[name]
        header = pydicom.dcmread(path, stop_before_pixels=True)
        rows, cols = int(header.Rows), int(header.Columns)
        views.append(
            ViewInfo(
                key,
                str(path),
                key[0],
                key[2:],
                (cols, rows),
                (0.05, 0.05),
                sop_instance_uid=str(header.SOPInstanceUID),
            )
        )
        mask = LesionMask.from_full(ellipse_mask((rows, cols), (cols * 0.5, rows * 0.45), (60.0, 45.0)))
        findings.append(
            Finding(
                f"lesion_{len(findings) + 1:03d}",
                key,
                "mass",
                0.8,
                mask.box,
                number=1,
                mask=mask,
                malignancy=0.4,
                birads="4A",
                quadrant="middle",
                depth=0.5,
            )
        )
    report = Report(
        ModelInfo("m", "1", "0" * 64),
        views,
        findings,
        {"R": Summary(0.4, "4A", 2)},
        Summary(0.4, "4A", 4),
        created="2024-01-01T00:00:00",
    )
    result = export_all(report, tmp_path, what=("dicom-seg", "dicom-sr"))
    for output in result.files["dicom-seg"] + result.files["dicom-sr"]:
        assert not [line for line in _dciodvfy(output) if line.startswith("Error")], output.name
    rcc = next(f for f in findings if f.view_key == "R-CC")
    records = read_segmentation(tmp_path / "R-CC.seg.dcm")
    np.testing.assert_array_equal(records[0].mask, rcc.mask.full(records[0].mask.shape))
    assert {f.finding_id for f in read_report_sr(tmp_path / "findings.sr.dcm").findings} == {
        f.id for f in findings
    }
