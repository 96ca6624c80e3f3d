"""VinDr-Mammo (PhysioNet, v1.0.0) to a manifest.

Reads ``finding_annotations.csv`` (one row per finding box, or one ``['No Finding']`` row per image without a
finding) and, when present, ``breast-level_annotations.csv`` (one row per image); images are
``images/<study_id>/<image_id>.dicom``.

Columns: study_id, series_id, image_id, laterality (L/R), view_position (CC/MLO), height, width, breast_birads
("BI-RADS 1".."BI-RADS 5"), breast_density ("DENSITY A".."DENSITY D"), finding_categories (a Python list
literal, e.g. ``['Mass']`` or ``"['Mass', 'Suspicious Calcification']"``), finding_birads, xmin, ymin, xmax,
ymax (float pixels, empty for no finding), split ("training"/"test").

Mapping: Mass -> mass, Suspicious Calcification -> calcification, Asymmetry / Focal Asymmetry / Global
Asymmetry -> asymmetry, Architectural Distortion -> distortion. A box listing several of these becomes one
lesion per type with the same box. Other categories (Suspicious Lymph Node, Skin Thickening, Skin Retraction,
Nipple Retraction) are not among the four study features: counted in the notes and skipped (their image stays
a negative for the four types). Boxes are clipped to the image (a few start at negative x). VinDr gives no
pathology and no CC-MLO links.
"""

from __future__ import annotations

import ast
import csv
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ..manifest import Lesion, Manifest, StudyEntry, ViewEntry

log = logging.getLogger(__name__)

CATEGORY_MAP: dict[str, str] = {
    "Mass": "mass",
    "Suspicious Calcification": "calcification",
    "Asymmetry": "asymmetry",
    "Focal Asymmetry": "asymmetry",
    "Global Asymmetry": "asymmetry",
    "Architectural Distortion": "distortion",
}
NO_FINDING = "No Finding"
SPLIT_MAP = {"training": "train", "test": "test"}
REQUIRED_COLUMNS = (
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
)


@dataclass
class _Image:
    study_id: str
    image_id: str
    key: str
    size: tuple[int, int]
    split: str
    birads: str | None
    density: str | None
    series_id: str
    lesions: list[Lesion] = field(default_factory=list)


