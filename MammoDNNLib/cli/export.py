"""``mammodnn export REPORT.json --out DIR``: Slicer files, overlays and DICOM SEG/SR from a saved report.

No Slicer needed. Source images are found through each view's ``file`` in the report (absolute, or relative to
the report's folder), or by file name in ``--sources`` folders. DICOM SEG and SR need DICOM sources; the
Slicer files need nothing but the report (the DICOM header, when found, gives Slicer's exact geometry);
overlays need the source pixels. A reviewed report (``reports/<study>.json`` of the corrections export, or any
report rebuilt from a reviewed scene) gives the reviewed DICOM SEG/SR, naming the annotator given with
``--annotator`` or, by default, the one in the report's review audit. Formats: docs/outputs.md, docs/review.md.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import InputError


def register(subparsers) -> None:
    from ..export import OUTPUT_KINDS

    parser = subparsers.add_parser(
        "export",
        help="write Slicer files, overlay PNGs and DICOM SEG/SR from a report.json",
        description=(
            "Write the exports of a MammoDNN report.json: <view>.seg.nrrd and <view>.mrk.json (3D Slicer), "
            "<view>.overlay.png and overview.png, <view>.seg.dcm (DICOM SEG) and findings.sr.dcm (DICOM SR, "
            "TID 1500). Research use only."
        ),
    )
    parser.add_argument("report", type=Path, help="the report.json written by `mammodnn analyze`")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument(
        "--what",
        default="auto",
        help=(
            f"comma-separated kinds: {', '.join(OUTPUT_KINDS)}, or 'all'; default 'auto' makes every "
            "kind the inputs allow and reports what it skipped"
        ),
    )
    parser.add_argument(
        "--sources",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder to look in for the source images by file name (repeatable)",
    )
    parser.add_argument(
        "--anonymize",
        action="store_true",
        help="remove patient identifiers, dates, UIDs and source names from every output (writes an "
        "anonymized report.json copy too)",
    )
    parser.add_argument(
        "--annotator",
        help="who reviewed the findings: the person observer of the reviewed DICOM SR and the SEG's content "
        "creator (default: the latest annotator in a reviewed report's audit; giving it makes the DICOM "
        "outputs reviewed ones)",
    )
    parser.add_argument("--json", action="store_true", help="print the list of written files as JSON")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_all, parse_kinds
    from ..export.report_schema import validate_report_dict
    from ..findings import Report

    if not getattr(args, "debug", False):
        # highdicom narrates every module it copies at INFO; the user wants the list of files.
        logging.getLogger("highdicom").setLevel(logging.WARNING)
    if args.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    path: Path = args.report
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a MammoDNN report (invalid JSON: {exc})") from None
    validate_report_dict(data, path)
    report = Report.load(path)
    kinds = parse_kinds(args.what)
    result = export_all(
        report,
        args.out,
        what=kinds,
        report_path=path,
        search_dirs=args.sources,
        anonymize=args.anonymize,
        annotator=(args.annotator or "").strip() or None,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if not args.quiet:
        for kind, files in result.files.items():
            for file in files:
                print(f"{kind:10s} {file}")
        for what, why in result.skipped.items():
            print(f"skipped    {what}: {why}")
        for message in result.warnings:
            print(f"warning    {message}")
    return 0
