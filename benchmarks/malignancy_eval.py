"""Held-out evaluation of the malignancy model, and the multi-task gain measured honestly.

Two parts:

1. ``--model PATH`` (default: the shipped model): AUC with its DeLong CI, AUC per finding type, calibration
   before/after (ECE, Brier), morphology accuracy, on the held-out phantoms' true and detection-like masks,
   and CPU milliseconds per lesion.
2. ``--gain SEEDS`` (e.g. ``1,2,3``): for each training seed, trains the multi-task network (malignancy +
   morphology) and the single-task baseline (the same network, data, epochs and seed, morphology weight 0) on
   the same training phantoms, evaluates both on the same held-out lesions, and reports per seed the two AUCs
   and the paired DeLong test, then the mean ± sd over seeds of each AUC and of their difference. Whatever the
   sign, it is reported.

Run::

    python benchmarks/malignancy_eval.py [--model PATH] [--gain 1,2,3] [--epochs 20] [--json RESULT.json]

Training data are the CLI's defaults (phantom seed 1: 100 small dense studies, 30 validation studies);
held-out phantoms are 60 small studies of seed 20261124 with the generator's default lesion mix.
Phantom lesion sets are cached (``--cache``), trained models kept in ``--work`` (a rerun reuses them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lesion_common import SHIPPED_MODELS, add_heldout_arguments, heldout_lesions, latest_model, write_result

DEFAULT_MODEL = SHIPPED_MODELS / "mammodnn-malignancy"


def _timing(model, lesions, n: int) -> dict:
    from MammoDNNLib.training.lesion_networks import _Float32View

    records = lesions.for_malignancy().records[:n]
    per_lesion = []
    for r in records:
        view = _Float32View(lesions.view_of(r))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.predict(view, r.mask, r.type)
            times.append(time.perf_counter() - start)
        per_lesion.append(statistics.median(times))
    return {"lesions": len(records), "predict_ms_median": round(1000 * statistics.median(per_lesion), 2)}


def evaluate_model(args) -> dict:
    from MammoDNNLib.models.malignancy import MalignancyModel
    from MammoDNNLib.training.lesion_networks import evaluate_malignancy

    model = MalignancyModel.load(latest_model(args.model))
    lesions = heldout_lesions(args, model.spacing_mm)
    out = {"model": str(model.info.path), "heldout": lesions.source, "lesions": lesions.summary()}
    for key, seed in (("true_masks", None), ("perturbed_masks", args.perturb_seed)):
        figures = evaluate_malignancy(model, lesions, perturb_seed=seed)
        figures.pop("scores")
        out[key] = figures
    if args.timing_lesions:
        out["timing"] = _timing(model, lesions, args.timing_lesions)
    return out


def _train_or_load(args, train, val, seed: int, multitask: bool):
    """A trained model of this seed and variant (reused from ``--work`` when already there)."""
    from MammoDNNLib.models.malignancy import MalignancyConfig, MalignancyModel, save_malignancy_model
    from MammoDNNLib.training.lesion_networks import TrainOptions, train_malignancy

    folder = args.work / f"seed-{seed}-{'multi' if multitask else 'single'}"
    if (folder / "manifest.json").is_file():
        metrics = json.loads((folder / "manifest.json").read_text())["metrics"]
        training = metrics.get("training", metrics)  # a model made by `mammodnn train malignancy` nests them
        return MalignancyModel.load(folder), {
            "best_epoch": training["best_epoch"],
            "seconds": training["seconds"],
        }
    config = MalignancyConfig(spacing_mm=args.spacing, morphology_weight=1.0 if multitask else 0.0)
    options = TrainOptions(
        epochs=args.epochs,
        seed=seed,
        threads=args.threads,
        progress=not args.quiet,
        log_path=folder / "train-log.jsonl",
        checkpoint_dir=folder / "checkpoints",
        resume=True,
    )
    result = train_malignancy(train, val, config, options)
    metrics = {
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
        "calibration": result.calibration,
    }
    save_malignancy_model(
        folder,
        result.model.net,
        result.model.config,
        version=f"0.0.{seed}",
        name="bench-malignancy-" + ("multi" if multitask else "single"),
        metrics=metrics,
    )
    return result.model, metrics


def _sd(values: list[float]) -> float | None:
    return round(statistics.stdev(values), 4) if len(values) > 1 else None


def multitask_gain(args) -> dict:
    import numpy as np

    from MammoDNNLib.evaluation.roc import delong_test
    from MammoDNNLib.training.lesion_networks import (
        PhantomDataSpec,
        evaluate_malignancy,
        phantom_training_sets,
    )

    spec = PhantomDataSpec(
        tuple(int(v) for v in args.phantoms.split(",")),
        tuple(args.size.split(",")),
        args.val_phantoms,
        args.data_seed,
        args.spacing,
        args.profile,
    )
    train, val = phantom_training_sets(spec, args.cache)
    heldout = heldout_lesions(args, args.spacing)
    seeds = [int(v) for v in args.gain.split(",")]
    per_seed = []
    for seed in seeds:
        entry: dict = {"seed": seed}
        scores = {}
        for multitask in (True, False):
            name = "multi" if multitask else "single"
            model, metrics = _train_or_load(args, train, val, seed, multitask)
            entry[f"{name}_training"] = {"best_epoch": metrics["best_epoch"], "seconds": metrics["seconds"]}
            for masks, perturb in (("true", None), ("perturbed", args.perturb_seed)):
                figures = evaluate_malignancy(model, heldout, perturb_seed=perturb)
                scores[(name, masks)] = figures.pop("scores")
                entry[f"{name}_{masks}"] = {
                    "auc": figures["auc"],
                    "auc_per_type": figures["auc_per_type"],
                    "calibration": figures["calibration"],
                    "morphology_accuracy": figures["morphology_accuracy"],
                }
        for masks in ("true", "perturbed"):
            multi, single = scores[("multi", masks)], scores[("single", masks)]
            assert multi["truth"] == single["truth"]
            test = delong_test(
                np.array(multi["truth"]),
                np.array(multi["logit"]),
                np.array(single["logit"]),
                names=("multi-task", "single-task"),
            )
            entry[f"delong_{masks}"] = test.to_dict()
            for kind in sorted(set(multi["types"])):
                sel = np.array([t == kind for t in multi["types"]])
                truth = np.array(multi["truth"])[sel]
                if len(set(truth.tolist())) == 2:
                    per_type = delong_test(
                        truth,
                        np.array(multi["logit"])[sel],
                        np.array(single["logit"])[sel],
                        names=("multi-task", "single-task"),
                    )
                    entry.setdefault(f"delong_{masks}_per_type", {})[kind] = {
                        "difference": round(per_type.difference, 4),
                        "p": round(per_type.p, 4),
                        "n": int(sel.sum()),
                    }
        per_seed.append(entry)
        print(
            f"seed {seed}: AUC multi {entry['multi_true']['auc']['auc']} "
            f"single {entry['single_true']['auc']['auc']} "
            f"(true masks; DeLong p {entry['delong_true']['p']:.3g}); perturbed multi "
            f"{entry['multi_perturbed']['auc']['auc']} single {entry['single_perturbed']['auc']['auc']}",
            flush=True,
        )
    summary = {}
    for masks in ("true", "perturbed"):
        multi = [e[f"multi_{masks}"]["auc"]["auc"] for e in per_seed]
        single = [e[f"single_{masks}"]["auc"]["auc"] for e in per_seed]
        diff = [a - b for a, b in zip(multi, single)]
        summary[masks] = {
            "multi_auc_mean": round(statistics.mean(multi), 4),
            "multi_auc_sd": _sd(multi),
            "single_auc_mean": round(statistics.mean(single), 4),
            "single_auc_sd": _sd(single),
            "difference_mean": round(statistics.mean(diff), 4),
            "difference_sd": _sd(diff),
            "seeds_multi_better": sum(d > 0 for d in diff),
            "seeds": len(diff),
            "delong_p_per_seed": [round(e[f"delong_{masks}"]["p"], 4) for e in per_seed],
        }
    return {
        "training_data": spec.to_dict(),
        "training_lesions": train.summary(),
        "heldout": heldout.source,
        "heldout_lesions": heldout.summary(),
        "epochs": args.epochs,
        "per_seed": per_seed,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="model to evaluate (default: shipped)"
    )
    parser.add_argument("--skip-model", action="store_true", help="only the multi-task gain experiment")
    parser.add_argument(
        "--gain", metavar="SEEDS", help="training seeds of the multi-task gain experiment, e.g. 1,2,3"
    )
    parser.add_argument(
        "--epochs", type=int, default=20, help="epochs of every gain-experiment run (default 20)"
    )
    parser.add_argument("--phantoms", default="100")
    parser.add_argument("--val-phantoms", type=int, default=30)
    parser.add_argument("--profile", default="dense")
    parser.add_argument("--data-seed", type=int, default=1)
    parser.add_argument("--spacing", type=float, default=0.4)
    add_heldout_arguments(parser)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "mammodnn-malignancy-bench"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    result: dict = {}
    if not args.skip_model:
        result["model"] = evaluate_model(args)
        for key in ("true_masks", "perturbed_masks"):
            f = result["model"][key]
            print(
                f"{key}: AUC {f['auc']['auc']} CI {f['auc']['ci']} n {f['n']} ({f['malignant']} malignant); "
                "per type "
                + ", ".join(f"{k} {v.get('auc')}" for k, v in f["auc_per_type"].items())
                + f"; ECE {f['calibration']['before']['ece']} -> {f['calibration']['after']['ece']}, Brier "
                f"{f['calibration']['before']['brier']} -> {f['calibration']['after']['brier']}"
            )
        if "timing" in result["model"]:
            print(
                f"CPU ({args.threads} thread): {result['model']['timing']['predict_ms_median']} ms per "
                "lesion (median)"
            )
    if args.gain:
        result["multitask_gain"] = multitask_gain(args)
        for masks, s in result["multitask_gain"]["summary"].items():
            print(
                f"{masks} masks over {s['seeds']} seeds: multi {s['multi_auc_mean']} ± {s['multi_auc_sd']}, "
                "single "
                f"{s['single_auc_mean']} ± {s['single_auc_sd']}, difference {s['difference_mean']} ± "
                f"{s['difference_sd']} (multi better in {s['seeds_multi_better']}); DeLong p per seed "
                f"{s['delong_p_per_seed']}"
            )
    write_result(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
