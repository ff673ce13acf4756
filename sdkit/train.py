"""One training loop for plain training and every distillation method.

``train(model, data)`` trains with cross-entropy; ``train(model, data, teacher=t, T=4, alpha=0.9)`` distils from a
frozen copy of ``t``; ``train(model, data, method=m)`` uses any :class:`sdkit.methods.Method`. ``data`` is an
:class:`sdkit.data.Data` (tensors, batched on the device by :class:`sdkit.data.BatchLoader`) or a
``torch.utils.data.DataLoader`` of ``(x, y)`` batches. The run's settings are one :class:`TrainConfig`, which
checkpoints store and ``resume`` compares; :class:`DivergenceGuard` stops a run whose loss is no longer finite.
Reading order: :func:`train` (arguments to a config and a method), :func:`_fit` (the loop, one screen), then
:func:`_setup` and :func:`_train_epoch`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import BatchLoader, Data, Split
from .dataloader import DataLoaderAdapter
from .diverged import TrainingDiverged, raise_diverged
from .evaluate import accuracy, predict
from .losses import check_positive_int
from .methods import Method, TrainContext, objective
from .models import autocast_for, channels_last_while, cudnn_autotuner, pick_device

__all__ = ["TrainConfig", "History", "train", "TrainingDiverged", "DivergenceGuard"]

CHOICES = {"optimizer": ("sgd", "adamw"), "schedule": ("onecycle", "cosine", "constant"),
           "select": ("best_val", "last"), "precision": ("bf16", "fp32")}  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (the objective, ``method=`` or ``teacher=``, is separate).

    ``optimizer``: SGD with Nesterov momentum ``momentum`` (default ``lr=0.1``) or AdamW (``lr=3e-3``), stepped
    per batch on a one-cycle, cosine or constant ``schedule``. ``select="best_val"`` keeps the weights of the
    epoch with the best validation accuracy (the test split is never looked at), ``"last"`` the last epoch's.
    ``augment`` applies the dataset's batch augmentation (tensor data only). ``precision="bf16"`` is bfloat16
    autocast on CUDA; other devices train in float32. ``compile`` runs the training forward pass through
    ``torch.compile`` (worth it for long GPU runs; compiling itself takes tens of seconds).

    >>> config = TrainConfig(epochs=2, lr=0.05)
    >>> config.epochs, config.optimizer, dataclasses.replace(config, seed=1).seed
    (2, 'sgd', 1)
    >>> TrainConfig(optimizer="lbfgs")
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'lbfgs'; choose one of ['sgd', 'adamw']
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "onecycle"
    augment: bool = True
    select: str = "best_val"
    precision: str = "bf16"
    compile: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        for name in ("compile", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {name}={getattr(self, name)!r}")
        for arg, valid in CHOICES.items():
            if getattr(self, arg) not in valid:
                raise ValueError(f"unknown {arg} {getattr(self, arg)!r}; choose one of {list(valid)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got seed={self.seed!r}")


@dataclass
class History:
    """Per-epoch metrics of one run (``records``: ``epoch``, ``train_loss``, ``val_accuracy``, ``val_nll``, ``lr``,
    ``seconds``), the epoch kept at the end, and the run's :class:`TrainConfig` (``config``).

    >>> history = History([{"epoch": 0, "val_accuracy": 0.8, "seconds": 1.5},
    ...                    {"epoch": 1, "val_accuracy": 0.9, "seconds": 1.0}], best_epoch=1)
    >>> history["val_accuracy"], history.seconds  # one metric over the epochs; the total training time
    ([0.8, 0.9], 2.5)
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    device: str = "cpu"
    config: TrainConfig | None = None

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records]

    @property
    def seconds(self) -> float:
        return sum(r["seconds"] for r in self.records)


