"""Annotators review and correct the model's findings in the scene; every decision is stored in the scene itself.

A :class:`ReviewSession` works on the MammoDNN result nodes of a scene (Slicer's ``slicer.mrmlScene`` or a headless
``slicer-core`` scene) and keeps all its state in segment tags, so a review survives saving the scene as ``.mrb``
and reloading it, and an export of partially reviewed work loses nothing::

    from MammoDNNLib.scene.review import ReviewSession
    review = ReviewSession(scene, annotator="reader B")
    finding_id = review.next_finding()            # the next unreviewed finding (breast, number, view order)
    review.go_to(finding_id)                      # centre the views on it and on its matched finding
    review.accept(finding_id)                     # or reject(..., note="vascular"), set_type(..., "asymmetry")
    new_id = review.add_lesion("R-CC", "mass", mask=painted)    # a lesion the model missed: "manual_001"
    review.link("lesion_002", "lesion_007")       # a CC finding and its MLO partner, by hand
    review.sync_edits()                           # outlines painted in the Segment Editor -> state "edited"

Review states (:data:`~.schema.REVIEW_STATES`): *unreviewed*; *accepted* (the finding is right as the model drew
it); *rejected* (not a lesion); *edited* (a lesion, changed by the annotator: its outline or its type). A lesion
the annotator adds is *edited* with ``extra["provenance"] = "annotator"``.

What lives where (all survive ``.mrb``; ``docs/review.md`` documents the layout):

- the review fields the scene code already defines: ``MammoDNN.ReviewState``, ``.ReviewNote``, ``.Type`` (the
  current type; ``.ModelType`` keeps the model's), ``.MatchId``/``.Number`` (links), ``.Box``/``.Outline``: the
  model's geometry, kept unchanged for the record when the annotator edits the outline (the current outline is
  the segment's labelmap);
- :data:`TAG_REVIEW_LOG`: the audit trail, a JSON list of ``{"who", "when", "what", "before"}`` entries (the
  shape of :class:`MammoDNNLib.data.manifest.Change`);
- :data:`TAG_MODEL_MASK`: the SHA-256 of the model's mask as first shown, and :data:`TAG_MASK_STATE`: digest,
  box and area of the mask as last seen. Comparing the segment's labelmap with them is how an outline edited in
  the Segment Editor is detected (:meth:`ReviewSession.sync_edits`).

Nothing here imports Qt; the Slicer module's Review section only calls these methods.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..export.terminology import terminology_entry
from ..findings import Finding
from ..geometry import LesionMask
from ..vocabulary import VIEW_KEYS, finding_type, split_view_key
from . import schema
from .navigation import center_on_finding
from .results import (
    ResultNodes,
    ViewResultNodes,
    find_results,
    labelmap_from_mask,
    pair_color,
    segment_mask,
    segment_tags,
    set_finding_review,
    short_label,
)
from .volume_geometry import box_to_ras, pixel_to_ras
from .volumes import volume_ijk_to_ras, volume_shape, volume_spacing

log = logging.getLogger(__name__)

TAG_REVIEW_LOG = schema.PREFIX + "ReviewLog"  # JSON list of audit entries
TAG_MODEL_MASK = schema.PREFIX + "ModelMaskSha256"  # digest of the model's mask as first shown
TAG_MASK_STATE = schema.PREFIX + "MaskState"  # JSON {"sha256", "box", "area"} of the mask as last seen
REVIEW_TAGS: tuple[str, ...] = (TAG_REVIEW_LOG, TAG_MODEL_MASK, TAG_MASK_STATE)

ORIGIN_MODEL = schema.ORIGIN_MODEL
ORIGIN_ANNOTATOR = schema.ORIGIN_ANNOTATOR
MANUAL_PREFIX = "manual_"
ANNOTATOR_ENVIRONMENT = "MAMMODNN_ANNOTATOR"  # overrides the OS user name as the default annotator
DEFAULT_NEW_LESION_RADIUS_MM = 3.0  # the disc a lesion starts as when no outline is given
MANUAL_SCORE = 1.0  # Finding.score of a lesion an annotator added (it has no detection score)

Clock = Callable[[], str]


def default_annotator() -> str:
    """``$MAMMODNN_ANNOTATOR``, else the operating-system user name."""
    name = os.environ.get(ANNOTATOR_ENVIRONMENT, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user database entry (some containers)
        return "unknown annotator"


def utc_now() -> str:
    """The current time as ISO 8601 UTC with seconds, e.g. ``2025-01-18T16:02:11Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class AuditEntry:
    """One change of a finding: who, when (ISO 8601), what, and the values it replaced (``before``)."""

    who: str
    when: str
    what: str
    before: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"who": self.who, "when": self.when, "what": self.what}
        if self.before is not None:
            out["before"] = self.before
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(str(data["who"]), str(data["when"]), str(data["what"]), data.get("before"))


