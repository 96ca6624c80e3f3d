"""Speed benchmark: torchvision's stock Faster R-CNN against our four-view detector on one full-size study.

Both run on the same four views of one study at 0.15 mm (a synthetic full-size study by default, or a study
folder given with ``--study``, e.g. a phantom written by ``mammodnn phantom``): (a) the stock
``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` at its defaults (resize to 800/1333, 1000
proposals), one view at a time; (b) our detector with the same ResNet50 backbone, with the optimizations added
one at a time so that each one's effect is visible. Weights are random in both (speed does not depend on them;
nothing is downloaded).

Timing happens in ONE process: every variant is built and warmed up, then ``runs`` rounds time each variant once
in turn (interleaved, so that a change of machine load hits every variant alike); the medians and their ratio to
the stock model are reported. Peak memory is measured separately, in a fresh subprocess per variant (build, two
runs, ``ru_maxrss``: it includes the Python interpreter, torch and the study). Timings are wall-clock with
``threads`` torch threads. Our timings cover the detector (crop, batching, network, merge) on
prepared views; the preparation itself (``MammoDNNLib.preprocess``) is timed on its own line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

FULL_SPACING_MM = 0.15
FULL_SIZE = (1700, 2200)  # (width, height) of a view at 0.15 mm
STOCK_EFFECTIVE_SPACING_MM = 0.32  # the stock transform shrinks 2200 x 1700 to about 1035 x 800: ~0.32 mm


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    stock: bool = False
    spacing_mm: float = STOCK_EFFECTIVE_SPACING_MM
    crop: bool = False  # breast-only crop
    batched: bool = False  # the four views in one batch (with fusion) instead of one view at a time
    inference_mode: bool = False  # torch.inference_mode instead of torch.no_grad
    channels_last: bool = False
    proposals: int = 1000  # RPN proposals kept per view at test time
    levels: tuple[int, ...] = (1, 2, 3, 4)  # ResNet stages feeding the FPN (1 = the stride-4 P2 level)
    fpn_channels: int = 256
    fold_bn: bool = False  # batch norms folded into the convolutions
    runtime: str = "torch"  # "torch" | "onnx" (features by ONNX Runtime) | "compile" (torch.compile)
    quantize_head: bool = False  # int8 dynamic quantization of the box head
    norm: str = "frozen_bn"  # "gn": the GroupNorm a from-scratch training uses
    tta: bool = False


def default_variants() -> list[Variant]:
    """Cumulative: each line adds one optimization to the one before (except the side branches at the end)."""
    base = Variant(
        "ours-same-pixels", "ours, stock's resolution (0.32 mm), no crop, one view at a time, no_grad"
    )
    steps = [
        Variant("stock", "torchvision fasterrcnn_resnet50_fpn, defaults, one view at a time", stock=True),
        base,
    ]
    current = base
    for name, description, change in [
        ("+inference_mode", "torch.inference_mode", {"inference_mode": True}),
        ("+batch-4-views", "four views in one batch, four-view fusion on", {"batched": True}),
        ("+breast-crop", "breast-only crop", {"crop": True}),
        ("+300-proposals", "300 RPN proposals per view instead of 1000", {"proposals": 300}),
        ("+fpn-P3-P6", "FPN from stride 8 (no stride-4 P2 level)", {"levels": (2, 3, 4)}),
        ("+fpn-128ch", "FPN/RPN width 128 instead of 256", {"fpn_channels": 128}),
        ("+fold-bn", "frozen batch norms folded into the convolutions", {"fold_bn": True}),
        ("+channels_last", "channels-last memory format", {"channels_last": True}),
        ("+onnxruntime", "backbone+FPN+fusion in ONNX Runtime", {"runtime": "onnx"}),
        ("+int8-box-head", "box head int8 dynamic quantization", {"quantize_head": True}),
        ("+spacing-0.4mm", "the CPU model's spacing, 0.4 mm", {"spacing_mm": 0.4}),
    ]:
        current = dataclasses.replace(current, name=name, description=description, **change)
        steps.append(current)
    best = current
    steps += [
        dataclasses.replace(
            best, name="best+groupnorm", description="best, GroupNorm backbone (from scratch)", norm="gn"
        ),
        dataclasses.replace(
            best, name="best+tta", description="best, with horizontal+vertical flip TTA (3 passes)", tta=True
        ),
        dataclasses.replace(
            best,
            name="best-torch.compile",
            description="best, torch.compile instead of ONNX",
            runtime="compile",
        ),
    ]
    return steps


@dataclass
class VariantResult:
    name: str
    description: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float = float("nan")
    pixels_per_study: int = 0
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


# -- the study --------------------------------------------------------------------------------------------------
def synthetic_full_study(seed: int = 0) -> dict[str, np.ndarray]:
    """Four 1700 x 2200 views at 0.15 mm in presentation orientation (right breast: chest wall on the right),
    with a breast-shaped region (about half of the image, as in screening mammograms) and smooth texture."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    width, height = FULL_SIZE
    views = {}
    for key in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
        mlo = key.endswith("MLO")
        depth, half = (0.8, 0.47) if mlo else (0.72, 0.42)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        inside = ((xx + 0.5) / (depth * width)) ** 2 + (
            (yy + 0.5 - height * (0.45 if mlo else 0.5)) / (half * height)
        ) ** 2 <= 1
        coarse = torch.from_numpy(rng.standard_normal((1, 1, height // 16, width // 16)).astype(np.float32))
        texture = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[
            0, 0
        ].numpy()
        image = np.where(inside, 0.55 + 0.08 * texture, 0.03).astype(np.float32)
        image += rng.normal(0, 0.01, image.shape).astype(np.float32)
        views[key] = image[:, ::-1].copy() if key.startswith("R") else image
    return views


def load_study_views(path: str | Path) -> tuple[dict[str, np.ndarray], float]:
    """The four views (presentation pixels) and their spacing from a study folder (e.g. a phantom)."""
    from ..io import load_study

    study = load_study(path)
    spacings = {v.spacing for v in study}
    if len(study) < 4 or len(spacings) != 1:
        log.warning("benchmark study %s has %d views and spacings %s", path, len(study), spacings)
    return {v.key: v.pixels.astype(np.float32) for v in study}, float(next(iter(spacings))[0])


def prepare_simple(image: np.ndarray, key: str, spacing_in: float, spacing_out: float, crop: bool):
    """A fast stand-in for the preprocessing: threshold mask, optional breast crop, resample, chest wall left,
    gray normalization. Returns (image, mask) on the prepared grid."""
    import torch
    import torch.nn.functional as F

    mask = image > 0.5 * (np.percentile(image, 99) + image.min())
    if crop and mask.any():
        rows = np.flatnonzero(mask.any(1))
        cols = np.flatnonzero(mask.any(0))
        image = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = spacing_in / spacing_out
    size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    resized = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(image))[None, None],
        size=size,
        mode="bilinear",
        antialias=scale < 1,
        align_corners=False,
    )[0, 0].numpy()
    small_mask = (
        F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=size, mode="nearest")[
            0, 0
        ].numpy()
        > 0.5
    )
    if key.startswith("R"):
        resized, small_mask = resized[:, ::-1], small_mask[:, ::-1]
    values = resized[small_mask] if small_mask.any() else resized.ravel()
    low, high = np.percentile(values, [5, 95])
    normalized = ((resized - low) / max(high - low, 1e-6)).astype(np.float32)
    return np.ascontiguousarray(normalized), np.ascontiguousarray(
        small_mask if crop else np.ones_like(small_mask)
    )


