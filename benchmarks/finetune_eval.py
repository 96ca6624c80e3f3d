"""Does fine-tuning on an annotator's corrections improve the detector? Measured on phantoms, end to end.

1. **Start model**: ``detector-tiny-test`` (1 mm pixels) trained on phantoms with **masses only**.
2. **Annotation**: the start model analyzes phantom studies of the target mix (masses, asymmetries, architectural
   distortions; calcification specks vanish at 1 mm pixels, so they are left out) through the real MRML scene
   (``slicer-core``), one scene per study. A simulated annotator who knows the phantom's truth reviews every
   finding it was shown (score >= 0.3, at most 4 per view) with :class:`MammoDNNLib.scene.review.ReviewSession`:
   a finding whose centre lies in a visible truth lesion gets the truth outline painted over the model's box
   (and its type corrected) and is accepted; duplicates and false positives are rejected; missed visible lesions
   are added; the CC/MLO projections of one lesion are linked. Each scene is exported with
   :func:`MammoDNNLib.scene.corrections.export_corrections` into one manifest. The *uncorrected* arm exports the
   same scenes with every model finding accepted as it is (the model's own output as labels).
   Training and annotation studies are lesion-rich (every study abnormal, 2-3 lesions per breast).
3. **Fine-tuning**: :func:`MammoDNNLib.cli.finetune.finetune_detector` (``mammodnn finetune``) from the start
   model on each manifest, the same iterations, at each learning-rate factor (0.1 = the command's default).
4. **Held-out evaluation** on new phantoms of the target mix (also with normal breasts and studies): lesion-level
   FROC (:func:`MammoDNNLib.evaluation.froc.froc`, centre hit, mean sensitivity over 1/8-8 false positives per
   view, bootstrap CIs over studies) and per-view ROC AUC (:func:`~MammoDNNLib.evaluation.froc.image_level_roc`),
   each *type-agnostic* (any detection finds a lesion) and *typed* (only a detection of the lesion's type, macro
   mean over the types); the mean probability the model gives a held-out lesion's own type for the types the
   start model never saw; and a chance row (random lesion-sized boxes in the breast, random scores and types).

Run (on an idle two-core machine about 10 minutes; under load much longer)::

    python benchmarks/finetune_eval.py --out /tmp/finetune-eval [--threads 1] [--quick]
        [--lr-factors 0.1,1.0] [--pretrain-iterations N] [--finetune-iterations N]

It prints a table and writes ``results.json`` with every number. ``--quick`` is the small configuration of the slow
test (``Testing/Python/test_finetune.py``). Not a timing benchmark: the numbers are detection quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("finetune_eval")

# The study's lesion types that a 1 mm detector can see: calcification specks (0.1-0.5 mm) vanish at 1 mm pixels,
# so the target mix leaves them out (their weights in the phantom's default mix go to the other types).
TARGET_MIX = {"mass": 0.45, "asymmetry": 0.25, "distortion": 0.30}


@dataclass
class ExperimentConfig:
    spacing_mm: float = 1.0  # phantom pixel size (the tiny detector works at 1 mm)
    pretrain_studies: int = 24
    annotate_studies: int = 16
    heldout_studies: int = 24
    pretrain_mix: dict[str, float] = field(default_factory=lambda: {"mass": 1.0})
    target_mix: dict[str, float] = field(default_factory=lambda: dict(TARGET_MIX))
    # Lesion-rich studies (every study abnormal, both breasts, 2-3 lesions each): more lesions per CPU second.
    normal_study_fraction: float = 0.0
    second_breast_probability: float = 1.0
    lesions_per_breast: dict[str, float] = field(default_factory=lambda: {"2": 0.5, "3": 0.5})
    # Held-out studies also have normal breasts and studies, so that the per-view ROC has negative views.
    heldout_normal_fraction: float = 0.25
    heldout_second_breast_probability: float = 0.5
    detector_config: str = "detector-tiny-test"
    start_model: str | None = None  # a model name or folder to start from instead of training one
    pretrain_iterations: int = 600
    finetune_iterations: int = 200
    # Learning rate = the start model's x factor; both arms are fine-tuned at each (0.1 is mammodnn finetune's
    # default).
    lr_factors: tuple[float, ...] = (0.1, 1.0)
    shown_score: float = 0.3  # findings the annotator sees: detections at or above this score ...
    shown_per_view: int = 4  # ... at most this many per view
    bootstrap: int = 200
    seed: int = 0

    @classmethod
    def quick(cls) -> ExperimentConfig:
        return cls(
            pretrain_studies=6,
            annotate_studies=6,
            heldout_studies=8,
            pretrain_iterations=150,
            finetune_iterations=200,
            lr_factors=(1.0,),
            bootstrap=0,
        )


# ------------------------------------------------------------------------------------------------------------
# phantoms


def make_phantoms(
    folder: Path,
    count: int,
    first_seed: int,
    mix: dict[str, float],
    cfg: ExperimentConfig,
    *,
    heldout: bool = False,
) -> list:
    """``count`` phantom studies written as DICOM under ``folder`` (kept in memory too)."""
    from MammoDNNLib.phantom import LesionConfig, PhantomConfig, generate_study, write_study

    lesions = LesionConfig(
        type_weights=dict(mix),
        normal_study_fraction=cfg.heldout_normal_fraction if heldout else cfg.normal_study_fraction,
        second_breast_probability=cfg.heldout_second_breast_probability
        if heldout
        else cfg.second_breast_probability,
        lesions_per_breast_weights=dict(cfg.lesions_per_breast),
    )
    config = PhantomConfig(spacing_mm=cfg.spacing_mm, lesions=lesions)
    studies = []
    for index in range(count):
        phantom = generate_study(first_seed + index, size="small", config=config)
        write_study(phantom, folder / f"study_{index:03d}")
        studies.append((phantom, folder / f"study_{index:03d}"))
    return studies


def visible_lesions(phantom, key: str) -> list:
    """(lesion, its projection) pairs a reader would mark in ``key`` (the converter's rule: not occult)."""
    return [
        (lesion, lesion.views[key])
        for lesion in phantom.truth.lesions
        if key in lesion.views and lesion.views[key].visibility != "occult"
    ]


# ------------------------------------------------------------------------------------------------------------
# models


def train_start_model(studies: list, out: Path, cfg: ExperimentConfig) -> Path:
    from MammoDNNLib.data.converters.phantom import convert_phantom
    from MammoDNNLib.data.dataset import StudyDataset, StudyLoader
    from MammoDNNLib.data.manifest import merge, save_manifest
    from MammoDNNLib.models.config import load_config
    from MammoDNNLib.preprocess import PreprocessConfig
    from MammoDNNLib.training.detector import TrainOptions, train_detector

    manifest = merge(*[convert_phantom(folder) for _, folder in studies])
    save_manifest(manifest, out / "pretrain.json")
    config = load_config(cfg.detector_config)
    config = config.replace(
        training={
            **config.to_dict()["training"],
            "max_iterations": cfg.pretrain_iterations,
            "checkpoint_every": cfg.pretrain_iterations,
        }
    )
    dataset = StudyDataset(
        manifest, StudyLoader(PreprocessConfig(spacing_mm=config.spacing_mm), out / "cache")
    )
    folder = out / "start-model"
    train_detector(
        dataset,
        config,
        folder,
        TrainOptions(name="phantom-start", version="1.0.0", seed=cfg.seed, progress=False, device="cpu"),
    )
    return folder


def detect(detector, study) -> dict[str, list]:
    from MammoDNNLib.preprocess import PreprocessConfig, prepare_view

    config = PreprocessConfig(spacing_mm=detector.spacing_mm)
    prepared = {key: prepare_view(view, config) for key, view in study.views.items()}
    return detector.predict(prepared, tta=False)


def model_report(study, detections: dict[str, list], cfg: ExperimentConfig, model_name: str):
    """The detector's findings as the report the scene shows (boxes only; no matching, no malignancy)."""
    from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo

    findings = []
    numbers = {"R": 0, "L": 0}
    for key in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
        view = study.views.get(key)
        if view is None:
            continue
        rows, cols = view.pixels.shape
        shown = [d for d in detections.get(key, []) if d.score >= cfg.shown_score][: cfg.shown_per_view]
        for d in shown:
            x0, y0, x1, y1 = d.box
            box = (max(0.0, x0), max(0.0, y0), min(float(cols), x1), min(float(rows), y1))
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            numbers[view.laterality] += 1
            findings.append(
                Finding(
                    f"lesion_{len(findings) + 1:03d}",
                    key,
                    d.label,
                    d.score,
                    box,
                    number=numbers[view.laterality],
                )
            )
    views = [
        ViewInfo(key, str(v.source) if v.source else None, v.laterality, v.view, v.size, v.spacing)
        for key, v in study.views.items()
    ]
    empty = Summary(None, "1", 0)
    return Report(
        ModelInfo(model_name, "1.0.0", "0" * 64),
        views,
        findings,
        {"R": empty, "L": empty},
        empty,
        created="finetune-eval",
    )


# ------------------------------------------------------------------------------------------------------------
# the annotator


def annotate(
    app, phantom, folder: Path, detector, out: Path, cfg: ExperimentConfig, *, corrected: bool
) -> dict:
    """Analyze one phantom study in the scene, review it like an annotator with the truth (or accept everything),
    and export the corrections into ``out``. Returns what the annotator did."""
    from MammoDNNLib.scene.corrections import export_corrections
    from MammoDNNLib.scene.logic import AnalysisLogic
    from MammoDNNLib.scene.review import ReviewSession

    logic = AnalysisLogic(
        app.scene,
        analysis_function=lambda study, **options: model_report(
            study, detect(detector, study), cfg, "phantom-start"
        ),
        show_layout=False,
    )
    logic.analyze([folder / v.file for v in phantom.truth.views.values()])
    review = ReviewSession(app.scene, annotator="simulated annotator" if corrected else "accept-all")
    actions = {"accepted": 0, "retyped": 0, "rejected": 0, "added": 0, "linked": 0}
    if not corrected:
        for item in review.items():
            review.accept(item.id)
            actions["accepted"] += 1
    else:
        found: dict[tuple[str, str], str] = {}  # (truth lesion id, view key) -> finding id
        items = sorted(review.items(), key=lambda i: -i.score)
        for key in phantom.truth.views:
            info = phantom.truth.views[key]
            shape = (info.size[1], info.size[0])
            truths = visible_lesions(phantom, key)
            for item in [i for i in items if i.view_key == key]:
                mask = review.current_mask(item.id)
                x0, y0, x1, y1 = mask.box
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                hit = next(
                    (
                        lesion
                        for lesion, seen in truths
                        if (lesion.id, key) not in found
                        and seen.box[0] <= cx <= seen.box[2]
                        and seen.box[1] <= cy <= seen.box[3]
                    ),
                    None,
                )
                if hit is None:
                    review.reject(
                        item.id,
                        note="false positive"
                        if all(
                            not (s.box[0] <= cx <= s.box[2] and s.box[1] <= cy <= s.box[3]) for _, s in truths
                        )
                        else "duplicate",
                    )
                    actions["rejected"] += 1
                    continue
                review.set_outline(item.id, hit.views[key].mask.full(shape))
                if item.type != hit.type:
                    review.set_type(item.id, hit.type)
                    actions["retyped"] += 1
                review.accept(item.id)
                actions["accepted"] += 1
                found[(hit.id, key)] = item.id
            for lesion, seen in truths:
                if (lesion.id, key) not in found:
                    found[(lesion.id, key)] = review.add_lesion(key, lesion.type, mask=seen.mask.full(shape))
                    actions["added"] += 1
        for lesion in phantom.truth.lesions:
            ids = [found.get((lesion.id, key)) for key in lesion.views]
            ids = [i for i in ids if i]
            if len(ids) == 2:
                review.link(*ids)
                actions["linked"] += 1
    export_corrections(app.scene, out, annotator=review.annotator, coco=False, dicom=False)
    return actions


# ------------------------------------------------------------------------------------------------------------
# evaluation


def evaluate(model: Path | None, studies: list, cfg: ExperimentConfig) -> dict[str, Any]:
    """Held-out FROC and per-view ROC of ``model`` (``None``: chance, see :func:`chance_detections`),
    type-agnostic (a detection of any type finds a lesion) and typed (per finding type: only detections of the
    lesion's type count; macro-averaged over the types)."""
    from MammoDNNLib.evaluation.froc import Detection, FrocConfig, Lesion, froc
    from MammoDNNLib.models.detector import Detector

    detector = Detector.load(str(model)) if model is not None else None
    rng = np.random.default_rng([cfg.seed, 7])
    lesions, detections, images, cases = [], [], [], {}
    new_type_probabilities = []
    for phantom, _ in studies:
        found = detect(detector, phantom.study) if detector else chance_detections(phantom.study, rng, cfg)
        for key in phantom.study.views:
            image = f"{phantom.truth.study_id}/{key}"
            images.append(image)
            cases[image] = phantom.truth.study_id
            for lesion, seen in visible_lesions(phantom, key):
                lesions.append(Lesion(image, tuple(seen.box), lesion.id, lesion.type))
                if lesion.type not in cfg.pretrain_mix:
                    new_type_probabilities.append(
                        _type_probability(found.get(key, []), seen.box, lesion.type)
                    )
            for d in found.get(key, []):
                detections.append(Detection(image, d.score, tuple(d.box), d.label))
    result = froc(lesions, detections, images=images, cases=cases,
                  config=FrocConfig(n_bootstrap=cfg.bootstrap, seed=cfg.seed))  # fmt: skip
    types = sorted({lesion.type for lesion in lesions})
    typed_auc = {kind: _auc(lesions, detections, images, kind) for kind in types}
    return {
        "mean_sensitivity": result.mean_sensitivity,
        "sensitivity": {str(p.fpi): p.sensitivity for p in result.points},
        "ci": {str(p.fpi): p.ci for p in result.points},
        "auc": _auc(lesions, detections, images, None),
        "typed_mean_sensitivity": float(np.mean([result.by_type[k].mean_sensitivity for k in types])),
        "typed_auc": float(np.nanmean(list(typed_auc.values()))),
        # a model's probability of the lesion's own type (chance has no probabilities: None)
        "new_type_probability": float(np.mean(new_type_probabilities))
        if new_type_probabilities and detector is not None
        else None,
        "detections_per_view": len(detections) / max(len(images), 1),
        "lesions": result.n_lesions,
        "images": result.n_images,
        "by_type": {
            k: {
                "mean_sensitivity": v.mean_sensitivity,
                "lesions": v.n_lesions,
                "sensitivity_at_1": v.sensitivity_at(1.0),
                "auc": typed_auc.get(k),
            }
            for k, v in result.by_type.items()
        },
    }


@dataclass(frozen=True)
class _RandomDetection:
    score: float
    box: tuple[float, float, float, float]
    label: str
    probabilities: dict[str, float]


def chance_detections(
    study, rng: np.random.Generator, cfg: ExperimentConfig, per_view: int = 20
) -> dict[str, list]:
    """The chance baseline: ``per_view`` lesion-sized boxes (10-40 mm) centred at random breast pixels, with
    random scores and types of the target mix."""
    kinds = list(cfg.target_mix)
    weights = np.array([cfg.target_mix[k] for k in kinds], dtype=float)
    out = {}
    for key, view in study.views.items():
        pixels = view.pixels.astype(np.float64)
        rows, cols = np.nonzero(pixels > pixels.min() + 0.1 * (pixels.max() - pixels.min()))
        pick = rng.integers(0, len(rows), per_view)
        half = rng.uniform(5.0, 20.0, per_view) / float(view.spacing[1])
        found = []
        for r, c, h, s in zip(rows[pick], cols[pick], half, rng.random(per_view)):
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            found.append(_RandomDetection(float(s), (c + 0.5 - h, r + 0.5 - h, c + 0.5 + h, r + 0.5 + h), kind,
                                          {kind: float(s)}))  # fmt: skip
        out[key] = sorted(found, key=lambda d: -d.score)
    return out


def _auc(lesions, detections, images, kind: str | None) -> float:
    from MammoDNNLib.evaluation.froc import image_level_roc

    try:
        return float(image_level_roc(lesions, detections, images=images, type=kind).auc)
    except ValueError:  # every view holds such a lesion, or none does
        return float("nan")


def _type_probability(found: list, box, kind: str) -> float:
    """The highest probability of ``kind`` among the detections centred in the lesion's box (0 if none)."""
    best = 0.0
    for d in found:
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        if box[0] <= cx <= box[2] and box[1] <= cy <= box[3]:
            best = max(best, float(d.probabilities.get(kind, 0.0)))
    return best


# ------------------------------------------------------------------------------------------------------------
# the experiment


def run_experiment(cfg: ExperimentConfig, out: Path, progress=print) -> dict[str, Any]:
    from MammoDNNLib.cli.finetune import FinetuneOptions, finetune_detector
    from MammoDNNLib.models.detector import Detector
    from MammoDNNLib.scene.headless import create_headless_slicer

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        timings[name] = round(time.monotonic() - started, 1)
        progress(f"{name}: {timings[name]} s")
        started = time.monotonic()

    pretrain = []
    if cfg.start_model is None:
        pretrain = make_phantoms(
            out / "phantoms" / "pretrain", cfg.pretrain_studies, 10_000, cfg.pretrain_mix, cfg
        )
    annotate_set = make_phantoms(
        out / "phantoms" / "annotate", cfg.annotate_studies, 20_000, cfg.target_mix, cfg
    )
    heldout = make_phantoms(
        out / "phantoms" / "heldout", cfg.heldout_studies, 30_000, cfg.target_mix, cfg, heldout=True
    )
    lap("phantoms")
    if cfg.start_model is None:
        start = train_start_model(pretrain, out, cfg)
    else:
        from MammoDNNLib.models.registry import resolve_model

        start = resolve_model(cfg.start_model)
    lap("start model")

    detector = Detector.load(str(start))
    actions = {}
    for arm, corrected in (("corrected", True), ("uncorrected", False)):
        totals: dict[str, int] = {}
        for phantom, folder in annotate_set:
            app = create_headless_slicer()  # one scene per study, as an annotator opens one study at a time
            for k, v in annotate(app, phantom, folder, detector, out / arm, cfg, corrected=corrected).items():
                totals[k] = totals.get(k, 0) + v
        actions[arm] = totals
    lap("annotation in the scene")

    models = {"start": start}
    runs = [(arm, factor) for factor in cfg.lr_factors for arm in ("corrected", "uncorrected")]
    for arm, factor in runs:
        name = f"{arm} (lr x{factor:g})"
        target = out / f"model-{arm}-{factor:g}"
        options = FinetuneOptions(iterations=cfg.finetune_iterations, lr_factor=factor, seed=cfg.seed,
                                  progress=False, device="cpu", version=f"1.0.0-{arm}-{factor:g}",
                                  cache=out / "cache")  # fmt: skip
        finetune_detector(start, out / arm / "corrections.json", target, options)
        models[name] = target
        lap(f"fine-tuning ({name})")
    results = {"chance": evaluate(None, heldout, cfg)}
    results.update({name: evaluate(path, heldout, cfg) for name, path in models.items()})
    lap("held-out evaluation")
    truth_counts: dict[str, int] = {}
    for phantom, _ in annotate_set:
        for key in phantom.truth.views:
            for lesion, _ in visible_lesions(phantom, key):
                truth_counts[lesion.type] = truth_counts.get(lesion.type, 0) + 1
    return {
        "config": dataclasses.asdict(cfg),
        "annotation": actions,
        "annotation_truth_lesions": truth_counts,
        "results": results,
        "timings_s": timings,
    }


def format_table(summary: dict[str, Any]) -> str:
    config = summary["config"]
    lines = [
        f"fine-tuning: {config['finetune_iterations']} iterations at the start model's learning rate x the factor",
        (
            "type-agnostic: a detection of any type finds a lesion; typed: only one of the lesion's type (macro mean "
            "over types)"
        ),
        (
            f"{'model':23s} {'mean sens':>9s} {'sens@1 [95% CI]':>20s} {'view AUC':>8s} {'typed sens':>10s} "
            f"{'typed AUC':>9s} {'P(new type)':>11s}   per type: mean sens (AUC)"
        ),
    ]
    for name, r in summary["results"].items():
        ci = r["ci"]["1.0"]
        interval = (
            f"{r['sensitivity']['1.0']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"
            if ci
            else f"{r['sensitivity']['1.0']:.3f}"
        )
        types = "  ".join(
            f"{k[:4]} {v['mean_sensitivity']:.2f} ({v['auc']:.2f})" for k, v in sorted(r["by_type"].items())
        )
        lines.append(
            f"{name:23s} {r['mean_sensitivity']:9.3f} {interval:>20s} {r['auc']:8.3f} "
            f"{r['typed_mean_sensitivity']:10.3f} {r['typed_auc']:9.3f} {_optional(r['new_type_probability']):>11s}   "
            f"{types}"
        )
    first = next(iter(summary["results"].values()))
    lines.append(
        f"held-out: {first['images']} views, {first['lesions']} visible lesions; mean sens = mean over "
        "FPI 1/8..8 per view; P(new type) = mean probability of a lesion's own type (types the start model "
        "never saw) at held-out lesions"
    )
    lines.append(f"annotator actions: {json.dumps(summary['annotation'])}")
    return "\n".join(lines)


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mammodnn-finetune-eval"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the small configuration of the slow test")
    parser.add_argument("--keep", action="store_true", help="keep an existing --out folder's contents")
    parser.add_argument(
        "--lr-factors", help="comma-separated learning-rate factors (both arms are fine-tuned at each)"
    )
    parser.add_argument("--pretrain-iterations", type=int)
    parser.add_argument(
        "--start-model", help="start from this model (name or folder) instead of training one"
    )
    parser.add_argument(
        "--spacing", type=float, help="phantom pixel size in mm (default 1; match the model's)"
    )
    parser.add_argument("--finetune-iterations", type=int)
    parser.add_argument("--seed", type=int, help="phantom collections and training seed (default 0)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    cfg = ExperimentConfig.quick() if args.quick else ExperimentConfig()
    if args.lr_factors:
        cfg = dataclasses.replace(cfg, lr_factors=tuple(float(v) for v in args.lr_factors.split(",")))
    if args.pretrain_iterations:
        cfg = dataclasses.replace(cfg, pretrain_iterations=args.pretrain_iterations)
    if args.finetune_iterations:
        cfg = dataclasses.replace(cfg, finetune_iterations=args.finetune_iterations)
    if args.start_model:
        cfg = dataclasses.replace(cfg, start_model=args.start_model)
    if args.spacing:
        cfg = dataclasses.replace(cfg, spacing_mm=args.spacing)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    summary = run_experiment(cfg, args.out)
    (args.out / "results.json").write_text(
        json.dumps(summary, indent=1, default=float) + "\n", encoding="utf-8"
    )
    print(format_table(summary))
    print(f"details: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
