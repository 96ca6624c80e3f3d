"""``mammodnn phantom OUT --studies K --seed S [--size small|medium|full]``: synthetic four-view studies with
truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write synthetic four-view phantom studies (DICOM + truth.json)",
        description=(
            "Write K synthetic screening studies, each a folder of four DICOM files (Digital Mammography "
            "X-Ray Image - For Presentation) with truth.json and mask PNGs (lesion ids linking CC and MLO, "
            "type, pathology, morphology, quadrant, depth, BI-RADS, density), plus OUT/index.json. Study k "
            "is seeded from (SEED, k): the same arguments give byte-identical files."
        ),
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (created)")
    parser.add_argument("--studies", type=int, default=1, metavar="K", help="number of studies (default 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="collection seed (default 0)")
    parser.add_argument(
        "--size",
        choices=("small", "medium", "full"),
        default="small",
        help="pixel spacing: small 0.5 mm (tests), medium 0.3 mm, full 0.15 mm (default small)",
    )
    parser.add_argument(
        "--spacing",
        type=float,
        default=None,
        metavar="MM",
        help="explicit pixel spacing in mm (overrides --size's spacing)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="JSON",
        help="phantom configuration (partial PhantomConfig as JSON; see docs/phantom.md)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..phantom import PhantomConfig, generate_studies
    from ..phantom.generate import INDEX_FILE

    if args.studies < 1:
        raise InputError(None, f"--studies must be at least 1, got {args.studies}")
    if args.seed < 0:
        raise InputError(None, f"--seed must be a non-negative integer, got {args.seed}")
    config = PhantomConfig.from_json(args.config) if args.config is not None else PhantomConfig()
    if args.spacing is not None:
        config.spacing_mm = args.spacing
        config.validate()

    def progress(done: int, total: int) -> None:
        if not args.quiet and not args.json:
            print(
                f"\rphantom: {done}/{total} studies",
                end="\n" if done == total else "",
                file=sys.stderr,
                flush=True,
            )

    folders = generate_studies(args.out, args.studies, args.seed, args.size, config, progress)
    if args.json:
        index = json.loads((args.out / INDEX_FILE).read_text(encoding="utf-8"))
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "index": str(args.out / INDEX_FILE),
                    "studies": [str(f) for f in folders],
                    "summary": index["studies"],
                },
                indent=1,
            )
        )
    elif not args.quiet:
        lesions = sum(len(json.loads((f / "truth.json").read_text())["lesions"]) for f in folders)
        print(f"wrote {len(folders)} studies ({lesions} lesions) to {args.out}")
    return 0
