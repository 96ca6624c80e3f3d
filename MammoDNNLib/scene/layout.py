"""The 2×2 mammography hanging layout: R-CC | L-CC over R-MLO | L-MLO, chest walls facing each other.

The layout is a Slicer layout description (:func:`hanging_layout_xml`) with four slice views
(:data:`SLICE_VIEWS`), registered on the scene's layout node under :data:`HANGING_LAYOUT_ID`. Each view shows
its view's volume as the background layer, in the plane of that volume, oriented so that

- the image's top row stays at the top of the viewer, and
- the chest wall is on the inner side: on the right edge of the right breast's viewers (left column) and on
  the left edge of the left breast's viewers (right column) — the images hang back to back, as radiologists
  read them.

The orientation is a slice-orientation preset (:data:`ORIENTATION_PRESET`) on each slice node: screen x along
the volume's column axis (``+i``) or against it (``-i``, a horizontal flip), screen y against the row axis
(``-j``, rows run down the screen). Which edge holds the chest wall comes from, in order: the analysis report
(the preprocessing transform flips views whose chest wall is on the right), the volume's
``MammoDNN.ChestWall`` attribute (DICOM PatientOrientation), or the pixels
(:func:`chest_wall_side_from_pixels`).

Slicer's layout manager (or, headless, a ``vtkMRMLLayoutLogic``) creates the slice nodes when the layout is
selected; :func:`apply_hanging_layout` creates any that are still missing the same way, so it works with or
without one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..vocabulary import VIEW_KEYS, split_view_key
from . import schema
from .volumes import _numpy_to_matrix, volume_ijk_to_ras, volume_pixels, volume_shape

log = logging.getLogger(__name__)

# A layout id no Slicer built-in uses (built-ins are < 100; extensions pick large numbers).
HANGING_LAYOUT_ID = 5101
ORIENTATION_PRESET = "Mammography"

# view key -> (layout name of the slice view, label shown in its bar, colour of its bar)
SLICE_VIEWS: dict[str, tuple[str, str, str]] = {
    "R-CC": ("MammoRCC", "R CC", "#c0392b"),
    "L-CC": ("MammoLCC", "L CC", "#2471a3"),
    "R-MLO": ("MammoRMLO", "R MLO", "#e67e22"),
    "L-MLO": ("MammoLMLO", "L MLO", "#17a589"),
}


def hanging_layout_xml() -> str:
    """Slicer layout description: CC row over MLO row, right breast on the left, left on the right."""

    def view(key: str) -> str:
        name, label, color = SLICE_VIEWS[key]
        return (
            f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">'
            f'<property name="orientation" action="default">Axial</property>'
            f'<property name="viewlabel" action="default">{label}</property>'
            f'<property name="viewcolor" action="default">{color}</property>'
            f"</view></item>"
        )

    rows = [
        f'<item><layout type="horizontal">{view("R-CC")}{view("L-CC")}</layout></item>',
        f'<item><layout type="horizontal">{view("R-MLO")}{view("L-MLO")}</layout></item>',
    ]
    return f'<layout type="vertical">{"".join(rows)}</layout>'


def layout_node_of(scene, layout_node=None):
    """The scene's layout node (created if the scene has none, as Slicer's layout manager would)."""
    if layout_node is not None:
        return layout_node
    node = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    return node


def register_hanging_layout(layout_node) -> int:
    """Add (or refresh) the hanging layout description on ``layout_node``; returns its id."""
    xml = hanging_layout_xml()
    if layout_node.IsLayoutDescription(HANGING_LAYOUT_ID):
        layout_node.SetLayoutDescription(HANGING_LAYOUT_ID, xml)
    else:
        layout_node.AddLayoutDescription(HANGING_LAYOUT_ID, xml)
    return HANGING_LAYOUT_ID


def slice_node_for(scene, key: str, *, create: bool = True):
    """The slice node of ``key``'s hanging view (created like Slicer's layout logic does, if missing)."""
    name, label, color = SLICE_VIEWS[key]
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLSliceNode")
        if node.GetLayoutName() == name:
            return node
    if not create:
        return None
    node = scene.CreateNodeByClass("vtkMRMLSliceNode")
    node.SetLayoutName(name)
    node.SetName(name)
    node.SetLayoutLabel(label)
    node.SetLayoutColor(*_hex_to_rgb(color))
    scene.AddNode(node)
    node.UnRegister(None)  # CreateNodeByClass returned a new reference; the scene holds it now
    return node


def slice_composite_node_for(scene, slice_node):
    """The slice composite node of a slice view (created like ``vtkMRMLSliceLogic`` does, if missing)."""
    name = slice_node.GetLayoutName()
    node = None
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        candidate = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        if candidate.GetLayoutName() == name:  # how vtkMRMLSliceLogic finds a view's composite node
            node = candidate
            break
    if node is None:
        node = scene.CreateNodeByClass("vtkMRMLSliceCompositeNode")
        node.SetLayoutName(name)
        scene.AddNode(node)
        node.UnRegister(None)
    return node


def _hex_to_rgb(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def chest_wall_side_from_pixels(pixels: np.ndarray) -> str:
    """The image edge ("left" or "right") the breast is attached to.

    The breast fills the chest-wall edge of a mammogram from top to bottom while the opposite edge is mostly
    background. Background is the image's most common value (air, whatever the polarity), so the chest-wall
    edge is the edge strip with more pixels that differ from it.
    """
    image = np.asarray(pixels, dtype=np.float64)
    rows, cols = image.shape
    low, high = np.percentile(image, [0.5, 99.5])
    if high <= low:
        return "left"
    levels = np.clip(np.round((image - low) / (high - low) * 63), 0, 63).astype(int)
    background = int(np.bincount(levels.ravel(), minlength=64).argmax())
    width = max(1, cols // 20)
    tissue = np.abs(levels - background) > 6
    left = tissue[:, :width].mean()
    right = tissue[:, cols - width :].mean()
    return "right" if right > left else "left"


def chest_wall_side(volume_node, report_view_info: Any | None = None) -> str:
    """A view volume's chest-wall edge: from the report's transform, the node's attribute, or its pixels."""
    transform = getattr(report_view_info, "transform", None) if report_view_info is not None else None
    if transform and "flip_x" in transform:
        return "right" if transform["flip_x"] else "left"
    recorded = volume_node.GetAttribute(schema.ATTR_CHEST_WALL)
    if recorded in ("left", "right"):
        return recorded
    return chest_wall_side_from_pixels(volume_pixels(volume_node))


