"""Lesions: what they are (type, pathology, morphology, BI-RADS), their 3D geometry, and how each view sees
them.

Every lesion is a 3D object in its breast's frame; each view projects it through the view's compression
(:mod:`.anatomy`), so the CC and MLO projections of one lesion are two views of one thing:

- **mass**: a star-shaped solid (ellipsoid for round/oval, lobulated for irregular) whose margin follows its
  descriptor: sharp (circumscribed), partly covered by overlapping tissue (obscured), small surface lobules
  (microlobulated), a soft fading edge (indistinct), or thin radiating spicules with surrounding tissue
  retraction (spiculated). Tumours are stiffer than fat: they deform only half as much under compression.
- **calcification**: a cluster of 3D specks (punctate, amorphous, coarse heterogeneous, fine pleomorphic, fine
  linear) in a grouped, linear (along a duct), segmental (a duct tree pointing at the nipple) or regional
  distribution; each speck is rigid hydroxyapatite, rendered with exact partial-volume integration.
- **asymmetry**: a focal region of extra fibroglandular tissue (interspersed with fat, no convex borders).
- **distortion**: radiating thin fibrous lines and retraction of the surrounding tissue towards a centre,
with no
  central mass.

Pathology is drawn first, the morphology from P(descriptor | type, pathology), and the BI-RADS category from
the morphology (as a reader would assess it), so that appearance predicts malignancy well but not perfectly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..vocabulary import BIRADS_CATEGORIES, MORPHOLOGY_GROUPS_BY_TYPE
from .anatomy import BreastAnatomy, Ellipsoid, ViewGeometry, random_rotation, sample_in_body, unit_vectors
from .config import LesionConfig
from .raster import ViewFrame, add_specks, draw_tubes, ellipsoid_chord

MU_FAT = 0.046  # linear attenuation at ~20 keV, 1/mm (Johns & Yaffe 1987)
MU_GLAND = 0.080
DELTA_GLAND = MU_GLAND - MU_FAT
TUMOUR_STIFFNESS = 0.7
RETROAREOLAR_FRACTION = 0.1

# Suspicion each descriptor adds (reader-like); summed with reader noise and cut into BI-RADS categories.
_SUSPICION: dict[str, dict[str, float]] = {
    "mass_shape": {"round": 0.0, "oval": 0.0, "irregular": 1.6},
    "mass_margin": {
        "circumscribed": 0.4,
        "obscured": 1.2,
        "microlobulated": 2.0,
        "indistinct": 2.2,
        "spiculated": 3.6,
    },
    "calc_morphology": {
        "punctate": 0.3,
        "coarse_heterogeneous": 1.4,
        "amorphous": 1.9,
        "fine_pleomorphic": 3.0,
        "fine_linear": 3.6,
    },
    "calc_distribution": {"regional": -0.4, "grouped": 0.6, "linear": 1.1, "segmental": 1.1},
}
_TYPE_SUSPICION = {"mass": 0.0, "calcification": 0.0, "asymmetry": 1.5, "distortion": 3.3}
_BIRADS_CUTS = (0.6, 1.5, 2.4, 3.4, 4.3)  # score -> 2 | 3 | 4A | 4B | 4C | 5


def assess_birads(rng: np.random.Generator, kind: str, morphology: dict[str, str]) -> str:
    """The BI-RADS category a reader would give a lesion of this type and morphology."""
    score = _TYPE_SUSPICION[kind] + sum(_SUSPICION[group][value] for group, value in morphology.items())
    score += rng.normal(0.0, 0.45)
    index = int(np.searchsorted(_BIRADS_CUTS, score))
    return BIRADS_CATEGORIES[1 + index]  # "2" .. "5"


def worst_birads(categories: list[str]) -> str:
    """The most suspicious category of a breast ("1" when it has no lesions)."""
    if not categories:
        return "1"
    return max(categories, key=BIRADS_CATEGORIES.index)


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


# ------------------------------------------------------------------------------------------------------------
# geometry of each kind
# ------------------------------------------------------------------------------------------------------------
@dataclass
class MassGeometry:
    axes: np.ndarray  # (3,) half-lengths of the base ellipsoid, lesion frame (mm)
    rotation: np.ndarray  # (3, 3)
    bump_dirs: np.ndarray  # (K, 3) unit, in the ellipsoid-normalized frame
    bump_amp: np.ndarray  # (K,)
    bump_width: np.ndarray  # (K,)
    edge: float  # width of the soft edge, in normalized radius
    blur_mm: float  # extra projected blur (indistinct margins)
    attenuation: float  # 1/mm
    spicules: np.ndarray  # (S, P, 3) polylines from the core surface outwards, lesion frame (mm)
    spicule_width: np.ndarray  # (S,) mm at the base
    spicule_depth: np.ndarray  # (S,) mm along the beam: spicules are fibrous sheets, not threads
    retraction: float
    obscuring: Ellipsoid | None  # overlapping normal tissue (breast frame), not part of the lesion

    def radius_function(self, directions: np.ndarray) -> np.ndarray:
        """rho(d) >= 0: the surface in the ellipsoid-normalized frame is ``r = rho(d)``."""
        rho = np.ones(len(directions), np.float64)
        if len(self.bump_dirs):
            cos = directions @ self.bump_dirs.T
            rho = rho + (self.bump_amp * np.exp((cos - 1.0) / self.bump_width)).sum(axis=1)
        return np.maximum(rho, 0.15)

    def core_radius(self) -> float:
        dirs = unit_vectors(np.random.default_rng(0), 400)
        return float(np.max(self.axes) * np.max(self.radius_function(dirs)))

    def bounding_radius(self) -> float:
        core = self.core_radius()
        if len(self.spicules):
            core = max(core, float(np.linalg.norm(self.spicules.reshape(-1, 3), axis=1).max()))
        return core

    def diameter(self) -> float:
        dirs = unit_vectors(np.random.default_rng(1), 600)
        pts = (dirs * self.radius_function(dirs)[:, None] * self.axes) @ self.rotation.T
        rho_neg = self.radius_function(-dirs)[:, None]
        opp = (-dirs * rho_neg * self.axes) @ self.rotation.T
        return float(np.max(np.linalg.norm(pts - opp, axis=1)))


@dataclass
class CalcificationGeometry:
    speck_centres: np.ndarray  # (S, 3) breast frame, mm (follow the tissue under compression)
    blob_speck: np.ndarray  # (M,) index of the speck each Gaussian sub-blob belongs to
    blob_offsets: np.ndarray  # (M, 3) rigid offsets from the speck centre, breast-frame axes (mm)
    blob_sigma: np.ndarray  # (M,) mm
    blob_integral: np.ndarray  # (M,) mu * volume, mm^2
    speck_radius: float  # typical speck radius (mm) for the outline margin


@dataclass
class AsymmetryGeometry:
    region: Ellipsoid  # breast frame
    strength: float  # fraction of the free (fatty) path filled with extra glandular tissue
    texture_bias: float


@dataclass
class DistortionGeometry:
    lines: np.ndarray  # (N, 2, 3) breast frame
    widths: np.ndarray  # (N,)
    depths: np.ndarray  # (N,) mm along the beam (fibrous sheets)
    radius: float  # region radius (mm)
    retraction: float


@dataclass
class LesionModel:
    """One lesion of a breast, with everything needed to render it in any view."""

    id: str
    laterality: str
    kind: str
    pathology: str
    morphology: dict[str, str]
    birads: str
    size_mm: float
    centre: np.ndarray  # (3,) breast frame
    in_axillary_tail: bool
    geometry: MassGeometry | CalcificationGeometry | AsymmetryGeometry | DistortionGeometry

    def outline_radius(self) -> float:
        """Radius (breast frame, mm) that holds the lesion's outline mask (spicules and lines may reach
        further)."""
        g = self.geometry
        if isinstance(g, MassGeometry):
            return g.core_radius()
        if isinstance(g, DistortionGeometry):
            return 0.8 * g.radius
        return self.bounding_radius()

    def bounding_radius(self) -> float:
        g = self.geometry
        if isinstance(g, MassGeometry):
            return g.bounding_radius()
        if isinstance(g, CalcificationGeometry):
            r = np.linalg.norm(g.speck_centres - self.centre, axis=1).max(initial=0.0)
            return float(r + g.speck_radius + 1.5)
        if isinstance(g, AsymmetryGeometry):
            return float(np.max(g.region.axes))
        return float(g.radius)


# ------------------------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------------------------
def sample_lesion_type(rng: np.random.Generator, config: LesionConfig) -> tuple[str, str, dict[str, str]]:
    kind = _choice(rng, config.type_weights)
    pathology = "malignant" if rng.random() < config.malignant_probability[kind] else "benign"
    groups = config.morphology.get(kind, {}).get(pathology, {})
    morphology = {
        group: _choice(rng, groups[group]) for group in MORPHOLOGY_GROUPS_BY_TYPE[kind] if group in groups
    }
    return kind, pathology, morphology


def _lognormal(rng: np.random.Generator, spec: tuple[float, float, float, float]) -> float:
    median, sigma, lo, hi = spec
    return float(np.clip(median * np.exp(rng.normal(0.0, sigma)), lo, hi))


def sample_mass(
    rng: np.random.Generator, config: LesionConfig, pathology: str, morphology: dict[str, str]
) -> MassGeometry:
    shape = morphology.get("mass_shape", "oval")
    margin = morphology.get("mass_margin", "circumscribed")
    diameter = _lognormal(rng, config.mass_diameter_mm[pathology])
    if shape == "round":
        ratios = np.array([1.0, rng.uniform(0.88, 1.0), rng.uniform(0.85, 1.0)])
    elif shape == "oval":
        ratios = np.array([1.0, rng.uniform(0.55, 0.78), rng.uniform(0.5, 0.8)])
    else:
        ratios = np.array([1.0, rng.uniform(0.6, 0.95), rng.uniform(0.55, 0.95)])
    dirs: list[np.ndarray] = []
    amps: list[np.ndarray] = []
    widths: list[np.ndarray] = []
    if shape == "irregular":  # a few large lobes and dents
        k = int(rng.integers(5, 10))
        dirs.append(unit_vectors(rng, k))
        amps.append(rng.uniform(-0.25, 0.5, k))
        widths.append(rng.uniform(0.12, 0.3, k))
    else:  # smooth, slightly uneven
        k = 4
        dirs.append(unit_vectors(rng, k))
        amps.append(rng.uniform(-0.04, 0.06, k))
        widths.append(np.full(k, 0.5))
    if margin == "microlobulated":
        k = int(rng.integers(22, 36))
        dirs.append(unit_vectors(rng, k))
        amps.append(rng.uniform(0.05, 0.11, k))
        widths.append(rng.uniform(0.015, 0.03, k))
    edge = {
        "circumscribed": 0.04,
        "obscured": 0.05,
        "microlobulated": 0.05,
        "indistinct": 0.3,
        "spiculated": 0.12,
    }[margin]
    blur = {"indistinct": rng.uniform(0.8, 1.6), "spiculated": 0.4}.get(margin, 0.0)
    geometry = MassGeometry(
        axes=ratios,
        rotation=random_rotation(rng),
        bump_dirs=np.concatenate(dirs),
        bump_amp=np.concatenate(amps),
        bump_width=np.concatenate(widths),
        edge=edge,
        blur_mm=float(blur),
        attenuation=float(
            rng.uniform(*config.mass_attenuation_per_mm) + (0.004 if pathology == "malignant" else 0.0)
        ),
        spicules=np.zeros((0, 2, 3)),
        spicule_width=np.zeros(0),
        spicule_depth=np.zeros(0),
        retraction=0.0,
        obscuring=None,
    )
    geometry.axes = ratios * (diameter / geometry.diameter())
    if margin == "spiculated":
        n = int(rng.integers(14, 32))
        lines = []
        for d in unit_vectors(rng, n):
            local = d @ geometry.rotation  # direction in the lesion's principal frame
            normalized = local / geometry.axes
            r_surface = float(geometry.radius_function((normalized / np.linalg.norm(normalized))[None])[0])
            surface = d / np.linalg.norm(normalized) * r_surface
            length = rng.uniform(0.5, 1.6) * diameter * 0.5 + rng.uniform(2.0, 6.0)
            # A gently bending line: four points, each step turned a little.
            bend = unit_vectors(rng, 1)[0]
            bend -= d * float(bend @ d)
            steps = np.linspace(0.0, 1.0, 4)[:, None]
            points = surface * 0.85 + d * length * steps + bend * length * rng.uniform(0.0, 0.15) * steps**2
            lines.append(points)
        geometry.spicules = np.array(lines)
        geometry.spicule_width = rng.uniform(0.35, 0.9, n)
        geometry.spicule_depth = rng.uniform(1.5, 4.0, n)
        geometry.retraction = float(rng.uniform(0.2, 0.45))
    return geometry


def sample_calcifications(
    rng: np.random.Generator,
    config: LesionConfig,
    centre: np.ndarray,
    pathology: str,
    morphology: dict[str, str],
) -> CalcificationGeometry:
    kind = morphology.get("calc_morphology", "punctate")
    distribution = morphology.get("calc_distribution", "grouped")
    lo, hi = config.calcification_extent_mm
    towards_nipple = np.array([1.0, 0.0, 0.0])
    duct_dirs: np.ndarray
    if distribution == "grouped":
        extent = rng.uniform(max(lo, 5.0), min(hi, 15.0))
        n = int(rng.integers(8, 31) if pathology == "malignant" else rng.integers(5, 16))
        pts = rng.normal(0.0, extent / 4.0, size=(n, 3))
        norms = np.linalg.norm(pts, axis=1, keepdims=True)
        pts = np.where(norms > extent / 2, pts / norms * extent / 2 * rng.uniform(0.6, 1.0, (n, 1)), pts)
        duct_dirs = unit_vectors(rng, n)
    elif distribution == "linear":
        extent = rng.uniform(max(lo, 8.0), min(hi, 25.0))
        n = int(rng.integers(6, 21))
        direction = towards_nipple + rng.normal(0.0, 0.35, 3)
        direction /= np.linalg.norm(direction)
        u = np.sort(rng.uniform(-0.5, 0.5, n)) * extent
        pts = u[:, None] * direction + rng.normal(0.0, 0.35, (n, 3))
        duct_dirs = np.repeat(direction[None], n, axis=0)
    elif distribution == "segmental":
        extent = rng.uniform(max(lo, 18.0), min(hi, 40.0))
        n = int(rng.integers(15, 46))
        axis = towards_nipple + rng.normal(0.0, 0.25, 3)
        axis /= np.linalg.norm(axis)
        branches = []
        for _ in range(int(rng.integers(3, 6))):
            tilt = axis - rng.uniform(0.25, 0.6) * unit_vectors(rng, 1)[0]
            branches.append(tilt / np.linalg.norm(tilt))
        pts_list = []
        dir_list = []
        for i in range(n):
            if i % 3 == 0:  # the main duct, nipple-ward half
                s = rng.uniform(0.0, 0.5) * extent
                pts_list.append(axis * s + rng.normal(0.0, 0.3, 3))
                dir_list.append(axis)
            else:  # branches fan out away from the nipple: the segment widens towards the chest wall
                b = branches[int(rng.integers(len(branches)))]
                s = rng.uniform(0.0, 0.5) * extent
                pts_list.append(-b * s + rng.normal(0.0, 0.3, 3))
                dir_list.append(b)
        pts = np.array(pts_list)
        pts -= pts.mean(axis=0)
        duct_dirs = np.array(dir_list)
    else:  # regional: scattered over a large volume
        extent = rng.uniform(max(lo, 20.0), hi)
        n = int(rng.integers(12, 36))
        u = rng.uniform(-1, 1, size=(4 * n, 3))
        u = u[np.linalg.norm(u, axis=1) <= 1][:n]
        pts = u * np.array([0.5, 0.5, 0.35]) * extent
        n = len(pts)
        duct_dirs = unit_vectors(rng, n)
    if kind == "amorphous":  # many tiny hazy specks
        extra = int(0.3 * n)
        pts = np.concatenate([pts, pts[rng.integers(0, n, extra)] + rng.normal(0, 0.8, (extra, 3))])
        duct_dirs = np.concatenate(
            [duct_dirs, duct_dirs[:extra] if extra <= len(duct_dirs) else unit_vectors(rng, extra)]
        )
        n = len(pts)
    mu = config.calcification_attenuation_per_mm
    blob_speck: list[int] = []
    offsets: list[np.ndarray] = []
    sigmas: list[float] = []
    integrals: list[float] = []
    radius_typ = 0.0
    for i in range(n):
        if kind == "punctate":
            d = rng.uniform(0.25, 0.5)
            parts = [(np.zeros(3), d, np.pi / 6 * d**3)]
        elif kind == "amorphous":
            d = rng.uniform(0.12, 0.3)
            parts = [(np.zeros(3), d * 1.4, 0.5 * np.pi / 6 * d**3)]
        elif kind == "coarse_heterogeneous":
            d = rng.uniform(0.5, 1.0)
            m = int(rng.integers(2, 4))
            parts = [
                (rng.normal(0, 0.25 * d, 3), d * rng.uniform(0.6, 0.9), np.pi / 6 * d**3 / m)
                for _ in range(m)
            ]
        elif kind == "fine_pleomorphic":
            d = rng.uniform(0.15, 0.5)
            elong = rng.uniform(1.0, 2.5)
            direction = unit_vectors(rng, 1)[0]
            m = 1 if elong < 1.4 else 2
            parts = [
                (direction * (j - (m - 1) / 2) * d * 0.5 * elong, d, np.pi / 6 * d**3 / m) for j in range(m)
            ]
        else:  # fine_linear: thin rods along the duct, sometimes branching
            w = rng.uniform(0.12, 0.3)
            length = rng.uniform(0.8, 3.0)
            direction = duct_dirs[i] + rng.normal(0, 0.15, 3)
            direction /= np.linalg.norm(direction)
            m = max(int(np.ceil(length / (0.8 * w))), 2)
            vol = np.pi / 4 * w * w * length / m
            parts = [(direction * (j / (m - 1) - 0.5) * length, w, vol) for j in range(m)]
            d = w
        for offset, size, volume in parts:
            blob_speck.append(i)
            offsets.append(offset)
            sigmas.append(size / 2.6)
            integrals.append(mu * volume)
        radius_typ = max(radius_typ, d / 2)
    return CalcificationGeometry(
        speck_centres=centre + pts,
        blob_speck=np.asarray(blob_speck),
        blob_offsets=np.asarray(offsets),
        blob_sigma=np.asarray(sigmas),
        blob_integral=np.asarray(integrals),
        speck_radius=float(radius_typ),
    )


def sample_asymmetry(rng: np.random.Generator, config: LesionConfig, centre: np.ndarray) -> AsymmetryGeometry:
    diameter = rng.uniform(*config.asymmetry_diameter_mm)
    axes = np.array([1.0, rng.uniform(0.55, 0.9), rng.uniform(0.45, 0.8)]) * diameter / 2
    return AsymmetryGeometry(
        region=Ellipsoid(centre.copy(), axes, random_rotation(rng)),
        strength=float(rng.uniform(0.7, 1.0)),
        texture_bias=float(rng.uniform(1.0, 2.0)),
    )


def sample_distortion(
    rng: np.random.Generator, config: LesionConfig, centre: np.ndarray
) -> DistortionGeometry:
    diameter = rng.uniform(*config.distortion_diameter_mm)
    radius = diameter / 2
    n = int(rng.integers(14, 30))
    dirs = unit_vectors(rng, n)
    starts = centre + dirs * rng.uniform(0.5, 2.5, (n, 1))
    ends = centre + dirs * (radius * rng.uniform(0.55, 1.0, (n, 1)))
    return DistortionGeometry(
        lines=np.stack([starts, ends], axis=1),
        widths=rng.uniform(0.5, 1.1, n),
        depths=rng.uniform(3.0, 6.0, n),
        radius=float(radius),
        retraction=float(rng.uniform(0.35, 0.6)),
    )


def sample_centre(
    rng: np.random.Generator, anatomy: BreastAnatomy, radius: float, in_tail: bool
) -> np.ndarray:
    """A candidate lesion centre: axillary tail, behind the nipple, glandular tissue, or anywhere."""
    shape = anatomy.shape
    if in_tail:
        tail = shape.tail
        for _ in range(50):
            u = rng.uniform(-1, 1, 3)
            if np.linalg.norm(u) > 1:
                continue
            p = tail.center + (u * tail.axes * np.array([0.7, 0.4, 0.4])) @ tail.rotation.T
            if p[0] > radius + 3.0:
                return p
        return tail.center + np.array([radius, 0.0, 0.0])
    if rng.random() < RETROAREOLAR_FRACTION:  # subareolar lesions: just behind the nipple, clear of the skin
        behind = rng.uniform(radius + 4.0, max(radius + 6.0, 20.0))
        return np.array([shape.depth - behind, rng.normal(0.0, 3.0), rng.normal(0.0, 3.0)])
    max_radius = 0.92  # the views' fit checks decide how close to the skin a lesion may lie
    if rng.random() < 0.35:  # tumours arise in glandular tissue
        lobes = anatomy.gland_lobes
        volumes = np.array([np.prod(lobe.axes) for lobe in lobes]) * anatomy.gland_weights
        lobe = lobes[rng.choice(len(lobes), p=volumes / volumes.sum())]
        for _ in range(20):
            u = rng.uniform(-1, 1, 3)
            if np.linalg.norm(u) > 1:
                continue
            p = lobe.center + (u * lobe.axes) @ lobe.rotation.T
            if shape.body_radius(p)[0] <= max_radius:
                return p
    p = sample_in_body(rng, shape, 1, max_radius=max_radius, min_a_fraction=0.1)[0]
    if rng.random() < 0.45:  # the upper outer quadrant holds about half of all cancers
        p[1], p[2] = abs(p[1]), abs(p[2])
    return p


def build_geometry(
    rng: np.random.Generator,
    config: LesionConfig,
    kind: str,
    pathology: str,
    morphology: dict[str, str],
    centre: np.ndarray,
) -> MassGeometry | CalcificationGeometry | AsymmetryGeometry | DistortionGeometry:
    if kind == "mass":
        return sample_mass(rng, config, pathology, morphology)
    if kind == "calcification":
        return sample_calcifications(rng, config, centre, pathology, morphology)
    if kind == "asymmetry":
        return sample_asymmetry(rng, config, centre)
    return sample_distortion(rng, config, centre)


def move_geometry(geometry, old: np.ndarray, new: np.ndarray):
    """Shift a geometry sampled around ``old`` to ``new`` (positions in the breast frame move with it)."""
    delta = new - old
    if isinstance(geometry, CalcificationGeometry):
        geometry.speck_centres = geometry.speck_centres + delta
    elif isinstance(geometry, AsymmetryGeometry):
        geometry.region.center = geometry.region.center + delta
    elif isinstance(geometry, DistortionGeometry):
        geometry.lines = geometry.lines + delta
    return geometry


def scale_geometry(geometry, factor: float):
    """Shrink (or grow) a geometry sampled around the origin; speck sizes stay (they are rigid)."""
    if isinstance(geometry, MassGeometry):
        geometry.axes = geometry.axes * factor
        geometry.spicules = geometry.spicules * factor
    elif isinstance(geometry, CalcificationGeometry):
        geometry.speck_centres = geometry.speck_centres * factor
    elif isinstance(geometry, AsymmetryGeometry):
        geometry.region.axes = geometry.region.axes * factor
    else:
        geometry.lines = geometry.lines * factor
        geometry.radius = geometry.radius * factor
    return geometry


def lesion_size(model_geometry, centre: np.ndarray) -> float:
    g = model_geometry
    if isinstance(g, MassGeometry):
        return g.diameter()
    if isinstance(g, CalcificationGeometry):
        pts = g.speck_centres
        if len(pts) < 2:
            return 2 * g.speck_radius
        d = np.linalg.norm(pts[:, None] - pts[None], axis=2).max()
        return float(d + 2 * g.speck_radius)
    if isinstance(g, AsymmetryGeometry):
        return float(2 * np.max(g.region.axes))
    ends = g.lines[:, 1]
    d = np.linalg.norm(ends[:, None] - ends[None], axis=2).max()
    return float(d)


# ------------------------------------------------------------------------------------------------------------
# rendering in one view
# ------------------------------------------------------------------------------------------------------------
@dataclass
class RenderContext:
    """The state of one view's tissue that lesions read and modify (prepared orientation)."""

    frame: ViewFrame
    gland: np.ndarray  # (H, W) projected glandular thickness, mm (asymmetries add, retraction warps)
    tissue: np.ndarray  # (H, W) tissue path inside the skin, mm
    parenchyma: np.ndarray
    fine: np.ndarray
    prior: np.ndarray
    sharpness: float
    bias: float


@dataclass
class LesionRender:
    """One lesion in one view: its outline mask and the attenuation it adds (prepared pixel grid)."""

    mask_window: tuple[slice, slice]
    mask: np.ndarray  # bool
    layer_window: tuple[slice, slice]
    added: (
        np.ndarray
    )  # float32 attenuation (line integral) to add to the image (zero where it went into the gland)
    signal: np.ndarray  # float32 attenuation change the lesion makes, for its visibility
    centre_mm: np.ndarray  # projection of the 3D centre, prepared mm


def _retract(ctx: RenderContext, centre_mm: np.ndarray, radius_mm: float, strength: float) -> None:
    """Pull the surrounding tissue towards a point (desmoplastic reaction / distortion)."""
    win = ctx.frame.window_around(centre_mm, radius_mm * 2.2)
    if win is None:
        return
    s = ctx.frame.geometry.spacing
    rows = ctx.frame.y_mm[win[0]]
    cols = ctx.frame.x_mm[win[1]]
    dy = rows[:, None] - centre_mm[1]
    dx = cols[None, :] - centre_mm[0]
    r2 = (dx * dx + dy * dy) / (radius_mm * radius_mm)
    factor = 1.0 + strength * np.exp(-r2)
    src_x = (centre_mm[0] + dx * factor) / s - ctx.frame.x_mm[0] / s + 0.5 - 0.5
    src_y = (centre_mm[1] + dy * factor) / s - ctx.frame.y_mm[0] / s + 0.5 - 0.5
    ctx.gland[win] = ndimage.map_coordinates(ctx.gland, [src_y, src_x], order=1, mode="nearest")


