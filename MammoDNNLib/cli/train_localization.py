"""``mammodnn train localization``: train the lesion quadrant / depth network and write a registry model
folder.

Trains on phantom truth generated in memory (``--phantoms``, the default) or on a training manifest whose
lesions carry quadrant and depth (``--data``), validates on disjoint phantoms (or the manifest's ``val``
split), chooses there between the network, the geometric landmark estimate and their combination, optionally
measures held-out phantoms of another seed, and writes ``manifest.json`` + ``weights.safetensors`` +
``MODEL_CARD.md``. Progress bar (``--quiet`` hides it), a JSONL log per epoch and per-epoch checkpoints
(``--resume``) live in ``--work`` (default ``OUT/training``)::

    mammodnn train localization --out models/localization --phantoms 100 --size small --seed 1
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any, Callable

DEFAULT_HELDOUT_SEED = 20261124
HELDOUT_SECTIONS = (
    ("heldout_true_masks", "Held-out phantoms, true lesion masks"),
    ("heldout_perturbed_masks", "Held-out phantoms, detection-like (perturbed) masks"),
)  # metrics key, model-card title


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Data options shared by the localization and malignancy trainers."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="MANIFEST", help="train on a manifest's lesions instead of phantoms")
    data.add_argument("--splits", default="train", help="manifest splits to train on (default train)")
    data.add_argument("--val-splits", default="val", help="manifest splits to validate on (default val)")
    data.add_argument(
        "--phantoms",
        default="100",
        metavar="N[,N...]",
        help="training phantom studies per size (default 100)",
    )
    data.add_argument(
        "--size",
        default="small",
        metavar="SIZE[,SIZE...]",
        help="phantom size(s), one per --phantoms entry: small (0.5 mm; default), medium (0.3 mm), full",
    )
    data.add_argument(
        "--val-phantoms",
        type=int,
        default=30,
        metavar="N",
        help="validation phantom studies (after the training ones, same seed; default 30)",
    )
    data.add_argument(
        "--profile",
        choices=("dense", "default"),
        default="dense",
        help="phantom lesion mix of training and validation studies: dense (2-3 lesions in each "
        "breast; default) or default (the generator's mix); held-out studies use the default mix",
    )
    data.add_argument("--seed", type=int, default=1, help="phantom seed and training seed (default 1)")
    data.add_argument(
        "--spacing",
        type=float,
        default=0.4,
        metavar="MM",
        help="prepared pixel spacing of the training views (default 0.4, the CPU detector's)",
    )
    data.add_argument(
        "--heldout-phantoms",
        default=None,
        metavar="N[,N...]",
        help="also measure held-out phantoms (per size, seed --heldout-seed) into the manifest",
    )
    data.add_argument("--heldout-seed", type=int, default=DEFAULT_HELDOUT_SEED)
    data.add_argument(
        "--cache", metavar="DIR", help="lesion-set cache (default WORK/cache); share it between runs"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    run.add_argument("--work", metavar="DIR", help="log, checkpoints and cache (default MODEL_DIR/training)")
    run.add_argument("--epochs", type=int, default=30)
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--lr", type=float, default=2e-3)
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    run.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this wall time")
    run.add_argument("--resume", action="store_true", help="continue from the checkpoints in WORK")
    run.add_argument("--version", default="0.1.0", help="model version in the manifest")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")


def _counts(text: str | None, option: str) -> list[int]:
    from ..errors import MammoDNNError

    if text is None:
        return []
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise MammoDNNError(f"{option} takes comma-separated study counts, got {text!r}") from None
    if not values or min(values) < 1:
        raise MammoDNNError(f"{option} needs positive study counts, got {text!r}")
    return values


def _sizes(text: str, n: int) -> list[str]:
    from ..errors import MammoDNNError
    from ..phantom import SIZE_SPACING_MM

    sizes = [s.strip() for s in text.split(",") if s.strip()]
    if len(sizes) == 1 and n > 1:
        sizes = sizes * n
    if len(sizes) != n:
        raise MammoDNNError(f"--size lists {len(sizes)} sizes for {n} study counts")
    bad = [s for s in sizes if s not in SIZE_SPACING_MM]
    if bad:
        raise MammoDNNError(
            f"unknown phantom size(s) {', '.join(bad)}; expected {', '.join(SIZE_SPACING_MM)}"
        )
    return sizes


def work_folders(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(out, work, cache) folders; refuses to overwrite an earlier run unless resuming."""
    from ..errors import InputError

    out = Path(args.out)
    work = Path(args.work) if args.work else out / "training"
    cache = Path(args.cache) if args.cache else work / "cache"
    if not args.resume and ((out / "manifest.json").exists() or any((work / "checkpoints").glob("*.json"))):
        raise InputError(
            out, "holds an earlier training run; pass --resume to continue it or choose another --out"
        )
    if not args.resume and (work / "train-log.jsonl").exists():
        (work / "train-log.jsonl").unlink()
    work.mkdir(parents=True, exist_ok=True)
    return out, work, cache


