"""``mammodnn stats``: ROC/DeLong, kappa, Wilcoxon, FROC, MRMC and the reader-study analysis on CSV tables.

Every subcommand prints a readable summary, or with ``--json`` one JSON document for scripts (NaN → null).
Statistical conventions are in docs/statistics.md and the docstrings of :mod:`MammoDNNLib.evaluation`.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from ..errors import InputError, MammoDNNError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="reader-study and evaluation statistics (ROC, kappa, Wilcoxon, FROC, MRMC)",
        description="Statistics on CSV/TSV tables; each subcommand has --json for scripts.",
    )
    parser.set_defaults(func=lambda args: _help(parser))
    commands = parser.add_subparsers(dest="stats_command", metavar="STATISTIC")
    _add_roc(commands)
    _add_kappa(commands)
    _add_wilcoxon(commands)
    _add_froc(commands)
    _add_mrmc(commands)
    _add_reader_study(commands)
    _add_simulate(commands)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _emit_json(payload) -> None:
    from ..evaluation.serialize import dumps

    print(dumps(payload))


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "NA"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "NA"
    return f"{value:.4g}" if value >= 1e-4 else f"{value:.2e}"


def _table(path: str):
    from ..evaluation.tables import read_table

    return read_table(path)


# ------------------------------------------------------------------------------------------------------ roc


def _add_roc(commands) -> None:
    p = commands.add_parser("roc", help="empirical AUC, DeLong SE/CI, Youden cut-off; paired DeLong tests")
    p.add_argument("table", help="CSV/TSV with a truth column and one or more score columns")
    p.add_argument("--truth", required=True, metavar="COL", help="reference-standard column")
    p.add_argument("--positive", required=True, metavar="LABEL", help="truth value of the positive class")
    p.add_argument("--score", required=True, action="append", metavar="COL",
                   help="score column (higher = more likely positive); repeat for several scores")
    p.add_argument("--ci", choices=("delong", "binomial-exact"), default="delong",
                   help="AUC confidence interval: DeLong normal (pROC) or binomial exact (MedCalc's default)")
    p.add_argument("--direction", choices=("higher", "lower"), default="higher",
                   help="whether higher or lower scores indicate the positive class (default: higher)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--curve", action="store_true", help="include the curve points in the JSON")
    _json_flag(p)
    p.set_defaults(func=_run_roc)


def _run_roc(args) -> int:
    from ..evaluation.roc import analyze_roc
    from ..evaluation.tables import binary_truth

    table = _table(args.table)
    table.require(args.truth, *args.score)
    if len(set(args.score)) != len(args.score):
        raise InputError(args.table, "a score column is given twice")
    truth = binary_truth(table, args.truth, args.positive)
    scores = {name: table.numeric(name) for name in args.score}
    try:
        result = analyze_roc(truth, scores, direction=args.direction, ci_method=args.ci, confidence=args.confidence)
    except ValueError as exc:
        raise InputError(args.table, str(exc)) from None
    if args.json:
        _emit_json(result.to_dict(include_curves=args.curve))
        return 0
    level = f"{args.confidence * 100:g}%"
    print(f"{args.table}: truth {args.truth!r} == {args.positive!r}; higher scores {'positive' if args.direction == 'higher' else 'negative'}")
    for name, c in result.curves.items():
        print(f"\n{name}: AUC {_f(c.auc)} (SE {_f(c.se)}, {level} CI {_f(c.ci[0])}–{_f(c.ci[1])}, {c.ci_method}); "
              f"p vs 0.5 = {_p(c.p_vs_half)}; {c.n_positive} positive, {c.n_negative} negative")
        print(f"  Youden: J = {_f(c.youden.index)} at threshold {c.youden.threshold:g} (positive when score > "
              f"threshold, i.e. >= {c.youden.min_positive_score:g}): sensitivity {_f(c.youden.sensitivity)}, "
              f"specificity {_f(c.youden.specificity)}")
    if result.comparisons:
        print("\nPaired DeLong tests:")
        for c in result.comparisons:
            print(f"  {c.a} vs {c.b}: difference {_f(c.difference)} ({level} CI {_f(c.ci[0])}–{_f(c.ci[1])}), "
                  f"Z = {_f(c.statistic, 3)}, p = {_p(c.p)}")
    return 0


# ---------------------------------------------------------------------------------------------------- kappa


def _add_kappa(commands) -> None:
    p = commands.add_parser("kappa", help="Cohen's kappa between two raters, with SE, CI, z test, Landis-Koch label")
    p.add_argument("table")
    p.add_argument("--rater", required=True, action="append", metavar="COL", help="a rater's column (give two)")
    p.add_argument("--weights", choices=("none", "linear", "quadratic"), default="none")
    p.add_argument("--confidence", type=float, default=0.95)
    _json_flag(p)
    p.set_defaults(func=_run_kappa)


def _run_kappa(args) -> int:
    from ..evaluation.kappa import cohen_kappa

    if len(args.rater) != 2:
        raise MammoDNNError(f"give exactly two --rater columns (got {len(args.rater)})")
    table = _table(args.table)
    table.require(*args.rater)
    a = table.text(args.rater[0])
    b = table.text(args.rater[1])
    result = cohen_kappa(a, b, weights=args.weights, confidence=args.confidence)
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(f"{args.table}: {args.rater[0]} vs {args.rater[1]}, {result.n} subjects, categories "
          f"{', '.join(result.categories)}, weights {result.weights}")
    print(f"kappa = {_f(result.kappa)} (ASE {_f(result.se)}, {args.confidence * 100:g}% CI {_f(result.ci[0])}–"
          f"{_f(result.ci[1])}); H0 kappa = 0: SE0 {_f(result.se0)}, z = {_f(result.z, 3)}, p = {_p(result.p)}; "
          f"{result.label} agreement (Landis & Koch)")
    return 0


# ------------------------------------------------------------------------------------------------- wilcoxon


def _add_wilcoxon(commands) -> None:
    p = commands.add_parser("wilcoxon", help="paired Wilcoxon signed-rank test (as R), medians, Shapiro-Wilk")
    p.add_argument("table")
    p.add_argument("--x", required=True, metavar="COL")
    p.add_argument("--y", required=True, metavar="COL")
    p.add_argument("--no-correct", action="store_true", help="no continuity correction in the normal approximation")
    _json_flag(p)
    p.set_defaults(func=_run_wilcoxon)


def _run_wilcoxon(args) -> int:
    from ..evaluation.wilcoxon import wilcoxon_signed_rank

    table = _table(args.table)
    table.require(args.x, args.y)
    x = table.numeric(args.x, allow_missing=True)
    y = table.numeric(args.y, allow_missing=True)
    unpaired = [table.line_of(i) for i in range(len(table)) if math.isnan(x[i]) != math.isnan(y[i])]
    if unpaired:
        raise InputError(args.table, f"unpaired row(s): {args.x!r} and {args.y!r} must both have a value; line "
                                     f"{unpaired[0]}" + (f" and {len(unpaired) - 1} more" if len(unpaired) > 1 else ""))
    keep = ~np.isnan(x)  # rows where both are missing are skipped
    try:
        result = wilcoxon_signed_rank(x[keep], y[keep], correct=not args.no_correct)
    except ValueError as exc:
        raise InputError(args.table, str(exc)) from None
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(f"{args.table}: {args.x} vs {args.y}, {result.n} pairs ({result.n_nonzero} non-zero differences)")
    print(f"  {args.x}: median {result.x.median:g} ({result.x.min:g}–{result.x.max:g})")
    print(f"  {args.y}: median {result.y.median:g} ({result.y.min:g}–{result.y.max:g})")
    print(f"Wilcoxon signed-rank: V = {result.statistic:g}, p = {_p(result.p)} ({result.method})")
    if result.shapiro is not None:
        print(f"Shapiro-Wilk on the differences: W = {_f(result.shapiro.w)}, p = {_p(result.shapiro.p)}")
    return 0


# ----------------------------------------------------------------------------------------------------- froc


def _add_froc(commands) -> None:
    p = commands.add_parser("froc", help="lesion-level FROC with bootstrap CIs (per type when typed)")
    p.add_argument("--truth", required=True, help="lesion boxes: image,x0,y0,x1,y1[,lesion_id,type]")
    p.add_argument("--detections", required=True, help="detections: image,score,x0,y0,x1,y1[,type]")
    p.add_argument("--hit", default="center", help="'center' (default: detection centre in lesion box) or 'iou:T'")
    p.add_argument("--images", help="images to analyse: one per line, or a table with 'image' (and 'case') columns")
    p.add_argument("--truth-image-column", default="image", metavar="COL")
    p.add_argument("--detections-image-column", default="image", metavar="COL")
    p.add_argument("--fpi", default="0.125,0.25,0.5,1,2,4,8", help="false positives per image to report")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates (0: no CIs)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    _json_flag(p)
    p.set_defaults(func=_run_froc)


def _run_froc(args) -> int:
    from ..evaluation.froc import (
        FrocConfig,
        HitCriterion,
        froc,
        read_detections,
        read_image_list,
        read_lesions,
    )

    try:
        hit = HitCriterion.parse(args.hit)
        fpi = tuple(float(v) for v in args.fpi.split(",") if v.strip())
    except ValueError as exc:
        raise MammoDNNError(f"--hit/--fpi: {exc}") from None
    if not fpi or any(v <= 0 for v in fpi):
        raise MammoDNNError("--fpi needs positive values")
    lesions = read_lesions(args.truth, image_column=args.truth_image_column)
    detections = read_detections(args.detections, image_column=args.detections_image_column)
    images, cases = read_image_list(args.images) if args.images else (None, None)
    config = FrocConfig(hit=hit, fpi=fpi, n_bootstrap=args.bootstrap, confidence=args.confidence, seed=args.seed)
    try:
        result = froc(lesions, detections, images=images, cases=cases, config=config)
    except ValueError as exc:
        raise InputError(args.truth, str(exc)) from None
    if args.json:
        _emit_json(result.to_dict())
        return 0

    def show(name: str, r) -> None:
        print(f"{name}: {r.n_lesions} lesions on {r.n_images} images, {r.n_detections} detections "
              f"({r.n_found} lesions found, {r.n_false_positives} false positives at the lowest threshold; hit: {r.hit})")
        for point in r.points:
            ci = "" if point.ci is None else f" ({args.confidence * 100:g}% CI {_f(point.ci[0], 3)}–{_f(point.ci[1], 3)})"
            print(f"  {point.fpi:g} FP/image: sensitivity {_f(point.sensitivity, 3)}{ci}")
        print(f"  mean sensitivity over these points: {_f(r.mean_sensitivity, 3)}")

    show("all lesions", result)
    for kind, sub in result.by_type.items():
        show(kind, sub)
    return 0


# ----------------------------------------------------------------------------------------------------- mrmc


def _add_mrmc(commands) -> None:
    p = commands.add_parser("mrmc", help="Obuchowski-Rockette MRMC analysis of AUC differences (Hillis ddf)")
    p.add_argument("table", help="long format: one row per reader x treatment x case")
    p.add_argument("--reader", required=True, metavar="COL")
    p.add_argument("--treatment", required=True, metavar="COL")
    p.add_argument("--case", required=True, metavar="COL")
    p.add_argument("--truth", required=True, metavar="COL")
    p.add_argument("--score", required=True, metavar="COL")
    p.add_argument("--positive", default="1", metavar="LABEL", help="truth value of diseased cases (default 1)")
    p.add_argument("--covariance", choices=("jackknife", "delong", "bootstrap"), default="jackknife")
    p.add_argument("--treatments", metavar="A,B", help="treatment order; differences are first minus second")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="replicates for --covariance bootstrap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confidence", type=float, default=0.95)
    _json_flag(p)
    p.set_defaults(func=_run_mrmc)


def _run_mrmc(args) -> int:
    from ..evaluation.mrmc import analyze_mrmc, mrmc_data
    from ..evaluation.tables import binary_truth

    table = _table(args.table)
    table.require(args.reader, args.treatment, args.case, args.truth, args.score)
    truth = binary_truth(table, args.truth, args.positive)
    order = [t.strip() for t in args.treatments.split(",")] if args.treatments else None
    data = mrmc_data(
        table.text(args.reader), table.text(args.treatment), table.text(args.case), truth, table.numeric(args.score),
        treatments=order, source=table.path, lines=table.line_numbers,
    )
    result = analyze_mrmc(data, covariance=args.covariance, confidence=args.confidence, n_bootstrap=args.bootstrap,
                          seed=args.seed)
    if args.json:
        _emit_json(result.to_dict())
        return 0
    level = f"{args.confidence * 100:g}%"
    print(f"{args.table}: {len(result.treatments)} treatments, {len(result.readers)} readers, "
          f"{result.n_positive + result.n_negative} cases ({result.n_negative} negative, {result.n_positive} positive); "
          f"covariance: {args.covariance}")
    for i, t in enumerate(result.treatments):
        aucs = ", ".join(f"{r}: {_f(result.reader_aucs[i, j])}" for j, r in enumerate(result.readers))
        print(f"  treatment {t}: mean AUC {_f(result.treatment_aucs[i])} ({aucs})")
    print(f"  difference {result.treatments[0]} - {result.treatments[1]}: {_f(result.difference)}")
    c = result.components
    cov = result.covariance
    if c is not None:
        print(f"OR components: Var(R) {c.var_r:.8f}, Var(TR) {c.var_tr:.8f}, Cov1 {c.cov1:.8f}, Cov2 {c.cov2:.8f}, "
              f"Cov3 {c.cov3:.8f}, Var(error) {c.var_error:.8f}")
    elif cov is not None:
        print(f"OR error (co)variances: Var {cov.var:.8f}, Cov1 {cov.cov1:.8f}")
    for test in (result.random, result.fixed_readers, result.fixed_cases):
        if test is None:
            continue
        d = test.difference
        df2 = "inf" if test.df2 is None else f"{test.df2:.2f}"
        print(f"{test.analysis}: F({test.df1:g}, {df2}) = {_f(test.f, 3)}, p = {_p(test.p)}; difference "
              f"{_f(d.estimate)} (SE {_f(d.se)}, {level} CI {_f(d.ci[0])} to {_f(d.ci[1])})")
    return 0


# ---------------------------------------------------------------------------------------------- reader study


def _add_reader_study(commands) -> None:
    p = commands.add_parser("reader-study", help="the study's Tables 1-4, MRMC and ROC figures from a readings CSV")
    p.add_argument("readings", help="reader-study CSV (format in docs/statistics.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (tables, report, figures)")
    p.add_argument("--ci", choices=("delong", "binomial-exact"), default="delong", help="AUC confidence intervals")
    p.add_argument("--covariance", choices=("jackknife", "delong", "bootstrap"), default="jackknife",
                   help="MRMC error covariance")
    p.add_argument("--kappa-weights", choices=("none", "linear", "quadratic"), default="none",
                   help="weights for BI-RADS kappa")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--no-figures", action="store_true", help="skip the ROC figures")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _json_flag(p)
    p.set_defaults(func=_run_reader_study)


def _run_reader_study(args) -> int:
    from ..readerstudy import AnalysisConfig, analyze_reader_study, read_reader_study, write_report

    study = read_reader_study(args.readings)
    try:
        config = AnalysisConfig(confidence=args.confidence, ci_method=args.ci, mrmc_covariance=args.covariance,
                                kappa_weights=args.kappa_weights)
    except ValueError as exc:
        raise MammoDNNError(str(exc)) from None
    analysis = analyze_reader_study(study, config)
    written = write_report(analysis, args.out, figures=not args.no_figures)
    if args.json:
        _emit_json(analysis.to_dict() | {"files": {k: str(v) for k, v in written.items()}})
    elif not args.quiet:
        print(f"{args.readings}: {len(study.readers)} readers, {len(study.cases)} cases, "
              f"finding types {', '.join(study.finding_types)}")
        print(f"wrote {len(written)} files to {args.out}: report {written['markdown']}")
    return 0


def _add_simulate(commands) -> None:
    p = commands.add_parser("simulate-reader-study", help="write a simulated reader study CSV with known truth")
    p.add_argument("out", help="CSV to write")
    p.add_argument("--cases", type=int, default=120)
    p.add_argument("--readers-per-group", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from dataclasses import replace

    from ..readerstudy import SimulationConfig, simulate_reader_study, write_reader_study

    base = SimulationConfig()
    try:
        config = replace(base, n_cases=args.cases, seed=args.seed,
                         groups=tuple(replace(g, n_readers=args.readers_per_group) for g in base.groups))
    except ValueError as exc:
        raise MammoDNNError(str(exc)) from None
    study, _ = simulate_reader_study(config)
    path = write_reader_study(study, args.out)
    print(f"wrote {path}: {len(study.readers)} readers x {len(study.cases)} cases x 2 modalities", file=sys.stderr)
    return 0

