"""The training-data manifest: one JSON format for every source (phantom, mini-MIAS, CBIS-DDSM, VinDr-Mammo,
INbreast, corrections exported from the Slicer review, ...).

A manifest is a list of studies. A study holds one to four views keyed by
:data:`~MammoDNNLib.vocabulary.VIEW_KEYS`; a view names its image file and carries its lesions. Every box and
outline is in the ORIGINAL pixel grid of its image, with the edge convention of :mod:`MammoDNNLib.geometry` (a
box ``[x0, y0, x1, y1]`` holding exactly pixel ``[r, c]`` is ``[c, r, c + 1, r + 1]``). On disk, file paths
are relative to the manifest's folder (POSIX separators); in memory they are absolute :class:`~pathlib.Path`
objects.

The schema, with an example, is documented in ``docs/data.md``. Reading is strict: an unknown key, a wrong
type or an out-of-range value is an :class:`~MammoDNNLib.errors.InputError` naming the manifest and the entry.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError, MammoDNNError
from ..geometry import Box
from ..vocabulary import (
    DENSITY_CATEGORIES,
    FINDING_TYPE_KEYS,
    MORPHOLOGY,
    MORPHOLOGY_GROUPS_BY_TYPE,
    PATHOLOGIES,
    QUADRANTS,
    VIEW_KEYS,
    split_view_key,
)

MANIFEST_FORMAT = "mammodnn-manifest"
MANIFEST_VERSION = 1

SPLITS: tuple[str, ...] = ("train", "val", "test", "heldout")
# Known sources; any other lower-case name (letters, digits, '-') is accepted for new data sets.
KNOWN_SOURCES: tuple[str, ...] = ("phantom", "mias", "cbis-ddsm", "vindr", "inbreast", "corrections")
# BI-RADS assessment categories as sources report them (the vocabulary's suggestion list plus 0, 4 and 6).
MANIFEST_BIRADS: tuple[str, ...] = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")

_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")

OnDuplicate = Literal["error", "replace", "keep"]


class _Where:
    """Builds 'study X view Y lesion Z' prefixes for error messages."""

    def __init__(self, path: str | os.PathLike | None, parts: tuple[str, ...] = ()):
        self.path = path
        self.parts = parts

    def at(self, part: str) -> _Where:
        return _Where(self.path, self.parts + (part,))

    def error(self, problem: str) -> InputError:
        prefix = " ".join(self.parts)
        return InputError(self.path, f"{prefix}: {problem}" if prefix else problem)


# ------------------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Change:
    """One edit of an annotation: who made it, when (ISO 8601), what changed (``before``: the old values)."""

    who: str
    when: str
    what: str
    before: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"who": self.who, "when": self.when, "what": self.what}
        if self.before is not None:
            out["before"] = self.before
        return out

    @classmethod
    def from_dict(cls, data: Any, where: _Where) -> Change:
        data = _expect_dict(data, where, {"who", "when", "what", "before"}, required={"who", "when", "what"})
        who = _expect_str(data["who"], where.at("who"))
        when = _expect_str(data["when"], where.at("when"))
        try:
            _dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise where.at("when").error(f"{when!r} is not an ISO 8601 date-time") from None
        what = _expect_str(data["what"], where.at("what"))
        before = data.get("before")
        if before is not None and not isinstance(before, dict):
            raise where.at("before").error("must be an object")
        return cls(who, when, what, before)


@dataclass
class Lesion:
    """One lesion as seen in one view; ``id`` links the CC and MLO projections of one lesion in a study."""

    id: str
    type: str  # a vocabulary.FINDING_TYPE_KEYS key
    box: Box | None  # [x0, y0, x1, y1] original pixel edges; None = location unknown (image-level label only)
    outline: list[tuple[float, float]] | None = None  # closed polygon (x, y), original pixels
    mask: Path | None = None  # binary mask file (nonzero = lesion): full image size, or a crop at mask_origin
    pathology: str | None = None  # "benign" | "malignant"
    morphology: dict[str, str] = field(default_factory=dict)  # vocabulary.MORPHOLOGY group -> descriptor
    quadrant: str | None = None  # vocabulary.QUADRANTS[view]
    depth: float | None = None  # 0 = nipple, 1 = pectoralis major / chest wall
    birads: str | None = None  # MANIFEST_BIRADS
    provenance: list[Change] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific raw values (JSON types only)
    mask_origin: tuple[int, int] | None = (
        None  # (x0, y0) of a cropped mask file's first pixel; None = full size
    )

    def to_dict(self, base_dir: Path) -> dict:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "box": None if self.box is None else list(self.box),
        }
        if self.outline is not None:
            out["outline"] = [[float(x), float(y)] for x, y in self.outline]
        if self.mask is not None:
            out["mask"] = relative_path(self.mask, base_dir)
        if self.mask_origin is not None:
            out["mask_origin"] = [int(v) for v in self.mask_origin]
        for key in ("pathology", "quadrant", "depth", "birads"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.morphology:
            out["morphology"] = dict(self.morphology)
        if self.provenance:
            out["provenance"] = [c.to_dict() for c in self.provenance]
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(
        cls, data: Any, base_dir: Path, where: _Where, view_key: str, size: tuple[int, int] | None
    ) -> Lesion:
        keys = {
            "id",
            "type",
            "box",
            "outline",
            "mask",
            "mask_origin",
            "pathology",
            "morphology",
            "quadrant",
            "depth",
            "birads",
            "provenance",
            "extra",
        }
        if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
            where = where.at(f"lesion {data['id']!r}")
        data = _expect_dict(data, where, keys, required={"id", "type", "box"})
        lesion_id = _expect_str(data["id"], where.at("id"))
        lesion_type = data["type"]
        if lesion_type not in FINDING_TYPE_KEYS:
            raise where.error(f"type {lesion_type!r} is not one of {', '.join(FINDING_TYPE_KEYS)}")
        box = None if data["box"] is None else _parse_box(data["box"], where.at("box"), size)
        outline = None
        if data.get("outline") is not None:
            outline = _parse_outline(data["outline"], where.at("outline"))
        mask = None
        if data.get("mask") is not None:
            mask = _absolute(_expect_str(data["mask"], where.at("mask")), base_dir)
        mask_origin = None
        if data.get("mask_origin") is not None:
            if mask is None:
                raise where.at("mask_origin").error("is given without a mask file")
            mask_origin = _parse_pair(
                data["mask_origin"], where.at("mask_origin"), positive=False, integer=True
            )
            if min(mask_origin) < 0:
                raise where.at("mask_origin").error(f"must not be negative, got {data['mask_origin']!r}")
        pathology = _optional_choice(data.get("pathology"), PATHOLOGIES, where.at("pathology"))
        morphology = _parse_morphology(data.get("morphology") or {}, lesion_type, where.at("morphology"))
        laterality, view = split_view_key(view_key)
        quadrant = _optional_choice(data.get("quadrant"), QUADRANTS[view], where.at("quadrant"))
        depth = data.get("depth")
        if depth is not None:
            if not _is_number(depth) or not math.isfinite(depth) or depth < 0:
                raise where.at("depth").error(f"must be a finite number >= 0 (0 = nipple), got {depth!r}")
            depth = float(depth)
        birads = _optional_choice(data.get("birads"), MANIFEST_BIRADS, where.at("birads"))
        provenance = _parse_changes(data.get("provenance") or [], where.at("provenance"))
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise where.at("extra").error("must be an object")
        return cls(
            id=lesion_id,
            type=lesion_type,
            box=box,
            outline=outline,
            mask=mask,
            pathology=pathology,
            morphology=morphology,
            quadrant=quadrant,
            depth=depth,
            birads=birads,
            provenance=provenance,
            extra=extra,
            mask_origin=mask_origin,
        )


@dataclass
class ViewEntry:
    """One image of a study and its lesions."""

    key: str  # vocabulary.VIEW_KEYS
    image: Path | None  # None: the source names the image but it is not available locally
    spacing: tuple[float, float] | None = None  # (row, col) mm; required where the file has no header (PNG)
    size: tuple[int, int] | None = None  # (width, height) of the original image, where known
    density: str | None = None  # BI-RADS density A-D
    birads: str | None = None  # breast-level assessment, MANIFEST_BIRADS
    source_id: str | None = None  # the source's own image identifier
    lesions: list[Lesion] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def laterality(self) -> str:
        return split_view_key(self.key)[0]

    @property
    def view(self) -> str:
        return split_view_key(self.key)[1]

    @property
    def box_complete(self) -> bool:
        """Every lesion has a box: the view can teach a detector where lesions are and where they are not."""
        return all(lesion.box is not None for lesion in self.lesions)

    def to_dict(self, base_dir: Path) -> dict:
        out: dict[str, Any] = {
            "image": None if self.image is None else relative_path(self.image, base_dir),
            "laterality": self.laterality,
            "view": self.view,
            "spacing": None if self.spacing is None else list(self.spacing),
        }
        if self.size is not None:
            out["size"] = list(self.size)
        for key in ("density", "birads", "source_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["lesions"] = [lesion.to_dict(base_dir) for lesion in self.lesions]
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(cls, key: str, data: Any, base_dir: Path, where: _Where) -> ViewEntry:
        where = where.at(f"view {key!r}")
        if key not in VIEW_KEYS:
            raise where.error(f"view key must be one of {', '.join(VIEW_KEYS)}")
        keys = {
            "image",
            "laterality",
            "view",
            "spacing",
            "size",
            "density",
            "birads",
            "source_id",
            "lesions",
            "extra",
        }
        data = _expect_dict(data, where, keys, required={"image", "lesions"})
        laterality, view = split_view_key(key)
        if data.get("laterality", laterality) != laterality or data.get("view", view) != view:
            raise where.error(
                f"laterality/view {data.get('laterality')!r}/{data.get('view')!r} "
                f"contradict the view key {key!r}"
            )
        image = None
        if data["image"] is not None:
            image = _absolute(_expect_str(data["image"], where.at("image")), base_dir)
        spacing = None
        if data.get("spacing") is not None:
            spacing = _parse_pair(data["spacing"], where.at("spacing"), positive=True, integer=False)
        size = None
        if data.get("size") is not None:
            size = _parse_pair(data["size"], where.at("size"), positive=True, integer=True)
        density = _optional_choice(data.get("density"), DENSITY_CATEGORIES, where.at("density"))
        birads = _optional_choice(data.get("birads"), MANIFEST_BIRADS, where.at("birads"))
        source_id = data.get("source_id")
        if source_id is not None:
            source_id = _expect_str(source_id, where.at("source_id"))
        if not isinstance(data["lesions"], list):
            raise where.at("lesions").error("must be a list")
        lesions = [Lesion.from_dict(item, base_dir, where, key, size) for item in data["lesions"]]
        ids = Counter(lesion.id for lesion in lesions)
        duplicated = [i for i, n in ids.items() if n > 1]
        if duplicated:
            raise where.error(f"lesion ids repeat within the view: {', '.join(map(repr, duplicated))}")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise where.at("extra").error("must be an object")
        return cls(key, image, spacing, size, density, birads, source_id, lesions, extra)


@dataclass
class StudyEntry:
    """One exam of one woman: up to four views."""

    id: str
    source: str
    split: str | None  # SPLITS or None (not assigned)
    labelled: bool  # False: unlabelled study for semi-supervised training (its lesion lists mean nothing)
    views: dict[str, ViewEntry]
    patient_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: list[Change] = field(default_factory=list)  # study-level edits (e.g. a deleted lesion)

    def __post_init__(self) -> None:
        self.views = {k: self.views[k] for k in VIEW_KEYS if k in self.views}

    @property
    def lesions(self) -> Iterator[tuple[str, Lesion]]:
        for key, view in self.views.items():
            for lesion in view.lesions:
                yield key, lesion

    def to_dict(self, base_dir: Path) -> dict:
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "split": self.split,
            "labelled": self.labelled,
        }
        if self.patient_id is not None:
            out["patient_id"] = self.patient_id
        if self.metadata:
            out["metadata"] = self.metadata
        if self.provenance:
            out["provenance"] = [c.to_dict() for c in self.provenance]
        out["views"] = {key: view.to_dict(base_dir) for key, view in self.views.items()}
        return out

    @classmethod
    def from_dict(cls, data: Any, base_dir: Path, where: _Where) -> StudyEntry:
        keys = {"id", "source", "split", "labelled", "views", "patient_id", "metadata", "provenance"}
        if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
            where = where.at(f"study {data['id']!r}")  # name the study in every message below
        data = _expect_dict(data, where, keys, required={"id", "source", "split", "labelled", "views"})
        study_id = _expect_str(data["id"], where.at("id"))
        source = _expect_str(data["source"], where.at("source"))
        if not _SOURCE_RE.match(source):
            raise where.at("source").error(
                f"{source!r} is not a source name (lower-case letters, digits and '-'; known: "
                f"{', '.join(KNOWN_SOURCES)})"
            )
        split = _optional_choice(data["split"], SPLITS, where.at("split"))
        if not isinstance(data["labelled"], bool):
            raise where.at("labelled").error(f"must be true or false, got {data['labelled']!r}")
        views_data = data["views"]
        if not isinstance(views_data, dict) or not 1 <= len(views_data) <= 4:
            raise where.at("views").error(
                f"must be an object with one to four views keyed by {', '.join(VIEW_KEYS)}"
            )
        views = {key: ViewEntry.from_dict(key, value, base_dir, where) for key, value in views_data.items()}
        patient_id = data.get("patient_id")
        if patient_id is not None:
            patient_id = _expect_str(patient_id, where.at("patient_id"))
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise where.at("metadata").error("must be an object")
        provenance = _parse_changes(data.get("provenance") or [], where.at("provenance"))
        study = cls(study_id, source, split, data["labelled"], views, patient_id, metadata, provenance)
        _check_links(study, where)
        return study


@dataclass
class ManifestSummary:
    """Counts per split, source and finding type (what ``mammodnn data check`` prints)."""

    studies: dict[str, int]  # split ("none" when unassigned) -> studies
    views: dict[str, int]
    labelled_studies: dict[str, int]
    sources: dict[str, int]
    lesions: dict[str, dict[str, int]]  # split -> type -> lesions
    lesions_without_box: int
    lesions_with_outline: int
    lesions_with_mask: int
    views_without_image: int
    views_not_box_complete: int
    pathology: dict[str, int]

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def format_table(self) -> str:
        splits = sorted(self.studies, key=_split_order)
        width = max([10] + [len(s) for s in splits])
        header = "".ljust(16) + "".join(s.rjust(width) for s in splits) + "total".rjust(width)

        def row(name: str, values: dict[str, int]) -> str:
            cells = "".join(str(values.get(s, 0)).rjust(width) for s in splits)
            return name.ljust(16) + cells + str(sum(values.values())).rjust(width)

        lines = [
            header,
            row("studies", self.studies),
            row("  labelled", self.labelled_studies),
            row("views", self.views),
        ]
        for finding in FINDING_TYPE_KEYS:
            lines.append(row(f"  {finding}", {s: self.lesions.get(s, {}).get(finding, 0) for s in splits}))
        lines.append("")
        lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items())))
        lines.append("pathology: " + ", ".join(f"{k} {v}" for k, v in sorted(self.pathology.items())))
        lines.append(
            "lesions without a box (image-level labels, excluded from box training): "
            f"{self.lesions_without_box}"
        )
        lines.append(
            f"lesions with an outline: {self.lesions_with_outline}; with a mask file: "
            f"{self.lesions_with_mask}"
        )
        lines.append(
            f"views without a local image: {self.views_without_image}; views with unboxed lesions: "
            f"{self.views_not_box_complete}"
        )
        return "\n".join(lines)


@dataclass
class Manifest:
    studies: list[StudyEntry] = field(default_factory=list)
    description: str = ""
    notes: list[str] = field(default_factory=list)  # what converters skipped, mapped or assumed
    created: str | None = None

    def __post_init__(self) -> None:
        counts = Counter(study.id for study in self.studies)
        duplicated = [study_id for study_id, n in counts.items() if n > 1]
        if duplicated:
            raise MammoDNNError(f"manifest: study ids repeat: {', '.join(map(repr, duplicated[:5]))}")

    def __iter__(self) -> Iterator[StudyEntry]:
        return iter(self.studies)

    def __len__(self) -> int:
        return len(self.studies)

    def by_id(self, study_id: str) -> StudyEntry:
        for study in self.studies:
            if study.id == study_id:
                return study
        raise KeyError(study_id)

    # -- (de)serialization ----------------------------------------------------------------------------------
    def to_dict(self, base_dir: str | os.PathLike) -> dict:
        base = Path(os.path.abspath(base_dir))
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "description": self.description,
            "created": self.created or _now(),
            "notes": list(self.notes),
            "studies": [study.to_dict(base) for study in self.studies],
        }

    @classmethod
    def from_dict(
        cls, data: Any, base_dir: str | os.PathLike, path: str | os.PathLike | None = None
    ) -> Manifest:
        where = _Where(path)
        data = _expect_dict(
            data,
            where,
            {"format", "version", "description", "created", "notes", "studies"},
            required={"format", "version", "studies"},
        )
        if data["format"] != MANIFEST_FORMAT:
            raise where.error(f"format is {data['format']!r}, expected {MANIFEST_FORMAT!r}")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise where.error(f"version must be an integer, got {version!r}")
        if version > MANIFEST_VERSION:
            raise where.error(
                f"manifest version {version} is newer than this MammoDNN reads ({MANIFEST_VERSION}); "
                "update MammoDNN"
            )
        if version < 1:
            raise where.error(f"unknown manifest version {version}")
        if not isinstance(data["studies"], list):
            raise where.at("studies").error("must be a list")
        base = Path(os.path.abspath(base_dir))
        studies = [
            StudyEntry.from_dict(item, base, where.at(f"studies[{i}]"))
            for i, item in enumerate(data["studies"])
        ]
        ids = Counter(study.id for study in studies)
        duplicated = [study_id for study_id, n in ids.items() if n > 1]
        if duplicated:
            raise where.error(f"study ids repeat: {', '.join(map(repr, duplicated[:5]))}")
        notes = data.get("notes") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise where.at("notes").error("must be a list of strings")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise where.at("description").error("must be a string")
        created = data.get("created")
        if created is not None and not isinstance(created, str):
            raise where.at("created").error("must be a string")
        return cls(studies, description, list(notes), created)

    # -- selections -----------------------------------------------------------------------------------------
    def filter(
        self,
        *,
        split: str | None | Sequence[str | None] = ...,
        source: str | Sequence[str] | None = None,
        labelled: bool | None = None,
    ) -> Manifest:
        """Studies of the given split(s) (``None`` selects unassigned ones), source(s) and labelled state."""
        keep = list(self.studies)
        if split is not ...:
            wanted = {split} if split is None or isinstance(split, str) else set(split)
            for value in wanted:
                if value is not None and value not in SPLITS:
                    raise MammoDNNError(f"unknown split {value!r}; expected one of {', '.join(SPLITS)}")
            keep = [s for s in keep if s.split in wanted]
        if source is not None:
            sources = {source} if isinstance(source, str) else set(source)
            keep = [s for s in keep if s.source in sources]
        if labelled is not None:
            keep = [s for s in keep if s.labelled == labelled]
        return Manifest(keep, self.description, list(self.notes), self.created)

    def split_off(
        self, fraction: float, *, into: str = "val", from_split: str | None = "train", seed: int = 0
    ) -> Manifest:
        """Move about ``fraction`` of the ``from_split`` studies to ``into``, whole patients at a time.

        The choice is a hash of (seed, patient), so it is stable when studies are added or removed. Studies
        without a patient id count as their own patient. Held-out studies are never moved.
        """
        if not 0.0 <= fraction <= 1.0:
            raise MammoDNNError(f"fraction must be in [0, 1], got {fraction}")
        if into not in SPLITS or into == "heldout":
            raise MammoDNNError(f"cannot split studies into {into!r}")
        moved = []
        for study in self.studies:
            if study.split != from_split or study.split == "heldout":
                moved.append(study)
                continue
            group = f"{study.source}/{study.patient_id}" if study.patient_id else f"study/{study.id}"
            digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2.0**64
            if draw < fraction:
                study = _copy_study(study, split=into)
            moved.append(study)
        return Manifest(moved, self.description, list(self.notes), self.created)

    def summary(self) -> ManifestSummary:
        studies: Counter = Counter()
        views: Counter = Counter()
        labelled: Counter = Counter()
        sources: Counter = Counter()
        pathology: Counter = Counter()
        lesions: dict[str, Counter] = {}
        without_box = with_outline = with_mask = no_image = not_complete = 0
        for study in self.studies:
            split = study.split or "none"
            studies[split] += 1
            labelled[split] += int(study.labelled)
            sources[study.source] += 1
            for view in study.views.values():
                views[split] += 1
                no_image += view.image is None
                if not study.labelled:
                    continue
                not_complete += not view.box_complete
                for lesion in view.lesions:
                    lesions.setdefault(split, Counter())[lesion.type] += 1
                    without_box += lesion.box is None
                    with_outline += lesion.outline is not None
                    with_mask += lesion.mask is not None
                    pathology[lesion.pathology or "unknown"] += 1
        return ManifestSummary(
            dict(studies),
            dict(views),
            dict(labelled),
            dict(sources),
            {k: dict(v) for k, v in lesions.items()},
            without_box,
            with_outline,
            with_mask,
            no_image,
            not_complete,
            dict(pathology),
        )

    def missing_files(self) -> list[Path]:
        """Image and mask files the manifest names that do not exist."""
        missing = []
        for study in self.studies:
            for view in study.views.values():
                if view.image is not None and not view.image.is_file():
                    missing.append(view.image)
                for lesion in view.lesions:
                    if lesion.mask is not None and not lesion.mask.is_file():
                        missing.append(lesion.mask)
        return missing


# ------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------


def load_manifest(path: str | os.PathLike, *, check_files: bool = False) -> Manifest:
    """Read and validate a manifest; relative paths resolve against its folder.

    With ``check_files`` every named image and mask file must exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such manifest file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    manifest = Manifest.from_dict(data, Path(os.path.abspath(path)).parent, path)
    if check_files:
        missing = manifest.missing_files()
        if missing:
            listed = ", ".join(str(p) for p in missing[:5])
            raise InputError(
                path, f"{len(missing)} file(s) named by the manifest do not exist, e.g. {listed}"
            )
    return manifest


