"""DICOM Segmentation (SEG) of one view, with highdicom.

One BINARY segment per finding, referencing the source image (its header is all that is needed):

* Segmented Property Category: SCT 49755003 "Morphologically Abnormal Structure"; Type: the finding type's
  code (:data:`MammoDNNLib.vocabulary.FINDING_TYPES`); Anatomic Region: SCT 76752008 "Breast" with the
  laterality modifier (SCT 24028007 Right / 7771000 Left);
* Segment Algorithm Type AUTOMATIC, Algorithm Identification: name "MammoDNN", family DCM 123110 "Artificial
  Intelligence", version, and the model's name, version and sha256 as parameters;
* Tracking ID = the finding id; Tracking UID = the physical lesion's UID (shared by a matched CC/MLO pair and
  equal to the SR's tracking UID); Segment Label = the finding's label; Recommended Display CIELab Value =
  type colour.

A reviewed report (:mod:`.review`) gives the reviewed SEG: rejected findings left out, Segment Algorithm Type
AUTOMATIC (unreviewed, accepted), SEMIAUTOMATIC (edited) or MANUAL (added by the annotator: no algorithm
identification), Segment Description = the review status in words, Content Creator's Name = the annotator,
series numbers 9300+ and new series/instance UIDs derived from the review; tracking UIDs stay the model's.

Mammograms carry no frame of reference or plane position; highdicom then writes a SEG that references the
source frame by its SOP Instance UID (Derivation Image / Source Image Sequence), which is what DICOM expects
for projection images. Patient Orientation (type 2C, required without an image orientation) is copied from the
source, or left empty when the source has no valid one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..vocabulary import finding_type
from . import dicom_codes as dc
from .common import ascii_text, copied_names_accepted, finding_label, lesion_uid, stable_uid
from .review import REVIEW_ADDED, SEGMENT_ALGORITHM_TYPES, SEGMENT_DESCRIPTIONS

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Finding, Report
    from .review import DicomReview

log = logging.getLogger(__name__)

MANUFACTURER = "MammoDNN project"
MODEL_NAME = "MammoDNN"
SEG_SERIES_NUMBER_BASE = 9100
REVIEWED_SEG_SERIES_NUMBER_BASE = 9300
_ORIENTATION_LETTERS = set("APRLHF")


@dataclass(frozen=True)
class SegmentRecord:
    """A segment read back from a DICOM SEG."""

    number: int
    label: str
    finding_id: str | None
    tracking_uid: str | None
    type_key: str | None
    laterality: str | None
    algorithm_type: str  # AUTOMATIC / SEMIAUTOMATIC / MANUAL
    has_algorithm: bool  # whether the segment names the algorithm that made it
    description: str  # Segment Description: a reviewed segment's review status ("" in the model's SEG)
    mask: np.ndarray  # (rows, cols) bool on the source image grid


def build_segmentation(
    report: "Report",
    view_key: str,
    source: "Dataset",
    *,
    software_version: str,
    study_key: str,
    series_number: int | None = None,
    review: "DicomReview | None" = None,
):
    """The SEG of ``view_key``'s findings on ``source`` (a DICOM header; de-identify it first if asked).

    ``review``: the annotator's review of ``report`` (:func:`.review.prepare_review`, whose report is the one to
    pass here), which makes the reviewed SEG; None for the model's."""
    import highdicom as hd

    findings: Sequence["Finding"] = sorted(report.findings_in(view_key), key=lambda f: (f.number, f.id))
    if not findings:
        raise ValueError(f"{view_key}: no findings, so no DICOM SEG (a SEG needs at least one segment)")
    rows, cols = int(source.Rows), int(source.Columns)
    info = report.view(view_key)
    if (cols, rows) != tuple(info.size):
        raise ValueError(
            f"{view_key}: the source image is {cols}x{rows} but the report's view is "
            f"{info.size[0]}x{info.size[1]}"
        )
    pixel_array = np.zeros((1, rows, cols, len(findings)), dtype=np.uint8)
    for index, finding in enumerate(findings):
        pixel_array[0, :, :, index] = finding.lesion_mask((rows, cols)).full((rows, cols))
    algorithm = hd.AlgorithmIdentificationSequence(
        name="MammoDNN",
        family=dc.concept(dc.ALGORITHM_FAMILY),
        version=ascii_text(software_version)[:64] or "unknown",
        parameters={
            "model": ascii_text(report.model.name),
            "model_version": ascii_text(report.model.version),
            "model_sha256": report.model.sha256,
        },
    )
    descriptions = []
    for number, finding in enumerate(findings, start=1):
        t = finding_type(finding.type)
        status = None if review is None else review.status(finding)
        label = finding_label(finding)
        if status == REVIEW_ADDED:
            label = ascii_text(
                f"{finding.laterality} {finding.view} {finding.number} {finding.type} (annotator)"
            )
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=label[:64],
                segmented_property_category=dc.concept(dc.SEGMENTATION_CATEGORY),
                segmented_property_type=dc.concept(t.code),
                algorithm_type=SEGMENT_ALGORITHM_TYPES[status] if status else "AUTOMATIC",
                # A MANUAL segment has no algorithm (its name and identification are type 1C: not MANUAL).
                algorithm_identification=None if status == REVIEW_ADDED else algorithm,
                tracking_uid=lesion_uid(report, finding, study_key),
                tracking_id=finding.id,
                anatomic_regions=[dc.concept(dc.BREAST)],
                display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in t.color)),
            )
        )
        if status is not None:
            descriptions[-1].SegmentDescription = SEGMENT_DESCRIPTIONS[status]
    if series_number is None:
        base = SEG_SERIES_NUMBER_BASE if review is None else REVIEWED_SEG_SERIES_NUMBER_BASE
        series_number = base + list(r.key for r in report.views).index(view_key) + 1
    if review is None:
        uid_parts: tuple = ("seg", study_key, report.created, view_key, source.SOPInstanceUID)
        names = (f"MammoDNN SEG {view_key}", f"MammoDNN findings {view_key} - research use only", None)
    else:
        uid_parts = ("reviewed seg", study_key, report.created, review.digest, view_key)
        names = (
            f"MammoDNN SEG {view_key} reviewed",
            f"MammoDNN findings {view_key} reviewed - research use only",
            review.person_name,
        )
    with copied_names_accepted():
        segmentation = hd.seg.Segmentation(
            source_images=[source],
            pixel_array=pixel_array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=stable_uid(f"{uid_parts[0]} series", *uid_parts[1:]),
            series_number=series_number,
            sop_instance_uid=stable_uid(f"{uid_parts[0]} instance", *uid_parts[1:]),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=ascii_text(software_version)[:64] or "unknown",
            device_serial_number="0",
            content_label="MAMMODNN",
            content_description=names[1][:64],
            content_creator_name=names[2],
            series_description=names[0],
            omit_empty_frames=True,
        )
    for item, finding in zip(segmentation.SegmentSequence, findings, strict=True):
        # Laterality of the anatomic region (highdicom takes the region codes only).
        modifier = _code_item(dc.LATERALITY[finding.laterality])
        item.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [modifier]
    segmentation.PatientOrientation = _patient_orientation(source)
    # Laterality is in each segment's anatomic region modifier. The series-level Laterality (0020,0060) stays
    # absent: dciodvfy reports it as "present when condition unsatisfied" in a SEG.
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if keyword in source:
            setattr(segmentation, keyword, source.get(keyword))
    return segmentation


