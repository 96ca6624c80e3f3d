"""io: compressed transfer syntaxes and header-less images (PNG, PGM, TIFF).

Truths: the arrays we encode (lossless codecs must give them back exactly; JPEG-LS near-lossless within its
NEAR bound), an independent decoder for lossy JPEG (Pillow's libjpeg-turbo against pylibjpeg's libjpeg),
reference values from pydicom's own test suite, and uncompressed twins of pydicom's compressed test files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from test_io_helpers import encode_jpeg_lossless_sv1, load, load_error, mammogram, ramp, save, untouched

from MammoDNNLib.errors import InputError
from MammoDNNLib.io import UnnamedImage, load_study


def encapsulated(ds, frame: bytes, syntax) -> pydicom.Dataset:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def relabelled(name: str, folder: Path) -> Path:
    """A copy of one of pydicom's test files made to look like a mammogram (pixel data untouched)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.Modality = "MG"
    ds.BodyPartExamined = "BREAST"
    ds.ImageLaterality = "R"
    ds.ViewPosition = "MLO"
    ds.ImagerPixelSpacing = [0.1, 0.1]
    for keyword in ("PixelSpacing", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            del ds[keyword]
    path = folder / name
    ds.save_as(path)
    return path


# --- DICOM transfer syntaxes


@pytest.mark.parametrize(
    "syntax, plugin, kwargs",
    [
        (RLELossless, "pylibjpeg", {}),
        (JPEG2000Lossless, "pylibjpeg", {}),
        (JPEGLSLossless, "pyjpegls", {}),
    ],
)
def test_lossless_codecs_give_back_the_stored_values(tmp_path, syntax, plugin, kwargs):
    stored = ramp(64, 48, bits=12)
    ds = mammogram(stored)
    ds.compress(syntax, **kwargs)
    view = load(save(ds, tmp_path / "a.dcm"))
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert view.provenance["decoder"] == f"{syntax.name} ({syntax}) via {plugin}"


def test_jpeg_ls_near_lossless_within_its_bound(tmp_path):
    stored = ramp(64, 48, bits=12)
    ds = mammogram(stored)
    ds.compress(JPEGLSNearLossless, jls_error=3)
    view = load(save(ds, tmp_path / "a.dcm"))
    error = np.abs(view.pixels - stored.astype(np.float32))
    assert error.max() <= 3 and error.max() > 0


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_jpeg_lossless_process14_sv1(tmp_path, bits):
    stored = ramp(40, 36, bits=bits, seed=bits)
    ds = encapsulated(mammogram(stored, bits=bits), encode_jpeg_lossless_sv1(stored, bits), JPEGLosslessSV1)
    view = load(save(ds, tmp_path / "a.dcm"))
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert "via pylibjpeg" in view.provenance["decoder"]


def test_jpeg_baseline_against_an_independent_decoder(tmp_path):
    stored = ramp(64, 48, bits=8)
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=85)
    ds = encapsulated(mammogram(stored, bits=8), buffer.getvalue(), JPEGBaseline8Bit)
    view = load(save(ds, tmp_path / "a.dcm"))
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32)  # libjpeg-turbo
    assert view.provenance["decoder"].endswith("via pylibjpeg")  # libjpeg (Thomas Richter), not Pillow
    assert np.abs(view.pixels - reference).max() <= 2  # IDCT implementations may differ by rounding
    assert np.abs(view.pixels - stored).max() > 0  # it really is lossy


def test_jpeg_extended_12bit_reference_values(tmp_path):
    view = load(relabelled("JPGExtended.dcm", tmp_path))
    assert view.shape == (1024, 256)
    # pydicom's test suite (pixels reference JPGE_16_12_1_0_1F_M2): arr[420, 140] == 244, arr[230, 120] == 95
    assert view.pixels[420, 140] == 244 and view.pixels[230, 120] == 95
    assert "JPEG Extended" in view.provenance["decoder"]


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"]
)
def test_third_party_lossless_files_equal_their_uncompressed_twin(tmp_path, name):
    (tmp_path / "ref").mkdir()
    reference = load(relabelled("MR_small.dcm", tmp_path / "ref"))
    view = load(relabelled(name, tmp_path))
    np.testing.assert_array_equal(view.pixels, reference.pixels)
    assert view.provenance["decoder"] != reference.provenance["decoder"]


