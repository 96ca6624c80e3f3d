"""``analyze(study) -> Report``: the one call from a study's views to its findings.

Stages, each timed into ``Report.timings`` (seconds):

============== ==========================================================================================
``load_models`` the system's detector, localization, malignancy and matcher models and BI-RADS mapping
                (cached per process: a second analysis in the same process does not reload weights)
``preprocess``  each view prepared at the detector's spacing (breast mask, crop, orientation, gray mapping,
                landmarks)
``detect``      the four views together (four-view fusion), test-time flips when ``tta``
``select``      the operating point, degenerate boxes, one lesion seen as two types, the cap per view;
                stable ids ``lesion_001 ...`` in hanging order (R-CC, L-CC, R-MLO, L-MLO), by score in a view
``outline``     a mask per finding inside its box (:mod:`.outline`), exact on the original grid
``localize``    quadrant and depth, with the estimator the localization model's manifest prefers
``malignancy``  calibrated probability of malignancy and morphology
``match``       CC-MLO pairs and display numbers (breasts with both views only; otherwise reported)
``birads``      BI-RADS per finding, breast and exam
``total``       the whole call
============== ==========================================================================================

Nothing is written to disk. ``progress(fraction, message)`` is called between steps and may raise
:class:`~MammoDNNLib.errors.CancelledError` to stop the analysis.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import MammoDNNError
from ..findings import ModelInfo, Report
from ..study import Study
from . import stages
from .config import PipelineOptions
from .system import SystemModel, load_system

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

# Where each stage starts on the progress bar (fractions of the whole analysis).
_STAGE_START: dict[str, float] = {
    "load_models": 0.0,
    "preprocess": 0.05,
    "detect": 0.35,
    "outline": 0.65,
    "localize": 0.72,
    "malignancy": 0.8,
    "match": 0.88,
    "birads": 0.95,
}


class _Run:
    """Progress and timings of one analysis."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.timings: dict[str, float] = {}

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)

    @contextmanager
    def stage(self, name: str, message: str) -> Iterator[None]:
        self.report(_STAGE_START[name], message)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)


def analyze(
    study: Study,
    *,
    model: str | Path | None = None,
    device: str = "cpu",
    tta: bool = True,
    progress: Progress | None = None,
    options: PipelineOptions | None = None,
    system: SystemModel | None = None,
    models: stages.LoadedModels | None = None,
) -> Report:
    """Analyze one study (1-4 views) and return its :class:`~MammoDNNLib.findings.Report`.

    ``model``: the system to use (name or folder; ``None`` = the shipped ``mammodnn``), or one component model
    that replaces its stage in the default system. ``options`` override the system's pipeline options (the
    operating point, outline settings). ``system`` passes an already resolved :class:`SystemModel` and
    ``models``
    its already loaded models (benchmarks; tests that substitute a test double for a model). Errors a user can
    cause are :class:`~MammoDNNLib.errors.MammoDNNError` naming the file.
    """
    if not isinstance(study, Study) or not study.views:
        raise MammoDNNError("analyze needs a study with at least one view (MammoDNNLib.io.load_study)")
    run = _Run(progress)
    started = time.perf_counter()
    device = stages.check_device(device)

    with run.stage("load_models", "loading models"):
        system = system or load_system(model)
        models = models or stages.load_models(system, device)
    options = options or system.options
    detector = models.detector
    warnings: list[str] = list(study.warnings)

    n = len(study.views)
    with run.stage("preprocess", "preparing the views"):
        span = _STAGE_START["detect"] - _STAGE_START["preprocess"]
        prepared = stages.prepare(
            study,
            float(detector.spacing_mm),
            lambda i, message: run.report(_STAGE_START["preprocess"] + span * i / n, message),
        )
    for key, view in prepared.items():
        warnings += [f"{key}: {w}" for w in view.warnings if f"{key}: {w}" not in warnings]

    flips = " with test-time flips" if tta else ""
    with run.stage("detect", f"detecting lesions in {', '.join(prepared)}{flips}"):
        detections = detector.predict(prepared, tta=tta)

    with run.stage("outline", "outlining findings"):
        started_select = time.perf_counter()
        candidates = stages.select_detections(detections, prepared, options)
        findings = stages.make_findings(candidates)
        run.timings["select"] = round(time.perf_counter() - started_select, 4)
        detector_masks = stages.outline_findings(findings, prepared, options, study.views)

    if models.localization is not None:
        with run.stage("localize", "quadrant and depth"):
            stages.localize(findings, prepared, detector_masks, models.localization)
    else:
        warnings.append("no localization model in this system: quadrant and depth not estimated")

    if models.malignancy is not None:
        with run.stage("malignancy", "malignancy and morphology"):
            stages.grade(findings, prepared, detector_masks, models.malignancy)
    else:
        warnings.append("no malignancy model in this system: findings not graded (no BI-RADS category)")

    with run.stage("match", "matching CC and MLO findings"):
        notes = _match(findings, prepared, models.matcher)
    warnings += [note for note in notes.values() if note and note not in warnings]

    with run.stage("birads", "BI-RADS"):
        from ..birads import summarize

        breasts, exam = summarize(findings, list(study.views), models.birads, matching_notes=notes)

    run.timings["total"] = round(time.perf_counter() - started, 4)
    report = Report(
        model=ModelInfo(**system.model_info()),
        views=[stages.view_info(view, prepared.get(key)) for key, view in study.views.items()],
        findings=findings,
        breasts=breasts,
        exam=exam,
        timings=dict(run.timings),
        warnings=warnings,
        options={
            "device": device,
            "tta": bool(tta),
            "model": system.label,
            "prepared_spacing_mm": float(detector.spacing_mm),
            "pipeline": options.to_dict(),
            **({"component_overrides": dict(system.overrides)} if system.overrides else {}),
        },
        software=stages.software_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    run.report(1.0, f"{len(findings)} finding(s)")
    log.info(
        "analyzed %s: %d finding(s), exam BI-RADS %s in %.1f s",
        ", ".join(study.views),
        len(findings),
        exam.birads,
        run.timings["total"],
    )
    return report


def _match(findings, prepared, matcher) -> dict[str, str | None]:
    """Match each breast with both views; number the findings; the note per breast (None where matched)."""
    from ..matching import match_findings, matching_notes
    from ..matching.assign import display_numbers
    from ..vocabulary import LATERALITIES, view_key

    if matcher is not None:
        return matching_notes(match_findings(findings, prepared, matcher))
    notes: dict[str, str | None] = {}
    for side in LATERALITIES:
        cc = [f for f in findings if f.view_key == view_key(side, "CC")]
        mlo = [f for f in findings if f.view_key == view_key(side, "MLO")]
        cc_numbers, mlo_numbers = display_numbers([f.score for f in cc], [f.score for f in mlo], [])
        for f, number in (*zip(cc, cc_numbers, strict=True), *zip(mlo, mlo_numbers, strict=True)):
            f.number = number
        if any(k.startswith(side) for k in prepared):
            notes[side] = f"{side} breast: no matcher in this system, matching not done"
    return notes
