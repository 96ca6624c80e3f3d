"""The learning-rate schedule and the optimizer of the study's recipe.

The rate is a pure function of the iteration (linear warm-up, then multi-step or cosine decay), set on the
optimizer before every step, so a resumed run needs no scheduler state beyond the iteration number.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.config import TrainingConfig


def lr_factor(iteration: int, config: TrainingConfig) -> float:
    """Multiplier of ``config.lr`` at ``iteration`` (0-based)."""
    if config.warmup_iterations > 0 and iteration < config.warmup_iterations:
        alpha = iteration / config.warmup_iterations
        warm = config.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if config.decay == "cosine":
        progress = min(iteration, config.max_iterations) / config.max_iterations
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        passed = sum(iteration >= round(m * config.max_iterations) for m in config.milestones)
        decay = config.gamma**passed
    return warm * decay


def learning_rate(iteration: int, config: TrainingConfig) -> float:
    return config.lr * lr_factor(iteration, config)


def set_learning_rate(optimizer: torch.optim.Optimizer, iteration: int, config: TrainingConfig) -> float:
    lr = learning_rate(iteration, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.SGD:
    """Momentum SGD over the trainable parameters; no weight decay on normalization and bias parameters."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
