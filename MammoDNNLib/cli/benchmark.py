"""``mammodnn benchmark``: stock torchvision Faster R-CNN against our four-view detector on one full-size study
(median seconds per study, ratio, peak memory; each optimization measured on its own line)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="detector speed: stock torchvision Faster R-CNN vs ours on a full-size four-view study",
        description="Runs each variant in a fresh process on the same four views (0.15 mm) and prints the median "
        "seconds per study, the speed-up over the stock model and the peak resident memory.",
    )
    parser.add_argument(
        "--study", metavar="FOLDER", help="a four-view study folder (default: synthetic, full size)"
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant after one warm-up (3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2, the target machine)")
    parser.add_argument("--variants", help="comma-separated variant names (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the per-variant peak-memory subprocesses"
    )
    parser.add_argument("--memory-variants", help="measure peak memory only for these (comma-separated)")
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="no untimed first run for eager-torch variants (ONNX/compiled ones always warm up)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--quiet", action="store_true", help="no per-variant progress lines")
    parser.set_defaults(func=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    import sys

    from ..errors import MammoDNNError
    from ..models.benchmark import default_variants, format_table, report_to_json, run_benchmark

    variants = default_variants()
    if args.list:
        for v in variants:
            print(f"{v.name:<22} {v.description}")
        return 0
    if args.variants:
        wanted = [w.strip() for w in args.variants.split(",") if w.strip()]
        unknown = sorted(set(wanted) - {v.name for v in variants})
        if unknown:
            raise MammoDNNError(f"unknown variant(s) {', '.join(unknown)}; see mammodnn benchmark --list")
        variants = [v for v in variants if v.name in wanted]

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr, flush=True)

    memory = (
        False
        if args.no_memory
        else ([m.strip() for m in args.memory_variants.split(",")] if args.memory_variants else True)
    )
    report = run_benchmark(
        variants,
        runs=args.runs,
        threads=args.threads,
        study=args.study,
        memory=memory,
        warm_up=not args.no_warm_up,
        progress=progress,
    )
    print(json.dumps(report_to_json(report), indent=1) if args.json else format_table(report))
    return 0
