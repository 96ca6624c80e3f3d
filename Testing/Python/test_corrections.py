"""The issue's scenario on a phantom, through the real MRML of slicer-core: analyze (a model report made from the
phantom's truth with known mistakes), review like an annotator (accept, reject a false positive, move an outline
back, correct a type, add the missed lesion, relink swapped CC/MLO pairs), save the scene as .mrb, reload it, and
export. The export must equal the edits exactly: masks pixel for pixel against the phantom's truth masks (an
independent reference), types, states, links, audit trails; COCO and the reviewed DICOM SEG/SR agree and round-trip;
``mammodnn train detector`` accepts the manifest. Also: partial reviews, re-export, anonymization.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import subprocess

import numpy as np
import pytest
from test_scene_support import headless, phantom_study, report_from_phantom

pytest.importorskip("slicer")

# report_from_phantom names findings in VIEW_KEYS order: R-CC R1 R2 R3, L-CC L1, R-MLO R1 R2 R3, L-MLO L1.
TRUTH_IDS = {
    ("R1", "R-CC"): "lesion_001", ("R2", "R-CC"): "lesion_002", ("R3", "R-CC"): "lesion_003",
    ("L1", "L-CC"): "lesion_004", ("R1", "R-MLO"): "lesion_005", ("R2", "R-MLO"): "lesion_006",
    ("R3", "R-MLO"): "lesion_007", ("L1", "L-MLO"): "lesion_008",
}  # fmt: skip
FINDING_TRUTH = {f: lesion for (lesion, key), f in TRUTH_IDS.items() if f != "lesion_008"} | {
    "manual_001": "L1"
}
SHIFT = (8, 5)  # the model's R2 outline on R-CC is off by (dx, dy) pixels


def clock():
    counter = itertools.count()

    def tick() -> str:
        n = next(counter)
        return f"2025-01-18T16:{n // 60:02d}:{n % 60:02d}Z"

    return tick


def disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from MammoDNNLib.phantom import write_study

    study = phantom_study(2)
    assert {(lesion.id, key) for lesion in study.truth.lesions for key in lesion.views} == set(TRUTH_IDS)
    folder = write_study(study, tmp_path_factory.mktemp("phantom") / "study")
    return study, folder


def truth_mask(phantom_study_, lesion_id: str, key: str) -> np.ndarray:
    info = phantom_study_.truth.views[key]
    shape = (info.size[1], info.size[0])
    return phantom_study_.truth.lesion(lesion_id).views[key].mask.full(shape)


def model_report(study):
    """The truth as a model would report it, with mistakes the annotator corrects."""
    from MammoDNNLib.findings import Finding
    from MammoDNNLib.geometry import LesionMask

    report = report_from_phantom(study)
    by_id = {f.id: f for f in report.findings}
    shape = (480, 360)
    # R2 on R-CC: outline shifted.
    r2 = by_id["lesion_002"]
    shifted = LesionMask(r2.mask.array, (r2.mask.origin[0] + SHIFT[0], r2.mask.origin[1] + SHIFT[1]))
    by_id["lesion_002"] = dataclasses.replace(r2, mask=shifted, box=shifted.box, outline=[])
    # R3 on R-CC reported as a mass.
    by_id["lesion_003"] = dataclasses.replace(by_id["lesion_003"], type="mass")
    # CC/MLO pairs swapped: R1 CC <-> R3 MLO, R3 CC <-> R1 MLO.
    for one, other in (("lesion_001", "lesion_007"), ("lesion_003", "lesion_005")):
        by_id[one] = dataclasses.replace(by_id[one], match_id=other, match_probability=0.6)
        by_id[other] = dataclasses.replace(by_id[other], match_id=one, match_probability=0.6)
    # L1 on L-MLO missed.
    del by_id["lesion_008"]
    by_id["lesion_004"] = dataclasses.replace(by_id["lesion_004"], match_id=None, match_probability=None)
    # A false positive on R-CC, away from every lesion.
    fp = LesionMask.from_full(disc(shape, (315.0, 420.0), 8.0))
    by_id["lesion_009"] = Finding(
        "lesion_009", "R-CC", "mass", 0.41, fp.box, number=4, mask=fp, malignancy=0.2
    )
    report.findings = list(by_id.values())
    return report


def paint(app, finding_id: str, mask: np.ndarray) -> None:
    """What the Segment Editor does to a segment (no MammoDNN code involved)."""
    from slicer import vtkSlicerSegmentationsModuleLogic

    from MammoDNNLib.geometry import LesionMask
    from MammoDNNLib.scene.results import find_results, labelmap_from_mask
    from MammoDNNLib.scene.volumes import volume_ijk_to_ras

    view = find_results(app.scene).view_of_finding(finding_id)
    labelmap = labelmap_from_mask(LesionMask.from_full(mask), mask.shape, volume_ijk_to_ras(view.volume))
    assert vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, view.segmentation, finding_id, vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )


def analyzed(study, folder):
    from MammoDNNLib.scene.logic import AnalysisLogic

    app = headless()
    report = model_report(study)
    logic = AnalysisLogic(app.scene, analysis_function=lambda s, **o: report)
    logic.analyze([folder / v.file for v in study.truth.views.values()])
    return app, report


def annotate(app, study, *, complete: bool = True):
    """The annotator's work. Returns the review session."""
    from MammoDNNLib.scene.review import ReviewSession

    review = ReviewSession(app.scene, annotator="reader B", clock=clock())
    review.accept("lesion_001")
    review.reject("lesion_009", note="skin fold")
    paint(app, "lesion_002", truth_mask(study, "R2", "R-CC"))  # move the outline back
    review.accept("lesion_002")
    review.set_type("lesion_003", "distortion")
    review.link("lesion_001", "lesion_005")  # relink the swapped pairs
    review.link("lesion_003", "lesion_007")
    added = review.add_lesion("L-MLO", "distortion", mask=truth_mask(study, "L1", "L-MLO"))
    review.link("lesion_004", added)
    if complete:
        for finding_id in ("lesion_004", "lesion_005", "lesion_006", "lesion_007", "lesion_003"):
            review.accept(finding_id)
    return review


