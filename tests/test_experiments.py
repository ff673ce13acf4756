import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

import sdkit
from sdkit.book import application_tables as tables
from sdkit.book import experiments as ex
from sdkit.book import stats
from sdkit.evaluate import Table

COMMITTED = Path(__file__).resolve().parents[1] / "book" / "results" / "applications_full.json"


def test_compare_paired_hand_example():
    rows = [
        {"seed": 0, "g": 0, "acc": 0.80, "c": [1.0, 0.5]},
        {"seed": 1, "g": 0, "acc": 0.84, "c": [1.0, 0.3]},
        {"seed": 2, "g": 0, "acc": 0.82, "c": [1.0, 0.4]},
        {"seed": 0, "g": 1, "acc": 0.83, "c": [1.0, 0.7]},
        {"seed": 2, "g": 1, "acc": 0.81, "c": [1.0, 0.8]},
        {"seed": 1, "g": 1, "acc": 0.87, "c": [1.0, 0.5]},
    ]
    out = stats.compare_paired(rows, "acc", key="g", candidate=1, baseline=0)
    assert out["diffs"] == pytest.approx([0.03, 0.03, -0.01])  # paired by seed, in the baseline's seed order
    assert out["diff"] == pytest.approx(0.05 / 3) and out["baseline_std"] == pytest.approx(0.02)
    assert out["n_better"] == out["wins"] == 2 and out["verdict"] == "within noise"
    assert "+0.0167" in out["text"] and "2 of 3" in out["text"] and "g 0" in out["text"]
    curve = stats.compare_paired(rows, "c", key="g", candidate=1, baseline=0, index=1)
    # diffs (0.2, 0.2, 0.4): mean 0.2667, sd 0.1155, t(0.975, 2) = 4.3027: the interval reaches below 0
    half = 4.302652729911275 * 0.11547005383792516 / 3**0.5
    assert curve["diff"] == pytest.approx(0.8 / 3) and curve["low"] == pytest.approx(0.8 / 3 - half)
    assert curve["verdict"] == "within noise" and "95% interval -0.02" in curve["text"]
    lower = stats.compare_paired(rows, "acc", key="g", candidate=1, baseline=0, higher_is_better=False)
    assert lower["n_better"] == 1
    with pytest.raises(ValueError, match="no seed"):
        stats.compare_paired(rows, "acc", key="g", candidate=2, baseline=0)


def test_budget_modes_and_overrides():
    assert ex.budget("full", "cpu")["name"] == "full-cpu"
    quick = ex.budget("quick", seeds=(7,))
    assert quick["seeds"] == [7] and ex.BUDGETS["quick"]["seeds"] == [0, 1]  # a copy: the table is not changed
    with pytest.raises(ValueError, match="unknown budget key"):
        ex.budget("quick", epochs=3)
    with pytest.raises(ValueError, match="mode"):
        ex.budget("huge")
    for bad in (2, [], [0, 0], [0.5]):  # a count is not a list of seeds; seeds are distinct integers
        with pytest.raises(ValueError, match=r"seeds must be a sequence of distinct integer seeds.*got seeds="):
            ex.budget("quick", seeds=bad)


def test_model_size_counts_float32_bytes():
    mlp = sdkit.build_model("mlp", (1, 8, 8), 10)
    size = ex.model_size(mlp)
    assert size["parameters"] == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert size["tensor_bytes"] == 4 * size["parameters"]  # no buffers in an MLP
    assert size["state_dict_bytes"] > size["tensor_bytes"]
    cnn = ex.model_size(sdkit.build_model("cnn", (1, 8, 8), 10))
    buffers = sum(b.numel() * b.element_size() for b in sdkit.build_model("cnn", (1, 8, 8), 10).buffers())
    assert cnn["tensor_bytes"] == 4 * cnn["parameters"] + buffers


TINY = [
    "--set", "ba_dataset=digits", "--set", "comp_dataset=digits", "--set", "seeds=[0,1]", "--set", "ba_epochs=1",
    "--set", "comp_epochs=1", "--set", "ba_generations=1", "--set", "sigmas=[0, 0.5]",
    "--set", "epsilons=[0, 0.1]", "--set", "ba_train_size=300", "--set", "comp_train_size=300",
    "--set", "ba_test_size=null", "--set", "comp_test_size=null",
]  # fmt: skip


def test_command_line_writes_every_section(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "app.json"
    assert ex.main(["applications", "--mode", "quick", "--device", "cpu", "--out", str(out), *TINY]) == 0
    result = json.loads(out.read_text())
    for key in ("command", "date", "wall_seconds", "machine", "config", "compression", "generalization",
                "robustness", "calibration"):  # fmt: skip
        assert key in result
    assert result["command"].startswith("python -m sdkit.book.experiments applications --mode quick")
    assert result["config"]["seeds"] == [0, 1] and result["config"]["ba_dataset"] == "digits"
    comp = result["compression"]
    assert [r["role"] for r in comp["rows"]] == ["teacher", "alone", "distilled", "alone", "distilled"]
    assert comp["student"]["parameters"] < comp["teacher"]["parameters"]
    gen = result["generalization"]
    assert [(r["seed"], r["generation"]) for r in gen["rows"]] == [(0, 0), (0, 1), (1000, 0), (1000, 1)]
    acc = [r["accuracy"] for r in gen["rows"] if r["generation"] == 0]
    assert gen["summary"][0]["accuracy_mean"] == pytest.approx(np.mean(acc))
    rob = result["robustness"]
    for row, base in zip(rob["rows"], gen["rows"], strict=True):  # sigma = 0 and eps = 0 give the clean accuracy
        assert row["noise"][0] == pytest.approx(base["accuracy"], abs=1e-6)
        assert row["fgsm"][0] == pytest.approx(base["accuracy"], abs=1e-6)
    assert len(rob["fgsm_comparisons"]) == 2 and rob["fgsm_comparisons"][1][0]["candidate"] == 1
    bins = result["calibration"]["bins"]
    assert set(bins) == {"0", "1"} and sum(bins["0"]["count"]) == 2 * result["born_again"]["data"]["test"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("wrote")
    # one log line per trained model, as many as count_runs promises (a progress bar's total), none too wide
    runs = [line for line in printed if line.startswith(("compression", "born-again"))]
    assert len(runs) == ex.count_runs(result["config"]) == 1 + 2 * 2 + 2 * 2
    assert max(len(line) for line in runs) <= 88


def test_command_line_rejects_bad_overrides(tmp_path, capsys):
    assert ex.main(["applications", "--out", str(tmp_path / "x.json"), "--set", "nope=1"]) == 2
    assert "unknown budget key" in capsys.readouterr().err
    assert ex.main(["applications", "--out", str(tmp_path / "x.json"), "--set", "seeds"]) == 2
    assert not (tmp_path / "x.json").exists()


def _committed() -> dict:
    return ex.refresh_verdicts(json.loads(COMMITTED.read_text()))


def test_tables_are_html_tables_of_the_per_seed_numbers():
    result = _committed()
    by_name = tables.all_tables(result)
    assert set(by_name) == {"compression", "generalization", "noise", "fgsm", "calibration"}
    assert all(isinstance(t, Table) and "<table>" in t._repr_html_() for t in by_name.values())
    # the student trained alone: mean and sample std over its seeds, computed here from the rows
    alone = [r["accuracy"] for r in result["compression"]["rows"] if r["role"] == "alone"]
    row = next(r for r in by_name["compression"].rows if r[0].startswith("alone"))
    assert row[3] == f"{statistics.mean(alone):.4f} ± {statistics.stdev(alone):.4f}" and row[-1] == "3"
    assert row[1] == f"{result['compression']['student']['parameters']:,}"
    # noise table, largest sigma: gen 1 minus gen 0 is the mean of the per-seed differences, with its verdict
    by = {(r["seed"], r["generation"]): r["noise"][-1] for r in result["robustness"]["rows"]}
    diff = statistics.mean(by[s, 1] - by[s, 0] for s in {seed for seed, _ in by})
    last = by_name["noise"].rows[-1]
    verdict = result["robustness"]["noise_comparisons"][-1][0]["verdict"]
    assert by_name["noise"].header[4] == "gen 1 - gen 0" and last[4] == f"{diff:+.4f} ({verdict})"
    assert [r[0] for r in by_name["calibration"].rows] == ["gen 0", "gen 1", "gen 2"]


def test_verdict_table_shows_each_comparison_in_a_row():
    rows = [{"seed": s, "generation": g, "acc": a} for s, g, a in
            [(0, 0, 0.80), (1, 0, 0.84), (2, 0, 0.82), (0, 1, 0.83), (1, 1, 0.87), (2, 1, 0.81)]]  # fmt: skip
    c = stats.compare_paired(rows, "acc", key="generation", candidate=1, baseline=0)
    # differences 0.03, 0.03, -0.01: mean 0.0167, sd 0.0231, t(0.975, 2) = 4.3027
    half = 4.302652729911275 * statistics.stdev([0.03, 0.03, -0.01]) / 3**0.5
    table = tables.verdict_table([c])
    assert table.header == ["compared", "metric", "diff", "95% interval", "won", "verdict"]
    assert table.rows == [["gen 1 vs gen 0", "acc", "+0.0167", f"[{0.05 / 3 - half:+.4f}, {0.05 / 3 + half:+.4f}]",
                           "2/3", "within noise"]]  # fmt: skip
    named = tables.verdict_table([c, c], metrics=["accuracy", "accuracy again"], claims=["6.2", "6.2"])
    assert named.header[:3] == ["claim", "compared", "metric"] and named.rows[1][:3] == ["6.2", "gen 1 vs gen 0",
                                                                                        "accuracy again"]  # fmt: skip
    with pytest.raises(ValueError, match=r"metrics needs one label per comparison \(1\), got 2"):
        tables.verdict_table([c], metrics=["a", "b"])


def test_budget_and_provenance_tables_say_what_ran():
    quick = ex.budget("quick")
    table = tables.budget_table(quick)
    cells = dict(table.rows)
    assert table.header == ["experiment", "budget quick"]
    assert cells["every experiment"].startswith("2 seeds, T=4, alpha=0.9, batch 128")
    assert "fashion-mnist-sample: mlp x1, generations 0 to 2 of 8 epochs each" in cells["born-again"]
    assert "training images 3,000, validation 5%, test images 2,000" in cells["born-again"]
    assert "training images all" in cells["compression"] and "cnn x0.25" in cells["compression"]
    assert cells["robustness"].startswith("noise sigma 0, 0.1, 0.2, 0.4, 0.6, 0.8, 1;")
    result = json.loads(COMMITTED.read_text())
    provenance = dict(tables.provenance_table(result).rows)
    assert provenance["command"] == result["command"] and provenance["date"] == result["date"]
    assert provenance["wall time"] == f"{result['wall_seconds'] / 60:.1f} min on device cpu, budget full-cpu"
    assert provenance["born-again data"] == "54,000 train, 6,000 val, 10,000 test"


def test_count_runs_counts_every_trained_model():
    assert ex.count_runs(ex.budget("quick")) == 1 + 2 * 2 + 2 * 3
    assert ex.count_runs(ex.budget("quick", seeds=range(5), ba_generations=1)) == 1 + 2 * 5 + 5 * 2
