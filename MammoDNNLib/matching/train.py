"""Training the CC-MLO matcher on phantom correspondences.

**Pairs.** For every breast of a phantom study, every (CC candidate, MLO candidate) pair is one example: positive
when both are projections of the same lesion (the phantom's lesion id), negative otherwise. Each study gives
several *variants* of its candidates:

* the ground truth: every lesion's true box and mask in both views, detection score 1;
* ``detection_variants`` simulated detector outputs (:class:`DetectionSimulation`): each projection missed with a
  probability that grows as the lesion is less visible in that view, boxes jittered in centre and size, the exact
  mask kept for some detections and replaced by the box's inscribed ellipse for the others (a detector gives
  boxes), the type occasionally wrong, scores drawn from Beta distributions (higher for true lesions), and false
  positives placed in the breast, preferring dense tissue (where detectors fire), away from the true lesions;
* optionally the candidates of a real detector (``detector=``), each assigned to the true lesion it overlaps.

Landmarks are the phantom's true nipple, pectoral line and chest-wall edge, moved by ``landmark_jitter_mm``
(Gaussian, per point and variant) so the matcher does not learn to trust them more than estimated ones deserve.
Images are gray-normalized as the preprocessing does (the 5th / 95th percentile of breast pixels to 0 / 1).

**Fit.** LightGBM (binary objective) with early stopping on the validation phantoms (the last
``validation_fraction`` of the training seeds). The threshold is the one that maximizes the pair F1 of the greedy
assignment on the validation phantoms (ties: the one nearest 0.5) — never the test phantoms. The baselines' thresholds
are chosen the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..findings import Finding
from ..geometry import LesionMask, Transform
from ..vocabulary import FINDING_TYPE_KEYS, LATERALITIES, view_key
from .assign import greedy_assign
from .features import (
    FEATURE_NAMES,
    CandidateConfig,
    MatchCandidate,
    ViewContext,
    make_candidate,
    pair_feature_matrix,
)
from .metrics import EMPTY, PairMetrics, pair_metrics
from .model import Matcher, PairScorer

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionSimulation:
    """How simulated detections differ from the truth (per view)."""

    miss_probability: Mapping[str, float] = field(
        default_factory=lambda: {"obvious": 0.05, "subtle": 0.2, "occult": 0.5}
    )  # by the lesion's visibility in that view
    center_jitter: float = 0.15  # SD of the box-centre shift, fraction of the box's side
    size_jitter: float = 0.2  # SD of the log of each side's scale factor
    mask_probability: float = 0.5  # keep the (shifted, rescaled) exact mask; else none (inscribed ellipse)
    type_error_probability: float = 0.15  # the detector names another finding type
    true_score: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {"obvious": (6.0, 2.0), "subtle": (4.0, 3.0), "occult": (2.5, 3.5)}
    )  # Beta(a, b) by visibility
    false_score: tuple[float, float] = (2.0, 4.0)  # Beta(a, b)
    false_positives_per_view: float = 1.0  # Poisson mean
    false_positive_size_mm: tuple[float, float, float, float] = (10.0, 0.4, 4.0, 35.0)  # log-normal median, sd, clip

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TrainConfig:
    phantoms: int = 240
    seed: int = 0
    size: str = "small"
    validation_fraction: float = 0.25
    detection_variants: int = 3
    landmark_jitter_mm: float = 3.0
    dense_lesions: bool = True  # phantoms with more lesions per breast (more, and harder, pairs per study)
    simulation: DetectionSimulation = field(default_factory=DetectionSimulation)
    candidate: CandidateConfig = field(default_factory=CandidateConfig)
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    threads: int = 1

    def lightgbm_params(self) -> dict[str, Any]:
        return {
            "objective": "binary", "metric": "binary_logloss", "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction, "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1, "lambda_l2": self.lambda_l2, "num_threads": self.threads, "seed": self.seed,
            "deterministic": True, "force_col_wise": True, "verbosity": -1,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["simulation"] = self.simulation.to_dict()
        data["candidate"] = self.candidate.to_dict()
        return data


def dense_phantom_config():
    """The phantom configuration used for training: every study abnormal, often both breasts, 1-3 lesions each."""
    from ..phantom import LesionConfig, PhantomConfig

    return PhantomConfig(lesions=LesionConfig(
        normal_study_fraction=0.0, second_breast_probability=0.7,
        lesions_per_breast_weights={"1": 0.3, "2": 0.4, "3": 0.3},
    ))


def phantom_fingerprint() -> str:
    """sha256 of the phantom generator's source files: which generator made the training phantoms (the same seeds
    give other images when the generator changes)."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parents[1] / "phantom"
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def phantom_seeds(count: int, seed: int) -> list[int]:
    """The study seeds of a phantom collection made with ``seed`` (as ``phantom.generate_studies`` makes them)."""
    from ..phantom import study_seed

    return [study_seed(seed, k) for k in range(count)]


