"""What the two per-lesion networks (:mod:`.localization`, :mod:`.malignancy`) share.

* The residual trunk: a 3x3 convolution stem, then one stride-2 torchvision ``BasicBlock`` per further width
  (:func:`residual_trunk`), normalized without batch statistics by default (:func:`norm_layer`).
* The read-out: the trunk's features averaged under the lesion mask and over the whole input
  (:func:`mask_and_mean_pool`), then one hidden layer (:func:`hidden_layer`) before the task heads.
* The configuration's JSON round trip (:class:`LesionNetConfig`) and the model's life cycle: loading from a
  verified registry entry, saving a registry folder (:class:`LesionModel`, :func:`save_lesion_network`).

The modules are built in the order the networks always built them, and the networks keep them under the same
attribute names (``stem``, ``stages``, ``mlp``), so state-dict keys and seeded initializations are unchanged.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..errors import ModelError

NORMS: tuple[str, ...] = ("group", "channel", "batch")


def norm_layer(kind: str):
    """``channels -> module``. Group and channel (one group per channel) normalization use no batch
    statistics, so a lesion's output does not depend on its batch (small batches made BatchNorm's running
    statistics drift from what training saw); "channel" escaped the initial plateaus of the malignancy task
    fastest."""
    if kind == "group":
        return lambda channels: nn.GroupNorm(min(4, channels), channels)
    if kind == "channel":
        return lambda channels: nn.GroupNorm(channels, channels)
    if kind == "batch":
        return nn.BatchNorm2d
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def residual_stage(in_channels: int, out_channels: int, norm: str) -> nn.Module:
    """One stride-2 torchvision ``BasicBlock`` with a 1x1 strided projection."""
    make = norm_layer(norm)
    downsample = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False), make(out_channels)
    )
    return BasicBlock(in_channels, out_channels, stride=2, downsample=downsample, norm_layer=make)


def residual_trunk(
    in_channels: int, widths: Sequence[int], norm: str, stem_stride: int
) -> tuple[nn.Sequential, nn.Sequential]:
    """``(stem, stages)``: conv 3x3 (``stem_stride``) + norm + ReLU to ``widths[0]`` channels, then one
    :func:`residual_stage` per further width."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
        norm_layer(norm)(widths[0]),
        nn.ReLU(inplace=True),
    )
    stages = nn.Sequential(*[residual_stage(a, b, norm) for a, b in zip(widths[:-1], widths[1:])])
    return stem, stages


def hidden_layer(features: int, hidden: int, dropout: float) -> nn.Sequential:
    """Linear + ReLU + dropout: the layer between the pooled features and the heads."""
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))


def mask_and_mean_pool(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C)`` averages of ``features`` (B, C, h, w) weighted by ``mask`` (B, 1, H, W, pooled to h x w),
    and over all positions."""
    weights = F.adaptive_avg_pool2d(mask, features.shape[-2:])
    masked = (features * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3)).clamp_min(1e-6)
    return masked, features.mean(dim=(2, 3))


class LesionNetConfig:
    """JSON round trip of a lesion network's configuration dataclass (``inputs`` and ``widths`` fields)."""

    what: ClassVar[str]  # "localization" | "malignancy", for messages

    def _check_widths(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError("widths needs at least two positive entries")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        data["inputs"] = self.inputs.to_dict()
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        unknown = set(data) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        if unknown:
            raise ValueError(f"unknown {cls.what} option(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))


class LesionModel:
    """A trained lesion network with its configuration (and registry entry, when loaded from one)."""

    kind: ClassVar[str]  # the registry kind
    default_name: ClassVar[str]  # the registered name :meth:`load` uses by default
    classes: ClassVar[tuple[str, ...]]  # the manifest's output names
    description: ClassVar[str]  # the manifest's and model card's description
    config_type: ClassVar[type]
    net_type: ClassVar[type]

    def __init__(self, config, net: nn.Module, device: str = "cpu", info=None):
        self.config = config
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.info = info

    @classmethod
    def from_info(cls, info, device: str = "cpu"):
        """Build from a verified registry entry (see :func:`MammoDNNLib.models.registry.load_model`)."""
        from .registry import load_state_dicts

        if info.kind != cls.kind:
            raise ModelError(f"{info.path}: a {info.kind} model, not a {cls.kind} model")
        try:
            config = cls.config_type.from_dict(info.config)
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelError(f"{info.path}: invalid {cls.kind} configuration ({exc})") from None
        net = cls.net_type(config)
        (state,) = load_state_dicts(info, verify=False)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines()[:3])
            raise ModelError(f"{info.path}: weights do not fit the configuration: {detail[:400]}") from None
        return cls(config, net, device, info)

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, device: str = "cpu", version: str | None = None):
        """A model folder or registered name (default :attr:`default_name`), hashes verified (pickles refused)
        before anything is read."""
        from .registry import resolve_model, verify_model

        return cls.from_info(verify_model(resolve_model(name_or_path or cls.default_name, version)), device)

    @property
    def spacing_mm(self) -> float:
        return self.config.spacing_mm


def save_lesion_network(
    model_type: type[LesionModel],
    folder: str | Path,
    net: nn.Module,
    config: LesionNetConfig,
    *,
    name: str | None = None,
    version: str = "0.1.0",
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    card_notes: str = "",
):
    """Write a registry model folder of a ``model_type`` network (name default: its registered name): the
    weights (safetensors), the manifest with the configuration, the model card."""
    from .registry import save_model

    return save_model(
        folder,
        name=name or model_type.default_name,
        version=version,
        kind=model_type.kind,
        classes=list(model_type.classes),
        config=config.to_dict(),
        state_dicts=[net.state_dict()],
        training_data=training_data,
        metrics=metrics,
        description=model_type.description,
        card_notes=card_notes,
    )
