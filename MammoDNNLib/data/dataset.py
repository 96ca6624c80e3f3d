"""Training samples from a manifest: load, prepare (with an on-disk cache), map targets, augment.

:class:`StudyLoader` turns one :class:`~MammoDNNLib.data.manifest.StudyEntry` into a
:class:`~MammoDNNLib.data.samples.StudySample`: each view is read with :func:`MammoDNNLib.io.load_view` (the
manifest supplies spacing, laterality and view) and prepared with :func:`MammoDNNLib.preprocess.prepare_view`;
boxes, outlines and mask files are mapped from the original grid into the prepared grid with the view's
:class:`~MammoDNNLib.geometry.Transform`.

Prepared arrays are cached on disk (``<cache_dir>/<2 hex>/<sha256>.npz``, no pickles) under a key made of the
image file's absolute path, size and modification time, the manifest's spacing/laterality/view, the
preprocessing configuration and the library version, so training epochs do not decode DICOMs again and a
changed file or configuration is never served stale. Decoded lesion mask files are cached the same way.

:class:`StudyDataset` is a map-style dataset for ``torch.utils.data.DataLoader`` (it needs no torch itself;
:meth:`StudyDataset.data_loader` imports torch). It selects studies by split - the ``heldout`` split only when
asked explicitly - and augments with :mod:`MammoDNNLib.data.augment`, deterministically per (seed, epoch,
index).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError, MammoDNNError
from ..geometry import LesionMask, Transform
from ..vocabulary import class_index
from .augment import AugmentConfig, augment_study
from .manifest import Lesion, Manifest, StudyEntry, ViewEntry
from .samples import StudySample, ViewSample, ViewTarget

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass
class PreparedArrays:
    """What the cache holds for one view: the prepared image, its breast mask and the transform."""

    image: np.ndarray  # (H, W) float32
    breast_mask: np.ndarray  # (H, W) bool
    transform: Transform


def config_fingerprint(config: Any) -> str:
    """A stable text for a preprocessing configuration (dataclass, object with ``to_dict``, dict or None)."""
    if config is None:
        data: Any = "default"
    elif hasattr(config, "to_dict"):
        data = config.to_dict()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = dataclasses.asdict(config)
    elif isinstance(config, dict):
        data = config
    else:
        raise TypeError(f"cannot fingerprint a preprocessing configuration of type {type(config).__name__}")
    return json.dumps(data, sort_keys=True, default=str)


class ArrayCache:
    """``.npz`` files in a folder keyed by hex digests; writes are atomic, unreadable entries are misses."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError) as exc:
            log.warning("ignoring an unreadable cache entry %s (%s)", path, exc)
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(tmp, path)  # atomic: parallel data-loader workers never read half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _file_key(path: Path, **more: Any) -> str:
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    text = json.dumps(
        {
            "format": CACHE_FORMAT,
            "library": __version__,
            "file": os.path.abspath(path),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            **more,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


class StudyLoader:
    """Loads and prepares the views of manifest studies, with an optional on-disk cache.

    ``load_view(path, spacing=..., laterality=..., view=...) -> View`` and ``prepare_view(view, config) ->
    PreparedView`` (fields ``image``, ``breast_mask``, ``transform``) default to
    :func:`MammoDNNLib.io.load_view` and :func:`MammoDNNLib.preprocess.prepare_view`; pass others to prepare
    differently (tests, experiments). ``cache_dtype`` ``"float16"`` halves the cache on disk at a precision of
    about 1e-3 of the gray range.
    """

    def __init__(
        self,
        preprocess_config: Any = None,
        cache_dir: str | os.PathLike | None = None,
        *,
        load_view: Callable[..., Any] | None = None,
        prepare_view: Callable[..., Any] | None = None,
        cache_dtype: str = "float32",
    ):
        if cache_dtype not in ("float32", "float16"):
            raise ValueError(f"cache_dtype must be 'float32' or 'float16', got {cache_dtype!r}")
        self.preprocess_config = preprocess_config
        self.cache = ArrayCache(cache_dir) if cache_dir is not None else None
        self._load_view = load_view
        self._prepare_view = prepare_view
        self.cache_dtype = cache_dtype
        custom = prepare_view is not None
        self._fingerprint = config_fingerprint(preprocess_config) + (
            f"|{getattr(prepare_view, '__module__', '')}.{getattr(prepare_view, '__qualname__', '')}"
            if custom
            else ""
        )

    # -- views ----------------------------------------------------------------------------------------------
    def prepared(self, view: ViewEntry) -> PreparedArrays:
        """The prepared arrays of one view (from the cache when present)."""
        if view.image is None:
            raise InputError(None, f"view {view.key} ({view.source_id}) has no local image")
        key = None
        if self.cache is not None:
            key = _file_key(view.image, spacing=view.spacing, key=view.key, config=self._fingerprint)
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    return PreparedArrays(
                        hit["image"].astype(np.float32),
                        hit["breast_mask"].astype(bool),
                        Transform.from_dict(json.loads(str(hit["transform"]))),
                    )
                except (KeyError, ValueError) as exc:
                    log.warning("ignoring a malformed cache entry for %s (%s)", view.image, exc)
        arrays = self._prepare(view)
        if self.cache is not None and key is not None:
            self.cache.put(
                key,
                {
                    "image": arrays.image.astype(self.cache_dtype),
                    "breast_mask": arrays.breast_mask,
                    "transform": np.array(json.dumps(arrays.transform.to_dict())),
                },
            )
        return arrays

    def _prepare(self, view: ViewEntry) -> PreparedArrays:
        load_view = self._load_view
        prepare_view = self._prepare_view
        if load_view is None:
            from ..io import load_view  # the io module decodes DICOM / PNG / PGM / TIFF
        if prepare_view is None:
            from ..preprocess import prepare_view
        loaded = load_view(view.image, spacing=view.spacing, laterality=view.laterality, view=view.view)
        prepared = (
            prepare_view(loaded, self.preprocess_config)
            if self.preprocess_config is not None
            else prepare_view(loaded)
        )
        image = np.asarray(prepared.image, dtype=np.float32)
        breast = np.asarray(prepared.breast_mask, dtype=bool)
        transform = prepared.transform
        if image.shape != breast.shape or image.shape != (
            transform.prepared_size[1],
            transform.prepared_size[0],
        ):
            raise MammoDNNError(
                f"{view.image}: prepared image {image.shape}, breast mask {breast.shape} and "
                f"transform size {transform.prepared_size} disagree"
            )
        if view.size is not None and tuple(view.size) != tuple(transform.original_size):
            raise InputError(
                view.image,
                f"the image is {transform.original_size[0]} x {transform.original_size[1]} "
                f"pixels but the manifest says {view.size[0]} x {view.size[1]}",
            )
        return PreparedArrays(image, breast, transform)

    # -- targets --------------------------------------------------------------------------------------------
    def target(self, view: ViewEntry, transform: Transform) -> ViewTarget:
        """The view's lesions in the prepared grid (the view must be box-complete)."""
        if not view.box_complete:
            raise MammoDNNError(f"view {view.key} ({view.source_id}) has lesions without a box")
        width, height = transform.prepared_size
        boxes, labels, ids, masks, attributes = [], [], [], [], []
        want_masks = bool(view.lesions) and all(
            les.outline is not None or les.mask is not None for les in view.lesions
        )
        for lesion in view.lesions:
            box = transform.boxes_to_prepared([lesion.box])[0]
            clipped = np.array(
                [
                    np.clip(box[0], 0, width),
                    np.clip(box[1], 0, height),
                    np.clip(box[2], 0, width),
                    np.clip(box[3], 0, height),
                ]
            )
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                log.warning(
                    "%s %s: lesion %s lies outside the prepared crop and is left out",
                    view.source_id,
                    view.key,
                    lesion.id,
                )
                continue
            boxes.append(clipped)
            labels.append(class_index(lesion.type))
            ids.append(lesion.id)
            attributes.append(
                {
                    "type": lesion.type,
                    "pathology": lesion.pathology,
                    "morphology": dict(lesion.morphology),
                    "quadrant": lesion.quadrant,
                    "depth": lesion.depth,
                    "birads": lesion.birads,
                }
            )
            if want_masks:
                masks.append(self._lesion_mask(lesion, transform))
        return ViewTarget(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64),
            ids,
            masks if want_masks else None,
            attributes,
        )

    def _lesion_mask(self, lesion: Lesion, transform: Transform) -> LesionMask:
        """The lesion's mask in the prepared grid: from its mask file (exact) or else its outline."""
        shape = (transform.prepared_size[1], transform.prepared_size[0])
        if lesion.mask is None:
            assert lesion.outline is not None
            return LesionMask.from_polygon(transform.to_prepared(lesion.outline), shape)
        key = None
        if self.cache is not None:
            key = _file_key(
                lesion.mask, kind="lesion-mask", origin=lesion.mask_origin, transform=transform.to_dict()
            )
            hit = self.cache.get(key)
            if hit is not None and "array" in hit:
                return LesionMask(hit["array"], tuple(int(v) for v in hit["origin"]))
        full = read_mask_file(lesion.mask, transform.original_size, lesion.mask_origin)
        prepared = LesionMask.from_full(transform.image_to_prepared(full.astype(np.uint8), order=0) > 0)
        if self.cache is not None and key is not None:
            self.cache.put(key, {"array": prepared.array, "origin": np.asarray(prepared.origin)})
        return prepared

    # -- studies --------------------------------------------------------------------------------------------
    def load(self, study: StudyEntry) -> StudySample:
        """All views of ``study`` that have a local image, with targets for labelled, box-complete views."""
        views = {}
        for key, entry in study.views.items():
            if entry.image is None:
                log.debug("study %s: view %s has no local image, skipped", study.id, key)
                continue
            arrays = self.prepared(entry)
            target = self.target(entry, arrays.transform) if study.labelled and entry.box_complete else None
            views[key] = ViewSample(
                key, arrays.image, arrays.breast_mask, arrays.transform, target, str(entry.image)
            )
        if not views:
            raise InputError(None, f"study {study.id} has no view with a local image")
        labelled = study.labelled and any(v.target is not None for v in views.values())
        return StudySample(study.id, views, labelled)


def load_study_sample(
    entry: StudyEntry, preprocess_config: Any = None, cache_dir: str | os.PathLike | None = None
) -> StudySample:
    """One study as a training sample (see :class:`StudyLoader`)."""
    return StudyLoader(preprocess_config, cache_dir).load(entry)


def read_mask_file(path: Path, size: tuple[int, int], origin: tuple[int, int] | None = None) -> np.ndarray:
    """A binary lesion mask file (DICOM, PNG/TIFF, or ``.npy``) on the full image grid of ``size`` = (width,
    height): the file is the whole image, or (with ``origin`` = (x0, y0)) a crop placed at that pixel."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".dcm", ".dicom"):
            import pydicom

            pixels = pydicom.dcmread(path).pixel_array
        elif suffix == ".npy":
            pixels = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            pixels = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image)
    except FileNotFoundError:
        raise InputError(path, "lesion mask file does not exist") from None
    except Exception as exc:  # decoders raise many types for broken files
        raise InputError(path, f"cannot read the lesion mask: {exc}") from None
    width, height = size
    if pixels.ndim != 2:
        raise InputError(path, f"a lesion mask is a 2-D image, got shape {pixels.shape}")
    if origin is None:
        if (pixels.shape[1], pixels.shape[0]) != (width, height):
            raise InputError(
                path,
                f"lesion mask is {pixels.shape[1]} x {pixels.shape[0]} but the image is {width} x {height}",
            )
        return pixels != 0
    x0, y0 = origin
    if x0 + pixels.shape[1] > width or y0 + pixels.shape[0] > height:
        raise InputError(
            path,
            f"lesion mask of {pixels.shape[1]} x {pixels.shape[0]} at {origin} leaves the {width} x {height} "
            "image",
        )
    full = np.zeros((height, width), bool)
    full[y0 : y0 + pixels.shape[0], x0 : x0 + pixels.shape[1]] = pixels != 0
    return full


class StudyDataset:
    """The studies of a manifest as training samples; a map-style dataset for ``torch.utils.data.DataLoader``.

    ``splits``: the splits to use (default ``("train",)``; ``None`` = every split except ``heldout``,
    including unassigned studies). Held-out studies are never used unless ``allow_heldout=True`` AND
    ``"heldout"`` is in ``splits``. ``labelled``: keep only labelled (True) or unlabelled (False) studies.
    With ``augment`` each item is augmented from ``numpy.random.default_rng([seed, epoch, index])``:
    reproducible, and independent of worker processes. Studies without any local image are left out (logged).
    """

    def __init__(
        self,
        manifest: Manifest,
        loader: StudyLoader,
        *,
        splits: Sequence[str | None] | None = ("train",),
        allow_heldout: bool = False,
        labelled: bool | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ):
        if splits is None:
            wanted = {s.split for s in manifest.studies} - {"heldout"}
        else:
            wanted = set(splits)
        if "heldout" in wanted and not allow_heldout:
            raise MammoDNNError(
                "the held-out split is excluded from training and tuning; pass allow_heldout=True "
                "only to evaluate on it"
            )
        studies = [s for s in manifest.studies if s.split in wanted]
        if labelled is not None:
            studies = [s for s in studies if s.labelled == labelled]
        without_image = [s.id for s in studies if all(v.image is None for v in s.views.values())]
        if without_image:
            log.warning(
                "%d studies have no local image and are left out (e.g. %s)",
                len(without_image),
                without_image[0],
            )
        self.studies = [s for s in studies if any(v.image is not None for v in s.views.values())]
        self.loader = loader
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> StudySample:
        sample = self.loader.load(self.studies[index])
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample = augment_study(sample, rng, self.augment)
        return sample

    def set_epoch(self, epoch: int) -> None:
        """Call at the start of each epoch so that augmentation differs between epochs."""
        self.epoch = int(epoch)

    def labelled_indices(self) -> list[int]:
        """Studies with at least one view that can be a detection target (known from the manifest alone)."""
        return [i for i, s in enumerate(self.studies) if _has_target(s)]

    def unlabelled_indices(self) -> list[int]:
        """The other studies: unlabelled ones, and labelled ones whose lesions have no box (their samples have
        no
        target, ``labelled`` False) - images for semi-supervised training."""
        return [i for i, s in enumerate(self.studies) if not _has_target(s)]

    def data_loader(self, **kwargs: Any):
        """A ``torch.utils.data.DataLoader`` over this dataset that yields lists of :class:`StudySample`."""
        from torch.utils.data import DataLoader

        kwargs.setdefault("collate_fn", collate_studies)
        return DataLoader(self, **kwargs)


def _has_target(study: StudyEntry) -> bool:
    return study.labelled and any(v.image is not None and v.box_complete for v in study.views.values())


def collate_studies(batch: list[StudySample]) -> list[StudySample]:
    """Keep a batch as a list of studies: views differ in size, and the model side makes the tensors."""
    return list(batch)
