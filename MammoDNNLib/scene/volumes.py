"""Views ↔ scalar volume nodes.

A :class:`~MammoDNNLib.study.View` becomes a single-slice ``vtkMRMLScalarVolumeNode`` whose IJK→RAS is the one
Slicer's DICOM loader would give the view's file (:func:`MammoDNNLib.export.space.geometry_for_view`, shared
with the ``.seg.nrrd`` / ``.mrk.json`` writers), with the view identity in node attributes (:mod:`.schema`).
Going back, any 2-D scalar volume node — MammoDNN's own or one a user loaded — gives its pixels, spacing and,
where known, laterality and view.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..study import View
from ..vocabulary import VIEW_KEYS, split_view_key, view_key
from . import schema

log = logging.getLogger(__name__)


def _matrix_to_numpy(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _numpy_to_matrix(array: np.ndarray):
    import vtk

    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def volume_ijk_to_ras(volume_node) -> np.ndarray:
    """The volume node's own 4×4 IJK→RAS."""
    import vtk

    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return _matrix_to_numpy(m)


def volume_shape(volume_node) -> tuple[int, int]:
    """(rows, cols) of a single-slice volume; ``ValueError`` for anything else."""
    image = volume_node.GetImageData() if volume_node is not None else None
    name = volume_node.GetName() if volume_node is not None else "?"
    if image is None:
        raise ValueError(f"volume {name!r} has no image data")
    cols, rows, slices = image.GetDimensions()
    if slices != 1:
        raise ValueError(f"volume {name!r} has {slices} slices; a mammogram view is a single 2-D image")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"volume {name!r} has {image.GetNumberOfScalarComponents()} components per pixel; "
            "a mammogram view is a single-component (grayscale) image"
        )
    return rows, cols


def volume_pixels(volume_node) -> np.ndarray:
    """A copy of the pixels as a (rows, cols) float32 array, row ``j``, column ``i``."""
    from vtk.util import numpy_support

    rows, cols = volume_shape(volume_node)
    scalars = volume_node.GetImageData().GetPointData().GetScalars()
    return numpy_support.vtk_to_numpy(scalars).reshape(rows, cols).astype(np.float32, copy=True)


def volume_spacing(volume_node) -> tuple[float, float]:
    """(row, col) mm per pixel: the view spacing MammoDNN recorded, else from the node's own IJK→RAS."""
    recorded = volume_node.GetAttribute(schema.ATTR_SPACING)
    if recorded:
        try:
            row_mm, col_mm = (float(v) for v in recorded.split())
            if row_mm > 0 and col_mm > 0:
                return row_mm, col_mm
        except ValueError:
            log.warning(
                "volume %r: ignoring invalid %s %r", volume_node.GetName(), schema.ATTR_SPACING, recorded
            )
    m = volume_ijk_to_ras(volume_node)
    col_mm, row_mm = np.linalg.norm(m[:3, :2], axis=0)
    return float(row_mm), float(col_mm)


def set_view_identity(volume_node, laterality: str, view: str) -> None:
    """Record which view a volume is (attributes :data:`~.schema.ATTR_VIEW_KEY`, laterality, view)."""
    key = view_key(laterality, view)
    split_view_key(key)  # validates
    volume_node.SetAttribute(schema.ATTR_VIEW_KEY, key)
    volume_node.SetAttribute(schema.ATTR_LATERALITY, laterality)
    volume_node.SetAttribute(schema.ATTR_VIEW, view)


def view_identity(volume_node) -> tuple[str, str] | None:
    """(laterality, view) from the node's attributes, or ``None`` when not recorded."""
    key = volume_node.GetAttribute(schema.ATTR_VIEW_KEY)
    if key in VIEW_KEYS:
        return split_view_key(key)
    laterality = volume_node.GetAttribute(schema.ATTR_LATERALITY)
    view = volume_node.GetAttribute(schema.ATTR_VIEW)
    if laterality in ("L", "R") and view in ("CC", "MLO"):
        return laterality, view
    return None


_NAME_PATTERN = re.compile(
    r"(?:^|[^A-Za-z])(?P<lat>[LR])(?:[^A-Za-z]{0,2})(?P<view>CC|MLO)(?:$|[^A-Za-z])", re.IGNORECASE
)


def view_identity_from_name(name: str) -> tuple[str, str] | None:
    """Laterality and view from names such as ``"R-CC"``, ``"LMLO"``, ``"case1_L_CC"`` (``None`` if
    absent/ambiguous)."""
    found = {(m.group("lat").upper(), m.group("view").upper()) for m in _NAME_PATTERN.finditer(name or "")}
    return found.pop() if len(found) == 1 else None


