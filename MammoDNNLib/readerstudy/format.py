"""The reader-study CSV format: one row per reading (reader × case × modality).

Columns (names are fixed; order is free; see docs/statistics.md):

=====================  ===========================================================================================
``reader``             reader identifier
``group``              reader group, e.g. ``junior`` / ``senior`` (constant for a reader)
``case``               case (four-view study) identifier
``modality``           ``unaided`` or ``aided`` (``noAI``/``AI``, ``without``/``with`` are accepted)
``<type>_score``       the reader's confidence that the case shows a finding of that type (any numeric scale;
                       higher = more confident), for ``<type>`` in mass, calcification, asymmetry, distortion
``<type>_present``     the reader's yes/no call (1/0) for that type; used for ROC when there is no score
``<type>_truth``       reference standard: 1 if the case has a finding of that type, else 0 (constant per case)
``birads``             the reader's BI-RADS assessment (1, 2, 3, 4A, 4B, 4C, 5) — optional
``time_s``             reading time in seconds — optional
=====================  ===========================================================================================

A finding type is analysed when its ``_truth`` column and a ``_score`` or ``_present`` column are present. The
design must be fully crossed, as in the study: every reader reads every case once without and once with the aid.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..evaluation.tables import Table, read_table
from ..vocabulary import BIRADS_CATEGORIES, FINDING_TYPE_KEYS

MODALITIES: tuple[str, ...] = ("unaided", "aided")
MODALITY_SHORT: dict[str, str] = {"unaided": "noAI", "aided": "AI"}
_MODALITY_ALIASES: dict[str, str] = {
    "unaided": "unaided", "noai": "unaided", "no_ai": "unaided", "no-ai": "unaided", "without": "unaided",
    "aided": "aided", "ai": "aided", "with": "aided",
}
_GROUP_ORDER = ("junior", "senior")
REQUIRED_COLUMNS: tuple[str, ...] = ("reader", "group", "case", "modality")


@dataclass(frozen=True)
class ReaderStudy:
    """A fully crossed reader study; per-reading arrays are indexed ``[modality, reader, case]``."""

    readers: tuple[str, ...]
    groups: tuple[str, ...]  # distinct groups, junior before senior, else in text order
    reader_group: dict[str, str]
    cases: tuple[str, ...]
    finding_types: tuple[str, ...]  # analysed types, in vocabulary order
    truth: dict[str, np.ndarray]  # type -> (cases,) bool
    scores: dict[str, np.ndarray]  # type -> (2, readers, cases) float: the ROC input
    score_source: dict[str, str]  # type -> "score" or "present"
    present: dict[str, np.ndarray] = field(default_factory=dict)  # type -> (2, readers, cases) bool
    birads: np.ndarray | None = None  # (2, readers, cases) str
    time_s: np.ndarray | None = None  # (2, readers, cases) float
    path: str | None = None

    def readers_in(self, group: str) -> list[int]:
        return [j for j, r in enumerate(self.readers) if self.reader_group[r] == group]

    def group_short(self, group: str) -> str:
        """``junior`` → ``J`` when the groups' initials differ, else the full name."""
        initials = {g[:1].upper() for g in self.groups}
        return group[:1].upper() if len(initials) == len(self.groups) else group

    def label(self, group: str, modality: str) -> str:
        """The study's labels: ``J_noAI``, ``S_AI``, …"""
        return f"{self.group_short(group)}_{MODALITY_SHORT[modality]}"


def normalize_modality(value: str) -> str | None:
    return _MODALITY_ALIASES.get(value.strip().lower())


def _order_groups(groups: set[str]) -> tuple[str, ...]:
    known = [g for g in _GROUP_ORDER if g in groups]
    return tuple(known + sorted(groups - set(known)))


def _binary(table: Table, column: str) -> np.ndarray:
    values = table.numeric(column)
    bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
    if bad.size:
        raise InputError(table.path, f"column {column!r} must be 0 or 1; line {table.line_of(int(bad[0]))} has "
                                     f"{values[bad[0]]:g}")
    return values.astype(bool)