@dataclass
class ReviewItem:
    """A finding as the review sees it (what a finding list shows)."""

    id: str
    view_key: str
    number: int
    type: str
    model_type: str
    score: float
    state: str
    note: str
    match_id: str | None
    origin: str  # ORIGIN_MODEL or ORIGIN_ANNOTATOR
    label: str  # "R CC 1 · Mass · 0.91"
    audit: list[AuditEntry] = field(default_factory=list)

    @property
    def laterality(self) -> str:
        return split_view_key(self.view_key)[0]

    @property
    def view(self) -> str:
        return split_view_key(self.view_key)[1]

    @property
    def reviewed(self) -> bool:
        return self.state != schema.REVIEW_UNREVIEWED

    @property
    def confirmed(self) -> bool:
        """A lesion the annotator confirmed: accepted, edited or added."""
        return self.state in (schema.REVIEW_ACCEPTED, schema.REVIEW_EDITED)


@dataclass
class ReviewProgress:
    total: int
    by_state: dict[str, int]

    @property
    def reviewed(self) -> int:
        return self.total - self.by_state.get(schema.REVIEW_UNREVIEWED, 0)

    @property
    def complete(self) -> bool:
        return self.reviewed == self.total


class ReviewSession:
    """Review operations on one MammoDNN result in ``scene`` (default: the most recent result).

    :param annotator: who makes the changes (default :func:`default_annotator`); can be changed later.
    :param clock: ``() -> ISO 8601 string`` for the audit trail (default :func:`utc_now`).
    :param record_baseline: remember each model finding's mask now, if not yet done, so that later edits are
        detected. Create the session (or call :meth:`record_baseline`) before anyone edits outlines; a finding
        shown from an outline or a box needs no baseline (its model mask is rebuilt from the tags).
    """

    def __init__(
        self,
        scene,
        *,
        annotator: str | None = None,
        result_id: str | None = None,
        clock: Clock | None = None,
        record_baseline: bool = True,
    ):
        if scene is None:
            raise ValueError("a review needs an MRML scene")
        self.scene = scene
        self.annotator = (annotator or "").strip() or default_annotator()
        self.clock = clock or utc_now
        self.result_id = find_results(scene, result_id).result_id
        if record_baseline:
            self.record_baseline()

    # --- nodes ------------------------------------------------------------------------------------------------
    def nodes(self) -> ResultNodes:
        return find_results(self.scene, self.result_id)

    def _locate(
        self, finding_id: str, nodes: ResultNodes | None = None
    ) -> tuple[ResultNodes, ViewResultNodes, Any]:
        nodes = nodes or self.nodes()
        try:
            view = nodes.view_of_finding(finding_id)
        except KeyError:
            raise ValueError(f"no finding {finding_id!r} in MammoDNN result {nodes.result_id}") from None
        segment = view.segmentation.GetSegmentation().GetSegment(finding_id)
        if _tag(segment, schema.TAG_FINDING_ID) is None:
            raise ValueError(f"segment {finding_id!r} is not a MammoDNN finding (it has no MammoDNN tags)")
        return nodes, view, segment

    def segment_target(self, finding_id: str) -> tuple[Any, Any, str]:
        """(segmentation node, volume node, segment ID) of a finding: what the Segment Editor is opened on."""
        _, view, _ = self._locate(finding_id)
        return view.segmentation, view.volume, finding_id

    def volumes(self) -> dict[str, Any]:
        """View key -> volume node of the views the result covers (where lesions can be added)."""
        return {key: view.volume for key, view in self.nodes().views.items()}

    def visible_centre(self, view_key: str) -> tuple[float, float] | None:
        """The pixel (x, y) in the middle of the first slice view showing ``view_key``'s image, if one does and it
        lies on the image: where a lesion the annotator adds starts (they navigate to it first)."""
        from .navigation import slice_center_ras, slice_nodes_showing
        from .volume_geometry import ras_to_pixel

        volume = self.volumes().get(view_key)
        if volume is None:
            return None
        for slice_node in slice_nodes_showing(self.scene, volume):
            x, y = ras_to_pixel([slice_center_ras(slice_node)], volume_ijk_to_ras(volume))[0][:2]
            rows, cols = volume_shape(volume)
            if 0 <= x <= cols and 0 <= y <= rows:
                return float(x), float(y)
        return None

    def link_candidates(self, finding_id: str) -> list[ReviewItem]:
        """Findings a finding can be linked with: not rejected, in the other view of its breast."""
        item = self.item(finding_id)
        return [
            other
            for other in self.items()
            if other.laterality == item.laterality
            and other.view != item.view
            and other.state != schema.REVIEW_REJECTED
        ]

    # --- reading --------------------------------------------------------------------------------------------
    def items(self) -> list[ReviewItem]:
        """Every finding of the result, in review order: right then left breast, by number, CC before MLO."""
        found = []
        for view in self.nodes().views.values():
            segmentation = view.segmentation.GetSegmentation()
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                if _tag(segment, schema.TAG_FINDING_ID) is None:
                    continue
                found.append(_item(segment))
        found.sort(key=_review_order)
        return found

    def item(self, finding_id: str) -> ReviewItem:
        _, _, segment = self._locate(finding_id)
        return _item(segment)

    def audit(self, finding_id: str) -> list[AuditEntry]:
        return self.item(finding_id).audit

    def progress(self) -> ReviewProgress:
        items = self.items()
        counts = {state: 0 for state in schema.REVIEW_STATES}
        for item in items:
            counts[item.state] += 1
        return ReviewProgress(len(items), counts)

    def current_mask(self, finding_id: str) -> LesionMask:
        """The finding's segment as a mask in its view's pixel grid (what the annotator sees and edits)."""
        _, view, _ = self._locate(finding_id)
        return LesionMask.from_full(segment_mask(view.segmentation, finding_id, view.volume))

    # --- navigation -----------------------------------------------------------------------------------------
    def next_finding(
        self, current: str | None = None, *, unreviewed_only: bool = True, backwards: bool = False
    ) -> str | None:
        """The finding after ``current`` in review order (wrapping around), or the first; with
        ``unreviewed_only`` the next one still unreviewed. ``None`` when there is none."""
        items = self.items()
        if backwards:
            items = items[::-1]
        ids = [i.id for i in items]
        start = ids.index(current) + 1 if current in ids else 0
        for item in items[start:] + items[:start]:
            if item.id == current:
                continue
            if not unreviewed_only or not item.reviewed:
                return item.id
        return None

    def previous_finding(self, current: str | None = None, *, unreviewed_only: bool = False) -> str | None:
        return self.next_finding(current, unreviewed_only=unreviewed_only, backwards=True)

    def go_to(self, finding_id: str, **options: Any) -> dict[str, list[Any]]:
        """Centre every slice view showing the finding's image (and its match's) on it
        (:func:`.navigation.center_on_finding`; ``field_of_view_mm`` zooms)."""
        self._locate(finding_id)
        return center_on_finding(self.scene, finding_id, result_id=self.result_id, **options)

    # --- decisions ------------------------------------------------------------------------------------------
    def accept(self, finding_id: str, note: str | None = None) -> ReviewItem:
        """The finding is a lesion as drawn. An edited finding stays *edited* (accepting confirms the edit)."""
        self.sync_edits([finding_id])
        item = self.item(finding_id)
        state = schema.REVIEW_EDITED if item.state == schema.REVIEW_EDITED else schema.REVIEW_ACCEPTED
        return self.set_state(finding_id, state, note=note, what="accepted")

    def reject(self, finding_id: str, note: str | None = None) -> ReviewItem:
        """Not a lesion (a false positive). Its segment stays in the scene, marked, so the decision can be undone."""
        self.sync_edits([finding_id])
        return self.set_state(finding_id, schema.REVIEW_REJECTED, note=note, what="rejected")

    def set_state(
        self, finding_id: str, state: str, *, note: str | None = None, what: str | None = None
    ) -> ReviewItem:
        """Set the review state (``unreviewed`` undoes a decision); ``note`` replaces the note when given."""
        if state not in schema.REVIEW_STATES:
            raise ValueError(
                f"unknown review state {state!r}; expected one of {', '.join(schema.REVIEW_STATES)}"
            )
        item = self.item(finding_id)
        if state == item.state and (note is None or note == item.note):
            return item
        if state != item.state:
            self._write(finding_id, state=state)
            self._log(finding_id, what or f"state {state}", {"state": item.state})
        if note is not None and note != item.note:
            self.set_note(finding_id, note)
        return self.item(finding_id)

    def set_note(self, finding_id: str, note: str) -> ReviewItem:
        item = self.item(finding_id)
        note = note.strip()
        if note == item.note:
            return item
        self._write(finding_id, note=note)
        self._log(finding_id, f"note: {note}" if note else "note removed", {"note": item.note})
        return self.item(finding_id)

    def set_type(self, finding_id: str, type_key: str) -> ReviewItem:
        """Change the finding's type (mass, calcification, asymmetry, distortion). A model finding becomes
        *edited* (unless rejected): what the annotator confirms is no longer what the model said."""
        new_type = finding_type(type_key).key
        item = self.item(finding_id)
        if new_type == item.type:
            return item
        state = item.state
        if item.origin == ORIGIN_MODEL and state != schema.REVIEW_REJECTED:
            state = schema.REVIEW_EDITED
        self._write(finding_id, type=new_type, state=state if state != item.state else None)
        before: dict[str, Any] = {"type": item.type}
        if state != item.state:
            before["state"] = item.state
        self._log(finding_id, f"type: {item.type} -> {new_type}", before)
        return self.item(finding_id)

    # --- outlines -------------------------------------------------------------------------------------------
    def record_baseline(self) -> list[str]:
        """Remember the mask of every finding that has no record yet (see the class doc); returns their ids."""
        recorded = []
        for view in self.nodes().views.values():
            segmentation = view.segmentation.GetSegmentation()
            shape = volume_shape(view.volume)
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                finding_id = _tag(segment, schema.TAG_FINDING_ID)
                if finding_id is None or _tag(segment, TAG_MASK_STATE) is not None:
                    continue
                mask = LesionMask.from_full(segment_mask(view.segmentation, finding_id, view.volume))
                model_mask = _model_mask_from_tags(segment, shape)
                if _origin(segment) == ORIGIN_MODEL:
                    # Outline or box findings: the model's mask is rebuilt from the tags, so an edit made before
                    # this baseline is still seen; exact masks can only be taken from the segment now.
                    baseline = model_mask if model_mask is not None else mask
                    _set_tag(segment, TAG_MODEL_MASK, schema.mask_digest(baseline))
                    _set_tag(segment, TAG_MASK_STATE, _mask_state(baseline))
                else:
                    _set_tag(segment, TAG_MASK_STATE, _mask_state(mask))
                recorded.append(finding_id)
        return recorded

    def sync_edits(self, finding_ids: Iterable[str] | None = None) -> list[str]:
        """Compare segments with their last-seen masks; record every change in the audit trail.

        A model finding whose outline changed becomes *edited* (a rejected one stays rejected); one whose
        segment was erased completely becomes *rejected*. An added lesion's box and outline tags follow its
        segment. Returns the ids that changed. Call it after the Segment Editor was used (the Slicer module
        does so when it is shown again, and before every decision and export)."""
        wanted = None if finding_ids is None else set(finding_ids)
        changed = []
        for view in self.nodes().views.values():
            segmentation = view.segmentation.GetSegmentation()
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                finding_id = _tag(segment, schema.TAG_FINDING_ID)
                if finding_id is None or (wanted is not None and finding_id not in wanted):
                    continue
                if self._sync_segment(view, segment, finding_id):
                    changed.append(finding_id)
        return changed

    def _sync_segment(self, view: ViewResultNodes, segment, finding_id: str) -> bool:
        state_text = _tag(segment, TAG_MASK_STATE)
        mask = LesionMask.from_full(segment_mask(view.segmentation, finding_id, view.volume))
        if state_text is None:  # a finding without baseline (added by other code): start watching it now
            _set_tag(segment, TAG_MASK_STATE, _mask_state(mask))
            return False
        last = json.loads(state_text)
        digest = schema.mask_digest(mask)
        if digest == last["sha256"]:
            return False
        item = _item(segment)
        before = {"box": last["box"], "area": last["area"]}
        if mask.empty:
            what, state = "outline erased", schema.REVIEW_REJECTED
        else:
            what = "outline edited"
            state = item.state
            if item.origin == ORIGIN_MODEL and state in (schema.REVIEW_UNREVIEWED, schema.REVIEW_ACCEPTED):
                state = schema.REVIEW_EDITED
        if state != item.state:
            before["state"] = item.state
        _set_tag(segment, TAG_MASK_STATE, _mask_state(mask))
        if item.origin == ORIGIN_ANNOTATOR and not mask.empty:
            _set_tag(segment, schema.TAG_BOX, " ".join(repr(float(v)) for v in mask.box))
            _set_tag(segment, schema.TAG_OUTLINE, json.dumps(_outline(mask), separators=(",", ":")))
        self._write(finding_id, state=state if state != item.state else None)
        self._log(finding_id, what, before)
        self._refresh_geometry(finding_id, mask)
        return True

    def set_outline(self, finding_id: str, mask: LesionMask | np.ndarray) -> ReviewItem:
        """Replace the finding's segment with ``mask`` (full-grid bool array or :class:`LesionMask`), as the
        Segment Editor would, and record the edit."""
        _, view, _ = self._locate(finding_id)
        _replace_labelmap(view, finding_id, _as_mask(mask))
        self.sync_edits([finding_id])
        return self.item(finding_id)

    def model_mask(self, finding_id: str) -> LesionMask | None:
        """The model's own mask where the tags hold it (outline or box findings); ``None`` for exact masks and
        added lesions (their model outline is the ``MammoDNN.Outline`` tag, the traced outline of the mask)."""
        _, view, segment = self._locate(finding_id)
        return _model_mask_from_tags(segment, volume_shape(view.volume))

    # --- missed lesions -------------------------------------------------------------------------------------
    def add_lesion(
        self,
        view_key: str,
        type_key: str,
        *,
        mask: LesionMask | np.ndarray | None = None,
        center: tuple[float, float] | None = None,
        radius_mm: float = DEFAULT_NEW_LESION_RADIUS_MM,
        note: str = "",
    ) -> str:
        """Add a lesion the model missed as a new segment of ``view_key``'s segmentation; returns its id
        (``manual_001``, ...).

        Its outline is ``mask``, or a disc of ``radius_mm`` around ``center`` ((x, y) pixels; default the image
        centre) for the annotator to paint over. The finding has the next free number of its breast, score
        :data:`MANUAL_SCORE` and ``extra["provenance"] = "annotator"``; its state is *edited*.
        """
        new_type = finding_type(type_key).key
        nodes = self.nodes()
        view = nodes.views.get(view_key)
        if view is None:
            raise ValueError(
                f"the result has no segmentation for {view_key}; lesions can be added to "
                f"{', '.join(nodes.views) or 'no view'}"
            )
        shape = volume_shape(view.volume)
        if mask is None:
            lesion = _disc(shape, center, radius_mm, volume_spacing(view.volume))
        else:
            lesion = _as_mask(mask, shape)
        lesion = LesionMask.from_full(lesion.full(shape))
        if lesion.empty:
            raise ValueError(f"the outline of the new {new_type} on {view_key} is empty")
        finding_id = self._new_id(nodes)
        laterality = split_view_key(view_key)[0]
        number = 1 + max([i.number for i in self.items() if i.laterality == laterality] or [0])
        when = self.clock()
        finding = Finding(
            id=finding_id,
            view_key=view_key,
            type=new_type,
            score=MANUAL_SCORE,
            box=lesion.box,
            number=number,
            mask=lesion,
            extra={"provenance": ORIGIN_ANNOTATOR, "added_by": self.annotator, "added": when},
        )
        _add_segment(view, finding, shape)
        segment = view.segmentation.GetSegmentation().GetSegment(finding_id)
        _set_tag(segment, TAG_MASK_STATE, _mask_state(lesion))
        if note.strip():
            _set_tag(segment, schema.TAG_REVIEW_NOTE, note.strip())
        self._add_markups(nodes, view, finding)
        self._log(finding_id, f"added missed lesion ({new_type})", None, when=when)
        set_finding_review(self.scene, finding_id, result_id=self.result_id)  # table row, names
        return finding_id

    def _new_id(self, nodes: ResultNodes) -> str:
        taken = set()
        for view in nodes.views.values():
            segmentation = view.segmentation.GetSegmentation()
            taken.update(segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments()))
        index = 1
        while f"{MANUAL_PREFIX}{index:03d}" in taken:
            index += 1
        return f"{MANUAL_PREFIX}{index:03d}"

    def _add_markups(self, nodes: ResultNodes, view: ViewResultNodes, finding: Finding) -> None:
        """ROI and centre point of an added finding, registered with the result like the model's ones."""
        from .results import add_roi  # the ROI exactly as the scene code makes it for the model findings

        view_ids = _view_node_ids(view.segmentation)
        roi = add_roi(self.scene, finding, view.volume, nodes.result_id, view_ids)
        nodes.report_node.AddNodeReferenceID(schema.REF_ROI, roi.GetID())
        view.rois[finding.id] = roi
        if view.centres is not None:
            x, y, z = pixel_to_ras([finding.center], volume_ijk_to_ras(view.volume))[0]
            locked = view.centres.GetLocked()
            view.centres.SetLocked(False)
            index = view.centres.AddControlPoint(float(x), float(y), float(z), short_label(finding))
            view.centres.SetNthControlPointDescription(index, finding.id)
            view.centres.SetLocked(locked)
        order = json.loads(nodes.report_node.GetAttribute(schema.ATTR_FINDING_ORDER) or "[]")
        order.append(finding.id)
        nodes.report_node.SetAttribute(schema.ATTR_FINDING_ORDER, json.dumps(order))
        _put_in_result_folder(self.scene, nodes.result_id, roi)

    # --- CC-MLO links ---------------------------------------------------------------------------------------
    def link(self, first_id: str, second_id: str) -> None:
        """Link a CC finding with an MLO finding of the same breast (both ``MatchId`` tags, one shared number).
        Their earlier partners are unlinked. Types may differ while the review goes on; the training export
        keeps the two unlinked (noted) while they do, since one lesion has one type."""
        a, b = self.item(first_id), self.item(second_id)
        if a.laterality != b.laterality or a.view == b.view:
            raise ValueError(
                f"{first_id} ({a.view_key}) and {second_id} ({b.view_key}) cannot be linked: a link joins the CC "
                "and the MLO finding of one breast"
            )
        if a.match_id == b.id and b.match_id == a.id:
            return
        for item, partner in ((a, b), (b, a)):
            if item.match_id and item.match_id != partner.id:
                self._unlink_pair(item.id, item.match_id)
        a, b = self.item(first_id), self.item(second_id)
        for item, partner in ((a, b), (b, a)):
            self._write(item.id, match_id=partner.id)
            self._log(item.id, f"linked with {partner.id} ({partner.view_key})", {"match_id": item.match_id})
        self._renumber(a.laterality, keep=(a.id, b.id))

    def unlink(self, finding_id: str) -> None:
        """Remove the finding's link (on both sides)."""
        item = self.item(finding_id)
        if not item.match_id:
            return
        self._unlink_pair(item.id, item.match_id)
        self._renumber(item.laterality)

    def _unlink_pair(self, finding_id: str, partner_id: str) -> None:
        for one, other in ((finding_id, partner_id), (partner_id, finding_id)):
            try:
                item = self.item(one)
            except ValueError:  # the partner's view is not in the scene
                continue
            if item.match_id == other:
                self._write(one, match_id="")
                self._log(one, f"unlinked from {other}", {"match_id": other})

    def _renumber(self, laterality: str, keep: tuple[str, ...] = ()) -> None:
        """Give the findings of a breast numbers that a matched pair shares and nothing else does; numbers stay
        where they can (``keep``: the pair just linked gets the smaller of its numbers first)."""
        items = {i.id: i for i in self.items() if i.laterality == laterality}
        groups: list[tuple[str, ...]] = []
        seen: set[str] = set()
        for item in items.values():
            if item.id in seen:
                continue
            partner = items.get(item.match_id or "")
            group = (
                (item.id, partner.id) if partner is not None and partner.match_id == item.id else (item.id,)
            )
            seen.update(group)
            groups.append(group)
        groups.sort(key=lambda g: (0 if set(g) == set(keep) else 1, min(items[i].number for i in g), g))
        used: set[int] = set()
        wanted: dict[tuple[str, ...], int] = {}
        deferred = []
        for group in groups:
            number = min(items[i].number for i in group)
            if number >= 1 and number not in used:
                used.add(number)
                wanted[group] = number
            else:
                deferred.append(group)
        for group in deferred:
            number = max(used | {0}) + 1
            used.add(number)
            wanted[group] = number
        for group, number in wanted.items():
            for finding_id in group:
                if items[finding_id].number != number:
                    self._write(finding_id, number=number)

    # --- writing --------------------------------------------------------------------------------------------
    def _write(
        self,
        finding_id: str,
        *,
        state: str | None = None,
        type: str | None = None,
        note: str | None = None,
        match_id: str | None = None,
        number: int | None = None,
    ) -> None:
        """Set tags, then refresh the segment name, the ROI and centre labels and colours, and the table."""
        _, view, segment = self._locate(finding_id)
        if match_id is not None:
            _set_tag(segment, schema.TAG_MATCH_ID, match_id)
            if not match_id:
                _set_tag(segment, schema.TAG_MATCH_PROBABILITY, "")
        if number is not None:
            _set_tag(segment, schema.TAG_NUMBER, str(int(number)))
        set_finding_review(
            self.scene, finding_id, state=state, type=type, note=note, result_id=self.result_id
        )
        self._refresh_labels(view, finding_id)

    def _refresh_labels(self, view: ViewResultNodes, finding_id: str) -> None:
        segment = view.segmentation.GetSegmentation().GetSegment(finding_id)
        finding = schema.finding_from_tags(segment_tags(segment))
        roi = view.rois.get(finding_id)
        if roi is not None:
            roi.SetName(finding.label())
            if roi.GetNumberOfControlPoints():
                roi.SetNthControlPointLabel(0, short_label(finding))
            display = roi.GetDisplayNode()
            if display is not None:
                display.SetColor(*pair_color(finding.number))
                display.SetSelectedColor(*pair_color(finding.number))
        if view.centres is not None:
            for index in range(view.centres.GetNumberOfControlPoints()):
                if view.centres.GetNthControlPointDescription(index) == finding_id:
                    view.centres.SetNthControlPointLabel(index, short_label(finding))

    def _refresh_geometry(self, finding_id: str, mask: LesionMask) -> None:
        """Move the finding's ROI and centre point to its current outline."""
        if mask.empty:
            return
        _, view, _ = self._locate(finding_id)
        matrix = volume_ijk_to_ras(view.volume)
        roi = view.rois.get(finding_id)
        if roi is not None:
            box = box_to_ras(mask.box, matrix)
            locked = roi.GetLocked()
            roi.SetLocked(False)
            roi.SetCenter(*box.center)
            roi.SetSize(*box.size)
            roi.SetLocked(locked)
        if view.centres is not None:
            x0, y0, x1, y1 = mask.box
            x, y, z = pixel_to_ras([((x0 + x1) / 2, (y0 + y1) / 2)], matrix)[0]
            for index in range(view.centres.GetNumberOfControlPoints()):
                if view.centres.GetNthControlPointDescription(index) == finding_id:
                    locked = view.centres.GetLocked()
                    view.centres.SetLocked(False)
                    view.centres.SetNthControlPointPosition(index, float(x), float(y), float(z))
                    view.centres.SetLocked(locked)

    def _log(
        self, finding_id: str, what: str, before: dict[str, Any] | None, *, when: str | None = None
    ) -> None:
        _, _, segment = self._locate(finding_id)
        entries = json.loads(_tag(segment, TAG_REVIEW_LOG) or "[]")
        entries.append(AuditEntry(self.annotator, when or self.clock(), what, before).to_dict())
        _set_tag(segment, TAG_REVIEW_LOG, json.dumps(entries, separators=(",", ":"), sort_keys=True))


