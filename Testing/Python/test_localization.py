"""Lesion localization: inputs, network heads, estimator choice, registry round trip, a tiny training run, the
training command, and the shipped model's floors on fresh phantoms."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_localization_support import (
    fresh_phantom_lesions,
    synthetic_localization_set,
    train_command_args,
)

from MammoDNNLib.errors import ModelError
from MammoDNNLib.geometry import LesionMask, Transform
from MammoDNNLib.models.lesion_inputs import (
    LocalizationInputConfig,
    MaskPerturbation,
    fit_view,
    localization_input,
    perturb_mask,
)
from MammoDNNLib.models.localization import (
    LocalizationConfig,
    LocalizationModel,
    LocalizationNet,
    combine_quadrant,
    save_localization_model,
)
from MammoDNNLib.vocabulary import QUADRANTS

SHIPPED = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "mammodnn-localization"


def _random_model(seed: int = 0, **config) -> LocalizationModel:
    torch.manual_seed(seed)
    cfg = LocalizationConfig(**config)
    return LocalizationModel(cfg, LocalizationNet(cfg))


# -- inputs
# ---------------------------------------------------------------------------------------------------
def test_fit_view_keeps_aspect_ratio_top_left_and_pads_with_background():
    config = LocalizationInputConfig(height=128, width=96)
    image = np.tile(np.linspace(0.0, 1.0, 100, dtype=np.float32), (300, 1))  # 300 rows x 100 cols
    canvas = fit_view(image, config)
    scale = min(128 / 300, 96 / 100)
    assert canvas.scale == pytest.approx(scale)
    rows, cols = round(300 * scale), round(100 * scale)
    assert (rows, cols) == (128, 43)
    assert np.all(canvas.image[:, cols:] == config.clip[0])  # padding on the right (away from the chest wall)
    # The horizontal ramp survives: left edge dark, right edge of the content bright.
    assert canvas.image[64, 0] < 0.05 and canvas.image[64, cols - 1] > 0.95


def test_localization_input_has_two_channels_and_marks_the_lesion_where_it_is():
    config = LocalizationInputConfig()
    image = np.full((400, 300), 0.5, np.float32)
    full = np.zeros((400, 300), bool)
    full[300:320, 200:230] = True  # rows 300..319, cols 200..229
    x = localization_input(image, LesionMask.from_full(full), config)
    assert x.shape == (2, config.height, config.width) and x.dtype == np.float32
    scale = min(config.height / 400, config.width / 300)
    peak = np.unravel_index(np.argmax(x[1]), x[1].shape)
    assert abs(peak[0] - 310 * scale) <= 2 and abs(peak[1] - 215 * scale) <= 2
    assert x[1].max() == pytest.approx(1.0) and x[1].min() == 0.0
    assert np.allclose(x[0][: int(400 * scale) - 1, : int(300 * scale) - 1], 0.5, atol=1e-5)
    # A full-grid boolean array gives the same input as the LesionMask.
    assert np.array_equal(localization_input(image, full, config), x)
    with pytest.raises(ValueError):
        localization_input(image, np.zeros((400, 300), bool), config)


def test_perturbed_masks_are_never_empty_and_stay_near_the_lesion():
    rng = np.random.default_rng(0)
    full = np.zeros((200, 200), bool)
    full[90:110, 80:130] = True
    mask = LesionMask.from_full(full)
    kinds = set()
    for _ in range(200):
        out = perturb_mask(mask, (200, 200), 0.4, rng, MaskPerturbation())
        assert not out.empty
        x0, y0, x1, y1 = out.box
        assert x0 >= 80 - 0.16 * 50 - 8 and x1 <= 130 + 0.16 * 50 + 8  # box jitter + dilation (2.5 mm = 6 px)
        kinds.add((out.area == mask.area, out.area == (y1 - y0) * (x1 - x0)))
    assert len(kinds) >= 3  # unchanged, box-shaped and reshaped masks all occur


# -- heads
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_heads_give_distributions_over_the_view_quadrants_and_depth_in_unit_interval(view):
    model = _random_model()
    image = np.random.default_rng(1).normal(0.5, 0.2, (300, 200)).astype(np.float32)
    masks = []
    for y in (40, 150, 260):
        full = np.zeros((300, 200), bool)
        full[y : y + 10, 100:115] = True
        masks.append(full)
    predictions = model.predict_batch(SimpleNamespace(image=image), masks, view)
    assert len(predictions) == 3
    for quadrant, probabilities, depth in predictions:
        assert list(probabilities) == list(QUADRANTS[view])
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert quadrant == max(probabilities, key=probabilities.get)
        assert 0.0 <= depth <= 1.0
    single = model.predict(SimpleNamespace(image=image), masks[0], view)
    assert single.depth == pytest.approx(predictions[0].depth, abs=1e-6)
    with pytest.raises(ValueError):
        model.predict(SimpleNamespace(image=image), masks[0], "ML")


def test_combined_quadrant_adds_beta_to_the_geometric_class():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    assert np.allclose(combine_quadrant(p, None, "CC", 3.0), p)
    out = combine_quadrant(p, "inner", "CC", np.log(0.5 / 0.2) + 0.1)
    assert out.sum() == pytest.approx(1.0) and int(np.argmax(out)) == 2
    expected = np.array([0.5, 0.3, 0.2 * np.exp(np.log(2.5) + 0.1), 0.0])
    assert np.allclose(out, expected / expected.sum(), atol=1e-6)


def test_geometric_estimator_uses_the_landmarks_at_the_lesion_centroid():
    from MammoDNNLib.landmarks import (
        CHEST_WALL_SOURCE,
        Landmarks,
        LineEstimate,
        PointEstimate,
        geometric_depth,
    )

    # Original grid 200 x 100 (cols x rows) at 0.5 mm; chest wall at x = 0, nipple at (180, 50).
    transform = Transform((200, 100), (0, 0, 200, 100), (200, 100), False)
    landmarks = Landmarks(
        PointEstimate((180.0, 50.0), "test", 1.0),
        None,
        LineEstimate(((0.0, 0.0), (0.0, 100.0)), CHEST_WALL_SOURCE, 1.0),
        (0.5, 0.5),
    )
    full = np.zeros((100, 200), bool)
    full[45:55, 40:50] = True  # centroid (45, 50): depth 1 - 45/180 = 0.75
    view = SimpleNamespace(
        image=np.full((100, 200), 0.5, np.float32),
        landmarks=landmarks,
        transform=transform,
        breast_mask=np.ones((100, 200), bool),
    )
    model = _random_model(depth_estimator="geometric", quadrant_estimator="geometric")
    (details,) = model.predict_details(view, [full], "CC")
    assert details.geometric_depth == pytest.approx(geometric_depth((45.0, 50.0), landmarks, "CC"))
    assert details.depth == pytest.approx(0.75, abs=1e-6)
    assert details.quadrant == details.geometric_quadrant == "middle"
    assert details.depth_source == details.quadrant_source == "geometric"
    # Without landmarks the configured geometric estimator falls back to the network.
    (fallback,) = model.predict_details(SimpleNamespace(image=view.image), [full], "CC")
    assert fallback.depth_source == "network" and fallback.depth == pytest.approx(fallback.network_depth)


# -- registry
# -------------------------------------------------------------------------------------------------
def test_save_load_round_trip_and_tampered_weights_are_refused(tmp_path):
    model = _random_model(3)
    folder = tmp_path / "loc"
    save_localization_model(folder, model.net, model.config, version="0.0.1", metrics={"note": "test"})
    loaded = LocalizationModel.load(folder)
    x = np.random.default_rng(0).normal(size=(2, 2, 128, 96)).astype(np.float32)
    x[:, 1] = x[:, 1] > 1
    p1, d1 = model.network_outputs(x, ["CC", "MLO"])
    p2, d2 = loaded.network_outputs(x, ["CC", "MLO"])
    assert np.allclose(d1, d2) and all(np.allclose(a, b) for a, b in zip(p1, p2))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "localization" and manifest["config"]["spacing_mm"] == model.config.spacing_mm
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        LocalizationModel.load(folder)


def test_a_pickle_named_safetensors_is_refused(tmp_path):
    from MammoDNNLib.models.registry import sha256_file

    model = _random_model(4)
    folder = tmp_path / "loc"
    save_localization_model(folder, model.net, model.config)
    weights = folder / "weights.safetensors"
    torch.save(model.net.state_dict(), weights)  # a pickle archive under the safetensors name
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["components"][0].update(sha256=sha256_file(weights), size=weights.stat().st_size)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="pickle"):
        LocalizationModel.load(folder)


# -- training
# -------------------------------------------------------------------------------------------------
def test_a_tiny_training_run_learns():
    from MammoDNNLib.training.lesion_networks import TrainOptions, evaluate_localization, train_localization

    train = synthetic_localization_set(64, 0)
    val = synthetic_localization_set(24, 1)
    config = LocalizationConfig(widths=(8, 16, 24), hidden=32, inputs=LocalizationInputConfig(64, 48))
    torch.manual_seed(0)
    untrained = LocalizationModel(config, LocalizationNet(config))
    before = evaluate_localization(untrained, val)["depth_mae"]["all"]["network"]
    result = train_localization(train, val, config, TrainOptions(epochs=6, batch_size=16, lr=1e-2, seed=0))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    after = evaluate_localization(result.model, val)["depth_mae"]["all"]["network"]
    assert after < 0.7 * before and after < 0.15
    # No landmarks in synthetic views: the network is the only estimator.
    assert result.model.config.depth_estimator == "network"


def test_training_resumes_from_its_checkpoint(tmp_path):
    from MammoDNNLib.training.lesion_networks import TrainOptions, train_localization

    train = synthetic_localization_set(16, 2)
    val = synthetic_localization_set(8, 3)
    config = LocalizationConfig(widths=(4, 8), hidden=8, inputs=LocalizationInputConfig(32, 24))
    options = dict(batch_size=8, seed=0, checkpoint_dir=tmp_path / "ck", log_path=tmp_path / "log.jsonl")
    first = train_localization(train, val, config, TrainOptions(epochs=2, **options))
    resumed = train_localization(train, val, config, TrainOptions(epochs=3, resume=True, **options))
    assert [h["epoch"] for h in first.history] == [1, 2]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]


# -- the command and the shipped model on fresh phantoms
# ------------------------------------------------------
@pytest.mark.slow
def test_train_localization_command_writes_a_loadable_model(tmp_path, capsys):
    from MammoDNNLib.cli.train_localization import register_train

    out = tmp_path / "model"
    args = train_command_args(register_train, "localization", out)
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    model = LocalizationModel.load(out)
    assert summary["path"] == str(out.resolve())
    assert model.config.depth_estimator in ("network", "geometric", "combined")
    assert (out / "training" / "train-log.jsonl").is_file() and (out / "MODEL_CARD.md").is_file()
    with pytest.raises(Exception, match="earlier training run"):
        args.func(args)


def _shipped_version() -> Path:
    versions = sorted(p for p in SHIPPED.glob("*") if (p / "manifest.json").is_file())
    if not versions:
        pytest.fail(f"no shipped localization model under {SHIPPED}")
    return versions[-1]


@pytest.mark.slow
def test_shipped_model_meets_its_floors_on_fresh_phantoms():
    from MammoDNNLib.training.lesion_networks import evaluate_localization

    model = LocalizationModel.load(_shipped_version())
    lesions = fresh_phantom_lesions()
    assert len(lesions) >= 20
    for perturb_seed in (None, 5):
        figures = evaluate_localization(model, lesions, perturb_seed=perturb_seed)
        depth = figures["depth_mae"]["all"]
        # Held-out figures of the model card: depth MAE 0.017 (configured) / 0.028 (network), quadrant
        # accuracy
        # 0.88; the floors leave room for the noise of about 25 lesion views.
        assert depth["configured"] <= 0.05, figures
        assert depth["network"] <= 0.07, figures
        hits = sum(q["configured"] * q["n"] for q in figures["quadrant_accuracy"].values())
        assert hits / len(lesions.for_localization()) >= 0.7, figures
