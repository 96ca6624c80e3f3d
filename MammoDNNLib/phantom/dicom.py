"""DICOM writer: Digital Mammography X-Ray Image Storage - For Presentation (1.2.840.10008.5.1.4.1.1.1.2).

Modules written (PS3.3 A.26, the Digital Mammography X-Ray Image IOD): Patient, General Study, Patient Study,
General Series, DX Series, Mammography Series, General Equipment, General Acquisition, General Image, Image
Pixel, Acquisition Context, DX Anatomy Imaged, DX Image, DX Detector, DX Positioning, X-Ray Acquisition Dose,
X-Ray Generation, Mammography Image, VOI LUT and SOP Common. Orientation follows the IHE Mammography Image
profile: right-breast images have the chest wall on the right (R-CC ``P\\L``, R-MLO ``P\\FL``), left-breast
images on the left (L-CC ``A\\R``, L-MLO ``A\\FR``). UIDs are derived from the seed
(``generate_uid(entropy_srcs=...)``), so the same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from .. import __version__

SOP_CLASS_MAMMOGRAPHY_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, which generate_uid uses by default

VIEW_CODES: dict[str, tuple[str, str, str]] = {
    "CC": ("399162004", "SCT", "cranio-caudal"),
    "MLO": ("399368009", "SCT", "medio-lateral oblique"),
}
BREAST_CODE = ("76752008", "SCT", "Breast")
PATIENT_ORIENTATION: dict[str, tuple[str, str]] = {
    "R-CC": ("P", "L"),
    "L-CC": ("A", "R"),
    "R-MLO": ("P", "FL"),
    "L-MLO": ("A", "FR"),
}


def uid(seed: int, *parts: str) -> str:
    """A UID determined by the study seed and the named parts."""
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=["mammodnn-phantom", str(seed), *parts]))


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and study identifiers shared by the four images."""

    seed: int
    study_id: str
    patient_id: str
    patient_name: str
    patient_age: int
    birth_date: str
    study_date: str
    study_time: str
    study_instance_uid: str
    accession_number: str


