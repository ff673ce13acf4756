import math

import numpy as np
import pytest
import torch

import sdkit
from sdkit.book import trend_cost, trend_tables, trend_training, trend_verdicts
from sdkit.book import trend_experiments as te
from sdkit.evaluate import Table
from sdkit.methods import TrainContext


def test_mean_std_is_a_dict_with_the_count():
    # the statistics themselves are tested in test_stats.py; the trends tables read this dict form
    assert te.mean_std_record([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}
    assert te.mean_std_record([5.0])["std"] == 0.0
    with pytest.raises(ValueError, match="values is empty"):
        te.mean_std_record([])


def test_expected_range_matches_known_constants():
    # d_2 = 2 / sqrt(pi) exactly; d_15 = 3.472 from control-chart tables
    assert math.isclose(te.expected_range(2), 2 / math.sqrt(math.pi), rel_tol=5e-3)
    assert math.isclose(te.expected_range(15), 3.472, rel_tol=5e-3)
    with pytest.raises(ValueError, match="m=1"):
        te.expected_range(1)


def test_cached_distill_equals_online_distill_without_augmentation(digits):
    torch.set_num_threads(1)
    teacher = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    method = te.CachedDistill(teacher, T=3.0, alpha=0.7)
    student = sdkit.build_model("mlp", digits.input_shape, 10, seed=1)
    method.setup(student, TrainContext.of(digits, epochs=1))
    index = torch.tensor([5, 0, 17, 3])
    batch = sdkit.Batch(digits.train.x[index], digits.train.y[index], index)
    logits = student(batch.x)
    with torch.no_grad():
        expected = sdkit.distillation_loss(logits, teacher(batch.x), batch.y, 3.0, 0.7)
    assert torch.allclose(method.loss(student, batch, logits, 0), expected, atol=1e-6)
    assert method.cache_seconds > 0
    # the cache is a frozen copy: changing the teacher afterwards changes nothing
    with torch.no_grad():
        teacher.net[1].weight.mul_(0)
    assert torch.allclose(method.loss(student, batch, logits, 0), expected, atol=1e-6)


def test_view_consistency_is_perfect_without_augmentation(digits):
    teacher = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    c = te.view_consistency(teacher, digits, T=4.0)
    assert c["disagreement"] == 0.0 and abs(c["kl_T2"]) < 1e-6
    assert c["teacher_acc_clean"] == c["teacher_acc_view"]


def test_tiny_grid_selects_on_validation(monkeypatch):
    torch.set_num_threads(1)
    spec = dict(
        dataset="digits", train_size=300, test_size=None, val_fraction=0.2, model="mlp", epochs=1, seeds=(0, 1),
        temperatures=(1.0, 4.0), alphas=(0.5,), augment=False,
    )  # fmt: skip
    out = te.run_grid(spec)
    means = np.array(out["val_mean"])
    assert means.shape == (1, 2)
    best = int(np.argmax(means[0]))
    assert out["chosen"]["T"] == (1.0, 4.0)[best] and out["chosen"]["alpha"] == 0.5
    assert math.isclose(out["grid_range"], float(means.max() - means.min()))
    assert math.isclose(out["chosen"]["val"]["mean"], float(means.max()))
    with pytest.raises(ValueError, match=r"at least 2 seeds.*got seeds=\(0,\)"):
        te.run_grid({**spec, "seeds": (0,)})


def test_run_all_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode='huge'"):
        te.run_all("huge")
    with pytest.raises(ValueError, match="unknown section 'speech'"):
        te.run_all("quick", ["speech"])


def synthetic_compression():
    # two seeds; at 90% pruning the distilled student loses 15 points, its twin half a point
    acc = {
        ("teacher", 0.0): (0.90, 0.92), ("teacher", 0.9): (0.85, 0.87),
        ("distilled student", 0.0): (0.91, 0.91), ("distilled student", 0.9): (0.75, 0.77),
        ("student alone", 0.0): (0.90, 0.92), ("student alone", 0.9): (0.91, 0.90),
    }  # fmt: skip
    rows = []
    for (role, amount), values in acc.items():
        for seed, a in enumerate(values):
            nonzero, sparse_bytes = (100, 1200) if amount == 0 else (10, 120)
            sizes = {"nonzero": nonzero, "bytes": 400, "sparse_bytes": sparse_bytes}
            rows.append({"seed": seed, "model": role, "variant": "pruned", "amount": amount, "accuracy": a, **sizes})
    result = {"spec": {"amounts": [0.0, 0.9], "combined_amount": 0.9}, "rows": rows}
    result["accuracy"] = trend_training.summaries(rows, ("model", "variant", "amount"), "accuracy")
    return result


def test_pruning_verdicts_and_safe_sparsity_on_known_numbers():
    result = synthetic_compression()
    v0, v90 = trend_verdicts.pruning_verdicts(result)
    assert math.isclose(v0["diff"], 0.0, abs_tol=1e-12) and v0["verdict"] == "within noise"
    # diffs (-0.16, -0.13): 14.5 points worse on both seeds, but with two seeds t(0.975, 1) = 12.706 and the
    # interval -0.145 ± 12.706 * 0.015 reaches above 0: two seeds cannot call it
    t1 = 12.706204736174698
    assert math.isclose(v90["diff"], -0.145) and v90["verdict"] == "within noise" and v90["wins"] == 0
    assert math.isclose(v90["low"], -0.145 - t1 * 0.015) and math.isclose(v90["high"], -0.145 + t1 * 0.015)
    assert math.isclose(v90["baseline_std"], 0.01 / math.sqrt(2))  # sample std of (0.91, 0.90)
    # drops to pruning: distilled (-0.16, -0.14), alone (+0.01, -0.02): diffs (-0.17, -0.12)
    assert math.isclose(v90["drop_diff"], -0.145) and math.isclose(v90["drop_low"], -0.145 - t1 * 0.025)
    assert v90["drop_verdict"] == "within noise" and v0["drop_diff"] == 0.0 and v0["drop_verdict"] == "within noise"
    assert trend_verdicts.safe_sparsity(result, "student alone") == 0.9  # 90.5% vs 91% unpruned: within 1 point
    assert trend_verdicts.safe_sparsity(result, "distilled student") == 0.0
    table = trend_tables.compression_table(result)
    assert "| distilled student | pruned 90% | 76.0 ± 1.4 | 0 | 0 | 10 |" in table.markdown
    assert table.markdown.splitlines()[1] == "|---|---|---|---|---|---|"
    assert "<td>distilled student</td><td>pruned 90%</td><td>76.0 ± 1.4</td>" in table._repr_html_()
    with pytest.raises(ValueError, match="every row needs 2 "):
        Table(["a", "b"], [["only one"]])


def test_overhead_uses_fastest_epoch_after_warm_up():
    def history(seconds):
        return sdkit.History(records=[{"seconds": s} for s in seconds])

    plain, kd = history([9.0, 2.0, 3.0, 2.5]), history([9.0, 2.6, 2.8, 4.0])
    assert math.isclose(trend_cost.fastest_epoch_ratio(kd, plain), 2.6 / 2.0)  # the warm-up epoch (9 s) is ignored
    single = trend_cost.fastest_epoch_ratio(history([3.0]), history([2.0]))
    assert math.isclose(single, 1.5)  # a single epoch is all there is


def test_teacher_overhead_times_both_objectives(digits):
    torch.set_num_threads(1)
    out = te.teacher_overhead("mlp", digits, steps=3, repeats=2, batch_size=32)
    assert len(out["plain_seconds"]) == 2 and len(out["kd_seconds"]) == 2 and len(out["cached_seconds"]) == 2
    assert out["images_per_repeat"] == 96
    assert math.isclose(out["ratio"], min(out["kd_seconds"]) / min(out["plain_seconds"]))
    assert math.isclose(out["cached_ratio"], min(out["cached_seconds"]) / min(out["plain_seconds"]))
    assert out["cache_seconds"] > 0
    with pytest.raises(ValueError, match="steps=0"):
        te.teacher_overhead("mlp", digits, steps=0)
