"""Progress of a long job across a process boundary: a one-line-per-event protocol, its writer, parser and
runner.

A worker (``mammodnn analyze ... --progress-json``) reports on its standard output, one event per line::

    MAMMODNN-PROGRESS {"event": "progress", "fraction": 0.42, "message": "detecting R-CC"} MAMMODNN-PROGRESS
    {"event": "done", "fraction": 1.0, "message": "finished", "outputs": {"report": "/out/report.json"}}
    MAMMODNN-PROGRESS {"event": "error", "message": "R-CC.dcm: no pixel data", "kind": "InputError"}

- Each event line starts with :data:`PREFIX` (so it can share the stream with ordinary log lines, which
  readers pass through) followed by one JSON object with ``event`` ∈ :data:`EVENTS`, ``message`` (text for a
  status line) and, for ``progress``, ``fraction`` in [0, 1] (non-decreasing). ``done`` may carry ``outputs``
  (name → path); ``error`` may carry ``kind`` (the exception class). Unknown keys are ignored; lines that fail
  to parse are treated as log lines.
- The worker writes ``done`` last on success and ``error`` before a non-zero exit on a user error. A worker
  that dies without either is reported by :class:`AnalysisProcess` from its exit status and the tail of its
  output.
- Cancelling is killing the process: the protocol has no cancel message, so a worker needs no input channel.

:class:`ProgressWriter` is a ``progress(fraction, message)`` callable (the signature
:func:`MammoDNNLib.pipeline.analyze` takes) that writes these lines; :func:`parse_line` reads one;
:class:`AnalysisProcess` runs a worker, collects its events without blocking (for a GUI timer to poll) and
kills it on cancel. Nothing here imports Qt.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

log = logging.getLogger(__name__)

PREFIX = "MAMMODNN-PROGRESS "
EVENT_PROGRESS = "progress"
EVENT_DONE = "done"
EVENT_ERROR = "error"
EVENTS: tuple[str, ...] = (EVENT_PROGRESS, EVENT_DONE, EVENT_ERROR)


@dataclass(frozen=True)
class ProgressEvent:
    event: str  # one of EVENTS
    message: str = ""
    fraction: float | None = None  # progress in [0, 1] (progress and done)
    outputs: dict[str, str] = field(default_factory=dict)  # done: name -> path
    kind: str | None = None  # error: the exception class name

    def to_line(self) -> str:
        data: dict[str, Any] = {"event": self.event, "message": self.message}
        if self.fraction is not None:
            data["fraction"] = round(float(self.fraction), 6)
        if self.outputs:
            data["outputs"] = dict(self.outputs)
        if self.kind:
            data["kind"] = self.kind
        return PREFIX + json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


def parse_line(line: str) -> ProgressEvent | None:
    """The event on one line, or ``None`` for an ordinary (log) line."""
    line = line.rstrip("\r\n")
    if not line.startswith(PREFIX):
        return None
    try:
        data = json.loads(line[len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    fraction = data.get("fraction")
    if fraction is not None:
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(fraction):
            return None
        fraction = min(max(fraction, 0.0), 1.0)
    outputs = data.get("outputs") or {}
    if not isinstance(outputs, dict):
        outputs = {}
    return ProgressEvent(
        event=data["event"],
        message=str(data.get("message", "")),
        fraction=fraction,
        outputs={str(k): str(v) for k, v in outputs.items()},
        kind=str(data["kind"]) if data.get("kind") else None,
    )


class ProgressWriter:
    """``progress(fraction, message)`` that writes protocol lines to ``stream`` (default: standard output).

    Fractions are clamped to [0, 1] and never go backwards, so a reader's progress bar only moves forward.
    """

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._last = 0.0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, event: ProgressEvent) -> None:
        self.stream.write(event.to_line() + "\n")
        self.stream.flush()

    def __call__(self, fraction: float, message: str = "") -> None:
        value = float(fraction)
        value = self._last if not math.isfinite(value) else min(max(value, self._last, 0.0), 1.0)
        self._last = value
        self._write(ProgressEvent(EVENT_PROGRESS, message, value))

    def done(self, message: str = "finished", **outputs: str | os.PathLike) -> None:
        self._last = 1.0
        self._write(ProgressEvent(EVENT_DONE, message, 1.0, {k: os.fspath(v) for k, v in outputs.items()}))

    def error(self, message: str, kind: str | None = None) -> None:
        self._write(ProgressEvent(EVENT_ERROR, message, None, {}, kind))


@dataclass
class ProcessStatus:
    """What :meth:`AnalysisProcess.poll` knows so far."""

    running: bool
    fraction: float
    message: str
    returncode: int | None = None
    done: ProgressEvent | None = None
    error: ProgressEvent | None = None
    cancelled: bool = False

    @property
    def succeeded(self) -> bool:
        return not self.running and not self.cancelled and self.returncode == 0 and self.error is None


class AnalysisProcess:
    """Run a worker that speaks the protocol; poll it from a GUI timer; kill it to cancel.

    Standard output and error are read by a background thread (so the caller never blocks); protocol lines
    become events, other lines are kept (the last :attr:`tail_lines`) for error messages and logged at debug
    level.
    """

    tail_lines = 40

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | os.PathLike | None = None,
        env: dict[str, str] | None = None,
    ):
        self.command = [os.fspath(c) for c in command]
        self.cwd = cwd
        self.env = env
        self._process: subprocess.Popen | None = None
        self._events: queue.Queue[ProgressEvent] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=self.tail_lines)
        self._reader: threading.Thread | None = None
        self._status = ProcessStatus(running=False, fraction=0.0, message="")

    def start(self) -> AnalysisProcess:
        if self._process is not None:
            raise RuntimeError("the process was already started")
        creation = {}
        if os.name == "nt":  # no console window flashing up from a GUI
            creation["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **creation,
        )
        self._status = ProcessStatus(running=True, fraction=0.0, message="starting")
        self._reader = threading.Thread(target=self._read, name="mammodnn-progress-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            event = parse_line(line)
            if event is None:
                text = line.rstrip("\r\n")
                if text:
                    self._tail.append(text)
                    log.debug("worker: %s", text)
            else:
                self._events.put(event)

    @property
    def output_tail(self) -> str:
        return "\n".join(self._tail)

    def poll(self) -> ProcessStatus:
        """Apply the events received so far and return the status (never blocks for long)."""
        self._drain()
        if self._process is not None and self._status.running:
            code = self._process.poll()
            if code is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)  # the worker has exited: collect what it wrote last
                    self._reader = None
                self._drain()
                return self._finish(code)
        return self._status

    def _drain(self) -> None:
        status = self._status
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event.message:
                status.message = event.message
            if event.fraction is not None:
                status.fraction = max(status.fraction, event.fraction)
            if event.event == EVENT_DONE:
                status.done = event
            elif event.event == EVENT_ERROR:
                status.error = event

    def _finish(self, code: int) -> ProcessStatus:
        status = self._status
        status.running = False
        status.returncode = code
        if status.cancelled:
            status.message = "cancelled"
        elif code != 0 and status.error is None:
            tail = self.output_tail.strip().splitlines()
            status.error = ProgressEvent(
                EVENT_ERROR,
                f"the analysis process stopped with exit status {code}" + (f": {tail[-1]}" if tail else ""),
            )
            status.message = status.error.message
        return status

    def wait(self, timeout: float | None = None) -> ProcessStatus:
        """Block until the worker exits (scripts and tests; a GUI polls instead)."""
        if self._process is None:
            raise RuntimeError("the process was not started")
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.poll()

    def cancel(self, grace_seconds: float = 3.0) -> ProcessStatus:
        """Stop the worker: terminate, then kill if it has not exited after ``grace_seconds``."""
        if self._process is None or self._process.poll() is not None:
            return self.poll()
        self._status.cancelled = True
        self._process.terminate()
        try:
            self._process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        return self.poll()
