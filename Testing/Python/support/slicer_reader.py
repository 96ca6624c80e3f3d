"""A DICOM file read exactly as Slicer's DICOMScalarVolumePlugin.loadFilesWithSeriesReader reads it: the
reference of the geometry tests (skips where slicer-core is not installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def read_like_slicer_dicom_plugin(path: Path):
    """The vtkITKArchetypeImageSeriesScalarReader (GDCM approach) after reading ``path`` without error."""
    slicer = pytest.importorskip("slicer")

    reader = slicer.vtkITKArchetypeImageSeriesScalarReader()
    reader.SetArchetype(str(path))
    reader.AddFileName(str(path))
    reader.SetSingleFile(0)
    reader.SetOutputScalarTypeToNative()
    reader.SetDesiredCoordinateOrientationToNative()
    reader.SetUseNativeOriginOn()
    reader.SetDICOMImageIOApproachToGDCM()
    reader.Update()
    assert reader.GetErrorCode() == 0
    return reader


def matrix_array(vtk_matrix) -> np.ndarray:
    """A vtkMatrix4x4 as a 4x4 array."""
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def reader_ijk_to_ras(reader) -> np.ndarray:
    """IJK->RAS of what the reader loaded (the inverse of its RAS->IJK matrix, inverted by VTK)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    matrix.DeepCopy(reader.GetRasToIjkMatrix())
    matrix.Invert()
    return matrix_array(matrix)
