"""The regime grid of chapter 06: label noise, the cell driver, result files and the verdict tables."""

import json

import pytest
import torch

from sdkit.book import regime_reports, regimes, stats


def test_symmetric_noise_changes_exactly_the_rate_and_never_keeps_the_class():
    y = torch.arange(10).repeat(50)
    for rate in (0.0, 0.2, 0.6):
        noisy = regimes.noisy_labels(y, rate, "symmetric", 10, seed=3)
        changed = noisy != y
        assert int(changed.sum()) == round(rate * len(y))
        assert noisy.min() >= 0 and noisy.max() < 10
    again = regimes.noisy_labels(y, 0.6, "symmetric", 10, seed=3)
    assert torch.equal(again, regimes.noisy_labels(y, 0.6, "symmetric", 10, seed=3))  # seeded
    # every wrong class is reachable: the replacement is uniform over the 9 others, not a fixed shift
    assert len(set(again[(again != y) & (y == 0)].tolist())) == 9


def test_class_dependent_noise_follows_the_confusions():
    y = torch.arange(10).repeat(40)
    noisy = regimes.noisy_labels(y, 0.5, "class", 10, seed=0)
    for source in range(10):
        members = y == source
        flipped = noisy[members] != source
        if source in regimes.CONFUSIONS:
            assert int(flipped.sum()) == 20 and set(noisy[members][flipped].tolist()) == {regimes.CONFUSIONS[source]}
        else:
            assert not flipped.any()  # trousers, dresses and bags keep their labels


def test_noisy_labels_rejects_bad_arguments():
    y = torch.arange(10)
    with pytest.raises(ValueError, match="rate must lie in"):
        regimes.noisy_labels(y, 1.0, "symmetric", 10, seed=0)
    with pytest.raises(ValueError, match="kind must be"):
        regimes.noisy_labels(y, 0.1, "pairs", 10, seed=0)
    with pytest.raises(ValueError, match="unknown cell"):
        regimes.run_cell("n7", "quick")
    with pytest.raises(ValueError, match="unknown method"):
        regimes.run_cell("n500", "quick", methods=("plain", "dml"))


def test_run_cell_writes_a_file_that_a_later_pass_extends(tmp_path):
    first = regimes.run_cell("n500-sym40", "quick", methods=("plain", "ban-es"), seeds=[0, 1], out=tmp_path, log=None)
    path = tmp_path / "n500-sym40.json"
    saved = json.loads(path.read_text())
    assert saved["rows"] == json.loads(json.dumps(first["rows"])) and saved["spec"]["noise"] == 0.4
    assert {"machine", "date", "wall_seconds", "command"} <= set(saved)
    for row in saved["rows"]:
        assert row["gap"] == pytest.approx(row["train_accuracy"] - row["test_accuracy"])
        # 40% of the training labels are wrong: fitting them means disagreeing with the clean labels
        assert row["train_clean_accuracy"] < 1.0
    regimes.run_cell("n500-sym40", "quick", methods=("plain-es",), seeds=[0, 1], out=tmp_path, merge=True, log=None)
    merged = json.loads(path.read_text())
    assert [r["method"] for r in merged["rows"]] == ["plain", "ban-es", "plain", "ban-es", "plain-es", "plain-es"]
    assert len(merged["passes"]) == 2
    # plain-es is the early-stopped plain model: the same weights ban-es was taught by
    es = {r["seed"]: r for r in merged["rows"] if r["method"] == "plain-es"}
    ban = {r["seed"]: r for r in merged["rows"] if r["method"] == "ban-es"}
    assert all(es[s]["teacher_epoch"] == ban[s]["teacher_epoch"] for s in es)
    with pytest.raises(ValueError, match="must match to merge"):
        regimes.run_cell("n500-sym40", "quick", methods=("ls",), seeds=[0], out=tmp_path, merge=True, log=None)
    with pytest.raises(ValueError, match=r"seeds must be a sequence of distinct integer seeds.*got seeds=2"):
        regimes.run_cell("n500-sym40", "quick", methods=("ls",), seeds=2, out=tmp_path, log=None)
    grid = regime_reports.load_grid(tmp_path)
    assert list(grid) == ["n500-sym40"]


