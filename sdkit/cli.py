"""Command line: ``python -m sdkit run`` trains a teacher and born-again generations and prints a table."""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import io
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .compare import METHODS, compare
from .data import DATASETS, load_dataset
from .faults import TrainingDiverged, init_process_group, interrupted, sigterm_as_interrupt
from .models import MODELS, build_model, count_parameters
from .train import born_again
from .utils import atomic_write_json, machine_info, pick_device


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2 (argparse's own convention)
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sdkit", description="Self-distillation experiments on small image datasets.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="train a teacher and k born-again generations, print a table")
    run.add_argument("--dataset", default="digits", help=f"one of {sorted(DATASETS)} (default digits)")
    run.add_argument("--data-root", default=None, help="folder with the dataset files (default $SDKIT_DATA)")
    run.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    run.add_argument("--model", default="cnn", help=f"one of {list(MODELS)} or resnetN (default cnn)")
    run.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    run.add_argument("--generations", type=int, default=2, help="born-again generations after the teacher")
    run.add_argument("--epochs", type=int, default=15)
    run.add_argument("--batch-size", type=int, default=128)
    run.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.1 SGD, 3e-3 AdamW)")
    run.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    run.add_argument("--T", type=float, default=4.0, help="distillation temperature (default 4)")
    run.add_argument("--alpha", type=float, default=0.9, help="weight of the soft term in [0, 1] (default 0.9)")
    run.add_argument("--train-size", type=int, default=None, help="use only this many training samples")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--compile", action="store_true", help="run the forward pass through torch.compile")
    run.add_argument("--out", default=None, help="write the results as JSON to this file (atomically)")
    run.add_argument("--checkpoint-dir", default=None, help="save a checkpoint per generation after every epoch")
    run.add_argument("--resume", action="store_true", help="continue from the checkpoints in --checkpoint-dir")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    cmp = sub.add_parser("compare", help="every self-distillation method under one budget, over several seeds")
    cmp.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {','.join(METHODS)}")
    cmp.add_argument("--dataset", default="digits", help=f"one of {sorted(DATASETS)} (default digits)")
    cmp.add_argument("--data-root", default=None, help="folder with the dataset files (default $SDKIT_DATA)")
    cmp.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    cmp.add_argument("--model", default="resnet8", help="a ResNet (resnetN) when byot is compared (default resnet8)")
    cmp.add_argument("--width", type=float, default=1.0)
    cmp.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    cmp.add_argument("--epochs", type=int, default=10)
    cmp.add_argument("--batch-size", type=int, default=128)
    cmp.add_argument("--train-size", type=int, default=None, help="use only this many training samples")
    cmp.add_argument("--val-fraction", type=float, default=0.1, help="share of the training set held out")
    cmp.add_argument("--device", default="auto")
    cmp.add_argument("--out", default=None, help="write per-seed rows and the summary as JSON (atomically)")
    cmp.add_argument(
        "--method-arg", action="append", default=[], metavar="METHOD.NAME=VALUE",
        help="a method hyperparameter, e.g. pskd.alpha_T=0.5 or kd.T=2 (repeatable; ban takes kd's)",
    )  # fmt: skip
    return parser


