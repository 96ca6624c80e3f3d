"""Review operations on real MRML (slicer-core): decisions, types, notes, audit trail, navigation, outline edits
detected from the labelmap, added lesions, CC-MLO links, and everything surviving an .mrb round trip.

The study and the model's report are the constructed ones of ``test_scene_support`` (exact masks, an
outline-only and a box-only finding, a matched pair); expected masks, boxes and numbers are computed here from
that construction, not from the review code.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from support.synthetic import ellipse_mask
from test_scene_support import SIZES, SPACING, headless, make_report, make_study

pytest.importorskip("slicer")


def clock():
    """A deterministic audit clock: 2025-01-18T10:00:00Z, then one second later at every call."""
    counter = itertools.count()

    def tick() -> str:
        n = next(counter)
        return f"2025-01-18T10:{n // 60:02d}:{n % 60:02d}Z"

    return tick


def shown(layout: bool = False):
    """A fresh scene with the constructed report shown (volumes in memory); returns (app, logic, report)."""
    from MammoDNNLib.scene.logic import AnalysisLogic

    app = headless()
    study = make_study()
    report = make_report(study)
    logic = AnalysisLogic(app.scene, analysis_function=lambda s, **o: report, show_layout=layout)
    logic.analyze(study)
    return app, logic, report


def session(app, **kwargs):
    from MammoDNNLib.scene.review import ReviewSession

    kwargs.setdefault("annotator", "reader B")
    kwargs.setdefault("clock", clock())
    return ReviewSession(app.scene, **kwargs)


def paint(app, finding_id: str, mask: np.ndarray) -> None:
    """What the Segment Editor does: replace the segment's labelmap (no MammoDNN code involved)."""
    from slicer import vtkSlicerSegmentationsModuleLogic

    from MammoDNNLib.geometry import LesionMask
    from MammoDNNLib.scene.results import find_results, labelmap_from_mask
    from MammoDNNLib.scene.volumes import volume_ijk_to_ras

    view = find_results(app.scene).view_of_finding(finding_id)
    labelmap = labelmap_from_mask(LesionMask.from_full(mask), mask.shape, volume_ijk_to_ras(view.volume))
    assert vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, view.segmentation, finding_id, vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )


def segment_mask_of(app, finding_id: str) -> np.ndarray:
    from MammoDNNLib.scene.results import find_results, segment_mask

    view = find_results(app.scene).view_of_finding(finding_id)
    return segment_mask(view.segmentation, finding_id, view.volume)


def table_rows(app) -> dict[str, dict[str, str]]:
    from MammoDNNLib.scene.results import find_results

    table = find_results(app.scene).findings_table
    columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = {}
    for r in range(table.GetNumberOfRows()):
        row = {name: table.GetCellText(r, c) for c, name in enumerate(columns)}
        rows[row["id"]] = row
    return rows


def test_clock_counts_seconds():
    tick = clock()
    assert [tick(), tick(), tick()] == [
        "2025-01-18T10:00:00Z",
        "2025-01-18T10:00:01Z",
        "2025-01-18T10:00:02Z",
    ]


