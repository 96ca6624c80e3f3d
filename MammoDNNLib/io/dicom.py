"""Reading DICOM headers and the rules for a mammogram: is it a 2-D screening view, which side, which view,
what pixel spacing, and where each value came from.

:func:`inspect_dicom` works from the header alone (pixel data deferred), so a folder is checked before
anything large is decoded; :mod:`.pixels` decodes afterwards. docs/io.md states the rules; the messages below
are what users see.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    DigitalMammographyXRayImageStorageForProcessing,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from ..errors import InputError
from .attributes import as_list, integer, meta, number, short, text, transfer_syntax
from .conventions import (
    CALLER_SPACING_TOLERANCE,
    CBIS_DDSM_PATIENT_ID,
    Candidate,
    NotAScreeningView,
    Spacing,
    check_spacing,
    format_spacing,
    non_square_warning,
    side_from_identifier,
    spacing_hint,
    view_from_identifier,
)
from .views import RecognizedView, describe_code, modifier_from_code, view_from_code, view_from_position

logger = logging.getLogger(__name__)

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Projection X-ray modalities read as mammograms (with a warning) when nothing says they show another body
# part.
PROJECTION_MODALITIES = ("DX", "CR", "RG", "OT")
FOR_PROCESSING_SOP_CLASSES = (
    DigitalMammographyXRayImageStorageForProcessing,
    DigitalXRayImageStorageForProcessing,
)
_TRUNCATION_MARKERS = ("end of file", "truncated", "fewer bytes", "less than expected")


# --- reading


def read_dicom_header(path: str | Path) -> Dataset:
    """The data set of a DICOM file without its pixel data; :class:`InputError` when it is not DICOM."""
    dataset, _ = read_dataset(Path(path), stop_before_pixels=True)
    return dataset


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has the DICOM Part 10 marker ("DICM" at byte 128)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def looks_like_raw_dicom(path: str | Path) -> bool:
    """True when the file starts like a DICOM data set without the Part 10 preamble (group 0002 or 0008)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def truncation_message(messages: list[str]) -> str | None:
    """pydicom's warning that a file ended early (it then drops the unfinished element), if any."""
    return next((m for m in messages if any(marker in m.lower() for marker in _TRUNCATION_MARKERS)), None)


def read_dataset(
    path: Path, *, stop_before_pixels: bool = False, defer_size: int | None = None
) -> tuple[Dataset, list[str]]:
    """dcmread with user-facing errors; returns the data set and pydicom's warnings while reading."""
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
            except InvalidDicomError:
                if not looks_like_raw_dicom(path):
                    raise InputError(
                        path,
                        "not a DICOM file (no 'DICM' marker at byte 128 and no DICOM data set at the start)",
                    ) from None
                dataset = pydicom.dcmread(
                    path, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=True
                )
                if not any(k in dataset for k in ("SOPClassUID", "Rows", "Modality", "StudyInstanceUID")):
                    raise InputError(path, "not a DICOM file (no DICOM image attributes found)") from None
                _set_transfer_syntax_of_raw_dataset(dataset)
        except (InputError, MemoryError):
            raise
        except Exception as exc:  # pydicom raises many kinds on damaged files; the user needs only this
            raise InputError(path, f"corrupt or truncated DICOM file ({short(exc)})") from exc
    messages = [str(w.message) for w in caught]
    for message in messages:
        logger.debug("%s: pydicom: %s", path, message)
    return dataset, messages


def _set_transfer_syntax_of_raw_dataset(dataset: Dataset) -> None:
    """A data set without file meta information: record the encoding pydicom found, for the pixel decoder."""
    if "TransferSyntaxUID" in getattr(dataset, "file_meta", {}):
        return
    implicit, little = dataset.original_encoding
    dataset.file_meta = getattr(dataset, "file_meta", None) or pydicom.dataset.FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def read_for_inspection(path: Path) -> tuple[Dataset, bool]:
    """The header and whether the file holds pixel data (native pixel data is not read; the data set returned
    holds no pixel data). A file that ends inside its pixel data is a :class:`InputError`."""
    dataset, messages = read_dataset(path, defer_size=4096)
    truncation = truncation_message(messages)
    if truncation:
        raise InputError(path, f"corrupt or truncated DICOM file ({truncation})")
    has_pixels = any(k in dataset for k in PIXEL_DATA_KEYWORDS)
    for keyword in PIXEL_DATA_KEYWORDS:
        if keyword in dataset:
            del dataset[keyword]
    return dataset, has_pixels


# --- inspection


