"""When does self-distillation help? The regime grid of chapter 06, measured.

Each *cell* of the grid is one training regime: a training-set size, a label-noise rate and kind, augmentation on
or off, and a model width. In every cell each method trains the same architecture from the same seeds for the same
number of optimizer steps, long enough for plain training to fit its training labels (about 100% training
accuracy), and keeps its **final** weights (no early stopping: the regime where published self-distillation gains
were reported). Measured per run: accuracy on the training labels it was given, on the clean training labels, and
on the clean test set, the train-test gap, test NLL and ECE, and wall time.

Methods: ``plain`` (cross-entropy), the baselines ``ls`` (label smoothing at teacher-free KD's target) and
``mixup``, the single-run self-distillation methods ``tfkd``, ``pskd``, ``cskd``, ``dlb``, and born-again networks
with the converged plain model of the same seed as teacher (``ban``) or its early-stopped weights (best validation
accuracy on the noisy validation labels, ``ban-es``). ``plain-es`` is that early-stopped teacher itself: the
baseline that tells whether ``ban-es`` gains anything beyond early stopping.

Every cell is written to its own JSON file (atomically), so separate processes can fill the grid in parallel:

    python -m sdkit.book.regimes --budget full --cells n500 n1000 --out book/results/regimes
    python -m sdkit.book.regimes --budget full --out book/results/regimes      # every cell not yet measured

The measured grid is read, judged and drawn by :mod:`sdkit.book.regime_reports`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..cli import parse_seeds
from ..data import Data, Split
from ..datasets import load_dataset
from ..evaluate import evaluate
from ..methods import Method
from ..models import build_model
from ..regularizers import LabelSmoothing, Mixup, TeacherFreeKD
from ..self_kd import CSKD, DLB, PSKD
from ..train import History, train
from ..utils import atomic_write_json, check_seeds, stamped

__all__ = ["CELLS", "BUDGETS", "METHODS", "AXES", "noisy_labels", "CONFUSIONS", "run_cell", "count_runs", "main"]

#: Class-dependent noise: a label flips to a look-alike class (Fashion-MNIST's confusions: tops, then shoes).
CONFUSIONS = {
    0: 6,
    6: 2,
    2: 4,
    4: 0,
    5: 7,
    7: 9,
    9: 5,
}  # T-shirt->Shirt->Pullover->Coat->T-shirt; Sandal->Sneaker->Boot

#: The grid. ``n``: training images; ``noise``: fraction of training (and validation) labels replaced;
#: ``kind``: "symmetric" (a uniformly random other class) or "class" (the look-alike of :data:`CONFUSIONS`);
#: ``augment``: random crop and flip; ``width``: the MLP's width multiplier (2 = twice the hidden units).
CELLS: dict[str, dict[str, Any]] = {
    "n500": dict(n=500), "n1000": dict(n=1000), "n2000": dict(n=2000), "n5000": dict(n=5000),
    "n1000-aug": dict(n=1000, augment=True), "n1000-wide": dict(n=1000, width=2.0),
    "n2000-sym20": dict(n=2000, noise=0.2), "n2000-sym40": dict(n=2000, noise=0.4),
    "n2000-sym60": dict(n=2000, noise=0.6), "n2000-class40": dict(n=2000, noise=0.4, kind="class"),
}  # fmt: skip
CELL_DEFAULTS = dict(noise=0.0, kind="symmetric", augment=False, width=1.0)

#: The methods, in report order; "plain" is the baseline of every verdict.
METHODS = ("plain", "ls", "mixup", "tfkd", "pskd", "cskd", "dlb", "ban", "ban-es", "plain-es")
SINGLE_RUN: dict[str, Callable[[], Method]] = {
    "ls": LabelSmoothing, "mixup": Mixup, "tfkd": TeacherFreeKD, "pskd": PSKD, "cskd": CSKD, "dlb": DLB,
}  # fmt: skip

#: quick: what CI runs in the chapter (the shipped sample, few steps, 2 seeds); full: the committed grid.
#: ``live*``: the cells chapter 06 runs live in that mode, with which seeds, methods and where. Full mode: one
#: cell, three seeds, the methods the chapter's headlines name, on the GPU: 1,000 small steps a run cost about as
#: much on a GPU as on a CPU, so the live grid is what fits the chapter's three minutes (sdkit.book.cost).
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": dict(dataset="fashion-mnist-sample", model="mlp", steps=60, seeds=(0, 1), lr=0.05, val_fraction=0.05,
                  cells=("n500", "n500-sym40"), live=("n500", "n500-sym40"), live_seeds=(0, 1), live_device="cpu",
                  live_methods=METHODS, test_size=1000),
    "full": dict(dataset="fashion-mnist", model="mlp", steps=1000, seeds=(0, 1, 2, 3, 4), lr=0.05, val_fraction=0.02,
                 cells=tuple(CELLS), live=("n2000-sym40",), live_seeds=(0, 1, 2), live_device="auto",
                 live_methods=("plain", "pskd", "dlb", "ban", "ban-es", "plain-es"),
                 test_size=None),
}  # fmt: skip
CELLS["n500-sym40"] = dict(n=500, noise=0.4)  # the quick budget's noisy cell


def noisy_labels(y: torch.Tensor, rate: float, kind: str, num_classes: int, seed: int) -> torch.Tensor:
    """A copy of ``y`` with a fraction ``rate`` of the labels replaced (a seeded choice of which ones).

    ``kind="symmetric"``: each chosen label becomes a uniformly random *other* class. ``kind="class"``: each chosen
    label of a class in :data:`CONFUSIONS` becomes its look-alike (labels of other classes stay clean, so the
    overall rate is ``rate`` times the share of those classes).

    >>> y = torch.arange(10).repeat(100)
    >>> noisy = noisy_labels(y, 0.4, "symmetric", 10, seed=0)
    >>> round(float((noisy != y).float().mean()), 6)  # exactly 40% changed, never to the same class
    0.4
    >>> flipped = noisy_labels(y, 0.5, "class", 10, seed=0)
    >>> sorted(set(zip(y[flipped != y].tolist(), flipped[flipped != y].tolist())))[:3]
    [(0, 6), (2, 4), (4, 0)]
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must lie in [0, 1), got rate={rate!r}")
    if kind not in ("symmetric", "class"):
        raise ValueError(f"kind must be 'symmetric' or 'class', got kind={kind!r}")
    g = torch.Generator().manual_seed(seed)
    out = y.clone()
    if kind == "symmetric":
        chosen = torch.randperm(len(y), generator=g)[: round(rate * len(y))]
        shift = torch.randint(1, num_classes, (len(chosen),), generator=g)
        out[chosen] = (y[chosen] + shift) % num_classes
        return out
    for source, target in CONFUSIONS.items():
        members = torch.nonzero(y == source).flatten()
        chosen = members[torch.randperm(len(members), generator=g)[: round(rate * len(members))]]
        out[chosen] = target
    return out


