"""Training and evaluation of the per-lesion networks: localization (quadrant, depth) and malignancy (+
morphology).

Data are :class:`LesionSet` objects: prepared views that hold lesions (:class:`LesionView`: image, breast
mask, transform, landmarks) and one :class:`LesionRecord` per lesion and view (mask on the prepared grid and
the truth: type, pathology, morphology, quadrant, depth). They come from phantoms generated in memory
(:func:`phantom_lesion_set`, with the geometric landmark estimates the preprocessing gives) or from a training
manifest's prepared samples (:func:`sample_lesion_set`), and are cached as ``.npz`` files (no pickles) so the
two models and the benchmarks share one generation.

The loops (:func:`train_localization`, :func:`train_malignancy`) are plain AdamW with a linear warm-up and
cosine decay, on the CPU with a thread limit; every step builds its inputs with the same functions inference
uses, from masks perturbed like detections (:func:`~MammoDNNLib.models.lesion_inputs.perturb_mask`). After
each epoch the network is scored on the validation set (true and perturbed masks) and the best epoch is kept;
a checkpoint (safetensors + JSON, :mod:`.checkpoint`) makes the run resumable, and a JSONL log records every
epoch. Afterwards the validation set fits what the manifest stores beside the weights: the localization
estimator choice and blend, the malignancy calibrator.

The evaluation functions report what the model cards quote: quadrant accuracy per view position and confusion
matrices, depth MAE (network, geometric, combined), malignancy AUC (overall, per type, DeLong CI), calibration
(ECE, Brier) and morphology accuracy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, MammoDNNError
from ..geometry import LesionMask, Transform
from ..models.calibration import (
    CALIBRATION_METHODS,
    calibration_report,
    fit_calibrator,
    select_calibrator,
    sigmoid,
)
from ..models.lesion_inputs import (
    MaskPerturbation,
    fit_view,
    lesion_size_features,
    localization_input,
    malignancy_input,
    mask_on_canvas,
    perturb_mask,
)
from ..models.localization import (
    DepthBlend,
    LocalizationConfig,
    LocalizationModel,
    LocalizationNet,
    combine_quadrant,
    geometric_estimates,
    view_position_index,
)
from ..models.malignancy import (
    MalignancyConfig,
    MalignancyModel,
    MalignancyNet,
    morphology_loss,
    morphology_targets,
)
from ..vocabulary import FINDING_TYPE_KEYS, MORPHOLOGY, MORPHOLOGY_GROUPS_BY_TYPE, QUADRANTS, VIEW_POSITIONS

log = logging.getLogger(__name__)

LESION_SET_FORMAT = "mammodnn-lesion-set"
LESION_SET_VERSION = 1


# ============================================================================================================
# ====
# Data
# ============================================================================================================
# ====
@dataclass
class LesionView:
    """A prepared view holding lesions (duck-types :class:`~MammoDNNLib.preprocess.PreparedView` for the
    models)."""

    study_id: str
    key: str  # "R-CC", ...
    view: str  # "CC" | "MLO"
    image: np.ndarray  # (H, W) float16 in memory (converted where used)
    breast_mask: np.ndarray  # (H, W) bool
    transform: Transform
    spacing_mm: float
    landmarks: Any = None  # MammoDNNLib.landmarks.Landmarks (original pixels) or None

    def original_breast_mask(self) -> np.ndarray:
        return self.transform.mask_to_original(self.breast_mask.astype(np.uint8)).astype(bool)


@dataclass
class LesionRecord:
    """One lesion in one view, with its truth (``None`` where the source does not know it)."""

    view_index: int  # into LesionSet.views
    lesion_id: str
    type: str
    mask: LesionMask  # prepared grid
    pathology: str | None = None
    morphology: dict[str, str] = field(default_factory=dict)
    quadrant: str | None = None
    depth: float | None = None
    visibility: str | None = None  # phantom: "obvious" | "subtle" | "occult"
    geometric_quadrant: str | None = None  # landmark estimates at the true mask's centroid
    geometric_depth: float | None = None

    @property
    def malignant(self) -> int | None:
        return None if self.pathology is None else int(self.pathology == "malignant")


@dataclass
class LesionSet:
    views: list[LesionView]
    records: list[LesionRecord]
    source: dict[str, Any] = field(default_factory=dict)  # provenance (phantom seeds, manifest, spacing)

    def __len__(self) -> int:
        return len(self.records)

    def view_of(self, record: LesionRecord) -> LesionView:
        return self.views[record.view_index]

    def select(self, keep: Callable[[LesionRecord], bool]) -> "LesionSet":
        """The records ``keep`` accepts (views shared)."""
        return LesionSet(self.views, [r for r in self.records if keep(r)], dict(self.source))

    def for_localization(self) -> "LesionSet":
        return self.select(lambda r: r.quadrant is not None and r.depth is not None)

    def for_malignancy(self, include_occult: bool = False) -> "LesionSet":
        """Lesions with a known pathology that a reader (or detector) could see: occult projections are left
        out unless asked for."""
        return self.select(lambda r: r.pathology is not None and (include_occult or r.visibility != "occult"))

    @staticmethod
    def concatenate(sets: Sequence["LesionSet"]) -> "LesionSet":
        views: list[LesionView] = []
        records: list[LesionRecord] = []
        for part in sets:
            offset = len(views)
            views.extend(part.views)
            records.extend(dataclasses.replace(r, view_index=r.view_index + offset) for r in part.records)
        return LesionSet(views, records, {"parts": [p.source for p in sets]})

    def summary(self) -> dict[str, Any]:
        types: dict[str, int] = {}
        pathology: dict[str, int] = {}
        for r in self.records:
            types[r.type] = types.get(r.type, 0) + 1
            pathology[str(r.pathology)] = pathology.get(str(r.pathology), 0) + 1
        return {
            "lesion_views": len(self.records),
            "views": len(self.views),
            "studies": len({v.study_id for v in self.views}),
            "types": types,
            "pathology": pathology,
        }

    # -- files (npz: arrays + one JSON document; no pickles) -------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        views_meta, records_meta = [], []
        for i, v in enumerate(self.views):
            arrays[f"view{i}_image"] = np.asarray(v.image, dtype=np.float16)
            arrays[f"view{i}_breast"] = np.packbits(v.breast_mask, axis=None)
            views_meta.append(
                {
                    "study_id": v.study_id,
                    "key": v.key,
                    "view": v.view,
                    "shape": list(v.breast_mask.shape),
                    "transform": v.transform.to_dict(),
                    "spacing_mm": v.spacing_mm,
                    "landmarks": None if v.landmarks is None else v.landmarks.to_dict(),
                }
            )
        for j, r in enumerate(self.records):
            arrays[f"rec{j}_mask"] = np.packbits(r.mask.array, axis=None)
            meta = dataclasses.asdict(dataclasses.replace(r, mask=None))  # type: ignore[arg-type]
            meta.pop("mask")
            meta["mask_origin"] = list(r.mask.origin)
            meta["mask_shape"] = list(r.mask.array.shape)
            records_meta.append(meta)
        document = {
            "format": LESION_SET_FORMAT,
            "version": LESION_SET_VERSION,
            "source": self.source,
            "views": views_meta,
            "records": records_meta,
        }
        arrays["document"] = np.array(json.dumps(document))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LesionSet":
        from ..landmarks import Landmarks

        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
            document = json.loads(str(data["document"]))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"not a lesion set ({exc})") from None
        if document.get("format") != LESION_SET_FORMAT or document.get("version") != LESION_SET_VERSION:
            raise InputError(path, f"not a {LESION_SET_FORMAT} version {LESION_SET_VERSION} file")
        views = []
        for i, meta in enumerate(document["views"]):
            shape = tuple(meta["shape"])
            breast = (
                np.unpackbits(data[f"view{i}_breast"], count=shape[0] * shape[1]).reshape(shape).astype(bool)
            )
            views.append(
                LesionView(
                    meta["study_id"],
                    meta["key"],
                    meta["view"],
                    data[f"view{i}_image"],
                    breast,
                    Transform.from_dict(meta["transform"]),
                    float(meta["spacing_mm"]),
                    None if meta["landmarks"] is None else Landmarks.from_dict(meta["landmarks"]),
                )
            )
        records = []
        for j, meta in enumerate(document["records"]):
            shape = tuple(meta.pop("mask_shape"))
            origin = tuple(meta.pop("mask_origin"))
            array = np.unpackbits(data[f"rec{j}_mask"], count=shape[0] * shape[1]).reshape(shape).astype(bool)
            records.append(LesionRecord(mask=LesionMask(array, origin), **meta))
        return cls(views, records, document.get("source", {}))


PHANTOM_PROFILES: dict[str, dict[str, Any]] = {
    # The generator's defaults without normal studies (they hold no lesions): what held-out sets use.
    "default": {"normal_study_fraction": 0.0},
    # More lesions per study for training: both breasts affected, two or three lesions each. Lesions look the
    # same; only their number per study changes, which halves the generation time per lesion.
    "dense": {
        "normal_study_fraction": 0.0,
        "second_breast_probability": 1.0,
        "lesions_per_breast_weights": {"2": 0.5, "3": 0.5},
    },
}


def phantom_config_for_lesions(profile: str = "default"):
    """The phantom configuration of a :data:`PHANTOM_PROFILES` profile (lesion settings over the defaults)."""
    from ..phantom import LesionConfig, PhantomConfig

    if profile not in PHANTOM_PROFILES:
        raise MammoDNNError(
            f"unknown phantom profile {profile!r}; expected one of {', '.join(PHANTOM_PROFILES)}"
        )
    return PhantomConfig(lesions=LesionConfig(**PHANTOM_PROFILES[profile]))


def phantom_lesion_set(
    count: int,
    seed: int,
    size: str = "medium",
    spacing_mm: float = 0.4,
    *,
    first_index: int = 0,
    profile: str = "default",
    progress: Callable[[int, int], None] | None = None,
) -> LesionSet:
    """Lesions of ``count`` phantom studies (study seeds ``study_seed(seed, first_index + i)``, configuration
    ``profile`` of :data:`PHANTOM_PROFILES`), prepared at ``spacing_mm``, with their truth and the geometric
    landmark estimates at each true mask's centroid."""
    from ..phantom import generate_study, study_seed
    from ..preprocess import PreprocessConfig, prepare_view

    config = phantom_config_for_lesions(profile)
    prep_config = PreprocessConfig(spacing_mm=spacing_mm)
    views: list[LesionView] = []
    records: list[LesionRecord] = []
    skipped = 0
    for i in range(count):
        index = first_index + i
        phantom = generate_study(study_seed(seed, index), size, config, study_id=f"phantom-{seed}-{index}")
        truth = phantom.truth
        for key, view in phantom.study.views.items():
            lesions = truth.lesions_in(key)
            if not lesions:
                continue
            try:
                prepared = prepare_view(view, prep_config)
            except MammoDNNError as exc:
                log.warning("%s %s: not prepared (%s); its lesions are left out", truth.study_id, key, exc)
                skipped += len(lesions)
                continue
            shape = (prepared.transform.prepared_size[1], prepared.transform.prepared_size[0])
            lesion_view = LesionView(
                truth.study_id,
                key,
                view.view,
                prepared.image.astype(np.float16),
                prepared.breast_mask,
                prepared.transform,
                spacing_mm,
                prepared.landmarks,
            )
            original_breast = None
            new_records = []
            for lesion in lesions:
                lv = lesion.views[key]
                mask = _mask_to_prepared(lv.mask, prepared.transform, shape)
                if mask.empty:
                    skipped += 1
                    continue
                if original_breast is None:
                    original_breast = lesion_view.original_breast_mask()
                geo_q, geo_d = geometric_estimates(lesion_view, mask, view.view, original_breast)
                new_records.append(
                    LesionRecord(
                        view_index=len(views),
                        lesion_id=lesion.id,
                        type=lesion.type,
                        mask=mask,
                        pathology=lesion.pathology,
                        morphology=dict(lesion.morphology),
                        quadrant=lv.quadrant,
                        depth=float(lv.depth),
                        visibility=lv.visibility,
                        geometric_quadrant=geo_q,
                        geometric_depth=geo_d,
                    )
                )
            if new_records:
                views.append(lesion_view)
                records.extend(new_records)
        if progress is not None:
            progress(i + 1, count)
    if skipped:
        log.info("%d lesion projections left out (outside the prepared crop or view not prepared)", skipped)
    return LesionSet(views, records, _phantom_source(count, seed, size, spacing_mm, first_index, profile))


