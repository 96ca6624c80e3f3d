"""Centre the slice views on a finding (and on its matched finding in the other view of the breast)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import schema
from .results import find_results, finding_centre_ras


def slice_nodes_showing(scene, volume_node) -> list[Any]:
    """Slice nodes whose background layer is ``volume_node``."""
    found = []
    volume_id = volume_node.GetID()
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        if composite.GetBackgroundVolumeID() != volume_id:
            continue
        name = composite.GetLayoutName()
        for s in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            slice_node = scene.GetNthNodeByClass(s, "vtkMRMLSliceNode")
            if slice_node.GetLayoutName() == name:
                found.append(slice_node)
    return found


def center_on_finding(
    scene,
    finding_id: str,
    *,
    include_match: bool = True,
    field_of_view_mm: float | None = None,
    result_id: str | None = None,
) -> dict[str, list[Any]]:
    """Move every slice view showing the finding's volume so the finding's centre is in the middle.

    With ``include_match``, the views of the matched finding (other view of the same breast) follow. With
    ``field_of_view_mm``, those views also zoom so that the shorter side spans that many millimetres. Returns
    ``{finding id: [slice nodes moved]}``. ``ValueError`` for an unknown finding.
    """
    moved: dict[str, list[Any]] = {}
    targets = [finding_id]
    volume, centre, match_id = finding_centre_ras(scene, finding_id, result_id)
    if include_match and match_id:
        nodes = find_results(scene, result_id)
        try:
            nodes.view_of_finding(match_id)
            targets.append(match_id)
        except KeyError:
            pass  # the match is on a view that is not in the scene
    for target in targets:
        if target == finding_id:
            target_volume, target_centre = volume, centre
        else:
            target_volume, target_centre, _ = finding_centre_ras(scene, target, result_id)
        moved[target] = []
        for slice_node in slice_nodes_showing(scene, target_volume):
            if field_of_view_mm:
                _zoom(slice_node, float(field_of_view_mm))
            slice_node.JumpSliceByCentering(*(float(v) for v in target_centre))
            moved[target].append(slice_node)
    return moved


def _zoom(slice_node, shorter_side_mm: float) -> None:
    width, height, thickness = slice_node.GetFieldOfView()
    scale = shorter_side_mm / max(min(width, height), 1e-9)
    slice_node.SetFieldOfView(width * scale, height * scale, thickness)


def slice_center_ras(slice_node) -> np.ndarray:
    """Where the middle of a slice view is, in RAS."""
    m = slice_node.GetSliceToRAS()
    return np.array([m.GetElement(r, 3) for r in range(3)])


def finding_id_of_table_row(table_node, row: int) -> str | None:
    """The finding ID in ``row`` of a MammoDNN findings table (``None`` outside the table)."""
    if table_node is None or table_node.GetAttribute(schema.ATTR_ROLE) != schema.ROLE_FINDINGS_TABLE:
        return None
    if not 0 <= row < table_node.GetNumberOfRows():
        return None
    column = table_node.GetColumnIndex("id")
    return table_node.GetCellText(row, column) if column >= 0 else None