def reloaded(app, tmp_path):
    path = tmp_path / "reviewed.mrb"
    assert app.scene.WriteToMRB(str(path))
    fresh = headless()
    assert fresh.scene.ReadFromMRB(str(path))
    return fresh


@pytest.fixture(scope="module")
def exported(phantom, tmp_path_factory):
    """Analyze, annotate, save .mrb, reload, export (once for the tests below)."""
    from MammoDNNLib.scene.corrections import export_corrections
    from MammoDNNLib.scene.review import ReviewSession

    study, folder = phantom
    tmp = tmp_path_factory.mktemp("review")
    app, report = analyzed(study, folder)
    annotate(app, study)
    fresh = reloaded(app, tmp)
    audits = {i.id: i.audit for i in ReviewSession(fresh.scene, record_baseline=False).items()}
    result = export_corrections(
        fresh.scene, tmp / "corrections", annotator="reader C", clock=lambda: "2025-01-19T09:00:00Z"
    )
    return study, report, result, audits


EXPECTED_STATES = {
    "lesion_001": "accepted", "lesion_002": "edited", "lesion_003": "edited", "lesion_004": "accepted",
    "lesion_005": "accepted", "lesion_006": "accepted", "lesion_007": "accepted", "manual_001": "edited",
}  # fmt: skip
EXPECTED_PAIRS = {"R1": "lesion_001+lesion_005", "R2": "lesion_002+lesion_006", "R3": "lesion_003+lesion_007",
                  "L1": "lesion_004+manual_001"}  # fmt: skip


