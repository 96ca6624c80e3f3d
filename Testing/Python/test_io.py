"""io: DICOM header rules, presentation values, studies from folders and lists (small DICOMs built here).

Truths come from the DICOM standard's formulas written out in the tests, from values we put in the files, and
from pydicom's code dictionary; every load is wrapped in `untouched` (inputs hashed before and after).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import DigitalMammographyXRayImageStorageForProcessing, generate_uid
from test_io_helpers import code_item, dicom_window_linear, load, load_error, mammogram, ramp, save, untouched

from MammoDNNLib.errors import InputError
from MammoDNNLib.io import (
    MAMMOGRAPHY_VIEWS,
    VIEW_MODIFIERS,
    NotAScreeningView,
    load_study,
    load_view,
    read_dicom_header,
)


# --- presentation values


def test_monochrome2_stored_values_are_the_pixels(tmp_path):
    stored = ramp()
    view = load(save(mammogram(stored), tmp_path / "a.dcm"))
    assert view.pixels.dtype == np.float32
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert view.provenance["photometric"] == "MONOCHROME2"
    assert view.provenance["voi"].startswith("none")
    assert view.provenance["decoder"].startswith("Explicit VR Little Endian")
    assert "PixelData" not in view.header and view.header.SOPInstanceUID


def test_monochrome1_is_inverted_to_the_same_image_as_monochrome2(tmp_path):
    stored = ramp(bits=12)
    m2 = load(save(mammogram(stored), tmp_path / "m2.dcm"))
    m1 = load(
        save(mammogram((4095 - stored).astype(np.uint16), photometric="MONOCHROME1"), tmp_path / "m1.dcm")
    )
    np.testing.assert_array_equal(m1.pixels, m2.pixels)
    assert m1.provenance["photometric"].startswith("MONOCHROME1 (inverted")


def test_rescale_slope_intercept_is_applied(tmp_path):
    stored = ramp(bits=12)
    view = load(save(mammogram(stored, RescaleSlope=2, RescaleIntercept=-100), tmp_path / "r.dcm"))
    np.testing.assert_array_equal(view.pixels, (2.0 * stored - 100).astype(np.float32))
    assert view.provenance["modality_lut"] == "RescaleSlope/RescaleIntercept (0028,1053/1052) 2/-100"


def test_modality_lut_sequence_is_applied(tmp_path):
    stored = ramp(bits=10)
    lut = (np.arange(1024) * 3 // 2).astype(np.uint16)  # 0..1534
    item = Dataset()
    item.LUTDescriptor = [1024, 0, 16]
    item.add_new("LUTData", "US", lut.tolist())
    item.ModalityLUTType = "US"
    ds = mammogram(stored, bits=10)
    ds.ModalityLUTSequence = [item]
    view = load(save(ds, tmp_path / "mlut.dcm"))
    np.testing.assert_array_equal(view.pixels, lut[stored].astype(np.float32))
    assert view.provenance["modality_lut"].startswith("ModalityLUTSequence (0028,3000)")


def test_first_linear_window_applied_as_dicom_defines(tmp_path):
    stored = ramp(bits=12)
    ds = mammogram(stored, WindowCenter=[1500, 2048], WindowWidth=[1000, 4096])
    ds.WindowCenterWidthExplanation = ["DENSE", "NORMAL"]
    view = load(save(ds, tmp_path / "w.dcm"))
    expected = dicom_window_linear(stored, 1500, 1000, 0, 4095)
    np.testing.assert_allclose(view.pixels, expected, rtol=0, atol=1e-3)
    assert (
        view.provenance["voi"]
        == "WindowCenter/WindowWidth (0028,1050/1051) 1500/1000 LINEAR 'DENSE', first of 2"
    )


def test_sigmoid_window(tmp_path):
    stored = ramp(bits=12)
    view = load(
        save(
            mammogram(stored, WindowCenter=2000, WindowWidth=800, VOILUTFunction="SIGMOID"),
            tmp_path / "s.dcm",
        )
    )
    expected = 4095 / (1 + np.exp(-4 * (stored.astype(np.float64) - 2000) / 800))
    np.testing.assert_allclose(view.pixels, expected, rtol=0, atol=1e-3)
    assert "SIGMOID" in view.provenance["voi"]


def test_window_on_monochrome1_then_inverted(tmp_path):
    stored = ramp(bits=12)
    view = load(
        save(
            mammogram(stored, photometric="MONOCHROME1", WindowCenter=1800, WindowWidth=1200),
            tmp_path / "w1.dcm",
        )
    )
    expected = 4095 - dicom_window_linear(stored, 1800, 1200, 0, 4095)
    np.testing.assert_allclose(view.pixels, expected, rtol=0, atol=1e-3)


def test_voi_lut_sequence_preferred_over_window(tmp_path):
    stored = ramp(bits=12)
    first_mapped, entries = 100, 3000
    lut = np.rint(255 * (np.arange(entries) / (entries - 1)) ** 0.5).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [entries, first_mapped, 8]
    item.add_new("LUTData", "US", lut.tolist())
    item.LUTExplanation = "GAMMA"
    ds = mammogram(stored, WindowCenter=2048, WindowWidth=4096)
    ds.VOILUTSequence = [item]
    view = load(save(ds, tmp_path / "lut.dcm"))
    expected = lut[np.clip(stored.astype(np.int64) - first_mapped, 0, entries - 1)]
    np.testing.assert_array_equal(view.pixels, expected.astype(np.float32))
    assert view.provenance["voi"] == (
        "VOILUTSequence (0028,3010) item 1 of 1 'GAMMA' (WindowCenter/WindowWidth also present, not used)"
    )


def test_broken_window_is_a_warning_not_an_error(tmp_path):
    stored = ramp(bits=12)
    view = load(save(mammogram(stored, WindowCenter=2048, WindowWidth=0), tmp_path / "w0.dcm"))
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert any("could not be applied" in w for w in view.warnings)


def test_signed_pixels(tmp_path):
    stored = (ramp(bits=12).astype(np.int16) - 2048).astype(np.int16)
    ds = mammogram(stored, bits=12)
    assert ds.PixelRepresentation == 1
    view = load(save(ds, tmp_path / "signed.dcm"))
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))


# --- laterality


def test_image_laterality_wins_and_a_disagreeing_laterality_is_reported(tmp_path):
    view = load(save(mammogram(laterality="R", Laterality="L"), tmp_path / "a.dcm"))
    assert view.laterality == "R"
    assert view.provenance["laterality"] == "ImageLaterality (0020,0062)"
    assert any("Laterality (0020,0060) says L" in w for w in view.warnings)


def test_laterality_from_series_laterality(tmp_path):
    view = load(save(mammogram(laterality=None, Laterality="R"), tmp_path / "a.dcm"))
    assert (view.laterality, view.provenance["laterality"]) == ("R", "Laterality (0020,0060)")


@pytest.mark.parametrize("orientation, side", [(["A", "R"], "L"), (["P", "L"], "R"), (["A", "FR"], "L")])
def test_laterality_from_patient_orientation(tmp_path, orientation, side):
    view = load(save(mammogram(laterality=None, PatientOrientation=orientation), tmp_path / "a.dcm"))
    assert view.laterality == side
    assert view.provenance["laterality"].startswith("PatientOrientation (0020,0020)")
    assert "standard display orientation" in view.provenance["laterality"]


def test_laterality_from_patient_id_convention(tmp_path):
    view = load(
        save(mammogram(laterality=None, patient_id="Calc-Training_P_00005_RIGHT_MLO"), tmp_path / "a.dcm")
    )
    assert view.laterality == "R"
    assert "CBIS-DDSM convention" in view.provenance["laterality"]


def test_no_laterality_error_names_the_sources_and_the_fix(tmp_path):
    path = save(mammogram(laterality=None), tmp_path / "a.dcm")
    message = load_error(path)
    assert (
        "no laterality" in message
        and "ImageLaterality (0020,0062)" in message
        and "laterality='L'" in message
    )
    view = load(path, laterality="left")
    assert (view.laterality, view.provenance["laterality"]) == ("L", "caller (laterality='L')")


def test_caller_laterality_contradicting_the_header_is_an_error(tmp_path):
    message = load_error(save(mammogram(laterality="L"), tmp_path / "a.dcm"), laterality="R")
    assert "laterality='R' was given but the header says L" in message


def test_both_breasts_is_not_a_single_view(tmp_path):
    message = load_error(save(mammogram(laterality="B"), tmp_path / "a.dcm"), NotAScreeningView)
    assert "'B' (both breasts)" in message


# --- views


def test_view_code_tables_match_pydicoms_code_dictionary():
    by_code = {}
    for collection in (codes.cid4014, codes.cid4015):
        for name in collection.dir():
            code = getattr(collection, name)
            by_code[code.value] = code.meaning
    for entry in (*MAMMOGRAPHY_VIEWS, *VIEW_MODIFIERS):
        assert entry.code in by_code, entry
        assert by_code[entry.code].lower().replace(
            "medial-lateral", "medio-lateral"
        ) == entry.meaning.lower().replace("medial-lateral", "medio-lateral").replace(
            " (from below)", ""
        ), entry
    from pydicom.sr._snomed_dict import mapping  # legacy SNOMED RT -> SNOMED CT, as pydicom ships it

    for entry in (*MAMMOGRAPHY_VIEWS, *VIEW_MODIFIERS):
        assert mapping["SRT"][entry.srt] == entry.code, entry


def test_view_from_view_code_sequence_sct_and_legacy_srt(tmp_path):
    ds = mammogram(view=None)
    ds.ViewCodeSequence = [code_item("399368009", "SCT", "medio-lateral oblique")]
    view = load(save(ds, tmp_path / "sct.dcm"))
    assert view.view == "MLO" and view.provenance["view"].startswith(
        "ViewCodeSequence (0054,0220) (399368009"
    )
    ds = mammogram(view=None)
    ds.ViewCodeSequence = [code_item("R-10242", "SRT", "cranio-caudal")]
    assert load(save(ds, tmp_path / "srt.dcm")).view == "CC"


def test_view_position_and_code_disagreeing_is_an_error(tmp_path):
    ds = mammogram(view="CC")
    ds.ViewCodeSequence = [code_item("399368009", "SCT", "medio-lateral oblique")]
    message = load_error(save(ds, tmp_path / "a.dcm"))
    assert "conflicting views" in message and "'CC'" in message and "399368009" in message


def test_view_from_cbis_ddsm_patient_orientation(tmp_path):
    view = load(save(mammogram(view=None, PatientOrientation="MLO"), tmp_path / "a.dcm"))
    assert view.view == "MLO"
    assert view.provenance["view"] == "PatientOrientation (0020,0020) 'MLO' (CBIS-DDSM convention)"


@pytest.mark.parametrize(
    "position, named",
    [
        ("ML", "ML (medio-lateral)"),
        ("LM", "LM (latero-medial)"),
        ("XCCL", "XCCL (cranio-caudal exaggerated laterally)"),
        ("FB", "FB (caudo-cranial"),
        ("AT", "axillary tail"),
        ("SIO", "SIO (superolateral"),
    ],
)
def test_other_view_positions_are_named_and_refused(tmp_path, position, named):
    message = load_error(save(mammogram(view=position), tmp_path / "a.dcm"), NotAScreeningView)
    assert named in message and "not a screening CC or MLO view" in message


def test_other_view_by_code_is_refused(tmp_path):
    ds = mammogram(view=None)
    ds.ViewCodeSequence = [code_item("399101009", "SCT", "cranio-caudal exaggerated medially")]
    assert "XCCM" in load_error(save(ds, tmp_path / "a.dcm"), NotAScreeningView)


@pytest.mark.parametrize("modifier", [("399055006", "Spot Compression"), ("399163009", "Magnification")])
def test_spot_and_magnification_views_are_refused(tmp_path, modifier):
    ds = mammogram(view="CC")
    item = code_item("399162004", "SCT", "cranio-caudal")
    item.ViewModifierCodeSequence = [code_item(modifier[0], "SCT", modifier[1])]
    ds.ViewCodeSequence = [item]
    message = load_error(save(ds, tmp_path / "a.dcm"), NotAScreeningView)
    assert f"CC (cranio-caudal) with {modifier[1].lower()}" in message


def test_implant_displaced_is_a_screening_view_with_a_warning(tmp_path):
    view = load(save(mammogram(view="CCID"), tmp_path / "a.dcm"))
    assert view.view == "CC"
    assert "implant displaced" in view.provenance["view"]
    assert any("modifier implant displaced" in w for w in view.warnings)


def test_unrecognized_view_position_is_refused(tmp_path):
    assert "unrecognized view: ViewPosition (0018,5101) 'PA'" in load_error(
        save(mammogram(view="PA"), tmp_path / "a.dcm"), NotAScreeningView
    )


def test_no_view_error_and_caller_view(tmp_path):
    path = save(mammogram(view=None), tmp_path / "a.dcm")
    assert "no view" in load_error(path)
    view = load(path, view="mlo")
    assert (view.view, view.provenance["view"]) == ("MLO", "caller (view='MLO')")
    assert "ML (medio-lateral)" in load_error(path, view="ML")


# --- spacing


def test_imager_pixel_spacing_corrected_by_magnification(tmp_path):
    view = load(save(mammogram(EstimatedRadiographicMagnificationFactor=1.08), tmp_path / "a.dcm"))
    assert view.spacing == pytest.approx((0.1 / 1.08, 0.1 / 1.08))
    assert view.provenance["spacing"] == (
        "ImagerPixelSpacing (0018,1164) 0.1\\0.1 / EstimatedRadiographicMagnificationFactor (0018,1114) 1.08"
    )


def test_pixel_spacing_and_scanned_spacing_fallbacks(tmp_path):
    view = load(save(mammogram(spacing=None, PixelSpacing=[0.07, 0.07]), tmp_path / "ps.dcm"))
    assert (
        view.spacing == (0.07, 0.07) and view.provenance["spacing"] == "PixelSpacing (0028,0030) 0.07\\0.07"
    )
    view = load(save(mammogram(spacing=None, NominalScannedPixelSpacing=[0.05, 0.05]), tmp_path / "ns.dcm"))
    assert view.spacing == (0.05, 0.05) and view.provenance["spacing"].startswith(
        "NominalScannedPixelSpacing"
    )


def test_missing_spacing_is_an_error_saying_how_to_pass_it(tmp_path):
    path = save(mammogram(spacing=None), tmp_path / "a.dcm")
    message = load_error(path)
    assert "no pixel spacing" in message and "spacing=0.05" in message and "--spacing" in message
    view = load(path, spacing=0.05)
    assert view.spacing == (0.05, 0.05) and view.provenance["spacing"] == "caller (spacing=0.05\\0.05 mm)"


def test_header_spacing_wins_over_the_caller_with_a_warning(tmp_path):
    view = load(save(mammogram(), tmp_path / "a.dcm"), spacing=0.05)
    assert view.spacing == (0.1, 0.1)
    assert any("the caller's spacing 0.05\\0.05 mm is ignored" in w for w in view.warnings)


@pytest.mark.parametrize("spacing", [(5.0, 5.0), (0.001, 0.001), (0.0, 0.0)])
def test_absurd_header_spacing_is_an_error_naming_the_value(tmp_path, spacing):
    message = load_error(save(mammogram(spacing=spacing), tmp_path / "a.dcm"))
    assert (
        "absurd pixel spacing" in message and f"{spacing[0]:g}" in message and "ImagerPixelSpacing" in message
    )


@pytest.mark.parametrize("spacing", [3.0, -0.1, (0.1, 0.1, 0.1), "x"])
def test_absurd_or_malformed_caller_spacing_is_an_error(tmp_path, spacing):
    message = load_error(save(mammogram(spacing=None), tmp_path / "a.dcm"), spacing=spacing)
    assert "spacing" in message


def test_non_square_pixels_are_reported(tmp_path):
    view = load(save(mammogram(spacing=(0.1, 0.12)), tmp_path / "a.dcm"))
    assert view.spacing == (0.1, 0.12)
    assert any("non-square pixels: 0.1 mm between rows, 0.12 mm between columns" in w for w in view.warnings)


def test_implausible_magnification_factor_is_not_applied(tmp_path):
    view = load(save(mammogram(EstimatedRadiographicMagnificationFactor=0.2), tmp_path / "a.dcm"))
    assert view.spacing == (0.1, 0.1)
    assert any(
        "EstimatedRadiographicMagnificationFactor (0018,1114) 0.2 is implausible" in w for w in view.warnings
    )


# --- not a mammogram


def test_other_modality_is_not_a_mammogram(tmp_path):
    assert "not a mammogram: Modality CT" in load_error(save(mammogram(Modality="CT"), tmp_path / "ct.dcm"))
    assert "not a mammogram: Modality MR" in load_error(Path(get_testdata_file("MR_small.dcm")))


def test_projection_radiograph_of_another_body_part_is_not_a_mammogram(tmp_path):
    message = load_error(save(mammogram(Modality="DX", BodyPartExamined="CHEST"), tmp_path / "a.dcm"))
    assert "not a mammogram: Modality DX, BodyPartExamined CHEST" in message


def test_projection_radiograph_of_the_breast_loads_with_a_warning(tmp_path):
    view = load(save(mammogram(Modality="RG"), tmp_path / "a.dcm"))
    assert any("Modality RG is not MG (mammography)" in w for w in view.warnings)


def test_colour_multiframe_and_unknown_photometric(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    ds = mammogram(ramp(16, 16, bits=8), bits=8)
    ds.set_pixel_data(rgb, photometric_interpretation="RGB", bits_stored=8)
    assert "colour image (PhotometricInterpretation RGB, 3 samples per pixel)" in load_error(
        save(ds, tmp_path / "rgb.dcm")
    )
    frames = np.stack([ramp(16, 16), ramp(16, 16)])
    ds = mammogram(ramp(16, 16))
    ds.set_pixel_data(frames, photometric_interpretation="MONOCHROME2", bits_stored=12)
    assert "multi-frame image (2 frames" in load_error(save(ds, tmp_path / "mf.dcm"), NotAScreeningView)
    message = load_error(save(mammogram(PhotometricInterpretation="MONOCHROME3"), tmp_path / "m3.dcm"))
    assert "unknown PhotometricInterpretation 'MONOCHROME3'" in message


def test_dicom_without_pixel_data(tmp_path):
    message = load_error(Path(get_testdata_file("test-SR.dcm")), NotAScreeningView)
    assert "no pixel data" in message and "not an image" in message


def test_cbis_ddsm_roi_mask_is_not_a_full_mammogram(tmp_path):
    ds = mammogram(patient_id="Mass-Training_P_00001_LEFT_CC_1", SeriesDescription="ROI mask images")
    assert "CBIS-DDSM ROI mask" in load_error(save(ds, tmp_path / "roi.dcm"), NotAScreeningView)


# --- not DICOM, corrupt


def test_not_dicom(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("hello, not an image\n" * 20)
    assert "not a DICOM file" in load_error(text)
    unknown = tmp_path / "blob"
    unknown.write_bytes(bytes(range(256)) * 4)
    assert "not a DICOM file or a supported image" in load_error(unknown)
    with pytest.raises(InputError, match="not a DICOM file"):
        read_dicom_header(text)
    with pytest.raises(InputError, match="no such file"):
        load_view(tmp_path / "missing.dcm")


def test_read_dicom_header_has_no_pixel_data(tmp_path):
    path = save(mammogram(), tmp_path / "a.dcm")
    with untouched(path):
        header = read_dicom_header(path)
    assert header.ViewPosition == "CC" and "PixelData" not in header


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_native_file(tmp_path, keep):
    data = save(mammogram(ramp(64, 64)), tmp_path / "full.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert "corrupt or truncated" in load_error(cut)


def test_truncated_header(tmp_path):
    data = save(mammogram(), tmp_path / "full.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:300])
    message = load_error(cut)
    assert "corrupt" in message or "no pixel data" in message


def test_raw_dataset_without_preamble_is_read(tmp_path):
    ds = mammogram()
    del ds.file_meta
    path = tmp_path / "raw.dcm"
    ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    view = load(path)
    assert view.key == "L-CC"


# --- studies


def four_views(folder: Path, **common) -> dict[str, Path]:
    paths = {}
    for i, (side, position) in enumerate((("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))):
        ds = mammogram(ramp(seed=i), laterality=side, view=position, **common)
        paths[f"{side}-{position}"] = save(ds, folder / f"sub{i % 2}" / f"IM{i:04d}")  # no extension, nested
    return paths


def test_folder_study_recursive_without_extensions(tmp_path):
    paths = four_views(tmp_path / "study")
    (tmp_path / "study" / "README.txt").write_text("not an image")
    with untouched(tmp_path / "study"):
        study = load_study(tmp_path / "study")
    assert list(study.views) == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    for key, view in study.views.items():
        assert view.source == paths[key]
    assert study.warnings == []
    assert study.metadata["study_instance_uid"] == "1.2.826.0.1.3680043.8.498.1"
    np.testing.assert_array_equal(study["L-CC"].pixels, ramp(seed=1).astype(np.float32))


def test_list_of_files_and_missing_views_warning(tmp_path):
    paths = four_views(tmp_path / "s")
    with untouched(tmp_path / "s"):
        study = load_study([paths["L-CC"], paths["L-MLO"]])
    assert list(study.views) == ["L-CC", "L-MLO"]
    assert any("missing views: R-CC, R-MLO" in w for w in study.warnings)
    assert study.breast_complete("L") and not study.breast_complete("R")


def test_two_files_claiming_one_view_name_both(tmp_path):
    paths = four_views(tmp_path / "s")
    extra = save(mammogram(laterality="L", view="CC"), tmp_path / "s" / "again.dcm")
    with untouched(tmp_path / "s"), pytest.raises(InputError) as caught:
        load_study(tmp_path / "s")
    assert "2 files claim the L-CC view" in str(caught.value)
    assert str(paths["L-CC"]) in str(caught.value) and str(extra) in str(caught.value)


def test_exact_copy_and_for_processing_twins_are_skipped(tmp_path):
    folder = tmp_path / "s"
    paths = four_views(folder)
    original = save(mammogram(laterality="R", view="CC"), folder / "copy-a.dcm")
    (folder / "zz-copy-b.dcm").write_bytes(original.read_bytes())
    paths["R-CC"].unlink()
    save(
        mammogram(
            laterality="L",
            view="MLO",
            SOPClassUID=DigitalMammographyXRayImageStorageForProcessing,
            PresentationIntentType="FOR PROCESSING",
        ),
        folder / "processing.dcm",
    )
    with untouched(folder):
        study = load_study(folder)
    assert study["R-CC"].source == original
    assert study["L-MLO"].source == paths["L-MLO"]
    assert any("zz-copy-b.dcm: skipped: a copy of" in w for w in study.warnings)
    assert any("processing.dcm: skipped: a For Processing L-MLO image" in w for w in study.warnings)


def test_other_views_and_non_images_in_a_folder_are_skipped_with_warnings(tmp_path):
    folder = tmp_path / "s"
    four_views(folder)
    ml = save(mammogram(laterality="L", view="ML"), folder / "ml.dcm")
    spot = mammogram(laterality="R", view="CC")
    item = code_item("399162004", "SCT", "cranio-caudal")
    item.ViewModifierCodeSequence = [code_item("399055006", "SCT", "Spot Compression")]
    spot.ViewCodeSequence = [item]
    spot_path = save(spot, folder / "spot.dcm")
    sr = folder / "report.dcm"
    sr.write_bytes(Path(get_testdata_file("test-SR.dcm")).read_bytes())
    with untouched(folder):
        study = load_study(folder)
    assert len(study) == 4
    assert any(w.startswith(f"{ml}: skipped: ML (medio-lateral) view") for w in study.warnings)
    assert any(
        w.startswith(f"{spot_path}: skipped: CC (cranio-caudal) with spot compression")
        for w in study.warnings
    )
    assert any(w.startswith(f"{sr}: skipped: no pixel data") for w in study.warnings)


def test_mixed_patients_and_mixed_studies_are_errors(tmp_path):
    folder = tmp_path / "p"
    four_views(folder)
    other = save(mammogram(laterality="R", view="CC", patient_id="PAT-2"), folder / "other" / "x.dcm")
    with untouched(folder), pytest.raises(InputError, match="files of different patients") as caught:
        load_study(folder)
    assert str(other) in str(caught.value)
    folder = tmp_path / "s"
    paths = four_views(folder)
    paths["R-CC"].unlink()
    other = save(mammogram(laterality="R", view="CC", study_uid=generate_uid()), folder / "y.dcm")
    with untouched(folder), pytest.raises(InputError, match="different studies") as caught:
        load_study(folder)
    assert str(other) in str(caught.value)


def test_cbis_ddsm_views_with_their_own_study_uids_are_one_patient(tmp_path):
    folder = tmp_path / "cbis"
    for side, name in (("L", "LEFT"), ("R", "RIGHT")):
        save(
            mammogram(
                laterality=None,
                view=None,
                spacing=None,
                patient_id=f"Mass-Test_P_00042_{name}_CC",
                study_uid=generate_uid(),
                Laterality=side,
                PatientOrientation="CC",
            ),
            folder / f"{name}.dcm",
        )
    with untouched(folder):
        study = load_study(folder, spacing=0.05)
    assert list(study.views) == ["R-CC", "L-CC"]
    assert study.metadata["patient_id"] == "P_00042" and "study_instance_uid" not in study.metadata
    save(mammogram(laterality="L", view="MLO", patient_id="Mass-Test_P_00077_LEFT_MLO"), folder / "other.dcm")
    with pytest.raises(InputError, match="different patients"):
        load_study(folder, spacing=0.05)


def test_empty_folder_and_folder_without_screening_views(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM files or images"):
        load_study(tmp_path / "empty")
    save(mammogram(view="ML"), tmp_path / "ml" / "a.dcm")
    with untouched(tmp_path / "ml"), pytest.raises(InputError, match="no screening mammogram .* ML"):
        load_study(tmp_path / "ml")


def test_laterality_and_view_only_for_a_single_file(tmp_path):
    paths = four_views(tmp_path / "s")
    with pytest.raises(InputError, match="only when loading a single file"):
        load_study(tmp_path / "s", view="CC")
    study = load_study(paths["R-MLO"], laterality="R")
    assert list(study.views) == ["R-MLO"]
    with pytest.raises(NotAScreeningView):
        load_study(save(mammogram(view="XCCL"), tmp_path / "x.dcm"))


def test_corrupt_file_in_a_folder_stops_the_study(tmp_path):
    folder = tmp_path / "s"
    paths = four_views(folder)
    data = paths["R-CC"].read_bytes()
    paths["R-CC"].write_bytes(data[: len(data) // 2])
    with untouched(folder), pytest.raises(InputError) as caught:
        load_study(folder)
    assert caught.value.path == str(paths["R-CC"]) and "truncated" in str(caught.value)


def test_caller_view_does_not_override_a_diagnostic_modifier(tmp_path):
    ds = mammogram(view=None)
    ds.ViewModifierCodeSequence = [code_item("399163009", "SCT", "Magnification")]
    message = load_error(save(ds, tmp_path / "a.dcm"), NotAScreeningView, view="CC")
    assert (
        "CC (cranio-caudal) with magnification view (caller (view='CC'); ViewModifierCodeSequence" in message
    )


def test_single_file_study_reports_the_three_missing_views(tmp_path):
    path = save(mammogram(laterality="R", view="MLO"), tmp_path / "a.dcm")
    with untouched(path):
        study = load_study(path)
    assert list(study.views) == ["R-MLO"] and study.source == path
    assert study.warnings == [f"{path}: missing views: R-CC, L-CC, L-MLO (found R-MLO)"]


def test_images_beside_dicom_views_are_not_views(tmp_path):
    """A phantom study folder holds mask PNGs named by view (masks/breast_L-CC.png) beside its DICOMs."""
    from MammoDNNLib.io import load_study
    from MammoDNNLib.phantom import generate_study, write_study

    folder = write_study(generate_study(7, "small"), tmp_path / "study")
    assert any(p.suffix == ".png" for p in (folder / "masks").iterdir())
    study = load_study(folder)
    assert list(study.views) == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    assert all(v.source.suffix == ".dcm" for v in study)
    pngs = sorted((folder / "masks").glob("*.png"))
    notes = [w for w in study.warnings if "header-less images beside DICOM" in w]
    assert len(notes) == 1 and notes[0].startswith(f"skipped {len(pngs)} header-less images"), study.warnings
    assert str(pngs[0]) in notes[0]
