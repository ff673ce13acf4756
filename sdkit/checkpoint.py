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
import dataclasses
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .utils import atomic_torch_save

__all__ = [
    "save_checkpoint", "load_checkpoint", "checkpoint_state", "resume_run", "loader_state_for_checkpoint",
    "wait_for_checkpoint", "save_epoch", "FORMAT",
]  # fmt: skip

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


def loader_state_for_checkpoint(loader: Any, world_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The batch loader's random states for a checkpoint, with every rank's augmentation generator.

    Each rank augments with its own generator, and only rank 0 writes the checkpoint: without the others' states
    a restarted group would give every rank rank 0's augmentation stream and drift from the uninterrupted run.
    A collective under ``torch.distributed``: every rank must call it. ``BatchLoader.load_state`` picks its own
    rank's state.
    """
    state = dict(loader.state())
    if world_size > 1 and "augment" in state:  # a DataLoader brings its own randomness: nothing to gather
        mine = state["augment"].to(device)  # NCCL gathers device tensors only; gloo takes either
        gathered = [torch.empty_like(mine) for _ in range(world_size)]
        torch.distributed.all_gather(gathered, mine)
        state["augment_by_rank"] = torch.stack(gathered).cpu()
    return state


def wait_for_checkpoint(checkpoint: str | os.PathLike | None, world_size: int, device: torch.device) -> None:
    """Hold every rank until rank 0 has written the epoch's checkpoint (a barrier; nothing in one process).

    Without it, rank 0 may still be validating and writing while the others run ahead into the next epoch: a
    rank that dies then, or an ``on_epoch_end`` that reads the file, would find the previous epoch's checkpoint
    (or none). With it, a rank that has passed an epoch's end knows that epoch is saved, and a group restarted by
    ``torchrun`` reads one complete file written before any of its ranks started.
    """
    if checkpoint is None or world_size <= 1:
        return
    if device.type == "cuda" and torch.distributed.get_backend() == "nccl":
        torch.distributed.barrier(device_ids=[device.index])  # NCCL needs to know which GPU this rank drives
    else:
        torch.distributed.barrier()


# ---------------------------------------------------------------------- the training loop's checkpoints


def checkpoint_state(run: Any, config: Any, epoch: int, history: Any, best: dict,
                      loader_rng: dict[str, torch.Tensor]) -> dict[str, Any]:  # fmt: skip
    """Everything a checkpoint of ``sdkit.train``'s run holds after ``epoch`` (``run``: its model, optimizer,
    scheduler and method; ``config`` its TrainConfig)."""
    return {
        "epoch": epoch, "epochs": config.epochs, "config": dataclasses.asdict(config),
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "loader_rng": loader_rng,
        "method": run.method.state_dict(), "method_name": run.method.name, "history": history.records, "best": best,
    }  # fmt: skip


def resume_run(path: str | os.PathLike, run: Any, config: Any, history: Any) -> tuple[int, dict[str, Any]]:
    """Load the checkpoint at ``path`` into ``sdkit.train``'s run and ``history``; return the first epoch still to
    train and the best weights so far. A checkpoint written with other settings or another method is an error."""
    state = load_checkpoint(path)
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.method.load_state_dict(state["method"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {path} does not match this model/method/optimizer: {err}") from None
    saved = state.get("config", {"epochs": state.get("epochs")})  # older checkpoints stored only the epochs
    ours = dataclasses.asdict(config)
    differ = {k: v for k, v in saved.items() if k != "compile" and ours.get(k) != v}
    if differ or state.get("method_name") != run.method.name:
        mine = ", ".join(f"{k}={ours.get(k)!r}" for k in differ)
        raise ValueError(
            f"checkpoint {path} was written by a run with {', '.join(f'{k}={v!r}' for k, v in differ.items())}"
            f"{', ' if differ else ''}method={state.get('method_name')!r}; this run has {mine}{', ' if differ else ''}"
            f"method={run.method.name!r}: resume with the same settings, or delete the checkpoint"
        )
    run.scheduler.load_state_dict(state["scheduler"])
    run.loader.load_state(state["loader_rng"])
    set_rng_states(state["rng"])
    history.records, history.best_epoch = state["history"], state["best"]["epoch"]
    return state["epoch"] + 1, state["best"]


def save_epoch(
    checkpoint: str | os.PathLike, run: Any, config: Any, epoch: int, history: Any, best: dict[str, Any]
) -> None:
    """Write the checkpoint of ``sdkit.train``'s run after ``epoch`` (rank 0 writes, every rank waits for it)."""
    # every rank joins: each rank's augmentation state goes into the checkpoint rank 0 writes
    loader_rng = loader_state_for_checkpoint(run.loader, run.world_size, run.device)
    if run.rank == 0:
        save_checkpoint(checkpoint, checkpoint_state(run, config, epoch, history, best, loader_rng))
    wait_for_checkpoint(checkpoint, run.world_size, run.device)  # ranks > 0 go on once rank 0's file is whole
