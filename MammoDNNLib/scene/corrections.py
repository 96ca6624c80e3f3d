"""Export a reviewed scene: corrected annotations for training (manifest + COCO) and reviewed DICOM SEG/SR.

::

    from MammoDNNLib.scene.corrections import export_corrections
    result = export_corrections(scene, "corrections/", annotator="reader B")
    # corrections/corrections.json        training manifest (source "corrections"), merged with earlier exports
    # corrections/corrections.coco.json   COCO detection JSON of the same
    # corrections/masks/<study>/...png    each lesion's exact mask (crop at mask_origin)
    # corrections/dicom/<study>/<view>.seg.dcm, findings.sr.dcm   reviewed DICOM SEG per view and TID 1500 SR
    # corrections/reports/<study>.json     the reviewed report (audit trails included) for `mammodnn export`

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

**Reviewed DICOM** (where the views are DICOM files): written by :func:`MammoDNNLib.export.export_dicom` from the
reviewed report (:mod:`MammoDNNLib.export.review` says what the review changes: rejected findings left out,
AUTOMATIC / SEMIAUTOMATIC / MANUAL segments, the annotator as the SR's person observer, review statuses, the
completion flag, new series UIDs, the model's tracking UIDs). The reviewed report itself is saved too, so
``mammodnn export corrections/reports/<study>.json --out DIR`` makes the same DICOM again later, without Slicer.
"""

from __future__ import annotations

import hashlib
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
from ..errors import InputError
from ..geometry import LesionMask
from . import schema
from .review import ORIGIN_ANNOTATOR, ORIGIN_MODEL, AuditEntry, Clock
from .reviewed import ReviewedFinding, ReviewedScene, ViewSource, read_reviewed_scene, view_sources
from .volumes import volume_pixels

if TYPE_CHECKING:
    from ..export import ExportResult

log = logging.getLogger(__name__)

MANIFEST_NAME = "corrections.json"
COCO_NAME = "corrections.coco.json"
REPORTS_DIR = "reports"
SOURCE = "corrections"
STUDY_PREFIX = "review-"


# ------------------------------------------------------------------------------------------------------------
# the export


@dataclass
class CorrectionsResult:
    out_dir: Path
    manifest: Path
    study_id: str
    coco: Path | None = None
    report: Path | None = None  # the reviewed report (reports/<study>.json)
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
            "report": None if self.report is None else str(self.report),
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
    sources_ = view_sources(reviewed, sources)
    study_id = study_id or default_study_id(reviewed, sources_)
    out_dir.mkdir(parents=True, exist_ok=True)
    study, masks, notes = corrections_study(
        reviewed, out_dir, study_id=study_id, split=split, sources=sources_, exporter=exporter, when=when
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
    report = reviewed.report_with_audit()
    # The views name the source files found here, so that the saved report exports again where it is.
    report = replace(
        report,
        views=[
            replace(v, file=str(sources_[v.key].path)) if v.key in sources_ and sources_[v.key].path else v
            for v in report.views
        ],
    )
    (out_dir / REPORTS_DIR).mkdir(exist_ok=True)
    result.report = report.save(out_dir / REPORTS_DIR / f"{study_id}.json")
    headers = {k: s.header for k, s in sources_.items() if s.header is not None}
    has_findings = {f.item.view_key for f in reviewed.kept()}
    missing = sorted(k for k in sources_ if k not in headers)
    if dicom or (dicom is None and not missing and has_findings):
        from ..export import export_dicom

        if missing:
            problems = "; ".join(f"{k}: {sources_[k].problem}" for k in missing)
            raise InputError(
                sources_[missing[0]].path, f"reviewed DICOM SEG/SR need DICOM source images ({problems})"
            )
        dicom_dir = out_dir / "dicom" / study_id
        for old in dicom_dir.glob(
            "*.dcm"
        ):  # an earlier export of this study: a view may have no findings now
            old.unlink()
        result.dicom = export_dicom(report, dicom_dir, headers, annotator=exporter, anonymize=anonymize)
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


__all__ = [
    "COCO_NAME",
    "MANIFEST_NAME",
    "CorrectionsResult",
    "corrections_study",
    "default_study_id",
    "export_corrections",
]
