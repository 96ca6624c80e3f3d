"""De-identification of every export (``mammodnn export --anonymize``).

DICOM outputs copy the patient and study identifiers of their source images, as DICOM requires. With
``anonymize``, the source headers are de-identified *before* the SEG and SR are built from them, following a
subset of the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile:

* replaced: Patient's Name ("Anonymous^Patient"), Patient ID ("ANONYMOUS");
* emptied (type 2 attributes the IODs keep): Patient's Birth Date, Patient's Sex, Study Date, Study Time,
  Accession Number, Study ID, Referring Physician's Name;
* removed: every other attribute of the profile's list that a mammogram may carry (other patient IDs and
  names, age, size, weight, address, institution, station, device serial number, operators and physicians,
  descriptions, request and procedure-step attributes, every date, time and date-time, every person name), and
  all private attributes;
* UIDs (study, series, instance, frame of reference, and any other non-standard UID) are replaced by
  ``2.25`` UIDs derived from a hash of the original, so the same source always maps to the same UID and an
  anonymized copy of the sources made with :func:`anonymized_uid` still matches the references;
* Patient Identity Removed = YES and De-identification Method describe what was done.

The report copy loses source paths (each view's file becomes ``<view key><suffix>``, and any string holding a
source path or file name is rewritten) and source UIDs (mapped as above). Output file names never contain
source names, and the Slicer files and overlays hold no identifiers at all.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import Report

ANONYMOUS_NAME = "Anonymous^Patient"
ANONYMOUS_ID = "ANONYMOUS"
# De-identification Method is LO (at most 64 characters per value), multi-valued.
METHOD = (
    "MammoDNN export",
    "DICOM PS3.15 Basic Profile subset",
    "UIDs replaced by hash",
    "dates, times, person names, private attributes removed",
)
_UID_NAMESPACE = "MammoDNN anonymize"

_REPLACE = {"PatientName": ANONYMOUS_NAME, "PatientID": ANONYMOUS_ID}
_EMPTY = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)
_REMOVE = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "PatientComments",
    "PatientInsurancePlanCodeSequence",
    "PatientReligiousPreference",
    "EthnicGroup",
    "Occupation",
    "MilitaryRank",
    "BranchOfService",
    "MedicalRecordLocator",
    "AdditionalPatientHistory",
    "PregnancyStatus",
    "LastMenstrualDate",
    "SmokingStatus",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionCodeSequence",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "DetectorID",
    "OperatorsName",
    "OperatorIdentificationSequence",
    "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence",
    "RequestingPhysician",
    "RequestingService",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "ImageComments",
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "RequestAttributesSequence",
    "ReferencedStudySequence",
    "ReferencedPatientSequence",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "ScheduledProcedureStepID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ContentCreatorName",
    "VerifyingObserverSequence",
    "PersonName",
    "CurrentPatientLocation",
    "PatientState",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "ClinicalTrialSponsorName",
    "ClinicalTrialSiteName",
    "ClinicalTrialSubjectID",
)
# UIDs that name a class or a syntax, never an instance; these stay.
_KEEP_UIDS = frozenset(
    {
        "SOPClassUID",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "ReferencedSOPClassUID",
        "ImplementationClassUID",
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "MappingResourceUID",
    }
)


def anonymized_uid(uid: str) -> str:
    """The replacement of an instance UID (deterministic, one-way)."""
    from .common import uid_from_name

    return uid_from_name(_UID_NAMESPACE, str(uid))


def anonymize_header(header: "Dataset") -> "Dataset":
    """A de-identified deep copy of a DICOM header (the input is not modified)."""
    dataset = copy.deepcopy(header)
    dataset.remove_private_tags()
    _walk(dataset)
    for keyword, value in _REPLACE.items():
        setattr(dataset, keyword, value)
    for keyword in _EMPTY:
        setattr(dataset, keyword, None)
    if hasattr(dataset, "file_meta"):
        meta = dataset.file_meta
        if "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    mark_deidentified(dataset)
    return dataset


def mark_deidentified(dataset: "Dataset") -> None:
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = list(METHOD)


def _walk(dataset: "Dataset") -> None:
    from pydicom.uid import UID

    for element in list(dataset):
        keyword = element.keyword
        if element.VR == "SQ":
            if keyword in _REMOVE:
                del dataset[element.tag]
                continue
            for item in element.value:
                _walk(item)
            continue
        if keyword in _REPLACE or keyword in _EMPTY:
            continue
        if keyword in _REMOVE or element.VR in ("DA", "DT", "TM", "PN"):
            del dataset[element.tag]
            continue
        if element.VR == "UI" and keyword not in _KEEP_UIDS and element.value:
            values = element.value if element.VM > 1 else [element.value]
            mapped = [
                v if UID(str(v)).is_transfer_syntax or UID(str(v)).name != str(v) else anonymized_uid(v)
                for v in values
            ]
            element.value = mapped if element.VM > 1 else mapped[0]


@dataclass
class ReportAnonymizer:
    """Rewrites a report so that it names no source file and no source UID."""

    replacements: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_report(
        cls, report: "Report", resolved_sources: dict[str, Path] | None = None
    ) -> "ReportAnonymizer":
        replacements: dict[str, str] = {}
        for info in report.views:
            if not info.file:
                continue
            new_name = info.key + Path(info.file).suffix
            paths = [Path(info.file)]
            if resolved_sources and info.key in resolved_sources:
                paths.append(resolved_sources[info.key])
            for path in paths:
                replacements[str(path)] = new_name
                replacements[path.as_posix()] = new_name
                replacements[path.name] = new_name
                if path.stem and len(path.stem) >= 3:
                    replacements[path.stem] = info.key
            if info.sop_instance_uid:
                replacements[info.sop_instance_uid] = anonymized_uid(info.sop_instance_uid)
        return cls(replacements)

    def text(self, value: str) -> str:
        # Longest first, so a full path is replaced before the file name inside it.
        for old in sorted(self.replacements, key=len, reverse=True):
            if old and old in value:
                value = value.replace(old, self.replacements[old])
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    def report(self, report: "Report") -> "Report":
        views = []
        for info in report.views:
            views.append(
                replace(
                    info,
                    file=None if info.file is None else info.key + Path(info.file).suffix,
                    sop_instance_uid=None
                    if info.sop_instance_uid is None
                    else anonymized_uid(info.sop_instance_uid),
                    provenance=self.value(dict(info.provenance)),
                    landmarks=self.value(dict(info.landmarks)),
                )
            )
        findings = [replace(f, extra=self.value(dict(f.extra))) for f in report.findings]
        return replace(
            report,
            views=views,
            findings=findings,
            warnings=[self.text(w) for w in report.warnings],
            options=self.value(dict(report.options)),
            software=self.value(dict(report.software)),
        )
