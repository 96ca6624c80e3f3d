"""``mammodnn analyze STUDY... --out DIR``: analyze one study and write the report and the files to look at.

Writes, through :func:`MammoDNNLib.export.export_all` (formats in docs/outputs.md, pipeline in
docs/pipeline.md): ``report.json``, ``<view>.seg.nrrd`` and ``<view>.mrk.json`` (3D Slicer),
``<view>.overlay.png``
and ``overview.png``. ``--progress-json`` speaks the :mod:`MammoDNNLib.progress` protocol for the Slicer
module's
worker process.

The output folder may be new, empty, or hold earlier outputs of this command (listed, with their hashes, in
``.mammodnn-outputs.json``); a folder holding anything else is refused unless ``--overwrite``, which only adds
or
replaces the files this command writes. User files are never deleted: what is removed is an earlier run's own
output that this run does not write again, and only if it is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, MammoDNNError

log = logging.getLogger(__name__)

OUTPUTS_RECORD = ".mammodnn-outputs.json"
OUTPUTS_FORMAT = "mammodnn-outputs"
OVERVIEW_FILE = "overview.png"
# --what: the export kinds, plus "overview" (overview.png), which the export writes with the overlays.
WHAT_CHOICES: tuple[str, ...] = (
    "report",
    "seg-nrrd",
    "markups",
    "overlay",
    "overview",
    "dicom-seg",
    "dicom-sr",
)
DEFAULT_WHAT: tuple[str, ...] = ("report", "seg-nrrd", "markups", "overlay", "overview")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyze a study (1-4 views): report.json, Slicer segmentations and markups, overlay PNGs",
        description=(
            "Detect, outline, localize, grade and match the lesions of one screening study and write "
            "report.json, <view>.seg.nrrd and <view>.mrk.json for 3D Slicer, <view>.overlay.png and "
            "overview.png into --out. Research use only: not a medical device."
        ),
    )
    add_analysis_arguments(parser)
    parser.add_argument(
        "study",
        nargs="+",
        type=Path,
        metavar="STUDY",
        help="a study folder, one image file, or the view files of one study",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder (created if needed)"
    )
    parser.add_argument(
        "--spacing",
        type=float,
        metavar="MM",
        help="pixel spacing (mm) for images without one in their header (PNG, CBIS-DDSM DICOM)",
    )
    parser.add_argument("--laterality", choices=("L", "R"), help="side of a single header-less image")
    parser.add_argument("--view", choices=("CC", "MLO"), help="view of a single header-less image")
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="report progress as MAMMODNN-PROGRESS lines on standard output (for the Slicer module)",
    )
    parser.set_defaults(func=run)


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``analyze`` and ``demo``."""
    parser.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="system model (default: the shipped 'mammodnn'), or one component model that replaces its stage",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--no-tta", dest="tta", action="store_false", help="one detector pass, no test-time flips"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)"
    )
    parser.add_argument(
        "--what",
        default=",".join(DEFAULT_WHAT),
        help=f"comma-separated outputs: {', '.join(WHAT_CHOICES)} (default: {','.join(DEFAULT_WHAT)})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that holds other files (only this command's files are replaced)",
    )
    parser.add_argument("--json", action="store_true", help="print the report summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary; errors only")


