"""INbreast (Moreira et al. 2012) to a manifest.

The release folder ("INbreast Release 1.0") holds ``INbreast.csv`` (semicolon-separated: ``Patient ID;Patient
age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads``, the first two columns "removed"), ``AllDICOMs/``
(``<File Name>_<patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm``) and ``AllXML/<File Name>.xml``: OsiriX ROI files,
XML property lists ``{Images: [{ImageIndex, NumberOfROIs, ROIs: [{Name, NumberOfPoints, Point_px: ["(x, y)",
...], Point_mm, Area, Center, ...}]}]}``.

Mapping (see ``docs/data.md``): ROI ``Mass`` -> mass; ``Cluster`` (a calcification cluster) -> calcification;
``Distortion`` -> distortion; ``Asymmetry`` (also spelt ``Assymetry``) -> asymmetry. Individual
``Calcification`` ROIs (mostly single points; INbreast marks thousands) are not detection targets by default -
the detector's calcification class is the cluster - and are counted in the notes; ``calcifications="all"``
makes each one a calcification lesion (points padded to ``point_box_px``). ``Spiculated Region`` and other
names are counted and skipped. Boxes are the ROI polygon's extent (clipped to the image), outlines the polygon
itself. ACR 1-4 is taken as density A-D, Bi-Rads (1-6, 4a-4c) as the view's BI-RADS. Studies are one patient
(the hash in the DICOM name) on one acquisition date; INbreast gives no pathology per lesion and no CC-MLO
links.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import plistlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...errors import InputError
from ..manifest import Lesion, Manifest, StudyEntry, ViewEntry
from ._dicom import dicom_size

log = logging.getLogger(__name__)

DICOM_NAME = re.compile(r"^(\d+)_([0-9A-Za-z]+)_MG_([LR])_(CC|ML|MLO)_ANON\.dcm$", re.IGNORECASE)
POINT = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)")

ROI_TYPES: dict[str, str] = {
    "mass": "mass",
    "cluster": "calcification",
    "calcification cluster": "calcification",
    "distortion": "distortion",
    "architectural distortion": "distortion",
    "asymmetry": "asymmetry",
    "assymetry": "asymmetry",
    "asymetry": "asymmetry",
}
INDIVIDUAL_CALCIFICATION = {"calcification", "calcifications"}
CSV_COLUMNS = ("Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads")

CalcificationPolicy = Literal["clusters", "all"]


@dataclass
class InbreastImage:
    """One row of INbreast.csv with its DICOM file."""

    file_name: str
    laterality: str
    view: str
    date: str
    acr: str | None
    birads: str | None
    dicom: Path | None
    patient: str | None


@dataclass
class InbreastRoi:
    name: str
    points: list[tuple[float, float]]
    index: int


def read_inbreast_csv(path: str | os.PathLike) -> tuple[list[InbreastImage], list[str]]:
    """Rows of ``INbreast.csv`` (semicolon-separated); returns them and notes about skipped rows."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # exported from Excel on Windows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(path, "empty file") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(
            path, f"missing column(s) {', '.join(missing)} (is it semicolon-separated INbreast.csv?)"
        )
    col = {name: header.index(name) for name in CSV_COLUMNS}
    rows, notes = [], []
    for line, record in enumerate(reader, 2):
        cells = [c.strip() for c in record] + [""] * (len(header) - len(record))
        file_name = cells[col["File Name"]]
        if not any(cells):
            continue
        if not re.fullmatch(r"\d+", file_name):
            notes.append(f"INbreast.csv line {line}: no image file name ({';'.join(cells)!r}), skipped")
            continue
        laterality, view = cells[col["Laterality"]].upper(), cells[col["View"]].upper()
        if laterality not in ("L", "R") or view not in ("CC", "MLO"):
            raise InputError(
                path, f"line {line}: laterality/view {laterality!r}/{view!r} is not L|R and CC|MLO"
            )
        acr = cells[col["ACR"]] or None
        if acr is not None and acr not in ("1", "2", "3", "4"):
            raise InputError(path, f"line {line}: ACR {acr!r} is not 1-4")
        birads_text = cells[col["Bi-Rads"]].upper()
        if birads_text and not re.fullmatch(r"[0-6]|4[ABC]", birads_text):
            raise InputError(path, f"line {line}: Bi-Rads {birads_text!r} is not 0-6 or 4a-4c")
        rows.append(
            InbreastImage(
                file_name,
                laterality,
                view,
                cells[col["Acquisition date"]],
                acr,
                birads_text or None,
                None,
                None,
            )
        )
    return rows, notes


