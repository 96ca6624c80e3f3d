"""Four-view feature fusion between the FPN and the region proposal network (the study's Figure 1).

For every FPN level, each view's feature map ``x`` is combined with

* **left-right**: the feature map of the same view of the contralateral breast. Prepared views all have the chest
  wall on the left (the preprocessing mirrors one breast), so the contralateral map is *already* the mirrored
  contralateral breast: position ``(x, y)`` in R-CC and L-CC is the same anatomical position up to the breasts'
  own asymmetry. It is used as it is, on the common padded canvas of the study; a test-time flip flips every view
  of the study together, so the correspondence holds under TTA too.
* **CC-MLO**: a summary of the other view of the same breast. CC and MLO are different projections and are not
  pixel-aligned, but in both prepared views the horizontal axis runs from the chest wall (left) to the nipple
  (right): a lesion at a given distance from the chest wall/nipple lies at about the same column in both views
  (the distance-to-nipple rule radiologists use to match CC and MLO findings), while its row is unrelated. So the
  summary is column-pooled: for every column, the maximum over the rows of the other view's features, broadcast
  over the rows of this view. That keeps the one geometric correspondence that exists and discards the one that
  does not, at the cost of a max along one axis (cheaper and more data-efficient than cross-attention).

The parts are concatenated with one presence flag per partner and passed through a bottleneck (1x1 conv, ReLU,
1x1 conv) whose last layer starts at zero and is added to ``x`` as a residual: an untrained or absent fusion is
the identity, and a missing partner view (its features zero, its flag zero) shifts the output only by what the
network learned for "partner missing", so missing views degrade gracefully. Each part is switched off by the
configuration (``fusion.left_right``, ``fusion.cc_mlo``).

One module is shared by all FPN levels (the FPN gives every level the same width); it is also exportable to ONNX
because the pairing is given as index tensors rather than Python structures.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from ..vocabulary import contralateral, other_view
from .config import FusionConfig


def partner_indices(keys: list[str], study_ids: list[int]) -> tuple[Tensor, Tensor]:
    """For a batch of views (their keys and which study each belongs to), the batch index of each view's
    contralateral partner and of its other view (``-1`` where that view is absent)."""
    where = {(s, k): i for i, (s, k) in enumerate(zip(study_ids, keys))}
    lr = [where.get((s, contralateral(k)), -1) for s, k in zip(study_ids, keys)]
    cc = [where.get((s, other_view(k)), -1) for s, k in zip(study_ids, keys)]
    return torch.tensor(lr, dtype=torch.long), torch.tensor(cc, dtype=torch.long)


class FourViewFusion(nn.Module):
    """``x + expand(relu(Wx x + Wlr partner_lr + Wcc profile_cc + flags)))`` with the last layer zero-initialized.

    This is the concatenation + 1x1 conv of the design written as a sum of per-part 1x1 convolutions (the same
    linear map), which never materializes the concatenated tensor and applies the CC-MLO weights to the pooled
    column profile (one row) before broadcasting it, so the fusion costs about one bottleneck per level.
    """

    def __init__(self, channels: int, config: FusionConfig):
        super().__init__()
        self.left_right = config.left_right
        self.cc_mlo = config.cc_mlo
        hidden = channels // config.reduction
        self.reduce_self = nn.Conv2d(channels, hidden, kernel_size=1)
        # Partner weights: no bias; the learned "partner present" offsets below play the presence flags' part.
        self.reduce_lr = nn.Conv2d(channels, hidden, kernel_size=1, bias=False) if self.left_right else None
        self.reduce_cc = nn.Conv2d(channels, hidden, kernel_size=1, bias=False) if self.cc_mlo else None
        self.flag_lr = nn.Parameter(torch.zeros(1, hidden, 1, 1)) if self.left_right else None
        self.flag_cc = nn.Parameter(torch.zeros(1, hidden, 1, 1)) if self.cc_mlo else None
        self.expand = nn.Conv2d(hidden, channels, kernel_size=1)
        nn.init.zeros_(self.expand.weight)  # starts as the identity
        nn.init.zeros_(self.expand.bias)

    def forward(self, features: "OrderedDict[str, Tensor]", partner_lr: Tensor, partner_cc: Tensor):
        """``features``: FPN levels, each ``(B, C, H, W)`` for the B views of the batch on a common canvas;
        ``partner_lr`` / ``partner_cc``: ``(B,)`` batch indices of each view's partners, ``-1`` where absent."""
        return OrderedDict((name, self.fuse(x, partner_lr, partner_cc)) for name, x in features.items())

    def fuse(self, x: Tensor, partner_lr: Tensor, partner_cc: Tensor) -> Tensor:
        batch = x.shape[0]
        hidden = self.reduce_self(x)
        if self.reduce_lr is not None:
            present = (partner_lr >= 0).to(x.dtype).view(batch, 1, 1, 1)
            hidden = hidden + (self.reduce_lr(x)[partner_lr.clamp(min=0)] + self.flag_lr) * present
        if self.reduce_cc is not None:
            present = (partner_cc >= 0).to(x.dtype).view(batch, 1, 1, 1)
            column_profile = x.amax(dim=2, keepdim=True)  # (B, C, 1, W): max over rows
            hidden = (
                hidden + (self.reduce_cc(column_profile)[partner_cc.clamp(min=0)] + self.flag_cc) * present
            )
        return x + self.expand(torch.relu(hidden))
