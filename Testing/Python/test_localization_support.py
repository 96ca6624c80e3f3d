"""Shared helpers of the lesion-network tests (localization and malignancy): synthetic lesion sets with known
truth, and one small set of fresh phantoms generated once per test session.

Fresh phantoms use a seed that neither the shipped models' training, validation nor held-out sets use.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from MammoDNNLib.geometry import LesionMask, Transform
from MammoDNNLib.training.lesion_networks import LesionRecord, LesionSet, LesionView

FRESH_SEED = 515151  # not the training (1), validation (1, later indices) or held-out (20261124) seed
FRESH_TRAIN, FRESH_VAL = 2, 1  # dense studies (2-3 lesions a breast); the CLI tests train on them
SPACING = 0.4


@functools.lru_cache(maxsize=1)
def fresh_phantom_cache() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mammodnn-lesion-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.lru_cache(maxsize=1)
def fresh_phantom_lesions() -> LesionSet:
    """Lesions of 3 fresh small phantom studies (dense profile: about 30 lesion views) prepared at 0.4 mm,
    cached in a temporary folder in the chunks ``mammodnn train ... --phantoms 2 --val-phantoms 1 --size small
    --seed FRESH_SEED`` asks for."""
    from MammoDNNLib.training.lesion_networks import cached_phantom_lesion_set

    cache = fresh_phantom_cache()
    train = cached_phantom_lesion_set(
        cache, FRESH_TRAIN, FRESH_SEED, "small", SPACING, first_index=0, profile="dense"
    )
    val = cached_phantom_lesion_set(
        cache, FRESH_VAL, FRESH_SEED, "small", SPACING, first_index=FRESH_TRAIN, profile="dense"
    )
    return LesionSet.concatenate([train, val])



def train_command_args(register_train, model_type: str, out: Path, *options: str) -> argparse.Namespace:
    """``mammodnn train MODEL_TYPE`` parsed for one epoch on the fresh phantoms (made first, in the cache the
    command reads) with ``options``, quiet, printing JSON."""
    fresh_phantom_lesions()
    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    return parser.parse_args(
        [
            model_type,
            "--out",
            str(out),
            "--phantoms",
            str(FRESH_TRAIN),
            "--size",
            "small",
            "--val-phantoms",
            str(FRESH_VAL),
            "--seed",
            str(FRESH_SEED),
            "--cache",
            str(fresh_phantom_cache()),
            "--epochs",
            "1",
            *options,
            "--quiet",
            "--json",
        ]
    )

def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def synthetic_localization_set(n: int, seed: int) -> LesionSet:
    """Views of a half-ellipse 'breast' (chest wall on the left) with one disc lesion each.

    Truth by construction: depth = 1 - x / (breast width) along the nipple axis, CC quadrant by thirds of the
    height (outer at the top), areola within 8 % of the width of the nipple; MLO uses the same geometry with
    upper / middle / lower.
    """
    rng = np.random.default_rng(seed)
    views, records = [], []
    for i in range(n):
        height, width = int(rng.integers(100, 140)), int(rng.integers(60, 90))
        yy, xx = np.mgrid[:height, :width]
        cy = height / 2.0
        breast = ((xx + 0.5) / width) ** 2 + ((yy + 0.5 - cy) / (height / 2.0)) ** 2 <= 1.0
        image = np.where(breast, 0.5 + 0.05 * rng.standard_normal((height, width)), -0.3).astype(np.float32)
        view = "CC" if i % 2 == 0 else "MLO"
        while True:
            x, y = rng.uniform(0.05, 0.95) * width, rng.uniform(0.1, 0.9) * height
            if ((x / width) ** 2 + ((y - cy) / (height / 2.0)) ** 2) < 0.8:
                break
        radius = rng.uniform(3, 6)
        mask = LesionMask.from_full(_disc((height, width), x, y, radius) & breast)
        depth = 1.0 - x / width
        if np.hypot(x - width, y - cy) < 0.08 * width * 3:
            quadrant = "areola"
        else:
            third = int(np.clip(y / (height / 3.0), 0, 2))
            quadrant = (("outer", "middle", "inner") if view == "CC" else ("upper", "middle", "lower"))[third]
        image[mask.full((height, width))] += 0.4
        views.append(
            LesionView(
                f"synthetic-{seed}-{i}",
                f"R-{view}",
                view,
                image.astype(np.float16),
                breast,
                Transform.identity(width, height),
                SPACING,
                None,
            )
        )
        records.append(
            LesionRecord(
                len(views) - 1, "L1", "mass", mask, pathology="benign", quadrant=quadrant, depth=float(depth)
            )
        )
    return LesionSet(views, records, {"source": "synthetic", "seed": seed})


def synthetic_malignancy_set(n: int, seed: int) -> LesionSet:
    """Views with one mass each: malignant ones dense and spiculated (bright lines radiating from the core),
    benign ones faint smooth discs; morphology labels follow (mass_margin spiculated / circumscribed,
    mass_shape irregular / round)."""
    rng = np.random.default_rng(seed)
    views, records = [], []
    size = 96
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        malignant = i % 2 == 1
        cx, cy = rng.uniform(40, 56, 2)
        radius = rng.uniform(6, 10)
        image = 0.4 + 0.05 * rng.standard_normal((size, size))
        core = _disc((size, size), cx, cy, radius)
        if malignant:
            angle = np.arctan2(yy + 0.5 - cy, xx + 0.5 - cx)
            r = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
            spikes = (np.cos(angle * int(rng.integers(7, 12)) + rng.uniform(0, 6.28)) > 0.9) & (
                r < 2.6 * radius
            )
            image = image + 0.35 * spikes
        image = image + (0.6 if malignant else 0.2) * core  # malignant cores are denser
        breast = np.ones((size, size), bool)
        views.append(
            LesionView(
                f"synthetic-{seed}-{i}",
                "L-CC",
                "CC",
                image.astype(np.float16),
                breast,
                Transform.identity(size, size),
                SPACING,
                None,
            )
        )
        morphology = (
            {"mass_shape": "irregular", "mass_margin": "spiculated"}
            if malignant
            else {"mass_shape": "round", "mass_margin": "circumscribed"}
        )
        records.append(
            LesionRecord(
                len(views) - 1,
                "L1",
                "mass",
                LesionMask.from_full(core),
                pathology="malignant" if malignant else "benign",
                morphology=morphology,
                quadrant="middle",
                depth=0.5,
                visibility="obvious",
            )
        )
    return LesionSet(views, records, {"source": "synthetic", "seed": seed})
