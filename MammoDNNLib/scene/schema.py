"""The names MammoDNN writes into an MRML scene, and a finding's fields ↔ segment tags.

A scene holding MammoDNN results is self-describing, so that it survives saving as ``.mrb`` and reloading
(review state included) and :func:`MammoDNNLib.scene.results.report_from_scene` can rebuild the Report from
it:

- Volume nodes carry the view identity as node attributes (:data:`ATTR_VIEW_KEY`, :data:`ATTR_LATERALITY`,
  ...).
- Every result node carries :data:`ATTR_RESULT_ID` and :data:`ATTR_ROLE`; one *report node* (a
  ``vtkMRMLScriptedModuleNode``) per result holds the report-level fields as JSON in :data:`ATTR_REPORT` and
  node references to the others.
- Each finding is one segment (segment ID = finding ID) of its view's segmentation node; its report fields are
  segment tags ``MammoDNN.<Field>`` (saved in ``.seg.nrrd`` as ``SegmentN_Tags``), plus the review fields
  :data:`TAG_REVIEW_STATE`, :data:`TAG_REVIEW_NOTE` and :data:`TAG_MODEL_TYPE` that an annotator edits.

Tag values are strings: numbers use ``repr`` (exact round trip), missing values are empty, structured values
are compact JSON. Slicer stores a segment's tags as ``key:value|key:value|`` on one NRRD header line, so
values escape ``%``, ``|`` and line breaks (:func:`encode_value`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..findings import Finding
from ..geometry import LesionMask

PREFIX = "MammoDNN."

# --- node attributes ----------------------------------------------------------------------------------------
ATTR_VIEW_KEY = PREFIX + "ViewKey"  # "R-CC", ... on volume, segmentation and markups nodes
ATTR_LATERALITY = PREFIX + "Laterality"  # "R" / "L" on volume nodes
ATTR_VIEW = PREFIX + "View"  # "CC" / "MLO" on volume nodes
ATTR_SOURCE_FILE = PREFIX + "SourceFile"  # the file a volume was loaded from
ATTR_SPACING = PREFIX + "Spacing"  # "row col" mm: the view's own (magnification-corrected) spacing
ATTR_PROVENANCE = PREFIX + "Provenance"  # JSON: what laterality/view/spacing were read from
ATTR_CHEST_WALL = PREFIX + "ChestWall"  # "left" / "right": the image edge the chest wall is on, when known
ATTR_RESULT_ID = PREFIX + "ResultId"  # on every result node
ATTR_ROLE = PREFIX + "Role"  # one of ROLES
ATTR_REPORT = PREFIX + "Report"  # JSON of the report without its findings (report node)
ATTR_SCHEMA_VERSION = PREFIX + "SceneSchemaVersion"  # version of this layout (report node)
ATTR_FINDING_ID = PREFIX + "FindingId"  # on ROI nodes
ATTR_CREATED = PREFIX + "Created"  # when the results were put in the scene (report node), ISO 8601
ATTR_FINDING_ORDER = PREFIX + "FindingOrder"  # JSON list of finding ids in report order (report node)
ATTR_DISCLAIMER = PREFIX + "Disclaimer"  # the report's disclaimer (summary table)

SCENE_SCHEMA_VERSION = "1"

ROLE_REPORT = "report"
ROLE_SEGMENTATION = "segmentation"
ROLE_ROI = "roi"
ROLE_CENTRES = "centres"
ROLE_FINDINGS_TABLE = "findings-table"
ROLE_SUMMARY_TABLE = "summary-table"
ROLES = (ROLE_REPORT, ROLE_SEGMENTATION, ROLE_ROI, ROLE_CENTRES, ROLE_FINDINGS_TABLE, ROLE_SUMMARY_TABLE)

# Node reference roles from the report node (and from each segmentation node to its volume).
REF_VOLUME = "mammodnnVolume"
REF_SEGMENTATION = "mammodnnSegmentation"
REF_ROI = "mammodnnROI"
REF_CENTRES = "mammodnnCentres"
REF_FINDINGS_TABLE = "mammodnnFindingsTable"
REF_SUMMARY_TABLE = "mammodnnSummaryTable"

# --- segment tags -------------------------------------------------------------------------------------------
TAG_FINDING_ID = PREFIX + "FindingId"
TAG_VIEW_KEY = PREFIX + "ViewKey"
TAG_TYPE = PREFIX + "Type"  # current type (an annotator may change it)
TAG_MODEL_TYPE = PREFIX + "ModelType"  # the type the model reported
TAG_SCORE = PREFIX + "Score"
TAG_BOX = PREFIX + "Box"  # "x0 y0 x1 y1", original pixel edges
TAG_NUMBER = PREFIX + "Number"
TAG_OUTLINE = PREFIX + "Outline"  # JSON [[x, y], ...]
TAG_MASK_SOURCE = (
    PREFIX + "MaskSource"
)  # "mask" (exact mask known), "outline" or "box": what the segment came from
TAG_QUADRANT = PREFIX + "Quadrant"
TAG_QUADRANT_PROBABILITIES = PREFIX + "QuadrantProbabilities"  # JSON
TAG_DEPTH = PREFIX + "Depth"
TAG_MATCH_ID = PREFIX + "MatchId"
TAG_MATCH_PROBABILITY = PREFIX + "MatchProbability"
TAG_MALIGNANCY = PREFIX + "Malignancy"
TAG_MORPHOLOGY = PREFIX + "Morphology"  # JSON
TAG_BIRADS = PREFIX + "BIRADS"
TAG_EXTRA = PREFIX + "Extra"  # JSON
TAG_REVIEW_STATE = PREFIX + "ReviewState"  # one of REVIEW_STATES
TAG_REVIEW_NOTE = PREFIX + "ReviewNote"

REVIEW_UNREVIEWED = "unreviewed"
REVIEW_ACCEPTED = "accepted"
REVIEW_REJECTED = "rejected"
REVIEW_EDITED = "edited"
REVIEW_STATES: tuple[str, ...] = (REVIEW_UNREVIEWED, REVIEW_ACCEPTED, REVIEW_REJECTED, REVIEW_EDITED)

# Who found a finding: ``Finding.extra["provenance"]`` is ORIGIN_ANNOTATOR for a lesion an annotator added.
ORIGIN_MODEL = "model"
ORIGIN_ANNOTATOR = "annotator"

FINDING_TAGS: tuple[str, ...] = (
    TAG_FINDING_ID,
    TAG_VIEW_KEY,
    TAG_TYPE,
    TAG_MODEL_TYPE,
    TAG_SCORE,
    TAG_BOX,
    TAG_NUMBER,
    TAG_OUTLINE,
    TAG_MASK_SOURCE,
    TAG_QUADRANT,
    TAG_QUADRANT_PROBABILITIES,
    TAG_DEPTH,
    TAG_MATCH_ID,
    TAG_MATCH_PROBABILITY,
    TAG_MALIGNANCY,
    TAG_MORPHOLOGY,
    TAG_BIRADS,
    TAG_EXTRA,
    TAG_REVIEW_STATE,
    TAG_REVIEW_NOTE,
)


def mask_digest(mask: LesionMask) -> str:
    """SHA-256 of a mask's pixels and position (independent of how tightly it is cropped): what the review tags
    compare to see an edited outline, and what reviewed DICOM UIDs derive from."""
    tight = LesionMask.from_full_crop(mask.array, mask.origin)
    digest = hashlib.sha256()
    if tight.empty:
        digest.update(b"empty")
    else:
        rows, cols = tight.array.shape
        digest.update(f"{tight.origin[0]},{tight.origin[1]},{rows},{cols};".encode())
        digest.update(np.packbits(tight.array).tobytes())
    return digest.hexdigest()


def encode_value(value: str) -> str:
    """Make a string safe inside Slicer's ``key:value|`` tag list on one header line."""
    return value.replace("%", "%25").replace("|", "%7C").replace("\n", "%0A").replace("\r", "%0D")


