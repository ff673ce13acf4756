"""Train from a ``torch.utils.data.DataLoader``: :class:`DataLoaderAdapter`.

For data too large for the device, or a torchvision dataset with its own transforms: the adapter keeps the user's
sampler, workers and collate function, and yields the same :class:`sdkit.data.Batch` ``(x, y, index)`` as the
tensor path's :class:`sdkit.data.BatchLoader`, answering the same questions a method may ask of its training data
(``num_samples``, ``labels``, ``fetch(index)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from .data import Batch

__all__ = ["DataLoaderAdapter"]


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


def check_train_settings(settings: dict[str, Any], config: Any, val: Any) -> None:
    """What ``sdkit.train`` refuses with a DataLoader: ``batch_size`` and ``augment`` (the DataLoader's batch
    sampler and transforms decide them), and ``select="best_val"`` without ``val=`` validation batches."""
    for name in ("batch_size", "augment"):
        # a config's own value differs from the field's default (a class attribute of the dataclass)
        if name in settings or (config is not None and getattr(config, name) != getattr(type(config), name)):
            raise ValueError(f"{name} would be ignored with a DataLoader; set it on the DataLoader instead")
    select = settings.get("select", config.select if config is not None else "best_val")
    if val is None and select == "best_val":
        raise ValueError("select='best_val' needs validation data: pass val=DataLoader(...) or select='last'")
