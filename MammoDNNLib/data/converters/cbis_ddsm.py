"""CBIS-DDSM (Curated Breast Imaging Subset of DDSM, TCIA) to a manifest.

Reads the four case-description tables (``mass|calc_case_description_train|test_set.csv``) and, when given the
image root of a TCIA download, the full mammograms and ROI masks.

Quirks handled (see ``docs/data.md``):

- CRLF line ends, and a newline inside the quoted cropped-image/ROI path fields (the csv module with
  ``newline=""`` keeps quoted newlines; paths are stripped).
- The density column is ``breast_density`` in the mass tables and ``breast density`` in the calc tables.
- The cropped-image and ROI-mask file names are swapped between mass rows (crop ``000000.dcm``, mask
  ``000001.dcm``) and calc rows (the reverse), and 104 rows put crop and mask in different series folders; the
  TCIA download renames files to ``1-1.dcm``/``1-2.dcm`` anyway. The ROI mask is therefore found by pixel
  content: among all files of both series folders it is the one with the full image's size and binary pixels.
- The tables' paths are ``<subject>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>``; a TCIA (NBIA Data
  Retriever) download is ``CBIS-DDSM/<subject>/<date>-DDSM-<…>-<last 5 digits of the study
  UID>/<n>.000000-<series description>-<last 5 digits of the series UID>/1-1.dcm``. Both layouts are found.
- The same mammogram appears as a Mass and a Calc subject (and 31 patients have rows in both the training
  and the test tables): rows are grouped per patient into one study whose views carry every lesion of that
  image, and a study with any test row is a test study (never train on an image CBIS-DDSM tests on).
- Mass rows whose shape is only ARCHITECTURAL_DISTORTION are distortions; only ASYMMETRIC_BREAST_TISSUE or
  FOCAL_ASYMMETRIC_DENSITY, asymmetries. Descriptors map to the vocabulary with the most suspicious one of a
  combination (BI-RADS reports the most suspicious feature); LOBULATED is "oval" (BI-RADS 5th edition);
  benign-typical calcification types are kept only as raw text.
- BENIGN and BENIGN_WITHOUT_CALLBACK are benign; MALIGNANT malignant. Density 1-4 is A-D (0, in two rows, is
  unknown). The assessment is the lesion's BI-RADS.
- The DICOMs carry no pixel spacing; a nominal 0.05 mm (the DDSM digitizers sampled at 42-50 um) is written
  and marked as nominal.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...geometry import LesionMask
from ..manifest import Lesion, Manifest, StudyEntry, ViewEntry
from ._dicom import dicom_pixels, dicom_size

log = logging.getLogger(__name__)

TABLE_NAMES: tuple[str, ...] = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
NOMINAL_SPACING_MM = 0.05

MASS_COLUMNS = ("mass shape", "mass margins")
CALC_COLUMNS = ("calc type", "calc distribution")
COMMON_COLUMNS = (
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
)

PATHOLOGY_MAP = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}

# Vocabulary descriptors in decreasing order of suspicion, with the CBIS-DDSM words that map to each.
MASS_SHAPE = (("irregular", ("IRREGULAR",)), ("round", ("ROUND",)), ("oval", ("OVAL", "LOBULATED")))
MASS_MARGIN = (
    ("spiculated", ("SPICULATED",)),
    ("indistinct", ("ILL_DEFINED",)),
    ("microlobulated", ("MICROLOBULATED",)),
    ("obscured", ("OBSCURED",)),
    ("circumscribed", ("CIRCUMSCRIBED",)),
)
CALC_MORPHOLOGY = (
    ("fine_linear", ("FINE_LINEAR_BRANCHING",)),
    ("fine_pleomorphic", ("PLEOMORPHIC",)),
    ("amorphous", ("AMORPHOUS",)),
    ("punctate", ("PUNCTATE",)),
)
CALC_DISTRIBUTION = (
    ("segmental", ("SEGMENTAL",)),
    ("linear", ("LINEAR",)),
    ("grouped", ("CLUSTERED",)),
    ("regional", ("REGIONAL",)),
)
DISTORTION_SHAPES = {"ARCHITECTURAL_DISTORTION"}
ASYMMETRY_SHAPES = {"ASYMMETRIC_BREAST_TISSUE", "FOCAL_ASYMMETRIC_DENSITY"}


@dataclass
class CbisRow:
    """One row of a case-description table."""

    table: str  # file name
    line: int  # first line of the record in the file
    patient_id: str
    density: int
    side: str  # "LEFT" | "RIGHT"
    view: str  # "CC" | "MLO"
    abnormality_id: int
    abnormality_type: str  # "mass" | "calcification"
    descriptors: tuple[str, str]  # (shape, margins) or (calc type, calc distribution), raw
    assessment: int
    pathology: str  # raw
    subtlety: int
    image_path: str
    cropped_path: str
    roi_path: str

    @property
    def split(self) -> str:
        """``train`` / ``test`` from the subject name (``Mass-Training_…``, ``Calc-Test_…``)."""
        return "test" if self.image_path.split("_", 1)[0].endswith("-Test") else "train"

    @property
    def view_key(self) -> str:
        return f"{self.side[0]}-{self.view}"


def read_case_table(path: str | os.PathLike) -> list[CbisRow]:
    """Parse one case-description CSV, with its quirks (see the module docstring)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise InputError(path, "empty file") from None
            header = [name.strip() for name in header]
            # The calc tables spell the density column with a space.
            header = ["breast_density" if name == "breast density" else name for name in header]
            kind_columns = MASS_COLUMNS if "mass shape" in header else CALC_COLUMNS
            missing = [c for c in COMMON_COLUMNS + kind_columns if c not in header]
            if missing:
                raise InputError(
                    path, f"not a CBIS-DDSM case-description table: missing column(s) {', '.join(missing)}"
                )
            index = {name: i for i, name in enumerate(header)}
            rows = []
            line = reader.line_num + 1
            for record in reader:
                start, line = line, reader.line_num + 1
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    raise InputError(
                        path, f"line {start}: {len(record)} fields, the header has {len(header)}"
                    )
                rows.append(
                    _row(path, start, {name: record[i].strip() for name, i in index.items()}, kind_columns)
                )
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    return rows


