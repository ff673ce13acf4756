"""Training on several processes with ``torchrun``: the process group, each rank's place in it, and averaging.

:func:`sdkit.train` needs nothing from the caller but an initialised process group: it wraps the model in
``DistributedDataParallel``, gives each rank its shard of every epoch and averages the loss and the BatchNorm
statistics with :func:`average_across_ranks`. ``python -m sdkit run`` under ``torchrun`` starts the group with
:func:`init_process_group`, which also survives ``torchrun --max-restarts``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["init_process_group", "rank_and_world_size", "data_parallel", "average_across_ranks"]


def data_parallel(model: nn.Module, device: torch.device) -> tuple[nn.Module, int, int, torch.device]:
    """Move ``model`` to this rank's device and wrap it in ``DistributedDataParallel``; return the wrapped model,
    the rank, the world size and the device (``cuda`` becomes ``cuda:$LOCAL_RANK``). DDP averages the gradients
    across ranks during ``backward``; methods keep working on the plain module."""
    from torch.nn.parallel import DistributedDataParallel

    rank, world_size = rank_and_world_size()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    model.to(device)
    return (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None),
        rank,
        world_size,
        device,
    )


def average_across_ranks(model: nn.Module, loss_sum: torch.Tensor, world_size: int) -> None:
    torch.distributed.all_reduce(loss_sum)
    loss_sum /= world_size
    # each rank's BatchNorm statistics saw only its shard: average them so every rank holds the same model
    for buffer in model.buffers():
        if buffer.is_floating_point():
            torch.distributed.all_reduce(buffer)
            buffer /= world_size


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group (e.g. under ``torchrun``), else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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
