"""The coded concepts of the DICOM SEG and SR exports, and the private scheme for what DICOM lacks.

Standard codes come from pydicom's code dictionary (DICOM PS3.16) or :mod:`MammoDNNLib.vocabulary`. Labels
that no standard scheme holds are coded in the private scheme ``99MAMMODNN`` (the "99" prefix marks a private
coding scheme, PS3.3 Section 8.1); every SR declares it in its Coding Scheme Identification Sequence.
``docs/outputs.md`` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..vocabulary import Code, finding_type

if TYPE_CHECKING:
    from highdicom.sr import CodedConcept

PRIVATE_SCHEME = "99MAMMODNN"
PRIVATE_SCHEME_NAME = "MammoDNN private codes"
PRIVATE_SCHEME_RESPONSIBLE = "MammoDNN developers"

# Algorithm family (CID 7162): DCM 123110 "Artificial Intelligence".
ALGORITHM_FAMILY = Code("123110", "DCM", "Artificial Intelligence")
SEGMENTATION_CATEGORY = Code("49755003", "SCT", "Morphologically Abnormal Structure")
BREAST = Code("76752008", "SCT", "Breast")
LATERALITY = {"R": Code("24028007", "SCT", "Right"), "L": Code("7771000", "SCT", "Left")}

# Measurements (TID 1500 / TID 1419 numeric items).
DETECTION_SCORE = Code("111012", "DCM", "Certainty of Finding")
MALIGNANCY = Code("111047", "DCM", "Probability of cancer")
RELATIVE_DEPTH = Code("DEPTH", PRIVATE_SCHEME, "Relative depth, nipple 0 to pectoralis 1")
MATCH_PROBABILITY = Code("MATCHP", PRIVATE_SCHEME, "Probability of CC-MLO correspondence")
UNIT_PROBABILITY = Code("{probability}", "UCUM", "probability")
UNIT_ONE = Code("1", "UCUM", "no units")

# Qualitative evaluations.
ASSESSMENT_CATEGORY = Code("111005", "DCM", "Assessment Category")
ASSESSMENT_SUBCATEGORY = Code("BIRADSSUB", PRIVATE_SCHEME, "BI-RADS assessment subcategory")
DEPTH = Code("111020", "DCM", "Depth")  # CID 6024 values: anterior, middle, posterior third
REGION = Code("111014", "DCM", "Clockface or region")

# BI-RADS categories: SNOMED CT "Mammography assessment (Category n)" concepts. SNOMED has no 4A/4B/4C; those
# are category 4 plus a private subcategory code.
BIRADS_CATEGORY_CODES: dict[str, Code] = {
    "0": Code("397138000", "SCT", "Mammography assessment (Category 0)"),
    "1": Code("397140005", "SCT", "Mammography assessment (Category 1)"),
    "2": Code("397141009", "SCT", "Mammography assessment (Category 2)"),
    "3": Code("397143007", "SCT", "Mammography assessment (Category 3)"),
    "4": Code("397144001", "SCT", "Mammography assessment (Category 4)"),
    "5": Code("397145000", "SCT", "Mammography assessment (Category 5)"),
}
BIRADS_SUBCATEGORY_CODES: dict[str, Code] = {
    "4A": Code("BIRADS4A", PRIVATE_SCHEME, "Category 4A, low suspicion for malignancy"),
    "4B": Code("BIRADS4B", PRIVATE_SCHEME, "Category 4B, moderate suspicion for malignancy"),
    "4C": Code("BIRADS4C", PRIVATE_SCHEME, "Category 4C, high suspicion for malignancy"),
}

# Depth thirds (CID 6024), from the relative depth: anterior [0, 1/3), middle [1/3, 2/3), posterior [2/3, 1].
DEPTH_THIRDS: tuple[tuple[float, Code], ...] = (
    (1.0 / 3.0, Code("255549009", "SCT", "Anterior")),
    (2.0 / 3.0, Code("C25569", "NCIt", "Middle")),
    (float("inf"), Code("255551008", "SCT", "Posterior")),
)

# The study's regions are bands on one view, not clock-face quadrants of the breast. Where a standard concept
# means the same region (CID 6018) it is used; the view bands get private codes.
REGION_CODES: dict[tuple[str, str], Code] = {
    ("CC", "areola"): Code("129784002", "SCT", "Subareolar region"),
    ("MLO", "areola"): Code("129784002", "SCT", "Subareolar region"),
    ("MLO", "axillary_tail"): Code("129785001", "SCT", "Axillary tail region"),
    ("CC", "outer"): Code("CC-OUTER", PRIVATE_SCHEME, "Outer (lateral) band on the CC view"),
    ("CC", "middle"): Code("CC-MIDDLE", PRIVATE_SCHEME, "Middle band on the CC view"),
    ("CC", "inner"): Code("CC-INNER", PRIVATE_SCHEME, "Inner (medial) band on the CC view"),
    ("MLO", "upper"): Code("MLO-UPPER", PRIVATE_SCHEME, "Upper band on the MLO view"),
    ("MLO", "middle"): Code("MLO-MIDDLE", PRIVATE_SCHEME, "Middle band on the MLO view"),
    ("MLO", "lower"): Code("MLO-LOWER", PRIVATE_SCHEME, "Lower band on the MLO view"),
}

# The annotator's review (reviewed exports only). Observer Type (TID 1002) values are DICOM's; the review status is
# private. Keys of REVIEW_STATUS_VALUES are MammoDNNLib.export.review's statuses.
OBSERVER_TYPE = Code("121005", "DCM", "Observer Type")
OBSERVER_PERSON = Code("121006", "DCM", "Person")
OBSERVER_DEVICE = Code("121007", "DCM", "Device")
REVIEW_STATUS = Code("REVIEW", PRIVATE_SCHEME, "Annotator review status")
REVIEW_STATUS_VALUES: dict[str, Code] = {
    "unreviewed": Code("UNREVIEWED", PRIVATE_SCHEME, "Not reviewed by an annotator"),
    "accepted": Code("ACCEPTED", PRIVATE_SCHEME, "Accepted by an annotator"),
    "edited": Code("EDITED", PRIVATE_SCHEME, "Edited by an annotator"),
    "added": Code("ADDED", PRIVATE_SCHEME, "Added by an annotator"),
}

# Procedure reported (CID 6050 / 6083 breast procedures, LOINC).
PROCEDURE_BILATERAL = Code("36626-0", "LN", "breast - bilateral mammogram")
PROCEDURE_BY_LATERALITY = {
    "R": Code("37774-7", "LN", "breast - right mammogram"),
    "L": Code("36627-8", "LN", "breast - left mammogram"),
}


def concept(code: Code) -> "CodedConcept":
    from highdicom.sr import CodedConcept

    return CodedConcept(code.value, code.scheme, code.meaning)


def finding_type_code(type_key: str) -> Code:
    return finding_type(type_key).code


def type_key_from_code(value: str, scheme: str) -> str | None:
    from ..vocabulary import FINDING_TYPES

    for t in FINDING_TYPES:
        if t.code.value == value and t.code.scheme == scheme:
            return t.key
    return None


def birads_codes(category: str) -> tuple[Code, Code | None]:
    """The assessment category code and, for 4A/4B/4C, the private subcategory code."""
    main = category[0]
    if main not in BIRADS_CATEGORY_CODES:
        raise ValueError(f"unknown BI-RADS category {category!r}")
    return BIRADS_CATEGORY_CODES[main], BIRADS_SUBCATEGORY_CODES.get(category)


def birads_from_codes(category: tuple[str, str] | None, subcategory: tuple[str, str] | None) -> str | None:
    """Inverse of :func:`birads_codes` from (value, scheme) pairs."""
    if category is None:
        return None
    if subcategory is not None:
        for key, code in BIRADS_SUBCATEGORY_CODES.items():
            if (code.value, code.scheme) == subcategory:
                return key
    for key, code in BIRADS_CATEGORY_CODES.items():
        if (code.value, code.scheme) == category:
            return key
    return None


def depth_code(depth: float) -> Code:
    for upper, code in DEPTH_THIRDS:
        if depth < upper:
            return code
    return DEPTH_THIRDS[-1][1]


def region_code(view: str, quadrant: str) -> Code | None:
    return REGION_CODES.get((view, quadrant))


def quadrant_from_code(view: str, value: str, scheme: str) -> str | None:
    for (code_view, quadrant), code in REGION_CODES.items():
        if code_view == view and (code.value, code.scheme) == (value, scheme):
            return quadrant
    return None


def private_codes() -> list[Code]:
    """Every private code the exports may write (for the docs and the coding-scheme declaration)."""
    codes = [RELATIVE_DEPTH, MATCH_PROBABILITY, ASSESSMENT_SUBCATEGORY]
    codes += list(BIRADS_SUBCATEGORY_CODES.values())
    codes += [c for c in REGION_CODES.values() if c.scheme == PRIVATE_SCHEME]
    codes += [REVIEW_STATUS, *REVIEW_STATUS_VALUES.values()]
    return codes


def coding_scheme_identification():
    """The Coding Scheme Identification Sequence item declaring the private scheme (PS3.3 C.12.1)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = PRIVATE_SCHEME_RESPONSIBLE
    return item
