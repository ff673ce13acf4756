"""The budgets that chapters 02, 03 and 05 set in their own cells, kept here so that :mod:`sdkit.book.cost` can
count the work a chapter does from the same numbers the chapter runs with (one place to change a size).

The other chapters' budgets live with their experiments: :data:`sdkit.book.experiments.BUDGETS` and
:data:`sdkit.book.regimes.BUDGETS` (chapter 06), :data:`sdkit.book.trend_experiments.BUDGETS` (chapter 07).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONCEPTS", "ALGORITHM", "PYTORCH"]

#: Chapter 02: the digits teacher (a CNN), then a Fashion-MNIST teacher (the shipped sample in quick mode, all
#: 60,000 training images in full mode).
CONCEPTS: dict[str, dict[str, Any]] = {
    "quick": dict(digits_epochs=10, fashion_dataset="fashion-mnist-sample", fashion_model="mlp", fashion_epochs=5),
    "full": dict(digits_epochs=30, fashion_dataset="fashion-mnist", fashion_model="cnn", fashion_epochs=15),
}

#: Chapter 03: one teacher on the digits, then one student per temperature.
ALGORITHM: dict[str, dict[str, Any]] = {
    "quick": dict(model="mlp", epochs=15, temperatures=(1, 2, 4, 8)),
    "full": dict(model="cnn", epochs=40, temperatures=(1, 2, 4, 8, 16)),
}

#: Chapter 05: the seed's teacher and student on the digits, per seed, in plain PyTorch and then with sdkit.
PYTORCH: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=(0, 1, 2), epochs=10, batch_size=64),
    "full": dict(seeds=(0, 1, 2, 3, 4), epochs=40, batch_size=64),
}
