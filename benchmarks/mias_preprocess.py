"""Measure the preprocessing (breast mask, orientation, nipple, pectoral line) on all 322 mini-MIAS films.

    python benchmarks/mias_preprocess.py [--mias ../shared/data/mias] [--sheets DIR] [--json OUT.json]
                                         [--phantom N [--phantom-size small|medium|full]]

Prints, for the figures reported in docs/preprocessing.md:

* breast mask: annotated lesion centres inside the mask; bright label-like blobs (found independently:
  isolated bright regions on a dark surround) and film-edge strips overlapping the mask; mask pixels on the
  film padding;
* orientation: content-based chest-wall side against the file-number laterality convention of Info.txt;
* pectoral line: how many films have one, its angle and the nipple-to-pectoral distance; lesion centres on the
  muscle side of the line;
* nipple plausibility on all films (on the skin line, anterior-most, vertical position);
* accuracy against the manual annotations in Testing/Python/data/mias_landmarks_manual.csv (27 held-out
  films): nipple error (mm), pectoral-line distance and angle error; the alternative nipple rule (farthest
  from the pectoral line) is measured beside the default for comparison;
* time per film (median);
* with ``--phantom N``: chest-wall side, mask IoU, nipple and pectoral errors against the phantom's exact
  truth, and what the landmark errors do to lesion depth and quadrant.

``--sheets DIR`` writes contact sheets (mask outline red, pectoral line green, nipple cyan, manual points
magenta) for checking by eye.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from MammoDNNLib.landmarks import (
    LandmarkConfig,
    Landmarks,
    LineEstimate,
    PointEstimate,
    geometric_depth,
    geometric_quadrant,
)
from MammoDNNLib.preprocess import PreparedView, PreprocessConfig, original_breast_mask, prepare_view
from MammoDNNLib.study import View

REPO = Path(__file__).resolve().parents[1]
MIAS_SPACING_MM = 0.2


def load_view(mias: Path, ref: str) -> View:
    from PIL import Image

    path = mias / "png" / f"{ref}.png"
    pixels = np.asarray(Image.open(path), dtype=np.float32)
    number = int(ref[3:])
    # Info.txt's convention (odd = right, even = left); the film markers disagree on some films, which is what
    # the orientation check below measures.
    return View(
        pixels,
        (MIAS_SPACING_MM, MIAS_SPACING_MM),
        "R" if number % 2 else "L",
        "MLO",
        source=path,
        provenance={"laterality": "mini-MIAS file number parity (Info.txt)"},
    )


def read_lesions(mias: Path) -> dict[str, list[tuple[float, float, float, str]]]:
    """refnum -> [(x, row_from_top, radius, class)] for rows with coordinates."""
    lesions: dict[str, list] = {}
    with open(mias / "annotations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["x"] and row["row_from_top"]:
                lesions.setdefault(row["refnum"], []).append(
                    (float(row["x"]), float(row["row_from_top"]), float(row["radius"] or 0), row["class"])
                )
    return lesions


def read_manual(path: Path) -> dict[str, dict]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    manual = {}
    for row in csv.DictReader(lines):
        pect = None
        if row["pect_x0"]:
            pect = np.array(
                [
                    [float(row["pect_x0"]), float(row["pect_y0"])],
                    [float(row["pect_x1"]), float(row["pect_y1"])],
                ]
            )
        manual[row["refnum"]] = {
            "nipple": np.array([float(row["nipple_x"]), float(row["nipple_y"])]),
            "pectoral": pect,
        }
    return manual


def label_like_blobs(pixels: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Isolated bright objects on a dark surround (film labels, markers) and film-edge strips, found without
    the breast mask: components of pixels >= 200 whose 2 mm ring is mostly dark (median < 40)."""
    from scipy import ndimage as ndi

    bright = pixels >= 200
    labels, _ = ndi.label(bright)
    blobs, strips = [], []
    ring_px = int(round(2.0 / MIAS_SPACING_MM))
    for index, region in enumerate(ndi.find_objects(labels), start=1):
        if region is None:
            continue
        r0, r1 = max(region[0].start - ring_px, 0), min(region[0].stop + ring_px, pixels.shape[0])
        c0, c1 = max(region[1].start - ring_px, 0), min(region[1].stop + ring_px, pixels.shape[1])
        comp = labels[r0:r1, c0:c1] == index
        area_mm2 = comp.sum() * MIAS_SPACING_MM**2
        if area_mm2 < 10:
            continue
        ring = ndi.binary_dilation(comp, iterations=ring_px) & ~comp
        if np.median(pixels[r0:r1, c0:c1][ring]) >= 40:
            continue
        full = np.zeros(pixels.shape, dtype=bool)
        full[r0:r1, c0:c1] = comp
        height_mm = (region[0].stop - region[0].start) * MIAS_SPACING_MM
        width_mm = (region[1].stop - region[1].start) * MIAS_SPACING_MM
        (strips if height_mm > 100 and width_mm < 30 else blobs).append(full)
    return blobs, strips


