"""Checkpoints that let an interrupted training run continue exactly where it stopped.

A checkpoint holds everything the next epoch depends on: model, optimizer and scheduler states, the epoch, the
history so far, the best-validation weights, the batch loader's random generator, the global RNG states, and the
method's own state (a teacher, an EMA teacher, stored per-sample predictions). It is written atomically (temp
file, fsync, rename), so a kill during the write, a full disk or a read-only folder leaves the previous checkpoint
intact.

Loading never runs code from the file: checkpoints are read with ``torch.load(weights_only=True)``, which admits
tensors and plain Python containers and numbers only. Everything :func:`save_checkpoint` writes is of those
kinds (it converts numpy values and refuses anything else on save), so no extra type needs allow-listing; a
planted file whose unpickling would call a function (``os.system``, ...) is refused with a ``ValueError``.
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .utils import atomic_torch_save

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "sdkit-checkpoint-v1"
REQUIRED = ("format", "epoch", "model", "optimizer", "scheduler", "loader_rng", "method", "history", "best")


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag and RNG states) to ``path`` atomically.

    ``sdkit.train(..., checkpoint=PATH)`` calls it after every epoch; a hand-made checkpoint needs the keys that
    :func:`load_checkpoint` checks for.

    >>> import tempfile
    >>> from pathlib import Path
    >>> model = torch.nn.Linear(2, 2)
    >>> state = {"epoch": 0, "model": model.state_dict(), "optimizer": {}, "scheduler": {}, "loader_rng": {},
    ...          "method": {}, "history": [], "best": {}}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_checkpoint(Path(folder) / "run.pt", state)
    ...     loaded = load_checkpoint(path)
    >>> loaded["format"], "rng" in loaded, torch.equal(loaded["model"]["weight"], model.weight)
    ('sdkit-checkpoint-v1', True, True)
    """
    state = _loadable({"format": FORMAT, "rng": rng_states(), **state}, "state")
    return atomic_torch_save(path, state, what="checkpoint")


_SCALARS = (bool, int, float, complex, str, bytes, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def _loadable(obj: Any, where: str) -> Any:
    """``obj`` in the kinds ``torch.load(weights_only=True)`` reads back without an allow-list.

    numpy arrays become tensors and numpy scalars Python numbers; containers are rebuilt only when something inside
    them changed (a ``state_dict``'s ``OrderedDict`` carries ``_metadata`` that ``load_state_dict`` needs); any other
    object raises ``TypeError`` naming where it sits, so a checkpoint that could not be loaded safely is never
    written.

    >>> _loadable({"seen": np.array([1, 2]), "lr": np.float64(0.5), "tag": "x"}, "state")
    {'seen': tensor([1, 2]), 'lr': 0.5, 'tag': 'x'}
    >>> _loadable({"fn": print}, "state")
    Traceback (most recent call last):
    ...
    TypeError: state['fn'] is a builtin_function_or_method; a checkpoint holds only tensors, numbers, strings, ...
    """
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))  # a copy: the tensor must not share memory with live state
    if isinstance(obj, np.generic):  # before the scalars: np.float64 is a float subclass that pickles as numpy
        return obj.item()
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, dict):
        if where == "state['scheduler']" and callable(obj.get("anneal_func")):
            # torch < 2.4's OneCycleLR puts its bound annealing method in its state_dict; load_state_dict only
            # updates attributes, so leaving it out restores the same schedule
            obj = {k: v for k, v in obj.items() if k != "anneal_func"}
        items = {k: _loadable(v, f"{where}[{k!r}]") for k, v in obj.items()}
        if all(items[k] is obj[k] for k in obj) and type(obj) in (dict, collections.OrderedDict):
            return obj
        out = collections.OrderedDict(items) if isinstance(obj, collections.OrderedDict) else items
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata  # type: ignore[union-attr]
        return out
    if isinstance(obj, (list, tuple)):
        items = [_loadable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj, strict=True)) and type(obj) in (list, tuple):
            return obj
        return tuple(items) if isinstance(obj, tuple) else items
    raise TypeError(
        f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors, numbers, strings, None and "
        "dicts/lists/tuples of them (so that loading it cannot run code): store that state as tensors or plain values"
    )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise ``ValueError`` if it is corrupted or foreign.

    It is read with ``torch.load(weights_only=True)``: a file whose unpickling would call anything beyond tensor
    and container constructors is refused, so a checkpoint from someone else cannot run code.

    >>> import sdkit, tempfile
    >>> from pathlib import Path
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "run.pt"
    ...     _ = sdkit.train(model, data, epochs=2, progress=False, device="cpu", checkpoint=path)
    ...     state = load_checkpoint(path)
    >>> state["epoch"], state["epochs"], state["method_name"], len(state["history"])  # written after the last epoch
    (1, 2, 'plain', 2)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train without resume first, or fix the path")
    try:
        # weights_only=True: the unpickler admits tensors and plain containers only, so a planted file cannot run
        # code while it loads. save_checkpoint writes nothing else, hence no allow-list (add_safe_globals) is needed.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err.__context__ or err)
        called = re.search(r"GLOBAL\s+([\w.]+)", detail)
        if called:
            raise ValueError(
                f"checkpoint {path} was refused: loading it would call {called.group(1)}, which an sdkit checkpoint "
                "never holds (it could run code). Load only checkpoints written by sdkit.train(..., checkpoint=...); "
                "delete this one to start over"
            ) from None
        raise ValueError(f"checkpoint {path} is corrupted or truncated (UnpicklingError: {detail.strip()}); "
                         "delete it to start over") from None  # fmt: skip
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"checkpoint {path} is corrupted or truncated ({type(err).__name__}: {err}); "
                         "delete it to start over") from None  # fmt: skip
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sdkit checkpoint (expected format {FORMAT!r}); pass a file written by "
                         "sdkit.train(..., checkpoint=...)")  # fmt: skip
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: missing {missing}; delete it to start over")
    return state
