"""Run modes, atomic file writes, and result files stamped with the machine they were measured on.

One writer for every result file: :func:`write_result` (:func:`stamped`: command, date, machine, wall time;
written atomically).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import numbers
import os
import platform
import secrets
import shlex
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

__all__ = [
    "run_mode", "is_quick", "check_seeds", "atomic_write_json", "atomic_torch_save", "machine_info", "stamped",
    "write_result",
]  # fmt: skip

MODES = ("quick", "full")


def run_mode() -> str:
    """The book's budget, from ``$SDKIT_MODE``: ``quick`` (CPU-sized, used by CI) or ``full`` (GPU-sized).

    Unset means ``full`` when a CUDA GPU is present and ``quick`` otherwise.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SDKIT_MODE": "quick"}):
    ...     run_mode()
    'quick'
    >>> with mock.patch.dict(os.environ, {"SDKIT_MODE": " Full "}):  # case and surrounding spaces do not matter
    ...     run_mode()
    'full'
    """
    mode = os.environ.get("SDKIT_MODE", "").strip().lower()
    if not mode:
        return "full" if torch.cuda.is_available() else "quick"
    if mode not in MODES:
        raise ValueError(f"SDKIT_MODE must be one of {MODES}, got SDKIT_MODE={mode!r}")
    return mode


def is_quick() -> bool:
    """True when :func:`run_mode` is ``quick`` (the book's CPU-sized budget).

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"SDKIT_MODE": "quick"}):
    ...     is_quick()
    True
    >>> with mock.patch.dict(os.environ, {"SDKIT_MODE": "full"}):
    ...     is_quick()
    False
    """
    return run_mode() == "quick"


def check_seeds(seeds: Sequence[int], name: str = "seeds") -> list[int]:
    """``seeds`` as a list of distinct ints, or a ``ValueError`` naming ``name``, the value and the fix.

    ``seed`` is one int and ``seeds`` a sequence of them everywhere in sdkit and its book; a count of seeds is
    ``len(seeds)``. A bare int is refused rather than read as a count: ``seeds=3`` would otherwise mean both
    "seeds 0, 1, 2" and "the seed 3" depending on where it was passed.

    >>> check_seeds(range(3))
    [0, 1, 2]
    >>> check_seeds(3)
    Traceback (most recent call last):
    ...
    ValueError: seeds must be a sequence of distinct integer seeds, e.g. [0, 1, 2] or range(3); got seeds=3
    """
    fix = f"{name} must be a sequence of distinct integer seeds, e.g. [0, 1, 2] or range(3); got {name}={seeds!r}"
    if isinstance(seeds, (torch.Tensor, np.ndarray)) and seeds.ndim == 1:  # torch.arange(3), np.arange(3)
        seeds = seeds.tolist()
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(fix)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in seeds):
        raise ValueError(fix)
    out = [int(s) for s in seeds]
    if len(set(out)) != len(out):
        raise ValueError(fix)
    return out


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], what: str = "file") -> Path:
    """Write through ``write(f)`` to a temporary file in ``path``'s folder, fsync it, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a half-written file. On a failure (disk full,
    read-only folder, no permission, or an exception inside ``write``) the temporary file is removed, ``path`` is
    untouched, and an ``OSError`` names the path, the reason and the fix.

    >>> import tempfile
    >>> path = _atomic_write(Path(tempfile.mkdtemp()) / "a.txt", lambda f: f.write(b"hello"))
    >>> path.read_bytes()
    b'hello'
    """
    path = Path(path)
    existed = path.exists()
    # The name holds the process and thread ids and a random part, and O_EXCL creates it exclusively: two
    # processes (or threads) writing the same target never share a temporary file. It is named before it is
    # created, so a Ctrl-C or SIGTERM landing just after the creation still finds it to remove (with mkstemp, the
    # name reached this frame a few bytecodes after the file existed, and an interruption there left it behind).
    tmp = path.parent / f".{path.name}.{os.getpid()}-{threading.get_ident()}.{secrets.token_hex(8)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # created private (0o600); give it the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # it never got created, or the folder refuses even that: nothing more can be done
        # Ctrl-C or SIGTERM during torch.save: its zip writer's cleanup raises a RuntimeError that would hide the
        # interruption; the caller must still see the KeyboardInterrupt (and say how to resume)
        interrupted = err.__context__
        while interrupted is not None and not isinstance(interrupted, KeyboardInterrupt):
            interrupted = interrupted.__context__
        if interrupted is not None and not isinstance(err, KeyboardInterrupt):
            raise interrupted from err
        cause = _os_error(err)
        if cause is None:
            raise
        previous = "the previous file is intact" if existed else "no file was created"
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        message = f"could not write {what} {path}: {reason[:1].lower()}{reason[1:]} ({previous})"
        fix = _FIXES.get(cause.errno)
        message = f"{message}; {fix}" if fix else message
        try:
            error = type(cause)(message)  # the same class (PermissionError, ...) so that except clauses still match
        except TypeError:  # an OSError subclass with another constructor
            error = OSError(message)
        error.errno = cause.errno  # callers can still test err.errno == errno.ENOSPC
        raise error from err
    return path


_FIXES = {
    code: fix
    for code, fix in [
        (errno.ENOSPC, "free some space or write to another folder"),
        (getattr(errno, "EDQUOT", None), "free some space (disk quota exceeded) or write to another folder"),
        (errno.EROFS, "the folder is on a read-only file system: write to another folder"),
        (errno.EACCES, "make the folder writable or write to another folder"),
        (errno.EPERM, "make the folder writable or write to another folder"),
    ]
    if code is not None  # EDQUOT is not defined everywhere
}


def _os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err``: itself, or the one a ``RuntimeError`` was raised from or during (torch's
    C++ writer may wrap a failed write). Any other exception is a bug in what was written, not a disk problem."""
    if isinstance(err, OSError):
        return err
    if isinstance(err, RuntimeError):
        inner = err.__cause__ or err.__context__
        if isinstance(inner, OSError):
            return inner
    return None