def _progress_bar(args: argparse.Namespace, what: str):
    if args.quiet:
        return None
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=what, unit="study", dynamic_ncols=True)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()

    return update


def load_lesion_sets(args: argparse.Namespace, cache: Path):
    """(training, validation, held-out or None) lesion sets and the training-data record for the manifest."""
    from ..training.lesion_networks import (
        PhantomDataSpec,
        manifest_lesion_set,
        phantom_heldout_set,
        phantom_training_sets,
    )

    if args.data:
        splits = [s.strip() for s in args.splits.split(",") if s.strip()]
        val_splits = [s.strip() for s in args.val_splits.split(",") if s.strip()]
        train = manifest_lesion_set(args.data, splits, args.spacing, cache)
        val = manifest_lesion_set(args.data, val_splits, args.spacing, cache)
        data = {
            "source": "manifest",
            "manifest": str(Path(args.data).resolve()),
            "splits": splits,
            "validation_splits": val_splits,
            "spacing_mm": args.spacing,
        }
    else:
        counts = _counts(args.phantoms, "--phantoms")
        spec = PhantomDataSpec(
            tuple(counts),
            tuple(_sizes(args.size, len(counts))),
            args.val_phantoms,
            args.seed,
            args.spacing,
            args.profile,
        )
        train, val = phantom_training_sets(spec, cache, _progress_bar(args, "phantoms"))
        data = spec.to_dict()
    heldout = None
    if args.heldout_phantoms:
        counts = _counts(args.heldout_phantoms, "--heldout-phantoms")
        sizes = _sizes(args.size, len(counts))
        heldout = phantom_heldout_set(
            counts, sizes, args.heldout_seed, args.spacing, cache, _progress_bar(args, "held-out phantoms")
        )
        data["heldout"] = {"seed": args.heldout_seed, "sizes": sizes, "studies": counts}
    data["training_lesions"] = train.summary()
    data["validation_lesions"] = val.summary()
    return train, val, heldout, data


def command_line(args: argparse.Namespace, model: str) -> str:
    """The command that reproduces this run (options as given, defaults spelled out)."""
    parts = ["mammodnn", "train", model, "--out", str(args.out)]
    if args.data:
        parts += ["--data", str(args.data), "--splits", args.splits, "--val-splits", args.val_splits]
    else:
        parts += [
            "--phantoms",
            args.phantoms,
            "--size",
            args.size,
            "--val-phantoms",
            str(args.val_phantoms),
            "--profile",
            args.profile,
        ]
    parts += [
        "--seed",
        str(args.seed),
        "--spacing",
        f"{args.spacing:g}",
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        f"{args.lr:g}",
        "--threads",
        str(args.threads),
    ]
    if args.heldout_phantoms:
        parts += ["--heldout-phantoms", args.heldout_phantoms, "--heldout-seed", str(args.heldout_seed)]
    for name in ("morphology_weight", "calibration"):
        if getattr(args, name, None) is not None:
            parts += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join(parts)


def train_options(args: argparse.Namespace, work: Path):
    from ..training.lesion_networks import TrainOptions

    return TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        progress=not args.quiet,
        log_path=work / "train-log.jsonl",
        checkpoint_dir=work / "checkpoints",
        resume=args.resume,
        max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
    )


def run_figures(args: argparse.Namespace, result) -> dict[str, Any]:
    """The manifest's ``training`` figures of a lesion-network run."""
    return {
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
        "threads": args.threads,
    }