# -- running one variant (in the child process) -----------------------------------------------------------------
def _stock_runner(views: dict[str, np.ndarray], variant: Variant) -> tuple[Callable[[], Any], int]:
    import torch
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    inputs = [torch.from_numpy(np.clip(v, 0, 1)).expand(3, -1, -1).contiguous() for v in views.values()]

    def run():
        with torch.no_grad():
            return [model([image]) for image in inputs]

    h, w = next(iter(views.values())).shape
    scale = min(800 / min(h, w), 1333 / max(h, w))
    return run, int(len(views) * round(h * scale) * round(w * scale))


def _our_runner(
    views: dict[str, np.ndarray], spacing_in: float, variant: Variant
) -> tuple[Callable[[], Any], int]:
    import torch

    from .accelerate import OnnxFeatureRunner, compiled_runner, fold_frozen_batchnorm, quantize_box_head
    from .config import load_config
    from .detector import Detector
    from .network import FourViewFasterRCNN

    base = load_config("detector-r50-study")
    rpn = {**base.to_dict()["rpn"], "pre_nms_top_n_test": 1000, "post_nms_top_n_test": variant.proposals}
    fusion = {"left_right": variant.batched, "cc_mlo": variant.batched, "reduction": 4}
    if tuple(variant.levels) != (1, 2, 3, 4):
        rpn["anchor_sizes"] = [[16, 24], [32, 48], [64, 96], [128, 192]][: len(variant.levels) + 1]
    config = base.replace(
        pretrained=False,
        norm=variant.norm,
        rpn=rpn,
        fusion=fusion,
        spacing_mm=variant.spacing_mm,
        max_size=4000,
        returned_layers=list(variant.levels),
        fpn_channels=variant.fpn_channels,
    )
    torch.manual_seed(0)
    model = FourViewFasterRCNN(config).eval()
    if variant.fold_bn and variant.norm != "gn":
        model = fold_frozen_batchnorm(model)
    if variant.quantize_head:
        model = quantize_box_head(model)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if variant.runtime == "onnx":
        member = OnnxFeatureRunner(model, threads=torch.get_num_threads())
    elif variant.runtime == "compile":
        member = compiled_runner(model)
    else:
        member = model
    detector = Detector(config, [member], channels_last=variant.channels_last)
    prepared = {
        k: prepare_simple(v, k, spacing_in, variant.spacing_mm, variant.crop) for k, v in views.items()
    }
    images = {k: p[0] for k, p in prepared.items()}
    masks = {k: p[1] for k, p in prepared.items()}
    context = torch.inference_mode if variant.inference_mode else torch.no_grad

    def run():
        with context():
            if variant.batched:
                return detector.predict_images(images, masks, tta=variant.tta, crop_to_breast=variant.crop)
            return [
                detector.predict_images(
                    {k: images[k]}, {k: masks[k]}, tta=variant.tta, crop_to_breast=variant.crop
                )
                for k in images
            ]

    pixels = sum(int(np.prod(i.shape)) for i in images.values())
    return run, pixels


