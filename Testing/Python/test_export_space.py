"""The Slicer geometry of a view (MammoDNNLib.export.space) against slicer-core's own DICOM reader.

The reference is the reader Slicer's DICOMScalarVolumePlugin uses (vtkITKArchetypeImageSeriesScalarReader with
GDCM): for each header variant the test writes a file, lets the reader load it, and compares its IJK->RAS with
ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.slicer_reader import read_like_slicer_dicom_plugin, reader_ijk_to_ras
from support.synthetic import write_image

from MammoDNNLib.export.space import (
    geometry_for_view_info,
    geometry_from_header,
    geometry_from_spacing,
)
from MammoDNNLib.findings import ViewInfo

MG = "1.2.840.10008.5.1.4.1.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CR = "1.2.840.10008.5.1.4.1.1.1"

VARIANTS = {
    "mg_imager": (
        MG,
        "MG",
        {"ImagerPixelSpacing": [0.1, 0.2], "EstimatedRadiographicMagnificationFactor": 1.08},
    ),
    "mg_both": (MG, "MG", {"ImagerPixelSpacing": [0.1, 0.2], "PixelSpacing": [0.05, 0.07]}),
    "mg_pixel_only": (MG, "MG", {"PixelSpacing": [0.05, 0.07]}),
    "mg_none": (MG, "MG", {}),
    "dx_both": (DX, "DX", {"ImagerPixelSpacing": [0.15, 0.25], "PixelSpacing": [0.05, 0.07]}),
    "cr": (CR, "CR", {"ImagerPixelSpacing": [0.1, 0.2]}),
    "sc_pixel": (SC, "OT", {"PixelSpacing": [0.3, 0.4]}),
    "sc_nominal": (SC, "OT", {"NominalScannedPixelSpacing": [0.3, 0.4]}),
    "sc_both": (SC, "OT", {"PixelSpacing": [0.3, 0.4], "NominalScannedPixelSpacing": [0.5, 0.6]}),
    "sc_imager_only": (SC, "OT", {"ImagerPixelSpacing": [0.3, 0.4]}),
    "mg_position_orientation": (
        MG,
        "MG",
        {
            "ImagerPixelSpacing": [0.1, 0.2],
            "ImagePositionPatient": [10, 20, 30],
            "ImageOrientationPatient": [0, 1, 0, 0, 0, -1],
        },
    ),
    "mg_position_only": (MG, "MG", {"ImagerPixelSpacing": [0.1, 0.2], "ImagePositionPatient": [1, 2, 3]}),
}


def _write(path: Path, sop_class: str, modality: str, rows: int = 40, cols: int = 30, **attributes) -> None:
    pixels = (np.arange(rows * cols, dtype=np.uint16) % 4096).reshape(rows, cols)
    write_image(path, pixels, sop_class=sop_class, modality=modality, bits_stored=12, **attributes)


def _slicer_ijk_to_ras(path: Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    reader = read_like_slicer_dicom_plugin(path)
    return reader_ijk_to_ras(reader), reader.GetOutput().GetDimensions()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_geometry_matches_slicer_gdcm_reader(tmp_path: Path, name: str) -> None:
    import pydicom

    sop_class, modality, attributes = VARIANTS[name]
    path = tmp_path / f"{name}.dcm"
    _write(path, sop_class, modality, **attributes)
    expected, dimensions = _slicer_ijk_to_ras(path)
    geometry = geometry_from_header(pydicom.dcmread(path, stop_before_pixels=True))
    assert dimensions[:2] == geometry.size
    np.testing.assert_allclose(geometry.ijk_to_ras(), expected, atol=1e-9)


def test_points_map_through_pixel_centres() -> None:
    geometry = geometry_from_spacing((30, 40), (0.1, 0.2), "test")  # (row, col) spacing
    # Pixel [row 3, col 5] has its centre at (x, y) = (5.5, 3.5) -> IJK (5, 3, 0) -> LPS (5 * 0.2, 3 * 0.1,
    # 0).
    np.testing.assert_allclose(geometry.points_to_lps([(5.5, 3.5)]), [[1.0, 0.3, 0.0]])
    np.testing.assert_allclose(geometry.points_to_ras([(5.5, 3.5)]), [[-1.0, -0.3, 0.0]])
    centre, size, axes = geometry.box_to_lps((5.0, 3.0, 9.0, 5.0))
    np.testing.assert_allclose(centre, [(7.0 - 0.5) * 0.2, (4.0 - 0.5) * 0.1, 0.0])
    np.testing.assert_allclose(size, [0.8, 0.2, 1.0])
    np.testing.assert_allclose(axes, np.eye(3))


def test_view_info_without_header_follows_the_file_type() -> None:
    png = ViewInfo("R-CC", "films/mdb001.png", "R", "CC", (100, 80), (0.2, 0.2))
    assert geometry_for_view_info(png).spacing == (1.0, 1.0)  # ITK's PNG reader: 1 mm
    memory = ViewInfo("R-CC", None, "R", "CC", (100, 80), (0.1, 0.07))
    assert geometry_for_view_info(memory).spacing == (0.07, 0.1)  # (column, row)
