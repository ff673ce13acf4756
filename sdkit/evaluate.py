"""Accuracy, negative log-likelihood and calibration, and the one Table that shows results (text or HTML).

Expected calibration error with ``M`` equal-width confidence bins ``B_m`` over ``n`` samples:

    ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|

where ``conf`` is the mean top-class probability in the bin and ``acc`` the fraction of correct predictions
(Guo et al. 2017, "On Calibration of Modern Neural Networks").
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .data import Split
from .losses import check_labels, check_positive_int, check_probs
from .models import channels_last_while, pick_device

__all__ = [
    "predict_logits", "predict", "accuracy", "expected_calibration_error", "reliability_bins", "evaluate",
    "evaluate_ensemble", "Table",
]  # fmt: skip


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, *, batch_size: int | None = None, device: str | torch.device = "auto"
) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for every row of ``x``, as float32 on the CPU.

    ``device="auto"`` runs on the model's own device. The model runs in eval mode (BatchNorm uses its running
    statistics, dropout is off) and is returned in the mode and memory format it came in; ``x`` goes through in
    batches of ``batch_size`` rows (default 256 on a CPU, where larger batches fall out of the caches, 1024 on a
    GPU). Like :func:`sdkit.train`, a convolutional model runs in channels_last memory format (the outputs are the
    same up to rounding).

    >>> import sdkit
    >>> model = sdkit.build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> predict_logits(model, torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    """
    device = pick_device(device, model=model)
    if batch_size is None:
        batch_size = 256 if device.type == "cpu" else 1024
    check_positive_int(batch_size, "batch_size")
    batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    return _logits(model, batches, device, x.dim() == 4)


