"""``mammodnn preprocess IMAGE_OR_STUDY --out DIR [--spacing MM --laterality L|R --view CC|MLO]``.

Writes, per view, ``<name>_breast_mask.png`` (0/255 on the original grid), ``<name>_preprocessed.png``
(16-bit, see docs/preprocessing.md) and one ``preprocess.json`` (crop box, scale, flip, gray mapping, nipple
and pectoral line in original pixels, each with its source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="breast mask, crop, orientation, gray mapping and landmarks of a view or study",
        description=(
            "Prepare every view of a study (a folder, a file or a list of files) as the models see it and "
            "write <name>_breast_mask.png (0/255, size of the original image), <name>_preprocessed.png "
            "(16-bit PNG: 0 = -0.5, 65535 = 1.5 in gray-normalized units) and preprocess.json (everything in "
            "original pixels). "
            "Header-less images (PNG, PGM, TIFF) need --spacing and, unless their name says it, --laterality "
            "and --view."
        ),
    )
    parser.add_argument(
        "source",
        nargs="+",
        type=Path,
        metavar="IMAGE_OR_STUDY",
        help="a study folder, one image, or several images of one study",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--spacing",
        type=float,
        default=None,
        metavar="MM",
        help="pixel spacing of header-less images, mm (e.g. 0.2 for mini-MIAS)",
    )
    parser.add_argument("--laterality", choices=("L", "R"), default=None, help="side of a single image")
    parser.add_argument("--view", choices=("CC", "MLO"), default=None, help="view of a single image")
    parser.add_argument(
        "--target-spacing",
        type=float,
        default=None,
        metavar="MM",
        help="prepared pixel size in mm (default 0.15)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="JSON",
        help="preprocessing options as JSON (PreprocessConfig fields; see docs/preprocessing.md)",
    )
    parser.add_argument("--json", action="store_true", help="print preprocess.json's summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from ..errors import InputError
    from ..preprocess import PreprocessConfig

    data: dict = {}
    if args.config is not None:
        try:
            data = json.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(args.config, f"cannot read the preprocessing configuration: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(args.config, "the preprocessing configuration must be a JSON object")
    if args.target_spacing is not None:
        data["spacing_mm"] = args.target_spacing
    try:
        return PreprocessConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise InputError(args.config, f"invalid preprocessing configuration: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from ..io import load_study
    from ..preprocess import prepare_view, write_preprocessed

    config = _config(args)
    source = args.source[0] if len(args.source) == 1 else args.source
    study = load_study(source, spacing=args.spacing, laterality=args.laterality, view=args.view)
    prepared = {}
    for index, (key, view) in enumerate(study.views.items(), start=1):
        if not args.quiet and not args.json:
            print(f"preprocess: {key} ({view.name}) {index}/{len(study)}", file=sys.stderr, flush=True)
        prepared[key] = prepare_view(view, config)
    path = write_preprocessed(study.views, prepared, args.out, config, source=study.source)
    if args.json:
        document = json.loads(path.read_text(encoding="utf-8"))
        summary = {
            "preprocess_json": str(path),
            "views": {
                key: {
                    "files": record["files"],
                    "crop_box": record["crop_box"],
                    "flip_x": record["flip_x"],
                    "nipple": record["nipple"],
                    "pectoral_line": record["pectoral_line"],
                    "warnings": record["warnings"],
                }
                for key, record in document["views"].items()
            },
            "study_warnings": list(study.warnings),
        }
        print(json.dumps(summary, indent=1))
    elif not args.quiet:
        for key, prep in prepared.items():
            nipple = prep.landmarks.nipple
            pectoral = (
                "pectoral line found"
                if prep.landmarks.pectoral is not None
                else ("no pectoral line" if prep.view == "MLO" else "")
            )
            where = "" if nipple is None else f"nipple ({nipple.xy[0]:.0f}, {nipple.xy[1]:.0f})"
            parts = [p for p in (f"chest wall {prep.chest_wall_side}", where, pectoral) if p]
            print(f"{key}: " + ", ".join(parts) + "".join(f"\n  warning: {w}" for w in prep.warnings))
        print(f"wrote {path}")
    return 0
