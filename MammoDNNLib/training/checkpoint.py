"""Resumable training checkpoints without pickle: tensors in safetensors, everything else in JSON.

``checkpoint-<iteration>.safetensors`` holds the model (``model.*``), the optimizer's per-parameter state
(``optim.<index>.<name>``), the EMA teacher (``teacher.*``) and the torch RNG states; the JSON file beside it holds
the iteration, the optimizer's parameter groups, the numpy generator's state, the config and the loss history.
The JSON is written last, so a checkpoint without its JSON (a run killed while writing) is ignored on resume.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

log = logging.getLogger(__name__)
KEEP_LAST = 2


@dataclass
class TrainingState:
    iteration: int
    numpy_rng: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    folder: Path,
    iteration: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    teacher: nn.Module | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    if teacher is not None:
        tensors.update({f"teacher.{k}": v for k, v in teacher.state_dict().items()})
    optim = optimizer.state_dict()
    for index, state in optim["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    stem = folder / f"checkpoint-{iteration:07d}"
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(stem.with_suffix(".safetensors"))
    )
    meta = {
        "iteration": iteration,
        "param_groups": [{k: v for k, v in g.items()} for g in optim["param_groups"]],
        "numpy_rng": rng.bit_generator.state,
        "extra": extra or {},
    }
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(stem.with_suffix(".json"))
    for old in sorted(folder.glob("checkpoint-*.json"))[:-KEEP_LAST]:
        old.unlink()
        old.with_suffix(".safetensors").unlink(missing_ok=True)
    return stem.with_suffix(".safetensors")


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (its ``.json``), or None."""
    complete = [
        p for p in sorted(folder.glob("checkpoint-*.json")) if p.with_suffix(".safetensors").is_file()
    ]
    return complete[-1] if complete else None


def load_checkpoint(
    meta_path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    teacher: nn.Module | None = None,
) -> TrainingState:
    """Restore model, optimizer, teacher and RNG states in place; returns the iteration to continue from."""
    from safetensors.torch import load_file

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(meta_path.with_suffix(".safetensors")))
    except Exception as exc:
        raise ModelError(f"{meta_path}: unreadable checkpoint ({exc})") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if teacher is not None:
        teacher_state = {k[8:]: v for k, v in tensors.items() if k.startswith("teacher.")}
        if teacher_state:
            teacher.load_state_dict(teacher_state)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    rng.bit_generator.state = meta["numpy_rng"]
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    log.info("resumed from %s (iteration %d)", meta_path, meta["iteration"])
    return TrainingState(int(meta["iteration"]), meta["numpy_rng"], meta.get("extra", {}))
