"""The 2×2 hanging layout and navigation against real MRML (slicer-core)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from test_scene_support import SIZES, breast_image, headless, make_report, make_study

pytest.importorskip("slicer")


def _volumes(app, study):
    from MammoDNNLib.scene.volumes import add_view_volume

    return {key: add_view_volume(app.scene, view) for key, view in study.views.items()}


def _ras(volume, ijk):
    import vtk

    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    return np.array(m.MultiplyPoint([float(ijk[0]), float(ijk[1]), float(ijk[2]), 1.0])[:3])


def test_layout_xml_hangs_right_breast_left_and_cc_on_top():
    from MammoDNNLib.scene.layout import SLICE_VIEWS, hanging_layout_xml

    root = ET.fromstring(hanging_layout_xml())
    assert root.tag == "layout" and root.get("type") == "vertical"
    rows = root.findall("./item/layout")
    assert [r.get("type") for r in rows] == ["horizontal", "horizontal"]
    grid = [[v.get("singletontag") for v in r.findall("./item/view")] for r in rows]
    assert grid == [
        [SLICE_VIEWS["R-CC"][0], SLICE_VIEWS["L-CC"][0]],
        [SLICE_VIEWS["R-MLO"][0], SLICE_VIEWS["L-MLO"][0]],
    ]
    assert all(v.get("class") == "vtkMRMLSliceNode" for v in root.iter("view"))


def test_apply_layout_registers_it_and_shows_each_volume_in_its_view():
    from MammoDNNLib.scene.layout import HANGING_LAYOUT_ID, SLICE_VIEWS, apply_hanging_layout

    app = headless()
    volumes = _volumes(app, make_study())
    slice_nodes = apply_hanging_layout(app.scene, volumes)
    assert app.layout_node.GetViewArrangement() == HANGING_LAYOUT_ID
    assert app.layout_node.IsLayoutDescription(HANGING_LAYOUT_ID)
    for key, slice_node in slice_nodes.items():
        assert slice_node.GetLayoutName() == SLICE_VIEWS[key][0]
        assert slice_node.GetLayoutLabel() == SLICE_VIEWS[key][1]
        composites = [
            app.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            for i in range(app.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))
        ]
        composite = [c for c in composites if c.GetLayoutName() == slice_node.GetLayoutName()]
        assert len(composite) == 1
        assert composite[0].GetBackgroundVolumeID() == volumes[key].GetID()
    # Applying again reuses the same slice nodes (as Slicer's layout logic does).
    again = apply_hanging_layout(app.scene, volumes)
    assert {k: n.GetID() for k, n in again.items()} == {k: n.GetID() for k, n in slice_nodes.items()}


@pytest.mark.parametrize("stored_chest_wall", ["right", "left"])
def test_chest_walls_face_each_other_and_tops_stay_up(stored_chest_wall):
    """Wherever the chest wall is stored, it ends on its viewer's inner side; row 0 stays on top."""
    from MammoDNNLib.scene.layout import apply_hanging_layout, ras_to_slice_xy

    app = headless()
    volumes = _volumes(app, make_study())
    walls = {key: stored_chest_wall for key in volumes}
    slice_nodes = apply_hanging_layout(app.scene, volumes, chest_walls=walls)
    for key, volume in volumes.items():
        rows, cols = SIZES[key]
        wall_i = cols - 0.5 if stored_chest_wall == "right" else -0.5
        nipple_i = -0.5 if stored_chest_wall == "right" else cols - 0.5
        wall = ras_to_slice_xy(slice_nodes[key], [_ras(volume, (wall_i, rows / 2, 0))])[0]
        nipple = ras_to_slice_xy(slice_nodes[key], [_ras(volume, (nipple_i, rows / 2, 0))])[0]
        top = ras_to_slice_xy(slice_nodes[key], [_ras(volume, (cols / 2, -0.5, 0))])[0]
        bottom = ras_to_slice_xy(slice_nodes[key], [_ras(volume, (cols / 2, rows - 0.5, 0))])[0]
        width, height, _ = slice_nodes[key].GetDimensions()
        if key.startswith("R"):  # left column: chest wall on the viewer's right edge
            assert wall[0] > width / 2 > nipple[0], key
        else:
            assert wall[0] < width / 2 < nipple[0], key
        assert top[1] > bottom[1], key  # y grows upwards in slice XY
        # The whole image is visible.
        for point in (wall, nipple, top, bottom):
            assert -1e-6 <= point[0] <= width + 1e-6 and -1e-6 <= point[1] <= height + 1e-6


def test_chest_wall_side_comes_from_report_then_attribute_then_pixels():
    from MammoDNNLib.findings import ViewInfo
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.layout import chest_wall_side

    app = headless()
    volumes = _volumes(app, make_study())
    node = volumes["R-CC"]  # synthetic R views have the chest wall on the right
    assert chest_wall_side(node) == "right"
    node.SetAttribute(schema.ATTR_CHEST_WALL, "left")
    assert chest_wall_side(node) == "left"
    info = ViewInfo("R-CC", None, "R", "CC", (72, 96), (0.5, 0.4), transform={"flip_x": True})
    assert chest_wall_side(node, info) == "right"


