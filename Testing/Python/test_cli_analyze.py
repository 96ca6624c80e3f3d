"""``mammodnn analyze`` and ``mammodnn demo``: the files they write (report.json valid against its schema,
Slicer
segmentations and markups that slicerio and Slicer's markups schema accept, overlays), the progress protocol
the
Slicer module's worker reads, the output-folder rules, header-less and real inputs, and the worker end to end.

The mechanics run with a system whose detector has random weights (a real registry model: its findings are
noise,
which is all these tests need); the shipped system's accuracy is tested in test_pipeline_e2e.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from test_pipeline_support import TEST_COLLECTION, phantom, untrained_system, write_phantom_dicoms

from MammoDNNLib.cli import main
from MammoDNNLib.phantom import study_seed

VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def analyze_json(*arguments, out: Path, system: Path) -> dict:
    """``mammodnn analyze ARGUMENTS --out OUT --model SYSTEM --no-tta --json --quiet``: asserts it succeeds
    and returns the summary it prints last."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(
            [
                "analyze",
                *map(str, arguments),
                *("--out", str(out), "--model", str(system), "--no-tta", "--json", "--quiet"),
            ]
        )
    assert code == 0
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Path:
    return untrained_system(tmp_path_factory.mktemp("system"))


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    write_phantom_dicoms(phantom(study_seed(TEST_COLLECTION, 1)), folder)
    return folder


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, system, study_dir):
    """One run of the command with --json; (output folder, printed summary)."""
    out = tmp_path_factory.mktemp("run") / "out"
    return out, analyze_json(study_dir, out=out, system=system)


def test_analyze_writes_the_report_and_the_slicer_files(analyzed):
    from MammoDNNLib.export.report_schema import validate_report_dict
    from MammoDNNLib.findings import Report

    out, printed = analyzed
    names = {p.name for p in out.iterdir()}
    expected = {"report.json", "overview.png", ".mammodnn-outputs.json"}
    expected |= {f"{k}{s}" for k in VIEWS for s in (".seg.nrrd", ".mrk.json", ".overlay.png")}
    assert names == expected
    data = json.loads((out / "report.json").read_text())
    validate_report_dict(data)
    report = Report.from_dict(data)
    assert report.model.name == "test-untrained"
    assert [f["id"] for f in printed["findings"]] == [f.id for f in report.findings]
    assert printed["exam"]["birads"] == report.exam.birads
    assert len(report.findings) == 12  # the cap (3 per view) at operating point 0
    record = json.loads((out / ".mammodnn-outputs.json").read_text())
    assert set(record["files"]) == expected - {".mammodnn-outputs.json"}


def test_segmentations_and_markups_load_and_validate(analyzed, shared_dir):
    import jsonschema
    import slicerio

    out, _ = analyzed
    from MammoDNNLib.findings import Report

    report = Report.load(out / "report.json")
    schema = json.loads((shared_dir / "reference" / "slicer" / "markups-schema-v1.0.3.json").read_text())
    for key in VIEWS:
        segmentation = slicerio.read_segmentation(str(out / f"{key}.seg.nrrd"))
        ids = [s["id"] for s in segmentation["segments"]]
        assert ids and sorted(ids) == sorted(f.id for f in report.findings_in(key))
        markups = json.loads((out / f"{key}.mrk.json").read_text())
        jsonschema.validate(markups, schema)
        rois = [m for m in markups["markups"] if m["type"] == "ROI"]
        assert len(rois) == len(report.findings_in(key))


def test_progress_json_speaks_the_worker_protocol(tmp_path, system, study_dir, capsys):
    from MammoDNNLib.progress import parse_line

    out = tmp_path / "out"
    assert (
        main(
            [
                "analyze",
                str(study_dir / "R-CC.dcm"),
                "--out",
                str(out),
                "--model",
                str(system),
                "--progress-json",
                "--no-tta",
                "--what",
                "report",
            ]
        )
        == 0
    )
    events = [e for e in (parse_line(line) for line in capsys.readouterr().out.splitlines()) if e is not None]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and events[-1].event == "done" and fractions[-1] == 1.0
    assert events[-1].outputs == {"report": str(out / "report.json")}
    assert sorted(p.name for p in out.iterdir()) == [".mammodnn-outputs.json", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert [v["key"] for v in report["views"]] == ["R-CC"]
    assert report["breasts"]["R"]["note"].startswith("R breast: MLO missing, matching not done")
    assert report["options"]["tta"] is False
    # A user error becomes an error event and exit status 1.
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "nothing.dcm"),
                "--out",
                str(tmp_path / "o2"),
                "--model",
                str(system),
                "--progress-json",
            ]
        )
        == 1
    )
    events = [e for e in map(parse_line, capsys.readouterr().out.splitlines()) if e is not None]
    assert (
        events[-1].event == "error"
        and events[-1].kind == "InputError"
        and "nothing.dcm" in events[-1].message
    )
    assert not (tmp_path / "o2").exists()