def point_line_distance_mm(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    a, b = line * MIAS_SPACING_MM
    d = (b - a) / np.linalg.norm(b - a)
    rel = points * MIAS_SPACING_MM - a
    return np.abs(rel[:, 0] * d[1] - rel[:, 1] * d[0])


def angle_from_vertical(line: np.ndarray) -> float:
    (x0, y0), (x1, y1) = line
    return float(np.degrees(np.arctan2(abs(x1 - x0), abs(y1 - y0))))


def muscle_side(point: np.ndarray, prep: PreparedView) -> bool:
    """Whether an original-grid point lies in the pectoral triangle (chest-wall side of the line)."""
    line = prep.landmarks.pectoral
    if line is None:
        return False
    pts = prep.transform.to_prepared(np.vstack([np.asarray(line.points), point[None]]))
    (xa, ya), (xb, yb), (x, y) = pts
    if y > max(ya, yb):
        return False
    # On the prepared grid the muscle is to the left of the line (chest wall on the left).
    x_line = xa + (y - ya) * (xb - xa) / (yb - ya) if yb != ya else min(xa, xb)
    return x < x_line


def contact_sheet(out: Path, tiles: list[np.ndarray], per_row: int = 8) -> None:
    from PIL import Image

    while len(tiles) % per_row:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]
    Image.fromarray(np.vstack(rows)).save(out)


def tile(ref: str, view: View, prep: PreparedView, manual: dict | None, size: int = 256) -> np.ndarray:
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    gray = (255 * (np.clip(view.pixels, 0, 255) / 255) ** 0.6).astype(np.uint8)
    rgb = np.stack([gray] * 3, axis=-1)
    edge = find_boundaries(original_breast_mask(prep), mode="inner")
    edge |= np.roll(edge, 1, 0) | np.roll(edge, 1, 1)
    rgb[edge] = (255, 0, 0)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    if prep.landmarks.pectoral is not None:
        draw.line([tuple(p) for p in prep.landmarks.pectoral.points], fill=(0, 255, 0), width=5)
    if manual is not None and manual["pectoral"] is not None:
        draw.line([tuple(p) for p in manual["pectoral"]], fill=(255, 0, 255), width=4)
    if prep.landmarks.nipple is not None:
        x, y = prep.landmarks.nipple.xy
        draw.ellipse([x - 14, y - 14, x + 14, y + 14], outline=(0, 255, 255), width=5)
    if manual is not None:
        x, y = manual["nipple"]
        draw.ellipse([x - 10, y - 10, x + 10, y + 10], outline=(255, 0, 255), width=4)
    image = image.resize((size, size))
    ImageDraw.Draw(image).text((3, 3), f"{ref} cw:{prep.chest_wall_side[0]}", fill=(255, 255, 0))
    return np.asarray(image)


def summary(values, unit: str = "", digits: int = 1) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return "n=0"
    f = f".{digits}f"
    return (
        f"n={v.size} median {np.median(v):{f}}{unit}, mean {v.mean():{f}}{unit}, "
        f"p90 {np.percentile(v, 90):{f}}{unit}, max {v.max():{f}}{unit}"
    )


def phantom_measurement(studies: int, size: str, seed: int = 1000) -> None:
    """Landmarks and mask against the phantom's exact truth (MammoDNNLib.phantom), printed."""
    from MammoDNNLib.phantom import generate_study

    nipple_errors: dict[str, list[float]] = {"CC": [], "MLO": []}
    pectoral_errors: list[float] = []
    missed = sides_wrong = 0
    ious: list[float] = []
    depth_errors: list[float] = []
    quadrant_hits: list[bool] = []
    for k in range(studies):
        phantom = generate_study(seed=seed + k, size=size)
        for key, view in phantom.study.views.items():
            truth = phantom.truth.views[key]
            prep = prepare_view(view)
            scale = np.array([view.spacing[1], view.spacing[0]])
            sides_wrong += prep.chest_wall_side != truth.chest_wall_side
            mask = original_breast_mask(prep)
            ious.append(float((mask & truth.breast_mask).sum() / (mask | truth.breast_mask).sum()))
            lm = prep.landmarks
            if lm.nipple is not None:
                nipple_errors[view.view].append(
                    float(np.linalg.norm((np.asarray(lm.nipple.xy) - truth.nipple) * scale))
                )
            if truth.pectoral_line is not None:
                if lm.pectoral is None:
                    missed += 1
                else:
                    line = np.asarray(lm.pectoral.points) * scale
                    points = np.asarray(truth.pectoral_line) * scale
                    d = (line[1] - line[0]) / np.linalg.norm(line[1] - line[0])
                    rel = points - line[0]
                    pectoral_errors.append(float(np.abs(rel[:, 0] * d[1] - rel[:, 1] * d[0]).mean()))
            # The phantom's lesions: depth through the estimated landmarks against depth through the true ones
            # (the landmark error alone), and the geometric quadrant against the phantom's quadrant.
            if lm.nipple is not None:
                true_lm = Landmarks(
                    PointEstimate(tuple(truth.nipple), "phantom truth", 1.0),
                    None
                    if truth.pectoral_line is None
                    else LineEstimate(tuple(tuple(p) for p in truth.pectoral_line), "phantom truth", 1.0),
                    lm.chest_wall,
                    lm.spacing,
                )
                for lesion in phantom.truth.lesions_in(key):
                    centre = lesion.views[key].centre
                    depth_errors.append(
                        abs(
                            geometric_depth(centre, lm, view.view)
                            - geometric_depth(centre, true_lm, view.view)
                        )
                    )
                    quadrant_hits.append(
                        geometric_quadrant(centre, lm, view.view, mask) == lesion.views[key].quadrant
                    )
    n_views = 4 * studies
    print(f"\nPHANTOM ({studies} studies, size {size!r}, {n_views} views; MammoDNNLib.phantom truth)")
    print(f"  chest-wall side wrong: {sides_wrong} / {n_views}; breast-mask IoU: {summary(ious, digits=3)}")
    for view_name, errors in nipple_errors.items():
        print(f"  nipple error {view_name}: {summary(errors, ' mm')}")
    print(
        f"  pectoral line missed: {missed} / {2 * studies}; mean distance of the true line's two points to "
        f"the found line: {summary(pectoral_errors, ' mm')}"
    )
    if depth_errors:
        print(
            "  lesion depth through estimated vs true landmarks, absolute difference: "
            f"{summary(depth_errors, digits=3)}"
        )
        print(
            "  geometric quadrant equal to the phantom's quadrant: "
            f"{sum(quadrant_hits)} / {len(quadrant_hits)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mias", type=Path, default=REPO.parent / "shared" / "data" / "mias")
    parser.add_argument("--manual", type=Path, default=REPO / "Testing/Python/data/mias_landmarks_manual.csv")
    parser.add_argument("--sheets", type=Path, help="write contact sheets here")
    parser.add_argument("--json", type=Path, help="write per-film results here")
    parser.add_argument("--films", nargs="*", help="only these refnums (default: all 322)")
    parser.add_argument(
        "--phantom",
        type=int,
        default=0,
        metavar="N",
        help="also measure on N phantom studies (MammoDNNLib.phantom truth)",
    )
    parser.add_argument("--phantom-size", default="medium", choices=("small", "medium", "full"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    refs = args.films or sorted(p.stem for p in (args.mias / "png").glob("mdb*.png"))
    lesions = read_lesions(args.mias)
    manual = read_manual(args.manual)
    config = PreprocessConfig()
    alt_config = PreprocessConfig(landmarks=LandmarkConfig(nipple_reference="pectoral"))

    results: dict[str, dict] = {}
    tiles: list[np.ndarray] = []
    times: list[float] = []
    lesion_rows: list[dict] = []
    for ref in refs:
        view = load_view(args.mias, ref)
        start = time.perf_counter()
        prep = prepare_view(view, config)
        times.append(time.perf_counter() - start)
        mask = original_breast_mask(prep)
        rows, cols = mask.shape
        res: dict = {
            "chest_wall": prep.chest_wall_side,
            "agrees": prep.orientation.agrees_with_convention,
            "warnings": prep.warnings,
            "pectoral": prep.landmarks.pectoral is not None,
        }
        # Lesion centres.
        for x, row, _radius, kind in lesions.get(ref, []):
            c, r = min(int(x), cols - 1), min(int(row), rows - 1)
            point = np.array([x + 0.5, row + 0.5])
            lesion_rows.append(
                {
                    "ref": ref,
                    "class": kind,
                    "inside": bool(mask[r, c]),
                    "in_muscle": muscle_side(point, prep),
                    "depth": geometric_depth(point, prep.landmarks, "MLO", clip=False)
                    if prep.landmarks.nipple is not None
                    else None,
                }
            )
        # Labels, strips, padding.
        blobs, strips = label_like_blobs(view.pixels)
        res["blobs"] = len(blobs)
        res["blobs_in_mask"] = sum(int((b & mask).sum() > 0.1 * b.sum()) for b in blobs)
        res["strips"] = len(strips)
        res["strips_in_mask"] = sum(int((s & mask).sum() > 0.1 * s.sum()) for s in strips)
        res["padding_fraction"] = float((view.pixels[mask] <= 0).mean())
        # The same without the mask's one-pixel rim, where mapping the prepared mask back to the original grid
        # (nearest neighbour) moves the edge by up to a pixel.
        from scipy import ndimage as ndi

        core = ndi.binary_erosion(mask)
        res["padding_fraction_core"] = float((view.pixels[core] <= 0).sum() / max(mask.sum(), 1))
        # Landmarks.
        lm = prep.landmarks
        if lm.pectoral is not None:
            line = np.asarray(lm.pectoral.points)
            res["pectoral_angle_deg"] = angle_from_vertical(line)
            if lm.nipple is not None:
                res["nipple_pectoral_mm"] = float(point_line_distance_mm(np.asarray([lm.nipple.xy]), line)[0])
        if lm.nipple is not None:
            nipple = np.asarray(lm.nipple.xy)
            res["nipple"] = nipple.tolist()
            # Plausibility, measured on the prepared grid (chest wall on the left).
            pm = prep.breast_mask
            nx, ny = prep.transform.to_prepared(nipple[None])[0]
            cols_any = np.flatnonzero(pm.any(axis=0))
            rows_any = np.flatnonzero(pm.any(axis=1))
            depth_px = cols_any[-1] + 1 - cols_any[0]
            res["nipple_anterior_fraction"] = float((nx - cols_any[0]) / depth_px)
            res["nipple_height_fraction"] = float((ny - rows_any[0]) / (rows_any[-1] + 1 - rows_any[0]))
            from scipy import ndimage as ndi

            outside = ndi.distance_transform_edt(pm) * prep.spacing_mm
            inside = ndi.distance_transform_edt(~pm) * prep.spacing_mm
            r_, c_ = min(int(ny), pm.shape[0] - 1), min(int(nx), pm.shape[1] - 1)
            res["nipple_to_skin_mm"] = float(max(outside[r_, c_], inside[r_, c_]))
        if ref in manual:
            truth = manual[ref]
            alt = prepare_view(view, alt_config).landmarks.nipple
            res["manual"] = {
                "nipple_error_mm": None
                if lm.nipple is None
                else float(np.linalg.norm(np.asarray(lm.nipple.xy) - truth["nipple"]) * MIAS_SPACING_MM),
                "nipple_error_alt_mm": None
                if alt is None
                else float(np.linalg.norm(np.asarray(alt.xy) - truth["nipple"]) * MIAS_SPACING_MM),
                "pectoral_visible": truth["pectoral"] is not None,
            }
            if truth["pectoral"] is not None and lm.pectoral is not None:
                line = np.asarray(lm.pectoral.points)
                res["manual"]["pectoral_distance_mm"] = float(
                    point_line_distance_mm(truth["pectoral"], line).mean()
                )
                res["manual"]["pectoral_angle_error_deg"] = abs(
                    angle_from_vertical(line) - angle_from_vertical(truth["pectoral"])
                )
        results[ref] = res
        if args.sheets:
            tiles.append(tile(ref, view, prep, manual.get(ref)))

    n = len(refs)
    print(
        f"mini-MIAS preprocessing benchmark: {n} films, {MIAS_SPACING_MM} mm pixels, default PreprocessConfig"
    )
    print(f"time per film: median {np.median(times):.2f} s (max {max(times):.2f} s)")
    inside = sum(r["inside"] for r in lesion_rows)
    print(f"\nBREAST MASK\n  lesion centres inside the mask: {inside} / {len(lesion_rows)}")
    for r in lesion_rows:
        if not r["inside"]:
            print(f"    outside: {r['ref']} {r['class']}")
    blobs = sum(r["blobs"] for r in results.values())
    blobs_in = sum(r["blobs_in_mask"] for r in results.values())
    strips = sum(r["strips"] for r in results.values())
    strips_in = sum(r["strips_in_mask"] for r in results.values())
    print(
        f"  label-like bright blobs: {blobs} on {sum(r['blobs'] > 0 for r in results.values())} films, "
        f"{blobs_in} overlapping the mask (>10 % of the blob)"
    )
    print(
        f"  film-edge strips: {strips} on {sum(r['strips'] > 0 for r in results.values())} films, "
        f"{strips_in} overlapping the mask"
    )
    for ref, r in results.items():
        if r["blobs_in_mask"] or r["strips_in_mask"]:
            print(f"    {ref}: {r['blobs_in_mask']} blob(s), {r['strips_in_mask']} strip(s) in the mask")
    pad = np.array([r["padding_fraction"] for r in results.values()])
    print(
        f"  mask pixels on the film padding (value 0): median {100 * np.median(pad):.3f} %, "
        f"max {100 * pad.max():.3f} %, films above 1 %: {int((pad > 0.01).sum())}"
    )
    core = np.array([r["padding_fraction_core"] for r in results.values()])
    print(
        f"  ... not counting the mask's 1-pixel rim: median {100 * np.median(core):.3f} %, "
        f"max {100 * core.max():.3f} %, films above 0.1 %: {int((core > 0.001).sum())}"
    )
    warned = {ref: r["warnings"] for ref, r in results.items() if r["warnings"]}
    print(f"  films with warnings: {len(warned)}")

    agree = sum(r["agrees"] is True for r in results.values())
    print(f"\nORIENTATION\n  chest-wall side from content agrees with the parity laterality: {agree} / {n}")
    odd = [r for ref, r in results.items() if int(ref[3:]) % 2]
    even = [r for ref, r in results.items() if not int(ref[3:]) % 2]
    print(
        f"  odd films with the chest wall on the right: {sum(r['chest_wall'] == 'right' for r in odd)} / "
        f"{len(odd)}; even films on the left: {sum(r['chest_wall'] == 'left' for r in even)} / {len(even)}"
    )

    found = [r for r in results.values() if r["pectoral"]]
    print(f"\nPECTORAL LINE\n  found on {len(found)} / {n} films")
    print(f"  angle from vertical: {summary([r['pectoral_angle_deg'] for r in found], ' deg')}")
    print(
        "  nipple-to-pectoral distance: "
        f"{summary([r['nipple_pectoral_mm'] for r in found if 'nipple_pectoral_mm' in r], ' mm')}"
    )
    in_muscle = [r for r in lesion_rows if r["in_muscle"]]
    print(f"  lesion centres on the muscle side of the line: {len(in_muscle)} / {len(lesion_rows)}")
    for r in in_muscle:
        print(f"    {r['ref']} {r['class']} depth {r['depth']:.2f}")
    depths = [r["depth"] for r in lesion_rows if r["depth"] is not None]
    print(
        f"  lesion depth (unclipped): {summary(depths)}; outside [0, 1]: "
        f"{sum(d < 0 or d > 1 for d in depths)}"
    )

    with_nipple = [r for r in results.values() if "nipple" in r]
    print(f"\nNIPPLE (plausibility, {len(with_nipple)} / {n} films with a nipple)")
    to_skin = np.array([r["nipple_to_skin_mm"] for r in with_nipple])
    anterior = np.array([r["nipple_anterior_fraction"] for r in with_nipple])
    height = np.array([r["nipple_height_fraction"] for r in with_nipple])
    print(f"  on the skin line (<= 1 mm from the mask boundary): {int((to_skin <= 1.0).sum())}")
    print(
        "  anterior-most region (>= 95 % of the breast depth from the chest wall): "
        f"{int((anterior >= 0.95).sum())}"
    )
    print(
        f"  vertical position within the breast in [0.2, 0.9] of its height: "
        f"{int(((height >= 0.2) & (height <= 0.9)).sum())}; {summary(height)}"
    )

    rated = {ref: r["manual"] for ref, r in results.items() if "manual" in r}
    if rated:
        print(f"\nMANUAL ANNOTATIONS ({len(rated)} held-out films, {args.manual.name})")
        errors = [m["nipple_error_mm"] for m in rated.values() if m["nipple_error_mm"] is not None]
        alt = [m["nipple_error_alt_mm"] for m in rated.values() if m["nipple_error_alt_mm"] is not None]
        print(
            f"  nipple error (default, farthest from the chest wall): {summary(errors, ' mm')}; "
            f"<= 5 mm: {sum(e <= 5 for e in errors)}, <= 10 mm: {sum(e <= 10 for e in errors)}"
        )
        print(f"  nipple error (alternative, farthest from the pectoral line): {summary(alt, ' mm')}")
        visible = [m for m in rated.values() if m["pectoral_visible"]]
        detected = [m for m in visible if "pectoral_distance_mm" in m]
        found_invisible = sum(
            results[ref]["pectoral"] for ref, m in rated.items() if not m["pectoral_visible"]
        )
        print(
            f"  pectoral visible to the annotator on {len(visible)} films, found on {len(detected)} of them; "
            f"found where not visible: {found_invisible}"
        )
        print(
            f"  mean distance of the manual edge points to the found line: "
            f"{summary([m['pectoral_distance_mm'] for m in detected], ' mm')}; "
            f"<= 5 mm: {sum(m['pectoral_distance_mm'] <= 5 for m in detected)}"
        )
        print(f"  angle error: {summary([m['pectoral_angle_error_deg'] for m in detected], ' deg')}")
        for ref, m in rated.items():
            print(
                f"    {ref}: nipple {m['nipple_error_mm']:.1f} mm (alt {m['nipple_error_alt_mm']:.1f})"
                + (
                    f", pectoral {m['pectoral_distance_mm']:.1f} mm / {m['pectoral_angle_error_deg']:.1f} deg"
                    if "pectoral_distance_mm" in m
                    else ", pectoral " + ("missed" if m["pectoral_visible"] else "not visible")
                )
            )

    if args.phantom:
        phantom_measurement(args.phantom, args.phantom_size)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(tiles), 48):
            contact_sheet(args.sheets / f"sheet_{i // 48:02d}.png", tiles[i : i + 48])
        print(f"\ncontact sheets in {args.sheets}")
    if args.json:
        args.json.write_text(json.dumps({"films": results, "lesions": lesion_rows}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
