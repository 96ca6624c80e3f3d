"""The weight registry: manifests, hashes, refusal of pickles and tampered files, import, search order, CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from MammoDNNLib.errors import ModelError
from MammoDNNLib.models import registry
from MammoDNNLib.models.config import load_config
from MammoDNNLib.models.detector import Detector
from MammoDNNLib.models.network import FourViewFasterRCNN

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMODNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMODNN_RESOURCES", str(tmp_path / "resources"))
    (tmp_path / "resources").mkdir()


@pytest.fixture(scope="module")
def tiny():
    config = load_config("detector-tiny-test")
    torch.manual_seed(0)
    return config, FourViewFasterRCNN(config).state_dict()


def _save(folder, tiny, members=1, name="tiny", version="1.0.0"):
    config, state = tiny
    return registry.save_model(
        folder,
        name=name,
        version=version,
        kind="detector",
        classes=config.classes,
        config=config.to_dict(),
        state_dicts=[state] * members,
        training_data={"source": "unit test"},
        metrics={"froc_cpm": 0.5},
    )


def test_save_verify_and_load_round_trip(tmp_path, tiny):
    info = _save(tmp_path / "m", tiny, members=2)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["kind"] == "detector" and manifest["licence"].startswith("Research use only")
    assert [c["file"] for c in manifest["components"]] == ["member-0.safetensors", "member-1.safetensors"]
    for component in manifest["components"]:
        import hashlib

        digest = hashlib.sha256((tmp_path / "m" / component["file"]).read_bytes()).hexdigest()
        assert component["sha256"] == digest  # independent of registry.sha256_file
    assert (tmp_path / "m" / "MODEL_CARD.md").read_text().count("sha256") == 2
    detector = registry.load_model(tmp_path / "m")
    assert isinstance(detector, Detector) and len(detector.members) == 2
    for key, value in tiny[1].items():
        assert torch.equal(detector.members[1].state_dict()[key], value)
    assert info.metrics == {"froc_cpm": 0.5}


def test_tampered_weights_are_refused(tmp_path, tiny):
    _save(tmp_path / "m", tiny)
    weights = tmp_path / "m" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 .* does not match"):
        registry.load_model(tmp_path / "m")
    weights.write_bytes(bytes(data[:-10]))
    with pytest.raises(ModelError, match="size"):
        registry.verify_model(tmp_path / "m")


def test_pickles_are_refused(tmp_path, tiny):
    _save(tmp_path / "m", tiny)
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # A pickle under a .pt name, listed with a correct hash: refused for what it is, not for the hash.
    payload = pickle.dumps({"weights": [1, 2, 3]})
    (tmp_path / "m" / "weights.pt").write_bytes(payload)
    import hashlib

    manifest["components"][0].update(
        file="weights.pt", sha256=hashlib.sha256(payload).hexdigest(), size=len(payload)
    )
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="refusing a pickle"):
        registry.load_model(tmp_path / "m")
    # The same pickle renamed .safetensors.
    (tmp_path / "m" / "weights.safetensors").write_bytes(payload)
    manifest["components"][0]["file"] = "weights.safetensors"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="pickle"):
        registry.load_model(tmp_path / "m")
    # torch.save's zip archive renamed .safetensors.
    torch.save({"a": torch.zeros(2)}, tmp_path / "m" / "weights.safetensors")
    with pytest.raises(ModelError, match="pickle"):
        registry.verify_model(tmp_path / "m")


def test_import_converts_a_checkpoint_through_weights_only(tmp_path, tiny):
    config, state = tiny
    checkpoint = tmp_path / "trained.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, checkpoint)
    info = registry.import_model(checkpoint, name="converted", config=config.to_dict())
    assert info.path == (registry.user_models_dir() / "converted" / "1.0.0").resolve()
    assert [c.file for c in info.components] == ["weights.safetensors"]
    detector = registry.load_model("converted")
    assert torch.equal(
        detector.members[0].state_dict()["rpn.head.conv.0.0.weight"], state["rpn.head.conv.0.0.weight"]
    )

    class Payload:  # an object a malicious checkpoint could carry
        def __reduce__(self):
            return (print, ("executed",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, evil)
    with pytest.raises(ModelError, match="weights_only"):
        registry.import_model(evil, name="evil", config=config.to_dict())
    assert not (registry.user_models_dir() / "evil").exists()

    wrong = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ModelError, match="do not fit"):
        registry.import_model(wrong, name="wrong", config=config.to_dict())
    assert not (registry.user_models_dir() / "wrong" / "1.0.0").exists()


def test_import_folder_search_order_and_list(tmp_path, tiny):
    _save(tmp_path / "src", tiny, name="shared-name")
    shipped = tmp_path / "resources" / "Models" / "shared-name" / "0.9.0"
    _save(shipped, tiny, name="shared-name", version="0.9.0")
    # Shipped only: found there.
    assert registry.resolve_model("shared-name") == shipped
    info = registry.import_model(tmp_path / "src")
    # The user cache comes before the shipped models.
    assert registry.resolve_model("shared-name") == info.path
    assert registry.resolve_model("shared-name", version="0.9.0") == shipped
    assert registry.resolve_model(tmp_path / "src") == tmp_path / "src"  # explicit path first
    with pytest.raises(ModelError, match="already installed"):
        registry.import_model(tmp_path / "src")
    listed = sorted((m.name, m.version) for m in registry.list_models())
    assert listed == [("shared-name", "0.9.0"), ("shared-name", "1.0.0")]
    with pytest.raises(ModelError, match="not found"):
        registry.resolve_model("absent-model")


def test_models_cli(tmp_path, tiny, capsys):
    from MammoDNNLib.cli import main

    _save(tmp_path / "src", tiny, name="cli-model")
    assert main(["models", "import", str(tmp_path / "src")]) == 0
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(m["name"], m["version"], m["kind"]) for m in listed] == [("cli-model", "1.0.0", "detector")]
    assert main(["models", "verify", "cli-model"]) == 0
    weights = registry.resolve_model("cli-model") / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(["models", "verify", "cli-model"]) == 1
    assert "does not match" in capsys.readouterr().err


def test_detector_from_registry_predicts_in_original_coordinates(tmp_path, tiny):
    from MammoDNNLib.geometry import Transform

    _save(tmp_path / "m", tiny)
    detector = Detector.load(str(tmp_path / "m"))
    rng = np.random.default_rng(0)
    views = {}
    for key in ("R-CC", "L-CC"):
        transform = Transform((200, 300), (10, 20, 190, 260), (90, 120), flip_x=key == "L-CC")
        image = rng.random((120, 90)).astype(np.float32)
        views[key] = type(
            "V", (), {"image": image, "breast_mask": np.ones((120, 90), bool), "transform": transform}
        )
    found = detector.predict(views, tta=False)
    assert set(found) == {"R-CC", "L-CC"}
    for key, detections in found.items():
        for d in detections:
            expected = views[key].transform.boxes_to_original([d.box_prepared])[0]
            np.testing.assert_allclose(d.box, expected)
            assert 10 <= d.box[0] <= d.box[2] <= 190 and 20 <= d.box[1] <= d.box[3] <= 260


def test_half_precision_halves_the_files_and_keeps_the_outputs(tmp_path, tiny):
    from MammoDNNLib.cli import main

    _save(tmp_path / "m", tiny)
    before = (tmp_path / "m" / "weights.safetensors").stat().st_size
    old_hash = registry.verify_model(tmp_path / "m").components[0].sha256
    card = tmp_path / "m" / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\nNotes written by hand.\n")
    rng = np.random.default_rng(1)
    images = {k: rng.random((96, 64)).astype(np.float32) for k in ("R-CC", "L-CC", "R-MLO", "L-MLO")}
    full = Detector.load(str(tmp_path / "m")).predict_images(images, tta=False)
    assert main(["models", "half", str(tmp_path / "m")]) == 0
    after = (tmp_path / "m" / "weights.safetensors").stat().st_size
    assert after < 0.55 * before
    info = registry.verify_model(tmp_path / "m")  # the manifest pins the new files
    assert info.components[0].sha256 in card.read_text() and old_hash not in card.read_text()
    assert card.read_text().endswith("Notes written by hand.\n")  # the card's notes survive
    assert not list((tmp_path / "m").glob("*.half"))
    state = registry.load_state_dicts(info)[0]
    for key, value in tiny[1].items():
        if value.dtype == torch.float32:
            assert state[key].dtype == torch.float16
            torch.testing.assert_close(state[key].float(), value, rtol=1e-3, atol=1e-4)
    half = Detector.load(str(tmp_path / "m")).predict_images(images, tta=False)
    for key in images:
        assert len(half[key].scores) == len(full[key].scores)
        np.testing.assert_allclose(np.sort(half[key].scores), np.sort(full[key].scores), atol=0.01)
        # An untrained model's scores are near-tied, so the top-k cut may trade a box or two; the rest have twins.
        gaps = np.abs(full[key].boxes[:, None, :] - half[key].boxes[None, :, :]).max(axis=2).min(axis=1)
        assert np.mean(gaps < 0.01) >= 0.85, gaps


def test_combine_models_into_an_ensemble(tmp_path, tiny):
    from MammoDNNLib.models.ensemble import combine_models

    _save(tmp_path / "a", tiny, name="a")
    _save(tmp_path / "b", tiny, members=2, name="b")
    info = combine_models([tmp_path / "a", tmp_path / "b"], tmp_path / "ab", name="ab")
    assert len(info.components) == 3 and info.config["name"] == "ab"
    assert len(registry.load_model(tmp_path / "ab").members) == 3
    config, state = tiny
    other = config.replace(fpn_channels=32)
    registry.save_model(
        tmp_path / "c",
        name="c",
        version="1",
        kind="detector",
        classes=other.classes,
        config=other.to_dict(),
        state_dicts=[FourViewFasterRCNN(other).state_dict()],
    )
    with pytest.raises(ModelError, match="fpn_channels"):
        combine_models([tmp_path / "a", tmp_path / "c"], tmp_path / "ac", name="ac")


def test_system_model_verifies_through_its_components(tmp_path, monkeypatch, repo_dir):
    import json
    import shutil

    from MammoDNNLib.errors import ModelError
    from MammoDNNLib.models.registry import resolve_model, sha256_file, verify_model

    monkeypatch.setenv("MAMMODNN_RESOURCES", str(repo_dir / "Resources"))
    shipped = resolve_model("mammodnn")
    assert verify_model(shipped).kind == "system"
    copy = tmp_path / "system"
    shutil.copytree(shipped, copy)
    (copy / "birads.json").write_text("[1, 2]")  # valid JSON, not a mapping object; hash updated to match
    manifest = json.loads((copy / "manifest.json").read_text())
    for component in manifest["components"]:
        if component["file"] == "birads.json":
            component["sha256"] = sha256_file(copy / "birads.json")
            component["size"] = (copy / "birads.json").stat().st_size
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="JSON object"):
        verify_model(copy)
