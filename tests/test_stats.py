import math
import random
import statistics

import pytest

from sdkit import experiments as ex
from sdkit import stats
from sdkit import trend_experiments as te


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


def test_verdict_rule():
    assert stats.verdict(0.02, 0.01) == "better" and stats.verdict(-0.02, 0.01) == "worse"
    assert stats.verdict(0.005, 0.01, 3) == "within noise"
    assert stats.verdict(-0.01, 0.01, 3) == "within noise"  # equal to the spread: not beyond it
    assert stats.verdict(-0.02, 0.01, higher_is_better=False) == "better"  # e.g. a lower ECE
    assert stats.verdict(0.03, 0.02, higher_is_better=False) == "worse"
    assert stats.verdict(0.5, float("nan"), 1) == stats.verdict(0.5, 0.1, 1) == "one seed: no verdict"
    with pytest.raises(ValueError, match="noise=-1"):
        stats.verdict(0.0, -1)
    with pytest.raises(ValueError, match="diff=nan"):
        stats.verdict(float("nan"), 0.1)


def test_paired_differences_by_hand():
    # diffs (0.25, 0, -0.25): mean 0, sample std 0.25, so se = 0.25 / sqrt(3); a constant baseline has no noise
    p = stats.paired([0.75, 0.5, 0.25], [0.5, 0.5, 0.5])
    assert p == {"diff": 0.0, "se": pytest.approx(0.25 / math.sqrt(3)), "noise": 0.0, "n": 3}
    # the verdict example of chapter 6: B beats A on 2 of 3 seeds by 0.05 / 3 on average, A's spread is 0.02
    p = stats.paired([0.83, 0.87, 0.81], [0.80, 0.84, 0.82])
    assert p["diff"] == pytest.approx(0.05 / 3) and p["noise"] == pytest.approx(0.02)
    one = stats.paired([0.9], [0.8])
    assert one["diff"] == pytest.approx(0.1) and math.isnan(one["se"]) and math.isnan(one["noise"])
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
    (single,) = stats.summarize(rows[:1], "generation", ["acc"], count="seeds", single=0.0)
    assert single == {"generation": 1, "seeds": 1, "acc_mean": 0.85, "acc_std": 0.0}
    with pytest.raises(ValueError, match="rows is empty"):
        stats.summarize([], "generation", ["acc"])


def test_experiment_modules_share_the_statistics():
    assert ex.mean_std is stats.mean_std and ex.summarize is stats.summarize and ex.verdict is stats.verdict
    assert te.verdict is stats.verdict and te.paired is stats.paired
    assert te.mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}  # the dict form of the trends tables
    assert te.mean_std([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1}
