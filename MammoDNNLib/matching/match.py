"""Matching a study's findings: CC x MLO probabilities per breast, greedy pairs, and display numbers.

:func:`match_findings` is what the pipeline calls. For each breast with both views it measures every finding
(:func:`~MammoDNNLib.matching.features.make_candidate`), asks the matcher for the probability matrix, pairs
greedily above the matcher's threshold (:func:`~MammoDNNLib.matching.assign.greedy_assign`), and writes into the
findings:

* ``match_id`` / ``match_probability``: the partner in the other view and the pair's probability (None when
  single);
* ``number``: display numbers per breast — CC findings first in descending score, a matched MLO finding takes its
  partner's number, unmatched MLO findings continue the count in descending score;
* ``extra["matching"]``: the best candidate partner and its probability, also for findings left single.

A breast with one view only is numbered the same way, without matching, and its result carries the note
"R breast: MLO missing, matching not done" (the BI-RADS summary shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..findings import Finding
from ..vocabulary import LATERALITIES, view_key
from .assign import Match, display_numbers, greedy_assign
from .features import CandidateConfig, MatchCandidate, ViewContext, make_candidate
from .model import PairScorer

log = logging.getLogger(__name__)


@dataclass
class BreastMatching:
    """What matching did in one breast."""

    laterality: str
    done: bool  # both views present and matched
    cc_ids: list[str] = field(default_factory=list)
    mlo_ids: list[str] = field(default_factory=list)
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (len(cc_ids), len(mlo_ids))
    pairs: list[tuple[str, str, float]] = field(default_factory=list)  # (CC id, MLO id, probability)
    note: str | None = None


def _context(view: Any) -> ViewContext:
    return view if isinstance(view, ViewContext) else ViewContext.from_prepared(view)


def _config(matcher: PairScorer) -> CandidateConfig:
    return getattr(matcher, "candidate_config", None) or CandidateConfig()


def match_candidates(
    cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate], matcher: PairScorer
) -> tuple[np.ndarray, list[Match]]:
    """The probability matrix and the greedy pairs of one breast's candidates."""
    matrix = matcher.probabilities(cc, mlo) if cc and mlo else np.zeros((len(cc), len(mlo)))
    return matrix, greedy_assign(matrix, matcher.threshold)


def match_breast(
    cc_findings: Sequence[Finding],
    mlo_findings: Sequence[Finding],
    cc_view: Any,
    mlo_view: Any,
    matcher: PairScorer,
) -> BreastMatching:
    """Match one breast's CC and MLO findings (views: ``PreparedView`` or :class:`ViewContext`) and write the
    results into the findings."""
    config = _config(matcher)
    cc_context, mlo_context = _context(cc_view), _context(mlo_view)
    cc = [make_candidate(f, cc_context, config) for f in cc_findings]
    mlo = [make_candidate(f, mlo_context, config) for f in mlo_findings]
    matrix, matches = match_candidates(cc, mlo, matcher)
    laterality = cc_context.key.split("-")[0]
    _write(cc_findings, mlo_findings, matrix, matches)
    return BreastMatching(
        laterality=laterality, done=True, cc_ids=[f.id for f in cc_findings], mlo_ids=[f.id for f in mlo_findings],
        probabilities=matrix,
        pairs=[(cc_findings[m.cc].id, mlo_findings[m.mlo].id, m.probability) for m in matches],
    )


def _write(cc: Sequence[Finding], mlo: Sequence[Finding], matrix: np.ndarray, matches: list[Match]) -> None:
    for finding in (*cc, *mlo):
        finding.match_id = None
        finding.match_probability = None
        finding.extra.pop("matching", None)
    for m in matches:
        a, b = cc[m.cc], mlo[m.mlo]
        a.match_id, b.match_id = b.id, a.id
        a.match_probability = b.match_probability = float(m.probability)
    if matrix.size:
        for i, finding in enumerate(cc):
            j = int(np.argmax(matrix[i]))
            finding.extra["matching"] = {"best_candidate": mlo[j].id, "best_probability": float(matrix[i, j])}
        for j, finding in enumerate(mlo):
            i = int(np.argmax(matrix[:, j]))
            finding.extra["matching"] = {"best_candidate": cc[i].id, "best_probability": float(matrix[i, j])}
    cc_numbers, mlo_numbers = display_numbers([f.score for f in cc], [f.score for f in mlo], matches)
    for finding, number in zip(cc, cc_numbers):
        finding.number = number
    for finding, number in zip(mlo, mlo_numbers):
        finding.number = number


def match_findings(
    findings: Sequence[Finding], views: Mapping[str, Any], matcher: PairScorer
) -> dict[str, BreastMatching]:
    """Match every breast of a study in place (see the module docstring); ``views`` maps the study's view keys to
    their ``PreparedView`` (or :class:`ViewContext`). Returns what was done per breast ("R", "L")."""
    out: dict[str, BreastMatching] = {}
    for side in LATERALITIES:
        cc_key, mlo_key = view_key(side, "CC"), view_key(side, "MLO")
        cc = [f for f in findings if f.view_key == cc_key]
        mlo = [f for f in findings if f.view_key == mlo_key]
        if cc_key in views and mlo_key in views:
            out[side] = match_breast(cc, mlo, views[cc_key], views[mlo_key], matcher)
            continue
        present = [k for k in (cc_key, mlo_key) if k in views]
        if not present and not cc and not mlo:
            continue  # breast not imaged
        missing = "MLO" if cc_key in views else "CC" if mlo_key in views else "CC and MLO"
        note = f"{side} breast: {missing} missing, matching not done"
        _write(cc, mlo, np.zeros((len(cc), len(mlo))), [])
        log.info(note)
        out[side] = BreastMatching(side, False, [f.id for f in cc], [f.id for f in mlo], np.zeros((0, 0)), [], note)
    return out


def matching_notes(result: Mapping[str, BreastMatching]) -> dict[str, str | None]:
    """Per breast, the note for :func:`MammoDNNLib.birads.summarize` (``matching_notes=``)."""
    return {side: r.note for side, r in result.items()}
