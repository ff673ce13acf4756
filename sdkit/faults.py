"""What a long training run meets, and how ``sdkit.train`` and the CLI respond: a diverging loss, a rank that dies
under ``torchrun``, Ctrl-C or SIGTERM.

The training loop calls these helpers from a few lines only (see ``sdkit.train``):

- :class:`DivergenceGuard` stops at the first non-finite loss with :class:`TrainingDiverged`, before a NaN model
  is validated, kept as the best one, or written over a good checkpoint;
- :func:`loader_state_for_checkpoint` gathers every rank's augmentation generator, so that a restarted group
  (``torchrun --max-restarts``) continues with each rank's own random stream, and :func:`wait_for_checkpoint`
  holds every rank until rank 0's checkpoint of the epoch is on disk;
- :func:`sigterm_as_interrupt` and :func:`interrupted` make ``python -m sdkit run`` stop on Ctrl-C or SIGTERM with
  one line saying how to resume, and no traceback.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "TrainingDiverged",
    "DivergenceGuard",
    "loader_state_for_checkpoint",
    "init_process_group",
    "wait_for_checkpoint",
    "Terminated",
    "sigterm_as_interrupt",
    "interrupted",
]


class TrainingDiverged(FloatingPointError):
    """The training loss (or the weights) became NaN or infinite; ``epoch`` and ``step`` say where (``step`` is
    ``None`` where only the epoch's total was checked, on CUDA).

    >>> err = TrainingDiverged("training diverged", epoch=1, step=3, loss=float("nan"))
    >>> isinstance(err, FloatingPointError), err.epoch, err.step
    (True, 1, 3)
    """

    def __init__(self, message: str, *, epoch: int, step: int | None, loss: float) -> None:
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


class DivergenceGuard:
    """Checks the loss of every step (on CPU) or of every epoch (elsewhere) and the weights before they are kept.

    On CPU ``bool(torch.isfinite(loss))`` costs nothing, so every step is checked and training stops at the first
    non-finite loss, before its backward pass touches the weights. On CUDA (and MPS) that check would force a host
    sync per step and stall the queue of kernels, so only the epoch's summed loss, which ``sdkit.train`` reads
    once per epoch anyway and which a single NaN step already poisons, and the parameters (one sync) are checked,
    before validation and before the checkpoint is written.

    On failure the model gets back the weights ``train`` would have returned so far (``best_state``: the best or,
    with ``select="last"``, the last good epoch's), and :class:`TrainingDiverged` names the epoch, the step, the
    learning rate and what to change. A checkpoint written at an earlier epoch is never overwritten, so it still
    holds the last good epoch.

    >>> model = nn.Linear(2, 2)
    >>> guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=100.0), None, torch.device("cpu"))
    >>> guard.check_loss(torch.tensor(0.5), epoch=0, best_state=None)  # a finite loss passes
    >>> try:
    ...     guard.check_loss(torch.tensor(float("nan")), epoch=0, best_state=None)  # the second step of epoch 0
    ... except TrainingDiverged as err:
    ...     print(str(err).replace(". ", ".\\n"))
    training diverged: the loss is nan at epoch 0, step 1 (learning rate 100).
    The likely cause is a learning rate too high for this model: lower lr, or check the data (input scale, labels).
    No epoch finished: the model is not trained (its weights may be NaN); build a new one.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        history: Any,
        device: torch.device,
        *,
        temperature: float | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self.model, self.optimizer, self.history = model, optimizer, history
        self.temperature, self.checkpoint = temperature, checkpoint
        self.every_step = device.type == "cpu"  # a per-step check syncs with the device: cheap only on the CPU
        self._epoch, self._step = -1, 0

    def check_loss(self, loss: torch.Tensor, epoch: int, best_state: dict[str, Any] | None) -> None:
        """Call with every step's loss, before ``backward``; raises at the first non-finite one (CPU only)."""
        if epoch != self._epoch:
            self._epoch, self._step = epoch, 0
        step, self._step = self._step, self._step + 1  # counted from 0, like the epochs
        if self.every_step and not bool(torch.isfinite(loss.detach()).all()):
            self._fail(float(loss.detach().float().mean()), epoch, step, best_state)

    def check_epoch(self, train_loss: float, epoch: int, best_state: dict[str, Any] | None) -> None:
        """Call once an epoch has trained, before validation and the checkpoint: its loss and the weights."""
        if not math.isfinite(train_loss):
            self._fail(train_loss, epoch, None, best_state)
        params = [p.detach() for p in self.model.parameters()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):  # one sync
            self._fail(train_loss, epoch, None, best_state, what="the weights are not finite")

    def _fail(
        self, loss: float, epoch: int, step: int | None, best_state: dict[str, Any] | None, what: str = ""
    ) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        where = f"epoch {epoch}, step {step}" if step is not None else f"epoch {epoch} (checked once per epoch)"
        what = what or f"the loss is {loss}"
        if epoch == 0 and step == 0:
            # nothing has been updated yet, so the learning rate cannot be the cause
            cause = "the very first loss is not finite, before any update: check the data (input scale, labels)"
            cause += " and the model" + (f", and the temperature T={self.temperature}" if self.temperature else "")
        else:
            cause = "the likely cause is a learning rate too high for this model: lower lr"
            if self.temperature is not None:
                cause += f", or check the temperature T={self.temperature} (a small T makes the soft targets extreme)"
            cause += ", or check the data (input scale, labels)"
        kept = ""
        if best_state is not None:
            self.model.load_state_dict(best_state)
            self.model.eval()
            kept = f" The model holds the weights of epoch {self.history.best_epoch}, the ones train keeps so far"
            if self.checkpoint is not None:
                kept += f"; the checkpoint {self.checkpoint} still holds the last good epoch"
            kept += "."
        else:
            kept = " No epoch finished: the model is not trained (its weights may be NaN); build a new one."
        raise TrainingDiverged(
            f"training diverged: {what} at {where} (learning rate {lr:g}). {cause[0].upper()}{cause[1:]}.{kept}",
            epoch=epoch, step=step, loss=loss,
        )  # fmt: skip


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


