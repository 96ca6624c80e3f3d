"""Small things every exporter shares: display labels, output names, source files, deterministic UIDs."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
import warnings
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from ..errors import InputError
from ..vocabulary import finding_type

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Finding, Report, ViewInfo

DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ""})
_UID_NAMESPACE = "MammoDNN export"


def ascii_text(text: str) -> str:
    """Plain ASCII for file formats that cannot hold more (NRRD headers, DICOM LO without a character set)."""
    text = text.replace(" · ", " ").replace("·", " ")
    normalized = unicodedata.normalize("NFKD", text)
    return normalized.encode("ascii", "ignore").decode("ascii")


def finding_label(finding: "Finding") -> str:
    """The finding's display name in ASCII, e.g. ``"R CC 1 Mass 0.91"`` (``Finding.label()`` without dots)."""
    return ascii_text(finding.label())


def overlay_label(finding: "Finding") -> str:
    """The short overlay label ``"1 Mass 0.91 M:0.72 4B"``."""
    parts = [str(finding.number), finding_type(finding.type).short, f"{finding.score:.2f}"]
    if finding.malignancy is not None:
        parts.append(f"M:{finding.malignancy:.2f}")
    if finding.birads:
        parts.append(finding.birads)
    return " ".join(parts)


def output_stem(view_key: str) -> str:
    """Output files are named by view key (``R-CC``), never by the source's name (it may identify someone)."""
    return view_key


def findings_in_order(report: "Report", view_key: str) -> list["Finding"]:
    """A view's findings in a stable order (number, then id): segment numbers do not depend on list order."""
    return sorted(report.findings_in(view_key), key=lambda f: (f.number, f.id))


def stable_uid(*parts: object) -> str:
    """A ``2.25`` UID derived from ``parts``: the same inputs give the same UID; a re-export is identical."""
    return uid_from_name(_UID_NAMESPACE, *parts)


def uid_from_name(*parts: object) -> str:
    """``2.25.<decimal of a name-based (SHA-1, version 5) UUID>`` (PS3.5 B.2), deterministic in ``parts``."""
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


def lesion_uid(report: "Report", finding: "Finding", study_key: str) -> str:
    """Tracking UID of the physical lesion: a matched CC/MLO pair shares it; an unmatched finding has one."""
    ids = [finding.id]
    if finding.match_id is not None:
        ids.append(finding.match_id)
    return stable_uid("lesion", study_key, report.created, *sorted(ids))


def resolve_source(
    info: "ViewInfo", report_dir: Path | None, search_dirs: Iterable[Path] = ()
) -> Path | None:
    """The source file of a view: its path as given (absolute, or relative to the report's folder), else a
    file of the same name in one of ``search_dirs``; None if not found."""
    if not info.file:
        return None
    given = Path(info.file)
    candidates = [given] if given.is_absolute() else []
    if not given.is_absolute():
        if report_dir is not None:
            candidates.append(report_dir / given)
        candidates.append(Path.cwd() / given)
    for folder in search_dirs:
        candidates.append(Path(folder) / given.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


def read_dicom_header(path: Path) -> "Dataset":
    """The header of a DICOM source (no pixel data), or an :class:`InputError` saying why it is not usable."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise InputError(path, "not a DICOM file (DICOM SEG and SR need DICOM source images)") from None
    except Exception as exc:  # pydicom raises many kinds on damaged files; the user needs only this
        raise InputError(path, f"corrupt or unreadable DICOM file ({exc})") from None
    for keyword in (
        "SOPInstanceUID",
        "SOPClassUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Rows",
        "Columns",
    ):
        if keyword not in header:
            raise InputError(path, f"DICOM file lacks {keyword}; it cannot be referenced by DICOM SEG/SR")
    return header


@contextlib.contextmanager
def copied_names_accepted() -> Iterator[None]:
    """highdicom warns about single-component person names; names copied from a source are what they are."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        yield


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