def _optimizer(
    config: TrainConfig, params, total_steps: int, device: torch.device
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and its per-step learning-rate schedule.

    Every parameter is updated by one operator per step, not one per parameter: ``foreach`` (bit-identical to the
    per-parameter loop, so CPU results do not move), and on CUDA SGD's fused kernel (one launch instead of a few;
    it rounds differently, 1e-8 after ten steps). AdamW is ``foreach`` everywhere (its fused kernel drifts more).
    """
    params, lr, weight_decay = list(params), config.lr, config.weight_decay
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=lr or 3e-3, weight_decay=weight_decay, foreach=True)
        return optimizer, _schedule(config.schedule, optimizer, total_steps)
    sgd = dict(lr=lr or 0.1, momentum=config.momentum, nesterov=True, weight_decay=weight_decay)
    try:
        optimizer = torch.optim.SGD(params, **sgd, **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    except (TypeError, RuntimeError, ValueError):  # an older torch without the fused kernel
        optimizer = torch.optim.SGD(params, **sgd, foreach=True)
    return optimizer, _schedule(config.schedule, optimizer, total_steps)


def _schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # torch divides by the warm-up's length, pct_start * total_steps - 1: zero for exactly 4 steps
        warmup = 0.25 if total_steps != 4 else 0.375
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=warmup)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


class DivergenceGuard:
    """Stops training at the first non-finite loss, before a NaN model is validated, kept or checkpointed.

    On the CPU every step's loss is checked before its backward pass (``loss.item()`` is free there); on CUDA or
    MPS that would sync the host every step, so :meth:`check_epoch` checks the epoch's summed loss, which one NaN
    step poisons, and the weights, in the epoch's one host sync (``every_step`` overrides the choice). On failure
    the model gets back the weights ``train`` would have returned so far (``best_state``), an earlier checkpoint is
    never overwritten, and :class:`TrainingDiverged` names the epoch, step and learning rate.

    >>> model = nn.Linear(2, 2)
    >>> guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=100.0), None, torch.device("cpu"))
    >>> guard.check_loss(torch.tensor(0.5), epoch=0, best_state=None)  # a finite loss passes: no output
    >>> try:
    ...     guard.check_loss(torch.tensor(float("nan")), epoch=0, best_state=None)  # the second step of epoch 0
    ... except TrainingDiverged as err:
    ...     print(err.epoch, err.step, str(err)[:73])
    0 1 training diverged: the loss is nan at epoch 0, step 1 (learning rate 100)
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, history: Any, device: torch.device, *,
                 temperature: float | None = None, checkpoint: str | os.PathLike | None = None,
                 every_step: bool | None = None) -> None:  # fmt: skip
        self.model, self.optimizer, self.history = model, optimizer, history
        self.temperature, self.checkpoint = temperature, checkpoint
        self.every_step = device.type == "cpu" if every_step is None else every_step
        self._epoch, self._step = -1, 0

    def check_loss(self, loss: torch.Tensor, epoch: int, best_state: dict[str, Any] | None) -> None:
        """Call with every step's loss, before ``backward``; raises at the first non-finite one (CPU only)."""
        self._epoch, self._step = epoch, self._step + 1 if epoch == self._epoch else 0
        if self.every_step:  # loss.item(): one operator for a scalar loss (a step pays per operator launched)
            value = loss.item() if loss.numel() == 1 else float(loss.detach().float().mean())
            if not math.isfinite(value):
                raise_diverged(self, value, epoch, self._step, best_state)

    def check_epoch(
        self, loss: float | torch.Tensor, epoch: int, best_state: dict[str, Any] | None, steps: int = 1
    ) -> float:
        """Call once an epoch has trained, before validation and the checkpoint: the loss summed over its ``steps``
        (a float, or a tensor on the device) and the weights. Returns the mean loss ``loss / steps`` as a float,
        read in the same one host sync as the weights' check."""
        params = [p.detach() for p in self.model.parameters()]
        flags = [torch.stack([torch.isfinite(p).all() for p in params]).all()] if params else []
        on_device = ([loss.detach().reshape(())] if isinstance(loss, torch.Tensor) else []) + flags
        synced = torch.stack([t.float() for t in on_device]).tolist() if on_device else []  # the one host sync
        train_loss = (synced[0] if isinstance(loss, torch.Tensor) else float(loss)) / steps
        if not math.isfinite(train_loss):
            raise_diverged(self, train_loss, epoch, None, best_state)
        if flags and not synced[-1]:
            raise_diverged(self, train_loss, epoch, None, best_state, what="the weights are not finite")
        return train_loss