def _phantom_source(
    count: int, seed: int, size: str, spacing_mm: float, first_index: int, profile: str
) -> dict[str, Any]:
    """The provenance of the lesions of phantom studies ``first_index ..`` of ``seed``."""
    return {
        "source": "phantom",
        "seed": seed,
        "studies": count,
        "first_index": first_index,
        "size": size,
        "spacing_mm": spacing_mm,
        "profile": profile,
        "lesion_config": PHANTOM_PROFILES[profile],
        "study_seeds": f"MammoDNNLib.phantom.study_seed({seed}, i) for i in "
        f"[{first_index}, {first_index + count})",
    }


def _mask_to_prepared(mask: LesionMask, transform: Transform, shape: tuple[int, int]) -> LesionMask:
    """An original-grid lesion mask on the prepared grid (nearest neighbour; only the mask's
    neighbourhood)."""
    if mask is None or mask.empty:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    box = transform.boxes_to_prepared([mask.box])[0]
    x0, y0 = max(0, int(math.floor(box[0])) - 1), max(0, int(math.floor(box[1])) - 1)
    x1, y1 = min(shape[1], int(math.ceil(box[2])) + 1), min(shape[0], int(math.ceil(box[3])) + 1)
    if x1 <= x0 or y1 <= y0:
        return LesionMask(np.zeros((0, 0), bool), (0, 0))
    # Sample the original mask at the centres of the prepared pixels of the window.
    xs = np.arange(x0, x1) + 0.5
    ys = np.arange(y0, y1) + 0.5
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    original = transform.to_original(grid)
    cols = np.floor(original[:, 0]).astype(int) - mask.origin[0]
    rows = np.floor(original[:, 1]).astype(int) - mask.origin[1]
    inside = (rows >= 0) & (rows < mask.array.shape[0]) & (cols >= 0) & (cols < mask.array.shape[1])
    values = np.zeros(len(grid), bool)
    values[inside] = mask.array[rows[inside], cols[inside]]
    window = values.reshape(y1 - y0, x1 - x0)
    if not window.any():
        # A lesion smaller than a prepared pixel: keep the pixel holding its centre.
        centre = transform.to_prepared([[(mask.box[0] + mask.box[2]) / 2, (mask.box[1] + mask.box[3]) / 2]])[
            0
        ]
        c, r = int(np.clip(centre[0], 0, shape[1] - 1)), int(np.clip(centre[1], 0, shape[0] - 1))
        return LesionMask(np.ones((1, 1), bool), (c, r))
    return LesionMask.from_full_crop(window, (x0, y0))


