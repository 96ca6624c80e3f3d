"""A Report in the scene — segmentation, markups and table nodes — and the Report back from the scene.

For each view with a volume node:

- a **segmentation node** ("R-CC findings") whose reference geometry is the view's volume, with one segment
  per finding: segment ID = finding ID (``lesion_001`` …), name = :meth:`Finding.label` ("R CC 1 · Mass ·
  0.91"), colour = the finding type's colour, terminology =
  :func:`MammoDNNLib.export.terminology.terminology_entry` (SNOMED CT), the labelmap =
  :meth:`Finding.lesion_mask` exactly on the volume's IJK grid, and every report field as segment tags
  (:mod:`.schema`);
- one **ROI node** per finding box (single-ROI markups nodes, as Slicer ≥ 5 has them), oriented along the
  volume's axes, one slice thick, labelled "R CC 1", coloured by the finding's *number* — a matched CC/MLO
  pair shares its number and therefore its colour;
- one **point list** ("R-CC finding centres") with a labelled control point per finding centre (description =
  finding ID).

For the exam, a **findings table** (one row per finding: :data:`FINDINGS_COLUMNS`) and a **summary table**
(rows "Right breast", "Left breast", "Exam": :data:`SUMMARY_COLUMNS`). A hidden *report node* holds the
report-level fields and references every other node; all result nodes go into one subject-hierarchy folder.

:func:`report_from_scene` rebuilds the Report from these nodes alone (so from a reloaded ``.mrb`` too),
including annotators' review state (:func:`set_finding_review`).
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..export.terminology import terminology_entry
from ..findings import Finding, Report
from ..geometry import LesionMask
from ..vocabulary import VIEW_KEYS, finding_type
from . import schema
from .volume_geometry import box_to_ras, pixel_to_ras
from .volumes import _numpy_to_matrix, volume_ijk_to_ras, volume_shape

log = logging.getLogger(__name__)

FOLDER_NAME = "MammoDNN results"

# Colour-blind-safe qualitative palette (Okabe & Ito) for finding numbers: finding n uses PAIR_COLORS[(n-1) %
# 8].
PAIR_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.902, 0.624, 0.000),  # orange
    (0.337, 0.706, 0.914),  # sky blue
    (0.000, 0.620, 0.451),  # bluish green
    (0.941, 0.894, 0.259),  # yellow
    (0.000, 0.447, 0.698),  # blue
    (0.835, 0.369, 0.000),  # vermillion
    (0.800, 0.475, 0.655),  # reddish purple
    (1.000, 1.000, 1.000),  # white
)
CENTRE_COLOR = (1.0, 1.0, 1.0)

# (column name, title) of the findings table. Numbers are formatted for reading: score and malignancy with
# three decimals, depth and match probability with two; missing values are empty.
FINDINGS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "ID"),
    ("view", "View"),
    ("number", "#"),
    ("type", "Type"),
    ("score", "Score"),
    ("quadrant", "Quadrant"),
    ("depth", "Depth"),
    ("match_id", "Match"),
    ("match_probability", "Match prob."),
    ("malignancy", "Malignancy"),
    ("birads", "BI-RADS"),
    ("review_state", "Review"),
)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("scope", "Scope"),
    ("malignancy", "Malignancy"),
    ("birads", "BI-RADS"),
    ("findings", "Findings"),
    ("complete", "Complete"),
    ("note", "Note"),
)
SUMMARY_SCOPES: tuple[tuple[str, str], ...] = (("R", "Right breast"), ("L", "Left breast"), ("exam", "Exam"))


def pair_color(number: int) -> tuple[float, float, float]:
    return PAIR_COLORS[(max(int(number), 1) - 1) % len(PAIR_COLORS)]


def short_label(finding: Finding) -> str:
    """The label ROIs and points show, e.g. ``"R CC 1"``."""
    return f"{finding.laterality} {finding.view} {finding.number}"


def format_optional(value: float | None, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


@dataclass
class ViewResultNodes:
    """The nodes showing one view's findings."""

    key: str
    volume: Any  # vtkMRMLScalarVolumeNode
    segmentation: Any  # vtkMRMLSegmentationNode
    centres: Any  # vtkMRMLMarkupsFiducialNode
    rois: dict[str, Any] = field(default_factory=dict)  # finding id -> vtkMRMLMarkupsROINode


