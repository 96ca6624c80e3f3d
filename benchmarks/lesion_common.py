"""What the lesion-network benchmarks (``localization_eval.py``, ``malignancy_eval.py``) share: the model folder
to measure, the held-out phantom options and lesion set, and writing the figures.

Held-out phantoms use a seed no training or validation set uses and the generator's default lesion mix; their
lesion sets are cached in ``--cache`` (default ``$TMPDIR/mammodnn-lesion-sets``), so the benchmarks share one
generation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "Resources" / "Models"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "mammodnn-lesion-sets"


def latest_model(folder: Path) -> Path:
    """``folder`` when it is a model folder, else its newest version folder."""
    if (folder / "manifest.json").is_file():
        return folder
    versions = sorted(p for p in folder.glob("*") if (p / "manifest.json").is_file())
    if not versions:
        raise SystemExit(f"no model under {folder}")
    return versions[-1]


def add_heldout_arguments(parser: argparse.ArgumentParser) -> None:
    """Held-out phantoms, detection-like masks, timing, threads and the result file."""
    parser.add_argument("--heldout-phantoms", default="60", help="held-out studies per size (default 60)")
    parser.add_argument("--size", default="small", help="phantom sizes (default small)")
    parser.add_argument("--heldout-seed", type=int, default=20261124)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="lesion-set cache")
    parser.add_argument("--perturb-seed", type=int, default=1, help="seed of the detection-like masks")
    parser.add_argument("--timing-lesions", type=int, default=40, help="lesions timed (0: no timing)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here")


def heldout_lesions(args: argparse.Namespace, spacing_mm: float):
    """The held-out phantoms' lesion set (cached)."""
    from MammoDNNLib.training.lesion_networks import phantom_heldout_set

    counts = [int(v) for v in args.heldout_phantoms.split(",")]
    sizes = [s.strip() for s in args.size.split(",")]
    return phantom_heldout_set(counts, sizes, args.heldout_seed, spacing_mm, args.cache)


def write_result(args: argparse.Namespace, result: dict) -> None:
    """The figures as JSON into ``--json``, when given."""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