def add_view_volume(scene, view: View, *, name: str | None = None):
    """A new scalar volume node holding ``view`` (pixels copied, geometry per :func:`ijk_to_ras`)."""
    import vtk
    from slicer import vtkMRMLScalarVolumeNode  # noqa: F401  (the node class this creates)
    from vtk.util import numpy_support

    rows, cols = view.shape
    pixels = np.ascontiguousarray(view.pixels, dtype=np.float32)
    image = vtk.vtkImageData()
    image.SetDimensions(cols, rows, 1)
    array = numpy_support.numpy_to_vtk(pixels.ravel(), deep=True, array_type=vtk.VTK_FLOAT)
    array.SetName("ImageScalars")
    image.GetPointData().SetScalars(array)

    from ..export.space import geometry_for_view

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or view.key)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_numpy_to_matrix(geometry_for_view(view).ijk_to_ras()))
    set_view_identity(node, view.laterality, view.view)
    # The view's own (magnification-corrected) spacing; the node's matrix may use the detector spacing, as
    # Slicer's DICOM loader does.
    node.SetAttribute(schema.ATTR_SPACING, f"{float(view.spacing[0])!r} {float(view.spacing[1])!r}")
    if view.source is not None:
        node.SetAttribute(schema.ATTR_SOURCE_FILE, str(view.source))
    if view.provenance:
        node.SetAttribute(schema.ATTR_PROVENANCE, json.dumps(view.provenance, sort_keys=True))
    side = chest_wall_side_from_header(view.header)
    if side:
        node.SetAttribute(schema.ATTR_CHEST_WALL, side)
    node.CreateDefaultDisplayNodes()
    set_default_window(node, pixels)
    return node


def set_default_window(volume_node, pixels: np.ndarray | None = None) -> None:
    """Window the display on the 1st–99.5th percentiles of the pixels (mammograms are mostly background)."""
    display = volume_node.GetDisplayNode()
    if display is None:
        return
    values = volume_pixels(volume_node) if pixels is None else pixels
    low, high = np.percentile(values, [1.0, 99.5])
    if high <= low:
        high = low + 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(float(low), float(high))


def chest_wall_side_from_patient_orientation(value: str | Sequence[str] | None) -> str | None:
    """The chest-wall edge from DICOM PatientOrientation (0020,0020), e.g. ``"P\\L"`` for an R-CC.

    Its first value is the direction of increasing column: towards posterior ("P") puts the chest wall on the
    right edge of the image, towards anterior ("A") on the left. ``None`` when not stated.
    """
    if not value:
        return None
    values = value.split("\\") if isinstance(value, str) else [str(v) for v in value]
    row_direction = values[0].strip().upper() if values else ""
    if "P" in row_direction and "A" not in row_direction:
        return "right"
    if "A" in row_direction and "P" not in row_direction:
        return "left"
    return None


def chest_wall_side_from_header(header: Any) -> str | None:
    """:func:`chest_wall_side_from_patient_orientation` of a DICOM header (``None`` without one)."""
    if header is None:
        return None
    return chest_wall_side_from_patient_orientation(getattr(header, "PatientOrientation", None))


def view_from_volume(volume_node, *, key: str | None = None, source: Path | None = None) -> View:
    """A View from a 2-D scalar volume node (pixels as stored in the node, spacing from its matrix).

    ``key`` ("R-CC", ...) overrides the node's attributes; ``ValueError`` when neither says which view it is.
    """
    name = volume_node.GetName()
    if key is not None:
        laterality, view = split_view_key(key)
    else:
        identity = view_identity(volume_node)
        if identity is None:
            raise ValueError(
                f"volume {name!r}: laterality and view are unknown; choose its view in the MammoDNN module "
                f"or set the attributes {schema.ATTR_LATERALITY} (R/L) and {schema.ATTR_VIEW} (CC/MLO)"
            )
        laterality, view = identity
    provenance_text = volume_node.GetAttribute(schema.ATTR_PROVENANCE)
    provenance = json.loads(provenance_text) if provenance_text else {}
    provenance.setdefault("pixels", f"Slicer volume node {name!r}")
    return View(
        pixels=volume_pixels(volume_node),
        spacing=volume_spacing(volume_node),
        laterality=laterality,
        view=view,
        source=source,
        provenance=provenance,
    )


def find_view_volumes(scene) -> dict[str, Any]:
    """Scalar volume nodes that record a view identity, by view key (the last one added wins)."""
    found: dict[str, Any] = {}
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if node.IsA("vtkMRMLLabelMapVolumeNode"):
            continue
        identity = view_identity(node)
        if identity:
            found[view_key(*identity)] = node
    return {k: found[k] for k in VIEW_KEYS if k in found}


def volumes_by_key(volumes: Mapping[str, Any] | list | tuple) -> dict[str, Any]:
    """``{key: node}`` from a mapping or a list of nodes (keys from their attributes or names)."""
    if isinstance(volumes, Mapping):
        result = {}
        for key, node in volumes.items():
            split_view_key(key)
            if node is None:
                continue
            for other_key, other in result.items():
                if other.GetID() == node.GetID():
                    raise ValueError(f"volume {node.GetName()!r} is given as both {other_key} and {key}")
            result[key] = node
    else:
        result = {}
        for node in volumes:
            if node is None:
                continue
            identity = view_identity(node) or view_identity_from_name(node.GetName())
            if identity is None:
                raise ValueError(
                    f"volume {node.GetName()!r}: laterality and view are unknown; pass {{'R-CC': node, ...}} "
                    f"or set the attributes {schema.ATTR_LATERALITY} and {schema.ATTR_VIEW}"
                )
            key = view_key(*identity)
            if key in result:
                raise ValueError(
                    f"volumes {result[key].GetName()!r} and {node.GetName()!r} are both {key}; "
                    "pass one volume per view"
                )
            result[key] = node
    if not result:
        raise ValueError("no view volumes given; select at least one of R-CC, L-CC, R-MLO, L-MLO")
    return {k: result[k] for k in VIEW_KEYS if k in result}
