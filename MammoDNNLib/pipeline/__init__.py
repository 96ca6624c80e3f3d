"""The analysis pipeline: ``analyze(study) -> Report``, the one call from a study's views to its findings.

    from MammoDNNLib.io import load_study
    from MammoDNNLib.pipeline import analyze
    report = analyze(load_study("exam/"), device="cpu", tta=True)

* :mod:`.analyze` — the call and its stages (timed into ``Report.timings``);
* :mod:`.system` — the system model: which component models and BI-RADS mapping, pinned by sha256, and the
  pipeline options tuned for them;
* :mod:`.config` — :class:`PipelineOptions` (operating point, cap per view, outline settings);
* :mod:`.outline` — lesion masks from detection boxes, mapped exactly to the original grid;
* :mod:`.stages` — the adapters between the stages and the model cache.

Importing this package imports no torch; the models are loaded on the first analysis. docs/pipeline.md.
"""

from .analyze import analyze
from .config import OutlineConfig, PipelineOptions
from .stages import clear_model_cache
from .system import DEFAULT_SYSTEM, SystemModel, load_system

__all__ = [
    "DEFAULT_SYSTEM",
    "OutlineConfig",
    "PipelineOptions",
    "SystemModel",
    "analyze",
    "clear_model_cache",
    "load_system",
]