def test_decisions_types_and_notes_are_tags_with_an_audit_trail():
    from MammoDNNLib.scene.results import report_from_scene
    from MammoDNNLib.vocabulary import finding_type

    app, logic, _report = shown()
    review = session(app)
    review.accept("lesion_001")
    review.reject("lesion_002", note="vascular | not a cluster")
    review.set_type("lesion_005", "asymmetry")
    review.set_note("lesion_005", "seen on prior")
    review.set_state("lesion_006", "accepted")
    review.set_state("lesion_006", "unreviewed")  # undo

    items = {i.id: i for i in review.items()}
    assert items["lesion_001"].state == "accepted" and items["lesion_001"].confirmed
    assert items["lesion_002"].state == "rejected" and items["lesion_002"].note == "vascular | not a cluster"
    assert items["lesion_005"].state == "edited"  # a type change is an edit of the model's finding
    assert (items["lesion_005"].type, items["lesion_005"].model_type) == ("asymmetry", "distortion")
    assert items["lesion_006"].state == "unreviewed" and items["lesion_003"].state == "unreviewed"
    assert [e.to_dict() for e in items["lesion_001"].audit] == [
        {
            "who": "reader B",
            "when": "2025-01-18T10:00:00Z",
            "what": "accepted",
            "before": {"state": "unreviewed"},
        }
    ]
    assert [e.to_dict() for e in items["lesion_002"].audit] == [
        {
            "who": "reader B",
            "when": "2025-01-18T10:00:01Z",
            "what": "rejected",
            "before": {"state": "unreviewed"},
        },
        {
            "who": "reader B",
            "when": "2025-01-18T10:00:02Z",
            "what": "note: vascular | not a cluster",
            "before": {"note": ""},
        },
    ]
    assert [e.what for e in items["lesion_005"].audit] == [
        "type: distortion -> asymmetry",
        "note: seen on prior",
    ]
    assert items["lesion_005"].audit[0].before == {"type": "distortion", "state": "unreviewed"}
    assert [e.before for e in items["lesion_006"].audit] == [{"state": "unreviewed"}, {"state": "accepted"}]

    rows = table_rows(app)
    assert rows["lesion_002"]["review_state"] == "rejected" and rows["lesion_005"]["type"] == "Asymmetry"
    segment = logic.nodes.views["L-MLO"].segmentation.GetSegmentation().GetSegment("lesion_005")
    assert segment.GetColor() == pytest.approx(finding_type("asymmetry").color)
    rebuilt = report_from_scene(app.scene)
    assert rebuilt.finding("lesion_002").extra["review"]["state"] == "rejected"
    assert rebuilt.finding("lesion_005").type == "asymmetry"
    with pytest.raises(ValueError, match="unknown review state"):
        review.set_state("lesion_001", "maybe")
    with pytest.raises(ValueError, match="no finding 'lesion_999'"):
        review.accept("lesion_999")
    with pytest.raises(ValueError, match="unknown finding type 'cyst'"):
        review.set_type("lesion_001", "cyst")


def test_next_and_previous_follow_breast_number_view_and_centre_the_views():
    from MammoDNNLib.scene.navigation import slice_center_ras, slice_nodes_showing
    from MammoDNNLib.scene.volume_geometry import pixel_to_ras
    from MammoDNNLib.scene.volumes import volume_ijk_to_ras

    app, logic, report = shown(layout=True)
    review = session(app)
    order = [i.id for i in review.items()]
    # right breast first, by number, CC before MLO: R1 = 001 (CC) + 003 (MLO), R2 = 002; then L1 = 004, 005, L2.
    assert order == ["lesion_001", "lesion_003", "lesion_002", "lesion_004", "lesion_005", "lesion_006"]
    assert review.next_finding() == "lesion_001"
    review.accept("lesion_003")
    assert review.next_finding("lesion_001") == "lesion_002"  # 003 is reviewed: skipped
    assert review.next_finding("lesion_001", unreviewed_only=False) == "lesion_003"
    assert review.next_finding("lesion_006") == "lesion_001"  # wraps around
    assert review.previous_finding("lesion_002") == "lesion_003"
    assert review.previous_finding("lesion_001") == "lesion_006"

    moved = review.go_to("lesion_001")
    assert set(moved) == {"lesion_001", "lesion_003"}  # the matched MLO finding is centred too
    for finding_id in ("lesion_001", "lesion_003"):
        finding = report.finding(finding_id)
        volume = logic.volumes[finding.view_key]
        expected = pixel_to_ras([finding.center], volume_ijk_to_ras(volume))[0]
        slices = slice_nodes_showing(app.scene, volume)
        assert slices and moved[finding_id] == slices
        for slice_node in slices:
            np.testing.assert_allclose(slice_center_ras(slice_node)[:2], expected[:2], atol=1e-6)
    # A lesion the annotator adds starts where the view is centred: here, on lesion_001.
    np.testing.assert_allclose(review.visible_centre("R-CC"), report.finding("lesion_001").center, atol=1e-6)
    assert [i.id for i in review.link_candidates("lesion_001")] == ["lesion_003"]
    review.reject("lesion_003")
    assert review.link_candidates("lesion_001") == []
    for finding_id in order:
        review.accept(finding_id)
    assert review.next_finding() is None and review.progress().complete