# ------------------------------------------------------------------------------------------------------------
# helpers


def _tag(segment, name: str) -> str | None:
    """A segment tag's decoded value, or ``None`` when the segment does not have it."""
    import vtk

    value = vtk.reference("")
    if not segment.GetTag(name, value):
        return None
    return schema.decode_value(str(value))


def _set_tag(segment, name: str, value: str) -> None:
    segment.SetTag(name, schema.encode_value(value))


def _origin(segment) -> str:
    extra = json.loads(_tag(segment, schema.TAG_EXTRA) or "{}")
    return ORIGIN_ANNOTATOR if extra.get("provenance") == ORIGIN_ANNOTATOR else ORIGIN_MODEL


def _item(segment) -> ReviewItem:
    finding = schema.finding_from_tags(segment_tags(segment))
    state = _tag(segment, schema.TAG_REVIEW_STATE) or schema.REVIEW_UNREVIEWED
    return ReviewItem(
        id=finding.id,
        view_key=finding.view_key,
        number=int(finding.number),
        type=finding.type,
        model_type=_tag(segment, schema.TAG_MODEL_TYPE) or finding.type,
        score=float(finding.score),
        state=state,
        note=_tag(segment, schema.TAG_REVIEW_NOTE) or "",
        match_id=finding.match_id,
        origin=_origin(segment),
        label=finding.label(),
        audit=[AuditEntry.from_dict(e) for e in json.loads(_tag(segment, TAG_REVIEW_LOG) or "[]")],
    )


