"""The tables, verdicts and printed reports of the chapter "Trends and challenges", on small hand-made results whose
numbers are computed here independently, and on the committed full-size results (every printed line fits the
book's 88-character code box)."""

import json
import math
import statistics
from pathlib import Path

import pytest

from sdkit.book import trend_reports, trend_tables, trend_verdicts
from sdkit.book.trend_experiments import expected_range
from sdkit.book.trend_training import mean_std_record, summaries
from sdkit.evaluate import Table

ROOT = Path(__file__).resolve().parents[1]
T_975_1, T_975_2 = 12.706204736174698, 4.302652729911275  # Student-t quantiles for 2 and 3 seeds


def body(table: Table) -> list[list[str]]:
    return table.rows


def compression_result() -> dict:
    # two seeds; accuracy per (model, variant, amount)
    acc = {
        ("teacher", "pruned", 0.0): (0.90, 0.92), ("teacher", "pruned", 0.9): (0.85, 0.87),
        ("teacher", "int8", 0.0): (0.90, 0.92), ("teacher", "int8", 0.9): (0.85, 0.86),
        ("distilled student", "pruned", 0.0): (0.91, 0.91), ("distilled student", "pruned", 0.9): (0.75, 0.77),
        ("distilled student", "int8", 0.0): (0.90, 0.90), ("distilled student", "int8", 0.9): (0.75, 0.76),
        ("student alone", "pruned", 0.0): (0.90, 0.92), ("student alone", "pruned", 0.9): (0.91, 0.90),
        ("student alone", "int8", 0.0): (0.91, 0.93), ("student alone", "int8", 0.9): (0.90, 0.90),
    }  # fmt: skip
    rows = []
    for (role, variant, amount), values in acc.items():
        for seed, a in enumerate(values):
            dense = 4096 if variant == "pruned" else 1024
            sparse = (12288 if amount == 0 else 1228.8) if variant == "pruned" else math.nan
            rows.append({"seed": seed, "model": role, "variant": variant, "amount": amount, "accuracy": a,
                         "bytes": dense, "sparse_bytes": sparse, "nonzero": 1000 if amount == 0 else 100})  # fmt: skip
    inference = [
        {"model": "teacher", "float_ms_per_1000": 10.0, "int8_ms_per_1000": 5.0},
        {"model": "distilled student", "float_ms_per_1000": 10.0, "int8_ms_per_1000": 12.0},
        {"model": "student alone", "float_ms_per_1000": 8.0, "int8_ms_per_1000": 4.0},
    ]
    return {"spec": {"amounts": [0.0, 0.9], "combined_amount": 0.9}, "rows": rows, "inference": inference,
            "accuracy": summaries(rows, ("model", "variant", "amount"), "accuracy")}  # fmt: skip


def test_compression_table_rows_hold_means_stds_sizes_and_counts():
    table = trend_tables.compression_table(compression_result())
    assert table.header[:3] == ["model", "variant", "test accuracy (%)"]
    assert len(body(table)) == 3 * 4  # per model: float32, pruned 90%, int8, pruned 90% + int8
    by_name = {(r[0], r[1]): r for r in body(table)}
    # distilled student pruned 90%: mean of (0.75, 0.77) = 76.0, sample std 0.01 * sqrt(2) = 1.4 points
    assert by_name[("distilled student", "pruned 90%")] == ["distilled student", "pruned 90%", "76.0 ± 1.4", "4",
                                                            "1", "100"]  # fmt: skip
    assert by_name[("teacher", "float32")][3:] == ["4", "12", "1,000"]
    assert by_name[("student alone", "int8")][2:5] == ["92.0 ± 1.4", "1", "-"]  # int8 has no CSR form
    assert by_name[("teacher", "pruned 90% + int8")][2] == "85.5 ± 0.7"
    assert len(body(trend_tables.compression_table(compression_result(), [0.0]))) == 3 * 3