def sample_lesion_set(
    samples: Iterable, spacing_mm: float, source: Mapping[str, Any] | None = None
) -> LesionSet:
    """Lesions of prepared training samples (:class:`~MammoDNNLib.data.samples.StudySample`, e.g. from a
    manifest's :class:`~MammoDNNLib.data.dataset.StudyDataset`) whose views carry masks and attributes.

    ``spacing_mm`` is the spacing the samples were prepared at. Samples have no landmarks, so there are no
    geometric estimates; lesions without a mask use their box.
    """
    from ..vocabulary import class_key, split_view_key

    views: list[LesionView] = []
    records: list[LesionRecord] = []
    for sample in samples:
        for key, view in sample.views.items():
            target = view.target
            if target is None or len(target.labels) == 0:
                continue
            spacing = float(spacing_mm)
            lesion_view = LesionView(
                sample.study_id,
                key,
                split_view_key(key)[1],
                view.image.astype(np.float16),
                np.asarray(view.breast_mask, bool),
                view.transform,
                spacing,
                None,
            )
            shape = view.image.shape
            new_records = []
            for i, label in enumerate(target.labels):
                attributes = target.attributes[i] if i < len(target.attributes) else {}
                if target.masks is not None and not target.masks[i].empty:
                    mask = target.masks[i]
                else:
                    x0, y0, x1, y1 = target.boxes[i]
                    mask = LesionMask.from_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], shape)
                if mask.empty:
                    continue
                new_records.append(
                    LesionRecord(
                        view_index=len(views),
                        lesion_id=target.lesion_ids[i],
                        type=class_key(int(label)),
                        mask=mask,
                        pathology=attributes.get("pathology"),
                        morphology=dict(attributes.get("morphology") or {}),
                        quadrant=attributes.get("quadrant"),
                        depth=attributes.get("depth"),
                    )
                )
            if new_records:
                views.append(lesion_view)
                records.extend(new_records)
    return LesionSet(views, records, dict(source or {"source": "samples"}))