def write_model(
    args: argparse.Namespace,
    model_kind: str,
    save: Callable[..., Any],
    model,
    folders: tuple[Path, Path],
    data: dict[str, Any],
    metrics: dict[str, Any],
    card: Callable[[str], str],
    **summary: Any,
) -> int:
    """Write the model folder (``save``: the model's ``save_*_model``; ``card``: the model-card section for the
    reproducing command) into ``folders`` (out, work) and print the run's summary (with ``summary``)."""
    out, work = folders
    command = command_line(args, model_kind)
    data["command"] = command
    info = save(
        out,
        model.net,
        model.config,
        name=args.name,
        version=args.version,
        training_data=data,
        metrics=metrics,
        card_notes=card(command),
    )
    report = {
        "name": info.name,
        "version": info.version,
        "path": str(info.path),
        "log": str(work / "train-log.jsonl"),
        **summary,
    }
    print(json.dumps(report) if args.json else f"trained {info.label}: {info.path} (log {report['log']})")
    return 0


def reproduce_lines(command: str) -> list[str]:
    """The model card's closing section."""
    return [
        "## Reproduce",
        "",
        "```",
        command,
        "```",
        "",
        "Phantom truth only: figures on real mammograms are unknown. Research use only.",
    ]


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    parser = train_subparsers.add_parser(
        "localization",
        help="train the lesion quadrant / depth network",
        description="Train the localization network (quadrant per view position, depth 0 nipple .. 1 "
        "pectoralis) on phantom truth or a manifest, choose network / geometric / combined estimators on "
        "validation, and write a registry model folder (safetensors + manifest + model card).",
    )
    add_data_arguments(parser)
    parser.add_argument("--name", default="mammodnn-localization", help="model name in the manifest")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from ..models.localization import LocalizationConfig, save_localization_model
    from ..training.lesion_networks import evaluate_localization, train_localization

    out, work, cache = work_folders(args)
    train, val, heldout, data = load_lesion_sets(args, cache)
    config = LocalizationConfig(spacing_mm=args.spacing)
    result = train_localization(train, val, config, train_options(args, work))
    metrics: dict[str, Any] = {"validation_selection": result.selection, "training": run_figures(args, result)}
    if heldout is not None:
        metrics["heldout_true_masks"] = evaluate_localization(result.model, heldout)
        metrics["heldout_perturbed_masks"] = evaluate_localization(
            result.model, heldout, perturb_seed=args.seed
        )
    return write_model(
        args,
        "localization",
        save_localization_model,
        result.model,
        (out, work),
        data,
        metrics,
        lambda command: localization_card(metrics, data, command),
        estimators=metrics["validation_selection"].get("chosen"),
        heldout={k: metrics[k] for k in ("heldout_true_masks",) if k in metrics},
    )


def localization_card(metrics: dict[str, Any], data: dict[str, Any], command: str) -> str:
    """Readable model-card section: what the figures are, the held-out tables, how to reproduce."""
    lines = ["## Summary", ""]
    selection = metrics.get("validation_selection", {})
    chosen = selection.get("chosen", {})
    lines += [
        f"Default estimators (chosen on validation phantoms): quadrant **{chosen.get('quadrant')}**, depth "
        f"**{chosen.get('depth')}**; combined depth weights "
        f"{json.dumps(chosen.get('depth_blend'))}, quadrant beta "
        f"{json.dumps(chosen.get('quadrant_geometric_weight'))}.",
        "",
    ]
    for key, title in HELDOUT_SECTIONS:
        figures = metrics.get(key)
        if not figures:
            continue
        lines += [
            f"### {title}",
            "",
            "| view | n | quadrant accuracy: network | geometric | combined | configured |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for view, q in figures["quadrant_accuracy"].items():
            lines.append(
                f"| {view} | {q['n']} | {q['network']} | {q.get('geometric', '–')} | "
                f"{q.get('combined', '–')} | {q['configured']} |"
            )
        lines += [
            "",
            "| view | n | depth MAE: network | geometric | combined | configured |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for view, d in figures["depth_mae"].items():
            lines.append(
                f"| {view} | {d['n']} | {d['network']} | {d.get('geometric', '–')} | "
                f"{d.get('combined', '–')} | {d['configured']} |"
            )
        lines.append("")
    training = metrics.get("training", {})
    lines += [
        "## Training",
        "",
        f"Epochs run {training.get('epochs_run')}, best (validation) epoch {training.get('best_epoch')}, "
        f"{training.get('seconds')} s on {training.get('threads')} CPU thread(s).",
        "",
        *reproduce_lines(command),
    ]
    return "\n".join(lines)