def test_inference_table_and_int8_summary():
    result = compression_result()
    rows = {r[0]: r for r in body(trend_tables.inference_table(result))}
    # int8 minus float32 accuracy, means over seeds: 0.90 - 0.91 = -1 point; 0.92 - 0.91 = +1 point
    assert rows["teacher"] == ["teacher", "+0.00", "10.0", "5.0", "0.50"]
    assert rows["distilled student"][1] == "-1.00" and rows["distilled student"][4] == "1.20"
    assert rows["student alone"][1] == "+1.00"
    assert trend_reports.int8_summary(result).splitlines() == [
        "int8 state_dict: 1,024 bytes vs 4,096 float32 bytes (4.00 times smaller)",
        "speed verdict: no consistent speed-up from int8",  # ratios 0.5, 1.2, 0.5
    ]
    for t in result["inference"]:
        t["int8_ms_per_1000"] = 0.5 * t["float_ms_per_1000"]
    assert trend_reports.int8_summary(result).endswith("int8 is clearly faster for every model")


def test_pruning_verdict_table_and_summary():
    result = compression_result()
    table = trend_verdicts.pruning_verdict_table(result)
    assert [r[0] for r in body(table)] == ["0%", "90%"]
    # at 90%: student - twin per seed (0.75 - 0.91, 0.77 - 0.90) = (-0.16, -0.13); mean -0.145, sd 0.015*sqrt(2)
    half = T_975_1 * 0.015
    assert body(table)[1][1:3] == [f"-14.50 [{100 * (-0.145 - half):+.2f}, {100 * (-0.145 + half):+.2f}]",
                                   "within noise"]  # fmt: skip
    # lost to pruning: student (-0.16, -0.14), twin (+0.01, -0.02): differences (-0.17, -0.12)
    half = T_975_1 * 0.025
    assert body(table)[1][3] == f"-14.50 [{100 * (-0.145 - half):+.2f}, {100 * (-0.145 + half):+.2f}]"
    assert body(table)[0][3:] == ["+0.00 [+0.00, +0.00]", "within noise"]
    assert trend_verdicts.pruning_summary(result).splitlines() == [
        "accuracy lost to pruning, distilled student vs its twin, over the pruning fractions:",
        "  less at 0, the same within noise at 1, more at 0",
        "largest fraction pruned within 1 point of the unpruned accuracy:",
        "  teacher 0%, distilled student 0%, student alone 90%",  # 90.5% vs 91%: within one point
    ]
    with pytest.raises(ValueError, match="role='twin'"):
        trend_verdicts.safe_sparsity(result, "twin")


def test_format_interval_one_seed_shows_the_difference_alone():
    assert trend_verdicts.format_interval({"diff": 0.012, "low": math.nan, "high": math.nan, "n": 1}) == "+1.20"
    assert trend_verdicts.format_interval({"diff": -0.5, "low": -0.75, "high": -0.25, "n": 3}, 1.0) == (
        "-0.50 [-0.75, -0.25]"
    )


def tabular_result() -> dict:
    values = {
        "teacher": ((0.90, 0.92, 0.94), (0.5, 0.5, 0.5)),
        "distilled student": ((0.92, 0.94, 0.96), (0.3, 0.3, 0.3)),
        "student alone": ((0.93, 0.93, 0.97), (0.5, 0.6, 0.7)),
    }
    rows = [{"seed": s, "model": role, "accuracy": acc[s], "nll": nll[s]}
            for role, (acc, nll) in values.items() for s in range(3)]  # fmt: skip
    toy = {
        "sizes": {"train": 100, "val": 50, "test": 50},
        "rows": rows[::-1],  # the rows' order must not matter: pairs go by seed
        "accuracy": {role: mean_std_record(acc) for role, (acc, _) in values.items()},
        "nll": {role: mean_std_record(nll) for role, (_, nll) in values.items()},
    }
    return {"spec": {"datasets": ["toy"], "seeds": [0, 1, 2], "epochs": 4}, "datasets": {"toy": toy}}


