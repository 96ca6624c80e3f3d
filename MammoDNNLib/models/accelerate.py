"""CPU inference speed-ups for a :class:`~MammoDNNLib.models.detector.Detector`'s members, each measured by
``mammodnn benchmark`` (see docs/detector.md for which ones pay off):

* :class:`OnnxFeatureRunner`: backbone + FPN + four-view fusion exported to ONNX and run by ONNX Runtime (the
  RPN and RoI heads stay in torch: their data-dependent NMS and sampling gain nothing from export);
* :func:`fold_frozen_batchnorm`: batch norms folded into the convolutions before them;
* :func:`quantize_box_head`: int8 dynamic quantization of the box head's fully connected layers;
* :func:`compiled_runner`: ``torch.compile`` of the feature extractor.

Each returns an object with the ``features`` / ``heads`` methods the Detector calls.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from .network import FourViewFasterRCNN

log = logging.getLogger(__name__)


class _Features(nn.Module):
    def __init__(self, model: FourViewFasterRCNN):
        super().__init__()
        self.model = model

    def forward(self, images, partner_lr, partner_cc):
        return tuple(self.model.features(images, partner_lr, partner_cc).values())


class OnnxFeatureRunner:
    """Fused FPN features from ONNX Runtime; heads from the torch model."""

    def __init__(self, model: FourViewFasterRCNN, path: str | Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.model = model.eval()
        self.level_names: list[str] = []
        self._tmp = None
        if path is None:  # removed with this object
            self._tmp = tempfile.TemporaryDirectory(prefix="mammodnn-onnx-")
            path = Path(self._tmp.name) / "features.onnx"
        self.path = Path(path)
        self._export()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _export(self) -> None:
        dummy = torch.zeros(2, 1, 128, 96)
        lr = torch.tensor([1, 0])
        cc = torch.tensor([-1, -1])
        with torch.no_grad():
            names = list(self.model.features(dummy, lr, cc).keys())
        self.level_names = names
        outputs = [f"level_{n}" for n in names]
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            self._export_graph(dummy, lr, cc, outputs)
        self.model.eval()  # the exporter may leave the module in training mode

    def _export_graph(self, dummy, lr, cc, outputs) -> None:
        torch.onnx.export(
            _Features(self.model).eval(),
            (dummy, lr, cc),
            str(self.path),
            dynamo=False,
            opset_version=17,
            input_names=["images", "partner_lr", "partner_cc"],
            output_names=outputs,
            dynamic_axes={
                "images": {0: "views", 2: "height", 3: "width"},
                "partner_lr": {0: "views"},
                "partner_cc": {0: "views"},
                **{o: {0: "views", 2: f"h{o}", 3: f"w{o}"} for o in outputs},
            },
        )

    def features(self, images: torch.Tensor, partner_lr: torch.Tensor, partner_cc: torch.Tensor):
        outputs = self.session.run(
            None,
            {
                "images": images.detach().contiguous().cpu().numpy(),
                "partner_lr": partner_lr.cpu().numpy(),
                "partner_cc": partner_cc.cpu().numpy(),
            },
        )
        return OrderedDict((n, torch.from_numpy(o)) for n, o in zip(self.level_names, outputs))

    def heads(self, features, canvas, count):
        return self.model.heads(features, canvas, count)


class TorchRunner:
    """A member with a replaced feature function (compiled) and its own heads."""

    def __init__(self, model: FourViewFasterRCNN, features=None):
        self.model = model.eval()
        self._features = features or model.features

    def features(self, images, partner_lr, partner_cc):
        return self._features(images, partner_lr, partner_cc)

    def heads(self, features, canvas, count):
        return self.model.heads(features, canvas, count)


def fold_frozen_batchnorm(model: FourViewFasterRCNN) -> FourViewFasterRCNN:
    """Fold every frozen (or eval-mode) batch norm of the ResNet body into the convolution before it.

    ``FrozenBatchNorm2d`` is a per-channel ``x * scale + shift`` that torch runs as two extra passes over every
    feature map; folded into the convolution's weights and bias it costs nothing. Inference only (in place).
    """
    from torchvision.ops.misc import FrozenBatchNorm2d

    body = model.backbone.body

    def fold(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
        if isinstance(norm, FrozenBatchNorm2d):
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        elif isinstance(norm, nn.BatchNorm2d):
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        else:
            raise TypeError(f"cannot fold {type(norm).__name__} (GroupNorm depends on the input)")
        shift = norm.bias - norm.running_mean * scale
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            bias=True,
        ).to(conv.weight.device)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            base = conv.bias if conv.bias is not None else torch.zeros_like(shift)
            fused.bias.copy_(base * scale + shift)
        return fused

    for owner in [body, *[m for m in body.modules() if hasattr(m, "conv1") and hasattr(m, "bn1")]]:
        for i in (1, 2, 3):
            conv, norm = getattr(owner, f"conv{i}", None), getattr(owner, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and norm is not None and not isinstance(norm, nn.Identity):
                setattr(owner, f"conv{i}", fold(conv, norm))
                setattr(owner, f"bn{i}", nn.Identity())
        downsample = getattr(owner, "downsample", None)
        if (
            isinstance(downsample, nn.Sequential)
            and len(downsample) == 2
            and not isinstance(downsample[1], nn.Identity)
        ):
            downsample[0] = fold(downsample[0], downsample[1])
            downsample[1] = nn.Identity()
    return model


def quantize_box_head(model: FourViewFasterRCNN) -> FourViewFasterRCNN:
    """The model with its box head's Linear layers quantized to int8 (dynamic); everything else unchanged."""
    from torch.ao.quantization import quantize_dynamic

    model.roi_heads.box_head = quantize_dynamic(model.roi_heads.box_head, {nn.Linear}, dtype=torch.qint8)
    return model


def compiled_runner(model: FourViewFasterRCNN) -> TorchRunner:
    """``torch.compile`` of the feature extractor (dynamic shapes: canvases differ between studies)."""
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    return TorchRunner(model, torch.compile(model.features, dynamic=True))
