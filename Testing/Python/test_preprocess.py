"""Preprocessing on synthetic views with known truth: mask, orientation, transform, gray map, files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_preprocess_synthetic import synthetic_view

from MammoDNNLib.errors import InputError
from MammoDNNLib.geometry import Transform
from MammoDNNLib.preprocess import (
    PNG_VALUE_RANGE,
    PreprocessConfig,
    decode_png16,
    detect_chest_wall_side,
    encode_png16,
    original_breast_mask,
    prepare_study,
    prepare_view,
    triangle_threshold,
    write_preprocessed,
)
from MammoDNNLib.study import Study, View


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("chest_wall", ["left", "right"])
@pytest.mark.parametrize("spacing", [0.1, 0.4])
def test_mask_matches_breast_and_leaves_out_the_label(chest_wall, spacing):
    view, truth = synthetic_view(chest_wall=chest_wall, spacing=spacing)
    prepared = prepare_view(view)
    mask = original_breast_mask(prepared)
    assert mask.shape == view.pixels.shape
    assert iou(mask, truth.mask) > 0.97
    assert not (mask & truth.label).any()


@pytest.mark.parametrize("chest_wall, flip", [("left", False), ("right", True)])
def test_orientation_from_content_and_flip(chest_wall, flip):
    view, truth = synthetic_view(chest_wall=chest_wall, spacing=0.4)
    prepared = prepare_view(view)
    assert prepared.chest_wall_side == chest_wall
    assert prepared.orientation.content_side == chest_wall
    assert prepared.orientation.agrees_with_convention is True
    assert prepared.transform.flip_x is flip
    # Prepared: the chest wall is on the left, i.e. the mask spans (nearly) the full breast height in its
    # first columns and only a short stretch near the nipple in its last ones.
    mask = prepared.breast_mask
    cols = np.flatnonzero(mask.any(axis=0))
    assert mask[:, cols[0] + 2].sum() > 5 * mask[:, cols[-1] - 2].sum()
    # Top stays top (never flipped vertically): the true pectoral top end maps to the prepared top edge.
    (tx, ty), _ = truth.pectoral
    _, py = prepared.transform.to_prepared([[tx, ty]])[0]
    assert py == pytest.approx(0.0, abs=1.0)


def test_laterality_disagreement_is_warned_and_content_wins():
    view, _ = synthetic_view(chest_wall="right", laterality="L", spacing=0.4)
    prepared = prepare_view(view)
    assert prepared.chest_wall_side == "right" and prepared.transform.flip_x
    assert prepared.orientation.agrees_with_convention is False
    assert prepared.orientation.convention_side == "left"
    assert any("mirrored" in w for w in prepared.warnings)


def test_chest_wall_side_of_simple_shapes():
    mask = np.zeros((100, 80), bool)
    yy, xx = np.mgrid[0:100, 0:80]
    mask[((xx / 60.0) ** 2 + ((yy - 50) / 45.0) ** 2) <= 1] = True  # half disc on the left edge
    image = mask.astype(np.float32)
    assert detect_chest_wall_side(mask, image)[0] == "left"
    assert detect_chest_wall_side(mask[:, ::-1], image[:, ::-1])[0] == "right"
    # A symmetric blob: the shape says nothing; the denser half decides.
    blob = ((xx - 40) / 30.0) ** 2 + ((yy - 50) / 40.0) ** 2 <= 1
    gray = blob * (1.0 + (xx < 40))
    side, evidence = detect_chest_wall_side(blob, gray.astype(np.float32))
    assert side == "left" and evidence["decided_by"] == "gray levels"
    assert detect_chest_wall_side(blob, blob.astype(np.float32))[0] is None


def test_transform_is_exact_and_crop_holds_the_breast():
    view, truth = synthetic_view(chest_wall="right", spacing=0.25)
    config = PreprocessConfig(spacing_mm=0.5, crop_margin_mm=2.0)
    prepared = prepare_view(view, config)
    t = prepared.transform
    assert t.original_size == (view.pixels.shape[1], view.pixels.shape[0])
    x0, y0, x1, y1 = t.crop
    ys, xs = np.nonzero(truth.mask)
    margin = int(round(2.0 / 0.25))
    assert x0 <= xs.min() and x1 >= xs.max() + 1 and y0 <= ys.min() and y1 >= ys.max() + 1
    assert x0 >= xs.min() - margin - 2 and x1 <= min(xs.max() + 1 + margin + 2, t.original_size[0])
    # Prepared size follows the target spacing; prepared pixels are square 0.5 mm.
    assert t.prepared_size[0] == round((x1 - x0) * 0.25 / 0.5)
    assert t.prepared_size[1] == round((y1 - y0) * 0.25 / 0.5)
    assert prepared.image.shape == (t.prepared_size[1], t.prepared_size[0])
    # The prepared image is the original crop resampled and flipped (independent check with the contract).
    expected = Transform(t.original_size, t.crop, t.prepared_size, True).image_to_prepared(view.pixels)
    np.testing.assert_allclose(prepared.gray.invert(prepared.image), expected, rtol=0, atol=1e-3)
    # Landmarks map back: the prepared nipple is on the right side of the prepared breast.
    nx, _ = t.to_prepared([prepared.landmarks.nipple.xy])[0]
    assert nx > 0.9 * np.flatnonzero(prepared.breast_mask.any(axis=0)).max()


def test_gray_mapping_percentiles():
    view, _ = synthetic_view(spacing=0.3)
    prepared = prepare_view(view)
    inside = prepared.image[prepared.breast_mask]
    assert np.mean(inside < 0) == pytest.approx(0.05, abs=0.01)
    assert np.mean(inside > 1) == pytest.approx(0.05, abs=0.01)
    assert np.mean((inside >= 0) & (inside <= 1)) == pytest.approx(0.90, abs=0.01)
    raw = prepared.gray.invert(prepared.image)[prepared.breast_mask]
    assert prepared.gray.low == pytest.approx(np.percentile(raw, 5), rel=1e-4)
    assert prepared.gray.high == pytest.approx(np.percentile(raw, 95), rel=1e-4)


@pytest.mark.parametrize("target", [0.15, 0.3, 0.5])
def test_any_target_spacing_keeps_the_landmarks(target):
    view, truth = synthetic_view(spacing=0.1, chest_wall="right")
    prepared = prepare_view(view, PreprocessConfig(spacing_mm=target))
    assert prepared.spacing_mm == target
    nipple = np.asarray(prepared.landmarks.nipple.xy)
    assert np.hypot(*(nipple - truth.nipple)) * 0.1 < 2.0  # mm
    assert prepared.landmarks.pectoral is not None


def test_study_keeps_keys_and_order():
    views = {}
    for key, side in (("R-MLO", "right"), ("L-MLO", "left")):
        view, _ = synthetic_view(chest_wall=side, spacing=0.5, seed=len(views))
        views[key] = view
    prepared = prepare_study(Study(views))
    assert list(prepared) == ["R-MLO", "L-MLO"]
    assert prepared["R-MLO"].transform.flip_x and not prepared["L-MLO"].transform.flip_x


def test_cc_view_has_no_pectoral_and_depth_from_chest_wall():
    view, truth = synthetic_view(view="CC", spacing=0.3)
    prepared = prepare_view(view)
    assert prepared.landmarks.pectoral is None
    (x0, _), (x1, _) = prepared.landmarks.chest_wall.points
    assert x0 == pytest.approx(0.0, abs=1.5) and x1 == pytest.approx(0.0, abs=1.5)
    assert np.hypot(*(np.asarray(prepared.landmarks.nipple.xy) - truth.nipple)) * 0.3 < 1.5


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda: np.full((300, 300), 7.0, np.float32), "blank"),
        (lambda: np.where(np.eye(300, dtype=bool), np.nan, 5.0).astype(np.float32), "NaN"),
        (lambda: np.random.default_rng(0).random((20, 20)).astype(np.float32), "too small"),
        (lambda: np.pad(np.full((6, 6), 200.0, np.float32), 147), "no breast"),
    ],
)
def test_bad_images_raise_input_error(make, problem):
    view = View(make(), (0.2, 0.2), "L", "MLO")
    with pytest.raises(InputError, match=problem):
        prepare_view(view)


def test_breast_touching_three_borders_is_warned():
    view, _ = synthetic_view(view="CC", spacing=0.5, half_height_mm=90.0, centre_y_mm=75.0)
    prepared = prepare_view(view)
    assert any("touches 3 image borders" in w for w in prepared.warnings)


def test_triangle_threshold_ignores_a_bright_strip():
    rng = np.random.default_rng(1)
    background = rng.normal(10, 2, 60000)
    breast = rng.uniform(60, 180, 40000)
    strip = rng.normal(250, 1, 30000)  # a film-edge strip: a taller peak than the breast, at the bright end
    threshold, peak = triangle_threshold(np.concatenate([background, breast, strip]))
    assert 12 < threshold < 60
    assert peak == pytest.approx(10, abs=3)


def test_png16_round_trip_and_clipping():
    lo, hi = PNG_VALUE_RANGE
    values = np.linspace(lo, hi, 1001, dtype=np.float32).reshape(7, 143)
    back = decode_png16(encode_png16(values))
    assert np.abs(back - values).max() <= (hi - lo) / 65535
    assert decode_png16(encode_png16(np.array([[lo - 5, hi + 5]]))).tolist() == [[lo, hi]]


def test_config_json_round_trip():
    config = PreprocessConfig(spacing_mm=0.3, crop_margin_mm=4.0)
    again = PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="unknown"):
        PreprocessConfig.from_dict({"spacing": 0.3})
    with pytest.raises(ValueError, match="left"):
        PreprocessConfig(chest_wall_side="right")


def test_write_preprocessed_files(tmp_path):
    view, truth = synthetic_view(chest_wall="right", spacing=0.4)
    prepared = prepare_view(view)
    path = write_preprocessed({"R-MLO": view}, {"R-MLO": prepared}, tmp_path, PreprocessConfig())
    doc = json.loads(path.read_text())
    record = doc["views"]["R-MLO"]
    mask = np.asarray(Image.open(tmp_path / record["files"]["breast_mask"]))
    assert mask.shape == view.pixels.shape and set(np.unique(mask)) <= {0, 255}
    assert iou(mask == 255, truth.mask) > 0.97
    png = np.asarray(Image.open(tmp_path / record["files"]["preprocessed"]))
    assert png.dtype == np.uint16 and png.shape == prepared.image.shape
    np.testing.assert_allclose(decode_png16(png), np.clip(prepared.image, *PNG_VALUE_RANGE), atol=1e-4)
    assert record["crop_box"] == list(prepared.transform.crop)
    assert record["flip_x"] is True
    assert record["nipple"]["xy"] == pytest.approx(list(prepared.landmarks.nipple.xy))
    assert record["nipple"]["source"].startswith("heuristic")
    assert len(record["pectoral_line"]["points"]) == 2
    assert record["gray_mapping"]["low"] == pytest.approx(prepared.gray.low)
    assert record["orientation"]["chest_wall_side_in_original"] == "right"
    assert doc["config"] == PreprocessConfig().to_dict()
    assert Transform.from_dict(record["transform"]) == prepared.transform


def test_cli_preprocess_writes_the_files(tmp_path):
    from MammoDNNLib.cli import main

    view, truth = synthetic_view(chest_wall="left", spacing=0.3)
    image_path = tmp_path / "case1.png"
    Image.fromarray(np.clip(view.pixels, 0, 255).astype(np.uint8)).save(image_path)
    out = tmp_path / "out"
    code = main(
        [
            "preprocess",
            str(image_path),
            "--out",
            str(out),
            "--spacing",
            "0.3",
            "--laterality",
            "L",
            "--view",
            "MLO",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads((out / "preprocess.json").read_text())
    record = doc["views"]["L-MLO"]
    assert (out / "case1_breast_mask.png").exists() and (out / "case1_preprocessed.png").exists()
    assert np.hypot(*(np.asarray(record["nipple"]["xy"]) - truth.nipple)) * 0.3 < 2.0
    # Without laterality the header-less image cannot be placed: one-line error, exit code 1.
    assert main(["preprocess", str(image_path), "--out", str(out), "--spacing", "0.3", "--quiet"]) == 1