def test_bad_jpeg_codestream_is_a_clear_error(tmp_path):
    message = load_error(relabelled("JPEG-lossy.dcm", tmp_path))
    assert "corrupt or truncated pixel data: JPEG Extended (Process 2 and 4) could not be decoded" in message
    assert "pylibjpeg:" in message


def test_truncated_jpeg2000_stream_is_a_clear_error(tmp_path):
    stored = ramp(64, 48, bits=12)
    ds = mammogram(stored)
    ds.compress(JPEG2000Lossless)
    frame = b"".join(next(generate_fragmented_frames(ds.PixelData)))
    ds = encapsulated(mammogram(stored), frame[: len(frame) // 2], JPEG2000Lossless)
    message = load_error(save(ds, tmp_path / "a.dcm"))
    assert "corrupt or truncated pixel data" in message and "JPEG 2000" in message


def test_damaged_rle_stream_is_a_clear_error(tmp_path):
    stored = ramp(64, 48, bits=12)
    ds = mammogram(stored)
    ds.compress(RLELossless)
    frame = bytearray(b"".join(next(generate_fragmented_frames(ds.PixelData))))
    frame[len(frame) // 2 : len(frame) // 2 + 200] = bytes(200)  # makes pylibjpeg-rle panic (a BaseException)
    message = load_error(save(encapsulated(mammogram(stored), bytes(frame), RLELossless), tmp_path / "a.dcm"))
    assert "corrupt or truncated pixel data: RLE Lossless could not be decoded" in message


def test_file_cut_inside_compressed_pixel_data(tmp_path):
    ds = mammogram(ramp(64, 48))
    ds.compress(RLELossless)
    data = save(ds, tmp_path / "full.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 500])
    assert "corrupt or truncated DICOM file" in load_error(cut)


# --- header-less images


@pytest.mark.parametrize("bits", [8, 16])
def test_png_with_caller_values(tmp_path, bits):
    stored = ramp(30, 20, bits=bits)
    path = tmp_path / "scan.png"
    Image.fromarray(stored).save(path)
    view = load(path, spacing=(0.2, 0.2), laterality="R", view="CC")
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert (view.key, view.spacing, view.header) == ("R-CC", (0.2, 0.2), None)
    assert view.provenance["laterality"] == "caller (laterality='R')"
    assert view.provenance["spacing"] == "caller (spacing=0.2\\0.2 mm)"
    assert view.provenance["decoder"].startswith("Pillow: PNG mode")


def test_header_less_image_names_what_is_missing(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(ramp(8, 8, bits=8)).save(path)
    message = load_error(path, UnnamedImage, spacing=0.1)
    assert "no header to give its laterality, view:" in message and "R-CC.png" in message
    message = load_error(path, laterality="L", view="CC")
    assert "no header to give its spacing:" in message and "--spacing" in message
    assert "spacing" not in load_error(path, UnnamedImage, spacing=0.1, laterality="L").split(":")[1]


def test_side_and_view_from_the_file_name(tmp_path):
    path = tmp_path / "case7_L_MLO.png"
    Image.fromarray(ramp(8, 8, bits=8)).save(path)
    view = load(path, spacing=0.1)
    assert (
        view.key == "L-MLO" and view.provenance["view"] == "file name 'case7_L_MLO.png' (naming convention)"
    )
    assert "view='CC' was given but the file name says MLO" in load_error(path, spacing=0.1, view="CC")


def test_grey_rgb_is_read_and_colour_is_refused(tmp_path):
    grey = ramp(10, 12, bits=8)
    path = tmp_path / "grey.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    view = load(path, spacing=0.1, laterality="L", view="CC")
    np.testing.assert_array_equal(view.pixels, grey.astype(np.float32))
    assert any("stored as RGB with equal channels" in w for w in view.warnings)
    colour = np.stack([grey, grey, 255 - grey], axis=-1)
    path = tmp_path / "colour.png"
    Image.fromarray(colour).save(path)
    assert "colour image (RGB with differing channels)" in load_error(
        path, spacing=0.1, laterality="L", view="CC"
    )


def test_binary_image_is_refused(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(ramp(8, 8, bits=8) > 100).save(path)
    assert "1-bit (binary) image" in load_error(path, spacing=0.1, laterality="L", view="CC")


def test_pgm_16_bit_and_scaled_maxval(tmp_path):
    stored = ramp(6, 5, bits=16)
    path = tmp_path / "a.pgm"
    path.write_bytes(b"P5\n5 6\n65535\n" + stored.astype(">u2").tobytes())
    view = load(path, spacing=0.05, laterality="R", view="MLO")
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    twelve = ramp(6, 5, bits=12)
    path = tmp_path / "b.pgm"
    path.write_bytes(b"P5\n5 6\n4095\n" + twelve.astype(">u2").tobytes())
    view = load(path, spacing=0.05, laterality="R", view="MLO")
    assert "maxval 4095" in view.provenance["decoder"]
    np.testing.assert_allclose(view.pixels, twelve.astype(np.float64) * 65535 / 4095, atol=0.5)


def test_tiff_deflate_miniswhite_and_float(tmp_path):
    stored = ramp(20, 16, bits=16)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, stored, compression="zlib")
    view = load(path, spacing=0.07, laterality="L", view="CC")
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert view.provenance["decoder"].startswith(
        "tifffile: TIFF uint16 MINISBLACK (compression ADOBE_DEFLATE)"
    )
    path = tmp_path / "white.tif"
    tifffile.imwrite(path, stored, photometric="miniswhite")
    view = load(path, spacing=0.07, laterality="L", view="CC")
    np.testing.assert_array_equal(view.pixels, (65535 - stored.astype(np.float64)).astype(np.float32))
    assert view.provenance["photometric"].startswith("TIFF MINISWHITE (inverted")
    values = np.linspace(-1, 1, 20 * 16, dtype=np.float32).reshape(20, 16)
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, values)
    np.testing.assert_array_equal(load(path, spacing=0.07, laterality="L", view="CC").pixels, values)


def test_tiff_compression_tifffile_lacks_falls_back_to_pillow(tmp_path):
    stored = ramp(20, 16, bits=8)
    path = tmp_path / "lzw.tif"
    Image.fromarray(stored).save(path, compression="tiff_lzw")
    view = load(path, spacing=0.07, laterality="L", view="CC")
    np.testing.assert_array_equal(view.pixels, stored.astype(np.float32))
    assert view.provenance["decoder"].startswith("Pillow: TIFF uint8 MINISBLACK (compression LZW)")


def test_multi_page_tiff_is_refused(tmp_path):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.stack([ramp(8, 8), ramp(8, 8)]), photometric="minisblack")
    assert "multi-image TIFF (2 images)" in load_error(path, spacing=0.1, laterality="L", view="CC")


def test_truncated_png_is_a_clear_error(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(ramp(200, 200, bits=16)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:-300])
    assert "corrupt or truncated PNG" in load_error(cut, spacing=0.1, laterality="L", view="CC")


def test_folder_of_named_images(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, key in enumerate(("R-CC", "L-CC", "R-MLO")):
        Image.fromarray(ramp(10, 10, bits=8, seed=i)).save(folder / f"{key}.png")
    Image.fromarray(ramp(10, 10, bits=8)).save(folder / "preview.png")
    with untouched(folder), pytest.raises(InputError, match="no header to give its spacing"):
        load_study(folder)
    with untouched(folder):
        study = load_study(folder, spacing=0.1)
    assert list(study.views) == ["R-CC", "L-CC", "R-MLO"]
    np.testing.assert_array_equal(study["L-CC"].pixels, ramp(10, 10, bits=8, seed=1).astype(np.float32))
    assert any(
        w.startswith(f"{folder / 'preview.png'}: skipped: a PNG image has no header") for w in study.warnings
    )
    assert any("missing views: L-MLO" in w for w in study.warnings)


def test_grey_palette_png_and_mixing_with_dicom(tmp_path):
    grey = ramp(10, 12, bits=8)
    image = Image.fromarray(grey).convert("P")  # a palette of grey levels
    alone = tmp_path / "alone"
    alone.mkdir()
    image.save(alone / "L-CC.png")
    with untouched(alone):
        study = load_study(alone, spacing=0.1)
    np.testing.assert_array_equal(study["L-CC"].pixels, grey.astype(np.float32))

    # Beside DICOM views a header-less image is a mask or a screenshot, not a view: left out, and said so.
    folder = tmp_path / "mixed"
    folder.mkdir()
    image.save(folder / "L-CC.png")
    save(mammogram(laterality="R", view="CC"), folder / "rcc.dcm")
    with untouched(folder):
        study = load_study(folder, spacing=0.1)
    assert list(study.views) == ["R-CC"]
    assert study["R-CC"].spacing == (0.1, 0.1)  # the header's ImagerPixelSpacing; the caller's 0.1 agrees
    assert any(
        w.startswith(f"{folder / 'L-CC.png'}: skipped: a header-less image beside DICOM") for w in study.warnings
    )