def write_segmentation(path: str | Path, segmentation) -> Path:
    path = Path(path)
    segmentation.save_as(path, enforce_file_format=True)
    return path


def read_segmentation(path: str | Path, source_sop_instance_uid: str | None = None) -> list[SegmentRecord]:
    """Segments of a DICOM SEG (the model's or a reviewed one) with their masks on the source image grid, their
    algorithm types and descriptions."""
    import highdicom as hd

    segmentation = hd.seg.segread(str(path))
    if source_sop_instance_uid is None:
        source_sop_instance_uid = segmentation.get_source_image_uids()[0][2]
    numbers = list(segmentation.segment_numbers)
    pixels = segmentation.get_pixels_by_source_instance(
        source_sop_instance_uids=[source_sop_instance_uid],
        segment_numbers=numbers,
        combine_segments=False,
    )[0]
    records = []
    for index, number in enumerate(numbers):
        description = segmentation.get_segment_description(number)
        prop = description.segmented_property_type
        laterality = None
        regions = getattr(description, "AnatomicRegionSequence", None) or []
        if regions and "AnatomicRegionModifierSequence" in regions[0]:
            value = regions[0].AnatomicRegionModifierSequence[0].CodeValue
            laterality = {c.value: k for k, c in dc.LATERALITY.items()}.get(value)
        records.append(
            SegmentRecord(
                number=number,
                label=description.segment_label,
                finding_id=description.tracking_id,
                tracking_uid=description.tracking_uid,
                type_key=dc.type_key_from_code(prop.value, prop.scheme_designator),
                laterality=laterality,
                algorithm_type=str(description.SegmentAlgorithmType),
                has_algorithm="SegmentationAlgorithmIdentificationSequence" in description,
                description=str(description.get("SegmentDescription", "")),
                mask=np.asarray(pixels[:, :, index], dtype=bool),
            )
        )
    return records


def _code_item(code: dc.Code):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme
    item.CodeMeaning = code.meaning
    return item


def _patient_orientation(source: "Dataset") -> list[str] | None:
    """The source's Patient Orientation if it is valid (two values of A/P/R/L/H/F letters), else empty."""
    values = source.get("PatientOrientation")
    if values is None or values == "":
        return None
    values = [str(v) for v in (values if not isinstance(values, str) else [values])]
    if len(values) == 2 and all(v and set(v.upper()) <= _ORIENTATION_LETTERS for v in values):
        return values
    log.info("source Patient Orientation %s is not valid; the SEG's is left empty", values)
    return None
