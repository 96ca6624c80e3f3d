"""ROC analysis against R's pROC on its aSAH data, and against scikit-learn / a naive DeLong where they overlap.

Reference values (all for pROC's ``data(aSAH)``, positive class outcome == "Poor", cases have higher scores):

* AUCs and ``roc.test(r.wfns, r.s100b)`` Z and p: ../shared/README.md (pROC printouts).
* DeLong variances ``var(r.wfns)``, ``var(r.ndka)``, ``var(r.s100b)``: pROC tests/testthat/test-var.R.
* DeLong covariances ``cov(r.wfns, r.ndka)`` etc.: pROC tests/testthat/test-cov.R.
* ``ci.auc(r.ndka)`` (DeLong) = 0.501244999271703, 0.611957994579946, 0.722670989888189: test-ci.auc.R.
* Paired ``roc.test`` Z, p and CI of the difference for (wfns, s100b), (wfns, ndka), (ndka, s100b) and the unpaired
  DeLong D and p: pROC tests/testthat/test-roc.test.R.
* ``coords(r.s100b, "best")`` (Youden) is the threshold 0.205, specificity 58/72, sensitivity 26/41:
  test-coords.R (row of expected.coords with threshold 0.205, helper-coords-expected.R).
(pROC source: github.com/xrobin/pROC, tests/testthat.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.evaluation.roc import (
    analyze_roc,
    auc_ci,
    delong_covariance,
    delong_test,
    delong_unpaired_test,
    naive_auc_variance,
    roc_curve,
)
from MammoDNNLib.evaluation.tables import binary_truth, read_table


@pytest.fixture(scope="module")
def asah(shared_dir):
    table = read_table(shared_dir / "reference" / "stats" / "aSAH.csv")
    truth = binary_truth(table, "outcome", "Poor")
    return truth, {name: table.numeric(name) for name in ("s100b", "ndka", "wfns")}


def test_auc_and_delong_variance_match_proc(asah):
    truth, scores = asah
    expected = {
        "s100b": (0.731368563685637, 0.00266868245717244),
        "ndka": (0.611957994579946, 0.0031908105493913),
        "wfns": (0.823678861788618, 0.00146991470882363),
    }
    for name, (auc, var) in expected.items():
        curve = roc_curve(truth, scores[name])
        assert curve.auc == pytest.approx(auc, abs=1e-14)  # pROC prints 15 significant digits
        assert curve.se**2 == pytest.approx(var, rel=1e-12)
        assert (curve.n_positive, curve.n_negative) == (41, 72)


def test_delong_covariances_match_proc(asah):
    truth, s = asah
    _, cov = delong_covariance(truth, np.vstack([s["wfns"], s["ndka"], s["s100b"]]))
    assert cov[0, 1] == pytest.approx(-0.000532967856762438, rel=1e-12)
    assert cov[1, 2] == pytest.approx(-0.000756164938056579, rel=1e-12)
    assert cov[2, 0] == pytest.approx(0.00119615567376754, rel=1e-12)


def test_delong_ci_matches_proc_ci_auc(asah):
    truth, s = asah
    curve = roc_curve(truth, s["ndka"])
    assert curve.ci == pytest.approx((0.501244999271703, 0.722670989888189), abs=1e-14)


@pytest.mark.parametrize(
    "a, b, z, p, ci",
    [
        ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, (0.0104061769564846, 0.174214419249478)),
        ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, (0.0634011709339876, 0.3600405634833566)),
        ("ndka", "s100b", -1.39077002573558, 0.164295175223054, (-0.2876917446341914, 0.0488706064228094)),
    ],
)
def test_paired_delong_test_matches_proc_roc_test(asah, a, b, z, p, ci):
    truth, s = asah
    result = delong_test(truth, s[a], s[b], names=(a, b))
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p == pytest.approx(p, rel=1e-11)
    assert result.ci == pytest.approx(ci, rel=1e-11)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b)


@pytest.mark.parametrize(
    "a, b, d, p",
    [
        ("wfns", "s100b", 1.43490640926908, 0.152825378808796),
        ("wfns", "ndka", 3.10125096778969, 0.00220950791756457),
        ("ndka", "s100b", -1.55995743389685, 0.120192832430845),
    ],
)
def test_unpaired_delong_test_matches_proc(asah, a, b, d, p):
    truth, s = asah
    result = delong_unpaired_test(truth, s[a], truth, s[b])
    assert result.statistic == pytest.approx(d, rel=1e-12)
    assert result.p == pytest.approx(p, rel=1e-10)
    assert not result.paired and result.ci is None


def test_youden_cutoff_matches_proc_coords_best(asah):
    truth, s = asah
    youden = roc_curve(truth, s["s100b"]).youden
    assert youden.threshold == pytest.approx(0.205)
    assert youden.specificity == pytest.approx(58 / 72)
    assert youden.sensitivity == pytest.approx(26 / 41)
    assert youden.min_positive_score == pytest.approx(0.22)  # the lowest s100b above 0.205


def test_lower_direction_mirrors_higher(asah):
    truth, s = asah
    low = roc_curve(truth, -s["s100b"], direction="lower")
    high = roc_curve(truth, s["s100b"])
    assert low.auc == pytest.approx(high.auc) and low.se == pytest.approx(high.se)
    assert low.youden.threshold == pytest.approx(-high.youden.threshold)
    assert low.youden.sensitivity == high.youden.sensitivity


def test_binomial_exact_ci_is_clopper_pearson():
    # AUC 12/16 = 0.75 on 4 positives and 4 negatives: x = 6 of n = 8 → scipy's exact binomial interval
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    score = np.array([8, 7, 2, 1, 6, 5, 0, -1], dtype=float)
    curve = roc_curve(truth, score, ci_method="binomial-exact")
    assert curve.auc == 0.75
    expected = stats.binomtest(6, 8).proportion_ci(confidence_level=0.95, method="exact")
    assert curve.ci == pytest.approx((expected.low, expected.high), rel=1e-10)
    assert auc_ci(1.0, 0.0, 5, 5, method="binomial-exact")[1] == 1.0


def test_errors_for_one_class_and_bad_scores():
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_curve([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        roc_curve([1, 0, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="one value per case"):
        roc_curve([1, 0, 1], [0.1, 0.2])


@st.composite
def labelled_scores(draw):
    n = draw(st.integers(4, 60))
    truth = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if truth.all() or not truth.any():
        truth[0] = not truth[0]
    # few distinct values, so ties are common
    levels = draw(st.integers(2, 12))
    a = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=float)
    b = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=float)
    return truth, a, b


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_properties_against_sklearn_and_naive_delong(data):
    truth, a, b = data
    curve = roc_curve(truth, a)
    assert curve.auc == pytest.approx(roc_auc_score(truth, a), abs=1e-12)
    if truth.sum() > 1 and (~truth).sum() > 1:
        _, var = naive_auc_variance(truth, a)
        assert curve.se**2 == pytest.approx(var, abs=1e-12)
    fpr, tpr, _ = sk_roc_curve(truth, a)
    assert curve.youden.index == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)
    # paired test: the variance of the difference equals the naive variance of the difference's kernel
    if truth.sum() > 1 and (~truth).sum() > 1:
        result = analyze_roc(truth, {"a": a, "b": b})
        pos, neg = truth, ~truth
        psi = lambda s: (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        diff = psi(a) - psi(b)
        var_diff = diff.mean(1).var(ddof=1) / pos.sum() + diff.mean(0).var(ddof=1) / neg.sum()
        assert result.comparisons[0].se ** 2 == pytest.approx(var_diff, abs=1e-12)


def test_cli_roc_json(shared_dir, capsys):
    path = shared_dir / "reference" / "stats" / "aSAH.csv"
    rc = cli_main(["stats", "roc", str(path), "--truth", "outcome", "--positive", "Poor", "--score", "wfns",
                   "--score", "s100b", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["curves"]["wfns"]["auc"] == pytest.approx(0.823678861788618, abs=1e-14)
    assert set(out["curves"]["s100b"]["youden"]) >= {"threshold", "sensitivity", "specificity"}
    assert out["curves"]["s100b"]["n_positive"] == 41 and out["curves"]["s100b"]["n_negative"] == 72
    (comparison,) = out["comparisons"]
    assert (comparison["a"], comparison["b"]) == ("wfns", "s100b")
    assert comparison["z"] == pytest.approx(2.20898359144091, rel=1e-12)
    assert comparison["p"] == pytest.approx(0.0271757822291882, rel=1e-11)
    assert comparison["difference"] == pytest.approx(0.823678861788618 - 0.731368563685637, abs=1e-13)
    assert len(comparison["ci"]) == 2


@pytest.mark.parametrize(
    "content, args, message",
    [
        ("y,s\n1,0.2\n0,0.1\n", ["--score", "missing"], "missing column 'missing'"),
        ("y,s\n1,0.2\n1,0.1\n", ["--score", "s"], "only positive rows"),
        ("y,s\n1,0.2\n0,high\n", ["--score", "s"], "not numeric at line 3"),
    ],
)
def test_cli_roc_bad_tables_exit_1_with_one_line(tmp_path, capsys, content, args, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    rc = cli_main(["stats", "roc", str(path), "--truth", "y", "--positive", "1", *args])
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
