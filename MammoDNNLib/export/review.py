"""What an annotator's review changes in the DICOM SEG and SR: which findings, their statuses, the annotator, UIDs.

A *reviewed* report is what :func:`MammoDNNLib.scene.results.report_from_scene` rebuilds from a scene in which
an annotator reviewed the findings (or such a report saved as JSON): its findings carry
``extra["review"] = {"state", "note", "model_type"[, "audit"]}`` and a lesion the annotator added carries
``extra["provenance"] = "annotator"``. The DICOM builders (:mod:`.dicom_seg`, :mod:`.dicom_sr`) take a
:class:`DicomReview` and then

- leave rejected findings out (:func:`reviewed_findings_report`);
- give each finding a *review status*: ``unreviewed`` / ``accepted`` / ``edited`` for what the model found,
  ``added`` for a lesion the annotator drew (:func:`review_status`);
- write the SEG Segment Algorithm Type AUTOMATIC (unreviewed, accepted), SEMIAUTOMATIC (edited) or MANUAL
  (added, without algorithm identification), and the SR observer types Person (added) / Device, the private
  review status code and the completion flag (PARTIAL until every finding is reviewed);
- take new series and instance UIDs derived from the review (:attr:`DicomReview.digest`: the same review gives
  the same files, any change new UIDs), while the lesions keep the tracking UIDs of the model's export.

Without a review the builders write the model's objects, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..scene.schema import ORIGIN_ANNOTATOR, REVIEW_REJECTED, REVIEW_UNREVIEWED, mask_digest
from .common import ascii_text

if TYPE_CHECKING:
    from ..findings import Finding, Report

REVIEW_ADDED = (
    "added"  # the DICOM review status of a lesion the annotator added (its scene state is "edited")
)
SEGMENT_ALGORITHM_TYPES: dict[str, str] = {
    "unreviewed": "AUTOMATIC",
    "accepted": "AUTOMATIC",
    "edited": "SEMIAUTOMATIC",
    REVIEW_ADDED: "MANUAL",
}
SEGMENT_DESCRIPTIONS: dict[str, str] = {
    "unreviewed": "not reviewed",
    "accepted": "accepted by an annotator",
    "edited": "edited by an annotator",
    REVIEW_ADDED: "added by an annotator",
}


def review_status(finding: "Finding") -> str:
    """The review status of a finding of a reviewed report: unreviewed, accepted, rejected, edited, or added (a
    lesion an annotator drew)."""
    review = finding.extra.get("review") or {}
    if finding.extra.get("provenance") == ORIGIN_ANNOTATOR:
        return REVIEW_REJECTED if review.get("state") == REVIEW_REJECTED else REVIEW_ADDED
    return review.get("state") or REVIEW_UNREVIEWED


def is_reviewed(report: "Report") -> bool:
    """Whether an annotator's review shows in ``report`` (a finding with review information)."""
    return any(
        f.extra.get("review") or f.extra.get("provenance") == ORIGIN_ANNOTATOR for f in report.findings
    )


def reviewed_findings_report(report: "Report") -> "Report":
    """``report`` without its rejected findings (links to them removed)."""
    kept = [f for f in report.findings if review_status(f) != REVIEW_REJECTED]
    ids = {f.id for f in kept}
    findings = [
        f if f.match_id is None or f.match_id in ids else replace(f, match_id=None, match_probability=None)
        for f in kept
    ]
    return replace(report, findings=findings)


def annotator_from_audit(report: "Report") -> str | None:
    """Who made the report's latest review change (``extra["review"]["audit"]`` entries), else who added a
    lesion; None when the report does not say."""
    entries = [
        entry
        for f in report.findings
        for entry in ((f.extra.get("review") or {}).get("audit") or [])
        if isinstance(entry, dict) and str(entry.get("who", "")).strip()
    ]
    if entries:
        latest = max(enumerate(entries), key=lambda item: (str(item[1].get("when", "")), item[0]))[1]
        return str(latest["who"]).strip()
    added_by = [str(f.extra.get("added_by", "")).strip() for f in report.findings]
    return next((name for name in added_by if name), None)


def person_name(name: str) -> str:
    """An annotator's name as a DICOM PN value (free text becomes the family-name component)."""
    text = ascii_text(name).replace("\\", " ").replace("=", " ").strip() or "annotator"
    # A name given as free text is one family-name component; the trailing caret says so (PS3.5 6.2.1.2).
    return text[:63] + "^" if "^" not in text else text[:64]


@dataclass(frozen=True)
class DicomReview:
    """The review as the DICOM builders need it (made by :func:`prepare_review`)."""

    annotator: str
    statuses: dict[str, str]  # kept finding id -> unreviewed / accepted / edited / added
    digest: str  # what the reviewed objects' series and instance UIDs derive from
    changed_lateralities: frozenset[str]  # breasts where the review removed or added a finding

    @property
    def complete(self) -> bool:
        return all(s != REVIEW_UNREVIEWED for s in self.statuses.values())

    @property
    def person_name(self) -> str:
        return person_name(self.annotator)

    def status(self, finding: "Finding") -> str:
        return self.statuses[finding.id]


def prepare_review(report: "Report", annotator: str) -> tuple["Report", DicomReview]:
    """The findings the reviewed DICOM holds (``report`` without the rejected ones) and their review."""
    kept = reviewed_findings_report(report)
    changed = frozenset(
        f.laterality for f in report.findings if review_status(f) in (REVIEW_REJECTED, REVIEW_ADDED)
    )
    statuses = {f.id: review_status(f) for f in kept.findings}
    return kept, DicomReview(annotator, statuses, _review_digest(kept), changed)


def _review_digest(report: "Report") -> str:
    """A re-export of the same review gives the same files; any change of the review gives new UIDs."""
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