def _review_order(item: ReviewItem) -> tuple:
    return (
        "RL".index(item.laterality),
        item.number,
        ("CC", "MLO").index(item.view),
        VIEW_KEYS.index(item.view_key),
        item.id,
    )


def _mask_state(mask: LesionMask) -> str:
    box = None if mask.empty else [float(v) for v in mask.box]
    return json.dumps(
        {"sha256": schema.mask_digest(mask), "box": box, "area": mask.area}, separators=(",", ":")
    )


def _outline(mask: LesionMask) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in mask.to_polygon()]


def _model_mask_from_tags(segment, shape: tuple[int, int]) -> LesionMask | None:
    """The mask ``show_report`` made from the model's outline or box (``None`` for exact masks)."""
    if _tag(segment, schema.TAG_MASK_SOURCE) not in ("outline", "box") or _origin(segment) != ORIGIN_MODEL:
        return None
    finding = schema.finding_from_tags(segment_tags(segment))  # no mask given: box and outline from the tags
    return LesionMask.from_full(finding.lesion_mask(shape).full(shape))


def _as_mask(mask: LesionMask | np.ndarray, shape: tuple[int, int] | None = None) -> LesionMask:
    if isinstance(mask, LesionMask):
        return mask
    array = np.asarray(mask, dtype=bool)
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"a full-grid mask must be {shape[0]}x{shape[1]} pixels, got {array.shape}")
    return LesionMask.from_full(array)


