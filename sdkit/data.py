"""Data in memory and its batches: :class:`Split` and :class:`Data` (tensors), :class:`BatchLoader`.

A :class:`Data` holds ``train``, ``val`` and ``test`` splits as plain tensors (images ``(N, C, H, W)`` float32,
labels int64); :func:`sdkit.datasets.load_dataset` builds one from a dataset's files.

Training batches are :class:`Batch` ``(x, y, index)``, where ``index`` is each sample's position in the training
set (the per-sample methods, PS-KD and CS-KD, key their state on it). :class:`BatchLoader` keeps a whole split on
the training device, shuffles with a seeded permutation each epoch and augments whole batches at once (random crop
with padding, horizontal flip). There is no per-sample Python code and no worker process: on small images that is
where most of a ``DataLoader`` loop's time goes. A dataset too large for the device goes through
:class:`sdkit.dataloader.DataLoaderAdapter` instead, which keeps the user's sampler, workers and transforms. Both
answer the questions a method may ask of its training data: ``num_samples``, ``labels`` (every sample's label) and
``fetch(index)`` (samples by position, as training would see them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .losses import check_positive_int

__all__ = ["Augment", "Split", "Data", "Batch", "BatchLoader", "augment_batch", "to_device"]


@dataclass(frozen=True)
class Augment:
    """Batch augmentation: random crop after zero-padding by ``crop_padding`` pixels, and random horizontal flip."""

    crop_padding: int = 0
    flip: bool = False


@dataclass
class Split:
    """One split as tensors: ``x`` images ``(N, C, H, W)``, ``y`` labels ``(N,)``.

    >>> split = Split(torch.zeros(4, 1, 8, 8), torch.tensor([3, 1, 4, 1]))
    >>> len(split), split.x.shape
    (4, torch.Size([4, 1, 8, 8]))
    >>> split.to("cpu").y  # the same split on another device (here the CPU again)
    tensor([3, 1, 4, 1])
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Data:
    """Train/validation/test splits plus what a model needs to know about them.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> data.name, data.input_shape, data.num_classes, data.class_names[:3]
    ('digits', (1, 8, 8), 10, ('0', '1', '2'))
    >>> pixels = data.denormalize(data.train.x)  # undo the standardisation: pixel values back in [0, 1]
    >>> round(float(pixels.min()), 4) + 0.0, round(float(pixels.max()), 4)
    (0.0, 1.0)
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    augment: Augment = field(default_factory=Augment)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def check(self) -> None:
        """Raise ``ValueError`` naming the split if one is empty, has labels outside ``[0, num_classes)`` or
        non-finite images (``sdkit.train`` calls it once, so that the loop itself needs no checks)."""
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if len(split) == 0:
                raise ValueError(f"data.{split_name} is empty; every split needs at least one sample")
            low, high = int(split.y.min()), int(split.y.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(f"data.{split_name}.y must lie in [0, {self.num_classes}), got {low}..{high}")
            if not bool(torch.isfinite(split.x).all()):
                raise ValueError(f"data.{split_name}.x contains NaN or infinite values")

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation (for plotting): pixel values back in [0, 1]."""
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return x * std + mean


#: The former name of :class:`Data`; it shadowed ``torch.utils.data.Dataset`` in code importing both.
Dataset = Data


class Batch(NamedTuple):
    """A training batch: images, labels, and each sample's index in its split (per-sample methods need it).

    >>> batch = Batch(torch.zeros(2, 1, 8, 8), torch.tensor([7, 3]), torch.tensor([10, 42]))
    >>> batch.y, batch.index
    (tensor([7, 3]), tensor([10, 42]))
    >>> x, y, index = batch  # a NamedTuple: it unpacks like a tuple
    >>> x.shape
    torch.Size([2, 1, 8, 8])
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


def augment_batch(x: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (after zero-padding) and flip a whole batch at once, on the batch's own device.

    Random numbers come from ``generator`` (a CPU generator, so results are the same on every device).

    >>> x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    >>> augment_batch(x, Augment(flip=True), torch.Generator().manual_seed(0))  # this draw flips
    tensor([[[[ 4.,  3.,  2.,  1.],
              [ 8.,  7.,  6.,  5.],
              [12., 11., 10.,  9.],
              [16., 15., 14., 13.]]]])
    >>> augment_batch(x, Augment(crop_padding=1, flip=True), torch.Generator().manual_seed(0))  # crop, then flip
    tensor([[[[ 7.,  6.,  5.,  0.],
              [11., 10.,  9.,  0.],
              [15., 14., 13.,  0.],
              [ 0.,  0.,  0.,  0.]]]])
    """
    n, c, h, w = x.shape
    p = augment.crop_padding
    shifts = [torch.randint(0, 2 * p + 1, (n,), generator=generator) for _ in range(2)] if p else []
    flips = [torch.rand(n, generator=generator) < 0.5] if augment.flip else []
    draws = to_device(shifts + flips, x.device)
    if augment.crop_padding:
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy, dx = draws[0], draws[1]
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if augment.flip:
        x = torch.where(draws[-1][:, None, None, None], x.flip(-1), x)
    return x


