"""Paired Wilcoxon signed-rank test against R's printed example and scipy where their conventions overlap.

Reference: R's ``wilcox.test(x, y, paired = TRUE)`` on the depression data of its help page (Hollander & Wolfe)
gives V = 40, p-value = 0.03906 (listed in ../shared/README.md).
scipy's ``wilcoxon(zero_method="wilcox")`` drops zero differences like R; its exact test and its normal
approximation with ``correction=True`` give R's p values (scipy's statistic is min(V+, V−), so only p is compared,
and V is checked through V+ + V− = n(n+1)/2).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.evaluation.wilcoxon import signrank_cdf, wilcoxon_signed_rank

X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_r_help_page_example():
    result = wilcoxon_signed_rank(X, Y)
    assert result.statistic == 40
    assert round(result.p, 5) == 0.03906
    assert result.method == "exact"
    assert (result.x.median, result.x.min, result.x.max) == (1.68, 0.50, 3.06)
    assert (result.y.median, result.y.min, result.y.max) == (1.06, 0.598, 3.14)
    w, p = stats.shapiro(np.subtract(X, Y))
    assert result.shapiro.w == pytest.approx(w) and result.shapiro.p == pytest.approx(p)


def test_signrank_distribution_is_a_distribution():
    for n in (1, 5, 12):
        top = n * (n + 1) // 2
        assert signrank_cdf(top, n) == pytest.approx(1.0)
        assert signrank_cdf(-1, n) == 0.0
        assert signrank_cdf(0, n) == pytest.approx(0.5**n)


@st.composite
def paired(draw):
    n = draw(st.integers(2, 70))
    ints = st.integers(-30, 30)
    x = np.array(draw(st.lists(ints, min_size=n, max_size=n)), dtype=float)
    y = np.array(draw(st.lists(ints, min_size=n, max_size=n)), dtype=float)
    return x, y


@settings(max_examples=80, deadline=None)
@given(paired())
def test_properties_against_scipy(data):
    x, y = data
    d = x - y
    nonzero = d[d != 0]
    if nonzero.size == 0:
        with pytest.raises(ValueError, match="every pair is equal"):
            wilcoxon_signed_rank(x, y)
        return
    result = wilcoxon_signed_rank(x, y)
    n = nonzero.size
    ranks = stats.rankdata(np.abs(nonzero))
    assert result.statistic == pytest.approx(ranks[nonzero > 0].sum())
    if result.method == "exact":
        reference = stats.wilcoxon(x, y, zero_method="wilcox", method="exact")
    else:
        reference = stats.wilcoxon(x, y, zero_method="wilcox", correction=True, method="approx")
    assert result.p == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-12)
    assert min(result.statistic, n * (n + 1) / 2 - result.statistic) == pytest.approx(reference.statistic)
    # R's rule: exact only below 50 differences without ties or zeros
    ties = len(np.unique(np.abs(nonzero))) < n
    assert (result.method == "exact") == (n < 50 and not ties and nonzero.size == d.size)


def test_input_errors():
    with pytest.raises(ValueError, match="paired"):
        wilcoxon_signed_rank([1, 2], [1])
    with pytest.raises(ValueError, match="finite"):
        wilcoxon_signed_rank([1, np.nan], [1, 2])


def test_cli_wilcoxon_json_and_unpaired_rows(tmp_path, capsys):
    path = tmp_path / "w.csv"
    path.write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in zip(X, Y)) + "\n")
    assert cli_main(["stats", "wilcoxon", str(path), "--x", "x", "--y", "y", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statistic"] == 40 and round(out["p"], 5) == 0.03906 and out["method"] == "exact"
    assert out["x"]["median"] == 1.68 and out["y"]["max"] == 3.14
    assert set(out["shapiro"]) == {"w", "p"}
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,\n")
    assert cli_main(["stats", "wilcoxon", str(bad), "--x", "x", "--y", "y"]) == 1
    assert "unpaired row(s)" in capsys.readouterr().err