def _disc(
    shape: tuple[int, int], center: tuple[float, float] | None, radius_mm: float, spacing: tuple[float, float]
) -> LesionMask:
    rows, cols = shape
    cx, cy = center if center is not None else (cols / 2.0, rows / 2.0)
    if not (0 <= cx <= cols and 0 <= cy <= rows):
        raise ValueError(f"the new lesion's centre ({cx:.1f}, {cy:.1f}) lies outside the {cols}x{rows} image")
    ry = max(radius_mm / float(spacing[0]), 1.0)
    rx = max(radius_mm / float(spacing[1]), 1.0)
    r0, r1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, rows)
    c0, c1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, cols)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    inside = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0
    if not inside.any():  # a centre between pixel centres with a tiny radius: take the pixel under it
        inside[min(int(cy) - r0, inside.shape[0] - 1), min(int(cx) - c0, inside.shape[1] - 1)] = True
    return LesionMask.from_full_crop(inside, (c0, r0))


def _replace_labelmap(view: ViewResultNodes, finding_id: str, mask: LesionMask) -> None:
    from slicer import vtkSlicerSegmentationsModuleLogic

    shape = volume_shape(view.volume)
    labelmap = labelmap_from_mask(mask, shape, volume_ijk_to_ras(view.volume))
    if not vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, view.segmentation, finding_id, vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    ):
        raise ValueError(
            f"could not write the outline of {finding_id!r} into {view.segmentation.GetName()!r}"
        )


