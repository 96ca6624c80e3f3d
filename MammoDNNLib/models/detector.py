"""Lesion detection on a study's prepared views: the inference API.

``Detector.predict(views)`` takes the prepared views of one study (anything with ``.image``, ``.breast_mask`` and
``.transform``: the preprocessing's ``PreparedView`` or the training ``ViewSample``), runs every ensemble member
on every test-time flip of the study's canvas, merges the boxes (weighted box fusion or NMS) and returns
:class:`Detection` objects per view with boxes in both the prepared and the ORIGINAL pixel grid (through the
view's :class:`~MammoDNNLib.geometry.Transform`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..geometry import Box, Transform
from .config import DetectorConfig
from .network import FourViewFasterRCNN, make_view_batch
from .tta import BoxSet, flip_boxes, merge_box_sets

if TYPE_CHECKING:
    from .registry import ModelInfo

log = logging.getLogger(__name__)

BREAST_CROP_MARGIN = 8  # prepared pixels kept around the breast mask's bounding box


class PreparedViewLike(Protocol):
    image: np.ndarray  # (H, W) float32, gray-normalized, chest wall on the left
    breast_mask: np.ndarray  # (H, W) bool
    transform: Transform


@dataclass(frozen=True)
class Detection:
    view: str  # "R-CC", ...
    label: str  # finding type key
    score: float
    box: Box  # ORIGINAL pixel grid of the view, [x0, y0, x1, y1] pixel edges
    box_prepared: Box  # prepared grid
    probabilities: dict[
        str, float
    ]  # softmax over background + classes (background left out), merged over passes


class FeatureRunner(Protocol):
    """What :class:`Detector` needs of a member: fused FPN features, then the heads (an accelerated runner, e.g.
    ONNX Runtime for the features, has the same two methods)."""

    def features(self, images: torch.Tensor, partner_lr: torch.Tensor, partner_cc: torch.Tensor): ...

    def heads(self, features, canvas: tuple[int, int], count: int): ...


class Detector:
    def __init__(
        self,
        config: DetectorConfig,
        members: Sequence[FeatureRunner],
        device: str | torch.device = "cpu",
        info: "ModelInfo | None" = None,
        channels_last: bool = False,
    ):
        if not members:
            raise ModelError("a detector needs at least one model")
        self.config = config
        self.device = torch.device(device)
        self.info = info
        self.channels_last = channels_last
        self.members = list(members)
        for member in self.members:
            if isinstance(member, nn.Module):
                member.eval().to(self.device)
                if channels_last:
                    member.to(memory_format=torch.channels_last)

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_info(
        cls,
        info: "ModelInfo",
        device: str = "cpu",
        channels_last: bool | None = None,
        fold_batchnorm: bool = True,
        runtime: str = "torch",
    ) -> "Detector":
        """Build from a verified registry entry (see :func:`MammoDNNLib.models.registry.load_model`).

        Inference settings measured by ``mammodnn benchmark`` (docs/detector.md): ``fold_batchnorm`` folds frozen
        batch norms into the convolutions (exact); ``channels_last`` (default: on for CPU); ``runtime="onnx"``
        runs backbone+FPN+fusion in ONNX Runtime (exported when loading, which takes a while)."""
        from .accelerate import OnnxFeatureRunner, fold_frozen_batchnorm
        from .registry import load_state_dicts

        if runtime not in ("torch", "onnx"):
            raise ModelError(f"unknown runtime {runtime!r}; expected 'torch' or 'onnx'")
        if channels_last is None:
            channels_last = torch.device(device).type == "cpu" and runtime == "torch"

        config = DetectorConfig.from_dict(info.config, info.path)
        members = []
        for component, state in zip(info.components, load_state_dicts(info, verify=False)):
            model = FourViewFasterRCNN(config, load_pretrained=False)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0:3]
                raise ModelError(
                    f"{component.file}: weights do not fit the model's configuration: {first}"
                ) from None
            if fold_batchnorm and config.norm in ("frozen_bn", "bn"):
                model = fold_frozen_batchnorm(model.eval())
            members.append(OnnxFeatureRunner(model.eval()) if runtime == "onnx" else model)
        return cls(config, members, device, info, channels_last)

    @classmethod
    def load(cls, name_or_path: str, device: str = "cpu") -> "Detector":
        """A registered model by name or folder (hashes verified)."""
        from .registry import load_model

        detector = load_model(name_or_path, device)
        if not isinstance(detector, cls):
            raise ModelError(f"{name_or_path}: is not a detector model")
        return detector

    @property
    def spacing_mm(self) -> float:
        """The spacing the views must be prepared at."""
        return self.config.spacing_mm

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    # -- inference ---------------------------------------------------------------------------------------------
    def predict(
        self,
        views: Mapping[str, PreparedViewLike],
        *,
        tta: bool | None = None,
        ensemble: bool = True,
        merge: str | None = None,
        score_threshold: float = 0.0,
        crop_to_breast: bool = True,
    ) -> dict[str, list[Detection]]:
        """Detections per view of one study, best first, boxes in the original and the prepared grid."""
        images = {key: view.image for key, view in views.items()}
        masks = {key: getattr(view, "breast_mask", None) for key, view in views.items()}
        merged = self.predict_images(
            images, masks, tta=tta, ensemble=ensemble, merge=merge, crop_to_breast=crop_to_breast
        )
        out: dict[str, list[Detection]] = {}
        for key, found in merged.items():
            transform = views[key].transform
            keep = found.scores >= score_threshold
            prepared = found.boxes[keep]
            original = transform.boxes_to_original(prepared) if len(prepared) else np.zeros((0, 4))
            out[key] = [
                Detection(
                    key,
                    self.config.classes[int(label) - 1],
                    float(score),
                    _box(o),
                    _box(p),
                    {c: float(prob[i + 1]) for i, c in enumerate(self.config.classes)},
                )
                for o, p, score, label, prob in zip(
                    original, prepared, found.scores[keep], found.labels[keep], found.probs[keep]
                )
            ]
        return out

    def passes(self, tta: bool | None) -> list[tuple[bool, bool]]:
        """The (horizontal, vertical) flips run: identity, plus the configured flips when TTA is on."""
        use = self.config.tta if tta is None or tta else None
        flips = [(False, False)]
        if use is not None and use.horizontal_flip:
            flips.append((True, False))
        if use is not None and use.vertical_flip:
            flips.append((False, True))
        return flips

    def predict_images(
        self,
        images: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray | None] | None = None,
        *,
        tta: bool | None = None,
        ensemble: bool = True,
        merge: str | None = None,
        crop_to_breast: bool = True,
    ) -> dict[str, BoxSet]:
        """Merged detections per view in PREPARED pixel coordinates (``images``: prepared ``(H, W)`` arrays)."""
        if not images:
            return {}
        crops, offsets = {}, {}
        for key, image in images.items():
            image = np.asarray(image, dtype=np.float32)
            if image.ndim != 2 or min(image.shape) < 1:
                raise ValueError(
                    f"view {key}: expected a non-empty 2-D prepared image, got shape {image.shape}"
                )
            mask = None if masks is None else masks.get(key)
            r0, r1, c0, c1 = (
                _breast_bounds(mask, image.shape)
                if crop_to_breast
                else (0, *image.shape[:1], 0, image.shape[1])
            )
            crops[key] = image[r0:r1, c0:c1]
            offsets[key] = (c0, r0)
        longest = max(max(c.shape) for c in crops.values())
        scale = min(1.0, self.config.max_size / longest)
        tensors = {k: _resize(torch.from_numpy(np.ascontiguousarray(c)), scale) for k, c in crops.items()}
        batch = make_view_batch([tensors], self.config.size_divisible).to(self.device)
        if self.channels_last:
            batch.images = batch.images.contiguous(memory_format=torch.channels_last)
        height, width = batch.canvas
        method = merge or self.config.tta.merge
        members = self.members if ensemble else self.members[:1]
        sets: dict[str, list[BoxSet]] = {k: [] for k in batch.keys}
        with torch.inference_mode():
            for member in members:
                for horizontal, vertical in self.passes(tta):
                    flipped = batch.flipped(horizontal, vertical)
                    features = member.features(flipped.images, flipped.partner_lr, flipped.partner_cc)
                    results = member.heads(features, flipped.canvas, len(flipped.keys))
                    for i, key in enumerate(batch.keys):
                        r = results[i]
                        boxes = flip_boxes(
                            r["boxes"].float().cpu().numpy(), width, height, horizontal, vertical
                        )
                        sets[key].append(
                            _clip(
                                BoxSet(
                                    boxes,
                                    r["scores"].float().cpu().numpy(),
                                    r["labels"].cpu().numpy(),
                                    r["probs"].float().cpu().numpy(),
                                ),
                                batch.sizes[i],
                            )
                        )
        out = {}
        for key in batch.keys:
            merged = merge_box_sets(sets[key], method, self.config.tta.iou_thresh, self.config.tta.skip_score)
            boxes = merged.boxes / scale
            boxes[:, [0, 2]] += offsets[key][0]
            boxes[:, [1, 3]] += offsets[key][1]
            out[key] = BoxSet(
                boxes,
                merged.scores,
                merged.labels,
                merged.probs if len(merged) else np.zeros((0, self.config.num_classes)),
            )
        return out


def _box(values: np.ndarray) -> Box:
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _breast_bounds(mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) of the breast mask's bounding box plus a margin; the whole image without a usable mask."""
    height, width = shape[:2]
    if mask is None:
        return 0, height, 0, width
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (height, width) or not mask.any():
        return 0, height, 0, width
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    m = BREAST_CROP_MARGIN
    return (
        max(rows[0] - m, 0),
        min(rows[-1] + 1 + m, height),
        max(cols[0] - m, 0),
        min(cols[-1] + 1 + m, width),
    )


def _resize(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    return F.interpolate(image[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[
        0, 0
    ]


def _clip(found: BoxSet, size: tuple[int, int]) -> BoxSet:
    """Clip to the view's own content (the canvas is padded) and drop boxes left without area."""
    height, width = size
    boxes = found.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    found = BoxSet(boxes, found.scores, found.labels, found.probs)
    keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0] > 0.5) & (boxes[:, 3] - boxes[:, 1] > 0.5))
    return found.select(keep)
