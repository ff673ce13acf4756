import math
import re
import statistics

import pytest
import torch
from scipy import stats as scipy_stats

from sdkit.book.reports import format_mean_std, format_metrics, format_vector, paired_table, records_table
from sdkit.book.stats import paired


def html_cells(table) -> list[list[str]]:
    """The body of a Table's HTML as rows of cell texts (what the book page shows)."""
    body = table._repr_html_().split("<tbody>")[1]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


# ---------------------------------------------------------------------------------------------------- format_*


def test_format_vector_lists_tensors_and_digits():
    assert format_vector([0.8, 0.1, 0.1]) == "[0.8000, 0.1000, 0.1000]"
    assert format_vector(torch.tensor([0.58578, 0.20711]), digits=2) == "[0.59, 0.21]"
    assert format_vector([1 / 3], digits=0) == "[0]"


def test_format_vector_rejects_a_matrix_and_bad_digits():
    with pytest.raises(ValueError, match=r"values must be one vector .* shape \(2, 2\)"):
        format_vector(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="digits=-1"):
        format_vector([0.5], digits=-1)


def test_format_metrics_keeps_the_order_and_rounds():
    text = format_metrics({"nll": 0.08634, "accuracy": 0.98885}, digits=3)
    assert text == "nll 0.086, accuracy 0.989"
    with pytest.raises(ValueError, match="metrics is empty"):
        format_metrics({})


def test_format_mean_std_uses_the_sample_standard_deviation():
    values = [0.9889, 0.9916, 0.9889]
    mean, std = statistics.mean(values), statistics.stdev(values)  # n - 1 in the denominator
    assert format_mean_std(values) == f"{mean:.4f} ± {std:.4f}"
    assert format_mean_std([2.3], digits=1) == "2.3 ± -"  # one seed has no spread
    with pytest.raises(ValueError, match="values is empty"):
        format_mean_std([])


# ---------------------------------------------------------------------------------------------- records_table


def test_records_table_keys_format_specs_functions_and_missing_values():
    records = [
        {"role": "teacher", "T": None, "accuracy": 0.96657, "gained": 0},
        {"role": "student", "T": 8, "accuracy": 0.93593, "gained": -11},
    ]
    columns = {
        "model": "role",
        "T": ("T", "g"),
        "test acc": ("accuracy", ".4f"),
        "vs teacher": ("gained", "+d"),
        "errors": lambda r: round((1 - r["accuracy"]) * 359),
        "absent": "nll",
    }
    table = records_table(records, columns)
    assert table.header == list(columns)
    expected = [
        ["teacher", "-", "0.9666", "+0", str(round((1 - 0.96657) * 359)), "-"],
        ["student", "8", "0.9359", "-11", str(round((1 - 0.93593) * 359)), "-"],
    ]
    assert table.rows == expected
    assert html_cells(table) == expected


def test_records_table_rejects_bad_columns_and_records():
    with pytest.raises(ValueError, match="columns is empty"):
        records_table([{"a": 1}], {})
    with pytest.raises(ValueError, match=r"column 'x' must be a key, a \(key, format spec\) pair or a function"):
        records_table([{"a": 1}], {"x": ("a", ".2f", "extra")})
    with pytest.raises(ValueError, match="column 'y'"):
        records_table([{"a": 1}], {"y": 3})
    with pytest.raises(ValueError, match=r"records\[1\]=\('b', 2\)"):
        records_table([{"a": 1}, ("b", 2)], {"a": "a"})


# ----------------------------------------------------------------------------------------------- paired_table


def test_paired_table_cells_match_an_independent_t_interval():
    candidate, baseline = [0.83, 0.87, 0.81, 0.86], [0.80, 0.84, 0.82, 0.83]
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    mean, se = statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    half = scipy_stats.t.ppf(0.975, len(diffs) - 1) * se
    table = paired_table([("B vs A", paired(candidate, baseline))], scale=100, digits=2, unit="points")
    assert table.header == ["comparison", "difference (points)", "95% interval", "won", "verdict"]
    low, high = 100 * (mean - half), 100 * (mean + half)
    verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
    wins = sum(d > 0 for d in diffs)
    assert table.rows == [["B vs A", f"{100 * mean:+.2f}", f"{low:+.2f} to {high:+.2f}", f"{wins}/4", verdict]]


def test_paired_table_without_wins_and_with_one_seed():
    no_wins = {"diff": -0.0118, "low": -0.0183, "high": -0.0053, "verdict": "worse"}
    one_seed = {"diff": 0.01, "low": math.nan, "high": math.nan, "verdict": "one seed: no verdict"}
    table = paired_table([("ban", no_wins), ("kd", one_seed)], label="method")
    assert table.header == ["method", "difference", "95% interval", "verdict"]  # no "won" column: no wins given
    assert table.rows == [
        ["ban", "-0.0118", "-0.0183 to -0.0053", "worse"],
        ["kd", "+0.0100", "-", "one seed: no verdict"],
    ]


def test_paired_table_rejects_bad_input():
    with pytest.raises(ValueError, match="comparisons is empty"):
        paired_table([])
    with pytest.raises(ValueError, match=r"comparison 'x' lacks \['high', 'verdict'\]"):
        paired_table([("x", {"diff": 0.1, "low": 0.0})])
    with pytest.raises(ValueError, match="scale=0"):
        paired_table([("x", {"diff": 0.1, "low": 0.0, "high": 0.2, "verdict": "better"})], scale=0)
