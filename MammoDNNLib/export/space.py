"""Where Slicer puts a 2-D view: the one IJK -> LPS/RAS geometry every Slicer file and scene node uses.

A mammogram has no 3-D geometry of its own. Slicer's DICOM scalar-volume loader (``DICOMScalarVolumePlugin``,
default reader approach "GDCM with DCMTK fallback") reads the file with ITK's ``GDCMImageIO`` through
``vtkITKArchetypeImageSeriesScalarReader`` and takes the geometry the reader reports:

* origin: ImagePositionPatient (0020,0032) if present, else (0, 0, 0);
* direction: the row and column cosines of ImageOrientationPatient (0020,0037) if present, else the identity
  (in LPS), the third axis being their cross product;
* spacing: the attribute GDCM reads for the SOP class, as (column spacing, row spacing, 1): ImagerPixelSpacing
  (0018,1164) for CR, DX, MG, intra-oral, XA and RF images (PixelSpacing is ignored there, and so is
  EstimatedRadiographicMagnificationFactor); PixelSpacing (0028,0030), else NominalScannedPixelSpacing
  (0018,2010), for Secondary Capture; PixelSpacing for the rest; 1 mm where the attribute is absent.

For PNG (and the other raster formats) ITK's readers give spacing 1 mm, origin 0 and the identity direction.
Slicer then converts ITK's LPS to RAS (``IJKToRAS = diag(-1, -1, 1, 1) @ IJKToLPS``). These rules were checked
against slicer-core's own reader (``Testing/Python/test_export_space.py`` compares them file by file).

Pixel ``[row, col]`` is voxel ``(i, j, k) = (col, row, 0)``; a point ``(x, y)`` of the project's pixel-edge
convention (:mod:`MammoDNNLib.geometry`) is ``(x - 0.5, y - 0.5, 0)`` in IJK.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from pydicom import Dataset

    from ..findings import ViewInfo
    from ..geometry import Box
    from ..study import View

log = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# SOP classes for which GDCM reads ImagerPixelSpacing (gdcm::ImageHelper::GetSpacingTagFromMediaStorage).
_IMAGER_SPACING_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
        "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray For Presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray For Processing
        "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography For Presentation
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography For Processing
        "1.2.840.10008.5.1.4.1.1.1.3",  # Digital Intra-Oral X-Ray For Presentation
        "1.2.840.10008.5.1.4.1.1.1.3.1",  # Digital Intra-Oral X-Ray For Processing
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic
        "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane (retired)
    }
)
_SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
# Raster formats Slicer reads through ITK readers that carry no spacing for mammograms.
RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".pnm", ".tif", ".tiff"})


@dataclass(frozen=True)
class ViewGeometry:
    """The IJK -> LPS geometry of one view as Slicer loads it (k is the single slice, at 0)."""

    size: tuple[int, int]  # (columns, rows) = (I, J) voxels
    spacing: tuple[float, float]  # (i, j) = (column spacing, row spacing) in mm
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS of the centre of pixel [0, 0]
    # Unit vectors of the i, j, k axes in LPS (rows of this tuple are the axes).
    axes: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    slice_spacing: float = 1.0
    spacing_source: str = ""  # what the spacing came from, for provenance and docs

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix taking homogeneous (i, j, k, 1) to LPS millimetres."""
        matrix = np.eye(4)
        scales = (self.spacing[0], self.spacing[1], self.slice_spacing)
        for column, (axis, scale) in enumerate(zip(self.axes, scales, strict=True)):
            matrix[:3, column] = np.asarray(axis, dtype=np.float64) * scale
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.ijk_to_lps()

    def direction_lps(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit i, j, k axes in LPS."""
        return np.asarray(self.axes, dtype=np.float64).T

    def points_to_ijk(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """``(N, 2)`` pixel-edge (x, y) points to ``(N, 3)`` continuous IJK (pixel centres at integers)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.column_stack([xy[:, 0] - 0.5, xy[:, 1] - 0.5, np.zeros(len(xy))])

    def points_to_lps(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        ijk = self.points_to_ijk(points)
        return ijk @ self.ijk_to_lps()[:3, :3].T + self.ijk_to_lps()[:3, 3]

    def points_to_ras(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        return self.points_to_lps(points) * np.array([-1.0, -1.0, 1.0])

    def box_to_lps(self, box: "Box") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A box's centre (LPS), size along the image axes (mm) and 3x3 orientation (columns = axes, LPS).

        The box spans its pixel edges in-plane and one slice (``slice_spacing``) through the plane, so that a
        Slicer ROI made from it covers exactly the boxed pixels of the slice.
        """
        x0, y0, x1, y1 = box
        centre = self.points_to_lps([((x0 + x1) / 2.0, (y0 + y1) / 2.0)])[0]
        size = np.array([(x1 - x0) * self.spacing[0], (y1 - y0) * self.spacing[1], self.slice_spacing])
        return centre, size, self.direction_lps()

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "axes": [list(a) for a in self.axes],
            "spacing_source": self.spacing_source,
            "ijk_to_lps": self.ijk_to_lps().tolist(),
        }


def geometry_from_header(header: "Dataset", size: tuple[int, int] | None = None) -> ViewGeometry:
    """The geometry Slicer's DICOM loader gives this image (``size``: columns, rows; default from header)."""
    if size is None:
        size = (int(header.Columns), int(header.Rows))
    spacing, source = _gdcm_spacing(header)
    origin = (0.0, 0.0, 0.0)
    position = _floats(header.get("ImagePositionPatient"), 3)
    if position is not None:
        origin = tuple(position)  # type: ignore[assignment]
    axes = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    cosines = _floats(header.get("ImageOrientationPatient"), 6)
    if cosines is not None:
        row = np.asarray(cosines[:3])
        column = np.asarray(cosines[3:])
        if np.linalg.norm(row) > 0 and np.linalg.norm(column) > 0:
            row = row / np.linalg.norm(row)
            column = column / np.linalg.norm(column)
            normal = np.cross(row, column)
            axes = (tuple(row.tolist()), tuple(column.tolist()), tuple(normal.tolist()))  # type: ignore[assignment]
    return ViewGeometry(
        size=(int(size[0]), int(size[1])), spacing=spacing, origin=origin, axes=axes, spacing_source=source
    )


def geometry_for_raster(size: tuple[int, int]) -> ViewGeometry:
    """PNG, JPEG, TIFF, PGM: ITK's readers give 1 mm pixels at the origin."""
    return ViewGeometry(
        size=(int(size[0]), int(size[1])), spacing=(1.0, 1.0), spacing_source="raster file: 1 mm"
    )


def geometry_from_spacing(
    size: tuple[int, int], spacing_row_col: tuple[float, float], source: str
) -> ViewGeometry:
    """A view with no file Slicer could read (in memory): its own (row, col) spacing, origin 0, identity."""
    row, col = (float(v) for v in spacing_row_col)
    if not (row > 0 and col > 0):
        row, col = 1.0, 1.0
    return ViewGeometry(size=(int(size[0]), int(size[1])), spacing=(col, row), spacing_source=source)


def geometry_for_view_info(info: "ViewInfo", header: "Dataset | None" = None) -> ViewGeometry:
    """Geometry of a report's view: from its DICOM header if given, else as Slicer reads its file type.

    Without a header, a view whose file is a raster image gets Slicer's 1 mm; a view with no file (in memory)
    or whose DICOM file is not at hand gets the report's spacing (logged, since Slicer would read the file's
    own).
    """
    if header is not None:
        return geometry_from_header(header, info.size)
    suffix = Path(info.file).suffix.lower() if info.file else ""
    if suffix in RASTER_SUFFIXES:
        return geometry_for_raster(info.size)
    if info.file:
        log.debug(
            "%s: the DICOM header of %s is not available; using the report's spacing %s, which may "
            "differ from the spacing Slicer reads from the file",
            info.key,
            info.file,
            tuple(info.spacing),
        )
    return geometry_from_spacing(info.size, info.spacing, "report spacing (no file Slicer could read)")


def geometry_for_view(view: "View") -> ViewGeometry:
    """Geometry of a loaded view (its header, else its file type, else its own spacing)."""
    if view.header is not None:
        return geometry_from_header(view.header, view.size)
    if view.source is not None and view.source.suffix.lower() in RASTER_SUFFIXES:
        return geometry_for_raster(view.size)
    return geometry_from_spacing(view.size, view.spacing, "view spacing (made in memory)")


def _gdcm_spacing(header: "Dataset") -> tuple[tuple[float, float], str]:
    from pydicom.multival import MultiValue

    sop_class = str(header.get("SOPClassUID", "") or "")
    if not sop_class and hasattr(header, "file_meta"):
        sop_class = str(header.file_meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class in _IMAGER_SPACING_SOP_CLASSES:
        keywords = ("ImagerPixelSpacing",)
    elif sop_class in _SECONDARY_CAPTURE_SOP_CLASSES:
        keywords = ("PixelSpacing", "NominalScannedPixelSpacing")
    else:
        keywords = ("PixelSpacing",)
    for keyword in keywords:
        values = header.get(keyword)
        if values is None or values == "":
            continue
        numbers = (
            [float(v) for v in values] if isinstance(values, (MultiValue, list, tuple)) else [float(values)]
        )
        if len(numbers) == 1:
            numbers = numbers * 2
        row, col = (v if v != 0 else 1.0 for v in numbers[:2])
        tag = header.data_element(keyword).tag
        return (col, row), f"{keyword} ({tag.group:04X},{tag.element:04X}), as Slicer's GDCM reader reads it"
    return (1.0, 1.0), f"no {' / '.join(keywords)}: 1 mm, as Slicer's GDCM reader does"


def _floats(values, count: int) -> list[float] | None:
    if values is None or values == "":
        return None
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None
