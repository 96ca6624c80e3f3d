"""Builders shared by several test modules (no tests here; pytest collects only ``test_*.py``).

* :mod:`support.synthetic`: elliptical masks, half-ellipse 'breast' images, DICOM image files, findings with
  exact elliptical masks and the other pieces of the synthetic studies of ``test_export_support`` and
  ``test_scene_support``;
* :mod:`support.slicer_reader`: a file read exactly as Slicer's DICOM plugin reads it (the reference for the
  geometry tests).
"""
