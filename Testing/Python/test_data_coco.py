"""COCO export of a manifest: categories, image ids, bbox as [x, y, w, h], segmentation, what is left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from MammoDNNLib.data.converters.coco import export_coco
from MammoDNNLib.data.manifest import Lesion, Manifest, StudyEntry, ViewEntry
from MammoDNNLib.errors import InputError


def _png(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width), np.uint8)).save(path)
    return path


@pytest.fixture()
def manifest(tmp_path) -> Manifest:
    images = tmp_path / "data"
    return Manifest(
        [
            StudyEntry(
                "a",
                "mias",
                "train",
                True,
                {
                    "R-MLO": ViewEntry(
                        "R-MLO",
                        _png(images / "a-rmlo.png", 64, 48),
                        size=(64, 48),
                        lesions=[
                            Lesion(
                                "m",
                                "mass",
                                (10.0, 5.0, 30.0, 25.0),
                                outline=[(10, 5), (30, 5), (30, 25)],
                                pathology="malignant",
                            ),
                            Lesion("d", "distortion", (40.5, 10.0, 50.0, 20.25)),
                        ],
                    ),
                    # Size not in the manifest: read from the PNG header.
                    "L-MLO": ViewEntry(
                        "L-MLO",
                        _png(images / "a-lmlo.png", 70, 40),
                        lesions=[Lesion("c", "calcification", (1.0, 2.0, 3.0, 4.0))],
                    ),
                },
            ),
            StudyEntry(
                "b",
                "mias",
                "test",
                True,
                {
                    "R-CC": ViewEntry(
                        "R-CC",
                        _png(images / "b.png", 32, 32),
                        size=(32, 32),
                        lesions=[Lesion("s", "asymmetry", (0.0, 0.0, 32.0, 16.0))],
                    ),
                    "L-CC": ViewEntry(
                        "L-CC",
                        _png(images / "b-l.png", 32, 32),
                        size=(32, 32),
                        lesions=[Lesion("x", "mass", None)],
                    ),  # unknown location: left out
                },
            ),
            StudyEntry(
                "u", "vindr", "train", False, {"R-CC": ViewEntry("R-CC", _png(images / "u.png", 8, 8))}
            ),
            StudyEntry("n", "cbis-ddsm", "train", True, {"R-CC": ViewEntry("R-CC", None)}),
        ],
        description="coco test",
    )


def test_coco_export(manifest, tmp_path):
    out = tmp_path / "export" / "coco.json"
    export_coco(manifest, out)
    data = json.loads(out.read_text())
    assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
    assert data["categories"] == [
        {"id": 1, "name": "mass", "supercategory": "lesion"},
        {"id": 2, "name": "calcification", "supercategory": "lesion"},
        {"id": 3, "name": "asymmetry", "supercategory": "lesion"},
        {"id": 4, "name": "distortion", "supercategory": "lesion"},
    ]
    images = {image["id"]: image for image in data["images"]}
    assert len(images) == len(data["images"]) == 3 and all(isinstance(i, int) for i in images)
    by_name = {Path(image["file_name"]).name: image for image in data["images"]}
    assert (by_name["a-rmlo.png"]["width"], by_name["a-rmlo.png"]["height"]) == (64, 48)
    assert (by_name["a-lmlo.png"]["width"], by_name["a-lmlo.png"]["height"]) == (70, 40)
    for image in data["images"]:  # file names are relative to the COCO file and resolve to the image
        assert not Path(image["file_name"]).is_absolute()
        assert (out.parent / image["file_name"]).resolve() == (
            tmp_path / "data" / Path(image["file_name"]).name
        )
    annotations = data["annotations"]
    assert len({a["id"] for a in annotations}) == len(annotations) == 4
    assert all(a["image_id"] in images and a["iscrowd"] == 0 for a in annotations)
    named = {a["mammodnn"]["lesion_id"]: a for a in annotations}
    assert named["m"]["bbox"] == [10.0, 5.0, 20.0, 20.0] and named["m"]["category_id"] == 1
    assert named["m"]["segmentation"] == [[10.0, 5.0, 30.0, 5.0, 30.0, 25.0]]
    assert named["m"]["area"] == 200.0  # the outline's area (a right triangle of legs 20)
    assert named["d"]["bbox"] == [40.5, 10.0, 9.5, 10.25] and named["d"]["area"] == 9.5 * 10.25
    assert "segmentation" not in named["d"] and named["d"]["category_id"] == 4
    assert named["s"]["category_id"] == 3 and named["c"]["category_id"] == 2
    assert images[named["s"]["image_id"]]["mammodnn"]["split"] == "test"
    assert data["info"]["mammodnn_skipped"] == {
        "views with lesions of unknown location": 1,
        "views of unlabelled studies": 1,
        "views without a local image": 1,
    }

    train_only = export_coco(manifest, tmp_path / "train.json", splits=["train"])
    assert {Path(i["file_name"]).name for i in train_only["images"]} == {"a-rmlo.png", "a-lmlo.png"}


def test_coco_needs_the_image_for_an_unknown_size(manifest, tmp_path):
    (tmp_path / "data" / "a-lmlo.png").unlink()
    with pytest.raises(InputError, match="a-lmlo.png: image named by the manifest does not exist"):
        export_coco(manifest, tmp_path / "coco.json")