def _mm_to_px(frame: ViewFrame, xy_mm: np.ndarray) -> np.ndarray:
    s = frame.geometry.spacing
    return np.column_stack(
        [xy_mm[:, 0] / s - (frame.x_mm[0] / s - 0.5), xy_mm[:, 1] / s - (frame.y_mm[0] / s - 0.5)]
    )


def render_mass(ctx: RenderContext, lesion: LesionModel) -> LesionRender:
    g: MassGeometry = lesion.geometry  # type: ignore[assignment]
    geom = ctx.frame.geometry
    frame = ctx.frame
    s = geom.spacing
    j = geom.jacobian(TUMOUR_STIFFNESS)
    j_inv = np.linalg.inv(j)
    qc = geom.compress(lesion.centre)[0]
    centre_mm = geom.compressed_to_mm(qc[None])[0]
    core_radius = g.core_radius()
    if g.retraction > 0:
        _retract(ctx, centre_mm, core_radius * 1.6, g.retraction)
    reach = np.linalg.norm(j, axis=1) * core_radius * 1.05  # extents along a', t, h
    win = frame.frame_window(
        (qc[0] - reach[0] - 2 * g.blur_mm - 2 * s, qc[0] + reach[0] + 2 * g.blur_mm + 2 * s),
        (qc[1] - reach[1] - 2 * g.blur_mm - 2 * s, qc[1] + reach[1] + 2 * g.blur_mm + 2 * s),
    )
    assert win is not None, "a placed lesion lies inside its view"
    da = frame.a_lin[win].astype(np.float64) - qc[0]
    dt = frame.t[win].astype(np.float64) - qc[1]
    n_h = int(np.clip(np.ceil(2 * reach[2] / (0.7 * s)), 24, 72))
    hs = np.linspace(-reach[2], reach[2], n_h)
    dh = hs[1] - hs[0]
    path = np.zeros(da.shape, np.float64)
    inside = np.zeros(da.shape, bool)
    base = np.stack([da, dt], axis=-1) @ j_inv[:, :2].T  # lesion-frame offset of (da, dt, 0)
    to_principal = g.rotation / g.axes  # p -> ellipsoid-normalized coordinates: p @ to_principal
    for h in hs:
        p = base + h * j_inv[:, 2]
        pe = p @ to_principal
        r = np.sqrt(np.einsum("...i,...i->...", pe, pe))
        d = pe / np.maximum(r, 1e-9)[..., None]
        rho = g.radius_function(d.reshape(-1, 3)).reshape(r.shape)
        path += np.clip((rho - r) / g.edge + 0.5, 0.0, 1.0) * dh
        inside |= r <= rho
    if g.blur_mm > 0:
        path = ndimage.gaussian_filter(path, g.blur_mm / s, mode="constant")
    local_gland = np.clip(ctx.gland[win] / np.maximum(ctx.tissue[win], 1e-3), 0.0, 1.0)
    layer = (path * (g.attenuation - MU_FAT - DELTA_GLAND * local_gland)).astype(np.float32)
    layer_win = win
    if len(g.spicules):
        n_lines, n_points = g.spicules.shape[:2]
        ends_q = qc + (g.spicules.reshape(-1, 3) @ j.T)
        ends_mm = geom.compressed_to_mm(ends_q).reshape(n_lines, n_points, 2)
        spic_reach = float(np.abs(ends_mm - centre_mm).max()) + 3.0
        spicule_win = frame.window_around(centre_mm, spic_reach)
        assert spicule_win is not None
        # Both windows are clipped to the image, so near an edge the spicules' may not hold the mass's: use
        # their union so the mass layer always fits inside.
        layer_win = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(spicule_win, win))
        shape = (layer_win[0].stop - layer_win[0].start, layer_win[1].stop - layer_win[1].start)
        origin_px = np.array([layer_win[1].start, layer_win[0].start], float)
        lines = [_mm_to_px(frame, e) - origin_px for e in ends_mm]
        # Two-point polylines widen into tapered spicules via per-end radii.
        radii = [np.linspace(w / 2, w / 8, n_points) for w in g.spicule_width]
        tubes = draw_tubes(shape, s, lines, radii, sigma_mm=0.35, depth_mm=list(g.spicule_depth))
        full = tubes * np.float32(g.attenuation - MU_FAT)
        r0, c0 = win[0].start - layer_win[0].start, win[1].start - layer_win[1].start
        full[r0 : r0 + layer.shape[0], c0 : c0 + layer.shape[1]] += layer
        layer = full
    return LesionRender(win, inside, layer_win, layer, layer, centre_mm)


def render_calcifications(ctx: RenderContext, lesion: LesionModel) -> LesionRender:
    g: CalcificationGeometry = lesion.geometry  # type: ignore[assignment]
    frame = ctx.frame
    geom = frame.geometry
    s = geom.spacing
    centres_mm = geom.to_mm(g.speck_centres)
    # Specks are rigid: their sub-blob offsets rotate into the view without being compressed.
    off = g.blob_offsets @ geom.rotation.T
    blob_mm = centres_mm[g.blob_speck] + off[:, :1] * geom.normal + off[:, 1:2] * geom.up
    centre_mm = geom.to_mm(lesion.centre)[0]
    margin = 1.0 + g.speck_radius
    lo = np.minimum(blob_mm.min(axis=0), centres_mm.min(axis=0)) - margin - 3 * s
    hi = np.maximum(blob_mm.max(axis=0), centres_mm.max(axis=0)) + margin + 3 * s
    win = frame.window(lo[0], lo[1], hi[0], hi[1])
    assert win is not None
    shape = (win[0].stop - win[0].start, win[1].stop - win[1].start)
    origin_px = np.array([win[1].start, win[0].start], float)
    layer = np.zeros(shape, np.float32)
    add_specks(layer, s, _mm_to_px(frame, blob_mm) - origin_px, g.blob_sigma, g.blob_integral)
    # Outline: convex hull of the specks, widened by the speck size plus 1 mm.
    from skimage.morphology import convex_hull_image

    pts = np.floor(_mm_to_px(frame, centres_mm) - origin_px).astype(int)
    pts[:, 0] = np.clip(pts[:, 0], 0, shape[1] - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, shape[0] - 1)
    seeds = np.zeros(shape, bool)
    seeds[pts[:, 1], pts[:, 0]] = True
    hull = convex_hull_image(seeds) if len(pts) >= 3 else seeds
    mask = ndimage.distance_transform_edt(~hull) * s <= margin
    return LesionRender(win, mask, win, layer, layer, centre_mm)


def render_asymmetry(ctx: RenderContext, lesion: LesionModel) -> LesionRender:
    from .texture import gland_fraction

    g: AsymmetryGeometry = lesion.geometry  # type: ignore[assignment]
    frame = ctx.frame
    geom = frame.geometry
    win, outer = ellipsoid_chord(frame, g.region, margin_mm=2.0)
    assert win is not None
    inner_win, inner = ellipsoid_chord(frame, g.region.scaled(0.65), margin_mm=2.0)
    core_win, core = ellipsoid_chord(frame, g.region.scaled(0.8), margin_mm=2.0)
    profile = 0.55 * outer
    if inner_win is not None:
        r0, c0 = inner_win[0].start - win[0].start, inner_win[1].start - win[1].start
        profile[r0 : r0 + inner.shape[0], c0 : c0 + inner.shape[1]] += 0.45 * inner
    profile = ndimage.gaussian_filter(profile, 2.0 / geom.spacing)
    texture = gland_fraction(
        ctx.parenchyma[win], ctx.fine[win], ctx.prior[win], ctx.sharpness, ctx.bias + g.texture_bias
    )
    free = np.maximum(ctx.tissue[win] - ctx.gland[win], 0.0)
    added = np.minimum(g.strength * profile * (0.35 + 0.65 * texture) * 1.6, 0.85 * free).astype(np.float32)
    ctx.gland[win] += added
    mask = np.zeros(outer.shape, bool)
    if core_win is not None:
        r0, c0 = core_win[0].start - win[0].start, core_win[1].start - win[1].start
        mask[r0 : r0 + core.shape[0], c0 : c0 + core.shape[1]] = core > 0
    centre_mm = geom.to_mm(lesion.centre)[0]
    signal = (added * DELTA_GLAND).astype(np.float32)
    return LesionRender(win, mask, win, np.zeros_like(signal), signal, centre_mm)


