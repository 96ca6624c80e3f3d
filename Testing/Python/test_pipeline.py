"""The analysis pipeline's mechanics: options, system models, outlines and their exact mapping to the original
grid,
detections to findings, and ``analyze`` on a phantom with a test double of the detector whose detections are
the
phantom's true lesions (every other stage is the real code with the shipped models)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_pipeline_support import (
    TEST_COLLECTION,
    TruthDetectorDouble,
    double_system,
    phantom,
    untrained_system,
)

from MammoDNNLib.errors import CancelledError, MammoDNNError, ModelError
from MammoDNNLib.geometry import LesionMask, Transform
from MammoDNNLib.phantom import study_seed
from MammoDNNLib.pipeline import OutlineConfig, PipelineOptions, analyze
from MammoDNNLib.pipeline.outline import (
    dice,
    inscribed_ellipse,
    original_to_prepared,
    outline_lesion,
    prepared_to_original,
    segment_prepared,
)
from MammoDNNLib.study import Study


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- options
# ----------------------------------------------------------------------------------------------------
def test_options_round_trip_and_reject_unknown_keys():
    options = PipelineOptions(score_threshold=0.42, outline=OutlineConfig(mass_method="chan_vese"))
    data = json.loads(json.dumps(options.to_dict()))
    assert PipelineOptions.from_dict(data) == options
    with pytest.raises(ValueError, match="unknown pipeline option"):
        PipelineOptions.from_dict({**data, "treshold": 0.5})
    with pytest.raises(ValueError, match="unknown outline option"):
        PipelineOptions.from_dict({**data, "outline": {"mass_methd": "otsu"}})
    with pytest.raises(ValueError, match="score_threshold"):
        PipelineOptions(score_threshold=1.5)
    with pytest.raises(ValueError, match="mass_method"):
        OutlineConfig(mass_method="watershed")


# -- outlines and the exact mapping
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("prepared_size", [(123, 207), (37, 61), (301, 499)])
def test_prepared_mask_maps_to_the_original_grid_like_the_transform(flip, prepared_size):
    """transfer_mask (crop-sized) against Transform.mask_to_original (full grid, skimage's resize)."""
    transform = Transform((400, 600), (50, 40, 350, 540), prepared_size, flip)
    rng = np.random.default_rng(1)
    full = np.zeros(prepared_size[::-1], bool)
    h, w = full.shape
    full[h // 5 : h // 2, w // 6 : w // 2] = rng.random((h // 2 - h // 5, w // 2 - w // 6)) > 0.3
    mask = LesionMask.from_full(full)
    expected = transform.mask_to_original(full.astype(np.uint8)).astype(bool)
    mapped = prepared_to_original(mask, transform)
    np.testing.assert_array_equal(mapped.full((600, 400)), expected)
    # And back: the original mask on the prepared grid is the prepared mask where the grid is finer there.
    if prepared_size[0] >= 300:
        back = original_to_prepared(LesionMask.from_full(expected), transform).full(full.shape)
        assert (back != full).mean() < 0.01


def test_inscribed_ellipse_is_the_ellipse_of_the_box():
    box = (10.3, 20.7, 90.1, 60.2)
    mask = inscribed_ellipse(box, (100, 120))
    area = math.pi * (box[2] - box[0]) / 2 * (box[3] - box[1]) / 2
    assert abs(mask.area - area) / area < 0.02
    x0, y0, x1, y1 = mask.box
    assert (
        x0 >= math.floor(box[0])
        and y0 >= math.floor(box[1])
        and x1 <= math.ceil(box[2])
        and y1 <= math.ceil(box[3])
    )
    # A box thinner than a pixel still gives the pixel under its centre.
    assert inscribed_ellipse((5.2, 5.2, 5.4, 5.4), (10, 10)).area == 1


def _blob_image(shape=(120, 140), seed=0):
    rng = np.random.default_rng(seed)
    image = 0.3 + 0.03 * rng.standard_normal(shape)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return image.astype(np.float32), yy, xx


def test_mass_outline_follows_a_lesion_inside_a_loose_box():
    image, yy, xx = _blob_image()
    lesion = ((xx - 60) / 14) ** 2 + ((yy - 55) / 9) ** 2 <= 1  # an ellipse, off-centre in its box
    image[lesion] += 0.4
    truth = LesionMask.from_full(lesion)
    box = (40.0, 40.0, 85.0, 72.0)  # loose: the inscribed ellipse is too big and off-centre
    baseline = dice(inscribed_ellipse(box, image.shape), truth)
    for method in ("otsu", "chan_vese", "midpoint"):
        mask, used, fallback = segment_prepared(image, box, "mass", 0.4, OutlineConfig(mass_method=method))
        assert used == method and fallback is None
        assert dice(mask, truth) > 0.85 > baseline + 0.1, (method, dice(mask, truth), baseline)


def test_calcification_outline_is_the_hull_of_the_specks():
    image, yy, xx = _blob_image(seed=2)
    specks = [(50, 40), (58, 52), (66, 44), (61, 60), (52, 58)]
    for x, y in specks:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 1.2] += 0.8
    box = (35.0, 30.0, 80.0, 75.0)
    mask, used, fallback = segment_prepared(image, box, "calcification", 0.2, OutlineConfig())
    assert used == "tophat_hull" and fallback is None
    full = mask.full(image.shape)
    assert all(full[y, x] for x, y in specks)
    # The hull widened by 1 mm (5 px at 0.2 mm), not the whole box.
    assert mask.area < 0.75 * inscribed_ellipse(box, image.shape).area


def test_distortions_and_implausible_segmentations_fall_back_to_the_ellipse():
    image, _, _ = _blob_image(seed=3)
    box = (30.0, 30.0, 70.0, 60.0)
    ellipse = inscribed_ellipse(box, image.shape)
    mask, used, fallback = segment_prepared(image, box, "distortion", 0.4)
    assert (
        used == "ellipse"
        and fallback is None
        and np.array_equal(mask.full(image.shape), ellipse.full(image.shape))
    )
    flat = np.full_like(image, 0.5)
    mask, used, fallback = segment_prepared(flat, box, "asymmetry", 0.4)
    assert used == "otsu" and fallback is not None
    assert np.array_equal(mask.full(image.shape), ellipse.full(image.shape))


def test_outline_lands_on_the_original_grid_inside_the_box():
    """A prepared view that is cropped, scaled and flipped: the original-grid mask covers the lesion there."""
    from dataclasses import dataclass

    @dataclass
    class View:
        image: np.ndarray
        transform: Transform
        spacing_mm: float

    original = np.zeros((300, 200), bool)
    yy, xx = np.mgrid[0:300, 0:200] + 0.5
    original[((xx - 120) / 20) ** 2 + ((yy - 150) / 15) ** 2 <= 1] = True
    transform = Transform((200, 300), (40, 60, 200, 260), (80, 100), True)
    image = transform.image_to_prepared(original.astype(np.float32) * 0.5 + 0.2, order=1)
    view = View(image.astype(np.float32), transform, 0.6)
    box_original = (96.0, 132.0, 144.0, 168.0)
    box_prepared = tuple(transform.boxes_to_prepared([box_original])[0])
    truth = LesionMask.from_full(original)
    # The box is loose (48 x 36 pixels around a 40 x 30 lesion): the segmentations follow the lesion closer
    # than
    # the box's inscribed ellipse (the default for masses, chosen on phantoms whose boxes are tight).
    ellipse = outline_lesion(view, box_prepared, box_original, "mass")
    assert ellipse.method == "ellipse" and ellipse.fallback is None
    for config in (OutlineConfig(mass_method="otsu", fit_ellipse=False), OutlineConfig(mass_method="otsu")):
        outline = outline_lesion(view, box_prepared, box_original, "mass", config)
        assert outline.fallback is None and outline.method == "otsu"
        assert dice(outline.original, truth) > 0.85 > dice(ellipse.original, truth) > 0.75
        x0, y0, x1, y1 = outline.original.box
        assert x0 >= 96 and y0 >= 132 and x1 <= 144 and y1 <= 168


# -- detections to findings
# -------------------------------------------------------------------------------------
def test_select_detections_applies_the_operating_point_duplicates_and_cap():
    from MammoDNNLib.models.detector import Detection
    from MammoDNNLib.pipeline.stages import make_findings, select_detections

    class Prepared:
        original_spacing = (0.1, 0.1)

    def det(label, score, box):
        return Detection("L-CC", label, score, box, box, {label: score})

    found = {
        "L-CC": [
            det("mass", 0.9, (10, 10, 60, 60)),
            det("asymmetry", 0.8, (12, 12, 62, 58)),
            det("mass", 0.7, (100, 100, 150, 150)),
            det("mass", 0.65, (104, 104, 140, 140)),
            det("calcification", 0.6, (200, 200, 201, 230)),
            det("mass", 0.5, (300, 300, 350, 350)),
            det("mass", 0.1, (400, 400, 450, 450)),
        ]
    }
    options = PipelineOptions(score_threshold=0.3, max_findings_per_view=2, min_box_mm=1.0)
    kept = select_detections(found, {"L-CC": Prepared()}, options)["L-CC"]
    assert [(c.type, c.score) for c in kept] == [("mass", 0.9), ("mass", 0.7)]
    assert kept[0].suppressed == [{"type": "asymmetry", "score": 0.8, "box": [12.0, 12.0, 62.0, 58.0]}]
    assert [d["score"] for d in kept[1].suppressed] == [0.65]  # a part of the same lesion boxed again
    findings = make_findings({"L-CC": kept, "R-CC": [c for c in kept[:1]]})
    assert [(f.id, f.view_key, f.score) for f in findings] == [
        ("lesion_001", "R-CC", 0.9),
        ("lesion_002", "L-CC", 0.9),
        ("lesion_003", "L-CC", 0.7),
    ]
    keep_all = select_detections(
        found,
        {"L-CC": Prepared()},
        PipelineOptions(score_threshold=0.0, same_lesion_overlap=None, min_box_mm=0),
    )
    assert len(keep_all["L-CC"]) == 7


# -- analyze
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzed():
    """One phantom analyzed with the truth double; progress recorded."""
    study = phantom(study_seed(TEST_COLLECTION, 1))
    detector = TruthDetectorDouble(study.truth, 0.5, false_positives=1, seed=1)
    system, models = double_system(detector)
    events = []
    report = analyze(study.study, system=system, models=models, progress=lambda f, m: events.append((f, m)))
    return study, report, events, detector


def _hit(finding, box):
    x, y = finding.center
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def test_analyze_reports_every_visible_lesion_in_hanging_order(analyzed):
    study, report, _, detector = analyzed
    assert detector.calls == 1
    visible = [
        (lesion, key, v)
        for lesion in study.truth.lesions
        for key, v in lesion.views.items()
        if v.visibility != "occult"
    ]
    assert len(visible) >= 4
    for lesion, key, v in visible:
        found = [f for f in report.findings_in(key) if _hit(f, v.box) and f.type == lesion.type]
        assert len(found) == 1, (lesion.id, key)
        # The mask is exact on the original grid, inside the box, and overlaps the true mask.
        f = found[0]
        assert f.mask is not None and not f.mask.empty and len(f.outline) >= 3
        assert dice(f.mask, v.mask) > 0.4, (lesion.id, key, f.extra["outline"])
    order = ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    keys = [(order.index(f.view_key), -f.score) for f in report.findings]
    assert keys == sorted(keys)
    assert [f.id for f in report.findings] == [f"lesion_{i + 1:03d}" for i in range(len(report.findings))]
    for f in report.findings:
        assert set(f.extra) >= {"detector", "outline", "localization", "matching"}
        assert f.extra["localization"]["quadrant_source"] in ("network", "geometric", "combined")


def test_analyze_localizes_and_matches_the_true_lesions(analyzed):
    study, report, _, _ = analyzed
    correct_quadrant, depth_errors, pairs = 0, [], []
    total = 0
    for lesion in study.truth.lesions:
        ids = {}
        for key, v in lesion.views.items():
            found = [f for f in report.findings_in(key) if _hit(f, v.box) and f.type == lesion.type]
            if not found:
                continue
            total += 1
            f = found[0]
            ids[key] = f
            correct_quadrant += f.quadrant == v.quadrant
            depth_errors.append(abs(f.depth - v.depth))
            assert 0.0 <= f.depth <= 1.0 and abs(sum(f.quadrant_probabilities.values()) - 1) < 1e-6
        if len(ids) == 2:
            cc, mlo = (ids[k] for k in sorted(ids, key=lambda k: k.endswith("MLO")))
            pairs.append(cc.match_id == mlo.id and mlo.match_id == cc.id and cc.number == mlo.number)
    # Floors well below what the shipped localization model and matcher measure (docs/localization.md,
    # docs/matching.md): these are the true lesions, so a broken stage fails them.
    assert correct_quadrant / total >= 0.6, (correct_quadrant, total)
    assert float(np.median(depth_errors)) <= 0.15, depth_errors
    assert pairs and sum(pairs) / len(pairs) >= 0.6, pairs
    # The false positive (one per view, scored 0.35) is not matched to a true lesion's finding.
    for f in report.findings:
        if f.match_id is not None:
            partner = report.finding(f.match_id)
            assert partner.match_id == f.id and partner.laterality == f.laterality and partner.view != f.view


def test_analyze_report_is_complete_and_valid(analyzed, tmp_path):
    from MammoDNNLib.export.report_schema import validate_report_dict
    from MammoDNNLib.findings import Report

    study, report, events, _ = analyzed
    data = json.loads(json.dumps(report.to_dict()))
    validate_report_dict(data)
    assert Report.from_dict(data).to_dict() == data
    assert [v.key for v in report.views] == list(study.study.views)
    for info in report.views:
        view = study.study[info.key]
        assert info.size == view.size and info.sop_instance_uid == str(view.header.SOPInstanceUID)
        assert Transform.from_dict(info.transform).original_size == view.size
        assert info.landmarks["nipple"] is not None
    assert set(report.timings) >= {
        "load_models",
        "preprocess",
        "detect",
        "select",
        "outline",
        "localize",
        "malignancy",
        "match",
        "birads",
        "total",
    }
    assert report.timings["total"] >= report.timings["preprocess"] > 0
    assert (
        report.model.name == "test-system"
        and report.model.components["detector"]["name"] == "truth-detector-double"
    )
    assert report.software["mammodnn"] and report.created
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    graded = [f for f in report.findings if f.malignancy is not None]
    if graded:  # the shipped malignancy model is present
        assert all(f.birads is not None for f in graded)
        assert report.exam.birads == max(
            (s.birads for s in report.breasts.values()), key=["1", "2", "3", "4A", "4B", "4C", "5"].index
        )


def test_a_missing_view_degrades_gracefully():
    full = phantom(study_seed(TEST_COLLECTION, 1))
    views = {k: v for k, v in full.study.views.items() if k != "L-MLO"}
    study = Study(views, warnings=["missing views: L-MLO"])
    system, models = double_system(TruthDetectorDouble(full.truth, 0.5, seed=2))
    report = analyze(study, system=system, models=models, tta=False)
    assert [v.key for v in report.views] == ["R-CC", "L-CC", "R-MLO"]
    left = report.findings_in("L-CC")
    assert left and all(f.match_id is None and f.match_probability is None for f in left)
    assert sorted(f.number for f in left) == list(range(1, len(left) + 1))
    assert (
        report.breasts["L"].complete is False and "MLO missing, matching not done" in report.breasts["L"].note
    )
    assert any("L breast: MLO missing" in w for w in report.warnings)
    assert report.breasts["R"].complete and not report.exam.complete
    assert any(f.match_id for f in report.findings_in("R-CC"))


def test_a_system_without_the_optional_stages_says_what_it_skipped():
    study = phantom(study_seed(TEST_COLLECTION, 1))
    system, models = double_system(
        TruthDetectorDouble(study.truth, 0.5), localization=False, malignancy=False, matcher=False
    )
    report = analyze(study.study, system=system, models=models, tta=False)
    assert report.findings and all(
        f.quadrant is None and f.malignancy is None and f.birads is None for f in report.findings
    )
    assert any("no localization model" in w for w in report.warnings)
    assert any("no malignancy model" in w for w in report.warnings)
    assert report.breasts["R"].note and "no matcher in this system" in report.breasts["R"].note
    assert "not graded" in report.breasts["R"].note and report.exam.birads == "1"
    for key in study.study.views:
        numbers = sorted(f.number for f in report.findings_in(key))
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    assert (
        set(report.timings) >= {"detect", "outline", "match", "birads"} and "localize" not in report.timings
    )


def test_progress_can_cancel_and_nothing_is_written(tmp_path, monkeypatch):
    study = phantom(study_seed(TEST_COLLECTION, 1))
    system, models = double_system(TruthDetectorDouble(study.truth, 0.5))

    def cancel_at_detection(fraction, message):
        if message.startswith("detecting"):
            raise CancelledError("cancelled by the user")

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CancelledError):
        analyze(study.study, system=system, models=models, progress=cancel_at_detection)
    assert models.detector.calls == 0
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MammoDNNError, match="device"):
        analyze(study.study, system=system, models=models, device="gpu")
    with pytest.raises(MammoDNNError, match="at least one view"):
        analyze(Study({}), system=system, models=models)


