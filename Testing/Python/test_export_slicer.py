"""Slicer files (.seg.nrrd, .mrk.json) and the terminology context, read back with slicerio, jsonschema and
slicer-core's own storage nodes; positions checked against where Slicer's DICOM reader puts the source
image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.slicer_reader import read_like_slicer_dicom_plugin, reader_ijk_to_ras
from test_export_support import SIZES, make_study

from MammoDNNLib.export import export_all
from MammoDNNLib.export.terminology import terminology_context, terminology_entry, terminology_file
from MammoDNNLib.scene.schema import finding_from_tags
from MammoDNNLib.vocabulary import FINDING_TYPES, finding_type


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    study = make_study(folder / "in")
    result = export_all(
        study.report, folder / "out", what=("seg-nrrd", "markups"), report_path=study.report_path
    )
    return study, result, folder / "out"


def _reader_ijk_to_ras(path: Path) -> np.ndarray:
    """IJK->RAS of the source image as Slicer's DICOM plugin (GDCM reader) loads it."""
    return reader_ijk_to_ras(read_like_slicer_dicom_plugin(path))


def _headless_scene():
    slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    markups_logic = slicer.vtkSlicerMarkupsLogic()
    markups_logic.SetMRMLScene(scene)
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(scene)
    return scene, markups_logic, segmentations_logic


def test_seg_nrrd_segments_are_the_masks_in_slicer_space(exported) -> None:
    import slicerio

    study, result, out = exported
    assert sorted(p.name for p in result.files["seg-nrrd"]) == sorted(f"{k}.seg.nrrd" for k in SIZES)
    for key in SIZES:
        rows, cols = SIZES[key]
        segmentation = slicerio.read_segmentation(str(out / f"{key}.seg.nrrd"))
        findings = sorted(study.report.findings_in(key), key=lambda f: (f.number, f.id))
        assert [s["id"] for s in segmentation["segments"]] == [f.id for f in findings]
        ras_to_source_ijk = np.linalg.inv(_reader_ijk_to_ras(study.files[key]))
        file_ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ segmentation["ijkToLPS"]
        for segment, finding in zip(segmentation["segments"], findings, strict=True):
            t = finding_type(finding.type)
            assert segment["name"] == f"{key[0]} {key[2:]} {finding.number} {t.label} {finding.score:.2f}"
            np.testing.assert_allclose(segment["color"], t.color)
            term = segment["terminology"]
            assert term["contextName"] == "MammoDNN findings"
            assert term["type"][:2] == [t.code.scheme, t.code.value]
            assert term["anatomicRegion"][:2] == ["SCT", "76752008"]
            assert term["anatomicRegionModifier"][1] == {"R": "24028007", "L": "7771000"}[finding.laterality]
            assert segment["tags"]["MammoDNN.FindingId"] == finding.id
            # The tags are the scene's own, so Slicer reloads the file as reviewable MammoDNN results.
            again = finding_from_tags(segment["tags"])
            assert (again.id, again.type, again.number, again.match_id) == (
                finding.id, finding.type, finding.number, finding.match_id
            )
            assert again.score == finding.score and again.box == finding.box
            # Every voxel of the segment, taken to RAS and back into the source image as Slicer loads it.
            voxels = np.argwhere(slicerio.segment_mask(segmentation, segment["id"]))
            homogeneous = np.column_stack([voxels, np.ones(len(voxels))])
            source_ijk = (ras_to_source_ijk @ file_ijk_to_ras @ homogeneous.T).T[:, :3]
            np.testing.assert_allclose(source_ijk, np.rint(source_ijk), atol=1e-6)
            got = np.zeros((rows, cols), bool)
            idx = np.rint(source_ijk).astype(int)
            got[idx[:, 1], idx[:, 0]] = True
            np.testing.assert_array_equal(got, finding.mask.full((rows, cols)))


def test_overlapping_findings_go_to_separate_layers(exported) -> None:
    import slicerio

    _, _, out = exported
    segmentation = slicerio.read_segmentation(str(out / "R-CC.seg.nrrd"))
    layers = {s["id"]: s["layer"] for s in segmentation["segments"]}
    assert layers["lesion_001"] != layers["lesion_002"]  # the two R-CC ellipses overlap
    assert segmentation["voxels"].ndim == 4