def inspect_dicom(
    path: Path,
    dataset: Dataset,
    has_pixels: bool,
    *,
    spacing: Spacing | None,
    laterality: str | None,
    view: str | None,
) -> Candidate:
    """Check that the file is a 2-D screening mammogram and read side, view and spacing with their sources.

    Raises :class:`NotAScreeningView` for readable files that are not one (other views, non-image objects,
    multi-frame images) and :class:`InputError` for everything else that prevents reading it.
    """
    notes: list[str] = []
    sop_class = UID(str(dataset.get("SOPClassUID", "") or meta(dataset, "MediaStorageSOPClassUID")))
    sop_name = sop_class.name if sop_class else "no SOP Class UID"
    modality = text(dataset, "Modality")
    if sop_class == MediaStorageDirectoryStorage:
        raise NotAScreeningView(path, "a DICOMDIR (media storage directory), not an image")
    if not has_pixels:
        raise NotAScreeningView(
            path, f"no pixel data ({sop_name}, Modality {modality or 'absent'}): not an image"
        )
    _check_mammogram(path, dataset, modality, sop_name, notes)
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    _check_not_cbis_ddsm_derived(path, dataset, patient_id)
    frames = integer(dataset, "NumberOfFrames") or 1
    if frames > 1:
        raise NotAScreeningView(
            path, f"multi-frame image ({frames} frames, {sop_name}): not a 2-D mammogram (tomosynthesis?)"
        )
    _check_pixel_format(path, dataset)
    _check_decodable(path, dataset)

    view_value, view_source = dicom_view(path, dataset, patient_id, view, notes)
    laterality_value, laterality_source = dicom_laterality(path, dataset, patient_id, laterality, notes)
    spacing_value, spacing_source = dicom_spacing(path, dataset, spacing, notes)

    for_processing = sop_class in FOR_PROCESSING_SOP_CLASSES or (
        text(dataset, "PresentationIntentType") == "FOR PROCESSING"
    )
    if for_processing:
        notes.append(
            f"{path}: a For Processing image (raw detector values, before the vendor's presentation "
            "processing); results are meant for For Presentation images"
        )
    if text(dataset, "LossyImageCompression") == "01":
        ratio = dataset.get("LossyImageCompressionRatio")
        ratio_text = f", ratio {format_spacing(as_list(ratio))}:1" if ratio not in (None, "") else ""
        notes.append(f"{path}: lossy compressed image (LossyImageCompression (0028,2110) 01{ratio_text})")

    patient, patient_source, study_uid, metadata = _identity(dataset, patient_id)
    return Candidate(
        path=path,
        kind="dicom",
        laterality=laterality_value,
        view=view_value,
        spacing=spacing_value,
        provenance={"laterality": laterality_source, "view": view_source, "spacing": spacing_source},
        warnings=notes,
        patient=patient,
        patient_source=patient_source,
        study_uid=study_uid,
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "") or "") or None,
        for_processing=for_processing,
        metadata=metadata,
    )


def _identity(dataset: Dataset, patient_id: str) -> tuple[str | None, str, str | None, dict[str, str]]:
    """(patient, how it was read, StudyInstanceUID to compare or None, study metadata) of one file.

    CBIS-DDSM gives every view its own StudyInstanceUID and a PatientID naming side and view
    (``Mass-Test_P_00173_RIGHT_CC``): its views compare by the ``P_00173`` patient only.
    """
    metadata = {
        key: str(dataset.get(keyword, "") or "").strip()
        for key, keyword in (
            ("patient_id", "PatientID"),
            ("study_instance_uid", "StudyInstanceUID"),
            ("study_date", "StudyDate"),
            ("accession_number", "AccessionNumber"),
            ("study_description", "StudyDescription"),
        )
    }
    cbis = CBIS_DDSM_PATIENT_ID.match(patient_id)
    if cbis:
        patient = cbis["patient"].upper()
        metadata.update(patient_id=patient, cbis_ddsm_set=cbis["set"])
        return patient, f"PatientID '{patient_id}' (CBIS-DDSM patient)", None, metadata
    study_uid = metadata["study_instance_uid"] or None
    present = {k: v for k, v in metadata.items() if v}
    return patient_id or None, f"PatientID '{patient_id}'", study_uid, present


