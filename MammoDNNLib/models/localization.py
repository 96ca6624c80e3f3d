"""Lesion localization: the quadrant (CC: outer / middle / inner / areola; MLO: upper / middle / lower /
axillary tail / areola) and the depth (0 = nipple, 1 = pectoralis major) of one lesion in one view.

Three estimators, chosen per quantity by the model's configuration (the shipped model records the one that was
best on validation phantoms, and the pipeline follows it):

* ``network`` — :class:`LocalizationNet`, a small residual CNN that reads the whole prepared view and the
lesion
  mask (:func:`~.lesion_inputs.localization_input`: two channels on a fixed canvas). One trunk with three
  heads: CC quadrant (4 classes), MLO quadrant (5 classes) and depth (sigmoid). One network rather than one
  per view position because both tasks read the same things (breast outline, nipple, pectoral muscle, where
  the lesion lies relative to them) and the depth head is shared by both views; the view position selects the
  quadrant head and is also an input (the depth reference differs: pectoral line on MLO, chest wall on CC).
  CoordConv channels (normalized x, y) are appended to the input, and the trunk's features are pooled under
  the lesion mask, so position is easy to read.
* ``geometric`` — :func:`MammoDNNLib.landmarks.geometric_depth` /
:func:`~MammoDNNLib.landmarks.geometric_quadrant`
  at the lesion's centroid, from the nipple and pectoral line the preprocessing found.
* ``combined`` — depth: ``w * network + (1 - w) * geometric`` and quadrant: ``softmax(log p_network + beta *
  onehot(geometric))``, with ``w`` and ``beta`` chosen per view position on validation phantoms (lowest depth
  MAE, highest quadrant accuracy).

Where the geometric estimate is unavailable (no nipple found, no landmarks on the view), ``combined`` and
``geometric`` fall back to the network.
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
from ..vocabulary import QUADRANTS, VIEW_POSITIONS
from .lesion_inputs import LocalizationInputConfig, as_lesion_mask, fit_view, localization_input
from .lesion_network import LesionModel, LesionNetConfig, save_lesion_network  # life cycle
from .lesion_network import hidden_layer, mask_and_mean_pool, norm_layer, residual_trunk  # network parts

log = logging.getLogger(__name__)

KIND = "localization"
ESTIMATORS: tuple[str, ...] = ("network", "geometric", "combined")


@dataclass
class DepthBlend:
    """``depth = w_network * network + w_geometric * geometric + bias``, clipped to [0, 1] (the fitted blends
    are convex, ``w_geometric = 1 - w_network``, ``bias = 0``; the form is general for hand-written
    configs)."""

    w_network: float = 0.5
    w_geometric: float = 0.5
    bias: float = 0.0

    def __call__(self, network: np.ndarray | float, geometric: np.ndarray | float) -> np.ndarray:
        value = self.w_network * np.asarray(network) + self.w_geometric * np.asarray(geometric) + self.bias
        return np.clip(value, 0.0, 1.0)


@dataclass
class LocalizationConfig(LesionNetConfig):
    """Architecture, inputs and the estimator choices of a localization model (JSON round trip)."""

    what = "localization"

    inputs: LocalizationInputConfig = field(default_factory=LocalizationInputConfig)
    spacing_mm: float = (
        0.4  # the spacing the training views were prepared at (the canvas makes it matter little)
    )
    widths: tuple[int, ...] = (12, 24, 48, 64)  # stem, then one strided residual stage per further entry
    layout_channels: int = 8  # 1x1 reduction before the flattened layout features
    hidden: int = 128
    dropout: float = 0.1
    norm: str = "group"  # lesion_network.NORMS
    depth_estimator: str = "network"  # ESTIMATORS
    quadrant_estimator: str = "network"
    # Per view position: the combined depth's blend and the combined quadrant's beta (fitted on validation).
    depth_blend: dict[str, DepthBlend] = field(
        default_factory=lambda: {v: DepthBlend() for v in VIEW_POSITIONS}
    )
    quadrant_geometric_weight: dict[str, float] = field(
        default_factory=lambda: {v: 1.0 for v in VIEW_POSITIONS}
    )

    def __post_init__(self) -> None:
        if isinstance(self.inputs, Mapping):
            self.inputs = LocalizationInputConfig.from_dict(self.inputs)
        self.depth_blend = {
            v: b if isinstance(b, DepthBlend) else DepthBlend(**b) for v, b in dict(self.depth_blend).items()
        }
        self.quadrant_geometric_weight = {
            v: float(b) for v, b in dict(self.quadrant_geometric_weight).items()
        }
        for name in ("depth_blend", "quadrant_geometric_weight"):
            if set(getattr(self, name)) != set(VIEW_POSITIONS):
                raise ValueError(f"{name} needs one entry per view position ({', '.join(VIEW_POSITIONS)})")
        self._check_widths()
        for name in ("depth_estimator", "quadrant_estimator"):
            if getattr(self, name) not in ESTIMATORS:
                raise ValueError(
                    f"{name} must be one of {', '.join(ESTIMATORS)}, got {getattr(self, name)!r}"
                )
        if self.spacing_mm <= 0:
            raise ValueError("spacing_mm must be positive")
        norm_layer(self.norm)


def _coordinates(batch: int, height: int, width: int, device, dtype) -> torch.Tensor:
    ys = torch.linspace(0.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(0.0, 1.0, width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None].expand(batch, -1, -1, -1)


class LocalizationNet(nn.Module):
    """Two-channel canvas (+ CoordConv) -> residual trunk -> {CC quadrant, MLO quadrant, depth} heads."""

    def __init__(self, config: LocalizationConfig):
        super().__init__()
        w = config.widths
        self.stem, self.stages = residual_trunk(4, w, config.norm, stem_stride=2)
        scale = 2 ** len(w)
        h = -(-config.inputs.height // scale)
        wd = -(-config.inputs.width // scale)
        self.layout = nn.Sequential(nn.Conv2d(w[-1], config.layout_channels, 1), nn.ReLU(inplace=True))
        features = 2 * w[-1] + config.layout_channels * h * wd + 3 + len(VIEW_POSITIONS)
        self.mlp = hidden_layer(features, config.hidden, config.dropout)
        self.quadrant_heads = nn.ModuleDict(
            {v: nn.Linear(config.hidden, len(QUADRANTS[v])) for v in VIEW_POSITIONS}
        )
        self.depth_head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor, view_index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x`` (B, 2, H, W), ``view_index`` (B,) 0 = CC, 1 = MLO -> logits per view position and depth."""
        batch, _, height, width = x.shape
        mask = x[:, 1:2]
        inputs = torch.cat([x, _coordinates(batch, height, width, x.device, x.dtype)], dim=1)
        features = self.stages(self.stem(inputs))
        masked, pooled = mask_and_mean_pool(features, mask)
        layout = self.layout(features).flatten(1)
        # The mask's centroid and extent, read directly (x, y in [0, 1] of the canvas; sqrt of the covered
        # area).
        total = mask.sum(dim=(2, 3)).clamp_min(1e-6)
        coords = _coordinates(batch, height, width, x.device, x.dtype)
        centroid = (coords * mask).sum(dim=(2, 3)) / total
        extent = torch.sqrt(total / (height * width))
        view = F.one_hot(view_index.long(), len(VIEW_POSITIONS)).to(x.dtype)
        hidden = self.mlp(torch.cat([masked, pooled, layout, centroid, extent, view], dim=1))
        out = {v: head(hidden) for v, head in self.quadrant_heads.items()}
        out["depth"] = torch.sigmoid(self.depth_head(hidden)).squeeze(1)
        return out


