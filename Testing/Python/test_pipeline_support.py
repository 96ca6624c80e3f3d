"""Support for the pipeline tests (no tests here): phantoms cached per session, and a test double of the
lesion
detector whose detections are a phantom's true lesion projections.

The double stands in for :class:`MammoDNNLib.models.detector.Detector` only; every other stage of the pipeline
(preprocessing, outlines, the shipped localization, malignancy and matcher models, BI-RADS, export) is real.
Tests of the shipped detector itself use the shipped system (test_pipeline_e2e.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from MammoDNNLib.phantom import PhantomConfig, generate_study
from MammoDNNLib.phantom.config import LesionConfig

# Phantom collections of the pipeline (docs/pipeline.md): 7200 tunes (operating point, outline options),
# 7300 tests. No component model trains on them (their manifests list their own seeds).
VALIDATION_COLLECTION = 7200
TEST_COLLECTION = 7300
# Lesions in both breasts, two or three each: more to check per (slow) phantom.
DENSE = PhantomConfig(
    lesions=LesionConfig(
        normal_study_fraction=0.0,
        second_breast_probability=1.0,
        lesions_per_breast_weights={"2": 0.5, "3": 0.5},
    )
)


@functools.lru_cache(maxsize=8)
def phantom(seed: int, size: str = "small", dense: bool = True):
    """A generated phantom study, cached for the session (generation takes seconds)."""
    return generate_study(seed, size, DENSE if dense else None)


class TruthDetectorDouble:
    """Test double of the lesion detector: ``predict`` returns the phantom's true lesion projections.

    Each visible (not occult) projection becomes a detection of its true type with its box moved by up to
    ``jitter`` of its size; ``false_positives`` boxes per view are added inside the breast at a low score. The
    interface is :meth:`MammoDNNLib.models.detector.Detector.predict`'s (``Detection`` objects with the box in
    both grids). ``calls`` counts the predictions made.
    """

    def __init__(
        self, truth, spacing_mm: float = 0.5, *, jitter: float = 0.05, false_positives: int = 0, seed: int = 0
    ):
        self.truth = truth
        self.spacing_mm = spacing_mm
        self.jitter = jitter
        self.false_positives = false_positives
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.classes = ("mass", "calcification", "asymmetry", "distortion")

    def predict(self, views, *, tta=None, **_ignored):

        self.calls += 1
        out = {}
        for key, view in views.items():
            found = []
            for rank, lesion in enumerate(self.truth.lesions):
                projection = lesion.views.get(key)
                if projection is None or projection.visibility == "occult":
                    continue
                x0, y0, x1, y1 = projection.box
                dx, dy = (x1 - x0) * self.jitter, (y1 - y0) * self.jitter
                box = (
                    x0 + self.rng.uniform(-dx, dx),
                    y0 + self.rng.uniform(-dy, dy),
                    x1 + self.rng.uniform(-dx, dx),
                    y1 + self.rng.uniform(-dy, dy),
                )
                score = 0.95 - 0.05 * rank
                found.append(self._detection(key, lesion.type, score, box, view))
            found += [self._false_positive(key, view, i) for i in range(self.false_positives)]
            out[key] = sorted(found, key=lambda d: -d.score)
        return out

    def _detection(self, key, label, score, box, view):
        from MammoDNNLib.models.detector import Detection

        prepared = tuple(float(v) for v in view.transform.boxes_to_prepared([box])[0])
        probabilities = {c: (score if c == label else (1 - score) / 4) for c in self.classes}
        return Detection(key, label, float(score), tuple(float(v) for v in box), prepared, probabilities)

    def _false_positive(self, key, view, index):
        rows, cols = np.nonzero(view.breast_mask)
        pick = self.rng.integers(len(rows))
        side = 8.0 / self.spacing_mm  # an 8 mm box, prepared grid
        prepared = (
            cols[pick] - side / 2,
            rows[pick] - side / 2,
            cols[pick] + side / 2,
            rows[pick] + side / 2,
        )
        box = tuple(float(v) for v in view.transform.boxes_to_original([prepared])[0])
        return self._detection(key, "mass", 0.35 - 0.01 * index, box, view)


def double_system(
    detector: TruthDetectorDouble, *, localization: bool = True, malignancy: bool = True, matcher: bool = True
):
    """A SystemModel and its loaded models: the detector double plus the shipped component models present in
    this checkout (stages whose model is absent are left out, as a system may)."""
    from MammoDNNLib.errors import ModelError
    from MammoDNNLib.pipeline.config import PipelineOptions
    from MammoDNNLib.pipeline.stages import LoadedModels, _load_birads, _load_component
    from MammoDNNLib.pipeline.system import ComponentRef, SystemModel, resolve_component

    components = {"detector": ComponentRef("detector", "truth-detector-double", "test", "0" * 64)}
    loaded = {}
    wanted = {
        "localization": ("mammodnn-localization", localization),
        "malignancy": ("mammodnn-malignancy", malignancy),
        "matcher": ("mammodnn-matcher", matcher),
    }
    for stage, (name, use) in wanted.items():
        loaded[stage] = None
        if not use:
            continue
        try:
            ref = resolve_component(stage, name, None, None)
        except ModelError:
            continue
        components[stage] = ref
        loaded[stage] = _load_component(stage, str(ref.path), ref.sha256, "cpu")
    system = SystemModel(
        "test-system", "0", "f" * 64, None, components, PipelineOptions(score_threshold=0.2), None, "e" * 64
    )
    return system, LoadedModels(detector=detector, birads=_load_birads(None, "e" * 64), **loaded)


def write_phantom_dicoms(phantom_study, folder: Path) -> list[Path]:
    """The phantom's four DICOM files (without truth or masks) in ``folder``."""
    from MammoDNNLib.phantom.dicom import write_dicom

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, view in phantom_study.study.views.items():
        paths.append(write_dicom(folder / f"{key}.dcm", view.header, phantom_study.pixel_data[key]))
    return paths


