"""Malignancy and morphology of one lesion: a multi-task CNN with calibrated malignancy probabilities.

:class:`MalignancyNet` reads the region of interest around a lesion (:func:`~.lesion_inputs.malignancy_input`:
image and mask, 2x the box, resampled to a fixed size) and the finding type (a learned embedding), and
predicts

* the malignancy logit (benign / malignant), and
* for every morphology group of :data:`vocabulary.MORPHOLOGY` (mass shape and margin, calcification morphology
  and distribution) a softmax over its descriptors.

A group's loss counts only for lesions whose type has that group
(:data:`vocabulary.MORPHOLOGY_GROUPS_BY_TYPE`)
and whose descriptor is known (:func:`morphology_loss`); asymmetries and distortions train the malignancy head
only. The single-task baseline is the same network trained with the morphology weight at zero.

The raw logit goes through the model's calibrator (:mod:`.calibration`, fitted on validation phantoms and
stored in the manifest as JSON numbers) before it is reported: the pipeline's BI-RADS mapping needs calibrated
probabilities. Morphology is reported only for the groups of the finding's type.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import LesionMask
from ..vocabulary import FINDING_TYPE_KEYS, MORPHOLOGY, MORPHOLOGY_GROUPS_BY_TYPE
from .calibration import IdentityCalibrator, calibrator_from_dict
from .lesion_inputs import (
    SIZE_FEATURES,
    MalignancyInputConfig,
    as_lesion_mask,
    finding_type_index,
    lesion_size_features,
    malignancy_input,
)
from .lesion_network import LesionModel, LesionNetConfig, save_lesion_network  # life cycle
from .lesion_network import hidden_layer, mask_and_mean_pool, norm_layer, residual_trunk  # network parts

log = logging.getLogger(__name__)

KIND = "malignancy"
MORPHOLOGY_GROUPS: tuple[str, ...] = tuple(MORPHOLOGY)
IGNORE = -100  # target of a morphology group that does not apply or is unknown (cross_entropy's ignore_index)


@dataclass
class MalignancyConfig(LesionNetConfig):
    """Architecture, inputs, task weights and the calibrator of a malignancy model (JSON round trip)."""

    what = "malignancy"

    inputs: MalignancyInputConfig = field(default_factory=MalignancyInputConfig)
    spacing_mm: float = 0.4  # the spacing the training views were prepared at (finer views are brought to it)
    widths: tuple[int, ...] = (16, 24, 48, 96)  # stem (stride 1), then one strided residual stage each
    type_embedding: int = 8
    size_features: bool = True  # the lesion's size (lesion_inputs.lesion_size_features) as two more inputs
    hidden: int = 128
    dropout: float = 0.2
    norm: str = "channel"  # lesion_network.NORMS
    morphology_weight: float = 1.0  # 0 = the single-task baseline
    multitask: bool = True  # whether the morphology heads were trained (and are reported)
    calibration: dict[str, Any] = field(default_factory=lambda: {"method": "identity"})

    def __post_init__(self) -> None:
        if isinstance(self.inputs, Mapping):
            self.inputs = MalignancyInputConfig.from_dict(self.inputs)
        self._check_widths()
        if self.spacing_mm <= 0 or self.morphology_weight < 0:
            raise ValueError("spacing_mm must be positive and morphology_weight non-negative")
        norm_layer(self.norm)
        calibrator_from_dict(self.calibration)  # validates


class MalignancyNet(nn.Module):
    """ROI (image + mask) and finding type -> malignancy logit and one logit vector per morphology group."""

    def __init__(self, config: MalignancyConfig):
        super().__init__()
        w = config.widths
        self.stem, self.stages = residual_trunk(2, w, config.norm, stem_stride=1)
        self.type_embedding = nn.Embedding(len(FINDING_TYPE_KEYS), config.type_embedding)
        self.size_inputs = len(SIZE_FEATURES) if config.size_features else 0
        features = 2 * w[-1] + config.type_embedding + self.size_inputs
        self.mlp = hidden_layer(features, config.hidden, config.dropout)
        self.malignancy_head = nn.Linear(config.hidden, 1)
        self.morphology_heads = nn.ModuleDict(
            {g: nn.Linear(config.hidden, len(MORPHOLOGY[g])) for g in MORPHOLOGY}
        )

    def forward(
        self, x: torch.Tensor, type_index: torch.Tensor, size: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``x`` (B, 2, S, S), ``type_index`` (B,) into FINDING_TYPE_KEYS, ``size`` (B, 2) size features (when
        the configuration uses them) -> {"malignancy": (B,), group: (B, k)}."""
        features = self.stages(self.stem(x))
        masked, pooled = mask_and_mean_pool(features, x[:, 1:2])
        parts = [masked, pooled, self.type_embedding(type_index.long())]
        if self.size_inputs:
            if size is None:
                raise ValueError("this network takes the lesions' size features")
            parts.append(size.to(x.dtype))
        hidden = self.mlp(torch.cat(parts, dim=1))
        out = {"malignancy": self.malignancy_head(hidden).squeeze(1)}
        out.update({g: head(hidden) for g, head in self.morphology_heads.items()})
        return out