def parse_categories(text: str) -> list[str]:
    """``"['Mass', 'Suspicious Calcification']"`` -> ``["Mass", "Suspicious Calcification"]`` (a literal,
    never
    evaluated as code)."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"finding_categories {text!r} is not a list literal") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"finding_categories {text!r} is not a list of names")
    return [v.strip() for v in value]


def _birads(text: str) -> str | None:
    match = re.fullmatch(r"(?:BI-RADS\s*)?([0-6])([ABCabc]?)", text.strip())
    return (match.group(1) + match.group(2).upper()) if match else None


def _density(text: str) -> str | None:
    match = re.fullmatch(r"(?:DENSITY\s*)?([ABCD])", text.strip().upper())
    return match.group(1) if match else None


def convert_vindr(src: str | os.PathLike, *, images: str | os.PathLike | None = None) -> Manifest:
    """VinDr-Mammo to a manifest. ``src``: the release folder (or its ``finding_annotations.csv``);
    ``images``: the image folder (default ``<src>/images``)."""
    src = Path(src)
    table = src / "finding_annotations.csv" if src.is_dir() else src
    if not table.is_file():
        raise InputError(table, "no such file (expected VinDr-Mammo's finding_annotations.csv)")
    folder = table.parent
    image_dir = Path(images) if images is not None else folder / "images"
    counters: Counter = Counter()
    skipped_categories: Counter = Counter()
    found: dict[str, _Image] = {}

    with _open_table(table) as reader:
        for line, row in reader:
            image = _image_of(table, line, row, found)
            categories = _categories(table, line, row["finding_categories"])
            coordinates = [row[k].strip() for k in ("xmin", "ymin", "xmax", "ymax")]
            mapped = [CATEGORY_MAP[c] for c in categories if c in CATEGORY_MAP]
            for category in categories:
                if category not in CATEGORY_MAP and category != NO_FINDING:
                    skipped_categories[category] += 1
            if not mapped:
                continue
            if not all(coordinates):
                counters["findings of the four types without a box (skipped)"] += 1
                continue
            try:
                x0, y0, x1, y1 = (float(v) for v in coordinates)
            except ValueError:
                raise InputError(table, f"line {line}: box {coordinates} is not four numbers") from None
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                raise InputError(table, f"line {line}: box {coordinates} is not finite")
            width, height = image.size
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                counters["boxes clipped to the image"] += 1
            x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
            y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
            if x1 <= x0 or y1 <= y0:
                counters["boxes empty after clipping to the image (skipped)"] += 1
                continue
            for lesion_type in dict.fromkeys(mapped):
                image.lesions.append(
                    Lesion(
                        id=f"{image.image_id}-{len(image.lesions) + 1}",
                        type=lesion_type,
                        box=(x0, y0, x1, y1),
                        birads=_birads(row["finding_birads"] or ""),
                        extra={"finding_categories": categories, "csv_line": line},
                    )
                )

    breast_level = folder / "breast-level_annotations.csv"
    if breast_level.is_file():
        with _open_table(
            breast_level,
            required=(
                "study_id",
                "image_id",
                "laterality",
                "view_position",
                "height",
                "width",
                "breast_birads",
                "breast_density",
                "split",
            ),
        ) as reader:
            for line, row in reader:
                if row["image_id"].strip() not in found:
                    counters["images listed only in breast-level_annotations.csv"] += 1
                    _image_of(breast_level, line, row, found)

    studies_views: dict[str, dict[str, ViewEntry]] = {}
    study_split: dict[str, str] = {}
    for image in found.values():
        path = image_dir / image.study_id / f"{image.image_id}.dicom"
        if not path.is_file():
            counters["images not found locally (view image null)"] += 1
            path = None
        views = studies_views.setdefault(image.study_id, {})
        if image.key in views:
            counters["second images of one view in a study (dropped)"] += 1
            continue
        study_split[image.study_id] = image.split
        views[image.key] = ViewEntry(
            key=image.key,
            image=path,
            size=image.size,
            density=image.density,
            birads=image.birads,
            source_id=image.image_id,
            lesions=image.lesions,
            extra={"series_id": image.series_id},
        )

    studies = [
        StudyEntry(
            id=f"vindr-{study_id}",
            source="vindr",
            split=study_split[study_id],
            labelled=True,
            views=views,
            metadata={"study_id": study_id},
        )
        for study_id, views in sorted(studies_views.items())
    ]
    notes = [f"{table.name}: {len(found)} images in {len(studies)} studies"]
    notes += [f"{count} {what}" for what, count in sorted(counters.items())]
    if skipped_categories:
        notes.append(
            "finding categories outside the four study features, skipped: "
            + ", ".join(f"{name} {count}" for name, count in sorted(skipped_categories.items()))
        )
    log.debug("VinDr-Mammo: %d images, %d studies", len(found), len(studies))
    return Manifest(studies, description="VinDr-Mammo (Nguyen et al. 2023, PhysioNet)", notes=notes)


class _open_table:
    """``with _open_table(path) as reader: for line, row in reader`` — checked columns, stripped header."""

    def __init__(self, path: Path, required: tuple[str, ...] = REQUIRED_COLUMNS):
        self.path = path
        self.required = required

    def __enter__(self):
        try:
            self.handle = self.path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror or exc}") from None
        reader = csv.DictReader(self.handle)
        reader.fieldnames = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in self.required if c not in reader.fieldnames]
        if missing:
            self.handle.close()
            raise InputError(self.path, f"missing column(s) {', '.join(missing)}")
        return ((reader.line_num, {k: (v or "") for k, v in row.items()}) for row in reader)

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _categories(table: Path, line: int, text: str) -> list[str]:
    try:
        return parse_categories(text)
    except ValueError as exc:
        raise InputError(table, f"line {line}: {exc}") from None


def _image_of(table: Path, line: int, row: dict[str, str], found: dict[str, _Image]) -> _Image:
    image_id = row["image_id"].strip()
    if image_id in found:
        return found[image_id]
    laterality = row["laterality"].strip().upper()
    view = row["view_position"].strip().upper()
    if laterality not in ("L", "R") or view not in ("CC", "MLO"):
        raise InputError(table, f"line {line}: laterality/view {laterality!r}/{view!r} is not L|R and CC|MLO")
    try:
        size = (int(float(row["width"])), int(float(row["height"])))
    except ValueError:
        raise InputError(
            table, f"line {line}: width/height {row['width']!r}/{row['height']!r} are not numbers"
        ) from None
    if size[0] <= 0 or size[1] <= 0:
        raise InputError(table, f"line {line}: image size {size} is not positive")
    split = SPLIT_MAP.get(row["split"].strip().lower())
    if split is None:
        raise InputError(table, f"line {line}: split {row['split']!r} is not 'training' or 'test'")
    image = _Image(
        study_id=row["study_id"].strip(),
        image_id=image_id,
        key=f"{laterality}-{view}",
        size=size,
        split=split,
        birads=_birads(row["breast_birads"]),
        density=_density(row["breast_density"]),
        series_id=row.get("series_id", "").strip(),
    )
    found[image_id] = image
    return image
