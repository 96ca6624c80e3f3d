"""Held-out evaluation of a matcher (and the baselines) on phantoms never used for training or thresholds.

Inputs, per held-out phantom (study seeds from a collection seed disjoint from the training one):

* ``truth``: the ground-truth lesions (true boxes and masks, score 1);
* ``simulated``: simulated detections (:class:`~MammoDNNLib.matching.train.DetectionSimulation`: misses by
  visibility, jittered boxes, masks replaced by ellipses for half of them, wrong types, false positives);
* ``detector``: a real detector's output (``detector.predict`` on the prepared views), each detection labelled
  with the true lesion it overlaps.

Landmarks are the phantom's true ones (no jitter) or, with ``landmarks="estimated"``, the preprocessing's.
Scores are pair precision / recall / F1 (:mod:`.metrics`) summed over every breast with both views.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import PairMetrics
from .model import PairScorer
from .train import BreastSample, DetectionSimulation, dense_phantom_config, phantom_samples, sample_metrics

log = logging.getLogger(__name__)

INPUTS = ("truth", "simulated", "detector")


@dataclass
class Evaluation:
    seeds: list[int]
    inputs: list[str]
    landmarks: str
    dense: bool
    metrics: dict[str, dict[str, PairMetrics]] = field(default_factory=dict)  # scorer -> input -> metrics
    breasts: dict[str, int] = field(default_factory=dict)  # input -> breasts evaluated
    seconds_per_breast: dict[str, float] = field(default_factory=dict)  # scorer -> median matching time
    generator_failures: list[dict[str, Any]] = field(default_factory=list)  # seeds the phantom could not make

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_seeds": [int(s) for s in self.seeds], "inputs": self.inputs, "landmarks": self.landmarks,
            "phantom_lesions": "dense" if self.dense else "default", "breasts": self.breasts,
            "metrics": {name: {inp: m.to_dict() for inp, m in by.items()} for name, by in self.metrics.items()},
            "seconds_per_breast": self.seconds_per_breast,
            "generator_failures": self.generator_failures,
        }

    def table(self) -> str:
        lines = [f"{'matcher':<44} {'input':<10} {'pairs':>5} {'P':>6} {'R':>6} {'F1':>6} {'R|det':>6}"]
        for name, by in self.metrics.items():
            for inp, m in by.items():
                lines.append(f"{name:<44} {inp:<10} {m.tp + m.fn:>5} {m.precision:>6.3f} {m.recall:>6.3f} "
                             f"{m.f1:>6.3f} {m.recall_detectable:>6.3f}")
        return "\n".join(lines)


def heldout_samples(
    seeds: Sequence[int],
    inputs: Sequence[str] = ("truth", "simulated"),
    *,
    detector: Any = None,
    landmarks: str = "truth",
    dense: bool = False,
    simulation: DetectionSimulation | None = None,
    candidate_config: Any = None,
    size: str = "small",
    rng_seed: int = 12345,
    progress: Any = None,
    failures: list[dict[str, Any]] | None = None,
) -> dict[str, list[BreastSample]]:
    """Breast samples of the held-out phantoms, grouped by input kind."""
    from ..phantom import generate_study

    unknown = [i for i in inputs if i not in INPUTS]
    if unknown:
        raise ValueError(f"unknown evaluation input(s) {unknown}; expected {', '.join(INPUTS)}")
    if "detector" in inputs and detector is None:
        raise ValueError("the 'detector' input needs a detector")
    phantom_config = dense_phantom_config() if dense else None
    out: dict[str, list[BreastSample]] = {i: [] for i in inputs}
    for k, seed in enumerate(seeds):
        try:
            phantom = generate_study(int(seed), size, phantom_config)
        except Exception as exc:  # the generator's bug: report it, leave the study out, say so in the result
            log.warning("held-out phantom seed %d could not be generated (%s: %s); left out", seed,
                        type(exc).__name__, exc)
            if failures is not None:
                failures.append({"seed": int(seed), "error": f"{type(exc).__name__}: {exc}"})
            continue
        rng = np.random.default_rng(np.random.SeedSequence([int(rng_seed), int(seed) % (2**63)]))
        samples = phantom_samples(
            phantom, rng=rng, detection_variants=1 if "simulated" in inputs else 0,
            include_truth="truth" in inputs, simulation=simulation, landmark_jitter_mm=0.0,
            config=candidate_config, detector=detector if "detector" in inputs else None, landmarks=landmarks,
        )
        for s in samples:
            kind = "simulated" if s.variant.startswith("simulated") else s.variant
            out[kind].append(s)
        if progress is not None:
            progress(k + 1, len(seeds), phantom.truth.study_id)
    return out


def evaluate(
    scorers: Mapping[str, PairScorer],
    samples: Mapping[str, Sequence[BreastSample]],
    *,
    seeds: Sequence[int] = (),
    landmarks: str = "truth",
    dense: bool = False,
) -> Evaluation:
    """Pair metrics of each scorer (at its own threshold) on each input's samples."""
    result = Evaluation(list(seeds), list(samples), landmarks, dense)
    for inp, items in samples.items():
        result.breasts[inp] = len(items)
    for name, scorer in scorers.items():
        result.metrics[name] = {inp: sample_metrics(scorer, items) for inp, items in samples.items()}
        times = []
        for items in samples.values():
            for s in items[:50]:
                if s.cc and s.mlo:
                    t0 = time.perf_counter()
                    scorer.probabilities(s.cc, s.mlo)
                    times.append(time.perf_counter() - t0)
        result.seconds_per_breast[name] = float(np.median(times)) if times else 0.0
    return result


def scorers_for(matcher: Any, baseline_thresholds: Mapping[str, float] | None = None) -> dict[str, PairScorer]:
    """The matcher and the baselines at ``baseline_thresholds`` (default: those stored in the matcher's manifest,
    chosen on its validation phantoms)."""
    from .baselines import BASELINES

    thresholds = dict(baseline_thresholds or {})
    if baseline_thresholds is None and getattr(matcher, "info", None) is not None:
        thresholds = dict(matcher.info.config.get("baseline_thresholds", {}))
    scorers: dict[str, PairScorer] = {"LightGBM matcher": matcher}
    for cls in BASELINES:
        baseline = cls()
        if baseline.name in thresholds:
            baseline.threshold = float(thresholds[baseline.name])
        scorers[baseline.name] = baseline
    return scorers


def evaluate_on_phantoms(
    matcher: Any,
    seeds: Sequence[int],
    inputs: Sequence[str] = ("truth", "simulated"),
    *,
    detector: Any = None,
    landmarks: str = "truth",
    dense: bool = False,
    progress: Any = None,
    baseline_thresholds: Mapping[str, float] | None = None,
) -> Evaluation:
    """Generate the held-out phantoms and evaluate ``matcher`` and the baselines on them."""
    failures: list[dict[str, Any]] = []
    samples = heldout_samples(seeds, inputs, detector=detector, landmarks=landmarks, dense=dense,
                              candidate_config=getattr(matcher, "candidate_config", None), progress=progress,
                              failures=failures)
    result = evaluate(scorers_for(matcher, baseline_thresholds), samples, seeds=seeds, landmarks=landmarks,
                      dense=dense)
    result.generator_failures = failures
    return result
