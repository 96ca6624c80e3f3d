"""Export a reviewed scene: corrected annotations for training (manifest + COCO) and reviewed DICOM SEG/SR.

::

    from MammoDNNLib.scene.corrections import export_corrections
    result = export_corrections(scene, "corrections/", annotator="reader B")
    # corrections/corrections.json        training manifest (source "corrections"), merged with earlier exports
    # corrections/corrections.coco.json   COCO detection JSON of the same
    # corrections/masks/<study>/...png    each lesion's exact mask (crop at mask_origin)
    # corrections/dicom/<study>/<view>.seg.dcm, findings.sr.dcm   reviewed DICOM SEG per view and TID 1500 SR

``mammodnn train detector --data corrections/corrections.json`` and ``mammodnn finetune --data ...`` read the
manifest directly; ``mammodnn data merge train.json corrections.json --replace`` folds it into a training set.

**What the manifest holds** (one study per exported scene; ``docs/review.md`` has the full layout):

- every finding that is not rejected becomes a lesion in its view: its box, outline and exact mask come from
  the finding's *segment* (what the annotator saw and painted), in the ORIGINAL pixel grid of the view, which
  is the volume's IJK grid; its type is the current type; ``provenance`` is the finding's audit trail (who,
  when, what, before); ``extra`` keeps the finding id, the review state, whether the lesion is *confirmed*
  (accepted, edited or added by the annotator), and the model's own values (type, score, box, malignancy,
  BI-RADS, quadrant, depth; its outline too where the annotator redrew it);
- linked CC/MLO findings share one lesion id (``<CC id>+<MLO id>``), the manifest's link; a link to a rejected
  finding, or between findings whose types still differ, is left out and noted;
- rejected findings are not lesions: each is a study-level ``provenance`` change ("rejected ...") and, with
  its geometry, note and audit trail, an entry of ``metadata.review.rejected``, so nothing is lost;
- the study is ``labelled`` only when every finding has been reviewed. A partially reviewed study keeps all its
  findings (unreviewed ones with ``extra.review.confirmed = false``) but is exported as unlabelled, so training
  never takes the model's unchecked output for truth; exporting it again when the review is complete replaces
  it (same study id).

**Reviewed DICOM** (where the views are DICOM files): rejected findings are left out; a finding the model found
keeps its Segment Algorithm Type AUTOMATIC (unreviewed or accepted) or becomes SEMIAUTOMATIC (edited by the
annotator); a lesion the annotator added is MANUAL, without algorithm identification. The SR's observation
context names the annotator (observer type Person) and MammoDNN (Device); every finding group says who found it
(DCM 121005 Observer Type: Person/Device) and its review status (99MAMMODNN REVIEW); algorithm identification
and the model's measurements only where the model found the finding. Completion flag PARTIAL until every
finding is reviewed. New series and instance UIDs (derived from the review), the lesions' tracking UIDs of the
model's export (the same physical lesion keeps its UID).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.manifest import (
    Change,
    Lesion,
    Manifest,
    StudyEntry,
    ViewEntry,
    load_manifest,
    merge,
    save_manifest,
)
from ..errors import InputError, MammoDNNError
from ..findings import Finding, Report
from ..geometry import LesionMask
from ..vocabulary import VIEW_KEYS, Code, split_view_key
from . import schema
from .results import find_results, report_from_scene, segment_tags
from .review import ORIGIN_ANNOTATOR, ORIGIN_MODEL, AuditEntry, Clock, ReviewItem, ReviewSession, mask_digest
from .volumes import volume_pixels

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..export import ExportResult

log = logging.getLogger(__name__)

MANIFEST_NAME = "corrections.json"
COCO_NAME = "corrections.coco.json"
SOURCE = "corrections"
STUDY_PREFIX = "review-"
SEG_SERIES_NUMBER_BASE = 9300
SR_SERIES_NUMBER = 9400

REVIEW_ADDED = (
    "added"  # the DICOM review status of a lesion the annotator added (its scene state is "edited")
)

# SR / SEG codes of the review. Observer Type (TID 1002) values are DICOM's; the review status is private.
OBSERVER_TYPE = Code("121005", "DCM", "Observer Type")
OBSERVER_PERSON = Code("121006", "DCM", "Person")
OBSERVER_DEVICE = Code("121007", "DCM", "Device")
REVIEW_STATUS = Code("REVIEW", "99MAMMODNN", "Annotator review status")
REVIEW_STATUS_VALUES: dict[str, Code] = {
    "unreviewed": Code("UNREVIEWED", "99MAMMODNN", "Not reviewed by an annotator"),
    "accepted": Code("ACCEPTED", "99MAMMODNN", "Accepted by an annotator"),
    "edited": Code("EDITED", "99MAMMODNN", "Edited by an annotator"),
    REVIEW_ADDED: Code("ADDED", "99MAMMODNN", "Added by an annotator"),
}
SEGMENT_ALGORITHM_TYPES = {
    "unreviewed": "AUTOMATIC",
    "accepted": "AUTOMATIC",
    "edited": "SEMIAUTOMATIC",
    REVIEW_ADDED: "MANUAL",
}


# ------------------------------------------------------------------------------------------------------------
# what the scene holds


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


# ------------------------------------------------------------------------------------------------------------
# the export


@dataclass
class CorrectionsResult:
    out_dir: Path
    manifest: Path
    study_id: str
    coco: Path | None = None
    masks: list[Path] = field(default_factory=list)
    dicom: ExportResult | None = None
    lesions: int = 0
    rejected: int = 0
    unreviewed: int = 0
    complete: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "manifest": str(self.manifest),
            "coco": None if self.coco is None else str(self.coco),
            "study_id": self.study_id,
            "lesions": self.lesions,
            "rejected": self.rejected,
            "unreviewed": self.unreviewed,
            "complete": self.complete,
            "dicom": None if self.dicom is None else self.dicom.to_dict(),
            "notes": list(self.notes),
        }


def export_corrections(
    scene,
    out_dir: str | os.PathLike,
    *,
    result_id: str | None = None,
    annotator: str | None = None,
    study_id: str | None = None,
    split: str | None = "train",
    sources: Mapping[str, str | os.PathLike] | None = None,
    coco: bool = True,
    dicom: bool | None = None,
    anonymize: bool = False,
    clock: Clock | None = None,
) -> CorrectionsResult:
    """Write the reviewed result of ``scene`` into ``out_dir`` (see the module doc).

    ``annotator``: who exports (the SR's person observer; default the OS user). ``study_id``: default derived
    from the DICOM Study Instance UID (else the source files), so a later export of the same study replaces this
    one in ``corrections.json``. ``sources``: view key -> source image file where the volume nodes do not record
    it (Slicer's DICOM database). ``dicom``: None makes the reviewed SEG/SR when every view is a DICOM file and
    skips them (noted) otherwise; True requires them. ``anonymize``: de-identify the DICOM outputs (the manifest
    holds no patient identifiers either way; its patient id is a hash).
    """
    from .review import default_annotator, utc_now

    exporter = (annotator or "").strip() or default_annotator()
    when = (clock or utc_now)()
    out_dir = Path(out_dir)
    reviewed = read_reviewed_scene(scene, result_id=result_id, annotator=exporter)
    view_sources = _view_sources(reviewed, sources)
    study_id = study_id or default_study_id(reviewed, view_sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    study, masks, notes = corrections_study(
        reviewed, out_dir, study_id=study_id, split=split, sources=view_sources, exporter=exporter, when=when
    )
    manifest = Manifest([study], description="corrections exported from the MammoDNN review", notes=notes)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.is_file():
        earlier = load_manifest(manifest_path)
        manifest = merge(
            earlier, manifest, on_duplicate="replace", description=earlier.description or manifest.description
        )
    save_manifest(manifest, manifest_path)
    written = load_manifest(manifest_path)  # the format's own validation of what was written
    result = CorrectionsResult(
        out_dir=out_dir,
        manifest=manifest_path,
        study_id=study_id,
        masks=masks,
        lesions=sum(len(v.lesions) for v in study.views.values()),
        rejected=len(reviewed.rejected()),
        unreviewed=sum(not f.item.reviewed for f in reviewed.findings),
        complete=reviewed.complete,
        notes=notes,
    )
    if coco:
        from ..data.converters.coco import export_coco

        result.coco = out_dir / COCO_NAME
        export_coco(written, result.coco)
    headers = {k: s.header for k, s in view_sources.items() if s.header is not None}
    has_findings = {f.item.view_key for f in reviewed.kept()}
    missing = sorted(k for k in view_sources if k not in headers)
    if dicom or (dicom is None and not missing and has_findings):
        if missing:
            problems = "; ".join(f"{k}: {view_sources[k].problem}" for k in missing)
            raise InputError(
                view_sources[missing[0]].path, f"reviewed DICOM SEG/SR need DICOM source images ({problems})"
            )
        dicom_dir = out_dir / "dicom" / study_id
        for old in dicom_dir.glob(
            "*.dcm"
        ):  # an earlier export of this study: a view may have no findings now
            old.unlink()
        result.dicom = export_reviewed_dicom(
            reviewed.report, dicom_dir, headers, annotator=exporter, anonymize=anonymize
        )
    elif dicom is None:
        reason = (
            "no findings to export"
            if not has_findings
            else f"views without DICOM source: {', '.join(missing)}"
        )
        result.notes.append(f"reviewed DICOM SEG/SR not written ({reason})")
    for note in result.notes:
        log.info("corrections %s: %s", study_id, note)
    return result


# ------------------------------------------------------------------------------------------------------------
# sources


@dataclass
class ViewSource:
    key: str
    path: Path | None
    header: Dataset | None = None
    problem: str | None = None  # why it is not a DICOM source


def _view_sources(
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


def default_study_id(reviewed: ReviewedScene, sources: Mapping[str, ViewSource]) -> str:
    """``review-<hash>`` of the Study Instance UID (else of the source files, else of the result)."""
    uids = sorted({str(s.header.StudyInstanceUID) for s in sources.values() if s.header is not None})
    if uids:
        basis = "study:" + "|".join(uids)
    elif any(s.path for s in sources.values()):
        basis = "files:" + "|".join(sorted(str(s.path) for s in sources.values() if s.path))
    else:
        basis = f"result:{reviewed.result_id}:{reviewed.report.created}"
    return STUDY_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------------
# the manifest study


def corrections_study(
    reviewed: ReviewedScene,
    out_dir: Path,
    *,
    study_id: str,
    split: str | None,
    sources: Mapping[str, ViewSource],
    exporter: str,
    when: str,
) -> tuple[StudyEntry, list[Path], list[str]]:
    """The manifest study of a review, writing each lesion's mask (and, for a view without a source file, its
    pixels) under ``out_dir``. Returns (study, mask files, notes)."""
    notes: list[str] = []
    mask_dir = out_dir / "masks" / study_id
    if mask_dir.is_dir():  # an earlier export of this study: its lesions may have changed
        for old in mask_dir.glob("*.png"):
            old.unlink()
    mask_dir.mkdir(parents=True, exist_ok=True)
    kept = reviewed.kept()
    lesion_ids, dropped, link_notes = _lesion_ids(reviewed.findings)
    notes += link_notes
    views: dict[str, ViewEntry] = {}
    written: list[Path] = []
    for info in reviewed.report.views:
        source = sources.get(info.key)
        if source is None:
            continue
        image = source.path
        spacing = None if source.header is not None else tuple(float(v) for v in info.spacing)
        if image is None:
            image = _write_pixels(
                reviewed.volumes[info.key], out_dir / "images" / study_id / f"{info.key}.tiff"
            )
            notes.append(
                f"{info.key}: the volume has no source file; its pixels were written to {image.name}"
            )
        lesions = []
        for rf in [f for f in kept if f.item.view_key == info.key]:
            path = mask_dir / f"{info.key}_{rf.item.id}.png"
            _write_mask(rf.mask, path)
            written.append(path)
            lesions.append(_lesion(rf, lesion_ids[rf.item.id], path, dropped.get(rf.item.id)))
        views[info.key] = ViewEntry(
            key=info.key,
            image=image,
            spacing=spacing,
            size=(int(info.size[0]), int(info.size[1])),
            source_id=str(source.header.SOPInstanceUID) if source.header is not None else None,
            lesions=lesions,
        )
    rejected = reviewed.rejected()
    provenance = [_rejection_change(rf, exporter, when) for rf in rejected]
    states = {state: 0 for state in schema.REVIEW_STATES}
    for rf in reviewed.findings:
        states[rf.item.state] += 1
    annotators = sorted({e.who for rf in reviewed.findings for e in rf.item.audit})
    model = reviewed.report.model
    metadata = {
        "review": {
            "result_id": reviewed.result_id,
            "complete": reviewed.complete,
            "states": states,
            "added": sum(rf.item.origin == ORIGIN_ANNOTATOR for rf in reviewed.findings),
            "annotators": annotators,
            "exported_by": exporter,
            "exported": when,
            "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
            "report_created": reviewed.report.created,
            "rejected": [_rejected_record(rf) for rf in rejected],
            "deleted": list(reviewed.deleted),
        }
    }
    for finding_id in reviewed.deleted:
        notes.append(
            f"study {study_id}: the segment of finding {finding_id} was removed from the scene; it is left out "
            "like a rejected finding (its geometry is no longer known)"
        )
    if not reviewed.complete:
        notes.append(
            f"study {study_id}: {states[schema.REVIEW_UNREVIEWED]} finding(s) not reviewed yet; exported as "
            "unlabelled (its lesions are kept, marked unconfirmed)"
        )
    patient = _patient_pseudonym(sources)
    study = StudyEntry(
        id=study_id,
        source=SOURCE,
        split=split,
        labelled=reviewed.complete,
        views=views,
        patient_id=patient,
        metadata=metadata,
        provenance=provenance,
    )
    return study, written, notes


def _lesion_ids(findings: list[ReviewedFinding]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Manifest lesion id per kept finding (``<CC id>+<MLO id>`` for a linked pair, else the finding id), why a
    kept finding's link is not exported, and notes."""
    everything = {rf.item.id: rf for rf in findings}
    kept = [rf for rf in findings if rf.item.state != schema.REVIEW_REJECTED]
    ids = {rf.item.id: rf.item.id for rf in kept}
    dropped: dict[str, str] = {}
    notes = []
    for rf in kept:
        item = rf.item
        if not item.match_id:
            continue
        partner = everything.get(item.match_id)
        if partner is None:
            dropped[item.id] = f"partner {item.match_id} is not in the scene"
        elif partner.item.state == schema.REVIEW_REJECTED:
            dropped[item.id] = f"partner {item.match_id} was rejected"
        elif partner.item.match_id != item.id:
            dropped[item.id] = f"partner {item.match_id} links to {partner.item.match_id or 'nothing'}"
        elif partner.item.type != item.type:
            dropped[item.id] = f"types differ ({item.type} vs {partner.item.type})"
            if item.view == "CC":
                notes.append(
                    f"{item.id} ({item.view_key}, {item.type}) and {partner.item.id} ({partner.item.view_key}, "
                    f"{partner.item.type}) are linked but their types differ; exported unlinked"
                )
        elif item.view == "CC":
            ids[item.id] = ids[partner.item.id] = f"{item.id}+{partner.item.id}"
    return ids, dropped, notes


def _lesion(rf: ReviewedFinding, lesion_id: str, mask_path: Path, dropped_link: str | None) -> Lesion:
    item, finding, mask = rf.item, rf.finding, rf.mask
    polygon = [(float(x), float(y)) for x, y in mask.to_polygon()]
    review: dict[str, Any] = {
        "state": item.state,
        "confirmed": item.confirmed,
        "origin": item.origin,
        "note": item.note,
    }
    extra: dict[str, Any] = {"finding_id": item.id, "review": review}
    if dropped_link is not None:
        extra["link"] = {"partner": item.match_id, "exported": False, "reason": dropped_link}
    if item.origin == ORIGIN_MODEL:
        model: dict[str, Any] = {
            "type": item.model_type,
            "score": finding.score,
            "box": [float(v) for v in rf.model_box],
            "malignancy": finding.malignancy,
            "birads": finding.birads,
            "quadrant": finding.quadrant,
            "depth": finding.depth,
        }
        if item.state == schema.REVIEW_EDITED:
            model["outline"] = [[float(x), float(y)] for x, y in rf.model_outline]
        extra["model"] = {k: v for k, v in model.items() if v is not None}
    return Lesion(
        id=lesion_id,
        type=item.type,
        box=mask.box,
        outline=polygon if len(polygon) >= 3 else None,
        mask=mask_path,
        mask_origin=(int(mask.origin[0]), int(mask.origin[1])),
        provenance=[Change(e.who, e.when, e.what, e.before) for e in item.audit],
        extra=extra,
    )


def _decision(rf: ReviewedFinding, words: tuple[str, ...]) -> AuditEntry | None:
    """The finding's latest audit entry whose text starts with one of ``words``."""
    for entry in reversed(rf.item.audit):
        if entry.what.startswith(words):
            return entry
    return None


def _rejection_change(rf: ReviewedFinding, exporter: str, when: str) -> Change:
    item = rf.item
    decision = _decision(rf, ("rejected", "outline erased"))
    who, at = (decision.who, decision.when) if decision else (exporter, when)
    what = f"rejected {item.view_key} finding {item.id} ({item.type}, score {item.score:.2f})"
    if item.note:
        what += f": {item.note}"
    before = {
        "finding_id": item.id,
        "view": item.view_key,
        "type": item.type,
        "box": list(rf.model_box),
        "score": item.score,
    }
    return Change(who, at, what, before)


def _rejected_record(rf: ReviewedFinding) -> dict[str, Any]:
    item = rf.item
    return {
        "finding_id": item.id,
        "view": item.view_key,
        "type": item.type,
        "model_type": item.model_type,
        "origin": item.origin,
        "score": item.score,
        "number": item.number,
        "match_id": item.match_id,
        "box": list(rf.model_box),
        "outline": [[x, y] for x, y in rf.model_outline],
        "segment_box": None if rf.mask.empty else list(rf.mask.box),
        "note": item.note,
        "audit": [e.to_dict() for e in item.audit],
    }


def _patient_pseudonym(sources: Mapping[str, ViewSource]) -> str | None:
    """A hash of the DICOM Patient ID (``split_off`` keeps a woman's studies together; no identifier is kept)."""
    ids = sorted(
        {
            str(s.header.PatientID)
            for s in sources.values()
            if s.header is not None and str(s.header.get("PatientID", "") or "")
        }
    )
    if not ids:
        return None
    return "patient-" + hashlib.sha256("|".join(ids).encode()).hexdigest()[:16]


def _write_mask(mask: LesionMask, path: Path) -> None:
    """The mask's crop as an 8-bit PNG (255 = lesion); its first pixel is the lesion's ``mask_origin``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask.array, 255, 0).astype(np.uint8), mode="L").save(path)


def _write_pixels(volume, path: Path) -> Path:
    """A view without a source file: its volume's pixels as TIFF (the manifest then gives its spacing)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.ascontiguousarray(volume_pixels(volume)))
    return path


# ------------------------------------------------------------------------------------------------------------
# reviewed DICOM SEG and SR


def review_status(finding: Finding) -> str:
    """The review status of a finding of a reviewed report (``report_from_scene``): unreviewed, accepted,
    rejected, edited, or added (a lesion an annotator drew)."""
    if finding.extra.get("provenance") == ORIGIN_ANNOTATOR:
        state = (finding.extra.get("review") or {}).get("state")
        return schema.REVIEW_REJECTED if state == schema.REVIEW_REJECTED else REVIEW_ADDED
    return (finding.extra.get("review") or {}).get("state") or schema.REVIEW_UNREVIEWED


def reviewed_findings_report(report: Report) -> Report:
    """``report`` without its rejected findings (links to them removed)."""
    kept = [f for f in report.findings if review_status(f) != schema.REVIEW_REJECTED]
    ids = {f.id for f in kept}
    findings = [
        f if f.match_id is None or f.match_id in ids else replace(f, match_id=None, match_probability=None)
        for f in kept
    ]
    return replace(report, findings=findings)


def export_reviewed_dicom(
    report: Report,
    out_dir: str | os.PathLike,
    headers: Mapping[str, Dataset],
    *,
    annotator: str,
    anonymize: bool = False,
    software_version: str | None = None,
) -> ExportResult:
    """Reviewed DICOM SEG (one per view with findings) and TID 1500 SR of a reviewed report (what
    :func:`report_from_scene` returns for a reviewed scene, or such a report saved as JSON), on the source
    DICOM ``headers`` (view key -> header). See the module doc for what changes against the model's export."""
    from .. import __version__
    from ..export import ExportResult
    from ..export.common import stable_uid
    from ..export.dicom_seg import build_segmentation, write_segmentation
    from ..export.dicom_sr import write_sr

    software_version = software_version or f"MammoDNN {__version__}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out_dir=out_dir)
    headers = {k: _with_type2_attributes(h) for k, h in headers.items()}
    if anonymize:
        from ..export.anonymize import anonymize_header

        headers = {k: anonymize_header(h) for k, h in headers.items()}
    reviewed = reviewed_findings_report(report)
    statuses = {f.id: review_status(f) for f in reviewed.findings}
    study_key = next((str(headers[k].StudyInstanceUID) for k in VIEW_KEYS if k in headers), report.created)
    digest = _review_digest(reviewed)
    missing = sorted({f.view_key for f in reviewed.findings} - set(headers))
    if missing:
        raise MammoDNNError(f"reviewed DICOM needs the DICOM headers of {', '.join(missing)}")
    for index, key in enumerate(k for k in VIEW_KEYS if k in headers):
        if not reviewed.findings_in(key):
            result.skipped[f"dicom-seg {key}"] = "no findings left in this view after the review"
            continue
        segmentation = build_segmentation(
            reviewed, key, headers[key], software_version=software_version, study_key=study_key
        )
        _mark_reviewed_segments(segmentation, reviewed, statuses, annotator)
        uid = stable_uid("reviewed seg instance", study_key, report.created, digest, key)
        segmentation.SOPInstanceUID = uid
        segmentation.file_meta.MediaStorageSOPInstanceUID = uid
        segmentation.SeriesInstanceUID = stable_uid(
            "reviewed seg series", study_key, report.created, digest, key
        )
        segmentation.SeriesNumber = SEG_SERIES_NUMBER_BASE + index + 1
        segmentation.SeriesDescription = f"MammoDNN SEG {key} reviewed"
        segmentation.ContentDescription = f"MammoDNN findings {key} reviewed - research use only"[:64]
        segmentation.ContentCreatorName = _person_name(annotator)
        path = out_dir / f"{key}.seg.dcm"
        write_segmentation(path, segmentation)
        result.add("dicom-seg", path)
    sr = build_reviewed_sr(
        reviewed,
        headers,
        annotator=annotator,
        software_version=software_version,
        study_key=study_key,
        digest=digest,
        statuses=statuses,
        original=report,
    )
    path = out_dir / "findings.sr.dcm"
    write_sr(path, sr)
    result.add("dicom-sr", path)
    return result


# Patient and study attributes the SEG and SR copy from their source; they are type 2 (present, possibly empty)
# in a mammogram too, but not every file has them.
_TYPE2_SOURCE_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def _with_type2_attributes(header: Dataset) -> Dataset:
    """A copy of ``header`` with every type-2 patient/study attribute present (empty where the file lacks it)."""
    import copy

    missing = [k for k in _TYPE2_SOURCE_ATTRIBUTES if k not in header]
    if not missing:
        return header
    header = copy.deepcopy(header)
    for keyword in missing:
        setattr(header, keyword, "")
    return header


def _review_digest(report: Report) -> str:
    """What the reviewed objects' series and instance UIDs derive from: a re-export of the same review gives
    the same files; any change of the review gives new UIDs."""
    shapes = {v.key: (v.size[1], v.size[0]) for v in report.views}
    rows = [
        [
            f.id,
            review_status(f),
            f.type,
            int(f.number),
            f.match_id,
            mask_digest(f.lesion_mask(shapes[f.view_key])),
        ]
        for f in sorted(report.findings, key=lambda f: f.id)
    ]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _person_name(name: str) -> str:
    """An annotator's name as a DICOM PN value (free text becomes the family-name component)."""
    from ..export.common import ascii_text

    text = ascii_text(name).replace("\\", " ").replace("=", " ").strip() or "annotator"
    # A name given as free text is one family-name component; the trailing caret says so (PS3.5 6.2.1.2).
    return text[:63] + "^" if "^" not in text else text[:64]


def _mark_reviewed_segments(
    segmentation, report: Report, statuses: Mapping[str, str], annotator: str
) -> None:
    from ..export.common import ascii_text

    by_id = {f.id: f for f in report.findings}
    for item in segmentation.SegmentSequence:
        finding = by_id[str(item.TrackingID)]
        status = statuses[finding.id]
        item.SegmentAlgorithmType = SEGMENT_ALGORITHM_TYPES[status]
        item.SegmentDescription = {
            "unreviewed": "not reviewed",
            "accepted": "accepted by an annotator",
            "edited": "edited by an annotator",
            REVIEW_ADDED: "added by an annotator",
        }[status]
        if status == REVIEW_ADDED:
            # A MANUAL segment has no algorithm (its name and identification are type 1C: not MANUAL).
            for keyword in ("SegmentationAlgorithmIdentificationSequence", "SegmentAlgorithmName"):
                if keyword in item:
                    delattr(item, keyword)
            label = f"{finding.laterality} {finding.view} {finding.number} {finding.type} (annotator)"
            item.SegmentLabel = ascii_text(label)[:64]


def build_reviewed_sr(
    report: Report,
    sources: Mapping[str, Dataset],
    *,
    annotator: str,
    software_version: str,
    study_key: str,
    digest: str,
    statuses: Mapping[str, str],
    original: Report,
):
    """The TID 1500 SR of the reviewed findings (``report`` without the rejected ones; ``original`` is the
    reviewed report before that, whose added/rejected findings decide which model summaries still hold)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..export import dicom_codes as dc
    from ..export.common import ascii_text, copied_names_accepted, stable_uid

    keys = [k for k in VIEW_KEYS if k in sources]
    evidence = [sources[k] for k in keys]
    algorithm = hd.sr.AlgorithmIdentification(
        name="MammoDNN",
        version=ascii_text(f"{software_version} model {report.model.name} {report.model.version}")[:64],
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=stable_uid("device", report.model.sha256 or report.model.name),
        name="MammoDNN",
        manufacturer_name="MammoDNN project",
        model_name=ascii_text(f"MammoDNN {report.model.name} {report.model.version}")[:64],
    )
    with copied_names_accepted():
        person = hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(annotator))
    observation = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person, observer_identifying_attributes=person
        ),
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        ),
    )
    groups: list = []
    for key in keys:
        for finding in sorted(report.findings_in(key), key=lambda f: (f.number, f.id)):
            groups.append(
                _reviewed_group(report, finding, statuses[finding.id], sources[key], algorithm, study_key)
            )
    changed = {
        f.laterality for f in original.findings if review_status(f) in (schema.REVIEW_REJECTED, REVIEW_ADDED)
    }
    for laterality, summary in sorted(report.breasts.items()):
        if laterality not in changed:  # the model's assessment of this breast still describes its findings
            groups.append(
                _summary_group(f"breast {laterality}", summary, laterality, algorithm, study_key, report)
            )
    if not changed:
        groups.append(_summary_group("exam", report.exam, None, algorithm, study_key, report))
    lateralities = {split_view_key(k)[0] for k in keys}
    procedure = (
        dc.PROCEDURE_BILATERAL if len(lateralities) == 2 else dc.PROCEDURE_BY_LATERALITY[lateralities.pop()]
    )
    library = evidence if all(_library_ready(h) for h in evidence) else None
    measurement_report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=dc.concept(procedure),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
        referenced_images=library,
    )
    complete = all(s != schema.REVIEW_UNREVIEWED for s in statuses.values())
    uids = [str(h.SOPInstanceUID) for h in evidence]
    with copied_names_accepted():
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence,
            content=measurement_report[0],
            series_instance_uid=stable_uid("reviewed sr series", study_key, report.created, digest, *uids),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=stable_uid("reviewed sr instance", study_key, report.created, digest, *uids),
            instance_number=1,
            manufacturer="MammoDNN project",
            is_complete=complete,
            is_final=False,
            is_verified=False,
            series_description="MammoDNN findings reviewed (research use only)",
        )
    sr.CodingSchemeIdentificationSequence = [dc.coding_scheme_identification()]
    first = evidence[0]
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if keyword in first:
            setattr(sr, keyword, first.get(keyword))
    return sr


def _library_ready(header: Dataset) -> bool:
    """As the model's SR: projection images need Patient Orientation and Imager Pixel Spacing for TID 1603."""
    if str(header.get("Modality", "")) not in {"CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"}:
        return True
    orientation = header.get("PatientOrientation")
    spacing = header.get("ImagerPixelSpacing")
    return (
        orientation is not None
        and not isinstance(orientation, str)
        and len(orientation) == 2
        and spacing is not None
        and len(spacing) == 2
    )


def _code(code: Code):
    from ..export import dicom_codes as dc

    return dc.concept(code)


def _birads_evaluations(birads: str | None) -> list:
    import highdicom as hd

    from ..export import dicom_codes as dc

    if not birads:
        return []
    category, subcategory = dc.birads_codes(birads)
    out = [hd.sr.QualitativeEvaluation(name=dc.concept(dc.ASSESSMENT_CATEGORY), value=dc.concept(category))]
    if subcategory is not None:
        out.append(
            hd.sr.QualitativeEvaluation(
                name=dc.concept(dc.ASSESSMENT_SUBCATEGORY), value=dc.concept(subcategory)
            )
        )
    return out


def _reviewed_group(
    report: Report, finding: Finding, status: str, source: Dataset, algorithm, study_key: str
):
    """TID 1411 group of one finding: the model's SR group for what the model found (its measurements and
    assessments), only the annotator's type and outline for a lesion the annotator added."""
    import highdicom as hd

    from ..export import dicom_codes as dc
    from ..export.common import lesion_uid

    outline = np.asarray(finding.outline, dtype=np.float64).reshape(-1, 2)
    if len(outline) < 3:
        x0, y0, x1, y1 = finding.box
        outline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.vstack([outline, outline[:1]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(source),
    )
    added = status == REVIEW_ADDED
    measurements = []
    evaluations = []
    if not added:
        probability = dc.concept(dc.UNIT_PROBABILITY)
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.DETECTION_SCORE), value=float(finding.score), unit=probability
            )
        )
        if finding.malignancy is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=dc.concept(dc.MALIGNANCY), value=float(finding.malignancy), unit=probability
                )
            )
        if finding.depth is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=dc.concept(dc.RELATIVE_DEPTH),
                    value=float(finding.depth),
                    unit=dc.concept(dc.UNIT_ONE),
                )
            )
        if finding.match_probability is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=dc.concept(dc.MATCH_PROBABILITY),
                    value=float(finding.match_probability),
                    unit=probability,
                )
            )
        evaluations += _birads_evaluations(finding.birads)
        if finding.depth is not None:
            evaluations.append(
                hd.sr.QualitativeEvaluation(
                    name=dc.concept(dc.DEPTH), value=dc.concept(dc.depth_code(finding.depth))
                )
            )
        if finding.quadrant is not None:
            code = dc.region_code(finding.view, finding.quadrant)
            if code is not None:
                evaluations.append(
                    hd.sr.QualitativeEvaluation(name=dc.concept(dc.REGION), value=dc.concept(code))
                )
    evaluations.append(
        hd.sr.QualitativeEvaluation(
            name=_code(OBSERVER_TYPE), value=_code(OBSERVER_PERSON if added else OBSERVER_DEVICE)
        )
    )
    evaluations.append(
        hd.sr.QualitativeEvaluation(name=_code(REVIEW_STATUS), value=_code(REVIEW_STATUS_VALUES[status]))
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=lesion_uid(report, finding, study_key), identifier=f"{finding.id} ({finding.view_key})"
        ),
        referenced_region=region,
        finding_type=dc.concept(dc.finding_type_code(finding.type)),
        finding_category=dc.concept(dc.SEGMENTATION_CATEGORY),
        algorithm_id=None if added else algorithm,
        finding_sites=[
            hd.sr.FindingSite(
                anatomic_location=dc.concept(dc.BREAST),
                laterality=dc.concept(dc.LATERALITY[finding.laterality]),
            )
        ],
        measurements=measurements or None,
        qualitative_evaluations=evaluations,
    )


