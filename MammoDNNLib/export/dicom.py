"""The DICOM outputs of a report: one SEG per view with findings and one TID 1500 SR, the model's or reviewed.

:func:`export_dicom` writes them from DICOM headers the caller already has (the corrections export of a reviewed
scene); :func:`MammoDNNLib.export.export_all` finds the headers through the report's source files and calls the
same writers. A report that carries an annotator's review (:func:`.review.is_reviewed`), or an explicit
``annotator``, gives the reviewed objects (:mod:`.review`); any other report the model's, exactly as before.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..errors import MammoDNNError
from ..vocabulary import VIEW_KEYS
from .review import DicomReview, annotator_from_audit, is_reviewed, prepare_review

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Report
    from . import ExportResult

# Patient and study attributes the SEG and SR copy from their source; they are type 2 (present, possibly empty)
# in a mammogram too, but not every file has them (highdicom fails on a source without them).
TYPE2_SOURCE_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def with_type2_attributes(header: "Dataset") -> "Dataset":
    """``header``, or a copy of it with every type-2 patient/study attribute present (empty where it lacks it)."""
    missing = [k for k in TYPE2_SOURCE_ATTRIBUTES if k not in header]
    if not missing:
        return header
    header = copy.deepcopy(header)
    for keyword in missing:
        setattr(header, keyword, "")
    return header


@dataclass
class DicomContent:
    """What the SEGs and the SR are built from."""

    report: "Report"  # the findings to write (a reviewed report without its rejected findings)
    headers: dict[str, "Dataset"]  # view key -> source header, ready to copy (type 2 present, de-identified)
    study_key: str  # what the deterministic UIDs derive from
    software_version: str
    review: DicomReview | None = None  # None: the model's objects

    @classmethod
    def make(
        cls,
        report: "Report",
        headers: Mapping[str, "Dataset"],
        *,
        software_version: str,
        annotator: str | None = None,
    ) -> "DicomContent":
        """``headers`` as given (prepare them with :func:`with_type2_attributes` and de-identification first).
        The review of a reviewed report names ``annotator``, by default the one of the report's review audit."""
        review = None
        if annotator is not None or is_reviewed(report):
            annotator = (annotator or "").strip() or annotator_from_audit(report)
            if not annotator:
                raise MammoDNNError(
                    "the report holds an annotator's review but no audit naming the annotator; give the "
                    "annotator's name (mammodnn export --annotator NAME)"
                )
            report, review = prepare_review(report, annotator)
        study_key = next(
            (str(headers[k].StudyInstanceUID) for k in VIEW_KEYS if k in headers),
            report.created or "no study",
        )
        return cls(report, dict(headers), study_key, software_version, review)


def write_segmentations(
    content: DicomContent, keys: Iterable[str], target: Callable[[str], Path], result: "ExportResult"
) -> None:
    """``<view>.seg.dcm`` for each of ``keys`` with findings (the others are listed as skipped)."""
    from .common import output_stem
    from .dicom_seg import build_segmentation, write_segmentation

    report = content.report
    for key in keys:
        if not report.findings_in(key):
            result.skipped[f"dicom-seg {key}"] = (
                "no findings in this view (a SEG needs at least one segment)"
                if content.review is None
                else "no findings left in this view after the review"
            )
            continue
        segmentation = build_segmentation(
            report,
            key,
            content.headers[key],
            software_version=content.software_version,
            study_key=content.study_key,
            review=content.review,
        )
        path = target(f"{output_stem(key)}.seg.dcm")
        write_segmentation(path, segmentation)
        result.add("dicom-seg", path)


def write_report_sr(
    content: DicomContent, keys: Iterable[str], target: Callable[[str], Path], result: "ExportResult"
) -> None:
    """``findings.sr.dcm`` of the findings on the views ``keys``."""
    from . import SR_FILE_NAME
    from .dicom_sr import build_report_sr, write_sr

    sr = build_report_sr(
        content.report,
        {k: content.headers[k] for k in keys},
        software_version=content.software_version,
        study_key=content.study_key,
        review=content.review,
    )
    path = target(SR_FILE_NAME)
    write_sr(path, sr)
    result.add("dicom-sr", path)


def export_dicom(
    report: "Report",
    out_dir: str | Path,
    headers: Mapping[str, "Dataset"],
    *,
    annotator: str | None = None,
    anonymize: bool = False,
    software_version: str | None = None,
) -> "ExportResult":
    """DICOM SEG (one per view with findings) and SR of ``report`` on the source DICOM ``headers`` (view key ->
    header), into ``out_dir``. A reviewed report (what :func:`MammoDNNLib.scene.results.report_from_scene`
    returns for a reviewed scene, or such a report saved as JSON) or a given ``annotator`` gives the reviewed
    objects (:mod:`.review`). ``anonymize``: de-identify them as ``mammodnn export --anonymize`` does."""
    from .. import __version__
    from . import ExportResult

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out_dir=out_dir)
    headers = {k: with_type2_attributes(h) for k, h in headers.items()}
    if anonymize:
        from .anonymize import anonymize_header

        headers = {k: anonymize_header(h) for k, h in headers.items()}
    content = DicomContent.make(
        report, headers, software_version=software_version or f"MammoDNN {__version__}", annotator=annotator
    )
    missing = sorted({f.view_key for f in content.report.findings} - set(headers))
    if missing:
        raise MammoDNNError(f"DICOM SEG/SR need the DICOM headers of {', '.join(missing)}")
    keys = [k for k in VIEW_KEYS if k in headers]
    write_segmentations(content, keys, lambda name: out_dir / name, result)
    write_report_sr(content, keys, lambda name: out_dir / name, result)
    return result
