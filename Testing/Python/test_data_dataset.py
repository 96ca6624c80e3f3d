"""Training samples from a manifest: targets in the prepared grid, the on-disk cache, split selection, the
torch data loader. Views are read with the real MammoDNNLib.io.load_view; the preparation is a minimal one
built
here (crop to the breast, half resolution, right breasts mirrored) with the contract's fields."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from MammoDNNLib.data.augment import AugmentConfig
from MammoDNNLib.data.dataset import StudyDataset, StudyLoader, collate_studies
from MammoDNNLib.data.manifest import Lesion, Manifest, StudyEntry, ViewEntry
from MammoDNNLib.data.samples import StudySample
from MammoDNNLib.errors import InputError, MammoDNNError
from MammoDNNLib.geometry import Transform
from MammoDNNLib.vocabulary import class_index

BREAST, LESION = 80, 250


@dataclass
class Prepared:
    image: np.ndarray
    breast_mask: np.ndarray
    transform: Transform


class MinimalPreparation:
    """Crop to the breast, halve the resolution, mirror right breasts (chest wall left); counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, view, config=None) -> Prepared:
        self.calls += 1
        factor = (config or {}).get("factor", 2)
        breast = view.pixels > 10
        rows, cols = np.flatnonzero(breast.any(axis=1)), np.flatnonzero(breast.any(axis=0))
        crop = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        size = ((crop[2] - crop[0]) // factor, (crop[3] - crop[1]) // factor)
        transform = Transform(view.size, crop, size, view.laterality == "R")
        image = transform.image_to_prepared(view.pixels / 255.0, order=1).astype(np.float32)
        mask = transform.image_to_prepared(breast.astype(np.uint8), order=0) > 0
        return Prepared(image, mask, transform)


def _film(path: Path, lesion: tuple[int, int, int, int] | None, size=(120, 90)) -> Path:
    pixels = np.zeros((size[1], size[0]), np.uint8)
    pixels[5:85, 4:110] = BREAST
    if lesion is not None:
        x0, y0, x1, y1 = lesion
        pixels[y0:y1, x0:x1] = LESION
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def manifest(tmp_path) -> Manifest:
    images = tmp_path / "images"
    mask_file = images / "lcc-mask.png"
    mask = np.zeros((90, 120), np.uint8)
    mask[30:50, 60:90] = 255
    _film(mask_file.with_name("dummy.png"), None)
    Image.fromarray(mask).save(mask_file)

    def view(key, name, lesion=None, lesions=()):
        return ViewEntry(
            key, _film(images / name, lesion), spacing=(0.2, 0.2), size=(120, 90), lesions=list(lesions)
        )

    study = StudyEntry(
        "a",
        "phantom",
        "train",
        True,
        {
            "R-CC": view(
                "R-CC",
                "rcc.png",
                (20, 10, 40, 30),
                [
                    Lesion(
                        "m1",
                        "mass",
                        (20, 10, 40, 30),
                        outline=[(20, 10), (40, 10), (40, 30), (20, 30)],
                        pathology="malignant",
                        quadrant="outer",
                        depth=0.3,
                    )
                ],
            ),
            "L-CC": view(
                "L-CC",
                "lcc.png",
                (60, 30, 90, 50),
                [Lesion("c1", "calcification", (60, 30, 90, 50), mask=mask_file, pathology="benign")],
            ),
            "R-MLO": view("R-MLO", "rmlo.png"),
            "L-MLO": view("L-MLO", "lmlo.png", (50, 50, 60, 60), [Lesion("u1", "distortion", None)]),
        },
    )
    unlabelled = StudyEntry("b", "vindr", "train", False, {"L-CC": view("L-CC", "b.png", (30, 30, 50, 50))})
    heldout = StudyEntry("h", "mias", "heldout", True, {"L-MLO": view("L-MLO", "h.png")})
    val = StudyEntry("v", "mias", "val", True, {"R-MLO": view("R-MLO", "v.png")})
    nowhere = StudyEntry("n", "cbis-ddsm", "train", True, {"R-CC": ViewEntry("R-CC", None)})
    return Manifest([study, unlabelled, heldout, val, nowhere])


def test_targets_in_the_prepared_grid(manifest, tmp_path):
    preparation = MinimalPreparation()
    sample = StudyLoader(prepare_view=preparation).load(manifest.by_id("a"))
    assert (
        isinstance(sample, StudySample)
        and sample.labelled
        and set(sample.views) == set(["R-CC", "L-CC", "R-MLO", "L-MLO"])
    )
    for key in ("R-CC", "L-CC"):
        view = sample.views[key]
        rows, cols = np.nonzero(view.image > 0.9)
        box = view.target.boxes[0]
        # The prepared box holds the lesion pixels (half resolution: one pixel of blur).
        assert cols.min() >= box[0] - 1 and cols.max() + 1 <= box[2] + 1
        assert rows.min() >= box[1] - 1 and rows.max() + 1 <= box[3] + 1
        np.testing.assert_allclose(
            view.transform.boxes_to_original(view.target.boxes),
            [manifest.by_id("a").views[key].lesions[0].box],
            atol=1e-4,
        )
        mask = view.target.masks[0].full(view.image.shape)
        bright = view.image > 0.9
        assert (mask & bright).sum() / (mask | bright).sum() > 0.7  # outline (R-CC) / mask file (L-CC)
    rcc = sample.views["R-CC"]
    assert rcc.transform.flip_x and rcc.target.labels.tolist() == [class_index("mass")]
    assert rcc.target.lesion_ids == ["m1"]
    assert (
        rcc.target.attributes[0]["pathology"] == "malignant"
        and rcc.target.attributes[0]["quadrant"] == "outer"
    )
    assert sample.views["L-CC"].target.labels.tolist() == [class_index("calcification")]
    assert len(sample.views["R-MLO"].target.boxes) == 0  # a lesion-free view is a negative
    assert sample.views["L-MLO"].target is None  # unknown lesion location: not a negative, no target
    assert rcc.source.endswith("rcc.png")

    unlabelled = StudyLoader(prepare_view=preparation).load(manifest.by_id("b"))
    assert not unlabelled.labelled and unlabelled.views["L-CC"].target is None
    with pytest.raises(InputError, match="study n has no view with a local image"):
        StudyLoader(prepare_view=preparation).load(manifest.by_id("n"))


def test_cache_serves_prepared_views_until_the_file_or_config_changes(manifest, tmp_path):
    cache = tmp_path / "cache"
    study = manifest.by_id("a")
    first_prep = MinimalPreparation()
    fresh = StudyLoader(prepare_view=first_prep, cache_dir=cache).load(study)
    assert first_prep.calls == 4
    second_prep = MinimalPreparation()
    cached = StudyLoader(prepare_view=second_prep, cache_dir=cache).load(study)
    assert second_prep.calls == 0  # no decoding or preparation on the second epoch
    for key in fresh.views:
        np.testing.assert_array_equal(cached.views[key].image, fresh.views[key].image)
        np.testing.assert_array_equal(cached.views[key].breast_mask, fresh.views[key].breast_mask)
        assert cached.views[key].transform == fresh.views[key].transform
    np.testing.assert_array_equal(
        cached.views["L-CC"].target.masks[0].array, fresh.views["L-CC"].target.masks[0].array
    )
    assert list(cache.rglob("*.npz")) and not list(cache.rglob("*.tmp"))

    # A changed image file is prepared again (size and modification time are part of the key).
    path = study.views["R-CC"].image
    _film(path, (22, 12, 44, 34))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third_prep = MinimalPreparation()
    StudyLoader(prepare_view=third_prep, cache_dir=cache).load(study)
    assert third_prep.calls == 1
    # Another configuration is another cache entry; float16 caching halves the files.
    fourth_prep = MinimalPreparation()
    other = StudyLoader({"factor": 3}, cache, prepare_view=fourth_prep, cache_dtype="float16").load(study)
    assert (
        fourth_prep.calls == 4
        and other.views["R-CC"].image.shape[1] == fresh.views["R-CC"].image.shape[1] * 2 // 3
    )


def test_manifest_size_must_match_the_image(manifest):
    study = manifest.by_id("v")
    study.views["R-MLO"].size = (100, 90)
    with pytest.raises(InputError, match="the image is 120 x 90 pixels but the manifest says 100 x 90"):
        StudyLoader(prepare_view=MinimalPreparation()).load(study)


def test_dataset_splits_heldout_and_augmentation(manifest):
    loader = StudyLoader(prepare_view=MinimalPreparation())
    train = StudyDataset(manifest, loader)
    assert [s.id for s in train.studies] == ["a", "b"]  # 'n' has no local image
    assert train.labelled_indices() == [0] and train.unlabelled_indices() == [1]
    assert [s.id for s in StudyDataset(manifest, loader, splits=None).studies] == ["a", "b", "v"]
    assert [s.id for s in StudyDataset(manifest, loader, labelled=False).studies] == ["b"]
    with pytest.raises(MammoDNNError, match="held-out split is excluded"):
        StudyDataset(manifest, loader, splits=("train", "heldout"))
    assert [
        s.id for s in StudyDataset(manifest, loader, splits=("heldout",), allow_heldout=True).studies
    ] == ["h"]

    augmented = StudyDataset(manifest, loader, augment=AugmentConfig(), seed=5)
    one, two = augmented[0], augmented[0]
    assert all(one.views[k].transform == two.views[k].transform for k in one.views)
    transforms = set()
    for epoch in range(6):
        augmented.set_epoch(epoch)
        transforms.add(augmented[0].views["R-CC"].transform)
    assert len(transforms) > 1


def test_torch_data_loader_yields_lists_of_studies(manifest):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    dataset = StudyDataset(manifest, StudyLoader(prepare_view=MinimalPreparation()), augment=AugmentConfig())
    batches = list(dataset.data_loader(batch_size=2, shuffle=False))
    assert len(batches) == 1 and [s.study_id for s in batches[0]] == ["a", "b"]
    assert collate_studies([batches[0][0]]) == [batches[0][0]]


def test_with_the_real_loader_and_preparation(tmp_path):
    """Default StudyLoader: MammoDNNLib.io.load_view + MammoDNNLib.preprocess.prepare_view, cached."""
    preprocess = pytest.importorskip("MammoDNNLib.preprocess")
    yy, xx = np.mgrid[0:300, 0:400] + 0.5
    film = np.where(((xx - 390) / 300) ** 2 + ((yy - 150) / 140) ** 2 < 1, 90, 4).astype(
        np.uint8
    )  # chest wall right
    film[100:130, 200:240] = 240
    path = tmp_path / "R-MLO.png"
    Image.fromarray(film).save(path)
    study = StudyEntry(
        "r",
        "mias",
        "train",
        True,
        {
            "R-MLO": ViewEntry(
                "R-MLO",
                path,
                spacing=(0.2, 0.2),
                size=(400, 300),
                lesions=[Lesion("x", "mass", (200, 100, 240, 130))],
            )
        },
    )
    loader = StudyLoader(preprocess.PreprocessConfig(spacing_mm=0.4), tmp_path / "cache")
    view = loader.load(study).views["R-MLO"]
    assert view.transform.flip_x  # chest wall on the right in the original: mirrored to the left
    box = view.target.boxes[0]
    rows, cols = np.nonzero(view.image > view.image[view.breast_mask].mean() + 1.0)
    assert cols.min() >= box[0] - 1 and cols.max() + 1 <= box[2] + 1
    assert rows.min() >= box[1] - 1 and rows.max() + 1 <= box[3] + 1
    again = StudyLoader(preprocess.PreprocessConfig(spacing_mm=0.4), tmp_path / "cache").load(study)
    np.testing.assert_array_equal(again.views["R-MLO"].image, view.image)