def _summary_group(name: str, summary, laterality: str | None, algorithm, study_key: str, report: Report):
    import highdicom as hd

    from ..export import dicom_codes as dc
    from ..export.common import stable_uid

    measurements = []
    if summary.score is not None:
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.MALIGNANCY),
                value=float(summary.score),
                unit=dc.concept(dc.UNIT_PROBABILITY),
            )
        )
    sites = None
    if laterality is not None:
        sites = [
            hd.sr.FindingSite(
                anatomic_location=dc.concept(dc.BREAST), laterality=dc.concept(dc.LATERALITY[laterality])
            )
        ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid(name, study_key, report.created), identifier=name
        ),
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements or None,
        qualitative_evaluations=_birads_evaluations(summary.birads) or None,
    )


# ------------------------------------------------------------------------------------------------------------
# reading the reviewed DICOM back


@dataclass
class ReviewedSegment:
    finding_id: str | None
    label: str
    type_key: str | None
    laterality: str | None
    tracking_uid: str | None
    algorithm_type: str  # AUTOMATIC / SEMIAUTOMATIC / MANUAL
    has_algorithm: bool
    description: str
    mask: np.ndarray  # (rows, cols) bool on the source grid


def read_reviewed_segmentation(path: str | os.PathLike) -> list[ReviewedSegment]:
    """The segments of a reviewed SEG with their masks, algorithm types and review descriptions."""
    import pydicom

    from ..export.dicom_seg import read_segmentation

    records = read_segmentation(path)
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    by_number = {int(item.SegmentNumber): item for item in dataset.SegmentSequence}
    out = []
    for record in records:
        item = by_number[record.number]
        out.append(
            ReviewedSegment(
                finding_id=record.finding_id,
                label=record.label,
                type_key=record.type_key,
                laterality=record.laterality,
                tracking_uid=record.tracking_uid,
                algorithm_type=str(item.SegmentAlgorithmType),
                has_algorithm="SegmentationAlgorithmIdentificationSequence" in item,
                description=str(item.get("SegmentDescription", "")),
                mask=record.mask,
            )
        )
    return out