def morphology_targets(
    types: Sequence[str], morphologies: Sequence[Mapping[str, str] | None]
) -> dict[str, torch.Tensor]:
    """Per group the descriptor index of each lesion, or :data:`IGNORE` where the group does not apply to the
    lesion's type or its descriptor is unknown."""
    out = {}
    for group, names in MORPHOLOGY.items():
        values = []
        for kind, morphology in zip(types, morphologies):
            descriptor = (morphology or {}).get(group)
            applies = group in MORPHOLOGY_GROUPS_BY_TYPE[kind]
            values.append(names.index(descriptor) if applies and descriptor in names else IGNORE)
        out[group] = torch.tensor(values, dtype=torch.long)
    return out


def morphology_loss(
    outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor], label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean over the groups that have any target of the group's cross-entropy over the lesions it applies to.

    Lesions marked :data:`IGNORE` contribute nothing (no loss, no gradient): a mass never trains the
    calcification heads, an asymmetry no morphology head at all.
    """
    losses = []
    for group in MORPHOLOGY:
        target = targets[group].to(outputs[group].device)
        if (target != IGNORE).any():
            losses.append(
                F.cross_entropy(outputs[group], target, ignore_index=IGNORE, label_smoothing=label_smoothing)
            )
    if not losses:
        return next(iter(outputs.values())).sum() * 0.0
    return torch.stack(losses).mean()


class MalignancyPrediction(NamedTuple):
    """What the pipeline stores on a finding (unpacks as ``malignancy, morphology``)."""

    malignancy: float  # calibrated probability of malignancy
    morphology: dict[str, dict[str, float]]  # group -> descriptor -> probability (the type's groups only)


@dataclass
class MalignancyDetails:
    finding_type: str
    logit: float
    raw_probability: float  # sigmoid of the logit, before calibration
    malignancy: float  # calibrated
    morphology: dict[str, dict[str, float]]
    calibration: str

    @property
    def prediction(self) -> MalignancyPrediction:
        return MalignancyPrediction(self.malignancy, self.morphology)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MalignancyModel(LesionModel):
    """A trained malignancy/morphology network with its calibrator."""

    kind = KIND
    default_name = "mammodnn-malignancy"
    classes = tuple(["malignancy"] + [f"{g}:{d}" for g, names in MORPHOLOGY.items() for d in names])
    description = (
        "Calibrated probability of malignancy and BI-RADS morphology descriptors of one lesion from a region "
        "of interest around it (image + mask) and its finding type."
    )
    config_type = MalignancyConfig
    net_type = MalignancyNet

    def __init__(self, config: MalignancyConfig, net: MalignancyNet, device: str = "cpu", info=None):
        super().__init__(config, net, device, info)
        self.calibrator = calibrator_from_dict(config.calibration)

    def inputs(
        self, prepared_view, lesion_masks: Sequence[LesionMask | np.ndarray], finding_types: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 2, S, S)`` windows and ``(N, 2)`` size features of lesions on one prepared view."""
        spacing = float(getattr(prepared_view, "spacing_mm", self.config.spacing_mm))
        masks = [as_lesion_mask(m) for m in lesion_masks]
        images = np.stack(
            [
                malignancy_input(
                    prepared_view.image,
                    m,
                    spacing,
                    self.config.inputs,
                    native_spacing_mm=self.config.spacing_mm,
                    finding_type=kind,
                )
                for m, kind in zip(masks, finding_types)
            ]
        )
        return images, np.stack([lesion_size_features(m, spacing) for m in masks])

    @torch.no_grad()
    def network_outputs(
        self, images: np.ndarray, finding_types: Sequence[str], size_features: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Raw outputs: malignancy logits (N,) and per group probabilities (N, k), for ``(N, 2, S, S)``
        windows,
        the finding types and the ``(N, 2)`` size features."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=self.device)
        types = torch.as_tensor([finding_type_index(t) for t in finding_types], device=self.device)
        size = (
            None
            if size_features is None
            else torch.as_tensor(np.asarray(size_features, np.float32), device=self.device)
        )
        out = self.net(x, types, size)
        result = {"logit": out["malignancy"].cpu().numpy().astype(np.float64)}
        result.update({g: torch.softmax(out[g], dim=1).cpu().numpy().astype(np.float64) for g in MORPHOLOGY})
        return result

    def predict_details(
        self, prepared_view, lesion_masks: Sequence[LesionMask | np.ndarray], finding_types: Sequence[str]
    ) -> list[MalignancyDetails]:
        if len(lesion_masks) != len(finding_types):
            raise ValueError(f"{len(lesion_masks)} masks but {len(finding_types)} finding types")
        if not lesion_masks:
            return []
        for kind in finding_types:
            finding_type_index(kind)
        images, sizes = self.inputs(prepared_view, lesion_masks, finding_types)
        out = self.network_outputs(images, finding_types, sizes)
        calibrated = np.asarray(self.calibrator(out["logit"]), dtype=np.float64).reshape(-1)
        raw = IdentityCalibrator()(out["logit"])
        details = []
        for i, kind in enumerate(finding_types):
            morphology = {}
            if self.config.multitask:
                morphology = {
                    g: {d: float(p) for d, p in zip(MORPHOLOGY[g], out[g][i])}
                    for g in MORPHOLOGY_GROUPS_BY_TYPE[kind]
                }
            details.append(
                MalignancyDetails(
                    kind,
                    float(out["logit"][i]),
                    float(raw[i]),
                    float(calibrated[i]),
                    morphology,
                    self.calibrator.method,
                )
            )
        return details

    def predict_batch(
        self, prepared_view, lesion_masks: Sequence[LesionMask | np.ndarray], finding_types: Sequence[str]
    ) -> list[MalignancyPrediction]:
        return [d.prediction for d in self.predict_details(prepared_view, lesion_masks, finding_types)]

    def predict(
        self, prepared_view, lesion_mask: LesionMask | np.ndarray, finding_type: str
    ) -> MalignancyPrediction:
        """``(calibrated malignancy probability, {group: {descriptor: probability}})`` of one lesion.

        ``prepared_view``: a :class:`~MammoDNNLib.preprocess.PreparedView` (its ``image`` and ``spacing_mm``);
        ``lesion_mask``: a :class:`~MammoDNNLib.geometry.LesionMask` or full boolean array on its grid.
        """
        return self.predict_batch(prepared_view, [lesion_mask], [finding_type])[0]


def save_malignancy_model(folder: str | Path, net: MalignancyNet, config: MalignancyConfig, **options):
    """Write a registry model folder (safetensors + manifest with the calibrator + model card); ``options``:
    ``name``, ``version``, ``training_data``, ``metrics``, ``card_notes`` of
    :func:`~MammoDNNLib.models.lesion_network.save_lesion_network`."""
    return save_lesion_network(MalignancyModel, folder, net, config, **options)
