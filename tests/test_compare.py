import json
import math

import pytest
import torch

import sdkit
from sdkit.book.stats import summarize
from sdkit.cli import main
from sdkit.compare import SUMMARY_METRICS


def test_the_compare_summary_is_the_mean_and_sample_std_over_seeds():
    rows = [
        {"method": "a", "test_accuracy": x, "test_nll": 1.0, "test_ece": 0.0, "seconds": 2.0} for x in (0.8, 0.9, 1.0)
    ]
    (entry,) = summarize(rows, "method", SUMMARY_METRICS, count="n_seeds", single=0.0)
    assert entry["n_seeds"] == 3 and entry["test_accuracy_mean"] == pytest.approx(0.9)
    assert entry["test_accuracy_std"] == pytest.approx(math.sqrt(((0.1) ** 2 * 2) / 2))  # sample std (n - 1)
    assert entry["test_nll_std"] == 0.0
    # one seed: std 0 (not NaN, which JSON cannot hold) in the file and table
    (one,) = summarize(rows[:1], "method", SUMMARY_METRICS, count="n_seeds", single=0.0)
    assert list(one)[:3] == ["method", "n_seeds", "test_accuracy_mean"] and one["test_accuracy_std"] == 0.0


def test_ensemble_of_identical_models_equals_the_model(digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    sdkit.train(model, digits, epochs=2, progress=False)
    single = sdkit.evaluate(model, digits.test)
    both = sdkit.evaluate_ensemble([model, sdkit.frozen_copy(model)], digits.test)
    assert both["accuracy"] == pytest.approx(single["accuracy"])
    assert both["nll"] == pytest.approx(single["nll"], rel=1e-4)
    with pytest.raises(ValueError, match="models is empty"):
        sdkit.evaluate_ensemble([], digits.test)


def test_ensemble_averages_probabilities():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    split = sdkit.Split(torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
    with torch.no_grad():
        probs = (a(split.x).softmax(-1) + b(split.x).softmax(-1)) / 2
    got = sdkit.evaluate_ensemble([a, b], split)
    assert got["nll"] == pytest.approx(float(-probs[torch.arange(6), split.y].log().mean()), rel=1e-5)


def test_compare_runs_each_method_per_seed(digits):
    rows = sdkit.compare(digits, ["plain", "ban", "tfkd"], seeds=[0, 1], epochs=2, model="mlp", log=None)
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("plain", 0), ("ban", 0), ("tfkd", 0), ("plain", 1), ("ban", 1), ("tfkd", 1),
    ]  # fmt: skip
    ban, plain = rows[1], rows[0]
    assert ban["seconds"] > plain["seconds"]  # a born-again student's cost includes its teacher's
    assert all(0.5 < r["test_accuracy"] <= 1.0 for r in rows)


def test_compare_runs_the_baselines_and_dlb(digits):
    rows = sdkit.compare(digits, ["plain", "ls", "mixup", "dlb"], seeds=[0], epochs=3, model="mlp", log=None)
    assert [r["method"] for r in rows] == ["plain", "ls", "mixup", "dlb"]
    assert all(0.8 < r["test_accuracy"] <= 1.0 for r in rows)


def test_compare_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="unknown method\\(s\\) \\['dml'\\]"):
        sdkit.compare(digits, ["dml"])
    with pytest.raises(ValueError, match="byot' needs a ResNet"):
        sdkit.compare(digits, ["byot"], model="cnn")


def test_compare_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code = main(["compare", "--methods", "plain,pskd", "--seeds", "0,1", "--epochs", "2", "--model", "mlp",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert [s["method"] for s in result["summary"]] == ["plain", "pskd"]
    assert len(result["rows"]) == 4 and result["machine"]["cpu_count"] >= 1
    assert "plain" in capsys.readouterr().out
    assert main(["compare", "--methods", "plain,nope"]) == 2


def test_method_hyperparameters_reach_the_method_from_compare_and_the_cli(digits, monkeypatch, capsys):
    seen = []
    real_train = sdkit.compare.__globals__["train"]

    def spy(model, data, **kwargs):
        seen.append(kwargs.get("method"))
        return real_train(model, data, **kwargs)

    monkeypatch.setitem(sdkit.compare.__globals__, "train", spy)
    sdkit.compare(digits, ["pskd", "kd"], seeds=[0], epochs=1, model="mlp", log=None,
                  method_args={"pskd": {"alpha_T": 0.3}, "kd": {"T": 2.0, "alpha": 0.4}})  # fmt: skip
    pskd, _, kd = seen  # kd trains its teacher (plain) first
    assert (pskd.alpha_T, kd.T, kd.alpha) == (0.3, 2.0, 0.4)
    seen.clear()
    assert main(["compare", "--methods", "pskd", "--seeds", "0", "--epochs", "1", "--model", "mlp",
                 "--method-arg", "pskd.alpha_T=0.25"]) == 0  # fmt: skip
    assert seen[0].alpha_T == 0.25
    with pytest.raises(ValueError, match="method 'pskd' has no hyperparameter 'T'; it takes \\['alpha_T'\\]"):
        sdkit.compare(digits, ["pskd"], method_args={"pskd": {"T": 2.0}}, log=None)
    with pytest.raises(ValueError, match="not among the compared methods"):
        sdkit.compare(digits, ["pskd"], method_args={"cskd": {"T": 2.0}}, log=None)
    assert main(["compare", "--method-arg", "alpha_T=0.5"]) == 2
    assert "METHOD.NAME=VALUE" in capsys.readouterr().err