def cached_phantom_lesion_set(
    cache_dir: str | Path | None,
    count: int,
    seed: int,
    size: str,
    spacing_mm: float,
    *,
    first_index: int = 0,
    profile: str = "default",
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 25,
) -> LesionSet:
    """:func:`phantom_lesion_set` through an ``.npz`` cache: the studies are made in chunks of ``chunk``, each
    cached under a name holding every argument and the library version, so an interrupted run (or a parallel
    one) reuses what is done."""
    from .. import __version__

    if cache_dir is None:
        return phantom_lesion_set(
            count, seed, size, spacing_mm, first_index=first_index, profile=profile, progress=progress
        )
    parts = []
    done = 0
    for start in range(first_index, first_index + count, chunk):
        n = min(chunk, first_index + count - start)
        key = json.dumps(
            {
                "count": n,
                "seed": seed,
                "size": size,
                "spacing_mm": spacing_mm,
                "first_index": start,
                "profile": PHANTOM_PROFILES[profile],
                "library": __version__,
                "format": LESION_SET_VERSION,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        path = (
            Path(cache_dir)
            / f"phantom-lesions-{profile}-{size}-{spacing_mm:g}mm-s{seed}-i{start}-n{n}-{digest}.npz"
        )
        part = None
        if path.is_file():
            try:
                part = LesionSet.load(path)
            except InputError as exc:
                log.warning("ignoring an unreadable cache file: %s", exc)
        if part is None:
            offset = done
            part = phantom_lesion_set(
                n,
                seed,
                size,
                spacing_mm,
                first_index=start,
                profile=profile,
                progress=None if progress is None else (lambda i, _n, o=offset: progress(o + i, count)),
            )
            part.save(path)
        parts.append(part)
        done += n
        if progress is not None:
            progress(done, count)
    merged = LesionSet.concatenate(parts)
    merged.source = _phantom_source(count, seed, size, spacing_mm, first_index, profile)
    return merged


@dataclass
class PhantomDataSpec:
    """Which phantoms a run trains and validates on.

    Training studies are made per size in turn: size ``sizes[k]`` takes ``studies[k]`` consecutive study
    indices of ``seed``; validation studies take the indices after all of them (split over the sizes in the
    same proportions), so training and validation never share a study, and a different ``seed`` (the held-out
    sets of the benchmarks and tests) gives other studies.
    """

    studies: tuple[int, ...] = (100,)
    sizes: tuple[str, ...] = ("small",)
    validation_studies: int = 30
    seed: int = 1
    spacing_mm: float = 0.4
    profile: str = "dense"  # PHANTOM_PROFILES

    def __post_init__(self) -> None:
        self.studies = tuple(int(n) for n in self.studies)
        self.sizes = tuple(str(s) for s in self.sizes)
        if len(self.studies) != len(self.sizes) or not self.studies or min(self.studies) < 1:
            raise MammoDNNError("give one positive study count per phantom size")
        if self.validation_studies < 1:
            raise MammoDNNError("validation needs at least one phantom study")

    def validation_counts(self) -> list[int]:
        total = sum(self.studies)
        counts = [int(round(self.validation_studies * n / total)) for n in self.studies]
        counts[0] += self.validation_studies - sum(counts)
        return counts

    def to_dict(self) -> dict[str, Any]:
        train, val, start = [], [], 0
        for n, size in zip(self.studies, self.sizes):
            train.append({"size": size, "studies": n, "study_indices": [start, start + n]})
            start += n
        for n, size in zip(self.validation_counts(), self.sizes):
            if n:
                val.append({"size": size, "studies": n, "study_indices": [start, start + n]})
            start += n
        return {
            "source": "phantom",
            "seed": self.seed,
            "spacing_mm": self.spacing_mm,
            "train": train,
            "validation": val,
            "study_seed": "MammoDNNLib.phantom.study_seed(seed, index)",
            "profile": self.profile,
            "lesion_config": PHANTOM_PROFILES[self.profile],
        }


def phantom_training_sets(
    spec: PhantomDataSpec,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LesionSet, LesionSet]:
    """(training, validation) lesion sets of ``spec`` (cached per chunk of studies in ``cache_dir``)."""
    train_runs, val_runs, start = [], [], 0
    for n, size in zip(spec.studies, spec.sizes):
        train_runs.append((n, size, start))
        start += n
    for n, size in zip(spec.validation_counts(), spec.sizes):
        if n:
            val_runs.append((n, size, start))
        start += n
    total = sum(spec.studies) + spec.validation_studies
    common = (spec.seed, spec.spacing_mm, spec.profile, progress, total)
    train_parts = _phantom_runs(cache_dir, train_runs, *common, done=0)
    val_parts = _phantom_runs(cache_dir, val_runs, *common, done=sum(spec.studies))
    train, val = LesionSet.concatenate(train_parts), LesionSet.concatenate(val_parts)
    source = spec.to_dict()
    train.source, val.source = {**source, "part": "train"}, {**source, "part": "validation"}
    return train, val


def _phantom_runs(
    cache_dir: str | Path | None,
    runs: Sequence[tuple[int, str, int]],
    seed: int,
    spacing_mm: float,
    profile: str,
    progress: Callable[[int, int], None] | None,
    total: int,
    done: int = 0,
) -> list[LesionSet]:
    """Cached lesion sets of runs ``(count, size, first index)`` of consecutive phantom studies of ``seed``;
    ``progress`` counts them as studies ``done + 1 ..`` of ``total``."""
    parts = []
    for n, size, first in runs:
        offset = done
        parts.append(
            cached_phantom_lesion_set(
                cache_dir,
                n,
                seed,
                size,
                spacing_mm,
                first_index=first,
                profile=profile,
                progress=None if progress is None else (lambda i, _n, o=offset: progress(o + i, total)),
            )
        )
        done += n
    return parts


def phantom_heldout_set(
    studies: Sequence[int],
    sizes: Sequence[str],
    seed: int,
    spacing_mm: float,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    profile: str = "default",
) -> LesionSet:
    """Held-out lesions: ``studies[k]`` studies of size ``sizes[k]`` from ``seed`` (consecutive indices), with
    the generator's default lesion mix (``profile``)."""
    runs, start = [], 0
    for n, size in zip(studies, sizes):
        runs.append((int(n), size, start))
        start += int(n)
    parts = _phantom_runs(cache_dir, runs, seed, spacing_mm, profile, progress, total=start)
    merged = LesionSet.concatenate(parts)
    merged.source = {
        "source": "phantom",
        "part": "held-out",
        "seed": seed,
        "spacing_mm": spacing_mm,
        "sizes": list(sizes),
        "studies": [int(n) for n in studies],
        "profile": profile,
        "lesion_config": PHANTOM_PROFILES[profile],
    }
    return merged


def manifest_lesion_set(
    manifest_path: str | Path, splits: Sequence[str], spacing_mm: float, cache_dir: str | Path | None = None
) -> LesionSet:
    """Lesions of a training manifest's ``splits`` (views prepared at ``spacing_mm``; quadrant, depth,
    pathology and morphology from the manifest's lesion attributes)."""
    from ..data.dataset import StudyDataset, StudyLoader
    from ..data.manifest import load_manifest
    from ..preprocess import PreprocessConfig

    manifest = load_manifest(manifest_path)
    loader = StudyLoader(
        PreprocessConfig(spacing_mm=spacing_mm), None if cache_dir is None else Path(cache_dir)
    )
    dataset = StudyDataset(manifest, loader, splits=tuple(splits), augment=None)
    samples = (dataset[i] for i in range(len(dataset)))
    return sample_lesion_set(
        samples,
        spacing_mm,
        {
            "source": "manifest",
            "manifest": str(Path(manifest_path).resolve()),
            "splits": list(splits),
            "spacing_mm": spacing_mm,
        },
    )


# ============================================================================================================
# ====
# Training loop pieces shared by both networks
# ============================================================================================================
# ====
@dataclass
class TrainOptions:
    """Options of one training run (both networks)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    threads: int | None = 1  # torch CPU threads (None: leave torch's setting)
    perturbation: MaskPerturbation = field(default_factory=MaskPerturbation)
    progress: bool = False  # a tqdm bar on stderr
    log_path: Path | None = None  # JSONL, one line per epoch
    checkpoint_dir: Path | None = None  # resumable checkpoints (one per epoch)
    resume: bool = False
    max_seconds: float | None = None  # stop after the epoch that passes this wall time (still keeps the best)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["perturbation"] = self.perturbation.to_dict()
        for key in ("log_path", "checkpoint_dir"):
            data[key] = None if data[key] is None else str(data[key])
        return data


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up from 10 % then cosine decay to 1 % of ``base``."""
    if warmup > 0 and step < warmup:
        return base * (0.1 + 0.9 * step / warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast/brightness/gamma-like change and noise (gray-normalized units)."""
    gain = rng.uniform(0.85, 1.15)
    shift = rng.uniform(-0.08, 0.08)
    out = image * gain + shift
    if rng.random() < 0.5:
        out = out + rng.normal(0.0, rng.uniform(0.0, 0.03), size=image.shape).astype(np.float32)
    return out.astype(np.float32)


class _Run:
    """The loop both networks train with (:meth:`fit`) and its bookkeeping: log file, checkpoints, best weights,
    progress bar, time limit."""

    def __init__(self, net: torch.nn.Module, options: TrainOptions, records: int, name: str):
        self.net = net
        self.options = options
        self.name = name
        self.steps_per_epoch = max(1, math.ceil(records / options.batch_size))
        self.total_steps = self.steps_per_epoch * options.epochs
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
        self.rng = np.random.default_rng(options.seed)
        self.start_epoch = 0
        self.best_score = -math.inf
        self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self.best_epoch = -1
        self.history: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.bar = None
        if options.checkpoint_dir is not None and options.resume:
            self._resume()

    # checkpoints: the loop's state in training.checkpoint's format, the best weights beside it
    def _resume(self) -> None:
        from safetensors.torch import load_file

        from .checkpoint import latest_checkpoint, load_checkpoint

        folder = Path(self.options.checkpoint_dir)
        meta = latest_checkpoint(folder)
        if meta is None:
            return
        state = load_checkpoint(meta, self.net, self.optimizer, self.rng)
        self.start_epoch = state.iteration
        extra = state.extra
        self.best_score = float(extra.get("best_score", -math.inf))
        self.best_epoch = int(extra.get("best_epoch", -1))
        self.history = list(extra.get("history", []))
        self.elapsed_before = float(extra.get("elapsed_seconds", 0.0))
        best = folder / "best.safetensors"
        if best.is_file():
            self.best_state = load_file(str(best))
        log.info("%s: resuming after epoch %d", self.name, self.start_epoch)

    def _checkpoint(self, epoch: int) -> None:
        from safetensors.torch import save_file

        from .checkpoint import save_checkpoint

        folder = Path(self.options.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.best_state.items()}, str(folder / "best.safetensors"))
        save_checkpoint(
            folder,
            epoch,
            self.net,
            self.optimizer,
            self.rng,
            extra={
                "best_score": self.best_score if math.isfinite(self.best_score) else None,
                "best_epoch": self.best_epoch,
                "history": self.history,
                "elapsed_seconds": self.elapsed,
            },
        )

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def set_lr(self, step: int) -> float:
        warmup = int(round(self.options.warmup_epochs * self.steps_per_epoch))
        lr = lr_at(step, self.total_steps, warmup, self.options.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def open_bar(self):
        if self.options.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total_steps,
                initial=self.start_epoch * self.steps_per_epoch,
                desc=f"train {self.name}",
                unit="step",
                dynamic_ncols=True,
            )
        return self.bar

    def end_epoch(
        self, epoch: int, train: dict[str, float], validation: dict[str, Any], score: float
    ) -> bool:
        """Record an epoch; returns False when the time limit says stop."""
        improved = score >= self.best_score  # ties go to the later, longer-trained epoch
        if improved:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        entry = {
            "epoch": epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": round(self.elapsed, 1),
            **{f"train_{k}": round(v, 5) for k, v in train.items()},
            **{f"val_{k}": v for k, v in validation.items()},
            "score": round(score, 5),
            "best": improved,
        }
        self.history.append(entry)
        if self.options.log_path is not None:
            Path(self.options.log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(self.options.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        if self.bar is not None:
            self.bar.set_postfix(
                {k: v for k, v in entry.items() if k.startswith("val_") and isinstance(v, float)}
            )
        log.debug("%s epoch %d: %s", self.name, epoch + 1, entry)
        if self.options.checkpoint_dir is not None:
            self._checkpoint(epoch + 1)
        if self.options.max_seconds is not None and self.elapsed > self.options.max_seconds:
            log.warning("%s: time limit reached after epoch %d", self.name, epoch + 1)
            return False
        return True

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.net.load_state_dict(self.best_state)
        self.net.eval()

    def fit(
        self,
        records: Sequence[LesionRecord],
        batch_loss: Callable[[list[LesionRecord]], tuple[torch.Tensor, dict[str, float]]],
        validate: Callable[[], tuple[dict[str, Any], float]],
    ) -> None:
        """Train on ``records`` (shuffled each epoch, ``options.batch_size`` at a time; ``batch_loss`` gives a
        batch's loss and its parts), score each epoch with ``validate`` (figures, score), keep the best."""
        self.open_bar()
        size = self.options.batch_size
        for epoch in range(self.start_epoch, self.options.epochs):
            self.net.train()
            order = self.rng.permutation(len(records))
            sums: dict[str, float] = {}
            for b in range(self.steps_per_epoch):
                batch = [records[i] for i in order[b * size : (b + 1) * size]]
                if not batch:
                    continue
                self.set_lr(epoch * self.steps_per_epoch + b)
                loss, parts = batch_loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.bar is not None:
                    self.bar.update(1)
            self.net.eval()
            validation, score = validate()
            train = {k: v / self.steps_per_epoch for k, v in sums.items()}
            if not self.end_epoch(epoch, train, validation, score):
                break
        self.finish()


def _start(options: TrainOptions) -> None:
    """Thread limit and torch seed of a run (before its network is made)."""
    if options.threads:
        torch.set_num_threads(int(options.threads))
    torch.manual_seed(options.seed)


def _validation_masks(validation: LesionSet, options: TrainOptions) -> list[LesionMask]:
    """The detection-like masks a run validates (and then calibrates or chooses estimators) on."""
    return perturbed_masks(validation, options.seed + 7919, options.perturbation)


def perturbed_masks(lesions: LesionSet, seed: int, config: MaskPerturbation) -> list[LesionMask]:
    """One detection-like mask per record, the same for every call with the same seed (for validation)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in lesions.records:
        view = lesions.view_of(r)
        out.append(
            perturb_mask(
                r.mask, view.breast_mask.shape, view.spacing_mm, rng, dataclasses.replace(config, keep=0.0)
            )
        )
    return out


# ============================================================================================================
# ====
# Localization
# ============================================================================================================
# ====
@dataclass
class LocalizationResult:
    model: LocalizationModel
    history: list[dict[str, Any]]
    best_epoch: int
    seconds: float
    selection: dict[str, Any]  # validation figures behind the estimator choice


def _canvases(lesions: LesionSet, config: LocalizationConfig) -> dict[int, Any]:
    used = sorted({r.view_index for r in lesions.records})
    return {i: fit_view(np.asarray(lesions.views[i].image, np.float32), config.inputs) for i in used}


def _localization_targets(
    lesions: LesionSet, records: Sequence[LesionRecord]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    views = [lesions.view_of(r).view for r in records]
    index = torch.tensor([view_position_index(v) for v in views])
    quadrant = torch.tensor([QUADRANTS[v].index(r.quadrant) for v, r in zip(views, records)])
    depth = torch.tensor([float(r.depth) for r in records], dtype=torch.float32)
    return index, quadrant, depth


def localization_loss(
    out: Mapping[str, torch.Tensor],
    view_index: torch.Tensor,
    quadrant: torch.Tensor,
    depth: torch.Tensor,
    depth_weight: float = 4.0,
    label_smoothing: float = 0.05,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of each lesion's own view-position head + ``depth_weight`` x smooth-L1 of the depth."""
    ce = out["depth"].new_zeros(())
    n = 0
    for i, v in enumerate(VIEW_POSITIONS):
        sel = view_index == i
        if sel.any():
            ce = ce + F.cross_entropy(
                out[v][sel], quadrant[sel], label_smoothing=label_smoothing, reduction="sum"
            )
            n += int(sel.sum())
    ce = ce / max(n, 1)
    l1 = F.smooth_l1_loss(out["depth"], depth, beta=0.05)
    return ce + depth_weight * l1, {"quadrant_ce": float(ce.detach()), "depth_l1": float(l1.detach())}


def train_localization(
    train: LesionSet,
    validation: LesionSet,
    config: LocalizationConfig | None = None,
    options: TrainOptions | None = None,
) -> LocalizationResult:
    """Train the localization network; keep the epoch best on validation; choose the estimators there."""
    config = config or LocalizationConfig()
    options = options or TrainOptions()
    _start(options)
    train = train.for_localization()
    validation = validation.for_localization()
    if len(train) == 0 or len(validation) == 0:
        raise MammoDNNError("localization training needs lesions with quadrant and depth in both sets")
    net = LocalizationNet(config)
    run = _Run(net, options, len(train), "localization")
    canvases = _canvases(train, config)
    val_model = LocalizationModel(config, net)
    val_masks = _validation_masks(validation, options)
    val_inputs = _localization_inputs(validation, config, None)
    val_inputs_perturbed = _localization_inputs(validation, config, val_masks)

    def batch_loss(batch: list[LesionRecord]) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = []
        for r in batch:
            view = train.view_of(r)
            mask = perturb_mask(r.mask, view.breast_mask.shape, view.spacing_mm, run.rng, options.perturbation)
            canvas = canvases[r.view_index]
            inputs.append(np.stack([_intensity(canvas.image, run.rng), mask_on_canvas(mask, canvas)]))
        view_index, quadrant, depth = _localization_targets(train, batch)
        out = net(torch.from_numpy(np.stack(inputs)), view_index)
        return localization_loss(out, view_index, quadrant, depth)

    def validate() -> tuple[dict[str, Any], float]:
        val = _localization_val(val_model, validation, val_inputs, val_inputs_perturbed)
        score = 0.5 * (val["accuracy"] + val["accuracy_perturbed"]) - 2.0 * 0.5 * (
            val["depth_mae"] + val["depth_mae_perturbed"]
        )
        return val, score

    run.fit(train.records, batch_loss, validate)
    model = LocalizationModel(config, net)
    selection = choose_localization_estimators(model, validation, val_masks)
    return LocalizationResult(model, run.history, run.best_epoch + 1, run.elapsed, selection)


def _localization_inputs(
    lesions: LesionSet, config: LocalizationConfig, masks: Sequence[LesionMask] | None
) -> np.ndarray:
    canvases = _canvases(lesions, config)
    return np.stack(
        [
            localization_input(canvases[r.view_index], r.mask if masks is None else masks[i], config.inputs)
            for i, r in enumerate(lesions.records)
        ]
    )


def _localization_val(
    model: LocalizationModel, lesions: LesionSet, inputs: np.ndarray, inputs_perturbed: np.ndarray
) -> dict[str, float]:
    views = [r.view for r in (lesions.view_of(x) for x in lesions.records)]
    out = {}
    for suffix, x in (("", inputs), ("_perturbed", inputs_perturbed)):
        probabilities, depths = _batched_localization(model, x, views)
        truth_q = [r.quadrant for r in lesions.records]
        predicted = [QUADRANTS[v][int(np.argmax(p))] for v, p in zip(views, probabilities)]
        out[f"accuracy{suffix}"] = round(float(np.mean([a == b for a, b in zip(predicted, truth_q)])), 4)
        out[f"depth_mae{suffix}"] = round(
            float(np.mean(np.abs(depths - [r.depth for r in lesions.records]))), 4
        )
    return out


def _batched_localization(
    model: LocalizationModel, inputs: np.ndarray, views: Sequence[str], batch: int = 128
) -> tuple[list[np.ndarray], np.ndarray]:
    probabilities: list[np.ndarray] = []
    depths = []
    for start in range(0, len(inputs), batch):
        p, d = model.network_outputs(inputs[start : start + batch], views[start : start + batch])
        probabilities.extend(p)
        depths.append(d)
    return probabilities, np.concatenate(depths) if depths else np.zeros(0)


def localization_predictions(
    model: LocalizationModel, lesions: LesionSet, masks: Sequence[LesionMask] | None = None
) -> list:
    """:class:`~MammoDNNLib.models.localization.LocalizationDetails` per record (true masks unless ``masks``),
    computed view by view as the pipeline does; geometric estimates for true masks come from the records."""
    by_view: dict[int, list[int]] = {}
    for i, r in enumerate(lesions.records):
        by_view.setdefault(r.view_index, []).append(i)
    out: list = [None] * len(lesions.records)
    for view_index, items in by_view.items():
        view = lesions.views[view_index]
        chosen = [lesions.records[i].mask if masks is None else masks[i] for i in items]
        geometric = None
        if masks is None:
            geometric = [
                (lesions.records[i].geometric_quadrant, lesions.records[i].geometric_depth) for i in items
            ]
        prepared_like = _Float32View(view)
        details = model.predict_details(prepared_like, chosen, view.view, geometric=geometric)
        for i, d in zip(items, details):
            out[i] = d
    return out


class _Float32View:
    """A :class:`LesionView` whose image reads as float32 (models expect the prepared float image)."""

    def __init__(self, view: LesionView):
        self._view = view
        self.image = np.asarray(view.image, np.float32)

    def __getattr__(self, name: str):
        return getattr(self._view, name)


def choose_localization_estimators(
    model: LocalizationModel, validation: LesionSet, perturbed_masks: Sequence[LesionMask] | None = None
) -> dict[str, Any]:
    """Fit, per view position, the combined depth's weight ``w`` (grid 0..1 by 0.05, lowest MAE) and the
    combined
    quadrant's ``beta`` (highest accuracy) on validation, and set in ``model.config`` the estimator (network,
    geometric, combined) that is best there overall, true and perturbed masks pooled. Ties go to the simpler
    estimator (network, then combined). Returns the validation figures."""
    validation = validation.for_localization()
    details = localization_predictions(model, validation)
    records = list(validation.records)
    if perturbed_masks is not None:
        details = details + localization_predictions(model, validation, perturbed_masks)
        records = records * 2
    config = model.config
    with_geo = [
        i for i, d in enumerate(details) if d.geometric_depth is not None and d.geometric_quadrant is not None
    ]
    figures: dict[str, Any] = {"lesion_views": len(records), "with_geometric": len(with_geo)}
    if len(with_geo) < 10:
        config.depth_estimator = config.quadrant_estimator = "network"
        figures["note"] = "too few geometric estimates on validation; the network is used alone"
        figures["chosen"] = {"depth": "network", "quadrant": "network"}
        return figures
    weights = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    betas = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0]
    depth_errors: dict[str, list[float]] = {"network": [], "geometric": [], "combined": []}
    quadrant_hits: dict[str, list[bool]] = {"network": [], "geometric": [], "combined": []}
    per_view: dict[str, Any] = {}
    for view in VIEW_POSITIONS:
        items = [i for i in with_geo if details[i].view == view]
        if not items:
            continue
        truth = np.array([records[i].depth for i in items])
        net = np.array([details[i].network_depth for i in items])
        geo = np.array([details[i].geometric_depth for i in items])
        mae_by_w = {float(w): float(np.mean(np.abs(w * net + (1 - w) * geo - truth))) for w in weights}
        best_w = min(mae_by_w, key=lambda w: (mae_by_w[w], -w))
        config.depth_blend[view] = DepthBlend(best_w, round(1.0 - best_w, 2), 0.0)
        names = QUADRANTS[view]
        net_p = [np.array([details[i].network_quadrant_probabilities[n] for n in names]) for i in items]
        truth_q = [records[i].quadrant for i in items]
        accuracy = {}
        for beta in betas:
            predicted = [
                names[int(np.argmax(combine_quadrant(p, details[i].geometric_quadrant, view, beta)))]
                for p, i in zip(net_p, items)
            ]
            accuracy[beta] = float(np.mean([a == b for a, b in zip(predicted, truth_q)]))
        best_beta = max(betas, key=lambda b: (accuracy[b], -b))
        config.quadrant_geometric_weight[view] = float(best_beta)
        blend = config.depth_blend[view](net, geo)
        depth_errors["network"] += np.abs(net - truth).tolist()
        depth_errors["geometric"] += np.abs(geo - truth).tolist()
        depth_errors["combined"] += np.abs(blend - truth).tolist()
        quadrant_hits["network"] += [names[int(np.argmax(p))] == t for p, t in zip(net_p, truth_q)]
        quadrant_hits["geometric"] += [details[i].geometric_quadrant == t for i, t in zip(items, truth_q)]
        quadrant_hits["combined"] += [
            names[int(np.argmax(combine_quadrant(p, details[i].geometric_quadrant, view, best_beta)))] == t
            for p, i, t in zip(net_p, items, truth_q)
        ]
        per_view[view] = {
            "n": len(items),
            "depth_weight_network": best_w,
            "quadrant_beta": best_beta,
            "depth_mae_by_weight": {str(w): round(v, 4) for w, v in mae_by_w.items()},
            "quadrant_accuracy_by_beta": {str(b): round(a, 4) for b, a in accuracy.items()},
        }
    maes = {k: float(np.mean(v)) for k, v in depth_errors.items()}
    accs = {k: float(np.mean(v)) for k, v in quadrant_hits.items()}
    config.depth_estimator = min(maes, key=lambda k: (round(maes[k], 6), ESTIMATOR_ORDER[k]))
    config.quadrant_estimator = max(accs, key=lambda k: (round(accs[k], 6), -ESTIMATOR_ORDER[k]))
    figures.update(
        {
            "depth_mae": {k: round(v, 4) for k, v in maes.items()},
            "quadrant_accuracy": {k: round(v, 4) for k, v in accs.items()},
            "per_view": per_view,
            "chosen": {
                "depth": config.depth_estimator,
                "quadrant": config.quadrant_estimator,
                "depth_blend": {v: dataclasses.asdict(b) for v, b in config.depth_blend.items()},
                "quadrant_geometric_weight": dict(config.quadrant_geometric_weight),
            },
        }
    )
    return figures


ESTIMATOR_ORDER = {"network": 0, "combined": 1, "geometric": 2}  # ties go to the simpler network


def evaluate_localization(
    model: LocalizationModel,
    lesions: LesionSet,
    perturb_seed: int | None = None,
    perturbation: MaskPerturbation = MaskPerturbation(),
) -> dict[str, Any]:
    """Quadrant accuracy per view position (network, geometric, combined, configured) with the confusion
    matrix
    of the configured estimator, and depth MAE (the same four, overall and per view position), on the true
    masks or, with ``perturb_seed``, on detection-like masks made from them (:func:`perturbed_masks`).
    Geometric and combined figures are over the lesions with a geometric estimate."""
    lesions = lesions.for_localization()
    masks = None if perturb_seed is None else perturbed_masks(lesions, perturb_seed, perturbation)
    details = localization_predictions(model, lesions, masks)
    records = lesions.records
    out: dict[str, Any] = {
        "lesion_views": len(records),
        "estimators": {"quadrant": model.config.quadrant_estimator, "depth": model.config.depth_estimator},
    }
    truth_depth = np.array([r.depth for r in records])
    views = np.array([d.view for d in details])
    has_geo = np.array([d.geometric_depth is not None for d in details])
    net = np.array([d.network_depth for d in details])
    final = np.array([d.depth for d in details])
    geo = np.array([d.geometric_depth if d.geometric_depth is not None else np.nan for d in details])
    blend = net.copy()
    for view in VIEW_POSITIONS:
        sel = (views == view) & has_geo
        blend[sel] = model.config.depth_blend[view](net[sel], geo[sel])
    depth: dict[str, Any] = {}
    for label, sel in [("all", np.ones(len(records), bool))] + [(v, views == v) for v in VIEW_POSITIONS]:
        if not sel.any():
            continue
        entry: dict[str, Any] = {
            "n": int(sel.sum()),
            "network": _mae(net[sel], truth_depth[sel]),
            "configured": _mae(final[sel], truth_depth[sel]),
        }
        g = sel & has_geo
        if g.any():
            entry.update(
                {
                    "n_with_geometric": int(g.sum()),
                    "network_where_geometric": _mae(net[g], truth_depth[g]),
                    "geometric": _mae(geo[g], truth_depth[g]),
                    "combined": _mae(blend[g], truth_depth[g]),
                }
            )
        depth[label] = entry
    out["depth_mae"] = depth
    quadrant: dict[str, Any] = {}
    for view in VIEW_POSITIONS:
        names = QUADRANTS[view]
        beta = model.config.quadrant_geometric_weight[view]
        items = [i for i, d in enumerate(details) if d.view == view]
        if not items:
            continue
        truth = [records[i].quadrant for i in items]
        net_q = [
            names[int(np.argmax([details[i].network_quadrant_probabilities[n] for n in names]))]
            for i in items
        ]
        final_q = [details[i].quadrant for i in items]
        entry = {"n": len(items), "network": _accuracy(net_q, truth), "configured": _accuracy(final_q, truth)}
        geo_items = [k for k, i in enumerate(items) if details[i].geometric_quadrant is not None]
        if geo_items:
            geo_q = [details[items[k]].geometric_quadrant for k in geo_items]
            comb_q = []
            for k in geo_items:
                d = details[items[k]]
                p = combine_quadrant(
                    np.array([d.network_quadrant_probabilities[n] for n in names]),
                    d.geometric_quadrant,
                    view,
                    beta,
                )
                comb_q.append(names[int(np.argmax(p))])
            sub_truth = [truth[k] for k in geo_items]
            entry.update(
                {
                    "n_with_geometric": len(geo_items),
                    "geometric": _accuracy(geo_q, sub_truth),
                    "combined": _accuracy(comb_q, sub_truth),
                    "network_where_geometric": _accuracy([net_q[k] for k in geo_items], sub_truth),
                }
            )
        entry["confusion_configured"] = {
            "labels": list(names),
            "rows_truth_cols_predicted": _confusion(truth, final_q, names),
        }
        entry["confusion_network"] = {
            "labels": list(names),
            "rows_truth_cols_predicted": _confusion(truth, net_q, names),
        }
        quadrant[view] = entry
    out["quadrant_accuracy"] = quadrant
    return out


def _finite(value: float, digits: int = 4) -> float | None:
    """Rounded, or None for NaN/inf (manifests are strict JSON)."""
    return round(float(value), digits) if math.isfinite(value) else None


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.mean(np.abs(np.asarray(a) - np.asarray(b)))), 4) if len(a) else float("nan")


def _accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return round(float(np.mean([p == t for p, t in zip(predicted, truth)])), 4) if truth else float("nan")


def _confusion(truth: Sequence[str], predicted: Sequence[str], names: Sequence[str]) -> list[list[int]]:
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for t, p in zip(truth, predicted):
        matrix[names.index(t), names.index(p)] += 1
    return matrix.tolist()


# ============================================================================================================
# ====
# Malignancy
# ============================================================================================================
# ====
@dataclass
class MalignancyResult:
    model: MalignancyModel
    history: list[dict[str, Any]]
    best_epoch: int
    seconds: float
    calibration: dict[str, Any]  # validation figures behind the calibrator choice


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of a (C, S, S) array (malignancy and morphology do not depend on them)."""
    if k & 4:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(np.rot90(x, k & 3, axes=(1, 2)))


def _malignancy_window(
    image: np.ndarray, view: LesionView, record: LesionRecord, mask: LesionMask, config: MalignancyConfig
) -> np.ndarray:
    """The network input of ``record`` outlined by ``mask`` on ``image`` (``view``'s float32 image)."""
    return malignancy_input(
        image, mask, view.spacing_mm, config.inputs, native_spacing_mm=config.spacing_mm, finding_type=record.type
    )


def malignancy_inputs(
    lesions: LesionSet, config: MalignancyConfig, masks: Sequence[LesionMask] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2, S, S)`` windows and ``(N, 2)`` size features of every record (true masks unless ``masks``)."""
    images: dict[int, np.ndarray] = {}
    windows, sizes = [], []
    for i, r in enumerate(lesions.records):
        view = lesions.view_of(r)
        if r.view_index not in images:
            images = {r.view_index: np.asarray(view.image, np.float32)}  # one view at a time in float32
        mask = r.mask if masks is None else masks[i]
        windows.append(_malignancy_window(images[r.view_index], view, r, mask, config))
        sizes.append(lesion_size_features(mask, view.spacing_mm))
    if not windows:
        return np.zeros((0, 2, config.inputs.size, config.inputs.size), np.float32), np.zeros(
            (0, 2), np.float32
        )
    return np.stack(windows).astype(np.float32), np.stack(sizes).astype(np.float32)


def _malignancy_batch_outputs(
    model: MalignancyModel, inputs: tuple[np.ndarray, np.ndarray], types: Sequence[str], batch: int = 256
) -> dict[str, np.ndarray]:
    images, sizes = inputs
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(images), batch):
        parts.append(
            model.network_outputs(
                images[start : start + batch], types[start : start + batch], sizes[start : start + batch]
            )
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def train_malignancy(
    train: LesionSet,
    validation: LesionSet,
    config: MalignancyConfig | None = None,
    options: TrainOptions | None = None,
    *,
    calibration_method: str | None = None,
) -> MalignancyResult:
    """Train the malignancy (+ morphology unless ``config.morphology_weight == 0``) network, keep the epoch
    with
    the best validation AUC (true and perturbed masks), then fit and choose the calibrator on validation
    (``calibration_method`` forces one of :data:`~MammoDNNLib.models.calibration.CALIBRATION_METHODS`)."""
    from ..evaluation.roc import roc_curve

    config = config or MalignancyConfig()
    config.multitask = config.morphology_weight > 0
    options = options or TrainOptions()
    _start(options)
    train = train.for_malignancy()
    validation = validation.for_malignancy()
    val_truth = np.array([r.malignant for r in validation.records])
    if len(set(r.malignant for r in train.records)) < 2 or len(set(val_truth.tolist())) < 2:
        raise MammoDNNError("malignancy training needs benign and malignant lesions in both sets")
    net = MalignancyNet(config)
    run = _Run(net, options, len(train), "malignancy" if config.multitask else "malignancy-single")
    val_model = MalignancyModel(config, net)
    val_types = [r.type for r in validation.records]
    val_masks = _validation_masks(validation, options)
    val_inputs = malignancy_inputs(validation, config)
    val_inputs_perturbed = malignancy_inputs(validation, config, val_masks)
    images = {
        i: np.asarray(v.image, np.float32)
        for i, v in enumerate(train.views)
        if any(r.view_index == i for r in train.records)
    }
    positives = float(np.mean([r.malignant for r in train.records]))

    def batch_loss(batch: list[LesionRecord]) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, sizes = [], []
        for r in batch:
            view = train.view_of(r)
            mask = perturb_mask(r.mask, view.breast_mask.shape, view.spacing_mm, run.rng, options.perturbation)
            x = _malignancy_window(images[r.view_index], view, r, mask, config)
            x[0] = _intensity(x[0], run.rng)
            inputs.append(_dihedral(x, int(run.rng.integers(8))))
            sizes.append(lesion_size_features(mask, view.spacing_mm))
        types = torch.tensor([FINDING_TYPE_KEYS.index(r.type) for r in batch])
        target = torch.tensor([float(r.malignant) for r in batch])
        out = net(torch.from_numpy(np.stack(inputs)), types, torch.from_numpy(np.stack(sizes)))
        bce = F.binary_cross_entropy_with_logits(out["malignancy"], target)
        loss = bce
        parts = {"bce": float(bce.detach())}
        if config.morphology_weight > 0:
            morph = morphology_loss(
                out, morphology_targets([r.type for r in batch], [r.morphology for r in batch]), 0.05
            )
            loss = loss + config.morphology_weight * morph
            parts["morphology_ce"] = float(morph.detach())
        return loss, parts

    def validate() -> tuple[dict[str, Any], float]:
        val: dict[str, Any] = {}
        for suffix, x in (("", val_inputs), ("_perturbed", val_inputs_perturbed)):
            logits = _malignancy_batch_outputs(val_model, x, val_types)["logit"]
            val[f"auc{suffix}"] = round(roc_curve(val_truth, logits).auc, 4)
            val[f"bce{suffix}"] = round(
                float(
                    F.binary_cross_entropy_with_logits(
                        torch.from_numpy(logits), torch.from_numpy(val_truth.astype(np.float64))
                    )
                ),
                4,
            )
        return val, 0.5 * (val["auc"] + val["auc_perturbed"])

    run.fit(train.records, batch_loss, validate)
    model = MalignancyModel(config, net)
    figures = fit_malignancy_calibration(model, validation, val_masks, method=calibration_method)
    figures["train_malignant_fraction"] = round(positives, 4)
    return MalignancyResult(model, run.history, run.best_epoch + 1, run.elapsed, figures)


def fit_malignancy_calibration(
    model: MalignancyModel,
    validation: LesionSet,
    perturbed_masks: Sequence[LesionMask] | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """Fit the calibrator on validation logits (true and perturbed masks pooled: the pipeline's masks are
    detections), choosing the method by cross-validated log loss unless ``method`` is given; stores it in
    ``model.config.calibration`` (and ``model.calibrator``)."""
    validation = validation.for_malignancy()
    types = [r.type for r in validation.records]
    truth = np.array([r.malignant for r in validation.records])
    groups = [(validation.view_of(r).study_id, r.lesion_id) for r in validation.records]
    logits = _malignancy_batch_outputs(model, malignancy_inputs(validation, model.config), types)["logit"]
    if perturbed_masks is not None:
        more = _malignancy_batch_outputs(
            model, malignancy_inputs(validation, model.config, perturbed_masks), types
        )["logit"]
        logits, truth, groups = np.concatenate([logits, more]), np.concatenate([truth, truth]), groups * 2
    # Cross-validation folds keep a lesion's projections (CC, MLO; true and perturbed masks) together.
    chosen, cv = select_calibrator(logits, truth, groups=groups)
    if method is not None:
        if method not in CALIBRATION_METHODS:
            raise MammoDNNError(f"unknown calibration method {method!r}")
        chosen = method
    calibrator = fit_calibrator(chosen, logits, truth)
    model.config.calibration = calibrator.to_dict()
    model.calibrator = calibrator
    return {
        "method": chosen,
        "cross_validated_log_loss": cv,
        "n": int(len(truth)),
        "validation_before": calibration_report(sigmoid(logits), truth).to_dict(),
        "validation_after_in_sample": calibration_report(calibrator(logits), truth).to_dict(),
    }


def evaluate_malignancy(
    model: MalignancyModel,
    lesions: LesionSet,
    perturb_seed: int | None = None,
    perturbation: MaskPerturbation = MaskPerturbation(),
) -> dict[str, Any]:
    """AUC (DeLong CI) overall and per type, calibration before/after (ECE, Brier) and morphology accuracy, on
    the true masks or, with ``perturb_seed``, on detection-like masks made from them. ``scores`` holds the raw
    logits with the truth (for paired DeLong tests between models on the same lesions)."""
    from ..evaluation.roc import roc_curve

    lesions = lesions.for_malignancy()
    masks = None if perturb_seed is None else perturbed_masks(lesions, perturb_seed, perturbation)
    types = [r.type for r in lesions.records]
    truth = np.array([r.malignant for r in lesions.records])
    outputs = _malignancy_batch_outputs(model, malignancy_inputs(lesions, model.config, masks), types)
    logits = outputs["logit"]
    raw = sigmoid(logits)
    calibrated = np.asarray(model.calibrator(logits))
    result: dict[str, Any] = {"n": int(len(truth)), "malignant": int(truth.sum())}
    curve = roc_curve(truth, logits)
    result["auc"] = {
        "auc": round(curve.auc, 4),
        "ci": [_finite(v) for v in curve.ci],
        "se": _finite(curve.se),
    }
    calibrated_curve = roc_curve(truth, calibrated)
    result["auc_calibrated"] = round(calibrated_curve.auc, 4)
    per_type = {}
    for kind in FINDING_TYPE_KEYS:
        sel = np.array([t == kind for t in types])
        if sel.sum() and len(set(truth[sel].tolist())) == 2:
            c = roc_curve(truth[sel], logits[sel])
            per_type[kind] = {
                "auc": round(c.auc, 4),
                "ci": [_finite(v) for v in c.ci],
                "n": int(sel.sum()),
                "malignant": int(truth[sel].sum()),
            }
        elif sel.sum():
            per_type[kind] = {"auc": None, "n": int(sel.sum()), "malignant": int(truth[sel].sum())}
    result["auc_per_type"] = per_type
    result["calibration"] = {
        "method": model.calibrator.method,
        "before": calibration_report(raw, truth).to_dict(),
        "after": calibration_report(calibrated, truth).to_dict(),
    }
    morphology = {}
    for group, names in MORPHOLOGY.items():
        items = [
            i
            for i, r in enumerate(lesions.records)
            if group in MORPHOLOGY_GROUPS_BY_TYPE[r.type] and r.morphology.get(group) in names
        ]
        if not items:
            continue
        predicted = [names[int(np.argmax(outputs[group][i]))] for i in items]
        truth_g = [lesions.records[i].morphology[group] for i in items]
        majority = max(set(truth_g), key=truth_g.count)
        morphology[group] = {
            "n": len(items),
            "accuracy": _accuracy(predicted, truth_g),
            "majority_class_accuracy": _accuracy([majority] * len(items), truth_g),
        }
    result["morphology_accuracy"] = morphology if model.config.multitask else {}
    result["scores"] = {"logit": logits.tolist(), "truth": truth.tolist(), "types": types}
    return result