def untrained_system(folder: Path, *, score_threshold: float = 0.0) -> Path:
    """A system folder whose detector is the ``detector-tiny-test`` network with seeded random weights (a real
    registry model: loading, hashing and inference are the real code; its detections are noise) and the
    shipped
    localization, malignancy and matcher models where present. For the command-line mechanics tests."""
    import torch

    from MammoDNNLib.errors import ModelError
    from MammoDNNLib.models.backbone import resolve_initialization
    from MammoDNNLib.models.config import load_config
    from MammoDNNLib.models.network import FourViewFasterRCNN
    from MammoDNNLib.models.registry import save_model
    from MammoDNNLib.pipeline.config import PipelineOptions
    from MammoDNNLib.pipeline.system import resolve_component, write_system

    detector_dir = folder / "detector"
    if not (detector_dir / "manifest.json").is_file():
        torch.manual_seed(0)
        config = resolve_initialization(
            load_config("detector-tiny-test").replace(pretrained=False, norm="gn")
        )
        network = FourViewFasterRCNN(config, load_pretrained=False)
        save_model(
            detector_dir,
            name="untrained-tiny-detector",
            version="0",
            kind="detector",
            classes=config.classes,
            config=config.to_dict(),
            state_dicts=[network.state_dict()],
            description="random weights, for tests of the command-line mechanics",
        )
    components = {"detector": detector_dir}
    for stage, name in (
        ("localization", "mammodnn-localization"),
        ("malignancy", "mammodnn-malignancy"),
        ("matcher", "mammodnn-matcher"),
    ):
        try:
            resolve_component(stage, name, None, None)
            components[stage] = name  # by registry name, as the shipped system names them
        except ModelError:
            components[stage] = None
    system = folder / "system"
    write_system(
        system,
        name="test-untrained",
        version="0",
        components=components,
        options=PipelineOptions(score_threshold=score_threshold, max_findings_per_view=3),
    )
    return system
