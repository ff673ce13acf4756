"""One training loop for plain training and every distillation method.

``train(model, data)`` trains with cross-entropy; ``train(model, data, teacher=t, T=4, alpha=0.9)`` distils from a
frozen copy of ``t``; ``train(model, data, method=m)`` uses any :class:`sdkit.methods.Method`.
``born_again(...)`` trains a teacher, then generations each distilled from the one before
(Furlanello et al. 2018, "Born-Again Neural Networks").
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_alpha, check_positive_int, check_temperature
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_states
from .data import BatchLoader, Dataset
from .evaluate import evaluate, predict_logits
from .faults import DivergenceGuard, loader_state_for_checkpoint, wait_for_checkpoint
from .methods import Distill, Method
from .utils import pick_device

__all__ = ["History", "train", "born_again", "Generation"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
SELECTIONS = ("best_val", "last")


@dataclass
class History:
    """Per-epoch metrics of one training run (``records``: one dict per epoch) and the epoch kept at the end.

    >>> history = History([{"epoch": 0, "val_accuracy": 0.8, "seconds": 1.5},
    ...                    {"epoch": 1, "val_accuracy": 0.9, "seconds": 1.0}], best_epoch=1)
    >>> history["val_accuracy"], history.seconds  # one metric over the epochs; the total training time
    ([0.8, 0.9], 2.5)
    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> sorted(train(model, data, epochs=1, progress=False, device="cpu").records[0])  # what train records
    ['epoch', 'lr', 'seconds', 'train_loss', 'val_accuracy', 'val_nll']
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    device: str = "cpu"

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records]

    @property
    def seconds(self) -> float:
        return sum(r["seconds"] for r in self.records)


def _autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    # bf16 autocast only on CUDA: on CPUs without AMX it is several times slower than float32.
    if precision == "bf16" and device.type == "cuda":
        return partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def _cudnn_autotuner() -> Iterator[None]:
    # inputs have one shape per run, so cuDNN may time its algorithms once and keep the fastest; the flag is global
    # in PyTorch, so it is restored for the caller
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _optimizer(name: str, params, lr: float | None, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.1, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr or 3e-3, weight_decay=weight_decay)


def _scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # torch divides by the warm-up's length, pct_start * total_steps - 1: zero for exactly 4 steps
        warmup = 0.25 if total_steps != 4 else 0.375
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=warmup)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def train(
    model: nn.Module,
    data: Dataset,
    *,
    teacher: nn.Module | None = None,
    T: float = 4.0,
    alpha: float = 0.9,
    method: Method | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    schedule: str = "onecycle",
    label_smoothing: float = 0.0,
    augment: bool = True,
    select: str = "best_val",
    precision: str = "bf16",
    compile: bool = False,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, History], None] | None = None,
) -> History:
    """Train ``model`` in place on ``data.train``, validating on ``data.val`` after every epoch.

    Objective: plain cross-entropy, or with ``teacher`` the distillation loss
    ``(1 - alpha) * CE + alpha * T^2 * KL(teacher || student)`` (alpha weights the soft term), or ``method``.
    Optimiser: SGD with Nesterov momentum (default ``lr=0.1``) or AdamW (``lr=3e-3``), stepped per batch on a
    one-cycle, cosine or constant schedule. ``select="best_val"`` restores the weights of the epoch with the best
    validation accuracy (the test split is never looked at). ``precision="bf16"`` uses bfloat16 autocast on CUDA
    only; CPUs train in float32. Convolutional models run in channels_last memory format on every device (about
    1.4x faster on the project's 2-core CPU, see benchmarks/). cuDNN's autotuner (``cudnn.benchmark``) is on
    while training and restored afterwards. ``compile=True`` runs the training forward pass through
    ``torch.compile``: worth it for long GPU runs, off by default because compiling takes tens of seconds (about
    35 s for a small MLP on the project's CPU). Returns the :class:`History`.

    Under ``torchrun`` (an initialised process group) the model is wrapped in ``DistributedDataParallel``, each
    rank trains on its shard of every epoch, the training loss is all-reduced, and only rank 0 shows progress and
    writes checkpoints. A single-process run makes no ``torch.distributed`` calls.

    ``checkpoint=PATH`` writes a checkpoint atomically after every epoch; with ``resume=True`` an existing one is
    loaded and training continues after its last epoch, so that on CPU the final weights are bit-identical to an
    uninterrupted run with the same arguments. ``on_epoch_end(epoch, history)`` is called after each checkpoint.

    The global random generator (dropout draws from it) is seeded with ``seed`` inside ``torch.random.fork_rng``,
    so runs are reproducible and the caller's random state is left as it was.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> history = train(model, data, epochs=2, progress=False, device="cpu")
    >>> history["epoch"], model.training  # the kept weights are left in eval mode
    ([0, 1], False)
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    >>> student = sdkit.build_model("mlp", data.input_shape, data.num_classes, width=0.5, seed=1)
    >>> _ = train(student, data, teacher=model, T=4.0, alpha=0.5, epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(student, data.test)["accuracy"] > 0.75
    True
    """
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices), _cudnn_autotuner():
        torch.manual_seed(seed)
        arguments = {k: v for k, v in locals().items() if k != "cuda_devices"}  # exactly train's parameters
        return _train(**arguments)