def _row(path: Path, line: int, cells: dict[str, str], kind_columns: tuple[str, str]) -> CbisRow:
    def integer(name: str) -> int:
        value = cells[name]
        if not re.fullmatch(r"\d+", value):
            raise InputError(path, f"line {line}: {name} {value!r} is not a whole number")
        return int(value)

    side = cells["left or right breast"].upper()
    view = cells["image view"].upper()
    if side not in ("LEFT", "RIGHT"):
        raise InputError(path, f"line {line}: breast side {side!r} is not LEFT or RIGHT")
    if view not in ("CC", "MLO"):
        raise InputError(path, f"line {line}: image view {view!r} is not CC or MLO")
    kind = cells["abnormality type"].lower()
    if kind not in ("mass", "calcification"):
        raise InputError(path, f"line {line}: abnormality type {kind!r} is not mass or calcification")
    pathology = cells["pathology"].upper()
    if pathology not in PATHOLOGY_MAP:
        raise InputError(
            path, f"line {line}: pathology {pathology!r} is not one of {', '.join(PATHOLOGY_MAP)}"
        )
    paths = [
        cells[name].replace("\r", "").replace("\n", "").strip()
        for name in ("image file path", "cropped image file path", "ROI mask file path")
    ]
    for text in paths:
        if len(text.split("/")) != 4:
            raise InputError(path, f"line {line}: {text!r} is not <subject>/<study UID>/<series UID>/<file>")
    return CbisRow(
        table=path.name,
        line=line,
        patient_id=cells["patient_id"],
        density=integer("breast_density"),
        side=side,
        view=view,
        abnormality_id=integer("abnormality id"),
        abnormality_type=kind,
        descriptors=(cells[kind_columns[0]], cells[kind_columns[1]]),
        assessment=integer("assessment"),
        pathology=pathology,
        subtlety=integer("subtlety"),
        image_path=paths[0],
        cropped_path=paths[1],
        roi_path=paths[2],
    )


# ------------------------------------------------------------------------------------------------------------
# The image root
# ------------------------------------------------------------------------------------------------------------


