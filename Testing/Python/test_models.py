"""The detector model: config, fusion, network shapes, TTA geometry, box merging, the Detector API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from MammoDNNLib.errors import InputError
from MammoDNNLib.geometry import Transform
from MammoDNNLib.models.config import DetectorConfig, load_config, named_configs
from MammoDNNLib.models.detector import Detector
from MammoDNNLib.models.fusion import FourViewFusion, partner_indices
from MammoDNNLib.models.config import FusionConfig
from MammoDNNLib.models.network import FourViewFasterRCNN, make_view_batch
from MammoDNNLib.models.tta import BoxSet, flip_boxes, merge_box_sets, nms_merge, weighted_boxes_fusion

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_config() -> DetectorConfig:
    return load_config("detector-tiny-test")


# -- config -----------------------------------------------------------------------------------------------------
def test_named_configs_load_and_round_trip(tmp_path):
    assert {"detector-r50-study", "detector-r18-cpu", "detector-tiny-test"} <= set(named_configs())
    for name in named_configs():
        config = load_config(name)
        path = tmp_path / f"{name}.json"
        config.save(path)
        again = load_config(path)
        assert again == config
        assert json.loads(path.read_text()) == config.to_dict()
    study = load_config("detector-r50-study")
    # The recipe.
    assert (study.backbone, study.training.lr, study.training.momentum, study.training.weight_decay) == (
        "resnet50",
        0.005,
        0.9,
        1e-4,
    )
    assert (study.training.warmup_iterations, study.training.max_iterations) == (500, 25000)
    assert study.training.scale_range == (0.8, 1.2)


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"backbone": "resnet50", "fusion": {"left_rigth": False}}))
    with pytest.raises(InputError, match="fusion.left_rigth"):
        load_config(bad)
    bad.write_text(json.dumps({"backbone": "vgg16"}))
    with pytest.raises(InputError, match="backbone"):
        load_config(bad)
    bad.write_text(json.dumps({"rpn": {"anchor_sizes": [[32]]}}))
    with pytest.raises(InputError, match="anchor_sizes"):
        load_config(bad)
    bad.write_text(json.dumps({"training": {"lr": "fast"}}))
    with pytest.raises(InputError, match="lr must be a number"):
        load_config(bad)
    with pytest.raises(InputError, match="no such configuration"):
        load_config(tmp_path / "absent.json")


def test_yaml_config_needs_pyyaml_or_reads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backbone: resnet18\nfusion:\n  left_right: false\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="PyYAML"):
            load_config(path)
    else:
        config = load_config(path)
        assert config.backbone == "resnet18" and not config.fusion.left_right and config.fusion.cc_mlo


# -- fusion -----------------------------------------------------------------------------------------------------
def test_partner_indices_follow_the_views():
    keys = ["R-CC", "L-CC", "R-MLO", "L-CC"]
    lr, cc = partner_indices(keys, [0, 0, 0, 1])
    assert lr.tolist() == [1, 0, -1, -1]  # R-MLO has no L-MLO; study 1's L-CC is alone
    assert cc.tolist() == [2, -1, 0, -1]


def _perturbed_fusion(left_right: bool, cc_mlo: bool, channels: int = 8) -> FourViewFusion:
    torch.manual_seed(0)
    fusion = FourViewFusion(channels, FusionConfig(left_right, cc_mlo, reduction=2))
    with torch.no_grad():
        for p in fusion.parameters():
            p.normal_(0, 0.5)
    return fusion


def test_fusion_starts_as_identity_and_uses_partners():
    x = torch.randn(4, 8, 6, 5)
    lr, cc = partner_indices(["R-CC", "L-CC", "R-MLO", "L-MLO"], [0] * 4)
    fresh = FourViewFusion(8, FusionConfig(True, True, reduction=2))
    assert torch.equal(fresh.fuse(x, lr, cc), x)  # zero-initialized residual

    both = _perturbed_fusion(True, True)
    base = both.fuse(x, lr, cc)
    changed = x.clone()
    changed[1] += torch.randn(8, 6, 5)  # change L-CC only
    out = both.fuse(changed, lr, cc)
    assert not torch.allclose(out[0], base[0])  # R-CC sees its contralateral L-CC
    assert torch.allclose(out[2], base[2])  # R-MLO: neither partner is L-CC
    assert not torch.allclose(out[3], base[3])  # L-MLO sees L-CC (its other view)


def test_cc_mlo_context_ignores_rows_of_the_other_view():
    """The CC-MLO summary is column-pooled: shuffling the other view's rows changes nothing, columns do."""
    fusion = _perturbed_fusion(False, True)
    x = torch.randn(4, 8, 6, 5)
    lr, cc = partner_indices(["R-CC", "L-CC", "R-MLO", "L-MLO"], [0] * 4)
    base = fusion.fuse(x, lr, cc)
    rows = x.clone()
    rows[2] = rows[2][:, torch.randperm(6)]  # R-MLO rows shuffled
    assert torch.allclose(fusion.fuse(rows, lr, cc)[0], base[0], atol=1e-6)
    cols = x.clone()
    cols[2] = cols[2][:, :, torch.tensor([4, 3, 2, 1, 0])]
    assert not torch.allclose(fusion.fuse(cols, lr, cc)[0], base[0])


