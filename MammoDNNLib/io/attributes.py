"""Tolerant access to DICOM attribute values (damaged headers give None, not an exception), and short
messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from ..errors import InputError


def transfer_syntax(path: Path, dataset: Dataset) -> UID:
    syntax = meta(dataset, "TransferSyntaxUID")
    if not syntax:
        raise InputError(path, "no TransferSyntaxUID (0002,0010) in the file meta information")
    return UID(syntax)


def meta(dataset: Dataset, keyword: str) -> str:
    file_meta = getattr(dataset, "file_meta", None)
    return str(file_meta.get(keyword, "") or "") if file_meta is not None else ""


def text(dataset: Dataset, keyword: str) -> str | None:
    """A code string, upper-cased; the first value of a multi-valued one; None when absent or empty."""
    try:
        values = as_list(dataset.get(keyword))
    except Exception:
        return None
    value = str(values[0]).strip().upper() if values else ""
    return value or None


def integer(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def number(dataset: Dataset, keyword: str) -> float | None:
    """The first value as a float; None when absent, empty or unreadable."""
    try:
        values = as_list(dataset.get(keyword))
        return float(values[0]) if values and values[0] not in (None, "") else None
    except (TypeError, ValueError):
        return None


def as_list(value: Any) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def explanation(item: Dataset, keyword: str) -> str:
    """`` 'NORMAL'`` (with a leading space) for a non-empty explanation attribute, else ``""``."""
    value = str(item.get(keyword, "") or "").strip()
    return f" {value!r}" if value else ""


def short(exc: BaseException) -> str:
    """One line of an exception's message (pydicom's "all plugins failed" preamble removed), at most 300
    chars."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Unable to decode as exceptions were raised"):
        lines = [line.split(":", 1)[1].strip() if ":" in line else line for line in lines[1:]]
    message = " ".join(lines) or type(exc).__name__
    return message if len(message) <= 300 else message[:297] + "..."
