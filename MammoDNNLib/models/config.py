"""The detector's configuration: one dataclass tree with every default in one place, JSON (or YAML) as data.

A configuration is saved beside the weights (inside the model manifest) so that a model always carries the
architecture, the preprocessing spacing and the thresholds it was trained with. Named configurations ship in
``MammoDNNLib/configs/`` (``detector-r50-study``, ``detector-r18-cpu``, ``detector-tiny-test``).

Reading is strict: an unknown key is an error (a misspelt option would otherwise silently fall back to its
default), and every value is checked when the object is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from ..errors import InputError
from ..vocabulary import FINDING_TYPE_KEYS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

BackboneName = Literal["resnet18", "resnet34", "resnet50"]
NormName = Literal["auto", "frozen_bn", "bn", "gn"]
MergeMethod = Literal["wbf", "nms"]
DecayKind = Literal["multistep", "cosine"]


@dataclass
class FusionConfig:
    """Four-view feature fusion between the FPN and the RPN (see :mod:`MammoDNNLib.models.fusion`)."""

    left_right: bool = True  # each view with the same view of the contralateral breast
    cc_mlo: bool = True  # each view with a column-pooled summary of the other view of the same breast
    reduction: int = 4  # bottleneck width = FPN channels // reduction

    @property
    def enabled(self) -> bool:
        return self.left_right or self.cc_mlo


@dataclass
class RPNConfig:
    anchor_sizes: tuple[tuple[int, ...], ...] = (
        (16,),
        (32,),
        (64,),
        (128,),
        (256,),
    )  # one tuple per FPN level
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    pre_nms_top_n_train: int = 2000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_test: int = 300
    nms_thresh: float = 0.7
    fg_iou_thresh: float = 0.7
    bg_iou_thresh: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5


@dataclass
class ROIConfig:
    box_head_size: int = 1024  # TwoMLPHead representation size
    roi_output_size: int = 7
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    fg_iou_thresh: float = 0.5
    bg_iou_thresh: float = 0.5
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100


@dataclass
class SemiSupervisedConfig:
    """Pseudo-labels for unlabelled studies from an EMA teacher (see :mod:`MammoDNNLib.training.semi_supervised`)."""

    enabled: bool = False
    start_iteration: int = 2000  # the teacher must be useful before its labels are
    threshold: float = 0.7  # teacher score above which a detection becomes a pseudo-box
    ema_decay: float = 0.999
    unlabelled_fraction: float = (
        0.5  # probability that an iteration draws an unlabelled study (when any exist)
    )
    loss_weight: float = 0.5  # weight of the losses on pseudo-labelled studies


@dataclass
class TrainingConfig:
    """The study's recipe: momentum SGD, lr 0.005, wd 1e-4, 500 warm-up iterations, up to 25,000 iterations."""

    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iterations: int = 500
    warmup_factor: float = 0.001
    max_iterations: int = 25000
    decay: DecayKind = "multistep"
    milestones: tuple[float, ...] = (
        0.67,
        0.89,
    )  # fractions of max_iterations where lr is multiplied by gamma
    gamma: float = 0.1
    studies_per_batch: int = 1  # one study = its (up to) four views: the "batch 4"
    scale_range: tuple[float, float] = (
        0.8,
        1.2,
    )  # random rescale + crop/pad, the same for every view of a study
    horizontal_flip: float = 0.5  # probability of flipping a whole study
    vertical_flip: float = 0.0
    grad_clip_norm: float = 10.0
    checkpoint_every: int = 500
    log_every: int = 10
    semi_supervised: SemiSupervisedConfig = field(default_factory=SemiSupervisedConfig)


@dataclass
class TTAConfig:
    horizontal_flip: bool = True
    vertical_flip: bool = True
    merge: MergeMethod = "wbf"
    iou_thresh: float = 0.55  # boxes of one class overlapping more than this are merged / suppressed
    skip_score: float = 0.01  # boxes below this score do not enter the merge


