"""Checkpoints that let an interrupted training run continue exactly where it stopped.

A checkpoint holds everything the next epoch depends on: model, optimizer and scheduler states, the epoch, the
history so far, the best-validation weights, the batch loader's random generator, the global RNG states, and the
method's own state (a teacher, an EMA teacher, stored per-sample predictions). It is written atomically (temp
file, fsync, rename), so a kill during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

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
    return atomic_torch_save(path, {"format": FORMAT, "rng": rng_states(), **state})


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise ``ValueError`` if it is corrupted or foreign.

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
        # weights_only=False: the checkpoint holds optimizer and RNG states; only load checkpoints you wrote
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"checkpoint {path} is corrupted or truncated ({type(err).__name__}: {err}); "
                         "delete it to start over") from None  # fmt: skip
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sdkit checkpoint (expected format {FORMAT!r}); pass a file written by "
                         "sdkit.train(..., checkpoint=...)")  # fmt: skip
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: missing {missing}; delete it to start over")
    return state
