"""Running the same training command on one CPU, one GPU, or several GPUs under ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; when they are present the process group is started
(NCCL on GPUs, gloo on CPUs), the model is wrapped in DistributedDataParallel, each rank draws its studies from its
own shard of the data, and only rank 0 writes checkpoints, logs and the model. Without them nothing changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    world_size: int
    rank: int
    local_rank: int
    device: torch.device
    initialized: bool  # this context started the process group (and must end it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.initialized


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_distributed(device: str | None = None) -> DistributedContext:
    """The context of this process: starts the process group when launched by ``torchrun``."""
    if not launched_by_torchrun():
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return DistributedContext(1, 0, 0, chosen, False)
    world_size = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    wants_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if wants_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        started = True
    log.info("distributed training: rank %d of %d on %s", rank, world_size, chosen)
    return DistributedContext(world_size, rank, local_rank, chosen, started or dist.is_initialized())


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    if not context.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def shard(items: Sequence[T], context: DistributedContext) -> list[T]:
    """This rank's share (every ``world_size``-th item); every rank gets at least one item when any exist."""
    if context.world_size == 1:
        return list(items)
    mine = list(items[context.rank :: context.world_size])
    return mine or list(items[:1])


def mean_over_ranks(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    """Average scalars over ranks (for the log)."""
    if not context.distributed or context.world_size == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return {k: float(v) / context.world_size for k, v in zip(keys, tensor.tolist())}


def barrier(context: DistributedContext) -> None:
    if context.distributed:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.initialized and dist.is_initialized():
        dist.destroy_process_group()
