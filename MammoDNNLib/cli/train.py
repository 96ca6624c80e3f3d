"""``mammodnn train <model>``: training commands, one subcommand per trainable model.

``train detector`` lives here. Other models add their subcommand without touching this file's code: list a
``"module:function"`` in :data:`TRAINERS` whose function takes the ``train`` subparsers object and adds its
parser (e.g. ``"MammoDNNLib.cli.train_localization:register_train"``); entries whose module is not present in
this installation are skipped.

The same command runs on one CPU, one GPU, or several GPUs::

    mammodnn train detector --data train.json --out models/detector --config detector-r18-cpu
    torchrun --nproc_per_node 4 -m MammoDNNLib train detector --data train.json --out models/detector
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TRAINERS: tuple[str, ...] = (
    f"{__name__}:register_detector",
    "MammoDNNLib.cli.train_localization:register_train",
    "MammoDNNLib.cli.train_malignancy:register_train",
    "MammoDNNLib.cli.train_matcher:register_train",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (detector, ...)")
    models = parser.add_subparsers(dest="train_model", metavar="MODEL")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    for target in TRAINERS:
        module_name, _, function = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        getattr(module, function)(models)


def register_detector(models: argparse._SubParsersAction) -> None:
    parser = models.add_parser(
        "detector",
        help="train the four-view lesion detector",
        description="Momentum SGD with warm-up and decay on the studies of a training manifest; resumable "
        "checkpoints, a JSONL loss log and a registry model folder (safetensors + manifest) in --out.",
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", metavar="MANIFEST", help="training manifest (mammodnn-manifest JSON)")
    data.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="train on N synthetic studies instead (a smoke test of the whole loop)",
    )
    parser.add_argument(
        "--out", required=True, metavar="MODEL_DIR", help="model folder to write (and resume)"
    )
    parser.add_argument(
        "--config",
        default="detector-r50-study",
        help="JSON/YAML file or named config (default detector-r50-study)",
    )
    parser.add_argument("--splits", default="train", help="comma-separated manifest splits to train on")
    parser.add_argument("--cache", metavar="DIR", help="cache of prepared images (default MODEL_DIR/cache)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoints in MODEL_DIR"
    )
    parser.add_argument("--max-iterations", type=int, help="override the config's training.max_iterations")
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="ensemble members, each trained on a random subset (the study used 3)",
    )
    parser.add_argument("--partition-fraction", type=float, default=0.8, help="subset size per member (0.8)")
    parser.add_argument(
        "--semi-supervised",
        action="store_true",
        help="use the manifest's unlabelled studies with pseudo-labels (EMA teacher)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:1 (default: cuda when available; torchrun: per rank)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--name", help="model name in the manifest (default: the config's name)")
    parser.add_argument("--version", default="0.1.0", help="model version in the manifest")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the model summary as JSON")
    parser.set_defaults(func=_train_detector)


def _train_detector(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InputError
    from ..models.config import load_config
    from ..training.detector import TrainOptions, train_detector

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.semi_supervised:
        semi = {**config.to_dict()["training"]["semi_supervised"], "enabled": True}
        config = config.replace(training={**config.to_dict()["training"], "semi_supervised": semi})
    out = Path(args.out)
    earlier = (out / "manifest.json").exists() or any(out.glob("checkpoints/member-*/*.json"))
    if earlier and not args.resume:
        raise InputError(
            out, "holds an earlier training run; pass --resume to continue it or choose another --out"
        )
    if args.synthetic:
        from ..training.synthetic import synthetic_studies

        samples = synthetic_studies(args.synthetic, args.seed)
        training_data = {"source": "synthetic", "studies": args.synthetic, "seed": args.seed}
    else:
        samples, training_data = _manifest_samples(Path(args.data), args, config)
    options = TrainOptions(
        name=args.name or config.name,
        version=args.version,
        partitions=args.partitions,
        partition_fraction=args.partition_fraction,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        max_iterations=args.max_iterations,
        progress=not args.quiet,
        training_data=training_data,
    )
    info = train_detector(samples, config, out, options)
    if info is None:  # not rank 0 under torchrun
        return 0
    summary = {
        "name": info.name,
        "version": info.version,
        "path": str(info.path),
        "members": len(info.components),
        "log": str(out / "train-log.jsonl"),
    }
    print(json.dumps(summary) if args.json else f"trained {info.label}: {info.path} (log {summary['log']})")
    return 0


def _manifest_samples(manifest_path: Path, args: argparse.Namespace, config):
    """The manifest's studies as lazily loaded, prepared samples at the model's spacing (no augmentation here:
    the training loop augments whole studies consistently)."""
    from ..data.dataset import StudyDataset, StudyLoader
    from ..data.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    loader = StudyLoader(_preprocess_config(config.spacing_mm), Path(args.cache or Path(args.out) / "cache"))
    dataset = StudyDataset(manifest, loader, splits=splits, augment=None, seed=args.seed)
    training_data = {
        "manifest": str(manifest_path.resolve()),
        "splits": list(splits),
        "studies": len(dataset),
        "spacing_mm": config.spacing_mm,
    }
    return dataset, training_data


def _preprocess_config(spacing_mm: float):
    """The preprocessing configuration at the model's spacing."""
    from ..preprocess import PreprocessConfig

    return PreprocessConfig(spacing_mm=spacing_mm)
