"""The original<->prepared transform and lesion masks/outlines."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from MammoDNNLib.geometry import LesionMask, Transform


@st.composite
def transforms(draw):
    width = draw(st.integers(8, 400))
    height = draw(st.integers(8, 400))
    x0 = draw(st.integers(0, width - 2))
    x1 = draw(st.integers(x0 + 1, width))
    y0 = draw(st.integers(0, height - 2))
    y1 = draw(st.integers(y0 + 1, height))
    pw = draw(st.integers(1, 300))
    ph = draw(st.integers(1, 300))
    return Transform((width, height), (x0, y0, x1, y1), (pw, ph), draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(transforms(), st.lists(st.tuples(st.floats(0, 400), st.floats(0, 400)), min_size=1, max_size=8))
def test_points_round_trip_exactly(transform, points):
    back = transform.to_original(transform.to_prepared(points))
    np.testing.assert_allclose(back, np.asarray(points), atol=1e-7)


def test_crop_scale_and_flip_map_corners():
    t = Transform((100, 80), (10, 20, 60, 70), (100, 25), flip_x=True)
    assert t.scale == (2.0, 0.5)
    # The crop's top-left corner lands on the prepared top-right corner after the flip.
    np.testing.assert_allclose(t.to_prepared([(10, 20), (60, 70)]), [(100, 0), (0, 25)])
    boxes = t.boxes_to_prepared([(10, 20, 20, 30)])
    np.testing.assert_allclose(boxes, [(80, 0, 100, 5)])
    np.testing.assert_allclose(t.boxes_to_original(boxes), [(10, 20, 20, 30)])
    assert Transform.from_dict(t.to_dict()) == t


def test_bad_crop_is_rejected():
    with pytest.raises(ValueError, match="crop"):
        Transform((10, 10), (0, 0, 11, 10), (5, 5))


def test_image_and_mask_resampling_agree_with_point_map():
    rng = np.random.default_rng(0)
    image = np.zeros((120, 90), np.float32)
    image[40:60, 20:35] = 1.0
    t = Transform((90, 120), (5, 10, 85, 110), (40, 50), flip_x=True)
    prepared = t.image_to_prepared(image, order=0)
    assert prepared.shape == (50, 40)
    ys, xs = np.nonzero(prepared > 0.5)
    box = t.boxes_to_prepared([(20, 40, 35, 60)])[0]
    assert xs.min() >= np.floor(box[0]) and xs.max() < np.ceil(box[2])
    assert ys.min() >= np.floor(box[1]) and ys.max() < np.ceil(box[3])
    back = t.mask_to_original(prepared > 0.5)
    assert back.shape == image.shape
    overlap = (back & (image > 0.5)).sum() / (image > 0.5).sum()
    assert overlap > 0.85
    noise = rng.random((120, 90)) > 2  # all False
    assert not t.mask_to_original(t.image_to_prepared(noise, order=0)).any()


def test_identity_prepared_copy_is_independent():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = Transform.identity(4, 3)
    out = t.image_to_prepared(image)
    out[0, 0] = 99
    assert image[0, 0] == 0


@st.composite
def solid_masks(draw):
    from scipy import ndimage

    rows = draw(st.integers(3, 40))
    cols = draw(st.integers(3, 40))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((rows, cols)) > 0.35, iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        mask = np.zeros((rows, cols), bool)
        mask[rows // 2, cols // 2] = True
    else:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


@settings(max_examples=150, deadline=None)
@given(solid_masks(), st.integers(0, 50), st.integers(0, 50))
def test_mask_polygon_round_trip(mask, col0, row0):
    full = np.zeros((mask.shape[0] + row0 + 3, mask.shape[1] + col0 + 3), bool)
    full[row0 : row0 + mask.shape[0], col0 : col0 + mask.shape[1]] = mask
    lesion = LesionMask.from_full(full)
    polygon = lesion.to_polygon()
    again = LesionMask.from_polygon(polygon, full.shape).full(full.shape)
    # Exact for 4-connected shapes; a diagonal-only touch may split, so compare to the largest 4-connected part.
    from scipy import ndimage

    labels, n = ndimage.label(full)
    largest = labels == 1 + int(np.argmax(ndimage.sum(full, labels, range(1, n + 1))))
    assert np.array_equal(again, largest)


def test_mask_box_and_full():
    full = np.zeros((10, 12), bool)
    full[2:5, 3:9] = True
    lesion = LesionMask.from_full(full)
    assert lesion.box == (3.0, 2.0, 9.0, 5.0)
    assert lesion.area == 18
    assert np.array_equal(lesion.full((10, 12)), full)
    assert LesionMask.from_full(np.zeros((4, 4), bool)).empty
