"""Views ↔ volume nodes against real MRML (slicer-core): geometry equals what Slicer's DICOM reader gives."""

from __future__ import annotations

import numpy as np
import pytest
from support.slicer_reader import matrix_array, read_like_slicer_dicom_plugin, reader_ijk_to_ras
from test_scene_support import SIZES, SPACING, headless, make_study, write_dicom

pytest.importorskip("slicer")


def _slicer_reference(path):
    """IJK->RAS and pixels of a file as DICOMScalarVolumePlugin.loadFilesWithSeriesReader reads it."""
    from vtk.util import numpy_support

    reader = read_like_slicer_dicom_plugin(path)
    image = reader.GetOutput()
    cols, rows, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(rows, cols)
    return reader_ijk_to_ras(reader), pixels


def test_volume_geometry_equals_slicer_dicom_loader(tmp_path):
    """A view loaded by MammoDNN lands where Slicer's own DICOM reader puts the same file."""
    from MammoDNNLib.io import load_view
    from MammoDNNLib.scene.volumes import add_view_volume, volume_ijk_to_ras, volume_pixels

    app = headless()
    study = make_study()
    for key in ("R-CC", "L-MLO"):
        path = write_dicom(tmp_path / f"{key}.dcm", key, study[key].pixels)
        reference_matrix, reference_pixels = _slicer_reference(path)
        view = load_view(path)
        node = add_view_volume(app.scene, view)
        np.testing.assert_allclose(volume_ijk_to_ras(node), reference_matrix, atol=1e-9)
        assert volume_pixels(node).shape == reference_pixels.shape == SIZES[key]
        # Same pixel at the same place: the node stores rows as j and columns as i, as the reader does (the
        # presentation values of this MONOCHROME2 file without LUTs are its stored values).
        np.testing.assert_allclose(volume_pixels(node), reference_pixels.astype(np.float32))


def test_volume_from_memory_view_keeps_pixels_identity_and_spacing():
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.volumes import add_view_volume, view_from_volume, view_identity, volume_shape

    app = headless()
    study = make_study()
    view = study["L-CC"]
    node = add_view_volume(app.scene, view)
    assert node.GetName() == "L-CC"
    assert view_identity(node) == ("L", "CC")
    assert node.GetAttribute(schema.ATTR_VIEW_KEY) == "L-CC"
    assert volume_shape(node) == SIZES["L-CC"]
    # In memory (no header): IJK->RAS = diag(-col, -row, 1) at the origin.
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    expected = np.diag([-SPACING[1], -SPACING[0], 1.0, 1.0])
    np.testing.assert_allclose(matrix_array(m), expected)
    back = view_from_volume(node)
    np.testing.assert_array_equal(back.pixels, view.pixels)
    assert back.spacing == pytest.approx(view.spacing)
    assert (back.laterality, back.view) == ("L", "CC")


def test_spacing_comes_from_the_matrix_without_the_attribute():
    from MammoDNNLib.scene import schema
    from MammoDNNLib.scene.volumes import add_view_volume, volume_spacing

    app = headless()
    node = add_view_volume(app.scene, make_study()["R-CC"])
    node.RemoveAttribute(schema.ATTR_SPACING)
    assert volume_spacing(node) == pytest.approx(SPACING)


def test_view_identity_from_names():
    from MammoDNNLib.scene.volumes import view_identity_from_name

    assert view_identity_from_name("R-CC") == ("R", "CC")
    assert view_identity_from_name("case12_L_MLO") == ("L", "MLO")
    assert view_identity_from_name("LMLO") == ("L", "MLO")
    assert view_identity_from_name("rcc") == ("R", "CC")
    assert view_identity_from_name("mdb001") is None
    assert view_identity_from_name("R-CC vs L-CC") is None  # ambiguous


def test_chest_wall_from_patient_orientation():
    from MammoDNNLib.scene.volumes import chest_wall_side_from_patient_orientation as side

    assert side("P\\L") == "right"
    assert side(["A", "R"]) == "left"
    assert side(["P", "F"]) == "right"
    assert side("F\\L") is None
    assert side("") is None


def test_volumes_by_key_errors_name_the_volume():
    from MammoDNNLib.scene.volumes import volumes_by_key

    app = headless()
    unnamed = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "scan 7")
    with pytest.raises(ValueError, match="scan 7.*laterality and view are unknown"):
        volumes_by_key([unnamed])
    a = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "R-CC")
    b = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "r_cc copy")
    with pytest.raises(ValueError, match="both R-CC"):
        volumes_by_key([a, b])
    with pytest.raises(ValueError, match="both R-CC and L-CC"):
        volumes_by_key({"R-CC": a, "L-CC": a})
    with pytest.raises(ValueError, match="unknown view"):
        volumes_by_key({"X-CC": a})
    with pytest.raises(ValueError, match="no view volumes"):
        volumes_by_key({})
    assert list(volumes_by_key([a])) == ["R-CC"]


def test_non_2d_volumes_are_refused_with_their_name():
    import vtk

    from MammoDNNLib.scene.volumes import volume_shape

    app = headless()
    node = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT chest")
    image = vtk.vtkImageData()
    image.SetDimensions(4, 5, 3)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    node.SetAndObserveImageData(image)
    with pytest.raises(ValueError, match="CT chest.*3 slices"):
        volume_shape(node)
    empty = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="empty.*no image data"):
        volume_shape(empty)