# ----------------------------------------------------------------------------------------------------------------
# Views and candidates of a phantom
# ----------------------------------------------------------------------------------------------------------------


def truth_landmarks(view_truth: Any, rng: np.random.Generator | None = None, jitter_mm: float = 0.0):
    """The phantom's true landmarks of a view as :class:`~MammoDNNLib.landmarks.Landmarks` (original pixels),
    each point moved by a Gaussian of ``jitter_mm`` when ``rng`` is given."""
    from ..landmarks import Landmarks, LineEstimate, PointEstimate

    row_mm, col_mm = view_truth.spacing
    width, height = view_truth.size

    def move(point: Sequence[float]) -> tuple[float, float]:
        if rng is None or jitter_mm <= 0:
            return float(point[0]), float(point[1])
        dx, dy = rng.normal(0.0, jitter_mm, size=2)
        return float(point[0] + dx / col_mm), float(point[1] + dy / row_mm)

    x_wall = 0.0 if view_truth.chest_wall_side == "left" else float(width)
    chest_wall = LineEstimate(((x_wall, 0.0), (x_wall, float(height))), "phantom truth: chest-wall image edge", 1.0)
    pectoral = None
    if view_truth.pectoral_line is not None:
        top, edge = view_truth.pectoral_line
        pectoral = LineEstimate((move(top), move(edge)), "phantom truth", 1.0)
    nipple = PointEstimate(move(view_truth.nipple), "phantom truth", 1.0)
    return Landmarks(nipple, pectoral, chest_wall, (float(row_mm), float(col_mm)), {"source": "phantom truth"})


def phantom_view_context(view: Any, view_truth: Any, landmarks: Any) -> ViewContext:
    """A view of a phantom on its original grid (identity transform), gray-normalized like the preprocessing
    (its low / high breast-pixel percentiles to 0 / 1, within the phantom's true breast mask)."""
    from ..preprocess import PreprocessConfig

    defaults = PreprocessConfig()
    pixels = np.asarray(view.pixels, dtype=np.float32)
    breast = np.asarray(view_truth.breast_mask, dtype=bool)
    low, high = np.percentile(pixels[breast], [defaults.low_percentile, defaults.high_percentile])
    image = ((pixels - low) / max(float(high - low), 1e-6)).astype(np.float32)
    rows, cols = pixels.shape
    return ViewContext(view.key, image, breast, Transform.identity(cols, rows), float(view.spacing[1]), landmarks)


@dataclass
class LabelledFinding:
    finding: Finding
    truth_id: str | None  # the phantom lesion it shows (None: a false positive)


def truth_findings(truth: Any) -> dict[str, list[LabelledFinding]]:
    """Every lesion projection of a phantom as a finding with its true box and mask, detection score 1."""
    out: dict[str, list[LabelledFinding]] = {key: [] for key in truth.views}
    for lesion in truth.lesions:
        for key, lv in lesion.views.items():
            finding = Finding(id=f"{key}:{lesion.id}", view_key=key, type=lesion.type, score=1.0, box=lv.box,
                              mask=lv.mask)
            out[key].append(LabelledFinding(finding, lesion.id))
    return out


def _beta(rng: np.random.Generator, ab: Sequence[float]) -> float:
    return float(np.clip(rng.beta(ab[0], ab[1]), 1e-3, 1.0 - 1e-3))


def _other_type(rng: np.random.Generator, kind: str) -> str:
    others = [k for k in FINDING_TYPE_KEYS if k != kind]
    return others[int(rng.integers(len(others)))]


def _rescaled_mask(mask: LesionMask, box: tuple[float, float, float, float], shape: tuple[int, int]) -> LesionMask:
    from skimage.transform import resize

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    width, height = max(x1 - x0, 1), max(y1 - y0, 1)
    array = resize(mask.array.astype(np.float32), (height, width), order=0, anti_aliasing=False) > 0.5
    full = LesionMask(array, (x0, y0)).full(shape)
    return LesionMask.from_full(full)


