"""Phantom studies written by ``mammodnn phantom`` (:mod:`MammoDNNLib.phantom`) to a manifest.

Each study folder holds the four DICOM views, ``truth.json`` (schema ``mammodnn-phantom-truth``, read with
:func:`MammoDNNLib.phantom.load_truth`) and ``masks/``. The source may be one study folder, a collection
written by ``generate_studies`` (``index.json`` listing its study folders), or any folder whose sub-folders
hold ``truth.json``.

Everything the truth knows about a lesion in a view is kept: the id (shared by its CC and MLO projections: the
link), type, box, the exact mask (the truth's cropped PNG, referenced with ``mask_origin``), an outline traced
from that mask (for COCO and Slicer), pathology, morphology, quadrant, depth and BI-RADS; visibility, SNR,
contrast, the 3D size and whether it sits in the axillary tail go to ``extra``. Breast density and BI-RADS
become the views'.

Projections whose visibility is below ``min_visibility`` (default ``"subtle"``: the phantom calls a projection
with SNR < 0.7 "occult") are left out of that view's lesions - a reader would not mark them, and a detector
trained to find them learns noise - and listed in the view's ``extra.occult_lesions``. ``min_visibility=
"occult"`` keeps every projection.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import InputError
from ..manifest import SPLITS, Lesion, Manifest, StudyEntry, ViewEntry

log = logging.getLogger(__name__)

VISIBILITY_ORDER: tuple[str, ...] = ("occult", "subtle", "obvious")
Visibility = Literal["occult", "subtle", "obvious"]
OUTLINE_TOLERANCE_PX = 0.5  # outline simplification; the exact mask file stays in the manifest


def find_phantom_studies(src: str | os.PathLike) -> list[Path]:
    """Study folders holding ``truth.json`` under ``src``: itself, its ``index.json`` list or sub-folders."""
    src = Path(src)
    if src.is_file() and src.name == "truth.json":
        return [src.parent]
    if not src.is_dir():
        raise InputError(src, "no such phantom folder")
    if (src / "truth.json").is_file():
        return [src]
    index = src / "index.json"
    if index.is_file():
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))["studies"]
            folders = [src / str(entry["folder"]) for entry in entries]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(index, f"not a phantom collection index: {exc}") from None
        for folder in folders:
            if not (folder / "truth.json").is_file():
                raise InputError(index, f"lists {folder.name}, which has no truth.json")
        return folders
    folders = sorted(p.parent for p in src.glob("*/truth.json"))
    if not folders:
        raise InputError(src, "no phantom study here (no truth.json in the folder or its sub-folders)")
    return folders


def convert_phantom(
    src: str | os.PathLike,
    *,
    split: str | None = "train",
    min_visibility: Visibility = "subtle",
) -> Manifest:
    """Phantom study folders to a manifest (every study gets ``split``)."""
    from ...phantom import load_truth  # the phantom package owns truth.json

    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
    if min_visibility not in VISIBILITY_ORDER:
        raise ValueError(
            f"min_visibility must be one of {', '.join(VISIBILITY_ORDER)}, got {min_visibility!r}"
        )
    threshold = VISIBILITY_ORDER.index(min_visibility)
    counters: Counter = Counter()
    studies = []
    for folder in find_phantom_studies(src):
        truth = load_truth(folder, masks=True)
        views = {}
        for key, view_truth in truth.views.items():
            breast = truth.breasts.get(view_truth.laterality)
            lesions, hidden = [], []
            for lesion in truth.lesions_in(key):
                projection = lesion.views[key]
                if VISIBILITY_ORDER.index(projection.visibility) < threshold:
                    hidden.append(lesion.id)
                    counters[f"{projection.visibility} lesion projections left out"] += 1
                    continue
                lesions.append(_lesion(folder, lesion, projection))
                counters[lesion.type] += 1
            extra = {
                "chest_wall_side": view_truth.chest_wall_side,
                "nipple": list(view_truth.nipple),
                "pectoral_line": None
                if view_truth.pectoral_line is None
                else [list(p) for p in view_truth.pectoral_line],
                "percent_density": view_truth.percent_density,
            }
            if hidden:
                extra["occult_lesions"] = hidden
            views[key] = ViewEntry(
                key=key,
                image=Path(os.path.abspath(folder / view_truth.file)),
                spacing=None,
                size=tuple(view_truth.size),
                density=breast.density if breast else None,
                birads=breast.birads if breast else None,
                source_id=view_truth.sop_instance_uid,
                lesions=lesions,
                extra=extra,
            )
        studies.append(
            StudyEntry(
                id=truth.study_id,
                source="phantom",
                split=split,
                labelled=True,
                views=views,
                patient_id=truth.patient_id,
                metadata={
                    "seed": truth.seed,
                    "size": truth.size,
                    "spacing_mm": truth.spacing_mm,
                    "patient_age": truth.patient_age,
                    "exam_birads": truth.exam_birads,
                    "study_instance_uid": truth.study_instance_uid,
                    "generator": truth.generator,
                },
            )
        )
    notes = [f"{len(studies)} phantom studies from {Path(src)}; split {split!r}"]
    notes += [f"{count} {what}" for what, count in sorted(counters.items())]
    log.debug("phantom: %d studies", len(studies))
    return Manifest(studies, description="MammoDNN phantom studies", notes=notes)


def _lesion(folder: Path, lesion, projection) -> Lesion:
    from skimage.measure import approximate_polygon

    outline = None
    if projection.mask is not None and not projection.mask.empty:
        polygon = projection.mask.to_polygon()
        polygon = approximate_polygon(np.vstack([polygon, polygon[:1]]), OUTLINE_TOLERANCE_PX)[:-1]
        if len(polygon) >= 3:
            outline = [(round(float(x), 3), round(float(y), 3)) for x, y in polygon]
    return Lesion(
        id=lesion.id,
        type=lesion.type,
        box=tuple(float(v) for v in projection.box),
        outline=outline,
        mask=Path(os.path.abspath(folder / projection.mask_file)),
        mask_origin=(int(projection.box[0]), int(projection.box[1])),
        pathology=lesion.pathology,
        morphology=dict(lesion.morphology),
        quadrant=projection.quadrant,
        depth=float(projection.depth),
        birads=lesion.birads,
        extra={
            "visibility": projection.visibility,
            "snr": projection.snr,
            "contrast": projection.contrast,
            "size_mm": lesion.size_mm,
            "axillary_tail": lesion.axillary_tail,
            "depth_3d": lesion.depth_3d,
        },
    )
