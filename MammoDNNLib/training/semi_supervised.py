"""Semi-supervised training: pseudo-labels for unlabelled studies from a mean teacher.

The teacher is an exponential moving average (EMA) of the student's weights (Tarvainen & Valpola 2017; as in
"Unbiased Teacher", Liu et al. 2021, for detection). From ``start_iteration`` on, an iteration draws an
unlabelled study with probability ``unlabelled_fraction``; the teacher (eval mode, no gradient) detects lesions
on the same augmented views the student sees, detections scoring at least ``threshold`` become its targets, and
everything else in those views counts as background. The student's losses on such a study are scaled by
``loss_weight``. A high threshold keeps pseudo-boxes precise; missed lesions become (wrong) background, which is
why the weight is below one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.network import FourViewFasterRCNN, ViewBatch


class EMATeacher:
    def __init__(self, student: FourViewFasterRCNN, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(student).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        student_state = student.state_dict()
        for name, value in self.model.state_dict().items():
            source = student_state[name]
            if value.dtype.is_floating_point:
                value.mul_(self.decay).add_(source.detach(), alpha=1.0 - self.decay)
            else:
                value.copy_(source)

    @torch.no_grad()
    def pseudo_targets(self, batch: ViewBatch, threshold: float) -> tuple[list[dict[str, torch.Tensor]], int]:
        """Targets for each view of ``batch`` from the teacher's confident detections, and how many boxes."""
        self.model.eval()
        results = self.model(batch)
        targets, count = [], 0
        for result in results:
            keep = result["scores"] >= threshold
            targets.append(
                {
                    "boxes": result["boxes"][keep].detach().clone(),
                    "labels": result["labels"][keep].detach().clone(),
                }
            )
            count += int(keep.sum())
        return targets, count