def to_device(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """CPU tensors on ``device`` without a host sync: on CUDA one asynchronous copy of them all from pinned
    memory (a plain ``.to("cuda")`` of pageable memory waits for its copy, and the host with it, every batch),
    each back in its shape and dtype; on the CPU the tensors themselves.

    >>> to_device([torch.tensor([1, 2]), torch.tensor([True])], torch.device("cpu"))
    [tensor([1, 2]), tensor([True])]
    """
    if device.type == "cpu" or not tensors:
        return list(tensors)
    if device.type != "cuda":
        return [t.to(device) for t in tensors]
    sizes = [t.numel() for t in tensors]
    flat = torch.cat([t.reshape(-1) for t in tensors]).pin_memory().to(device, non_blocking=True)
    parts = [part.view(t.shape) for part, t in zip(flat.split(sizes), tensors, strict=True)]
    return [part if part.dtype == t.dtype else part.to(t.dtype) for part, t in zip(parts, tensors, strict=True)]


class BatchLoader:
    """Iterate over a split in batches, with the whole split resident on ``device``.

    Each pass is one epoch: a fresh seeded permutation (when ``shuffle``), every sample exactly once, the last
    batch smaller unless ``drop_last``. Yields :class:`Batch` ``(x, y, index)``.

    With ``world_size > 1`` (data-parallel training) every rank draws the same permutation and takes the
    positions ``rank, rank + world_size, ...`` of it, cut to an equal length on every rank, so that the ranks see
    disjoint shards of each epoch. Augmentation draws from a second generator seeded per rank.

    >>> split = Split(torch.zeros(10, 1, 8, 8), torch.arange(10))
    >>> loader = BatchLoader(split, batch_size=4, seed=0)
    >>> len(loader), [batch.index.tolist() for batch in loader]  # one epoch: every sample once, shuffled
    (3, [[4, 1, 7, 5], [3, 9, 0, 8], [6, 2]])
    >>> [batch.y.tolist() for batch in BatchLoader(split, batch_size=4, shuffle=False, drop_last=True)]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: Augment | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_positive_int(batch_size, "batch_size")
        check_positive_int(world_size, "world_size")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got rank={rank!r}")
        if len(split) == 0:
            raise ValueError("the split is empty: a BatchLoader needs at least one sample")
        self.device = torch.device(device)
        # in one copy: .to(device) then .contiguous(channels_last) would hold the split twice on the device at once
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.x = split.x.to(self.device, memory_format=layout)
        self.y = split.y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment = augment if augment is not None and (augment.crop_padding or augment.flip) else None
        self.rank, self.world_size = rank, world_size
        if len(split) < world_size:
            raise ValueError(f"the split has {len(split)} samples, fewer than world_size={world_size} ranks")
        self.generator = torch.Generator().manual_seed(seed)  # the permutation: shared by all ranks
        self.augment_generator = torch.Generator().manual_seed(seed + 7919 * (rank + 1))

    def _shard_size(self) -> int:
        return len(self.y) // self.world_size if self.world_size > 1 else len(self.y)

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            order = order[self.rank :: self.world_size][: self._shard_size()]
        (order,) = to_device([order], self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.x[index]
            if self.augment is not None:
                x = augment_batch(x, self.augment, self.augment_generator)
            yield Batch(x, self.y[index], index)

    def state(self) -> dict[str, torch.Tensor]:
        """The random generators' states (for checkpoints)."""
        return {"order": self.generator.get_state(), "augment": self.augment_generator.get_state()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state`; a checkpoint of a multi-process run holds every rank's augmentation state
        (``augment_by_rank``) and each rank takes its own. A rank the checkpoint has no state for (a run resumed on
        more processes) keeps its freshly seeded generator."""
        self.generator.set_state(state["order"])
        by_rank = state.get("augment_by_rank")
        if by_rank is None:
            self.augment_generator.set_state(state["augment"])
        elif self.rank < len(by_rank):
            self.augment_generator.set_state(by_rank[self.rank].clone())

    @property
    def num_samples(self) -> int:
        """Samples in the whole split (indices lie in ``[0, num_samples)``)."""
        return len(self.y)

    @property
    def labels(self) -> torch.Tensor:
        """Every sample's label, on the loader's device."""
        return self.y

    def fetch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The samples at ``index`` (contiguous, on the loader's device), augmented like a training batch with
        random numbers from ``generator`` (CS-KD passes its own, so its draws do not shift the loader's)."""
        x = self.x[index].contiguous()
        if self.augment is not None:
            x = augment_batch(x, self.augment, generator if generator is not None else self.augment_generator)
        return x
