"""End to end with the shipped system model (``Resources/Models/mammodnn``) on held-out phantoms: finding
boxes
against the truth, quadrant, depth and matching above floors, the report schema, and the Slicer files.

Held-out: phantom collection 7300 (``test_pipeline_support.TEST_COLLECTION``), which no component trains or
tunes
on (checked against their manifests below). The floors sit below the figures ``benchmarks/pipeline_eval.py``
measured on 30 phantoms of the same collection (docs/pipeline.md) with a margin for the six phantoms a test
can
afford; the system's operating point was chosen on collection 7200.
"""

from __future__ import annotations

import json

import pytest
from test_pipeline_support import DENSE, TEST_COLLECTION, VALIDATION_COLLECTION

from MammoDNNLib.phantom import generate_study, study_seed

PHANTOMS = 6  # studies 0..5 of the test collection
# Floors, from `python benchmarks/pipeline_eval.py --phantoms 30 --seed 7300` with the shipped system 0.2.0
# (docs/pipeline.md "Measured"): visible-lesion sensitivity 0.293 at 0.68 false positives per view, quadrant
# accuracy 0.901, depth MAE 0.028, matching F1 0.246 (0.733 of the pairs whose two projections were found); the
# interim system 0.1.0 measured 0.218 at 1.13, 0.788, 0.032, 0.094 (0.571).
MIN_SENSITIVITY_VISIBLE = 0.18
MAX_FALSE_POSITIVES_PER_VIEW = 1.3
MIN_QUADRANT_ACCURACY = 0.7
MAX_DEPTH_MAE = 0.06
MIN_MATCHING_F1 = 0.1
MIN_MATCHING_RECALL_DETECTABLE = 0.45


@pytest.fixture(scope="module")
def shipped():
    import torch

    from MammoDNNLib.paths import resources_dir
    from MammoDNNLib.pipeline import load_system
    from MammoDNNLib.pipeline.stages import load_models

    torch.set_num_threads(1)
    if not (resources_dir() / "Models" / "mammodnn").is_dir():
        pytest.skip("no shipped system model (Resources/Models/mammodnn) in this checkout")
    # A shipped system whose components changed since it was built fails here (ModelError naming the
    # component):
    # its figures were measured with other models; rebuild it (docs/pipeline.md, "The system model").
    system = load_system()
    return system, load_models(system, "cpu")


@pytest.fixture(scope="module")
def evaluated(shipped):
    from MammoDNNLib.pipeline import analyze
    from MammoDNNLib.pipeline.evaluate import evaluate_report, summarize

    system, models = shipped
    reports, evaluations = [], []
    for k in range(PHANTOMS):
        phantom = generate_study(study_seed(TEST_COLLECTION, k), "small", DENSE)
        report = analyze(phantom.study, system=system, models=models)
        reports.append((phantom, report))
        evaluations.append(evaluate_report(report, phantom.truth))
    return reports, summarize(evaluations)


@pytest.mark.slow
def test_held_out_collections_are_not_in_any_components_training_data(shipped):
    from MammoDNNLib.phantom import study_seed as seed_of

    system, _ = shipped
    held_out = {TEST_COLLECTION, VALIDATION_COLLECTION} | {
        seed_of(TEST_COLLECTION, k) for k in range(PHANTOMS)
    }
    for stage, ref in system.components.items():
        text = json.dumps(json.loads((ref.path / "manifest.json").read_text()).get("training_data", {}))
        for seed in held_out:
            assert f": {seed}," not in text and f": {seed}}}" not in text and f" {seed}]" not in text, (
                stage,
                seed,
            )
    assert system.options.score_threshold > 0


@pytest.mark.slow
def test_findings_against_the_truth(evaluated):
    _, metrics = evaluated
    assert metrics["visible_projections"] >= 12
    assert metrics["sensitivity_visible"] >= MIN_SENSITIVITY_VISIBLE, metrics
    assert metrics["false_positives_per_view"] <= MAX_FALSE_POSITIVES_PER_VIEW, metrics


@pytest.mark.slow
def test_quadrant_depth_and_matching_of_detected_lesions(evaluated):
    _, metrics = evaluated
    assert metrics["quadrant_n"] >= 6
    assert metrics["quadrant_accuracy"] >= MIN_QUADRANT_ACCURACY, metrics
    assert metrics["depth_mae"] <= MAX_DEPTH_MAE, metrics
    assert metrics["matching"]["f1"] >= MIN_MATCHING_F1, metrics["matching"]
    assert metrics["matching"]["recall_detectable"] >= MIN_MATCHING_RECALL_DETECTABLE, metrics["matching"]


@pytest.mark.slow
def test_report_and_slicer_files_of_the_shipped_system(evaluated, tmp_path, shared_dir):
    import jsonschema
    import slicerio

    from MammoDNNLib.export import export_all
    from MammoDNNLib.export.report_schema import validate_report_dict
    from MammoDNNLib.findings import Report

    reports, _ = evaluated
    phantom, report = max(reports, key=lambda pr: len(pr[1].findings))
    data = json.loads(json.dumps(report.to_dict()))
    validate_report_dict(data)
    assert report.model.name == "mammodnn" and set(report.model.components) >= {
        "detector",
        "matcher",
        "birads",
    }
    assert all(f.birads is not None and f.quadrant is not None for f in report.findings)
    result = export_all(report, tmp_path, what=["report", "seg-nrrd", "markups"], views=phantom.study.views)
    assert Report.load(tmp_path / "report.json").to_dict() == data
    schema = json.loads((shared_dir / "reference" / "slicer" / "markups-schema-v1.0.3.json").read_text())
    for key in phantom.study.views:
        segmentation = slicerio.read_segmentation(str(tmp_path / f"{key}.seg.nrrd"))
        assert sorted(s["id"] for s in segmentation["segments"]) == sorted(
            f.id for f in report.findings_in(key)
        )
        jsonschema.validate(json.loads((tmp_path / f"{key}.mrk.json").read_text()), schema)
    assert not result.skipped
