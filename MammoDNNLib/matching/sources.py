"""Matcher training data from files: a phantom collection on disk, or a training manifest.

* A **phantom collection** (``mammodnn phantom`` / ``phantom.generate_studies``: ``index.json`` and one folder per
  study with four DICOM files, ``truth.json`` and masks) or a single phantom study folder: the views are read with
  :func:`MammoDNNLib.io.load_view`, the truth with :func:`MammoDNNLib.phantom.load_truth`, and each study is used
  exactly like a phantom generated in memory (true landmarks, simulated detections).
* A **training manifest** (``mammodnn-manifest``, any source whose lesion ids link the CC and MLO projections):
  each breast with both views is loaded and prepared by the preprocessing (estimated landmarks, as in the
  pipeline); its lesions (mask file, else outline, else the box's ellipse) are the candidates, truth variant only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..findings import Finding
from ..geometry import LesionMask
from ..study import Study
from ..vocabulary import LATERALITIES, view_key
from .features import CandidateConfig, ViewContext, make_candidate
from .train import BreastSample

log = logging.getLogger(__name__)


@dataclass
class LoadedPhantom:
    """A phantom read from disk, shaped like ``phantom.PhantomStudy`` for :func:`.train.phantom_samples`."""

    study: Study
    truth: Any  # phantom.PhantomTruth with masks


def phantom_folders(path: str | Path) -> list[Path]:
    """Study folders of a phantom collection (``index.json``), or ``[path]`` for a single study folder."""
    path = Path(path)
    if path.is_file() and path.name == "index.json":
        path = path.parent
    if (path / "index.json").is_file():
        try:
            index = json.loads((path / "index.json").read_text(encoding="utf-8"))
            return [path / entry["folder"] for entry in index["studies"]]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(path / "index.json", f"not a phantom collection index: {exc!r}") from None
    if (path / "truth.json").is_file():
        return [path]
    raise InputError(path, "not a phantom collection (no index.json) or phantom study folder (no truth.json)")


def load_phantom(folder: str | Path) -> LoadedPhantom:
    from ..io import load_view
    from ..phantom import load_truth

    folder = Path(folder)
    truth = load_truth(folder)
    views = {key: load_view(folder / vt.file) for key, vt in truth.views.items()}
    return LoadedPhantom(Study(views=views, source=folder), truth)


def is_phantom_source(path: str | Path) -> bool:
    path = Path(path)
    return (path.is_dir() and ((path / "index.json").is_file() or (path / "truth.json").is_file())) or \
        path.name == "index.json"


def manifest_samples(
    path: str | Path,
    splits: Sequence[str] | None = None,
    config: CandidateConfig | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[BreastSample]:
    """Truth-variant breast samples of every study of a manifest (in ``splits`` if given) with both views of a
    breast and at least one located lesion there."""
    from ..data.dataset import read_mask_file
    from ..data.manifest import load_manifest
    from ..io import load_view
    from ..preprocess import prepare_view

    config = config or CandidateConfig()
    manifest = load_manifest(path)
    studies = [s for s in manifest if s.labelled and (splits is None or s.split in splits)]
    samples: list[BreastSample] = []
    for k, entry in enumerate(studies):
        for side in LATERALITIES:
            keys = (view_key(side, "CC"), view_key(side, "MLO"))
            if not all(key in entry.views and entry.views[key].image is not None for key in keys):
                continue
            if not any(lesion.box is not None for key in keys for lesion in entry.views[key].lesions):
                continue
            candidates = {}
            for key in keys:
                ve = entry.views[key]
                view = load_view(ve.image, spacing=ve.spacing, laterality=ve.laterality, view=ve.view)
                context = ViewContext.from_prepared(prepare_view(view))
                found = []
                for lesion in ve.lesions:
                    if lesion.box is None:
                        continue
                    mask = None
                    if lesion.mask is not None:
                        mask = LesionMask.from_full(read_mask_file(lesion.mask, view.size))
                    elif lesion.outline:
                        mask = LesionMask.from_polygon(lesion.outline, view.shape)
                    finding = Finding(id=f"{key}:{lesion.id}", view_key=key, type=lesion.type, score=1.0,
                                      box=lesion.box, mask=None if mask is None or mask.empty else mask)
                    found.append(make_candidate(finding, context, config, truth_id=lesion.id))
                candidates[key] = found
            cc, mlo = candidates[keys[0]], candidates[keys[1]]
            pairs = {c.truth_id for c in cc} & {m.truth_id for m in mlo}
            samples.append(BreastSample(entry.id, side, "truth", cc, mlo, {p for p in pairs if p is not None}))
        if progress is not None:
            progress(k + 1, len(studies), entry.id)
    return samples