# -- outputs folder
# ---------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class OutputFolder:
    """An output folder and the record of what this command wrote into it before."""

    path: Path
    previous: dict[str, str]  # file name -> sha256 as written by an earlier run

    @classmethod
    def open(cls, path: Path, overwrite: bool) -> OutputFolder:
        """Check that ``path`` may receive outputs (see the module docstring)."""
        if path.exists() and not path.is_dir():
            raise InputError(path, "exists and is not a folder")
        previous: dict[str, str] = {}
        record = path / OUTPUTS_RECORD
        if record.is_file():
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
                if data.get("format") == OUTPUTS_FORMAT and isinstance(data.get("files"), dict):
                    previous = {str(k): str(v) for k, v in data["files"].items()}
            except (UnicodeDecodeError, json.JSONDecodeError):
                previous = {}
        if path.is_dir() and not overwrite:
            foreign = sorted(
                entry.name
                for entry in path.iterdir()
                if entry.name != OUTPUTS_RECORD
                and not (entry.is_file() and previous.get(entry.name) == _sha256(entry))
            )
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise InputError(
                    path,
                    f"holds files this command did not write ({shown}); choose a new or empty "
                    "folder, or pass --overwrite (which adds and replaces only MammoDNN's own output "
                    "files and deletes nothing)",
                )
        return cls(path, previous)

    def finish(self, written: list[Path]) -> list[str]:
        """Record what was written; remove an earlier run's outputs not written again (if unchanged)."""
        names = {p.name: _sha256(p) for p in written if p.parent.resolve() == self.path.resolve()}
        removed = []
        for name, digest in self.previous.items():
            stale = self.path / name
            if name not in names and "/" not in name and stale.is_file() and _sha256(stale) == digest:
                stale.unlink()
                removed.append(name)
        record = {"format": OUTPUTS_FORMAT, "version": 1, "files": names}
        (self.path / OUTPUTS_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return removed


@dataclass(frozen=True)
class Outputs:
    """What ``--what`` asks for: the export kinds, and which of the overlay files."""

    kinds: tuple[str, ...]
    view_overlays: bool
    overview: bool


def parse_what(text: str) -> Outputs:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in WHAT_CHOICES]
    if unknown or not items:
        raise MammoDNNError(
            f"--what: unknown output(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(WHAT_CHOICES)}"
        )
    kinds = [t for t in items if t != "overview"]
    if "overview" in items and "overlay" not in kinds:
        kinds.append("overlay")  # the export writes overview.png with the overlays
    return Outputs(tuple(dict.fromkeys(kinds)), "overlay" in items, "overview" in items)


