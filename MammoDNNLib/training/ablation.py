"""Ablations on held-out synthetic or phantom studies: four-view fusion on/off, TTA merge (none / WBF / NMS),
semi-supervised pseudo-labels on/off. Prints a JSON report; docs/detector.md quotes it.

    python -m MammoDNNLib.training.ablation --iterations 300 --seeds 0 1 --out ablation.json
    python -m MammoDNNLib.training.ablation --phantoms --train 60 --held-out 30 ...   # phantom studies

``--phantoms``: lesion-rich small phantoms (every study abnormal, two or three lesions per breast) of collection
8100 (training) and 8200 (held out), written as DICOM, converted like any phantom collection and prepared at the
configuration's spacing; lesion projections graded occult are left out as in training manifests.

Every arm trains the same small configuration (``detector-tiny-test`` unless ``--config``) on the same training
studies and is scored by the lesion FROC (:mod:`MammoDNNLib.training.metrics`) on the same held-out studies that
no arm trains or tunes on. With several seeds the mean and the per-seed values are reported: differences smaller
than the spread between seeds are not differences.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.samples import StudySample
from ..models.config import DetectorConfig, load_config
from ..models.detector import Detector
from .detector import TrainOptions, train_detector
from .metrics import evaluate_detector
from .synthetic import SyntheticSpec, synthetic_studies

log = logging.getLogger(__name__)

# Subtle masses on largely symmetric breasts: the regime where looking at the other breast and view should help.
ABLATION_SPEC = SyntheticSpec(mass_contrast=(0.12, 0.3), mass_sigma=(3.0, 6.0), shared_texture=0.9)


def _with_fusion(config: DetectorConfig, on: bool) -> DetectorConfig:
    return config.replace(fusion={"left_right": on, "cc_mlo": on, "reduction": config.fusion.reduction})


def _with_semi(config: DetectorConfig, on: bool, start: int) -> DetectorConfig:
    training = config.to_dict()["training"]
    training["semi_supervised"] = {
        **training["semi_supervised"],
        "enabled": on,
        "start_iteration": start,
        "threshold": 0.7,
        "ema_decay": 0.99,
    }
    return config.replace(training=training)


def _train_and_score(
    samples: Sequence[StudySample],
    held_out: Sequence[StudySample],
    config: DetectorConfig,
    seed: int,
    work: Path,
    tag: str,
    merges: Sequence[str],
) -> dict:
    started = time.monotonic()
    info = train_detector(
        samples, config, work / f"{tag}-seed{seed}", TrainOptions(progress=False, seed=seed)
    )
    detector = Detector.from_info(info)
    scores = {"no-tta": evaluate_detector(detector, held_out, tta=False).to_dict()}
    for merge in merges:
        scores[f"tta-{merge}"] = evaluate_detector(detector, held_out, tta=True, merge=merge).to_dict()
    scores["train_seconds"] = round(time.monotonic() - started, 1)
    return scores


def _summary(runs: list[dict], key: str) -> dict:
    values = [r[key]["mean_sensitivity"] for r in runs]
    at1 = [r[key]["sensitivity"][r[key]["fp_per_view"].index(1.0)] for r in runs]
    return {
        "mean_sensitivity": round(float(np.mean(values)), 4),
        "per_seed": values,
        "sensitivity_at_1fp": round(float(np.mean(at1)), 4),
    }


def synthetic_data(train_count: int, held_out_count: int) -> tuple[list[StudySample], list[StudySample]]:
    train = synthetic_studies(train_count, seed=1000, spec=ABLATION_SPEC)
    return train, synthetic_studies(held_out_count, seed=2000, spec=ABLATION_SPEC, prefix="heldout")


def phantom_data(
    train_count: int, held_out_count: int, spacing_mm: float, work: Path
) -> tuple[list[StudySample], list[StudySample]]:
    """Lesion-rich small phantoms of collections 8100 (train) and 8200 (held out), as prepared samples."""
    from ..data.converters.phantom import convert_phantom
    from ..data.dataset import StudyLoader
    from ..phantom import LesionConfig, PhantomConfig, generate_study, study_seed, write_study
    from ..preprocess import PreprocessConfig

    rich = PhantomConfig(
        lesions=LesionConfig(
            normal_study_fraction=0.0, second_breast_probability=1.0, lesions_per_breast_weights={"2": 0.5, "3": 0.5}
        )
    )
    loader = StudyLoader(PreprocessConfig(spacing_mm=spacing_mm))

    def collection(seed: int, count: int) -> list[StudySample]:
        folder = work / f"phantoms-{seed}"
        for k in range(count):
            write_study(generate_study(study_seed(seed, k), "small", rich), folder / f"study_{k:04d}")
        return [loader.load(entry) for entry in convert_phantom(folder).studies]

    return collection(8100, train_count), collection(8200, held_out_count)


def run_ablation(
    config: DetectorConfig,
    iterations: int,
    seeds: Sequence[int],
    train: Sequence[StudySample],
    held_out: Sequence[StudySample],
    semi_labelled: int,
    work: Path,
    data: str = "synthetic (ABLATION_SPEC)",
) -> dict:
    config = config.replace(
        training={
            **config.to_dict()["training"],
            "max_iterations": iterations,
            "checkpoint_every": iterations + 1,
        }
    )
    train = list(train)
    report: dict = {
        "iterations": iterations,
        "seeds": list(seeds),
        "train_studies": len(train),
        "held_out_studies": len(held_out),
        "config": config.name,
        "data": data,
    }
    fusion_runs = {
        on: [
            _train_and_score(
                train,
                held_out,
                _with_fusion(config, on),
                s,
                work,
                f"fusion-{on}",
                ("wbf", "nms") if on else (),
            )
            for s in seeds
        ]
        for on in (True, False)
    }
    report["fusion"] = {
        "on": _summary(fusion_runs[True], "no-tta"),
        "off": _summary(fusion_runs[False], "no-tta"),
    }
    report["tta_merge"] = {k: _summary(fusion_runs[True], k) for k in ("no-tta", "tta-wbf", "tta-nms")}
    # Semi-supervised: few labelled studies, the rest given without labels.
    labelled = train[:semi_labelled]
    unlabelled = [
        StudySample(s.study_id, {k: _unlabel(v) for k, v in s.views.items()}, False)
        for s in train[semi_labelled:]
    ]
    start = iterations // 3
    semi_runs = {
        on: [
            _train_and_score(
                labelled + (unlabelled if on else []),
                held_out,
                _with_semi(config, on, start),
                s,
                work,
                f"semi-{on}",
                (),
            )
            for s in seeds
        ]
        for on in (True, False)
    }
    report["semi_supervised"] = {
        "labelled_studies": semi_labelled,
        "unlabelled_studies": len(unlabelled),
        "on": _summary(semi_runs[True], "no-tta"),
        "off": _summary(semi_runs[False], "no-tta"),
    }
    report["raw"] = {
        "fusion_on": fusion_runs[True],
        "fusion_off": fusion_runs[False],
        "semi_on": semi_runs[True],
        "semi_off": semi_runs[False],
    }
    return report


def _unlabel(view):
    from dataclasses import replace

    return replace(view, target=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="detector-tiny-test")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--semi-labelled", type=int, default=15)
    parser.add_argument("--phantoms", action="store_true", help="phantom studies instead of synthetic ones")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the JSON report here too")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mammodnn-ablation-") as tmp:
        config = load_config(args.config)
        if args.phantoms:
            train, held_out = phantom_data(args.train, args.held_out, config.spacing_mm, Path(tmp))
            data = "lesion-rich small phantoms: collection 8100 (train), 8200 (held out)"
        else:
            (train, held_out), data = synthetic_data(args.train, args.held_out), "synthetic (ABLATION_SPEC)"
        report = run_ablation(
            config, args.iterations, args.seeds, train, held_out, args.semi_labelled, Path(tmp), data
        )
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    summary = {k: v for k, v in report.items() if k != "raw"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