@pytest.mark.parametrize("polarity", [1, -1])
@pytest.mark.parametrize("right", [True, False])
def test_chest_wall_from_pixels_either_polarity(right, polarity):
    from MammoDNNLib.scene.layout import chest_wall_side_from_pixels

    image = breast_image((120, 90), chest_wall_right=right, seed=4, polarity=polarity)
    assert chest_wall_side_from_pixels(image) == ("right" if right else "left")


def test_center_on_finding_moves_its_view_and_its_matchs_view():
    from MammoDNNLib.scene.layout import apply_hanging_layout
    from MammoDNNLib.scene.navigation import center_on_finding, slice_center_ras
    from MammoDNNLib.scene.results import show_report

    app = headless()
    study = make_study()
    report = make_report(study)
    volumes = _volumes(app, study)
    slice_nodes = apply_hanging_layout(app.scene, volumes)
    show_report(app.scene, report, volumes, view_node_ids={k: [n.GetID()] for k, n in slice_nodes.items()})
    untouched_before = slice_center_ras(slice_nodes["L-CC"]).copy()

    moved = center_on_finding(app.scene, "lesion_001", field_of_view_mm=20.0)
    assert [n.GetID() for n in moved["lesion_001"]] == [slice_nodes["R-CC"].GetID()]
    assert [n.GetID() for n in moved["lesion_003"]] == [slice_nodes["R-MLO"].GetID()]
    for finding_id, key in (("lesion_001", "R-CC"), ("lesion_003", "R-MLO")):
        finding = report.finding(finding_id)
        cx, cy = finding.center
        np.testing.assert_allclose(
            slice_center_ras(slice_nodes[key]), _ras(volumes[key], (cx - 0.5, cy - 0.5, 0)), atol=1e-6
        )
        assert min(slice_nodes[key].GetFieldOfView()[:2]) == pytest.approx(20.0)
    np.testing.assert_allclose(slice_center_ras(slice_nodes["L-CC"]), untouched_before)

    only = center_on_finding(app.scene, "lesion_001", include_match=False)
    assert list(only) == ["lesion_001"]
    with pytest.raises(ValueError, match="no finding 'nope'"):
        center_on_finding(app.scene, "nope")


def test_result_nodes_are_drawn_only_in_their_own_view():
    """The four views share patient space: each view's results are restricted to its slice view."""
    from MammoDNNLib.scene.layout import apply_hanging_layout
    from MammoDNNLib.scene.results import show_report

    app = headless()
    study = make_study()
    volumes = _volumes(app, study)
    slice_nodes = apply_hanging_layout(app.scene, volumes)
    nodes = show_report(
        app.scene, make_report(study), volumes, view_node_ids={k: [n.GetID()] for k, n in slice_nodes.items()}
    )
    for key, view in nodes.views.items():
        for node in [view.segmentation, view.centres, *view.rois.values()]:
            display = node.GetDisplayNode()
            assert display.GetNumberOfViewNodeIDs() == 1
            assert display.GetNthViewNodeID(0) == slice_nodes[key].GetID()


def test_table_row_gives_the_finding_id():
    from MammoDNNLib.scene.navigation import finding_id_of_table_row
    from MammoDNNLib.scene.results import show_report

    app = headless()
    study = make_study()
    report = make_report(study)
    nodes = show_report(app.scene, report, _volumes(app, study))
    ids = [finding_id_of_table_row(nodes.findings_table, row) for row in range(len(report.findings))]
    assert sorted(ids) == sorted(f.id for f in report.findings)
    assert finding_id_of_table_row(nodes.findings_table, 99) is None
    assert finding_id_of_table_row(nodes.summary_table, 0) is None


def test_rendered_layout_draws_what_the_nodes_hold(tmp_path):
    """The figure is drawn from the nodes: boxes and points land where the report says, mirrored for the
    views the hanging layout flips."""
    from PIL import Image

    from MammoDNNLib.scene.layout import apply_hanging_layout
    from MammoDNNLib.scene.render import render_hanging_layout
    from MammoDNNLib.scene.results import show_report

    app = headless()
    study = make_study()
    report = make_report(study)
    volumes = _volumes(app, study)
    # Synthetic R views store the chest wall on the right (no flip needed), L views on the left (no flip
    # either). Force one view to be flipped to see the mirror in the drawing.
    slice_nodes = apply_hanging_layout(app.scene, volumes, chest_walls={"L-CC": "right"})
    show_report(app.scene, report, volumes, view_node_ids={k: [n.GetID()] for k, n in slice_nodes.items()})
    path = tmp_path / "layout.png"
    figure, rendered = render_hanging_layout(app.scene, path, dpi=60)
    with Image.open(path) as image:
        assert image.size[0] > 100 and image.size[1] > 100
    assert [k for k, v in rendered.items() if v.flipped] == ["L-CC"]
    for finding in report.findings:
        drawn = rendered[finding.view_key]
        rows, cols = SIZES[finding.view_key]
        x0, y0, x1, y1 = finding.box
        if drawn.flipped:
            x0, x1 = cols - x1, cols - x0
        np.testing.assert_allclose(drawn.boxes[finding.id], (x0, y0, x1, y1), atol=1e-3)
        cx, cy = finding.center
        if drawn.flipped:
            cx = cols - cx
        np.testing.assert_allclose(drawn.points[finding.id], (cx, cy), atol=1e-3)
        assert drawn.outlines[finding.id] == finding.lesion_mask((rows, cols)).area
