"""Held-out detection quality of a detector model: per-class FROC and per-class image-level ROC AUC.

    python benchmarks/detector_eval.py --model mammodnn-detector --data phantoms_heldout.json --split test
    python benchmarks/detector_eval.py --model mammodnn-detector --data mias.json --split heldout
        [--no-tta] [--threads 2] [--bootstrap 1000] [--cache DIR] [--json OUT]
    python benchmarks/detector_eval.py --checkpoint RUN/checkpoints/member-0/checkpoint-0000500.json --data ...
        # a training checkpoint (with RUN/config.json): how a run is doing, before it has a model folder

Each view of the manifest's ``--split`` studies is prepared as the detector was trained (its config's spacing)
and detected with test-time flips and the ensemble (``--no-tta``: without flips). A detection hits a lesion when
its centre lies in the lesion's box (:class:`MammoDNNLib.evaluation.froc.HitCriterion`). Per class (a
detection counts for its own class only): sensitivity at 0.25, 0.5, 1 and 2 false positives per image, with
bootstrap CIs over studies, and the image-level ROC AUC (an image is positive for a class when it holds a lesion
of that class; its score is its highest detection score of that class) with the DeLong 95 % CI. Lesions known
only at image level (no box, e.g. four mini-MIAS calcification/circumscribed rows) count for the image-level AUC;
their images are left out of the FROC (their false positives cannot be told). ``--split heldout`` is allowed here because this script only measures; nothing is tuned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FPI = (0.25, 0.5, 1.0, 2.0)


def checkpoint_detector(checkpoint: Path):
    """A one-member detector from a training checkpoint (``checkpoint-NNNNNNN.json`` of ``mammodnn train``)."""
    from safetensors.torch import load_file

    from MammoDNNLib.models.config import load_config
    from MammoDNNLib.models.detector import Detector
    from MammoDNNLib.models.network import FourViewFasterRCNN

    weights = checkpoint.with_suffix(".safetensors")
    if not (checkpoint.is_file() and weights.is_file()):
        raise SystemExit(f"{checkpoint}: no such checkpoint (needs the .json and its .safetensors)")
    run = checkpoint.resolve().parents[2]  # RUN/checkpoints/member-K/checkpoint-*.json
    config = load_config(run / "config.json")
    model = FourViewFasterRCNN(config, load_pretrained=False)
    tensors = load_file(str(weights))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    return Detector(config, [model.eval()])


def detect_split(detector, manifest_path: Path, split: str, *, tta: bool, cache: Path | None) -> dict[str, Any]:
    """Run the detector over the split; lesions, detections and image names for the FROC/ROC functions."""
    from MammoDNNLib.data.dataset import StudyDataset, StudyLoader
    from MammoDNNLib.data.manifest import load_manifest
    from MammoDNNLib.evaluation.froc import Detection, Lesion
    from MammoDNNLib.preprocess import PreprocessConfig
    from MammoDNNLib.vocabulary import class_key

    manifest = load_manifest(manifest_path)
    loader = StudyLoader(PreprocessConfig(spacing_mm=detector.config.spacing_mm), cache)
    dataset = StudyDataset(manifest, loader, splits=(split,), allow_heldout=split == "heldout")
    if len(dataset) == 0:
        raise SystemExit(f"{manifest_path}: no studies with images in split {split!r}")
    entries = {study.id: study for study in dataset.studies}
    lesions, detections, images, froc_images, cases, image_level = [], [], [], [], {}, []
    started = time.perf_counter()
    for index in range(len(dataset)):
        sample = dataset[index]
        found = detector.predict_images(
            {k: v.image for k, v in sample.views.items()},
            {k: v.breast_mask for k, v in sample.views.items()},
            tta=tta,
        )
        for key, view in sample.views.items():
            name = f"{sample.study_id}/{key}"
            images.append(name)
            cases[name] = sample.study_id
            target = view.target
            if target is not None:  # None: a lesion without a location; its false positives cannot be told
                froc_images.append(name)
                for box, label, lesion_id in zip(target.boxes, target.labels, target.lesion_ids):
                    lesions.append(Lesion(name, tuple(float(v) for v in box), lesion_id, class_key(int(label))))
            boxes = found[key]
            for box, score, label in zip(boxes.boxes, boxes.scores, boxes.labels):
                detections.append(Detection(name, float(score), tuple(float(v) for v in box), class_key(int(label))))
            entry = entries[sample.study_id].views.get(key)
            for lesion in getattr(entry, "lesions", None) or []:
                if lesion.box is None:  # known only at image level
                    image_level.append(Lesion(name, (0.0, 0.0, 0.0, 0.0), lesion.id, lesion.type))
        print(f"  {index + 1}/{len(dataset)} studies", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {
        "lesions": lesions,
        "image_level_lesions": image_level,
        "detections": detections,
        "images": images,
        "froc_images": froc_images,
        "cases": cases,
        "studies": len(dataset),
        "seconds_per_view": (time.perf_counter() - started) / max(len(images), 1),
    }


def summarize(found: dict[str, Any], *, bootstrap: int) -> dict[str, Any]:
    from MammoDNNLib.evaluation.froc import FrocConfig, froc, image_level_roc
    from MammoDNNLib.vocabulary import FINDING_TYPES

    config = FrocConfig(fpi=FPI, n_bootstrap=bootstrap)
    result = froc(
        found["lesions"], found["detections"], images=found["froc_images"], cases=found["cases"], config=config
    )
    out: dict[str, Any] = {
        "studies": found["studies"],
        "images": len(found["images"]),
        "seconds_per_view": found["seconds_per_view"],
        "all": _froc_row(result),
        "classes": {},
    }
    every_lesion = found["lesions"] + found["image_level_lesions"]
    for kind in (t.key for t in FINDING_TYPES):
        row: dict[str, Any] = {"lesions": sum(1 for lesion in found["lesions"] if lesion.type == kind)}
        if kind in result.by_type:
            row.update(_froc_row(result.by_type[kind]))
        try:
            curve = image_level_roc(every_lesion, found["detections"], images=found["images"], type=kind)
        except ValueError as error:  # no positive (or no negative) image of this class
            row["auc"], row["auc_note"] = None, str(error)
        else:
            row["auc"] = curve.auc
            row["auc_ci95"] = list(curve.ci)
            row["positive_images"] = curve.n_positive
        out["classes"][kind] = row
    return out


def _froc_row(result) -> dict[str, Any]:
    return {
        "lesions": result.n_lesions,
        "sensitivity": {f"{p.fpi:g}": p.sensitivity for p in result.points},
        "sensitivity_ci95": {f"{p.fpi:g}": p.ci for p in result.points},
    }


def format_table(summary: dict[str, Any]) -> str:
    header = f"{'class':<15}{'lesions':>8}" + "".join(f"{'FPI ' + f'{f:g}':>10}" for f in FPI) + f"{'AUC (95% CI)':>24}"
    lines = [header, "-" * len(header)]
    rows = {"all": summary["all"], **summary["classes"]}
    for name, row in rows.items():
        sens = row.get("sensitivity") or {}
        cells = "".join(f"{sens.get(f'{f:g}', float('nan')):>10.3f}" for f in FPI)
        auc = row.get("auc")
        auc_text = "" if auc is None else f"{auc:.3f} ({row['auc_ci95'][0]:.3f}-{row['auc_ci95'][1]:.3f})"
        lines.append(f"{name:<15}{row.get('lesions', 0):>8}{cells}{auc_text:>24}")
    lines.append(
        f"{summary['studies']} studies, {summary['images']} images, {summary['seconds_per_view']:.2f} s per view"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mammodnn-detector", help="detector model name or folder")
    parser.add_argument("--checkpoint", type=Path, help="a training checkpoint (.json) instead of --model")
    parser.add_argument("--data", type=Path, required=True, help="manifest (mammodnn data convert ...)")
    parser.add_argument("--split", default="test", help="manifest split to measure (test, heldout, ...)")
    parser.add_argument("--no-tta", action="store_true", help="without test-time flips")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the FROC CIs")
    parser.add_argument("--cache", type=Path, default=None, help="cache of prepared images")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.checkpoint:
        detector, name = checkpoint_detector(args.checkpoint), str(args.checkpoint)
    else:
        from MammoDNNLib.models.registry import load_model

        detector, name = load_model(args.model), str(args.model)
    found = detect_split(detector, args.data, args.split, tta=not args.no_tta, cache=args.cache)
    summary = summarize(found, bootstrap=args.bootstrap)
    summary.update(model=name, data=str(args.data), split=args.split, tta=not args.no_tta)
    print(format_table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
