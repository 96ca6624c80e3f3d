"""The JSON Schema of ``report.json`` (``MammoDNNLib/schemas/report.schema.json``) and validation by it."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "report.schema.json"


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def report_errors(data: Any) -> list[str]:
    """Every schema violation of a report dict, as ``"path: message"`` lines (empty when valid)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def validate_report_dict(data: Any, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` naming the first problems if ``data`` does not follow the schema."""
    errors = report_errors(data)
    if errors:
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise InputError(path, f"report does not follow report.schema.json: {shown}")
