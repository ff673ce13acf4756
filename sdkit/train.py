"""One training loop for plain training and every distillation method.

``train(model, data)`` trains with cross-entropy; ``train(model, data, teacher=t, T=4, alpha=0.9)`` distils from a
frozen copy of ``t``; ``train(model, data, method=m)`` uses any :class:`sdkit.methods.Method`. ``data`` is an
:class:`sdkit.data.Data` (tensors, batched on the device by :class:`sdkit.loader.BatchLoader`) or a
``torch.utils.data.DataLoader`` of ``(x, y)`` batches. The run's settings are one :class:`TrainConfig`, which
checkpoints store and ``resume`` compares. ``born_again(...)`` trains a teacher, then generations each distilled
from the one before (Furlanello et al. 2018, "Born-Again Neural Networks").

Reading order: :func:`train` (arguments to a config and a method), :func:`_fit` (the loop, one screen), then its
helpers :func:`_setup`, :func:`_train_epoch`, :func:`_resume`, :func:`_checkpoint_state`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
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
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ._checks import check_alpha, check_positive_int, check_temperature
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_states
from .data import Data, Split
from .evaluate import evaluate, predict
from .faults import DivergenceGuard, loader_state_for_checkpoint, wait_for_checkpoint
from .loader import BatchLoader, DataLoaderAdapter
from .methods import Distill, Method, TrainContext
from .models import channels_last_while
from .utils import pick_device

__all__ = ["TrainConfig", "History", "train", "born_again", "Generation"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
SELECTIONS = ("best_val", "last")
PRECISIONS = ("bf16", "fp32")


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
        for arg, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("select", SELECTIONS),
                           ("precision", PRECISIONS)):  # fmt: skip
            if getattr(self, arg) not in valid:
                raise ValueError(f"unknown {arg} {getattr(self, arg)!r}; choose one of {list(valid)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got seed={self.seed!r}")


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
    >>> history.config is None  # train stores the run's TrainConfig here
    True
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


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    lr, weight_decay = config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.1, momentum=config.momentum, nesterov=True, weight_decay=weight_decay)
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

    ``data``: an :class:`sdkit.data.Data` (train/val/test tensors), or a ``torch.utils.data.DataLoader`` of
    ``(x, y)`` batches over a map-style dataset with ``val=`` a DataLoader for validation (or none, with
    ``select="last"``). The objective: cross-entropy; with ``teacher`` the distillation loss
    ``(1 - alpha) * CE + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))`` (``T=4``, ``alpha=0.9``, alpha weighting
    the soft term) from a frozen copy of the teacher; or any ``method``. Settings a method would ignore (``T``,
    ``alpha``, ``label_smoothing`` with ``method=``; ``T``, ``alpha`` without a teacher) are an error.

    The run's settings are a :class:`TrainConfig`: pass ``config=``, or its fields as keywords (``epochs=5``),
    which override ``config``'s. The global random generator (dropout, mixup, a DataLoader's shuffling) is seeded
    with ``seed`` inside ``torch.random.fork_rng``, so runs are reproducible and the caller's random state is left
    as it was. Convolutional models train in channels_last memory format; cuDNN's autotuner is on while training
    and restored afterwards. The kept weights (see ``select``) are loaded at the end and the model left in eval mode.

    Under ``torchrun`` (an initialised process group) the model is wrapped in ``DistributedDataParallel``, each
    rank trains on its shard of every epoch (tensor data; a DataLoader needs the user's DistributedSampler), the
    training loss and BatchNorm buffers are all-reduced, and only rank 0 shows progress and writes checkpoints.

    ``checkpoint=PATH`` writes a checkpoint atomically after every epoch; with ``resume=True`` an existing one is
    loaded and training continues after its last epoch (on CPU the final weights are bit-identical to an
    uninterrupted run); its settings and method must be this run's. ``on_epoch_end(epoch, history)`` is called
    after each checkpoint.

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
    method = _objective(method, teacher, T, alpha, label_smoothing)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH (the file to resume from)")
    if isinstance(data, Data):
        _check_data(data)
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices), _cudnn_autotuner(), channels_last_while(model) as channels_last:
        torch.manual_seed(config.seed)
        run = _setup(model, data, val, method, config, pick_device(device), channels_last)
        return _fit(run, config, progress, desc, checkpoint, resume, on_epoch_end)


def _config(config: TrainConfig | None, settings: dict[str, Any], data: Any, val: Any) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in settings if k not in names]
    if unknown:
        raise TypeError(f"train() got unknown setting(s) {unknown}; TrainConfig fields are {names}")
    if isinstance(data, DataLoader):
        for name in ("batch_size", "augment"):  # the DataLoader's batch sampler and transforms decide these
            if name in settings or (config is not None and getattr(config, name) != getattr(TrainConfig, name)):
                raise ValueError(f"{name} would be ignored with a DataLoader; set it on the DataLoader instead")
    elif not isinstance(data, Data):
        raise TypeError(
            f"data must be an sdkit Data (from sdkit.load_dataset) or a torch DataLoader, got {type(data).__name__}"
        )
    elif val is not None:
        raise ValueError("val= is for DataLoader training; a Data brings its own validation split (data.val)")
    config = dataclasses.replace(config or TrainConfig(), **settings)
    if isinstance(data, DataLoader) and val is None and config.select == "best_val":
        raise ValueError("select='best_val' needs validation data: pass val=DataLoader(...) or select='last'")
    return config


def _objective(method: Method | None, teacher: nn.Module | None, T, alpha, label_smoothing) -> Method:
    """The method ``train`` was asked for; a setting it would not use is an error, never silently dropped."""
    given = {k: v for k, v in (("T", T), ("alpha", alpha), ("label_smoothing", label_smoothing)) if v is not None}
    if method is not None:
        if teacher is not None:
            raise ValueError("pass either teacher= (classic distillation) or method=, not both")
        for name, value in given.items():
            raise ValueError(
                f"{name}={value!r} would be ignored: method={type(method).__name__}(...) brings its own objective; "
                "set it on the method instead"
            )
        return method
    if teacher is not None:
        T, alpha = 4.0 if T is None else T, 0.9 if alpha is None else alpha
        return Distill(teacher, T, alpha, label_smoothing or 0.0)
    for name in ("T", "alpha"):
        if name in given:
            raise ValueError(f"{name}={given[name]!r} would be ignored without a teacher; pass teacher= or drop it")
    return Method(label_smoothing or 0.0)


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
    rank, world_size = distributed_rank_and_size()
    if world_size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    model.to(device)
    forward = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # DDP averages gradients across ranks during backward; methods still get the plain module
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
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
    autocast = _autocast_for(device, config.precision)
    ctx = TrainContext(loader, num_classes or loader.num_classes, config.epochs, device, autocast, config.seed)
    method.setup(model, ctx)
    optimizer = _optimizer(config, model.parameters())
    scheduler = _scheduler(config.schedule, optimizer, config.epochs * len(loader))
    return _Run(model, forward, method, loader, val, optimizer, scheduler, autocast, device, rank, world_size,
                channels_last)  # fmt: skip


def _fit(run: _Run, config: TrainConfig, progress: bool, desc: str, checkpoint, resume: bool, on_epoch_end) -> History:
    """The training loop: an epoch of steps, validation, weight selection, a checkpoint."""
    history = History(device=str(run.device), config=config)
    best: dict[str, Any] = {"epoch": -1, "accuracy": -1.0, "model": None}
    first_epoch = 0
    if resume and Path(checkpoint).exists():
        first_epoch, best = _resume(checkpoint, run, config, history)
    guard = DivergenceGuard(run.model, run.optimizer, history, run.device, temperature=getattr(run.method, "T", None),
                            checkpoint=checkpoint)  # fmt: skip
    quiet = not progress or run.rank > 0
    epochs = config.epochs
    bar = tqdm(range(first_epoch, epochs), desc=desc, disable=quiet, leave=False, initial=first_epoch, total=epochs)
    for epoch in bar:
        start = time.perf_counter()
        train_loss = _train_epoch(run, epoch, guard, best["model"])
        guard.check_epoch(train_loss, epoch, best["model"])  # before validation, the best weights and the checkpoint
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        seconds = time.perf_counter() - start
        metrics = _validate(run)
        lr = run.optimizer.param_groups[0]["lr"]
        history.records.append({"epoch": epoch, "train_loss": train_loss, **metrics, "lr": lr, "seconds": seconds})
        accuracy = metrics.get("val_accuracy", 0.0)
        if config.select == "last" or accuracy > best["accuracy"]:
            best = {"epoch": epoch, "accuracy": accuracy, "model": copy.deepcopy(run.model.state_dict())}
            history.best_epoch = epoch
        # every rank joins: each rank's augmentation state goes into the checkpoint rank 0 writes
        loader_rng = loader_state_for_checkpoint(run.loader, run.world_size, run.device) if checkpoint else None
        if checkpoint is not None and run.rank == 0:
            save_checkpoint(checkpoint, _checkpoint_state(run, config, epoch, history, best, loader_rng))
        wait_for_checkpoint(checkpoint, run.world_size, run.device)  # ranks > 0 go on once rank 0's file is whole
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{accuracy:.3f}")
    run.model.load_state_dict(best["model"])
    run.model.eval()
    return history


def _train_epoch(run: _Run, epoch: int, guard: DivergenceGuard, best_state: dict | None) -> float:
    """One pass over the training batches; returns the mean training loss (the epoch's one host sync)."""
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
        loss_sum += loss.detach()
    run.method.end_epoch(run.model, epoch)
    if run.world_size > 1:
        _average_across_ranks(run.model, loss_sum, run.world_size)
    return float(loss_sum) / len(run.loader)


def _average_across_ranks(model: nn.Module, loss_sum: torch.Tensor, world_size: int) -> None:
    torch.distributed.all_reduce(loss_sum)
    loss_sum /= world_size
    # each rank's BatchNorm statistics saw only its shard: average them so every rank holds the same model
    for buffer in model.buffers():
        if buffer.is_floating_point():
            torch.distributed.all_reduce(buffer)
            buffer /= world_size


def _validate(run: _Run) -> dict[str, float]:
    if run.val is None:
        return {}
    logits, y = predict(run.model, run.val, device=run.device)
    accuracy = float((logits.argmax(-1) == y).float().mean())
    return {"val_accuracy": accuracy, "val_nll": float(F.cross_entropy(logits, y))}


def _checkpoint_state(run: _Run, config: TrainConfig, epoch: int, history: History, best: dict,
                      loader_rng: dict[str, torch.Tensor]) -> dict[str, Any]:  # fmt: skip
    return {
        "epoch": epoch, "epochs": config.epochs, "config": dataclasses.asdict(config),
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "loader_rng": loader_rng,
        "method": run.method.state_dict(), "method_name": run.method.name, "history": history.records, "best": best,
    }  # fmt: skip


def _resume(path, run: _Run, config: TrainConfig, history: History) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into the run; return the first epoch still to train and the best weights so far."""
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


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group (e.g. under ``torchrun``), else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _check_data(data: Data) -> None:
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
    history: History | None  # None for a teacher passed in already trained
    metrics: dict[str, float]


def born_again(
    make_model: Callable[[int], nn.Module],
    data: Data,
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

    Pass ``teacher`` to start from an already trained model instead of training generation 0 (its
    :class:`Generation` then has ``history=None``).
    ``checkpoint_dir`` keeps one checkpoint per generation (``gen0.pt``, ``gen1.pt``, ...); with ``resume=True`` a
    finished generation is reloaded and an interrupted one continues where it stopped.
    Returns ``generations + 1`` entries, the teacher first, each evaluated on ``data.test``.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> make = lambda seed: sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    >>> generations = born_again(make, data, generations=1, alpha=0.5, epochs=2, progress=False, device="cpu")
    >>> len(generations), [g.metrics["accuracy"] > 0.75 for g in generations]  # the teacher, then one student
    (2, [True, True])
    >>> teacher = generations[0].model  # a trained teacher is reused, not trained again
    >>> again = born_again(make, data, generations=1, teacher=teacher, epochs=2, progress=False, device="cpu")
    >>> len(again), again[0].model is teacher, again[0].history
    (2, True, None)
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
    else:
        results.append(Generation(teacher, None, evaluate(teacher, data.test)))
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