def _check_mammogram(
    path: Path, dataset: Dataset, modality: str | None, sop_name: str, notes: list[str]
) -> None:
    """Modality MG is a mammogram; a projection radiograph (DX, CR, RG, OT) or a file without Modality is read
    as one with a warning unless its body part is something other than the breast; any other modality is
    not."""
    body_part = text(dataset, "BodyPartExamined")
    if modality == "MG":
        return
    if modality is not None and modality not in PROJECTION_MODALITIES:
        raise InputError(path, f"not a mammogram: Modality {modality} ({sop_name})")
    described = f"Modality {modality}" if modality else "no Modality (0008,0060)"
    if body_part and body_part != "BREAST":
        raise InputError(path, f"not a mammogram: {described}, BodyPartExamined {body_part}")
    reason = "BodyPartExamined is BREAST" if body_part == "BREAST" else "nothing names another body part"
    notes.append(f"{path}: {described} is not MG (mammography); read as a mammogram because {reason}")


def _check_not_cbis_ddsm_derived(path: Path, dataset: Dataset, patient_id: str) -> None:
    description = str(dataset.get("SeriesDescription", "") or "").strip()
    cbis = CBIS_DDSM_PATIENT_ID.match(patient_id)
    if description.lower() in ("roi mask images", "cropped images") or (cbis and cbis["abnormality"]):
        raise NotAScreeningView(
            path,
            f"a CBIS-DDSM ROI mask or cropped image (SeriesDescription '{description}', "
            f"PatientID '{patient_id}'), not a full mammogram",
        )


def _check_pixel_format(path: Path, dataset: Dataset) -> None:
    photometric = text(dataset, "PhotometricInterpretation")
    samples = integer(dataset, "SamplesPerPixel") or 1
    if photometric is None:
        raise InputError(
            path, "no PhotometricInterpretation (0028,0004): cannot tell how to display the pixels"
        )
    if (
        photometric in ("RGB", "PALETTE COLOR", "ARGB", "CMYK")
        or photometric.startswith("YBR")
        or samples != 1
    ):
        raise InputError(
            path,
            f"colour image (PhotometricInterpretation {photometric}, {samples} samples per pixel): "
            "not a mammogram, which is grayscale",
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            path,
            f"unknown PhotometricInterpretation {photometric!r} (a mammogram is MONOCHROME1 or MONOCHROME2)",
        )
    rows, columns, bits = (
        integer(dataset, "Rows"),
        integer(dataset, "Columns"),
        integer(dataset, "BitsAllocated"),
    )
    if not rows or not columns:
        raise InputError(path, f"corrupt header: Rows {rows}, Columns {columns}")
    if bits == 1:
        raise InputError(path, "1-bit (binary) image: a mask, not a mammogram")
    if bits not in (8, 16, 32) or integer(dataset, "BitsStored") is None:
        raise InputError(
            path, f"corrupt header: BitsAllocated {bits}, BitsStored {dataset.get('BitsStored')}"
        )


def _check_decodable(path: Path, dataset: Dataset) -> None:
    from pydicom.pixels import get_decoder

    syntax = transfer_syntax(path, dataset)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputError(
            path, f"pixel data in {syntax.name} ({syntax}) cannot be decoded by pydicom"
        ) from None
    if not decoder.is_native and not decoder.available_plugins:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise InputError(path, f"cannot decode {syntax.name} pixel data: install {missing}")


