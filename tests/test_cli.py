import json
import subprocess
import sys

import pytest

from sdkit.cli import main


def test_cli_trains_and_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    code = main(["run", "--epochs", "6", "--generations", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "cnn gen 0 (teacher)" in printed and "cnn gen 1" in printed and "test acc" in printed
    result = json.loads(out.read_text())
    assert [g["generation"] for g in result["generations"]] == [0, 1]
    assert result["generations"][0]["test_accuracy"] > 0.9
    assert len(result["generations"][1]["history"]) == 6
    assert result["config"]["dataset"] == "digits" and result["machine"]["cpu_count"] >= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--T", "-1"], "T must be a finite number > 0"),
        (["run", "--alpha", "2"], "alpha"),
        (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["run", "--model", "vgg"], "unknown model 'vgg'"),
        (["run", "--epochs", "0"], "--epochs must be a positive integer"),
        (["run", "--epochs", "x"], "invalid int value"),
        (["run", "--generations", "-1"], "--generations must be >= 0"),
        (["run", "--device", "tpu"], "device must be"),
        ([], "missing command"),
        (["fly"], "invalid choice"),
        (["compare", "--seeds", "3x"], "--seeds takes distinct integers separated by commas, e.g. 0,1,2; got '3x'"),
        (["compare", "--seeds", "1,1"], "--seeds takes distinct integers"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sdkit: error:") and message in err and "\n" not in err


def test_module_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "sdkit", "run", "--T", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("sdkit: error: T must be")


def test_cli_resume_reloads_finished_generations(tmp_path, capsys):
    args = ["run", "--epochs", "2", "--generations", "1", "--no-progress", "--checkpoint-dir", str(tmp_path)]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    assert sorted(p.name for p in tmp_path.glob("gen*.pt")) == ["gen0.pt", "gen1.pt"]
    assert main([*args, "--resume", "--out", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert [g["test_accuracy"] for g in a["generations"]] == [g["test_accuracy"] for g in b["generations"]]
    assert main(["run", "--resume"]) == 2
    assert "resume=True needs checkpoint_dir" in capsys.readouterr().err