def simulate_findings(
    truth: Any, study: Any, rng: np.random.Generator, simulation: DetectionSimulation | None = None
) -> dict[str, list[LabelledFinding]]:
    """Detector-like findings for each view of a phantom (see :class:`DetectionSimulation`)."""
    sim = simulation or DetectionSimulation()
    out: dict[str, list[LabelledFinding]] = {}
    for key, view_truth in truth.views.items():
        width, height = view_truth.size
        row_mm, col_mm = view_truth.spacing
        shape = (height, width)
        found: list[LabelledFinding] = []
        true_boxes = []
        for lesion in truth.lesions_in(key):
            lv = lesion.views[key]
            true_boxes.append(lv.box)
            if rng.random() < sim.miss_probability.get(lv.visibility, 0.2):
                continue
            x0, y0, x1, y1 = lv.box
            w, h = x1 - x0, y1 - y0
            cx = (x0 + x1) / 2 + rng.normal(0.0, sim.center_jitter * w)
            cy = (y0 + y1) / 2 + rng.normal(0.0, sim.center_jitter * h)
            w = max(w * math.exp(rng.normal(0.0, sim.size_jitter)), 2.0)
            h = max(h * math.exp(rng.normal(0.0, sim.size_jitter)), 2.0)
            box = (max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, width), min(cy + h / 2, height))
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            mask = None
            if lv.mask is not None and rng.random() < sim.mask_probability:
                mask = _rescaled_mask(lv.mask, box, shape)
                if mask.empty:
                    mask = None
                else:
                    box = mask.box
            kind = _other_type(rng, lesion.type) if rng.random() < sim.type_error_probability else lesion.type
            score = _beta(rng, sim.true_score.get(lv.visibility, (4.0, 3.0)))
            finding = Finding(id=f"{key}:d{len(found)}", view_key=key, type=kind, score=score, box=box, mask=mask)
            found.append(LabelledFinding(finding, lesion.id))
        found += _false_positives(key, study[key], view_truth, true_boxes, rng, sim, len(found), shape,
                                  (row_mm, col_mm))
        out[key] = found
    return out


def _false_positives(
    key: str, view: Any, view_truth: Any, true_boxes: list, rng: np.random.Generator, sim: DetectionSimulation,
    start: int, shape: tuple[int, int], spacing: tuple[float, float],
) -> list[LabelledFinding]:
    count = int(rng.poisson(sim.false_positives_per_view))
    if count == 0:
        return []
    region = np.asarray(view_truth.breast_mask, bool).copy()
    if view_truth.pectoral_mask is not None:
        region &= ~np.asarray(view_truth.pectoral_mask, bool)
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return []
    values = np.asarray(view.pixels, dtype=np.float64)[rows, cols]
    lo, hi = np.percentile(values, [5, 95])
    weights = np.clip((values - lo) / max(hi - lo, 1e-6), 0.0, None) ** 2 + 0.05  # dense tissue attracts them
    weights /= weights.sum()
    median, sd, smallest, largest = sim.false_positive_size_mm
    type_weights = np.array([0.45, 0.30, 0.10, 0.15])
    out: list[LabelledFinding] = []
    for _ in range(count):
        for _attempt in range(20):
            k = int(rng.choice(rows.size, p=weights))
            cx, cy = cols[k] + 0.5, rows[k] + 0.5
            if not any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in true_boxes):
                break
        else:
            continue
        diameter = float(np.clip(median * math.exp(rng.normal(0.0, sd)), smallest, largest))
        aspect = float(rng.uniform(0.6, 1.0))
        w_mm, h_mm = (diameter, diameter * aspect) if rng.random() < 0.5 else (diameter * aspect, diameter)
        w, h = w_mm / spacing[1], h_mm / spacing[0]
        box = (max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, shape[1]), min(cy + h / 2, shape[0]))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        kind = FINDING_TYPE_KEYS[int(rng.choice(len(FINDING_TYPE_KEYS), p=type_weights))]
        finding = Finding(id=f"{key}:d{start + len(out)}", view_key=key, type=kind,
                          score=_beta(rng, sim.false_score), box=box)
        out.append(LabelledFinding(finding, None))
    return out


