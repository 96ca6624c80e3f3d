"""ResNet + FPN backbone from torchvision, with ImageNet weights only when they are already on this machine.

Never downloads: ImageNet weights are used when the file torchvision would download is already in the torch hub
cache (``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``) or when the configuration names
a file (``pretrained_path``). Otherwise the backbone starts from scratch and a clear message says so. The file is
read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import ModelError
from .config import DetectorConfig

log = logging.getLogger(__name__)

_RESNETS = {
    "resnet18": (resnet.resnet18, resnet.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (resnet.resnet34, resnet.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (resnet.resnet50, resnet.ResNet50_Weights.IMAGENET1K_V1),
}


def imagenet_weights_file(backbone: str) -> Path:
    """Where torchvision's hub cache keeps the ImageNet weights of ``backbone`` (present or not)."""
    weights = _RESNETS[backbone][1]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def find_imagenet_weights(config: DetectorConfig) -> Path | None:
    """The local ImageNet weight file to use, or ``None`` (never downloads)."""
    if not config.pretrained:
        return None
    if config.pretrained_path:
        path = Path(config.pretrained_path).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: ImageNet weight file named by pretrained_path does not exist")
        return path
    path = imagenet_weights_file(config.backbone)
    return path if path.is_file() else None


def resolve_initialization(config: DetectorConfig) -> DetectorConfig:
    """``config`` with ``norm`` made concrete for what this machine has (ImageNet weights found or not).

    Training saves the resolved config beside the weights, so that loading builds the same normalization layers
    whether or not the ImageNet file is present where the model is used.
    """
    if config.norm != "auto":
        return config
    found = find_imagenet_weights(config) is not None
    if config.pretrained and not found:
        _log_scratch(config)
    return config.replace(norm="frozen_bn" if found else "gn", pretrained=found)


def _log_scratch(config: DetectorConfig) -> None:
    log.warning(
        "ImageNet weights for %s are not in the local torch hub cache (%s); training from scratch. Put the "
        "file there (TORCH_HOME) or set pretrained_path to use them; nothing is downloaded.",
        config.backbone,
        imagenet_weights_file(config.backbone),
    )


def _norm_layer(config: DetectorConfig, pretrained: bool):
    norm = config.norm
    if norm == "auto":
        norm = "frozen_bn" if pretrained else "gn"
    if norm == "frozen_bn":
        return misc_nn_ops.FrozenBatchNorm2d, norm
    if norm == "bn":
        return nn.BatchNorm2d, norm
    # GroupNorm: trains from scratch with a batch of four views (He et al. 2019, "Rethinking ImageNet Pre-training").
    return partial(_group_norm, groups=32), norm


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


def build_backbone(config: DetectorConfig, load_pretrained: bool = True) -> BackboneWithFPN:
    """The ResNet + FPN of ``config``; ImageNet-initialized when the weights are local and ``load_pretrained``.

    ``load_pretrained=False`` is for models whose trained weights are loaded next (no point reading ImageNet).
    """
    builder, _ = _RESNETS[config.backbone]
    weights_file = find_imagenet_weights(config) if load_pretrained else None
    if load_pretrained and config.pretrained and weights_file is None:
        _log_scratch(config)
    pretrained = weights_file is not None or (config.pretrained and not load_pretrained)
    norm_layer, norm_name = _norm_layer(config, pretrained)
    net = builder(weights=None, norm_layer=norm_layer)
    if weights_file is not None:
        if norm_name not in ("frozen_bn", "bn"):
            raise ModelError(
                f"ImageNet weights need batch norm (norm 'frozen_bn' or 'bn'), not {norm_name!r}"
            )
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except Exception as exc:  # a corrupt file or one holding more than tensors
            raise ModelError(
                f"{weights_file}: not a plain tensor file torchvision's weights API wrote ({exc})"
            )
        missing, unexpected = net.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("fc.")] or unexpected:
            raise ModelError(f"{weights_file}: does not match {config.backbone} (missing {missing[:3]}...)")
        log.info("backbone %s initialized from ImageNet weights %s", config.backbone, weights_file)
    trainable = config.trainable_layers if pretrained else 5
    _freeze(net, trainable)
    # The same construction as torchvision's resnet_fpn_backbone, at the configured FPN width and levels.
    in_channels = [net.inplanes // 8 * 2 ** (i - 1) for i in config.returned_layers]
    fpn = BackboneWithFPN(
        net,
        {f"layer{k}": str(v) for v, k in enumerate(config.returned_layers)},
        in_channels,
        config.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    if not config.extra_pool_level:
        fpn.fpn.extra_blocks = None  # BackboneWithFPN always adds the pooled level; drop it when not wanted
    return fpn


def _freeze(net: nn.Module, trainable_layers: int) -> None:
    """torchvision's rule: the last ``trainable_layers`` stages train, the rest are frozen."""
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in net.named_parameters():
        if not any(name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
