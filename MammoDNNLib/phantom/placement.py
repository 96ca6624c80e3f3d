"""Where lesions go: how many per study and breast, of which kind, and a 3D position that both views can show.

A candidate centre is accepted when, in both views of its breast, the lesion's whole projected extent lies
inside the breast (3 mm from the skin line and in front of the pectoral muscle), it keeps clear of the other
lesions in 3D, and its CC and MLO quadrants are compatible (``vocabulary.QUADRANT_COMPATIBILITY``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .anatomy import BreastAnatomy
from .config import LesionConfig
from .lesions import (
    TUMOUR_STIFFNESS,
    LesionModel,
    add_obscuring_tissue,
    assess_birads,
    build_geometry,
    lesion_size,
    move_geometry,
    sample_centre,
    sample_lesion_type,
    scale_geometry,
    view_jacobian_extent,
)
from .projection import ViewBase
from .regions import quadrant_in_view, quadrants_compatible

log = logging.getLogger(__name__)

SKIN_MARGIN_MM = 3.0
SHRINK_FACTOR = 0.8  # after a quarter of the tries without a place, the lesion shrinks by this much


@dataclass
class LesionPlan:
    kind: str
    pathology: str
    morphology: dict[str, str]


def plan_lesions(rng: np.random.Generator, config: LesionConfig) -> dict[str, list[LesionPlan]]:
    """The lesions of each breast ({"R": [...], "L": [...]}); asymmetries go to one breast only."""
    plans: dict[str, list[LesionPlan]] = {"R": [], "L": []}
    if rng.random() < config.normal_study_fraction:
        return plans
    first = "R" if rng.random() < 0.5 else "L"
    breasts = [first]
    if rng.random() < config.second_breast_probability:
        breasts.append("L" if first == "R" else "R")
    counts = list(config.lesions_per_breast_weights)
    weights = np.array([config.lesions_per_breast_weights[c] for c in counts], float)
    asymmetry_side: str | None = None
    for side in breasts:
        n = int(counts[rng.choice(len(counts), p=weights / weights.sum())])
        for _ in range(n):
            for _attempt in range(20):
                kind, pathology, morphology = sample_lesion_type(rng, config)
                # An asymmetry is a density without counterpart in the other breast: one breast only.
                if kind != "asymmetry" or asymmetry_side in (None, side):
                    break
            else:
                continue
            if kind == "asymmetry":
                asymmetry_side = side
            plans[side].append(LesionPlan(kind, pathology, morphology))
    return plans


def _extent(lesion: LesionModel, base: ViewBase, radius: float) -> float:
    stiffness = TUMOUR_STIFFNESS if lesion.kind == "mass" else 0.0
    return view_jacobian_extent(base.geometry, radius, stiffness)


def _fits(base: ViewBase, centre: np.ndarray, extent: float) -> bool:
    g = base.geometry
    xy = g.to_mm(centre)[0]
    width_mm = g.width_px * g.spacing
    height_mm = g.height_px * g.spacing
    margin = extent + SKIN_MARGIN_MM
    if not (margin <= xy[0] <= width_mm - margin and margin <= xy[1] <= height_mm - margin):
        return False
    col = int(xy[0] / g.spacing)
    row = int(xy[1] / g.spacing)
    if not base.footprint[row, col] or base.pectoral_mask[row, col]:
        return False
    if base.distance[row, col] < margin:
        return False
    a_img = float(np.dot(xy - g.origin, g.normal))
    bulge = max(g.pectoral.bow_mm, 0.0) if g.pectoral is not None else 0.0
    if g.cc_pectoral is not None:
        bulge = g.cc_pectoral.width_mm
    if a_img - extent < SKIN_MARGIN_MM + bulge:
        return False
    # Stay clear of the muscle everywhere within the extent (its border is not exactly the line).
    r = int(np.ceil(margin / g.spacing))
    window = base.pectoral_mask[max(row - r, 0) : row + r + 1, max(col - r, 0) : col + r + 1]
    return not window.any()


def _overlap_in_view(base: ViewBase, lesion: LesionModel, centre: np.ndarray, other: LesionModel) -> bool:
    """Whether two lesions' projected extents would overlap in a view (superimposed lesions are ambiguous)."""
    g = base.geometry
    distance = float(np.linalg.norm(g.to_mm(centre)[0] - g.to_mm(other.centre)[0]))
    return (
        distance
        < _extent(lesion, base, lesion.outline_radius()) + _extent(other, base, other.outline_radius()) + 2.0
    )


def place_breast_lesions(
    rng: np.random.Generator,
    anatomy: BreastAnatomy,
    bases: dict[str, ViewBase],
    plans: list[LesionPlan],
    config: LesionConfig,
    areola_radius_mm: float,
) -> list[LesionModel]:
    """3D lesions of one breast following ``plans``; a lesion finding no valid place is dropped (logged)."""
    side = anatomy.laterality
    cc, mlo = bases[f"{side}-CC"], bases[f"{side}-MLO"]
    placed: list[LesionModel] = []
    for plan in plans:
        in_tail = rng.random() < config.axillary_tail_fraction
        origin = np.zeros(3)
        geometry = build_geometry(rng, config, plan.kind, plan.pathology, plan.morphology, origin)
        lesion = LesionModel(
            id=f"{side}{len(placed) + 1}",
            laterality=side,
            kind=plan.kind,
            pathology=plan.pathology,
            morphology=dict(plan.morphology),
            birads=assess_birads(rng, plan.kind, plan.morphology),
            size_mm=0.0,
            centre=origin,
            in_axillary_tail=False,
            geometry=geometry,
        )
        accepted = None
        tries = config.max_placement_tries
        for attempt in range(tries):
            if attempt % (tries // 4) == 0:
                if attempt:  # no room for it: a smaller lesion of the same kind
                    geometry = scale_geometry(geometry, SHRINK_FACTOR)
                radius = lesion.bounding_radius()
                extents = {
                    base.geometry.key: _extent(lesion, base, lesion.outline_radius()) for base in (cc, mlo)
                }
            tail = in_tail and attempt < tries // 2
            centre = sample_centre(rng, anatomy, lesion.outline_radius(), tail)
            if not all(_fits(base, centre, extents[base.geometry.key]) for base in (cc, mlo)):
                continue
            if any(
                np.linalg.norm(centre - other.centre) < radius + other.bounding_radius() + 3.0
                for other in placed
            ):
                continue
            if any(_overlap_in_view(base, lesion, centre, other) for base in (cc, mlo) for other in placed):
                continue
            q_cc = quadrant_in_view(cc.geometry, cc.nipple_mm, cc.geometry.to_mm(centre)[0], areola_radius_mm)
            q_mlo = quadrant_in_view(
                mlo.geometry, mlo.nipple_mm, mlo.geometry.to_mm(centre)[0], areola_radius_mm
            )
            if not quadrants_compatible(q_cc, q_mlo):
                continue
            accepted = centre
            break
        if accepted is None:
            log.debug("no place found for a %s of %.0f mm in breast %s; dropped", plan.kind, 2 * radius, side)
            continue
        lesion.geometry = move_geometry(geometry, origin, accepted)
        lesion.centre = accepted
        lesion.size_mm = lesion_size(lesion.geometry, accepted)
        lesion.in_axillary_tail = bool(anatomy.shape.body_radius(accepted)[0] > 1.0)
        add_obscuring_tissue(rng, lesion)
        placed.append(lesion)
    return placed