def render_distortion(ctx: RenderContext, lesion: LesionModel) -> LesionRender:
    g: DistortionGeometry = lesion.geometry  # type: ignore[assignment]
    frame = ctx.frame
    geom = frame.geometry
    s = geom.spacing
    centre_mm = geom.to_mm(lesion.centre)[0]
    before = None
    win_r = frame.window_around(centre_mm, g.radius * 2.5)
    if win_r is not None:
        before = ctx.gland[win_r].copy()
    _retract(ctx, centre_mm, g.radius * 0.8, g.retraction)
    ends_mm = geom.to_mm(g.lines.reshape(-1, 3)).reshape(-1, 2, 2)
    reach = float(np.abs(ends_mm - centre_mm).max()) + 3.0
    win = frame.window_around(centre_mm, max(reach, g.radius * 2.5))
    assert win is not None
    shape = (win[0].stop - win[0].start, win[1].stop - win[1].start)
    origin_px = np.array([win[1].start, win[0].start], float)
    lines = [_mm_to_px(frame, e) - origin_px for e in ends_mm]
    radii = [np.array([w / 2, w / 5]) for w in g.widths]
    layer = (
        draw_tubes(shape, s, lines, radii, sigma_mm=0.3, depth_mm=list(g.depths))
        * np.float32(DELTA_GLAND * 1.2)
    ).astype(np.float32)
    signal = layer.copy()
    if before is not None and win_r == win:
        signal += np.abs(ctx.gland[win] - before) * np.float32(DELTA_GLAND)
    region = Ellipsoid(lesion.centre.copy(), np.full(3, g.radius * 0.75), np.eye(3))
    mwin, chord = ellipsoid_chord(frame, region)
    assert mwin is not None
    return LesionRender(mwin, chord > 0, win, layer, signal, centre_mm)