@dataclass
class ResultNodes:
    """Every node one analysis put in the scene (volumes are the inputs and are not owned)."""

    result_id: str
    report_node: Any  # vtkMRMLScriptedModuleNode
    views: dict[str, ViewResultNodes]
    findings_table: Any  # vtkMRMLTableNode
    summary_table: Any  # vtkMRMLTableNode

    def owned_nodes(self) -> list[Any]:
        nodes = [self.report_node, self.findings_table, self.summary_table]
        for v in self.views.values():
            nodes += [v.segmentation, v.centres, *v.rois.values()]
        return [n for n in nodes if n is not None]

    def view_of_finding(self, finding_id: str) -> ViewResultNodes:
        for v in self.views.values():
            if v.segmentation.GetSegmentation().GetSegment(finding_id) is not None:
                return v
        raise KeyError(finding_id)


# ------------------------------------------------------------------------------------------------------------
# Report -> scene


def show_report(
    scene,
    report: Report,
    volumes: Mapping[str, Any],
    *,
    result_id: str | None = None,
    view_node_ids: Mapping[str, Sequence[str]] | None = None,
) -> ResultNodes:
    """Create the result nodes of ``report`` on the view volumes ``{key: volume node}``.

    ``view_node_ids`` restricts each view's result nodes to the given view nodes (the slice views of the
    hanging layout): the four views share one patient space, so without it one view's findings would also be
    drawn over the other views' images. ``ValueError`` when a finding's view has no volume or a volume's size
    differs from the report's.
    """
    _check_volumes(report, volumes)
    result_id = result_id or uuid.uuid4().hex[:12]
    findings_by_view = {key: report.findings_in(key) for key in VIEW_KEYS if key in volumes}

    report_node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "MammoDNN report")
    report_node.SetHideFromEditors(True)
    _mark(report_node, result_id, schema.ROLE_REPORT)
    report_data = report.to_dict()
    report_data.pop("findings")
    report_node.SetAttribute(schema.ATTR_REPORT, json.dumps(report_data, sort_keys=True))
    report_node.SetAttribute(schema.ATTR_FINDING_ORDER, json.dumps([f.id for f in report.findings]))
    report_node.SetAttribute(schema.ATTR_SCHEMA_VERSION, schema.SCENE_SCHEMA_VERSION)
    report_node.SetAttribute(schema.ATTR_CREATED, datetime.datetime.now(datetime.timezone.utc).isoformat())

    views: dict[str, ViewResultNodes] = {}
    for key, findings in findings_by_view.items():
        volume = volumes[key]
        ids = list(view_node_ids.get(key, ())) if view_node_ids else []
        segmentation = _add_segmentation(scene, key, volume, findings, result_id, ids)
        centres = _add_centres(scene, key, volume, findings, result_id, ids)
        rois = {f.id: add_roi(scene, f, volume, result_id, ids) for f in findings}
        views[key] = ViewResultNodes(key, volume, segmentation, centres, rois)
        report_node.AddNodeReferenceID(schema.REF_VOLUME, volume.GetID())
        report_node.AddNodeReferenceID(schema.REF_SEGMENTATION, segmentation.GetID())
        report_node.AddNodeReferenceID(schema.REF_CENTRES, centres.GetID())
        for roi in rois.values():
            report_node.AddNodeReferenceID(schema.REF_ROI, roi.GetID())

    findings_table = scene.AddNewNodeByClass("vtkMRMLTableNode", "MammoDNN findings")
    _mark(findings_table, result_id, schema.ROLE_FINDINGS_TABLE)
    summary_table = scene.AddNewNodeByClass("vtkMRMLTableNode", "MammoDNN summary")
    _mark(summary_table, result_id, schema.ROLE_SUMMARY_TABLE)
    summary_table.SetAttribute(schema.ATTR_DISCLAIMER, report.disclaimer)
    report_node.SetNodeReferenceID(schema.REF_FINDINGS_TABLE, findings_table.GetID())
    report_node.SetNodeReferenceID(schema.REF_SUMMARY_TABLE, summary_table.GetID())

    nodes = ResultNodes(result_id, report_node, views, findings_table, summary_table)
    _fill_findings_table(findings_table, _table_rows(nodes))
    _fill_summary_table(summary_table, report)
    _put_in_folder(scene, nodes)
    return nodes