def _method_args(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["pskd.alpha_T=0.5", "kd.T=2"]`` -> ``{"pskd": {"alpha_T": 0.5}, "kd": {"T": 2}}`` (Python literals, else
    strings)."""
    args: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise UsageError(f"--method-arg must look like METHOD.NAME=VALUE (e.g. pskd.alpha_T=0.5), got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        args.setdefault(method.strip(), {})[name.strip()] = value
    return args


def _table(rows: list[dict]) -> str:
    head = ["model", "params", "val acc", "test acc", "test NLL", "test ECE", "seconds"]
    body = [
        [
            r["name"],
            f"{r['params']:,}",
            f"{r['val_accuracy']:.4f}",
            f"{r['test_accuracy']:.4f}",
            f"{r['test_nll']:.4f}",
            f"{r['test_ece']:.4f}",
            f"{r['seconds']:.1f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*b) for b in body)])


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    device = pick_device(args.device)
    data = load_dataset(
        args.dataset, args.data_root, seed=args.seed, download=args.download, train_size=args.train_size
    )
    build_model(args.model, data.input_shape, data.num_classes, width=args.width)  # validate before training

    def make_model(seed: int):
        return build_model(args.model, data.input_shape, data.num_classes, width=args.width, seed=seed)

    gens = born_again(
        make_model,
        data,
        args.generations,
        T=args.T,
        alpha=args.alpha,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        device=device,
        compile=args.compile,
        progress=not args.no_progress,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
    )
    rows = []
    for g, gen in enumerate(gens):
        best = gen.history.records[gen.history.best_epoch]
        rows.append(
            {
                "name": f"{args.model} gen {g}" + (" (teacher)" if g == 0 else ""),
                "generation": g,
                "params": count_parameters(gen.model),
                "val_accuracy": best["val_accuracy"],
                "test_accuracy": gen.metrics["accuracy"],
                "test_nll": gen.metrics["nll"],
                "test_ece": gen.metrics["ece"],
                "seconds": gen.history.seconds,
                "history": gen.history.records,
            }
        )
    print(_table(rows))
    total = time.perf_counter() - started
    print(f"\n{args.dataset}, {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
          f"T={args.T}, alpha={args.alpha}, device={device}, total {total:.1f} s")  # fmt: skip
    if args.out:
        config = {k: v for k, v in vars(args).items() if k not in ("command", "no_progress", "resume")}
        _write_result(args.out, {"config": config, "generations": rows}, total, device)
    return 0


def _write_result(path: str, result: dict, total_seconds: float, device) -> None:
    """Stamp a result with its wall time, date and machine, and write it atomically."""
    result |= {
        "total_seconds": total_seconds,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
    }
    atomic_write_json(path, result)
    print(f"wrote {path}")


def _compare(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    device = pick_device(args.device)
    data = load_dataset(
        args.dataset, args.data_root, download=args.download, train_size=args.train_size,
        val_fraction=args.val_fraction,
    )  # fmt: skip
    rows = compare(
        data, methods, list(range(args.seeds)), method_args=_method_args(args.method_arg), model=args.model,
        width=args.width, epochs=args.epochs, batch_size=args.batch_size, device=device,
    )  # fmt: skip
    from .book.compare import summarize  # the book's summary table (mean and std over seeds)

    summary = summarize(rows)
    print(f"\n{'method':<8}{'test acc':>18}{'test NLL':>18}{'test ECE':>18}{'seconds':>14}")
    for r in summary:
        cells = [f"{r[k + '_mean']:.4f} ± {r[k + '_std']:.4f}" for k in ("test_accuracy", "test_nll", "test_ece")]
        print(
            f"{r['method']:<8}"
            + "".join(f"{c:>18}" for c in cells)
            + f"{r['seconds_mean']:>9.1f} ± {r['seconds_std']:.1f}"
        )
    total = time.perf_counter() - started
    print(f"\n{args.dataset}, {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
          f"{args.seeds} seeds, {args.epochs} epochs, device={device}, total {total:.0f} s")  # fmt: skip
    if args.out:
        result = {
            "command": "python -m sdkit compare " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["compare"] else []),
            "config": {k: v for k, v in vars(args).items() if k != "command"},
            "rows": rows,
            "summary": summary,
        }
        _write_result(args.out, result, total, device)
    return 0


def _init_distributed(device_arg: str) -> int:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); return this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if pick_device(device_arg).type == "cuda" else "gloo"
        init_process_group(backend)  # survives torchrun --max-restarts (see sdkit.faults)
    return dist.get_rank()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("missing command; try 'python -m sdkit run' (see --help)")
        for name in ("epochs", "batch_size", "seeds"):
            if getattr(args, name, 1) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
        if args.command == "compare":
            return _compare(args)
        if args.generations < 0:
            raise UsageError(f"--generations must be >= 0, got {args.generations}")
        rank = _init_distributed(args.device)
        with sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: temporary files go, finished checkpoints stay
            if rank > 0:  # only rank 0 prints and writes
                args.out, args.no_progress = None, True
                with contextlib.redirect_stdout(io.StringIO()):
                    return _run(args)
            return _run(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as Terminated: one line on how to resume, no traceback
        return interrupted(stop, argv)
    except TrainingDiverged as err:
        print(f"sdkit: error: {err}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"sdkit: error: {err}", file=sys.stderr)
        return 2
