"""Findings and the report: what the pipeline returns and what every exporter and the scene code consume.

All geometry is in the original pixel grid of the finding's view (see :mod:`MammoDNNLib.geometry`). The report
serializes to ``report.json`` (schema ``MammoDNNLib/schemas/report.schema.json``, version
:data:`REPORT_SCHEMA_VERSION`); masks travel as outlines in JSON and as exact masks in memory and in ``.seg.nrrd``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import Box, LesionMask
from .vocabulary import FINDING_TYPE_KEYS, split_view_key

REPORT_SCHEMA_VERSION = "1.0"


@dataclass
class Finding:
    id: str  # stable within a report: "lesion_001", ...
    view_key: str  # "R-CC", ...
    type: str  # a FINDING_TYPE_KEYS key
    score: float  # detection confidence in [0, 1]
    box: Box  # (x0, y0, x1, y1), original pixel edges
    number: int = 0  # display number within its breast; a matched CC/MLO pair shares it ("R CC 1" / "R MLO 1")
    mask: LesionMask | None = None  # exact outline mask in the original grid (not serialized; see outline)
    outline: list[tuple[float, float]] = field(default_factory=list)  # polygon (x, y), original pixels
    quadrant: str | None = None
    quadrant_probabilities: dict[str, float] = field(default_factory=dict)
    depth: float | None = None  # 0 = nipple, 1 = pectoralis major / chest wall
    match_id: str | None = None  # id of the matched finding in the other view of the same breast
    match_probability: float | None = None
    malignancy: float | None = None  # calibrated probability of malignancy
    morphology: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> descriptor -> probability
    birads: str | None = None  # BIRADS_CATEGORIES
    extra: dict[str, Any] = field(default_factory=dict)  # stage-specific details (sources, raw scores, review)

    def __post_init__(self) -> None:
        split_view_key(self.view_key)
        if self.type not in FINDING_TYPE_KEYS:
            raise ValueError(f"finding {self.id}: unknown type {self.type!r}")
        self.box = tuple(float(v) for v in self.box)  # type: ignore[assignment]
        if not (self.box[2] > self.box[0] and self.box[3] > self.box[1]):
            raise ValueError(f"finding {self.id}: empty box {self.box}")
        if self.mask is not None and not self.outline:
            self.outline = [tuple(p) for p in self.mask.to_polygon().tolist()]

    @property
    def laterality(self) -> str:
        return split_view_key(self.view_key)[0]

    @property
    def view(self) -> str:
        return split_view_key(self.view_key)[1]

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def label(self) -> str:
        """Display name, e.g. ``"R CC 1 · Mass · 0.91"``."""
        from .vocabulary import finding_type

        return f"{self.laterality} {self.view} {self.number} · {finding_type(self.type).label} · {self.score:.2f}"

    def lesion_mask(self, shape: tuple[int, int]) -> LesionMask:
        """The exact mask if known, else the rasterized outline, else the box (``shape`` = (rows, cols))."""
        if self.mask is not None:
            return self.mask
        if len(self.outline) >= 3:
            return LesionMask.from_polygon(self.outline, shape)
        x0, y0, x1, y1 = self.box
        polygon = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        return LesionMask.from_polygon(polygon, shape)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) if self.mask is None else asdict(_without_mask(self))
        data.pop("mask", None)
        data["laterality"] = self.laterality
        data["view"] = self.view
        data["box"] = [_round(v) for v in self.box]
        data["outline"] = [[_round(x), _round(y)] for x, y in self.outline]
        return _clean(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        data = dict(data)
        data.pop("laterality", None)
        data.pop("view", None)
        data["box"] = tuple(data["box"])
        data["outline"] = [tuple(p) for p in data.get("outline") or []]
        return cls(**data)


def _without_mask(finding: Finding) -> Finding:
    clone = Finding.__new__(Finding)
    clone.__dict__.update(finding.__dict__)
    clone.mask = None
    return clone


@dataclass
class ViewInfo:
    key: str
    file: str | None  # path as given by the user (None for in-memory views)
    laterality: str
    view: str
    size: tuple[int, int]  # (width, height)
    spacing: tuple[float, float]  # (row, col) mm
    provenance: dict[str, str] = field(default_factory=dict)
    sop_instance_uid: str | None = None
    transform: dict[str, Any] | None = None  # Transform.to_dict() of the preprocessing
    landmarks: dict[str, Any] = field(default_factory=dict)  # nipple, pectoral line (original pixels) and sources


@dataclass
class ModelInfo:
    name: str
    version: str
    sha256: str  # of the model manifest (which pins every weight file by its own hash)
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> {name, version, sha256}


@dataclass
class Summary:
    """Per breast ("L"/"R") or per exam: the highest malignancy and the BI-RADS suggestion it implies."""

    score: float | None
    birads: str
    findings: int
    complete: bool = True  # both views present (breast) / all four views (exam)
    note: str | None = None


@dataclass
class Report:
    model: ModelInfo
    views: list[ViewInfo]
    findings: list[Finding]
    breasts: dict[str, Summary]
    exam: Summary
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    software: dict[str, str] = field(default_factory=dict)
    created: str = ""
    schema_version: str = REPORT_SCHEMA_VERSION
    disclaimer: str = "Research use only. Not for clinical diagnosis."

    def finding(self, finding_id: str) -> Finding:
        for f in self.findings:
            if f.id == finding_id:
                return f
        raise KeyError(finding_id)

    def findings_in(self, key: str) -> list[Finding]:
        return [f for f in self.findings if f.view_key == key]

    def view(self, key: str) -> ViewInfo:
        for v in self.views:
            if v.key == key:
                return v
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "schema_version": self.schema_version,
                "disclaimer": self.disclaimer,
                "created": self.created,
                "software": self.software,
                "model": asdict(self.model),
                "options": self.options,
                "views": [asdict(v) for v in self.views],
                "findings": [f.to_dict() for f in self.findings],
                "breasts": {k: asdict(v) for k, v in self.breasts.items()},
                "exam": asdict(self.exam),
                "timings": self.timings,
                "warnings": self.warnings,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != REPORT_SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"report schema version {version!r} is not supported (expected {REPORT_SCHEMA_VERSION})")
        views = []
        for v in data["views"]:
            v = dict(v)
            v["size"] = tuple(v["size"])
            v["spacing"] = tuple(v["spacing"])
            views.append(ViewInfo(**v))
        return cls(
            model=ModelInfo(**data["model"]),
            views=views,
            findings=[Finding.from_dict(f) for f in data["findings"]],
            breasts={k: Summary(**v) for k, v in data["breasts"].items()},
            exam=Summary(**data["exam"]),
            timings=dict(data.get("timings", {})),
            warnings=list(data.get("warnings", [])),
            options=dict(data.get("options", {})),
            software=dict(data.get("software", {})),
            created=data.get("created", ""),
            schema_version=version,
            disclaimer=data.get("disclaimer", cls.disclaimer),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Report":
        from .errors import InputError

        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"not a MammoDNN report (invalid JSON: {exc})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"not a valid MammoDNN report: {exc}") from None


def _round(value: float) -> float:
    return round(float(value), 3)


def _clean(value: Any) -> Any:
    """JSON-safe copy: tuples to lists, numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
