"""``mammodnn finetune``: continue training a detector on corrected annotations (the Slicer review's export).

::

    mammodnn finetune --model detector-r18-cpu --data corrections/corrections.json --out models/r18-ft \\
        [--iterations 500] [--lr-factor 0.1 | --lr 0.0005] [--config FILE|NAME] [--splits train] [--install]

The parent is a shipped or user model (a name, resolved through :mod:`MammoDNNLib.models.registry`: user cache,
then shipped models) or a model folder; every weight file's sha256 is verified before a byte is read. Training
is the detector's own loop (:func:`MammoDNNLib.training.detector.train_detector`), started from the parent's
weights: each ensemble member gets an iteration-0 checkpoint holding its parent member's weights and a fresh
optimizer, and the loop resumes from it. The architecture is always the parent's; only the training recipe
changes:

- learning rate = the parent's × ``--lr-factor`` (default 0.1), or ``--lr``. Starting from converged weights, the
  full rate would throw away much of what the parent learned on a few hundred corrected lesions (catastrophic
  forgetting); a tenth of it is the usual fine-tuning choice (e.g. the detectron2 / torchvision detection
  fine-tuning recipes) and is what ``benchmarks/finetune_eval.py`` measured;
- ``--iterations`` (default 500) with the parent's warm-up shortened to at most a tenth of them, its decay
  milestones (fractions) kept, semi-supervised training off;
- ``--config`` takes the ``training`` section of another config instead of the parent's (the rest is ignored:
  the weights fix the architecture).

The new model folder's ``manifest.json`` records, in ``training_data``, the parent (name, version, sha256 of its
manifest and of each weight file) under ``fine_tuned_from`` and the correction data (manifest path and sha256,
splits, studies, lesions by type, confirmed lesions) under ``corrections``. ``--install`` also imports it into
the user model cache, so the Slicer module and ``mammodnn analyze --model NAME`` find it by name.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_ITERATIONS = 500
DEFAULT_LR_FACTOR = 0.1


@dataclass
class FinetuneOptions:
    iterations: int = DEFAULT_ITERATIONS
    lr_factor: float = DEFAULT_LR_FACTOR
    lr: float | None = None  # absolute learning rate (overrides lr_factor)
    config: str | Path | None = None  # a config whose training section replaces the parent's
    splits: tuple[str, ...] = ("train",)
    name: str | None = None  # default: the parent's name
    version: str | None = None  # default: "<parent version>-ft-<YYYYMMDD>"
    seed: int = 0
    device: str | None = None
    cache: Path | None = None  # prepared-image cache (default OUT/cache)
    resume: bool = False
    progress: bool = True
    extra_training_data: dict[str, Any] = field(default_factory=dict)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a detector on corrected annotations (from the Slicer review)",
        description="Continue training a shipped or user detector model on a training manifest (typically the "
        "corrections exported from the MammoDNN review) at a lower learning rate, and save a new model version "
        "whose manifest records its parent and the correction data. Research use only.",
    )
    parser.add_argument(
        "--model", required=True, help="parent model: a name (user cache, then shipped) or folder"
    )
    parser.add_argument(
        "--data", required=True, metavar="MANIFEST", help="corrected annotations (manifest JSON)"
    )
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder of the new model")
    parser.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"training iterations (default {DEFAULT_ITERATIONS})",
    )
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument(
        "--lr-factor",
        type=float,
        default=DEFAULT_LR_FACTOR,
        help=f"learning rate = the parent's x this (default {DEFAULT_LR_FACTOR})",
    )
    rate.add_argument("--lr", type=float, help="learning rate (instead of --lr-factor)")
    parser.add_argument(
        "--config",
        help="JSON/YAML file or named config whose 'training' section replaces the "
        "parent's recipe (the architecture stays the parent's)",
    )
    parser.add_argument(
        "--splits", default="train", help="comma-separated manifest splits to train on (train)"
    )
    parser.add_argument("--name", help="name of the new model (default: the parent's)")
    parser.add_argument("--version", help="version of the new model (default: <parent version>-ft-<date>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--cache", help="cache of prepared images (default MODEL_DIR/cache)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted fine-tuning in MODEL_DIR"
    )
    parser.add_argument(
        "--install", action="store_true", help="also import the new model into the user cache"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the model summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = FinetuneOptions(
        iterations=args.iterations,
        lr_factor=args.lr_factor,
        lr=args.lr,
        config=args.config,
        splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
        name=args.name,
        version=args.version,
        seed=args.seed,
        device=args.device,
        cache=Path(args.cache) if args.cache else None,
        resume=args.resume,
        progress=not args.quiet,
    )
    info = finetune_detector(args.model, args.data, args.out, options)
    if info is None:  # not rank 0 under torchrun
        return 0
    installed = None
    if args.install:
        from ..models.registry import import_model

        installed = import_model(info.path)
    parent = info.training_data["fine_tuned_from"]
    summary = {
        "name": info.name,
        "version": info.version,
        "path": str(info.path),
        "parent": f"{parent['name']} {parent['version']}",
        "iterations": info.training_data["recipe"]["iterations"],
        "lr": info.training_data["recipe"]["lr"],
        "installed": None if installed is None else str(installed.path),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"fine-tuned {info.label} from {summary['parent']}: {info.path}")
        if installed is not None:
            print(f"installed as {installed.label} in {installed.path}")
    return 0


def finetune_config(parent_config: dict[str, Any], options: FinetuneOptions):
    """The parent's :class:`~MammoDNNLib.models.config.DetectorConfig` with the fine-tuning recipe."""
    from ..errors import MammoDNNError
    from ..models.config import DetectorConfig, load_config

    config = DetectorConfig.from_dict(parent_config)
    training = config.to_dict()["training"]
    if options.config is not None:
        training = load_config(options.config).to_dict()["training"]
    if options.iterations < 1:
        raise MammoDNNError(f"--iterations must be at least 1, got {options.iterations}")
    if options.lr is not None and not options.lr > 0:
        raise MammoDNNError(f"--lr must be positive, got {options.lr}")
    if options.lr is None and not options.lr_factor > 0:
        raise MammoDNNError(f"--lr-factor must be positive, got {options.lr_factor}")
    lr = float(options.lr) if options.lr is not None else float(training["lr"]) * float(options.lr_factor)
    training.update(
        lr=lr,
        max_iterations=int(options.iterations),
        warmup_iterations=min(int(training["warmup_iterations"]), max(options.iterations // 10, 0)),
        checkpoint_every=max(1, min(int(training["checkpoint_every"]), options.iterations)),
        semi_supervised={**training["semi_supervised"], "enabled": False},
    )
    return config.replace(training=training)


def finetune_detector(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    options: FinetuneOptions | None = None,
):
    """Fine-tune the detector ``model`` on the manifest ``data`` into the model folder ``out``; returns its
    :class:`~MammoDNNLib.models.registry.ModelInfo` (``None`` on ranks other than 0 under ``torchrun``)."""
    import numpy as np
    import torch

    from ..data.dataset import StudyDataset, StudyLoader
    from ..data.manifest import load_manifest
    from ..errors import InputError
    from ..models.network import FourViewFasterRCNN
    from ..models.registry import MANIFEST, load_state_dicts, resolve_model, sha256_file, verify_model
    from ..preprocess import PreprocessConfig
    from ..training.checkpoint import latest_checkpoint, save_checkpoint
    from ..training.detector import TrainOptions, train_detector
    from ..training.schedule import make_optimizer

    options = options or FinetuneOptions()
    out = Path(out)
    parent_folder = resolve_model(model)
    parent = verify_model(parent_folder)
    if parent.kind != "detector":
        raise InputError(parent_folder, f"is a {parent.kind} model; finetune works on detector models")
    data = Path(data)
    manifest = load_manifest(data)
    if (out / MANIFEST).is_file():
        raise InputError(out, "already holds a model; choose another --out")
    started = any(out.glob("checkpoints/member-*/checkpoint-*.json"))
    if started and not options.resume:
        raise InputError(
            out, "holds an interrupted fine-tuning; pass --resume to continue it or choose another --out"
        )
    config = finetune_config(parent.config, options)
    _warn_about_frozen_layers(config)

    loader = StudyLoader(PreprocessConfig(spacing_mm=config.spacing_mm), options.cache or out / "cache")
    dataset = StudyDataset(manifest, loader, splits=options.splits, augment=None, seed=options.seed)
    if not len(dataset.labelled_indices()):
        raise InputError(
            data,
            f"has no labelled studies in split(s) {', '.join(options.splits)} to fine-tune on (a partially "
            "reviewed study is exported unlabelled until its review is complete)",
        )
    skipped = len(manifest.filter(split=list(options.splits), labelled=False))
    if skipped:
        log.warning(
            "%s: %d partially reviewed (unlabelled) studies are left out of fine-tuning", data, skipped
        )

    members = len(parent.components)
    if not started:
        states = load_state_dicts(parent, verify=False)  # verified above
        for member, state in enumerate(states):
            torch.manual_seed(options.seed * 1000 + member)
            network = FourViewFasterRCNN(config, load_pretrained=False)
            network.load_state_dict(state, strict=True)
            rng = np.random.default_rng([options.seed, member, 0])
            save_checkpoint(
                out / "checkpoints" / f"member-{member}",
                0,
                network,
                make_optimizer(network, config.training),
                rng,
                None,
                {"member": member, "fine_tuned_from": f"{parent.name} {parent.version}"},
            )
    elif any(latest_checkpoint(out / "checkpoints" / f"member-{m}") is None for m in range(members)):
        raise InputError(
            out, "the interrupted fine-tuning has members without checkpoints; start again elsewhere"
        )

    parent_record = {
        "name": parent.name,
        "version": parent.version,
        "sha256": sha256_file(parent_folder / MANIFEST),
        "components": {c.file: c.sha256 for c in parent.components},
        "path": str(parent_folder.resolve()),
    }
    training_data = {
        **options.extra_training_data,
        "fine_tuned_from": parent_record,
        "corrections": _describe_data(data, manifest, options.splits),
        "recipe": {
            "lr": config.training.lr,
            "parent_lr": float(parent.config.get("training", {}).get("lr", float("nan"))),
            "lr_factor": None if options.lr is not None else options.lr_factor,
            "iterations": config.training.max_iterations,
            "warmup_iterations": config.training.warmup_iterations,
            "start": "parent weights (iteration-0 checkpoint per member)",
        },
    }
    train_options = TrainOptions(
        name=options.name or parent.name,
        version=options.version or f"{parent.version}-ft-{_dt.date.today():%Y%m%d}",
        partitions=members,
        partition_fraction=1.0,
        seed=options.seed,
        resume=True,  # start from the iteration-0 checkpoints holding the parent's weights
        device=options.device,
        progress=options.progress,
        description=f"{parent.name} {parent.version} fine-tuned on {data.name} by mammodnn finetune "
        f"({config.training.max_iterations} iterations, lr {config.training.lr:g}).",
        training_data=training_data,
    )
    return train_detector(dataset, config, out, train_options)


def _describe_data(path: Path, manifest, splits: tuple[str, ...]) -> dict[str, Any]:
    from ..models.registry import sha256_file

    used = manifest.filter(split=list(splits), labelled=True)
    types: Counter = Counter()
    confirmed = 0
    for study in used:
        for _, lesion in study.lesions:
            types[lesion.type] += 1
            confirmed += bool((lesion.extra.get("review") or {}).get("confirmed"))
    return {
        "manifest": str(path.resolve()),
        "sha256": sha256_file(path),
        "splits": list(splits),
        "studies": len(used),
        "lesions": dict(sorted(types.items())),
        "confirmed_lesions": confirmed,
        "sources": sorted({s.source for s in used}),
    }


def _warn_about_frozen_layers(config) -> None:
    """The training loop builds the network with ImageNet initialization when the file is local; without it, a
    parent that froze its first backbone stages trains every stage here."""
    from ..models.backbone import find_imagenet_weights

    if config.pretrained and config.trainable_layers < 5 and find_imagenet_weights(config) is None:
        log.warning(
            "the parent was initialized from ImageNet weights, which are not in the local torch hub cache: "
            "fine-tuning trains all backbone stages (the parent trained the last %d)",
            config.trainable_layers,
        )