def _add_segment(view: ViewResultNodes, finding: Finding, shape: tuple[int, int]) -> None:
    from slicer import vtkSegment, vtkSegmentationConverter

    segment = vtkSegment()
    segment.SetName(finding.label())
    segment.SetNameAutoGenerated(False)
    segment.SetColor(*finding_type(finding.type).color)
    segment.SetColorAutoGenerated(False)
    segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_entry(finding.type, finding.laterality))
    for tag, value in schema.finding_to_tags(finding, review_state=schema.REVIEW_EDITED).items():
        segment.SetTag(tag, value)
    segment.AddRepresentation(
        vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(),
        labelmap_from_mask(finding.mask, shape, volume_ijk_to_ras(view.volume)),
    )
    if not view.segmentation.GetSegmentation().AddSegment(segment, finding.id):
        raise ValueError(f"could not add segment {finding.id!r} to {view.segmentation.GetName()!r}")


def _view_node_ids(segmentation_node) -> list[str]:
    display = segmentation_node.GetDisplayNode()
    if display is None:
        return []
    return [display.GetNthViewNodeID(i) for i in range(display.GetNumberOfViewNodeIDs())]


def _put_in_result_folder(scene, result_id: str, node) -> None:
    from slicer import vtkMRMLSubjectHierarchyNode

    sh = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return
    import vtk

    children = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), children, False)
    for index in range(children.GetNumberOfIds()):
        folder = children.GetId(index)
        if sh.GetItemAttribute(folder, schema.ATTR_RESULT_ID) == result_id:
            item = sh.GetItemByDataNode(node)
            if item:
                sh.SetItemParent(item, folder)
            else:
                sh.CreateItem(folder, node)
            return


__all__ = [
    "ANNOTATOR_ENVIRONMENT",
    "MANUAL_PREFIX",
    "ORIGIN_ANNOTATOR",
    "ORIGIN_MODEL",
    "REVIEW_TAGS",
    "TAG_MASK_STATE",
    "TAG_MODEL_MASK",
    "TAG_REVIEW_LOG",
    "AuditEntry",
    "ReviewItem",
    "ReviewProgress",
    "ReviewSession",
    "default_annotator",
    "utc_now",
]
