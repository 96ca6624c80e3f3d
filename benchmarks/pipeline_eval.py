"""The whole pipeline on held-out phantoms: detection FROC per class, quadrant accuracy, depth error, CC-MLO
matching F1 and malignancy AUC on the detected lesions, and per-stage timings.

    python benchmarks/pipeline_eval.py [--model mammodnn] [--phantoms 30] [--seed 7300] [--size small]
        [--timing small:5,medium:3] [--no-tta] [--threads 1] [--json OUT]
    python benchmarks/pipeline_eval.py --choose-threshold [--seed 7200] ...   # the operating point, on
    validation
    python benchmarks/pipeline_eval.py --detector truth ...   # the stages after detection, on the true
    lesions

Phantoms: collection ``--seed`` (``study_seed(seed, k)``), two or three lesions in each breast (the phantom's
lesions, more of them per study). Collection 7300 is the pipeline's test set and 7200 its validation set (the
operating point is chosen there); no component model trains on either (their manifests list their seeds, and
this script refuses a collection seed a component lists). Figures (docs/pipeline.md):

* FROC (``MammoDNNLib.evaluation.froc``, hit = detection centre in the true box) of the detector's raw output
as
  the pipeline runs it (views prepared at the detector's spacing, TTA as asked), overall and per class, at
  0.25,
  0.5, 1 and 2 false positives per view (image), all lesion projections (occult ones included);
* at the system's operating point: sensitivity, false positives per view, and on the detected lesions the
  quadrant accuracy, depth MAE, matching precision / recall / F1 (``recall_detectable``: over the pairs whose
  two
  projections were found), malignancy AUC (DeLong CI);
* timings: median seconds per stage (``Report.timings``) for phantoms of each ``--timing`` size, on the CPU
with
  ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.phantom import PhantomConfig, generate_study, study_seed
from MammoDNNLib.phantom.config import LesionConfig

FPI = (0.25, 0.5, 1.0, 2.0)
DENSE = PhantomConfig(
    lesions=LesionConfig(
        normal_study_fraction=0.0,
        second_breast_probability=1.0,
        lesions_per_breast_weights={"2": 0.5, "3": 0.5},
    )
)


def _seeds_in(value, key: str = "") -> set[int]:
    """Integers under keys naming a seed, anywhere in a manifest's JSON."""
    if isinstance(value, dict):
        return set().union(*(_seeds_in(v, k) for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(_seeds_in(v, key) for v in value)) if value else set()
    if isinstance(value, int) and not isinstance(value, bool) and "seed" in key:
        return {value}
    return set()


def component_seeds(system) -> dict[str, list[int]]:
    """Collection and study seeds each component's manifest lists in its training data (best effort)."""
    out = {}
    for stage, ref in system.components.items():
        data = json.loads((ref.path / "manifest.json").read_text())
        out[stage] = sorted(_seeds_in(data.get("training_data", {})))
    return out


class TruthBoxes:
    """``--detector truth``: detections that are the phantom's visible lesion projections (true box and type,
    score 0.9), so the later stages are measured as if detection were perfect. Same interface as the
    detector."""

    def __init__(self, spacing_mm: float):
        self.spacing_mm = spacing_mm
        self.truth = None

    def predict(self, views, **_options):
        from MammoDNNLib.models.detector import Detection

        out = {}
        for key, view in views.items():
            out[key] = []
            for lesion in self.truth.lesions:
                projection = lesion.views.get(key)
                if projection is None or projection.visibility == "occult":
                    continue
                prepared = tuple(float(v) for v in view.transform.boxes_to_prepared([projection.box])[0])
                out[key].append(
                    Detection(key, lesion.type, 0.9, tuple(projection.box), prepared, {lesion.type: 0.9})
                )
        return out


def run(args) -> dict:
    import torch

    from MammoDNNLib.evaluation.froc import FrocConfig, froc
    from MammoDNNLib.pipeline import analyze, load_system
    from MammoDNNLib.pipeline.evaluate import (
        RecordingDetector,
        detection_f1_by_threshold,
        evaluate_report,
        froc_inputs,
        summarize,
    )
    from MammoDNNLib.pipeline.stages import LoadedModels, load_models

    torch.set_num_threads(args.threads)
    system = load_system(args.model)
    seeds = component_seeds(system)
    clash = [stage for stage, used in seeds.items() if args.seed in used]
    if clash:
        raise SystemExit(f"collection seed {args.seed} appears in the training data of {', '.join(clash)}")
    started = time.monotonic()
    loaded = load_models(system, "cpu")
    cold_load = time.monotonic() - started  # first load in this process (later analyses use the cache)
    truth_boxes = TruthBoxes(loaded.detector.spacing_mm) if args.detector == "truth" else None
    recorder = RecordingDetector(truth_boxes or loaded.detector)
    models = LoadedModels(recorder, loaded.localization, loaded.malignancy, loaded.matcher, loaded.birads)
    options = system.options
    if args.choose_threshold:
        options = options.replace(score_threshold=0.0)
    evaluations, lesions, detections, images, records = [], [], [], [], []
    for k in range(args.phantoms):
        phantom = generate_study(study_seed(args.seed, k), args.size, DENSE)
        if truth_boxes is not None:
            truth_boxes.truth = phantom.truth
        report = analyze(phantom.study, system=system, models=models, tta=args.tta, options=options)
        evaluations.append(evaluate_report(report, phantom.truth, f"s{k}"))
        les, det, img = froc_inputs(f"s{k}", phantom.truth, recorder.last, phantom.study.views)
        lesions += les
        detections += det
        images += img
        if args.choose_threshold:
            records.append((phantom.truth, recorder.last, recorder.views))
        print(
            f"phantom {k + 1}/{args.phantoms}: {len(report.findings)} findings "
            f"({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
        )
    result: dict = {
        "system": system.model_info(),
        "collection_seed": args.seed,
        "phantoms": args.phantoms,
        "size": args.size,
        "tta": args.tta,
        "detector": args.detector or "the system's",
        "component_seeds": seeds,
        "operating_point": options.score_threshold,
        "cold_load_seconds": round(cold_load, 2),
    }
    curve = froc(lesions, detections, images=images, config=FrocConfig(fpi=FPI, n_bootstrap=200))
    result["froc"] = {
        "all": {str(p.fpi): p.sensitivity for p in curve.points},
        **{kind: {str(p.fpi): p.sensitivity for p in sub.points} for kind, sub in curve.by_type.items()},
        "lesions": {kind: sub.n_lesions for kind, sub in curve.by_type.items()},
    }
    if args.choose_threshold:
        grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
        table = detection_f1_by_threshold(records, grid, system.options)
        best = max(table, key=lambda r: (round(r["f1"], 6), -abs(r["threshold"] - 0.5)))
        result["threshold_table"] = table
        result["chosen_threshold"] = best["threshold"]
    else:
        result["at_operating_point"] = summarize(evaluations)
    if args.timing:
        result["timings"] = timings(args, system, loaded)
    return result


def timings(args, system, loaded) -> dict:
    from MammoDNNLib.pipeline import analyze

    out = {}
    for item in args.timing.split(","):
        size, _, count = item.partition(":")
        runs = []
        for k in range(int(count or 3)):
            phantom = generate_study(study_seed(args.seed, 1000 + k), size, DENSE)
            runs.append(analyze(phantom.study, system=system, models=loaded, tta=args.tta).timings)
        out[size] = {stage: float(np.median([r[stage] for r in runs if stage in r])) for stage in runs[0]}
        out[size]["runs"] = len(runs)
    return out


def print_result(result: dict) -> None:
    print(
        f"\nsystem {result['system']['name']} {result['system']['version']} on {result['phantoms']} "
        f"{result['size']} phantoms of collection {result['collection_seed']} (TTA {result['tta']}, detector "
        f"{result['detector']})"
    )
    print("\nFROC sensitivity (raw detector output, hit = centre in the true box)")
    print(f"{'class':<14} {'lesions':>7} " + " ".join(f"{f:>6}" for f in FPI))
    for kind, row in result["froc"].items():
        if kind == "lesions":
            continue
        n = result["froc"]["lesions"].get(kind, sum(result["froc"]["lesions"].values()))
        print(f"{kind:<14} {n:>7} " + " ".join(f"{row[str(f)]:6.3f}" for f in FPI))
    if "threshold_table" in result:
        print("\noperating point on these (validation) phantoms")
        print(f"{'threshold':>9} {'precision':>9} {'sensitivity':>11} {'F1':>6} {'FP/view':>8}")
        for row in result["threshold_table"]:
            print(
                f"{row['threshold']:9.2f} {row['precision']:9.3f} {row['sensitivity']:11.3f} "
                f"{row['f1']:6.3f} {row['fp_per_view']:8.2f}"
            )
        print(f"chosen (highest F1): {result['chosen_threshold']}")
    if "at_operating_point" in result:
        m = result["at_operating_point"]
        pairs = m["matching"]
        auc = m["malignancy_auc"]
        print(
            f"\nat the operating point {result['operating_point']}: sensitivity {m['sensitivity']:.3f} "
            f"(visible lesions {m['sensitivity_visible']:.3f}), {m['false_positives_per_view']:.2f} FP/view, "
            f"type right {m['type_accuracy']:.3f}"
        )
        print(
            f"quadrant accuracy {m['quadrant_accuracy']:.3f} (n {m['quadrant_n']}), depth MAE "
            f"{m['depth_mae']:.3f} (median {m['depth_median_error']:.3f})"
        )
        print(
            f"matching: P {pairs['precision']:.3f} R {pairs['recall']:.3f} F1 {pairs['f1']:.3f} "
            f"R|det {pairs['recall_detectable']:.3f} ({pairs['tp'] + pairs['fn']} true pairs)"
        )
        if auc:
            print(
                f"malignancy AUC {auc['auc']:.3f} (95 % CI {auc['ci'][0]:.3f}-{auc['ci'][1]:.3f}; "
                f"n {auc['n']}, {auc['malignant']} malignant)"
            )
    print(f"\nloading the models (first analysis in a process): {result['cold_load_seconds']:.2f} s")
    for size, row in result.get("timings", {}).items():
        print(
            f"\nmedian seconds per stage, {size} phantoms ({row['runs']} runs): "
            + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k != "runs")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="system model (default: the shipped mammodnn)")
    parser.add_argument("--phantoms", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None, help="collection seed (7300 test; 7200 validation)")
    parser.add_argument("--size", default="small")
    parser.add_argument("--no-tta", dest="tta", action="store_false")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing", default="", help="e.g. small:5,medium:3")
    parser.add_argument(
        "--detector",
        choices=("truth",),
        help="'truth': the phantom's visible lesions as the detections (the later stages alone)",
    )
    parser.add_argument(
        "--choose-threshold",
        action="store_true",
        help="choose the operating point (highest detection F1) on these phantoms",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = 7200 if args.choose_threshold else 7300
    result = run(args)
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
