"""Loading mammograms: DICOM (native, RLE, JPEG, JPEG-LS, JPEG 2000) and header-less PNG / PGM / TIFF images.

:func:`load_study` reads the screening views of one exam from a folder, a file or a list of files;
:func:`load_view` reads one image. Each :class:`~MammoDNNLib.study.View` holds presentation values (modality
LUT, then VOI LUT or window, MONOCHROME1 inverted: brighter = denser) as float32, the pixel spacing in mm,
laterality and view, ``provenance`` saying where each of those came from (``laterality``, ``view``,
``spacing``, ``photometric``, ``modality_lut``, ``voi``, ``decoder``), the DICOM header without pixel data,
and warnings. Problems that stop loading are :class:`~MammoDNNLib.errors.InputError` naming the file; input
files are only ever read. The rules are written out in docs/io.md.
"""

from __future__ import annotations

from .conventions import SPACING_RANGE_MM, NotAScreeningView, Skippable
from .dicom import is_dicom_file, read_dicom_header
from .loader import DICOM_SUFFIXES, load_study, load_view, scan_folder
from .raster import IMAGE_SUFFIXES, UnnamedImage
from .views import MAMMOGRAPHY_VIEWS, VIEW_MODIFIERS, MammographyView, ViewModifier

__all__ = [
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MAMMOGRAPHY_VIEWS",
    "SPACING_RANGE_MM",
    "VIEW_MODIFIERS",
    "MammographyView",
    "NotAScreeningView",
    "Skippable",
    "UnnamedImage",
    "ViewModifier",
    "is_dicom_file",
    "load_study",
    "load_view",
    "read_dicom_header",
    "scan_folder",
]
