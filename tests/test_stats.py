import math
import random
import statistics

import pytest

from sdkit.book import experiments as ex
from sdkit.book import stats
from sdkit.book import trend_experiments as te


def test_mean_std_matches_the_statistics_module():
    rng = random.Random(0)
    for n in range(2, 12):
        values = [rng.uniform(0.5, 1.0) for _ in range(n)]
        mean, std = stats.mean_std(values)
        assert mean == pytest.approx(statistics.mean(values), rel=1e-12)
        assert std == pytest.approx(statistics.stdev(values), rel=1e-12)  # sample std: n - 1 in the denominator
    mean, std = stats.mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)
    assert stats.mean_std([0.5], single=0.0) == (0.5, 0.0)
    with pytest.raises(ValueError, match="values is empty"):
        stats.mean_std([])


def test_verdict_rule_is_the_interval_excluding_zero():
    assert stats.verdict(0.001, 0.02, 5) == "better" and stats.verdict(-0.02, -0.001, 5) == "worse"
    assert stats.verdict(-0.001, 0.02, 5) == "within noise"  # a positive mean whose interval holds 0
    assert stats.verdict(0.0, 0.02, 5) == "within noise"  # touching 0 is not excluding it
    assert stats.verdict(-0.03, -0.01, 5, higher_is_better=False) == "better"  # e.g. a lower ECE
    assert stats.verdict(0.01, 0.03, 5, higher_is_better=False) == "worse"
    assert stats.verdict(math.nan, math.nan, 1) == stats.verdict(0.1, 0.2, 1) == stats.NO_VERDICT
    with pytest.raises(ValueError, match="low <= high"):
        stats.verdict(0.2, 0.1, 5)
    with pytest.raises(ValueError, match="finite"):
        stats.verdict(math.nan, 0.1, 5)


def test_paired_interval_matches_scipys_paired_t_test():
    from scipy.stats import ttest_rel

    rng = random.Random(1)
    for n in (2, 3, 5, 8):
        base = [rng.uniform(0.8, 0.9) for _ in range(n)]
        cand = [b + rng.gauss(0.004, 0.01) for b in base]
        p = stats.paired(cand, base)
        ci = ttest_rel(cand, base).confidence_interval(0.95)  # scipy's own paired t-interval
        assert (p["low"], p["high"]) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
        assert p["diff"] == pytest.approx(statistics.mean([c - b for c, b in zip(cand, base, strict=True)]))
        assert p["wins"] == sum(c > b for c, b in zip(cand, base, strict=True))
        assert p["verdict"] == ("better" if ci.low > 0 else "worse" if ci.high < 0 else "within noise")


def test_paired_by_hand_and_bad_input():
    # diffs (0.25, 0, -0.25): mean 0, sample std 0.25, se = 0.25 / sqrt(3), t(0.975, 2) = 4.302653
    p = stats.paired([0.75, 0.5, 0.25], [0.5, 0.5, 0.5])
    half = 4.302652729911275 * 0.25 / math.sqrt(3)
    assert p["diff"] == 0.0 and p["se"] == pytest.approx(0.25 / math.sqrt(3)) and p["baseline_std"] == 0.0
    assert (p["low"], p["high"]) == (pytest.approx(-half), pytest.approx(half)) and p["verdict"] == "within noise"
    # consistent small gains on 5 seeds are "better" even when the baseline's own spread is larger
    p = stats.paired([0.91, 0.86, 0.95, 0.89, 0.93], [0.90, 0.85, 0.94, 0.88, 0.92])
    assert p["verdict"] == "better" and p["wins"] == 5 and p["baseline_std"] > p["diff"]
    # lower is better: the wins count and the verdict follow the direction
    p = stats.paired([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], higher_is_better=False)
    assert p["verdict"] == "better" and p["wins"] == 3
    one = stats.paired([0.9], [0.8])
    assert one["diff"] == pytest.approx(0.1) and math.isnan(one["low"]) and one["verdict"] == stats.NO_VERDICT
    with pytest.raises(ValueError, match="same, nonzero length"):
        stats.paired([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="same, nonzero length"):
        stats.paired([], [])


def test_group_and_summarize():
    rows = [
        {"seed": 0, "generation": 1, "acc": 0.85, "curve": [0.85, 0.6]},
        {"seed": 0, "generation": 0, "acc": 0.80, "curve": [0.8, 0.5]},
        {"seed": 1, "generation": 0, "acc": 0.82, "curve": [0.82, 0.4]},
        {"seed": 1, "generation": 1, "acc": 0.81, "curve": [0.81, 0.7]},
    ]
    groups = stats.group(rows, "generation")
    assert list(groups) == [1, 0] and [r["seed"] for r in groups[0]] == [0, 1]  # order of first appearance
    by_seed_and_student = stats.group(rows, lambda r: (r["seed"], r["generation"] > 0))
    assert list(by_seed_and_student) == [(0, True), (0, False), (1, False), (1, True)]
    out = stats.summarize(rows, "generation", ["acc", "curve"])
    assert [r["generation"] for r in out] == [1, 0] and out[0]["n"] == 2
    assert out[1]["acc_mean"] == pytest.approx(0.81)
    assert out[1]["acc_std"] == pytest.approx(statistics.stdev([0.8, 0.82]))
    assert out[0]["curve_mean"] == pytest.approx([0.83, 0.65])
    assert out[0]["curve_std"] == pytest.approx([statistics.stdev([0.85, 0.81]), statistics.stdev([0.6, 0.7])])
    (single,) = stats.summarize(rows[:1], "generation", ["acc"], count="n_seeds", single=0.0)
    assert single == {"generation": 1, "n_seeds": 1, "acc_mean": 0.85, "acc_std": 0.0}
    with pytest.raises(ValueError, match="rows is empty"):
        stats.summarize([], "generation", ["acc"])


def test_experiment_modules_share_the_statistics():
    assert ex.mean_std is stats.mean_std and ex.summarize is stats.summarize and ex.verdict is stats.verdict
    assert te.verdict is stats.verdict and te.paired is stats.paired
    assert te.mean_std_record([1.0, 2.0, 3.0]) == {
        "mean": 2.0,
        "std": 1.0,
        "n": 3,
    }  # the dict form of the trends tables
    assert te.mean_std_record([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1}
