"""The reproduction check's planning and judging (CI runs the check itself: `python -m sdkit.book.reproduce`)."""

import json
import shlex

import pytest

from sdkit.book import reproduce
from sdkit.utils import machine_info


def test_every_committed_result_names_its_command_and_has_a_slice():
    files = reproduce.committed_files()
    assert len(files) >= 16  # book/results (applications, 2 compare, trends, 10 regime cells) + 2 benchmarks
    for path in files:
        result = json.loads(path.read_text())
        slice_ = reproduce.plan(path, result)
        if path.name.startswith("gpu_"):
            assert not slice_.argv and result["command"]  # listed, re-measured by gpu_check.sh on a GPU only
            continue
        recorded, sliced = shlex.split(result["command"]), list(slice_.argv)
        assert sliced[:2] == recorded[:2]  # the same program, narrowed
        assert "{out}" in sliced and str(path) not in slice_.command  # never writes over the committed file
        if slice_.metrics:
            rows = reproduce._rows_at(result, slice_.rows)
            assert rows and all(all(k in row for k in slice_.keys) for row in rows), path


def test_slices_narrow_to_one_seed_and_cell():
    regime = {"command": "python -m sdkit.book.regimes --budget full --cells n1000 n500 --methods plain-es --merge "
              "--out book/results/regimes", "cell": "n500"}  # fmt: skip
    argv = list(reproduce.plan("n500.json", regime).argv)
    methods = argv[argv.index("--methods") + 1 : argv.index("--seeds")]
    assert argv[:7] == ["python", "-m", "sdkit.book.regimes", "--budget", "full", "--cells", "n500"]
    assert argv[argv.index("--seeds") :] == ["--seeds", "0", "--out", "{out}"] and methods[0] == "plain"
    from sdkit.book.regimes import CELLS, METHODS

    checked = set()  # across the cells, every method is re-run somewhere
    for cell in CELLS:
        argv = list(reproduce.plan(f"{cell}.json", {**regime, "cell": cell}).argv)
        checked.update(argv[argv.index("--methods") + 1 : argv.index("--seeds")])
    assert checked == set(METHODS)
    compare = {"command": "python -m sdkit compare --dataset digits --seeds 0,1,2 --epochs 3 --out x.json"}
    argv = list(reproduce.plan("x.json", compare).argv)
    assert argv[argv.index("--seeds") + 1] == "0" and argv[argv.index("--methods") + 1] == "plain"
    assert argv[argv.index("--epochs") + 1] == "3"  # the recorded settings otherwise


def test_a_file_without_a_command_or_with_an_unknown_one_is_refused():
    with pytest.raises(ValueError, match="records no command"):
        reproduce.plan("a.json", {"rows": []})
    with pytest.raises(ValueError, match="no reproduction slice for the command 'python other.py'"):
        reproduce.plan("a.json", {"command": "python other.py"})


def test_same_kind_needs_the_same_kernels_threads_and_torch():
    here = machine_info()
    assert reproduce.same_kind(dict(here), here)
    assert not reproduce.same_kind({**here, "cpu_capability": "DEFAULT" if here["cpu_capability"] != "DEFAULT"
                                    else "AVX2"}, here)  # fmt: skip
    assert not reproduce.same_kind({**here, "torch_threads": here["torch_threads"] + 1}, here)
    old = {k: v for k, v in here.items() if k != "cpu_capability"}  # written before the capability was recorded
    assert not reproduce.same_kind(old, here)


def test_compare_rows_tolerance_is_k_standard_deviations_plus_the_floor():
    committed = [{"method": "plain", "seed": s, "acc": a} for s, a in enumerate([0.80, 0.82, 0.84])]  # sd 0.02
    inside = reproduce.compare_rows(committed, [{"method": "plain", "seed": 1, "acc": 0.82 + 0.0999}],
                                    ["method", "seed"], {"acc": 0.0001}, exact=False)  # fmt: skip
    assert inside[0]["ok"] and inside[0]["tolerance"] == pytest.approx(5 * 0.02 + 0.0001)
    outside = reproduce.compare_rows(committed, [{"method": "plain", "seed": 1, "acc": 0.82 + 0.1002}],
                                     ["method", "seed"], {"acc": 0.0001}, exact=False)  # fmt: skip
    assert not outside[0]["ok"]
    nan = reproduce.compare_rows(committed, [{"method": "plain", "seed": 1, "acc": float("nan")}],
                                 ["method", "seed"], {"acc": 1.0}, exact=False)  # fmt: skip
    assert not nan[0]["ok"]
    with pytest.raises(ValueError, match="0 committed rows match"):
        reproduce.compare_rows(committed, [{"method": "kd", "seed": 0, "acc": 0.8}], ["method", "seed"], {"acc": 0},
                               exact=True)  # fmt: skip


def test_rows_at_walks_every_dataset():
    result = {"tabular": {"datasets": {"wine": {"rows": [{"seed": 0}]}, "iris": {"rows": [{"seed": 1}]}}}}
    rows = reproduce._rows_at(result, ("tabular", "datasets", "*", "rows"))
    assert rows == [{"dataset": "wine", "seed": 0}, {"dataset": "iris", "seed": 1}]