def _check_volumes(report: Report, volumes: Mapping[str, Any]) -> None:
    for key in sorted({f.view_key for f in report.findings}):
        if volumes.get(key) is None:
            raise ValueError(f"the report has findings on {key} but no volume node was given for {key}")
    for key, volume in volumes.items():
        rows, cols = volume_shape(volume)
        try:
            info = report.view(key)
        except KeyError:
            continue
        if tuple(info.size) != (cols, rows):
            raise ValueError(
                f"volume {volume.GetName()!r} is {cols}×{rows} pixels but the report's {key} view is "
                f"{info.size[0]}×{info.size[1]}; the report belongs to other images"
            )


def _mark(node, result_id: str, role: str, key: str | None = None) -> None:
    node.SetAttribute(schema.ATTR_RESULT_ID, result_id)
    node.SetAttribute(schema.ATTR_ROLE, role)
    if key:
        node.SetAttribute(schema.ATTR_VIEW_KEY, key)


def _restrict(display_node, view_node_ids: Sequence[str]) -> None:
    if display_node is not None and view_node_ids:
        display_node.SetViewNodeIDs(list(view_node_ids))


def _clipped_crop(mask: LesionMask, shape: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """The mask's crop clipped to the grid: (array, col0, row0)."""
    rows, cols = shape
    c0, r0 = mask.origin
    h, w = mask.array.shape
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, rows), min(c0 + w, cols)
    if rr1 <= rr0 or cc1 <= cc0:
        return np.zeros((0, 0), bool), 0, 0
    return mask.array[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0], cc0, rr0


def labelmap_from_mask(mask: LesionMask, shape: tuple[int, int], ijk_to_ras_matrix: np.ndarray):
    """A binary ``vtkOrientedImageData`` of ``mask`` on the volume's IJK grid (extent: the mask's crop)."""
    import vtk
    from slicer import vtkOrientedImageData
    from vtk.util import numpy_support

    crop, c0, r0 = _clipped_crop(mask, shape)
    image = vtkOrientedImageData()
    if crop.size and crop.any():
        h, w = crop.shape
        image.SetExtent(c0, c0 + w - 1, r0, r0 + h - 1, 0, 0)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = crop.astype(np.uint8).ravel()
    else:
        image.SetExtent(0, -1, 0, -1, 0, -1)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.SetImageToWorldMatrix(_numpy_to_matrix(ijk_to_ras_matrix))
    return image


