"""A scene with the module logics a Slicer application would have, without the application (``slicer-core``).

Set up as ``trame-slicer`` does (``trame_slicer/core/slicer_app.py``): a ``vtkMRMLScene`` with the default
crosshair, a ``vtkSlicerApplicationLogic`` with the default colour nodes, the module logics registered with
the application logic under their Slicer names, the default slice orientation presets, and — as Slicer's
layout manager has — a ``vtkMRMLLayoutLogic`` that creates the slice nodes of whatever layout is chosen.
MammoDNN's terminology context is loaded into a terminology logic that is not attached to the scene (attaching
it would make it look for Slicer's default terminology files, which ``slicer-core`` does not ship).

Use it from scripts and tests::

    from MammoDNNLib.scene.headless import create_headless_slicer
    app = create_headless_slicer()
    logic = AnalysisLogic(app.scene)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HeadlessSlicer:
    """The scene and the logics a headless MammoDNN session uses (all real MRML objects)."""

    scene: Any  # vtkMRMLScene
    app_logic: Any  # vtkSlicerApplicationLogic
    color_logic: Any
    volumes_logic: Any
    segmentations_logic: Any
    markups_logic: Any
    tables_logic: Any
    subject_hierarchy_logic: Any
    terminologies_logic: Any | None
    layout_logic: Any  # vtkMRMLLayoutLogic
    remote_io_logic: Any = None  # vtkMRMLRemoteIOLogic (reading .mrb goes through its data I/O manager)
    data_io_manager_logic: Any = None  # vtkDataIOManagerLogic
    cache_dir: Any = field(default=None, repr=False)  # TemporaryDirectory holding the remote I/O cache

    @property
    def layout_node(self):
        return self.layout_logic.GetLayoutNode()


def create_headless_slicer(*, terminology: bool = True) -> HeadlessSlicer:
    """A fresh scene with Slicer's module logics (see the module doc)."""
    import vtk
    from slicer import (
        vtkDataIOManagerLogic,
        vtkMRMLCrosshairNode,
        vtkMRMLLayoutLogic,
        vtkMRMLRemoteIOLogic,
        vtkMRMLScene,
        vtkMRMLSliceNode,
        vtkSlicerApplicationLogic,
        vtkSlicerMarkupsLogic,
        vtkSlicerSegmentationsModuleLogic,
        vtkSlicerSubjectHierarchyModuleLogic,
        vtkSlicerTablesLogic,
        vtkSlicerTerminologiesModuleLogic,
        vtkSlicerVolumesLogic,
    )

    scene = vtkMRMLScene()
    crosshair = vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)

    app_logic = vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())

    def register(logic, name: str):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
        return logic

    subject_hierarchy_logic = register(vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy")
    volumes_logic = register(vtkSlicerVolumesLogic(), "Volumes")
    segmentations_logic = register(vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    markups_logic = register(vtkSlicerMarkupsLogic(), "Markups")
    tables_logic = register(vtkSlicerTablesLogic(), "Tables")

    terminologies_logic = None
    if terminology:
        from ..export.terminology import terminology_file

        terminologies_logic = vtkSlicerTerminologiesModuleLogic()
        terminologies_logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic("Terminologies", terminologies_logic)
        path = terminology_file()
        if path.is_file():
            terminologies_logic.LoadContextFromFile(str(path))

    # Data I/O as trame-slicer's IOManager sets it up (scene.ReadFromMRB needs the cache directory).
    cache_dir = tempfile.TemporaryDirectory(prefix="mammodnn-mrml-cache-")
    remote_io_logic = vtkMRMLRemoteIOLogic()
    remote_io_logic.SetMRMLScene(scene)
    remote_io_logic.SetMRMLApplicationLogic(app_logic)
    remote_io_logic.GetCacheManager().SetRemoteCacheDirectory(cache_dir.name)
    data_io_manager_logic = vtkDataIOManagerLogic()
    data_io_manager_logic.SetMRMLScene(scene)
    data_io_manager_logic.SetMRMLApplicationLogic(app_logic)
    data_io_manager_logic.SetAndObserveDataIOManager(remote_io_logic.GetDataIOManager())
    remote_io_logic.AddDataIOToScene()

    vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)  # patient right on screen left
    layout_logic = vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)

    return HeadlessSlicer(
        scene=scene,
        app_logic=app_logic,
        color_logic=color_logic,
        volumes_logic=volumes_logic,
        segmentations_logic=segmentations_logic,
        markups_logic=markups_logic,
        tables_logic=tables_logic,
        subject_hierarchy_logic=subject_hierarchy_logic,
        terminologies_logic=terminologies_logic,
        layout_logic=layout_logic,
        remote_io_logic=remote_io_logic,
        data_io_manager_logic=data_io_manager_logic,
        cache_dir=cache_dir,
    )
