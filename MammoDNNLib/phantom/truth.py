"""The phantom's ground truth: dataclasses, ``truth.json`` (schema ``mammodnn-phantom-truth``, version 1) and
the mask PNGs beside it. docs/phantom.md documents every field.

All image geometry is in the ORIGINAL pixel grid of each DICOM image (x = column, y = row, pixel edges as in
:mod:`MammoDNNLib.geometry`); boxes are ``[x0, y0, x1, y1]`` edges. Lesion masks are stored cropped to their
bounding box (``mask_origin`` = the crop's top-left pixel ``[x0, y0]``, equal to the box's first corner),
which is exactly :class:`MammoDNNLib.geometry.LesionMask`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..geometry import LesionMask
from ..vocabulary import (
    BIRADS_CATEGORIES,
    FINDING_TYPE_KEYS,
    MORPHOLOGY,
    MORPHOLOGY_GROUPS_BY_TYPE,
    QUADRANTS,
    VIEW_KEYS,
)

TRUTH_SCHEMA = "mammodnn-phantom-truth"
TRUTH_VERSION = 1
TRUTH_FILE = "truth.json"
MASK_DIR = "masks"


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _pt(point) -> list[float]:
    return [_r(point[0]), _r(point[1])]


@dataclass
class LesionViewTruth:
    """One lesion as one view shows it."""

    box: tuple[float, float, float, float]  # [x0, y0, x1, y1] pixel edges: the mask's bounding box
    centre: tuple[float, float]  # projection of the lesion's 3D centre
    quadrant: str  # vocabulary.QUADRANTS[view]
    depth: float  # 0 nipple .. 1 pectoralis major
    visibility: str  # "obvious" | "subtle" | "occult"
    snr: float  # lesion signal / surrounding image spread
    contrast: float  # mean inside the outline minus the 2-8 mm ring around it (presentation 0..1 units)
    area_px: int
    mask_file: str  # relative to the study folder
    mask: LesionMask | None = None  # loaded on demand

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [_r(v) for v in self.box],
            "centre": _pt(self.centre),
            "quadrant": self.quadrant,
            "depth": _r(self.depth),
            "visibility": self.visibility,
            "snr": _r(self.snr, 3),
            "contrast": _r(self.contrast),
            "area_px": int(self.area_px),
            "mask": self.mask_file,
            "mask_origin": [int(self.box[0]), int(self.box[1])],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LesionViewTruth":
        return cls(
            box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
            centre=(float(data["centre"][0]), float(data["centre"][1])),
            quadrant=str(data["quadrant"]),
            depth=float(data["depth"]),
            visibility=str(data["visibility"]),
            snr=float(data["snr"]),
            contrast=float(data["contrast"]),
            area_px=int(data["area_px"]),
            mask_file=str(data["mask"]),
        )


@dataclass
class LesionTruth:
    id: str  # links the CC and MLO projections of the lesion, unique in the study
    laterality: str
    type: str  # vocabulary.FINDING_TYPE_KEYS
    pathology: str  # "benign" | "malignant"
    morphology: dict[str, str]  # vocabulary.MORPHOLOGY groups allowed for the type
    birads: str  # the category a reader would give this lesion alone
    size_mm: float  # largest 3D diameter (uncompressed); for clusters the extent of the specks
    position_mm: tuple[float, float, float]  # 3D centre in the breast frame (anterior, lateral, superior)
    depth_3d: float  # 1 - anterior / nipple depth, in the uncompressed breast
    axillary_tail: bool
    views: dict[str, LesionViewTruth]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "laterality": self.laterality,
            "type": self.type,
            "pathology": self.pathology,
            "morphology": dict(self.morphology),
            "birads": self.birads,
            "size_mm": _r(self.size_mm, 2),
            "position_mm": [_r(v, 3) for v in self.position_mm],
            "depth_3d": _r(self.depth_3d),
            "axillary_tail": self.axillary_tail,
            "views": {key: v.to_dict() for key, v in self.views.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LesionTruth":
        return cls(
            id=str(data["id"]),
            laterality=str(data["laterality"]),
            type=str(data["type"]),
            pathology=str(data["pathology"]),
            morphology={str(k): str(v) for k, v in data["morphology"].items()},
            birads=str(data["birads"]),
            size_mm=float(data["size_mm"]),
            position_mm=tuple(float(v) for v in data["position_mm"]),  # type: ignore[arg-type]
            depth_3d=float(data["depth_3d"]),
            axillary_tail=bool(data["axillary_tail"]),
            views={key: LesionViewTruth.from_dict(v) for key, v in data["views"].items()},
        )


@dataclass
class ViewTruth:
    key: str
    laterality: str
    view: str
    file: str  # DICOM file, relative to the study folder
    size: tuple[int, int]  # (width, height) pixels
    spacing: tuple[float, float]  # (row, column) mm, = ImagerPixelSpacing (magnification factor 1.0)
    chest_wall_side: str  # "left" | "right" image edge
    patient_orientation: tuple[str, str]
    nipple: tuple[float, float]  # on the skin line, the breast's most anterior point
    pectoral_line: (
        tuple[tuple[float, float], tuple[float, float]] | None
    )  # MLO: top-edge and chest-wall-edge points
    posterior_nipple_line_mm: float  # nipple to the chest-wall edge (CC) / pectoral line (MLO), perpendicular
    compressed_thickness_mm: float
    compression_force_n: float
    percent_density: float  # dense-area fraction of the breast (muscle excluded) in this view
    sop_instance_uid: str
    breast_mask_file: str
    pectoral_mask_file: str | None
    lesion_ids: list[str]
    breast_mask: np.ndarray | None = field(default=None, repr=False)  # (rows, cols) bool, loaded on demand
    pectoral_mask: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "laterality": self.laterality,
            "view": self.view,
            "file": self.file,
            "size": [int(self.size[0]), int(self.size[1])],
            "spacing": [_r(self.spacing[0], 6), _r(self.spacing[1], 6)],
            "chest_wall_side": self.chest_wall_side,
            "patient_orientation": list(self.patient_orientation),
            "nipple": _pt(self.nipple),
            "pectoral_line": None if self.pectoral_line is None else [_pt(p) for p in self.pectoral_line],
            "posterior_nipple_line_mm": _r(self.posterior_nipple_line_mm, 2),
            "compressed_thickness_mm": _r(self.compressed_thickness_mm, 2),
            "compression_force_n": _r(self.compression_force_n, 1),
            "percent_density": _r(self.percent_density),
            "sop_instance_uid": self.sop_instance_uid,
            "breast_mask": self.breast_mask_file,
            "pectoral_mask": self.pectoral_mask_file,
            "lesion_ids": list(self.lesion_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ViewTruth":
        line = data.get("pectoral_line")
        return cls(
            key=str(data["key"]),
            laterality=str(data["laterality"]),
            view=str(data["view"]),
            file=str(data["file"]),
            size=(int(data["size"][0]), int(data["size"][1])),
            spacing=(float(data["spacing"][0]), float(data["spacing"][1])),
            chest_wall_side=str(data["chest_wall_side"]),
            patient_orientation=(str(data["patient_orientation"][0]), str(data["patient_orientation"][1])),
            nipple=(float(data["nipple"][0]), float(data["nipple"][1])),
            pectoral_line=None
            if line is None
            else ((float(line[0][0]), float(line[0][1])), (float(line[1][0]), float(line[1][1]))),
            posterior_nipple_line_mm=float(data["posterior_nipple_line_mm"]),
            compressed_thickness_mm=float(data["compressed_thickness_mm"]),
            compression_force_n=float(data["compression_force_n"]),
            percent_density=float(data["percent_density"]),
            sop_instance_uid=str(data["sop_instance_uid"]),
            breast_mask_file=str(data["breast_mask"]),
            pectoral_mask_file=None if data.get("pectoral_mask") is None else str(data["pectoral_mask"]),
            lesion_ids=[str(v) for v in data["lesion_ids"]],
        )


@dataclass
class BreastTruth:
    laterality: str
    density: str  # BI-RADS composition A-D
    percent_density: float  # mean of the CC and MLO views
    birads: str  # implied by the breast's worst lesion ("1" without lesions)
    lesion_ids: list[str]
    shape: dict[str, Any]  # the 3D model's dimensions (breast frame, mm)

    def to_dict(self) -> dict[str, Any]:
        return {
            "laterality": self.laterality,
            "density": self.density,
            "percent_density": _r(self.percent_density),
            "birads": self.birads,
            "lesion_ids": list(self.lesion_ids),
            "shape": _round_tree(self.shape),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BreastTruth":
        return cls(
            laterality=str(data["laterality"]),
            density=str(data["density"]),
            percent_density=float(data["percent_density"]),
            birads=str(data["birads"]),
            lesion_ids=[str(v) for v in data["lesion_ids"]],
            shape=dict(data.get("shape", {})),
        )


@dataclass
class PhantomTruth:
    study_id: str
    seed: int
    size: str
    spacing_mm: float
    patient_id: str
    patient_age: int
    study_instance_uid: str
    exam_birads: str
    breasts: dict[str, BreastTruth]
    views: dict[str, ViewTruth]
    lesions: list[LesionTruth]
    config: dict[str, Any]
    generator: str
    schema: str = TRUTH_SCHEMA
    version: int = TRUTH_VERSION

    def lesion(self, lesion_id: str) -> LesionTruth:
        for lesion in self.lesions:
            if lesion.id == lesion_id:
                return lesion
        raise KeyError(lesion_id)

    def lesions_in(self, view_key: str) -> list[LesionTruth]:
        return [lesion for lesion in self.lesions if view_key in lesion.views]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "version": self.version,
            "generator": self.generator,
            "study_id": self.study_id,
            "seed": int(self.seed),
            "size": self.size,
            "spacing_mm": _r(self.spacing_mm, 6),
            "patient_id": self.patient_id,
            "patient_age": int(self.patient_age),
            "study_instance_uid": self.study_instance_uid,
            "exam_birads": self.exam_birads,
            "breasts": {k: b.to_dict() for k, b in self.breasts.items()},
            "views": {k: v.to_dict() for k, v in self.views.items()},
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> "PhantomTruth":
        if not isinstance(data, dict) or data.get("schema") != TRUTH_SCHEMA:
            raise InputError(source, f"not a phantom truth file (schema is not {TRUTH_SCHEMA!r})")
        if int(data.get("version", -1)) != TRUTH_VERSION:
            raise InputError(
                source,
                f"phantom truth version {data.get('version')} is not supported "
                f"(this library reads version {TRUTH_VERSION})",
            )
        try:
            truth = cls(
                study_id=str(data["study_id"]),
                seed=int(data["seed"]),
                size=str(data["size"]),
                spacing_mm=float(data["spacing_mm"]),
                patient_id=str(data["patient_id"]),
                patient_age=int(data["patient_age"]),
                study_instance_uid=str(data["study_instance_uid"]),
                exam_birads=str(data["exam_birads"]),
                breasts={k: BreastTruth.from_dict(v) for k, v in data["breasts"].items()},
                views={k: ViewTruth.from_dict(v) for k, v in data["views"].items()},
                lesions=[LesionTruth.from_dict(v) for v in data["lesions"]],
                config=dict(data.get("config", {})),
                generator=str(data.get("generator", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(source, f"malformed phantom truth: {exc!r}") from None
        problems = validate_truth(truth)
        if problems:
            raise InputError(source, "inconsistent phantom truth: " + "; ".join(problems[:5]))
        return truth


def validate_truth(truth: PhantomTruth) -> list[str]:
    """Vocabulary and cross-reference checks (empty when the truth is consistent)."""
    problems: list[str] = []
    for key, view in truth.views.items():
        if key not in VIEW_KEYS or key != view.key:
            problems.append(f"view {key!r} is not a view key")
    ids = [lesion.id for lesion in truth.lesions]
    if len(set(ids)) != len(ids):
        problems.append("lesion ids are not unique")
    for lesion in truth.lesions:
        if lesion.type not in FINDING_TYPE_KEYS:
            problems.append(f"{lesion.id}: unknown type {lesion.type!r}")
            continue
        if lesion.pathology not in ("benign", "malignant"):
            problems.append(f"{lesion.id}: unknown pathology {lesion.pathology!r}")
        if lesion.birads not in BIRADS_CATEGORIES:
            problems.append(f"{lesion.id}: unknown BI-RADS {lesion.birads!r}")
        for group, value in lesion.morphology.items():
            if group not in MORPHOLOGY_GROUPS_BY_TYPE[lesion.type] or value not in MORPHOLOGY[group]:
                problems.append(f"{lesion.id}: morphology {group}={value!r} not allowed for {lesion.type}")
        for key, lv in lesion.views.items():
            if key not in truth.views or not key.startswith(lesion.laterality):
                problems.append(f"{lesion.id}: view {key!r} is not a view of its breast")
                continue
            if lv.quadrant not in QUADRANTS[truth.views[key].view]:
                problems.append(
                    f"{lesion.id}/{key}: quadrant {lv.quadrant!r} not a {truth.views[key].view} quadrant"
                )
            if not 0.0 <= lv.depth <= 1.0:
                problems.append(f"{lesion.id}/{key}: depth {lv.depth} outside [0, 1]")
    for side, breast in truth.breasts.items():
        if breast.birads not in BIRADS_CATEGORIES:
            problems.append(f"breast {side}: unknown BI-RADS {breast.birads!r}")
        for lid in breast.lesion_ids:
            if lid not in ids:
                problems.append(f"breast {side}: unknown lesion {lid!r}")
    return problems


def _round_tree(value):
    if isinstance(value, float):
        return _r(value, 4)
    if isinstance(value, dict):
        return {k: _round_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_tree(v) for v in value]
    return value


# -- files ---------------------------------------------------------------------------------------------------
def write_mask_png(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path, optimize=False)


def read_mask_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) >= 128
    except OSError as exc:
        raise InputError(path, f"cannot read mask: {exc}") from None


def write_truth(truth: PhantomTruth, folder: str | Path) -> Path:
    """Write ``truth.json`` and every mask it names (the masks must be in memory) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for view in truth.views.values():
        if view.breast_mask is None:
            raise ValueError(f"{view.key}: breast mask not in memory")
        write_mask_png(folder / view.breast_mask_file, view.breast_mask)
        if view.pectoral_mask_file is not None and view.pectoral_mask is not None:
            write_mask_png(folder / view.pectoral_mask_file, view.pectoral_mask)
    for lesion in truth.lesions:
        for lv in lesion.views.values():
            if lv.mask is None:
                raise ValueError(f"{lesion.id}: mask not in memory")
            write_mask_png(folder / lv.mask_file, lv.mask.array)
    path = folder / TRUTH_FILE
    path.write_text(json.dumps(truth.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def load_truth(path: str | Path, masks: bool = True) -> PhantomTruth:
    """Read a study's ``truth.json`` (or the study folder holding it), with its masks unless
    ``masks=False``."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such phantom truth file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read phantom truth: {exc}") from None
    truth = PhantomTruth.from_dict(data, path)
    if masks:
        folder = path.parent
        for view in truth.views.values():
            view.breast_mask = read_mask_png(folder / view.breast_mask_file)
            if view.breast_mask.shape != (view.size[1], view.size[0]):
                raise InputError(
                    folder / view.breast_mask_file,
                    f"mask shape {view.breast_mask.shape} does not match the image size {view.size}",
                )
            if view.pectoral_mask_file is not None:
                view.pectoral_mask = read_mask_png(folder / view.pectoral_mask_file)
        for lesion in truth.lesions:
            for lv in lesion.views.values():
                array = read_mask_png(folder / lv.mask_file)
                lv.mask = LesionMask(array, (int(lv.box[0]), int(lv.box[1])))
                if lv.mask.box != tuple(lv.box):
                    raise InputError(
                        folder / lv.mask_file, f"mask of {lesion.id} does not fill its box {lv.box}"
                    )
    return truth
