"""CC-MLO lesion matching: which finding in the CC view and which in the MLO view of a breast are the same lesion.

* :mod:`.features` — :class:`MatchCandidate` (a finding measured in its view) and the named pair features;
* :mod:`.model` — the LightGBM :class:`Matcher` (probability matrix; LightGBM text model + manifest + sha256);
* :mod:`.assign` — :func:`greedy_assign` (highest first, each lesion once, threshold) and display numbers;
* :mod:`.match` — :func:`match_findings`, what the pipeline calls;
* :mod:`.metrics` — pair precision / recall / F1; :mod:`.baselines` — depth and nipple-distance rules;
* :mod:`.train`, :mod:`.evaluate` — training on phantom correspondences, held-out evaluation.

Importing this package does not import LightGBM (the model module does when a model is loaded or trained).
"""

from .assign import Match, display_numbers, greedy_assign
from .features import (
    FEATURE_NAMES,
    CandidateConfig,
    MatchCandidate,
    ViewContext,
    make_candidate,
    pair_feature_matrix,
    pair_features,
)
from .match import BreastMatching, match_breast, match_findings, matching_notes
from .metrics import PairMetrics, pair_metrics
from .model import DEFAULT_MATCHER, Matcher

__all__ = [
    "DEFAULT_MATCHER",
    "FEATURE_NAMES",
    "BreastMatching",
    "CandidateConfig",
    "Match",
    "MatchCandidate",
    "Matcher",
    "PairMetrics",
    "ViewContext",
    "display_numbers",
    "greedy_assign",
    "make_candidate",
    "match_breast",
    "match_findings",
    "matching_notes",
    "pair_feature_matrix",
    "pair_features",
    "pair_metrics",
]
