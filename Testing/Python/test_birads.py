"""BI-RADS suggestions: the 5th-edition likelihood bands at their edges, score caps, configuration, aggregation
(the calibration before the mapping: test_malignancy_calibration.py)."""

from __future__ import annotations

import json

import pytest

from MammoDNNLib.birads import (
    DEFAULT_CONFIG,
    BiradsMapping,
    ScoreCap,
    assign_birads,
    breast_summary,
    highest_category,
    summarize,
)
from MammoDNNLib.errors import InputError
from MammoDNNLib.findings import Finding
from MammoDNNLib.vocabulary import VIEW_KEYS

# BI-RADS Atlas 5th edition: 3 <= 2 %, 4A > 2 to <= 10 %, 4B > 10 to <= 50 %, 4C > 50 to < 95 %, 5 >= 95 %.
BAND_EDGES = [
    (0.0, "2"), (0.005, "2"), (0.00501, "3"), (0.02, "3"), (0.02001, "4A"), (0.10, "4A"), (0.10001, "4B"),
    (0.50, "4B"), (0.50001, "4C"), (0.94999, "4C"), (0.95, "5"), (1.0, "5"),
]


@pytest.mark.parametrize("probability, category", BAND_EDGES)
def test_bands_at_their_edges(probability, category):
    assert BiradsMapping().category(probability) == category


def test_low_detection_score_caps_the_category():
    m = BiradsMapping()
    assert m.category(0.99, score=0.9) == "5"
    assert m.category(0.99, score=0.5) == "5"  # the caps are strict: below 0.5
    assert m.category(0.99, score=0.49) == "4B"
    assert m.category(0.99, score=0.29) == "4A"
    assert m.category(0.7, score=0.29) == "4A"
    assert m.category(0.01, score=0.01) == "3"  # caps never raise a category
    assert BiradsMapping(score_caps=()).category(0.99, score=0.01) == "5"


def test_bad_probabilities_refused():
    with pytest.raises(ValueError):
        BiradsMapping().category(1.2)
    with pytest.raises(ValueError):
        BiradsMapping().category(float("nan"))


def test_shipped_config_is_the_documented_default_and_round_trips(tmp_path):
    assert BiradsMapping.load() == BiradsMapping()
    assert json.loads(DEFAULT_CONFIG.read_text())["format"] == "mammodnn-birads-mapping"
    custom = BiradsMapping(benign_max=0.0, category_5_min=0.9, score_caps=(ScoreCap(0.2, "3"),))
    path = custom.save(tmp_path / "m.json")
    assert BiradsMapping.load(path) == custom
    assert BiradsMapping.load(path).category(0.92) == "5"
    assert BiradsMapping.load(path).category(0.001) == "3"  # benign_max 0: never "2"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"benign_max": 0.05}, "must not decrease"),
        ({"category_5_min": 1.5}, "in [0, 1]"),
        ({"probably_benign_max": "x"}, "must be a number"),
        ({"bogus": 1}, "unknown BI-RADS mapping key"),
        ({"score_caps": [{"below_score": 0.3, "max_category": "6"}]}, "max_category"),
        ({"score_caps": [{"below_score": 0.3}]}, "bad score_caps entry"),
        ({"format": "other"}, "format"),
        ({"version": 99}, "not supported"),
    ],
)
def test_config_validation_errors_name_the_file(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        BiradsMapping.load(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_unreadable_config(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        BiradsMapping.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        BiradsMapping.load(tmp_path / "x.json")


def _finding(fid, key, malignancy, score=0.9, number=0):
    return Finding(id=fid, view_key=key, type="mass", score=score, box=(10, 10, 20, 20), malignancy=malignancy,
                   number=number)


def test_breast_and_exam_aggregation():
    findings = [
        _finding("a", "R-CC", 0.3, number=1), _finding("b", "R-MLO", 0.6, number=1),  # one lesion, two views
        _finding("c", "R-CC", 0.01, number=2),
        _finding("d", "L-CC", 0.001, number=1), _finding("e", "L-MLO", 0.97, score=0.2, number=2),
    ]
    breasts, exam = summarize(findings, VIEW_KEYS)
    assert [f.birads for f in findings] == ["4B", "4C", "3", "2", "4A"]
    assert breasts["R"].birads == "4C" and breasts["R"].findings == 2 and breasts["R"].score == pytest.approx(0.6)
    assert breasts["L"].birads == "4A" and breasts["L"].findings == 2 and breasts["L"].score == pytest.approx(0.97)
    assert exam.birads == "4C" and exam.findings == 4 and exam.complete and exam.note is None
    assert exam.score == pytest.approx(0.97)


def test_empty_breast_is_negative_and_missing_view_noted():
    findings = [_finding("a", "R-CC", 0.2)]
    breasts, exam = summarize(findings, ["R-CC", "L-CC", "L-MLO"])
    assert breasts["L"].birads == "1" and breasts["L"].findings == 0 and breasts["L"].score is None
    assert breasts["L"].complete
    assert breasts["R"].birads == "4B" and not breasts["R"].complete
    assert breasts["R"].note == "R breast: MLO missing, matching not done"
    assert not exam.complete and "R breast: MLO missing" in exam.note
    # A breast with no view at all is left out of the breasts and named in the exam note.
    breasts, exam = summarize([], ["R-CC", "R-MLO"])
    assert set(breasts) == {"R"} and exam.birads == "1" and "L breast: no views" in exam.note


def test_unassessed_findings_do_not_count_but_are_noted():
    findings = [_finding("a", "R-CC", None), _finding("b", "R-MLO", 0.004)]
    assign_birads(findings)
    assert findings[0].birads is None and findings[1].birads == "2"
    summary = breast_summary("R", findings, VIEW_KEYS)
    assert summary.birads == "2" and "1 finding(s) without a malignancy estimate" in summary.note


def test_highest_category_order():
    assert highest_category(["3", "4A", "2"]) == "4A"
    assert highest_category(["4C", "5", "4B"]) == "5"
    assert highest_category([]) == "1"
    with pytest.raises(ValueError):
        highest_category(["0"])