# -- system models
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return untrained_system(tmp_path_factory.mktemp("untrained"))


def test_system_pins_its_components_and_is_cached(untrained, tmp_path):
    import shutil

    from MammoDNNLib.pipeline.stages import load_models, model_cache_info
    from MammoDNNLib.pipeline.system import load_system

    system = load_system(untrained)
    assert system.name == "test-untrained" and system.components["detector"].name == "untrained-tiny-detector"
    info = system.model_info()
    assert set(info["components"]) >= {"detector", "birads"}
    assert all(isinstance(v, str) for c in info["components"].values() for v in c.values())
    first = load_models(system, "cpu")
    before = model_cache_info()
    again = load_models(load_system(untrained), "cpu")
    after = model_cache_info()
    assert again.detector is first.detector and after.misses == before.misses and after.hits > before.hits

    copy = tmp_path / "copy"
    shutil.copytree(untrained.parent, copy)
    (copy / "system" / "birads.json").write_text(
        (copy / "system" / "birads.json").read_text().replace("0.5", "0.6")
    )
    with pytest.raises(ModelError, match="birads.json: size or sha256 differs"):
        load_system(copy / "system")
    manifest = json.loads((copy / "detector" / "manifest.json").read_text())
    manifest["description"] = "changed"
    (copy / "detector" / "manifest.json").write_text(json.dumps(manifest))
    (copy / "system" / "birads.json").write_text((untrained / "birads.json").read_text())
    with pytest.raises(ModelError, match="not the model the system was built"):
        load_system(copy / "system")


def test_a_component_model_replaces_its_stage_of_the_default_system(untrained):
    from MammoDNNLib.models.registry import resolve_model
    from MammoDNNLib.pipeline.system import load_system

    try:
        resolve_model("mammodnn")
    except ModelError:
        pytest.skip("no shipped system model in this checkout")
    system = load_system(untrained.parent / "detector")
    assert system.components["detector"].name == "untrained-tiny-detector"
    assert system.name.startswith("mammodnn+detector:") and "detector" in system.overrides
    with pytest.raises(ModelError, match="cannot analyze"):
        from MammoDNNLib.pipeline.system import MODEL_STAGES  # noqa: F401

        bogus = Path(untrained.parent / "bogus")
        bogus.mkdir(exist_ok=True)
        data = json.loads((untrained.parent / "detector" / "manifest.json").read_text())
        (bogus / "manifest.json").write_text(json.dumps({**data, "kind": "segmenter"}))
        load_system(bogus)
