"""Phantom configuration: every tunable number of the generator, with its default, in one place.

A :class:`PhantomConfig` is plain data (nested dataclasses) that round-trips through JSON (:meth:`to_dict`,
:meth:`from_dict`); ``truth.json`` stores the one a study was made with. Probabilities given as ``{value:
weight}`` maps are normalized when used, so they need not sum to one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..vocabulary import DENSITY_CATEGORIES, FINDING_TYPE_KEYS, MORPHOLOGY, MORPHOLOGY_GROUPS_BY_TYPE

# Pixel spacing (mm) of the named sizes: `small` for unit tests, `medium` for CPU training, `full` for a real
# detector's field at 0.15 mm.
SIZE_SPACING_MM: dict[str, float] = {"small": 0.5, "medium": 0.3, "full": 0.15}


def _default_morphology() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """P(descriptor | type, pathology): suspicious descriptors mostly for malignant lesions, never only."""
    return {
        "mass": {
            "malignant": {
                "mass_shape": {"irregular": 0.65, "oval": 0.20, "round": 0.15},
                "mass_margin": {
                    "spiculated": 0.40,
                    "indistinct": 0.28,
                    "microlobulated": 0.15,
                    "obscured": 0.10,
                    "circumscribed": 0.07,
                },
            },
            "benign": {
                "mass_shape": {"oval": 0.50, "round": 0.30, "irregular": 0.20},
                "mass_margin": {
                    "circumscribed": 0.58,
                    "obscured": 0.20,
                    "indistinct": 0.10,
                    "microlobulated": 0.09,
                    "spiculated": 0.03,
                },
            },
        },
        "calcification": {
            "malignant": {
                "calc_morphology": {
                    "fine_pleomorphic": 0.40,
                    "amorphous": 0.22,
                    "fine_linear": 0.22,
                    "coarse_heterogeneous": 0.10,
                    "punctate": 0.06,
                },
                "calc_distribution": {"segmental": 0.30, "linear": 0.30, "grouped": 0.35, "regional": 0.05},
            },
            "benign": {
                "calc_morphology": {
                    "punctate": 0.45,
                    "coarse_heterogeneous": 0.22,
                    "amorphous": 0.15,
                    "fine_pleomorphic": 0.12,
                    "fine_linear": 0.06,
                },
                "calc_distribution": {"grouped": 0.45, "regional": 0.33, "linear": 0.11, "segmental": 0.11},
            },
        },
        "asymmetry": {"malignant": {}, "benign": {}},
        "distortion": {"malignant": {}, "benign": {}},
    }


@dataclass
class LesionConfig:
    """How many lesions, of which kinds, and how their pathology relates to what they look like."""

    # A realistic enriched screening mix: about a third of the studies are normal; an abnormal study has one
    # or both breasts affected, with one to three lesions each.
    normal_study_fraction: float = 0.3
    second_breast_probability: float = 0.35  # an abnormal study also has lesions in the other breast
    lesions_per_breast_weights: dict[str, float] = field(
        default_factory=lambda: {"1": 0.6, "2": 0.3, "3": 0.1}
    )
    type_weights: dict[str, float] = field(
        default_factory=lambda: {"mass": 0.45, "calcification": 0.30, "asymmetry": 0.10, "distortion": 0.15}
    )
    malignant_probability: dict[str, float] = field(
        default_factory=lambda: {"mass": 0.40, "calcification": 0.35, "asymmetry": 0.15, "distortion": 0.70}
    )
    morphology: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=_default_morphology)
    # Largest 3D diameter (mm): log-normal median and spread, clipped to [min, max].
    mass_diameter_mm: dict[str, tuple[float, float, float, float]] = field(
        default_factory=lambda: {"benign": (12.0, 0.35, 5.0, 30.0), "malignant": (15.0, 0.35, 6.0, 40.0)}
    )
    calcification_extent_mm: tuple[float, float] = (5.0, 40.0)
    asymmetry_diameter_mm: tuple[float, float] = (18.0, 45.0)
    distortion_diameter_mm: tuple[float, float] = (15.0, 40.0)
    axillary_tail_fraction: float = (
        0.05  # of lesions placed in the axillary tail (MLO quadrant axillary_tail)
    )
    # Linear attenuation at ~20 keV (1/mm): carcinoma/fibroadenoma tissue, hydroxyapatite specks.
    mass_attenuation_per_mm: tuple[float, float] = (0.088, 0.100)
    calcification_attenuation_per_mm: float = 2.6
    max_placement_tries: int = 200


@dataclass
class AnatomyConfig:
    """Breast size, shape, compression and density."""

    density_prevalence: dict[str, float] = field(
        default_factory=lambda: {"A": 0.10, "B": 0.40, "C": 0.40, "D": 0.10}
    )
    # Percent density (area fraction of the breast interior whose projected glandular fraction is at least
    # dense_threshold) each category aims at; the category ranges are the 4th-edition quartiles (A < 25 % <= B
    # < 50 % <= C < 75 % <= D); targets stay inside them with a margin. The truth's category is the realized
    # one.
    percent_density_target: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"A": (0.06, 0.20), "B": (0.30, 0.45), "C": (0.55, 0.70), "D": (0.80, 0.92)}
    )
    dense_threshold: float = 0.25
    # Uncompressed half-extents (mm): nipple depth, lateral/medial, superior/inferior; scaled by a size
    # factor.
    depth_mm: tuple[float, float] = (55.0, 105.0)
    half_width_mm: tuple[float, float] = (48.0, 80.0)
    half_height_mm: tuple[float, float] = (45.0, 75.0)
    size_factor_sigma: float = 0.12
    compressed_thickness_mm: tuple[float, float] = (28.0, 80.0)
    mlo_extra_thickness_mm: tuple[float, float] = (0.0, 8.0)
    mlo_angle_deg: tuple[float, float] = (40.0, 55.0)  # C-arm angle: image plane vs the sagittal plane
    pectoral_angle_deg: tuple[float, float] = (22.0, 38.0)  # pectoral line vs the chest-wall image edge
    depth_warp: float = (
        0.08  # max |delta| of the per-view nipple-axis warp (CC/MLO depths differ <= delta / 2)
    )
    skin_thickness_mm: tuple[float, float] = (0.8, 1.6)
    subcutaneous_fat_mm: tuple[float, float] = (3.0, 9.0)
    cc_pectoral_probability: float = 0.3  # pectoral muscle visible at the chest-wall edge of a CC view
    vessels_per_breast: tuple[int, int] = (2, 6)
    scattered_calcification_probability: float = 0.3  # isolated benign specks (not lesions) in a breast
    # Detector formats (width = along the nipple axis, height = along the chest wall), mm; the smaller is used
    # when the breast fits it.
    detector_formats_mm: list[tuple[float, float]] = field(
        default_factory=lambda: [(240.0, 300.0), (180.0, 240.0)]
    )


@dataclass
class ImagingConfig:
    """Acquisition physics and the vendor-like presentation processing."""

    photons_per_mm2: float = 1.5e5  # detected quanta behind the breast interior (AEC target)
    detector_blur_px: float = 0.45  # Gaussian sigma of the detector MTF, pixels
    fixed_pattern_amplitude: float = 0.002  # gain non-uniformity and row/column banding, log units
    fat_level: float = 0.22  # presentation value of fat in the breast interior (0..1)
    dense_level: float = 0.85  # presentation value of dense interior tissue (55 % glandular path)
    local_contrast_gain: float = 0.6  # unsharp-mask gain of the presentation processing
    local_contrast_sigma_mm: float = 5.0
    bits_stored: int = 12
    background_level: float = 0.008  # presentation value of unattenuated background


@dataclass
class PhantomConfig:
    """Everything the phantom generator needs besides the seed and the size."""

    spacing_mm: float | None = None  # overrides the size's spacing when set
    # A lesion whose projected centre lies within this distance of a view's nipple is "areola" (subareolar) in
    # that view: the areola is 30-50 mm across, and reports call lesions within 2 cm of the nipple subareolar.
    areola_radius_mm: float = 20.0
    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    lesions: LesionConfig = field(default_factory=LesionConfig)
    imaging: ImagingConfig = field(default_factory=ImagingConfig)

    def spacing_for(self, size: str) -> float:
        if self.spacing_mm is not None:
            return float(self.spacing_mm)
        try:
            return SIZE_SPACING_MM[size]
        except KeyError:
            raise ValueError(
                f"unknown phantom size {size!r}; expected one of {', '.join(SIZE_SPACING_MM)}"
            ) from None

    def validate(self, source: str | Path | None = None) -> "PhantomConfig":
        problems: list[str] = []
        if self.spacing_mm is not None and not 0.04 <= self.spacing_mm <= 2.0:
            problems.append(f"spacing_mm {self.spacing_mm} is outside 0.04..2.0")
        if not 0 <= self.lesions.normal_study_fraction <= 1:
            problems.append("lesions.normal_study_fraction must be in [0, 1]")
        for key in self.lesions.type_weights:
            if key not in FINDING_TYPE_KEYS:
                problems.append(f"lesions.type_weights has unknown finding type {key!r}")
        for key in self.anatomy.density_prevalence:
            if key not in DENSITY_CATEGORIES:
                problems.append(f"anatomy.density_prevalence has unknown density {key!r}")
        for kind, by_pathology in self.lesions.morphology.items():
            allowed = MORPHOLOGY_GROUPS_BY_TYPE.get(kind)
            if allowed is None:
                problems.append(f"lesions.morphology has unknown finding type {kind!r}")
                continue
            for pathology, groups in by_pathology.items():
                for group, weights in groups.items():
                    if group not in allowed:
                        problems.append(
                            f"lesions.morphology.{kind}.{pathology}: group {group!r} not for {kind}"
                        )
                        continue
                    bad = [v for v in weights if v not in MORPHOLOGY[group]]
                    if bad:
                        problems.append(
                            f"lesions.morphology.{kind}.{pathology}.{group}: unknown values {bad}"
                        )
        if not 8 <= self.imaging.bits_stored <= 16:
            problems.append("imaging.bits_stored must be in 8..16")
        if problems:
            raise InputError(source, "invalid phantom configuration: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> "PhantomConfig":
        """Build from a (partial) dict; missing keys keep their defaults, unknown keys are an error."""
        return _from_dict(cls, data, source, "").validate(source)

    @classmethod
    def from_json(cls, path: str | Path) -> "PhantomConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(path, f"cannot read phantom configuration: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(path, "a phantom configuration is a JSON object")
        return cls.from_dict(data, path)


def _from_dict(cls, data: dict[str, Any], source, prefix: str):
    if not isinstance(data, dict):
        raise InputError(source, f"{prefix or 'configuration'} must be an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            source, f"unknown phantom configuration keys {', '.join(prefix + k for k in unknown)}"
        )
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current):
            kwargs[name] = _from_dict(type(current), value, source, f"{prefix}{name}.")
        elif isinstance(current, tuple):
            kwargs[name] = tuple(value)
        elif isinstance(current, list) and current and isinstance(current[0], tuple):
            kwargs[name] = [tuple(v) for v in value]
        elif isinstance(current, dict) and current and isinstance(next(iter(current.values())), tuple):
            kwargs[name] = {k: tuple(v) for k, v in value.items()}
        else:
            kwargs[name] = value
    return cls(**kwargs)