def _add_segmentation(
    scene, key: str, volume, findings: list[Finding], result_id: str, view_ids: Sequence[str]
):
    from slicer import vtkSegment, vtkSegmentationConverter

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{key} findings")
    _mark(node, result_id, schema.ROLE_SEGMENTATION, key)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    node.SetNodeReferenceID(schema.REF_VOLUME, volume.GetID())
    display = node.GetDisplayNode()
    display.SetOpacity2DFill(0.2)
    display.SetOpacity2DOutline(1.0)
    display.SetSliceIntersectionThickness(2)
    _restrict(display, view_ids)

    shape = volume_shape(volume)
    matrix = volume_ijk_to_ras(volume)
    segmentation = node.GetSegmentation()
    labelmap_name = vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    for finding in findings:
        segment = vtkSegment()
        segment.SetName(finding.label())
        segment.SetNameAutoGenerated(False)
        segment.SetColor(*finding_type(finding.type).color)
        segment.SetColorAutoGenerated(False)
        segment.SetTag(
            segment.GetTerminologyEntryTagName(), terminology_entry(finding.type, finding.laterality)
        )
        for tag, value in schema.finding_to_tags(finding).items():
            segment.SetTag(tag, value)
        segment.AddRepresentation(
            labelmap_name, labelmap_from_mask(finding.lesion_mask(shape), shape, matrix)
        )
        if not segmentation.AddSegment(segment, finding.id):
            raise ValueError(
                f"could not add segment {finding.id!r} to {node.GetName()!r} (duplicate finding id?)"
            )
    segmentation.CollapseBinaryLabelmaps(False)  # share layers where segments do not overlap
    return node


def add_roi(scene, finding: Finding, volume, result_id: str, view_ids: Sequence[str]):
    box = box_to_ras(finding.box, volume_ijk_to_ras(volume))
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", finding.label())
    _mark(node, result_id, schema.ROLE_ROI, finding.view_key)
    node.SetAttribute(schema.ATTR_FINDING_ID, finding.id)
    node.CreateDefaultDisplayNodes()
    rotation = np.eye(4)
    rotation[:3, :3] = box.axes
    node.SetAndObserveObjectToNodeMatrix(_numpy_to_matrix(rotation))
    node.SetCenter(*box.center)
    node.SetSize(*box.size)
    if node.GetNumberOfControlPoints():
        node.SetNthControlPointLabel(0, short_label(finding))
        node.SetNthControlPointDescription(0, finding.id)
    node.SetLocked(True)
    display = node.GetDisplayNode()
    color = pair_color(finding.number)
    display.SetColor(*color)
    display.SetSelectedColor(*color)
    display.SetHandlesInteractive(False)
    display.SetFillOpacity(0.0)
    _restrict(display, view_ids)
    return node


def _add_centres(scene, key: str, volume, findings: list[Finding], result_id: str, view_ids: Sequence[str]):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{key} finding centres")
    _mark(node, result_id, schema.ROLE_CENTRES, key)
    node.CreateDefaultDisplayNodes()
    matrix = volume_ijk_to_ras(volume)
    for finding in findings:
        x, y, z = pixel_to_ras([finding.center], matrix)[0]
        index = node.AddControlPoint(float(x), float(y), float(z), short_label(finding))
        node.SetNthControlPointDescription(index, finding.id)
    node.SetLocked(True)
    display = node.GetDisplayNode()
    display.SetColor(*CENTRE_COLOR)
    display.SetSelectedColor(*CENTRE_COLOR)
    _restrict(display, view_ids)
    return node


def _table_rows(nodes: ResultNodes) -> list[dict[str, Any]]:
    """Rows of the findings table from the segments' tags, in hanging order then number."""
    rows = []
    for key in VIEW_KEYS:
        view = nodes.views.get(key)
        if view is None:
            continue
        segmentation = view.segmentation.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            tags = segment_tags(segmentation.GetNthSegment(index))
            if schema.TAG_FINDING_ID not in tags:
                continue
            f = schema.finding_from_tags(tags)
            rows.append(
                {
                    "id": f.id,
                    "view": f.view_key,
                    "number": int(f.number),
                    "type": finding_type(f.type).label,
                    "score": format_optional(f.score, 3),
                    "quadrant": f.quadrant or "",
                    "depth": format_optional(f.depth, 2),
                    "match_id": f.match_id or "",
                    "match_probability": format_optional(f.match_probability, 2),
                    "malignancy": format_optional(f.malignancy, 3),
                    "birads": f.birads or "",
                    "review_state": schema.decode_value(tags.get(schema.TAG_REVIEW_STATE, ""))
                    or "unreviewed",
                }
            )
    rows.sort(key=lambda r: (VIEW_KEYS.index(r["view"]), r["number"], r["id"]))
    return rows