def train(
    model: nn.Module,
    data: Data | DataLoader,
    *,
    val: DataLoader | None = None,
    method: Method | None = None,
    teacher: nn.Module | None = None,
    T: float | None = None,
    alpha: float | None = None,
    label_smoothing: float | None = None,
    config: TrainConfig | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    desc: str = "train",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, History], None] | None = None,
    **settings: Any,
) -> History:
    """Train ``model`` in place on ``data``'s training split, validating after every epoch; return the History.

    ``data``: an :class:`sdkit.data.Data`, or a ``torch.utils.data.DataLoader`` of ``(x, y)`` batches with ``val=``
    a DataLoader for validation (or none, with ``select="last"``). The objective (:func:`sdkit.methods.objective`):
    cross-entropy; with ``teacher`` ``(1 - alpha) * CE + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))`` from a
    frozen copy of it (``T=4``, ``alpha=0.9``); or any ``method``. A setting the objective would ignore is an error.

    The run's settings are a :class:`TrainConfig`: pass ``config=``, or its fields as keywords (``epochs=5``),
    which override ``config``'s. The global random generator (dropout, mixup, a DataLoader's shuffling) is seeded
    with ``seed`` inside ``torch.random.fork_rng``, so runs are reproducible and the caller's random state is left
    as it was. Convolutional models train in channels_last memory format; cuDNN's autotuner is on while training
    and restored afterwards. The kept weights (see ``select``) are loaded at the end and the model left in eval mode.

    Under ``torchrun`` each rank trains on its shard of every epoch (see :mod:`sdkit.distributed`; a DataLoader
    needs the user's DistributedSampler). ``checkpoint=PATH`` writes a checkpoint atomically after every epoch;
    with ``resume=True`` training continues after its last epoch (bit-identical to an uninterrupted run on CPU),
    if its settings and method are this run's. ``on_epoch_end(epoch, history)`` is called after each checkpoint.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> history = train(model, data, epochs=2, progress=False, device="cpu")
    >>> history["epoch"], model.training, history.config.epochs  # the kept weights are left in eval mode
    ([0, 1], False, 2)
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    >>> student = sdkit.build_model("mlp", data.input_shape, data.num_classes, width=0.5, seed=1)
    >>> _ = train(student, data, teacher=model, T=4.0, alpha=0.5, epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(student, data.test)["accuracy"] > 0.75
    True
    >>> train(student, data, method=sdkit.PSKD(), T=2.0, progress=False)
    Traceback (most recent call last):
    ...
    ValueError: T=2.0 would be ignored: method=PSKD(...) brings its own objective; set it on the method instead
    """
    config = _config(config, settings, data, val)
    method = objective(method, teacher, T, alpha, label_smoothing)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH (the file to resume from)")
    if isinstance(data, Data):
        data.check()
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices), cudnn_autotuner(), channels_last_while(model) as channels_last:
        torch.manual_seed(config.seed)
        run = _setup(model, data, val, method, config, pick_device(device), channels_last)
        return _fit(run, config, progress, desc, checkpoint, resume, on_epoch_end)


def _config(config: TrainConfig | None, settings: dict[str, Any], data: Any, val: Any) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in settings if k not in names]
    if unknown:
        raise TypeError(f"train() got unknown setting(s) {unknown}; TrainConfig fields are {names}")
    if isinstance(data, DataLoader):
        from .dataloader import check_train_settings

        check_train_settings(settings, config, val)
    elif not isinstance(data, Data):
        raise TypeError(
            f"data must be an sdkit Data (from sdkit.load_dataset) or a torch DataLoader, got {type(data).__name__}"
        )
    elif val is not None:
        raise ValueError("val= is for DataLoader training; a Data brings its own validation split (data.val)")
    return dataclasses.replace(config or TrainConfig(), **settings)


@dataclass
class _Run:
    """Everything the loop needs, built once by :func:`_setup`."""

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, maybe wrapped by DDP and torch.compile
    method: Method
    loader: BatchLoader | DataLoaderAdapter
    val: Split | DataLoader | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: Callable[[], contextlib.AbstractContextManager]
    device: torch.device
    rank: int
    world_size: int
    channels_last: bool