def test_an_outline_painted_in_the_segment_editor_becomes_an_edit():
    from MammoDNNLib.scene.results import find_results, report_from_scene
    from MammoDNNLib.scene.review import TAG_MODEL_MASK
    from MammoDNNLib.scene.volume_geometry import box_to_ras
    from MammoDNNLib.scene.volumes import volume_ijk_to_ras

    app, _logic, report = shown()
    review = session(app)
    shape = SIZES["R-CC"]
    original = report.finding("lesion_001")
    moved = ellipse_mask(shape, (34.0, 47.0), (8.0, 6.0))  # the mass outline moved 4 px right, 7 px down
    paint(app, "lesion_001", moved)
    paint(app, "lesion_002", np.zeros(shape, bool))  # erased completely
    review.reject("lesion_005")
    paint(app, "lesion_005", ellipse_mask(SIZES["L-MLO"], (52.0, 70.0), (6.0, 4.0)))
    assert sorted(review.sync_edits()) == ["lesion_001", "lesion_002", "lesion_005"]
    assert review.sync_edits() == []  # nothing new

    items = {i.id: i for i in review.items()}
    assert items["lesion_001"].state == "edited"
    assert items["lesion_002"].state == "rejected"  # erased = not a lesion
    assert items["lesion_005"].state == "rejected"  # a rejected finding stays rejected
    old_box = [float(v) for v in original.box]
    assert items["lesion_001"].audit[-1].to_dict() == {
        "who": "reader B",
        "when": "2025-01-18T10:00:01Z",
        "what": "outline edited",
        "before": {"box": old_box, "area": int(original.mask.area), "state": "unreviewed"},
    }
    assert items["lesion_002"].audit[-1].what == "outline erased"
    np.testing.assert_array_equal(segment_mask_of(app, "lesion_001"), moved)

    rebuilt = report_from_scene(app.scene).finding("lesion_001")
    np.testing.assert_array_equal(rebuilt.mask.full(shape), moved)
    rows, cols = np.nonzero(moved)
    assert rebuilt.box == (cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0)
    # The model's own outline stays in the tags for the record.
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.results import segment_tags

    view = find_results(app.scene).views["R-CC"]
    tags = segment_tags(view.segmentation.GetSegmentation().GetSegment("lesion_001"))
    assert tuple(float(v) for v in tags[schema.TAG_BOX].split()) == original.box
    assert json.loads(schema.decode_value(tags[schema.TAG_OUTLINE])) == [list(p) for p in original.outline]
    segment = view.segmentation.GetSegmentation().GetSegment("lesion_001")
    assert segment.HasTag(TAG_MODEL_MASK)  # the exact mask's digest, taken when the review started
    assert review.model_mask("lesion_001") is None  # an exact mask is not in the tags
    # The ROI follows the edited outline.
    expected = box_to_ras(rebuilt.box, volume_ijk_to_ras(view.volume))
    np.testing.assert_allclose(view.rois["lesion_001"].GetCenter(), expected.center, atol=1e-6)
    np.testing.assert_allclose(view.rois["lesion_001"].GetSize(), expected.size, atol=1e-6)


def test_an_outline_edited_before_the_review_started_is_still_seen_for_outline_findings():
    app, _logic, report = shown()
    shape = SIZES["L-CC"]
    painted = np.zeros(shape, bool)
    painted[22:34, 42:58] = True
    paint(app, "lesion_004", painted)  # an outline-only finding: its model mask is rebuilt from the tags
    review = session(app)
    model = report.finding("lesion_004").lesion_mask(shape).full(shape)
    np.testing.assert_array_equal(review.model_mask("lesion_004").full(shape), model)
    assert review.sync_edits() == ["lesion_004"]
    assert review.item("lesion_004").state == "edited"


def test_adding_a_missed_lesion_makes_a_manual_finding_with_markups():
    from MammoDNNLib.scene.results import find_results, report_from_scene

    app, _logic, _report = shown()
    review = session(app)
    shape = SIZES["L-MLO"]
    drawn = ellipse_mask(shape, (30.0, 40.0), (5.0, 3.0))
    new_id = review.add_lesion("L-MLO", "calcification", mask=drawn, note="fine pleomorphic")
    assert new_id == "manual_001"
    disc_id = review.add_lesion("R-CC", "mass", center=(20.25, 60.5))  # default 3 mm disc for painting over
    assert disc_id == "manual_002"

    item = review.item(new_id)
    assert (item.state, item.origin, item.type, item.note) == (
        "edited",
        "annotator",
        "calcification",
        "fine pleomorphic",
    )
    assert item.number == 3  # the left breast had findings 1 and 2
    assert [e.what for e in item.audit] == ["added missed lesion (calcification)"]
    rebuilt = report_from_scene(app.scene)
    added = rebuilt.finding(new_id)
    np.testing.assert_array_equal(added.mask.full(shape), drawn)
    assert added.extra["provenance"] == "annotator" and added.extra["added_by"] == "reader B"
    assert [f.id for f in rebuilt.findings][-2:] == ["manual_001", "manual_002"]  # report order kept

    disc = segment_mask_of(app, disc_id)
    yy, xx = np.mgrid[0 : SIZES["R-CC"][0], 0 : SIZES["R-CC"][1]]
    expected = ((xx + 0.5 - 20.25) / (3.0 / SPACING[1])) ** 2 + (
        (yy + 0.5 - 60.5) / (3.0 / SPACING[0])
    ) ** 2 <= 1
    np.testing.assert_array_equal(disc, expected)

    nodes = find_results(app.scene)
    view = nodes.views["L-MLO"]
    assert new_id in view.rois and view.rois[new_id].GetName() == added.label()
    descriptions = [
        view.centres.GetNthControlPointDescription(i) for i in range(view.centres.GetNumberOfControlPoints())
    ]
    assert new_id in descriptions
    assert table_rows(app)[new_id]["review_state"] == "edited"
    with pytest.raises(ValueError, match="empty"):
        review.add_lesion("L-MLO", "mass", mask=np.zeros(shape, bool))
    with pytest.raises(ValueError, match="outside"):
        review.add_lesion("L-MLO", "mass", center=(500.0, 10.0))