# -- running
# ----------------------------------------------------------------------------------------------------
@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[float, str], None] | None]:
    """A ``progress(fraction, message)`` drawing a tqdm bar on a terminal (log lines printed above it), or
    None
    when disabled or not on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    import shutil

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    width = shutil.get_terminal_size((100, 24)).columns or 100  # 0 on some pseudo-terminals
    bar = tqdm(
        total=100,
        unit="%",
        ncols=min(width, 110),
        file=sys.stderr,
        bar_format="{desc:<42.42} {percentage:3.0f}%|{bar}| {elapsed}",
    )

    def update(fraction: float, message: str) -> None:
        bar.set_description_str(message)
        bar.update(max(0, int(round(fraction * 100)) - bar.n))

    try:
        with logging_redirect_tqdm(tqdm_class=tqdm):
            yield update
            update(1.0, "done")
    finally:
        bar.close()


def analyze_and_export(study, out: Path, args: argparse.Namespace, progress=None):
    """Run the pipeline on ``study`` and write the asked-for outputs into ``out``: (report, ExportResult,
    removed stale outputs)."""
    from ..export import export_all
    from ..pipeline import analyze

    wanted = parse_what(args.what)
    folder = OutputFolder.open(out, args.overwrite)

    def scaled(fraction: float, message: str) -> None:
        if progress is not None:
            progress(0.9 * fraction, message)

    report = analyze(study, model=args.model, device=args.device, tta=args.tta, progress=scaled)
    if progress is not None:
        progress(0.92, "writing outputs")
    result = export_all(report, out, what=wanted.kinds, views=study.views)
    for path in list(result.files.get("overlay", [])):
        # The export writes the per-view overlays and overview.png together; drop the one not asked for.
        is_overview = path.name == OVERVIEW_FILE
        if (is_overview and not wanted.overview) or (not is_overview and not wanted.view_overlays):
            path.unlink()
            result.files["overlay"].remove(path)
    removed = folder.finish(result.all_files())
    return report, result, removed


def summary(report, result=None) -> dict[str, Any]:
    """The report in brief, for ``--json`` and the printed table."""
    data: dict[str, Any] = {
        "model": {"name": report.model.name, "version": report.model.version},
        "views": [v.key for v in report.views],
        "findings": [
            {
                "id": f.id,
                "view": f.view_key,
                "number": f.number,
                "type": f.type,
                "score": round(f.score, 4),
                "quadrant": f.quadrant,
                "depth": None if f.depth is None else round(f.depth, 3),
                "match_id": f.match_id,
                "match_probability": None if f.match_probability is None else round(f.match_probability, 4),
                "malignancy": None if f.malignancy is None else round(f.malignancy, 4),
                "birads": f.birads,
            }
            for f in report.findings
        ],
        "breasts": {
            k: {
                "birads": s.birads,
                "malignancy": s.score,
                "findings": s.findings,
                "complete": s.complete,
                "note": s.note,
            }
            for k, s in report.breasts.items()
        },
        "exam": {
            "birads": report.exam.birads,
            "malignancy": report.exam.score,
            "findings": report.exam.findings,
            "complete": report.exam.complete,
            "note": report.exam.note,
        },
        "timings": report.timings,
        "warnings": report.warnings,
    }
    if result is not None:
        data["files"] = {k: [str(p) for p in v] for k, v in result.files.items()}
        data["skipped"] = dict(result.skipped)
    return data


def format_table(report) -> str:
    """The findings and summaries as a plain-text table."""

    def num(value, digits=2):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{'id':<11} {'view':<6} {'no.':>3} {'type':<14} {'score':>5} {'quadrant':<13} {'depth':>5} "
        f"{'match':<11} {'p(match)':>8} {'malig.':>6} {'BI-RADS':>7}"
    ]
    for f in report.findings:
        lines.append(
            f"{f.id:<11} {f.view_key:<6} {f.number:>3} {f.type:<14} {f.score:5.2f} {f.quadrant or '-':<13} "
            f"{num(f.depth):>5} {f.match_id or '-':<11} {num(f.match_probability):>8} "
            f"{num(f.malignancy):>6} {f.birads or '-':>7}"
        )
    if not report.findings:
        lines.append("(no findings above the operating point)")
    lines.append("")
    for side, s in report.breasts.items():
        lines.append(
            f"{'right' if side == 'R' else 'left'} breast: BI-RADS {s.birads}, malignancy {num(s.score)}, "
            f"{s.findings} lesion(s)" + (f" — {s.note}" if s.note else "")
        )
    e = report.exam
    lines.append(
        f"exam: BI-RADS {e.birads}, malignancy {num(e.score)}, {e.findings} lesion(s)"
        + ("" if e.complete else " (incomplete study)")
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..io import load_study
    from ..progress import ProgressWriter

    if args.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    writer = ProgressWriter() if args.progress_json else None
    try:
        _configure(args)
        source = args.study[0] if len(args.study) == 1 else list(args.study)
        study = load_study(source, spacing=args.spacing, laterality=args.laterality, view=args.view)
        with progress_bar(not args.quiet and writer is None) as bar:
            report, result, removed = analyze_and_export(study, args.out, args, writer or bar)
    except MammoDNNError as exc:
        if writer is None:
            raise
        writer.error(str(exc), kind=type(exc).__name__)
        print(f"mammodnn analyze: error: {exc}", file=sys.stderr)
        return 1
    report_path = args.out / "report.json"
    if writer is not None:
        outputs = {"report": str(report_path)} if report_path.is_file() else {}
        writer.done(f"{len(report.findings)} finding(s)", **outputs)
    if args.json:
        print(json.dumps({**summary(report, result), "out": str(args.out), "removed": removed}))
    elif not args.quiet:
        print(format_table(report))
        print_outputs(args.out, result, report)
    return 0


def _configure(args: argparse.Namespace) -> None:
    from ..pipeline.stages import check_device

    check_device(args.device)
    parse_what(args.what)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def print_outputs(out: Path, result, report) -> None:
    for message in report.warnings:
        print(f"warning: {message}")
    written = result.all_files()
    print(f"\nwrote {len(written)} file(s) to {out}: " + ", ".join(sorted(p.name for p in written)))
    for kind, why in result.skipped.items():
        print(f"skipped {kind}: {why}")
