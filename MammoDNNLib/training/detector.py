"""The detector's training loop: the study's recipe, resumable, logged, on one CPU/GPU or under ``torchrun``.

``train_detector(samples, config, out_dir)`` trains ``partitions`` ensemble members (each on a random
``partition_fraction`` of the labelled studies when there are several, the study's robustness recipe), optionally
with pseudo-labelled unlabelled studies, and writes one registry model folder (:mod:`MammoDNNLib.models.registry`)
holding every member. Layout of ``out_dir``::

    manifest.json, member-<i>.safetensors (or weights.safetensors), MODEL_CARD.md, config.json   the model
    train-log.jsonl                                                                              losses, lr, ...
    checkpoints/member-<i>/checkpoint-<iteration>.{safetensors,json}                             resumable state
    checkpoints/member-<i>/final.safetensors                                                     a finished member

Re-running with ``resume=True`` continues each member from its newest checkpoint and skips finished members.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.samples import StudySample
from ..errors import MammoDNNError
from ..models.backbone import resolve_initialization
from ..models.config import DetectorConfig
from ..models.network import FourViewFasterRCNN
from ..models.registry import ModelInfo, save_model
from . import distributed as ddp
from .batches import training_batch
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .schedule import make_optimizer, set_learning_rate
from .semi_supervised import EMATeacher

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    name: str = "detector"
    version: str = "0.1.0"
    partitions: int = 1
    partition_fraction: float = 0.8
    seed: int = 0
    resume: bool = False
    device: str | None = None  # default: cuda when available, else cpu (torchrun: this rank's GPU)
    max_iterations: int | None = None  # overrides config.training.max_iterations
    progress: bool = True
    description: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)  # what the data were (manifest, sources, ...)


@dataclass
class MemberResult:
    state_dict: dict[str, torch.Tensor]
    study_ids: list[str]
    final_losses: dict[str, float]
    pseudo_boxes: int


def partition_indices(count: int, partitions: int, fraction: float, seed: int) -> list[np.ndarray]:
    """Random subsets (``fraction`` of ``count`` each, sorted) for the ensemble members; all for one member."""
    if partitions <= 1:
        return [np.arange(count)]
    if not 0 < fraction <= 1:
        raise MammoDNNError(f"partition fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng([seed, 7919])
    size = max(1, round(fraction * count))
    return [np.sort(rng.choice(count, size=size, replace=False)) for _ in range(partitions)]


def split_labelled(samples: Sequence[StudySample]) -> tuple[list[int], list[int]]:
    """Indices of the labelled and the unlabelled studies. A dataset that can tell without loading images (the
    data package's ``StudyDataset``: ``labelled_indices()`` / ``unlabelled_indices()``) is asked; a list of
    samples in memory is inspected."""
    if hasattr(samples, "labelled_indices") and hasattr(samples, "unlabelled_indices"):
        return list(samples.labelled_indices()), list(samples.unlabelled_indices())
    labelled = [i for i, s in enumerate(samples) if s.labelled and s.views]
    unlabelled = [i for i, s in enumerate(samples) if not s.labelled and s.views]
    return labelled, unlabelled


def study_id(samples: Sequence[StudySample], index: int) -> str:
    studies = getattr(samples, "studies", None)  # StudyDataset: manifest entries, no image loading
    if studies is not None and hasattr(studies[index], "id"):
        return str(studies[index].id)
    return samples[index].study_id


def train_detector(
    samples: Sequence[StudySample],
    config: DetectorConfig,
    out_dir: str | Path,
    options: TrainOptions | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> ModelInfo | None:
    """Train and save the model; returns its :class:`ModelInfo` (``None`` on ranks other than 0)."""
    options = options or TrainOptions()
    out = Path(out_dir)
    context = ddp.init_distributed(options.device)
    try:
        config = resolve_initialization(config)
        if options.max_iterations is not None:
            config = config.replace(
                training={**config.to_dict()["training"], "max_iterations": options.max_iterations}
            )
        labelled, unlabelled = split_labelled(samples)
        if not labelled:
            raise MammoDNNError("no labelled studies to train on")
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
            config.save(out / "config.json")
        members: list[MemberResult] = []
        for m, subset in enumerate(
            partition_indices(len(labelled), options.partitions, options.partition_fraction, options.seed)
        ):
            members.append(
                _train_member(
                    m,
                    samples,
                    [labelled[i] for i in subset],
                    unlabelled,
                    config,
                    out,
                    options,
                    context,
                    on_log,
                )
            )
        ddp.barrier(context)
        if not context.is_main:
            return None
        semi = config.training.semi_supervised
        training_data = {
            **options.training_data,
            "labelled_studies": len(labelled),
            "unlabelled_studies": len(unlabelled) if semi.enabled else 0,
            "partitions": options.partitions,
            "partition_fraction": options.partition_fraction if options.partitions > 1 else 1.0,
            "seed": options.seed,
            "members": [
                {
                    "studies": len(r.study_ids),
                    "study_ids": r.study_ids,
                    "final_losses": r.final_losses,
                    "pseudo_boxes": r.pseudo_boxes,
                }
                for r in members
            ],
            "iterations": config.training.max_iterations,
            "world_size": context.world_size,
        }
        return save_model(
            out,
            name=options.name,
            version=options.version,
            kind="detector",
            classes=config.classes,
            config=config.to_dict(),
            state_dicts=[r.state_dict for r in members],
            training_data=training_data,
            description=options.description
            or f"Four-view Faster R-CNN ({config.backbone}), "
            f"{len(members)} member(s), trained by mammodnn train detector.",
        )
    finally:
        ddp.shutdown(context)


def _train_member(
    member: int,
    samples: Sequence[StudySample],
    labelled: list[int],
    unlabelled: list[int],
    config: DetectorConfig,
    out: Path,
    options: TrainOptions,
    context: ddp.DistributedContext,
    on_log: Callable[[dict[str, Any]], None] | None,
) -> MemberResult:
    training = config.training
    semi = training.semi_supervised
    folder = out / "checkpoints" / f"member-{member}"
    final = folder / "final.safetensors"
    study_ids = [study_id(samples, i) for i in labelled]
    if options.resume and final.is_file():
        from safetensors.torch import load_file

        log.info("member %d already finished (%s); skipping", member, final)
        meta = json.loads(final.with_suffix(".json").read_text(encoding="utf-8"))
        return MemberResult(
            load_file(str(final)), study_ids, meta.get("final_losses", {}), meta.get("pseudo_boxes", 0)
        )

    torch.manual_seed(options.seed * 1000 + member)
    model = FourViewFasterRCNN(config).to(context.device)
    optimizer = make_optimizer(model, training)
    teacher = EMATeacher(model, semi.ema_decay) if semi.enabled and unlabelled else None
    rng = np.random.default_rng([options.seed, member, context.rank])
    start = 0
    if options.resume and (latest := latest_checkpoint(folder)) is not None:
        start = load_checkpoint(latest, model, optimizer, rng, teacher.model if teacher else None).iteration
    log_file = out / "train-log.jsonl"
    if start and context.is_main:
        _truncate_log(log_file, member, start)
    network = ddp.wrap_model(model, context)
    my_labelled = ddp.shard(labelled, context)
    my_unlabelled = ddp.shard(unlabelled, context) if teacher else []
    last_losses: dict[str, float] = {}
    pseudo_total = 0
    running: dict[str, float] = {}
    running_count = 0
    bar = None
    if options.progress and context.is_main:
        from tqdm import tqdm

        bar = tqdm(
            total=training.max_iterations,
            initial=start,
            desc=f"member {member + 1}",
            unit="it",
            dynamic_ncols=True,
        )
    started = time.monotonic()
    for iteration in range(start, training.max_iterations):
        lr = set_learning_rate(optimizer, iteration, training)
        use_unlabelled = bool(
            teacher
            and my_unlabelled
            and iteration >= semi.start_iteration
            and rng.random() < semi.unlabelled_fraction
        )
        pool = my_unlabelled if use_unlabelled else my_labelled
        chosen = [samples[pool[int(i)]] for i in rng.integers(0, len(pool), size=training.studies_per_batch)]
        batch, targets = training_batch(chosen, training, rng, config.size_divisible)
        batch = batch.to(context.device)
        weight = 1.0
        if use_unlabelled:
            targets, found = teacher.pseudo_targets(batch, semi.threshold)
            pseudo_total += found
            weight = semi.loss_weight
        else:
            targets = [{k: v.to(context.device) for k, v in t.items()} for t in targets]
        network.train()
        losses = network(batch, targets)
        loss = weight * sum(losses.values())
        if not torch.isfinite(loss):
            raise MammoDNNError(
                f"member {member}: loss became {float(loss)} at iteration {iteration}; lower the learning rate or "
                f"check the data (last checkpoint in {folder})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if training.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip_norm)
        optimizer.step()
        if teacher is not None:
            teacher.update(model)
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        running["loss"] = running.get("loss", 0.0) + float(sum(losses.values()).detach())
        running_count += 1
        done = iteration + 1
        if done % training.log_every == 0 or done == training.max_iterations:
            means = ddp.mean_over_ranks({k: v / running_count for k, v in running.items()}, context)
            last_losses = {k: round(v, 5) for k, v in means.items()}
            record = {
                "member": member,
                "iteration": done,
                "lr": lr,
                **last_losses,
                "unlabelled": use_unlabelled,
                "pseudo_boxes": pseudo_total,
                "seconds": round(time.monotonic() - started, 2),
            }
            running, running_count = {}, 0
            if context.is_main:
                with open(log_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{last_losses['loss']:.3f}", lr=f"{lr:.2g}")
                if on_log is not None:
                    on_log(record)
        if bar is not None:
            bar.update(1)
        if context.is_main and (done % training.checkpoint_every == 0) and done < training.max_iterations:
            save_checkpoint(
                folder,
                done,
                model,
                optimizer,
                rng,
                teacher.model if teacher else None,
                {"member": member, "losses": last_losses},
            )
    if bar is not None:
        bar.close()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if context.is_main:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(final))
        final.with_suffix(".json").write_text(
            json.dumps(
                {
                    "final_losses": last_losses,
                    "pseudo_boxes": pseudo_total,
                    "iterations": training.max_iterations,
                }
            ),
            encoding="utf-8",
        )
    return MemberResult(state, study_ids, last_losses, pseudo_total)


def _truncate_log(log_file: Path, member: int, iteration: int) -> None:
    """Drop this member's records after ``iteration`` (written after the checkpoint a resumed run starts from)."""
    if not log_file.is_file():
        return
    kept = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off when the run was killed
        if not (record.get("member") == member and record.get("iteration", 0) > iteration):
            kept.append(line)
    log_file.write_text("".join(k + "\n" for k in kept), encoding="utf-8")


def loss_trend(log_path: str | Path, member: int = 0) -> list[float]:
    """The logged total losses of one member, in order (for checks and plots)."""
    values = []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("member") == member and math.isfinite(record.get("loss", math.nan)):
            values.append(record["loss"])
    return values