def test_links_are_set_by_hand_on_both_findings_with_consistent_numbers():
    from MammoDNNLib.scene.results import report_from_scene

    app, _logic, _report = shown()
    review = session(app)
    manual = review.add_lesion(
        "R-MLO", "calcification", mask=ellipse_mask(SIZES["R-MLO"], (60.0, 80.0), (5.0, 5.0))
    )
    review.link("lesion_002", manual)  # R CC 2 with the new R MLO finding
    review.link("lesion_001", manual)  # relink: 001 leaves 003, manual leaves 002

    items = {i.id: i for i in review.items()}
    assert items["lesion_001"].match_id == manual and items[manual].match_id == "lesion_001"
    assert items["lesion_003"].match_id is None and items["lesion_002"].match_id is None
    right = {i.id: i.number for i in items.values() if i.laterality == "R"}
    assert right["lesion_001"] == right[manual]
    others = [n for i, n in right.items() if i not in ("lesion_001", manual)]
    assert len(set(others)) == len(others) and right["lesion_001"] not in others
    assert [e.what for e in items["lesion_003"].audit] == ["unlinked from lesion_001"]
    assert [e.what for e in items[manual].audit][-3:] == [
        "linked with lesion_002 (R-CC)",
        "unlinked from lesion_002",
        "linked with lesion_001 (R-CC)",
    ]
    rebuilt = report_from_scene(app.scene)
    assert rebuilt.finding("lesion_001").match_id == manual
    # a link made by hand has no model probability; the model's probability went with the model's link
    assert rebuilt.finding("lesion_001").match_probability is None
    assert rebuilt.finding("lesion_003").match_probability is None
    review.unlink(manual)
    assert review.item("lesion_001").match_id is None and review.item(manual).match_id is None
    with pytest.raises(ValueError, match="one breast"):
        review.link("lesion_001", "lesion_005")
    with pytest.raises(ValueError, match="one breast"):
        review.link("lesion_001", "lesion_002")  # two CC findings


def test_the_review_survives_saving_the_scene_as_mrb(tmp_path):
    from MammoDNNLib.scene.results import report_from_scene

    app, _logic, _report = shown()
    review = session(app)
    review.reject("lesion_002", note="skin fold")
    review.set_type("lesion_004", "mass")
    drawn = ellipse_mask(SIZES["L-MLO"], (30.0, 40.0), (5.0, 3.0))
    manual = review.add_lesion("L-MLO", "mass", mask=drawn)
    review.link("lesion_004", manual)
    paint(app, "lesion_001", ellipse_mask(SIZES["R-CC"], (33.0, 41.0), (8.0, 6.0)))
    review.sync_edits()
    before = review.items()
    masks = {i.id: segment_mask_of(app, i.id) for i in before}
    expected_report = report_from_scene(app.scene)

    path = tmp_path / "review.mrb"
    assert app.scene.WriteToMRB(str(path))
    fresh = headless()
    assert fresh.scene.ReadFromMRB(str(path))
    again = session(fresh, annotator="reader C")
    assert again.record_baseline() == []  # the baseline came back with the scene
    after = again.items()
    assert [vars(i) for i in after] == [vars(i) for i in before]
    for item in after:
        np.testing.assert_array_equal(segment_mask_of(fresh, item.id), masks[item.id], err_msg=item.id)
    assert report_from_scene(fresh.scene).to_dict() == expected_report.to_dict()
    # An edit made after reloading is detected against the mask saved with the scene.
    paint(fresh, "lesion_003", ellipse_mask(SIZES["R-MLO"], (42.0, 50.0), (7.0, 9.0)))
    assert again.sync_edits() == ["lesion_003"]
    assert again.item("lesion_003").audit[-1].who == "reader C"