def test_the_output_folder_is_never_clobbered(tmp_path, system, study_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.json").write_text("{}")  # the user's, not ours
    args = [
        "analyze",
        str(study_dir / "L-CC.dcm"),
        "--out",
        str(out),
        "--model",
        str(system),
        "--no-tta",
        "--quiet",
    ]
    assert main(args + ["--what", "report,seg-nrrd"]) == 1
    assert "holds files this command did not write (notes.txt, report.json)" in capsys.readouterr().err
    assert (out / "report.json").read_text() == "{}"
    assert main(args + ["--what", "report,seg-nrrd", "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and json.loads((out / "report.json").read_text())[
        "findings"
    ]
    # A second run into a folder of its own outputs needs no --overwrite, and removes its own stale files.
    clean = tmp_path / "clean"
    assert main(args[:3] + [str(clean)] + args[4:] + ["--what", "report,seg-nrrd"]) == 0
    assert main(args[:3] + [str(clean)] + args[4:] + ["--what", "report"]) == 0
    assert sorted(p.name for p in clean.iterdir()) == [".mammodnn-outputs.json", "report.json"]
    # An edited output of ours counts as the user's.
    (clean / "report.json").write_text("edited")
    assert main(args[:3] + [str(clean)] + args[4:] + ["--what", "report"]) == 1
    capsys.readouterr()


def test_clear_errors_for_bad_options(tmp_path, system, study_dir, capsys):
    import torch

    base = ["analyze", str(study_dir / "L-CC.dcm"), "--out", str(tmp_path / "o"), "--model", str(system)]
    if not torch.cuda.is_available():
        assert main(base + ["--device", "cuda"]) == 1
        assert "sees no CUDA GPU; use --device cpu" in capsys.readouterr().err
    assert main(base + ["--what", "report,pdf"]) == 1
    assert "unknown output(s) pdf" in capsys.readouterr().err
    assert main(base[:-1] + [str(tmp_path / "no-such-model")]) == 1
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_headerless_image_with_spacing_laterality_and_view(tmp_path, system):
    """A PNG (the phantom's L-MLO pixels) described on the command line: one view, no matching, reported."""
    from PIL import Image

    view = phantom(study_seed(TEST_COLLECTION, 1)).study["L-MLO"]
    png = tmp_path / "film.png"
    Image.fromarray(view.pixels.astype(np.uint16)).save(png)
    out = tmp_path / "out"
    printed = analyze_json(
        png, "--spacing", "0.5", "--view", "MLO", "--laterality", "L", out=out, system=system
    )
    assert printed["views"] == ["L-MLO"]
    assert printed["breasts"]["L"]["complete"] is False and "CC missing" in printed["breasts"]["L"]["note"]
    assert any("CC missing, matching not done" in w for w in printed["warnings"])
    report = json.loads((out / "report.json").read_text())
    assert report["views"][0]["spacing"] == [0.5, 0.5] and report["views"][0]["provenance"][
        "spacing"
    ].startswith("caller")
    assert {p.name for p in out.iterdir()} >= {"L-MLO.seg.nrrd", "L-MLO.mrk.json", "L-MLO.overlay.png"}


@pytest.mark.slow
def test_slicer_worker_runs_the_real_command(tmp_path, system, study_dir):
    """The Slicer module's worker path with the real CLI: AnalysisProcess(analysis_command(...)), the progress
    protocol polled, read_analysis_output, and the results shown in a headless MRML scene exactly."""
    pytest.importorskip("slicer")
    from MammoDNNLib.io import load_study
    from MammoDNNLib.progress import AnalysisProcess
    from MammoDNNLib.scene.headless import create_headless_slicer
    from MammoDNNLib.scene.logic import (
        AnalysisLogic,
        analysis_command,
        read_analysis_output,
        worker_environment,
    )
    from MammoDNNLib.scene.results import segment_mask

    files = sorted(study_dir.glob("*.dcm"))
    out = tmp_path / "worker"
    command = analysis_command(files, out, model=system, device="cpu", tta=False)
    env = worker_environment()
    env["OMP_NUM_THREADS"] = "1"
    process = AnalysisProcess(command, env=env).start()
    status = process.wait(timeout=600)
    assert status.succeeded, process.output_tail
    assert status.fraction == 1.0 and status.done.outputs == {"report": str(out / "report.json")}
    report = read_analysis_output(out)
    assert report.findings and all(f.mask is not None for f in report.findings)
    app = create_headless_slicer()
    logic = AnalysisLogic(app.scene)
    volumes = logic.add_study(load_study(files))
    result = logic.load_results(out, volumes)
    for finding in report.findings:
        view = result.nodes.views[finding.view_key]
        shape = tuple(int(v) for v in reversed(report.view(finding.view_key).size))
        np.testing.assert_array_equal(
            segment_mask(view.segmentation, finding.id, view.volume), finding.mask.full(shape)
        )


@pytest.mark.slow
def test_mini_mias_film(tmp_path, mias_dir, system):
    out = tmp_path / "mias"
    film = mias_dir / "png" / "mdb002.png"
    printed = analyze_json(
        film, "--spacing", "0.2", "--view", "MLO", "--laterality", "L", out=out, system=system
    )
    assert (
        printed["views"] == ["L-MLO"] and "CC missing, matching not done" in printed["breasts"]["L"]["note"]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["views"][0]["size"] == [1024, 1024] and report["views"][0]["spacing"] == [0.2, 0.2]


@pytest.mark.slow
def test_cbis_ddsm_case_four_views(tmp_path, mammogram_cases, system):
    case = mammogram_cases[0]
    out = tmp_path / "cbis"
    printed = analyze_json(
        *case.values(), "--spacing", "0.05", "--what", "report,seg-nrrd", out=out, system=system
    )
    assert printed["views"] == list(VIEWS)
    assert printed["exam"]["complete"] is True and all(b["complete"] for b in printed["breasts"].values())
    report = json.loads((out / "report.json").read_text())
    for view in report["views"]:
        assert view["spacing"] == [0.05, 0.05] and view["size"][0] > 2000
    for finding in report["findings"]:  # boxes in the original 0.05 mm grid of their view
        size = next(v["size"] for v in report["views"] if v["key"] == finding["view_key"])
        x0, y0, x1, y1 = finding["box"]
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def test_demo_on_the_embedded_study(tmp_path, system, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--model", str(system), "--no-tta", "--what", "report,overview,seg-nrrd"]) == 0
    printed = capsys.readouterr().out
    assert "MammoDNN demo (research use only)" in printed
    assert "against the phantom's truth" in printed and "lesion projections found" in printed
    assert "overview.png" in printed and "3D Slicer" in printed
    out = tmp_path / "mammodnn-demo"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".mammodnn-outputs.json", "overview.png", "report.json"] + [f"{k}.seg.nrrd" for k in VIEWS]
    )
    assert main(["demo", "--model", str(system), "--no-tta", "--what", "report", "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    found = [p for p in data["truth"]["projections"] if p["found_by"]]
    hits = {i for p in found for i in p["found_by"]}
    assert hits.isdisjoint(data["truth"]["false_positives"])
    assert len(hits) + len(data["truth"]["false_positives"]) == len(data["findings"])


def test_the_embedded_study_is_what_its_readme_says(repo_dir):
    from MammoDNNLib.io import load_study
    from MammoDNNLib.phantom import load_truth

    folder = repo_dir / "Resources" / "SampleData" / "phantom-study"
    files = sorted(folder.glob("*.dcm"))
    assert [f.stem for f in files] == sorted(VIEWS)
    assert sum(f.stat().st_size for f in files) <= 6e6
    truth = load_truth(folder)
    readme = (folder / "README.md").read_text()
    assert str(truth.seed) in readme and "make_sample_data.py" in readme
    study = load_study(files)
    assert list(study.views) == list(VIEWS) and not study.warnings
    for lesion in truth.lesions:
        assert f"| {lesion.id} | {lesion.type} |" in readme
        for key, view in lesion.views.items():
            assert view.mask is not None and view.visibility != "occult"
            assert study[key].size == truth.views[key].size
            assert str(study[key].header.SOPInstanceUID) == truth.views[key].sop_instance_uid
