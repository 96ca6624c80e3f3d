"""MammoDNN: four-view screening mammography CAD as a plain-Python library.

The library reads four-view studies (R-CC, L-CC, R-MLO, L-MLO), prepares them as the study describes, detects
masses, calcifications, asymmetries and architectural distortions, localizes them (quadrant, depth), matches CC to
MLO findings, grades malignancy and BI-RADS, and writes reports, Slicer files and DICOM results. It also holds the
statistics of reader studies. Nothing here imports Qt or the Slicer application; heavy dependencies (torch,
lightgbm, MRML) are imported by the modules that need them, never at package import.

Research use only: not a medical device.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
