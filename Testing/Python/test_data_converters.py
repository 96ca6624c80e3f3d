"""CBIS-DDSM, VinDr-Mammo and INbreast converters: the real CBIS-DDSM tables in ../shared, and small files in
the
exact real formats (Testing/Python/data/) with tiny DICOMs written here."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.synthetic import write_image

from MammoDNNLib.data.converters import convert
from MammoDNNLib.data.converters.cbis_ddsm import TABLE_NAMES, convert_cbis_ddsm, read_case_table
from MammoDNNLib.data.converters.inbreast import convert_inbreast, read_inbreast_xml
from MammoDNNLib.data.converters.vindr import convert_vindr, parse_categories
from MammoDNNLib.data.manifest import load_manifest, save_manifest
from MammoDNNLib.errors import InputError

DATA = Path(__file__).parent / "data"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    patient_id: str = "anon",
    description: str = "",
    study_uid: str | None = None,
    series_uid: str | None = None,
    spacing: float | None = None,
) -> Path:
    """A small uncompressed Secondary Capture DICOM like the CBIS-DDSM / INbreast files."""
    from pydicom.uid import SecondaryCaptureImageStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(
        path,
        pixels,
        sop_class=SecondaryCaptureImageStorage,
        study_uid=study_uid,
        series_uid=series_uid,
        PatientID=patient_id,
        PatientName=patient_id,
        SeriesDescription=description,
        **({} if spacing is None else {"PixelSpacing": [spacing, spacing]}),
    )


# ------------------------------------------------------------------------------------------------------------
# CBIS-DDSM
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cbis_tables(shared_dir) -> Path:
    folder = shared_dir / "data" / "cbis-ddsm"
    if not (folder / TABLE_NAMES[0]).is_file():
        pytest.skip("CBIS-DDSM tables are absent from ../shared")
    return folder


def test_real_tables_parse_with_documented_counts_and_quirks(cbis_tables):
    # SOURCE.md: rows (patients) mass train 1318 (691), mass test 378 (201), calc train 1546 (602), calc test
    # 326 (151); 104 rows with crop and mask in different series folders.
    expected = {
        TABLE_NAMES[0]: (1318, 691),
        TABLE_NAMES[1]: (378, 201),
        TABLE_NAMES[2]: (1546, 602),
        TABLE_NAMES[3]: (326, 151),
    }
    different_series = 0
    for name, (rows_expected, patients_expected) in expected.items():
        raw = (cbis_tables / name).read_bytes()
        assert b"\r\n" in raw and b'\n"' in raw  # CRLF and a newline inside a quoted path
        header = raw.split(b"\r\n", 1)[0]
        assert (b"breast_density" in header) == name.startswith("mass")  # calc tables: "breast density"
        rows = read_case_table(cbis_tables / name)
        assert len(rows) == rows_expected and len({r.patient_id for r in rows}) == patients_expected
        for row in rows:
            for path in (row.image_path, row.cropped_path, row.roi_path):
                assert "\n" not in path and "\r" not in path and path.endswith(".dcm")
            assert row.split == ("train" if "train" in name else "test")
            assert row.abnormality_type == ("mass" if name.startswith("mass") else "calcification")
            different_series += row.cropped_path.split("/")[:3] != row.roi_path.split("/")[:3]
            # The quirk: mass rows name the mask 000001.dcm, calc rows 000000.dcm (where both share a folder).
            if row.cropped_path.split("/")[:3] == row.roi_path.split("/")[:3]:
                mask_name = row.roi_path.rsplit("/", 1)[1]
                assert mask_name == ("000001.dcm" if row.abnormality_type == "mass" else "000000.dcm")
    assert different_series == 104


def test_real_tables_convert_to_patient_studies(cbis_tables, tmp_path):
    manifest = convert_cbis_ddsm(cbis_tables)
    # Independent reading of the raw tables with the csv module.
    rows = []
    for name in TABLE_NAMES:
        with open(cbis_tables / name, newline="") as handle:
            rows += [(name, r) for r in csv.DictReader(handle)]
    assert len(rows) == 3568
    assert sum(len(list(s.lesions)) for s in manifest) == 3568
    test_patients = {r["patient_id"] for name, r in rows if "test" in name}
    all_patients = {r["patient_id"] for _, r in rows}
    assert {s.patient_id for s in manifest} == all_patients
    assert {s.patient_id for s in manifest if s.split == "test"} == test_patients
    keys = {(r["patient_id"], r["left or right breast"][0] + "-" + r["image view"]) for _, r in rows}
    assert {(s.patient_id, k) for s in manifest for k in s.views} == keys
    malignant = sum(r["pathology"] == "MALIGNANT" for _, r in rows)
    assert sum(les.pathology == "malignant" for s in manifest for _, les in s.lesions) == malignant
    # Mass rows whose shape is only architectural distortion are distortions.
    distortions = sum(r.get("mass shape") == "ARCHITECTURAL_DISTORTION" for _, r in rows)
    assert sum(les.type == "distortion" for s in manifest for _, les in s.lesions) == distortions
    # Without images every lesion is an image-level label, and every view says where its image would be.
    assert all(les.box is None for s in manifest for _, les in s.lesions)
    assert all(v.image is None and v.extra["tcia_paths"] for s in manifest for v in s.views.values())
    assert any("no image root" in note for note in manifest.notes)
    save_manifest(manifest, tmp_path / "cbis.json")
    assert load_manifest(tmp_path / "cbis.json").studies == manifest.studies


def _uid_tail(uid: str) -> str:
    return uid[-5:]


@pytest.fixture()
def cbis_download(tmp_path) -> Path:
    """A tiny TCIA download for the fixture tables, in NBIA's layout (and one subject in the tables' own)."""
    root = tmp_path / "manifest-1234567890" / "CBIS-DDSM"
    rows = {
        (r.image_path.split("/")[0], r.abnormality_id): r
        for name in ("mass_case_description_train_set.csv", "calc_case_description_test_set.csv")
        for r in read_case_table(DATA / "cbis-ddsm" / name)
    }
    rng = np.random.default_rng(0)

    def mammogram(width=60, height=80):
        return rng.integers(100, 4000, (height, width), dtype=np.uint16)

    def mask(box, width=60, height=80):
        x0, y0, x1, y1 = box
        array = np.zeros((height, width), np.uint8)
        array[y0:y1, x0:x1] = 255
        return array

    def descriptive(table_path: str, description: str, date: str = "07-20-2016") -> Path:
        subject, study_uid, series_uid, _ = table_path.split("/")
        return (
            root
            / subject
            / f"{date}-DDSM-NA-{_uid_tail(study_uid)}"
            / f"1.000000-{description}-{_uid_tail(series_uid)}"
        )

    crop = lambda: rng.integers(0, 4000, (9, 7), dtype=np.uint16)  # noqa: E731

    # P_00001 LEFT CC (mass): crop 1-1.dcm and mask 1-2.dcm in one ROI series.
    row = rows[("Mass-Training_P_00001_LEFT_CC", 1)]
    write_dicom(descriptive(row.image_path, "full mammogram images") / "1-1.dcm", mammogram())
    roi = descriptive(row.roi_path, "ROI mask images", "07-21-2016")
    write_dicom(roi / "1-1.dcm", crop())
    write_dicom(roi / "1-2.dcm", mask((10, 20, 25, 31)))
    # The same mammogram as a Calc-Test subject: here the mask comes first (1-1.dcm).
    row = rows[("Calc-Test_P_00001_LEFT_CC", 1)]
    write_dicom(descriptive(row.image_path, "full mammogram images", "08-29-2017") / "1-1.dcm", mammogram())
    roi = descriptive(row.roi_path, "ROI mask images", "08-29-2017")
    write_dicom(roi / "1-1.dcm", mask((40, 50, 44, 57)))
    write_dicom(roi / "1-2.dcm", crop())
    # P_00001 LEFT MLO: crop and mask in different series folders.
    row = rows[("Mass-Training_P_00001_LEFT_MLO", 1)]
    write_dicom(descriptive(row.image_path, "full mammogram images") / "1-1.dcm", mammogram(50, 70))
    write_dicom(descriptive(row.cropped_path, "cropped images", "07-21-2016") / "1-1.dcm", crop())
    write_dicom(
        descriptive(row.roi_path, "ROI mask images", "07-21-2016") / "1-1.dcm", mask((5, 6, 45, 60), 50, 70)
    )
    # P_00002 RIGHT CC in the tables' own layout (UID folders, original file names).
    row = rows[("Mass-Training_P_00002_RIGHT_CC", 1)]
    write_dicom(root / row.image_path, mammogram())
    write_dicom(root / row.cropped_path, crop())
    write_dicom(root / row.roi_path, mask((0, 0, 60, 12)))
    # P_00002 RIGHT MLO is not downloaded.
    return root.parent.parent


def test_fixture_download_boxes_from_roi_masks(cbis_download, tmp_path):
    manifest = convert("cbis-ddsm", DATA / "cbis-ddsm", images=cbis_download)
    assert [s.id for s in manifest] == ["cbis-ddsm-P_00001", "cbis-ddsm-P_00002"]
    p1, p2 = manifest.studies
    assert p1.split == "test"  # P_00001 is in a training and a test table: its images are test images
    assert p2.split == "train"
    lcc = p1.views["L-CC"]
    assert lcc.size == (60, 80) and lcc.image.name == "1-1.dcm" and "Mass-Training" in str(lcc.image)
    assert lcc.density == "C" and lcc.spacing == (0.05, 0.05)
    boxes = {les.extra["abnormality_type"]: les for les in lcc.lesions}
    assert boxes["mass"].box == (10.0, 20.0, 25.0, 31.0) and boxes["mass"].mask.name == "1-2.dcm"
    assert (
        boxes["calcification"].box == (40.0, 50.0, 44.0, 57.0)
        and boxes["calcification"].mask.name == "1-1.dcm"
    )
    assert boxes["calcification"].morphology == {
        "calc_morphology": "fine_pleomorphic",
        "calc_distribution": "linear",
    }
    assert boxes["mass"].morphology == {"mass_shape": "irregular", "mass_margin": "spiculated"}
    assert boxes["mass"].pathology == "malignant" and boxes["mass"].birads == "4"
    lmlo = p1.views["L-MLO"]
    assert lmlo.lesions[0].box == (5.0, 6.0, 45.0, 60.0) and "ROI mask images" in str(lmlo.lesions[0].mask)
    # One mass in L-CC and one in L-MLO with equal pathology and assessment: linked as one lesion.
    assert lmlo.lesions[0].id == boxes["mass"].id
    assert p2.views["R-CC"].lesions[0].type == "distortion" and p2.views["R-CC"].lesions[0].box == (
        0,
        0,
        60,
        12,
    )
    assert p2.views["R-MLO"].image is None and p2.views["R-MLO"].lesions[0].box is None
    assert p2.views["R-MLO"].lesions[0].morphology == {"mass_shape": "oval", "mass_margin": "obscured"}
    assert p1.views["L-CC"].density == "C"  # the calc row's density 0 does not override the mass row's
    path = save_manifest(manifest, tmp_path / "out" / "cbis.json")
    loaded = load_manifest(path)
    assert loaded.studies == manifest.studies
    assert len(loaded.missing_files()) == 0


def test_fixture_tables_reject_a_broken_row(tmp_path):
    text = (DATA / "cbis-ddsm" / "mass_case_description_train_set.csv").read_bytes()
    broken = tmp_path / "mass_case_description_train_set.csv"
    broken.write_bytes(text.replace(b",LEFT,CC,", b",LEFT,XCC,", 1))
    with pytest.raises(InputError, match="line 2: image view 'XCC' is not CC or MLO"):
        read_case_table(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="none of the case-description tables"):
        convert_cbis_ddsm(empty)
    with pytest.raises(InputError, match="no CBIS-DDSM subject folders"):
        convert_cbis_ddsm(DATA / "cbis-ddsm", images=empty)


# ------------------------------------------------------------------------------------------------------------
# VinDr-Mammo
# ------------------------------------------------------------------------------------------------------------


def test_parse_categories_is_a_literal_never_code():
    assert parse_categories("['Mass', 'Suspicious Calcification']") == ["Mass", "Suspicious Calcification"]
    with pytest.raises(ValueError):
        parse_categories("__import__('os').system('true')")


def test_vindr_fixture(tmp_path):
    release = tmp_path / "vindr"
    shutil.copytree(DATA / "vindr", release)
    # Images of the first study only (the second is "not downloaded").
    first_study = "4e3a578fd6a6e4c4ad3e8e2e2d3d3b4f"
    for image_id in (
        "a1f0b7c2d3e4f5a6b7c8d9e0f1a2b3c4",
        "b2e1c8d3e4f5a6b7c8d9e0f1a2b3c4d5",
        "c3d2e9f4a5b6c7d8e9f0a1b2c3d4e5f6",
        "d4c3f0a5b6c7d8e9f0a1b2c3d4e5f6a7",
    ):
        (release / "images" / first_study).mkdir(parents=True, exist_ok=True)
        (release / "images" / first_study / f"{image_id}.dicom").write_bytes(b"")
    manifest = convert_vindr(release)
    assert [s.id for s in manifest] == [f"vindr-{first_study}", "vindr-9f8e7d6c5b4a39281706f5e4d3c2b1a0"]
    first, second = manifest.studies
    assert first.split == "train" and second.split == "test"
    assert set(first.views) == set(second.views) == {"L-CC", "L-MLO", "R-CC", "R-MLO"}
    lcc = first.views["L-CC"]
    assert lcc.size == (2800, 3518) and lcc.birads == "4" and lcc.density == "C"
    assert [(les.type, les.box, les.birads) for les in lcc.lesions] == [
        ("mass", (2355.139892578125, 1731.06, 2482.92, 1852.0899), "4")
    ]
    # A box listing Mass and Suspicious Calcification is two lesions with one box.
    lmlo = first.views["L-MLO"].lesions
    assert [les.type for les in lmlo] == ["mass", "mass", "calcification"]
    assert lmlo[1].box == lmlo[2].box == (1945.52, 2104.2618, 2063.1299, 2261.7801)
    assert len({les.id for les in lmlo}) == 3
    # Lymph node skipped; the focal asymmetry's negative xmin clipped to 0.
    assert [(les.type, les.box) for les in first.views["R-MLO"].lesions] == [
        ("asymmetry", (0.0, 1166.52, 431.708, 1403.9301))
    ]
    assert first.views["R-CC"].lesions == []
    assert [les.type for les in second.views["L-CC"].lesions] == ["distortion"]
    assert [les.type for les in second.views["L-MLO"].lesions] == ["asymmetry"]
    assert second.views["R-MLO"].lesions == []  # skin thickening and nipple retraction are not study features
    assert all(v.image is not None for v in first.views.values())
    assert all(v.image is None for v in second.views.values())
    assert (
        first.views["L-CC"].image
        == release / "images" / first_study / "a1f0b7c2d3e4f5a6b7c8d9e0f1a2b3c4.dicom"
    )
    notes = " | ".join(manifest.notes)
    assert "Nipple Retraction 1, Skin Thickening 1, Suspicious Lymph Node 1" in notes
    assert "1 boxes clipped to the image" in notes and "4 images not found locally" in notes


def test_vindr_rejects_bad_rows(tmp_path):
    table = tmp_path / "finding_annotations.csv"
    lines = (DATA / "vindr" / "finding_annotations.csv").read_text().splitlines()
    table.write_text("\n".join([lines[0], lines[1].replace(",CC,", ",ML,")]) + "\n")
    with pytest.raises(InputError, match="line 2: laterality/view 'L'/'ML'"):
        convert_vindr(tmp_path)
    table.write_text("\n".join([lines[0], lines[1].replace(",training", ",train")]) + "\n")
    with pytest.raises(InputError, match="split 'train' is not 'training' or 'test'"):
        convert_vindr(tmp_path)
    table.write_text(lines[0].replace("xmin,", "") + "\n")
    with pytest.raises(InputError, match="missing column"):
        convert_vindr(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# INbreast
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def inbreast_release(tmp_path) -> Path:
    release = tmp_path / "INbreast Release 1.0"
    shutil.copytree(DATA / "inbreast", release)
    dicoms = release / "AllDICOMs"
    for name in (
        "22678622_8c0a3b0f7d1e2c44_MG_R_CC_ANON.dcm",
        "22678646_8c0a3b0f7d1e2c44_MG_L_CC_ANON.dcm",
        "22678670_8c0a3b0f7d1e2c44_MG_R_ML_ANON.dcm",
        "22678694_8c0a3b0f7d1e2c44_MG_L_ML_ANON.dcm",
        "20586908_6c613a14b80a8591_MG_L_CC_ANON.dcm",
        "20586934_6c613a14b80a8591_MG_L_ML_ANON.dcm",
    ):
        write_dicom(dicoms / name, np.zeros((160, 200), np.uint16), spacing=0.07)
    return release


def test_inbreast_xml_reader():
    rois = read_inbreast_xml(DATA / "inbreast" / "AllXML" / "22678646.xml")
    assert [(r.name, len(r.points)) for r in rois] == [
        ("Mass", 5),
        ("Calcification", 1),
        ("Cluster", 4),
        ("Calcification", 1),
        ("Spiculated Region", 3),
    ]
    assert rois[0].points[0] == (60.5, 40.25)


def test_inbreast_fixture(inbreast_release):
    manifest = convert_inbreast(inbreast_release)
    assert [s.id for s in manifest] == [
        "inbreast-6c613a14b80a8591-200906",
        "inbreast-8c0a3b0f7d1e2c44-201001",
    ]
    old, new = manifest.studies
    assert set(new.views) == {"R-CC", "L-CC", "R-MLO", "L-MLO"} and set(old.views) == {"L-CC", "L-MLO"}
    assert all(s.split is None for s in manifest)
    lcc = new.views["L-CC"]
    assert lcc.size == (200, 160) and lcc.density == "D" and lcc.birads == "3"
    # Mass polygon and calcification cluster; single calcifications and the spiculated region are not targets.
    assert [(les.type, les.box) for les in lcc.lesions] == [
        ("mass", (58.0, 40.25, 84.75, 72.0)),
        ("calcification", (120.0, 98.0, 142.0, 121.0)),
    ]
    assert lcc.lesions[0].outline[2] == (84.75, 60.5)
    # "Assymetry", spelt as in INbreast, is an asymmetry.
    assert [les.type for les in new.views["L-MLO"].lesions] == ["mass", "asymmetry"]
    assert old.views["L-CC"].birads == "4C" and old.views["L-CC"].density is None
    assert old.views["L-CC"].lesions[0].type == "distortion"
    assert old.views["L-CC"].lesions[0].box == (0.0, 18.0, 32.0, 52.0)  # clipped at the left edge
    notes = " | ".join(manifest.notes)
    assert "2 individual calcification ROIs" in notes and "'Spiculated Region' 1" in notes
    assert "6 images in 2 studies" in notes  # the trailing ;;;;;;; row carries nothing

    everything = convert_inbreast(inbreast_release, calcifications="all", point_box_px=14)
    calcs = [les for les in everything.studies[1].views["L-CC"].lesions if les.type == "calcification"]
    assert [les.box for les in calcs] == [
        (123.0, 103.0, 137.0, 117.0),
        (120.0, 98.0, 142.0, 121.0),
        (3.0, 3.0, 17.0, 17.0),
    ]


def test_inbreast_errors(inbreast_release):
    (inbreast_release / "AllXML" / "22678646.xml").write_text("<plist><dict><key>Images</key>")
    with pytest.raises(InputError, match="22678646.xml: not an OsiriX XML property list"):
        convert_inbreast(inbreast_release)
    (inbreast_release / "INbreast.csv").write_text("Patient ID,Laterality\n")
    with pytest.raises(InputError, match="semicolon-separated"):
        convert_inbreast(inbreast_release)