def save_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write ``manifest`` as JSON (paths relative to the file's folder); the write is atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest.to_dict(Path(os.path.abspath(path)).parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def merge(
    *manifests: Manifest, on_duplicate: OnDuplicate = "error", description: str | None = None
) -> Manifest:
    """Concatenate manifests.

    A study id present in several manifests is an error (``"error"``), replaced by the later one
    (``"replace"``, e.g. corrections exported from the Slicer review replacing the converted originals) or
    kept from the first (``"keep"``). Held-out status is sticky: a study that shows an image of a held-out
    study is held out too, so a correction of a held-out film can never reach training.
    """
    if on_duplicate not in ("error", "replace", "keep"):
        raise MammoDNNError(f"on_duplicate must be 'error', 'replace' or 'keep', got {on_duplicate!r}")
    order: list[str] = []
    chosen: dict[str, StudyEntry] = {}
    notes: list[str] = []
    heldout_images: set[Path] = set()
    for manifest in manifests:
        notes.extend(n for n in manifest.notes if n not in notes)
        for study in manifest.studies:
            if study.split == "heldout":
                heldout_images.update(v.image for v in study.views.values() if v.image is not None)
            if study.id in chosen:
                if on_duplicate == "error":
                    raise MammoDNNError(
                        f"merge: study {study.id!r} is in more than one manifest "
                        "(use on_duplicate='replace' or 'keep')"
                    )
                if on_duplicate == "keep":
                    continue
                if chosen[study.id].split == "heldout" and study.split != "heldout":
                    study = _copy_study(study, split="heldout")
                chosen[study.id] = study
            else:
                order.append(study.id)
                chosen[study.id] = study
    merged = []
    for study_id in order:
        study = chosen[study_id]
        if study.split != "heldout" and any(v.image in heldout_images for v in study.views.values()):
            notes.append(f"study {study.id!r} shows a held-out image and is held out too")
            study = _copy_study(study, split="heldout")
        merged.append(study)
    text = (
        description
        if description is not None
        else " + ".join(m.description for m in manifests if m.description)
    )
    return Manifest(merged, text, notes)


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def read_heldout_list(path: str | os.PathLike) -> set[str]:
    """Film/image names, one a line (blank lines and ``#`` comments ignored), e.g. mini-MIAS heldout.txt."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(path, f"cannot read the held-out list: {exc.strerror or exc}") from None
    names = {line.split("#", 1)[0].strip() for line in lines}
    names.discard("")
    return names


def _copy_study(study: StudyEntry, **changes: Any) -> StudyEntry:
    values = dict(study.__dict__)
    values.update(changes)
    return StudyEntry(**values)


def _split_order(split: str) -> int:
    order = list(SPLITS) + ["none"]
    return order.index(split) if split in order else len(order)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def relative_path(path: str | os.PathLike, base_dir: str | os.PathLike) -> str:
    """``path`` relative to ``base_dir`` with POSIX separators (absolute when on another drive)."""
    path = Path(path)
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base_dir))).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return Path(os.path.abspath(path)).as_posix()


def _absolute(text: str, base_dir: Path) -> Path:
    path = Path(text)
    return path if path.is_absolute() else Path(os.path.normpath(base_dir / path))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect_dict(data: Any, where: _Where, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(data, dict):
        raise where.error(f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise where.error(
            f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - set(data))
    if missing:
        raise where.error(f"missing key(s) {', '.join(map(repr, missing))}")
    return data


def _expect_str(value: Any, where: _Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"must be a non-empty string, got {value!r}")
    return value


def _optional_choice(value: Any, choices: Iterable[str], where: _Where) -> str | None:
    if value is None:
        return None
    choices = tuple(choices)
    if value not in choices:
        raise where.error(f"{value!r} is not one of {', '.join(choices)}")
    return value


def _parse_pair(value: Any, where: _Where, *, positive: bool, integer: bool) -> tuple:
    if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
        raise where.error(f"must be a list of two numbers, got {value!r}")
    if integer and not all(float(v).is_integer() for v in value):
        raise where.error(f"must be whole numbers, got {value!r}")
    if positive and not all(math.isfinite(v) and v > 0 for v in value):
        raise where.error(f"must be positive, got {value!r}")
    return tuple(int(v) for v in value) if integer else tuple(float(v) for v in value)


def _parse_box(value: Any, where: _Where, size: tuple[int, int] | None) -> Box:
    if not isinstance(value, list) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise where.error(f"must be [x0, y0, x1, y1] (four numbers) or null, got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise where.error(f"must be finite, got {value!r}")
    if not (x1 > x0 and y1 > y0):
        raise where.error(f"is empty or inverted: {value!r} (need x1 > x0 and y1 > y0)")
    if size is not None:
        width, height = size
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise where.error(f"{value!r} is not inside the image (width {width}, height {height})")
    return (x0, y0, x1, y1)


def _parse_outline(value: Any, where: _Where) -> list[tuple[float, float]]:
    if not isinstance(value, list) or len(value) < 3:
        raise where.error("must be a list of at least three [x, y] points")
    points = []
    for point in value:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(_is_number(v) for v in point)
            or not all(math.isfinite(v) for v in point)
        ):
            raise where.error(f"point {point!r} is not [x, y]")
        points.append((float(point[0]), float(point[1])))
    return points


def _parse_morphology(value: Any, lesion_type: str, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict):
        raise where.error("must be an object mapping descriptor groups to descriptors")
    allowed_groups = MORPHOLOGY_GROUPS_BY_TYPE[lesion_type]
    out = {}
    for group, descriptor in value.items():
        if group not in allowed_groups:
            raise where.error(
                f"group {group!r} does not apply to a {lesion_type} "
                f"(allowed: {', '.join(allowed_groups) or 'none'})"
            )
        if descriptor not in MORPHOLOGY[group]:
            raise where.error(f"{group} {descriptor!r} is not one of {', '.join(MORPHOLOGY[group])}")
        out[group] = descriptor
    return out


def _parse_changes(value: Any, where: _Where) -> list[Change]:
    if not isinstance(value, list):
        raise where.error("must be a list")
    return [Change.from_dict(item, where.at(f"[{i}]")) for i, item in enumerate(value)]


def _check_links(study: StudyEntry, where: _Where) -> None:
    """A lesion id shared between views must link the CC and MLO of one breast, with one type."""
    seen: dict[str, tuple[str, str]] = {}
    for key, lesion in study.lesions:
        if lesion.id not in seen:
            seen[lesion.id] = (key, lesion.type)
            continue
        first_key, first_type = seen[lesion.id]
        if split_view_key(first_key)[0] != split_view_key(key)[0]:
            raise where.error(
                f"lesion {lesion.id!r} appears in {first_key} and {key}: a lesion id links the CC "
                "and MLO views of one breast"
            )
        if first_type != lesion.type:
            raise where.error(
                f"lesion {lesion.id!r} is a {first_type} in {first_key} but a {lesion.type} in {key}"
            )
