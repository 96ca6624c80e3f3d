"""The 3D breast model and its compression into the CC and MLO views.

Breast frame (one per breast, millimetres, uncompressed): ``a`` anterior, from the chest wall (``a = 0``) to
the nipple tip (``a = depth``); ``l`` lateral, positive towards the patient's side (the axilla) for either
breast; ``s`` superior. The nipple axis is ``l = s = 0``. The breast body is a piecewise ellipsoid (different
half-extents laterally/medially and superiorly/inferiorly) ending in a small nipple; an ellipsoidal axillary
tail extends superolaterally from its posterior part.

Compression of a view takes the breast frame to the view's *linear compressed frame* ``(a', t, h)``:
``a' = ea a`` along the nipple axis, ``t`` the in-plane transverse axis (CC: lateral; MLO: the oblique
superolateral axis ``l sin(phi) + s cos(phi)``), ``h`` the compression (beam) axis scaled to the paddle
thickness. Tissue spreads in the plane as it is flattened (``ea = k**-0.22``, ``et = k**-0.30`` for thickness
ratio ``k``). A mild monotone warp of ``a'`` (different per view) makes the CC and MLO depths of one point
differ slightly, as they do in real pairs.

Image placement (the *prepared* orientation: chest wall on the left; right-breast images are mirrored when
they are written): a point of the compressed frame lands at ``origin + warp(a') * normal + t * up`` (mm). On
CC the chest-wall edge is the image's left edge and ``up`` is the image's up (lateral at the top). On MLO the
pectoral line (``a' = 0``) runs from the top edge down to the chest-wall edge; ``normal`` is perpendicular to
it (the posterior nipple line) and ``up`` runs along it towards the axilla.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import AnatomyConfig

EXPANSION_EXPONENT_A = 0.22
EXPANSION_EXPONENT_T = 0.30


def random_rotation(rng: np.random.Generator, max_angle_deg: float | None = None) -> np.ndarray:
    """A random proper rotation; with ``max_angle_deg``, one by at most that angle about a random axis."""
    if max_angle_deg is None:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        return q
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class Ellipsoid:
    """``{p : (p - center)^T Q (p - center) <= 1}`` with ``Q = R diag(axes**-2) R^T``."""

    center: np.ndarray  # (3,)
    axes: np.ndarray  # (3,) half-lengths
    rotation: np.ndarray  # (3, 3), columns are the principal directions

    def quadric(self) -> np.ndarray:
        return (self.rotation / self.axes**2) @ self.rotation.T

    def scaled(self, factor: float) -> "Ellipsoid":
        return Ellipsoid(self.center.copy(), self.axes * factor, self.rotation.copy())

    def to_dict(self) -> dict:
        return {
            "center": self.center.tolist(),
            "axes": self.axes.tolist(),
            "rotation": self.rotation.tolist(),
        }


@dataclass
class BreastShape:
    """The uncompressed breast: piecewise ellipsoid body, nipple and axillary tail (breast frame, mm)."""

    depth: float  # chest wall to nipple tip
    nipple_radius: float
    lateral: float
    medial: float
    superior: float
    inferior: float
    tail: Ellipsoid
    a_exponent: float = 2.0  # < 2: more conical towards the nipple

    @property
    def body_depth(self) -> float:
        return self.depth - self.nipple_radius

    def body_radius(self, p: np.ndarray) -> np.ndarray:
        """Normalized radius of points in the body (<= 1 inside); infinite behind the chest wall."""
        p = np.atleast_2d(p)
        a = np.abs(p[:, 0]) / self.body_depth
        lat = p[:, 1] / np.where(p[:, 1] >= 0, self.lateral, self.medial)
        sup = p[:, 2] / np.where(p[:, 2] >= 0, self.superior, self.inferior)
        r = np.sqrt(a**self.a_exponent + lat**2 + sup**2)
        return np.where(p[:, 0] >= 0, r, np.inf)

    def to_dict(self) -> dict:
        return {
            "depth_mm": self.depth,
            "nipple_radius_mm": self.nipple_radius,
            "lateral_mm": self.lateral,
            "medial_mm": self.medial,
            "superior_mm": self.superior,
            "inferior_mm": self.inferior,
            "anterior_exponent": self.a_exponent,
            "axillary_tail": self.tail.to_dict(),
        }


@dataclass
class Vessel:
    points: np.ndarray  # (N, 3) breast frame
    radii: np.ndarray  # (N,) mm


@dataclass
class BreastAnatomy:
    """One breast: shape, fibroglandular tissue, vessels, and the parameters its texture uses."""

    laterality: str
    shape: BreastShape
    density: str
    percent_density_target: float
    gland_lobes: list[Ellipsoid]
    gland_weights: np.ndarray
    vessels: list[Vessel]
    scattered_specks: np.ndarray  # (M, 4): position (3) and diameter, benign isolated calcifications
    skin_mm: float
    subcutaneous_fat_mm: float
    retromammary_fat_mm: float
    texture_sharpness: float
    radial_weight: float
    lobule_coverage: float
    lobule_weight: float
    strand_strength: float
    cc_pectoral: bool


@dataclass
class Patient:
    age: int
    density: str
    percent_density_target: float
    size_factor: float


def sample_patient(rng: np.random.Generator, config: AnatomyConfig) -> Patient:
    keys = list(config.density_prevalence)
    weights = np.array([config.density_prevalence[k] for k in keys], dtype=float)
    density = keys[rng.choice(len(keys), p=weights / weights.sum())]
    lo, hi = config.percent_density_target[density]
    mean_age = {"A": 64.0, "B": 59.0, "C": 53.0, "D": 48.0}[density]
    age = int(np.clip(round(rng.normal(mean_age, 7.0)), 40, 85))
    # Fatty breasts tend to be larger.
    size = float(
        np.exp(rng.normal({"A": 0.10, "B": 0.04, "C": -0.03, "D": -0.08}[density], config.size_factor_sigma))
    )
    return Patient(
        age=age, density=density, percent_density_target=float(rng.uniform(lo, hi)), size_factor=size
    )


def sample_breast(
    rng: np.random.Generator, config: AnatomyConfig, patient: Patient, laterality: str
) -> BreastAnatomy:
    """One breast of ``patient`` (both share size and density, with a few per cent of asymmetry)."""
    size = patient.size_factor * float(np.exp(rng.normal(0.0, 0.03)))

    def span(bounds: tuple[float, float]) -> float:
        return float(np.clip(rng.uniform(*bounds) * size, bounds[0] * 0.75, bounds[1] * 1.25))

    depth = span(config.depth_mm)
    half_width = span(config.half_width_mm)
    half_height = span(config.half_height_mm)
    lateral = half_width * rng.uniform(1.0, 1.15)
    medial = half_width * rng.uniform(0.85, 1.0)
    superior = half_height * rng.uniform(0.85, 1.0)
    inferior = half_height * rng.uniform(1.0, 1.2)  # the breast hangs
    nipple_radius = float(rng.uniform(3.0, 5.5))
    tail = _sample_tail(rng, depth - nipple_radius, lateral, superior)
    shape = BreastShape(
        depth,
        nipple_radius,
        lateral,
        medial,
        superior,
        inferior,
        tail,
        a_exponent=float(rng.uniform(1.6, 2.2)),
    )

    pd_target = float(np.clip(patient.percent_density_target + rng.normal(0.0, 0.015), 0.02, 0.97))
    # Dense breasts have glandular tissue close to the skin; fatty ones a thick subcutaneous fat layer.
    lo, hi = config.subcutaneous_fat_mm
    scale = {"A": 1.3, "B": 1.0, "C": 0.75, "D": 0.45}[patient.density]
    subcutaneous = float(rng.uniform(lo, hi) * scale)
    lobes, weights = _sample_gland(rng, shape, patient.density, subcutaneous)
    vessels = _sample_vessels(rng, shape, config.vessels_per_breast)
    specks = np.zeros((0, 4))
    if rng.random() < config.scattered_calcification_probability:
        n = int(rng.integers(1, 6))
        pos = sample_in_body(rng, shape, n, max_radius=0.85)
        specks = np.column_stack([pos, rng.uniform(0.3, 0.9, n)])
    return BreastAnatomy(
        laterality=laterality,
        shape=shape,
        density=patient.density,
        percent_density_target=pd_target,
        gland_lobes=lobes,
        gland_weights=weights,
        vessels=vessels,
        scattered_specks=specks,
        skin_mm=float(rng.uniform(*config.skin_thickness_mm)),
        subcutaneous_fat_mm=subcutaneous,
        retromammary_fat_mm=float(rng.uniform(1.5, 5.0)),
        texture_sharpness=float(rng.uniform(0.9, 1.6)),
        radial_weight=float(rng.uniform(0.6, 0.9)),
        lobule_coverage=float(rng.uniform(0.3, 0.7)),
        lobule_weight=float(rng.uniform(0.4, 0.8)),
        strand_strength=float(rng.uniform(0.05, 0.14)),
        cc_pectoral=bool(rng.random() < config.cc_pectoral_probability),
    )


def sample_in_body(
    rng: np.random.Generator, shape: BreastShape, n: int, max_radius: float = 0.8, min_a_fraction: float = 0.0
) -> np.ndarray:
    """``n`` points uniformly inside the body scaled by ``max_radius`` (rejection sampling)."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        m = max(4 * n, 16)
        u = rng.uniform(-1, 1, size=(m, 3))
        u[:, 0] = np.abs(u[:, 0])
        u = u[np.linalg.norm(u, axis=1) <= 1.0] * max_radius
        p = np.column_stack(
            [
                u[:, 0] * shape.body_depth,
                u[:, 1] * np.where(u[:, 1] >= 0, shape.lateral, shape.medial),
                u[:, 2] * np.where(u[:, 2] >= 0, shape.superior, shape.inferior),
            ]
        )
        keep = (p[:, 0] >= min_a_fraction * shape.depth) & (shape.body_radius(p) <= max_radius)
        out.append(p[keep])
    return np.concatenate(out)[:n]


