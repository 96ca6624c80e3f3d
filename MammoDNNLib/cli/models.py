"""``mammodnn models list | import FILE | verify NAME | ensemble A B ... | half MODEL_DIR``: the weight registry from the command
line."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, import and verify models (safetensors + manifest)")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    listing = actions.add_parser("list", help="installed models (user cache, then shipped)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    importing = actions.add_parser(
        "import",
        help="check a model folder and copy it into the user cache, or convert a .pth/.safetensors file",
    )
    importing.add_argument(
        "source", metavar="FILE", help="model folder (with manifest.json), .safetensors or .pth"
    )
    importing.add_argument("--name", help="model name (required for a bare weight file)")
    importing.add_argument("--version", help="model version (default: the manifest's, or 1.0.0)")
    importing.add_argument(
        "--kind", default="detector", help="model kind of a bare weight file (default detector)"
    )
    importing.add_argument(
        "--config", help="configuration (JSON/YAML file or a named config) of a bare weight file"
    )
    importing.add_argument("--json", action="store_true")
    importing.set_defaults(func=_import)

    combine = actions.add_parser(
        "ensemble", help="combine separately trained detectors into one ensemble model"
    )
    combine.add_argument("models", nargs="+", metavar="NAME_OR_PATH")
    combine.add_argument("--out", required=True, help="model folder to write")
    combine.add_argument("--name", required=True)
    combine.add_argument("--version", default="1.0.0")
    combine.add_argument("--json", action="store_true")
    combine.set_defaults(func=_ensemble)

    half = actions.add_parser(
        "half", help="store a model folder's weights as float16 (half the size; re-pins the sha256)"
    )
    half.add_argument("folder", metavar="MODEL_DIR")
    half.add_argument("--json", action="store_true")
    half.set_defaults(func=_half)

    verify = actions.add_parser(
        "verify", help="check every weight file of a model against its manifest's sha256"
    )
    verify.add_argument("model", metavar="NAME_OR_PATH")
    verify.add_argument("--version")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify)


def _summary(info) -> dict:
    return {
        "name": info.name,
        "version": info.version,
        "kind": info.kind,
        "classes": info.classes,
        "created": info.created,
        "members": len(info.components),
        "path": str(info.path),
        "metrics": info.metrics,
    }


def _list(args) -> int:
    from ..models.registry import list_models

    models = [_summary(m) for m in list_models()]
    if args.json:
        print(json.dumps(models))
    elif not models:
        print("no models installed (import one with `mammodnn models import FOLDER`)")
    else:
        for m in models:
            print(f"{m['name']:<28} {m['version']:<10} {m['kind']:<12} {m['members']} file(s)  {m['path']}")
    return 0


def _import(args) -> int:
    from ..models.registry import import_model

    config = None
    if args.config:
        from ..models.config import load_config

        config = load_config(args.config).to_dict()
    info = import_model(args.source, name=args.name, version=args.version, kind=args.kind, config=config)
    print(json.dumps(_summary(info)) if args.json else f"imported {info.label} into {info.path}")
    return 0


def _ensemble(args) -> int:
    from ..models.ensemble import combine_models

    info = combine_models(args.models, args.out, name=args.name, version=args.version)
    print(
        json.dumps(_summary(info))
        if args.json
        else f"wrote {info.label} with {len(info.components)} members to {info.path}"
    )
    return 0


def _half(args) -> int:
    from ..models.registry import store_half_precision

    info = store_half_precision(args.folder)
    size = sum(c.size for c in info.components)
    print(json.dumps(_summary(info)) if args.json else f"{info.label}: float16 weights, {size / 1e6:.1f} MB")
    return 0


def _verify(args) -> int:
    from ..models.registry import resolve_model, verify_model

    info = verify_model(resolve_model(args.model, args.version))
    if args.json:
        print(json.dumps({**_summary(info), "verified": True}))
    else:
        print(f"{info.label}: {len(info.components)} weight file(s) match their sha256 ({info.path})")
    return 0
