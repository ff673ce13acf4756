"""Head-to-head comparison of the self-distillation family under one budget.

Every method trains the same architecture on the same data for the same number of epochs, selects its weights on
the validation split, and is evaluated once on the test split. Methods:

* ``plain``: cross-entropy only (the reference point).
* ``kd``: classic distillation from a teacher ``teacher_scale`` (2) times as wide, trained first (Hinton et al. 2015).
* ``ban``: born-again network: the ``plain`` model of the same seed is the teacher of a fresh copy
  (Furlanello et al. 2018); its wall time includes the teacher's.
* ``pskd``, ``cskd``, ``tfkd``, ``ema``, ``byot``, ``dlb``: single-run self-distillation (see :mod:`sdkit.self_kd`).
* ``ls`` (label smoothing at teacher-free KD's target) and ``mixup`` (:mod:`sdkit.regularizers`): the baselines
  that tell whether a gain needs a teacher at all.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .data import Data
from .evaluate import evaluate
from .methods import Distill, Method
from .models import build_model
from .regularizers import LabelSmoothing, Mixup, TeacherFreeKD
from .self_kd import BYOT, CSKD, DLB, PSKD, EMATeacher
from .train import train
from .utils import check_seeds

__all__ = ["METHODS", "METHOD_CLASSES", "SUMMARY_METRICS", "make_method", "compare"]

#: What ``python -m sdkit compare`` summarises over seeds (mean and sample std) for each method.
SUMMARY_METRICS = ("test_accuracy", "test_nll", "test_ece", "seconds")

#: The one registry of method names (as the CLI and :func:`compare` spell them) and their classes.
#: ``kd`` needs a teacher.
METHOD_CLASSES: dict[str, type[Method]] = {
    "plain": Method,
    "kd": Distill,
    "pskd": PSKD,
    "cskd": CSKD,
    "tfkd": TeacherFreeKD,
    "ema": EMATeacher,
    "byot": BYOT,
    "dlb": DLB,
    "ls": LabelSmoothing,
    "mixup": Mixup,
}


def make_method(name: str, args: Mapping[str, Any] | None = None, **extra: Any) -> Method:
    """Build the method registered as ``name`` in :data:`METHOD_CLASSES` with hyperparameters ``args`` (and ``extra``,
    e.g. ``teacher=`` for ``kd``); a hyperparameter the class does not take is an error naming the valid ones.

    >>> make_method("pskd", {"alpha_T": 0.5}).alpha_T
    0.5
    >>> make_method("pskd", {"T": 2.0})
    Traceback (most recent call last):
    ...
    ValueError: method 'pskd' has no hyperparameter 'T'; it takes ['alpha_T']
    """
    if name not in METHOD_CLASSES:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHOD_CLASSES)}")
    cls = METHOD_CLASSES[name]
    kwargs = {**(args or {}), **extra}
    valid = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"method {name!r} has no hyperparameter {key!r}; it takes {valid}")
    return cls(**kwargs)


#: The method names :func:`compare` accepts, in the order it reports them (see the module docstring): those of
#: the registry :data:`METHOD_CLASSES`, plus ``ban`` (``kd`` from a same-size teacher).
METHODS = ("plain", "kd", "ban", *(name for name in METHOD_CLASSES if name not in ("plain", "kd")))


def compare(
    data: Data,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    method_args: Mapping[str, Mapping[str, Any]] | None = None,
    model: str = "resnet8",
    width: float = 1.0,
    teacher_scale: float = 2.0,
    epochs: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """Train every method in ``methods`` for every seed; return one row per (method, seed) with test metrics.

    ``method_args`` sets hyperparameters by method name, e.g. ``{"pskd": {"alpha_T": 0.5}, "kd": {"T": 2.0}}``
    (``ban`` takes ``kd``'s); a method without an entry gets its defaults. ``model`` must be a ResNet when ``byot``
    is among the methods (its auxiliary heads hang off ResNet stages).

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> rows = compare(data, methods=("plain", "pskd"), seeds=(0,), model="mlp", epochs=2, device="cpu", log=None)
    >>> [(row["method"], row["seed"], row["test_accuracy"] > 0.8) for row in rows]  # one row per method and seed
    [('plain', 0, True), ('pskd', 0, True)]
    >>> rows = compare(data, methods=("pskd",), seeds=(0,), method_args={"pskd": {"alpha_T": 0.5}}, model="mlp",
    ...                epochs=2, device="cpu", log=None)
    >>> sorted(rows[0])
    ['method', 'seconds', 'seed', 'test_accuracy', 'test_ece', 'test_nll']
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    if not methods:
        raise ValueError("methods must name at least one method, e.g. methods=('plain', 'pskd')")
    seeds = check_seeds(seeds)
    method_args = dict(method_args or {})
    stray = [name for name in method_args if name not in methods]
    if stray:
        raise ValueError(f"method_args names {stray}, which are not among the compared methods {list(methods)}")
    if "byot" in methods and not model.lower().startswith("resnet"):
        raise ValueError(f"method 'byot' needs a ResNet model (e.g. model='resnet8'), got model={model!r}")

    def make(seed: int, w: float = width, aux: bool = False) -> nn.Module:
        return build_model(model, data.input_shape, data.num_classes, width=w, seed=seed, aux_heads=aux)

    def fit(net: nn.Module, seed: int, desc: str, **kwargs: Any) -> float:
        start = time.perf_counter()
        train(net, data, epochs=epochs, seed=seed, device=device, progress=progress, desc=desc, **kwargs,
              **train_kwargs)  # fmt: skip
        return time.perf_counter() - start

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        plain_model, plain_seconds = None, 0.0
        for method in methods:
            if method in ("plain", "ban") and plain_model is None:
                plain_model = make(seed)
                plain_seconds = fit(
                    plain_model, seed, f"plain s{seed}", method=make_method("plain", method_args.get("plain"))
                )
            if method == "plain":
                net, seconds = plain_model, plain_seconds
            elif method == "ban":
                net = make(seed + 1000)
                teach = make_method("kd", method_args.get("ban"), teacher=plain_model)
                seconds = plain_seconds + fit(net, seed, f"ban s{seed}", method=teach)
            elif method == "kd":
                teacher = make(seed + 2000, width * teacher_scale)
                seconds = fit(teacher, seed, f"kd-teacher s{seed}")
                net = make(seed)
                teach = make_method("kd", method_args.get("kd"), teacher=teacher)
                seconds += fit(net, seed, f"kd s{seed}", method=teach)
            else:
                net = make(seed, aux=method == "byot")
                seconds = fit(net, seed, f"{method} s{seed}", method=make_method(method, method_args.get(method)))
            metrics = evaluate(net, data.test)
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "test_accuracy": metrics["accuracy"],
                    "test_nll": metrics["nll"],
                    "test_ece": metrics["ece"],
                    "seconds": seconds,
                }
            )
            if log:
                log(f"{method:>6} seed {seed}: test acc {metrics['accuracy']:.4f}  NLL {metrics['nll']:.4f}  "
                    f"ECE {metrics['ece']:.4f}  {seconds:.1f} s")  # fmt: skip
    return rows
