"""report.schema.json: a valid JSON Schema, in step with the vocabulary, accepting real reports and rejecting
broken ones."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from test_export_support import make_findings, make_study
from MammoDNNLib.errors import InputError
from MammoDNNLib.export.report_schema import report_errors, report_schema, validate_report_dict
from MammoDNNLib.findings import REPORT_SCHEMA_VERSION, ModelInfo, Report, Summary, ViewInfo
from MammoDNNLib.vocabulary import BIRADS_CATEGORIES, FINDING_TYPE_KEYS, QUADRANTS, VIEW_KEYS


@pytest.fixture(scope="module")
def report_dict(tmp_path_factory) -> dict:
    return make_study(tmp_path_factory.mktemp("schema")).report.to_dict()


def test_schema_is_valid_and_follows_the_vocabulary() -> None:
    from jsonschema import Draft202012Validator

    schema = report_schema()
    Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    assert defs["view_key"]["enum"] == list(VIEW_KEYS)
    assert defs["finding"]["properties"]["type"]["enum"] == list(FINDING_TYPE_KEYS)
    assert defs["birads"]["enum"] == list(BIRADS_CATEGORIES)
    quadrants = {q for values in QUADRANTS.values() for q in values}
    assert set(defs["finding"]["properties"]["quadrant"]["enum"]) == quadrants | {None}
    assert REPORT_SCHEMA_VERSION.startswith("1.")


def test_real_reports_validate(report_dict: dict) -> None:
    assert report_errors(report_dict) == []
    # A report read back and written again, and a minimal report without findings, validate too.
    assert report_errors(Report.from_dict(report_dict).to_dict()) == []
    minimal = Report(
        model=ModelInfo("m", "1", "0" * 64),
        views=[ViewInfo("L-MLO", None, "L", "MLO", (10, 20), (0.1, 0.1))],
        findings=[],
        breasts={"L": Summary(None, "1", 0, complete=False, note="CC view missing")},
        exam=Summary(None, "1", 0, complete=False),
    )
    assert report_errors(minimal.to_dict()) == []


def test_every_report_field_is_described(report_dict: dict) -> None:
    """Fails when findings.py gains a field the schema does not describe (the schema must follow)."""
    from dataclasses import asdict

    schema = report_schema()
    defs = schema["$defs"]
    assert set(report_dict) == set(schema["properties"])
    assert set(make_findings()[0].to_dict()) <= set(defs["finding"]["properties"])
    assert set(asdict(ViewInfo("R-CC", None, "R", "CC", (1, 1), (1.0, 1.0)))) <= set(
        defs["view"]["properties"]
    )
    assert set(asdict(Summary(None, "1", 0))) <= set(defs["summary"]["properties"])
    assert set(asdict(ModelInfo("m", "1", ""))) <= set(defs["model"]["properties"])


BROKEN = {
    "model without sha256": lambda d: d["model"].pop("sha256"),
    "box of three numbers": lambda d: d["findings"][0].__setitem__("box", [1, 2, 3]),
    "unknown finding type": lambda d: d["findings"][0].__setitem__("type", "tumour"),
    "score above one": lambda d: d["findings"][0].__setitem__("score", 1.5),
    "unknown view key": lambda d: d["views"][0].__setitem__("key", "R-ML"),
    "BI-RADS 6": lambda d: d["findings"][0].__setitem__("birads", "6"),
    "stray top-level field": lambda d: d.__setitem__("patient_name", "Doe^Jane"),
    "schema version 2": lambda d: d.__setitem__("schema_version", "2.0"),
    "size of zero": lambda d: d["views"][0].__setitem__("size", [0, 10]),
    "breast key X": lambda d: d["breasts"].__setitem__("X", d["breasts"]["R"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_reports_are_rejected(report_dict: dict, name: str) -> None:
    broken = copy.deepcopy(report_dict)
    BROKEN[name](broken)
    assert report_errors(broken)
    with pytest.raises(InputError, match="report.schema.json"):
        validate_report_dict(broken, Path("report.json"))
