"""Obuchowski-Rockette MRMC analysis against the published outputs of the field's tools.

References (values to the digits the tools print):

* Van Dyke data, trapezoidal AUC, jackknife covariance — the Iowa OR-DBM MRMC 2.5 printout shipped with RJafroc:
  github.com/dpc10ster/RJafroc, inst/obumrm2/VanDyke-traparea-jackknife-obuch-anova.txt (the same numbers as
  MRMCaov's fixed-reader jackknife printout in docs/jss/MRMCaov.tex).
* Van Dyke data, empirical AUC, DeLong covariance — MRMCaov's summary printout:
  github.com/brian-j-smith/MRMCaov, docs/jss/MRMCaov.tex ("Covariance method: DeLong").
* Franken data (the Hillis-ddf edge case: Cov2 < Cov3, so ddf = (t−1)(r−1)) — Iowa OR-DBM MRMC 2.51 printout in
  RJafroc's tests: tests/testthat/goodValues361/Iowa/Franken1.txt.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.errors import InputError
from MammoDNNLib.evaluation.mrmc import analyze_mrmc, error_covariance, mrmc_data
from MammoDNNLib.evaluation.tables import read_table


def _load(shared_dir, name):
    table = read_table(shared_dir / "reference" / "stats" / f"{name}.csv")
    return mrmc_data(table.text("reader"), table.text("treatment"), table.text("case"), table.numeric("truth") == 1,
                     table.numeric("rating"), source=table.path)


def close(value, printed: float, decimals: int) -> bool:
    """Does value round to the printed number (allowing for the tool's last-digit rounding)?"""
    return abs(value - printed) <= 0.5 * 10.0**-decimals * 1.0000001


@pytest.fixture(scope="module")
def vandyke(shared_dir):
    return _load(shared_dir, "vandyke")


@pytest.fixture(scope="module")
def franken(shared_dir):
    return _load(shared_dir, "franken")


def test_vandyke_jackknife_matches_iowa(vandyke):
    res = analyze_mrmc(vandyke, covariance="jackknife")
    iowa_aucs = [[0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
                 [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169]]
    assert all(close(a, b, 8) for a, b in zip(res.reader_aucs.ravel(), np.ravel(iowa_aucs)))
    assert close(res.treatment_aucs[0], 0.89703704, 8) and close(res.treatment_aucs[1], 0.94083736, 8)
    assert close(res.difference, -0.04380032, 8)
    assert close(res.ms_t, 0.00479617, 8) and close(res.ms_r, 0.00383620, 8) and close(res.ms_tr, 0.00055103, 8)
    assert close(res.ms_r_by_treatment[0], 0.00308263, 8) and close(res.ms_r_by_treatment[1], 0.00130460, 8)
    c = res.components
    for value, printed in [(c.var_r, 0.00153500), (c.var_tr, 0.00020040), (c.cov1, 0.00034661),
                           (c.cov2, 0.00034407), (c.cov3, 0.00023903), (c.var_error, 0.00080229)]:
        assert close(value, printed, 8)
    corr = c.correlations()
    assert close(corr["r1"], 0.43203138, 8) and close(corr["r2"], 0.42886683, 8) and close(corr["r3"], 0.29793328, 8)
    # Analysis 1: random readers and random cases
    rr = res.random
    assert close(rr.f, 4.46, 2) and close(rr.df2, 15.26, 2) and close(rr.p, 0.0517, 4)
    assert close(rr.denominator, 0.00107626, 8)
    assert close(rr.difference.se, 0.02075, 5) and close(rr.difference.statistic, -2.11, 2)
    assert close(rr.ci[0], -0.08796, 5) and close(rr.ci[1], 0.00036, 5)
    t1, t2 = rr.treatments
    assert close(t1.se, 0.03317360, 8) and close(t1.df, 12.74, 2)
    assert close(t1.ci[0], 0.82522360, 8) and close(t1.ci[1], 0.96885048, 8)
    assert close(t2.se, 0.02156637, 8) and close(t2.df, 12.71, 2)
    assert close(t2.ci[0], 0.89413783, 8) and close(t2.ci[1], 0.98753689, 8)
    # Analysis 2: fixed readers and random cases
    fr = res.fixed_readers
    assert close(fr.chi2, 5.47595, 5) and close(fr.p, 0.0193, 4)
    assert close(fr.difference.se, 0.01872, 5) and close(fr.difference.statistic, -2.34, 2)
    assert close(fr.ci[0], -0.08049, 5) and close(fr.ci[1], -0.00711, 5)
    assert close(fr.treatments[0].se, 0.02428971, 8) and close(fr.treatments[1].ci[1], 0.97371835, 8)
    assert close(res.covariance.var_by_treatment[0], 0.00101410, 8)
    assert close(res.covariance.cov2_by_treatment[1], 0.00020419, 8)
    iowa_readers = [(-0.02818, 0.02551, 0.2693), (-0.04654, 0.02630, 0.0768), (-0.01787, 0.03121, 0.5668),
                    (-0.02625, 0.01729, 0.1290), (-0.10016, 0.04406, 0.0230)]
    for diff, (estimate, se, p) in zip(res.per_reader, iowa_readers):
        assert close(diff.estimate, estimate, 5) and close(diff.se, se, 5) and close(diff.p, p, 4)
    assert close(res.covariance.var_by_reader[3], 0.00015058, 8) and close(res.covariance.cov1_by_reader[3],
                                                                            0.00000108, 8)
    # Analysis 3: random readers and fixed cases
    fc = res.fixed_cases
    assert close(fc.f, 8.70, 2) and fc.df2 == 4 and close(fc.p, 0.0420, 4)
    assert close(fc.difference.se, 0.01485, 5) and close(fc.ci[0], -0.08502, 5) and close(fc.ci[1], -0.00258, 5)
    assert close(fc.treatments[0].se, 0.02482994, 8) and close(fc.treatments[1].ci[0], 0.89598936, 8)


def test_vandyke_delong_matches_mrmcaov(vandyke):
    res = analyze_mrmc(vandyke, covariance="delong")
    c = res.components
    for value, printed in [(c.var_r, 0.0015364254), (c.var_tr, 0.0002045840), (c.var_error, 0.0007921325),
                           (c.cov1, 0.0003420090), (c.cov2, 0.0003395265), (c.cov3, 0.0002358497)]:
        assert close(value, printed, 10)
    assert close(c.correlations()["r1"], 0.4317573, 7)
    rr = res.random
    assert close(rr.f, 4.484854, 6) and close(rr.df2, 15.06611, 5) and close(rr.p, 0.05123303, 8)
    assert close(rr.denominator, 0.001069415, 9)
    assert close(rr.difference.se, 0.0206825, 7) and close(rr.difference.statistic, -2.117747, 6)
    assert close(rr.ci[0], -0.0878671960, 10) and close(rr.ci[1], 0.0002665519, 10)
    t1, t2 = rr.treatments
    assert close(t1.se, 0.03307642, 8) and close(t1.df, 12.59597, 5) and close(t1.ci[0], 0.8253461, 7)
    assert close(t2.se, 0.02150464, 8) and close(t2.df, 12.56530, 5) and close(t2.ci[1], 0.9874592, 7)


def test_franken_ddf_edge_case_matches_iowa(franken):
    res = analyze_mrmc(franken, covariance="jackknife")
    assert close(res.treatment_aucs[0], 0.84774989, 8) and close(res.treatment_aucs[1], 0.83689507, 8)
    c = res.components
    for value, printed in [(c.var_r, 0.00003776), (c.var_tr, -0.00071276), (c.cov1, 0.00079168),
                           (c.cov2, 0.00048364), (c.cov3, 0.00051251), (c.var_error, 0.00152578)]:
        assert close(value, printed, 8)
    assert c.cov2 < c.cov3  # the edge: max(Cov2 - Cov3, 0) = 0
    rr = res.random
    assert rr.df2 == pytest.approx(3.0)  # ddf_H = (t-1)(r-1)
    assert close(rr.f, 4.69, 2) and close(rr.p, 0.1188, 4) and close(rr.denominator, 0.00005020, 8)
    assert close(rr.ci[0], -0.00509, 5) and close(rr.ci[1], 0.02680, 5)
    t1, t2 = rr.treatments
    assert close(t1.df, 70.12, 2) and close(t2.df, 253.64, 2)
    assert close(t1.ci[0], 0.79908282, 8) and close(t2.ci[1], 0.88330585, 8)
    fr = res.fixed_readers
    assert close(fr.chi2, 0.32101, 5) and close(fr.p, 0.5710, 4) and close(fr.difference.se, 0.01916, 5)
    fc = res.fixed_cases
    assert close(fc.f, 4.69, 2) and fc.df2 == 3 and close(fc.p, 0.1188, 4)


def test_bootstrap_covariance_agrees_with_jackknife_and_is_reproducible(vandyke):
    jack = error_covariance(vandyke, "jackknife")
    boot = error_covariance(vandyke, "bootstrap", n_bootstrap=2000, seed=3)
    again = error_covariance(vandyke, "bootstrap", n_bootstrap=2000, seed=3)
    np.testing.assert_array_equal(boot.matrix, again.matrix)
    # 2000 replicates: Monte Carlo error of a variance estimate is about sqrt(2/2000) ≈ 3 %
    for name in ("var", "cov1", "cov2", "cov3"):
        assert getattr(boot, name) == pytest.approx(getattr(jack, name), rel=0.15)


def _rows(design):
    readers, treatments, cases, truth, scores = [], [], [], [], []
    for r, t, c, y, s in design:
        readers.append(r), treatments.append(t), cases.append(c), truth.append(y), scores.append(s)
    return readers, treatments, cases, truth, scores


def _crossed():
    rng = np.random.default_rng(0)
    return [(r, t, c, c % 2 == 0, float(rng.normal() + (c % 2 == 0))) for r in "AB" for t in "12" for c in range(6)]


def test_input_errors_are_clear():
    design = _crossed()
    with pytest.raises(InputError, match="not fully crossed.*1 reading"):
        mrmc_data(*_rows(design[:-1]), source="s.csv")
    with pytest.raises(InputError, match="read twice"):
        mrmc_data(*_rows(design + design[:1]), source="s.csv")
    flipped = list(design)
    r, t, c, y, s = flipped[0]
    flipped[0] = (r, t, c, not y, s)
    with pytest.raises(InputError, match="different truth"):
        mrmc_data(*_rows(flipped), source="s.csv")
    with pytest.raises(InputError, match="at least two treatments"):
        mrmc_data(*_rows([d for d in design if d[1] == "1"]), source="s.csv")
    with pytest.raises(InputError, match="same truth"):
        mrmc_data(*_rows([(r, t, c, True, s) for r, t, c, _, s in design]), source="s.csv")


def test_single_reader_gives_fixed_reader_analysis_only():
    design = [d for d in _crossed() if d[0] == "A"]
    res = analyze_mrmc(mrmc_data(*_rows(design)))
    assert res.random is None and res.fixed_cases is None and res.fixed_readers is not None


def test_cli_mrmc_json(shared_dir, capsys):
    path = shared_dir / "reference" / "stats" / "vandyke.csv"
    rc = cli_main(["stats", "mrmc", str(path), "--reader", "reader", "--treatment", "treatment", "--case", "case",
                   "--truth", "truth", "--score", "rating", "--covariance", "delong", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["treatments"]) == {"1", "2"}
    assert close(out["treatments"]["1"]["auc"], 0.8970370, 7) and len(out["treatments"]["2"]["reader_aucs"]) == 5
    assert close(out["difference"], -0.04380032, 8)
    assert close(out["random"]["f"], 4.484854, 6) and close(out["random"]["df2"], 15.06611, 5)
    assert out["random"]["df1"] == 1 and close(out["random"]["p"], 0.05123303, 8)
    assert close(out["random"]["ci"][0], -0.0878671960, 10)
    assert close(out["fixed_cases"]["p"], 0.04195875, 8) and out["fixed_readers"]["df2"] is None
    assert close(out["components"]["cov2"], 0.0003395265, 10)
    # reversed treatment order flips the difference
    rc = cli_main(["stats", "mrmc", str(path), "--reader", "reader", "--treatment", "treatment", "--case", "case",
                   "--truth", "truth", "--score", "rating", "--treatments", "2,1", "--json"])
    assert rc == 0 and close(json.loads(capsys.readouterr().out)["difference"], 0.04380032, 8)
