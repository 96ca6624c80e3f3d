"""The project's fixed vocabulary: views, finding types, quadrants, BI-RADS categories, and their codes.

One place for every name, colour and code that more than one stage uses. Codes are SNOMED CT (``SCT``) concepts
as listed in pydicom's code dictionary (DICOM CID 6014 and neighbours); the Slicer terminology file and the DICOM
SEG/SR exports both take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Laterality = Literal["L", "R"]
ViewPosition = Literal["CC", "MLO"]

LATERALITIES: tuple[str, ...] = ("R", "L")
VIEW_POSITIONS: tuple[str, ...] = ("CC", "MLO")
# Hanging order: R-CC | L-CC over R-MLO | L-MLO.
VIEW_KEYS: tuple[str, ...] = ("R-CC", "L-CC", "R-MLO", "L-MLO")


def view_key(laterality: str, view: str) -> str:
    """``("R", "CC") -> "R-CC"``."""
    return f"{laterality}-{view}"


def split_view_key(key: str) -> tuple[str, str]:
    """``"R-CC" -> ("R", "CC")``; raises ``ValueError`` for anything not in :data:`VIEW_KEYS`."""
    if key not in VIEW_KEYS:
        raise ValueError(f"unknown view {key!r}; expected one of {', '.join(VIEW_KEYS)}")
    laterality, view = key.split("-")
    return laterality, view


def other_view(key: str) -> str:
    """The other view of the same breast: ``"R-CC" -> "R-MLO"``."""
    laterality, view = split_view_key(key)
    return view_key(laterality, "MLO" if view == "CC" else "CC")


def contralateral(key: str) -> str:
    """The same view of the other breast: ``"R-CC" -> "L-CC"``."""
    laterality, view = split_view_key(key)
    return view_key("L" if laterality == "R" else "R", view)


@dataclass(frozen=True)
class Code:
    """A coded concept (DICOM code sequence item / Slicer terminology entry)."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class FindingType:
    key: str  # stable machine name used in files and class indices
    label: str  # human name
    short: str  # for narrow table columns and overlay labels
    color: tuple[float, float, float]  # RGB in [0, 1]; overlay, segments and markups share it
    code: Code


# The study's four lesion features. Order fixes the detector's class indices (1..4; 0 is background).
FINDING_TYPES: tuple[FindingType, ...] = (
    FindingType("mass", "Mass", "Mass", (0.91, 0.30, 0.24), Code("4147007", "SCT", "Mass")),
    FindingType(
        "calcification", "Calcification", "Calc", (1.00, 0.80, 0.16),
        Code("129769006", "SCT", "Calcification Cluster"),
    ),
    FindingType(
        "asymmetry", "Asymmetry", "Asym", (0.25, 0.65, 0.98),
        Code("129789007", "SCT", "Focal asymmetric breast tissue"),
    ),
    FindingType(
        "distortion", "Architectural distortion", "Dist", (0.72, 0.42, 0.95),
        Code("129792006", "SCT", "Architectural distortion of breast"),
    ),
)
FINDING_TYPE_KEYS: tuple[str, ...] = tuple(t.key for t in FINDING_TYPES)
FINDING_TYPE_BY_KEY: dict[str, FindingType] = {t.key: t for t in FINDING_TYPES}


def finding_type(key: str) -> FindingType:
    try:
        return FINDING_TYPE_BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown finding type {key!r}; expected one of {', '.join(FINDING_TYPE_KEYS)}") from None


def class_index(key: str) -> int:
    """Detector class index of a finding type (1-based; 0 is background)."""
    return FINDING_TYPE_KEYS.index(finding_type(key).key) + 1


def class_key(index: int) -> str:
    if not 1 <= index <= len(FINDING_TYPES):
        raise ValueError(f"class index {index} out of range 1..{len(FINDING_TYPES)}")
    return FINDING_TYPE_KEYS[index - 1]


# Quadrant labels as the study defines them, per view position. On a prepared view (chest wall on the left,
# see MammoDNNLib.preprocess) the CC image has the lateral (outer) side at the top and the MLO image the
# superior side at the top, following the IHE Mammography Image profile orientations.
QUADRANTS: dict[str, tuple[str, ...]] = {
    "CC": ("outer", "middle", "inner", "areola"),
    "MLO": ("upper", "middle", "lower", "axillary_tail", "areola"),
}

# Which MLO regions can hold the projection of a lesion seen in a CC region (and vice versa): a lesion's
# mediolateral position (CC) and its superoinferior position (MLO) are independent except near the nipple and
# in the axillary tail, which is lateral and superior.
QUADRANT_COMPATIBILITY: dict[str, tuple[str, ...]] = {
    "outer": ("upper", "middle", "lower", "axillary_tail"),
    "middle": ("upper", "middle", "lower"),
    "inner": ("upper", "middle", "lower"),
    "areola": ("areola", "middle"),
}

# BI-RADS assessment categories offered as suggestions (0 "incomplete" and 6 "known malignancy" are the reader's).
BIRADS_CATEGORIES: tuple[str, ...] = ("1", "2", "3", "4A", "4B", "4C", "5")

# Breast density (BI-RADS 5th edition composition categories).
DENSITY_CATEGORIES: tuple[str, ...] = ("A", "B", "C", "D")

PATHOLOGIES: tuple[str, ...] = ("benign", "malignant")

# Morphology descriptors (BI-RADS lexicon) predicted beside malignancy. Keys are descriptor groups; a finding
# type uses the groups listed for it in MORPHOLOGY_GROUPS_BY_TYPE.
MORPHOLOGY: dict[str, tuple[str, ...]] = {
    "mass_shape": ("round", "oval", "irregular"),
    "mass_margin": ("circumscribed", "obscured", "microlobulated", "indistinct", "spiculated"),
    "calc_morphology": ("punctate", "amorphous", "coarse_heterogeneous", "fine_pleomorphic", "fine_linear"),
    "calc_distribution": ("grouped", "linear", "segmental", "regional"),
}
MORPHOLOGY_GROUPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "mass": ("mass_shape", "mass_margin"),
    "calcification": ("calc_morphology", "calc_distribution"),
    "asymmetry": (),
    "distortion": (),
}