def decode_value(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%7C", "|").replace("%25", "%")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return repr(value) if math.isfinite(value) else ""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def mask_source(finding: Finding) -> str:
    """What the finding's segment is rasterized from (see :meth:`Finding.lesion_mask`)."""
    if finding.mask is not None:
        return "mask"
    return "outline" if len(finding.outline) >= 3 else "box"


def finding_to_tags(
    finding: Finding, *, review_state: str = REVIEW_UNREVIEWED, review_note: str = ""
) -> dict[str, str]:
    """All of a finding's report fields as segment tags (values already encoded)."""
    if review_state not in REVIEW_STATES:
        raise ValueError(f"unknown review state {review_state!r}; expected one of {', '.join(REVIEW_STATES)}")
    cleaned = (
        finding.to_dict()
    )  # JSON-safe copies of the structured fields (numpy scalars, tuples, NaN handled)
    plain = {
        TAG_FINDING_ID: finding.id,
        TAG_VIEW_KEY: finding.view_key,
        TAG_TYPE: finding.type,
        TAG_MODEL_TYPE: finding.type,
        TAG_SCORE: _number(finding.score),
        TAG_BOX: " ".join(_number(v) for v in finding.box),
        TAG_NUMBER: _number(int(finding.number)),
        TAG_OUTLINE: _json([[float(x), float(y)] for x, y in finding.outline]),
        TAG_MASK_SOURCE: mask_source(finding),
        TAG_QUADRANT: finding.quadrant or "",
        TAG_QUADRANT_PROBABILITIES: _json(cleaned.get("quadrant_probabilities", {})),
        TAG_DEPTH: _number(finding.depth),
        TAG_MATCH_ID: finding.match_id or "",
        TAG_MATCH_PROBABILITY: _number(finding.match_probability),
        TAG_MALIGNANCY: _number(finding.malignancy),
        TAG_MORPHOLOGY: _json(cleaned.get("morphology", {})),
        TAG_BIRADS: finding.birads or "",
        TAG_EXTRA: _json(cleaned.get("extra", {})),
        TAG_REVIEW_STATE: review_state,
        TAG_REVIEW_NOTE: review_note,
    }
    return {k: encode_value(v) for k, v in plain.items()}


def finding_from_tags(tags: Mapping[str, str], mask: LesionMask | None = None) -> Finding:
    """Rebuild a Finding from its segment tags (as stored, i.e. encoded).

    ``mask`` is the segment's labelmap in the view's pixel grid. It becomes the finding's mask when the
    finding had an exact mask (``MaskSource`` "mask") or an annotator edited the segment (review state
    "edited"); then an edited finding's box and outline follow the mask. A finding whose review state is not
    "unreviewed" or which has a note gets ``extra["review"] = {"state", "note", "model_type"}``; an unreviewed
    one comes back exactly as it was put in.
    """
    t = {k: decode_value(v) for k, v in tags.items()}
    try:
        finding_id = t[TAG_FINDING_ID]
        state = t.get(TAG_REVIEW_STATE) or REVIEW_UNREVIEWED
        if state not in REVIEW_STATES:
            raise ValueError(f"unknown review state {state!r}")
        edited = state == REVIEW_EDITED and mask is not None and not mask.empty
        keep_mask = mask is not None and (t.get(TAG_MASK_SOURCE) == "mask" or edited)
        box = tuple(float(v) for v in t[TAG_BOX].split())
        outline = [tuple(p) for p in json.loads(t.get(TAG_OUTLINE) or "[]")]
        if edited:
            box = mask.box  # type: ignore[union-attr]
            outline = []  # recomputed from the edited mask by Finding.__post_init__
        extra = json.loads(t.get(TAG_EXTRA) or "{}")
        note = t.get(TAG_REVIEW_NOTE, "")
        model_type = t.get(TAG_MODEL_TYPE) or t[TAG_TYPE]
        if state != REVIEW_UNREVIEWED or note:
            extra["review"] = {"state": state, "note": note, "model_type": model_type}
        return Finding(
            id=finding_id,
            view_key=t[TAG_VIEW_KEY],
            type=t[TAG_TYPE],
            score=float(t[TAG_SCORE]),
            box=box,  # type: ignore[arg-type]
            number=int(t.get(TAG_NUMBER) or 0),
            mask=mask if keep_mask else None,
            outline=outline,
            quadrant=t.get(TAG_QUADRANT) or None,
            quadrant_probabilities=json.loads(t.get(TAG_QUADRANT_PROBABILITIES) or "{}"),
            depth=_optional_float(t.get(TAG_DEPTH)),
            match_id=t.get(TAG_MATCH_ID) or None,
            match_probability=_optional_float(t.get(TAG_MATCH_PROBABILITY)),
            malignancy=_optional_float(t.get(TAG_MALIGNANCY)),
            morphology=json.loads(t.get(TAG_MORPHOLOGY) or "{}"),
            birads=t.get(TAG_BIRADS) or None,
            extra=extra,
        )
    except (KeyError, ValueError, TypeError) as exc:
        name = t.get(TAG_FINDING_ID, "?")
        raise ValueError(f"segment {name!r}: MammoDNN tags are incomplete or invalid ({exc})") from None


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None
