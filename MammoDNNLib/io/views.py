"""Mammography view and view-modifier vocabulary, and recognizing views from DICOM attributes.

The codes are SNOMED CT concepts of DICOM CID 4014 "View for Mammography" and CID 4015 "View Modifier for
Mammography" as listed in pydicom's code dictionary (``pydicom.sr.codedict.codes.cid4014`` / ``cid4015``),
each with its legacy SNOMED RT (``SRT``) code that older files still carry, and the ACR MQCM abbreviation that
(0018,5101) View Position uses. Only CC and MLO are screening views; every other view is recognized and named,
never silently taken as one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom import Dataset


@dataclass(frozen=True)
class MammographyView:
    abbreviation: str  # ACR MQCM / (0018,5101) View Position
    code: str  # SNOMED CT (scheme SCT)
    srt: str  # legacy SNOMED RT (scheme SRT)
    meaning: str
    screening: str | None  # "CC" or "MLO" for the two screening views, None for every other view


@dataclass(frozen=True)
class ViewModifier:
    abbreviation: str  # ACR MQCM suffix/prefix where one exists
    code: str  # SCT
    srt: str  # SRT
    meaning: str
    # A diagnostic (work-up) view that images a different field or scale than the screening view it modifies:
    # such an image is "another view", not the screening view.
    diagnostic: bool


# DICOM CID 4014 (SNOMED CT codes as in pydicom's code dictionary).
MAMMOGRAPHY_VIEWS: tuple[MammographyView, ...] = (
    MammographyView("CC", "399162004", "R-10242", "cranio-caudal", "CC"),
    MammographyView("MLO", "399368009", "R-10226", "medio-lateral oblique", "MLO"),
    MammographyView("ML", "399260004", "R-10224", "medio-lateral", None),
    MammographyView("LM", "399352003", "R-10228", "latero-medial", None),
    MammographyView("LMO", "399099002", "R-10230", "latero-medial oblique", None),
    MammographyView("XCCL", "399192008", "R-1024A", "cranio-caudal exaggerated laterally", None),
    MammographyView("XCCM", "399101009", "R-1024B", "cranio-caudal exaggerated medially", None),
    MammographyView("FB", "399196006", "R-10244", "caudo-cranial (from below)", None),
    MammographyView("SIO", "399188001", "R-102D0", "superolateral to inferomedial oblique", None),
    MammographyView("ISO", "441555000", "R-40AAA", "inferomedial to superolateral oblique", None),
    MammographyView("SPECIMEN", "127457009", "G-8310", "tissue specimen from breast", None),
)

# DICOM CID 4015.
VIEW_MODIFIERS: tuple[ViewModifier, ...] = (
    ViewModifier("M", "399163009", "R-102D6", "magnification", True),
    ViewModifier("S", "399055006", "R-102D7", "spot compression", True),
    ViewModifier("RL", "399197002", "R-102D3", "rolled lateral", True),
    ViewModifier("RM", "399226006", "R-102D4", "rolled medial", True),
    ViewModifier("RI", "414493004", "R-102CA", "rolled inferior", True),
    ViewModifier("RS", "415670009", "R-102C9", "rolled superior", True),
    ViewModifier("TAN", "399110001", "R-102C2", "tangential", True),
    ViewModifier("CV", "399161006", "R-102D2", "cleavage", True),
    ViewModifier("AT", "399011000", "R-102D1", "axillary tail", True),
    ViewModifier("AC", "441752004", "P2-00161", "anterior compression", True),
    ViewModifier("ID", "399209000", "R-102D5", "implant displaced", False),
    ViewModifier("", "442580003", "R-40AB2", "axillary tissue", False),
    ViewModifier("", "442593008", "R-40ABE", "infra-mammary fold", False),
    ViewModifier("", "442581004", "R-40AB3", "nipple in profile", False),
)

_VIEW_BY_ABBREVIATION = {v.abbreviation: v for v in MAMMOGRAPHY_VIEWS}
_VIEW_BY_CODE = {**{v.code: v for v in MAMMOGRAPHY_VIEWS}, **{v.srt: v for v in MAMMOGRAPHY_VIEWS}}
_MODIFIER_BY_CODE = {**{m.code: m for m in VIEW_MODIFIERS}, **{m.srt: m for m in VIEW_MODIFIERS}}
_MODIFIER_BY_ABBREVIATION = {m.abbreviation: m for m in VIEW_MODIFIERS if m.abbreviation}
# Spellings of View Position seen in the wild beside the MQCM abbreviations.
_VIEW_POSITION_ALIASES = {
    "XCC": "XCCL",
    "CCL": "XCCL",
    "CCM": "XCCM",
    "CAUDOCRANIAL": "FB",
    "SPEC": "SPECIMEN",
}


@dataclass(frozen=True)
class RecognizedView:
    """A view read from one attribute: the view (None when the attribute names only a modifier) and
    modifiers."""

    view: MammographyView | None
    modifiers: tuple[ViewModifier, ...] = ()

    @property
    def screening(self) -> str | None:
        """ "CC"/"MLO" for a screening view without diagnostic modifiers, else None."""
        if self.view is None or any(m.diagnostic for m in self.modifiers):
            return None
        return self.view.screening

    def describe(self) -> str:
        """e.g. ``"CC (cranio-caudal) with spot compression"``."""
        parts = []
        if self.view is not None:
            parts.append(f"{self.view.abbreviation} ({self.view.meaning})")
        if self.modifiers:
            names = ", ".join(m.meaning for m in self.modifiers)
            parts.append(f"with {names}" if parts else f"view modifier {names}")
        return " ".join(parts) or "unknown view"


def view_by_abbreviation(text: str) -> MammographyView | None:
    return _VIEW_BY_ABBREVIATION.get(text.strip().upper())


def view_from_position(text: str) -> RecognizedView | None:
    """Recognize (0018,5101) View Position text: ``"CC"``, ``"MLO"``, ``"XCCL"``, ``"CCID"``, ``"AT"``, ... .

    Returns None for text that names no known view or modifier.
    """
    token = re.sub(r"[\s_\-]+", "", text.upper())
    token = _VIEW_POSITION_ALIASES.get(token, token)
    if token in _VIEW_BY_ABBREVIATION:
        return RecognizedView(_VIEW_BY_ABBREVIATION[token])
    if (
        token in _MODIFIER_BY_ABBREVIATION and len(token) > 1
    ):  # "AT", "CV", "RL", ...: a view in its own right
        return RecognizedView(None, (_MODIFIER_BY_ABBREVIATION[token],))
    # A view with a modifier glued before or after it: "CCID", "MLOID", "MCC" (magnified CC), "SCC", "RLCC".
    for view in sorted(MAMMOGRAPHY_VIEWS, key=lambda v: -len(v.abbreviation)):
        abbreviation = view.abbreviation
        if token.endswith(abbreviation) and token[: -len(abbreviation)] in _MODIFIER_BY_ABBREVIATION:
            return RecognizedView(view, (_MODIFIER_BY_ABBREVIATION[token[: -len(abbreviation)]],))
        if token.startswith(abbreviation) and token[len(abbreviation) :] in _MODIFIER_BY_ABBREVIATION:
            return RecognizedView(view, (_MODIFIER_BY_ABBREVIATION[token[len(abbreviation) :]],))
    return None


def view_from_code(item: "Dataset") -> MammographyView | None:
    """Recognize one code sequence item by its code value (SCT or SRT), else by its code meaning."""
    value = str(item.get("CodeValue", "") or "").strip()
    if value in _VIEW_BY_CODE:
        return _VIEW_BY_CODE[value]
    meaning = _normalized_meaning(item.get("CodeMeaning", ""))
    return next((v for v in MAMMOGRAPHY_VIEWS if _normalized_meaning(v.meaning) == meaning), None)


def modifier_from_code(item: "Dataset") -> ViewModifier | None:
    value = str(item.get("CodeValue", "") or "").strip()
    if value in _MODIFIER_BY_CODE:
        return _MODIFIER_BY_CODE[value]
    meaning = _normalized_meaning(item.get("CodeMeaning", ""))
    return next((m for m in VIEW_MODIFIERS if _normalized_meaning(m.meaning) == meaning), None)


def describe_code(item: "Dataset") -> str:
    """``"(399162004, SCT, 'cranio-caudal')"`` for messages."""
    return (
        f"({item.get('CodeValue', '')}, {item.get('CodingSchemeDesignator', '')}, "
        f"{str(item.get('CodeMeaning', ''))!r})"
    )


def _normalized_meaning(text: object) -> str:
    return re.sub(r"[^a-z]+", "", str(text or "").lower())
