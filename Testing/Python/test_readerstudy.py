"""Reader studies: the CSV format (round trip and clear errors), the simulator's known truth, the analysis tables
against the evaluation primitives they are built from, the report writer, the CLI and the shipped example."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from MammoDNNLib.cli import main as cli_main
from MammoDNNLib.errors import InputError
from MammoDNNLib.evaluation.kappa import cohen_kappa
from MammoDNNLib.evaluation.mrmc import MrmcData, analyze_mrmc
from MammoDNNLib.evaluation.roc import delong_test, delong_unpaired_test, roc_curve
from MammoDNNLib.evaluation.wilcoxon import wilcoxon_signed_rank
from MammoDNNLib.readerstudy import (
    AnalysisConfig,
    GroupSpec,
    SimulationConfig,
    analyze_reader_study,
    read_reader_study,
    simulate_reader_study,
    write_reader_study,
    write_report,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reader_study" / "readings.csv"
EXAMPLE_SEED = 2024  # examples/reader_study/README.md: made by `mammodnn stats simulate-reader-study --seed 2024`


@pytest.fixture(scope="module")
def small_study():
    config = SimulationConfig(n_cases=60, seed=5)
    return simulate_reader_study(config)


def test_round_trip_through_csv(small_study, tmp_path):
    study, _ = small_study
    path = write_reader_study(study, tmp_path / "readings.csv")
    again = read_reader_study(path)
    assert again.readers == study.readers and again.cases == study.cases and again.groups == ("junior", "senior")
    assert again.finding_types == study.finding_types
    for kind in study.finding_types:
        np.testing.assert_array_equal(again.scores[kind], study.scores[kind])
        np.testing.assert_array_equal(again.present[kind], study.present[kind])
        np.testing.assert_array_equal(again.truth[kind], study.truth[kind])
    np.testing.assert_array_equal(again.time_s, study.time_s)
    assert (again.birads == study.birads).all()
    assert again.label("junior", "unaided") == "J_noAI" and again.label("senior", "aided") == "S_AI"


def _rewrite(path: Path, edit) -> Path:
    lines = path.read_text().splitlines()
    out = path.with_name("edited.csv")
    out.write_text("\n".join(edit(lines)) + "\n")
    return out


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: lines[:-1], "not fully crossed: 1 reading"),
        (lambda lines: lines + [lines[1]], "reads case 'C001' unaided twice"),
        (lambda lines: [lines[0].replace("modality", "mode")] + lines[1:], "missing column 'modality'"),
        (lambda lines: [lines[0]] + [lines[1].replace(",unaided,", ",maybe,")] + lines[2:], "unknown modality 'maybe'"),
        (lambda lines: [lines[0]] + [lines[1].replace(",junior,", ",senior,")] + lines[2:], "is in group"),
        (lambda lines: [lines[0]] + [lines[1][: lines[1].rindex(",")] + ",1" if lines[1].endswith(",0")
                                     else lines[1][: lines[1].rindex(",")] + ",0"] + lines[2:],
         "has 'distortion_truth'"),
        (lambda lines: [lines[0]] + [lines[1].replace(",unaided,", ",unaided,x", 1)] + lines[2:], "not numeric"),
    ],
)
def test_bad_reader_study_tables_are_clear_errors(small_study, tmp_path, edit, message):
    study, _ = small_study
    path = write_reader_study(study, tmp_path / "readings.csv")
    with pytest.raises(InputError, match=message) as info:
        read_reader_study(_rewrite(path, edit))
    assert "edited.csv" in str(info.value)


def test_simulator_recovers_the_known_aucs():
    # one reader per group, many cases: each pooled AUC estimates Φ(d·m/√2) within sampling error
    config = SimulationConfig(
        n_cases=1500, seed=1,
        groups=(GroupSpec("junior", 1, 1.0, 1.6, 90, 70), GroupSpec("senior", 1, 1.5, 1.9, 80, 60)),
    )
    study, truth = simulate_reader_study(config)
    for kind in study.finding_types:
        for group in study.groups:
            for i, modality in enumerate(("unaided", "aided")):
                j = study.readers_in(group)[0]
                curve = roc_curve(study.truth[kind], study.scores[kind][i, j])
                expected = truth.expected_auc[(group, modality, kind)]
                # rounding scores to 0..100 loses a little AUC (ties); 4 SE covers sampling and that loss
                assert abs(curve.auc - expected) < 4 * curve.se + 0.01, (kind, group, modality)
    # prevalences and reading times follow the configuration
    for kind, p in config.prevalence.items():
        assert abs(study.truth[kind].mean() - p) < 4 * math.sqrt(p * (1 - p) / 1500)
    # reading times: log-normal around each group's median (many readers average out the reader effect)
    many = SimulationConfig(n_cases=100, seed=3, groups=(GroupSpec("junior", 20, 1.0, 1.6, 90, 70),))
    times, _ = simulate_reader_study(many)
    assert np.median(times.time_s[0]) == pytest.approx(90, rel=0.12)
    assert np.median(times.time_s[1]) == pytest.approx(70, rel=0.12)


def test_simulated_readings_are_correlated_within_a_case():
    study, _ = simulate_reader_study(SimulationConfig(n_cases=400, seed=2))
    latent = stats.norm.ppf(np.clip(study.scores["mass"] / 100.0, 0.005, 0.995))
    negatives = ~study.truth["mass"]
    r_readers = np.corrcoef(latent[0, 0, negatives], latent[0, 1, negatives])[0, 1]
    r_modalities = np.corrcoef(latent[0, 0, negatives], latent[1, 0, negatives])[0, 1]
    # configured: Var(C) = 0.3 shared by all readings, + Var(RC) = 0.2 within a reader, + Var(MC) = 0.1 within a
    # modality (correlations of the latent; the clipping and rounding of the 0–100 scale attenuates them slightly)
    assert 0.25 < r_readers < 0.55 and 0.35 < r_modalities < 0.65


def test_simulation_is_reproducible_and_validated():
    a, _ = simulate_reader_study(SimulationConfig(n_cases=20, seed=9))
    b, _ = simulate_reader_study(SimulationConfig(n_cases=20, seed=9))
    np.testing.assert_array_equal(a.scores["mass"], b.scores["mass"])
    with pytest.raises(ValueError, match="variance components"):
        SimulationConfig(case_variance=0.9, reader_case_variance=0.2)
    with pytest.raises(ValueError, match="prevalence"):
        SimulationConfig(prevalence={"mass": 1.0})


def test_analysis_tables_are_the_evaluation_primitives(small_study):
    study, _ = small_study
    analysis = analyze_reader_study(study)
    kinds, groups = study.finding_types, study.groups
    assert len(analysis.table1) == len(kinds) * len(groups) * 2
    assert len(analysis.table2) == len(kinds) * 4
    # Table 1, J_AI mass: the pooled readings of the junior readers with AI
    row = next(r for r in analysis.table1 if r.finding_type == "mass" and r.label == "J_AI")
    juniors = study.readers_in("junior")
    pooled = study.scores["mass"][1, juniors].reshape(-1)
    truth = np.tile(study.truth["mass"], len(juniors))
    direct = roc_curve(truth, pooled)
    assert row.curve.auc == direct.auc and row.curve.youden == direct.youden
    # Table 2: the study's four comparisons, in its order; paired within a group, unpaired between groups
    comparisons = [(r.comparison.a, r.comparison.b, r.comparison.paired) for r in analysis.table2
                   if r.finding_type == "mass"]
    assert comparisons == [("J_noAI", "J_AI", True), ("S_AI", "J_AI", False), ("S_noAI", "J_noAI", False),
                           ("S_noAI", "S_AI", True)]
    first = next(r.comparison for r in analysis.table2 if r.finding_type == "mass")
    unaided = study.scores["mass"][0, juniors].reshape(-1)
    assert first.p == delong_test(truth, unaided, pooled).p
    seniors = study.readers_in("senior")
    s_ai = study.scores["mass"][1, seniors].reshape(-1)
    between = next(r.comparison for r in analysis.table2 if r.comparison.a == "S_AI" and r.finding_type == "mass")
    assert between.p == delong_unpaired_test(np.tile(study.truth["mass"], len(seniors)), s_ai, truth, pooled).p
    # Table 3: Wilcoxon on reading times paired by reader and case
    t3 = {r.group: r for r in analysis.table3}
    direct_w = wilcoxon_signed_rank(study.time_s[0, juniors].reshape(-1), study.time_s[1, juniors].reshape(-1))
    assert t3["junior"].p == direct_w.p and t3["junior"].unaided.median == direct_w.x.median
    assert set(t3) == {"junior", "senior", "all"}
    # Table 4: kappa between two junior readers on BI-RADS without AI
    k = next(r for r in analysis.table4 if r.item == "birads" and r.label == "J_noAI")
    ja, jb = study.readers.index(k.reader_a), study.readers.index(k.reader_b)
    direct_k = cohen_kappa(study.birads[0, ja].tolist(), study.birads[0, jb].tolist())
    assert k.result.kappa == direct_k.kappa and k.result.label == direct_k.label
    # MRMC: aided − unaided over all readers, as the evaluation module computes it
    m = next(r for r in analysis.mrmc if r.finding_type == "mass" and r.readers == "all")
    data = MrmcData(("aided", "unaided"), study.readers, study.cases, study.truth["mass"],
                    study.scores["mass"][::-1])
    assert m.result.random.p == analyze_mrmc(data).random.p
    assert m.result.difference == pytest.approx(m.result.treatment_aucs[0] - m.result.treatment_aucs[1])


def test_mrmc_detects_a_large_aid_effect_and_not_a_null_one():
    effect = SimulationConfig(
        n_cases=200, seed=4,
        prevalence={"mass": 0.4},
        groups=(GroupSpec("junior", 4, 1.0, 2.0, 90, 70), GroupSpec("senior", 4, 1.0, 2.0, 80, 60)),
    )
    analysis = analyze_reader_study(simulate_reader_study(effect)[0])
    row = next(r for r in analysis.mrmc if r.readers == "all")
    assert row.result.random.p < 0.001 and row.result.difference > 0.1
    null = replace(effect, groups=(GroupSpec("junior", 4, 1.5, 1.5, 90, 90), GroupSpec("senior", 4, 1.5, 1.5, 80, 80)))
    analysis = analyze_reader_study(simulate_reader_study(null)[0])
    row = next(r for r in analysis.mrmc if r.readers == "all")
    lo, hi = row.result.random.ci
    assert lo < 0 < hi and abs(row.result.difference) < 0.05  # no effect simulated


def test_presence_only_tables_and_missing_optional_columns(small_study, tmp_path):
    study, _ = small_study
    path = write_reader_study(study, tmp_path / "full.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    drop = {i for i, name in enumerate(header) if name.endswith("_score") or name in ("birads", "time_s")}
    trimmed = tmp_path / "presence.csv"
    trimmed.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i not in drop)
                                 for line in lines) + "\n")
    presence = read_reader_study(trimmed)
    assert presence.score_source["mass"] == "present" and presence.birads is None and presence.time_s is None
    analysis = analyze_reader_study(presence)
    assert not analysis.table3 and all(r.item != "birads" for r in analysis.table4)
    assert any("time_s" in note for note in analysis.notes)
    row = next(r for r in analysis.table1 if r.finding_type == "mass" and r.label == "J_noAI")
    # a binary call's AUC is (sensitivity + specificity) / 2
    assert row.curve.auc == pytest.approx((row.curve.youden.sensitivity + row.curve.youden.specificity) / 2)


def test_report_files(small_study, tmp_path):
    study, _ = small_study
    analysis = analyze_reader_study(study, AnalysisConfig(ci_method="binomial-exact", mrmc_covariance="delong"))
    written = write_report(analysis, tmp_path / "out", figures=False)
    for key in ("table1", "table2", "table3", "table4", "mrmc", "json", "markdown", "html"):
        assert written[key].is_file() and written[key].stat().st_size > 0
    document = json.loads(written["json"].read_text())
    assert document["config"]["ci_method"] == "binomial-exact"
    assert len(document["table1"]) == len(analysis.table1)
    markdown = written["markdown"].read_text()
    for title in ("Table 1.", "Table 2.", "Table 3.", "Table 4.", "MRMC analysis", "J_noAI vs J_AI"):
        assert title in markdown
    header = written["table1"].read_text().splitlines()[0].split(",")
    assert {"auc", "ci_lower", "ci_upper", "se", "p_vs_half", "sensitivity", "specificity", "cutoff"} <= set(header)


@pytest.mark.slow
def test_cli_reader_study_on_the_shipped_example(tmp_path, capsys):
    out = tmp_path / "analysis"
    assert cli_main(["stats", "reader-study", str(EXAMPLE), "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["n_cases"] == 120 and set(document["readers"]) == {"junior", "senior"}
    for name in ("figure2_junior_roc", "figure3_senior_roc", "roc_overview"):
        for suffix in (".png", ".pdf"):
            path = out / "figures" / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 1000
    assert (out / "report.md").is_file() and (out / "report.html").is_file()


def test_shipped_example_is_the_simulator_output(tmp_path):
    regenerated = tmp_path / "readings.csv"
    assert cli_main(["stats", "simulate-reader-study", str(regenerated), "--seed", str(EXAMPLE_SEED)]) == 0
    assert regenerated.read_bytes() == EXAMPLE.read_bytes()


def test_cli_reader_study_bad_table(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("reader,group,case,modality\nR1,junior,C1,unaided\n")
    assert cli_main(["stats", "reader-study", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "not fully crossed" in err
