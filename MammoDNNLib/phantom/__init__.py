"""Synthetic four-view mammography phantom with full ground truth.

A 3D breast model (skin, nipple, axillary tail, fibroglandular tissue with power-law texture, vessels,
pectoral muscle) is compressed and projected into the four screening views; lesions (masses, calcification
clusters, asymmetries, architectural distortions) live in 3D and are projected into both views of their
breast, so the CC and MLO projections of one lesion share an id, a consistent depth and compatible quadrants.
See docs/phantom.md.

    from MammoDNNLib.phantom import generate_study, write_study, generate_studies, load_truth
    phantom = generate_study(seed=7, size="small")      # in memory: phantom.study (Study), phantom.truth
    write_study(phantom, "out/study_7")                 # four DICOM files, truth.json, masks/
    generate_studies("out", studies=10, seed=1)         # out/study_0000 ... + out/index.json
"""

from .config import SIZE_SPACING_MM, AnatomyConfig, ImagingConfig, LesionConfig, PhantomConfig
from .generate import PhantomStudy, generate_studies, generate_study, write_study
from .seeding import study_seed
from .truth import (
    TRUTH_SCHEMA,
    TRUTH_VERSION,
    BreastTruth,
    LesionTruth,
    LesionViewTruth,
    PhantomTruth,
    ViewTruth,
    load_truth,
)

__all__ = [
    "SIZE_SPACING_MM",
    "AnatomyConfig",
    "ImagingConfig",
    "LesionConfig",
    "PhantomConfig",
    "PhantomStudy",
    "generate_studies",
    "generate_study",
    "write_study",
    "study_seed",
    "TRUTH_SCHEMA",
    "TRUTH_VERSION",
    "BreastTruth",
    "LesionTruth",
    "LesionViewTruth",
    "PhantomTruth",
    "ViewTruth",
    "load_truth",
]
