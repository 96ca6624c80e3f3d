"""Rules shared by the DICOM and header-less readers: caller values, naming conventions, pixel spacing checks.

Everything here is pure (no file access) so the rules can be tested and documented on their own
(docs/io.md lists them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..vocabulary import view_key
from .views import view_from_position

# Plausible pixel spacing of a mammogram, mm: full-field digital detectors are 0.05-0.1 mm, digitized film
# 0.025-0.1 mm (mini-MIAS was reduced to 0.2 mm), anything outside this is a header error or a wrong caller
# value.
SPACING_RANGE_MM: tuple[float, float] = (0.02, 1.0)
# Row and column spacings that differ by more than this fraction are reported as non-square pixels.
NON_SQUARE_TOLERANCE = 0.01
# A caller spacing that differs from the header's by more than this fraction is reported as ignored.
CALLER_SPACING_TOLERANCE = 0.01

Spacing = tuple[float, float]
SpacingArgument = float | tuple[float, float] | None


class Skippable(InputError):
    """A file that cannot be one of the study's views but need not stop a study: loading it on its own is this
    error; in a folder or a list of files it is skipped with a study warning naming the file and the
    reason."""


class NotAScreeningView(Skippable):
    """A readable file that is not a screening mammogram view: another view (ML, XCCL, spot, magnification
    ...), a non-image DICOM object, a multi-frame image, a CBIS-DDSM ROI mask."""


@dataclass
class Candidate:
    """One file recognized as a screening view, before its pixels are decoded."""

    path: Path
    kind: str  # "dicom" or "image" (header-less)
    laterality: str
    view: str
    spacing: Spacing
    provenance: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    patient: str | None = None  # identity used to refuse mixing patients in one study
    patient_source: str = ""
    study_uid: str | None = None  # None where the study UID cannot be compared (CBIS-DDSM: one per view)
    sop_instance_uid: str | None = None
    for_processing: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return view_key(self.laterality, self.view)


def normalize_laterality(path: str | Path | None, value: str) -> str:
    """Caller laterality: ``"L"``/``"R"`` (also ``"left"``/``"right"``, any case)."""
    text = str(value).strip().upper()
    mapping = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
    if text not in mapping:
        raise InputError(path, f"laterality={value!r} is not one of 'L', 'R' (or 'left', 'right')")
    return mapping[text]


def normalize_view(path: str | Path | None, value: str) -> str:
    """Caller view: ``"CC"`` or ``"MLO"`` (any case); other mammography views are named and refused."""
    text = str(value).strip().upper()
    if text in ("CC", "MLO"):
        return text
    recognized = view_from_position(text)
    if recognized is not None:
        raise InputError(
            path,
            f"view={value!r} is {recognized.describe()}, not a screening view; "
            "MammoDNN reads CC and MLO views",
        )
    raise InputError(path, f"view={value!r} is not one of 'CC', 'MLO'")


def caller_spacing(path: str | Path | None, spacing: SpacingArgument) -> Spacing | None:
    """The caller's spacing as (row, col) mm, checked for sense; None when not given."""
    if spacing is None:
        return None
    if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
        pair = (float(spacing), float(spacing))
    else:
        try:
            values = [float(v) for v in spacing]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InputError(
                path, f"spacing={spacing!r} must be a number or a (row, column) pair in mm"
            ) from None
        if len(values) != 2:
            raise InputError(path, f"spacing={spacing!r} must be a number or a (row, column) pair in mm")
        pair = (values[0], values[1])
    check_spacing(path, pair, f"the caller's spacing={format_spacing(pair)}")
    return pair


def check_spacing(path: str | Path | None, spacing: Spacing, source: str) -> None:
    """Raise :class:`InputError` for a spacing outside :data:`SPACING_RANGE_MM` (naming the value and
    source)."""
    low, high = SPACING_RANGE_MM
    if not all(math.isfinite(v) and low <= v <= high for v in spacing):
        raise InputError(
            path,
            f"absurd pixel spacing {format_spacing(spacing)} mm from {source}: "
            f"a mammogram's pixel spacing is between {low:g} and {high:g} mm",
        )


def non_square_warning(path: str | Path, spacing: Spacing) -> str | None:
    row, col = spacing
    if abs(row - col) > NON_SQUARE_TOLERANCE * max(row, col):
        return f"{path}: non-square pixels: {row:g} mm between rows, {col:g} mm between columns"
    return None


def format_spacing(spacing: Spacing) -> str:
    """DICOM's multi-value notation: ``0.1\\0.1``."""
    return "\\".join(f"{v:g}" for v in spacing)


def spacing_hint(example: float = 0.05) -> str:
    return (
        f"pass the pixel spacing in mm explicitly (Python: spacing={example:g} or spacing=(row, col); "
        f"command line: --spacing {example:g}); do not guess it: "
        "a wrong spacing scales every size and distance"
    )


# Tokens in names: "RIGHT_CC", "L-MLO", "RCC", "left mlo". Delimiters are anything but letters/digits.
_SIDE_VIEW = re.compile(r"(?:^|[^A-Z0-9])(RIGHT|LEFT|R|L)[-_ ]?(CC|MLO)(?=$|[^A-Z0-9])", flags=re.IGNORECASE)
_SIDE = re.compile(r"(?:^|[^A-Z0-9])(RIGHT|LEFT)(?=$|[^A-Z0-9])", flags=re.IGNORECASE)
_VIEW = re.compile(r"(?:^|[^A-Z0-9])(CC|MLO)(?=$|[^A-Z0-9])", flags=re.IGNORECASE)
# CBIS-DDSM PatientID: Mass-Training_P_00001_LEFT_CC (full image); a trailing _<n> marks ROI masks and crops.
CBIS_DDSM_PATIENT_ID = re.compile(
    r"^(?P<set>(?:Mass|Calc)-(?:Training|Test))_(?P<patient>P_\d+)_(?P<side>LEFT|RIGHT)_(?P<view>CC|MLO)"
    r"(?:_(?P<abnormality>\d+))?$",
    flags=re.IGNORECASE,
)


def side_view_from_file_name(path: Path) -> tuple[str, str] | None:
    """``(laterality, view)`` from a file name like ``R-CC.png``, ``case7_L_MLO.pgm``, ``RIGHT_CC.tif``.

    None when the name names no side and view, or names more than one.
    """
    found = {(m.group(1)[0].upper(), m.group(2).upper()) for m in _SIDE_VIEW.finditer(path.stem)}
    return found.pop() if len(found) == 1 else None


def side_from_identifier(text: str) -> str | None:
    """L/R from a LEFT/RIGHT token in an identifier (PatientID conventions such as CBIS-DDSM's)."""
    found = {m.group(1)[0].upper() for m in _SIDE.finditer(text)}
    return found.pop() if len(found) == 1 else None


def view_from_identifier(text: str) -> str | None:
    """CC/MLO from a CC/MLO token in an identifier."""
    found = {m.group(1).upper() for m in _VIEW.finditer(text)}
    return found.pop() if len(found) == 1 else None