def _sample_tail(rng: np.random.Generator, body_depth: float, lateral: float, superior: float) -> Ellipsoid:
    """The axillary tail: superolateral, posterior, elongated towards the axilla."""
    angle = np.deg2rad(rng.uniform(35.0, 55.0))  # above the lateral direction
    direction = np.array([0.0, np.cos(angle), np.sin(angle)])
    boundary = 1.0 / np.sqrt((np.cos(angle) / lateral) ** 2 + (np.sin(angle) / superior) ** 2)
    length = rng.uniform(0.35, 0.5) * boundary
    centre = np.array([rng.uniform(0.22, 0.3) * body_depth, 0.0, 0.0]) + direction * (boundary * 0.82)
    across = rng.uniform(0.28, 0.38) * boundary
    along_a = rng.uniform(0.18, 0.26) * body_depth + 8.0
    third = np.cross(direction, [1.0, 0.0, 0.0])
    rotation = np.column_stack([direction, [1.0, 0.0, 0.0], third])
    return Ellipsoid(centre, np.array([length, along_a, across]), rotation)


def _sample_gland(
    rng: np.random.Generator, shape: BreastShape, density: str, subcutaneous_mm: float
) -> tuple[list[Ellipsoid], np.ndarray]:
    """Fibroglandular lobes: a retroareolar cone biased to the upper outer quadrant, broken into sub-lobes."""
    extent = {"A": 0.8, "B": 0.9, "C": 0.97, "D": 1.0}[density]
    n_sub = int(rng.integers(*{"A": (3, 6), "B": (5, 9), "C": (7, 11), "D": (9, 13)}[density]))
    width = 0.5 * (shape.lateral + shape.medial)
    height = 0.5 * (shape.superior + shape.inferior)
    lobes: list[Ellipsoid] = []
    weights: list[float] = []
    main = Ellipsoid(
        np.array([0.42 * shape.body_depth, 0.12 * shape.lateral, 0.06 * shape.superior]),
        np.array([0.45 * shape.body_depth, 0.75 * width, 0.7 * height]) * extent,
        random_rotation(rng, 12.0),
    )
    candidates: list[tuple[Ellipsoid, float]] = [(main, 1.0)]
    for _ in range(n_sub):
        centre = sample_in_body(rng, shape, 1, max_radius=0.72 * extent + 0.1, min_a_fraction=0.08)[0]
        # Upper outer quadrant bias: pull some lobes superolaterally.
        if rng.random() < 0.4:
            centre[1] = abs(centre[1])
            centre[2] = abs(centre[2]) * 0.8
        axes = np.array(
            [
                rng.uniform(0.18, 0.38) * shape.body_depth,
                rng.uniform(0.16, 0.36) * width,
                rng.uniform(0.16, 0.36) * height,
            ]
        ) * (0.7 + 0.4 * extent)
        candidates.append(
            (Ellipsoid(centre, axes, random_rotation(rng, 35.0)), float(rng.uniform(0.45, 0.9)))
        )
    # Lobes may reach into the subcutaneous fat: the projection clips glandular tissue to the space inside it.
    for lobe, weight in candidates:
        lobes.append(lobe)
        weights.append(weight)
    if (
        rng.random() < 0.5
    ):  # glandular tissue in the axillary tail (inside the tail, which lies outside the body)
        tail = shape.tail
        lobes.append(Ellipsoid(tail.center.copy(), tail.axes * 0.55, tail.rotation.copy()))
        weights.append(0.6)
    return lobes, np.asarray(weights)


