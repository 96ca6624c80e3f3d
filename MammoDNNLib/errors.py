"""User-facing errors.

Every error a user can cause (bad files, bad tables, bad options) is a :class:`MammoDNNError`, which is a
``ValueError`` so that Slicer's ``tryWithErrorDisplay`` and scripts catching ``ValueError`` see it, and whose
message names the file and what is wrong. Anything else reaching the user is a bug.
"""

from __future__ import annotations

import os


class MammoDNNError(ValueError):
    """A problem with the caller's input, described so the caller can fix it."""


class InputError(MammoDNNError):
    """A problem with one input file (or table), naming the file first."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ModelError(MammoDNNError):
    """A model file that is missing, tampered with (hash mismatch), of an unsafe format, or incompatible."""


class CancelledError(MammoDNNError):
    """The user cancelled a long operation (raised by progress callbacks)."""
