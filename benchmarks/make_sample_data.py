"""Make the embedded default study, ``Resources/SampleData/phantom-study/`` (what ``mammodnn demo`` analyzes).

    python benchmarks/make_sample_data.py [--out Resources/SampleData/phantom-study] [--collection 9000]

A ``medium`` (0.3 mm) synthetic phantom study (MammoDNNLib.phantom): the first study of collection
``--collection``
(seeds ``study_seed(collection, k)``, k = 0, 1, ...; two or three lesions per breast) that shows what the
pipeline does — lesions in both breasts,
at least three lesions, masses and calcifications among them, every projection visible (no occult one) —
written with its
truth.json and masks. The four DICOM files are re-encoded with RLE Lossless (pydicom's encoder; the pixel
values
are unchanged, which is checked) so that the four together stay under ``--max-mb`` (6 MB). Collection 9000 is
used by nothing else: no model trains or tunes on it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.phantom import PhantomConfig, generate_study, study_seed, write_study
from MammoDNNLib.phantom.config import LesionConfig

REPO = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/make_sample_data.py"
# A demonstration wants something to show: every study abnormal, both breasts, two or three lesions each (the
# lesions themselves are drawn as usual).
SHOWCASE = PhantomConfig(
    lesions=LesionConfig(
        normal_study_fraction=0.0,
        second_breast_probability=1.0,
        lesions_per_breast_weights={"2": 0.5, "3": 0.5},
    )
)


def suitable(phantom) -> bool:
    lesions = phantom.truth.lesions
    sides = {lesion.laterality for lesion in lesions}
    types = {lesion.type for lesion in lesions}
    visible = all(v.visibility != "occult" for lesion in lesions for v in lesion.views.values())
    return len(sides) == 2 and len(lesions) >= 3 and {"mass", "calcification"} <= types and visible


def rle_encode(path: Path) -> None:
    """Re-encode a DICOM file's pixel data as RLE Lossless in place, checking the pixels survive exactly."""
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(path)
    before = ds.pixel_array.copy()
    # Lossless re-encoding keeps the instance (and so its SOP Instance UID, which truth.json records).
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    after = pydicom.dcmread(path).pixel_array
    if not np.array_equal(before, after):
        raise RuntimeError(f"{path}: RLE round trip changed the pixels")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "Resources" / "SampleData" / "phantom-study")
    parser.add_argument("--collection", type=int, default=9000)
    parser.add_argument("--size", default="medium")
    parser.add_argument("--max-mb", type=float, default=6.0)
    parser.add_argument("--tries", type=int, default=40)
    args = parser.parse_args(argv)
    for k in range(args.tries):
        seed = study_seed(args.collection, k)
        phantom = generate_study(seed, args.size, SHOWCASE, study_id=f"mammodnn-sample-{args.collection}-{k}")
        if suitable(phantom):
            break
        print(
            f"study {k} (seed {seed}) skipped: {[(x.id, x.type) for x in phantom.truth.lesions]}",
            file=sys.stderr,
        )
    else:
        raise SystemExit(f"no suitable study in the first {args.tries} of collection {args.collection}")
    if args.out.exists():
        shutil.rmtree(args.out)
    write_study(phantom, args.out)
    total = 0
    for view in phantom.truth.views.values():
        rle_encode(args.out / view.file)
        total += (args.out / view.file).stat().st_size
    if total > args.max_mb * 1e6:
        raise SystemExit(f"the four DICOM files take {total / 1e6:.1f} MB (> {args.max_mb} MB)")
    lesions = phantom.truth.lesions
    lines = [
        "# The embedded default study (synthetic phantom)",
        "",
        "What `mammodnn demo` analyzes when it is given no study: a synthetic four-view screening study "
        "made by",
        "MammoDNN's phantom (`MammoDNNLib.phantom`, docs/phantom.md) — no patient, no real image. Research "
        "use only.",
        "",
        f"- Made by `{COMMAND} --collection {args.collection} --size {args.size}`: study {k} of phantom "
        f"collection {args.collection} (seed `{seed}`; two or three lesions in each breast), the first one "
        "with at least three lesions, masses and calcifications among them, every lesion visible in both "
        "views. No model of MammoDNN trains or tunes on this collection.",
        "- `R-CC.dcm`, `L-CC.dcm`, `R-MLO.dcm`, `L-MLO.dcm`: Digital Mammography X-Ray Image (For "
        f"Presentation), {phantom.truth.spacing_mm} mm pixels, 12 bits, pixel data re-encoded as RLE "
        f"Lossless (values unchanged); {total / 1e6:.1f} MB together.",
        "- `truth.json` and `masks/`: the ground truth (lesion boxes, outlines, quadrants, depths, CC-MLO "
        "correspondence, pathology, morphology, BI-RADS; breast masks, pectoral masks), format in "
        "docs/phantom.md.",
        "",
        "Lesions:",
        "",
        "| id | type | pathology | BI-RADS | views (quadrant, depth, visibility) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for lesion in lesions:
        views = "; ".join(
            f"{key}: {v.quadrant}, {v.depth:.2f}, {v.visibility}" for key, v in lesion.views.items()
        )
        lines.append(f"| {lesion.id} | {lesion.type} | {lesion.pathology} | {lesion.birads} | {views} |")
    lines += [
        "",
        "Analyze it: `mammodnn demo` (or `mammodnn analyze Resources/SampleData/phantom-study --out DIR`).",
        "",
    ]
    (args.out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print(
        json.dumps(
            {
                "out": str(args.out),
                "seed": seed,
                "index": k,
                "dicom_bytes": total,
                "lesions": [(x.id, x.type, x.pathology) for x in lesions],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