def render_lesion(ctx: RenderContext, lesion: LesionModel) -> LesionRender:
    renderer = {
        "mass": render_mass,
        "calcification": render_calcifications,
        "asymmetry": render_asymmetry,
        "distortion": render_distortion,
    }[lesion.kind]
    return renderer(ctx, lesion)


def render_obscuring_tissue(ctx: RenderContext, lesion: LesionModel) -> None:
    """Normal tissue over part of an obscured mass's margin (added to the gland map, not the lesion)."""
    g = lesion.geometry
    if not isinstance(g, MassGeometry) or g.obscuring is None:
        return
    win, chord = ellipsoid_chord(ctx.frame, g.obscuring)
    if win is None:
        return
    free = np.maximum(ctx.tissue[win] - ctx.gland[win], 0.0)
    ctx.gland[win] += np.minimum(0.8 * chord, 0.7 * free).astype(np.float32)


def add_obscuring_tissue(rng: np.random.Generator, lesion: LesionModel) -> None:
    g = lesion.geometry
    if isinstance(g, MassGeometry) and lesion.morphology.get("mass_margin") == "obscured":
        r = float(np.max(g.axes))
        direction = unit_vectors(rng, 1)[0]
        g.obscuring = Ellipsoid(
            lesion.centre + direction * r * 1.1, np.array([r * 0.9, r * 0.7, r * 0.6]), random_rotation(rng)
        )


def view_jacobian_extent(geometry: ViewGeometry, radius: float, stiffness: float = 0.0) -> float:
    """Largest in-plane image extent (mm) of a sphere of ``radius`` in the view."""
    j = geometry.jacobian(stiffness)
    return float(radius * max(np.linalg.norm(j[0]) * (1 + abs(geometry.warp)), np.linalg.norm(j[1])))
