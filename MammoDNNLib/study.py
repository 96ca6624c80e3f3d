"""A study and its views, as loaded from files (see :mod:`MammoDNNLib.io`) or made in memory (phantoms, tests).

A :class:`View` carries the pixels in presentation form (modality and VOI LUTs applied, MONOCHROME1 inverted, so
that brighter means more attenuating), the pixel spacing, laterality and view position, and where each of those
came from. A :class:`Study` holds one to four views of one exam keyed by ``"R-CC"``, ``"L-CC"``, ``"R-MLO"``,
``"L-MLO"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .vocabulary import VIEW_KEYS, view_key

if TYPE_CHECKING:  # pydicom is only needed by the loaders and exporters
    from pydicom import Dataset


@dataclass
class View:
    pixels: np.ndarray  # (rows, cols) float32, presentation values, brighter = denser
    spacing: tuple[float, float]  # (row, col) millimetres per pixel at the detector plane, magnification-corrected
    laterality: str  # "L" or "R"
    view: str  # "CC" or "MLO"
    source: Path | None = None  # the file it came from (None when made in memory)
    # What each value came from, e.g. {"laterality": "ImageLaterality (0020,0062)", "spacing": "ImagerPixelSpacing
    # (0018,1164) / EstimatedRadiographicMagnificationFactor 1.08", "view": "ViewPosition (0018,5101)"}.
    provenance: dict[str, str] = field(default_factory=dict)
    # The DICOM header without pixel data, for exports that reference the source image (None for non-DICOM).
    header: "Dataset | None" = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2:
            raise ValueError(f"{self.source or 'view'}: pixels must be a 2-D array, got shape {self.pixels.shape}")
        if self.laterality not in ("L", "R"):
            raise ValueError(f"{self.source or 'view'}: laterality must be 'L' or 'R', got {self.laterality!r}")
        if self.view not in ("CC", "MLO"):
            raise ValueError(f"{self.source or 'view'}: view must be 'CC' or 'MLO', got {self.view!r}")

    @property
    def key(self) -> str:
        return view_key(self.laterality, self.view)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.pixels.shape  # type: ignore[return-value]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def name(self) -> str:
        """A file-name-safe name: the source file's stem, else the view key."""
        return self.source.stem if self.source is not None else self.key


@dataclass
class Study:
    views: dict[str, View]  # keyed by VIEW_KEYS, in hanging order
    source: Path | None = None  # folder or first file
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. patient/study identifiers for reports

    def __post_init__(self) -> None:
        for key, view in self.views.items():
            if key != view.key:
                raise ValueError(f"view stored under {key!r} is {view.key!r}")
        self.views = {k: self.views[k] for k in VIEW_KEYS if k in self.views}

    def __iter__(self) -> Iterator[View]:
        return iter(self.views.values())

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, key: str) -> View:
        return self.views[key]

    def get(self, key: str) -> View | None:
        return self.views.get(key)

    @property
    def missing(self) -> list[str]:
        return [k for k in VIEW_KEYS if k not in self.views]

    def breast_complete(self, laterality: str) -> bool:
        """Both CC and MLO of one breast are present (CC-MLO matching needs both)."""
        return view_key(laterality, "CC") in self.views and view_key(laterality, "MLO") in self.views
