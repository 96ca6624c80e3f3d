"""The worker progress protocol (MammoDNNLib.progress): lines written, lines parsed."""

from __future__ import annotations

import io
import json

import pytest

from MammoDNNLib.progress import PREFIX, ProgressEvent, ProgressWriter, parse_line


def test_writer_lines_parse_back():
    stream = io.StringIO()
    writer = ProgressWriter(stream)
    writer(0.25, "detecting R-CC")
    writer(0.5, "matching — CC/MLO")
    writer.done(report="/out/report.json")
    writer.error("R-CC.dcm: no pixel data", kind="InputError")
    lines = stream.getvalue().splitlines()
    assert all(line.startswith(PREFIX) for line in lines)
    events = [parse_line(line) for line in lines]
    assert events == [
        ProgressEvent("progress", "detecting R-CC", 0.25),
        ProgressEvent("progress", "matching — CC/MLO", 0.5),
        ProgressEvent("done", "finished", 1.0, {"report": "/out/report.json"}),
        ProgressEvent("error", "R-CC.dcm: no pixel data", None, {}, "InputError"),
    ]
    # Each line is the prefix and one JSON object with the documented keys.
    payload = json.loads(lines[0][len(PREFIX) :])
    assert payload == {"event": "progress", "message": "detecting R-CC", "fraction": 0.25}


def test_writer_clamps_and_never_goes_backwards():
    stream = io.StringIO()
    writer = ProgressWriter(stream)
    for fraction in (0.4, 0.2, 1.7, float("nan"), -1):
        writer(fraction, "")
    fractions = [parse_line(line).fraction for line in stream.getvalue().splitlines()]
    assert fractions == [0.4, 0.4, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "line",
    [
        "an ordinary log line",
        PREFIX + "{not json",
        PREFIX + json.dumps({"event": "unknown"}),
        PREFIX + json.dumps(["progress"]),
        PREFIX + json.dumps({"event": "progress", "fraction": "half"}),
        PREFIX + '{"event": "progress", "fraction": NaN}',
        " " + PREFIX + json.dumps({"event": "progress", "fraction": 0.1}),
    ],
)
def test_other_lines_are_not_events(line):
    assert parse_line(line) is None


def test_parser_tolerates_extra_keys_and_clamps():
    event = parse_line(PREFIX + json.dumps({"event": "progress", "fraction": 3, "eta": 12}) + "\r\n")
    assert event == ProgressEvent("progress", "", 1.0)