def init_process_group(backend: str) -> None:
    """``torch.distributed.init_process_group(backend)`` that also works after ``torchrun`` restarted the group.

    ``torchrun`` keeps one key-value store for the whole job and, in the PyTorch releases this project tests
    (2.14), hands the restarted workers the same store with the first attempt's keys still in it: gloo then reads
    the dead workers' addresses and fails with ``Gloo connectFullMesh failed ... Connection refused``. Here each
    attempt (``$TORCHELASTIC_RESTART_COUNT``) gets its own key prefix on that store. Outside ``torchrun``'s agent
    store this is the plain call.
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        torch.distributed.init_process_group(backend)
        return
    from torch.distributed.constants import default_pg_timeout

    # the agent serves the store at MASTER_ADDR:MASTER_PORT; every worker is a client of it
    store = torch.distributed.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=default_pg_timeout
    )
    torch.distributed.init_process_group(
        backend,
        store=torch.distributed.PrefixStore(f"sdkit/attempt_{attempt}", store),
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
    )


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that ``finally`` blocks run (temporary files go)."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``; handlers restored after.

    The default SIGTERM action kills the process on the spot, leaving a checkpoint's temporary file behind; as an
    exception it unwinds like Ctrl-C. SIGINT is set explicitly because a process started in the background of a
    non-interactive shell inherits it ignored. Outside the main thread (where handlers cannot be set) nothing
    changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def interrupted(stop: KeyboardInterrupt, argv: Sequence[str] | None) -> int:
    """Print one line on stderr saying how to resume, and return the shell's status for the signal.

    130 for Ctrl-C (SIGINT), 143 for SIGTERM: 128 plus the signal's number, as a shell reports a process killed by
    it. Under ``torchrun`` only rank 0 prints.

    >>> import io, contextlib
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     interrupted(Terminated(), ["run", "--checkpoint-dir", "ckpt"])
    143
    >>> print(err.getvalue().replace("; ", ";\\n"))  # one line, cut here at its semicolons
    sdkit: stopped by SIGTERM;
    the checkpoints in ckpt hold the last finished epoch;
    continue with: python -m sdkit run --checkpoint-dir ckpt --resume
    <BLANKLINE>
    """
    signum = int(getattr(stop, "signum", signal.SIGINT))
    args = list(sys.argv[1:] if argv is None else argv)
    folder = _option(args, "--checkpoint-dir")
    if folder is None:
        hint = "nothing was saved; pass --checkpoint-dir DIR to be able to resume after an interruption"
    else:
        resume = args if "--resume" in args else [*args, "--resume"]
        how = (
            "rerun the same torchrun command with --resume"
            if int(os.environ.get("WORLD_SIZE", "1")) > 1
            else f"python -m sdkit {shlex.join(resume)}"
        )
        hint = f"the checkpoints in {folder} hold the last finished epoch; continue with: {how}"
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"sdkit: stopped by {signal.Signals(signum).name}; {hint}", file=sys.stderr)
    return 128 + signum


def _option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``, else None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