def _fill_table(
    table_node, columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]], int_columns=()
) -> None:
    import vtk

    was_modifying = table_node.StartModify()
    table = table_node.GetTable()
    table.Initialize()
    for name, _title in columns:
        array = vtk.vtkIntArray() if name in int_columns else vtk.vtkStringArray()
        array.SetName(name)
        array.SetNumberOfValues(len(rows))
        for r, row in enumerate(rows):
            array.SetValue(r, int(row[name]) if name in int_columns else str(row[name]))
        table.AddColumn(array)
    for name, title in columns:
        table_node.SetColumnTitle(name, title)
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.SetLocked(True)
    table_node.Modified()
    table_node.EndModify(was_modifying)


def _fill_findings_table(table_node, rows: list[dict[str, Any]]) -> None:
    _fill_table(table_node, FINDINGS_COLUMNS, rows, int_columns=("number",))


def _fill_summary_table(table_node, report: Report) -> None:
    rows = []
    for scope, title in SUMMARY_SCOPES:
        summary = report.exam if scope == "exam" else report.breasts.get(scope)
        if summary is None:
            continue
        rows.append(
            {
                "scope": title,
                "malignancy": format_optional(summary.score, 3),
                "birads": summary.birads,
                "findings": int(summary.findings),
                "complete": "yes" if summary.complete else "no",
                "note": summary.note or "",
            }
        )
    _fill_table(table_node, SUMMARY_COLUMNS, rows, int_columns=("findings",))


def _put_in_folder(scene, nodes: ResultNodes) -> None:
    from slicer import vtkMRMLSubjectHierarchyNode

    sh = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), f"{FOLDER_NAME} {nodes.result_id}")
    sh.SetItemAttribute(folder, schema.ATTR_RESULT_ID, nodes.result_id)
    for node in nodes.owned_nodes():
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, folder)
        else:  # without Slicer's subject hierarchy plugins (headless) nodes get no item of their own
            sh.CreateItem(folder, node)


# ------------------------------------------------------------------------------------------------------------
# scene -> Report


def segment_tags(segment) -> dict[str, str]:
    """The MammoDNN tags of a segment (values as stored, i.e. encoded)."""
    import vtk

    tags = {}
    for name in schema.FINDING_TAGS:
        value = vtk.reference("")
        if segment.GetTag(name, value):
            tags[name] = str(value)
    return tags


def segment_mask(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """The segment as a (rows, cols) bool array on ``volume_node``'s IJK grid (exact if grids coincide)."""
    from slicer import vtkOrientedImageData, vtkOrientedImageDataResample
    from vtk.util import numpy_support

    rows, cols = volume_shape(volume_node)
    labelmap = vtkOrientedImageData()
    if not segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap):
        raise ValueError(f"segment {segment_id!r} of {segmentation_node.GetName()!r} has no labelmap")
    reference = vtkOrientedImageData()
    reference.SetExtent(0, cols - 1, 0, rows - 1, 0, 0)
    reference.SetImageToWorldMatrix(_numpy_to_matrix(volume_ijk_to_ras(volume_node)))
    resampled = vtkOrientedImageData()
    empty = labelmap.GetPointData().GetScalars() is None or labelmap.GetNumberOfPoints() == 0
    if empty:
        return np.zeros((rows, cols), bool)
    vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False
    )
    scalars = resampled.GetPointData().GetScalars()
    if scalars is None:
        return np.zeros((rows, cols), bool)
    return numpy_support.vtk_to_numpy(scalars).reshape(rows, cols) > 0


