"""``mammodnn train matcher``: train the CC-MLO LightGBM matcher on phantom correspondences and measure it on
held-out phantoms.

    mammodnn train matcher --phantoms 240 --seed 0 --out models/mammodnn-matcher/0.1.0
    mammodnn train matcher --data phantoms/ --out DIR            # a phantom collection written by `mammodnn phantom`
    mammodnn train matcher --data train.json --out DIR           # a training manifest (CC/MLO lesion ids linked)
    mammodnn train matcher --phantoms 240 --detections-from mammodnn-detector --out DIR

The model folder holds ``model.txt`` (LightGBM text), ``manifest.json`` (sha256, feature names, threshold,
training data, held-out metrics) and ``MODEL_CARD.md``. Registered by :data:`MammoDNNLib.cli.train.TRAINERS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register_train(models: argparse._SubParsersAction) -> None:
    parser = models.add_parser(
        "matcher", help="train the CC-MLO lesion matcher (LightGBM) on phantom correspondences",
        description="Pairs of CC and MLO lesions of the same breast from phantom truth (positives: the same lesion "
        "id), augmented with simulated detections; LightGBM with early stopping on validation phantoms; the "
        "threshold maximizes the pair F1 on the validation phantoms; held-out phantoms (a disjoint seed) are "
        "measured at the end. See docs/matching.md.",
    )
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--phantoms", type=int, default=240, metavar="N",
                      help="phantom studies to generate in memory (default 240; the last quarter validates)")
    data.add_argument("--data", metavar="PATH",
                      help="a phantom collection folder (index.json) or study folder, or a training manifest")
    parser.add_argument("--seed", type=int, default=0, help="collection seed of the training phantoms (default 0)")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--detections-from", metavar="MODEL",
                        help="also train on this detector's detections on the training phantoms")
    parser.add_argument("--splits", default="train,val",
                        help="manifest splits: training, validation (default train,val)")
    parser.add_argument("--variants", type=int, default=3, help="simulated detection variants per study (3)")
    parser.add_argument("--landmark-jitter-mm", type=float, default=3.0,
                        help="SD of the landmark displacement in training (3 mm)")
    parser.add_argument("--default-lesions", action="store_true",
                        help="train on the phantom's default lesion mix instead of the denser training mix")
    parser.add_argument("--test-phantoms", type=int, default=100, metavar="M",
                        help="held-out phantoms measured after training (default 100; 0: none)")
    parser.add_argument("--test-seed", type=int, help="collection seed of the held-out phantoms (default seed+1000)")
    parser.add_argument("--name", default="mammodnn-matcher", help="model name in the manifest")
    parser.add_argument("--version", default="0.1.0", help="model version in the manifest")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=_train_matcher)


def _progress(quiet: bool, what: str):
    if quiet:
        return None
    start = time.perf_counter()

    def report(k: int, n: int, study_id: str) -> None:
        if k == n or k % 10 == 0:
            print(f"{what}: {k}/{n} studies ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    return report


def _train_matcher(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..matching.evaluate import evaluate_on_phantoms
    from ..matching.sources import is_phantom_source, manifest_samples, phantom_folders
    from ..matching.train import TrainConfig, phantom_seeds, train_matcher

    out = Path(args.out)
    if (out / "manifest.json").exists():
        raise InputError(out, "already holds a model; choose another --out")
    if args.phantoms < 2 and args.data is None:
        raise InputError(None, "--phantoms must be at least 2 (training and validation)")
    test_seed = args.seed + 1000 if args.test_seed is None else args.test_seed
    if args.data is None and test_seed == args.seed:
        raise InputError(None, "--test-seed must differ from --seed: held-out phantoms are never trained on")
    config = TrainConfig(phantoms=args.phantoms, seed=args.seed, detection_variants=args.variants,
                         landmark_jitter_mm=args.landmark_jitter_mm, dense_lesions=not args.default_lesions,
                         threads=args.threads)
    detector = None
    if args.detections_from:
        from ..models.detector import Detector

        detector = Detector.load(args.detections_from)
    progress = _progress(args.quiet, "training data")
    if args.data is not None and is_phantom_source(args.data):
        result = train_matcher(config, detector=detector, progress=progress,
                               phantom_folders=phantom_folders(args.data))
    elif args.data is not None:
        splits = [s.strip() for s in args.splits.split(",") if s.strip()]
        if len(splits) != 2:
            raise InputError(None, "--splits takes two manifest splits: training,validation")
        train = manifest_samples(args.data, [splits[0]], config.candidate, progress)
        valid = manifest_samples(args.data, [splits[1]], config.candidate, progress)
        if not train:
            raise InputError(args.data, f"no breast with both views and located lesions in split {splits[0]!r}")
        result = train_matcher(config, samples=(train, valid),
                               source=f"training manifest {Path(args.data).resolve()} splits {splits}")
    else:
        result = train_matcher(config, detector=detector, progress=progress)

    matcher = result.matcher
    metrics: dict = {"validation": result.validation}
    if args.test_phantoms > 0:
        seeds = phantom_seeds(args.test_phantoms, test_seed)
        trained = set(result.training_data.get("train_study_seeds", [])) | \
            set(result.training_data.get("validation_study_seeds", []))
        if trained & set(seeds):
            raise InputError(None, "the held-out phantoms overlap the training phantoms; choose another --test-seed")
        evaluation = evaluate_on_phantoms(matcher, seeds, progress=_progress(args.quiet, "held-out phantoms"),
                                          baseline_thresholds=result.baselines)
        metrics["heldout"] = evaluation.to_dict()
        heldout_failures = [f["seed"] for f in evaluation.generator_failures]
        metrics["heldout"]["collection_seed"] = test_seed
        table = evaluation.table()
    else:
        table, heldout_failures = "", []
    command = "mammodnn train matcher " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["train", "matcher"] else \
        f"mammodnn train matcher --phantoms {args.phantoms} --seed {args.seed} --out {args.out}"
    info = matcher.save(
        out, name=args.name, version=args.version, training_data=result.training_data, metrics=metrics,
        parameters=config.lightgbm_params(), baseline_thresholds=result.baselines,
        description="CC-MLO lesion matcher: LightGBM on pair features, greedy assignment above a threshold.",
        card=_model_card(args, result, table, command, heldout_failures),
    )
    summary = {"name": info.name, "version": info.version, "path": str(info.path), "threshold": matcher.threshold,
               "trees": matcher.booster.num_trees(), "metrics": metrics}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"trained {info.label}: {info.path} (threshold {matcher.threshold:.2f}, "
              f"{summary['trees']} trees)")
        if table:
            print(table)
    return 0


def _model_card(args: argparse.Namespace, result, table: str, command: str, heldout_failures: list[int]) -> str:
    from ..matching.features import FEATURE_NAMES

    td = result.training_data
    lines = [
        f"# {args.name} {args.version}", "",
        "Kind: matcher. CC-MLO lesion matching: the probability that a CC and an MLO finding of the same breast are "
        "the same lesion (LightGBM, binary), then greedy one-to-one pairing above the threshold.", "",
        "**Research use only; not a medical device.**", "",
        "## Data", "",
        f"- Source: {td.get('source')}.",
    ]
    if "collection_seed" in td:
        lines += [
            f"- Training phantoms: collection seed {td['collection_seed']}, {td['phantoms']} studies "
            f"({len(td['train_study_seeds'])} training, {len(td['validation_study_seeds'])} validation), size "
            f"{td['phantom_size']}, lesions {td['phantom_lesions']}.",
            f"- Phantom generator source sha256 `{td['phantom_source_sha256']}` (other generator versions make other "
            "images from the same seeds).",
        ]
    failures = td.get("generator_failures") or []
    if failures:
        lines.append(f"- Left out: {len(failures)} study seed(s) the phantom generator failed on: "
                     + ", ".join(f"{f['seed']} ({f['error'][:80]})" for f in failures) + ".")
    lines += [
        f"- Variants per study: ground truth + {result.training_data['config']['detection_variants']} simulated "
        "detector outputs (misses by visibility, jittered boxes, ellipse masks, wrong types, false positives); "
        f"landmarks jittered by {result.training_data['config']['landmark_jitter_mm']} mm.",
        f"- Pairs: {td['fit']['train_pairs']} training ({td['fit']['train_positives']} same-lesion), "
        f"{td['fit']['valid_pairs']} validation ({td['fit']['valid_positives']}); {td['fit']['trees']} trees "
        "(early stopping on validation log-loss).",
        f"- Threshold {result.matcher.threshold:.2f}: maximizes the pair F1 on the validation phantoms.", "",
        "## Features", "", ", ".join(f"`{n}`" for n in FEATURE_NAMES) + " (see docs/matching.md).", "",
    ]
    if table:
        lines += [
            "## Held-out phantoms", "",
            f"Collection seed {args.seed + 1000 if args.test_seed is None else args.test_seed}, "
            f"{args.test_phantoms} studies of the default phantom lesion mix, never used for training or "
            "thresholds. `truth`: ground-truth lesions as input; `simulated`: simulated detections. R|det: recall "
            "over the pairs whose two projections were both detected.", "", "```", table, "```", "",
        ]
        if heldout_failures:
            lines += [f"Held-out seeds the phantom generator failed on (left out): {heldout_failures}.", ""]
    lines += ["## Reproduce", "", "```", command, "```", ""]
    return "\n".join(lines)
