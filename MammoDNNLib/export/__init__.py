"""Exports of a :class:`~MammoDNNLib.findings.Report`: Slicer files, overlays, DICOM SEG and SR, report copy.

:func:`export_all` writes, into one folder, files named by view key (never by source name):

==============  =========================================  ==============================================
kind            files                                      needs
==============  =========================================  ==============================================
``report``      ``report.json`` (a copy; anonymized if     the report
                asked)
``seg-nrrd``    ``<view>.seg.nrrd``                        the report (+ DICOM header for Slicer geometry)
``markups``     ``<view>.mrk.json``                        the report (+ DICOM header for Slicer geometry)
``overlay``     ``<view>.overlay.png``, ``overview.png``   the source pixels (in memory or the files)
``dicom-seg``   ``<view>.seg.dcm`` (views with findings)   DICOM sources
``dicom-sr``    ``findings.sr.dcm``                        DICOM sources
==============  =========================================  ==============================================

A report that carries an annotator's review (from the review scene, :mod:`.review`) gives the reviewed DICOM SEG
and SR (:mod:`.dicom`); the other kinds are written from the report as it is.

Asked for explicitly, a kind that cannot be made is an error naming the file and the reason; left to the
default, what can be made is made and the rest is listed in :attr:`ExportResult.skipped`. Source files are
only read.
``docs/outputs.md`` documents every format.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from ..errors import InputError, MammoDNNError
from .dicom import DicomContent, export_dicom, with_type2_attributes, write_report_sr, write_segmentations

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Report
    from ..study import View

log = logging.getLogger(__name__)

OUTPUT_KINDS: tuple[str, ...] = ("report", "seg-nrrd", "markups", "overlay", "dicom-seg", "dicom-sr")
DEFAULT_KINDS: tuple[str, ...] = ("seg-nrrd", "markups", "overlay", "dicom-seg", "dicom-sr")
SR_FILE_NAME = "findings.sr.dcm"
OVERVIEW_FILE_NAME = "overview.png"
REPORT_FILE_NAME = "report.json"

__all__ = ["OUTPUT_KINDS", "DEFAULT_KINDS", "ExportResult", "export_all", "export_dicom", "parse_kinds"]


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # kind (or "kind view") -> why it was not made
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, path: Path) -> None:
        self.files.setdefault(kind, []).append(path)

    def all_files(self) -> list[Path]:
        return [p for paths in self.files.values() for p in paths]

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "files": {k: [str(p) for p in v] for k, v in self.files.items()},
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
        }


@dataclass
class _Source:
    """What is known of one view's source."""

    key: str
    path: Path | None = None
    header: "Dataset | None" = None  # DICOM header as read (never modified)
    pixels: object | None = None  # numpy array when in memory
    problem: str | None = None  # why it is not usable as a DICOM source