def result_ids(scene) -> list[str]:
    """IDs of the MammoDNN results in the scene, oldest first."""
    ids = []
    for node in _nodes_with_role(scene, schema.ROLE_REPORT):
        ids.append(node.GetAttribute(schema.ATTR_RESULT_ID))
    return ids


def _nodes_with_role(scene, role: str, result_id: str | None = None) -> list[Any]:
    found = []
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.GetAttribute(schema.ATTR_ROLE) != role:
            continue
        if result_id is not None and node.GetAttribute(schema.ATTR_RESULT_ID) != result_id:
            continue
        found.append(node)
    return found


def find_results(scene, result_id: str | None = None) -> ResultNodes:
    """The result nodes of ``result_id`` (default: the most recent result in the scene)."""
    reports = _nodes_with_role(scene, schema.ROLE_REPORT, result_id)
    if not reports:
        which = f" with id {result_id!r}" if result_id else ""
        raise ValueError(f"the scene holds no MammoDNN results{which}; run an analysis first")
    report_node = reports[-1]
    rid = report_node.GetAttribute(schema.ATTR_RESULT_ID)
    views: dict[str, ViewResultNodes] = {}
    for index in range(report_node.GetNumberOfNodeReferences(schema.REF_SEGMENTATION)):
        segmentation = report_node.GetNthNodeReference(schema.REF_SEGMENTATION, index)
        if segmentation is None:
            continue
        key = segmentation.GetAttribute(schema.ATTR_VIEW_KEY)
        volume = segmentation.GetNodeReference(schema.REF_VOLUME)
        if volume is None:
            raise ValueError(f"segmentation {segmentation.GetName()!r} has lost its volume node")
        views[key] = ViewResultNodes(key, volume, segmentation, None)
    for index in range(report_node.GetNumberOfNodeReferences(schema.REF_CENTRES)):
        node = report_node.GetNthNodeReference(schema.REF_CENTRES, index)
        if node is not None and node.GetAttribute(schema.ATTR_VIEW_KEY) in views:
            views[node.GetAttribute(schema.ATTR_VIEW_KEY)].centres = node
    for index in range(report_node.GetNumberOfNodeReferences(schema.REF_ROI)):
        node = report_node.GetNthNodeReference(schema.REF_ROI, index)
        if node is not None and node.GetAttribute(schema.ATTR_VIEW_KEY) in views:
            views[node.GetAttribute(schema.ATTR_VIEW_KEY)].rois[node.GetAttribute(schema.ATTR_FINDING_ID)] = (
                node
            )
    views = {k: views[k] for k in VIEW_KEYS if k in views}
    return ResultNodes(
        rid,
        report_node,
        views,
        report_node.GetNodeReference(schema.REF_FINDINGS_TABLE),
        report_node.GetNodeReference(schema.REF_SUMMARY_TABLE),
    )


def report_from_scene(scene, result_id: str | None = None) -> Report:
    """Rebuild the Report of ``result_id`` (default: the most recent) from the scene's nodes alone.

    Report-level fields come from the report node; each finding from its segment's tags, its mask from the
    segment's labelmap on the volume grid (see :func:`~.schema.finding_from_tags` for review state and edits).
    Segments without MammoDNN tags (drawn by a user) are skipped.
    """
    nodes = find_results(scene, result_id)
    data = json.loads(nodes.report_node.GetAttribute(schema.ATTR_REPORT) or "{}")
    data["findings"] = []
    try:
        report = Report.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the MammoDNN report node of result {nodes.result_id} is damaged ({exc})") from None
    findings: dict[str, Finding] = {}
    for view in nodes.views.values():
        segmentation = view.segmentation.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            tags = segment_tags(segment)
            if schema.TAG_FINDING_ID not in tags:
                log.info("segment %r of %s has no MammoDNN tags; skipped", segment.GetName(), view.key)
                continue
            segment_id = segmentation.GetNthSegmentID(index)
            mask = LesionMask.from_full(segment_mask(view.segmentation, segment_id, view.volume))
            finding = schema.finding_from_tags(tags, mask)
            findings[finding.id] = finding
    order = json.loads(nodes.report_node.GetAttribute(schema.ATTR_FINDING_ORDER) or "[]")
    ordered = [findings.pop(i) for i in order if i in findings]
    report.findings = ordered + list(findings.values())
    return report