def truth_id_by_overlap(box: Sequence[float], lesions: Iterable[tuple[str, Sequence[float]]], min_iou: float = 0.2):
    """The lesion a detected box shows: the best-overlapping true box with IoU >= ``min_iou`` or containing the
    detection's centre; None when there is none."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    best, best_iou = None, 0.0
    for lesion_id, (a0, b0, a1, b1) in lesions:
        iw, ih = max(0.0, min(x1, a1) - max(x0, a0)), max(0.0, min(y1, b1) - max(y0, b0))
        inter = iw * ih
        union = (x1 - x0) * (y1 - y0) + (a1 - a0) * (b1 - b0) - inter
        iou = inter / union if union > 0 else 0.0
        inside = a0 <= cx <= a1 and b0 <= cy <= b1
        if (iou >= min_iou or inside) and iou + inside >= best_iou:
            best, best_iou = lesion_id, iou + inside
    return best


def detector_findings(detector: Any, phantom: Any, prepared: Mapping[str, Any]) -> dict[str, list[LabelledFinding]]:
    """A real detector's findings on a phantom (``detector.predict(prepared views)``), each labelled with the true
    lesion it overlaps (:func:`truth_id_by_overlap`)."""
    detections = detector.predict(prepared)
    out: dict[str, list[LabelledFinding]] = {}
    for key, found in detections.items():
        lesions = [(lesion.id, lesion.views[key].box) for lesion in phantom.truth.lesions_in(key)]
        out[key] = []
        for k, d in enumerate(found):
            finding = Finding(id=f"{key}:r{k}", view_key=key, type=d.label, score=float(d.score), box=d.box)
            out[key].append(LabelledFinding(finding, truth_id_by_overlap(d.box, lesions)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Breast samples
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class BreastSample:
    """One breast's candidates in one variant of a study, with the truth to score a matching against."""

    study_id: str
    laterality: str
    variant: str  # "truth", "simulated-1", ..., "detector"
    cc: list[MatchCandidate]
    mlo: list[MatchCandidate]
    true_pairs: set[str]  # lesions of this breast seen in both views
    features: np.ndarray | None = None  # (len(cc), len(mlo), F), filled by pair_feature_matrix on demand

    @property
    def detectable(self) -> set[str]:
        return self.true_pairs & {c.truth_id for c in self.cc} & {m.truth_id for m in self.mlo}

    def feature_matrix(self) -> np.ndarray:
        if self.features is None:
            self.features = pair_feature_matrix(self.cc, self.mlo)
        return self.features

    def labels(self) -> np.ndarray:
        return np.array([[float(c.truth_id is not None and c.truth_id == m.truth_id) for m in self.mlo]
                         for c in self.cc]).reshape(len(self.cc), len(self.mlo))


def candidates_of(
    found: Mapping[str, list[LabelledFinding]], contexts: Mapping[str, ViewContext], config: CandidateConfig
) -> dict[str, list[MatchCandidate]]:
    return {
        key: [make_candidate(lf.finding, contexts[key], config, truth_id=lf.truth_id) for lf in items]
        for key, items in found.items() if key in contexts
    }


def breast_samples_of(
    truth: Any, candidates: Mapping[str, list[MatchCandidate]], variant: str
) -> list[BreastSample]:
    out = []
    for side in LATERALITIES:
        cc_key, mlo_key = view_key(side, "CC"), view_key(side, "MLO")
        if cc_key not in candidates or mlo_key not in candidates:
            continue
        pairs = {lesion.id for lesion in truth.lesions
                 if lesion.laterality == side and cc_key in lesion.views and mlo_key in lesion.views}
        out.append(BreastSample(truth.study_id, side, variant, candidates[cc_key], candidates[mlo_key], pairs))
    return out


