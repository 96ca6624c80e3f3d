"""Reading the delimited tables the statistics take, with errors that name the file, the line and the problem.

A table is a CSV (or TSV: ``.tsv``/``.tab`` files, or a header with tabs and no commas) with a header row. Values
stay strings until a caller asks for a column as numbers or labels; every conversion failure names the file, the
column and the first offending line, so a user can fix the table without reading a traceback.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

_MISSING = {"", "na", "nan", "null", "none"}


@dataclass(frozen=True)
class Table:
    """A delimited table: its header and its rows as strings, with the file line of each row."""

    path: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    line_numbers: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, name: str) -> bool:
        return name in self.columns

    def require(self, *names: str) -> None:
        """Raise :class:`InputError` listing every requested column the table lacks."""
        missing = [name for name in names if name not in self.columns]
        if missing:
            raise InputError(
                self.path,
                f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
                f"the table has {', '.join(repr(c) for c in self.columns)}",
            )

    def _index(self, name: str) -> int:
        self.require(name)
        return self.columns.index(name)

    def text(self, name: str, *, allow_missing: bool = False) -> list[str]:
        """The column as stripped strings; empty cells are an error unless ``allow_missing``."""
        index = self._index(name)
        values = [row[index].strip() for row in self.rows]
        if not allow_missing:
            for value, line in zip(values, self.line_numbers):
                if value.lower() in _MISSING:
                    raise InputError(self.path, f"column {name!r} has no value at line {line}")
        return values

    def numeric(self, name: str, *, allow_missing: bool = False) -> np.ndarray:
        """The column as float64; a non-numeric cell is an error naming its line (missing → NaN if allowed)."""
        index = self._index(name)
        out = np.empty(len(self.rows), dtype=np.float64)
        for i, (row, line) in enumerate(zip(self.rows, self.line_numbers)):
            cell = row[index].strip()
            if cell.lower() in _MISSING:
                if allow_missing:
                    out[i] = math.nan
                    continue
                raise InputError(self.path, f"column {name!r} has no value at line {line}")
            try:
                value = float(cell)
            except ValueError:
                raise InputError(self.path, f"column {name!r} is not numeric at line {line}: {cell!r}") from None
            if not math.isfinite(value):
                raise InputError(self.path, f"column {name!r} is not a finite number at line {line}: {cell!r}")
            out[i] = value
        return out

    def line_of(self, row_index: int) -> int:
        return self.line_numbers[row_index]


def _guess_delimiter(path: str | None, header: str) -> str:
    if path is not None and Path(path).suffix.lower() in (".tsv", ".tab"):
        return "\t"
    if "\t" in header and "," not in header:
        return "\t"
    if ";" in header and "," not in header and "\t" not in header:
        return ";"
    return ","


def parse_table(text: str, *, path: str | os.PathLike | None = None, delimiter: str | None = None) -> Table:
    """Parse table text (already read) into a :class:`Table`; ``path`` only names the source in errors."""
    name = None if path is None else os.fspath(path)
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputError(name, "the table is empty (no header row)")
    sep = delimiter or _guess_delimiter(name, lines[first])
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header: tuple[str, ...] | None = None
    rows: list[tuple[str, ...]] = []
    numbers: list[int] = []
    try:
        for record in reader:
            line = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = tuple(cell.strip() for cell in record)
                if any(not c for c in header):
                    raise InputError(name, f"the header (line {line}) has an empty column name")
                duplicates = sorted({c for c in header if header.count(c) > 1})
                if duplicates:
                    raise InputError(name, f"the header repeats column {', '.join(map(repr, duplicates))}")
                continue
            if len(record) != len(header):
                raise InputError(
                    name, f"line {line} has {len(record)} fields but the header has {len(header)}"
                )
            rows.append(tuple(record))
            numbers.append(line)
    except csv.Error as exc:
        raise InputError(name, f"not a readable delimited table: {exc}") from None
    assert header is not None
    if not rows:
        raise InputError(name, "the table has a header but no rows")
    return Table(name, header, tuple(rows), tuple(numbers))


def read_table(path: str | os.PathLike, *, delimiter: str | None = None) -> Table:
    """Read a CSV/TSV file with a header row; any problem is an :class:`InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text table") from None
    return parse_table(text, path=path, delimiter=delimiter)


def binary_truth(table: Table, column: str, positive: str) -> np.ndarray:
    """``column == positive`` as a boolean array, requiring both classes to occur.

    Labels compare as text, and also as numbers where both parse (so ``1`` matches ``1.0``).
    """
    values = table.text(column)
    positive = positive.strip()
    try:
        positive_number: float | None = float(positive)
    except ValueError:
        positive_number = None

    def is_positive(value: str) -> bool:
        if value == positive:
            return True
        if positive_number is not None:
            try:
                return float(value) == positive_number
            except ValueError:
                return False
        return False

    truth = np.array([is_positive(v) for v in values], dtype=bool)
    if truth.all() or not truth.any():
        levels = sorted(set(values))
        which = "only positive" if truth.all() else "no positive"
        raise InputError(
            table.path,
            f"column {column!r} has {which} rows for positive label {positive!r} (values: "
            f"{', '.join(map(repr, levels[:10]))}{', …' if len(levels) > 10 else ''}); ROC analysis needs both "
            "classes",
        )
    return truth


def natural_order(labels: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Distinct labels in numeric order when they all parse as numbers, else in text order."""
    distinct = sorted(set(labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct
