"""The study's findings as a DICOM Comprehensive SR following TID 1500 "Measurement Report", with highdicom.

Why TID 1500 and not the Mammography CAD SR (TID 4000): TID 1500 is what highdicom builds, validates and
parses (``hd.sr.srread`` and its content queries), and what 3D Slicer's DICOM TID 1500 plugin and other
viewers read; it carries everything a finding has here (type, outline on its image, site, numbers, codes,
tracking UIDs). The Mammography CAD SR needs the CAD Processing and Findings Summary tree (TID 4001 - 4023:
single-image findings, composite features, spatial collocation of CC/MLO findings, "CAD Operating Point",
successful/failed analyses) that no library in the stack builds or checks, so a hand-built one could not be
validated to the same standard.

Content (one measurement group per finding, TID 1411 "Planar ROI Measurements and Qualitative Evaluations"):

* Tracking Identifier: ``"<finding id> (<view key>)"``; Tracking Unique Identifier: the physical lesion's UID,
  shared by a matched CC/MLO pair (the pairing itself) and equal to the DICOM SEG segment's Tracking UID;
* Finding: the type's code; Finding Category: SCT 49755003; Finding Site: SCT 76752008 Breast with laterality;
* Image Region: the outline as a closed SCOORD POLYLINE on the source image (pixel-edge coordinates, which is
  DICOM's own SCOORD convention: (0, 0) is the top-left corner of the top-left pixel), the box when there is
  no outline;
* Measurements: DCM 111012 Certainty of Finding (detection score), DCM 111047 Probability of cancer
  (malignancy), 99MAMMODNN DEPTH (relative depth, unit "1"), 99MAMMODNN MATCHP (CC-MLO match probability);
* Qualitative evaluations: DCM 111005 Assessment Category (SNOMED CT BI-RADS category) with 99MAMMODNN
  BIRADSSUB for 4A/4B/4C, DCM 111020 Depth (anterior/middle/posterior third, CID 6024), DCM 111014 Clockface
  or region (the study's view region: SNOMED where it exists, 99MAMMODNN codes for the view bands).

Per breast and for the exam, a TID 1501 group ("breast R", "breast L", "exam") holds the highest malignancy
(DCM 111047) and the BI-RADS suggestion.

A reviewed report (:mod:`.review`) gives the reviewed SR: rejected findings left out; the observation context
names the annotator (observer type Person) beside MammoDNN (Device); every finding group says who found it (DCM
121005 Observer Type: Person for a lesion the annotator added, Device otherwise) and its review status
(99MAMMODNN REVIEW); the algorithm identification and the model's measurements and assessments only where the
model found the finding; the model's breast (exam) assessment only where (when) the review removed or added no
finding; Completion Flag PARTIAL until every finding is reviewed; series number 9400 and new series/instance
UIDs derived from the review. :func:`read_report_sr` reads both.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..vocabulary import VIEW_KEYS, split_view_key
from . import dicom_codes as dc
from .common import ascii_text, copied_names_accepted, lesion_uid, stable_uid
from .review import REVIEW_ADDED

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Finding, Report, Summary
    from .review import DicomReview

SR_SERIES_NUMBER = 9200
REVIEWED_SR_SERIES_NUMBER = 9400
# Modalities highdicom describes with TID 1603 (projection radiography) in the Image Library.
_PROJECTION_MODALITIES = frozenset({"CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"})
log = logging.getLogger(__name__)
_IDENTIFIER = re.compile(r"^(?P<id>.+) \((?P<view>[RL]-(?:CC|MLO))\)$")


@dataclass
class SRFinding:
    """One finding read back from the SR."""

    finding_id: str
    view_key: str
    tracking_uid: str
    type_key: str | None
    laterality: str | None
    source_sop_instance_uid: str | None
    outline: np.ndarray  # (N, 2) x, y, closed (first point repeated)
    score: float | None = None
    malignancy: float | None = None
    depth: float | None = None
    match_probability: float | None = None
    birads: str | None = None
    quadrant: str | None = None
    depth_third: str | None = None
    review_status: str | None = None  # reviewed SR: unreviewed / accepted / edited / added
    observer_type: str | None = None  # reviewed SR: "person" (added by the annotator) / "device"


@dataclass
class SRSummary:
    score: float | None
    birads: str | None


@dataclass
class SRContent:
    findings: list[SRFinding] = field(default_factory=list)
    breasts: dict[str, SRSummary] = field(default_factory=dict)
    exam: SRSummary | None = None
    person_observers: list[str] = field(default_factory=list)  # the annotator of a reviewed SR
    complete: bool = True  # Completion Flag COMPLETE (a reviewed SR is PARTIAL until the review is complete)

    def review_statuses(self) -> dict[str, str]:
        """finding id -> review status, for the findings of a reviewed SR."""
        return {f.finding_id: f.review_status for f in self.findings if f.review_status is not None}

    def observer_types(self) -> dict[str, str]:
        """finding id -> "person" / "device", for the findings of a reviewed SR."""
        return {f.finding_id: f.observer_type for f in self.findings if f.observer_type is not None}

    def matches(self) -> dict[str, str]:
        """finding id -> id of the finding sharing its tracking UID (the matched CC/MLO partner)."""
        by_uid: dict[str, list[str]] = {}
        for f in self.findings:
            by_uid.setdefault(f.tracking_uid, []).append(f.finding_id)
        pairs = {}
        for ids in by_uid.values():
            if len(ids) == 2:
                pairs[ids[0]], pairs[ids[1]] = ids[1], ids[0]
        return pairs


def build_report_sr(
    report: "Report",
    sources: Mapping[str, "Dataset"],
    *,
    software_version: str,
    study_key: str,
    review: "DicomReview | None" = None,
):
    """A Comprehensive SR of every finding whose view has a DICOM source in ``sources``.

    ``review``: the annotator's review of ``report`` (:func:`.review.prepare_review`, whose report is the one to
    pass here), which makes the reviewed SR; None for the model's."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    keys = [k for k in VIEW_KEYS if k in sources]
    if not keys:
        raise ValueError("a DICOM SR needs at least one DICOM source image")
    evidence = [sources[k] for k in keys]
    algorithm = hd.sr.AlgorithmIdentification(
        name="MammoDNN",
        version=ascii_text(f"{software_version} model {report.model.name} {report.model.version}")[:64],
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=stable_uid("device", report.model.sha256 or report.model.name),
        name="MammoDNN",
        manufacturer_name="MammoDNN project",
        model_name=ascii_text(f"MammoDNN {report.model.name} {report.model.version}")[:64],
    )
    person = None
    if review is not None:
        with copied_names_accepted():
            person = hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name=review.person_name
                ),
            )
    observation = hd.sr.ObservationContext(
        observer_person_context=person,
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        ),
    )
    groups: list = []
    for key in keys:
        for finding in sorted(report.findings_in(key), key=lambda f: (f.number, f.id)):
            groups.append(_finding_group(report, finding, sources[key], algorithm, study_key, review))
    changed = frozenset() if review is None else review.changed_lateralities
    for laterality, summary in sorted(report.breasts.items()):
        if laterality not in changed:  # the model's assessment of this breast still describes its findings
            groups.append(
                _summary_group(f"breast {laterality}", summary, laterality, algorithm, study_key, report)
            )
    if not changed:
        groups.append(_summary_group("exam", report.exam, None, algorithm, study_key, report))

    lateralities = {split_view_key(k)[0] for k in keys}
    procedure = (
        dc.PROCEDURE_BILATERAL if len(lateralities) == 2 else dc.PROCEDURE_BY_LATERALITY[lateralities.pop()]
    )
    library = evidence if all(_library_ready(h) for h in evidence) else None
    if library is None:
        log.info(
            "SR without Image Library: a projection image lacks Patient Orientation or Imager Pixel Spacing, "
            "which the TID 1603 descriptors need"
        )
    measurement_report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=dc.concept(procedure),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
        referenced_images=library,
    )
    first = evidence[0]
    evidence_uids = [str(h.SOPInstanceUID) for h in evidence]
    if review is None:
        uid_parts: tuple = ("sr", study_key, report.created, *evidence_uids)
        series_number, description = SR_SERIES_NUMBER, "MammoDNN findings (research use only)"
    else:
        uid_parts = ("reviewed sr", study_key, report.created, review.digest, *evidence_uids)
        series_number = REVIEWED_SR_SERIES_NUMBER
        description = "MammoDNN findings reviewed (research use only)"
    with copied_names_accepted():
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence,
            content=measurement_report[0],
            series_instance_uid=stable_uid(f"{uid_parts[0]} series", *uid_parts[1:]),
            series_number=series_number,
            sop_instance_uid=stable_uid(f"{uid_parts[0]} instance", *uid_parts[1:]),
            instance_number=1,
            manufacturer="MammoDNN project",
            is_complete=review is None or review.complete,
            is_final=False,
            is_verified=False,
            series_description=description,
        )
    sr.CodingSchemeIdentificationSequence = [dc.coding_scheme_identification()]
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if keyword in first:
            setattr(sr, keyword, first.get(keyword))
    return sr


def _library_ready(header: "Dataset") -> bool:
    """Whether highdicom can describe the image in the Image Library: projection images (CR, DX, MG, ...)
    need a valid Patient Orientation and Imager Pixel Spacing for the TID 1603 descriptors."""
    if str(header.get("Modality", "")) not in _PROJECTION_MODALITIES:
        return True
    orientation = header.get("PatientOrientation")
    spacing = header.get("ImagerPixelSpacing")
    return (
        orientation is not None
        and not isinstance(orientation, str)
        and len(orientation) == 2
        and spacing is not None
        and len(spacing) == 2
    )


def write_sr(path: str | Path, sr) -> Path:
    path = Path(path)
    sr.save_as(path, enforce_file_format=True)
    return path


def _finding_group(
    report: "Report",
    finding: "Finding",
    source: "Dataset",
    algorithm,
    study_key: str,
    review: "DicomReview | None" = None,
):
    """TID 1411 group of one finding: the model's measurements and assessments where the model found it; a
    reviewed finding also says who found it and its review status."""
    import highdicom as hd

    outline = np.asarray(finding.outline, dtype=np.float64).reshape(-1, 2)
    if len(outline) < 3:
        x0, y0, x1, y1 = finding.box
        outline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    closed = np.vstack([outline, outline[:1]])
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=closed,
        source_image=hd.sr.SourceImageForRegion.from_source_image(source),
    )
    status = None if review is None else review.status(finding)
    added = status == REVIEW_ADDED
    measurements = [] if added else _finding_measurements(finding)
    evaluations = [] if added else _finding_evaluations(finding)
    if status is not None:
        observer = dc.OBSERVER_PERSON if added else dc.OBSERVER_DEVICE
        evaluations += [
            hd.sr.QualitativeEvaluation(name=dc.concept(dc.OBSERVER_TYPE), value=dc.concept(observer)),
            hd.sr.QualitativeEvaluation(
                name=dc.concept(dc.REVIEW_STATUS), value=dc.concept(dc.REVIEW_STATUS_VALUES[status])
            ),
        ]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=lesion_uid(report, finding, study_key), identifier=f"{finding.id} ({finding.view_key})"
        ),
        referenced_region=region,
        finding_type=dc.concept(dc.finding_type_code(finding.type)),
        finding_category=dc.concept(dc.SEGMENTATION_CATEGORY),
        algorithm_id=None if added else algorithm,
        finding_sites=[
            hd.sr.FindingSite(
                anatomic_location=dc.concept(dc.BREAST),
                laterality=dc.concept(dc.LATERALITY[finding.laterality]),
            )
        ],
        measurements=measurements or None,
        qualitative_evaluations=evaluations or None,
    )


