"""ROC figures of a reader study, like the study's Figures 2–3 (PNG and PDF).

One figure per reader group (Figure 2: the first group, Figure 3: the second, …): a panel per finding type with
the pooled ROC curves without and with the aid, their AUCs in the legend and the Youden points marked; and one
overview figure with all groups × modalities per type. Matplotlib is imported here only, with the Agg canvas
(no display, no pyplot global state).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..vocabulary import FINDING_TYPE_BY_KEY
from .analysis import ReaderStudyAnalysis, Table1Row

_MODALITY_STYLE = {"unaided": "--", "aided": "-"}
_GROUP_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _figure(n_panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 2 if n_panels > 1 else 1
    rows = math.ceil(n_panels / cols)
    figure = Figure(figsize=(5.0 * cols, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, cols, k + 1) for k in range(n_panels)]
    return figure, axes


def _draw(ax, row: Table1Row, color: str, label: str) -> None:
    curve = row.curve
    fpr = 1.0 - curve.specificity[::-1]
    tpr = curve.sensitivity[::-1]
    ax.plot(fpr, tpr, _MODALITY_STYLE[row.modality], color=color, drawstyle="default", linewidth=1.8,
            label=f"{label}: AUC {curve.auc:.3f} ({curve.ci[0]:.3f}–{curve.ci[1]:.3f})")
    ax.plot([1.0 - curve.youden.specificity], [curve.youden.sensitivity], "o", color=color, markersize=5)


def _axes_style(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], ":", color="0.6", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)


def write_roc_figures(analysis: ReaderStudyAnalysis, out_dir: str | Path) -> list[Path]:
    """Write ``figure<N>_<group>_roc.{png,pdf}`` per group and ``roc_overview.{png,pdf}``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = list(dict.fromkeys(row.finding_type for row in analysis.table1))
    groups = list(analysis.readers)
    written: list[Path] = []
    for number, group in enumerate(groups, start=2):
        figure, axes = _figure(len(kinds))
        for ax, kind in zip(axes, kinds):
            for row in analysis.table1:
                if row.finding_type == kind and row.group == group:
                    _draw(ax, row, _GROUP_COLORS[groups.index(group) % len(_GROUP_COLORS)], row.label)
            _axes_style(ax, FINDING_TYPE_BY_KEY[kind].label)
        figure.suptitle(f"Figure {number}: ROC curves of the {group} readers without and with AI (readers pooled)")
        stem = out_dir / f"figure{number}_{group}_roc"
        for suffix in (".png", ".pdf"):
            figure.savefig(stem.with_suffix(suffix), dpi=150)
            written.append(stem.with_suffix(suffix))
    figure, axes = _figure(len(kinds))
    for ax, kind in zip(axes, kinds):
        for row in analysis.table1:
            if row.finding_type == kind:
                _draw(ax, row, _GROUP_COLORS[groups.index(row.group) % len(_GROUP_COLORS)], row.label)
        _axes_style(ax, FINDING_TYPE_BY_KEY[kind].label)
    figure.suptitle("ROC curves by reader group and modality (readers pooled)")
    stem = out_dir / "roc_overview"
    for suffix in (".png", ".pdf"):
        figure.savefig(stem.with_suffix(suffix), dpi=150)
        written.append(stem.with_suffix(suffix))
    return written