def test_fusion_switches_and_missing_partner():
    x = torch.randn(2, 8, 4, 4)
    lr, cc = partner_indices(["R-CC", "R-MLO"], [0, 0])  # one breast only: no left-right partner
    only_lr = _perturbed_fusion(True, False)
    out = only_lr.fuse(x, lr, cc)
    changed = x.clone()
    changed[1] += 1.0
    # Without a contralateral view, R-CC's output depends on R-CC alone.
    assert torch.allclose(only_lr.fuse(changed, lr, cc)[0], out[0])
    assert torch.isfinite(out).all() and out.shape == x.shape


@pytest.mark.parametrize("fusion", [(True, True), (False, False), (True, False), (False, True)])
@pytest.mark.parametrize("views", [("R-CC", "L-CC", "R-MLO", "L-MLO"), ("L-MLO",), ("R-CC", "R-MLO", "L-CC")])
def test_network_outputs_with_fusion_and_missing_views(tiny_config, fusion, views):
    config = tiny_config.replace(fusion={"left_right": fusion[0], "cc_mlo": fusion[1], "reduction": 4})
    torch.manual_seed(1)
    model = FourViewFasterRCNN(config)
    assert (model.fusion is None) == (fusion == (False, False))
    rng = np.random.default_rng(0)
    study = {k: rng.random((70 + 9 * i, 50 + 7 * i)).astype(np.float32) for i, k in enumerate(views)}
    batch = make_view_batch([study], 32)
    assert batch.canvas[0] % 32 == 0 and batch.canvas[1] % 32 == 0
    assert batch.keys == [k for k in ("R-CC", "L-CC", "R-MLO", "L-MLO") if k in views]
    model.eval()
    with torch.inference_mode():
        results = model(batch)
    assert len(results) == len(views)
    for r in results:
        n = len(r["boxes"])
        assert r["boxes"].shape == (n, 4) and r["probs"].shape == (n, config.num_classes)
        assert n <= config.roi.detections_per_img
        assert torch.allclose(r["probs"].sum(1), torch.ones(n), atol=1e-5)
        assert torch.equal(r["scores"], r["probs"][torch.arange(n), r["labels"]])
    model.train()
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 20.0, 22.0]]), "labels": torch.tensor([1])}] + [
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.long)}
    ] * (len(views) - 1)
    losses = model(batch, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


# -- TTA geometry and merging -----------------------------------------------------------------------------------
def test_flip_boxes_matches_flipped_pixels_and_is_an_involution():
    rng = np.random.default_rng(3)
    height, width = 13, 17
    for _ in range(20):
        r, c = int(rng.integers(height)), int(rng.integers(width))
        image = np.zeros((height, width))
        image[r, c] = 1
        box = np.array([[c, r, c + 1, r + 1]], float)
        for horizontal in (False, True):
            for vertical in (False, True):
                flipped = image[:: -1 if vertical else 1, :: -1 if horizontal else 1]
                rr, cc = np.argwhere(flipped)[0]
                mapped = flip_boxes(box, width, height, horizontal, vertical)
                np.testing.assert_array_equal(mapped, [[cc, rr, cc + 1, rr + 1]])
                np.testing.assert_array_equal(flip_boxes(mapped, width, height, horizontal, vertical), box)


def _set(boxes, scores, labels):
    n = len(boxes)
    probs = np.zeros((n, 5))
    probs[np.arange(n), labels] = scores
    return BoxSet(np.array(boxes, float).reshape(-1, 4), scores, labels, probs)


def test_weighted_box_fusion_on_hand_made_boxes():
    a = _set([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [1, 1])
    b = _set([[1, 1, 11, 11], [0, 0, 10, 10]], [0.6, 0.7], [1, 2])
    fused = weighted_boxes_fusion([a, b], iou_thresh=0.55)
    by_label = {
        (int(lab), tuple(np.round(bx, 6))): s for bx, s, lab in zip(fused.boxes, fused.scores, fused.labels)
    }
    # IoU([0,0,10,10],[1,1,11,11]) = 81/119 > 0.55: one cluster, coordinates weighted by score (0.9, 0.6),
    # score = mean(0.9, 0.6) * min(2 boxes, 2 sets) / 2 sets.
    assert by_label[(1, (0.4, 0.4, 10.4, 10.4))] == pytest.approx(0.75)
    assert by_label[(1, (50.0, 50.0, 60.0, 60.0))] == pytest.approx(0.8 / 2)  # one set of two found it
    assert by_label[(2, (0.0, 0.0, 10.0, 10.0))] == pytest.approx(0.7 / 2)  # other class: not merged
    assert len(fused) == 3 and list(fused.scores) == sorted(fused.scores, reverse=True)
    merged_probs = fused.probs[np.argmax(fused.scores)]
    np.testing.assert_allclose(merged_probs, [0, (0.9 * 0.9 + 0.6 * 0.6) / 1.5, 0, 0, 0])


def test_nms_merge_on_hand_made_boxes():
    a = _set([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [1, 1])
    b = _set([[1, 1, 11, 11], [0, 0, 10, 10], [30, 0, 40, 10]], [0.95, 0.7, 0.2], [1, 2, 1])
    kept = nms_merge([a, b], iou_thresh=0.55)
    rows = sorted(zip(kept.scores.round(6), kept.labels, map(tuple, kept.boxes)), reverse=True)
    assert rows == [
        (0.95, 1, (1, 1, 11, 11)),
        (0.8, 1, (50, 50, 60, 60)),
        (0.7, 2, (0, 0, 10, 10)),
        (0.2, 1, (30, 0, 40, 10)),
    ]
    assert len(merge_box_sets([a], "wbf", 0.5)) == 2  # one set passes through
    with pytest.raises(ValueError):
        merge_box_sets([a, b], "mean", 0.5)


class _BrightestPixel:
    """A stand-in network: one detection per view, the box of its brightest pixel. Its result under any flip is
    known exactly, so the Detector's flip / unflip / merge / crop / transform bookkeeping can be checked."""

    def features(self, images, partner_lr, partner_cc):
        return images

    def heads(self, features, canvas, count):
        out = []
        for image in features[:, 0]:
            r, c = divmod(int(torch.argmax(image)), image.shape[1])
            probs = torch.tensor([[0.1, 0.6, 0.1, 0.1, 0.1]])
            out.append(
                {
                    "boxes": torch.tensor([[c, r, c + 1.0, r + 1.0]]),
                    "scores": torch.tensor([0.6]),
                    "labels": torch.tensor([1]),
                    "probs": probs,
                }
            )
        return out


@pytest.mark.parametrize("merge", ["wbf", "nms"])
def test_detector_maps_tta_boxes_back_to_original_pixels(tiny_config, merge):
    rng = np.random.default_rng(5)
    views = {}
    truth = {}
    for i, key in enumerate(["R-CC", "L-CC", "R-MLO", "L-MLO"]):
        original = (120 + 10 * i, 150)  # (width, height)
        transform = Transform(original, (7, 9, 100 + 5 * i, 140), (62 + 4 * i, 87), flip_x=i % 2 == 1)
        width, height = transform.prepared_size
        image = rng.random((height, width)).astype(np.float32) * 0.5
        mask = np.zeros((height, width), bool)
        mask[5:80, 0 : width - 6] = True
        r, c = int(rng.integers(10, 70)), int(rng.integers(3, width - 10))
        image[r, c] = 5.0
        views[key] = type("PreparedView", (), {"image": image, "breast_mask": mask, "transform": transform})()
        truth[key] = (c, r)
    detector = Detector(tiny_config, [_BrightestPixel()])
    found = detector.predict(views, tta=True, merge=merge)
    assert detector.passes(True) == [(False, False), (True, False), (False, True)]
    for key, view in views.items():
        (detection,) = found[key]
        c, r = truth[key]
        assert detection.box_prepared == (c, r, c + 1, r + 1)
        expected = view.transform.boxes_to_original([[c, r, c + 1, r + 1]])[0]
        np.testing.assert_allclose(detection.box, expected, atol=1e-9)
        assert detection.label == "mass" and detection.score == pytest.approx(0.6)
        assert detection.probabilities["mass"] == pytest.approx(0.6)


def test_detector_without_tta_runs_one_pass(tiny_config):
    detector = Detector(tiny_config, [_BrightestPixel(), _BrightestPixel()])
    assert detector.passes(False) == [(False, False)]
    image = np.zeros((40, 30), np.float32)
    image[11, 7] = 1
    out = detector.predict_images({"R-CC": image}, tta=False, ensemble=False)
    np.testing.assert_array_equal(out["R-CC"].boxes, [[7, 11, 8, 12]])


# -- inference accelerations keep the outputs ---------------------------------------------------------------------
def _random_norm_stats(model):
    from torchvision.ops.misc import FrozenBatchNorm2d

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)


def test_folding_batch_norm_and_onnx_runtime_keep_the_features(tiny_config):
    from MammoDNNLib.models.accelerate import OnnxFeatureRunner, fold_frozen_batchnorm

    pytest.importorskip("onnxruntime")
    config = tiny_config.replace(norm="frozen_bn")
    torch.manual_seed(2)
    model = FourViewFasterRCNN(config).eval()
    _random_norm_stats(model)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.normal_(0, 0.2)
    rng = np.random.default_rng(1)
    batch = make_view_batch(
        [
            {
                k: rng.random((90 + 8 * i, 70 + 5 * i)).astype(np.float32)
                for i, k in enumerate(["R-CC", "L-CC", "L-MLO"])
            }
        ]
    )
    with torch.no_grad():
        reference = model.features(batch.images, batch.partner_lr, batch.partner_cc)
        fold_frozen_batchnorm(model)
        assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in model.modules())
        folded = model.features(batch.images, batch.partner_lr, batch.partner_cc)
    runner = OnnxFeatureRunner(model, threads=1)
    onnx = runner.features(batch.images, batch.partner_lr, batch.partner_cc)
    for name, value in reference.items():
        scale = value.abs().max()
        assert (folded[name] - value).abs().max() <= 1e-4 * scale
        assert onnx[name].shape == value.shape and (onnx[name] - value).abs().max() <= 1e-4 * scale


def test_benchmark_table_and_variant_list(capsys):
    from MammoDNNLib.cli import main
    from MammoDNNLib.models.benchmark import VariantResult, default_variants, format_table, prepare_simple

    names = [v.name for v in default_variants()]
    assert names[0] == "stock" and len(set(names)) == len(names)
    assert main(["benchmark", "--list"]) == 0
    assert "stock" in capsys.readouterr().out
    report = {
        "study": "s",
        "threads": 2,
        "runs": 3,
        "preprocessing_seconds": {},
        "results": [
            VariantResult("stock", "a", [9.0, 8.0, 10.0], 1000.0, 10),
            VariantResult("fast", "b", [2.0, 2.5, 1.0], 500.0, 10),
            VariantResult("broken", "c", error="Boom"),
        ],
    }
    lines = format_table(report).splitlines()
    assert lines[2].split()[:3] == ["stock", "9.00", "1.00"]
    assert lines[3].split()[:3] == ["fast", "2.00", "4.50"]
    assert "failed: Boom" in lines[4]
    # The benchmark's stand-in preparation: chest wall on the left, resampled to the requested spacing.
    image = np.zeros((200, 100), np.float32)
    image[20:180, 40:100] = 1.0  # a right breast: chest wall on the image's right edge
    prepared, mask = prepare_simple(image, "R-CC", 0.15, 0.3, crop=True)
    assert prepared.shape == (80, 30) and mask.all()
    assert prepare_simple(image, "L-CC", 0.15, 0.3, crop=False)[0].shape == (100, 50)


def test_imagenet_weights_only_from_the_local_cache(tmp_path, monkeypatch, caplog, tiny_config):
    """ImageNet initialization reads torchvision's file from the hub cache; without it: scratch + a message."""
    import torchvision

    from MammoDNNLib.models.backbone import build_backbone, imagenet_weights_file, resolve_initialization

    def no_download(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    config = tiny_config.replace(pretrained=True)
    assert (
        imagenet_weights_file("resnet18").name
        == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.split("/")[-1]
    )
    with caplog.at_level("WARNING"):
        resolved = resolve_initialization(config)
        build_backbone(resolved)
    assert resolved.norm == "gn" and not resolved.pretrained
    assert "training from scratch" in caplog.text and "nothing is downloaded" in caplog.text

    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    path = imagenet_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    resolved = resolve_initialization(config)
    assert resolved.norm == "frozen_bn" and resolved.pretrained
    backbone = build_backbone(resolved)
    assert torch.equal(backbone.body.conv1.weight, reference.conv1.weight)
    assert torch.equal(backbone.body.layer1[0].bn1.running_var, reference.layer1[0].bn1.running_var)
    # Frozen stages (trainable_layers=3 keeps conv1 and layer1 frozen).
    assert not backbone.body.conv1.weight.requires_grad and backbone.body.layer2[0].conv1.weight.requires_grad