def _finding_measurements(finding: "Finding") -> list:
    """The model's numbers: detection score, malignancy, relative depth, match probability."""
    import highdicom as hd

    probability = dc.concept(dc.UNIT_PROBABILITY)
    measurements = [
        hd.sr.Measurement(name=dc.concept(dc.DETECTION_SCORE), value=float(finding.score), unit=probability)
    ]
    if finding.malignancy is not None:
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.MALIGNANCY), value=float(finding.malignancy), unit=probability
            )
        )
    if finding.depth is not None:
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.RELATIVE_DEPTH), value=float(finding.depth), unit=dc.concept(dc.UNIT_ONE)
            )
        )
    if finding.match_probability is not None:
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.MATCH_PROBABILITY),
                value=float(finding.match_probability),
                unit=probability,
            )
        )
    return measurements


def _finding_evaluations(finding: "Finding") -> list:
    """The model's assessments: BI-RADS, depth third, region."""
    import highdicom as hd

    evaluations = _birads_evaluations(finding.birads)
    if finding.depth is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(
                name=dc.concept(dc.DEPTH), value=dc.concept(dc.depth_code(finding.depth))
            )
        )
    if finding.quadrant is not None:
        code = dc.region_code(finding.view, finding.quadrant)
        if code is not None:
            evaluations.append(
                hd.sr.QualitativeEvaluation(name=dc.concept(dc.REGION), value=dc.concept(code))
            )
    return evaluations


