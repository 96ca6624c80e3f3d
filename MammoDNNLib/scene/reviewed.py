"""A reviewed result read from the scene: each finding's review, current outline and model geometry, and the
views' source images. What the corrections export (:mod:`.corrections`) writes from.

::

    from MammoDNNLib.scene.reviewed import read_reviewed_scene, view_sources
    reviewed = read_reviewed_scene(scene, annotator="reader B")   # records outline edits first
    reviewed.kept(), reviewed.rejected(), reviewed.complete
    reviewed.report_with_audit()      # the reviewed Report, each finding's audit trail in extra["review"]["audit"]
    sources = view_sources(reviewed)  # view key -> source file and DICOM header
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..findings import Finding, Report
from ..geometry import LesionMask
from . import schema
from .results import find_results, report_from_scene, segment_tags
from .review import ReviewItem, ReviewSession

if TYPE_CHECKING:
    from pydicom import Dataset


@dataclass
class ReviewedFinding:
    """A finding with its review and its current outline (the segment's labelmap)."""

    item: ReviewItem
    finding: Finding  # as report_from_scene rebuilds it (model values, review extras)
    mask: LesionMask  # the segment, in the view's pixel grid
    # The MammoDNN.Box and .Outline tags: the model's box and outline (an added lesion's own).
    model_box: tuple[float, float, float, float]
    model_outline: list[tuple[float, float]]


@dataclass
class ReviewedScene:
    report: Report  # report_from_scene, review extras included
    findings: list[ReviewedFinding]
    volumes: dict[str, Any]  # view key -> volume node
    result_id: str
    deleted: list[str] = field(default_factory=list)  # findings whose segments someone removed from the scene

    @property
    def complete(self) -> bool:
        return all(f.item.reviewed for f in self.findings)

    def kept(self) -> list[ReviewedFinding]:
        return [f for f in self.findings if f.item.state != schema.REVIEW_REJECTED]

    def rejected(self) -> list[ReviewedFinding]:
        return [f for f in self.findings if f.item.state == schema.REVIEW_REJECTED]

    def report_with_audit(self) -> Report:
        """:attr:`report` with each finding's audit trail in ``extra["review"]["audit"]`` (a finding with an
        audit but no review state gets ``extra["review"]`` too), so that the report saved as JSON still says
        who reviewed what (``mammodnn export`` names the annotator of the reviewed DICOM from it)."""
        audits = {f.item.id: f.item for f in self.findings}
        findings = []
        for finding in self.report.findings:
            item = audits.get(finding.id)
            if item is None or not item.audit:
                findings.append(finding)
                continue
            review = dict(finding.extra.get("review") or {})
            review.setdefault("state", item.state)
            review.setdefault("note", item.note)
            review.setdefault("model_type", item.model_type)
            review["audit"] = [e.to_dict() for e in item.audit]
            findings.append(replace(finding, extra={**finding.extra, "review": review}))
        return replace(self.report, findings=findings)


def read_reviewed_scene(
    scene, *, result_id: str | None = None, annotator: str | None = None
) -> ReviewedScene:
    """The review of ``result_id`` (default: the latest), after recording outline edits (:meth:`sync_edits`)."""
    review = ReviewSession(scene, annotator=annotator, result_id=result_id)
    review.sync_edits()
    report = report_from_scene(scene, review.result_id)
    by_id = {f.id: f for f in report.findings}
    nodes = find_results(scene, review.result_id)
    findings = []
    for item in review.items():
        segment = nodes.view_of_finding(item.id).segmentation.GetSegmentation().GetSegment(item.id)
        tags = {k: schema.decode_value(v) for k, v in segment_tags(segment).items()}
        box = tuple(float(v) for v in tags[schema.TAG_BOX].split())
        outline = [(float(x), float(y)) for x, y in json.loads(tags.get(schema.TAG_OUTLINE) or "[]")]
        findings.append(ReviewedFinding(item, by_id[item.id], review.current_mask(item.id), box, outline))
    volumes = {key: view.volume for key, view in nodes.views.items()}
    order = json.loads(nodes.report_node.GetAttribute(schema.ATTR_FINDING_ORDER) or "[]")
    present = {f.item.id for f in findings}
    deleted = [finding_id for finding_id in order if finding_id not in present]
    return ReviewedScene(report, findings, volumes, review.result_id, deleted)


@dataclass
class ViewSource:
    key: str
    path: Path | None
    header: Dataset | None = None
    problem: str | None = None  # why it is not a DICOM source


def view_sources(
    reviewed: ReviewedScene, given: Mapping[str, str | os.PathLike] | None
) -> dict[str, ViewSource]:
    from ..export.common import read_dicom_header

    out = {}
    for info in reviewed.report.views:
        volume = reviewed.volumes.get(info.key)
        if volume is None:
            continue
        candidates = []
        if given and given.get(info.key):
            candidates.append(Path(given[info.key]))
        recorded = volume.GetAttribute(schema.ATTR_SOURCE_FILE)
        if recorded:
            candidates.append(Path(recorded))
        if info.file:
            candidates.append(Path(info.file))
        path = next((p.resolve() for p in candidates if p.is_file()), None)
        source = ViewSource(info.key, path)
        if path is None:
            source.problem = "the volume has no source file"
        else:
            try:
                source.header = read_dicom_header(path)
            except InputError as exc:
                source.problem = exc.problem
        if source.header is not None:
            size = (int(source.header.Columns), int(source.header.Rows))
            if size != tuple(info.size):
                raise InputError(
                    path,
                    f"image is {size[0]}x{size[1]} but the result's {info.key} view is "
                    f"{info.size[0]}x{info.size[1]}; is this the right file?",
                )
        out[info.key] = source
    return out


__all__ = ["ReviewedFinding", "ReviewedScene", "ViewSource", "read_reviewed_scene", "view_sources"]
