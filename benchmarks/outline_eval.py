"""How good are the pipeline's lesion outlines? Dice against the phantom's true lesion masks, per finding
type, for
each outline method and for the plain inscribed-ellipse baseline, side by side on the same boxes.

    python benchmarks/outline_eval.py [--phantoms 12] [--seed 7300] [--size medium] [--spacing 0.4]
                                      [--boxes truth,jittered] [--detector MODEL] [--json OUT]

Boxes:
* ``truth``    the true mask's bounding box (what a perfect detector gives);
* ``jittered`` the true box with its centre moved by N(0, 0.15 x side) and each side scaled by exp(N(0, 0.2))
—
               the detection model the matcher was trained with (docs/matching.md);
* ``detector`` a real detector's boxes (``--detector``), each matched to the true projection its centre falls
in.

Every mask is compared on the ORIGINAL pixel grid of the view (the truth's grid), so the result includes the
mapping back through the preprocessing transform. Occult projections are left out (nothing to outline).
Phantoms:
collection ``--seed`` (default 7300, the pipeline's held-out test collection; tune on 7200), two or three
lesions
in each breast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.phantom import PhantomConfig, generate_study, study_seed
from MammoDNNLib.phantom.config import LesionConfig
from MammoDNNLib.pipeline.config import OutlineConfig
from MammoDNNLib.pipeline.outline import dice, inscribed_ellipse, outline_lesion
from MammoDNNLib.preprocess import PreprocessConfig, prepare_view

METHODS = ("otsu", "midpoint", "chan_vese")
# Two or three lesions in each breast: more lesions per (slow) phantom; the lesions are drawn as usual.
DENSE = PhantomConfig(
    lesions=LesionConfig(
        normal_study_fraction=0.0,
        second_breast_probability=1.0,
        lesions_per_breast_weights={"2": 0.5, "3": 0.5},
    )
)


def jitter(box, rng: np.random.Generator, shape) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.normal(0, 0.15 * w)
    cy = (y0 + y1) / 2 + rng.normal(0, 0.15 * h)
    w *= float(np.exp(rng.normal(0, 0.2)))
    h *= float(np.exp(rng.normal(0, 0.2)))
    rows, cols = shape
    out = (max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, cols), min(cy + h / 2, rows))
    return out if out[2] - out[0] > 1 and out[3] - out[1] > 1 else tuple(box)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phantoms", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7300)
    parser.add_argument("--size", default="medium")
    parser.add_argument("--spacing", type=float, default=0.4, help="prepared spacing (mm), the detector's")
    parser.add_argument("--boxes", default="truth,jittered")
    parser.add_argument("--detector", help="a detector model (adds the 'detector' boxes)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    kinds = [k for k in args.boxes.split(",") if k]
    detector = None
    if args.detector:
        from MammoDNNLib.models.detector import Detector

        detector = Detector.load(args.detector)
        args.spacing = detector.spacing_mm
        kinds.append("detector")
    rng = np.random.default_rng(0)
    # scores[box kind][type][method] -> list of Dice
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    fallbacks: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    seconds: dict = defaultdict(list)
    configs = {
        m: OutlineConfig(mass_method=m, asymmetry_method=m, fit_ellipse=False, calc_working_mm=0)
        for m in METHODS
    }
    configs.update(
        {f"{m}+fit": OutlineConfig(mass_method=m, asymmetry_method=m, fit_ellipse=True) for m in METHODS}
    )
    configs["fine"] = OutlineConfig()  # calcifications on the original pixels (calc_working_mm)
    started = time.monotonic()
    for k in range(args.phantoms):
        phantom = generate_study(study_seed(args.seed, k), args.size, DENSE)
        prepared = {
            key: prepare_view(view, PreprocessConfig(spacing_mm=args.spacing))
            for key, view in phantom.study.views.items()
        }
        found = detector.predict(prepared, tta=False) if detector is not None else {}
        for lesion in phantom.truth.lesions:
            for key, truth in lesion.views.items():
                if truth.visibility == "occult" or truth.mask is None:
                    continue
                pv = prepared[key]
                shape = pv.transform.original_size[::-1]
                boxes = {}
                if "truth" in kinds:
                    boxes["truth"] = tuple(truth.box)
                if "jittered" in kinds:
                    boxes["jittered"] = jitter(truth.box, rng, shape)
                if detector is not None:
                    x0, y0, x1, y1 = truth.box
                    hits = [
                        d
                        for d in found.get(key, [])
                        if x0 <= (d.box[0] + d.box[2]) / 2 <= x1 and y0 <= (d.box[1] + d.box[3]) / 2 <= y1
                    ]
                    if hits:
                        boxes["detector"] = max(hits, key=lambda d: d.score).box
                for kind, box in boxes.items():
                    box_prepared = tuple(pv.transform.boxes_to_prepared([box])[0])
                    scores[kind][lesion.type]["ellipse"].append(
                        dice(inscribed_ellipse(box, shape), truth.mask)
                    )
                    for method, config in configs.items():
                        # Distortions: the ellipse only; calcifications: the hull on the prepared grid and on
                        # the original pixels ("fine"); masses and asymmetries: every method.
                        if lesion.type == "distortion":
                            continue  # its outline is the inscribed ellipse (the baseline row)
                        if lesion.type == "calcification" and method not in (METHODS[0], "fine"):
                            continue
                        if lesion.type in ("mass", "asymmetry") and method == "fine":
                            continue
                        t0 = time.perf_counter()
                        pixels = phantom.study[key].pixels if method == "fine" else None
                        outline = outline_lesion(
                            pv, box_prepared, box, lesion.type, config, original_pixels=pixels
                        )
                        seconds[lesion.type].append(time.perf_counter() - t0)
                        name = method if lesion.type in ("mass", "asymmetry") else outline.attempted
                        scores[kind][lesion.type][name].append(dice(outline.original, truth.mask))
                        if outline.fallback is not None:
                            fallbacks[kind][lesion.type][name] += 1
        print(f"phantom {k + 1}/{args.phantoms} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    table = {}
    print(
        f"\nDice against the phantom's true masks (collection seed {args.seed}, {args.phantoms} {args.size} "
        f"phantoms, prepared at {args.spacing} mm); median [mean] (n, fallbacks to the ellipse)"
    )
    for kind in kinds:
        print(f"\nboxes: {kind}")
        print(f"{'type':<14} {'method':<12} {'median':>7} {'mean':>7} {'n':>5} {'fallback':>9}   vs ellipse")
        for finding_type, methods in scores[kind].items():
            base = np.asarray(methods["ellipse"])
            for method, values in methods.items():
                v = np.asarray(values)
                row = {
                    "median": float(np.median(v)),
                    "mean": float(v.mean()),
                    "n": len(v),
                    "fallbacks": int(fallbacks[kind][finding_type].get(method, 0)),
                    "mean_minus_ellipse": float(v.mean() - base.mean()),
                }
                table.setdefault(kind, {}).setdefault(finding_type, {})[method] = row
                print(
                    f"{finding_type:<14} {method:<12} {row['median']:7.3f} {row['mean']:7.3f} {row['n']:5d} "
                    f"{row['fallbacks']:9d}   {row['mean_minus_ellipse']:+.3f}"
                )
    timing = {t: float(np.median(v)) * 1000 for t, v in seconds.items()}
    print("\nmedian ms per outline: " + ", ".join(f"{t} {ms:.1f}" for t, ms in timing.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "dice": table, "median_ms": timing},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