def test_gains_tables_and_map_use_the_one_verdict_rule():
    rows = []
    for seed, (plain, dlb, ls) in enumerate([(0.80, 0.83, 0.79), (0.82, 0.86, 0.83), (0.81, 0.83, 0.80)]):
        for method, acc in (("plain", plain), ("dlb", dlb), ("ls", ls)):
            rows.append({"method": method, "seed": seed, "test_accuracy": acc, "train_accuracy": 1.0,
                         "train_clean_accuracy": 1.0, "gap": 1.0 - acc, "test_nll": 0.5, "test_ece": 0.1})  # fmt: skip
    grid = {"n500": {"cell": "n500", "rows": rows}, "n2000-sym40": {"cell": "n2000-sym40", "rows": rows}}
    g = regime_reports.gains(grid["n500"])
    assert g["dlb"] == stats.paired([0.83, 0.86, 0.83], [0.80, 0.82, 0.81])
    assert g["dlb"]["verdict"] == "better" and g["ls"]["verdict"] == "within noise"
    table = regime_reports.gain_table(grid, intervals=True)
    assert table.header == ["cell", "plain", "ls", "dlb"] and table.rows[0][0] == "n500"
    assert table.rows[0][3].endswith("▲") and "<table>" in table._repr_html_()
    low, high = 100 * g["dlb"]["low"], 100 * g["dlb"]["high"]
    assert table.rows[0][3] == f"+{100 * g['dlb']['diff']:.2f} [{low:+.2f}, {high:+.2f}] ▲"
    assert regime_reports.gain_table(grid).rows[0][2] == f"{100 * g['ls']['diff']:+.2f} ·"
    assert len(regime_reports.claims_table(grid).rows) == 6
    assert regime_reports.verdict_counts(grid)["dlb"]["better"] == ["n500", "n2000-sym40"]
    fig = regime_reports.plot_regime_map(grid)
    assert len(fig.axes) == 3


def test_run_cell_logs_one_line_per_trained_model_as_count_runs_says():
    lines: list[str] = []
    regimes.run_cell("n500", "quick", methods=("plain", "ls"), seeds=[0], log=lines.append)
    assert len(lines) == regimes.count_runs(["n500"], "quick", methods=("plain", "ls"), seeds=[0]) == 2
    assert [line.split()[:2] for line in lines] == [["n500", "plain"], ["n500", "ls"]]
    assert max(len(line) for line in lines) <= 88  # folded under a chapter's progress bar without scrolling
    assert regimes.count_runs(["n500", "n500-sym40"], "quick") == 2 * 2 * len(regimes.METHODS)
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        regimes.count_runs(["n500"], "huge")


def test_verdict_count_and_provenance_tables():
    rows = []
    for seed, (plain, dlb) in enumerate([(0.80, 0.83), (0.82, 0.86), (0.81, 0.83)]):
        rows += [{"method": "plain", "seed": seed, "test_accuracy": plain},
                 {"method": "dlb", "seed": seed, "test_accuracy": dlb}]  # fmt: skip
    worse = [dict(r, test_accuracy=r["test_accuracy"] - (0.06 if r["method"] == "dlb" else 0)) for r in rows]
    machine = {"cpu_model": "CPU", "cpu_count": 2}
    common = {"seeds": [0, 1, 2], "config": {"model": "mlp", "dataset": "fashion-mnist", "steps": 1000},
              "machine": machine, "date": "2026-11-30T00:00:00", "wall_seconds": 1800.0}  # fmt: skip
    grid = {
        "n500": {"cell": "n500", "rows": rows, "command": "run a", **common},
        "n2000": {"cell": "n2000", "rows": worse, "command": "run b", **common,
                  "passes": [{"command": "run b"}, {"command": "run c"}]},
    }  # fmt: skip
    table = regime_reports.verdict_count_table(grid)
    # dlb wins by 0.03, 0.04, 0.02 in n500 (better), loses by 0.03, 0.02, 0.04 in n2000 (worse)
    assert table.rows == [["dlb", "n500", "n2000"]] and "<table>" in table._repr_html_()
    provenance = regime_reports.provenance_table(grid).rows
    assert provenance[0] == ["grid", "2 cells x 3 seeds; mlp on fashion-mnist, 1000 steps"]
    assert provenance[1] == ["measured", "2026-11-30 on CPU (2 cores): 1.0 h of runs"]
    assert provenance[2:] == [["command 1", "run a"], ["command 2", "run b"], ["command 3", "run c"]]
