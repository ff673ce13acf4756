"""Training batches: the device-resident :class:`BatchLoader` for tensors, and an adapter for a
``torch.utils.data.DataLoader``.

Both yield :class:`Batch` ``(x, y, index)``, where ``index`` is each sample's position in the training set (the
per-sample methods, PS-KD and CS-KD, key their state on it), and both answer the questions a method may ask of its
training data: ``num_samples``, ``labels`` (every sample's label) and ``fetch(index)`` (samples by position, as
training would see them).

:class:`BatchLoader` keeps a whole split on the training device, shuffles with a seeded permutation each epoch and
augments whole batches at once (random crop with padding, horizontal flip). There is no per-sample Python code and
no worker process: on small images that is where most of a ``DataLoader`` loop's time goes. A dataset too large for
the device goes through :class:`DataLoaderAdapter` instead, which keeps the user's sampler, workers and transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader

from ._checks import check_positive_int
from .data import Augment, Split

__all__ = ["Batch", "BatchLoader", "DataLoaderAdapter", "augment_batch"]


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
    if augment.crop_padding:
        p = augment.crop_padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if augment.flip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


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
        self.x = split.x.to(self.device)
        if channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
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
        order = order.to(self.device)
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


class _Indexed(torch.utils.data.Dataset):
    """A map-style dataset whose items carry their index: ``(dataset[i], i)``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.dataset[i], i


class _CollateWithIndex:
    """The user's collate function on the items, the indices as one tensor (a class, so workers can pickle it)."""

    def __init__(self, collate: Callable[[list], Any]) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[Any, int]]) -> tuple[Any, torch.Tensor]:
        return self.collate([item for item, _ in items]), torch.tensor([i for _, i in items])


class DataLoaderAdapter:
    """Train from a ``torch.utils.data.DataLoader`` of ``(x, y)`` batches over a map-style dataset.

    It iterates a copy of ``loader`` with the same batch sampler (so shuffling, batch size and ``drop_last`` are
    the user's), workers and collate function, whose items also carry their index, and yields :class:`Batch`
    ``(x, y, index)`` on ``device``. Augmentation is the dataset's own (its transforms). A shuffling sampler
    without its own generator draws from torch's global generator, which :func:`sdkit.train` seeds and
    checkpoints, so runs are reproducible and resume exactly (with ``num_workers=0``).

    ``labels`` comes from the dataset's ``targets`` (torchvision's ImageFolder, MNIST, CIFAR), a
    ``TensorDataset``'s second tensor, or else one pass over the dataset, done only when a method asks for it.

    >>> from torch.utils.data import TensorDataset
    >>> dataset = TensorDataset(torch.zeros(5, 1, 8, 8), torch.tensor([0, 1, 0, 1, 2]))
    >>> adapter = DataLoaderAdapter(DataLoader(dataset, batch_size=2), device="cpu")
    >>> [batch.index.tolist() for batch in adapter], len(adapter), adapter.num_samples
    ([[0, 1], [2, 3], [4]], 3, 5)
    >>> adapter.labels, adapter.num_classes, adapter.fetch(torch.tensor([4, 0])).shape
    (tensor([0, 1, 0, 1, 2]), 3, torch.Size([2, 1, 8, 8]))
    """

    def __init__(self, loader: DataLoader, *, device: torch.device | str = "cpu", channels_last: bool = False) -> None:
        if not isinstance(loader, DataLoader):
            raise TypeError(f"loader must be a torch.utils.data.DataLoader, got {type(loader).__name__}")
        if isinstance(loader.dataset, torch.utils.data.IterableDataset) or loader.batch_sampler is None:
            raise ValueError(
                "the DataLoader must batch a map-style dataset (with __getitem__ and __len__, and batch_size set): "
                "per-sample methods and validation need each sample's index"
            )
        self.dataset, self.device, self.channels_last = loader.dataset, torch.device(device), channels_last
        self.loader = DataLoader(
            _Indexed(loader.dataset),
            batch_sampler=loader.batch_sampler,
            num_workers=loader.num_workers,
            collate_fn=_CollateWithIndex(loader.collate_fn),
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            generator=loader.generator,
            prefetch_factor=loader.prefetch_factor if loader.num_workers > 0 else None,
            persistent_workers=loader.persistent_workers,
        )
        self._labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def __iter__(self) -> Iterator[Batch]:
        for (x, y, *_), index in self.loader:
            yield Batch(self._to_device(x), y.to(self.device, non_blocking=True), index.to(self.device))

    def state(self) -> dict[str, torch.Tensor]:
        return {}  # the sampler draws from the global generator, which checkpoints store

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        pass

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            if hasattr(self.dataset, "targets"):
                labels = torch.as_tensor(self.dataset.targets)
            elif isinstance(self.dataset, torch.utils.data.TensorDataset):
                labels = self.dataset.tensors[1]
            else:
                labels = torch.as_tensor([int(self.dataset[i][1]) for i in range(len(self.dataset))])
            self._labels = labels.long().to(self.device)
        return self._labels

    @property
    def num_classes(self) -> int:
        """``len(dataset.classes)`` when the dataset names its classes, else the largest label + 1."""
        classes = getattr(self.dataset, "classes", None)
        return len(classes) if classes is not None else int(self.labels.max()) + 1

    def fetch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The samples at ``index`` through the dataset's own transforms (``generator`` is not used: transforms
        draw from torch's global generator)."""
        x = torch.stack([torch.as_tensor(self.dataset[i][0]) for i in index.tolist()])
        return x.to(self.device)