def study_from_table(table: Table) -> ReaderStudy:
    """Validate a reader-study table and arrange it as a :class:`ReaderStudy`."""
    table.require(*REQUIRED_COLUMNS)
    readers_col = table.text("reader")
    groups_col = table.text("group")
    cases_col = table.text("case")
    modality_raw = table.text("modality")
    modality_col = []
    for value, line in zip(modality_raw, table.line_numbers):
        modality = normalize_modality(value)
        if modality is None:
            raise InputError(table.path, f"unknown modality {value!r} at line {line}; use 'unaided' or 'aided'")
        modality_col.append(modality)

    reader_group: dict[str, str] = {}
    for reader, group, line in zip(readers_col, groups_col, table.line_numbers):
        if reader_group.setdefault(reader, group) != group:
            raise InputError(table.path, f"reader {reader!r} is in group {reader_group[reader]!r} and, at line "
                                         f"{line}, in group {group!r}")
    groups = _order_groups(set(reader_group.values()))
    readers = tuple(sorted(reader_group, key=lambda r: (groups.index(reader_group[r]), _natural_key(r))))
    cases = tuple(sorted(set(cases_col), key=_natural_key))
    ri = {r: j for j, r in enumerate(readers)}
    ci = {c: k for k, c in enumerate(cases)}
    mi = {m: i for i, m in enumerate(MODALITIES)}
    index = np.full((2, len(readers), len(cases)), -1, dtype=np.int64)
    for row, (reader, case, modality) in enumerate(zip(readers_col, cases_col, modality_col)):
        key = (mi[modality], ri[reader], ci[case])
        if index[key] >= 0:
            raise InputError(table.path, f"reader {reader!r} reads case {case!r} {modality} twice (lines "
                                         f"{table.line_of(int(index[key]))} and {table.line_of(row)})")
        index[key] = row
    missing = np.argwhere(index < 0)
    if missing.size:
        i, j, k = missing[0]
        raise InputError(
            table.path,
            f"the study is not fully crossed: {len(missing)} reading(s) missing (unpaired rows), e.g. reader "
            f"{readers[j]!r}, case {cases[k]!r}, {MODALITIES[i]}; every reader must read every case unaided and aided",
        )

    def arrange(values: np.ndarray) -> np.ndarray:
        return values[index]

    truth: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    present: dict[str, np.ndarray] = {}
    for kind in FINDING_TYPE_KEYS:
        has_score = table.has(f"{kind}_score")
        has_present = table.has(f"{kind}_present")
        has_truth = table.has(f"{kind}_truth")
        if not has_truth:
            if has_score or has_present:
                raise InputError(table.path, f"readings for {kind} need the reference standard column "
                                             f"'{kind}_truth'")
            continue
        if not (has_score or has_present):
            raise InputError(table.path, f"'{kind}_truth' is given but neither '{kind}_score' nor '{kind}_present'")
        per_row = _binary(table, f"{kind}_truth")
        per_case = np.zeros(len(cases), dtype=bool)
        first_line: dict[int, int] = {}
        for row, case in enumerate(cases_col):
            k = ci[case]
            if k in first_line:
                if per_case[k] != per_row[row]:
                    raise InputError(table.path, f"case {case!r} has '{kind}_truth' {int(per_row[row])} at line "
                                                 f"{table.line_of(row)} but {int(per_case[k])} at line "
                                                 f"{first_line[k]}")
            else:
                first_line[k] = table.line_of(row)
                per_case[k] = per_row[row]
        if per_case.all() or not per_case.any():
            raise InputError(table.path, f"'{kind}_truth' has only {'positive' if per_case.all() else 'negative'} "
                                         "cases; ROC analysis needs both")
        truth[kind] = per_case
        if has_present:
            present[kind] = arrange(_binary(table, f"{kind}_present"))
        if has_score:
            scores[kind] = arrange(table.numeric(f"{kind}_score"))
            source[kind] = "score"
        else:
            scores[kind] = present[kind].astype(np.float64)
            source[kind] = "present"
    if not truth:
        raise InputError(table.path, "no finding type to analyse: give '<type>_truth' with '<type>_score' or "
                                     f"'<type>_present' for a type in {', '.join(FINDING_TYPE_KEYS)}")

    birads = None
    if table.has("birads"):
        values = table.text("birads")
        allowed = {c.upper() for c in BIRADS_CATEGORIES} | {"0", "6"}
        for value, line in zip(values, table.line_numbers):
            if value.upper() not in allowed:
                raise InputError(table.path, f"BI-RADS {value!r} at line {line} is not one of 0–6 / 4A–4C")
        birads = np.array([v.upper() for v in values], dtype=object)[index]
    time_s = None
    if table.has("time_s"):
        times = table.numeric("time_s")
        bad = np.flatnonzero(times < 0)
        if bad.size:
            raise InputError(table.path, f"negative reading time at line {table.line_of(int(bad[0]))}")
        time_s = times[index]
    return ReaderStudy(
        readers=readers, groups=groups, reader_group=reader_group, cases=cases,
        finding_types=tuple(truth), truth=truth, scores=scores, score_source=source, present=present,
        birads=birads, time_s=time_s, path=table.path,
    )


def read_reader_study(path: str | os.PathLike) -> ReaderStudy:
    """Read and validate a reader-study CSV (errors name the file, the line and the problem)."""
    return study_from_table(read_table(path))


def _format_number(value: float) -> str:
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def write_reader_study(study: ReaderStudy, path: str | os.PathLike) -> Path:
    """Write a study in the documented CSV format (rows ordered by reader, modality, case)."""
    path = Path(path)
    columns = list(REQUIRED_COLUMNS)
    for kind in study.finding_types:
        if study.score_source[kind] == "score":
            columns.append(f"{kind}_score")
        if kind in study.present:
            columns.append(f"{kind}_present")
    if study.birads is not None:
        columns.append("birads")
    if study.time_s is not None:
        columns.append("time_s")
    columns += [f"{kind}_truth" for kind in study.finding_types]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for j, reader in enumerate(study.readers):
            for i, modality in enumerate(MODALITIES):
                for k, case in enumerate(study.cases):
                    row: dict[str, str] = {
                        "reader": reader, "group": study.reader_group[reader], "case": case, "modality": modality,
                    }
                    for kind in study.finding_types:
                        if study.score_source[kind] == "score":
                            row[f"{kind}_score"] = _format_number(study.scores[kind][i, j, k])
                        if kind in study.present:
                            row[f"{kind}_present"] = str(int(study.present[kind][i, j, k]))
                        row[f"{kind}_truth"] = str(int(study.truth[kind][k]))
                    if study.birads is not None:
                        row["birads"] = str(study.birads[i, j, k])
                    if study.time_s is not None:
                        row["time_s"] = _format_number(study.time_s[i, j, k])
                    writer.writerow([row[c] for c in columns])
    return path


def _natural_key(label: str) -> tuple:
    """Sort ``R2`` before ``R10`` and numbers numerically."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", label) if part)

