"""Small synthetic four-view studies with known lesions, for tests, smoke runs and ablations.

Not a phantom (``MammoDNNLib.phantom`` makes realistic ones): a study is four prepared views (chest wall on the
left, gray-normalized) of a half-elliptic "breast" with smooth random texture. The texture of the left and right
breasts is largely shared (breasts are roughly symmetric), so a lesion is also an asymmetry, which the left-right
fusion can use. A lesion appears in both views of its breast at about the same column (the same distance from
the chest wall), at unrelated rows, as it does in CC and MLO projections. Lesions are masses (Gaussian blobs) or
calcification clusters (groups of bright dots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..data.samples import StudySample, ViewSample, ViewTarget
from ..geometry import Transform
from ..vocabulary import VIEW_KEYS, class_index


@dataclass(frozen=True)
class SyntheticSpec:
    height: int = 160
    width: int = 128
    lesion_probability: float = 0.85  # studies with one lesion (else normal)
    mass_sigma: tuple[float, float] = (3.0, 6.0)
    mass_contrast: tuple[float, float] = (0.35, 0.6)
    calcification_fraction: float = 0.3
    texture_contrast: float = 0.25
    shared_texture: float = 0.8  # weight of the texture common to left and right


def breast_mask(height: int, width: int, depth: float, half_height: float) -> np.ndarray:
    """Half ellipse on the left edge (chest wall at x = 0)."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy = height / 2
    return ((xx + 0.5) / (depth * width)) ** 2 + ((yy + 0.5 - cy) / (half_height * height)) ** 2 <= 1.0


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal((height, width)), sigma=6) + 0.5 * gaussian_filter(
        rng.standard_normal((height, width)), sigma=2
    )
    return field / (field.std() + 1e-9)


def synthetic_study(
    rng: np.random.Generator, study_id: str, spec: SyntheticSpec = SyntheticSpec(), labelled: bool = True
) -> StudySample:
    h, w = spec.height, spec.width
    shape = {"CC": (0.82, 0.42), "MLO": (0.9, 0.47)}
    shared = {view: _texture(rng, h, w) for view in ("CC", "MLO")}
    lesion_side = rng.choice(["R", "L"]) if rng.random() < spec.lesion_probability else None
    kind = "calcification" if rng.random() < spec.calcification_fraction else "mass"
    depth_fraction = rng.uniform(0.2, 0.75)
    sigma = rng.uniform(*spec.mass_sigma)
    contrast = rng.uniform(*spec.mass_contrast)
    views = {}
    for key in VIEW_KEYS:
        side, view = key.split("-")
        depth, half = shape[view]
        mask = breast_mask(h, w, depth, half)
        texture = spec.shared_texture * shared[view] + (1 - spec.shared_texture) * _texture(rng, h, w)
        image = np.where(mask, 0.55 + spec.texture_contrast * 0.5 * texture, 0.0)
        boxes, labels, ids = [], [], []
        if side == lesion_side:
            cx = depth_fraction * depth * w + rng.uniform(-2, 2)
            rows = np.flatnonzero(mask[:, int(cx)])
            cy = rng.uniform(rows[0] + 0.25 * len(rows), rows[-1] - 0.25 * len(rows))
            yy, xx = np.mgrid[0:h, 0:w] + 0.5
            if kind == "mass":
                image = image + contrast * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
                box = [cx - 2 * sigma, cy - 2 * sigma, cx + 2 * sigma, cy + 2 * sigma]
            else:
                dots = np.column_stack([cx, cy]) + rng.uniform(-6, 6, size=(int(rng.integers(5, 9)), 2))
                for dx, dy in dots:
                    image = image + 0.7 * np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * 0.8**2))
                box = [dots[:, 0].min() - 2, dots[:, 1].min() - 2, dots[:, 0].max() + 2, dots[:, 1].max() + 2]
            boxes.append(np.clip(box, 0, [w, h, w, h]))
            labels.append(class_index(kind))
            ids.append(f"{study_id}-{side}")
        image = np.where(mask, image, 0.0).astype(np.float32)
        target = (
            ViewTarget(np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), ids)
            if labelled
            else None
        )
        views[key] = ViewSample(
            key, image, mask, Transform.identity(w, h), target, source=f"synthetic:{study_id}"
        )
    return StudySample(study_id, views, labelled)


def synthetic_studies(
    count: int, seed: int, spec: SyntheticSpec = SyntheticSpec(), labelled: bool = True, prefix: str = "syn"
) -> list[StudySample]:
    rng = np.random.default_rng(seed)
    return [synthetic_study(rng, f"{prefix}{seed}-{i:04d}", spec, labelled) for i in range(count)]
