"""``mammodnn data``: convert data sets to the training manifest, check a manifest, export COCO, merge.

::

    mammodnn data convert mias ../shared/data/mias --out data/mias.json
    mammodnn data convert cbis-ddsm ../shared/data/cbis-ddsm --images /data/CBIS-DDSM --out data/cbis.json
    mammodnn data convert vindr /data/vindr-mammo-1.0.0 --out data/vindr.json
    mammodnn data convert inbreast "/data/INbreast Release 1.0" --out data/inbreast.json
    mammodnn data convert phantom out/phantoms --out data/phantom.json
    mammodnn data check data/mias.json
    mammodnn data coco data/mias.json --out data/mias.coco.json --split train
    mammodnn data merge data/mias.json corrections.json --replace --out data/train.json

The manifest format and each converter's mapping are in docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import InputError, MammoDNNError

# Options each source kind accepts (argparse dest -> converter keyword).
KIND_OPTIONS: dict[str, dict[str, str]] = {
    "phantom": {"split": "split", "min_visibility": "min_visibility"},
    "mias": {"images": "images", "heldout": "heldout", "laterality": "laterality", "spacing": "spacing_mm"},
    "cbis-ddsm": {"images": "images", "spacing": "spacing_mm"},
    "vindr": {"images": "images"},
    "inbreast": {"calcifications": "calcifications"},
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="training data: convert sources to a manifest, check it, export COCO",
        description="One manifest format for all training data (docs/data.md).",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    convert = commands.add_parser(
        "convert",
        help="convert a data set to a manifest",
        description="Convert a data set's own files to a MammoDNN manifest.",
    )
    convert.add_argument(
        "kind",
        choices=sorted(KIND_OPTIONS),
        metavar="SOURCE_KIND",
        help=f"one of {', '.join(sorted(KIND_OPTIONS))}",
    )
    convert.add_argument("src", type=Path, metavar="SRC", help="the data set's folder (or its table file)")
    convert.add_argument("--out", type=Path, required=True, metavar="MANIFEST", help="manifest JSON to write")
    convert.add_argument(
        "--images",
        type=Path,
        help="image folder (mias: mdbNNN.pgm/.png; cbis-ddsm: the TCIA download; vindr: images/)",
    )
    convert.add_argument(
        "--heldout", type=Path, help="mias: held-out film list (default: heldout.txt beside Info.txt)"
    )
    convert.add_argument(
        "--laterality",
        choices=("image", "parity"),
        help="mias: display side from the chest wall in the pixels (default) or Info.txt's even/odd rule",
    )
    convert.add_argument(
        "--spacing",
        type=float,
        metavar="MM",
        help="mias / cbis-ddsm: pixel spacing to write (defaults 0.2 / nominal 0.05)",
    )
    convert.add_argument(
        "--calcifications",
        choices=("clusters", "all"),
        help="inbreast: clusters only (default) or every calcification ROI",
    )
    convert.add_argument(
        "--split",
        choices=("train", "val", "test", "heldout", "none"),
        help="phantom: the split of every study (default train; 'none' = unassigned)",
    )
    convert.add_argument(
        "--min-visibility",
        choices=("occult", "subtle", "obvious"),
        help="phantom: leave out lesion projections less visible than this (default subtle)",
    )
    convert.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="move about F of the training studies (whole patients) to the val split",
    )
    convert.add_argument("--seed", type=int, default=0, help="seed of the val split")
    convert.add_argument("--force", action="store_true", help="overwrite MANIFEST if it exists")
    convert.add_argument("--json", action="store_true", help="print the summary as JSON")
    convert.add_argument("--quiet", action="store_true", help="print nothing but errors")
    convert.set_defaults(func=_convert)

    check = commands.add_parser(
        "check",
        help="validate a manifest and print its counts",
        description="Validate a manifest, check its files exist, and print counts per "
        "split and finding type. Exit status 1 when files are missing.",
    )
    check.add_argument("manifest", type=Path, metavar="MANIFEST")
    check.add_argument("--allow-missing", action="store_true", help="missing image files are not an error")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(func=_check)

    coco = commands.add_parser(
        "coco",
        help="export a manifest to COCO detection JSON",
        description="Export boxed lesions of labelled studies to COCO JSON "
        "(category ids = detector class indices).",
    )
    coco.add_argument("manifest", type=Path, metavar="MANIFEST")
    coco.add_argument("--out", type=Path, required=True, metavar="FILE")
    coco.add_argument(
        "--split",
        action="append",
        dest="splits",
        metavar="SPLIT",
        help="export only this split (repeatable; 'none' = unassigned)",
    )
    coco.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    coco.add_argument("--quiet", action="store_true", help="print nothing but errors")
    coco.set_defaults(func=_coco)

    merge = commands.add_parser(
        "merge",
        help="merge manifests (e.g. corrections into the training manifest)",
        description="Concatenate manifests. Held-out status is sticky: a study showing an "
        "image of a held-out study stays held out.",
    )
    merge.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    merge.add_argument("--out", type=Path, required=True, metavar="FILE")
    group = merge.add_mutually_exclusive_group()
    group.add_argument(
        "--replace", action="store_true", help="a repeated study id takes the later manifest's"
    )
    group.add_argument("--keep", action="store_true", help="a repeated study id keeps the earlier manifest's")
    merge.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    merge.add_argument("--quiet", action="store_true", help="print nothing but errors")
    merge.set_defaults(func=_merge)


def _refuse_overwrite(path: Path, force: bool, inputs: list[Path]) -> None:
    target = os.path.abspath(path)
    if any(os.path.abspath(p) == target for p in inputs):
        raise InputError(path, "the output would overwrite an input file")
    if path.exists() and not force:
        raise InputError(path, "exists already (pass --force to overwrite)")


def _convert(args: argparse.Namespace) -> int:
    from ..data.converters import convert
    from ..data.manifest import save_manifest

    accepted = KIND_OPTIONS[args.kind]
    options = {}
    for dest in ("images", "heldout", "laterality", "spacing", "calcifications", "split", "min_visibility"):
        value = getattr(args, dest)
        if value is None:
            continue
        if dest not in accepted:
            raise MammoDNNError(f"--{dest.replace('_', '-')} does not apply to {args.kind}")
        options[accepted[dest]] = None if (dest == "split" and value == "none") else value
    inputs = [args.src] + ([args.heldout] if args.heldout else [])
    _refuse_overwrite(args.out, args.force, inputs)
    manifest = convert(args.kind, args.src, **options)
    if args.val_fraction:
        manifest = manifest.split_off(args.val_fraction, into="val", from_split="train", seed=args.seed)
        manifest.notes.append(
            f"about {args.val_fraction:g} of the training patients moved to val (seed {args.seed})"
        )
    save_manifest(manifest, args.out)
    _report(manifest, args, header=f"wrote {args.out} ({len(manifest)} studies)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    missing = manifest.missing_files()
    if args.json:
        print(
            json.dumps(
                {
                    "manifest": str(args.manifest),
                    "studies": len(manifest),
                    "summary": manifest.summary().to_dict(),
                    "notes": manifest.notes,
                    "missing_files": [str(p) for p in missing],
                },
                indent=1,
            )
        )
    else:
        print(f"{args.manifest}: valid manifest, {len(manifest)} studies")
        print(manifest.summary().format_table())
        for note in manifest.notes:
            print(f"note: {note}")
        if missing:
            print(f"{len(missing)} file(s) named by the manifest do not exist, e.g.:")
            for path in missing[:10]:
                print(f"  {path}")
    return 1 if missing and not args.allow_missing else 0


def _coco(args: argparse.Namespace) -> int:
    from ..data.converters.coco import export_coco
    from ..data.manifest import SPLITS, load_manifest

    manifest = load_manifest(args.manifest)
    splits = None
    if args.splits:
        for split in args.splits:
            if split != "none" and split not in SPLITS:
                raise MammoDNNError(f"--split {split!r} is not one of {', '.join(SPLITS)}, none")
        splits = [None if s == "none" else s for s in args.splits]
    _refuse_overwrite(args.out, args.force, [args.manifest])
    data = export_coco(manifest, args.out, splits=splits)
    if not args.quiet:
        print(f"wrote {args.out}: {len(data['images'])} images, {len(data['annotations'])} annotations")
        for what, count in data["info"]["mammodnn_skipped"].items():
            print(f"  left out: {count} {what}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ..data.manifest import load_manifest, merge, save_manifest

    _refuse_overwrite(args.out, args.force, list(args.manifests))
    manifests = [load_manifest(path) for path in args.manifests]
    on_duplicate = "replace" if args.replace else "keep" if args.keep else "error"
    merged = merge(*manifests, on_duplicate=on_duplicate)
    save_manifest(merged, args.out)
    _report(merged, args, header=f"wrote {args.out} ({len(merged)} studies)")
    return 0


def _report(manifest, args: argparse.Namespace, header: str) -> None:
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "studies": len(manifest),
                    "summary": manifest.summary().to_dict(),
                    "notes": manifest.notes,
                },
                indent=1,
            )
        )
        return
    if args.quiet:
        return
    print(header)
    print(manifest.summary().format_table())
    for note in manifest.notes:
        print(f"note: {note}")
