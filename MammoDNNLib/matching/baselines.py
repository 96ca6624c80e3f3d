"""Simple matching rules, measured beside the LightGBM matcher so that its gain is visible.

Each turns one distance into a pseudo-probability ``exp(-distance / scale)``; with greedy assignment and a
threshold (chosen on validation phantoms like the matcher's) that is "pair the closest first, up to a maximum
distance".

* :class:`DepthBaseline`: difference of the normalized depths (0 nipple .. 1 pectoralis).
* :class:`NippleDistanceBaseline`: the radiologists' arc rule — difference of the distances from the nipple, mm.
* :class:`RuleBaseline`: the arc rule, but only for pairs of the same finding type in compatible quadrants
  (``vocabulary.QUADRANT_COMPATIBILITY`` of the most probable quadrants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .features import FEATURE_INDEX, MatchCandidate, pair_feature_matrix


def _feature(cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate], name: str) -> np.ndarray:
    return pair_feature_matrix(cc, mlo)[:, :, FEATURE_INDEX[name]]


@dataclass
class DepthBaseline:
    threshold: float = 0.5
    scale: float = 0.1
    name: str = "depth difference"

    def probabilities(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray:
        return np.nan_to_num(np.exp(-_feature(cc, mlo, "depth_abs_diff") / self.scale), nan=0.0)


@dataclass
class NippleDistanceBaseline:
    threshold: float = 0.5
    scale: float = 10.0  # mm
    name: str = "nipple-distance (arc) rule"

    def probabilities(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray:
        return np.nan_to_num(np.exp(-_feature(cc, mlo, "nipple_distance_abs_diff_mm") / self.scale), nan=0.0)


@dataclass
class RuleBaseline:
    threshold: float = 0.5
    scale: float = 10.0  # mm
    name: str = "arc rule + same type + compatible quadrants"

    def probabilities(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray:
        f = pair_feature_matrix(cc, mlo)
        if f.size == 0:
            return np.zeros(f.shape[:2])
        base = np.exp(-f[:, :, FEATURE_INDEX["nipple_distance_abs_diff_mm"]] / self.scale)
        gate = f[:, :, FEATURE_INDEX["same_type"]] * f[:, :, FEATURE_INDEX["quadrant_compatible_top"]]
        return np.nan_to_num(base * gate, nan=0.0)


BASELINES = (DepthBaseline, NippleDistanceBaseline, RuleBaseline)
