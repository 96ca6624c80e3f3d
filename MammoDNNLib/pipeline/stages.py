"""The pipeline's stage adapters: each takes what the previous stage made and calls one part of the library.

* :func:`load_models` — the system's models, cached per process (a second analysis does not reload weights);
* :func:`prepare` — each view prepared at the detector's spacing
(:func:`MammoDNNLib.preprocess.prepare_view`),
  and :func:`at_spacing` — the same preparation resampled to another model's spacing without redoing it;
* :func:`select_detections` — the detector's output filtered to the findings a report shows (operating point,
  degenerate boxes, one lesion seen as two types, the cap per view), in hanging order with stable ids;
* :func:`outline_findings`, :func:`localize`, :func:`grade` — outlines, quadrant and depth, malignancy and
  morphology, written into the :class:`~MammoDNNLib.findings.Finding` objects.

Matching and BI-RADS are called directly from :mod:`.analyze` (``matching.match_findings``,
``birads.summarize``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MammoDNNError
from ..findings import Finding
from ..geometry import Box, LesionMask, Transform
from ..vocabulary import VIEW_KEYS
from .config import PipelineOptions
from .outline import Outline, original_to_prepared, outline_lesion
from .system import SystemModel

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


# -- models
# -----------------------------------------------------------------------------------------------------
@dataclass
class LoadedModels:
    """The usable objects of a system (stages the system leaves out are None)."""

    detector: Any
    localization: Any | None
    malignancy: Any | None
    matcher: Any | None
    birads: Any  # MammoDNNLib.birads.BiradsMapping


def check_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``, and CUDA only where torch can use it."""
    device = str(device)
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise MammoDNNError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            built = (
                "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            )
            raise MammoDNNError(
                f"device {device!r} was asked for, but torch {torch.__version__} ({built}) sees no "
                "CUDA GPU; use --device cpu"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise MammoDNNError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are present"
            )
    return device


@functools.lru_cache(maxsize=16)
def _load_component(stage: str, folder: str, manifest_sha256: str, device: str) -> Any:
    """One component model, loaded once per process for a given folder, manifest and device (the manifest's
    hash is part of the key: a model replaced in place is loaded again)."""
    log.info("loading the %s model from %s (%s)", stage, folder, device)
    if stage == "detector":
        from ..models.detector import Detector

        return Detector.load(folder, device)
    if stage == "localization":
        from ..models.localization import LocalizationModel

        return LocalizationModel.load(folder, device)
    if stage == "malignancy":
        from ..models.malignancy import MalignancyModel

        return MalignancyModel.load(folder, device)
    if stage == "matcher":
        from ..matching import Matcher

        return Matcher.load(folder)
    raise ValueError(f"unknown stage {stage!r}")


@functools.lru_cache(maxsize=8)
def _load_birads(path: str | None, sha256: str) -> Any:
    from ..birads import BiradsMapping

    return BiradsMapping.load(path)


def load_models(system: SystemModel, device: str) -> LoadedModels:
    """The system's models (cached per process; see :func:`clear_model_cache`)."""
    loaded = {}
    for stage in ("detector", "localization", "malignancy", "matcher"):
        ref = system.components.get(stage)
        loaded[stage] = None if ref is None else _load_component(stage, str(ref.path), ref.sha256, device)
    birads = _load_birads(
        None if system.birads_path is None else str(system.birads_path), system.birads_sha256
    )
    return LoadedModels(birads=birads, **loaded)


def clear_model_cache() -> None:
    """Forget the loaded models (the next analysis loads them again)."""
    _load_component.cache_clear()
    _load_birads.cache_clear()


def model_cache_info() -> Any:
    """``functools`` cache statistics of the component models (hits, misses, current size)."""
    return _load_component.cache_info()


# -- preprocessing
# ----------------------------------------------------------------------------------------------
def prepare(study, spacing_mm: float, progress: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Each view of ``study`` prepared at ``spacing_mm`` (errors name the file)."""
    from ..preprocess import PreprocessConfig, prepare_view

    config = PreprocessConfig(spacing_mm=spacing_mm)
    prepared = {}
    for i, (key, view) in enumerate(study.views.items()):
        if progress is not None:
            progress(i, f"preparing {key}")
        prepared[key] = prepare_view(view, config)
    return prepared


def at_spacing(prepared, spacing_mm: float):
    """The same preparation (crop, flip, gray mapping, masks, landmarks) resampled to ``spacing_mm``; the
    prepared view itself when it already has that spacing."""
    if abs(float(prepared.spacing_mm) - spacing_mm) < 1e-9:
        return prepared
    from skimage.transform import resize

    t: Transform = prepared.transform
    x0, y0, x1, y1 = t.crop
    row_mm, col_mm = prepared.original_spacing
    size = (
        max(1, int(round((x1 - x0) * col_mm / spacing_mm))),
        max(1, int(round((y1 - y0) * row_mm / spacing_mm))),
    )
    transform = Transform(t.original_size, t.crop, size, t.flip_x)
    shrinking = size[0] < prepared.image.shape[1]
    image = resize(
        prepared.image, (size[1], size[0]), order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True
    ).astype(np.float32)
    mask = resize(
        prepared.breast_mask.astype(np.uint8),
        (size[1], size[0]),
        order=0,
        mode="edge",
        anti_aliasing=False,
        preserve_range=True,
    ).astype(bool)
    return replace(prepared, image=image, breast_mask=mask, transform=transform, spacing_mm=float(spacing_mm))


# -- detections -> findings
# -------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """A detection kept for the report, before it becomes a Finding."""

    view_key: str
    type: str
    score: float
    box: Box  # original grid
    box_prepared: Box  # the detector's prepared grid
    probabilities: dict[str, float]
    suppressed: list[dict[str, Any]] = field(default_factory=list)  # other detections of the same lesion


def overlap_of_smaller(a: Box, b: Box) -> float:
    """Intersection area over the smaller box's area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def select_detections(
    detections: Mapping[str, Sequence[Any]], prepared: Mapping[str, Any], options: PipelineOptions
) -> dict[str, list[Candidate]]:
    """Per view, the detections to report, best first: at or above the operating point, not degenerate, one
    per lesion (``same_lesion_overlap``), at most ``max_findings_per_view``."""
    out: dict[str, list[Candidate]] = {}
    for key, found in detections.items():
        spacing = prepared[key].original_spacing
        kept: list[Candidate] = []
        for d in sorted(found, key=lambda d: -d.score):
            if d.score < options.score_threshold:
                continue
            x0, y0, x1, y1 = d.box
            if min((x1 - x0) * spacing[1], (y1 - y0) * spacing[0]) < options.min_box_mm:
                log.debug(
                    "%s: dropping a %.1f x %.1f px %s box (under %g mm)",
                    key,
                    x1 - x0,
                    y1 - y0,
                    d.label,
                    options.min_box_mm,
                )
                continue
            if options.same_lesion_overlap is not None:
                same = next(
                    (c for c in kept if overlap_of_smaller(c.box, d.box) >= options.same_lesion_overlap), None
                )
                if same is not None:
                    same.suppressed.append(
                        {"type": d.label, "score": float(d.score), "box": [round(float(v), 3) for v in d.box]}
                    )
                    continue
            kept.append(
                Candidate(
                    key,
                    d.label,
                    float(d.score),
                    tuple(float(v) for v in d.box),
                    tuple(float(v) for v in d.box_prepared),
                    dict(d.probabilities),
                )
            )
        if len(kept) > options.max_findings_per_view:
            log.info(
                "%s: %d findings above the operating point; reporting the best %d",
                key,
                len(kept),
                options.max_findings_per_view,
            )
        out[key] = kept[: options.max_findings_per_view]
    return out


def make_findings(candidates: Mapping[str, Sequence[Candidate]]) -> list[Finding]:
    """Findings with stable ids ``lesion_001 ...`` in hanging order (R-CC, L-CC, R-MLO, L-MLO), by score
    within
    a view."""
    findings: list[Finding] = []
    for key in VIEW_KEYS:
        for c in sorted(candidates.get(key, ()), key=lambda c: -c.score):
            detector = {
                "raw_score": c.score,
                "probabilities": c.probabilities,
                "box_prepared": [round(v, 3) for v in c.box_prepared],
            }
            if c.suppressed:
                detector["same_lesion"] = c.suppressed
            findings.append(
                Finding(
                    id=f"lesion_{len(findings) + 1:03d}",
                    view_key=key,
                    type=c.type,
                    score=min(max(c.score, 0.0), 1.0),
                    box=c.box,
                    extra={"detector": detector},
                )
            )
    return findings


# -- outlines, localization, malignancy
# --------------------------------------------------------------------------
def outline_findings(
    findings: Sequence[Finding],
    prepared: Mapping[str, Any],
    options: PipelineOptions,
    views: Mapping[str, Any] | None = None,
) -> dict[str, LesionMask]:
    """Give every finding its exact mask (original grid) and outline; returns the prepared-grid masks by id.
    ``views`` (the study's) lets calcification clusters be segmented on the original pixels."""
    on_prepared = {}
    for f in findings:
        box_prepared = tuple(f.extra["detector"]["box_prepared"])
        pixels = views[f.view_key].pixels if views is not None and f.view_key in views else None
        outline: Outline = outline_lesion(
            prepared[f.view_key], box_prepared, f.box, f.type, options.outline, original_pixels=pixels
        )
        f.mask = outline.original
        f.outline = [tuple(p) for p in outline.original.to_polygon().tolist()]
        f.extra["outline"] = outline.to_dict()
        on_prepared[f.id] = outline.prepared
    return on_prepared


def _masks_on(
    view, findings: Sequence[Finding], detector_masks: Mapping[str, LesionMask], detector_view
) -> list[LesionMask]:
    """The findings' masks on ``view``'s prepared grid (the detector's own masks where the grids are the
    same)."""
    if view is detector_view:
        return [detector_masks[f.id] for f in findings]
    return [original_to_prepared(f.mask, view.transform) for f in findings]


def localize(
    findings: Sequence[Finding], prepared: Mapping[str, Any], detector_masks: Mapping[str, LesionMask], model
) -> None:
    """Quadrant, quadrant probabilities and depth of every finding, with the estimator that gave them."""
    for key, view in prepared.items():
        own = [f for f in findings if f.view_key == key]
        if not own:
            continue
        target = at_spacing(view, model.spacing_mm)
        masks = _masks_on(target, own, detector_masks, view)
        located = model.predict_details(target, masks, key.split("-")[1])
        for f, details in zip(own, located, strict=True):
            f.quadrant = details.quadrant
            f.quadrant_probabilities = dict(details.quadrant_probabilities)
            f.depth = float(details.depth)
            f.extra["localization"] = details.to_dict()


def grade(
    findings: Sequence[Finding], prepared: Mapping[str, Any], detector_masks: Mapping[str, LesionMask], model
) -> None:
    """Calibrated malignancy and morphology of every finding."""
    for key, view in prepared.items():
        own = [f for f in findings if f.view_key == key]
        if not own:
            continue
        # The malignancy network brings finer views to its own spacing itself; coarser ones are resampled
        # here.
        target = view if float(view.spacing_mm) <= model.spacing_mm else at_spacing(view, model.spacing_mm)
        masks = _masks_on(target, own, detector_masks, view)
        graded = model.predict_details(target, masks, [f.type for f in own])
        for f, details in zip(own, graded, strict=True):
            f.malignancy = float(details.malignancy)
            f.morphology = {g: dict(d) for g, d in details.morphology.items()}
            f.extra["malignancy"] = {
                "logit": details.logit,
                "raw_probability": details.raw_probability,
                "calibration": details.calibration,
            }


def view_info(view, prepared) -> Any:
    """``Report.views`` entry of one view."""
    from ..findings import ViewInfo

    header = getattr(view, "header", None)
    sop = str(getattr(header, "SOPInstanceUID", "") or "") or None if header is not None else None
    return ViewInfo(
        key=view.key,
        file=None if view.source is None else str(view.source),
        laterality=view.laterality,
        view=view.view,
        size=view.size,
        spacing=(float(view.spacing[0]), float(view.spacing[1])),
        provenance=dict(view.provenance),
        sop_instance_uid=sop,
        transform=None if prepared is None else prepared.transform.to_dict(),
        landmarks={} if prepared is None else prepared.landmarks.to_dict(),
    )


def software_versions() -> dict[str, str]:
    """Versions of the software behind a report."""
    import platform
    from importlib import metadata

    from .. import __version__

    versions = {"mammodnn": __version__, "python": platform.python_version()}
    for name in (
        "numpy",
        "scipy",
        "scikit-image",
        "torch",
        "torchvision",
        "lightgbm",
        "pydicom",
        "safetensors",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def relative_source(path: Path | None) -> str | None:
    return None if path is None else str(path)