def _logits(model: nn.Module, batches, device: torch.device, images: bool) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        with channels_last_while(model) if images else contextlib.nullcontext(False) as channels_last:
            out = []
            for batch in batches:
                batch = batch.to(device)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                out.append(model(batch).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def predict(
    model: nn.Module, data: Split | DataLoader, *, batch_size: int | None = None, device: str | torch.device = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)`` on the CPU for every sample of a :class:`sdkit.data.Split` or of a DataLoader of
    ``(x, y)`` batches (``batch_size`` is for a Split; a DataLoader keeps its own).

    >>> import sdkit
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> model = sdkit.build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> loader = DataLoader(TensorDataset(torch.zeros(5, 1, 8, 8), torch.arange(5)), batch_size=2)
    >>> [t.shape for t in predict(model, loader)]
    [torch.Size([5, 10]), torch.Size([5])]
    """
    if isinstance(data, Split):
        return predict_logits(model, data.x, batch_size=batch_size, device=device), data.y.cpu()
    if not isinstance(data, DataLoader):
        raise TypeError(f"data must be an sdkit Split (e.g. data.test) or a DataLoader, got {type(data).__name__}")
    device = pick_device(device, model=model)
    labels: list[torch.Tensor] = []

    def inputs():
        for x, y, *_ in data:
            labels.append(torch.as_tensor(y).cpu())
            yield x

    logits = _logits(model, inputs(), device, images=True)
    return logits, torch.cat(labels)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the target: ``(1/N) sum_n [argmax_i z_ni = y_n]``.

    >>> logits = torch.tensor([[2.0, 0.5, 0.1], [0.2, 1.5, 0.3], [0.1, 0.2, 3.0], [1.0, 0.9, 0.0]])
    >>> accuracy(logits, torch.tensor([0, 1, 2, 1]))
    0.75
    """
    check_labels(targets, logits.shape[-1], logits.shape[0])
    return float((logits.argmax(-1) == targets).float().mean())


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> dict[str, list[float]]:
    """Per-bin data for a reliability diagram (equal-width bins on the top-class confidence).

    Returns lists of length ``n_bins``: ``lower``/``upper`` bin edges, ``count``, ``confidence`` (mean top
    probability, NaN for an empty bin) and ``accuracy`` (NaN for an empty bin). Bin ``m`` holds the confidences in
    ``(m/M, (m+1)/M]``.

    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    >>> bins = reliability_bins(probs, torch.tensor([0, 0, 1]), n_bins=2)
    >>> bins["count"], round(bins["accuracy"][1], 4), round(bins["confidence"][1], 4)
    ([0.0, 3.0], 0.6667, 0.7667)
    """
    check_positive_int(n_bins, "n_bins")
    check_probs(probs, "probs")
    check_labels(targets, probs.shape[-1], probs.shape[0])
    confidence, predicted = probs.max(-1)
    correct = (predicted == targets).double()
    # bin m holds confidences in (m/M, (m+1)/M]; a confidence of exactly 0 cannot occur for a top-class probability
    bin_of = (confidence.double() * n_bins).ceil().long().clamp(1, n_bins) - 1
    count = torch.bincount(bin_of, minlength=n_bins).double()
    conf_sum = torch.bincount(bin_of, weights=confidence.double(), minlength=n_bins)
    acc_sum = torch.bincount(bin_of, weights=correct, minlength=n_bins)
    nan = torch.full_like(count, float("nan"))
    return {
        "lower": [m / n_bins for m in range(n_bins)],
        "upper": [(m + 1) / n_bins for m in range(n_bins)],
        "count": count.tolist(),
        "confidence": torch.where(count > 0, conf_sum / count.clamp(min=1), nan).tolist(),
        "accuracy": torch.where(count > 0, acc_sum / count.clamp(min=1), nan).tolist(),
    }


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width bins: ``sum_m |B_m|/n * |acc(B_m) - conf(B_m)|``.

    The three predictions below all fall in the bin ``(0.5, 1]``: mean confidence ``(0.9 + 0.6 + 0.8) / 3``,
    accuracy ``2 / 3``, so the ECE is ``|2/3 - 0.7667| = 0.1``.

    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    >>> round(expected_calibration_error(probs, torch.tensor([0, 0, 1]), n_bins=2), 4)
    0.1
    """
    bins = reliability_bins(probs, targets, n_bins)
    n = sum(bins["count"])
    rows = zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    return float(sum(count / n * abs(acc - conf) for count, acc, conf in rows if count > 0))


def evaluate(
    model: nn.Module,
    split: Split | DataLoader,
    *,
    n_bins: int = 15,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
) -> dict[str, float]:
    """Accuracy, mean negative log-likelihood (nats) and ECE of ``model`` on ``split`` (a :class:`Split` such as
    ``data.test``, or a DataLoader of ``(x, y)`` batches).

    ``nll = (1/N) sum_n -log softmax(z_n)_{y_n}``; accuracy and ECE as in :func:`accuracy` and
    :func:`expected_calibration_error` (on ``softmax(z)``).

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)  # untrained
    >>> sorted(evaluate(model, data.test))
    ['accuracy', 'ece', 'nll']
    """
    logits, targets = predict(model, split, batch_size=batch_size, device=device)
    return {
        "accuracy": accuracy(logits, targets),
        "nll": float(F.cross_entropy(logits, targets)),
        "ece": expected_calibration_error(logits.softmax(-1), targets, n_bins),
    }


def evaluate_ensemble(models: Sequence[nn.Module], split: Split, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, NLL and ECE of the average of the models' predicted probabilities (e.g. born-again generations).

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> models = [sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed) for seed in (0, 1)]
    >>> for seed, model in enumerate(models):
    ...     _ = sdkit.train(model, data, epochs=2, seed=seed, progress=False, device="cpu")
    >>> metrics = evaluate_ensemble(models, data.test)
    >>> sorted(metrics), metrics["accuracy"] > 0.8
    (['accuracy', 'ece', 'nll'], True)
    >>> evaluate_ensemble(models[:1], data.test)["accuracy"] == evaluate(models[0], data.test)["accuracy"]
    True
    """
    if not models:
        raise ValueError("models is empty; pass at least one model to evaluate_ensemble")
    probs = torch.stack([predict_logits(m, split.x).softmax(-1) for m in models]).mean(0)
    y = split.y.cpu()
    return {
        "accuracy": float((probs.argmax(-1) == y).float().mean()),
        "nll": float(-probs.gather(1, y[:, None]).clamp_min(1e-12).log().mean()),
        "ece": expected_calibration_error(probs, y, n_bins),
    }


class Table:
    """A small table: aligned plain text as ``str()`` (first column left, the others right), an HTML table in a
    notebook and in the built book (``_repr_html_``), and Markdown (``.markdown``).

    >>> table = Table(["method", "accuracy"], [["plain", "0.91"], ["pskd", "0.925"]])
    >>> print(table)
    method  accuracy
    ------  --------
    plain       0.91
    pskd       0.925
    >>> table.markdown.splitlines()[1]
    '|---|---|'
    >>> Table(["a", "b"], [["1"]])
    Traceback (most recent call last):
    ...
    ValueError: row 0 has 1 cells; every row needs 2 (one per header entry)
    """

    def __init__(self, header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        for i, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise ValueError(
                    f"row {i} has {len(row)} cells; every row needs {len(self.header)} (one per header entry)"
                )

    @property
    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __str__(self) -> str:
        cells = [self.header, *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*self.header), fmt.format(*("-" * w for w in widths))]
        return "\n".join(lines + [fmt.format(*row) for row in self.rows])

    __repr__ = __str__
