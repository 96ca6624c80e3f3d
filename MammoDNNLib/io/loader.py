"""Loading one view or a study from a folder, a file, or a list of files.

Every file is first inspected from its header (DICOM) or its format and name (header-less images); only when
the whole study is consistent (one patient, one study, at most one file per view) are the pixels decoded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..study import Study, View
from ..vocabulary import VIEW_KEYS
from .conventions import (
    Candidate,
    Skippable,
    Spacing,
    SpacingArgument,
    caller_spacing,
    normalize_laterality,
    normalize_view,
)
from .dicom import inspect_dicom, is_dicom_file, looks_like_raw_dicom, read_for_inspection
from .pixels import decode_dicom
from .raster import IMAGE_SUFFIXES, decode_image, inspect_image, sniff_format

logger = logging.getLogger(__name__)

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".dic")


def load_view(
    path: str | os.PathLike,
    *,
    spacing: SpacingArgument = None,
    laterality: str | None = None,
    view: str | None = None,
) -> View:
    """Load one image as a :class:`View` in presentation values with the provenance of every value.

    ``spacing`` (mm, a number or a (row, col) pair) is used where the file has none; ``laterality`` ("L"/"R")
    and ``view`` ("CC"/"MLO") are needed for a header-less image (unless its name says them, e.g.
    ``R-CC.png``) and, for a DICOM file, are used only where the header has none and must agree with it
    otherwise. Raises :class:`~MammoDNNLib.errors.InputError` naming the file and the problem.
    """
    path = Path(path)
    candidate = _inspect(
        path,
        spacing=caller_spacing(path, spacing),
        laterality=None if laterality is None else normalize_laterality(path, laterality),
        view=None if view is None else normalize_view(path, view),
    )
    return _decode(candidate)


def load_study(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    spacing: SpacingArgument = None,
    laterality: str | None = None,
    view: str | None = None,
) -> Study:
    """Load the screening views (R-CC, L-CC, R-MLO, L-MLO) of one exam.

    ``source`` is a folder (searched recursively for DICOM files, with or without the .dcm extension, and PNG,
    PGM, TIFF images), one file, or a list of files. In a folder or a list, files that are not screening views
    (other views, non-image DICOM objects, multi-frame images, header-less images not named by side and view)
    are skipped with a study warning; missing views are a study warning. Two files claiming one view, files of
    different patients or studies, and any unreadable file are an :class:`~MammoDNNLib.errors.InputError`.
    ``laterality`` and ``view`` may only be given for a single file.
    """
    files, origin, several = _files_of(source)
    if (laterality is not None or view is not None) and several:
        raise InputError(
            origin,
            "laterality= and view= name the side and view of one image: "
            "give them only when loading a single file",
        )
    spacing_pair = caller_spacing(origin, spacing)
    side = None if laterality is None else normalize_laterality(origin, laterality)
    position = None if view is None else normalize_view(origin, view)

    study_warnings: list[str] = []
    if several:
        files = _without_images_beside_dicom(files, study_warnings)
    candidates: list[Candidate] = []
    for path in files:
        try:
            candidates.append(_inspect(path, spacing=spacing_pair, laterality=side, view=position))
        except Skippable as exc:
            if not several:
                raise
            study_warnings.append(f"{exc.path}: skipped: {exc.problem}")
    if not candidates:
        reasons = "; ".join(study_warnings) if study_warnings else "none of them is DICOM or an image"
        raise InputError(
            origin, f"no screening mammogram (CC or MLO view) among {len(files)} file(s): {reasons}"
        )

    _check_one_patient(origin, candidates, study_warnings)
    chosen = _one_file_per_view(origin, candidates, study_warnings)
    views = {key: _decode(candidate) for key, candidate in chosen.items()}
    missing = [key for key in VIEW_KEYS if key not in views]
    if missing:
        study_warnings.append(f"{origin}: missing views: {', '.join(missing)} (found {', '.join(views)})")
    for message in study_warnings:
        logger.warning("%s", message)
    return Study(views=views, source=origin, warnings=study_warnings, metadata=_metadata(chosen))


# --- internals


def _files_of(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], Path, bool]:
    """(files, the path messages name, whether skipping applies: a folder or a list of several files)."""
    if isinstance(source, (str, os.PathLike)):
        origin = Path(source)
        if not origin.exists():
            raise InputError(origin, "no such file or folder")
        if origin.is_dir():
            files = scan_folder(origin)
            if not files:
                raise InputError(origin, "no DICOM files or images (PNG, PGM, TIFF) in this folder")
            return files, origin, True
        return [origin], origin, False
    files = [Path(p) for p in source]
    if not files:
        raise InputError(None, "no files given")
    for path in files:
        if path.is_dir():
            raise InputError(path, "a folder in a list of files: pass the folder itself, or its files")
    return files, files[0], len(files) > 1


def scan_folder(folder: Path) -> list[Path]:
    """DICOM files (by the DICM marker, or the .dcm extension) and images (by content or extension) under
    ``folder``, recursively, in a stable order; hidden files and DICOMDIR index files are left out."""
    found: list[Path] = []
    for root, directories, names in os.walk(folder):
        directories[:] = sorted(d for d in directories if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or name.upper() == "DICOMDIR" or not path.is_file():
                continue
            suffix = path.suffix.lower()
            if (
                is_dicom_file(path)
                or sniff_format(path)
                or suffix in DICOM_SUFFIXES
                or suffix in IMAGE_SUFFIXES
            ):
                found.append(path)
            else:
                logger.debug("%s: ignored (neither DICOM nor a supported image)", path)
    return found


def _inspect(path: Path, *, spacing: Spacing | None, laterality: str | None, view: str | None) -> Candidate:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "a folder, not a file: load it with load_study")
    # The DICM marker first: a DICOM preamble may itself be a TIFF header (dual-personality files).
    if is_dicom_file(path) or (
        sniff_format(path) is None and (looks_like_raw_dicom(path) or path.suffix.lower() in DICOM_SUFFIXES)
    ):
        dataset, has_pixels = read_for_inspection(path)
        return inspect_dicom(path, dataset, has_pixels, spacing=spacing, laterality=laterality, view=view)
    return inspect_image(path, spacing=spacing, laterality=laterality, view=view)


def _without_images_beside_dicom(files: list[Path], notes: list[str]) -> list[Path]:
    """Where DICOM files are present, header-less images beside them are masks, screenshots or exports, not
    views (they carry no spacing or patient of their own): leave them out, saying so."""
    dicom = [p for p in files if is_dicom_file(p) or p.suffix.lower() in DICOM_SUFFIXES]
    if not dicom:
        return files
    skipped = [p for p in files if p not in dicom and p.suffix.lower() in IMAGE_SUFFIXES]
    if len(skipped) == 1:
        notes.append(f"{skipped[0]}: skipped: a header-less image beside DICOM files is not taken as a view")
    elif skipped:  # one line, not one per mask file (a phantom study folder holds a dozen)
        shown = ", ".join(str(p) for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notes.append(
            f"skipped {len(skipped)} header-less images beside DICOM files (not taken as views): {shown}"
        )
    return [p for p in files if p in dicom or p.suffix.lower() not in IMAGE_SUFFIXES]


def _decode(candidate: Candidate) -> View:
    view = decode_dicom(candidate) if candidate.kind == "dicom" else decode_image(candidate)
    for message in view.warnings:
        logger.warning("%s", message)
    return view


def _check_one_patient(origin: Path, candidates: list[Candidate], notes: list[str]) -> None:
    """Refuse files of different patients or studies; CBIS-DDSM files compare by their P_xxxxx patient."""
    for attribute, what in (("patient", "patients"), ("study_uid", "studies (StudyInstanceUID)")):
        first_of: dict[str, Candidate] = {}
        for candidate in candidates:
            value = getattr(candidate, attribute)
            if value:
                first_of.setdefault(value, candidate)
        if len(first_of) > 1:
            listing = "; ".join(
                f"{c.path} ({c.patient_source if attribute == 'patient' else c.study_uid})"
                for c in first_of.values()
            )
            raise InputError(origin, f"files of different {what}: {listing}")
    if any(c.kind == "image" for c in candidates) and any(c.kind == "dicom" for c in candidates):
        notes.append(
            f"{origin}: header-less images cannot be checked to belong to the same patient as the DICOM files"
        )


def _one_file_per_view(origin: Path, candidates: list[Candidate], notes: list[str]) -> dict[str, Candidate]:
    """At most one file per view: exact copies (same SOP Instance UID) and For Processing images beside a For
    Presentation one are skipped with a warning; any other pair claiming one view is an error naming both."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.key, []).append(candidate)
    chosen: dict[str, Candidate] = {}
    for key, group in groups.items():
        unique: list[Candidate] = []
        for candidate in group:
            twin = next(
                (
                    u
                    for u in unique
                    if candidate.sop_instance_uid and u.sop_instance_uid == candidate.sop_instance_uid
                ),
                None,
            )
            if twin is not None:
                notes.append(f"{candidate.path}: skipped: a copy of {twin.path} (same SOPInstanceUID)")
            else:
                unique.append(candidate)
        presentation = [c for c in unique if not c.for_processing]
        if len(unique) > 1 and len(presentation) == 1:
            for candidate in unique:
                if candidate is not presentation[0]:
                    notes.append(
                        f"{candidate.path}: skipped: a For Processing {key} image beside the "
                        f"For Presentation image {presentation[0].path}"
                    )
            unique = presentation
        if len(unique) > 1:
            listing = "; ".join(
                f"{c.path} (laterality from {c.provenance['laterality']}, view from {c.provenance['view']})"
                for c in unique
            )
            raise InputError(
                origin,
                f"{len(unique)} files claim the {key} view: {listing}; "
                "load the one you mean (pass a list of files)",
            )
        chosen[key] = unique[0]
    return {key: chosen[key] for key in VIEW_KEYS if key in chosen}


def _metadata(chosen: dict[str, Candidate]) -> dict[str, str]:
    """Study identifiers from the first DICOM view; a StudyInstanceUID only where all views share it."""
    dicom = [c for c in chosen.values() if c.kind == "dicom"]
    if not dicom:
        return {}
    metadata = dict(dicom[0].metadata)
    if len({c.metadata.get("study_instance_uid") for c in dicom}) > 1:
        metadata.pop("study_instance_uid", None)
    return metadata
