"""JSON for statistics results: NaN and infinities become ``null``, numpy scalars and arrays plain Python."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that :func:`json.dumps` accepts with ``allow_nan=False``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)
