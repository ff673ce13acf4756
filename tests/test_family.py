"""Tables, verdicts and the figure of chapter 06's head-to-head comparison of the self-distillation family."""

import json
import statistics

import pytest

from sdkit.book import family, stats
from sdkit.compare import SUMMARY_METRICS

# three seeds; "ls" beats plain by 0.03, 0.04, 0.02 (better), "ban" is mixed (within noise)
ACCURACY = {"plain": [0.80, 0.82, 0.81], "ls": [0.83, 0.86, 0.83], "ban": [0.79, 0.84, 0.80]}
SECONDS = {"plain": 10.0, "ls": 12.0, "ban": 25.0}


def _result():
    rows = [
        {"method": m, "seed": seed, "test_accuracy": acc, "test_nll": 0.5 - acc / 2, "test_ece": 0.1 - acc / 10,
         "seconds": SECONDS[m] + seed}
        for m, accs in ACCURACY.items() for seed, acc in enumerate(accs)
    ]  # fmt: skip
    machine = {"cpu_model": "CPU", "cpu_count": 2, "torch_threads": 1, "load_average": [1.0, 1.0, 1.0]}
    summary = stats.summarize(rows, "method", SUMMARY_METRICS, count="n_seeds", single=0.0)
    return {"rows": rows, "summary": summary, "command": "python -m sdkit compare --seeds 0,1,2",
            "machine": machine, "date": "2026-12-01T10:00:00", "wall_seconds": 600.0}  # fmt: skip


def test_family_table_is_mean_std_per_method_and_time_relative_to_plain():
    table = family.family_table(_result())
    assert table.header[0] == "method" and [r[0] for r in table.rows] == ["plain", "ls", "ban"]
    ls = table.rows[1]
    accs = ACCURACY["ls"]
    assert ls[1] == "3" and ls[2] == f"{statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f}"
    # ban's runs take 25, 26, 27 s, plain's 10, 11, 12 s
    assert table.rows[2][5] == "26 ± 1" and table.rows[2][6] == f"{26 / 11:.1f}"
    assert "<table>" in table._repr_html_()


def test_verdicts_are_the_paired_rule_against_plain():
    verdicts = family.family_verdicts(_result())
    assert list(verdicts) == ["ls", "ban"] and [c["metric"] for c in verdicts["ls"]] == [
        "test_accuracy", "test_nll", "test_ece"
    ]  # fmt: skip
    expected = stats.paired(ACCURACY["ls"], ACCURACY["plain"])
    acc = verdicts["ls"][0]
    assert acc["diff"] == pytest.approx(0.03) and acc["low"] == pytest.approx(expected["low"])
    assert acc["verdict"] == "better" and verdicts["ban"][0]["verdict"] == "within noise"
    # NLL falls as accuracy rises here: lower is better, so ls is better on NLL too
    assert verdicts["ls"][1]["verdict"] == "better"
    assert family.accuracy_verdicts(verdicts) == {"better": ["ls"], "worse": []}
    table = family.verdict_table(verdicts)
    assert table.header == ["vs plain", "accuracy diff [95% CI]", "won", "NLL diff [95% CI]", "ECE diff [95% CI]"]
    assert table.rows[0][:3] == ["ls", f"+0.0300 [{expected['low']:+.4f}, {expected['high']:+.4f}] better", "3/3"]


def test_budget_shift_table_puts_two_budgets_side_by_side():
    short = family.family_verdicts(_result())
    longer = {m: [dict(c, verdict="worse", diff=-0.01) for c in cs] for m, cs in short.items()}
    table = family.budget_shift_table(short, longer)
    assert table.rows[0] == ["ls", "better (+0.0300)", "worse (-0.0100)", "better (-0.0030)", "worse (-0.0100)"]
    with pytest.raises(ValueError, match="different methods"):
        family.budget_shift_table(short, {"ls": longer["ls"]})


def test_provenance_and_loading(tmp_path):
    result = _result()
    rows = dict(family.provenance_table(result).rows)
    assert (
        rows["command"] == "python -m sdkit compare --seeds 0,1,2" and rows["date, wall time"] == "2026-12-01, 10 min"
    )
    assert rows["machine"] == "CPU, 2 CPUs, 1 torch thread(s), load at the end [1.0, 1.0, 1.0]"
    path = tmp_path / "family.json"
    path.write_text(json.dumps(result))
    assert family.load_family(path) == result
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match=r"lacks \['summary'.*python -m sdkit compare --out FILE"):
        family.load_family(path)
    without_plain = dict(result, summary=[r for r in result["summary"] if r["method"] != "plain"])
    with pytest.raises(ValueError, match="no 'plain' method"):
        family.family_table(without_plain)


def test_plot_family_draws_every_method_on_three_panels():
    fig = family.plot_family(_result(), "toy")
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == [
        "test accuracy (higher is better)", "test NLL (lower is better)", "test ECE (lower is better)"
    ]  # fmt: skip
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["plain", "ls", "ban"]
    assert len(ax.collections) >= 3  # one scatter of single seeds per method
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(statistics.mean(ACCURACY["plain"]))  # the dashed plain line
    assert fig._suptitle.get_text().startswith("toy: mean ± std")