def atomic_write_json(path: str | os.PathLike, obj: Any, *, what: str = "JSON file") -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (a temporary file in the same folder, then a rename:
    a crash leaves the old file or the new one, never half of it). Returns the path.

    Two processes writing the same path leave one complete file from one of them. When the disk is full or the
    folder is read-only, the previous file stays as it was and the ``OSError`` says which path and why
    (``what`` names the file in that message).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = atomic_write_json(Path(folder) / "result.json", {"accuracy": 0.9})
    >>> json.loads(path.read_text())
    {'accuracy': 0.9}
    """
    text = json.dumps(obj, indent=2, allow_nan=True) + "\n"  # serialise first: a bad object leaves no trace
    return _atomic_write(path, lambda f: f.write(text.encode()), what)


def atomic_torch_save(path: str | os.PathLike, obj: Any, *, what: str = "file") -> Path:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write_json`). Returns the path.

    >>> import tempfile
    >>> path = atomic_torch_save(Path(tempfile.mkdtemp()) / "t.pt", torch.arange(3))
    >>> torch.load(path)
    tensor([0, 1, 2])
    """
    return _atomic_write(path, lambda f: torch.save(obj, f), what)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """A short description of where a result was measured: platform, CPU model, the kernels torch picked for it
    (``cpu_capability``: AVX2, AVX512, ...; results round differently across them) and count, torch threads, the
    1/5/15-minute load averages when it was called (a busy machine inflates wall times), versions, and the GPU.
    The ``gpu`` key is there only when ``device`` is a CUDA device.

    >>> import platform
    >>> info = machine_info()
    >>> sorted(info)[:4]
    ['cpu_capability', 'cpu_count', 'cpu_model', 'load_average']
    >>> sorted(info)[4:]
    ['platform', 'processor', 'python', 'torch', 'torch_threads']
    >>> info["torch"] == torch.__version__, info["python"] == platform.python_version()
    (True, True)
    """
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch runs: their rounding differs
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if device is not None and torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _command_line() -> str:
    program = Path(sys.argv[0])
    if program.name == "__main__.py":  # python -m package
        head = ["python", "-m", program.parent.name]
    else:
        head = ["python", sys.argv[0]] if program.suffix == ".py" else [program.name]
    return shlex.join([*head, *sys.argv[1:]])


def stamped(
    result: dict[str, Any],
    *,
    seconds: float | None = None,
    device: torch.device | str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """``result`` with the stamp every result file carries: the command that produced it (default: this process's
    command line), the date (UTC), the machine (:func:`machine_info`, with the GPU when ``device`` is CUDA) and,
    when given, its wall time ``wall_seconds``.

    >>> sorted(stamped({"accuracy": 0.9}, seconds=1.5, command="demo"))
    ['accuracy', 'command', 'date', 'machine', 'wall_seconds']
    """
    stamp: dict[str, Any] = {
        "command": command if command is not None else _command_line(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
    }
    if seconds is not None:
        stamp["wall_seconds"] = seconds
    return {**result, **stamp}


def write_result(path: str | os.PathLike, result: dict[str, Any], **stamp: Any) -> Path:
    """Write :func:`stamped` ``(result, **stamp)`` as JSON to ``path`` atomically; the one writer of result files.

    >>> import tempfile
    >>> path = write_result(Path(tempfile.mkdtemp()) / "r.json", {"accuracy": 0.9}, seconds=1.5, command="demo")
    >>> saved = json.loads(path.read_text())
    >>> saved["accuracy"], saved["wall_seconds"], saved["command"]
    (0.9, 1.5, 'demo')
    """
    return atomic_write_json(path, stamped(result, **stamp))