def _train(
    model: nn.Module,
    data: Dataset,
    *,
    teacher,
    T,
    alpha,
    method,
    epochs,
    batch_size,
    optimizer,
    lr,
    weight_decay,
    momentum,
    schedule,
    label_smoothing,
    augment,
    select,
    precision,
    compile,
    device,
    seed,
    progress,
    desc,
    checkpoint,
    resume,
    on_epoch_end,
) -> History:
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got compile={compile!r}")
    for arg, value, valid in (
        ("optimizer", optimizer, OPTIMIZERS),
        ("schedule", schedule, SCHEDULES),
        ("select", select, SELECTIONS),
        ("precision", precision, ("bf16", "fp32")),
    ):
        if value not in valid:
            raise ValueError(f"unknown {arg} {value!r}; choose one of {list(valid)}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be an sdkit Dataset (from sdkit.load_dataset), got {type(data).__name__}")
    if method is not None and teacher is not None:
        raise ValueError("pass either teacher= (classic distillation) or method=, not both")
    if method is None:
        method = Distill(teacher, T, alpha, label_smoothing) if teacher is not None else Method(label_smoothing)
    _check_labels_once(data)

    rank, world_size = distributed_rank_and_size()
    device = pick_device(device)
    if world_size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
    autocast = _autocast_for(device, precision)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # DDP averages gradients across ranks during backward; methods still get the plain module
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        forward = torch.compile(forward)

    loader = BatchLoader(
        data.train,
        batch_size,
        shuffle=True,
        augment=data.augment if augment else None,
        seed=seed,
        device=device,
        drop_last=len(data.train) > batch_size * world_size,
        channels_last=channels_last,
        rank=rank,
        world_size=world_size,
    )
    method.setup(model, data, device, autocast, epochs=epochs)
    val = data.val.to(device)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay, momentum)
    sched = _scheduler(schedule, opt, epochs * len(loader))

    history = History(device=str(device))
    best_acc, best_state, first_epoch = -1.0, None, 0
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH (the file to resume from)")
    if resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            method.load_state_dict(state["method"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"checkpoint {checkpoint} does not match this model/method/optimizer: {err}") from None
        if state["epochs"] != epochs or state.get("method_name") != method.name:
            raise ValueError(
                f"checkpoint {checkpoint} was written by a run with epochs={state['epochs']}, method="
                f"{state.get('method_name')!r}; this run has epochs={epochs}, method={method.name!r}"
            )
        sched.load_state_dict(state["scheduler"])
        loader.load_state(state["loader_rng"])
        set_rng_states(state["rng"])
        history.records, history.best_epoch = state["history"], state["best"]["epoch"]
        best_acc, best_state = state["best"]["accuracy"], state["best"]["model"]
        first_epoch = state["epoch"] + 1
    guard = DivergenceGuard(model, opt, history, device, temperature=getattr(method, "T", None), checkpoint=checkpoint)
    quiet = not progress or rank > 0
    bar = tqdm(range(first_epoch, epochs), desc=desc, disable=quiet, leave=False, initial=first_epoch, total=epochs)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        for batch in loader:
            x = batch.x.contiguous(memory_format=torch.channels_last) if channels_last else batch.x
            batch = method.prepare(batch._replace(x=x))
            with autocast():
                logits = forward(batch.x)
            loss = method.loss(model, batch, logits, epoch)
            guard.check_loss(loss, epoch, best_state)  # before backward: a NaN never reaches the weights (CPU)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            method.after_step(model)
            loss_sum += loss.detach()
        method.end_epoch(model, epoch)
        if world_size > 1:
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= world_size
            # each rank's BatchNorm statistics saw only its shard: average them so every rank holds the same model
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    torch.distributed.all_reduce(buffer)
                    buffer /= world_size
        train_loss = float(loss_sum) / len(loader)  # the one host sync of the epoch
        guard.check_epoch(train_loss, epoch, best_state)  # before validation, best_state and the checkpoint
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        val_logits = predict_logits(model, val.x, device=device)
        val_acc = float((val_logits.argmax(-1) == val.y.cpu()).float().mean())
        val_nll = float(F.cross_entropy(val_logits, val.y.cpu()))
        history.records.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_accuracy": val_acc,
                "val_nll": val_nll,
                "lr": opt.param_groups[0]["lr"],
                "seconds": seconds,
            }
        )
        if select == "last" or val_acc > best_acc:
            best_acc, history.best_epoch = val_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        loader_rng = loader_state_for_checkpoint(loader, world_size, device) if checkpoint is not None else None
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, {
                "epoch": epoch, "epochs": epochs, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "loader_rng": loader_rng,
                "method": method.state_dict(), "method_name": method.name, "history": history.records,
                "best": {"epoch": history.best_epoch, "accuracy": best_acc, "model": best_state},
            })  # fmt: skip
        wait_for_checkpoint(checkpoint, world_size, device)  # ranks > 0 go on only once rank 0's file is whole
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
    model.load_state_dict(best_state)
    model.eval()
    return history


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group (e.g. under ``torchrun``), else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _check_labels_once(data: Dataset) -> None:
    for split_name in ("train", "val", "test"):
        split = getattr(data, split_name)
        if len(split) == 0:
            raise ValueError(f"data.{split_name} is empty; every split needs at least one sample")
        y = split.y
        if int(y.min()) < 0 or int(y.max()) >= data.num_classes:
            raise ValueError(
                f"data.{split_name}.y must lie in [0, {data.num_classes}), got {int(y.min())}..{int(y.max())}"
            )
        if not bool(torch.isfinite(split.x).all()):
            raise ValueError(f"data.{split_name}.x contains NaN or infinite values")


