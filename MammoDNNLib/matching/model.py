"""The LightGBM CC-MLO matcher: pair probabilities, and its model folder (LightGBM text + manifest + sha256).

A matcher model is a registry folder (see :mod:`MammoDNNLib.models.registry`)::

    <folder>/manifest.json   kind "matcher"; config: feature names, threshold, candidate settings, LightGBM
                             parameters and best iteration; components: model.txt with its sha256 and size;
                             training data and held-out metrics
    <folder>/model.txt       LightGBM's own text model format (Booster.save_model) — never a pickle
    <folder>/MODEL_CARD.md

Loading checks the manifest's kind, the file's size and sha256 (on the bytes that are then parsed, so nothing
changes between check and use), that the file is LightGBM text, and that its feature names are exactly
:data:`~MammoDNNLib.matching.features.FEATURE_NAMES`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ModelError
from .assign import Match, greedy_assign
from .features import FEATURE_NAMES, CandidateConfig, MatchCandidate, pair_feature_matrix

if TYPE_CHECKING:
    from ..models.registry import ModelInfo

log = logging.getLogger(__name__)

MODEL_KIND = "matcher"
MODEL_FILE = "model.txt"
MODEL_ROLE = "lightgbm-text"
DEFAULT_MATCHER = "mammodnn-matcher"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the registry's rule for names and versions


class PairScorer(Protocol):
    """Anything that scores CC x MLO pairs of one breast (the LightGBM matcher, the baselines)."""

    name: str
    threshold: float

    def probabilities(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray: ...


@dataclass
class Matcher:
    """A trained LightGBM pair classifier and the threshold chosen for it on validation phantoms."""

    booster: Any  # lightgbm.Booster
    threshold: float
    candidate_config: CandidateConfig = field(default_factory=CandidateConfig)
    info: ModelInfo | None = None
    name: str = "lightgbm"

    def __post_init__(self) -> None:
        names = tuple(self.booster.feature_name())
        if names != FEATURE_NAMES:
            raise ModelError(f"the LightGBM model's features {list(names)[:4]}... are not this version's "
                             f"{len(FEATURE_NAMES)} pair features; retrain the matcher")
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ModelError(f"matcher threshold must be in [0, 1], got {self.threshold!r}")

    def probabilities(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> np.ndarray:
        """``P(same lesion)`` for every (CC, MLO) pair of one breast, shape ``(len(cc), len(mlo))``."""
        features = pair_feature_matrix(cc, mlo)
        n, m = features.shape[:2]
        if n == 0 or m == 0:
            return np.zeros((n, m))
        flat = features.reshape(n * m, len(FEATURE_NAMES))
        return np.asarray(self.booster.predict(flat), dtype=np.float64).reshape(n, m)

    def match(self, cc: Sequence[MatchCandidate], mlo: Sequence[MatchCandidate]) -> list[Match]:
        return greedy_assign(self.probabilities(cc, mlo), self.threshold)

    # -- storage -----------------------------------------------------------------------------------------------
    def save(
        self,
        folder: str | Path,
        *,
        name: str = DEFAULT_MATCHER,
        version: str = "0.1.0",
        training_data: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        baseline_thresholds: Mapping[str, float] | None = None,
        description: str = "",
        card: str | None = None,
    ) -> ModelInfo:
        """Write ``model.txt``, ``manifest.json`` and ``MODEL_CARD.md`` (``card`` replaces the generated one)."""
        import datetime as _dt

        from ..models.registry import (
            MANIFEST_VERSION,
            MODEL_CARD,
            Component,
            ModelInfo,
            model_card,
            sha256_file,
            write_manifest,
        )

        if not _NAME.match(name) or not _NAME.match(version):
            raise ModelError(f"invalid model name/version {name!r} {version!r} (letters, digits, '.', '_', '-')")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        self.booster.save_model(str(path))
        info = ModelInfo(
            name=name, version=version, kind=MODEL_KIND, classes=["same_lesion"],
            config={
                "format": "LightGBM text model (Booster.save_model)",
                "feature_names": list(FEATURE_NAMES),
                "threshold": float(self.threshold),
                "candidate": self.candidate_config.to_dict(),
                "lightgbm": dict(parameters or {}),
                "num_trees": int(self.booster.num_trees()),
                "baseline_thresholds": {k: float(v) for k, v in (baseline_thresholds or {}).items()},
            },
            components=[Component(MODEL_FILE, sha256_file(path), path.stat().st_size, MODEL_ROLE)],
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            training_data=dict(training_data or {}), metrics=dict(metrics or {}), description=description,
            manifest_version=MANIFEST_VERSION, path=folder.resolve(),
        )
        write_manifest(info, folder)
        (folder / MODEL_CARD).write_text(card if card is not None else model_card(info), encoding="utf-8")
        self.info = info
        return info

    @classmethod
    def from_info(cls, info: ModelInfo, device: str = "cpu") -> Matcher:
        """Build from a registry manifest (``device`` is accepted for the registry's loader signature; LightGBM
        runs on the CPU). Verifies the model file before parsing it."""
        import lightgbm as lgb

        if info.kind != MODEL_KIND:
            raise ModelError(f"{info.path}: is a {info.kind!r} model, not a matcher")
        if info.path is None:
            raise ModelError(f"{info.label}: has no folder to load from")
        text = _verified_model_text(info)
        config = info.config
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"{info.path / MODEL_FILE}: not a valid LightGBM model ({exc})") from None
        stored = tuple(config.get("feature_names", ()))
        if stored != tuple(booster.feature_name()):
            raise ModelError(f"{info.path}: the manifest's feature names differ from the model file's")
        try:
            candidate = CandidateConfig.from_dict(config.get("candidate", {}))
            threshold = float(config["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{info.path}: bad matcher configuration in the manifest ({exc})") from None
        return cls(booster, threshold, candidate, info)

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MATCHER, version: str | None = None) -> Matcher:
        """A matcher by folder or registry name (user cache, then the shipped ``Resources/Models``)."""
        from ..models.registry import read_manifest, resolve_model

        return cls.from_info(read_manifest(resolve_model(name_or_path, version)))


def _verified_model_text(info: ModelInfo) -> str:
    import hashlib

    assert info.path is not None
    if len(info.components) != 1 or info.components[0].role != MODEL_ROLE:
        raise ModelError(f"{info.path}: a matcher has exactly one {MODEL_ROLE!r} component")
    component = info.components[0]
    root = info.path.resolve()
    path = (root / component.file).resolve()
    if root not in path.parents:
        raise ModelError(f"{root}: component {component.file!r} lies outside the model folder")
    if path.suffix.lower() != ".txt":
        raise ModelError(f"{path}: a matcher model must be LightGBM text (.txt); refusing other formats")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file listed in the manifest is missing") from None
    if len(data) != component.size:
        raise ModelError(f"{path}: size {len(data)} differs from the manifest's {component.size}; the file was "
                         "changed or truncated")
    digest = hashlib.sha256(data).hexdigest()
    if digest != component.sha256:
        raise ModelError(f"{path}: sha256 {digest} does not match the manifest ({component.sha256}); the file was "
                         "changed after the model was made, refusing to load it")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a LightGBM text model (binary content)") from None
    if not text.startswith("tree\n"):
        raise ModelError(f"{path}: not a LightGBM text model (no 'tree' header)")
    return text
