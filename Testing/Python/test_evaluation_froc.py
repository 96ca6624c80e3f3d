"""FROC: a hand-worked example, an independent brute-force implementation (also on a real detector's output on
INbreast, Ribli et al. 2018, ../shared/reference/froc), per-type analysis, bootstrap CIs and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.errors import InputError
from MammoDNNLib.evaluation.froc import (
    DEFAULT_FPI,
    Detection,
    FrocConfig,
    HitCriterion,
    Lesion,
    froc,
    image_level_roc,
    read_detections,
    read_image_list,
    read_lesions,
)

NO_CI = FrocConfig(n_bootstrap=0)


def _worked_example():
    lesions = [Lesion("A", (0, 0, 10, 10), "L1", "mass"), Lesion("B", (20, 20, 30, 30), "L2", "calcification")]
    detections = [
        Detection("A", 0.9, (3, 3, 7, 7), "mass"),  # centre (5, 5): hits L1
        Detection("A", 0.8, (45, 45, 55, 55), "mass"),  # false positive
        Detection("B", 0.7, (22, 22, 28, 28), "calcification"),  # hits L2
        Detection("B", 0.95, (95, 95, 105, 105), "calcification"),  # false positive
        Detection("C", 0.6, (0, 0, 4, 4), "mass"),  # false positive on a normal image
    ]
    return lesions, detections


def test_hand_worked_example():
    lesions, detections = _worked_example()
    result = froc(lesions, detections, config=NO_CI)
    assert (result.n_images, result.n_lesions, result.n_found, result.n_false_positives) == (3, 2, 2, 3)
    assert [p.threshold for p in result.curve] == [math.inf, 0.95, 0.9, 0.8, 0.7, 0.6]
    assert [p.fpi for p in result.curve] == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert [p.sensitivity for p in result.curve] == pytest.approx([0, 0, 0.5, 0.5, 1, 1])
    sens = {p.fpi: p.sensitivity for p in result.points}
    assert [sens[x] for x in DEFAULT_FPI] == [0, 0, 0.5, 1, 1, 1, 1]
    assert result.mean_sensitivity == pytest.approx(4.5 / 7)
    # per type: mass has one lesion (found at 0.9) and FPs at 0.8 and 0.6; calcification FP at 0.95, hit at 0.7
    mass = result.by_type["mass"]
    assert [p.fpi for p in mass.curve] == pytest.approx([0, 0, 1 / 3, 2 / 3])
    assert [p.sensitivity for p in mass.curve] == pytest.approx([0, 1, 1, 1])
    calc = result.by_type["calcification"]
    assert calc.sensitivity_at(0.25) == 0 and calc.sensitivity_at(1 / 3) == 1


def test_detection_hitting_a_found_lesion_is_not_a_false_positive():
    lesions = [Lesion("A", (0, 0, 10, 10))]
    detections = [Detection("A", 0.9, (4, 4, 6, 6)), Detection("A", 0.5, (2, 2, 8, 8))]
    result = froc(lesions, detections, config=NO_CI)
    assert result.n_false_positives == 0 and result.points[0].sensitivity == 1.0


def test_iou_hit_criterion():
    lesions = [Lesion("A", (0, 0, 10, 10))]
    detections = [Detection("A", 0.9, (5, 0, 15, 10))]  # centre (10, 5) on the edge; IoU = 50/150 = 1/3
    assert froc(lesions, detections, config=NO_CI).n_found == 1
    assert froc(lesions, detections, config=FrocConfig(hit=HitCriterion.parse("iou:0.3"), n_bootstrap=0)).n_found == 1
    assert froc(lesions, detections, config=FrocConfig(hit=HitCriterion.parse("iou:0.5"), n_bootstrap=0)).n_found == 0
    with pytest.raises(ValueError):
        HitCriterion.parse("iou:2")
    with pytest.raises(ValueError):
        HitCriterion.parse("overlap")


def test_image_list_adds_normal_images_and_restricts():
    lesions, detections = _worked_example()
    result = froc(lesions, detections, images=["A", "B", "C", "D"], config=NO_CI)
    assert result.n_images == 4 and result.curve[-1].fpi == pytest.approx(3 / 4)
    result = froc(lesions, detections, images=["A", "C"], config=NO_CI)
    assert result.n_lesions == 1 and result.n_false_positives == 2


def _brute_force(lesions, detections, images, fpi_targets):
    """Sensitivity at each FPI by evaluating every threshold from scratch (written independently of the library:
    explicit centre-in-box loops, then counting at each threshold)."""
    pairs = []  # (detection index, lesion index) for every hit
    for i, d in enumerate(detections):
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        for j, l in enumerate(lesions):
            if l.image == d.image and l.box[0] <= cx <= l.box[2] and l.box[1] <= cy <= l.box[3]:
                pairs.append((i, j))
    scores = np.array([d.score for d in detections])
    pair_det = np.array([p[0] for p in pairs], dtype=int)
    pair_les = np.array([p[1] for p in pairs], dtype=int)
    hits_something = np.zeros(len(detections), dtype=bool)
    hits_something[pair_det] = True
    in_images = np.array([d.image in set(images) for d in detections], dtype=bool)
    points = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        active = (scores >= t) & in_images
        found = len(set(pair_les[active[pair_det]].tolist())) if pairs else 0
        fps = int((active & ~hits_something).sum())
        points.append((fps / len(images), found / len(lesions)))
    return [max(s for f, s in points if f <= x + 1e-12) for x in fpi_targets]


@pytest.fixture(scope="module")
def ribli(shared_dir):
    folder = shared_dir / "reference" / "froc"
    lesions = read_lesions(folder / "gt.tsv", image_column="fn")  # columns: fn x0 x1 y0 y1
    detections = read_detections(folder / "pred.tsv", image_column="filename")  # filename score x0 x1 y0 y1
    return lesions, detections


def test_real_detector_output_matches_brute_force(ribli):
    lesions, detections = ribli
    # the TSV column order (x0 x1 y0 y1) must not swap coordinates: every box has x0 <= x1 and y0 <= y1
    assert all(l.box[0] <= l.box[2] and l.box[1] <= l.box[3] for l in lesions)
    result = froc(lesions, detections, config=NO_CI)
    images = list(dict.fromkeys([l.image for l in lesions] + [d.image for d in detections]))
    assert (result.n_lesions, result.n_images, result.n_detections) == (91, 347, 1014)
    targets = (0.125, 0.25, 0.3, 0.5, 1, 2, 4, 8)
    expected = _brute_force(lesions, detections, images, targets)
    assert [result.sensitivity_at(x) for x in targets] == pytest.approx(expected)
    assert [p.sensitivity for p in result.points] == pytest.approx([expected[i] for i in (0, 1, 3, 4, 5, 6, 7)])


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible(ribli):
    lesions, detections = ribli
    config = FrocConfig(n_bootstrap=300, seed=11)
    first = froc(lesions, detections, config=config)
    again = froc(lesions, detections, config=config)
    assert [p.ci for p in first.points] == [p.ci for p in again.points]
    for point in first.points:
        assert point.ci[0] <= point.sensitivity <= point.ci[1]
    assert first.points[1].ci[1] - first.points[1].ci[0] > 0.02  # 91 lesions: intervals are not degenerate


def test_bootstrap_resamples_cases_not_images():
    lesions, detections = _worked_example()
    # one case holding all images: every replicate is the original data, so the CI collapses to the estimate
    result = froc(lesions, detections, cases={"A": "P1", "B": "P1", "C": "P1"},
                  config=FrocConfig(n_bootstrap=50))
    for point in result.points:
        assert point.ci == pytest.approx((point.sensitivity, point.sensitivity))


@st.composite
def detector_outputs(draw):
    images = [f"I{i}" for i in range(draw(st.integers(1, 5)))]
    coord = st.integers(0, 40)
    lesions = []
    for _ in range(draw(st.integers(1, 6))):
        x, y = draw(coord), draw(coord)
        lesions.append(Lesion(draw(st.sampled_from(images)), (x, y, x + draw(st.integers(1, 15)),
                                                               y + draw(st.integers(1, 15)))))
    detections = []
    for _ in range(draw(st.integers(0, 12))):
        x, y = draw(coord), draw(coord)
        detections.append(Detection(draw(st.sampled_from(images)), draw(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])),
                                    (x, y, x + draw(st.integers(1, 10)), y + draw(st.integers(1, 10)))))
    return lesions, detections, images


@settings(max_examples=60, deadline=None)
@given(detector_outputs())
def test_properties_against_brute_force(data):
    lesions, detections, images = data
    targets = (0.125, 0.5, 1, 2)
    result = froc(lesions, detections, images=images, config=FrocConfig(fpi=targets, n_bootstrap=0))
    assert [p.sensitivity for p in result.points] == pytest.approx(_brute_force(lesions, detections, images, targets))


def test_image_level_roc_matches_sklearn():
    lesions, detections = _worked_example()
    curve = image_level_roc(lesions, detections, images=["A", "B", "C", "D"])
    # image scores: A 0.9, B 0.95 (positive); C 0.6, D none (negative)
    assert curve.auc == pytest.approx(roc_auc_score([1, 1, 0, 0], [0.9, 0.95, 0.6, -1]))
    mass = image_level_roc(lesions, detections, images=["A", "B", "C"], type="mass")
    assert mass.auc == pytest.approx(roc_auc_score([1, 0, 0], [0.9, -1, 0.6]))


def test_file_errors(tmp_path):
    bad = tmp_path / "truth.csv"
    bad.write_text("image,x0,y0,x1,y1\nA,10,0,5,5\n")
    with pytest.raises(InputError, match="line 2 has x1 < x0"):
        read_lesions(bad)
    missing = tmp_path / "det.csv"
    missing.write_text("image,x0,y0,x1,y1\nA,0,0,5,5\n")
    with pytest.raises(InputError, match="missing column 'score'"):
        read_detections(missing)
    listing = tmp_path / "images.txt"
    listing.write_text("A\nB\n\n")
    assert read_image_list(listing) == (["A", "B"], None)
    table = tmp_path / "images.csv"
    table.write_text("image,case\nA,P1\nB,P1\n")
    assert read_image_list(table) == (["A", "B"], {"A": "P1", "B": "P1"})


def test_cli_froc_json(shared_dir, capsys):
    folder = shared_dir / "reference" / "froc"
    rc = cli_main(["stats", "froc", "--truth", str(folder / "gt.tsv"), "--detections", str(folder / "pred.tsv"),
                   "--truth-image-column", "fn", "--detections-image-column", "filename", "--bootstrap", "100",
                   "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["fpi"] for p in out["points"]] == list(DEFAULT_FPI)
    assert all(len(p["ci"]) == 2 for p in out["points"])
    assert out["curve"][0] == {"threshold": None, "fpi": 0.0, "sensitivity": 0.0}
    assert out["n_lesions"] == 91
    rc = cli_main(["stats", "froc", "--truth", str(folder / "gt.tsv"), "--detections", str(folder / "pred.tsv")])
    assert rc == 1 and "missing column 'image'" in capsys.readouterr().err
