"""Tabular data sets that scikit-learn bundles (no download), as sdkit Datasets.

Each row of ``F`` features becomes a tensor of shape ``(1, 1, F)``, so ``x`` has shape ``(N, 1, 1, F)`` and the
``mlp`` of :func:`sdkit.build_model` (which flattens its input) works unchanged. The split is stratified and
seeded: for each class separately, a random ``test_fraction`` of its rows goes to the test split and a random
``val_fraction`` to the validation split, the rest to training. Every feature is standardised with the training
split's statistics only,

    x' = (x - mean_train) / std_train      (per feature; std_train is the population standard deviation),

so nothing about the validation or test rows leaks into the inputs. Tabular data gets no augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import Augment, Data, Split

__all__ = ["TABULAR_DATASETS", "TabularDataset", "load_tabular", "stratified_split"]

#: The names :func:`load_tabular` accepts (scikit-learn's bundled data sets).
TABULAR_DATASETS = ("breast-cancer", "wine", "iris")


@dataclass
class TabularDataset(Data):
    """A :class:`sdkit.data.Data` of feature vectors, with the per-feature statistics used to standardise it.

    >>> wine = load_tabular("wine")
    >>> isinstance(wine, TabularDataset), wine.num_features, wine.feature_names[:2], wine.input_shape
    (True, 13, ('alcohol', 'malic_acid'), (1, 1, 13))
    >>> raw = wine.denormalize(wine.train.x)  # features back in their original units
    >>> round(float(raw[..., 0].mean()), 2), round(wine.feature_mean[0], 2)  # mean alcohol content
    (13.01, 13.01)
    """

    feature_names: tuple[str, ...] = ()
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()

    @property
    def num_features(self) -> int:
        return self.train.x.shape[-1]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the standardisation: features back in their original units."""
        mean = torch.tensor(self.feature_mean, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.feature_std, dtype=x.dtype, device=x.device)
        return x * std + mean


def _fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be a fraction strictly between 0 and 1, got {name}={value!r}")
    return float(value)


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)``: per class, ``round(test_fraction * n_c)`` rows to test and
    ``round(val_fraction * n_c)`` to validation, drawn with ``numpy.random.default_rng(seed)``; each sorted.

    >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    >>> train, val, test = stratified_split(labels, val_fraction=0.25, test_fraction=0.25, seed=0)
    >>> [np.bincount(labels[rows]).tolist() for rows in (train, val, test)]  # per class: half, quarter, quarter
    [[2, 4], [1, 2], [1, 2]]
    """
    val_fraction = _fraction(val_fraction, "val_fraction")
    test_fraction = _fraction(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 (rows must remain for training), got "
            f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(rows)))
        n_val = int(round(val_fraction * len(rows)))
        if len(rows) - n_test - n_val < 1:
            raise ValueError(f"class {c} has only {len(rows)} rows: too few to put one in each split")
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test : n_test + n_val])
        parts[0].append(rows[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test


def _load_bunch(name: str):
    from sklearn import datasets

    loader = {
        "breast-cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
    }
    return loader[name]()


def load_tabular(
    name: str = "breast-cancer", *, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> TabularDataset:
    """Load a bundled scikit-learn table (``breast-cancer``: 569 rows, 30 features, 2 classes; ``wine``: 178 rows,
    13 features, 3 classes; ``iris``: 150 rows, 4 features, 3 classes) as a standardised, stratified, seeded
    train/validation/test :class:`TabularDataset` with ``x`` of shape ``(N, 1, 1, F)``.

    ``seed`` chooses the split (the same seed always gives the same split).

    >>> iris = load_tabular("iris", seed=0)
    >>> len(iris.train), len(iris.val), len(iris.test), iris.input_shape, iris.num_classes
    (90, 30, 30, (1, 1, 4), 3)
    >>> [round(float(v), 6) + 0.0 for v in iris.train.x.mean(0).flatten()]  # standardised on the training rows
    [0.0, 0.0, 0.0, 0.0]
    """
    if name not in TABULAR_DATASETS:
        raise ValueError(f"unknown tabular dataset name={name!r}; choose one of {list(TABULAR_DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}")
    bunch = _load_bunch(name)
    features = np.asarray(bunch.data, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, val_idx, test_idx = stratified_split(labels, val_fraction, test_fraction, int(seed))
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays constant (zero) instead of dividing by zero

    def make(idx: np.ndarray) -> Split:
        x = ((features[idx] - mean) / std).astype(np.float32)[:, None, None, :]
        return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels[idx].copy()))

    return TabularDataset(
        name=name,
        train=make(train_idx),
        val=make(val_idx),
        test=make(test_idx),
        num_classes=int(labels.max()) + 1,
        class_names=tuple(str(c) for c in bunch.target_names),
        augment=Augment(),
        mean=(),
        std=(),
        feature_names=tuple(str(f) for f in bunch.feature_names),
        feature_mean=tuple(float(m) for m in mean),
        feature_std=tuple(float(s) for s in std),
    )
