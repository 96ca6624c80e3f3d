"""mini-MIAS converter: the real release in ../shared (Info.txt, PNGs, heldout.txt) and a made-up Info.txt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from MammoDNNLib.data.converters.mias import (
    chest_wall_side,
    convert_mias,
    read_annotations_csv,
    read_info_txt,
)
from MammoDNNLib.data.manifest import load_manifest, save_manifest
from MammoDNNLib.errors import InputError

FIXTURE = Path(__file__).parent / "data" / "mias"


@pytest.fixture(scope="module")
def real_manifest(mias_dir):
    return convert_mias(mias_dir)


def _films(manifest) -> dict[str, tuple]:
    """film -> (study, view key, view)"""
    return {view.source_id: (study, key, view) for study in manifest for key, view in study.views.items()}


def test_real_info_txt_rows(mias_dir):
    rows = read_info_txt(mias_dir / "Info.txt")
    lesions = [r for r in rows if r.abnormality != "NORM"]
    # README: 330 rows for 322 films, 123 lesion rows (69 benign, 54 malignant), four without coordinates.
    assert len(rows) == 330 and len({r.film for r in rows}) == 322
    assert len(lesions) == 123
    assert sum(r.severity == "B" for r in lesions) == 69 and sum(r.severity == "M" for r in lesions) == 54
    assert sorted(r.film for r in lesions if r.x is None) == ["mdb059", "mdb216", "mdb233", "mdb245"]
    # annotations.csv is the same table; its row_from_top = 1024 - y is checked while reading.
    csv_rows = read_annotations_csv(mias_dir / "annotations.csv")
    assert [(r.film, r.abnormality, r.x, r.y, r.radius) for r in csv_rows] == [
        (r.film, r.abnormality, r.x, r.y, r.radius) for r in rows
    ]


def test_real_lesions_and_boxes(real_manifest):
    lesions = [(study, key, lesion) for study in real_manifest for key, lesion in study.lesions]
    assert len(lesions) == 123
    unboxed = sorted(lesion.id.split("-")[0] for _, _, lesion in lesions if lesion.box is None)
    assert unboxed == ["mdb059", "mdb216", "mdb233", "mdb245"]
    types = {}
    for _, _, lesion in lesions:
        types[lesion.extra["class"]] = types.get(lesion.extra["class"], set()) | {lesion.type}
    assert types == {
        "CIRC": {"mass"},
        "SPIC": {"mass"},
        "MISC": {"mass"},
        "CALC": {"calcification"},
        "ARCH": {"distortion"},
        "ASYM": {"asymmetry"},
    }
    margins = {lesion.extra["class"]: lesion.morphology.get("mass_margin") for _, _, lesion in lesions}
    assert (margins["CIRC"], margins["SPIC"], margins["MISC"]) == (
        "circumscribed",
        "spiculated",
        "indistinct",
    )
    for study in real_manifest:
        for view in study.views.values():
            assert view.view == "MLO" and view.spacing == (0.2, 0.2) and view.size == (1024, 1024)
    # mdb001: CIRC B X=535 Y=425 R=197 -> centre pixel [1024 - 425, 535]; the circle clipped to the film.
    _, _, view = _films(real_manifest)["mdb001"]
    assert view.lesions[0].box == (535.5 - 197, 599.5 - 197, 535.5 + 197, 599.5 + 197)


def test_row_is_1024_minus_y_on_a_known_mass(real_manifest, mias_dir):
    """mdb028 (CIRC M, X 338, Y 314, r 56) is a bright round mass: it lies at row 1024 - Y, not at row Y."""
    _, _, view = _films(real_manifest)["mdb028"]
    pixels = np.asarray(Image.open(view.image), dtype=np.float64)
    x0, y0, x1, y1 = view.lesions[0].box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert (cx, cy) == (338.5, 710.5)
    yy, xx = np.mgrid[0:1024, 0:1024]

    def disc_mean(row: float) -> float:
        return float(pixels[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - row) ** 2 < 25**2].mean())

    inside, mirrored = disc_mean(cy), disc_mean(314 + 0.5)
    ring = pixels[
        ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 > 70**2)
        & ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < 100**2)
    ].mean()
    assert inside > mirrored + 40 and inside > ring + 40


def test_heldout_split_is_exactly_the_listed_films(real_manifest, mias_dir):
    listed = {line.strip() for line in (mias_dir / "heldout.txt").read_text().splitlines() if line.strip()}
    assert len(listed) == 107
    films = _films(real_manifest)
    heldout = {film for film, (study, _, _) in films.items() if study.split == "heldout"}
    assert heldout == listed
    assert {study.split for film, (study, _, _) in films.items() if film not in listed} == {"train"}
    # A held-out film never shares a study with a training film.
    for study in real_manifest:
        assert len({f in listed for f in study.metadata["films"]}) == 1


def test_real_laterality_from_the_chest_wall(real_manifest):
    """Display laterality: chest wall on the image's left = L. Checked by eye: mdb001 (right) and mdb002
    (left) follow Info.txt's even/odd rule; mdb151's chest wall is on the left and mdb152's on the right (the
    skin line rises toward the nipple), the opposite of the rule."""
    films = _films(real_manifest)
    assert {f: films[f][1] for f in ("mdb001", "mdb002", "mdb151", "mdb152")} == {
        "mdb001": "R-MLO",
        "mdb002": "L-MLO",
        "mdb151": "L-MLO",
        "mdb152": "R-MLO",
    }
    assert films["mdb151"][2].extra["info_txt_laterality"] == "R"
    # Both films of a woman are a mirrored pair in one study unless the held-out list separates them.
    study, _, _ = films["mdb001"]
    assert study is films["mdb002"][0] or study.split != films["mdb002"][0].split
    for study in real_manifest:
        if len(study.views) == 2:
            assert set(study.views) == {"R-MLO", "L-MLO"}


def test_real_manifest_round_trip(real_manifest, tmp_path):
    path = save_manifest(real_manifest, tmp_path / "mias.json")
    loaded = load_manifest(path, check_files=True)
    assert loaded.studies == real_manifest.studies


def _draw_film(chest_wall: str, lesions: list[tuple[int, int, int]]) -> np.ndarray:
    """A 1024 x 1024 'film': black, a half-elliptical breast on the chest-wall side, padding on both sides
    (mini-MIAS films are centred), a bright film label in the opposite top corner, bright lesion discs at
    (X, Y from the bottom, r)."""
    yy, xx = np.mgrid[0:1024, 0:1024].astype(np.float64) + 0.5
    wall = 80.0 if chest_wall == "left" else 944.0
    inside = ((xx - wall) / 560.0) ** 2 + ((yy - 540.0) / 430.0) ** 2 < 1.0
    inside &= (xx >= wall) if chest_wall == "left" else (xx <= wall)
    image = np.where(inside, 120.0, 3.0)
    label_x = slice(900, 990) if chest_wall == "left" else slice(30, 120)
    image[40:110, label_x] = 240.0
    for x, y, r in lesions:
        image[(xx - x - 0.5) ** 2 + (yy - (1024 - y) - 0.5) ** 2 < r**2] = 230.0
    return image.astype(np.uint8)


@pytest.fixture()
def mias_fixture(tmp_path) -> Path:
    folder = tmp_path / "mias"
    shutil.copytree(FIXTURE, folder)
    (folder / "png").mkdir()
    # Odd films show the chest wall on the right, even on the left, except the pair 5/6 (swapped like
    # mdb151/152).
    walls = {1: "right", 2: "left", 3: "right", 4: "left", 5: "left", 6: "right", 7: "right", 8: "left"}
    lesions = {
        1: [(535, 425, 97)],
        3: [(300, 700, 40), (600, 650, 12)],
        7: [(980, 1000, 60)],
        8: [(400, 500, 30)],
    }
    for number, wall in walls.items():
        Image.fromarray(_draw_film(wall, lesions.get(number, []))).save(
            folder / "png" / f"mdb{number:03d}.png"
        )
    return folder


def test_fixture_conversion(mias_fixture):
    manifest = convert_mias(mias_fixture)
    films = _films(manifest)
    assert {f: key for f, (_, key, _) in films.items()} == {
        "mdb001": "R-MLO",
        "mdb002": "L-MLO",
        "mdb003": "R-MLO",
        "mdb004": "L-MLO",
        "mdb005": "L-MLO",
        "mdb006": "R-MLO",
        "mdb007": "R-MLO",
        "mdb008": "L-MLO",
    }
    # Pairs stay together unless exactly one film is held out (7 train, 8 held out).
    assert sorted(s.id for s in manifest) == [
        "mias-mdb001-mdb002",
        "mias-mdb003-mdb004",
        "mias-mdb005-mdb006",
        "mias-mdb007",
        "mias-mdb008",
    ]
    assert {s.id: s.split for s in manifest} == {
        "mias-mdb001-mdb002": "train",
        "mias-mdb003-mdb004": "heldout",
        "mias-mdb005-mdb006": "train",
        "mias-mdb007": "train",
        "mias-mdb008": "heldout",
    }
    assert manifest.by_id("mias-mdb007").patient_id == manifest.by_id("mias-mdb008").patient_id
    # mdb003: SPIC M and CALC B; mdb004 CIRC B without coordinates; mdb006 CALC M "*NOTE 3*".
    mdb003 = films["mdb003"][2].lesions
    assert [(les.type, les.pathology, les.morphology) for les in mdb003] == [
        ("mass", "malignant", {"mass_margin": "spiculated"}),
        ("calcification", "benign", {}),
    ]
    assert mdb003[0].box == (300.5 - 40, 324.5 - 40, 300.5 + 40, 324.5 + 40)
    assert [les.box for les in films["mdb004"][2].lesions] == [None]
    assert films["mdb006"][2].lesions[0].type == "calcification" and films["mdb006"][2].lesions[0].box is None
    assert not films["mdb006"][2].box_complete
    # mdb007 ASYM at X 980, Y 1000, r 60: the circle crosses the top and right edges and is clipped.
    assert films["mdb007"][2].lesions[0].box == (920.5, 0.0, 1024.0, 84.5)
    # The drawn lesion pixels lie inside each box (row = 1024 - Y).
    for film in ("mdb001", "mdb003", "mdb008"):
        pixels = np.asarray(Image.open(films[film][2].image))
        bright = np.argwhere(pixels == 230)
        for lesion in films[film][2].lesions[:1]:
            x0, y0, x1, y1 = lesion.box
            region = bright[(bright[:, 1] >= x0 - 1) & (bright[:, 1] < x1 + 1)]
            assert len(region) and region[:, 0].min() >= y0 - 1 and region[:, 0].max() < y1 + 1


def test_fixture_parity_rule_and_errors(mias_fixture, tmp_path):
    manifest = convert_mias(mias_fixture / "Info.txt", laterality="parity")
    assert _films(manifest)["mdb005"][1] == "R-MLO"  # the even/odd rule ignores the pixels
    (mias_fixture / "png" / "mdb008.png").unlink()
    with pytest.raises(InputError, match="image of mdb008 not found"):
        convert_mias(mias_fixture)
    bad = tmp_path / "Info.txt"
    bad.write_text("mdb001 G CIRC X 535 425 97\n")
    with pytest.raises(InputError, match="an abnormal film needs a severity"):
        read_info_txt(bad)
    bad.write_text("mdb001 G LUMP B 535 425 97\n")
    with pytest.raises(InputError, match="class 'LUMP' is not one of NORM"):
        read_info_txt(bad)


def test_chest_wall_side_on_drawn_films():
    assert chest_wall_side(_draw_film("left", []))[0] == "left"
    assert chest_wall_side(_draw_film("right", [(300, 500, 40)]))[0] == "right"
    with pytest.raises(ValueError, match="blank"):
        chest_wall_side(np.zeros((64, 64)))