def test_manifest_equals_the_edits(exported):
    from MammoDNNLib.data.dataset import read_mask_file
    from MammoDNNLib.data.manifest import load_manifest

    study, report, result, audits = exported
    manifest = load_manifest(result.manifest, check_files=True)
    assert [s.id for s in manifest.studies] == [result.study_id]
    entry = manifest.studies[0]
    assert entry.source == "corrections" and entry.split == "train" and entry.labelled and result.complete
    seen = set()
    for lesion_truth in study.truth.lesions:
        for key in lesion_truth.views:
            view = entry.views[key]
            info = study.truth.views[key]
            assert view.image.name == info.file and view.spacing is None and view.size == tuple(info.size)
            finding_id = (
                TRUTH_IDS[(lesion_truth.id, key)]
                if (lesion_truth.id, key) != ("L1", "L-MLO")
                else "manual_001"
            )
            lesion = next(x for x in view.lesions if x.extra["finding_id"] == finding_id)
            seen.add(finding_id)
            assert lesion.id == EXPECTED_PAIRS[lesion_truth.id], finding_id
            assert lesion.type == lesion_truth.type
            expected = truth_mask(study, lesion_truth.id, key)
            np.testing.assert_array_equal(
                read_mask_file(lesion.mask, info.size, lesion.mask_origin), expected, err_msg=finding_id
            )
            rows, cols = np.nonzero(expected)
            assert lesion.box == (cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0)
            assert lesion.outline is not None and len(lesion.outline) >= 3
            review = lesion.extra["review"]
            assert review["state"] == EXPECTED_STATES[finding_id] and review["confirmed"] is True
            assert review["origin"] == ("annotator" if finding_id == "manual_001" else "model")
            assert [c.to_dict() for c in lesion.provenance] == [e.to_dict() for e in audits[finding_id]]
    assert seen == set(EXPECTED_STATES)
    assert sum(len(v.lesions) for v in entry.views.values()) == len(
        EXPECTED_STATES
    )  # the false positive is out

    # The model's values are kept for the record; the redrawn outline's original too.
    r2 = next(x for x in entry.views["R-CC"].lesions if x.extra["finding_id"] == "lesion_002")
    model_r2 = report.finding("lesion_002")
    assert r2.extra["model"]["box"] == list(model_r2.box)
    assert r2.extra["model"]["outline"] == [list(p) for p in model_r2.outline]
    r3 = next(x for x in entry.views["R-CC"].lesions if x.extra["finding_id"] == "lesion_003")
    assert r3.extra["model"]["type"] == "mass" and r3.type == "distortion"

    # Audit trails: what was done, by whom, when (the clock ticks once per entry, in the order of the edits).
    assert [e.to_dict() for e in audits["lesion_002"]] == [
        {"who": "reader B", "when": "2025-01-18T16:00:03Z", "what": "outline edited",
         "before": {"box": list(model_r2.box), "area": int(model_r2.mask.area), "state": "unreviewed"}},
    ]  # fmt: skip
    assert [e.what for e in audits["lesion_005"]] == ["unlinked from lesion_003", "linked with lesion_001 (R-CC)",
                                                      "accepted"]  # fmt: skip
    assert [e.what for e in audits["manual_001"]] == [
        "added missed lesion (distortion)",
        "linked with lesion_004 (L-CC)",
    ]
    assert [e.what for e in audits["lesion_003"]] == [
        "type: mass -> distortion",
        "unlinked from lesion_005",
        "linked with lesion_007 (R-MLO)",
    ]

    # The rejected false positive: a study-level change and a full record.
    assert [c.to_dict() for c in entry.provenance] == [{
        "who": "reader B", "when": "2025-01-18T16:00:01Z",
        "what": "rejected R-CC finding lesion_009 (mass, score 0.41): skin fold",
        "before": {"finding_id": "lesion_009", "view": "R-CC", "type": "mass",
                   "box": list(report.finding("lesion_009").box), "score": 0.41},
    }]  # fmt: skip
    record = entry.metadata["review"]
    assert [r["finding_id"] for r in record["rejected"]] == ["lesion_009"]
    assert (
        record["rejected"][0]["note"] == "skin fold"
        and record["rejected"][0]["audit"][0]["what"] == "rejected"
    )
    assert record["states"] == {"unreviewed": 0, "accepted": 5, "rejected": 1, "edited": 3}
    assert record["annotators"] == ["reader B"] and record["exported_by"] == "reader C"
    assert (
        entry.patient_id.startswith("patient-") and study.truth.patient_id not in result.manifest.read_text()
    )