@dataclass
class ReviewedSR:
    content: Any  # MammoDNNLib.export.dicom_sr.SRContent: findings (type, outline, score, ...) and summaries
    status: dict[str, str]  # finding id -> unreviewed / accepted / edited / added
    observer: dict[str, str]  # finding id -> "person" / "device"
    person_observers: list[str]
    complete: bool


def read_reviewed_sr(path: str | os.PathLike) -> ReviewedSR:
    """A reviewed SR read back with highdicom: the findings (as :func:`~MammoDNNLib.export.dicom_sr.read_report_sr`
    reads them), each finding's review status and observer type, the person observers and the completion flag."""
    import highdicom as hd

    from ..export.dicom_sr import _IDENTIFIER, read_report_sr

    content = read_report_sr(path)
    sr = hd.sr.srread(str(path))
    status_codes = {(c.value, c.scheme): key for key, c in REVIEW_STATUS_VALUES.items()}
    observers = {
        (OBSERVER_PERSON.value, OBSERVER_PERSON.scheme): "person",
        (OBSERVER_DEVICE.value, OBSERVER_DEVICE.scheme): "device",
    }
    status: dict[str, str] = {}
    observer: dict[str, str] = {}
    for group in sr.content.get_planar_roi_measurement_groups():
        match = _IDENTIFIER.match(str(group.tracking_identifier))
        if match is None:
            continue
        finding_id = match.group("id")
        for evaluation in group.get_qualitative_evaluations():
            name = (evaluation.name.value, evaluation.name.scheme_designator)
            value = (evaluation.value.value, evaluation.value.scheme_designator)
            if name == (REVIEW_STATUS.value, REVIEW_STATUS.scheme):
                status[finding_id] = status_codes.get(value, "unknown")
            elif name == (OBSERVER_TYPE.value, OBSERVER_TYPE.scheme):
                observer[finding_id] = observers.get(value, "unknown")
    persons = []
    for context in sr.content.get_observer_contexts():
        attributes = context.observer_identifying_attributes
        if isinstance(attributes, hd.sr.PersonObserverIdentifyingAttributes):
            persons.append(str(attributes.name).rstrip("^"))
    return ReviewedSR(content, status, observer, persons, str(sr.CompletionFlag) == "COMPLETE")


__all__ = [
    "COCO_NAME",
    "MANIFEST_NAME",
    "CorrectionsResult",
    "ReviewedFinding",
    "ReviewedSR",
    "ReviewedScene",
    "ReviewedSegment",
    "build_reviewed_sr",
    "corrections_study",
    "default_study_id",
    "export_corrections",
    "export_reviewed_dicom",
    "read_reviewed_scene",
    "read_reviewed_segmentation",
    "read_reviewed_sr",
    "review_status",
    "reviewed_findings_report",
]
