"""Reading tables for the statistics: clear errors for bad tables, CSV/TSV detection."""

from __future__ import annotations

import numpy as np
import pytest

from MammoDNNLib.errors import InputError
from MammoDNNLib.evaluation.tables import binary_truth, natural_order, parse_table, read_table


def test_csv_and_tsv_read_by_column_name(tmp_path):
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("\ufeffid,score\n1,0.5\n2,1.5\n\n", encoding="utf-8")
    table = read_table(csv_path)
    assert table.columns == ("id", "score")
    np.testing.assert_array_equal(table.numeric("score"), [0.5, 1.5])
    tsv_path = tmp_path / "b.tsv"
    tsv_path.write_text("fn\tx0\tx1\nimg\t1\t2\n", encoding="utf-8")
    assert read_table(tsv_path).text("fn") == ["img"]
    # tab-separated content in a file named .txt is recognised from its header
    txt = tmp_path / "c.txt"
    txt.write_text("a\tb\n1\t2\n", encoding="utf-8")
    assert read_table(txt).columns == ("a", "b")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty"),
        ("a,b\n", "no rows"),
        ("a,b\n1,2,3\n", "line 2 has 3 fields"),
        ("a,a\n1,2\n", "repeats column 'a'"),
        ("a,,c\n1,2,3\n", "empty column name"),
    ],
)
def test_malformed_tables_are_named_errors(text, needle):
    with pytest.raises(InputError, match=needle) as info:
        parse_table(text, path="bad.csv")
    assert str(info.value).startswith("bad.csv: ")


def test_missing_column_lists_what_exists():
    table = parse_table("truth,score\n1,0.3\n", path="t.csv")
    with pytest.raises(InputError, match=r"missing column 'rating'; the table has 'truth', 'score'"):
        table.require("rating")


def test_non_numeric_and_missing_values_name_their_line():
    table = parse_table("score\n0.1\nhigh\n", path="t.csv")
    with pytest.raises(InputError, match=r"column 'score' is not numeric at line 3: 'high'"):
        table.numeric("score")
    table = parse_table("score\n0.1\nNA\n", path="t.csv")
    with pytest.raises(InputError, match="no value at line 3"):
        table.numeric("score")
    assert np.isnan(table.numeric("score", allow_missing=True)[1])
    table = parse_table("score\ninf\n", path="t.csv")
    with pytest.raises(InputError, match="not a finite number"):
        table.numeric("score")


def test_binary_truth_needs_both_classes_and_matches_numbers():
    table = parse_table("y\n1\n1.0\n0\n", path="t.csv")
    np.testing.assert_array_equal(binary_truth(table, "y", "1"), [True, True, False])
    table = parse_table("outcome\nGood\nGood\n", path="t.csv")
    with pytest.raises(InputError, match="no positive rows for positive label 'Poor'"):
        binary_truth(table, "outcome", "Poor")
    with pytest.raises(InputError, match="only positive rows"):
        binary_truth(table, "outcome", "Good")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_natural_order():
    assert natural_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert natural_order(["b", "a", "b"]) == ["a", "b"]