def build_runner(
    variant: Variant, views: dict[str, np.ndarray], spacing: float
) -> tuple[Callable[[], Any], int]:
    return _stock_runner(views, variant) if variant.stock else _our_runner(views, spacing, variant)


def _load_study_file(study_file: Path) -> tuple[dict[str, np.ndarray], float]:
    data = np.load(study_file)
    return {k: data[k] for k in ("R-CC", "L-CC", "R-MLO", "L-MLO") if k in data}, float(data["spacing_mm"])


def time_interleaved(
    variants: Sequence[Variant], study_file: Path, runs: int, threads: int, warm_up: bool = True
) -> list[VariantResult]:
    """In THIS process: build every variant, warm it up once (``warm_up``; ONNX Runtime and compiled variants
    always), then ``runs`` rounds that time every variant once per round in turn, so that changes of machine load
    hit all variants alike."""
    import torch

    torch.set_num_threads(threads)
    views, spacing = _load_study_file(study_file)
    results, runners = [], []
    for variant in variants:
        result = VariantResult(variant.name, variant.description)
        try:
            run, result.pixels_per_study = build_runner(variant, views, spacing)
            if warm_up or variant.runtime != "torch":
                run()  # warm-up: ONNX Runtime / compile initialization (eager torch needs little)
        except Exception as exc:  # a variant that cannot run here (e.g. no compiler for torch.compile)
            result.error = _describe(exc)
            run = None
        results.append(result)
        runners.append(run)
        log.info("built %s", variant.name)
    for round_index in range(runs):
        for result, run in zip(results, runners):
            if run is None or result.error:
                continue
            try:
                start = time.perf_counter()
                run()
                result.seconds.append(time.perf_counter() - start)
            except Exception as exc:
                result.error = _describe(exc)
        log.info("round %d of %d done", round_index + 1, runs)
    return results


def peak_memory_here(variant: Variant, study_file: Path, threads: int) -> float:
    """Peak resident memory (MB) of a process that loads the study, builds ``variant`` and runs it twice."""
    import torch

    torch.set_num_threads(threads)
    views, spacing = _load_study_file(study_file)
    run, _ = build_runner(variant, views, spacing)
    run()
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def time_preprocessing(study_file: Path, spacing_mm: float, runs: int) -> float | None:
    """Median seconds of ``MammoDNNLib.preprocess.prepare_view`` over the study's four views (None if absent)."""
    try:
        from ..preprocess import PreprocessConfig, prepare_view
        from ..study import View
    except ImportError:
        return None
    data = np.load(study_file)
    spacing = float(data["spacing_mm"])
    views = [
        View(data[k], (spacing, spacing), k[0], k[2:])
        for k in ("R-CC", "L-CC", "R-MLO", "L-MLO")
        if k in data
    ]
    config = PreprocessConfig(spacing_mm=spacing_mm)
    times = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            for view in views:
                prepare_view(view, config)
            times.append(time.perf_counter() - start)
    except Exception as exc:
        log.warning("preprocessing could not be timed: %s", exc)
        return None
    return statistics.median(times)


