"""Matcher candidates and pair features on scenes whose geometry and intensities are constructed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from MammoDNNLib.findings import Finding
from MammoDNNLib.geometry import LesionMask, Transform
from MammoDNNLib.landmarks import Landmarks, LineEstimate, PointEstimate, geometric_depth
from MammoDNNLib.matching.features import (
    FEATURE_INDEX,
    FEATURE_NAMES,
    LBP_BINS,
    MatchCandidate,
    ViewContext,
    make_candidate,
    pair_feature_matrix,
    pair_features,
)


def _measure(spacing: float, texture: bool = False) -> MatchCandidate:
    context, finding, _ = _scene(spacing, texture)
    return make_candidate(finding, context)


def _scene(spacing: float, texture: bool = False, key: str = "R-CC"):
    """A 100 x 150 mm view: breast = half disk of radius 70 mm on the left edge (nipple at (70, 75) mm), gray
    0.3; lesion = disk of radius 5 mm centred at (35, 50) mm, gray 0.8 (or a 0.6/1.0 checkerboard of 1 mm)."""
    rows, cols = int(round(100 / spacing)), int(round(150 / spacing))
    yy, xx = (np.mgrid[0:rows, 0:cols] + 0.5) * spacing  # pixel centres, mm
    breast = xx**2 + (yy - 75) ** 2 < 70**2
    lesion = (xx - 35) ** 2 + (yy - 50) ** 2 < 5**2
    image = np.where(breast, 0.3, 0.0).astype(np.float32)
    if texture:
        checker = ((np.floor(xx) + np.floor(yy)) % 2).astype(np.float32)
        image[lesion] = (0.6 + 0.4 * checker)[lesion]
    else:
        image[lesion] = 0.8
    landmarks = Landmarks(
        nipple=PointEstimate((70 / spacing, 75 / spacing), "constructed", 1.0),
        pectoral=None,
        chest_wall=LineEstimate(((0.0, 0.0), (0.0, float(rows))), "constructed", 1.0),
        spacing=(spacing, spacing),
    )
    context = ViewContext(key, image, breast, Transform.identity(cols, rows), spacing, landmarks)
    mask = LesionMask.from_full(lesion)
    finding = Finding(id="f1", view_key=key, type="mass", score=0.7, box=mask.box, mask=mask)
    return context, finding, mask


def test_candidate_geometry_matches_the_construction():
    context, finding, mask = _scene(0.5)
    c = make_candidate(finding, context)
    # Lesion centre (35, 50) mm; nipple (70, 75) mm; chest wall x = 0.
    assert c.center == pytest.approx((70.0, 100.0), abs=1e-9)
    assert c.depth == pytest.approx(0.5)
    assert c.depth == pytest.approx(geometric_depth(c.center, context.landmarks, "CC"))
    assert c.depth_mm == pytest.approx(35.0)
    assert c.nipple_distance_mm == pytest.approx(math.hypot(35, 25))
    assert c.offset_mm == pytest.approx(25.0)  # above the nipple axis: towards the top of the image
    assert c.area_mm2 == pytest.approx(mask.area * 0.25)
    assert c.area_mm2 == pytest.approx(math.pi * 25, rel=0.05)
    assert c.width_mm == pytest.approx(10.0, abs=0.5) and c.height_mm == pytest.approx(10.0, abs=0.5)
    assert c.mean_inside == pytest.approx(0.8, abs=1e-6)
    assert c.mean_ring == pytest.approx(0.3, abs=1e-6)
    assert c.std_inside == pytest.approx(0.0, abs=1e-6)
    assert sum(c.lbp_histogram) == pytest.approx(1.0) and len(c.lbp_histogram) == LBP_BINS
    # Geometric quadrant (landmarks.geometric_quadrant): at x = 35 mm the breast spans y = 75 -/+ 60.6 mm, so the
    # upper half-chord from the nipple axis is 60.6 mm; 25 mm > 60.6 / 3 -> the upper third, "outer" on CC.
    assert c.quadrant_probabilities == {"outer": 1.0, "middle": 0.0, "inner": 0.0, "areola": 0.0}


def test_finding_depth_and_quadrant_probabilities_take_precedence():
    context, finding, _ = _scene(0.5)
    finding.depth = 0.42
    finding.quadrant_probabilities = {"outer": 3.0, "inner": 1.0}
    c = make_candidate(finding, context)
    assert c.depth == pytest.approx(0.42)
    assert c.quadrant_probabilities == pytest.approx({"outer": 0.75, "middle": 0.0, "inner": 0.25, "areola": 0.0})


def test_box_only_finding_uses_the_inscribed_ellipse():
    context, _, mask = _scene(0.5)
    box_only = Finding(id="b", view_key="R-CC", type="mass", score=0.5, box=mask.box)
    c = make_candidate(box_only, context)
    assert c.area_mm2 == pytest.approx(math.pi * 25, rel=0.08)  # the box is the disk's: its ellipse is the disk
    assert c.mean_inside == pytest.approx(0.8, abs=0.05)


def test_texture_separates_a_checkerboard_from_a_flat_lesion():
    flat = _measure(0.5)
    textured = _measure(0.5, texture=True)
    assert textured.glcm_contrast > 3 * flat.glcm_contrast
    assert textured.glcm_homogeneity < flat.glcm_homogeneity
    assert textured.std_inside == pytest.approx(0.2, abs=0.02)


def test_measurements_do_not_depend_on_the_pixel_size():
    coarse = _measure(0.5)
    fine = _measure(0.25)
    assert fine.area_mm2 == pytest.approx(coarse.area_mm2, rel=0.03)
    assert fine.nipple_distance_mm == pytest.approx(coarse.nipple_distance_mm, abs=0.3)
    assert fine.depth == pytest.approx(coarse.depth, abs=0.01)
    assert fine.mean_inside == pytest.approx(coarse.mean_inside, abs=0.02)
    assert fine.mean_ring == pytest.approx(coarse.mean_ring, abs=0.02)


def test_prepared_grid_gives_the_same_candidate_as_the_original_grid():
    context, finding, _ = _scene(0.25)
    rows, cols = context.image.shape
    # A preprocessing-like transform: crop to the breast, resample to 0.5 mm, flip left-right.
    crop = (0, 20, 300, 380)
    transform = Transform((cols, rows), crop, (150, 180), flip_x=True)
    prepared = ViewContext(
        "R-CC", transform.image_to_prepared(context.image),
        transform.image_to_prepared(context.breast_mask.astype(np.uint8), order=0).astype(bool),
        transform, 0.5, context.landmarks,
    )
    a = make_candidate(finding, context)
    b = make_candidate(finding, prepared)
    assert b.center == a.center and b.area_mm2 == a.area_mm2 and b.depth == a.depth
    assert b.mean_inside == pytest.approx(a.mean_inside, abs=0.03)
    assert b.mean_ring == pytest.approx(a.mean_ring, abs=0.03)


def test_candidate_refuses_a_finding_of_another_view():
    context, finding, _ = _scene(0.5)
    finding.view_key = "R-MLO"
    with pytest.raises(ValueError, match="R-MLO"):
        make_candidate(finding, context)


def _candidate(cid: str, view: str, *, type: str = "mass", score: float = 0.8, depth: float = 0.5,
               nipple: float = 50.0, area: float = 100.0, quadrants: dict | None = None) -> MatchCandidate:
    return MatchCandidate(
        id=cid, view_key=f"L-{view}", type=type, score=score, center=(0.0, 0.0), area_mm2=area, width_mm=12.0,
        height_mm=10.0, depth=depth, depth_mm=depth * 80, nipple_distance_mm=nipple, offset_mm=0.0,
        quadrant_probabilities=quadrants or {"middle": 1.0},  # "middle" exists in both views
        mean_inside=0.7, std_inside=0.1, p90_inside=0.8, mean_ring=0.4, std_ring=0.1, glcm_contrast=2.0,
        glcm_homogeneity=0.6, lbp_histogram=tuple([0.1] * LBP_BINS),
    )


def test_feature_names_are_unique_and_values_finite():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    cc = [_candidate("c1", "CC"), _candidate("c2", "CC", type="calcification", score=0.3)]
    mlo = [_candidate("m1", "MLO"), _candidate("m2", "MLO", depth=0.2), _candidate("m3", "MLO", nipple=80.0)]
    f = pair_feature_matrix(cc, mlo)
    assert f.shape == (2, 3, len(FEATURE_NAMES))
    assert np.isfinite(f).all()
    assert np.array_equal(pair_features(cc[1], mlo[2], cc, mlo), f[1, 2])


def test_pair_feature_values():
    cc = [_candidate("c1", "CC", nipple=50.0, depth=0.5, area=100.0),
          _candidate("c2", "CC", type="calcification", score=0.3, nipple=70.0, depth=0.3)]
    mlo = [_candidate("m1", "MLO", nipple=55.0, depth=0.45, area=400.0),
           _candidate("m2", "MLO", nipple=62.0, depth=0.2)]
    f = pair_feature_matrix(cc, mlo)

    def get(name):
        return f[:, :, FEATURE_INDEX[name]]

    assert np.array_equal(get("same_type"), [[1, 1], [0, 0]])
    assert np.allclose(get("nipple_distance_abs_diff_mm"), [[5, 12], [15, 8]])
    assert np.allclose(get("nipple_distance_ratio"), [[50 / 55, 50 / 62], [55 / 70, 62 / 70]])
    assert np.allclose(get("depth_abs_diff"), [[0.05, 0.3], [0.15, 0.1]])
    assert np.allclose(get("area_log_ratio_abs")[0, 0], math.log(4))
    assert np.allclose(get("score_min"), [[0.8, 0.8], [0.3, 0.3]])
    assert np.array_equal(get("score_rank_cc"), [[0, 0], [1, 1]])
    # Ranks among the CC candidate's MLO options (row) and the MLO candidate's CC options (column).
    assert np.array_equal(get("nipple_rank_row"), [[0, 1], [1, 0]])
    assert np.array_equal(get("nipple_rank_col"), [[0, 1], [1, 0]])
    assert np.allclose(get("nipple_margin_row_mm"), [[5 - 12, 12 - 5], [15 - 8, 8 - 15]])
    assert np.array_equal(get("n_cc"), np.full((2, 2), 2)) and np.array_equal(get("n_mlo"), np.full((2, 2), 2))


@pytest.mark.parametrize(
    "cc_q, mlo_q, expected",
    [
        ({"outer": 1.0}, {"axillary_tail": 1.0}, 1.0),  # the axillary tail is lateral: CC outer only
        ({"inner": 1.0}, {"axillary_tail": 1.0}, 0.0),
        ({"areola": 1.0}, {"lower": 1.0}, 0.0),
        ({"areola": 1.0}, {"areola": 1.0}, 1.0),
        ({"outer": 0.5, "inner": 0.5}, {"axillary_tail": 1.0}, 0.5),
        ({"middle": 1.0}, {"upper": 0.25, "axillary_tail": 0.75}, 0.25),
    ],
)
def test_quadrant_compatibility_follows_the_vocabulary(cc_q, mlo_q, expected):
    f = pair_feature_matrix([_candidate("c", "CC", quadrants=cc_q)], [_candidate("m", "MLO", quadrants=mlo_q)])
    assert f[0, 0, FEATURE_INDEX["quadrant_compatibility"]] == pytest.approx(expected)
    assert f[0, 0, FEATURE_INDEX["quadrant_compatible_top"]] == float(expected >= 0.5)


def test_pairs_must_be_cc_and_mlo_of_one_breast():
    with pytest.raises(ValueError, match="not a CC"):
        pair_feature_matrix([_candidate("m", "MLO")], [_candidate("m2", "MLO")])
    other = _candidate("r", "MLO")
    other.view_key = "R-MLO"
    with pytest.raises(ValueError, match="same breast"):
        pair_feature_matrix([_candidate("c", "CC")], [other])
    assert pair_feature_matrix([], [_candidate("m", "MLO")]).shape == (0, 1, len(FEATURE_NAMES))