def read_inbreast_xml(path: str | os.PathLike) -> list[InbreastRoi]:
    """The ROIs of one OsiriX XML property list (``Point_px`` in image pixels)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = plistlib.load(handle, fmt=plistlib.FMT_XML)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # expat / plistlib errors
        raise InputError(path, f"not an OsiriX XML property list: {exc}") from None
    images = document.get("Images") if isinstance(document, dict) else None
    if not isinstance(images, list):
        raise InputError(path, "no 'Images' list: not an INbreast ROI file")
    rois = []
    for image in images:
        for position, roi in enumerate(image.get("ROIs") or []):
            if not isinstance(roi, dict) or "Point_px" not in roi:
                raise InputError(path, f"ROI {position} has no Point_px list")
            points = []
            for text in roi["Point_px"]:
                match = POINT.match(str(text).strip())
                if not match:
                    raise InputError(path, f"ROI {position}: point {text!r} is not '(x, y)'")
                points.append((float(match.group(1)), float(match.group(2))))
            declared = roi.get("NumberOfPoints")
            if isinstance(declared, int) and declared != len(points):
                raise InputError(path, f"ROI {position}: NumberOfPoints {declared} but {len(points)} points")
            rois.append(
                InbreastRoi(str(roi.get("Name", "")).strip(), points, int(roi.get("IndexInImage", position)))
            )
    return rois


def convert_inbreast(
    src: str | os.PathLike,
    *,
    calcifications: CalcificationPolicy = "clusters",
    point_box_px: float = 14.0,
) -> Manifest:
    """INbreast release folder (holding INbreast.csv, AllDICOMs/, AllXML/) to a manifest."""
    src = Path(src)
    table = src / "INbreast.csv" if src.is_dir() else src
    folder = table.parent
    if not table.is_file():
        raise InputError(table, "no such file (expected the INbreast release folder with INbreast.csv)")
    if calcifications not in ("clusters", "all"):
        raise ValueError(f"calcifications must be 'clusters' or 'all', got {calcifications!r}")
    rows, notes = read_inbreast_csv(table)
    dicoms = _index_dicoms(folder / "AllDICOMs")
    counters: Counter = Counter()
    skipped_names: Counter = Counter()

    groups: dict[tuple[str, str], dict[str, ViewEntry]] = {}
    study_ids: dict[tuple[str, str], str] = {}
    for row in rows:
        entry = dicoms.get(row.file_name)
        if entry is None:
            counters["images without a DICOM file in AllDICOMs (view image null)"] += 1
        else:
            row.dicom, row.patient, name_side, name_view = entry
            if (name_side, name_view) != (row.laterality, row.view):
                counters[
                    "images whose file name and INbreast.csv disagree on laterality/view (csv used)"
                ] += 1
        size = dicom_size(row.dicom) if row.dicom is not None else None
        lesions = []
        xml = folder / "AllXML" / f"{row.file_name}.xml"
        if xml.is_file():
            for roi in read_inbreast_xml(xml):
                lesion = _lesion(
                    row.file_name, roi, size, calcifications, point_box_px, counters, skipped_names
                )
                if lesion is not None:
                    lesions.append(lesion)
        key = f"{row.laterality}-{row.view}"
        view = ViewEntry(
            key=key,
            image=row.dicom,
            size=size,
            density="ABCD"[int(row.acr) - 1] if row.acr else None,
            birads=row.birads,
            source_id=row.file_name,
            lesions=lesions,
            extra={"acr": row.acr, "acquisition_date": row.date},
        )
        patient = row.patient or f"file-{row.file_name}"
        group = (patient, row.date)
        while key in groups.get(group, {}):  # a second image of one view on one date: a study of its own
            counters["second images of one view on one date (own study)"] += 1
            group = (group[0], group[1] + "+")
        groups.setdefault(group, {})[key] = view
        study_ids[group] = f"inbreast-{patient}-{group[1].replace('+', 'b') or 'nodate'}"

    studies = [
        StudyEntry(
            id=study_ids[group],
            source="inbreast",
            split=None,
            labelled=True,
            views=views,
            patient_id=group[0],
            metadata={"acquisition_date": group[1].rstrip("+")},
        )
        for group, views in sorted(groups.items())
    ]
    notes.insert(
        0,
        f"INbreast.csv: {len(rows)} images in {len(studies)} studies; split unassigned (INbreast has "
        "no official split)",
    )
    notes += [f"{count} {what}" for what, count in sorted(counters.items())]
    if skipped_names:
        notes.append(
            "ROIs not among the four study features, skipped: "
            + ", ".join(f"{name!r} {count}" for name, count in sorted(skipped_names.items()))
        )
    log.debug("INbreast: %d images, %d studies", len(rows), len(studies))
    return Manifest(studies, description="INbreast (Moreira et al. 2012)", notes=notes)


def _lesion(
    file_name: str,
    roi: InbreastRoi,
    size: tuple[int, int] | None,
    policy: CalcificationPolicy,
    point_box_px: float,
    counters: Counter,
    skipped: Counter,
) -> Lesion | None:
    name = roi.name.lower()
    if name in INDIVIDUAL_CALCIFICATION:
        if policy == "clusters":
            counters[
                "individual calcification ROIs (not detection targets; calcifications='all' keeps them)"
            ] += 1
            return None
        lesion_type = "calcification"
    elif name in ROI_TYPES:
        lesion_type = ROI_TYPES[name]
    else:
        skipped[roi.name or "(unnamed)"] += 1
        return None
    if not roi.points:
        counters["ROIs without points (skipped)"] += 1
        return None
    xs = [p[0] for p in roi.points]
    ys = [p[1] for p in roi.points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    # Points and two-point ROIs have no extent: pad them to a small square around their centre.
    minimum = point_box_px if len(roi.points) < 3 else 1.0
    if x1 - x0 < minimum:
        centre = (x0 + x1) / 2
        x0, x1 = centre - minimum / 2, centre + minimum / 2
    if y1 - y0 < minimum:
        centre = (y0 + y1) / 2
        y0, y1 = centre - minimum / 2, centre + minimum / 2
    if size is not None:
        width, height = size
        x0, x1 = max(x0, 0.0), min(x1, float(width))
        y0, y1 = max(y0, 0.0), min(y1, float(height))
        if x1 <= x0 or y1 <= y0:
            counters["ROIs outside their image (skipped)"] += 1
            return None
    return Lesion(
        id=f"{file_name}-{roi.index}",
        type=lesion_type,
        box=(x0, y0, x1, y1),
        outline=list(roi.points) if len(roi.points) >= 3 else None,
        extra={"roi_name": roi.name},
    )


def _index_dicoms(folder: Path) -> dict[str, tuple[Path, str, str, str]]:
    """File Name -> (path, patient hash, laterality, view) from the AllDICOMs names."""
    index: dict[str, tuple[Path, str, str, str]] = {}
    if not folder.is_dir():
        return index
    for path in sorted(folder.iterdir()):
        match = DICOM_NAME.match(path.name)
        if match:
            view = "MLO" if match.group(4).upper() in ("ML", "MLO") else "CC"
            index[match.group(1)] = (
                Path(os.path.abspath(path)),
                match.group(2),
                match.group(3).upper(),
                view,
            )
    return index