def dicom_view(
    path: Path, dataset: Dataset, patient_id: str, caller: str | None, notes: list[str]
) -> tuple[str, str]:
    """CC or MLO and where it came from: ViewPosition, ViewCodeSequence, PatientOrientation "CC"/"MLO"
    (CBIS-DDSM), a CC/MLO token in PatientID, the caller. Other views raise :class:`NotAScreeningView`."""
    sources: list[tuple[RecognizedView, str]] = []
    unrecognized: list[str] = []
    modifiers = _view_modifiers(dataset)

    position = str(dataset.get("ViewPosition", "") or "").strip()
    if position:
        recognized = view_from_position(position)
        if recognized is None:
            unrecognized.append(f"ViewPosition (0018,5101) {position!r}")
        else:
            sources.append((recognized, f"ViewPosition (0018,5101) {position!r}"))
    code_sequence = dataset.get("ViewCodeSequence") or []
    if code_sequence:
        item = code_sequence[0]
        coded = view_from_code(item)
        if coded is None:
            unrecognized.append(f"ViewCodeSequence (0054,0220) {describe_code(item)}")
        else:
            sources.append((RecognizedView(coded), f"ViewCodeSequence (0054,0220) {describe_code(item)}"))
    header_sources = len(sources)
    orientation = as_list(dataset.get("PatientOrientation"))
    if len(orientation) == 1 and view_from_position(str(orientation[0])) is not None:
        sources.append(
            (
                view_from_position(str(orientation[0])),  # type: ignore[arg-type]
                f"PatientOrientation (0020,0020) {str(orientation[0])!r} (CBIS-DDSM convention)",
            )
        )
    identifier_view = view_from_identifier(patient_id)
    if identifier_view:
        sources.append(
            (view_from_position(identifier_view), f"PatientID (0010,0020) {patient_id!r} (naming convention)")  # type: ignore[arg-type]
        )

    if not sources:
        if unrecognized:
            raise NotAScreeningView(
                path, f"unrecognized view: {', '.join(unrecognized)}; MammoDNN reads CC and MLO views"
            )
        if caller is None:
            raise InputError(
                path,
                "no view: none of ViewPosition (0018,5101), ViewCodeSequence (0054,0220), PatientOrientation "
                "(0020,0020) or PatientID names CC or MLO; load this file alone with view='CC' or 'MLO'",
            )
        sources.append((view_from_position(caller), f"caller (view={caller!r})"))  # type: ignore[arg-type]
    for described in unrecognized:
        notes.append(f"{path}: unrecognized {described} ignored")

    chosen, source = sources[0]
    if modifiers:
        chosen = RecognizedView(chosen.view, tuple(dict.fromkeys(chosen.modifiers + modifiers)))
        names = ", ".join(m.meaning for m in modifiers)
        source = f"{source}; ViewModifierCodeSequence (0054,0222) {names}"
    if header_sources == 2 and sources[0][0].view != sources[1][0].view:
        raise InputError(path, f"conflicting views: {sources[0][1]} but {sources[1][1]}")
    if chosen.screening is None:
        raise NotAScreeningView(
            path,
            f"{chosen.describe()} view ({source}): not a screening CC or MLO view; MammoDNN reads CC and MLO",
        )
    for other, other_source in sources[1:]:
        if other.view != chosen.view:
            notes.append(f"{path}: {other_source} disagrees with {source}; used {source}")
    if chosen.modifiers:
        names = ", ".join(m.meaning for m in chosen.modifiers)
        notes.append(f"{path}: {chosen.screening} view with modifier {names}")
        if not modifiers:  # named by View Position itself, e.g. "CCID"
            source = f"{source} ({chosen.describe()})"
    if caller is not None and caller != chosen.screening:
        raise InputError(path, f"view={caller!r} was given but the header says {chosen.screening} ({source})")
    return chosen.screening, source  # type: ignore[return-value]


def _view_modifiers(dataset: Dataset) -> tuple:
    items = []
    for holder in [dataset, *(dataset.get("ViewCodeSequence") or [])[:1]]:
        items.extend(holder.get("ViewModifierCodeSequence") or [])
    modifiers = []
    for item in items:
        modifier = modifier_from_code(item)
        if modifier is None:
            logger.debug("unrecognized view modifier %s", describe_code(item))
        elif modifier not in modifiers:
            modifiers.append(modifier)
    return tuple(modifiers)


def dicom_laterality(
    path: Path, dataset: Dataset, patient_id: str, caller: str | None, notes: list[str]
) -> tuple[str, str]:
    """L or R and where it came from: ImageLaterality, Laterality, PatientOrientation (standard display
    orientation), a LEFT/RIGHT token in PatientID (CBIS-DDSM), the caller."""
    sources: list[tuple[str, str]] = []
    image_laterality = text(dataset, "ImageLaterality")
    if image_laterality in ("B", "U"):
        meaning = "both breasts" if image_laterality == "B" else "unpaired"
        raise NotAScreeningView(
            path, f"ImageLaterality (0020,0062) is {image_laterality!r} ({meaning}): not a single-breast view"
        )
    if image_laterality in ("L", "R"):
        sources.append((image_laterality, "ImageLaterality (0020,0062)"))
    elif image_laterality:
        notes.append(f"{path}: unrecognized ImageLaterality (0020,0062) {image_laterality!r} ignored")
    series_laterality = text(dataset, "Laterality")
    if series_laterality in ("L", "R"):
        sources.append((series_laterality, "Laterality (0020,0060)"))
    orientation = [str(v).strip().upper() for v in as_list(dataset.get("PatientOrientation"))]
    if len(orientation) == 2 and orientation[0][:1] in ("A", "P"):
        side = "left" if orientation[0][:1] == "A" else "right"
        joined = "\\".join(orientation)
        sources.append(
            (
                side[0].upper(),
                f"PatientOrientation (0020,0020) '{joined}' (rows run {orientation[0]}: chest wall on the "
                f"{side}, a {side} breast in the standard display orientation)",
            )
        )
    identifier_side = side_from_identifier(patient_id)
    if identifier_side:
        convention = "CBIS-DDSM convention" if CBIS_DDSM_PATIENT_ID.match(patient_id) else "naming convention"
        sources.append((identifier_side, f"PatientID (0010,0020) {patient_id!r} ({convention})"))

    if not sources:
        if caller is None:
            raise InputError(
                path,
                "no laterality: none of ImageLaterality (0020,0062), Laterality (0020,0060), "
                "PatientOrientation (0020,0020) or PatientID gives L or R; "
                "load this file alone with laterality='L' or 'R'",
            )
        return caller, f"caller (laterality={caller!r})"
    value, source = sources[0]
    for other, other_source in sources[1:]:
        if other != value:
            notes.append(f"{path}: {other_source} says {other} but {source} says {value}; used {source}")
    if caller is not None and caller != value:
        raise InputError(path, f"laterality={caller!r} was given but the header says {value} ({source})")
    return value, source