def _sample_vessels(rng: np.random.Generator, shape: BreastShape, count: tuple[int, int]) -> list[Vessel]:
    vessels = []
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        n = 48
        u = np.linspace(0.0, 1.0, n)
        angle = rng.uniform(0, 2 * np.pi)
        if rng.random() < 0.6:  # lateral thoracic vessels enter superolaterally
            angle = rng.uniform(0.0, np.pi / 2)
        r0 = rng.uniform(0.35, 0.75)
        start = np.array([0.03, r0 * np.cos(angle), r0 * np.sin(angle)])
        end = np.array([rng.uniform(0.7, 0.9), rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)])
        path = start[None] + (end - start)[None] * u[:, None]
        for k in (1, 2, 3):  # smooth tortuosity
            amp = rng.normal(0, 0.05 / k, size=2)
            phase = rng.uniform(0, 2 * np.pi, size=2)
            path[:, 1] += amp[0] * np.sin(np.pi * k * u * 2 + phase[0])
            path[:, 2] += amp[1] * np.sin(np.pi * k * u * 2 + phase[1])
        radius_norm = np.linalg.norm(path, axis=1)
        path[:, 1:] *= np.minimum(1.0, 0.9 / np.maximum(radius_norm, 1e-6))[:, None]
        points = np.column_stack(
            [
                path[:, 0] * shape.body_depth,
                path[:, 1] * np.where(path[:, 1] >= 0, shape.lateral, shape.medial),
                path[:, 2] * np.where(path[:, 2] >= 0, shape.superior, shape.inferior),
            ]
        )
        r_start = rng.uniform(1.0, 1.8)
        radii = r_start * (1.0 - 0.65 * u)
        vessels.append(Vessel(points, radii))
    return vessels