@dataclass
class Generation:
    """One model of a born-again sequence with its training history and test metrics.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> make = lambda seed: sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    >>> teacher, student = born_again(make, data, generations=1, epochs=2, progress=False, device="cpu")
    >>> student.history["epoch"], sorted(student.metrics)  # its training run and its test metrics
    ([0, 1], ['accuracy', 'ece', 'nll'])
    """

    model: nn.Module
    history: History
    metrics: dict[str, float]


def born_again(
    make_model: Callable[[int], nn.Module],
    data: Dataset,
    generations: int = 2,
    *,
    T: float = 4.0,
    alpha: float = 0.9,
    seed: int = 0,
    teacher: nn.Module | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    **train_kwargs: Any,
) -> list[Generation]:
    """Train a teacher (generation 0) with cross-entropy, then ``generations`` students, each a fresh model from
    ``make_model(seed)`` distilled from the previous generation with ``T`` and ``alpha``.

    Pass ``teacher`` to start from an already trained model instead of training generation 0.
    ``checkpoint_dir`` keeps one checkpoint per generation (``gen0.pt``, ``gen1.pt``, ...); with ``resume=True`` a
    finished generation is reloaded and an interrupted one continues where it stopped.
    Returns every generation (teacher first), each evaluated on ``data.test``.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> make = lambda seed: sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    >>> generations = born_again(make, data, generations=1, alpha=0.5, epochs=2, progress=False, device="cpu")
    >>> len(generations), [g.metrics["accuracy"] > 0.75 for g in generations]  # the teacher, then one student
    (2, [True, True])
    >>> teacher = generations[0].model  # a trained teacher is reused: only the new student is returned
    >>> len(born_again(make, data, generations=1, teacher=teacher, epochs=2, progress=False, device="cpu"))
    1
    """
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 0:
        raise ValueError(f"generations must be an integer >= 0, got generations={generations!r}")
    check_temperature(T)
    check_alpha(alpha)
    progress = train_kwargs.pop("progress", True)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the folder holding gen0.pt, gen1.pt, ...)")

    def ckpt(g: int) -> dict[str, Any]:
        if checkpoint_dir is None:
            return {}
        return {"checkpoint": Path(checkpoint_dir) / f"gen{g}.pt", "resume": resume}

    results: list[Generation] = []
    if teacher is None:
        teacher = make_model(seed)
        history = train(teacher, data, seed=seed, progress=progress, desc="gen 0 (teacher)", **ckpt(0), **train_kwargs)
        results.append(Generation(teacher, history, evaluate(teacher, data.test)))
    previous = teacher
    for g in range(1, generations + 1):
        student = make_model(seed + g)
        if student is previous:
            raise ValueError("make_model must return a new model each call (it returned the teacher itself)")
        history = train(
            student, data, teacher=previous, T=T, alpha=alpha, seed=seed + g, progress=progress, desc=f"gen {g}",
            **ckpt(g), **train_kwargs,
        )  # fmt: skip
        results.append(Generation(student, history, evaluate(student, data.test)))
        previous = student
    return results