class TciaImageRoot:
    """Finds the DICOM files a table path names in a local TCIA download.

    Accepts the folder that holds the subject folders (``Mass-Training_P_00001_LEFT_CC``, ...), its parent
    ``CBIS-DDSM`` folder, or a folder one level above that (NBIA's ``manifest-…/CBIS-DDSM``).
    """

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "no such image folder")
        self.root = self._subject_folder(root)
        self._subjects = {entry.name: Path(entry.path) for entry in os.scandir(self.root) if entry.is_dir()}

    @staticmethod
    def _subject_folder(root: Path) -> Path:
        candidates = [root, root / "CBIS-DDSM"] + [
            p / "CBIS-DDSM" for p in sorted(root.iterdir()) if p.is_dir()
        ]
        for candidate in candidates:
            if candidate.is_dir() and any(
                re.match(r"(Mass|Calc)-(Training|Test)_P_\d+", e.name)
                for e in os.scandir(candidate)
                if e.is_dir()
            ):
                return candidate
        raise InputError(
            root,
            "no CBIS-DDSM subject folders (Mass-Training_P_…, Calc-Test_P_…) here, in "
            "CBIS-DDSM/ or in */CBIS-DDSM/",
        )

    def series_files(self, table_path: str) -> list[Path]:
        """All DICOM files of the series a table path names (empty when it is not downloaded)."""
        subject, study_uid, series_uid, _ = table_path.split("/")
        subject_dir = self._subjects.get(subject)
        if subject_dir is None:
            return []
        files: list[Path] = []
        for study_dir in _matching_dirs(subject_dir, study_uid):
            for series_dir in _matching_dirs(study_dir, series_uid):
                files.extend(sorted(p for p in series_dir.iterdir() if p.suffix.lower() == ".dcm"))
        return files

    def image_file(self, table_path: str) -> Path | None:
        """The full mammogram a table path names (the series holds exactly that one image)."""
        files = self.series_files(table_path)
        if not files:
            return None
        name = table_path.rsplit("/", 1)[1]
        for preferred in (name, "1-1.dcm"):
            for candidate in files:
                if candidate.name == preferred:
                    return candidate
        return files[0]


def _matching_dirs(parent: Path, uid: str) -> list[Path]:
    """Children named by the UID itself (the tables' layout) or ending in ``-<last 5 digits>`` (TCIA's)."""
    exact = parent / uid
    if exact.is_dir():
        return [exact]
    suffix = "-" + uid[-5:]
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name.endswith(suffix))


def find_roi_mask(candidates: list[Path], image_size: tuple[int, int]) -> tuple[Path, LesionMask] | None:
    """The ROI mask among ``candidates``: the file of the full image's size whose pixels are binary.

    Returns the file and the mask (cropped to its bounding box), or None when no candidate qualifies.
    """
    found = []
    for candidate in dict.fromkeys(candidates):  # unique, in order
        if dicom_size(candidate) != image_size:
            continue  # the cropped lesion image is much smaller than the mammogram
        pixels = dicom_pixels(candidate)
        nonzero = pixels[pixels != 0]
        if nonzero.size and nonzero.min() == nonzero.max():
            found.append((candidate, LesionMask.from_full(pixels != 0)))
    if len(found) > 1:
        raise InputError(
            found[0][0],
            "more than one binary full-size image among the lesion's ROI files: "
            + ", ".join(str(f) for f, _ in found),
        )
    return found[0] if found else None


# ------------------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _ViewBuild:
    key: str
    image: Path | None = None
    size: tuple[int, int] | None = None
    series: list[str] = field(default_factory=list)  # subject folders showing this view
    table_paths: list[str] = field(default_factory=list)
    density: int = 0
    rows: list[CbisRow] = field(default_factory=list)


