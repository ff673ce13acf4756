import json
import os

import pytest
import torch

import sdkit
from sdkit.models import autocast_for
from sdkit.utils import _atomic_write


def test_atomic_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "out" / "r.json"
    sdkit.atomic_write_json(path, {"a": 1})
    sdkit.atomic_write_json(path, {"a": 2, "b": [1.5]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1.5]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp files left behind


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "r.json"
    sdkit.atomic_write_json(path, {"ok": True})
    with pytest.raises(TypeError):
        sdkit.atomic_write_json(path, {"bad": object()})  # not JSON-serialisable: fails mid-write
    assert json.loads(path.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_an_interruption_just_after_the_temporary_file_exists_leaves_nothing(tmp_path, monkeypatch):
    # Ctrl-C's handler runs between bytecodes: here, the first one after the temporary file was created
    real_open = os.open

    def open_then_interrupt(*args, **kwargs):
        real_open(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sdkit.atomic_write_json(tmp_path / "r.json", {"a": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_an_interruption_inside_torch_save_surfaces_as_the_interruption(tmp_path):
    class ZipWriter:  # torch.save's writer: its cleanup raises while Ctrl-C unwinds through it
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")

    def write(f):
        f.write(b"partial")
        with ZipWriter():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _atomic_write(tmp_path / "c.pt", write)
    assert list(tmp_path.iterdir()) == []


def test_atomic_torch_save_roundtrip(tmp_path):
    sdkit.atomic_torch_save(tmp_path / "c.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.arange(3))


def test_check_seeds_takes_sequences_of_distinct_integers_and_refuses_a_count():
    import numpy as np

    assert sdkit.utils.check_seeds((3, 1)) == [3, 1]  # order kept: the i-th seed is the i-th run
    assert sdkit.utils.check_seeds(np.arange(3)) == sdkit.utils.check_seeds(torch.arange(3)) == [0, 1, 2]
    assert all(type(s) is int for s in sdkit.utils.check_seeds(np.arange(2)))  # JSON-ready
    for bad in (3, "012", [], [1, 1], [0.0, 1.0], [True], np.int64(2), torch.zeros(2, 2)):
        with pytest.raises(ValueError, match=r"seeds must be a sequence of distinct integer seeds, e\.g\. \[0, 1, 2\]"):
            sdkit.utils.check_seeds(bad)
    with pytest.raises(ValueError, match="^generations must be"):  # the argument's own name
        sdkit.utils.check_seeds(2, "generations")


def test_pick_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert sdkit.pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        sdkit.pick_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        sdkit.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sdkit.pick_device("auto") == torch.device("cuda")
    # "auto" with a model is where the model already is: evaluation never moves it
    assert sdkit.pick_device("auto", model=torch.nn.Linear(2, 2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="got device=None"):  # one convention: "auto", never None
        sdkit.pick_device(None)


def test_bf16_autocast_only_on_cuda():
    import contextlib

    assert autocast_for(torch.device("cpu"), "bf16") is contextlib.nullcontext
    cuda_autocast = autocast_for(torch.device("cuda"), "bf16")
    assert cuda_autocast.keywords == {"device_type": "cuda", "dtype": torch.bfloat16}
    assert autocast_for(torch.device("cuda"), "fp32") is contextlib.nullcontext


def test_run_mode(monkeypatch):
    monkeypatch.setenv("SDKIT_MODE", "full")
    assert sdkit.run_mode() == "full" and not sdkit.is_quick()
    monkeypatch.setenv("SDKIT_MODE", "Quick")
    assert sdkit.is_quick()
    monkeypatch.setenv("SDKIT_MODE", "fast")
    with pytest.raises(ValueError, match="SDKIT_MODE must be one of"):
        sdkit.run_mode()
    monkeypatch.delenv("SDKIT_MODE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sdkit.run_mode() == "quick"


def test_machine_info_has_the_basics():
    info = sdkit.machine_info("cpu")
    assert info["cpu_count"] >= 1 and info["torch"] == torch.__version__ and "gpu" not in info
    assert info["cpu_model"] and len(info["load_average"]) == 3 and all(v >= 0 for v in info["load_average"])


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = sdkit.atomic_write_json(tmp_path / "r.json", [1])
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