def study_identity(seed: int, study_id: str, age: int) -> StudyIdentity:
    day = _dt.date(2024, 1, 1) + _dt.timedelta(days=seed % 730)
    birth = _dt.date(day.year - age, 1 + seed % 12, 1 + (seed // 12) % 28)
    seconds = 8 * 3600 + (seed // 7) % (9 * 3600)
    return StudyIdentity(
        seed=seed,
        study_id=study_id,
        patient_id=f"PH{seed % 10**12:012d}",
        patient_name=f"PHANTOM^{study_id}",
        patient_age=age,
        birth_date=birth.strftime("%Y%m%d"),
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        study_instance_uid=uid(seed, "study"),
        accession_number=f"A{seed % 10**9:09d}",
    )


@dataclass(frozen=True)
class Acquisition:
    """Per-image acquisition values written to the header."""

    key: str
    instance_number: int
    rows: int
    columns: int
    spacing_mm: float
    thickness_mm: float
    compression_force_n: float
    positioner_angle_deg: float
    bits_stored: int
    window_center: float
    window_width: float


def _code(value: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def exposure_values(thickness_mm: float, density_factor: float) -> dict[str, float]:
    """Plausible W-target technique and dose for a compressed thickness (automatic exposure control)."""
    kvp = float(np.clip(round(24.0 + 0.12 * thickness_mm), 25, 35))
    mas = float(np.clip(40.0 + 2.2 * thickness_mm * density_factor, 40.0, 320.0))
    entrance_mgy = 0.06 * mas * (kvp / 28.0) ** 2
    mgd_mgy = float(np.clip(entrance_mgy * np.exp(-0.018 * thickness_mm) * 0.9, 0.5, 4.0))
    return {"kvp": kvp, "mas": mas, "entrance_mgy": entrance_mgy, "mgd_mgy": mgd_mgy}


def build_header(
    identity: StudyIdentity, acq: Acquisition, laterality: str, view: str, density_factor: float = 1.0
) -> Dataset:
    """The image's DICOM header without Pixel Data."""
    ds = Dataset()
    sop_uid = uid(identity.seed, "image", acq.key)
    series_uid = uid(identity.seed, "series", acq.key)
    tech = exposure_values(acq.thickness_mm, density_factor)
    time = identity.study_time
    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SOP_CLASS_MAMMOGRAPHY_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = identity.study_date
    ds.InstanceCreationTime = time
    # Patient, Patient Study
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = "F"
    ds.PatientAge = f"{identity.patient_age:03d}Y"
    ds.PatientIdentityRemoved = "NO"
    # General Study
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.StudyDate = identity.study_date
    ds.StudyTime = time
    ds.ReferringPhysicianName = ""
    ds.StudyID = identity.study_id[-16:]
    ds.AccessionNumber = identity.accession_number
    ds.StudyDescription = "Screening mammogram, synthetic phantom"
    # General Series, DX Series, Mammography Series
    ds.Modality = "MG"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = acq.instance_number
    ds.SeriesDate = identity.study_date
    ds.SeriesTime = time
    ds.SeriesDescription = f"{laterality} {view}"
    ds.BodyPartExamined = "BREAST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    # General Equipment
    ds.Manufacturer = "MammoDNN"
    ds.InstitutionName = "MammoDNN synthetic data"
    ds.StationName = "PHANTOM"
    ds.ManufacturerModelName = "Synthetic four-view phantom"
    ds.DeviceSerialNumber = "PHANTOM-0001"
    ds.SoftwareVersions = f"MammoDNNLib {__version__}"
    # General Acquisition, General Image
    ds.AcquisitionDate = identity.study_date
    ds.AcquisitionTime = time
    ds.ContentDate = identity.study_date
    ds.ContentTime = time
    ds.InstanceNumber = acq.instance_number
    ds.PatientOrientation = list(PATIENT_ORIENTATION[acq.key])
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.AcquisitionDeviceProcessingDescription = "synthetic phantom; log, thickness equalization, unsharp mask"
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    ds.QualityControlImage = "NO"
    ds.ImageComments = "Synthetic phantom image made by MammoDNN: not a patient. Research use only."
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = acq.rows
    ds.Columns = acq.columns
    ds.BitsAllocated = 16
    ds.BitsStored = acq.bits_stored
    ds.HighBit = acq.bits_stored - 1
    ds.PixelRepresentation = 0
    # Acquisition Context
    ds.AcquisitionContextSequence = Sequence([])
    # DX Anatomy Imaged, Mammography Image
    ds.ImageLaterality = laterality
    ds.AnatomicRegionSequence = Sequence([_code(BREAST_CODE)])
    view_item = _code(VIEW_CODES[view])
    view_item.ViewModifierCodeSequence = Sequence([])
    ds.ViewCodeSequence = Sequence([view_item])
    ds.ViewPosition = view
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.OrganExposed = "BREAST"
    # DX Image
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values: less X-ray intensity (denser)
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    # VOI LUT
    ds.WindowCenter = f"{acq.window_center:.1f}"
    ds.WindowWidth = f"{acq.window_width:.1f}"
    ds.WindowCenterWidthExplanation = "BREAST"
    ds.VOILUTFunction = "LINEAR"
    # DX Detector
    height_mm = acq.rows * acq.spacing_mm
    width_mm = acq.columns * acq.spacing_mm
    ds.DetectorType = "DIRECT"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "PHANTOM-DET-1"
    ds.DetectorConditionsNominalFlag = "YES"
    ds.DetectorActiveShape = "RECTANGLE"
    ds.DetectorActiveDimensions = [f"{height_mm:.2f}", f"{width_mm:.2f}"]
    ds.DetectorElementSpacing = [f"{acq.spacing_mm:.6g}", f"{acq.spacing_mm:.6g}"]
    ds.DetectorElementPhysicalSize = [f"{acq.spacing_mm:.6g}", f"{acq.spacing_mm:.6g}"]
    ds.ImagerPixelSpacing = [f"{acq.spacing_mm:.6g}", f"{acq.spacing_mm:.6g}"]
    ds.FieldOfViewShape = "RECTANGLE"
    ds.FieldOfViewDimensions = [int(round(height_mm)), int(round(width_mm))]
    # DX Positioning
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.PositionerPrimaryAngle = f"{acq.positioner_angle_deg:.1f}"
    ds.DistanceSourceToDetector = "650"
    # Contact mammography: the image is reported at the detector plane (magnification factor 1.0), so the
    # isocentre distance (Distance Source to Patient) is not given; the entrance surface distance is.
    ds.DistanceSourceToEntrance = f"{650.0 - 20.0 - acq.thickness_mm:.1f}"
    ds.EstimatedRadiographicMagnificationFactor = "1.0"
    ds.BodyPartThickness = f"{acq.thickness_mm:.1f}"
    ds.CompressionForce = f"{acq.compression_force_n:.1f}"
    # X-Ray Acquisition Dose, X-Ray Generation
    ds.KVP = f"{tech['kvp']:.0f}"
    ds.ExposureTime = int(round(tech["mas"] / 0.16))  # ms at 160 mA
    ds.XRayTubeCurrent = 160
    ds.Exposure = int(round(tech["mas"]))
    ds.ExposureInuAs = int(round(tech["mas"] * 1000))
    ds.AnodeTargetMaterial = "TUNGSTEN"
    ds.FilterMaterial = "RHODIUM"
    ds.FilterThicknessMinimum = "0.05"
    ds.FilterThicknessMaximum = "0.05"
    ds.FocalSpots = "0.3"
    ds.Grid = ["RECIPROCATING", "FOCUSED"]
    ds.EntranceDoseInmGy = f"{tech['entrance_mgy']:.3f}"
    ds.OrganDose = f"{tech['mgd_mgy'] / 100.0:.5f}"  # dGy (mean glandular dose)
    ds.HalfValueLayer = f"{0.3 + 0.012 * (tech['kvp'] - 25):.3f}"
    return ds


def dataset(header: Dataset, pixels: np.ndarray) -> FileDataset:
    """A complete file dataset: ``header`` plus ``pixels`` (uint16, rows x columns, stored values)."""
    if pixels.dtype != np.uint16 or pixels.shape != (header.Rows, header.Columns):
        raise ValueError(f"pixels must be uint16 of shape {(header.Rows, header.Columns)}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = header.SOPClassUID
    meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MAMMODNN"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.update(header)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def write_dicom(path: str | Path, header: Dataset, pixels: np.ndarray) -> Path:
    path = Path(path)
    dataset(header, pixels).save_as(path, enforce_file_format=True)
    return path
