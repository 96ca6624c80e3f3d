"""Study augmentation: boxes stay on the lesion pixels, one draw per study, exact transforms, drop rule."""

from __future__ import annotations

import numpy as np
import pytest

from MammoDNNLib.data.augment import (
    AugmentConfig,
    StudyAugmentation,
    apply_augmentation,
    augment_study,
    augmented_transform,
)
from MammoDNNLib.data.samples import StudySample, ViewSample, ViewTarget
from MammoDNNLib.geometry import LesionMask, Transform

# Per view: original size, crop, prepared size, flip, lesion rectangle (original pixel edges).
VIEWS = {
    "R-CC": ((400, 300), (50, 20, 350, 280), (150, 130), True, (200, 100, 260, 140)),
    "L-CC": ((400, 300), (40, 10, 360, 290), (160, 140), False, (90, 150, 130, 200)),
    "R-MLO": ((320, 480), (0, 0, 320, 480), (160, 240), True, (250, 60, 300, 120)),
    "L-MLO": ((320, 480), (10, 30, 300, 470), (145, 220), False, (20, 400, 60, 450)),
}


def _study() -> StudySample:
    views = {}
    for key, (size, crop, prepared, flip, lesion) in VIEWS.items():
        transform = Transform(size, crop, prepared, flip)
        original = np.zeros((size[1], size[0]), np.float32)
        x0, y0, x1, y1 = lesion
        original[y0:y1, x0:x1] = 1.0
        image = transform.image_to_prepared(original, order=1)
        breast = transform.image_to_prepared(np.ones_like(original, dtype=np.uint8), order=0).astype(bool)
        mask = LesionMask.from_full(transform.image_to_prepared(original > 0.5, order=0))
        target = ViewTarget(
            transform.boxes_to_prepared([lesion]), [1], [f"{key}-1"], [mask], [{"type": "mass"}]
        )
        views[key] = ViewSample(key, image, breast, transform, target, f"{key}.dcm")
    return StudySample("study", views, True)


def _bright_box(image: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(image > 0.5)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


@pytest.mark.parametrize("seed", range(25))
def test_boxes_stay_on_the_lesion_pixels(seed):
    sample = _study()
    augmented = augment_study(sample, np.random.default_rng(seed))
    flips = set()
    for key, view in augmented.views.items():
        old = sample.views[key]
        flips.add(view.transform.flip_x != old.transform.flip_x)
        assert view.image.shape == (view.transform.prepared_size[1], view.transform.prepared_size[0])
        assert view.image.dtype == np.float32 and view.breast_mask.dtype == bool
        if len(view.target.boxes) == 0:
            # Dropped: less than half of the lesion remains in the crop.
            x0, y0, x1, y1 = old.transform.boxes_to_original(old.target.boxes)[0]
            visible = view.transform.boxes_to_prepared([(x0, y0, x1, y1)])[0]
            width, height = view.transform.prepared_size
            kept = (min(visible[2], width) - max(visible[0], 0)) * (
                min(visible[3], height) - max(visible[1], 0)
            )
            assert kept < 0.5 * (visible[2] - visible[0]) * (visible[3] - visible[1])
            continue
        box = view.target.boxes[0]
        bx0, by0, bx1, by1 = _bright_box(view.image)
        # The box holds every bright pixel (one pixel of interpolation blur allowed) and little else.
        assert bx0 >= box[0] - 1 and by0 >= box[1] - 1 and bx1 <= box[2] + 1 and by1 <= box[3] + 1
        assert (bx1 - bx0) * (by1 - by0) >= 0.6 * (box[2] - box[0]) * (box[3] - box[1])
        # The transform maps the box back onto the lesion in the ORIGINAL grid (exactly, unless clipped).
        back = view.transform.boxes_to_original(view.target.boxes)[0]
        lesion = VIEWS[key][4]
        if (
            np.all(box > 0)
            and box[2] < view.transform.prepared_size[0]
            and box[3] < view.transform.prepared_size[1]
        ):
            np.testing.assert_allclose(back, lesion, atol=1e-3)
        # The lesion mask moved with the image.
        mask_box = view.target.masks[0].box
        np.testing.assert_allclose(mask_box, (bx0, by0, bx1, by1), atol=1.01)
        assert view.target.lesion_ids == [f"{key}-1"] and view.target.attributes == [{"type": "mass"}]
    assert len(flips) == 1  # one flip decision for the whole study


def test_one_draw_per_study_and_determinism():
    sample = _study()
    first = augment_study(sample, np.random.default_rng(7))
    again = augment_study(sample, np.random.default_rng(7))
    other = augment_study(sample, np.random.default_rng(8))
    for key in sample.views:
        assert first.views[key].transform == again.views[key].transform
        np.testing.assert_array_equal(first.views[key].image, again.views[key].image)
    assert any(first.views[k].transform != other.views[k].transform for k in sample.views)
    # Every view was scaled by the same factor (relative to its prepared scale).
    ratios = {
        round(first.views[k].transform.scale[0] / sample.views[k].transform.scale[0], 2) for k in sample.views
    }
    assert len(ratios) == 1 and 0.79 <= ratios.pop() <= 1.21
    # The input was not modified.
    np.testing.assert_array_equal(sample.views["R-CC"].target.boxes, _study().views["R-CC"].target.boxes)


def _single(lesion_x: tuple[int, int]) -> StudySample:
    transform = Transform.identity(100, 100)
    image = np.zeros((100, 100), np.float32)
    image[40:60, lesion_x[0] : lesion_x[1]] = 1.0
    target = ViewTarget([(lesion_x[0], 40, lesion_x[1], 60)], [2], ["c"], None, [])
    return StudySample("s", {"L-CC": ViewSample("L-CC", image, image >= 0, transform, target)}, True)


def test_drop_rule_for_boxes_mostly_cut_off():
    params = StudyAugmentation(scale=1.2, flip=False, position=(0.0, 0.0))
    # The 1.2x window covers original columns [0, 83): snapped from 100 / 1.2 = 83.3.
    assert augmented_transform(Transform.identity(100, 100), params).crop == (0, 0, 83, 83)
    dropped = apply_augmentation(_single((75, 95)), params).views["L-CC"].target  # 8 of 20 columns visible
    assert len(dropped.boxes) == 0 and dropped.lesion_ids == []
    kept = apply_augmentation(_single((70, 90)), params).views["L-CC"].target  # 13 of 20 visible
    np.testing.assert_allclose(kept.boxes[0], (70 * 100 / 83, 40 * 100 / 83, 100, 60 * 100 / 83), atol=1e-4)
    lenient = apply_augmentation(_single((75, 95)), params, AugmentConfig(min_visible_fraction=0.3))
    assert len(lenient.views["L-CC"].target.boxes) == 1
    # min_box_side drops a box the crop cuts too thin (80..83: 3 original = 3.6 prepared columns remain), but
    # never a box the crop leaves whole, however small.
    thin = AugmentConfig(min_visible_fraction=0.0, min_box_side=4.0)
    assert len(apply_augmentation(_single((80, 90)), params, thin).views["L-CC"].target.boxes) == 0
    assert len(apply_augmentation(_single((80, 90)), params, AugmentConfig(min_visible_fraction=0.0)).views[
        "L-CC"].target.boxes) == 1
    assert len(apply_augmentation(_single((10, 12)), params, thin).views["L-CC"].target.boxes) == 1


def test_shrinking_keeps_the_whole_view_and_flip_mirrors():
    params = StudyAugmentation(scale=0.8, flip=True, position=(0.3, 0.9))
    out = apply_augmentation(_single((10, 30)), params).views["L-CC"]
    assert out.transform == Transform((100, 100), (0, 0, 100, 100), (80, 80), True)
    np.testing.assert_allclose(out.target.boxes[0], (80 - 24, 32, 80 - 8, 48))
    assert _bright_box(out.image) == (56, 32, 72, 48)


def test_unlabelled_views_and_config_checks():
    sample = _single((10, 30))
    sample.views["L-CC"].target = None
    out = augment_study(sample, np.random.default_rng(0))
    assert out.views["L-CC"].target is None
    with pytest.raises(ValueError):
        AugmentConfig(scale_range=(1.2, 0.8))
    with pytest.raises(ValueError):
        AugmentConfig(horizontal_flip=1.5)
