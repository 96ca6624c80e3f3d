"""Writing a reader-study analysis: the tables as CSV, the whole analysis as JSON, a Markdown and an HTML report.

The Markdown and HTML reports show the tables the way the study printed them (AUC (95 % CI), median (min–max),
p values to three decimals or "< 0.001") and state the methods and conventions beside them.
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.serialize import dumps
from ..vocabulary import FINDING_TYPE_BY_KEY
from .analysis import ReaderStudyAnalysis
from .format import MODALITY_SHORT

TABLE_FILES = {
    "table1": "table1_roc.csv",
    "table2": "table2_delong.csv",
    "table3": "table3_reading_times.csv",
    "table4": "table4_kappa.csv",
}


def _p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_relation(p: float | None) -> str:
    """"= 0.042" or "< 0.001", for running text."""
    text = _p(p)
    return text if text.startswith("<") else f"= {text}"


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def _write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        if not rows:
            handle.write("")
            return path
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _mrmc_rows(analysis: ReaderStudyAnalysis) -> list[dict]:
    rows = []
    for row in analysis.mrmc:
        result = row.result
        for name, test in (("random readers, random cases", result.random),
                           ("fixed readers, random cases", result.fixed_readers),
                           ("random readers, fixed cases", result.fixed_cases)):
            if test is None:
                continue
            rows.append({
                "finding_type": row.finding_type, "readers": row.readers, "analysis": name,
                "auc_aided": result.treatment_aucs[0], "auc_unaided": result.treatment_aucs[1],
                "difference": result.difference, "f": test.f, "df1": test.df1,
                "df2": "" if test.df2 is None else test.df2, "p": test.p,
                "ci_lower": test.ci[0] if test.ci else "", "ci_upper": test.ci[1] if test.ci else "",
                "covariance": result.covariance.method if result.covariance else "",
            })
    return rows


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class _Section:
    title: str
    text: str
    headers: list[str]
    rows: list[list[str]]


def _sections(analysis: ReaderStudyAnalysis) -> list[_Section]:
    """Every table of the report, formatted as the study printed them."""
    c = analysis.config
    level = f"{c.confidence * 100:g} %"
    out = []
    rows = []
    for r in analysis.table1:
        cv = r.curve
        rows.append([
            FINDING_TYPE_BY_KEY[r.finding_type].label, r.label, f"{cv.n_positive}/{cv.n_negative}",
            f"{_f(cv.auc)} ({_f(cv.ci[0])}–{_f(cv.ci[1])})", _f(cv.se), _p(cv.p_vs_half),
            _f(cv.youden.sensitivity * 100, 1), _f(cv.youden.specificity * 100, 1),
            f"≥ {cv.youden.min_positive_score:g}" if math.isfinite(cv.youden.min_positive_score) else "–",
        ])
    out.append(_Section(
        "Table 1. ROC analysis per finding type and reader group (readers pooled)",
        f"AUC with {level} CI ({'DeLong' if c.ci_method == 'delong' else 'binomial exact'}), DeLong SE, p against "
        "AUC = 0.5; sensitivity and specificity (%) at the cut-off of maximum Youden index (a reading is positive "
        "when its score is at or above the cut-off). Positives/negatives count readings.",
        ["Finding", "Group", "Pos/Neg", f"AUC ({level} CI)", "SE", "p", "Sensitivity", "Specificity", "Cut-off"],
        rows,
    ))
    rows = [[FINDING_TYPE_BY_KEY[r.finding_type].label, f"{r.comparison.a} vs {r.comparison.b}",
             f"{_f(r.comparison.auc_a)} vs {_f(r.comparison.auc_b)}", _f(r.comparison.difference),
             ("Z = " if r.comparison.paired else "D = ") + _f(r.comparison.statistic, 2), _p(r.comparison.p)]
            for r in analysis.table2]
    out.append(_Section(
        "Table 2. Comparison of ROC curves (DeLong)",
        "Within a group (without vs with AI) the readings are paired by reader and case (DeLong's test for "
        "correlated curves); between groups the readers differ, so the curves are compared as unpaired "
        "(DeLong's unpaired test with Welch degrees of freedom, as pROC).",
        ["Finding", "Comparison", "AUCs", "Difference", "Statistic", "p"], rows,
    ))
    if analysis.table3:
        rows = [[r.group, str(r.n_readings), r.unaided.text(1), r.aided.text(1), _f(r.statistic, 1), _p(r.p),
                 "–" if r.shapiro is None else f"W = {r.shapiro.w:.3f}, p {_p_relation(r.shapiro.p)}"]
                for r in analysis.table3]
        out.append(_Section(
            "Table 3. Reading time per case (seconds)",
            "Median (min–max) without and with AI; paired Wilcoxon signed-rank test (readings matched by reader and "
            "case; exact p for fewer than 50 untied differences, else normal approximation with continuity "
            "correction, as R). Shapiro–Wilk on the paired differences justifies the non-parametric test.",
            ["Readers", "Readings", "Without AI", "With AI", "Wilcoxon V", "p", "Shapiro–Wilk"], rows,
        ))
    if analysis.table4:
        rows = [[r.group, MODALITY_SHORT[r.modality], "BI-RADS" if r.item == "birads"
                 else FINDING_TYPE_BY_KEY[r.item].label, f"{r.reader_a}–{r.reader_b}",
                 f"{_f(r.result.kappa)} ({_f(r.result.ci[0])}–{_f(r.result.ci[1])})", _p(r.result.p),
                 r.result.label] for r in analysis.table4]
        out.append(_Section(
            "Table 4. Inter-reader agreement (Cohen's kappa)",
            f"Kappa with {level} CI (Fleiss–Cohen–Everitt ASE), z test under H0 (SE under the null); BI-RADS "
            f"weights: {c.kappa_weights}; presence calls are binary. Strength after Landis and Koch (< 0 poor, "
            "0–0.20 slight, 0.21–0.40 fair, 0.41–0.60 moderate, 0.61–0.80 substantial, 0.81–1 almost perfect).",
            ["Group", "Modality", "Item", "Readers", f"Kappa ({level} CI)", "p", "Agreement"], rows,
        ))
    rows = []
    for row in analysis.mrmc:
        res = row.result
        for name, test in (("RRRC", res.random), ("FRRC", res.fixed_readers), ("RRFC", res.fixed_cases)):
            if test is None:
                continue
            df = f"{test.df1:g}, {_f(test.df2, 2)}" if test.df2 is not None else f"{test.df1:g}, ∞"
            rows.append([FINDING_TYPE_BY_KEY[row.finding_type].label, row.readers, str(len(res.readers)), name,
                         f"{_f(res.treatment_aucs[1])} → {_f(res.treatment_aucs[0])}", _f(res.difference),
                         f"({_f(test.ci[0])}, {_f(test.ci[1])})" if test.ci else "–", _f(test.f, 2), df,
                         _p(test.p)])
    out.append(_Section(
        "MRMC analysis (Obuchowski–Rockette, AUC with AI − without AI)",
        f"Covariance: {c.mrmc_covariance}. RRRC: random readers and cases, Hillis (2007) denominator degrees of "
        "freedom; FRRC: fixed readers (chi-square / (t − 1), normal CI); RRFC: fixed cases (treatment × reader "
        "ANOVA). Reader-averaged empirical AUCs.",
        ["Finding", "Readers", "n", "Analysis", "AUC without → with AI", "Difference", f"{level} CI", "F", "df",
         "p"],
        rows,
    ))
    return out


def render_markdown(analysis: ReaderStudyAnalysis, figures: list[str] | None = None) -> str:
    figures = figures or []
    readers = "; ".join(f"{g}: {', '.join(rs)}" for g, rs in analysis.readers.items())
    positives = ", ".join(f"{FINDING_TYPE_BY_KEY[k].label.lower()} {v}" for k, v in analysis.positives.items())
    parts = [
        "# Reader study analysis",
        "",
        f"{analysis.n_cases} cases (positive: {positives}); readers — {readers}. Research use only.",
        "",
    ]
    for section in _sections(analysis):
        title, text, headers, rows = section.title, section.text, section.headers, section.rows
        parts += [f"## {title}", "", text, "", _table(headers, rows), ""]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{Path(f).stem}]({f})" for f in figures if f.endswith(".png")]
        parts.append("")
    if analysis.notes:
        parts += ["## Notes", ""] + [f"- {note}" for note in analysis.notes] + [""]
    return "\n".join(parts)


def render_html(analysis: ReaderStudyAnalysis, figures: list[str] | None = None) -> str:
    figures = figures or []
    e = html.escape
    body = [f"<h1>Reader study analysis</h1><p>{analysis.n_cases} cases; readers: "
            + e("; ".join(f"{g}: {', '.join(rs)}" for g, rs in analysis.readers.items())) + ". Research use only.</p>"]
    for section in _sections(analysis):
        title, text, headers, rows = section.title, section.text, section.headers, section.rows
        body.append(f"<h2>{e(title)}</h2><p>{e(text)}</p><table><thead><tr>"
                    + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>"
                    + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                    + "</tbody></table>")
    if figures:
        body.append("<h2>Figures</h2>" + "".join(f'<p><img src="{e(f)}" alt="{e(Path(f).stem)}" '
                                                  'style="max-width:100%"></p>' for f in figures if f.endswith(".png")))
    if analysis.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in analysis.notes) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Reader study analysis</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(analysis: ReaderStudyAnalysis, out_dir: str | Path, *, figures: bool = True) -> dict[str, Path]:
    """Write tables (CSV), ``analysis.json``, ``report.md``, ``report.html`` and the ROC figures into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, name in TABLE_FILES.items():
        rows = [r.to_dict() for r in getattr(analysis, key)]
        if rows:
            written[key] = _write_csv(out_dir / name, rows)
    written["mrmc"] = _write_csv(out_dir / "mrmc.csv", _mrmc_rows(analysis))
    json_path = out_dir / "analysis.json"
    json_path.write_text(dumps(analysis.to_dict()) + "\n", encoding="utf-8")
    written["json"] = json_path
    figure_names: list[str] = []
    if figures:
        from .figures import write_roc_figures

        for path in write_roc_figures(analysis, out_dir / "figures"):
            figure_names.append(f"figures/{path.name}")
            written[path.name] = path
    markdown = out_dir / "report.md"
    markdown.write_text(render_markdown(analysis, figure_names), encoding="utf-8")
    written["markdown"] = markdown
    page = out_dir / "report.html"
    page.write_text(render_html(analysis, figure_names), encoding="utf-8")
    written["html"] = page
    return written

