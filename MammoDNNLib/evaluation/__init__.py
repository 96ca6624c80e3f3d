"""Evaluation statistics: ROC/DeLong, Cohen's kappa, Wilcoxon signed-rank, FROC, and Obuchowski-Rockette MRMC.

Each module takes plain arrays or dataclasses and returns dataclasses (with ``to_dict()`` for JSON); the
``mammodnn stats`` commands wrap them (conventions: docs/statistics.md). Nothing here imports torch or matplotlib.
"""

from .froc import Detection, FrocConfig, FrocResult, HitCriterion, Lesion, froc, image_level_roc
from .kappa import KappaResult, cohen_kappa, kappa_from_table
from .mrmc import MrmcData, MrmcResult, analyze_mrmc, mrmc_data
from .roc import (
    RocAnalysis,
    RocComparison,
    RocCurve,
    analyze_roc,
    delong_test,
    delong_unpaired_test,
    roc_curve,
)
from .wilcoxon import WilcoxonResult, wilcoxon_signed_rank

__all__ = [
    "Detection",
    "FrocConfig",
    "FrocResult",
    "HitCriterion",
    "KappaResult",
    "Lesion",
    "MrmcData",
    "MrmcResult",
    "RocAnalysis",
    "RocComparison",
    "RocCurve",
    "WilcoxonResult",
    "analyze_mrmc",
    "analyze_roc",
    "cohen_kappa",
    "delong_test",
    "delong_unpaired_test",
    "froc",
    "image_level_roc",
    "kappa_from_table",
    "mrmc_data",
    "roc_curve",
    "wilcoxon_signed_rank",
]
