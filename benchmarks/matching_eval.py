"""Held-out CC-MLO matching: the LightGBM matcher beside the depth and nipple-distance baselines, on phantoms.

    python benchmarks/matching_eval.py                               # shipped matcher, 100 held-out phantoms
    python benchmarks/matching_eval.py --dense --landmarks estimated # denser lesions; preprocessing landmarks
    python benchmarks/matching_eval.py --inputs truth,detector --detector mammodnn-detector

Inputs: ``truth`` (ground-truth lesions), ``simulated`` (simulated detections, see docs/matching.md),
``detector`` (a real detector's output on the same phantoms; needs --detector). The phantoms come from
``--seed`` (a collection seed; the shipped matcher was trained on collection seed 0 and measured on 1000), so
they are never among the training phantoms. Prints pair precision / recall / F1 (and recall over the pairs whose
projections were both detected) for every matcher, and the median time to score one breast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.matching import Matcher
from MammoDNNLib.matching.evaluate import evaluate_on_phantoms
from MammoDNNLib.matching.train import phantom_seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mammodnn-matcher", help="matcher name or folder")
    parser.add_argument("--phantoms", type=int, default=100, help="held-out phantom studies (100)")
    parser.add_argument("--seed", type=int, default=1000, help="collection seed of the held-out phantoms (1000)")
    parser.add_argument("--inputs", default="truth,simulated", help="comma-separated: truth, simulated, detector")
    parser.add_argument("--detector", help="detector model (name or folder) for the 'detector' input")
    parser.add_argument("--dense", action="store_true", help="the denser training lesion mix instead of the default")
    parser.add_argument("--landmarks", choices=("truth", "estimated"), default="truth",
                        help="phantom landmarks, or the preprocessing's estimates (as in the pipeline)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    matcher = Matcher.load(args.model)
    trained = set(matcher.info.training_data.get("train_study_seeds", [])) | \
        set(matcher.info.training_data.get("validation_study_seeds", []))
    seeds = phantom_seeds(args.phantoms, args.seed)
    if trained & set(seeds):
        parser.error("these phantoms overlap the matcher's training phantoms; choose another --seed")
    detector = None
    inputs = [i.strip() for i in args.inputs.split(",") if i.strip()]
    if "detector" in inputs:
        if not args.detector:
            parser.error("the 'detector' input needs --detector")
        from MammoDNNLib.models.detector import Detector

        detector = Detector.load(args.detector)
    start = time.perf_counter()
    result = evaluate_on_phantoms(matcher, seeds, inputs, detector=detector, landmarks=args.landmarks,
                                  dense=args.dense)
    print(f"{matcher.info.label}, threshold {matcher.threshold:.2f}; {args.phantoms} held-out phantoms "
          f"(collection seed {args.seed}, lesions {'dense' if args.dense else 'default'}, landmarks "
          f"{args.landmarks}); breasts: {result.breasts}; {time.perf_counter() - start:.0f} s")
    print(result.table())
    print("median seconds to score one breast: " + ", ".join(
        f"{name} {seconds * 1e3:.2f} ms" for name, seconds in result.seconds_per_breast.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