def phantom_samples(
    phantom: Any,
    *,
    rng: np.random.Generator,
    detection_variants: int,
    include_truth: bool = True,
    simulation: DetectionSimulation | None = None,
    landmark_jitter_mm: float = 0.0,
    config: CandidateConfig | None = None,
    detector: Any = None,
    landmarks: str = "truth",
) -> list[BreastSample]:
    """The breast samples of one phantom: the truth variant, ``detection_variants`` simulated ones and, with a
    ``detector``, its real detections (views prepared at the detector's spacing).

    ``landmarks="truth"``: the phantom's landmarks (moved by ``landmark_jitter_mm``) on its original grid;
    ``"estimated"``: the views go through the real preprocessing (``preprocess.prepare_view`` at the phantom's
    spacing) and its estimated landmarks are used, as in the pipeline.
    """
    if landmarks not in ("truth", "estimated"):
        raise ValueError(f"landmarks must be 'truth' or 'estimated', got {landmarks!r}")
    config = config or CandidateConfig()
    truth, study = phantom.truth, phantom.study
    prepared_contexts: dict[str, ViewContext] = {}
    if landmarks == "estimated":
        from ..preprocess import PreprocessConfig, prepare_view

        for key, view in study.views.items():
            pv = prepare_view(view, PreprocessConfig(spacing_mm=float(view.spacing[1])))
            prepared_contexts[key] = ViewContext.from_prepared(pv)

    def contexts() -> dict[str, ViewContext]:
        if prepared_contexts:
            return prepared_contexts
        return {key: phantom_view_context(study[key], vt, truth_landmarks(vt, rng, landmark_jitter_mm))
                for key, vt in truth.views.items()}

    samples: list[BreastSample] = []
    if include_truth:
        samples += breast_samples_of(truth, candidates_of(truth_findings(truth), contexts(), config), "truth")
    for v in range(detection_variants):
        found = simulate_findings(truth, study, rng, simulation)
        samples += breast_samples_of(truth, candidates_of(found, contexts(), config), f"simulated-{v + 1}")
    if detector is not None:
        from ..preprocess import PreprocessConfig, prepare_view

        prepared = {key: prepare_view(view, PreprocessConfig(spacing_mm=detector.spacing_mm))
                    for key, view in study.views.items()}
        found = detector_findings(detector, phantom, prepared)
        real = {}
        for key, pv in prepared.items():
            real[key] = ViewContext.from_prepared(pv)
            if landmarks == "truth":
                real[key] = replace(real[key], landmarks=truth_landmarks(truth.views[key], rng, landmark_jitter_mm))
        samples += breast_samples_of(truth, candidates_of(found, real, config), "detector")
    return samples


def samples_from_phantoms(
    phantoms: Iterable[Any],
    *,
    count: int,
    rng_seed: int = 0,
    progress: Progress | None = None,
    **options: Any,
) -> list[BreastSample]:
    """:func:`phantom_samples` of each phantom (``PhantomStudy`` or anything with ``.study`` and ``.truth``),
    consumed one at a time; each phantom's random stream is keyed by ``rng_seed`` and its seed."""
    samples: list[BreastSample] = []
    for k, phantom in enumerate(phantoms):
        key = int(getattr(phantom.truth, "seed", k)) % (2**63)
        rng = np.random.default_rng(np.random.SeedSequence([int(rng_seed), key]))
        samples += phantom_samples(phantom, rng=rng, **options)
        if progress is not None:
            progress(k + 1, count, phantom.truth.study_id)
    return samples


def generate_samples(
    seeds: Sequence[int],
    *,
    size: str = "small",
    phantom_config: Any = None,
    rng_seed: int = 0,
    progress: Progress | None = None,
    failures: list[dict[str, Any]] | None = None,
    **options: Any,
) -> list[BreastSample]:
    """:func:`phantom_samples` of the phantoms with these study seeds (generated in memory, one at a time).

    A seed the phantom generator fails on is logged as a warning with the error, appended to ``failures`` (when
    given) and left out, so one generator bug does not end a long run; callers record the failures.
    """
    from ..phantom import generate_study

    def phantoms() -> Iterator[Any]:
        for seed in seeds:
            try:
                yield generate_study(int(seed), size, phantom_config)
            except Exception as exc:  # the generator's bug, not a data problem: report it and go on
                log.warning("phantom study seed %d could not be generated (%s: %s); left out", seed,
                            type(exc).__name__, exc)
                if failures is not None:
                    failures.append({"seed": int(seed), "error": f"{type(exc).__name__}: {exc}"})

    return samples_from_phantoms(phantoms(), count=len(seeds), rng_seed=rng_seed, progress=progress, **options)


# ----------------------------------------------------------------------------------------------------------------
# Fitting, thresholds, scoring
# ----------------------------------------------------------------------------------------------------------------


