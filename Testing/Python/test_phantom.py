"""The synthetic four-view phantom: truth consistency, image realism checks, determinism, files.

Reference values are truths the test constructs (the IHE orientation table, the DICOM codes the task names,
the quadrant and depth rules recomputed here from the truth's own landmarks), not the generator's output.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from MammoDNNLib.errors import InputError
from MammoDNNLib.phantom import (
    PhantomConfig,
    generate_studies,
    generate_study,
    load_truth,
    study_seed,
    write_study,
)
from MammoDNNLib.phantom.lesions import sample_lesion_type
from MammoDNNLib.vocabulary import (
    BIRADS_CATEGORIES,
    FINDING_TYPE_KEYS,
    MORPHOLOGY,
    MORPHOLOGY_GROUPS_BY_TYPE,
    QUADRANT_COMPATIBILITY,
    QUADRANTS,
    VIEW_KEYS,
)

IHE_ORIENTATION = {"R-CC": ["P", "L"], "L-CC": ["A", "R"], "R-MLO": ["P", "FL"], "L-MLO": ["A", "FR"]}
VIEW_CODE = {"CC": "399162004", "MLO": "399368009"}
# CC and MLO depths of one lesion differ only through the per-view nipple-axis warp (|delta| <= 0.08 moves a
# depth by at most delta/4 = 0.02 per view, so <= 0.04 between views) plus sub-pixel nipple placement.
DEPTH_TOLERANCE = 0.05


def _lesion_config(**type_weights: float) -> PhantomConfig:
    config = PhantomConfig()
    config.lesions.normal_study_fraction = 0.0
    config.lesions.second_breast_probability = 1.0
    config.lesions.lesions_per_breast_weights = {"2": 1.0}
    if type_weights:
        config.lesions.type_weights = dict(type_weights)
    return config


@pytest.fixture(scope="module")
def studies():
    """Six small studies rich in lesions (every type), plus a default one."""
    config = _lesion_config()
    made = [generate_study(study_seed(2024, k), "small", config) for k in range(6)]
    made += [generate_study(k, "small") for k in (5,)]
    return made


@pytest.fixture(scope="module")
def written(tmp_path_factory, studies):
    folder = tmp_path_factory.mktemp("phantom") / "study"
    return write_study(studies[0], folder)


def _all_lesions(studies):
    for phantom in studies:
        for lesion in phantom.truth.lesions:
            yield phantom, lesion


# -- DICOM ---------------------------------------------------------------------------------------------------
def test_dicom_files_read_back_with_mammography_attributes(studies, written):
    phantom = studies[0]
    datasets = {key: pydicom.dcmread(written / f"{key}.dcm") for key in VIEW_KEYS}
    for key, ds in datasets.items():
        laterality, view = key.split("-")
        assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.Modality == "MG"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.ImageLaterality == laterality
        assert ds.ViewPosition == view
        assert ds.ViewCodeSequence[0].CodeValue == VIEW_CODE[view]
        assert ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert list(ds.PatientOrientation) == IHE_ORIENTATION[key]
        assert ds.BodyPartExamined == "BREAST"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.BitsAllocated == 16 and 12 <= ds.BitsStored <= 14 and ds.HighBit == ds.BitsStored - 1
        assert float(ds.EstimatedRadiographicMagnificationFactor) == 1.0
        assert ds.BreastImplantPresent == "NO"
        assert [float(v) for v in ds.ImagerPixelSpacing] == [0.5, 0.5]
        assert 20.0 <= float(ds.BodyPartThickness) <= 95.0
        assert 40.0 <= float(ds.CompressionForce) <= 200.0
        assert 0.003 <= float(ds.OrganDose) <= 0.05  # dGy: 0.3-5 mGy mean glandular dose
        assert float(ds.WindowWidth) > 0
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.max() < 2**ds.BitsStored
        np.testing.assert_array_equal(pixels, phantom.pixel_data[key])
        np.testing.assert_array_equal(pixels.astype(np.float32), phantom.study[key].pixels)
    assert len({ds.StudyInstanceUID for ds in datasets.values()}) == 1
    assert len({ds.PatientID for ds in datasets.values()}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets.values()}) == 4
    assert datasets["R-CC"].StudyInstanceUID == phantom.truth.study_instance_uid


def test_in_memory_study_has_headers_and_spacing(studies):
    phantom = studies[1]
    assert list(phantom.study.views) == list(VIEW_KEYS)
    for key, view in phantom.study.views.items():
        assert view.header is not None and "PixelData" not in view.header
        assert view.header.ImageLaterality == view.laterality and view.header.ViewPosition == view.view
        assert view.spacing == (0.5, 0.5)
        assert view.shape == (view.header.Rows, view.header.Columns)
        assert phantom.truth.views[key].size == view.size


def test_chest_wall_side_and_pectoral_corner_follow_ihe(studies):
    for phantom in studies:
        for key, view in phantom.truth.views.items():
            mask = view.breast_mask
            width = mask.shape[1]
            left, right = mask[:, : width // 20].mean(), mask[:, -width // 20 :].mean()
            if key.startswith("R"):
                assert view.chest_wall_side == "right" and right > 0.3 and left < 0.02
            else:
                assert view.chest_wall_side == "left" and left > 0.3 and right < 0.02
            if view.view == "MLO":  # the muscle is in the upper chest-wall corner
                rows, cols = np.nonzero(view.pectoral_mask)
                assert rows.mean() < 0.4 * mask.shape[0]
                chest_x = width if key.startswith("R") else 0
                assert abs(cols.mean() - chest_x) < 0.3 * width


# -- truth ---------------------------------------------------------------------------------------------------
def test_lesion_masks_boxes_and_vocabulary(studies):
    seen_types = set()
    for phantom, lesion in _all_lesions(studies):
        truth = phantom.truth
        seen_types.add(lesion.type)
        assert lesion.type in FINDING_TYPE_KEYS and lesion.pathology in ("benign", "malignant")
        assert lesion.birads in BIRADS_CATEGORIES and lesion.birads != "1"
        assert set(lesion.morphology) == set(MORPHOLOGY_GROUPS_BY_TYPE[lesion.type])
        for group, value in lesion.morphology.items():
            assert value in MORPHOLOGY[group]
        assert set(lesion.views) == {f"{lesion.laterality}-CC", f"{lesion.laterality}-MLO"}
        assert lesion.id in truth.breasts[lesion.laterality].lesion_ids
        for key, lv in lesion.views.items():
            view = truth.views[key]
            full = lv.mask.full(view.breast_mask.shape)
            assert full.sum() == lv.area_px > 0
            assert not (full & ~view.breast_mask).any(), f"{lesion.id} {key} leaves the breast"
            rows, cols = np.nonzero(full)
            assert lv.box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
            assert lv.quadrant in QUADRANTS[view.view]
            assert lv.visibility in ("obvious", "subtle", "occult")
    assert seen_types == set(FINDING_TYPE_KEYS)


def test_depths_agree_between_views_and_follow_the_landmarks(studies):
    for phantom, lesion in _all_lesions(studies):
        truth = phantom.truth
        depths = {}
        for key, lv in lesion.views.items():
            view = truth.views[key]
            cx, cy = lv.centre
            nx, ny = view.nipple
            if view.view == "CC":  # along the nipple-chest-wall axis: distance from the chest-wall edge
                edge = view.size[0] if view.chest_wall_side == "right" else 0.0
                expected = 1.0 - abs(cx - edge) / abs(nx - edge)
            else:  # perpendicular distance from the pectoral line
                (x0, y0), (x1, y1) = view.pectoral_line
                lesion_distance = abs((cx - x0) * (y1 - y0) - (cy - y0) * (x1 - x0))
                nipple_distance = abs((nx - x0) * (y1 - y0) - (ny - y0) * (x1 - x0))
                expected = 1.0 - lesion_distance / nipple_distance
            assert lv.depth == pytest.approx(np.clip(expected, 0, 1), abs=2e-3)
            depths[view.view] = lv.depth
        assert abs(depths["CC"] - depths["MLO"]) <= DEPTH_TOLERANCE, lesion.id
        assert abs(depths["CC"] - lesion.depth_3d) <= DEPTH_TOLERANCE


def test_quadrants_follow_the_rules(studies):
    radius = PhantomConfig().areola_radius_mm
    for phantom, lesion in _all_lesions(studies):
        truth = phantom.truth
        labels = {}
        for key, lv in lesion.views.items():
            view = truth.views[key]
            cx, cy = lv.centre
            nx, ny = view.nipple
            near_nipple = np.hypot(cx - nx, cy - ny) * view.spacing[0] <= radius
            assert (lv.quadrant == "areola") == near_nipple, (lesion.id, key)
            if view.view == "CC":  # lateral at the top: outer lies above the nipple axis, inner below it
                if lv.quadrant == "outer":
                    assert cy < ny
                if lv.quadrant == "inner":
                    assert cy > ny
            else:  # superior side of the posterior nipple line (perpendicular to the pectoral line)
                (x0, y0), (x1, y1) = view.pectoral_line
                along = np.array([x0 - x1, y0 - y1]) / np.hypot(x0 - x1, y0 - y1)  # towards the top edge
                above = float(np.dot([cx - nx, cy - ny], along))
                if lv.quadrant in ("upper", "axillary_tail"):
                    assert above > 0
                if lv.quadrant == "lower":
                    assert above < 0
            labels[view.view] = lv.quadrant
        assert labels["MLO"] in QUADRANT_COMPATIBILITY[labels["CC"]], (lesion.id, labels)
        if labels["MLO"] == "axillary_tail":
            assert labels["CC"] == "outer"


def test_breast_truth_birads_density_and_asymmetry(studies):
    quartiles = {"A": (0.0, 0.25), "B": (0.25, 0.5), "C": (0.5, 0.75), "D": (0.75, 1.0)}
    for phantom in studies:
        truth = phantom.truth
        kinds_by_side = {}
        for side, breast in truth.breasts.items():
            lesions = [truth.lesion(i) for i in breast.lesion_ids]
            expected = max((les.birads for les in lesions), key=BIRADS_CATEGORIES.index) if lesions else "1"
            assert breast.birads == expected
            lo, hi = quartiles[breast.density]
            assert lo <= breast.percent_density < hi
            kinds_by_side[side] = {les.type for les in lesions}
        # An asymmetry is a density without counterpart in the other breast.
        assert not ("asymmetry" in kinds_by_side["R"] and "asymmetry" in kinds_by_side["L"])
        assert truth.exam_birads == max(
            (b.birads for b in truth.breasts.values()), key=BIRADS_CATEGORIES.index
        )


def test_nipple_on_skin_line_at_most_anterior_point(studies):
    for phantom in studies:
        for key, view in phantom.truth.views.items():
            mask = view.breast_mask
            nx, ny = view.nipple
            if view.view == "CC":
                edge = view.size[0] if view.chest_wall_side == "right" else 0.0
                normal = np.array([-1.0, 0.0]) if view.chest_wall_side == "right" else np.array([1.0, 0.0])
                rows, cols = np.nonzero(mask)
                reach = np.abs(cols + 0.5 - edge)
                nipple_reach = abs(nx - edge)
            else:
                (x0, y0), (x1, y1) = view.pectoral_line
                normal = np.array([y1 - y0, -(x1 - x0)]) / np.hypot(x1 - x0, y1 - y0)
                if np.dot([nx - x0, ny - y0], normal) < 0:
                    normal = -normal
                rows, cols = np.nonzero(mask)
                reach = (cols + 0.5 - x0) * normal[0] + (rows + 0.5 - y0) * normal[1]
                nipple_reach = (nx - x0) * normal[0] + (ny - y0) * normal[1]
            assert reach.max() <= nipple_reach + 1.0, key  # nothing of the breast lies beyond the nipple
            inside = np.array([nx, ny]) - 0.6 * normal
            outside = np.array([nx, ny]) + 1.5 * normal
            assert mask[int(inside[1]), int(inside[0])], key
            assert not mask[int(outside[1]), int(outside[0])], key


def test_pectoral_line_separates_bright_muscle_from_breast(studies):
    for phantom in studies:
        for key in ("R-MLO", "L-MLO"):
            view = phantom.truth.views[key]
            image = phantom.pixel_data[key].astype(float)
            (x0, y0), (x1, y1) = view.pectoral_line
            yy, xx = np.mgrid[: image.shape[0], : image.shape[1]] + 0.5
            signed = ((xx - x0) * (y1 - y0) - (yy - y0) * (x1 - x0)) / np.hypot(x1 - x0, y1 - y0)
            nipple_side = np.sign((view.nipple[0] - x0) * (y1 - y0) - (view.nipple[1] - y0) * (x1 - x0))
            mm = signed * nipple_side * view.spacing[0]  # > 0 on the breast side
            band = view.breast_mask & (yy < max(y0, y1))
            muscle = image[band & (mm < -3) & (mm > -15)].mean()
            breast = image[band & (mm > 3) & (mm < 15)].mean()
            assert muscle > breast + 200, (phantom.study_id, key, muscle, breast)


def test_masses_and_asymmetries_are_denser_than_their_surroundings(studies):
    contrasts = []
    for phantom, lesion in _all_lesions(studies):
        if lesion.type not in ("mass", "asymmetry"):
            continue
        for key, lv in lesion.views.items():
            view = phantom.truth.views[key]
            image = phantom.pixel_data[key].astype(float)
            mask = lv.mask.full(image.shape)
            distance = ndimage.distance_transform_edt(~mask) * view.spacing[0]
            region = view.breast_mask & (view.pectoral_mask is None or ~view.pectoral_mask)
            ring = (distance > 2.0) & (distance <= 8.0) & region
            contrast = image[mask].mean() - image[ring].mean()
            contrasts.append(contrast)
            if lv.visibility != "occult":
                assert contrast > 0, (phantom.study_id, lesion.id, key, contrast)
    assert len(contrasts) >= 10
    assert np.mean(np.array(contrasts) > 0) >= 0.9


def test_calcification_specks_are_small_bright_peaks():
    # At 0.5 mm pixels only coarse specks (0.5-1 mm) are resolved, as on a real detector binned that far.
    config = _lesion_config(calcification=1.0)
    for pathology in ("benign", "malignant"):
        config.lesions.morphology["calcification"][pathology]["calc_morphology"] = {
            "coarse_heterogeneous": 1.0
        }
    phantom = generate_study(11, "small", config)
    assert phantom.truth.lesions
    for lesion in phantom.truth.lesions:
        for key, lv in lesion.views.items():
            image = phantom.pixel_data[key].astype(float)
            detail = image - ndimage.median_filter(image, size=7)
            mask = lv.mask.full(image.shape)
            background = detail[ndimage.binary_dilation(mask, iterations=12) & ~mask]
            peaks = detail[mask]
            # Several specks stand far above the fine-scale spread of the surrounding tissue and noise.
            assert np.sum(peaks > background.mean() + 4 * background.std()) >= 3, (lesion.id, key)


def test_morphology_predicts_pathology_imperfectly():
    rng = np.random.default_rng(0)
    config = PhantomConfig().lesions
    counts: dict[tuple[str, str], int] = {}
    for _ in range(4000):
        _kind, pathology, morphology = sample_lesion_type(rng, config)
        for value in morphology.values():
            counts[(value, pathology)] = counts.get((value, pathology), 0) + 1

    def malignant_rate(value):
        m, b = counts.get((value, "malignant"), 0), counts.get((value, "benign"), 0)
        return m / (m + b)

    assert malignant_rate("spiculated") > 0.7 > malignant_rate("circumscribed")
    assert malignant_rate("fine_linear") > malignant_rate("punctate")
    for value in ("circumscribed", "irregular", "punctate", "fine_pleomorphic", "grouped"):
        assert 0.0 < malignant_rate(value) < 1.0  # never deterministic


# -- determinism, files, CLI ---------------------------------------------------------------------------------
def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a = write_study(generate_study(77), tmp_path / "a")
    b = write_study(generate_study(77), tmp_path / "b")
    for name in [f"{k}.dcm" for k in VIEW_KEYS] + ["truth.json"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for mask in (a / "masks").iterdir():
        assert mask.read_bytes() == (b / "masks" / mask.name).read_bytes()
    other = generate_study(78)
    assert not np.array_equal(other.pixel_data["R-CC"], pydicom.dcmread(a / "R-CC.dcm").pixel_array)


def test_truth_json_round_trip(studies, written):
    loaded = load_truth(written)
    original = studies[0].truth
    assert loaded.to_dict() == json.loads(json.dumps(original.to_dict()))
    for key, view in loaded.views.items():
        np.testing.assert_array_equal(view.breast_mask, original.views[key].breast_mask)
    for lesion in loaded.lesions:
        for key, lv in lesion.views.items():
            mine = original.lesion(lesion.id).views[key].mask
            assert lv.mask.origin == mine.origin
            np.testing.assert_array_equal(lv.mask.array, mine.array)


def test_bad_inputs_are_named(tmp_path):
    bogus = tmp_path / "truth.json"
    bogus.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(InputError, match="truth.json"):
        load_truth(bogus)
    with pytest.raises(InputError, match="no such"):
        load_truth(tmp_path / "missing.json")
    with pytest.raises(InputError, match="unknown phantom configuration keys"):
        PhantomConfig.from_dict({"lesions": {"nonsense": 1}})
    with pytest.raises(InputError, match="morphology"):
        PhantomConfig.from_dict(
            {"lesions": {"morphology": {"mass": {"benign": {"mass_shape": {"square": 1}}}}}}
        )
    with pytest.raises(InputError, match="at least 1"):
        generate_studies(tmp_path / "out", 0, seed=1)
    with pytest.raises(ValueError, match="non-negative"):
        generate_study(-1)
    with pytest.raises(ValueError, match="unknown phantom size"):
        generate_study(1, "huge")


def test_explicit_spacing_and_size_independent_anatomy():
    config = PhantomConfig(spacing_mm=1.0)
    coarse = generate_study(21, "small", config)
    fine = generate_study(21, "small")
    for key in VIEW_KEYS:
        c, f = coarse.truth.views[key], fine.truth.views[key]
        assert c.spacing == (1.0, 1.0)
        assert c.size[0] * 1.0 == pytest.approx(f.size[0] * 0.5, abs=1.0)  # same detector, in mm
        assert c.compressed_thickness_mm == f.compressed_thickness_mm
        assert np.hypot(c.nipple[0] * 1.0 - f.nipple[0] * 0.5, c.nipple[1] * 1.0 - f.nipple[1] * 0.5) < 2.0
    assert coarse.truth.breasts["R"].shape == fine.truth.breasts["R"].shape


def test_cli_round_trip(tmp_path):
    from MammoDNNLib.cli import main

    out = tmp_path / "phantoms"
    assert main(["phantom", str(out), "--studies", "2", "--seed", "3", "--quiet"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["seed"] == 3 and [s["folder"] for s in index["studies"]] == ["study_0000", "study_0001"]
    for k, entry in enumerate(index["studies"]):
        folder = out / entry["folder"]
        truth = load_truth(folder)
        assert truth.seed == study_seed(3, k)
        for key in VIEW_KEYS:
            ds = pydicom.dcmread(folder / f"{key}.dcm")
            assert ds.SOPInstanceUID == truth.views[key].sop_instance_uid
    # Study k is generate_study(study_seed(seed, k)): the in-memory API reproduces the written pixels.
    again = generate_study(study_seed(3, 1), "small", study_id="phantom-s3-0001")
    np.testing.assert_array_equal(
        again.pixel_data["L-MLO"], pydicom.dcmread(out / "study_0001" / "L-MLO.dcm").pixel_array
    )
    assert main(["phantom", str(tmp_path / "bad"), "--studies", "0"]) == 1


@pytest.mark.parametrize("seed", [189039167683922630, 5109984867204219162])
def test_spiculated_mass_near_the_image_edge(seed):
    """Regression: a spiculated mass whose spicules' window was clipped at the image edge failed to render."""
    from MammoDNNLib.matching.train import dense_phantom_config

    phantom = generate_study(seed, "small", dense_phantom_config())
    for lesion in phantom.truth.lesions:
        for key, projection in lesion.views.items():
            rows, cols = phantom.study[key].shape
            x0, y0, x1, y1 = projection.box
            assert 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows
