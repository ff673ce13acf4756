"""The cost helper: its arithmetic, its fit, the chapters' budgets it reads, and the book's time limits."""

import json
import math

import pytest
import torch

import sdkit
from sdkit.book import chapter_budgets, cost
from sdkit.book.cost_model import DeviceModel, Run, fit_device, forward_flops, work

CHAPTER_LIMIT_S, BOOK_LIMIT_S = 180.0, 900.0


def _linear_flops(model: torch.nn.Module) -> float:
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_forward_flops_of_the_mlp_are_its_matrix_products():
    mlp = sdkit.build_model("mlp", (1, 8, 8), 10)
    assert forward_flops("mlp", 1.0, (1, 8, 8)) == _linear_flops(mlp)


def test_run_seconds_match_a_hand_computed_value():
    f = _linear_flops(sdkit.build_model("mlp", (1, 8, 8), 10))
    run = Run("x", "mlp", 1.0, (1, 8, 8), n_train=300, epochs=2, batch_size=128, n_val=100, teacher=("mlp", 1.0))
    device = DeviceModel("test", batch_seconds=1e-3, flop_seconds=1e-9, passes_per_step=3.0)
    batches = 2 * 3 * (3 + 1) + 2 * 1  # 3 steps an epoch, each 3 passes + the teacher's; one validation batch
    flops = 2 * 300 * (3 * f + f) + 2 * 100 * f
    assert work(run, 3.0) == (batches, flops)
    assert device.seconds([run]) == pytest.approx(1e-3 * batches + 1e-9 * flops)
    assert run.training_images == 600


def test_fit_recovers_the_prices_that_made_the_measurements():
    truth = DeviceModel("truth", batch_seconds=2e-3, flop_seconds=5e-12, passes_per_step=3.0)
    runs = [Run("a", "mlp", 1.0, (1, 28, 28), 5000, 2), Run("b", "cnn", 1.0, (1, 28, 28), 5000, 1, batch_size=512)]
    fitted = fit_device("test", [([r], truth.seconds([r])) for r in runs])
    assert fitted.batch_seconds == pytest.approx(2e-3) and fitted.flop_seconds == pytest.approx(5e-12)


def test_fit_refuses_no_measurements_and_non_positive_seconds():
    with pytest.raises(ValueError, match="no measured runs"):
        fit_device("gpu", [])
    with pytest.raises(ValueError, match="seconds=0"):
        fit_device("gpu", [([Run("a", "mlp", 1.0, (1, 8, 8), 10, 1)], 0)])


@pytest.mark.parametrize("dataset", ["digits", "fashion-mnist-sample"])
@pytest.mark.parametrize("train_size, val_fraction", [(None, 0.1), (500, 0.05)])
def test_split_sizes_are_what_load_dataset_returns(dataset, train_size, val_fraction):
    data = sdkit.load_dataset(dataset, train_size=train_size, val_fraction=val_fraction)
    assert cost.split_sizes(dataset, train_size, val_fraction) == (len(data.train), len(data.val), len(data.test))


def test_the_cpu_model_reproduces_the_committed_throughput():
    result = json.loads((cost.RESULTS / "throughput_cpu.json").read_text())
    row = next(r for r in result["rows"] if (r["mode"], r["task"]) == ("sdkit", "train"))
    cfg = result["config"]
    run = Run("t", cfg["model"], cfg["width"], (1, 28, 28), row["images_per_epoch"], 1, cfg["batch_size"])
    model = cost.device_models()["cpu"]
    assert model.images_per_second(run) == pytest.approx(row["images_per_second"], rel=0.15)


def test_chapter_work_follows_the_budget_it_runs_with(monkeypatch):
    before = cost.chapter_runs("03_algorithm", "quick")
    budget = {**chapter_budgets.ALGORITHM["quick"]}
    budget["epochs"] *= 2
    monkeypatch.setitem(chapter_budgets.ALGORITHM, "quick", budget)
    after = cost.chapter_runs("03_algorithm", "quick")
    assert sum(r.training_images for r in after) == 2 * sum(r.training_images for r in before)
    n_train = cost.split_sizes("digits")[0]
    expected = (1 + len(budget["temperatures"])) * budget["epochs"] * n_train
    assert sum(r.training_images for r in after) == expected


def test_unknown_chapter_or_mode_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"chapter='09_extra'.*02_concepts"):
        cost.estimate("09_extra", "full")
    with pytest.raises(ValueError, match=r"mode='fast'.*'quick' or 'full'"):
        cost.describe("02_concepts", "fast")


def test_measured_gpu_files_come_before_the_reference(tmp_path):
    reference = json.loads((cost.RESULTS / "gpu_reference.json").read_text())
    (tmp_path / "gpu_reference.json").write_text(json.dumps(reference))
    assert [p.name for p in cost.gpu_result_files(tmp_path)] == ["gpu_reference.json"]
    (tmp_path / "gpu_throughput.json").write_text(json.dumps({"rows": []}))  # a step's output, not a summary
    (tmp_path / "gpu_check.json").write_text(json.dumps({**reference, "machine": {"gpu": "Test GPU"}}))
    assert [p.name for p in cost.gpu_result_files(tmp_path)] == ["gpu_check.json"]


def test_describe_states_images_and_both_times():
    line = cost.describe("02_concepts", "full")
    images = sum(r.training_images for r in cost.chapter_runs("02_concepts", "full"))
    assert line.startswith("full mode: ") and f"{images / 1e6:.2g} M training images" in line
    assert "2-core CPU" in line and "H200" in line
    assert cost.describe("04_math", "quick").startswith("quick mode: no training")


@pytest.mark.parametrize("chapter", cost.CHAPTERS)
def test_each_chapter_in_full_mode_fits_three_minutes_on_one_gpu(chapter):
    seconds = cost.estimate(chapter, "full").gpu_seconds
    assert seconds <= CHAPTER_LIMIT_S, f"{chapter}: {seconds:.0f} s > {CHAPTER_LIMIT_S:.0f} s; resize its budget"


def test_the_whole_book_in_full_mode_fits_fifteen_minutes_on_one_gpu():
    seconds = {c: cost.estimate(c, "full").gpu_seconds for c in cost.CHAPTERS}
    assert sum(seconds.values()) <= BOOK_LIMIT_S, seconds


def test_full_budgets_keep_the_real_experiment_sizes():
    from sdkit.book import experiments, regimes

    gpu = experiments.BUDGETS["full-cuda"]
    assert gpu["ba_dataset"] == gpu["comp_dataset"] == "fashion-mnist"
    assert gpu["ba_train_size"] is gpu["comp_train_size"] is None and gpu["ba_model"] == "cnn"
    assert len(gpu["seeds"]) >= 3 and len(regimes.BUDGETS["full"]["live_seeds"]) >= 3
    assert chapter_budgets.CONCEPTS["full"]["fashion_dataset"] == "fashion-mnist"
    assert len(chapter_budgets.PYTORCH["full"]["seeds"]) >= 3 and math.isfinite(regimes.BUDGETS["full"]["steps"])