class LocalizationPrediction(NamedTuple):
    """What the pipeline stores on a finding (unpacks as ``quadrant, probabilities, depth``)."""

    quadrant: str
    quadrant_probabilities: dict[str, float]
    depth: float


@dataclass
class LocalizationDetails:
    """Every estimate behind a prediction (for ``Finding.extra`` and the evaluation)."""

    view: str
    network_quadrant_probabilities: dict[str, float]
    network_depth: float
    geometric_quadrant: str | None
    geometric_depth: float | None
    quadrant: str
    quadrant_probabilities: dict[str, float]
    depth: float
    quadrant_source: str  # the estimator actually used ("geometric"/"combined" fall back to "network")
    depth_source: str

    @property
    def prediction(self) -> LocalizationPrediction:
        return LocalizationPrediction(self.quadrant, self.quadrant_probabilities, self.depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def view_position_index(view_position: str) -> int:
    if view_position not in VIEW_POSITIONS:
        raise ValueError(f"view position must be one of {', '.join(VIEW_POSITIONS)}, got {view_position!r}")
    return VIEW_POSITIONS.index(view_position)


def lesion_point_original(mask: LesionMask, transform) -> tuple[float, float]:
    """Centroid of a prepared-grid mask (pixel centres), in original pixels."""
    rows, cols = np.nonzero(mask.array)
    point = np.array([[cols.mean() + 0.5 + mask.origin[0], rows.mean() + 0.5 + mask.origin[1]]])
    x, y = transform.to_original(point)[0]
    return float(x), float(y)


def geometric_estimates(
    prepared_view, mask: LesionMask, view_position: str, original_breast_mask: np.ndarray | None = None
) -> tuple[str | None, float | None]:
    """(quadrant, depth) from the view's landmarks at the lesion's centroid; (None, None) where
    unavailable."""
    from ..landmarks import geometric_depth, geometric_quadrant

    landmarks = getattr(prepared_view, "landmarks", None)
    transform = getattr(prepared_view, "transform", None)
    if landmarks is None or transform is None or getattr(landmarks, "nipple", None) is None or mask.empty:
        return None, None
    point = lesion_point_original(mask, transform)
    if original_breast_mask is None and getattr(prepared_view, "breast_mask", None) is not None:
        original_breast_mask = transform.mask_to_original(prepared_view.breast_mask.astype(np.uint8)).astype(
            bool
        )
    try:
        depth = geometric_depth(point, landmarks, view_position)
        quadrant = geometric_quadrant(point, landmarks, view_position, original_breast_mask)
    except ValueError as exc:  # degenerate landmarks (nipple on the reference line, ...)
        log.debug("geometric localization unavailable: %s", exc)
        return None, None
    return quadrant, depth


def combine_quadrant(
    probabilities: np.ndarray, geometric: str | None, view_position: str, beta: float
) -> np.ndarray:
    """``softmax(log p + beta * onehot(geometric))`` (``p`` unchanged without a geometric quadrant)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if geometric is None or beta == 0:
        return p
    logits = np.log(np.clip(p, 1e-9, 1.0))
    logits[QUADRANTS[view_position].index(geometric)] += beta
    logits -= logits.max()
    e = np.exp(logits)
    return e / e.sum()


class LocalizationModel(LesionModel):
    """A trained localization network with its configuration (and registry entry, when loaded from one)."""

    kind = KIND
    default_name = "mammodnn-localization"
    classes = tuple([f"CC:{q}" for q in QUADRANTS["CC"]] + [f"MLO:{q}" for q in QUADRANTS["MLO"]] + ["depth"])
    description = (
        "Quadrant (CC 4 / MLO 5 regions) and depth (0 nipple .. 1 pectoralis major) of one lesion from the "
        "whole prepared view and the lesion mask; network, geometric (landmarks) or combined estimate as "
        "configured."
    )
    config_type = LocalizationConfig
    net_type = LocalizationNet

    # -- inference
    # ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def network_outputs(
        self, inputs: np.ndarray, views: Sequence[str]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Per lesion the quadrant probabilities of its view's head, and the depths, for ``(N, 2, H, W)``
        inputs."""
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=self.device)
        index = torch.as_tensor([view_position_index(v) for v in views], device=self.device)
        out = self.net(x, index)
        probabilities = {v: torch.softmax(out[v], dim=1).cpu().numpy() for v in VIEW_POSITIONS}
        per_lesion = [probabilities[v][i] for i, v in enumerate(views)]
        return per_lesion, out["depth"].cpu().numpy().astype(np.float64)

    def predict_details(
        self,
        prepared_view,
        lesion_masks: Sequence[LesionMask | np.ndarray],
        view_position: str,
        geometric: Sequence[tuple[str | None, float | None]] | None = None,
    ) -> list[LocalizationDetails]:
        """All estimates for several lesions of one prepared view (masks on its grid).

        ``geometric`` may pass precomputed ``(quadrant, depth)`` geometric estimates per lesion.
        """
        view_position_index(view_position)
        masks = [as_lesion_mask(m) for m in lesion_masks]
        if not masks:
            return []
        canvas = fit_view(prepared_view.image, self.config.inputs)
        inputs = np.stack([localization_input(canvas, m, self.config.inputs) for m in masks])
        probabilities, depths = self.network_outputs(inputs, [view_position] * len(masks))
        if geometric is None:
            # Computed whatever the configured estimators: the details report them beside the network's.
            breast = None
            if (
                getattr(prepared_view, "landmarks", None) is not None
                and getattr(prepared_view, "breast_mask", None) is not None
            ):
                breast = prepared_view.transform.mask_to_original(
                    prepared_view.breast_mask.astype(np.uint8)
                ).astype(bool)
            geometric = [geometric_estimates(prepared_view, m, view_position, breast) for m in masks]
        return [
            self._decide(view_position, p, float(d), g) for p, d, g in zip(probabilities, depths, geometric)
        ]

    def _decide(
        self, view: str, probabilities: np.ndarray, depth: float, geometric: tuple[str | None, float | None]
    ) -> LocalizationDetails:
        names = QUADRANTS[view]
        geo_quadrant, geo_depth = geometric
        quadrant_source = self.config.quadrant_estimator if geo_quadrant is not None else "network"
        if quadrant_source == "geometric":
            final_p = combine_quadrant(probabilities, geo_quadrant, view, 50.0)
        elif quadrant_source == "combined":
            final_p = combine_quadrant(
                probabilities, geo_quadrant, view, self.config.quadrant_geometric_weight[view]
            )
        else:
            final_p = np.asarray(probabilities, dtype=np.float64)
        depth_source = self.config.depth_estimator if geo_depth is not None else "network"
        if depth_source == "geometric":
            final_depth = float(geo_depth)
        elif depth_source == "combined":
            final_depth = float(self.config.depth_blend[view](depth, geo_depth))
        else:
            final_depth = float(depth)
        quadrant = geo_quadrant if quadrant_source == "geometric" else names[int(np.argmax(final_p))]
        return LocalizationDetails(
            view=view,
            network_quadrant_probabilities={n: float(v) for n, v in zip(names, probabilities)},
            network_depth=float(depth),
            geometric_quadrant=geo_quadrant,
            geometric_depth=None if geo_depth is None else float(geo_depth),
            quadrant=quadrant,
            quadrant_probabilities={n: float(v) for n, v in zip(names, final_p)},
            depth=float(np.clip(final_depth, 0.0, 1.0)),
            quadrant_source=quadrant_source,
            depth_source=depth_source,
        )

    def predict_batch(
        self, prepared_view, lesion_masks: Sequence[LesionMask | np.ndarray], view_position: str
    ) -> list[LocalizationPrediction]:
        """:meth:`predict` for several lesions of one view (the view is fitted once)."""
        return [d.prediction for d in self.predict_details(prepared_view, lesion_masks, view_position)]

    def predict(
        self, prepared_view, lesion_mask: LesionMask | np.ndarray, view_position: str
    ) -> LocalizationPrediction:
        """``(quadrant, quadrant_probabilities, depth)`` of one lesion.

        ``prepared_view`` is a :class:`~MammoDNNLib.preprocess.PreparedView` (or anything with its ``image``
        and, for the geometric estimate, ``landmarks``, ``transform`` and ``breast_mask``); ``lesion_mask`` a
        :class:`~MammoDNNLib.geometry.LesionMask` or a full boolean array on the prepared grid.
        """
        return self.predict_batch(prepared_view, [lesion_mask], view_position)[0]


def save_localization_model(folder: str | Path, net: LocalizationNet, config: LocalizationConfig, **options):
    """Write a registry model folder (safetensors + manifest + model card); ``options``: ``name``,
    ``version``, ``training_data``, ``metrics``, ``card_notes`` of
    :func:`~MammoDNNLib.models.lesion_network.save_lesion_network`."""
    return save_lesion_network(LocalizationModel, folder, net, config, **options)