# -- the whole benchmark (parent process) -----------------------------------------------------------------------
def run_benchmark(
    variants: Sequence[Variant] | None = None,
    *,
    runs: int = 3,
    threads: int = 2,
    study: str | Path | None = None,
    seed: int = 0,
    memory: bool | Sequence[str] = True,
    warm_up: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time every variant (interleaved, one subprocess) and measure peak memory (one fresh subprocess per variant:
    all when ``memory`` is True, those named when it is a list); returns the results and the study description."""
    variants = list(variants or default_variants())
    say = progress or (lambda message: None)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="mammodnn-bench-") as tmp:
        study_file = Path(tmp) / "study.npz"
        if study is not None:
            views, spacing = load_study_views(study)
            description = f"study folder {study}"
        else:
            views, spacing = synthetic_full_study(seed), FULL_SPACING_MM
            description = f"synthetic full-size four-view study, {FULL_SIZE[0]}x{FULL_SIZE[1]} px at 0.15 mm"
        np.savez(study_file, spacing_mm=spacing, **views)
        variants_file = Path(tmp) / "variants.json"
        variants_file.write_text(json.dumps([dataclasses.asdict(v) for v in variants]))
        say(f"timing {len(variants)} variants, interleaved, {runs} rounds (one process)")
        done = _child(
            [
                "--time",
                str(variants_file),
                "--study-file",
                str(study_file),
                "--runs",
                str(runs),
                "--threads",
                str(threads),
            ]
            + ([] if warm_up else ["--no-warm-up"]),
            env,
        )
        if isinstance(done, str):
            results = [VariantResult(v.name, v.description, error=done) for v in variants]
        else:
            results = [VariantResult(**r) for r in done]
        if memory:
            for variant, result in zip(variants, results):
                if result.error or (memory is not True and variant.name not in memory):
                    continue
                measured = _child(
                    [
                        "--memory",
                        json.dumps(dataclasses.asdict(variant)),
                        "--study-file",
                        str(study_file),
                        "--threads",
                        str(threads),
                    ],
                    env,
                )
                if isinstance(measured, (int, float)):
                    result.peak_rss_mb = float(measured)
                say(f"{variant.name}: median {result.median:.2f} s/study, peak {result.peak_rss_mb:.0f} MB")
        preprocessing = {
            s: time_preprocessing(study_file, s, max(1, runs))
            for s in sorted({v.spacing_mm for v in variants if not v.stock})
        }
    return {
        "study": description,
        "threads": threads,
        "runs": runs,
        "results": results,
        "preprocessing_seconds": preprocessing,
    }


def _child(arguments: list[str], env: dict[str, str]):
    """Run this module as a subprocess; its last JSON line, or the error text."""
    done = subprocess.run(
        [sys.executable, "-m", __name__, *arguments], capture_output=True, text=True, env=env
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "[")) or line[:1].isdigit()]
    if done.returncode != 0 or not lines:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:300]
    return json.loads(lines[-1])


def format_table(report: dict[str, Any]) -> str:
    results: list[VariantResult] = report["results"]
    stock = next((r.median for r in results if r.name == "stock" and r.seconds), float("nan"))
    lines = [
        f"study: {report['study']}; {report['threads']} torch threads; median of {report['runs']} runs",
        f"{'variant':<22} {'s/study':>8} {'x stock':>8} {'peak MB':>8} {'Mpx':>6}  description",
    ]
    for r in results:
        if r.error:
            lines.append(
                f"{r.name:<22} {'-':>8} {'-':>8} {r.peak_rss_mb:>8.0f} {'-':>6}  {r.description} "
                f"[failed: {r.error}]"
            )
            continue
        speedup = stock / r.median if r.median else float("nan")
        lines.append(
            f"{r.name:<22} {r.median:>8.2f} {speedup:>8.2f} {r.peak_rss_mb:>8.0f} "
            f"{r.pixels_per_study / 1e6:>6.2f}  {r.description}"
        )
    for spacing, seconds in report.get("preprocessing_seconds", {}).items():
        if seconds is not None:
            lines.append(
                f"preprocessing (MammoDNNLib.preprocess.prepare_view, 4 views) at {spacing} mm: "
                f"{seconds:.2f} s/study"
            )
    return "\n".join(lines)


def report_to_json(report: dict[str, Any]) -> dict[str, Any]:
    stock = next((r.median for r in report["results"] if r.name == "stock" and r.seconds), float("nan"))
    return {
        **{k: v for k, v in report.items() if k != "results"},
        "results": [
            {
                **dataclasses.asdict(r),
                "median_seconds": r.median,
                "speedup_vs_stock": (stock / r.median) if r.seconds else None,
            }
            for r in report["results"]
        ],
    }


def _child_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--time", metavar="VARIANTS_JSON_FILE")
    mode.add_argument("--memory", metavar="VARIANT_JSON")
    parser.add_argument("--study-file", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-warm-up", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.time:
        variants = [Variant(**v) for v in json.loads(Path(args.time).read_text())]
        results = time_interleaved(
            variants, Path(args.study_file), args.runs, args.threads, not args.no_warm_up
        )
        print(json.dumps([dataclasses.asdict(r) for r in results]))
    else:
        print(
            json.dumps(
                peak_memory_here(Variant(**json.loads(args.memory)), Path(args.study_file), args.threads)
            )
        )
    return 0


if __name__ == "__main__":  # pragma: no cover - the subprocess entry point
    sys.exit(_child_main(sys.argv[1:]))
