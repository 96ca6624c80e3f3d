"""``mammodnn data convert | check | coco | merge`` on the small exact-format fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from MammoDNNLib.cli import main
from MammoDNNLib.data.manifest import load_manifest

DATA = Path(__file__).parent / "data"


@pytest.fixture()
def vindr(tmp_path) -> Path:
    release = tmp_path / "vindr"
    shutil.copytree(DATA / "vindr", release)
    for study, image in (("4e3a578fd6a6e4c4ad3e8e2e2d3d3b4f", "a1f0b7c2d3e4f5a6b7c8d9e0f1a2b3c4"),):
        (release / "images" / study).mkdir(parents=True)
        (release / "images" / study / f"{image}.dicom").write_bytes(b"")
    return release


def test_convert_check_coco_merge(vindr, tmp_path, capsys):
    out = tmp_path / "out" / "vindr.json"
    assert main(["data", "convert", "vindr", str(vindr), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["studies"] == 2 and report["summary"]["studies"] == {"train": 1, "test": 1}
    assert load_manifest(out).by_id("vindr-4e3a578fd6a6e4c4ad3e8e2e2d3d3b4f").views["L-CC"].image.is_file()

    # The output exists: refused without --force.
    assert main(["data", "convert", "vindr", str(vindr), "--out", str(out)]) == 1
    assert "exists already" in capsys.readouterr().err

    assert main(["data", "check", str(out), "--allow-missing"]) == 0
    printed = capsys.readouterr().out
    assert "valid manifest, 2 studies" in printed and "mass" in printed
    assert main(["data", "check", str(out)]) == 0  # missing images are null, not missing files
    assert main(["data", "check", str(tmp_path / "nothing.json")]) == 1
    assert "no such manifest file" in capsys.readouterr().err

    coco = tmp_path / "out" / "vindr.coco.json"
    assert main(["data", "coco", str(out), "--out", str(coco), "--split", "train"]) == 0
    data = json.loads(coco.read_text())
    assert len(data["images"]) == 1 and data["annotations"][0]["bbox"][0] == pytest.approx(2355.139892578125)
    assert main(["data", "coco", str(out), "--out", str(tmp_path / "x.json"), "--split", "training"]) == 1
    assert "--split 'training' is not one of" in capsys.readouterr().err

    merged = tmp_path / "out" / "merged.json"
    assert main(["data", "merge", str(out), str(out), "--out", str(merged)]) == 1
    assert "is in more than one manifest" in capsys.readouterr().err
    assert main(["data", "merge", str(out), str(out), "--replace", "--out", str(merged), "--quiet"]) == 0
    assert len(load_manifest(merged)) == 2


def test_convert_rejects_options_of_other_sources_and_bad_input(vindr, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["data", "convert", "vindr", str(vindr), "--heldout", "x.txt", "--out", str(out)]) == 1
    assert "--heldout does not apply to vindr" in capsys.readouterr().err
    assert main(["data", "convert", "inbreast", str(tmp_path), "--out", str(out)]) == 1
    assert "INbreast.csv: no such file" in capsys.readouterr().err
    assert not out.exists()


def test_check_flags_missing_files(tmp_path, capsys):
    manifest = {
        "format": "mammodnn-manifest",
        "version": 1,
        "studies": [
            {
                "id": "s",
                "source": "mias",
                "split": "train",
                "labelled": True,
                "views": {"L-MLO": {"image": "png/mdb002.png", "spacing": [0.2, 0.2], "lesions": []}},
            }
        ],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    assert main(["data", "check", str(path)]) == 1
    assert "1 file(s) named by the manifest do not exist" in capsys.readouterr().out
    assert main(["data", "check", str(path), "--allow-missing"]) == 0