def pair_table(samples: Sequence[BreastSample]) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of ``samples`` as a feature table ``(N, F)`` and labels ``(N,)``."""
    xs, ys = [], []
    for s in samples:
        f = s.feature_matrix()
        if f.size:
            xs.append(f.reshape(-1, len(FEATURE_NAMES)))
            ys.append(s.labels().reshape(-1))
    if not xs:
        return np.zeros((0, len(FEATURE_NAMES))), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


def sample_metrics(scorer: PairScorer, samples: Iterable[BreastSample], threshold: float | None = None) -> PairMetrics:
    """Pair precision/recall/F1 of greedy matching with ``scorer`` over ``samples``."""
    t = scorer.threshold if threshold is None else threshold
    out = EMPTY
    for s in samples:
        matrix = _probabilities(scorer, s)
        matches = greedy_assign(matrix, t)
        predicted = [(s.cc[m.cc].truth_id, s.mlo[m.mlo].truth_id) for m in matches]
        out = out + pair_metrics(predicted, s.true_pairs, s.detectable)
    return out


def _probabilities(scorer: PairScorer, sample: BreastSample) -> np.ndarray:
    if not sample.cc or not sample.mlo:
        return np.zeros((len(sample.cc), len(sample.mlo)))
    if isinstance(scorer, Matcher):  # reuse the cached features
        f = sample.feature_matrix()
        return np.asarray(scorer.booster.predict(f.reshape(-1, len(FEATURE_NAMES)))).reshape(f.shape[:2])
    return scorer.probabilities(sample.cc, sample.mlo)


def choose_threshold(
    scorer: PairScorer, samples: Sequence[BreastSample], grid: Sequence[float] | None = None
) -> tuple[float, PairMetrics]:
    """The threshold maximizing the pair F1 on ``samples`` (ties: nearest 0.5), and the metrics there."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2) if grid is None else np.asarray(grid, dtype=np.float64)
    matrices = [(_probabilities(scorer, s), s) for s in samples]
    best: tuple[float, float, PairMetrics] | None = None
    for t in grid:
        metrics = EMPTY
        for matrix, s in matrices:
            matches = greedy_assign(matrix, float(t))
            predicted = [(s.cc[m.cc].truth_id, s.mlo[m.mlo].truth_id) for m in matches]
            metrics = metrics + pair_metrics(predicted, s.true_pairs, s.detectable)
        key = (metrics.f1, -abs(float(t) - 0.5))
        if best is None or key > (best[1], -abs(best[0] - 0.5)):
            best = (float(t), metrics.f1, metrics)
    assert best is not None
    return best[0], best[2]


def fit_booster(train: Sequence[BreastSample], valid: Sequence[BreastSample], config: TrainConfig):
    """LightGBM on the training pairs with early stopping on the validation pairs."""
    import lightgbm as lgb

    x_train, y_train = pair_table(train)
    x_valid, y_valid = pair_table(valid)
    if y_train.sum() == 0 or y_train.sum() == len(y_train):
        raise ValueError("the training pairs need both matching and non-matching examples; use more phantoms")
    params = config.lightgbm_params()
    train_set = lgb.Dataset(x_train, y_train, feature_name=list(FEATURE_NAMES), free_raw_data=False)
    callbacks = [lgb.log_evaluation(0)]
    valid_sets = [train_set]
    names = ["train"]
    if len(y_valid) and 0 < y_valid.sum() < len(y_valid):
        valid_sets.append(lgb.Dataset(x_valid, y_valid, reference=train_set))
        names.append("valid")
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False))
    evals: dict[str, Any] = {}
    callbacks.append(lgb.record_evaluation(evals))
    booster = lgb.train(params, train_set, num_boost_round=config.num_boost_round, valid_sets=valid_sets,
                        valid_names=names, callbacks=callbacks)
    if booster.best_iteration and booster.best_iteration < booster.current_iteration():
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    info = {
        "train_pairs": len(y_train), "train_positives": int(y_train.sum()),
        "valid_pairs": len(y_valid), "valid_positives": int(y_valid.sum()),
        "trees": int(booster.num_trees()),
        "valid_logloss": float(evals["valid"]["binary_logloss"][booster.num_trees() - 1]) if "valid" in evals else None,
    }
    return booster, info


@dataclass
class TrainResult:
    matcher: Matcher
    training_data: dict[str, Any]
    validation: dict[str, Any]  # validation-phantom metrics at the chosen thresholds (matcher and baselines)
    baselines: dict[str, float]  # baseline name -> threshold chosen on validation


