"""Cohen's kappa: the textbook value, scikit-learn's kappa, and the standard errors by an independent delta method.

Reference: the 3×3 table [[0,4,1],[0,8,0],[0,1,5]] has kappa 0.4842 with ASE 0.1380 (Fleiss, Cohen & Everitt
1969 large-sample SE; values as listed in ../shared/README.md).
The SEs are also checked against a numerical delta method written here from scratch: kappa is a smooth function
of the cell proportions p, so under multinomial sampling Var(kappa) ≈ (g'Σg)/n with Σ = diag(p) − pp' and g the
gradient of kappa(p); the SE under H0 is the same expression at the independence table p_i. p_.j.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.evaluation.kappa import (
    cohen_kappa,
    contingency_table,
    kappa_from_table,
    landis_koch_label,
    order_categories,
    weight_matrix,
)
from MammoDNNLib.evaluation.tables import read_table


def _kappa_of_proportions(p: np.ndarray, w: np.ndarray) -> float:
    rows, cols = p.sum(1), p.sum(0)
    po = (w * p).sum()
    pe = (w * np.outer(rows, cols)).sum()
    return (po - pe) / (1 - pe)


def _delta_method_se(p: np.ndarray, w: np.ndarray, n: float) -> float:
    flat = p.ravel()
    grad = np.empty_like(flat)
    h = 1e-6
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (_kappa_of_proportions(up.reshape(p.shape), w) - _kappa_of_proportions(down.reshape(p.shape), w)) / (
            2 * h
        )
    sigma = np.diag(flat) - np.outer(flat, flat)
    return math.sqrt(max(grad @ sigma @ grad / n, 0.0))


def test_textbook_table():
    result = kappa_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    assert round(result.kappa, 4) == 0.4842
    assert round(result.se, 4) == 0.1380
    assert result.label == "moderate"
    assert result.z == pytest.approx(result.kappa / result.se0)
    assert result.ci == pytest.approx((result.kappa - 1.959963984540054 * result.se,
                                       result.kappa + 1.959963984540054 * result.se))


@pytest.mark.parametrize("weights, sk_weights", [("none", None), ("linear", "linear"), ("quadratic", "quadratic")])
def test_anxiety_ratings_against_sklearn_and_delta_method(shared_dir, weights, sk_weights):
    table = read_table(shared_dir / "reference" / "stats" / "anxiety_irr.csv")
    a, b = table.text("rater1"), table.text("rater2")
    result = cohen_kappa(a, b, weights=weights)
    assert result.kappa == pytest.approx(cohen_kappa_score(a, b, weights=sk_weights), abs=1e-12)
    counts, _ = contingency_table(a, b)
    w = weight_matrix(counts.shape[0], weights)
    p = counts / counts.sum()
    assert result.se == pytest.approx(_delta_method_se(p, w, counts.sum()), rel=1e-6)
    independent = np.outer(p.sum(1), p.sum(0))
    assert result.se0 == pytest.approx(_delta_method_se(independent, w, counts.sum()), rel=1e-6)


@st.composite
def rated_pairs(draw):
    k = draw(st.integers(2, 5))
    n = draw(st.integers(5, 60))
    a = draw(st.lists(st.integers(1, k), min_size=n, max_size=n))
    b = draw(st.lists(st.integers(1, k), min_size=n, max_size=n))
    return [str(x) for x in a], [str(x) for x in b]


@settings(max_examples=60, deadline=None)
@given(rated_pairs(), st.sampled_from(["none", "linear", "quadratic"]))
def test_properties_against_sklearn_and_delta_method(pair, weights):
    a, b = pair
    result = cohen_kappa(a, b, weights=weights)
    counts, cats = contingency_table(a, b)
    if math.isnan(result.kappa):
        assert len(set(a) | set(b)) == 1
        return
    labels = list(cats)
    sk = cohen_kappa_score(a, b, labels=labels, weights=None if weights == "none" else weights)
    assert result.kappa == pytest.approx(sk, abs=1e-10)
    p = counts / counts.sum()
    w = weight_matrix(len(cats), weights)
    assert result.se == pytest.approx(_delta_method_se(p, w, counts.sum()), rel=1e-5, abs=1e-7)
    assert result.se0 == pytest.approx(_delta_method_se(np.outer(p.sum(1), p.sum(0)), w, counts.sum()),
                                       rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    "kappa, label",
    [(-0.05, "poor"), (0.0, "slight"), (0.20, "slight"), (0.204, "slight"), (0.21, "fair"), (0.40, "fair"),
     (0.41, "moderate"), (0.60, "moderate"), (0.61, "substantial"), (0.80, "substantial"), (0.81, "almost perfect"),
     (1.0, "almost perfect"), (math.nan, "undefined")],
)
def test_landis_koch_labels(kappa, label):
    assert landis_koch_label(kappa) == label


def test_category_order_and_undefined_kappa():
    assert order_categories(["10", "9", "2"]) == ("2", "9", "10")
    assert order_categories(["4A", "5", "2", "4C", "3"]) == ("2", "3", "4A", "4C", "5")
    result = cohen_kappa(["2", "2"], ["2", "2"])
    assert math.isnan(result.kappa) and result.label == "undefined"
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa(["1", "2"], ["1"])


def test_cli_kappa_json(tmp_path, capsys):
    path = tmp_path / "k.csv"
    rows = [("0", "1")] * 4 + [("0", "2")] + [("1", "1")] * 8 + [("2", "1")] + [("2", "2")] * 5
    path.write_text("r1,r2\n" + "\n".join(f"{x},{y}" for x, y in rows) + "\n")
    assert cli_main(["stats", "kappa", str(path), "--rater", "r1", "--rater", "r2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["kappa"], 4) == 0.4842 and round(out["se"], 4) == 0.1380
    assert set(out) >= {"kappa", "se", "ci", "z", "p", "label"} and out["label"] == "moderate"
    assert cli_main(["stats", "kappa", str(path), "--rater", "r1", "--rater", "r3"]) == 1
    assert "missing column 'r3'" in capsys.readouterr().err
