"""Held-out evaluation of the lesion localization model: quadrant accuracy per view position and depth MAE for
the network, the geometric landmark estimate and their combination, on true and on detection-like lesion
masks; and the CPU time per lesion (network alone vs the full prediction with the geometric estimate), side by
side.

Run (the defaults measure the shipped model on the model card's held-out phantoms)::

    python benchmarks/localization_eval.py [--model PATH] [--heldout-phantoms 60] [--size small]
        [--heldout-seed 20261124] [--cache DIR] [--json RESULT.json] [--timing-lesions 40]

Held-out phantoms and their cache: ``lesion_common.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from lesion_common import SHIPPED_MODELS, add_heldout_arguments, heldout_lesions, latest_model, write_result

DEFAULT_MODEL = SHIPPED_MODELS / "mammodnn-localization"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def timing(model, lesions, n: int, threads: int) -> dict:
    """Median milliseconds per lesion: network only (one lesion per call), full ``predict`` (one lesion, with
    fitting the view and the geometric estimate), and ``predict_batch`` per view divided by its lesions."""
    import torch

    from MammoDNNLib.models.lesion_inputs import localization_input
    from MammoDNNLib.training.lesion_networks import _Float32View

    torch.set_num_threads(threads)
    records = lesions.records[:n]
    views = {r.view_index: _Float32View(lesions.view_of(r)) for r in records}
    network, full, batch = [], [], []
    for r in records:
        view = views[r.view_index]
        x = localization_input(view.image, r.mask, model.config.inputs)[None]
        network.append(_median_ms(lambda x=x, view=view: model.network_outputs(x, [view.view]), 3))
        full.append(_median_ms(lambda view=view, r=r: model.predict(view, r.mask, view.view), 3))
    by_view: dict[int, list] = {}
    for r in records:
        by_view.setdefault(r.view_index, []).append(r.mask)
    for index, masks in by_view.items():
        view = views[index]
        timed = _median_ms(lambda view=view, masks=masks: model.predict_batch(view, masks, view.view), 3)
        batch.append(timed / len(masks))
    out = {
        "lesions": len(records),
        "threads": threads,
        "network_only_ms": round(statistics.median(network), 2),
        "predict_ms": round(statistics.median(full), 2),
        "predict_batch_ms_per_lesion": round(statistics.median(batch), 2),
    }
    out["predict_vs_network_ratio"] = round(out["predict_ms"] / max(out["network_only_ms"], 1e-9), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder (default: shipped)")
    add_heldout_arguments(parser)
    args = parser.parse_args(argv)

    import torch

    from MammoDNNLib.models.localization import LocalizationModel
    from MammoDNNLib.training.lesion_networks import evaluate_localization

    torch.set_num_threads(args.threads)
    model = LocalizationModel.load(latest_model(args.model))
    lesions = heldout_lesions(args, model.spacing_mm)
    result = {
        "model": str(model.info.path),
        "heldout": lesions.source,
        "lesions": lesions.summary(),
        "true_masks": evaluate_localization(model, lesions),
        "perturbed_masks": evaluate_localization(model, lesions, perturb_seed=args.perturb_seed),
    }
    if args.timing_lesions:
        result["timing"] = timing(model, lesions, args.timing_lesions, args.threads)
    for key in ("true_masks", "perturbed_masks"):
        figures = result[key]
        print(
            f"\n== {key.replace('_', ' ')} ({figures['lesion_views']} lesion views; configured estimators "
            f"{figures['estimators']})"
        )
        print(f"{'quadrant':10} {'n':>5} {'network':>8} {'geometric':>10} {'combined':>9} {'configured':>11}")
        for view, q in figures["quadrant_accuracy"].items():
            print(
                f"{view:10} {q['n']:5d} {q['network']:8.3f} {q.get('geometric', float('nan')):10.3f} "
                f"{q.get('combined', float('nan')):9.3f} {q['configured']:11.3f}"
            )
        print(
            f"{'depth MAE':10} {'n':>5} {'network':>8} {'geometric':>10} {'combined':>9} {'configured':>11}"
        )
        for view, d in figures["depth_mae"].items():
            print(
                f"{view:10} {d['n']:5d} {d['network']:8.4f} {d.get('geometric', float('nan')):10.4f} "
                f"{d.get('combined', float('nan')):9.4f} {d['configured']:11.4f}"
            )
    if "timing" in result:
        t = result["timing"]
        print(
            f"\nCPU ({t['threads']} thread), median per lesion over {t['lesions']}: "
            f"network {t['network_only_ms']} ms, "
            f"predict {t['predict_ms']} ms (x{t['predict_vs_network_ratio']}), predict_batch "
            f"{t['predict_batch_ms_per_lesion']} ms"
        )
    write_result(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