def test_tabular_tables_and_verdicts():
    result = tabular_result()
    rows = body(trend_tables.tabular_table(result))
    assert rows[1] == ["toy", "distilled student", "94.0 ± 2.0", "0.300 ± 0.000"]
    assert rows[2][2:] == ["94.3 ± 2.3", "0.600 ± 0.100"]  # std of (0.93, 0.93, 0.97) = 0.0231
    verdicts = body(trend_verdicts.tabular_verdict_table(result))
    # student - teacher: +0.02 on every seed, no spread: better
    assert verdicts[0] == ["toy", "accuracy (points)", "teacher", "+2.00 [+2.00, +2.00]", "better"]
    # student - alone: (-0.01, +0.01, -0.01)
    diffs = [-0.01, 0.01, -0.01]
    mean, half = statistics.mean(diffs), T_975_2 * statistics.stdev(diffs) / math.sqrt(3)
    assert verdicts[1][3:] == [f"{100 * mean:+.2f} [{100 * (mean - half):+.2f}, {100 * (mean + half):+.2f}]",
                               "within noise"]  # fmt: skip
    # NLL, lower is better: (-0.2, -0.3, -0.4): mean -0.3, sd 0.1; the interval lies below 0
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert verdicts[2] == ["toy", "nll (nats)", "student alone", f"-0.30 [{-0.3 - half:+.2f}, {-0.3 + half:+.2f}]",
                           "better"]  # fmt: skip
    assert trend_reports.accuracy_resolution(result) == "one test row = 2.0 points on toy (50 rows)"
    assert trend_reports.describe_run("tabular", result, "live run", 2.4).splitlines() == [
        "live run: toy", "  3 seeds per data set, 4 epochs: 2 s"]  # fmt: skip


def grid_result() -> dict:
    return {
        "spec": {"seeds": [0, 1], "epochs": 3}, "dataset": {"name": "toy", "train": 80, "val": 20, "test": 30},
        "temperatures": [1.0, 2.0, 4.0], "alphas": [0.1, 0.9],
        "val_mean": [[0.80, 0.81, 0.805], [0.82, 0.70, 0.60]],
        "seed_std": 0.01, "grid_range": 0.22, "noise_range": 0.02,
        "most_variable_cell": {"T": 4.0, "alpha": 0.9, "std": 0.05},
        "chosen": {"T": 1.0, "alpha": 0.9, "val": {"mean": 0.82}, "test": {"mean": 0.79}},
        "plain": {"test": {"mean": 0.78, "std": 0.004}}, "teacher": {"test": 0.8},
    }  # fmt: skip


def test_grid_alpha_table_compares_each_row_with_seed_noise():
    g = grid_result()
    noise = expected_range(3) * 0.01 / math.sqrt(2)  # about 1.2 points for three cells of two seeds
    assert math.isclose(noise, 1.693 * 0.01 / math.sqrt(2), rel_tol=5e-3)
    rows = body(trend_verdicts.grid_alpha_table(g))
    assert rows[0] == ["0.1", "1.00", f"{100 * noise:.2f}", "no wider than seed noise"]
    assert rows[1] == ["0.9", "22.00", f"{100 * noise:.2f}", "T matters"]


def test_grid_reports():
    g = grid_result()
    choice = trend_reports.grid_choice(g).splitlines()
    assert choice[0] == "chosen on validation: T = 1, alpha = 0.9, validation 82.00%"
    assert choice[2] == "  plain students (alpha = 0) 78.00% ± 0.40"
    assert choice[3] == "winner's curse: chosen cell's validation minus test accuracy = +3.00 points"
    assert choice[4].startswith("chosen distillation minus plain training on test: +1.00 points")
    noise = trend_reports.grid_noise(g).splitlines()
    assert noise[0] == "range of the 6 cell means: 22.00 points; seed noise within a cell (median std): 1.00"
    assert noise[3] == "cells whose mean is within that noise range of the best cell: 4 of 6"  # >= 0.80
    assert noise[4] == "(T, alpha) matters here: the grid's range is 11.0 times the range seed noise gives"
    g["noise_range"] = 0.44
    assert trend_reports.grid_noise(g).endswith("0.5 times what seed noise gives: T and alpha do not matter")
    assert trend_reports.describe_run("grid", g, "live run").splitlines()[1] == (
        "  6 cells x 2 seeds = 12 students, 2 plain, 1 teacher; 3 epochs each"
    )


METHODS = ("plain (one run)", "born-again (teacher + student)", "born-again, cached teacher", "PS-KD (one run)")