def parse_kinds(text: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"seg-nrrd,markups"`` -> ``("seg-nrrd", "markups")``; ``None`` or ``"auto"`` -> None (default set)."""
    if text is None:
        return None
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if items == ["auto"]:
        return None
    if "all" in items:
        return OUTPUT_KINDS
    unknown = [t for t in items if t not in OUTPUT_KINDS]
    if unknown:
        raise MammoDNNError(
            f"unknown output kind(s) {', '.join(unknown)}; choose from {', '.join(OUTPUT_KINDS)}"
        )
    return tuple(dict.fromkeys(items))


def export_all(
    report: "Report",
    out_dir: str | Path,
    *,
    what: Iterable[str] | None = None,
    views: Mapping[str, "View"] | None = None,
    report_path: str | Path | None = None,
    search_dirs: Iterable[str | Path] = (),
    anonymize: bool = False,
    software_version: str | None = None,
    annotator: str | None = None,
) -> ExportResult:
    """Write the exports of ``report`` into ``out_dir``.

    ``views``: the study's loaded views (pixels and DICOM headers) when the caller has them (the pipeline);
    otherwise sources are found through each ``ViewInfo.file``, absolute or relative to the folder of
    ``report_path``, or by file name in ``search_dirs``. ``what``: kinds from :data:`OUTPUT_KINDS`; None makes
    every kind that the inputs allow (``report`` only when anonymizing). ``anonymize``: de-identify every
    output (:mod:`MammoDNNLib.export.anonymize`). ``annotator``: who reviewed the findings, for the reviewed
    DICOM SEG/SR of a reviewed report (default: the report's review audit; giving it makes any report's DICOM
    the reviewed kind).
    """
    from .. import __version__
    from .common import resolve_source

    explicit = what is not None
    kinds = tuple(what) if explicit else DEFAULT_KINDS + (("report",) if anonymize else ())
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown:
        raise MammoDNNError(
            f"unknown output kind(s) {', '.join(unknown)}; choose from {', '.join(OUTPUT_KINDS)}"
        )
    out_dir = Path(out_dir)
    report_path = Path(report_path).resolve() if report_path is not None else None
    report_dir = report_path.parent if report_path is not None else None
    search = [Path(p) for p in search_dirs]
    software_version = software_version or f"MammoDNN {__version__}"
    result = ExportResult(out_dir=out_dir)
    report = _with_masks(report)

    sources: dict[str, _Source] = {}
    for info in report.views:
        view = views.get(info.key) if views else None
        if view is not None:
            sources[info.key] = _Source(
                info.key,
                view.source,
                view.header,
                view.pixels,
                None if view.header is not None else "the view has no DICOM header",
            )
            continue
        path = resolve_source(info, report_dir, search)
        source = _Source(info.key, path)
        if path is None:
            source.problem = (
                f"source image {info.file!r} not found (looked beside the report and in "
                f"{', '.join(map(str, search)) or 'no other folder'})"
                if info.file
                else "the view was made in memory and has no source file"
            )
        else:
            source.header, source.problem = _try_dicom_header(path)
        sources[info.key] = source
    for info in report.views:
        _check_size(info, sources[info.key])

    out_dir.mkdir(parents=True, exist_ok=True)
    protected = {s.path.resolve() for s in sources.values() if s.path is not None}
    if report_path is not None:
        protected.add(report_path)

    def target(name: str) -> Path:
        path = out_dir / name
        if path.resolve() in protected:
            raise MammoDNNError(f"{path}: would overwrite an input file; choose another output folder")
        return path

    output_report = report
    headers_for_dicom: dict[str, "Dataset"] = {
        k: with_type2_attributes(s.header) for k, s in sources.items() if s.header is not None
    }
    if anonymize:
        from .anonymize import ReportAnonymizer, anonymize_header

        resolved = {k: s.path for k, s in sources.items() if s.path is not None}
        output_report = ReportAnonymizer.for_report(report, resolved).report(report)
        headers_for_dicom = {k: anonymize_header(h) for k, h in headers_for_dicom.items()}

    if "report" in kinds:
        path = target(REPORT_FILE_NAME)
        path.write_text(json.dumps(output_report.to_dict(), indent=2) + "\n", encoding="utf-8")
        result.add("report", path)

    if "seg-nrrd" in kinds or "markups" in kinds:
        _write_slicer_files(report, sources, kinds, target, result)
    if "overlay" in kinds:
        _write_overlays(report, sources, explicit, target, result)
    content: DicomContent | None = None  # made once, and only when some view has a DICOM source
    if "dicom-seg" in kinds:
        keys = _dicom_sources(output_report, sources, headers_for_dicom, explicit, "dicom-seg", result)
        if keys:
            content = DicomContent.make(
                output_report, headers_for_dicom, software_version=software_version, annotator=annotator
            )
            write_segmentations(content, keys, target, result)
    if "dicom-sr" in kinds:
        keys = _dicom_sources(output_report, sources, headers_for_dicom, explicit, "dicom-sr", result)
        if not keys:
            result.skipped["dicom-sr"] = "no DICOM source images"
        else:
            content = content or DicomContent.make(
                output_report, headers_for_dicom, software_version=software_version, annotator=annotator
            )
            _write_dicom_sr(content, keys, target, result)
    for message in result.warnings:
        log.warning(message)
    return result


def _with_masks(report: "Report") -> "Report":
    """The report with every finding's mask rasterized once (from its outline or box when it has none), so the
    exporters that need masks share one rasterization."""
    from dataclasses import replace

    shapes = {info.key: (info.size[1], info.size[0]) for info in report.views}
    findings = [
        f
        if f.mask is not None or f.view_key not in shapes
        else replace(f, mask=f.lesion_mask(shapes[f.view_key]))
        for f in report.findings
    ]
    return replace(report, findings=findings)


def _check_size(info, source: _Source) -> None:
    """A source whose image size differs from the report's view is the wrong file: nothing would line up."""
    if source.header is not None:
        size = (int(source.header.Columns), int(source.header.Rows))
    elif source.pixels is not None:
        size = (source.pixels.shape[1], source.pixels.shape[0])
    else:
        return
    if size != tuple(info.size):
        raise InputError(
            source.path or info.file,
            f"image is {size[0]}x{size[1]} but the report's {info.key} view is "
            f"{info.size[0]}x{info.size[1]}; is this the right file?",
        )


def _try_dicom_header(path: Path) -> tuple["Dataset | None", str | None]:
    from .common import read_dicom_header

    try:
        return read_dicom_header(path), None
    except InputError as exc:
        return None, exc.problem


def _write_slicer_files(report, sources, kinds, target, result: ExportResult) -> None:
    from .common import findings_in_order, output_stem
    from .slicer_files import write_markups, write_segmentation
    from .space import geometry_for_view_info

    for info in report.views:
        source = sources[info.key]
        geometry = geometry_for_view_info(info, source.header)
        if source.header is None and info.file and source.path is None:
            result.warnings.append(
                f"{info.key}: source {info.file!r} not found; Slicer files use the report's spacing "
                f"{tuple(info.spacing)} mm, which may differ from what Slicer reads from the file"
            )
        findings = findings_in_order(report, info.key)
        stem = output_stem(info.key)
        if "seg-nrrd" in kinds:
            path = target(f"{stem}.seg.nrrd")
            write_segmentation(path, findings, geometry)
            result.add("seg-nrrd", path)
        if "markups" in kinds:
            path = target(f"{stem}.mrk.json")
            write_markups(path, findings, geometry, info.key)
            result.add("markups", path)


def _write_overlays(report, sources, explicit: bool, target, result: ExportResult) -> None:
    from .common import findings_in_order, output_stem
    from .overlay import (
        DEFAULT_MAX_SIZE,
        OverlayView,
        read_display_pixels,
        write_overview,
        write_view_overlay,
    )

    overlay_views: dict[str, OverlayView] = {}
    for info in report.views:
        source = sources[info.key]
        pixels = source.pixels
        if pixels is None:
            if source.path is None:
                reason = f"{info.key}: no overlay: the source pixels are not available ({source.problem})"
                if explicit:
                    raise InputError(
                        info.file,
                        "the overlay needs the source image's pixels, and the file was "
                        "not found (use --sources DIR to say where the images are)",
                    )
                result.skipped[f"overlay {info.key}"] = reason
                continue
            pixels = read_display_pixels(
                source.path, laterality=info.laterality, view=info.view, spacing=tuple(info.spacing)
            )
        if tuple(pixels.shape[::-1]) != tuple(info.size):
            raise InputError(
                source.path,
                f"image is {pixels.shape[1]}x{pixels.shape[0]} but the report's "
                f"{info.key} view is {info.size[0]}x{info.size[1]}; is this the right file?",
            )
        chest_wall_right = None
        if info.transform is not None and "flip_x" in info.transform:
            # Prepared views have the chest wall on the left; flip_x says the original had it on the right.
            chest_wall_right = bool(info.transform["flip_x"])
        overlay_views[info.key] = OverlayView(
            info.key, pixels, findings_in_order(report, info.key), chest_wall_right
        ).downsampled(DEFAULT_MAX_SIZE)
        path = target(f"{output_stem(info.key)}.overlay.png")
        write_view_overlay(path, overlay_views[info.key])
        result.add("overlay", path)
    if overlay_views:
        exam = report.exam
        title = f"MammoDNN - research use only - exam BI-RADS {exam.birads}"
        if exam.score is not None:
            title += f" (malignancy {exam.score:.2f})"
        path = target(OVERVIEW_FILE_NAME)
        write_overview(path, overlay_views, title=title)
        result.add("overlay", path)


def _dicom_sources(report, sources, headers, explicit: bool, kind: str, result: ExportResult) -> list[str]:
    keys = []
    for info in report.views:
        if info.key in headers:
            keys.append(info.key)
            continue
        problem = sources[info.key].problem or "not a DICOM source"
        if explicit:
            where = sources[info.key].path or info.file
            raise InputError(where, f"{kind} needs DICOM source images: {problem}")
        result.skipped[f"{kind} {info.key}"] = problem
    return keys


def _write_dicom_sr(content: DicomContent, keys: list[str], target, result: ExportResult) -> None:
    report = content.report
    missing = [info.key for info in report.views if info.key not in keys and report.findings_in(info.key)]
    if missing:
        result.warnings.append(f"DICOM SR leaves out the findings of {', '.join(missing)} (no DICOM source)")
    write_report_sr(content, keys, target, result)