def convert_cbis_ddsm(
    src: str | os.PathLike | list[str | os.PathLike],
    *,
    images: str | os.PathLike | None = None,
    spacing_mm: float | None = NOMINAL_SPACING_MM,
) -> Manifest:
    """CBIS-DDSM case-description tables (a folder holding any of the four, or a list of CSV files) to a
    manifest; with ``images`` (the TCIA download), boxes come from the ROI masks."""
    tables = _find_tables(src)
    rows: list[CbisRow] = []
    notes = []
    for table in tables:
        table_rows = read_case_table(table)
        notes.append(
            f"{table.name}: {len(table_rows)} rows, {len({r.patient_id for r in table_rows})} patients"
        )
        rows.extend(table_rows)
    root = TciaImageRoot(images) if images is not None else None
    if root is None:
        notes.append(
            "no image root: views have no local image and lesions no box (image-level entries only); "
            "pass the TCIA download as images=ROOT for boxes from the ROI masks"
        )

    patients: dict[str, dict[str, _ViewBuild]] = defaultdict(dict)
    for row in rows:
        build = patients[row.patient_id].setdefault(row.view_key, _ViewBuild(row.view_key))
        build.rows.append(row)
        subject = row.image_path.split("/", 1)[0]
        if subject not in build.series:
            build.series.append(subject)
            build.table_paths.append(row.image_path)
        build.density = build.density or row.density

    counters: Counter = Counter()
    studies = []
    for patient_id in sorted(patients):
        views_build = patients[patient_id]
        study_rows = [r for b in views_build.values() for r in b.rows]
        split = "test" if any(r.split == "test" for r in study_rows) else "train"
        if split == "test" and any(r.split == "train" for r in study_rows):
            counters["patients in both training and test tables"] += 1
        links = _links(patient_id, views_build)
        views = {}
        for key, build in views_build.items():
            views[key] = _view(build, root, links, spacing_mm, counters)
        studies.append(
            StudyEntry(
                id=f"cbis-ddsm-{patient_id}",
                source="cbis-ddsm",
                split=split,
                labelled=True,
                views=views,
                patient_id=patient_id,
                metadata={"tables": sorted({r.table for r in study_rows})},
            )
        )
    for what, count in sorted(counters.items()):
        notes.append(f"{count} {what}")
    if spacing_mm is not None:
        notes.append(
            f"the DICOMs carry no pixel spacing: a nominal {spacing_mm} mm is written "
            "(extra.spacing_source says so on every view)"
        )
    log.debug("CBIS-DDSM: %d rows, %d studies", len(rows), len(studies))
    return Manifest(studies, description="CBIS-DDSM (Lee et al. 2017, TCIA, CC BY 3.0)", notes=notes)


def _find_tables(src: str | os.PathLike | list) -> list[Path]:
    if isinstance(src, (list, tuple)):
        paths = [Path(p) for p in src]
    else:
        src = Path(src)
        if src.is_dir():
            paths = [src / name for name in TABLE_NAMES if (src / name).is_file()]
            if not paths:
                raise InputError(
                    src, f"none of the case-description tables ({', '.join(TABLE_NAMES)}) is here"
                )
        else:
            paths = [src]
    for path in paths:
        if not path.is_file():
            raise InputError(path, "no such file")
    return paths


def _lesion_type(row: CbisRow) -> str:
    if row.abnormality_type == "calcification":
        return "calcification"
    parts = set(row.descriptors[0].split("-"))
    if parts and parts <= DISTORTION_SHAPES:
        return "distortion"
    if parts and parts <= ASYMMETRY_SHAPES:
        return "asymmetry"
    return "mass"