def test_coco_export_matches_the_manifest(exported):
    from MammoDNNLib.vocabulary import class_index

    study, _report, result, _audits = exported
    coco = json.loads(result.coco.read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == len(EXPECTED_STATES)
    images = {i["id"]: i for i in coco["images"]}
    by_finding = {}
    for annotation in coco["annotations"]:
        image = images[annotation["image_id"]]
        assert (result.coco.parent / image["file_name"]).is_file()
        by_finding[(image["mammodnn"]["view"], annotation["mammodnn"]["lesion_id"])] = annotation
    for lesion_id, key in TRUTH_IDS:
        truth = study.truth.lesion(lesion_id)
        annotation = by_finding[(key, EXPECTED_PAIRS[lesion_id])]
        mask = truth_mask(study, lesion_id, key)
        rows, cols = np.nonzero(mask)
        assert annotation["bbox"] == [
            cols.min(),
            rows.min(),
            cols.max() + 1 - cols.min(),
            rows.max() + 1 - rows.min(),
        ]
        assert annotation["category_id"] == class_index(truth.type)
        assert len(annotation["segmentation"][0]) >= 6


def test_reviewed_dicom_seg_and_sr_round_trip(exported):
    from MammoDNNLib.export.dicom_seg import read_segmentation
    from MammoDNNLib.export.dicom_sr import read_report_sr

    study, _report, result, _audits = exported
    files = {p.name: p for p in result.dicom.all_files()}
    assert set(files) == {"R-CC.seg.dcm", "L-CC.seg.dcm", "R-MLO.seg.dcm", "L-MLO.seg.dcm", "findings.sr.dcm"}
    expected_algorithm = {"accepted": "AUTOMATIC", "edited": "SEMIAUTOMATIC"}
    for key in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
        segments = {s.finding_id: s for s in read_segmentation(files[f"{key}.seg.dcm"])}
        wanted = {f for (lesion, k), f in TRUTH_IDS.items() if k == key and f != "lesion_008"}
        if key == "L-MLO":
            wanted.add("manual_001")
        assert set(segments) == wanted  # the rejected false positive is not in the SEG
        for finding_id, segment in segments.items():
            lesion_id = FINDING_TRUTH[finding_id]
            np.testing.assert_array_equal(segment.mask, truth_mask(study, lesion_id, key), err_msg=finding_id)
            assert segment.type_key == study.truth.lesion(lesion_id).type
            if finding_id == "manual_001":
                assert segment.algorithm_type == "MANUAL" and not segment.has_algorithm
                assert segment.description == "added by an annotator"
            else:
                assert segment.algorithm_type == expected_algorithm[EXPECTED_STATES[finding_id]]
                assert segment.has_algorithm
    sr = read_report_sr(files["findings.sr.dcm"])
    assert sr.complete and sr.person_observers == ["reader C"]
    assert sr.review_statuses() == {f: ("added" if f == "manual_001" else s) for f, s in EXPECTED_STATES.items()}
    assert sr.observer_types() == {f: ("person" if f == "manual_001" else "device") for f in EXPECTED_STATES}
    pairs = sr.matches()
    for pair in EXPECTED_PAIRS.values():
        cc, mlo = pair.split("+")
        assert pairs[cc] == mlo and pairs[mlo] == cc
    types = {f.finding_id: f.type_key for f in sr.findings}
    assert types["lesion_003"] == "distortion" and "lesion_009" not in types
    manual = next(f for f in sr.findings if f.finding_id == "manual_001")
    assert manual.score is None and manual.malignancy is None  # no model measurements for a human finding
    # A finding was rejected in the right breast and one added in the left: the model's breast and exam
    # assessments no longer describe the reviewed findings and are left out.
    assert sr.breasts == {} and sr.exam is None
    if shutil.which("dciodvfy"):
        for path in files.values():
            output = subprocess.run(
                ["dciodvfy", str(path)], check=False, capture_output=True, text=True
            ).stderr
            errors = [line for line in output.splitlines() if line.startswith("Error")]
            assert not errors, (path.name, errors)


def test_train_detector_accepts_the_export(exported, tmp_path, capsys):
    from MammoDNNLib.cli import main

    pytest.importorskip("torch")
    _study, _report, result, _audits = exported
    out = tmp_path / "model"
    code = main(["train", "detector", "--data", str(result.manifest), "--out", str(out), "--config",
                 "detector-tiny-test", "--max-iterations", "2", "--threads", "1", "--quiet", "--json"])  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training_data"]["studies"] == 1 and manifest["training_data"]["labelled_studies"] == 1


def test_a_partial_review_is_exported_unlabelled_and_replaced_when_complete(phantom, tmp_path):
    from MammoDNNLib.data.manifest import load_manifest
    from MammoDNNLib.scene.corrections import export_corrections
    from MammoDNNLib.scene.results import find_results
    from MammoDNNLib.scene.review import ReviewSession

    study, folder = phantom
    app, _report = analyzed(study, folder)
    annotate(app, study, complete=False)
    out = tmp_path / "corrections"
    first = export_corrections(app.scene, out, annotator="reader B", dicom=False)
    entry = load_manifest(first.manifest).studies[0]
    assert not entry.labelled and first.unreviewed == 4 and not first.complete
    lesions = {x.extra["finding_id"]: x for _, x in entry.lesions}
    assert set(lesions) == set(EXPECTED_STATES)  # nothing lost: unreviewed findings are there, marked
    unconfirmed = {f for f, x in lesions.items() if not x.extra["review"]["confirmed"]}
    assert unconfirmed == {"lesion_004", "lesion_005", "lesion_006", "lesion_007"}
    assert all(lesions[f].extra["review"]["state"] == "unreviewed" for f in unconfirmed)
    assert json.loads(first.coco.read_text())["annotations"] == []  # unlabelled studies teach no detector
    assert any("not reviewed yet" in note for note in first.notes)

    review = ReviewSession(app.scene, annotator="reader B")
    for finding_id in sorted(unconfirmed) + ["lesion_003"]:
        review.accept(finding_id)
    # Someone deletes a finding's segment outright in the Segment Editor: noted, left out like a rejection.
    find_results(app.scene).view_of_finding("lesion_006").segmentation.GetSegmentation().RemoveSegment(
        "lesion_006"
    )
    second = export_corrections(app.scene, out, annotator="reader B", dicom=False)
    manifest = load_manifest(second.manifest)
    assert [s.id for s in manifest.studies] == [first.study_id] and manifest.studies[0].labelled
    assert manifest.studies[0].metadata["review"]["deleted"] == ["lesion_006"]
    assert any("lesion_006 was removed" in note for note in second.notes)
    assert len(json.loads(second.coco.read_text())["annotations"]) == len(EXPECTED_STATES) - 1


def test_anonymized_dicom_holds_no_patient_identifiers(phantom, tmp_path):
    import pydicom

    from MammoDNNLib.scene.corrections import export_corrections

    study, folder = phantom
    app, _report = analyzed(study, folder)
    annotate(app, study)
    result = export_corrections(
        app.scene, tmp_path / "anon", annotator="reader B", anonymize=True, coco=False
    )
    source = pydicom.dcmread(folder / "R-CC.dcm", stop_before_pixels=True)
    for path in result.dicom.all_files():
        dataset = pydicom.dcmread(path)
        assert str(dataset.PatientName) == "Anonymous^Patient" and dataset.PatientID == "ANONYMOUS"
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.StudyInstanceUID != source.StudyInstanceUID
        assert str(source.PatientID) not in path.read_bytes().decode("latin-1")


def test_a_reviewed_report_json_gives_the_same_reviewed_dicom(phantom, tmp_path):
    """Without Slicer: the reviewed report saved as JSON (report_from_scene) exports the same review."""
    from MammoDNNLib.export import export_dicom
    from MammoDNNLib.export.common import read_dicom_header
    from MammoDNNLib.export.dicom_seg import read_segmentation
    from MammoDNNLib.export.dicom_sr import read_report_sr
    from MammoDNNLib.findings import Report
    from MammoDNNLib.scene.results import report_from_scene

    study, folder = phantom
    app, _report = analyzed(study, folder)
    annotate(app, study)
    path = report_from_scene(app.scene).save(tmp_path / "reviewed-report.json")
    headers = {key: read_dicom_header(folder / info.file) for key, info in study.truth.views.items()}
    result = export_dicom(Report.load(path), tmp_path / "dicom", headers, annotator="reader B")
    sr = read_report_sr(tmp_path / "dicom" / "findings.sr.dcm")
    assert sr.review_statuses() == {f: ("added" if f == "manual_001" else s) for f, s in EXPECTED_STATES.items()}
    segments = {s.finding_id: s for s in read_segmentation(tmp_path / "dicom" / "L-MLO.seg.dcm")}
    assert segments["manual_001"].algorithm_type == "MANUAL"
    # JSON carries outlines, not masks: the SEG is the rasterized outline, the truth up to the traced border.
    truth = truth_mask(study, "L1", "L-MLO")
    overlap = (segments["manual_001"].mask & truth).sum() / truth.sum()
    assert overlap > 0.9 and len(result.all_files()) == 5


def test_mammodnn_export_makes_the_reviewed_dicom_from_the_saved_report(exported, tmp_path, capsys):
    """``mammodnn export`` on the reviewed report the corrections export saved: the same reviewed SEG/SR as the
    export itself, naming the annotator of the report's audit by default, or the one given."""
    import pydicom

    from MammoDNNLib.cli import main
    from MammoDNNLib.export.dicom_seg import read_segmentation
    from MammoDNNLib.export.dicom_sr import read_report_sr
    from MammoDNNLib.findings import Report

    _study, _report, result, audits = exported
    assert result.report == result.out_dir / "reports" / f"{result.study_id}.json"
    saved = Report.load(result.report)
    assert saved.finding("lesion_005").extra["review"]["audit"] == [e.to_dict() for e in audits["lesion_005"]]
    dicom = {p.name: p for p in result.dicom.all_files()}

    out = tmp_path / "default"
    assert main(["export", str(result.report), "--out", str(out), "--what", "dicom-seg,dicom-sr", "--quiet"]) == 0
    sr = read_report_sr(out / "findings.sr.dcm")
    assert sr.person_observers == ["reader B"]  # who made the audit's latest change
    assert sr.review_statuses() == read_report_sr(dicom["findings.sr.dcm"]).review_statuses()

    out = tmp_path / "given"
    code = main(["export", str(result.report), "--out", str(out), "--what", "dicom-seg,dicom-sr",
                 "--annotator", "reader C", "--quiet"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(dicom)
    for name, path in dicom.items():
        again, first = pydicom.dcmread(out / name), pydicom.dcmread(path)
        assert again.SOPInstanceUID == first.SOPInstanceUID and again.SeriesNumber == first.SeriesNumber
        if name.endswith(".seg.dcm"):
            for a, b in zip(read_segmentation(out / name), read_segmentation(path), strict=True):
                assert (a.finding_id, a.algorithm_type, a.description) == (b.finding_id, b.algorithm_type,
                                                                            b.description)  # fmt: skip
                np.testing.assert_array_equal(a.mask, b.mask)
    assert read_report_sr(out / "findings.sr.dcm").person_observers == ["reader C"]

    # A reviewed report that does not say who reviewed it needs --annotator.
    unnamed = dataclasses.replace(
        saved,
        findings=[
            dataclasses.replace(
                f,
                extra={
                    **{k: v for k, v in f.extra.items() if k != "added_by"},
                    "review": {k: v for k, v in (f.extra.get("review") or {}).items() if k != "audit"},
                },
            )
            for f in saved.findings
        ],
    )
    path = unnamed.save(tmp_path / "unnamed.json")
    capsys.readouterr()
    assert main(["export", str(path), "--out", str(tmp_path / "unnamed"), "--what", "dicom-sr"]) == 1
    assert "--annotator" in capsys.readouterr().err