@dataclass
class Pectoral:
    """The pectoralis major on an MLO view (prepared orientation, mm)."""

    top: tuple[float, float]  # where the pectoral line leaves the top edge
    edge: tuple[float, float]  # where it meets the chest-wall edge
    thickness_fraction: float  # of the compressed thickness, reached deep behind the line
    decay_mm: float
    bow_mm: float  # the muscle's anterior border bulges this much beyond the straight line at mid-length


@dataclass
class CcPectoral:
    """A sliver of pectoral muscle at the chest-wall edge of a CC view."""

    width_mm: float
    half_height_mm: float
    centre_t: float
    thickness_fraction: float


@dataclass
class ViewGeometry:
    """How one view sees one breast: compression, placement on the detector, landmarks."""

    key: str
    laterality: str
    view: str
    spacing: float  # mm per pixel, square
    width_px: int
    height_px: int
    rotation: np.ndarray  # (3, 3): rows are the a, t, h axes in the breast frame
    scale: np.ndarray  # (3,): ea, et, k
    h_center: float  # uncompressed h-coordinate of the paddle mid-plane
    thickness: float  # compressed thickness, mm
    edge_radius: float  # in-plane width of the rounded periphery, mm
    body_depth: float  # compressed a-extent of the body (without the nipple)
    nipple_depth: float  # compressed a' of the nipple tip
    nipple_bump: float  # compressed radius of the nipple
    body_half_widths: tuple[
        float, float
    ]  # compressed t-extents of the body (superior/lateral side, other side)
    a_exponent: float  # footprint exponent along the nipple axis (the body's)
    exponents: tuple[float, float]  # footprint exponents across it (superior/lateral side, other side)
    warp: float
    origin: (
        np.ndarray
    )  # (2,) prepared mm, the foot of the posterior nipple line on the chest wall/pectoral line
    normal: np.ndarray  # (2,) unit, towards the nipple
    up: np.ndarray  # (2,) unit, towards the superior (MLO) / lateral (CC) side
    pectoral: Pectoral | None = None
    cc_pectoral: CcPectoral | None = None
    # MLO: the axillary extension's outline anchors in the linear compressed (a', t) frame
    axilla_anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    tail_shadow: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros(2), np.eye(2)))

    @property
    def flip(self) -> bool:
        """Right-breast images are mirrored so that their chest wall is on the right image edge."""
        return self.laterality == "R"

    @property
    def size(self) -> tuple[int, int]:
        return self.width_px, self.height_px

    # -- breast frame -> linear compressed frame -> image ----------------------------------------------------
    def jacobian(self, stiffness: float = 0.0) -> np.ndarray:
        """Linear map from breast-frame offsets to compressed-frame offsets (a', t, h).

        ``stiffness`` in [0, 1] blends towards a rigid map: tumours deform less than fat under compression.
        """
        return (self.scale ** (1.0 - stiffness))[:, None] * self.rotation

    def compress(self, p: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(p) @ self.jacobian().T
        q[:, 2] -= self.scale[2] * self.h_center
        return q

    def warp_a(self, a: np.ndarray) -> np.ndarray:
        """Monotone warp of the compressed a' coordinate; fixes the chest wall (0) and the nipple tip."""
        length = self.nipple_depth
        u = np.asarray(a, dtype=np.float64) / length
        d = self.warp
        inside = u + d * u * (1.0 - u)
        below = (1.0 + d) * u
        above = 1.0 + (1.0 - d) * (u - 1.0)
        return length * np.where(u < 0, below, np.where(u > 1, above, inside))

    def unwarp_a(self, a_img: np.ndarray) -> np.ndarray:
        a_img = np.asarray(a_img)
        dtype = a_img.dtype if a_img.dtype == np.float32 else np.float64
        v = a_img.astype(dtype, copy=False) / np.asarray(self.nipple_depth, dtype)
        d = np.asarray(self.warp, dtype)
        if abs(self.warp) < 1e-9:
            inside = v
        else:
            inside = ((1 + d) - np.sqrt(np.maximum((1 + d) ** 2 - 4 * d * v, 0))) / (2 * d)
        below = v / (1 + d)
        above = 1 + (v - 1) / (1 - d)
        out = np.where(v < 0, below, np.where(v > 1, above, inside)) * np.asarray(self.nipple_depth, dtype)
        return out.astype(dtype, copy=False)

    def compressed_to_mm(self, q: np.ndarray) -> np.ndarray:
        """Compressed (a', t[, h]) -> prepared image position in mm."""
        q = np.atleast_2d(q)
        a_img = self.warp_a(q[:, 0])
        return self.origin + a_img[:, None] * self.normal + q[:, 1:2] * self.up

    def to_mm(self, p: np.ndarray) -> np.ndarray:
        """Breast-frame points -> prepared image position in mm."""
        return self.compressed_to_mm(self.compress(p))

    def mm_to_frame(self, x_mm: np.ndarray, y_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared image positions (mm) -> (warped a', t)."""
        dx = x_mm - self.origin[0]
        dy = y_mm - self.origin[1]
        return dx * self.normal[0] + dy * self.normal[1], dx * self.up[0] + dy * self.up[1]

    def prepared_to_original_px(self, xy_mm: np.ndarray) -> np.ndarray:
        """Prepared mm -> original pixel coordinates (pixel edges; mirrored for right breasts)."""
        xy = np.atleast_2d(xy_mm) / self.spacing
        if self.flip:
            xy = np.column_stack([self.width_px - xy[:, 0], xy[:, 1]])
        return xy


def compression_scales(k: float) -> tuple[float, float]:
    return k ** (-EXPANSION_EXPONENT_A), k ** (-EXPANSION_EXPONENT_T)


def view_rotation(view: str, mlo_angle_rad: float) -> np.ndarray:
    if view == "CC":
        return np.eye(3)
    sp, cp = np.sin(mlo_angle_rad), np.cos(mlo_angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, sp, cp], [0.0, cp, -sp]])


def compressed_extents(
    shape: BreastShape, view: str, mlo_angle_rad: float
) -> tuple[float, float, float, float]:
    """(h range low, h range high, t half-extent on the + side, on the - side) of the uncompressed body."""
    if view == "CC":
        return -shape.inferior, shape.superior, shape.lateral, shape.medial
    sp, cp = np.sin(mlo_angle_rad), np.cos(mlo_angle_rad)
    h_hi = float(np.hypot(shape.lateral * cp, shape.inferior * sp))
    h_lo = -float(np.hypot(shape.medial * cp, shape.superior * sp))
    t_plus = float(np.hypot(shape.lateral * sp, shape.superior * cp))
    t_minus = float(np.hypot(shape.medial * sp, shape.inferior * cp))
    return h_lo, h_hi, t_plus, t_minus


@dataclass
class ViewCompression:
    """The sampled acquisition parameters of one view, before it is placed on the detector."""

    view: str
    thickness: float
    mlo_angle_rad: float
    warp: float
    exponents: tuple[float, float]
    axilla_fraction: float
    edge_radius: float
    pectoral_angle_rad: float
    pectoral_foot_fraction: float
    nipple_height_fraction: float
    muscle_fraction: float
    muscle_decay_mm: float
    muscle_bow_mm: float
    force_n: float


def sample_compression(
    rng: np.random.Generator, config: AnatomyConfig, shape: BreastShape, view: str, cc_thickness: float | None
) -> ViewCompression:
    if view == "CC":
        height = shape.superior + shape.inferior
        thickness = float(np.clip(height * rng.uniform(0.34, 0.5), *config.compressed_thickness_mm))
    else:
        assert cc_thickness is not None
        thickness = float(
            np.clip(
                cc_thickness + rng.uniform(*config.mlo_extra_thickness_mm),
                config.compressed_thickness_mm[0],
                config.compressed_thickness_mm[1] + 8.0,
            )
        )
    return ViewCompression(
        view=view,
        thickness=thickness,
        mlo_angle_rad=float(np.deg2rad(rng.uniform(*config.mlo_angle_deg))),
        warp=float(rng.uniform(-config.depth_warp, config.depth_warp)),
        # Transverse superellipse exponents (superior/lateral side, other side): the MLO breast hangs, with a
        # straighter upper contour and a fuller lower one.
        exponents=(
            (float(rng.uniform(1.8, 2.4)), float(rng.uniform(1.8, 2.4)))
            if view == "CC"
            else (float(rng.uniform(1.6, 2.0)), float(rng.uniform(1.8, 2.4)))
        ),
        axilla_fraction=float(rng.uniform(0.3, 0.6)),
        edge_radius=float(thickness * 0.5 * rng.uniform(0.8, 1.3)),
        pectoral_angle_rad=float(np.deg2rad(rng.uniform(*config.pectoral_angle_deg))),
        pectoral_foot_fraction=float(rng.uniform(0.6, 1.02)),
        nipple_height_fraction=float(rng.uniform(0.45, 0.6)),
        muscle_fraction=float(rng.uniform(0.6, 0.85)),
        muscle_decay_mm=float(rng.uniform(2.0, 6.0)),
        muscle_bow_mm=float(rng.uniform(-1.0, 3.0)),
        force_n=float(rng.uniform(60.0, 150.0)),
    )


def place_view(
    anatomy: BreastAnatomy,
    compression: ViewCompression,
    spacing: float,
    detector_mm: tuple[float, float],
    rng: np.random.Generator,
) -> ViewGeometry:
    """Compress ``anatomy`` as ``compression`` says and place it on a detector of ``detector_mm`` (w, h)."""
    shape = anatomy.shape
    view = compression.view
    rotation = view_rotation(view, compression.mlo_angle_rad)
    h_lo, h_hi, t_plus, t_minus = compressed_extents(shape, view, compression.mlo_angle_rad)
    k = compression.thickness / (h_hi - h_lo)
    ea, et = compression_scales(k)
    det_w, det_h = detector_mm
    # A breast too deep for the detector is spread less (the technologist would have positioned it so).
    max_nipple = 0.9 * det_w
    if ea * shape.depth > max_nipple:
        ea = max_nipple / shape.depth
    scale = np.array([ea, et, k])
    nipple_depth = ea * shape.depth
    body_depth = ea * shape.body_depth
    half_widths = (et * t_plus, et * t_minus)
    width_px = int(round(det_w / spacing))
    height_px = int(round(det_h / spacing))

    pectoral = None
    cc_pectoral = None
    if view == "CC":
        centre = 0.5 * det_h + 0.5 * (half_widths[0] - half_widths[1]) + rng.normal(0.0, 0.03 * det_h)
        lo = half_widths[0] + 8.0
        hi = det_h - half_widths[1] - 8.0
        if lo <= hi:
            centre = float(np.clip(centre, lo, hi))
        else:  # taller than the detector: cut both ends about evenly
            centre = 0.5 * (lo + hi)
        origin = np.array([0.0, centre])
        normal = np.array([1.0, 0.0])
        up = np.array([0.0, -1.0])
        if anatomy.cc_pectoral:
            cc_pectoral = CcPectoral(
                width_mm=float(rng.uniform(3.0, 8.0)),
                half_height_mm=float(rng.uniform(20.0, 50.0)),
                centre_t=float(rng.uniform(-10.0, 25.0)),
                thickness_fraction=float(rng.uniform(0.8, 1.0)),
            )
    else:
        psi = compression.pectoral_angle_rad
        normal = np.array([np.cos(psi), np.sin(psi)])
        up = np.array([np.sin(psi), -np.cos(psi)])
        line_dir = -up  # from the top point down towards the chest-wall edge
        # Good positioning: the muscle reaches down to about the nipple level, so the foot of the posterior
        # nipple line lies on the visible muscle border, a fraction f of the way from the top edge to the
        # apex.
        f = compression.pectoral_foot_fraction
        y_nipple = max(compression.nipple_height_fraction * det_h, nipple_depth * normal[1] + 35.0)
        for _ in range(60):
            x_top = (y_nipple - nipple_depth * normal[1]) * np.tan(psi) / f
            origin = np.array([x_top, 0.0]) + f * (x_top / np.sin(psi)) * line_dir
            nipple = origin + nipple_depth * normal
            lowest = origin[1] + np.hypot(body_depth * normal[1], half_widths[1] * up[1]) + 4.0
            right = origin[0] + np.hypot(body_depth * normal[0], half_widths[0] * up[0])
            if lowest > det_h - 6.0:
                y_nipple -= 3.0
            elif max(nipple[0], right) > det_w - 8.0 and f < 1.1:
                f += 0.02  # move the breast towards the chest-wall edge
            else:
                break
        x_top = float(max(x_top, 5.0))
        y_edge = x_top / np.tan(psi)
        pectoral = Pectoral(
            top=(x_top, 0.0),
            edge=(0.0, float(y_edge)),
            thickness_fraction=compression.muscle_fraction,
            decay_mm=compression.muscle_decay_mm,
            bow_mm=compression.muscle_bow_mm,
        )
    geometry = ViewGeometry(
        key=f"{anatomy.laterality}-{view}",
        laterality=anatomy.laterality,
        view=view,
        spacing=spacing,
        width_px=width_px,
        height_px=height_px,
        rotation=rotation,
        scale=scale,
        h_center=0.5 * (h_hi + h_lo),
        thickness=compression.thickness,
        edge_radius=compression.edge_radius,
        body_depth=body_depth,
        nipple_depth=nipple_depth,
        nipple_bump=ea * shape.nipple_radius,
        body_half_widths=half_widths,
        a_exponent=shape.a_exponent,
        exponents=compression.exponents,
        warp=compression.warp,
        origin=origin,
        normal=normal,
        up=up,
        pectoral=pectoral,
        cc_pectoral=cc_pectoral,
    )
    geometry.tail_shadow = shadow_ellipse(geometry, shape.tail)
    if pectoral is not None:
        # The skin line of the axilla leaves the top edge some way anterior of the muscle and runs down to the
        # breast body; beyond the top edge the body continues towards the axilla.
        top_skin = np.array([pectoral.top[0] + compression.axilla_fraction * nipple_depth, 0.0])
        beyond = top_skin + 60.0 * np.array([0.45, -1.0]) / np.hypot(0.45, 1.0)
        line_far = np.asarray(pectoral.top) + 60.0 * up
        anchors_mm = np.array([top_skin, beyond, line_far])
        a_img, t = geometry.mm_to_frame(anchors_mm[:, 0], anchors_mm[:, 1])
        geometry.axilla_anchors = np.column_stack([geometry.unwarp_a(a_img), t])
    return geometry


def compressed_quadric(
    geometry: ViewGeometry, ellipsoid: Ellipsoid, stiffness: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and quadric of an ellipsoid in the view's linear compressed frame."""
    j = geometry.jacobian(stiffness)
    centre = geometry.compress(ellipsoid.center)[0]
    j_inv = np.linalg.inv(j)
    quadric = j_inv.T @ ellipsoid.quadric() @ j_inv
    return centre, quadric


def shadow_ellipse(geometry: ViewGeometry, ellipsoid: Ellipsoid) -> tuple[np.ndarray, np.ndarray]:
    """The ellipse an ellipsoid projects to in the (a', t) plane: centre and 2x2 quadric."""
    centre, m = compressed_quadric(geometry, ellipsoid)
    m2 = m[:2, :2] - np.outer(m[:2, 2], m[:2, 2]) / m[2, 2]
    return centre[:2], m2
