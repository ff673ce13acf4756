"""Command line: ``python -m sdkit run`` trains a teacher and born-again generations and prints a table."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .compare import METHODS, SUMMARY_METRICS, compare
from .datasets import DATASETS, load_dataset
from .evaluate import Table
from .methods import born_again
from .models import MODELS, build_model, count_parameters, pick_device
from .train import TrainingDiverged
from .utils import check_seeds, write_result


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
    cmp.add_argument("--seeds", type=parse_seeds, default=(0, 1, 2), help="comma-separated seeds (default 0,1,2)")
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


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2`` as ``(0, 1, 2)``: the argparse type of every sdkit command line that takes seeds."""
    try:
        return tuple(check_seeds([int(s) for s in text.split(",") if s.strip()]))  # the library's one seed check
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes distinct integers separated by commas, e.g. 0,1,2; got {text!r}"
        ) from None


def _table(rows: list[dict]) -> Table:
    head = ["model", "params", "val acc", "test acc", "test NLL", "test ECE", "seconds"]
    keys = ["val_accuracy", "test_accuracy", "test_nll", "test_ece"]
    return Table(head, [[r["name"], f"{r['params']:,}", *(f"{r[k]:.4f}" for k in keys), f"{r['seconds']:.1f}"]
                        for r in rows])  # fmt: skip


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
        write_result(args.out, {"config": config, "generations": rows}, seconds=total, device=device)
        print(f"wrote {args.out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    device = pick_device(args.device)
    data = load_dataset(
        args.dataset, args.data_root, download=args.download, train_size=args.train_size,
        val_fraction=args.val_fraction,
    )  # fmt: skip
    rows = compare(
        data, methods, list(args.seeds), method_args=_method_args(args.method_arg), model=args.model,
        width=args.width, epochs=args.epochs, batch_size=args.batch_size, device=device,
    )  # fmt: skip
    from .book.stats import summarize  # mean and sample std over seeds (0 for one seed: JSON holds no NaN)

    summary = summarize(rows, "method", SUMMARY_METRICS, count="n_seeds", single=0.0)

    def plus_minus(entry: dict, key: str, digits: int) -> str:
        return f"{entry[key + '_mean']:.{digits}f} ± {entry[key + '_std']:.{digits}f}"

    keys = ("test_accuracy", "test_nll", "test_ece")
    rows_shown = [[r["method"], *(plus_minus(r, k, 4) for k in keys), plus_minus(r, "seconds", 1)] for r in summary]
    print("\n" + str(Table(["method", "test acc", "test NLL", "test ECE", "seconds"], rows_shown)))
    total = time.perf_counter() - started
    print(f"\n{args.dataset}, {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
          f"{len(args.seeds)} seeds, {args.epochs} epochs, device={device}, total {total:.0f} s")  # fmt: skip
    if args.out:
        config = {k: v for k, v in vars(args).items() if k != "command"}
        write_result(args.out, {"config": config, "rows": rows, "summary": summary}, seconds=total, device=device)
        print(f"wrote {args.out}")
    return 0


def _init_distributed(device_arg: str) -> int:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); return this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if pick_device(device_arg).type == "cuda" else "gloo"
        from .distributed import init_process_group

        init_process_group(backend)  # survives torchrun --max-restarts
    return dist.get_rank()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("missing command; try 'python -m sdkit run' (see --help)")
        for name in ("epochs", "batch_size"):
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


# ----------------------------------------------------------------------------- stopping on a signal


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
