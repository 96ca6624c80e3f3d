"""Export a manifest to COCO detection JSON (``mammodnn data coco MANIFEST --out FILE``).

One COCO image per view with a local image, one annotation per boxed lesion. Category ids are the detector's
class indices (:func:`MammoDNNLib.vocabulary.class_index`: mass 1, calcification 2, asymmetry 3, distortion
4). ``bbox`` is ``[x, y, width, height]`` in original pixels (top-left corner; COCO and the project share the
pixel-edge convention); ``segmentation`` is the outline polygon where the lesion has one. ``file_name`` is
relative to the COCO file's folder. Each image and annotation carries a ``mammodnn`` object (study, view,
split, lesion id, pathology, ...), which COCO readers ignore.

Views that cannot teach a detector are left out, and counted in ``info.mammodnn_skipped``: views of unlabelled
studies, views with a lesion of unknown location (``box: null``), and views without a local image.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ... import __version__
from ...errors import InputError
from ...vocabulary import FINDING_TYPES, class_index
from ..manifest import Manifest, ViewEntry, relative_path


def manifest_to_coco(
    manifest: Manifest, out_dir: str | os.PathLike, *, splits: Sequence[str | None] | None = None
) -> dict:
    """The COCO dictionary (paths relative to ``out_dir``); ``splits`` limits the studies exported."""
    out_dir = Path(os.path.abspath(out_dir))
    images, annotations = [], []
    skipped: Counter = Counter()
    for study in manifest.studies:
        if splits is not None and study.split not in splits:
            continue
        for key, view in study.views.items():
            if not study.labelled:
                skipped["views of unlabelled studies"] += 1
                continue
            if view.image is None:
                skipped["views without a local image"] += 1
                continue
            if not view.box_complete:
                skipped["views with lesions of unknown location"] += 1
                continue
            width, height = view.size or _image_size(view)
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": relative_path(view.image, out_dir),
                    "width": int(width),
                    "height": int(height),
                    "mammodnn": {
                        "study_id": study.id,
                        "view": key,
                        "split": study.split,
                        "source": study.source,
                        "source_id": view.source_id,
                        "spacing": list(view.spacing) if view.spacing else None,
                    },
                }
            )
            for lesion in view.lesions:
                x0, y0, x1, y1 = lesion.box  # type: ignore[misc]  # box_complete
                annotation = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": class_index(lesion.type),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "mammodnn": {
                        "lesion_id": lesion.id,
                        "pathology": lesion.pathology,
                        "birads": lesion.birads,
                        "morphology": lesion.morphology,
                    },
                }
                if lesion.outline is not None:
                    annotation["segmentation"] = [[float(c) for point in lesion.outline for c in point]]
                    annotation["area"] = _polygon_area(lesion.outline)
                annotations.append(annotation)
    return {
        "info": {
            "description": manifest.description or "MammoDNN manifest",
            "version": __version__,
            "date_created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "contributor": "MammoDNN",
            "mammodnn_skipped": dict(skipped),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": class_index(t.key), "name": t.key, "supercategory": "lesion"} for t in FINDING_TYPES
        ],
    }


def export_coco(
    manifest: Manifest, path: str | os.PathLike, *, splits: Sequence[str | None] | None = None
) -> dict:
    """Write ``manifest`` as COCO JSON to ``path``; returns the dictionary written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest_to_coco(manifest, path.parent, splits=splits)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return data


def _image_size(view: ViewEntry) -> tuple[int, int]:
    """(width, height) from the file header (DICOM) or the image header (PNG/PGM/TIFF), without decoding."""
    path = view.image
    assert path is not None
    if not path.is_file():
        raise InputError(path, "image named by the manifest does not exist (COCO needs its size)")
    if path.suffix.lower() in (".dcm", ".dicom", ""):
        from ._dicom import dicom_size

        return dicom_size(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(path, f"cannot read the image size: {exc}") from None


def _polygon_area(points: list[tuple[float, float]]) -> float:
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0
