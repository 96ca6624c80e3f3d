"""The training manifest: JSON round trip, validation errors naming the entry, selections, merge, summary."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from MammoDNNLib.data.manifest import (
    MANIFEST_FORMAT,
    Change,
    Lesion,
    Manifest,
    StudyEntry,
    ViewEntry,
    load_manifest,
    merge,
    save_manifest,
)
from MammoDNNLib.errors import InputError, MammoDNNError


def _manifest(root: Path) -> Manifest:
    """Two studies using every field: a labelled four-view study with a linked lesion, an unlabelled one."""
    images = root / "images"
    linked = dict(
        pathology="malignant",
        morphology={"mass_shape": "irregular", "mass_margin": "spiculated"},
        birads="4B",
    )
    study = StudyEntry(
        id="s1",
        source="phantom",
        split="train",
        labelled=True,
        patient_id="p1",
        metadata={"age": 52},
        provenance=[Change("reader A", "2024-05-01T10:00:00Z", "deleted lesion R-CC/9 (false positive)")],
        views={
            "R-CC": ViewEntry(
                "R-CC",
                images / "rcc.dcm",
                size=(400, 600),
                density="B",
                birads="4B",
                lesions=[
                    Lesion(
                        "m1",
                        "mass",
                        (10.0, 20.0, 50.5, 60.25),
                        outline=[(10, 20), (50, 22), (40, 60)],
                        quadrant="outer",
                        depth=0.4,
                        **linked,
                        provenance=[
                            Change(
                                "reader A", "2024-05-01T10:02:00+00:00", "moved", {"box": [12, 20, 52, 60]}
                            )
                        ],
                    ),
                ],
            ),
            "R-MLO": ViewEntry(
                "R-MLO",
                images / "rmlo.dcm",
                size=(400, 600),
                lesions=[
                    Lesion(
                        "m1",
                        "mass",
                        (30.0, 40.0, 70.0, 90.0),
                        mask=images / "rmlo-m1.png",
                        mask_origin=(30, 40),
                        quadrant="upper",
                        depth=0.45,
                        **linked,
                    ),
                    Lesion(
                        "c1",
                        "calcification",
                        (100.0, 100.0, 120.0, 130.0),
                        pathology="benign",
                        morphology={"calc_distribution": "grouped"},
                    ),
                ],
            ),
            "L-CC": ViewEntry("L-CC", images / "lcc.dcm", lesions=[]),
            "L-MLO": ViewEntry(
                "L-MLO", None, lesions=[Lesion("u1", "distortion", None, extra={"note": "no box"})]
            ),
        },
    )
    unlabelled = StudyEntry(
        id="s2",
        source="mias",
        split=None,
        labelled=False,
        views={
            "L-MLO": ViewEntry("L-MLO", root / "png" / "mdb002.png", spacing=(0.2, 0.2), size=(1024, 1024))
        },
    )
    return Manifest([study, unlabelled], description="test", notes=["a note"])


def test_round_trip_keeps_every_field_and_writes_relative_paths(tmp_path):
    manifest = _manifest(tmp_path / "data")
    path = save_manifest(manifest, tmp_path / "out" / "manifest.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == MANIFEST_FORMAT and raw["version"] == 1
    rcc = raw["studies"][0]["views"]["R-CC"]
    assert rcc["image"] == "../data/images/rcc.dcm"  # relative to the manifest's folder, POSIX separators
    assert rcc["laterality"] == "R" and rcc["view"] == "CC"
    assert rcc["lesions"][0]["box"] == [10.0, 20.0, 50.5, 60.25]
    assert raw["studies"][0]["views"]["L-MLO"]["image"] is None

    loaded = load_manifest(path)
    assert loaded.studies == manifest.studies  # dataclass equality: every field, absolute paths again
    assert loaded.notes == ["a note"] and loaded.description == "test"
    assert loaded.by_id("s1").views["R-MLO"].lesions[0].mask == tmp_path / "data" / "images" / "rmlo-m1.png"
    # Saving what was loaded reproduces the same document (apart from the creation time).
    again = json.loads(save_manifest(loaded, tmp_path / "out" / "again.json").read_text())
    raw.pop("created"), again.pop("created")
    assert again == raw


def _valid(tmp_path: Path) -> dict:
    return _manifest(tmp_path).to_dict(tmp_path)


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()
S1 = ("studies", 0)
RCC_LESION = S1 + ("views", "R-CC", "lesions", 0)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("format",), "coco", "format is 'coco'"),
        (("version",), 2, "newer than this MammoDNN"),
        (("version",), "1", "version must be an integer"),
        (S1 + ("colour",), "red", "study 's1': unknown key(s) 'colour'"),
        (S1 + ("split",), "training", "study 's1' split: 'training' is not one of"),
        (S1 + ("labelled",), "yes", "labelled: must be true or false"),
        (S1 + ("source",), "CBIS DDSM", "is not a source name"),
        (S1 + ("views",), {}, "one to four views"),
        (S1 + ("views", "R-CC", "laterality"), "L", "view 'R-CC': laterality/view 'L'/'CC' contradict"),
        (S1 + ("views", "R-CC", "spacing"), [0.1, -0.1], "spacing: must be positive"),
        (S1 + ("views", "R-CC", "density"), "E", "density: 'E' is not one of A, B, C, D"),
        (S1 + ("views", "R-CC", "lesions"), _DELETE, "view 'R-CC': missing key(s) 'lesions'"),
        (RCC_LESION + ("box",), [50, 20, 10, 60], "lesion 'm1' box: is empty or inverted"),
        (
            RCC_LESION + ("box",),
            [10, 20, 500, 60],
            "lesion 'm1' box: [10, 20, 500, 60] is not inside the image",
        ),
        (RCC_LESION + ("box",), [10, 20, 30], "box: must be [x0, y0, x1, y1]"),
        (RCC_LESION + ("type",), "cyst", "lesion 'm1': type 'cyst' is not one of"),
        (RCC_LESION + ("morphology",), {"calc_distribution": "grouped"}, "does not apply to a mass"),
        (RCC_LESION + ("morphology",), {"mass_margin": "fuzzy"}, "mass_margin 'fuzzy' is not one of"),
        (RCC_LESION + ("quadrant",), "upper", "quadrant: 'upper' is not one of outer, middle, inner, areola"),
        (RCC_LESION + ("pathology",), "BENIGN", "pathology: 'BENIGN' is not one of benign, malignant"),
        (RCC_LESION + ("birads",), "4a", "birads: '4a' is not one of"),
        (RCC_LESION + ("depth",), -0.2, "depth: must be a finite number >= 0"),
        (RCC_LESION + ("outline",), [[1, 2], [3, 4]], "outline: must be a list of at least three"),
        (RCC_LESION + ("mask_origin",), [1, 2], "mask_origin: is given without a mask file"),
        (
            RCC_LESION + ("provenance", 0, "when"),
            "yesterday",
            "when: 'yesterday' is not an ISO 8601 date-time",
        ),
        (
            RCC_LESION + ("type",),
            "calcification",
            "lesion 'm1' is a calcification in R-CC but a mass in R-MLO",
        ),
    ],
)
def test_validation_errors_name_the_manifest_and_the_entry(tmp_path, path, value, expected):
    data = _set(_valid(tmp_path), path, value)
    if path == RCC_LESION + ("type",) and value == "calcification":
        data = _set(data, RCC_LESION + ("morphology",), {})
    manifest_path = tmp_path / "bad.json"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_manifest(manifest_path)
    message = str(info.value)
    assert message.startswith(str(manifest_path) + ":"), message
    assert expected in message, message


def test_structural_errors(tmp_path):
    data = _valid(tmp_path)
    path = tmp_path / "m.json"

    def fails(document, expected):
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        with pytest.raises(InputError, match=expected):
            load_manifest(path)

    fails("{not json", r"not valid JSON \(line 1")
    fails(_set(data, ("studies",), data["studies"] + [data["studies"][0]]), "study ids repeat: 's1'")
    rmlo = data["studies"][0]["views"]["R-MLO"]["lesions"]
    fails(
        _set(data, S1 + ("views", "R-MLO", "lesions"), rmlo + [rmlo[1]]), "lesion ids repeat within the view"
    )
    # The same lesion id in both breasts is not a CC-MLO link.
    lmlo = _set(data, S1 + ("views", "L-MLO", "lesions", 0, "id"), "m1")
    fails(
        _set(lmlo, S1 + ("views", "L-MLO", "lesions", 0, "type"), "mass"), "links the CC and MLO views of one"
    )
    with pytest.raises(InputError, match="no such manifest file"):
        load_manifest(tmp_path / "absent.json")


def test_check_files_reports_missing_images(tmp_path):
    manifest = _manifest(tmp_path)
    path = save_manifest(manifest, tmp_path / "m.json")
    with pytest.raises(InputError, match=r"5 file\(s\) named by the manifest do not exist"):
        load_manifest(path, check_files=True)
    for image in manifest.missing_files():
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"x")
    assert len(load_manifest(path, check_files=True)) == 2


def test_filter_summary_and_split_off(tmp_path):
    manifest = _manifest(tmp_path)
    assert [s.id for s in manifest.filter(split="train")] == ["s1"]
    assert [s.id for s in manifest.filter(split=None)] == ["s2"]
    assert [s.id for s in manifest.filter(labelled=False)] == ["s2"]
    assert [s.id for s in manifest.filter(source=["mias", "vindr"])] == ["s2"]
    with pytest.raises(MammoDNNError, match="unknown split"):
        manifest.filter(split="validation")

    summary = manifest.summary()
    assert summary.studies == {"train": 1, "none": 1}
    assert summary.views == {"train": 4, "none": 1}
    assert summary.lesions == {"train": {"mass": 2, "calcification": 1, "distortion": 1}}
    assert summary.lesions_without_box == 1 and summary.views_not_box_complete == 1
    assert summary.lesions_with_outline == 1 and summary.lesions_with_mask == 1
    assert summary.views_without_image == 1
    assert summary.pathology == {"malignant": 2, "benign": 1, "unknown": 1}
    assert "calcification" in summary.format_table()

    many = Manifest(
        [
            StudyEntry(
                f"t{i}",
                "vindr",
                "train",
                True,
                {"L-CC": ViewEntry("L-CC", tmp_path / f"{i}.dcm")},
                patient_id=f"p{i // 2}",
            )
            for i in range(400)
        ]
        + [StudyEntry("h", "mias", "heldout", True, {"L-CC": ViewEntry("L-CC", tmp_path / "h.png")})]
    )
    moved = many.split_off(0.25, seed=3)
    val = [s for s in moved if s.split == "val"]
    assert 0.15 < len(val) / 400 < 0.35
    patients = {
        s.patient_id: {t.split for t in moved if t.patient_id == s.patient_id} for s in moved if s.patient_id
    }
    assert all(len(splits) == 1 for splits in patients.values())  # whole patients move
    assert moved.by_id("h").split == "heldout"
    assert [s.split for s in many.split_off(0.25, seed=3)] == [s.split for s in moved]  # stable


def test_merge_replaces_duplicates_and_keeps_heldout_sticky(tmp_path):
    base = Manifest(
        [
            StudyEntry("a", "mias", "train", True, {"L-MLO": ViewEntry("L-MLO", tmp_path / "a.png")}),
            StudyEntry("h", "mias", "heldout", True, {"R-MLO": ViewEntry("R-MLO", tmp_path / "h.png")}),
        ],
        notes=["base note"],
    )
    fixed_a = StudyEntry(
        "a",
        "corrections",
        "train",
        True,
        {
            "L-MLO": ViewEntry(
                "L-MLO",
                tmp_path / "a.png",
                lesions=[
                    Lesion(
                        "x", "mass", (1, 1, 5, 5), provenance=[Change("r", "2024-01-01T00:00:00Z", "added")]
                    )
                ],
            )
        },
    )
    fixed_h = StudyEntry("h", "corrections", "train", True, {"R-MLO": ViewEntry("R-MLO", tmp_path / "h.png")})
    other_h = StudyEntry(
        "h2", "corrections", "train", True, {"R-MLO": ViewEntry("R-MLO", tmp_path / "h.png")}
    )
    corrections = Manifest([fixed_a, fixed_h, other_h])

    with pytest.raises(MammoDNNError, match="study 'a' is in more than one manifest"):
        merge(base, corrections)
    merged = merge(base, corrections, on_duplicate="replace")
    assert [s.id for s in merged] == ["a", "h", "h2"]
    assert merged.by_id("a").source == "corrections" and merged.by_id("a").views["L-MLO"].lesions[0].id == "x"
    # A correction of a held-out film never reaches training, whatever split the export gave it.
    assert merged.by_id("h").split == "heldout" and merged.by_id("h2").split == "heldout"
    assert "base note" in merged.notes
    kept = merge(base, corrections, on_duplicate="keep")
    assert kept.by_id("a").source == "mias"
