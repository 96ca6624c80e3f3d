"""``mammodnn train malignancy``: train the malignancy + morphology network, calibrate it, write a model
folder.

Same data options as ``mammodnn train localization`` (phantoms by default, or ``--data MANIFEST``). The
calibrator (Platt or isotonic, or none) is fitted on the validation lesions and stored in the manifest;
``--morphology-weight 0`` trains the single-task baseline (the same network and budget, malignancy head
only)::

    mammodnn train malignancy --out models/malignancy --phantoms 100 --size small --seed 1
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .train_localization import (
    HELDOUT_SECTIONS,
    add_data_arguments,
    load_lesion_sets,
    reproduce_lines,
    run_figures,
    train_options,
    work_folders,
    write_model,
)


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    parser = train_subparsers.add_parser(
        "malignancy",
        help="train the lesion malignancy + morphology network (calibrated)",
        description="Train the multi-task malignancy / morphology network on phantom truth or a manifest, "
        "fit the probability calibration on validation lesions, and write a registry model folder "
        "(safetensors + manifest with the calibrator + model card).",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--morphology-weight",
        type=float,
        default=1.0,
        help="weight of the morphology losses (0 = single-task malignancy baseline; default 1)",
    )
    parser.add_argument(
        "--calibration",
        choices=("auto", "identity", "platt", "isotonic"),
        default="auto",
        help="calibrator (default auto: the lowest cross-validated log loss on validation)",
    )
    parser.add_argument("--name", default="mammodnn-malignancy", help="model name in the manifest")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from ..models.malignancy import MalignancyConfig, save_malignancy_model
    from ..training.lesion_networks import evaluate_malignancy, train_malignancy

    out, work, cache = work_folders(args)
    train, val, heldout, data = load_lesion_sets(args, cache)
    config = MalignancyConfig(spacing_mm=args.spacing, morphology_weight=args.morphology_weight)
    result = train_malignancy(
        train,
        val,
        config,
        train_options(args, work),
        calibration_method=None if args.calibration == "auto" else args.calibration,
    )
    metrics: dict[str, Any] = {
        "validation_calibration": result.calibration,
        "training": {**run_figures(args, result), "multitask": result.model.config.multitask},
    }
    summary: dict[str, Any] = {"calibration": result.model.config.calibration["method"]}
    if heldout is not None:
        for key, seed in (("heldout_true_masks", None), ("heldout_perturbed_masks", args.seed)):
            figures = evaluate_malignancy(result.model, heldout, perturb_seed=seed)
            figures.pop("scores")
            metrics[key] = figures
        summary["heldout_auc"] = metrics["heldout_true_masks"]["auc"]
    return write_model(
        args,
        "malignancy",
        save_malignancy_model,
        result.model,
        (out, work),
        data,
        metrics,
        lambda command: malignancy_card(metrics, command),
        **summary,
    )


def malignancy_card(metrics: dict[str, Any], command: str, extra: str = "") -> str:
    """Readable model-card section: held-out AUC, calibration, morphology, training and reproduction."""
    lines = ["## Summary", ""]
    calibration = metrics.get("validation_calibration", {})
    lines += [
        f"Calibrator: **{calibration.get('method')}**, fitted on {calibration.get('n')} validation lesion "
        f"views (true and detection-like masks); cross-validated log loss per method "
        f"{json.dumps(calibration.get('cross_validated_log_loss'))}.",
        "",
    ]
    for key, title in HELDOUT_SECTIONS:
        figures = metrics.get(key)
        if not figures:
            continue
        auc = figures["auc"]
        lines += [
            f"### {title}",
            "",
            f"AUC {auc['auc']} (95 % CI {auc['ci'][0]}–{auc['ci'][1]}, DeLong) on {figures['n']} lesion "
            f"views ({figures['malignant']} malignant).",
            "",
            "| type | n | malignant | AUC |",
            "| --- | --- | --- | --- |",
        ]
        for kind, entry in figures["auc_per_type"].items():
            lines.append(f"| {kind} | {entry['n']} | {entry['malignant']} | {entry.get('auc')} |")
        cal = figures["calibration"]
        lines += [
            "",
            f"Calibration ({cal['method']}): ECE {cal['before']['ece']} → {cal['after']['ece']}, "
            f"Brier {cal['before']['brier']} → {cal['after']['brier']} (10 equal-width bins).",
            "",
        ]
        if figures.get("morphology_accuracy"):
            lines += [
                "| morphology group | n | accuracy | majority-class accuracy |",
                "| --- | --- | --- | --- |",
            ]
            for group, entry in figures["morphology_accuracy"].items():
                lines.append(
                    f"| {group} | {entry['n']} | {entry['accuracy']} | {entry['majority_class_accuracy']} |"
                )
            lines.append("")
    training = metrics.get("training", {})
    lines += [
        "## Training",
        "",
        f"{'Multi-task (malignancy + morphology)' if training.get('multitask') else 'Single-task'}; "
        "epochs run "
        f"{training.get('epochs_run')}, best (validation AUC) epoch {training.get('best_epoch')}, "
        f"{training.get('seconds')} s on {training.get('threads')} CPU thread(s).",
        "",
    ]
    if extra:
        lines += [extra, ""]
    return "\n".join(lines + reproduce_lines(command))
