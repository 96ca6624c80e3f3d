"""The four-view Faster R-CNN: torchvision's ResNet+FPN, RPN and RoI heads with the fusion module between the
FPN and the RPN, and the batching of a study's views onto one padded canvas.

Inputs are prepared views (1 channel, gray-normalized float32, chest wall on the left). The gray channel is
normalized with the ImageNet gray statistics and replicated to three channels, so ImageNet weights apply as they
are. No resizing happens inside the network: the pipeline prepares images at the model's spacing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign, boxes as box_ops

from ..vocabulary import VIEW_KEYS
from .backbone import build_backbone
from .config import DetectorConfig
from .fusion import FourViewFusion, partner_indices


@dataclass
class ViewBatch:
    """The views of one or more studies on one padded canvas (content at the top-left of each slot)."""

    images: Tensor  # (B, 1, H, W) float32
    sizes: list[tuple[int, int]]  # (height, width) of each view's content
    keys: list[str]  # view key of each slot
    study_index: list[int]  # which study each slot belongs to
    partner_lr: Tensor  # (B,) slot of the contralateral view, -1 if absent
    partner_cc: Tensor  # (B,) slot of the other view of the same breast, -1 if absent

    @property
    def canvas(self) -> tuple[int, int]:
        """(height, width) of the padded canvas."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def to(self, device: torch.device | str) -> "ViewBatch":
        return ViewBatch(
            self.images.to(device),
            self.sizes,
            self.keys,
            self.study_index,
            self.partner_lr.to(device),
            self.partner_cc.to(device),
        )

    def flipped(self, horizontal: bool, vertical: bool) -> "ViewBatch":
        """The whole canvas mirrored (every view together, so the fusion's correspondences hold)."""
        dims = [d for d, f in ((-1, horizontal), (-2, vertical)) if f]
        images = self.images.flip(dims) if dims else self.images
        return ViewBatch(images, self.sizes, self.keys, self.study_index, self.partner_lr, self.partner_cc)


def make_view_batch(
    studies: Sequence[Mapping[str, np.ndarray | Tensor]], size_divisible: int = 32
) -> ViewBatch:
    """Pad the views of ``studies`` (each ``{view key: (H, W) image}``) to one canvas, in hanging order."""
    images, sizes, keys, study_index = [], [], [], []
    for s, study in enumerate(studies):
        for key in VIEW_KEYS:
            if key in study:
                image = torch.as_tensor(study[key], dtype=torch.float32)
                if image.ndim != 2:
                    raise ValueError(f"view {key}: expected a 2-D image, got shape {tuple(image.shape)}")
                images.append(image)
                sizes.append((int(image.shape[0]), int(image.shape[1])))
                keys.append(key)
                study_index.append(s)
    if not images:
        raise ValueError("no views to batch")
    height = _round_up(max(h for h, _ in sizes), size_divisible)
    width = _round_up(max(w for _, w in sizes), size_divisible)
    canvas = images[0].new_zeros((len(images), 1, height, width))
    for i, image in enumerate(images):
        canvas[i, 0, : image.shape[0], : image.shape[1]] = image
    lr, cc = partner_indices(keys, study_index)
    return ViewBatch(canvas, sizes, keys, study_index, lr, cc)