def _most_suspicious(raw: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    parts = set(raw.upper().split("-"))
    for descriptor, words in table:
        if parts & set(words):
            return descriptor
    return None


def _morphology(row: CbisRow, lesion_type: str) -> dict[str, str]:
    first, second = row.descriptors
    pairs = []
    if lesion_type == "mass":
        pairs = [
            ("mass_shape", _most_suspicious(first, MASS_SHAPE)),
            ("mass_margin", _most_suspicious(second, MASS_MARGIN)),
        ]
    elif lesion_type == "calcification":
        pairs = [
            ("calc_morphology", _most_suspicious(first, CALC_MORPHOLOGY)),
            ("calc_distribution", _most_suspicious(second, CALC_DISTRIBUTION)),
        ]
    return {group: value for group, value in pairs if value is not None}


def _links(patient_id: str, views: dict[str, _ViewBuild]) -> dict[tuple[str, int, str], str]:
    """Lesion ids: shared by the CC and MLO rows of one breast when the link is unambiguous.

    CBIS-DDSM numbers abnormalities per image, not per lesion. A CC row and an MLO row of one breast are taken
    as one lesion when each is the only lesion of its type in its view and both have the same pathology and
    assessment; every other row gets an id of its own.
    """
    ids: dict[tuple[str, int, str], str] = {}
    for side in ("R", "L"):
        cc, mlo = views.get(f"{side}-CC"), views.get(f"{side}-MLO")
        by_type: dict[str, dict[str, list[CbisRow]]] = defaultdict(lambda: defaultdict(list))
        for build in (cc, mlo):
            if build is None:
                continue
            for row in build.rows:
                by_type[_lesion_type(row)][build.key].append(row)
        for lesion_type, per_view in by_type.items():
            cc_rows = per_view.get(f"{side}-CC", [])
            mlo_rows = per_view.get(f"{side}-MLO", [])
            if (
                len(cc_rows) == 1
                and len(mlo_rows) == 1
                and cc_rows[0].pathology == mlo_rows[0].pathology
                and cc_rows[0].assessment == mlo_rows[0].assessment
            ):
                shared = f"{patient_id}-{side}-{lesion_type}"
                for row in (cc_rows[0], mlo_rows[0]):
                    ids[(row.view_key, row.abnormality_id, row.abnormality_type)] = shared
            for row in cc_rows + mlo_rows:
                ids.setdefault(
                    (row.view_key, row.abnormality_id, row.abnormality_type),
                    f"{patient_id}-{row.view_key}-{row.abnormality_type}-{row.abnormality_id}",
                )
    return ids


def _view(
    build: _ViewBuild, root: TciaImageRoot | None, links: dict, spacing_mm: float | None, counters: Counter
) -> ViewEntry:
    extra: dict = {"series": build.series, "tcia_paths": build.table_paths}
    if spacing_mm is not None:
        extra["spacing_source"] = (
            "nominal: CBIS-DDSM DICOMs carry no pixel spacing (DDSM digitizers: 42-50 um)"
        )
    series_size: dict[str, tuple[int, int] | None] = {}
    if root is not None:
        for subject, table_path in zip(build.series, build.table_paths, strict=True):
            image = root.image_file(table_path)
            if image is None:
                series_size[subject] = None
                continue
            series_size[subject] = dicom_size(image)
            if build.image is None:
                build.image, build.size = image, series_size[subject]
        if build.image is None:
            counters["views not found under the image root (lesions without box)"] += 1
    lesions = []
    for row in sorted(build.rows, key=lambda r: (r.abnormality_type, r.abnormality_id)):
        lesion_type = _lesion_type(row)
        lesion_extra: dict = {
            "abnormality_id": row.abnormality_id,
            "abnormality_type": row.abnormality_type,
            ("mass_shape" if row.abnormality_type == "mass" else "calc_type"): row.descriptors[0],
            ("mass_margins" if row.abnormality_type == "mass" else "calc_distribution"): row.descriptors[1],
            "pathology": row.pathology,
            "subtlety": row.subtlety,
            "roi_series": row.roi_path.split("/", 1)[0],
            "table": row.table,
        }
        box = mask_file = None
        subject = row.image_path.split("/", 1)[0]
        if root is not None and build.image is not None:
            if series_size.get(subject) != build.size:
                counters["lesions drawn on another copy of the image with a different size (no box)"] += 1
                lesion_extra["note"] = f"its ROI belongs to {subject}, whose image differs from the view's"
            else:
                candidates = root.series_files(row.roi_path) + root.series_files(row.cropped_path)
                found = find_roi_mask(candidates, build.size) if candidates else None
                if found is None:
                    counters["lesions whose ROI mask was not found (no box)"] += 1
                    lesion_extra["note"] = "ROI mask not found among the downloaded ROI/crop files"
                elif found[1].empty:
                    counters["lesions with an empty ROI mask (no box)"] += 1
                    lesion_extra["note"] = f"ROI mask {found[0].name} is empty"
                else:
                    mask_file, box = found[0], found[1].box
        lesions.append(
            Lesion(
                id=links[(row.view_key, row.abnormality_id, row.abnormality_type)],
                type=lesion_type,
                box=box,
                mask=mask_file,
                pathology=PATHOLOGY_MAP[row.pathology],
                morphology=_morphology(row, lesion_type),
                birads=str(row.assessment) if 0 <= row.assessment <= 6 else None,
                extra=lesion_extra,
            )
        )
    if len(lesions) != len({lesion.id for lesion in lesions}):
        raise InputError(
            build.rows[0].table,
            f"patient {build.rows[0].patient_id} {build.key}: an abnormality id repeats within one image",
        )
    density = "ABCD"[build.density - 1] if 1 <= build.density <= 4 else None
    if density is None:
        counters["views with breast density 0 (unknown)"] += 1
    return ViewEntry(
        key=build.key,
        image=build.image,
        spacing=None if spacing_mm is None else (spacing_mm, spacing_mm),
        size=build.size,
        density=density,
        source_id=build.series[0],
        lesions=lesions,
        extra=extra,
    )
