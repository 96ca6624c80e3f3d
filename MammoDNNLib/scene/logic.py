"""The MammoDNN module logic without Qt: analyze view volumes or a folder and show the results in the scene.

Usable inside Slicer (the module's Widget delegates to it; the Python console too) and headless::

    from MammoDNNLib.scene.headless import create_headless_slicer
    from MammoDNNLib.scene.logic import AnalysisLogic

    app = create_headless_slicer()
    logic = AnalysisLogic(app.scene)
    result = logic.analyze("/data/exam42")            # a folder, files, a Study, or {"R-CC": volumeNode, ...}
    for finding in logic.findings:
        print(finding.label(), finding.quadrant, finding.birads)
    logic.center_on_finding(logic.findings[0].id)

``analyze`` builds a :class:`~MammoDNNLib.study.Study` (view files are re-read with :mod:`MammoDNNLib.io` when
the volumes came from files, so the pixels are exactly what the command line analyzes; otherwise the volumes'
own pixels are used), calls the analysis function (default :func:`MammoDNNLib.pipeline.analyze`; tests and
scripts may inject another with the same signature), and shows the Report: the 2×2 hanging layout, one
segmentation, ROIs and a point list per view, and the findings and summary tables (:mod:`.results`). Problems
a user can cause are ``ValueError`` (:class:`~MammoDNNLib.errors.MammoDNNError`) with a message naming what is
wrong; nothing here shows a dialog.

For a GUI, :func:`analysis_command` and :func:`read_analysis_output` run the same analysis in a worker process
(``mammodnn analyze ... --progress-json``, protocol in :mod:`MammoDNNLib.progress`) and read its results back.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MammoDNNError
from ..findings import Finding, Report
from ..geometry import LesionMask
from ..study import Study, View
from ..vocabulary import split_view_key
from . import schema
from .layout import apply_hanging_layout, chest_wall_side
from .navigation import center_on_finding
from .results import ResultNodes, remove_results, show_report
from .volumes import add_view_volume, view_from_volume, volume_shape, volumes_by_key

log = logging.getLogger(__name__)

AnalysisFunction = Callable[..., Report]  # (study, *, model, device, tta, progress) -> Report
Progress = Callable[[float, str], None]
SourceResolver = Callable[[Any], "Path | None"]  # volume node -> the file it was loaded from

DICOM_INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM loader on the volumes it loads


def default_analysis_function() -> AnalysisFunction:
    """:func:`MammoDNNLib.pipeline.analyze`, with a clear error when it (or a dependency) is missing."""
    try:
        from ..pipeline import analyze
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "MammoDNNLib":
            raise MammoDNNError(
                f"this copy of MammoDNN has no analysis pipeline ({exc.name} is missing); reinstall MammoDNN"
            ) from None
        raise MammoDNNError(
            f"the analysis needs the Python package {exc.name!r}, which is not installed; install MammoDNN's "
            "dependencies (in Slicer: press Analyze in the MammoDNN module and accept the installation)"
        ) from None
    return analyze


@dataclass
class AnalysisResult:
    """What one analysis produced: the report and the nodes showing it."""

    report: Report
    nodes: ResultNodes
    volumes: dict[str, Any]  # view key -> volume node
    slice_nodes: dict[str, Any] = field(default_factory=dict)  # view key -> slice node of the hanging layout

    @property
    def findings(self) -> list[Finding]:
        return self.report.findings


class AnalysisLogic:
    """Analyze a study and show its results in ``scene`` (Slicer's ``slicer.mrmlScene`` or a headless scene).

    :param analysis_function: ``(study, *, model, device, tta, progress) -> Report``; default the pipeline.
    :param source_resolver: ``volume node -> Path | None``, the file a volume was loaded from when the node
    does
        not say (the Slicer module resolves DICOM volumes through the DICOM database).
    :param layout_node: the layout node to register the hanging layout on (default: the scene's).
    :param show_layout: set up the 2×2 hanging layout when showing results.
    """

    def __init__(
        self,
        scene,
        *,
        analysis_function: AnalysisFunction | None = None,
        source_resolver: SourceResolver | None = None,
        layout_node=None,
        show_layout: bool = True,
    ):
        if scene is None:
            raise ValueError("AnalysisLogic needs an MRML scene")
        self.scene = scene
        self.analysis_function = analysis_function
        self.source_resolver = source_resolver
        self.layout_node = layout_node
        self.show_layout = show_layout
        self.result: AnalysisResult | None = None
        self._created_volumes: list[Any] = []

    # --- what scripts read ----------------------------------------------------------------------------------
    @property
    def report(self) -> Report | None:
        return self.result.report if self.result else None

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.findings) if self.result else []

    @property
    def nodes(self) -> ResultNodes | None:
        return self.result.nodes if self.result else None

    @property
    def volumes(self) -> dict[str, Any]:
        return dict(self.result.volumes) if self.result else {}

    # --- inputs ---------------------------------------------------------------------------------------------
    def load_study(self, source: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[str, Any]:
        """Load a folder / file(s) with :func:`MammoDNNLib.io.load_study` as volume nodes by key."""
        from ..io import load_study

        return self.add_study(load_study(source))

    def add_study(self, study: Study) -> dict[str, Any]:
        """One volume node per view of ``study`` (named by view key)."""
        if not len(study):
            raise ValueError("the study has no views")
        volumes = {}
        for key, view in study.views.items():
            node = add_view_volume(self.scene, view, name=key)
            self._created_volumes.append(node)
            volumes[key] = node
        return volumes

    def resolve_volumes(self, source: Any) -> dict[str, Any]:
        """``{key: volume node}`` from volume nodes (dict or list), a Study, or a folder / file path(s)."""
        if isinstance(source, Study):
            return self.add_study(source)
        if isinstance(source, (str, os.PathLike)):
            return self.load_study(source)
        if isinstance(source, Mapping):
            return volumes_by_key(source)
        if isinstance(source, (list, tuple)):
            if source and all(isinstance(s, (str, os.PathLike)) for s in source):
                return self.load_study(list(source))
            return volumes_by_key(list(source))
        raise ValueError(
            f"cannot analyze a {type(source).__name__}; give volume nodes ({{'R-CC': node, ...}} or a list), "
            "a Study, or a folder/file path"
        )

    def source_file(self, volume_node) -> Path | None:
        """The file a volume came from: MammoDNN's attribute, else the resolver (e.g. DICOM database)."""
        recorded = volume_node.GetAttribute(schema.ATTR_SOURCE_FILE)
        if recorded and Path(recorded).is_file():
            return Path(recorded)
        if self.source_resolver is not None:
            path = self.source_resolver(volume_node)
            if path and Path(path).is_file():
                return Path(path)
        return None

    def study_from_volumes(self, volumes: Mapping[str, Any]) -> Study:
        """A Study of the volumes: each view re-read from its file if it has one, else the node's pixels."""
        views: dict[str, View] = {}
        for key, node in volumes_by_key(volumes).items():
            laterality, position = split_view_key(key)
            rows_cols = volume_shape(node)
            view = None
            path = self.source_file(node)
            if path is not None:
                from ..io import load_view

                try:
                    view = load_view(path, laterality=laterality, view=position)
                except InputError as exc:
                    raise InputError(
                        path, f"{exc.problem} (volume {node.GetName()!r} chosen as {key})"
                    ) from None
                if view.key != key:
                    raise ValueError(
                        f"volume {node.GetName()!r} was chosen as {key} but its file {path} is {view.key}"
                    )
                if view.shape != rows_cols:
                    log.warning(
                        "%s: %s is %s pixels but volume %r is %s; analyzing the volume's pixels",
                        key,
                        path,
                        view.shape,
                        node.GetName(),
                        rows_cols,
                    )
                    view = None
            if view is None:
                view = view_from_volume(node, key=key, source=None)
            views[key] = view
        return Study(views=views)

    # --- analysis -------------------------------------------------------------------------------------------
    def analyze(
        self,
        source: Any,
        *,
        model: str | os.PathLike | None = None,
        device: str = "cpu",
        tta: bool = True,
        progress: Progress | None = None,
        replace: bool = True,
        **options: Any,
    ) -> AnalysisResult:
        """Analyze ``source`` (volume nodes, a Study, or a folder/files) and show the results.

        ``progress(fraction, message)`` is called as the analysis goes and may raise
        :class:`~MammoDNNLib.errors.CancelledError` to stop it. ``replace`` removes earlier MammoDNN results
        from the scene first. Extra ``options`` go to the analysis function. Returns the report and the nodes
        (also in :attr:`result`, :attr:`report`, :attr:`findings`, :attr:`nodes`).
        """
        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        volumes = self.resolve_volumes(source)
        study = self.study_from_volumes(volumes)
        function = self.analysis_function or default_analysis_function()
        if progress is not None:
            progress(0.0, f"analyzing {', '.join(study.views)}")
        report = function(study, model=model, device=device, tta=tta, progress=progress, **options)
        if not isinstance(report, Report):
            raise TypeError(f"the analysis function returned a {type(report).__name__}, not a Report")
        result = self.show_report(report, volumes, replace=replace)
        if progress is not None:
            progress(1.0, f"{len(report.findings)} finding(s)")
        return result

    def show_report(
        self, report: Report, volumes: Mapping[str, Any], *, replace: bool = True
    ) -> AnalysisResult:
        """Show ``report`` on ``volumes`` ``{key: node}``: layout, segmentations, markups, tables."""
        volumes = volumes_by_key(volumes)
        if replace:
            remove_results(self.scene)
        slice_nodes: dict[str, Any] = {}
        view_node_ids = None
        if self.show_layout:
            chest_walls = {}
            for key, node in volumes.items():
                try:
                    info = report.view(key)
                except KeyError:
                    info = None
                chest_walls[key] = chest_wall_side(node, info)
            slice_nodes = apply_hanging_layout(
                self.scene, volumes, chest_walls=chest_walls, layout_node=self.layout_node
            )
            view_node_ids = {key: [node.GetID()] for key, node in slice_nodes.items()}
        nodes = show_report(self.scene, report, volumes, view_node_ids=view_node_ids)
        self.result = AnalysisResult(report, nodes, volumes, slice_nodes)
        return self.result

    def load_results(
        self, output_dir: str | os.PathLike, volumes: Mapping[str, Any], **kwargs: Any
    ) -> AnalysisResult:
        """Show what a worker wrote to ``output_dir`` (see :func:`read_analysis_output`) on ``volumes``."""
        return self.show_report(read_analysis_output(output_dir), volumes, **kwargs)

    def center_on_finding(self, finding_id: str, **kwargs: Any) -> dict[str, list[Any]]:
        """Centre the slice views on a finding and its match (see :func:`.navigation.center_on_finding`)."""
        result_id = self.result.nodes.result_id if self.result else None
        return center_on_finding(self.scene, finding_id, result_id=result_id, **kwargs)

    def clear(self, *, volumes: bool = False) -> int:
        """Remove MammoDNN's result nodes (and, with ``volumes``, the volumes this logic created)."""
        removed = remove_results(self.scene)
        if volumes:
            for node in self._created_volumes:
                if self.scene.IsNodePresent(node):
                    self.scene.RemoveNode(node)
                    removed += 1
            self._created_volumes = []
        self.result = None
        return removed


# ------------------------------------------------------------------------------------------------------------
# worker process


def analysis_command(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    python: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    device: str = "cpu",
    tta: bool = True,
) -> list[str]:
    """The worker command: ``python -m MammoDNNLib analyze INPUT... --out DIR --progress-json ...``."""
    if not inputs:
        raise ValueError("no input files to analyze")
    command = [os.fspath(python or sys.executable), "-m", "MammoDNNLib", "analyze"]
    command += [os.fspath(p) for p in inputs]
    command += ["--out", os.fspath(output_dir), "--progress-json", "--device", str(device)]
    if model:
        command += ["--model", os.fspath(model)]
    if not tta:
        command.append("--no-tta")
    return command


def worker_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the worker: ``MammoDNNLib`` importable (Slicer's Python does not have module paths)."""
    env = dict(os.environ if base is None else base)
    library_parent = str(Path(__file__).resolve().parents[2])
    paths = [library_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def read_analysis_output(output_dir: str | os.PathLike) -> Report:
    """The Report a worker wrote (``report.json``) with each finding's exact mask from the ``*.seg.nrrd``
    files.

    Segments are matched to findings by their ``MammoDNN.FindingId`` tag, else by segment ID = finding ID; a
    finding with no segment keeps its outline. ``InputError`` for a missing or malformed file.
    """
    folder = Path(output_dir)
    report = Report.load(folder / "report.json")
    shapes = {v.key: (int(v.size[1]), int(v.size[0])) for v in report.views}
    by_id = {f.id: f for f in report.findings}
    for path in sorted(folder.glob("*.seg.nrrd")):
        for finding_id, mask in _segmentation_masks(path, by_id, shapes).items():
            by_id[finding_id].mask = mask
    return report


def _segmentation_masks(
    path: Path, findings: Mapping[str, Finding], shapes: Mapping[str, tuple[int, int]]
) -> dict[str, LesionMask]:
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as exc:  # noqa: BLE001 - slicerio/pynrrd raise many types for a damaged file
        raise InputError(path, f"not a readable segmentation ({exc})") from None
    offset = [int(v) for v in (segmentation.get("referenceImageExtentOffset") or [0, 0, 0])]
    masks = {}
    for segment in segmentation.get("segments", []):
        tags = segment.get("tags") or {}
        finding_id = schema.decode_value(tags.get(schema.TAG_FINDING_ID, "")) or segment.get("id")
        finding = findings.get(finding_id)
        if finding is None:
            log.warning("%s: segment %r matches no finding of the report; ignored", path, segment.get("id"))
            continue
        voxels = np.asarray(slicerio.segment_mask(segmentation, segment))
        if voxels.ndim != 3 or voxels.shape[2] != 1:
            raise InputError(
                path, f"segment {finding_id!r} is not a single-slice labelmap (shape {voxels.shape})"
            )
        rows, cols = shapes[finding.view_key]
        full = np.zeros((rows, cols), bool)
        crop = voxels[:, :, 0].T  # (I, J) -> (rows, cols)
        i0, j0 = offset[0], offset[1]
        r1, c1 = min(j0 + crop.shape[0], rows), min(i0 + crop.shape[1], cols)
        if j0 < 0 or i0 < 0 or r1 <= j0 or c1 <= i0:
            raise InputError(path, f"segment {finding_id!r} lies outside its {rows}x{cols} view")
        full[j0:r1, i0:c1] = crop[: r1 - j0, : c1 - i0]
        masks[finding_id] = LesionMask.from_full(full)
    return masks