def _round_up(value: int, divisor: int) -> int:
    return int(-(-value // divisor) * divisor)


class FourViewFasterRCNN(nn.Module):
    """Faster R-CNN over the views of a study with four-view fusion between the FPN and the RPN."""

    def __init__(self, config: DetectorConfig, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config, load_pretrained=load_pretrained)
        channels = self.backbone.out_channels
        self.fusion = FourViewFusion(channels, config.fusion) if config.fusion.enabled else None
        rpn_cfg, roi_cfg = config.rpn, config.roi
        anchors = AnchorGenerator(rpn_cfg.anchor_sizes, (rpn_cfg.aspect_ratios,) * len(rpn_cfg.anchor_sizes))
        self.rpn = RegionProposalNetwork(
            anchors,
            RPNHead(channels, anchors.num_anchors_per_location()[0]),
            rpn_cfg.fg_iou_thresh,
            rpn_cfg.bg_iou_thresh,
            rpn_cfg.batch_size_per_image,
            rpn_cfg.positive_fraction,
            dict(training=rpn_cfg.pre_nms_top_n_train, testing=rpn_cfg.pre_nms_top_n_test),
            dict(training=rpn_cfg.post_nms_top_n_train, testing=rpn_cfg.post_nms_top_n_test),
            rpn_cfg.nms_thresh,
        )
        level_names = [str(i) for i in range(len(config.returned_layers))]
        pool = MultiScaleRoIAlign(level_names, roi_cfg.roi_output_size, sampling_ratio=2)
        head = TwoMLPHead(channels * roi_cfg.roi_output_size**2, roi_cfg.box_head_size)
        self.roi_heads = RoIHeads(
            pool,
            head,
            FastRCNNPredictor(roi_cfg.box_head_size, config.num_classes),
            roi_cfg.fg_iou_thresh,
            roi_cfg.bg_iou_thresh,
            roi_cfg.batch_size_per_image,
            roi_cfg.positive_fraction,
            None,
            roi_cfg.score_thresh,
            roi_cfg.nms_thresh,
            roi_cfg.detections_per_img,
        )
        self.register_buffer("image_mean", torch.tensor(config.image_mean), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std), persistent=False)

    # -- stages ------------------------------------------------------------------------------------------------
    def features(self, images: Tensor, partner_lr: Tensor, partner_cc: Tensor) -> "OrderedDict[str, Tensor]":
        """FPN features after fusion for a ``(B, 1, H, W)`` canvas."""
        x = ((images - self.image_mean) / self.image_std).expand(-1, 3, -1, -1)
        features = self.backbone(x)
        if self.fusion is not None:
            features = self.fusion(features, partner_lr, partner_cc)
        return features

    def forward(self, batch: ViewBatch, targets: list[dict[str, Tensor]] | None = None):
        """Training (``targets`` given, model in train mode): the loss dict. Inference: one dict per view with
        ``boxes`` (canvas coordinates), ``scores``, ``labels`` and ``probs`` (all class probabilities)."""
        features = self.features(batch.images, batch.partner_lr, batch.partner_cc)
        return self.heads(features, batch.canvas, len(batch.keys), targets)

    def heads(self, features, canvas: tuple[int, int], count: int, targets=None):
        image_sizes = [canvas] * count
        # The RPN only reads the tensor's shape (for anchor strides) and image_sizes.
        first = next(iter(features.values()))
        dummy = first.new_empty((count, 0, canvas[0], canvas[1]))
        image_list = ImageList(dummy, image_sizes)
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            proposals, rpn_losses = self.rpn(image_list, features, targets)
            _, roi_losses = self.roi_heads(features, proposals, image_sizes, targets)
            return {**rpn_losses, **roi_losses}
        proposals, _ = self.rpn(image_list, features)
        return self.detect_from_proposals(features, proposals, image_sizes)

    def detect_from_proposals(
        self, features, proposals: list[Tensor], image_sizes
    ) -> list[dict[str, Tensor]]:
        """torchvision's ``RoIHeads.postprocess_detections``, keeping each detection's class-probability vector."""
        heads = self.roi_heads
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        num_classes = class_logits.shape[-1]
        pred_boxes = heads.box_coder.decode(box_regression, proposals)
        pred_probs = F.softmax(class_logits, -1)
        counts = [len(p) for p in proposals]
        results = []
        for boxes, probs, size in zip(pred_boxes.split(counts), pred_probs.split(counts), image_sizes):
            boxes = box_ops.clip_boxes_to_image(boxes, size)[:, 1:].reshape(-1, 4)
            roi = torch.arange(len(probs), device=probs.device).repeat_interleave(num_classes - 1)
            labels = torch.arange(1, num_classes, device=probs.device).repeat(len(probs))
            scores = probs[:, 1:].reshape(-1)
            keep = torch.where(scores > heads.score_thresh)[0]
            boxes, scores, labels, roi = boxes[keep], scores[keep], labels[keep], roi[keep]
            keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels, roi = boxes[keep], scores[keep], labels[keep], roi[keep]
            keep = box_ops.batched_nms(boxes, scores, labels, heads.nms_thresh)[: heads.detections_per_img]
            results.append(
                dict(boxes=boxes[keep], scores=scores[keep], labels=labels[keep], probs=probs[roi[keep]])
            )
        return results
