"""Ensembles: several detectors that run together and whose boxes are merged (weighted box fusion or NMS).

A model folder may hold several members (``member-<i>.safetensors``); :class:`~MammoDNNLib.models.detector.
Detector` runs every member on every test-time pass and merges all of their boxes per view
(:func:`~MammoDNNLib.models.tta.merge_box_sets`). ``mammodnn train detector --partitions 3`` writes such a folder
directly; :func:`combine_models` builds one from models trained separately (e.g. on different machines), after
verifying each and checking that they share one architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ModelError
from .registry import ModelInfo, load_state_dicts, resolve_model, save_model, verify_model

# Config fields that may differ between members (they do not change the architecture or the inference).
_FREE_FIELDS = ("name", "training", "pretrained", "pretrained_path")


def combine_models(
    sources: Sequence[str | Path], out: str | Path, *, name: str, version: str = "1.0.0"
) -> ModelInfo:
    """One ensemble model folder from the members of every model in ``sources`` (names or folders)."""
    if len(sources) < 2:
        raise ModelError("an ensemble needs at least two models")
    infos = [verify_model(resolve_model(s)) for s in sources]
    kinds = {i.kind for i in infos}
    if kinds != {"detector"}:
        raise ModelError(f"only detector models can be combined, got kinds {sorted(kinds)}")
    reference = {k: v for k, v in infos[0].config.items() if k not in _FREE_FIELDS}
    for info in infos[1:]:
        config = {k: v for k, v in info.config.items() if k not in _FREE_FIELDS}
        if config != reference:
            different = sorted(k for k in set(config) | set(reference) if config.get(k) != reference.get(k))
            raise ModelError(
                f"{info.path}: configuration differs from {infos[0].path} in {', '.join(different)}"
            )
    states = [state for info in infos for state in load_state_dicts(info, verify=False)]
    return save_model(
        out,
        name=name,
        version=version,
        kind="detector",
        classes=infos[0].classes,
        config={**infos[0].config, "name": name},
        state_dicts=states,
        training_data={
            "ensemble_of": [
                {"name": i.name, "version": i.version, "training_data": i.training_data} for i in infos
            ]
        },
        description=f"Ensemble of {len(states)} members from {', '.join(i.label for i in infos)}.",
    )