def set_finding_review(
    scene,
    finding_id: str,
    *,
    state: str | None = None,
    type: str | None = None,
    note: str | None = None,
    result_id: str | None = None,
) -> Finding:
    """Record an annotator's decision on a finding in its segment's tags (and refresh names, colours, tables).

    ``type`` changes the finding type (segment name, colour and terminology follow; the model's type stays in
    ``MammoDNN.ModelType``). Returns the finding as :func:`report_from_scene` now sees it.
    """
    nodes = find_results(scene, result_id)
    try:
        view = nodes.view_of_finding(finding_id)
    except KeyError:
        raise ValueError(f"no finding {finding_id!r} in MammoDNN result {nodes.result_id}") from None
    segment = view.segmentation.GetSegmentation().GetSegment(finding_id)
    if state is not None:
        if state not in schema.REVIEW_STATES:
            raise ValueError(
                f"unknown review state {state!r}; expected one of {', '.join(schema.REVIEW_STATES)}"
            )
        segment.SetTag(schema.TAG_REVIEW_STATE, state)
    if note is not None:
        segment.SetTag(schema.TAG_REVIEW_NOTE, schema.encode_value(note))
    if type is not None:
        ft = finding_type(type)
        segment.SetTag(schema.TAG_TYPE, ft.key)
        segment.SetColor(*ft.color)
        segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_entry(ft.key, view.key[0]))
    finding = schema.finding_from_tags(segment_tags(segment))
    segment.SetName(finding.label())
    roi = view.rois.get(finding_id)
    if roi is not None:
        roi.SetName(finding.label())
    if nodes.findings_table is not None:
        _fill_findings_table(nodes.findings_table, _table_rows(nodes))
    mask = LesionMask.from_full(segment_mask(view.segmentation, finding_id, view.volume))
    return schema.finding_from_tags(segment_tags(segment), mask)


def remove_results(scene, result_id: str | None = None) -> int:
    """Remove the nodes of ``result_id`` (default: all MammoDNN results); returns how many it removed."""
    removed = 0
    ids = [result_id] if result_id else result_ids(scene)
    for rid in ids:
        for role in schema.ROLES:
            for node in _nodes_with_role(scene, role, rid):
                scene.RemoveNode(node)
                removed += 1
        _remove_folder(scene, rid)
    return removed


def _remove_folder(scene, result_id: str) -> None:
    from slicer import vtkMRMLSubjectHierarchyNode

    sh = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return
    import vtk

    children = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), children, False)
    for index in range(children.GetNumberOfIds()):
        item = children.GetId(index)
        if sh.GetItemAttribute(item, schema.ATTR_RESULT_ID) == result_id:
            sh.RemoveItem(item, False, False)


def finding_centre_ras(
    scene, finding_id: str, result_id: str | None = None
) -> tuple[Any, np.ndarray, str | None]:
    """(volume node, centre in RAS, matched finding id) of a finding, from its segment's tags."""
    nodes = find_results(scene, result_id)
    try:
        view = nodes.view_of_finding(finding_id)
    except KeyError:
        raise ValueError(f"no finding {finding_id!r} in MammoDNN result {nodes.result_id}") from None
    finding = schema.finding_from_tags(
        segment_tags(view.segmentation.GetSegmentation().GetSegment(finding_id))
    )
    centre = pixel_to_ras([finding.center], volume_ijk_to_ras(view.volume))[0]
    return view.volume, centre, finding.match_id