def _setup(model, data, val, method: Method, config: TrainConfig, device: torch.device, channels_last: bool) -> _Run:
    forward, rank, world_size = model.to(device), 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():  # under torchrun
        from .distributed import data_parallel

        forward, rank, world_size, device = data_parallel(model, device)
    if config.compile:
        forward = torch.compile(forward)
    if isinstance(data, DataLoader):
        loader, num_classes = DataLoaderAdapter(data, device=device, channels_last=channels_last), None
    else:
        loader = BatchLoader(
            data.train, config.batch_size, shuffle=True, augment=data.augment if config.augment else None,
            seed=config.seed, device=device, drop_last=len(data.train) > config.batch_size * world_size,
            channels_last=channels_last, rank=rank, world_size=world_size,
        )  # fmt: skip
        num_classes, val = data.num_classes, data.val.to(device)
    autocast = autocast_for(device, config.precision)
    ctx = TrainContext(loader, num_classes or loader.num_classes, config.epochs, device, autocast, config.seed)
    method.setup(model, ctx)
    optimizer, scheduler = _optimizer(config, model.parameters(), config.epochs * len(loader), device)
    return _Run(model, forward, method, loader, val, optimizer, scheduler, autocast, device, rank, world_size,
                channels_last)  # fmt: skip


def _fit(run: _Run, config: TrainConfig, progress: bool, desc: str, checkpoint, resume: bool, on_epoch_end) -> History:
    """The training loop: an epoch of steps, validation, weight selection, a checkpoint."""
    history = History(device=str(run.device), config=config)
    best: dict[str, Any] = {"epoch": -1, "accuracy": -1.0, "model": None}
    first_epoch = 0
    if resume and Path(checkpoint).exists():
        from .checkpoint import resume_run

        first_epoch, best = resume_run(checkpoint, run, config, history)
    guard = DivergenceGuard(run.model, run.optimizer, history, run.device, temperature=getattr(run.method, "T", None),
                            checkpoint=checkpoint)  # fmt: skip
    quiet = not progress or run.rank > 0
    epochs = config.epochs
    bar = tqdm(range(first_epoch, epochs), desc=desc, disable=quiet, leave=False, initial=first_epoch, total=epochs)
    for epoch in bar:
        start = time.perf_counter()
        loss_sum = _train_epoch(run, epoch, guard, best["model"])
        # the epoch's one host sync, before validation, the best weights and the checkpoint
        train_loss = guard.check_epoch(loss_sum, epoch, best["model"], steps=len(run.loader))
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        seconds = time.perf_counter() - start
        metrics = _validate(run)
        lr = run.optimizer.param_groups[0]["lr"]
        history.records.append({"epoch": epoch, "train_loss": train_loss, **metrics, "lr": lr, "seconds": seconds})
        val_accuracy = metrics.get("val_accuracy", 0.0)
        if config.select == "last" or val_accuracy > best["accuracy"]:
            best = {"epoch": epoch, "accuracy": val_accuracy, "model": copy.deepcopy(run.model.state_dict())}
            history.best_epoch = epoch
        if checkpoint is not None:
            from .checkpoint import save_epoch

            save_epoch(checkpoint, run, config, epoch, history, best)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_accuracy:.3f}")
    run.model.load_state_dict(best["model"])
    run.model.eval()
    return history


def _train_epoch(run: _Run, epoch: int, guard: DivergenceGuard, best_state: dict | None) -> torch.Tensor:
    """One pass over the training batches; returns the summed loss, on the device: no host sync on CUDA."""
    run.model.train()
    loss_sum = torch.zeros((), device=run.device)
    for batch in run.loader:
        x = batch.x.contiguous(memory_format=torch.channels_last) if run.channels_last else batch.x
        batch = run.method.prepare(batch._replace(x=x))
        with run.autocast():
            logits = run.method.forward(run.forward, batch.x)
        loss = run.method.loss(run.model, batch, logits, epoch)
        guard.check_loss(loss, epoch, best_state)  # before backward: a NaN never reaches the weights (CPU)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        run.method.after_step(run.model)
        with torch.no_grad():  # one operator: no detach
            loss_sum += loss
    run.method.end_epoch(run.model, epoch)
    if run.world_size > 1:
        from .distributed import average_across_ranks

        average_across_ranks(run.model, loss_sum, run.world_size)
    return loss_sum


def _validate(run: _Run) -> dict[str, float]:
    logits, y = predict(run.model, run.val, device=run.device) if run.val is not None else (None, None)
    return {} if y is None else {"val_accuracy": accuracy(logits, y), "val_nll": float(F.cross_entropy(logits, y))}