def _cell_data(cell: dict[str, Any], budget: dict[str, Any], seed: int) -> tuple[Data, torch.Tensor]:
    """The cell's data for one seed (the training subset depends on the seed) and the clean training labels."""
    kwargs = {"test_size": budget["test_size"]} if budget["test_size"] else {}
    data = load_dataset(budget["dataset"], train_size=cell["n"], val_fraction=budget["val_fraction"], seed=seed,
                        **kwargs)  # fmt: skip
    clean = data.train.y.clone()
    if cell["noise"] > 0:
        c = data.num_classes
        data.train = Split(data.train.x, noisy_labels(data.train.y, cell["noise"], cell["kind"], c, 1000 + seed))
        data.val = Split(data.val.x, noisy_labels(data.val.y, cell["noise"], cell["kind"], c, 2000 + seed))
    return data, clean


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return evaluate(model, Split(x, y))["accuracy"]


def _run_seed(name: str, cell: dict[str, Any], budget: dict[str, Any], seed: int, methods: Sequence[str],
              device: str, log: Callable[[str], None] | None) -> list[dict[str, Any]]:  # fmt: skip
    data, clean = _cell_data(cell, budget, seed)
    steps_per_epoch = max(1, len(data.train) // 128)
    epochs = math.ceil(budget["steps"] / steps_per_epoch)
    kwargs = dict(epochs=epochs, lr=budget["lr"], select="last", augment=cell["augment"], device=device,
                  progress=False, seed=seed)  # fmt: skip

    def make(model_seed: int) -> nn.Module:
        return build_model(budget["model"], data.input_shape, data.num_classes, width=cell["width"], seed=model_seed)

    rows, plain, early = [], None, {}

    def keep_best(epoch: int, history: History) -> None:  # the early-stopped weights of the plain run
        acc = history.records[-1]["val_accuracy"]
        if acc > early.get("accuracy", -1.0):
            early.update(accuracy=acc, epoch=epoch, state=copy.deepcopy(plain.state_dict()))

    for method in methods:
        start = time.perf_counter()
        if method == "plain" or (method in ("ban", "ban-es", "plain-es") and plain is None):
            plain = make(seed)
            train(plain, data, on_epoch_end=keep_best, **kwargs)
            plain_seconds = time.perf_counter() - start
            if method != "plain":
                start = time.perf_counter()
        if method == "plain":
            net, seconds = plain, plain_seconds
        elif method == "plain-es":
            net, seconds = make(seed), plain_seconds
            net.load_state_dict(early["state"])
        elif method in ("ban", "ban-es"):
            teacher = plain
            if method == "ban-es":
                teacher = make(seed)
                teacher.load_state_dict(early["state"])
            net = make(seed + 1000)
            train(net, data, teacher=teacher, T=4.0, alpha=0.9, **kwargs)
            seconds = plain_seconds + time.perf_counter() - start
        else:
            net = make(seed)
            train(net, data, method=SINGLE_RUN[method](), **kwargs)
            seconds = time.perf_counter() - start
        test = evaluate(net, data.test)
        row = {
            "method": method, "seed": seed, "epochs": epochs,
            "train_accuracy": _accuracy(net, data.train.x, data.train.y),
            "train_clean_accuracy": _accuracy(net, data.train.x, clean),
            "test_accuracy": test["accuracy"], "test_nll": test["nll"], "test_ece": test["ece"], "seconds": seconds,
        }  # fmt: skip
        row["gap"] = row["train_accuracy"] - row["test_accuracy"]
        if method in ("ban-es", "plain-es"):
            row["teacher_epoch"] = early["epoch"]
        rows.append(row)
        if log:
            # one line per trained model (a progress bar counts them), at most 88 characters
            log(f"{name} {method:>8} seed {seed}: train {row['train_accuracy']:.3f} test {row['test_accuracy']:.4f} "
                f"NLL {row['test_nll']:.3f} ECE {row['test_ece']:.3f} ({seconds:.1f} s)")  # fmt: skip
    return rows


def run_cell(name: str, budget: str = "quick", *, methods: Sequence[str] = METHODS,
             seeds: Sequence[int] | None = None,
             device: str = "cpu", out: str | Path | None = None, merge: bool = False, command: str = "",
             log: Callable[[str], None] | None = print) -> dict[str, Any]:  # fmt: skip
    """Train every method in ``methods`` on cell ``name`` of :data:`CELLS` with each of ``seeds`` (the budget's
    by default), calling ``log`` with one line per trained model (:func:`count_runs` lines); return (and
    with ``out``, write to ``out/{name}.json``) the cell, budget, rows, machine, date and wall time. With
    ``merge=True`` an existing file of the same cell and budget keeps its rows of the other methods (a
    later pass adds methods to a measured cell; its command and wall time are appended).

    >>> result = run_cell("n500", "quick", methods=("plain", "ls"), seeds=[0, 1], log=None)
    >>> sorted({row["method"] for row in result["rows"]}), len(result["rows"])
    (['ls', 'plain'], 4)
    >>> 0.5 < result["rows"][0]["train_accuracy"] <= 1.0
    True
    """
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose from {sorted(CELLS)}")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {sorted(BUDGETS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    spec, cfg = {**CELL_DEFAULTS, **CELLS[name]}, BUDGETS[budget]
    seeds = check_seeds(cfg["seeds"] if seeds is None else seeds)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        rows += _run_seed(name, spec, cfg, seed, methods, device, log)
    config = {k: v for k, v in cfg.items() if not k.startswith("live") and k != "cells"} | {"seeds": seeds}
    result = {"cell": name, "spec": spec, "budget": budget, "config": config, "methods": list(methods),
              "seeds": seeds, "rows": rows}  # fmt: skip
    result = stamped(result, seconds=time.perf_counter() - start, device=device, command=command)
    path = Path(out) / f"{name}.json" if out is not None else None
    if merge and path is not None and path.exists():
        old = json.loads(path.read_text())
        if (old["budget"], old["spec"], old["seeds"]) != (budget, spec, seeds):
            raise ValueError(f"{path} holds budget {old['budget']!r}, cell {old['spec']}, seeds {old['seeds']}; "
                             f"this pass has {budget!r}, {spec}, seeds {seeds}: they must match to merge")  # fmt: skip
        kept = [r for r in old["rows"] if r["method"] not in methods]
        result["rows"] = kept + rows
        result["methods"] = [m for m in old["methods"] if m not in methods] + list(methods)
        result["passes"] = old.get("passes", [{k: old[k] for k in ("command", "date", "wall_seconds", "methods")}])
        result["passes"].append({k: result[k] for k in ("command", "date", "wall_seconds")} | {"methods": methods})
        result["wall_seconds"] = sum(p["wall_seconds"] for p in result["passes"])
    if path is not None:
        atomic_write_json(path, result)
    return result


def count_runs(cells: Sequence[str], budget: str = "quick", *, methods: Sequence[str] = METHODS,
               seeds: Sequence[int] | None = None) -> int:  # fmt: skip
    """How many lines :func:`run_cell` logs for each of ``cells`` together: one per method and seed.

    >>> count_runs(["n500", "n500-sym40"], "quick")  # 2 cells x 2 seeds x 10 methods
    40
    """
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {sorted(BUDGETS)}")
    seeds = check_seeds(BUDGETS[budget]["seeds"] if seeds is None else seeds)
    return len(cells) * len(seeds) * len(methods)


#: The two axes of the regime map: clean data of growing size, and symmetric label noise at 2,000 images.
AXES: dict[str, list[tuple[str, float]]] = {
    "size": [("n500", 500), ("n1000", 1000), ("n2000", 2000), ("n5000", 5000)],
    "noise": [("n2000", 0.0), ("n2000-sym20", 0.2), ("n2000-sym40", 0.4), ("n2000-sym60", 0.6)],
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdkit.book.regimes", description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--cells", nargs="*", help=f"cells to run (default: the budget's, skipping done ones); "
                        f"any of {sorted(CELLS)}")  # fmt: skip
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="comma-separated seeds, e.g. 0,1,2 "
                        "(default: the budget's)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default="book/results/regimes", help="folder for the cell files")
    parser.add_argument("--merge", action="store_true", help="add these methods' rows to existing cell files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    done = lambda c: (Path(args.out) / f"{c}.json").exists() and not args.merge  # noqa: E731
    cells = args.cells or [c for c in BUDGETS[args.budget]["cells"] if not done(c)]
    command = "python -m sdkit.book.regimes " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in cells:
        result = run_cell(name, args.budget, methods=args.methods, seeds=args.seeds, out=args.out, merge=args.merge,
                          command=command)  # fmt: skip
        print(f"cell {name}: {result['wall_seconds']:.0f} s -> {Path(args.out) / (name + '.json')}", flush=True)


if __name__ == "__main__":
    main()
