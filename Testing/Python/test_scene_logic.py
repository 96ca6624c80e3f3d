"""AnalysisLogic end to end against real MRML (slicer-core), with an injected analysis function (not a fake
Slicer): volumes or a folder in, the Report's nodes out; and the worker-process path (command, progress
protocol, results read back from the output folder)."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from test_scene_support import SIZES, headless, make_report, make_study, truth_analysis, write_study

pytest.importorskip("slicer")


def _volumes(app, study):
    from MammoDNNLib.scene.volumes import add_view_volume

    return {key: add_view_volume(app.scene, view) for key, view in study.views.items()}


def test_analyze_volume_nodes_shows_the_report():
    from MammoDNNLib.scene.layout import HANGING_LAYOUT_ID
    from MammoDNNLib.scene.logic import AnalysisLogic
    from MammoDNNLib.scene.results import segment_mask

    app = headless()
    study = make_study()
    report = make_report(study)
    calls, progress = [], []
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(report, calls))
    volumes = _volumes(app, study)
    result = logic.analyze(
        volumes, device="cpu", tta=False, model="tiny", progress=lambda f, m: progress.append((f, m))
    )
    assert calls == [{"views": list(SIZES), "model": "tiny", "device": "cpu", "tta": False}]
    assert progress[0][0] == 0.0 and progress[-1] == (1.0, "6 finding(s)")
    assert (0.5, "half way") in progress
    assert logic.report is report and [f.id for f in logic.findings] == [f.id for f in report.findings]
    assert logic.nodes is result.nodes and set(result.volumes) == set(SIZES)
    assert app.layout_node.GetViewArrangement() == HANGING_LAYOUT_ID
    for finding in report.findings:
        view = result.nodes.views[finding.view_key]
        shape = SIZES[finding.view_key]
        np.testing.assert_array_equal(
            segment_mask(view.segmentation, finding.id, view.volume), finding.lesion_mask(shape).full(shape)
        )
    assert result.nodes.findings_table.GetNumberOfRows() == len(report.findings)
    moved = logic.center_on_finding("lesion_003")
    assert set(moved) == {"lesion_003", "lesion_001"}


def test_analyze_a_list_of_nodes_uses_their_attributes_and_names():
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.logic import AnalysisLogic

    app = headless()
    study = make_study()
    volumes = _volumes(app, study)
    # One node known only by its name.
    volumes["L-MLO"].RemoveAttribute(schema.ATTR_VIEW_KEY)
    volumes["L-MLO"].RemoveAttribute(schema.ATTR_LATERALITY)
    volumes["L-MLO"].SetName("patient 7 LMLO")
    calls = []
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(make_report(study), calls))
    logic.analyze(list(volumes.values()))
    assert calls[0]["views"] == list(SIZES)


def test_analyze_a_folder_reads_the_files_with_the_io_module(tmp_path):
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.logic import AnalysisLogic

    files = write_study(tmp_path / "exam")
    report = make_report(files.study)
    seen = {}

    def analysis(study, **options):
        seen.update({key: view for key, view in study.views.items()})
        return report

    app = headless()
    logic = AnalysisLogic(app.scene, analysis_function=analysis)
    result = logic.analyze(files.folder)
    assert set(seen) == set(SIZES)
    for key, view in seen.items():
        assert view.source is not None and view.source.name == f"{key}.dcm"
        assert view.shape == SIZES[key]
        assert result.volumes[key].GetAttribute(schema.ATTR_SOURCE_FILE) == str(files.files[key])
        # PatientOrientation said where the chest wall is.
        expected_side = "right" if key.startswith("R") else "left"
        assert result.volumes[key].GetAttribute(schema.ATTR_CHEST_WALL) == expected_side
    # Analyzing the same volumes again re-reads their files (not the nodes' pixels).
    seen.clear()
    logic.analyze(result.volumes)
    assert all(view.source is not None for view in seen.values())
    assert len(logic.volumes) == 4
    removed = logic.clear(volumes=True)
    assert removed > 4 and app.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0


def test_a_view_chosen_against_its_files_tags_is_refused(tmp_path):
    from MammoDNNLib.scene.logic import AnalysisLogic

    files = write_study(tmp_path / "exam")
    app = headless()
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(make_report(files.study)))
    volumes = logic.load_study(files.folder)
    swapped = {"R-CC": volumes["L-CC"], "L-CC": volumes["R-CC"]}
    with pytest.raises(ValueError) as error:
        logic.analyze(swapped)
    assert "L-CC" in str(error.value) and "R-CC" in str(error.value)


def test_errors_are_value_errors_with_clear_messages():
    from MammoDNNLib.errors import CancelledError
    from MammoDNNLib.scene.logic import AnalysisLogic

    app = headless()
    study = make_study()
    volumes = _volumes(app, study)
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(make_report(study)))
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        logic.analyze(volumes, device="tpu")
    with pytest.raises(ValueError, match="cannot analyze a int"):
        logic.analyze(42)
    with pytest.raises(ValueError, match="no view volumes"):
        logic.analyze({})

    def cancel(fraction, message):
        if fraction > 0.2:
            raise CancelledError("stop")

    with pytest.raises(CancelledError):
        logic.analyze(volumes, progress=cancel)
    assert logic.result is None  # nothing shown

    bad = AnalysisLogic(app.scene, analysis_function=lambda study, **kw: {"findings": []})
    with pytest.raises(TypeError, match="returned a dict, not a Report"):
        bad.analyze(volumes)
    with pytest.raises(ValueError, match="needs an MRML scene"):
        AnalysisLogic(None)


def test_missing_pipeline_is_reported_clearly(monkeypatch):
    from MammoDNNLib.errors import MammoDNNError
    from MammoDNNLib.scene.logic import default_analysis_function

    monkeypatch.setitem(sys.modules, "MammoDNNLib.pipeline", None)
    with pytest.raises(MammoDNNError, match="no analysis pipeline"):
        default_analysis_function()


def test_replace_keeps_one_result_set():
    from MammoDNNLib.scene.logic import AnalysisLogic
    from MammoDNNLib.scene.results import result_ids

    app = headless()
    study = make_study()
    volumes = _volumes(app, study)
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(make_report(study)))
    logic.analyze(volumes)
    logic.analyze(volumes)
    assert len(result_ids(app.scene)) == 1
    logic.analyze(volumes, replace=False)
    assert len(result_ids(app.scene)) == 2


def test_analysis_command_and_environment(tmp_path):
    from MammoDNNLib.scene.logic import analysis_command, worker_environment

    command = analysis_command(
        [tmp_path / "a.dcm", tmp_path / "b.dcm"],
        tmp_path / "out",
        python="/x/PythonSlicer",
        model="/models/m/1.0",
        device="cuda",
        tta=False,
    )
    assert command == [
        "/x/PythonSlicer",
        "-m",
        "MammoDNNLib",
        "analyze",
        str(tmp_path / "a.dcm"),
        str(tmp_path / "b.dcm"),
        "--out",
        str(tmp_path / "out"),
        "--progress-json",
        "--device",
        "cuda",
        "--model",
        "/models/m/1.0",
        "--no-tta",
    ]
    env = worker_environment({"PYTHONPATH": "/elsewhere"})
    first = env["PYTHONPATH"].split(":")[0]
    import MammoDNNLib

    assert (__import__("pathlib").Path(first) / "MammoDNNLib" / "__init__.py").resolve() == __import__(
        "pathlib"
    ).Path(MammoDNNLib.__file__).resolve()
    assert env["PYTHONPATH"].endswith("/elsewhere")
    with pytest.raises(ValueError, match="no input files"):
        analysis_command([], tmp_path)


def _write_worker_output(folder, study, report):
    """What `mammodnn analyze --out` writes: report.json and one <key>.seg.nrrd per view (export's writer)."""
    from MammoDNNLib.export.slicer_files import write_segmentation
    from MammoDNNLib.export.space import geometry_for_view

    folder.mkdir(parents=True, exist_ok=True)
    for key, view in study.views.items():
        findings = report.findings_in(key)
        if findings:
            write_segmentation(folder / f"{key}.seg.nrrd", findings, geometry_for_view(view))
    saved = report.save(folder / "report.json")
    return saved


def test_read_analysis_output_restores_exact_masks(tmp_path):
    from MammoDNNLib.scene.logic import read_analysis_output

    study = make_study()
    report = make_report(study)
    _write_worker_output(tmp_path / "out", study, report)
    back = read_analysis_output(tmp_path / "out")
    assert [f.id for f in back.findings] == [f.id for f in report.findings]
    for original, loaded in zip(report.findings, back.findings, strict=False):
        shape = SIZES[original.view_key]
        assert loaded.mask is not None, original.id
        np.testing.assert_array_equal(loaded.mask.full(shape), original.lesion_mask(shape).full(shape))


def test_read_analysis_output_errors_name_the_file(tmp_path):
    from MammoDNNLib.errors import InputError
    from MammoDNNLib.scene.logic import read_analysis_output

    with pytest.raises(InputError, match="report.json: no such file"):
        read_analysis_output(tmp_path)
    make_report().save(tmp_path / "report.json")
    (tmp_path / "R-CC.seg.nrrd").write_text("not a nrrd")
    with pytest.raises(InputError, match="R-CC.seg.nrrd: not a readable segmentation"):
        read_analysis_output(tmp_path)


WORKER = textwrap.dedent(
    """
    import sys, time, shutil
    from pathlib import Path
    from MammoDNNLib.progress import ProgressWriter
    out = Path(sys.argv[1]); source = Path(sys.argv[2]); mode = sys.argv[3]
    progress = ProgressWriter()
    print("loading model (a log line)", flush=True)
    for step in range(5):
        progress(step / 5, f"step {step}")
        if mode == "slow":
            time.sleep(60)
    if mode == "crash":
        print("Traceback: something broke", flush=True)
        sys.exit(3)
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        shutil.copy(path, out / path.name)
    progress.done(report=str(out / "report.json"))
    """
)


def test_worker_process_end_to_end(tmp_path):
    """A worker speaking the protocol: progress is polled, results are read back and shown exactly."""
    from MammoDNNLib.progress import AnalysisProcess
    from MammoDNNLib.scene.logic import AnalysisLogic, worker_environment
    from MammoDNNLib.scene.results import segment_mask

    study = make_study()
    report = make_report(study)
    _write_worker_output(tmp_path / "prepared", study, report)
    out = tmp_path / "out"
    command = [sys.executable, "-c", WORKER, str(out), str(tmp_path / "prepared"), "fast"]
    process = AnalysisProcess(command, env=worker_environment()).start()
    status = process.wait(timeout=60)
    assert status.succeeded, process.output_tail
    assert status.fraction == 1.0 and status.done.outputs == {"report": str(out / "report.json")}
    assert "loading model" in process.output_tail

    app = headless()
    volumes = _volumes(app, study)
    result = AnalysisLogic(app.scene).load_results(out, volumes)
    for finding in report.findings:
        view = result.nodes.views[finding.view_key]
        shape = SIZES[finding.view_key]
        np.testing.assert_array_equal(
            segment_mask(view.segmentation, finding.id, view.volume), finding.lesion_mask(shape).full(shape)
        )


def test_worker_process_crash_and_cancel(tmp_path):
    from MammoDNNLib.progress import AnalysisProcess

    crash = AnalysisProcess(
        [sys.executable, "-c", WORKER, str(tmp_path / "o"), str(tmp_path), "crash"]
    ).start()
    status = crash.wait(timeout=60)
    assert not status.running and not status.succeeded and status.returncode == 3
    assert "exit status 3" in status.error.message and "something broke" in status.error.message

    slow = AnalysisProcess([sys.executable, "-c", WORKER, str(tmp_path / "o"), str(tmp_path), "slow"]).start()
    for _ in range(200):
        if slow.poll().message.startswith("step"):
            break
        import time

        time.sleep(0.05)
    status = slow.cancel(grace_seconds=5)
    assert status.cancelled and not status.running and not status.succeeded
    assert status.message == "cancelled"
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_phantom_study_end_to_end(tmp_path):
    """Write a phantom study as DICOM, analyze the folder with its truth as the model: every node matches."""
    from test_scene_support import phantom_study, report_from_phantom

    from MammoDNNLib.phantom import write_study as write_phantom
    from MammoDNNLib.scene.layout import ras_to_slice_xy
    from MammoDNNLib.scene.logic import AnalysisLogic
    from MammoDNNLib.scene.results import report_from_scene, segment_mask

    phantom = phantom_study(2)
    folder = write_phantom(phantom, tmp_path / "phantom")
    report = report_from_phantom(phantom)
    assert len(report.findings) >= 4
    app = headless()
    logic = AnalysisLogic(app.scene, analysis_function=truth_analysis(report))
    # The four DICOM files (the folder also holds truth masks as PNG, which are not views).
    result = logic.analyze([folder / v.file for v in phantom.truth.views.values()])
    for finding in report.findings:
        view = result.nodes.views[finding.view_key]
        info = phantom.truth.views[finding.view_key]
        shape = (info.size[1], info.size[0])
        np.testing.assert_array_equal(
            segment_mask(view.segmentation, finding.id, view.volume), finding.mask.full(shape)
        )
        x0, y0, x1, y1 = finding.box
        import vtk

        m = vtk.vtkMatrix4x4()
        view.volume.GetIJKToRASMatrix(m)
        centre = m.MultiplyPoint([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, 0.0, 1.0])[:3]
        np.testing.assert_allclose(view.rois[finding.id].GetCenter(), centre, atol=1e-4)
    assert report_from_scene(app.scene).to_dict() == report.to_dict()
    # Chest walls face each other in the hanging layout (the phantom's truth says which edge holds it).
    for key, slice_node in result.slice_nodes.items():
        info = phantom.truth.views[key]
        cols, rows = info.size
        wall_i = cols - 0.5 if info.chest_wall_side == "right" else -0.5
        m = vtk.vtkMatrix4x4()
        result.volumes[key].GetIJKToRASMatrix(m)
        wall = ras_to_slice_xy(slice_node, [m.MultiplyPoint([wall_i, rows / 2, 0.0, 1.0])[:3]])[0]
        width = slice_node.GetDimensions()[0]
        assert (wall[0] > width / 2) == key.startswith("R"), key