def dicom_spacing(
    path: Path, dataset: Dataset, caller: Spacing | None, notes: list[str]
) -> tuple[Spacing, str]:
    """(row, col) mm and where it came from: ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor,
    PixelSpacing, NominalScannedPixelSpacing (digitized film), the caller."""
    imager = _spacing_pair(path, dataset, "ImagerPixelSpacing", notes)
    pixel = _spacing_pair(path, dataset, "PixelSpacing", notes)
    scanned = _spacing_pair(path, dataset, "NominalScannedPixelSpacing", notes)
    spacing: Spacing
    if imager is not None:
        factor = number(dataset, "EstimatedRadiographicMagnificationFactor")
        text = f"ImagerPixelSpacing (0018,1164) {format_spacing(imager)}"
        if factor is not None and 1.0 <= factor <= 3.0:
            spacing = (imager[0] / factor, imager[1] / factor)
            source = f"{text} / EstimatedRadiographicMagnificationFactor (0018,1114) {factor:g}"
        else:
            spacing = imager
            if factor is None:
                source = f"{text} (no EstimatedRadiographicMagnificationFactor: detector-plane spacing)"
            else:
                source = (
                    f"{text} (EstimatedRadiographicMagnificationFactor {factor:g} outside 1-3: not applied)"
                )
                notes.append(
                    f"{path}: EstimatedRadiographicMagnificationFactor (0018,1114) {factor:g} is implausible "
                    "(expected 1-3); the detector-plane ImagerPixelSpacing is used"
                )
        if pixel is not None:
            source += f" (PixelSpacing (0028,0030) {format_spacing(pixel)} also present, not used)"
    elif pixel is not None:
        spacing, source = pixel, f"PixelSpacing (0028,0030) {format_spacing(pixel)}"
    elif scanned is not None:
        spacing, source = scanned, f"NominalScannedPixelSpacing (0018,2010) {format_spacing(scanned)}"
    elif caller is not None:
        return caller, f"caller (spacing={format_spacing(caller)} mm)"
    else:
        resolution = number(dataset, "SpatialResolution")
        aside = (
            f" (SpatialResolution (0018,1050) {resolution:g} mm is the detector's limiting resolution, "
            "not the pixel spacing)"
            if resolution is not None
            else ""
        )
        raise InputError(
            path,
            "no pixel spacing: none of ImagerPixelSpacing (0018,1164), PixelSpacing (0028,0030), "
            f"NominalScannedPixelSpacing (0018,2010) is in the header{aside}; {spacing_hint()}",
        )
    check_spacing(path, spacing, source)
    warning = non_square_warning(path, spacing)
    if warning:
        notes.append(warning)
    if caller is not None and any(
        abs(c - s) > CALLER_SPACING_TOLERANCE * s for c, s in zip(caller, spacing, strict=True)
    ):
        notes.append(
            f"{path}: the caller's spacing {format_spacing(caller)} mm is ignored: the header gives "
            f"{format_spacing(spacing)} mm ({source})"
        )
    return spacing, source


def _spacing_pair(path: Path, dataset: Dataset, keyword: str, notes: list[str]) -> Spacing | None:
    if keyword not in dataset or dataset[keyword].value in (None, "", []):
        return None
    try:
        values = [float(v) for v in as_list(dataset[keyword].value)]
    except (TypeError, ValueError):
        notes.append(f"{path}: unreadable {keyword} {dataset[keyword].value!r} ignored")
        return None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        notes.append(f"{path}: {keyword} with {len(values)} values ignored (expected row\\column)")
        return None
    return values[0], values[1]
