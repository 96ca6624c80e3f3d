"""Where the project's files live: shipped resources and the user's cache.

Resources (shipped models, terminology, sample data) are the extension's top-level ``Resources/`` folder. From a
source checkout (and the Slicer build, which installs it beside the library) that is ``<repo>/Resources``; in a
wheel it is packaged as ``MammoDNNLib/Resources``. ``MAMMODNN_RESOURCES`` overrides both.

The user cache (imported models) is ``MAMMODNN_HOME`` or ``~/.mammodnn``.
"""

from __future__ import annotations

import os
from pathlib import Path

_LIB_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    override = os.environ.get("MAMMODNN_RESOURCES")
    if override:
        return Path(override)
    for candidate in (_LIB_DIR / "Resources", _LIB_DIR.parent / "Resources"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"MammoDNN resources not found beside {_LIB_DIR}; reinstall the package or set MAMMODNN_RESOURCES"
    )


def user_dir() -> Path:
    """The per-user folder for imported models and caches (created on demand by the callers that write)."""
    return Path(os.environ.get("MAMMODNN_HOME") or Path.home() / ".mammodnn")
