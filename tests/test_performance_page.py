"""Tables and the figure of the Performance page, from the committed benchmark results."""

import json
from pathlib import Path

import pytest
from conftest import load_script

from sdkit.book import performance

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
THROUGHPUT = json.loads((RESULTS / "throughput_cpu.json").read_text())
PEERS = json.loads((RESULTS / "peers_cpu.json").read_text())
LABELS = {m: m.upper() for m in PEERS["config"]["modes"]}
STEPS = [("torchdistill", "torchdistill-fed", "data"), ("torchdistill-fed-cl", "sdkit", "the loop")]


def _ips(result, task, mode):
    return next(r["images_per_second"] for r in result["rows"] if r["task"] == task and r["mode"] == mode)


def test_throughput_table_has_a_row_per_task_with_sdkits_speedup():
    table = performance.throughput_table(THROUGHPUT)
    assert [r[0] for r in table.rows] == ["train", "distill", "eval"]
    train = table.rows[0]
    assert (
        train[1] == f"{_ips(THROUGHPUT, 'train', 'naive'):,.0f}"
        and train[2] == f"{_ips(THROUGHPUT, 'train', 'sdkit'):,.0f}"
    )
    # the stored speed-up is sdkit's images per second over the naive loop's
    assert train[3] == f"{_ips(THROUGHPUT, 'train', 'sdkit') / _ips(THROUGHPUT, 'train', 'naive'):.2f}x"
    rows = dict(performance.throughput_provenance(THROUGHPUT).rows)
    assert rows["command"] == THROUGHPUT["command"] and rows["date"] == THROUGHPUT["date"][:10]
    assert rows["workload"].startswith("fashion-mnist, cnn width 0.5, batch 128, 10000 training images")
    broken = {**THROUGHPUT, "rows": [r for r in THROUGHPUT["rows"] if r["mode"] != "sdkit"]}
    with pytest.raises(ValueError, match="no row for task='train', mode='sdkit'"):
        performance.throughput_table(broken)


def test_throughput_figure_has_a_labelled_bar_per_task_and_loop():
    fig = performance.plot_throughput(THROUGHPUT, "CPU")
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 3 and len(ax.texts) == 2 * 3  # naive and sdkit for each task, each labelled
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["naive", "sdkit"]
    assert ax.patches[3].get_height() == pytest.approx(_ips(THROUGHPUT, "train", "sdkit"))
    assert ax.texts[0].get_text() == f"{_ips(THROUGHPUT, 'train', 'naive'):,.0f}"


def test_peers_tables_follow_the_measured_modes():
    table = performance.peers_table(PEERS, LABELS)
    assert [r[0] for r in table.rows] == [LABELS[m] for m in PEERS["config"]["modes"]]
    naive = next(r for r in PEERS["rows"] if r["mode"] == "naive")
    assert table.rows[0][1] == f"{naive['images_per_second']:,.0f}"
    assert table.rows[0][3] == f"{PEERS['speedup_sdkit_over']['naive']:.2f}x" and table.rows[-1][3] == ""
    us = {r["mode"]: 1e6 / r["images_per_cpu_second"] for r in PEERS["rows"]}
    breakdown = performance.peers_breakdown(PEERS, LABELS, STEPS)
    assert breakdown.rows[-2:] == [
        ["data", "", f"{us['torchdistill'] - us['torchdistill-fed']:+.1f}"],
        ["the loop", "", f"{us['torchdistill-fed-cl'] - us['sdkit']:+.1f}"],
    ]
    rows = dict(performance.peers_provenance(PEERS).rows)
    assert rows["torchdistill, date"] == f"{PEERS['torchdistill']}, {PEERS['date'][:10]}"
    with pytest.raises(ValueError, match=r"labels has no entry for mode\(s\) \['sdkit'\]"):
        performance.peers_table(PEERS, {m: m for m in LABELS if m != "sdkit"})


def _step_ops():
    return load_script("step_ops")


def test_peers_operator_table_shows_every_counted_variant_with_the_timed_speed():
    step_ops = _step_ops()
    ops = PEERS["ops_per_step"]
    assert set(ops) == set(step_ops.VARIANTS)  # the committed run counted every variant
    table = performance.peers_ops_table(PEERS, step_ops.LABELS, step_ops.TIMED)
    rows = {r[0]: r for r in table.rows}
    sdkit_row, box_row = rows[step_ops.LABELS["sdkit"]], rows[step_ops.LABELS["box-cl"]]
    assert sdkit_row[1] == f"{ops['sdkit']:.0f}" and box_row[2] == f"{ops['box-cl'] / ops['sdkit']:.2f}x"
    fed_cl = next(r for r in PEERS["rows"] if r["mode"] == "torchdistill-fed-cl")
    assert box_row[3] == f"{fed_cl['images_per_second']:,.0f}"
    assert rows[step_ops.LABELS["box-foreach"]][3] == ""  # not timed: no speed shown
    # the committed measurement says what the tests assert live: sdkit launches no more operators than the box
    assert ops["sdkit"] <= min(ops["box"], ops["box-cl"])
    assert ops["sdkit-cuda-path"] <= min(ops["box-foreach"], ops["box-cl-foreach"])
    with pytest.raises(ValueError, match="no ops_per_step"):
        performance.peers_ops_table({**PEERS, "ops_per_step": {}}, step_ops.LABELS, step_ops.TIMED)