def cost_result() -> dict:
    accuracy = {METHODS[0]: (0.80, 0.82), METHODS[1]: (0.79, 0.80), METHODS[2]: (0.78, 0.80), METHODS[3]: (0.81, 0.82)}
    wall = {METHODS[0]: 10.0, METHODS[1]: 24.0, METHODS[2]: 21.0, METHODS[3]: 10.5}
    runs = [{"seed": s, "method": m, "wall": wall[m] + s, "loop": wall[m] / 2 + s, "accuracy": accuracy[m][s]}
            for s in range(2) for m in METHODS]  # fmt: skip
    summary = {m: {k: mean_std_record([r[k] for r in runs if r["method"] == m]) for k in ("wall", "loop", "accuracy")}
               for m in METHODS}  # fmt: skip
    overhead = [{"seed": s, "model": "mlp", "kd_over_plain": 1.3 + 0.1 * s, "cached_over_plain": 1.0 + 0.2 * s,
                 "pskd_over_plain": 1.0, "cache_seconds": 0.1, "plain_epoch_seconds": 0.5}
                for s in range(3)]  # fmt: skip
    benchmark = [{"model": "mlp", "ratio": 1.4, "cached_ratio": 1.05, "kd_seconds": [1.0] * 5}]
    consistency = {"disagreement": 0.1, "kl_T2": 0.25, "teacher_acc_clean": 0.9, "teacher_acc_view": 0.85}
    return {"spec": {"epochs": 2, "seeds": [0, 1]}, "dataset": {"name": "toy", "train": 1000, "val": 100, "test": 200},
            "runs": runs, "summary": summary, "overhead": overhead, "benchmark": benchmark,
            "consistency": consistency, "threads": 1, "load_average": [0.5, 0.4, 0.3]}  # fmt: skip


def test_cost_tables():
    result = cost_result()
    rows = {r[0]: r for r in body(trend_tables.cost_table(result))}
    # born-again: wall (24, 25) mean 24.5 vs plain 10.5; loop (12, 13) mean 12.5 vs plain (5, 6) mean 5.5
    assert rows[METHODS[1]] == [METHODS[1], "24.5", f"{24.5 / 10.5:.2f}", "12.5", f"{12.5 / 5.5:.2f}", "79.5 ± 0.7"]
    assert rows[METHODS[0]][2] == rows[METHODS[0]][4] == "1.00"
    assert body(trend_tables.benchmark_table(result)) == [["mlp", "1.40", "1.33", "1.05", "5"]]
    epochs = body(trend_tables.epoch_ratio_table(result))
    assert [r[0] for r in epochs] == ["mlp, seed 0", "mlp, seed 1", "mlp, seed 2", "median"]
    assert epochs[-1][1:4] == ["1.40", "1.20", "1.00"]  # medians of (1.3, 1.4, 1.5), (1.0, 1.2, 1.4), (1, 1, 1)
    with pytest.raises(ValueError, match="needs the baseline 'plain \\(one run\\)'"):
        trend_tables.cost_table({"summary": {"PS-KD (one run)": result["summary"][METHODS[3]]}})


def test_cost_verdicts_and_summary():
    result = cost_result()
    rows = body(trend_verdicts.cost_verdict_table(result))
    assert [r[:2] for r in rows] == [[m, METHODS[0]] for m in METHODS[1:]] + [[METHODS[2], METHODS[1]]]
    # born-again - plain: (-0.01, -0.02): mean -0.015, sd 0.005 * sqrt(2)
    half = 100 * T_975_1 * 0.005
    assert rows[0][2:] == [f"-1.50 [{-1.5 - half:+.2f}, {-1.5 + half:+.2f}]", "within noise"]
    lines = trend_reports.cost_summary(result).splitlines()
    assert lines[1] == "  its top class differs on 10.0% of them; mean T^2 KL(clean || augmented) = 0.250"
    assert (
        lines[-1]
        == f"born-again costs {12.5 / 5.5:.2f} times a plain run's training loop (the seed's 'two runs': 2.00)"
    )
    assert trend_reports.describe_run("cost", result, "live run", 3.0).splitlines() == [
        "live run: toy (1,000 train, 100 val, 200 test)", "  2 epochs, 2 seed(s), 1 torch thread(s): 3 s",
        "  CPU load average at the start 0.5"]  # fmt: skip


def compare_result() -> dict:
    summary = [("plain", 10.0, 1.0, 0.88), ("kd", 25.0, 2.0, 0.885), ("ban", 20.0, 0.5, 0.87), ("pskd", 11.0, 1.5, 0.9)]
    return {"config": {"dataset": "toy", "model": "mlp", "width": 1.0, "epochs": 2, "seeds": [0, 1, 2]},
            "machine": {"cpu_model": "CPU", "torch_threads": 2, "load_average": [1.0, 1.0, 1.0]},
            "summary": [{"method": m, "seconds_mean": s, "seconds_std": sd, "test_accuracy_mean": a,
                         "test_accuracy_std": 0.001} for m, s, sd, a in summary]}  # fmt: skip


def test_method_cost_table_and_summary():
    compare = compare_result()
    assert body(trend_tables.method_cost_table(compare))[1] == ["kd", "25.0 ± 2.0", "2.50", "88.50 ± 0.10"]
    assert trend_reports.method_cost_summary(compare).splitlines() == [
        "single-run methods (pskd): 1.10 to 1.10 x plain", "two-run methods: ban 2.00 x, kd 2.50 x"]  # fmt: skip
    assert trend_reports.compare_header(compare).splitlines()[0] == "toy, mlp width 1.0, 2 epochs, 3 seeds"
    with pytest.raises(ValueError, match="needs the method 'plain'"):
        trend_tables.method_cost_table({"summary": compare["summary"][1:]})


def test_bad_inputs_name_the_argument_and_what_to_pass():
    with pytest.raises(
        ValueError, match=r"result must be the dict returned by te.run_compression; it lacks \['rows'\]"
    ):
        trend_tables.compression_table({"spec": {}})
    with pytest.raises(ValueError, match="g must be the dict returned by te.run_grid, got list"):
        trend_verdicts.grid_alpha_table([])
    with pytest.raises(ValueError, match="section='speech'"):
        trend_reports.describe_run("speech", {"spec": {}}, "live run")


def test_wrap_lines_keeps_words_and_indents_continuations():
    text = trend_reports.wrap_lines(["  " + " ".join(["word"] * 30), "short"], width=40)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 40 and lines[-1] == "short"
    assert all(line.startswith("    word") for line in lines[1:-1])  # two more than the wrapped line's indent
    assert text.replace("\n", " ").split() == ["word"] * 30 + ["short"]


@pytest.fixture(scope="module")
def full() -> dict:
    return json.loads((ROOT / "book" / "results" / "trends_full.json").read_text())


def test_committed_results_print_within_the_code_box(full):
    compare = json.loads((ROOT / "book" / "results" / "compare_fashion_mnist_long.json").read_text())
    comp, tab, grid, cost = (full[k] for k in ("compression", "tabular", "grid", "cost"))
    texts = [
        trend_reports.provenance(full), trend_reports.int8_summary(comp), trend_reports.accuracy_resolution(tab),
        trend_reports.grid_choice(grid), trend_reports.grid_noise(grid), trend_reports.cost_summary(cost),
        trend_reports.compare_header(compare), trend_reports.method_cost_summary(compare),
        trend_verdicts.pruning_summary(comp),
        *(trend_reports.describe_run(k, full[k], "full run", 1.0) for k in ("compression", "tabular", "grid", "cost")),
    ]  # fmt: skip
    for text in texts:
        assert max(len(line) for line in text.splitlines()) <= trend_reports.WIDTH, text


def test_summary_table_matches_the_committed_numbers(full):
    rows = body(trend_verdicts.summary_table(full))
    assert [r[0] for r in rows] == ["combine with pruning and quantization", "beyond images (tabular)",
                                    "T matters a lot", "two training runs"]  # fmt: skip
    first = {(r["variant"], r["amount"]): r["bytes"] for r in full["compression"]["rows"]
             if r["seed"] == 0 and r["model"] == "teacher"}  # fmt: skip
    assert rows[0][1].startswith(f"int8: {first[('pruned', 0.0)] / first[('int8', 0.0)]:.1f} x smaller file")
    grid = full["grid"]
    assert f"= {grid['grid_range'] / grid['noise_range']:.1f} x seed-noise range" in rows[2][1]
    loop = {m: s["loop"]["mean"] for m, s in full["cost"]["summary"].items()}
    assert rows[3][1].startswith(f"born-again {loop[METHODS[1]] / loop[METHODS[0]]:.2f} x plain training time")
    assert "<td>T matters a lot</td>" in trend_verdicts.summary_table(full)._repr_html_()