def test_slicer_reads_the_segmentation(exported) -> None:
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    study, _, out = exported
    scene, _, _ = _headless_scene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(out / "R-CC.seg.nrrd"))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    rows, cols = SIZES["R-CC"]
    ras_to_source_ijk = np.linalg.inv(_reader_ijk_to_ras(study.files["R-CC"]))
    findings = {f.id: f for f in study.report.findings_in("R-CC")}
    assert sorted(segmentation.GetSegmentIDs()) == sorted(findings)
    for segment_id, finding in findings.items():
        segment = segmentation.GetSegment(segment_id)
        tag = vtk.mutable("")
        assert segment.GetTag("TerminologyEntry", tag)
        assert str(tag) == terminology_entry(finding.type, "R")
        labelmap = segment.GetRepresentation("Binary labelmap")
        image_to_world = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(image_to_world)
        to_source = ras_to_source_ijk @ np.array(
            [[image_to_world.GetElement(r, c) for c in range(4)] for r in range(4)]
        )
        np.testing.assert_allclose(to_source[:3, :3], np.eye(3), atol=1e-9)  # same grid as the source image
        i0, i1, j0, j1, _, _ = labelmap.GetExtent()
        values = vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(j1 - j0 + 1, i1 - i0 + 1)
        mask = np.zeros((rows, cols), bool)
        offset = np.rint(to_source[:3, 3]).astype(int)
        mask[j0 + offset[1] : j1 + 1 + offset[1], i0 + offset[0] : i1 + 1 + offset[0]] = (
            values == segment.GetLabelValue()
        )
        np.testing.assert_array_equal(mask, finding.mask.full((rows, cols)))


def test_markups_validate_against_slicer_schema(exported, shared_dir: Path) -> None:
    import jsonschema

    schema = json.loads((shared_dir / "reference" / "slicer" / "markups-schema-v1.0.3.json").read_text())
    _, result, _ = exported
    for path in result.files["markups"]:
        document = json.loads(path.read_text())
        jsonschema.validate(document, schema)
        assert document["@schema"].endswith("markups-schema-v1.0.3.json#")


def test_markups_load_in_slicer_at_the_boxes(exported) -> None:
    study, _, out = exported
    for key in SIZES:
        scene, logic, _ = _headless_scene()
        assert logic.LoadMarkups(str(out / f"{key}.mrk.json"))
        ijk_to_ras = _reader_ijk_to_ras(study.files[key])
        spacing = np.abs(np.diag(ijk_to_ras)[:2])
        findings = {f.id: f for f in study.report.findings_in(key)}
        rois = [
            scene.GetNthNodeByClass(i, "vtkMRMLMarkupsROINode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"))
        ]
        points = [
            scene.GetNthNodeByClass(i, "vtkMRMLMarkupsFiducialNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode"))
        ]
        assert len(rois) == len(findings) and len(points) == 1
        for roi in rois:
            finding = findings[roi.GetNthControlPointDescription(0)]
            x0, y0, x1, y1 = finding.box
            expected_centre = ijk_to_ras @ np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, 0.0, 1.0])
            centre = [0.0, 0.0, 0.0]
            roi.GetCenter(centre)
            np.testing.assert_allclose(centre, expected_centre[:3], atol=1e-5)
            np.testing.assert_allclose(
                roi.GetSize(), [(x1 - x0) * spacing[0], (y1 - y0) * spacing[1], 1.0], atol=1e-5
            )
            np.testing.assert_allclose(
                roi.GetDisplayNode().GetSelectedColor(), finding_type(finding.type).color, atol=1e-3
            )
        point_list = points[0]
        labels = {}
        for i in range(point_list.GetNumberOfControlPoints()):
            finding = findings[point_list.GetNthControlPointDescription(i)]
            position = [0.0, 0.0, 0.0]
            point_list.GetNthControlPointPosition(i, position)
            cx, cy = finding.center
            np.testing.assert_allclose(position, (ijk_to_ras @ [cx - 0.5, cy - 0.5, 0.0, 1.0])[:3], atol=1e-5)
            labels[finding.id] = point_list.GetNthControlPointLabel(i)
        if "lesion_001" in labels:
            assert labels["lesion_001"] == "R CC 1 Mass 0.91"


def test_terminology_file_is_generated_from_the_vocabulary_and_loads_in_slicer() -> None:
    slicer = pytest.importorskip("slicer")
    path = terminology_file()
    assert json.loads(path.read_text(encoding="utf-8")) == terminology_context()
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert logic.LoadTerminologyFromFile(str(path)) == "MammoDNN findings"
    for t in FINDING_TYPES:
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.FindTypeInTerminologyBy3dSlicerLabel("MammoDNN findings", t.key, entry)
        type_object = entry.GetTypeObject()
        assert (type_object.GetCodingSchemeDesignator(), type_object.GetCodeValue()) == (
            t.code.scheme,
            t.code.value,
        )
        assert list(type_object.GetRecommendedDisplayRGBValue()) == [round(255 * c) for c in t.color]
        # The segment tag string deserializes in Slicer and serializes back to itself.
        parsed = slicer.vtkSlicerTerminologyEntry()
        serialized = terminology_entry(t.key, "L")
        assert logic.DeserializeTerminologyEntry(serialized, parsed)
        assert logic.SerializeTerminologyEntry(parsed) == serialized
        assert parsed.GetRegionModifierObject().GetCodeValue() == "7771000"
