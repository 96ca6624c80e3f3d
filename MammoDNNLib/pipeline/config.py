"""Options of the analysis pipeline: which detections become findings and how their outlines are drawn.

Config is data: :class:`PipelineOptions` (with :class:`OutlineConfig` inside) holds every default in one place
and
round-trips through JSON (:meth:`PipelineOptions.to_dict` / :meth:`PipelineOptions.from_dict`, strict: unknown
keys
are an error). A system model's manifest stores the options it was tuned with (``config.pipeline``); the
values
below are the defaults for a system that does not say otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

OUTLINE_METHODS: tuple[str, ...] = ("otsu", "midpoint", "chan_vese", "ellipse")


@dataclass
class OutlineConfig:
    """How a lesion's mask is derived inside its detection box on the prepared image (see :mod:`.outline`).

    Lengths are millimetres, so the same options hold at any prepared spacing.
    """

    # Masses and asymmetries: "otsu" (smoothed, thresholded by Otsu's method inside the box, constrained to
    # the
    # inscribed ellipse), "midpoint" (threshold halfway between the lesion's core and its surroundings),
    # "chan_vese" (scikit-image's morphological Chan-Vese started from that ellipse) or "ellipse" (the
    # inscribed
    # ellipse itself). The defaults are the best of each on validation phantoms (docs/pipeline.md, Outlines).
    mass_method: str = "ellipse"
    asymmetry_method: str = "otsu"
    smoothing_mm: float = 0.6  # Gaussian sigma before thresholding
    ellipse_slack: float = (
        1.15  # the ellipse prior is the inscribed ellipse scaled by this (then clipped to the box)
    )
    chan_vese_iterations: int = 40
    chan_vese_smoothing: int = 2  # smoothing steps per Chan-Vese iteration (scikit-image's ``smoothing``)
    # Report the ellipse with the segmentation's area moments instead of its raw edge (masses, asymmetries).
    fit_ellipse: bool = True
    boundary_smoothing_mm: float = 1.0  # Gaussian sigma applied to the segmented mask (0: raw edge)
    opening_mm: float = 0.8  # opening radius that removes threads between the lesion and touching tissue
    # Calcification clusters: bright specks (white top-hat, radius tophat_mm) above tophat_sigmas robust SDs
    # of the box's top-hat values; the convex hull of at least min_specks specks, widened by calc_margin_mm.
    # With the view's original pixels at hand, clusters are segmented on them resampled to this spacing (never
    # finer than the original; 0: on the prepared image like the other types).
    calc_working_mm: float = 0.1
    tophat_mm: float = 1.2
    tophat_sigmas: float = 3.5
    min_specks: int = 2
    calc_margin_mm: float = 1.0
    # A segmentation is implausible, and the inscribed ellipse used instead, when its area is outside
    # [min_area_fraction, max_area_fraction] of the inscribed ellipse's, or its bounding box covers less than
    # min_extent_fraction of the box's width or height.
    min_area_fraction: float = 0.25
    max_area_fraction: float = 1.3
    min_extent_fraction: float = 0.4

    def __post_init__(self) -> None:
        for name in ("mass_method", "asymmetry_method"):
            if getattr(self, name) not in OUTLINE_METHODS:
                raise ValueError(
                    f"outline {name} must be one of {', '.join(OUTLINE_METHODS)}, got {getattr(self, name)!r}"
                )
        positive = ("smoothing_mm", "ellipse_slack", "tophat_mm", "tophat_sigmas", "max_area_fraction")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"outline {name} must be positive")
        if self.chan_vese_iterations < 1 or self.min_specks < 1:
            raise ValueError("outline chan_vese_iterations and min_specks must be at least 1")
        lengths = ("opening_mm", "calc_margin_mm", "boundary_smoothing_mm", "calc_working_mm")
        if any(getattr(self, name) < 0 for name in lengths):
            raise ValueError(f"outline {', '.join(lengths)} must not be negative")
        if not 1 <= self.chan_vese_smoothing <= 4:
            raise ValueError("outline chan_vese_smoothing must be 1..4")
        if not 0 <= self.min_area_fraction < self.max_area_fraction:
            raise ValueError("outline needs 0 <= min_area_fraction < max_area_fraction")
        if not 0 <= self.min_extent_fraction <= 1:
            raise ValueError("outline min_extent_fraction must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutlineConfig:
        _check_keys(cls, data, "outline")
        return cls(**dict(data))


@dataclass
class PipelineOptions:
    """Which detections are reported and how they are outlined (defaults in one place; JSON round trip)."""

    # The operating point: detections scoring below it are not reported. A system model stores the value
    # chosen
    # for it on validation phantoms (never the test phantoms).
    score_threshold: float = 0.3
    max_findings_per_view: int = 8  # the best-scoring ones are kept
    # Two detections whose boxes overlap by at least this fraction of the smaller box (any types: one lesion
    # seen
    # as two types, or a part of a lesion boxed again) are one lesion: the lower-scoring one is dropped and
    # recorded in the kept finding's extra. None keeps both.
    same_lesion_overlap: float | None = 0.6
    min_box_mm: float = 1.5  # boxes narrower than this (either side) are dropped as degenerate
    outline: OutlineConfig = field(default_factory=OutlineConfig)

    def __post_init__(self) -> None:
        if isinstance(self.outline, Mapping):
            self.outline = OutlineConfig.from_dict(self.outline)
        if not (math.isfinite(self.score_threshold) and 0.0 <= self.score_threshold <= 1.0):
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold!r}")
        if int(self.max_findings_per_view) < 0:
            raise ValueError("max_findings_per_view must not be negative")
        self.max_findings_per_view = int(self.max_findings_per_view)
        if self.same_lesion_overlap is not None and not 0.0 < self.same_lesion_overlap <= 1.0:
            raise ValueError("same_lesion_overlap must be in (0, 1] or null")
        if self.min_box_mm < 0:
            raise ValueError("min_box_mm must not be negative")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outline"] = self.outline.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineOptions:
        _check_keys(cls, data, "pipeline")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> PipelineOptions:
        """A copy with some options changed (validated like a new object)."""
        data = self.to_dict()
        data.update(changes)
        return PipelineOptions.from_dict(data)


def _check_keys(cls, data: Mapping[str, Any], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} options must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