def hanging_orientation(volume_node, key: str, chest_wall: str) -> np.ndarray:
    """3×3 slice orientation (columns: screen x, screen y, normal in RAS) for ``key``'s viewer."""
    laterality, _ = split_view_key(key)
    m = volume_ijk_to_ras(volume_node)[:3, :3]
    i_axis = m[:, 0] / np.linalg.norm(m[:, 0])
    j_axis = m[:, 1] / np.linalg.norm(m[:, 1])
    wanted = "right" if laterality == "R" else "left"  # chest wall towards the middle of the 2x2
    x_axis = i_axis if chest_wall == wanted else -i_axis
    y_axis = -j_axis  # row 0 at the top of the viewer
    y_axis = y_axis - x_axis * float(np.dot(x_axis, y_axis))  # orthogonalize sheared volumes
    y_axis /= np.linalg.norm(y_axis)
    normal = np.cross(x_axis, y_axis)
    return np.column_stack([x_axis, y_axis, normal])


def set_orientation(slice_node, orientation: np.ndarray) -> None:
    import vtk

    matrix = vtk.vtkMatrix3x3()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, float(orientation[r, c]))
    if slice_node.HasSliceOrientationPreset(ORIENTATION_PRESET):
        slice_node.RemoveSliceOrientationPreset(ORIENTATION_PRESET)
    slice_node.AddSliceOrientationPreset(ORIENTATION_PRESET, matrix)
    slice_node.SetOrientation(ORIENTATION_PRESET)


def fit_slice_to_volume(slice_node, volume_node) -> None:
    """Centre the view on the volume and zoom so the whole image fits (keeping the viewer's aspect ratio)."""
    rows, cols = volume_shape(volume_node)
    m = volume_ijk_to_ras(volume_node)
    corners_ijk = np.array([[i, j, 0.0, 1.0] for i in (-0.5, cols - 0.5) for j in (-0.5, rows - 0.5)])
    corners = (corners_ijk @ m.T)[:, :3]
    centre = corners.mean(axis=0)
    slice_to_ras = _slice_to_ras(slice_node)
    x_axis, y_axis = slice_to_ras[:3, 0], slice_to_ras[:3, 1]
    width = float(np.ptp(corners @ x_axis))
    height = float(np.ptp(corners @ y_axis))
    dims = slice_node.GetDimensions()
    aspect = dims[0] / dims[1] if dims[1] else 1.0
    if width / max(height, 1e-9) > aspect:
        height = width / aspect
    else:
        width = height * aspect
    slice_to_ras[:3, 3] = centre
    slice_node.GetSliceToRAS().DeepCopy(_numpy_to_matrix(slice_to_ras))
    thickness = slice_node.GetFieldOfView()[2]
    slice_node.SetFieldOfView(width * 1.02, height * 1.02, thickness)
    slice_node.SetXYZOrigin(0.0, 0.0, 0.0)
    slice_node.UpdateMatrices()


def _slice_to_ras(slice_node) -> np.ndarray:
    m = slice_node.GetSliceToRAS()
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def apply_hanging_layout(
    scene,
    volumes: Mapping[str, Any],
    *,
    chest_walls: Mapping[str, str] | None = None,
    layout_node=None,
    select: bool = True,
) -> dict[str, Any]:
    """Show ``volumes`` ``{key: volume node}`` in the 2×2 hanging layout; returns ``{key: slice node}``.

    ``chest_walls`` ``{key: "left"|"right"}`` overrides :func:`chest_wall_side`. Views without a volume keep
    an empty viewer. ``select=False`` registers and prepares the views without switching the layout.
    """
    layout_node = layout_node_of(scene, layout_node)
    register_hanging_layout(layout_node)
    if select:
        layout_node.SetViewArrangement(HANGING_LAYOUT_ID)
    slice_nodes = {}
    for key in VIEW_KEYS:
        slice_node = slice_node_for(scene, key)
        composite = slice_composite_node_for(scene, slice_node)
        volume = volumes.get(key)
        composite.SetBackgroundVolumeID(volume.GetID() if volume is not None else None)
        composite.SetForegroundVolumeID(None)
        composite.SetLabelVolumeID(None)
        if volume is not None:
            side = (chest_walls or {}).get(key) or chest_wall_side(volume)
            set_orientation(slice_node, hanging_orientation(volume, key, side))
            fit_slice_to_volume(slice_node, volume)
        slice_nodes[key] = slice_node
    return slice_nodes


def ras_to_slice_xy(slice_node, points_ras: np.ndarray) -> np.ndarray:
    """(N, 3) RAS → (N, 2) viewer pixel coordinates (x right, y up; (0, 0) at the bottom-left corner)."""
    m = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    pts = np.column_stack([np.asarray(points_ras, dtype=np.float64).reshape(-1, 3), np.ones(len(points_ras))])
    return (pts @ np.linalg.inv(xy_to_ras).T)[:, :2]