@dataclass
class DetectorConfig:
    name: str = "detector"
    classes: tuple[str, ...] = FINDING_TYPE_KEYS
    backbone: BackboneName = "resnet50"
    pretrained: bool = True  # ImageNet from the local torch hub cache (or pretrained_path); never downloaded
    pretrained_path: str | None = None
    norm: NormName = "auto"  # auto: frozen BN with ImageNet weights, GroupNorm from scratch
    trainable_layers: int = 3  # with ImageNet weights; from scratch every layer trains
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)  # ResNet stages feeding the FPN (1 = stride 4)
    extra_pool_level: bool = True  # FPN's max-pooled extra level
    fpn_channels: int = 256
    fusion: FusionConfig = field(default_factory=FusionConfig)
    spacing_mm: float = 0.2  # the preprocessing spacing the model works at (the pipeline prepares at it)
    max_size: int = 3000  # longest prepared side; larger studies are scaled down (consistently per study)
    size_divisible: int = 32
    image_mean: float = 0.449  # gray ImageNet statistics, applied to the 1-channel image replicated to 3
    image_std: float = 0.226
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: ROIConfig = field(default_factory=ROIConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tta: TTAConfig = field(default_factory=TTAConfig)

    def __post_init__(self) -> None:
        _coerce_tree(self)
        self.validate()

    @property
    def num_classes(self) -> int:
        """Including background (index 0)."""
        return len(self.classes) + 1

    @property
    def feature_levels(self) -> int:
        return len(self.returned_layers) + (1 if self.extra_pool_level else 0)

    def validate(self) -> None:
        problems: list[str] = []
        unknown = [c for c in self.classes if c not in FINDING_TYPE_KEYS]
        if unknown or not self.classes:
            problems.append(f"classes must be finding types from {FINDING_TYPE_KEYS}, got {self.classes}")
        if self.backbone not in get_args(BackboneName):
            problems.append(f"backbone must be one of {get_args(BackboneName)}, got {self.backbone!r}")
        if self.norm not in get_args(NormName):
            problems.append(f"norm must be one of {get_args(NormName)}, got {self.norm!r}")
        if (
            not self.returned_layers
            or any(v not in (1, 2, 3, 4) for v in self.returned_layers)
            or list(self.returned_layers) != sorted(set(self.returned_layers))
        ):
            problems.append(f"returned_layers must be increasing values in 1..4, got {self.returned_layers}")
        if len(self.rpn.anchor_sizes) != self.feature_levels:
            problems.append(
                f"rpn.anchor_sizes has {len(self.rpn.anchor_sizes)} levels but the FPN has {self.feature_levels}"
            )
        if not 0 <= self.trainable_layers <= 5:
            problems.append("trainable_layers must be in 0..5")
        if self.spacing_mm <= 0 or self.max_size < 64 or self.fpn_channels < 8:
            problems.append("spacing_mm must be > 0, max_size >= 64, fpn_channels >= 8")
        if self.fusion.reduction < 1 or self.fpn_channels % self.fusion.reduction:
            problems.append("fusion.reduction must divide fpn_channels")
        t = self.training
        if t.lr <= 0 or t.max_iterations < 1 or t.warmup_iterations < 0 or t.studies_per_batch < 1:
            problems.append(
                "training: lr > 0, max_iterations >= 1, warmup_iterations >= 0, studies_per_batch >= 1"
            )
        if t.decay not in get_args(DecayKind):
            problems.append(f"training.decay must be one of {get_args(DecayKind)}")
        if not (0 < t.scale_range[0] <= t.scale_range[1]):
            problems.append("training.scale_range must be (low, high) with 0 < low <= high")
        if self.tta.merge not in get_args(MergeMethod):
            problems.append(f"tta.merge must be one of {get_args(MergeMethod)}, got {self.tta.merge!r}")
        if problems:
            raise ValueError("; ".join(problems))

    # -- data <-> object ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> "DetectorConfig":
        try:
            return _build(cls, data, "")
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"invalid detector configuration: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    def replace(self, **overrides: Any) -> "DetectorConfig":
        """A copy with top-level fields replaced, e.g. ``config.replace(backbone="resnet18")``."""
        data = self.to_dict()
        data.update(_to_jsonable(overrides))
        return DetectorConfig.from_dict(data)


def load_config(source: str | Path) -> DetectorConfig:
    """A config from a JSON or YAML file, or a named config from ``MammoDNNLib/configs`` (``"detector-r18-cpu"``)."""
    path = Path(source)
    if not path.exists() and path.suffix == "" and (CONFIG_DIR / f"{source}.json").exists():
        path = CONFIG_DIR / f"{source}.json"
    if not path.is_file():
        names = ", ".join(named_configs())
        raise InputError(path, f"no such configuration file (named configurations: {names})")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # optional: PyYAML
        except ImportError:
            raise InputError(
                path, "YAML configurations need PyYAML (pip install pyyaml); or use JSON"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(path, f"not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "a configuration is a JSON/YAML object")
    return DetectorConfig.from_dict(data, path)


def named_configs() -> list[str]:
    """The shipped detector configurations (``configs/detector-*.json``; other models keep theirs beside them)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("detector-*.json"))


# -- helpers ----------------------------------------------------------------------------------------------------
def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"{where or 'configuration'} must be an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(where + k for k in unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}{key}.")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Lists from JSON become the tuples the dataclasses declare; numbers are checked against their types."""
    origin = get_origin(hint)
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, name) for v in value)
        if len(args) != len(value):
            raise TypeError(f"{name} must have {len(args)} items, got {value!r}")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value))
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
        return value
    return value  # Literals are checked by validate(); Optional[str] passes through


def _coerce_tree(obj: Any) -> None:
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict):
            value = _build(hints[f.name], value, f"{f.name}.")
            setattr(obj, f.name, value)
        if dataclasses.is_dataclass(value):
            _coerce_tree(value)
            continue
        hint = hints[f.name]
        if value is None:
            continue
        setattr(obj, f.name, _coerce(hint, value, f.name))