def split_seeds(seeds: Sequence[Any], validation_fraction: float) -> tuple[list[Any], list[Any]]:
    """The first items for training, the last ``validation_fraction`` (at least one) for validation."""
    n_valid = max(1, int(math.ceil(len(seeds) * validation_fraction))) if len(seeds) > 1 else 0
    return list(seeds[: len(seeds) - n_valid]), list(seeds[len(seeds) - n_valid:])


def train_matcher(
    config: TrainConfig | None = None,
    *,
    detector: Any = None,
    progress: Progress | None = None,
    phantom_folders: Sequence[Any] | None = None,
    samples: tuple[Sequence[BreastSample], Sequence[BreastSample]] | None = None,
    source: str | None = None,
) -> TrainResult:
    """Fit the matcher and choose the thresholds (see the module docstring).

    The data: ``samples`` = (train, valid) as given; else the phantom study folders ``phantom_folders`` read from
    disk (the last ``validation_fraction`` of them for validation); else ``config.phantoms`` phantoms generated in
    memory from ``config.seed``. ``source`` describes given samples in the training record.
    """
    from .baselines import BASELINES

    config = config or TrainConfig()
    options = dict(detection_variants=config.detection_variants, simulation=config.simulation,
                   landmark_jitter_mm=config.landmark_jitter_mm, config=config.candidate, detector=detector)
    record: dict[str, Any]
    if samples is not None:
        train, valid = samples
        record = {"source": source or "breast samples given by the caller"}
    elif phantom_folders is not None:
        from .sources import load_phantom

        folders = list(phantom_folders)
        train_folders, valid_folders = split_seeds(folders, config.validation_fraction)
        total = len(folders)
        train = samples_from_phantoms((load_phantom(f) for f in train_folders), count=total, rng_seed=config.seed,
                                      progress=progress, **options)
        offset = len(train_folders)
        valid = samples_from_phantoms(
            (load_phantom(f) for f in valid_folders), count=total, rng_seed=config.seed + 1,
            progress=None if progress is None else (lambda k, n, sid: progress(offset + k, total, sid)), **options)
        record = {"source": "MammoDNN phantom studies read from disk",
                  "train_folders": [str(f) for f in train_folders],
                  "validation_folders": [str(f) for f in valid_folders]}
    else:
        fingerprint = phantom_fingerprint()  # before generating: the source is what made these phantoms
        seeds = phantom_seeds(config.phantoms, config.seed)
        train_seeds, valid_seeds = split_seeds(seeds, config.validation_fraction)
        phantom_config = dense_phantom_config() if config.dense_lesions else None
        total = len(seeds)
        offset = len(train_seeds)
        failures: list[dict[str, Any]] = []
        train = generate_samples(
            train_seeds, size=config.size, phantom_config=phantom_config, rng_seed=config.seed, failures=failures,
            progress=None if progress is None else (lambda k, n, sid: progress(k, total, sid)), **options)
        valid = generate_samples(
            valid_seeds, size=config.size, phantom_config=phantom_config, rng_seed=config.seed + 1,
            failures=failures,
            progress=None if progress is None else (lambda k, n, sid: progress(offset + k, total, sid)), **options)
        record = {
            "source": "MammoDNN phantom (generated in memory)",
            "phantom_size": config.size,
            "phantom_lesions": "dense (every study abnormal, 1-3 lesions per affected breast)"
            if config.dense_lesions else "default phantom configuration",
            "collection_seed": config.seed,
            "phantoms": config.phantoms,
            "phantom_source_sha256": fingerprint,
            "train_study_seeds": [int(s) for s in train_seeds],
            "validation_study_seeds": [int(s) for s in valid_seeds],
            "generator_failures": failures,
        }
    booster, fit_info = fit_booster(train, valid, config)
    matcher = Matcher(booster, 0.5, config.candidate)
    threshold, valid_metrics = choose_threshold(matcher, valid or train)
    matcher.threshold = threshold
    validation = {"lightgbm": {"threshold": threshold, **valid_metrics.to_dict()}}
    baselines = {}
    for cls in BASELINES:
        baseline = cls()
        t, m = choose_threshold(baseline, valid or train)
        baselines[baseline.name] = t
        validation[baseline.name] = {"threshold": t, **m.to_dict()}
    training_data = {
        **record,
        "breast_samples": {"train": len(train), "validation": len(valid)},
        "detector": None if detector is None else getattr(getattr(detector, "info", None), "label", "given"),
        "config": config.to_dict(),
        "fit": fit_info,
    }
    return TrainResult(matcher, training_data, validation, baselines)