def _summary_group(name: str, summary: "Summary", laterality: str | None, algorithm, study_key: str, report):
    import highdicom as hd

    measurements = []
    if summary.score is not None:
        measurements.append(
            hd.sr.Measurement(
                name=dc.concept(dc.MALIGNANCY),
                value=float(summary.score),
                unit=dc.concept(dc.UNIT_PROBABILITY),
            )
        )
    sites = None
    if laterality is not None:
        sites = [
            hd.sr.FindingSite(
                anatomic_location=dc.concept(dc.BREAST), laterality=dc.concept(dc.LATERALITY[laterality])
            )
        ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid(name, study_key, report.created), identifier=name
        ),
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements or None,
        qualitative_evaluations=_birads_evaluations(summary.birads) or None,
    )


def _birads_evaluations(birads: str | None) -> list:
    import highdicom as hd

    if not birads:
        return []
    category, subcategory = dc.birads_codes(birads)
    evaluations = [
        hd.sr.QualitativeEvaluation(name=dc.concept(dc.ASSESSMENT_CATEGORY), value=dc.concept(category))
    ]
    if subcategory is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(
                name=dc.concept(dc.ASSESSMENT_SUBCATEGORY), value=dc.concept(subcategory)
            )
        )
    return evaluations


def read_report_sr(path: str | Path) -> SRContent:
    """The findings and summaries of an SR written by :func:`build_report_sr`, through highdicom's queries; of a
    reviewed SR also each finding's review status and observer type, the annotator and the completion flag."""
    import highdicom as hd

    sr = hd.sr.srread(str(path))
    content = SRContent(complete=str(sr.CompletionFlag) == "COMPLETE")
    for context in sr.content.get_observer_contexts():
        attributes = context.observer_identifying_attributes
        if isinstance(attributes, hd.sr.PersonObserverIdentifyingAttributes):
            content.person_observers.append(str(attributes.name).rstrip("^"))
    statuses = {(c.value, c.scheme): key for key, c in dc.REVIEW_STATUS_VALUES.items()}
    observers = {
        (dc.OBSERVER_PERSON.value, dc.OBSERVER_PERSON.scheme): "person",
        (dc.OBSERVER_DEVICE.value, dc.OBSERVER_DEVICE.scheme): "device",
    }
    for group in sr.content.get_planar_roi_measurement_groups():
        match = _IDENTIFIER.match(str(group.tracking_identifier))
        if match is None:
            continue
        view_key = match.group("view")
        _, view = split_view_key(view_key)
        numbers = {(m.name.value, m.name.scheme_designator): float(m.value) for m in group.get_measurements()}
        codes_ = {
            (q.name.value, q.name.scheme_designator): (q.value.value, q.value.scheme_designator)
            for q in group.get_qualitative_evaluations()
        }
        region = group.roi
        laterality = None
        if group.finding_sites:
            lat_code = group.finding_sites[0].laterality
            if lat_code is not None:
                laterality = {c.value: k for k, c in dc.LATERALITY.items()}.get(lat_code.value)
        region_code = codes_.get((dc.REGION.value, dc.REGION.scheme))
        depth_code = codes_.get((dc.DEPTH.value, dc.DEPTH.scheme))
        status_code = codes_.get((dc.REVIEW_STATUS.value, dc.REVIEW_STATUS.scheme))
        observer_code = codes_.get((dc.OBSERVER_TYPE.value, dc.OBSERVER_TYPE.scheme))
        finding_code = group.finding_type
        content.findings.append(
            SRFinding(
                finding_id=match.group("id"),
                view_key=view_key,
                tracking_uid=str(group.tracking_uid),
                type_key=None
                if finding_code is None
                else dc.type_key_from_code(finding_code.value, finding_code.scheme_designator),
                laterality=laterality,
                source_sop_instance_uid=_referenced_sop_instance_uid(region),
                outline=np.asarray(region.value, dtype=np.float64)
                if region is not None
                else np.zeros((0, 2)),
                score=numbers.get((dc.DETECTION_SCORE.value, dc.DETECTION_SCORE.scheme)),
                malignancy=numbers.get((dc.MALIGNANCY.value, dc.MALIGNANCY.scheme)),
                depth=numbers.get((dc.RELATIVE_DEPTH.value, dc.RELATIVE_DEPTH.scheme)),
                match_probability=numbers.get((dc.MATCH_PROBABILITY.value, dc.MATCH_PROBABILITY.scheme)),
                birads=dc.birads_from_codes(
                    codes_.get((dc.ASSESSMENT_CATEGORY.value, dc.ASSESSMENT_CATEGORY.scheme)),
                    codes_.get((dc.ASSESSMENT_SUBCATEGORY.value, dc.ASSESSMENT_SUBCATEGORY.scheme)),
                ),
                quadrant=None if region_code is None else dc.quadrant_from_code(view, *region_code),
                depth_third=None
                if depth_code is None
                else next(
                    (c.meaning.lower() for _, c in dc.DEPTH_THIRDS if (c.value, c.scheme) == depth_code), None
                ),
                review_status=None if status_code is None else statuses.get(status_code, "unknown"),
                observer_type=None if observer_code is None else observers.get(observer_code, "unknown"),
            )
        )
    for group in sr.content.get_image_measurement_groups():
        name = str(group.tracking_identifier)
        numbers = {(m.name.value, m.name.scheme_designator): float(m.value) for m in group.get_measurements()}
        codes_ = {
            (q.name.value, q.name.scheme_designator): (q.value.value, q.value.scheme_designator)
            for q in group.get_qualitative_evaluations()
        }
        summary = SRSummary(
            score=numbers.get((dc.MALIGNANCY.value, dc.MALIGNANCY.scheme)),
            birads=dc.birads_from_codes(
                codes_.get((dc.ASSESSMENT_CATEGORY.value, dc.ASSESSMENT_CATEGORY.scheme)),
                codes_.get((dc.ASSESSMENT_SUBCATEGORY.value, dc.ASSESSMENT_SUBCATEGORY.scheme)),
            ),
        )
        if name == "exam":
            content.exam = summary
        elif name.startswith("breast "):
            content.breasts[name.split(" ", 1)[1]] = summary
    return content


def _referenced_sop_instance_uid(region) -> str | None:
    if region is None:
        return None
    for item in getattr(region, "ContentSequence", []):
        for reference in getattr(item, "ReferencedSOPSequence", []):
            return str(reference.ReferencedSOPInstanceUID)
    return None
