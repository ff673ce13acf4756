"""Look at temperature and soft labels: the distributions at several temperatures, and figures of them.

A logit vector ``z`` with ``C`` classes becomes a distribution at temperature ``T``:

    q_i(T) = exp(z_i / T) / sum_j exp(z_j / T),        H(q(T)) = -sum_i q_i(T) log q_i(T)  (nats).

As ``T -> 0`` the distribution tends to the one-hot vector of the argmax (``H -> 0`` when the largest logit is
unique); as ``T -> inf`` it tends to the uniform distribution (``H -> log C``). In between, ``H`` never decreases
with ``T``: ``dH/dT = Var_q(z) / T^3 >= 0`` (the variance of the logits under ``q(T)``).

Pure functions (:func:`temperature_frames`, :func:`most_ambiguous`, :func:`mean_soft_labels`) compute; the
``plot_*`` functions draw with matplotlib and return the figure. The same distributions behind sliders are in
:mod:`sdkit.book.explorer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from ..losses import check_logits, check_positive_int, check_probs, check_temperature, entropy, soften

__all__ = [
    "TemperatureFrames",
    "temperature_frames",
    "most_ambiguous",
    "mean_soft_labels",
    "plot_temperature_grid",
    "plot_soft_vs_hard",
    "plot_mean_soft_labels",
    "plot_temperature_effects",
]

DEFAULT_TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0)


class TemperatureFrames(NamedTuple):
    """One logit vector softened at several temperatures: ``probs[k] = softmax(logits / temperatures[k])``.

    >>> frames = temperature_frames(torch.tensor([2.0, 0.0]), [1.0, 2.0])
    >>> frames.temperatures, frames.probs.shape
    ((1.0, 2.0), torch.Size([2, 2]))
    >>> frames.entropy  # nats: the higher T, the flatter the distribution
    tensor([0.3653, 0.5822])
    """

    temperatures: tuple[float, ...]
    probs: torch.Tensor  # (K, C)
    entropy: torch.Tensor  # (K,), nats


def _check_temperatures(temperatures: Sequence[float] | torch.Tensor, name: str = "temperatures") -> tuple[float, ...]:
    if isinstance(temperatures, (int, float)):
        raise ValueError(f"{name} must be a sequence of temperatures (e.g. [0.5, 1, 2]), got {name}={temperatures!r}")
    values = [float(t) for t in (temperatures.tolist() if isinstance(temperatures, torch.Tensor) else temperatures)]
    if not values:
        raise ValueError(f"{name} is empty; pass at least one temperature > 0")
    return tuple(check_temperature(t, f"{name}[{k}]") for k, t in enumerate(values))


def _check_vector(logits: torch.Tensor, name: str = "logits") -> torch.Tensor:
    check_logits(logits, name)
    if logits.dim() != 1:
        raise ValueError(f"{name} must be one logit vector of shape (classes,), got shape {tuple(logits.shape)}")
    return logits


def temperature_frames(logits: torch.Tensor, temperatures: Sequence[float] | torch.Tensor) -> TemperatureFrames:
    """Soften one logit vector at each temperature: ``probs[k] = sdkit.soften(logits, T_k)`` and its entropy.

    >>> f = temperature_frames(torch.tensor([2.0, 0.0]), [1.0, 2.0])
    >>> f.probs
    tensor([[0.8808, 0.1192],
            [0.7311, 0.2689]])
    """
    _check_vector(logits)
    temps = _check_temperatures(temperatures)
    probs = torch.stack([soften(logits, T) for T in temps])
    return TemperatureFrames(temps, probs, entropy(probs))


def most_ambiguous(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` rows of ``probs`` with the highest entropy ``H(q) = -sum_i q_i log q_i``, most
    ambiguous first (ties: lower index).

    >>> probs = torch.tensor([[0.98, 0.01, 0.01], [0.4, 0.3, 0.3], [0.5, 0.5, 0.0]])
    >>> most_ambiguous(probs, 2)  # H = 0.112, 1.089, 0.693 nats
    tensor([1, 2])
    """
    check_probs(probs, "probs")
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (samples, classes), got shape {tuple(probs.shape)}")
    check_positive_int(k, "k")
    if k > probs.shape[0]:
        raise ValueError(f"k={k} is more than the {probs.shape[0]} rows of probs")
    h = entropy(probs.double())
    order = sorted(range(len(h)), key=lambda i: (-float(h[i]), i))
    return torch.tensor(order[:k], dtype=torch.long)


def mean_soft_labels(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``M[c] = mean of probs[i] over the samples i whose true class is c`` (a row of NaN for an absent class).

    Row ``c`` shows where a teacher puts its probability, on average, for images of class ``c``: the off-diagonal
    entries are the "dark knowledge" about which classes look alike.

    >>> probs = torch.tensor([[0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.1, 0.7, 0.2]])
    >>> mean_soft_labels(probs, torch.tensor([0, 0, 1]))
    tensor([[0.7000, 0.3000, 0.0000],
            [0.1000, 0.7000, 0.2000],
            [   nan,    nan,    nan]], dtype=torch.float64)
    """
    check_probs(probs, "probs")
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (samples, classes), got shape {tuple(probs.shape)}")
    if labels.dim() != 1 or labels.shape[0] != probs.shape[0] or labels.is_floating_point():
        raise ValueError(
            f"labels must be a 1-D integer tensor with one label per row of probs ({probs.shape[0]}), got dtype "
            f"{labels.dtype} and shape {tuple(labels.shape)}"
        )
    C = probs.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C):
        raise ValueError(f"labels must lie in [0, {C}), got values from {int(labels.min())} to {int(labels.max())}")
    sums = torch.zeros(C, C, dtype=torch.float64).index_add_(0, labels.cpu(), probs.double().cpu())
    counts = torch.bincount(labels.cpu(), minlength=C).double()[:, None]
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


# ------------------------------------------------------------------------------------------------------- drawing


def _names(class_names: Sequence[str] | None, C: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(C)]
    names = [str(n) for n in class_names]
    if len(names) != C:
        raise ValueError(f"class_names has {len(names)} names but there are {C} classes")
    return names


def _show_image(ax: Any, image: torch.Tensor) -> None:
    """Draw an image given as (C, H, W) or (H, W) with values in [0, 1] (denormalise first)."""
    img = image.detach().float().cpu()
    if img.dim() == 3 and img.shape[0] == 1:
        img = img[0]
    if img.dim() == 3:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    elif img.dim() == 2:
        ax.imshow(img.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        raise ValueError(f"image must have shape (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Any, probs: torch.Tensor, names: list[str], hard: int | None = None, title: str = "") -> None:
    x = range(len(names))
    p = probs.detach().double().cpu().tolist()
    ax.bar(x, p, color="tab:blue", label="soft label")
    if hard is not None:
        one_hot = [1.0 if i == hard else 0.0 for i in x]
        ax.bar(x, one_hot, fill=False, edgecolor="tab:orange", linewidth=1.5, label="hard label")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(list(x))
    rotate = max(len(n) for n in names) > 2
    ax.set_xticklabels(names, rotation=90 if rotate else 0, fontsize=7 if rotate else 8)
    if title:
        ax.set_title(title, fontsize=9)


def plot_temperature_grid(
    logits: torch.Tensor,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    *,
    class_names: Sequence[str] | None = None,
    image: torch.Tensor | None = None,
    title: str | None = None,
):
    """One bar chart per temperature of ``softmax(logits / T)`` with its entropy (and the image first, if given).

    Returns the matplotlib figure (created with pyplot, so ``plt.show()`` displays it).

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> fig = plot_temperature_grid(torch.tensor([2.0, 0.0, -1.0]), [1.0, 4.0], class_names=["cat", "dog", "fox"])
    >>> type(fig).__name__, [ax.get_title().splitlines() for ax in fig.axes]  # one chart per temperature
    ('Figure', [['T = 1', 'H = 0.524 nats'], ['T = 4', 'H = 1.048 nats']])
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    frames = temperature_frames(logits, temperatures)
    names = _names(class_names, logits.shape[-1])
    n = len(frames.temperatures) + (image is not None)
    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 3.2), dpi=90, squeeze=False)
    axes = list(axes[0])
    if image is not None:
        _show_image(axes.pop(0), image)
    for ax, T, q, h in zip(axes, frames.temperatures, frames.probs, frames.entropy, strict=True):
        _bars(ax, q, names, title=f"T = {T:g}\nH = {float(h):.3f} nats")
    axes[0].set_ylabel("probability")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_soft_vs_hard(
    images: torch.Tensor,
    probs: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
):
    """For each image (``(N, C, H, W)`` in [0, 1]): the image above a bar chart of its soft label (the teacher's
    probabilities, filled) and its hard label (the one-hot annotation, outlined).

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    >>> fig = plot_soft_vs_hard(images, probs, torch.tensor([0, 2]), class_names=["cat", "dog", "fox"])
    >>> type(fig).__name__, len(fig.axes), fig.axes[0].get_title().splitlines()  # 2 images above 2 bar charts
    ('Figure', 4, ['label: cat', 'H = 0.80 nats'])
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    check_probs(probs, "probs")
    if images.shape[0] != probs.shape[0] or labels.shape[0] != probs.shape[0]:
        raise ValueError(
            f"images ({images.shape[0]}), probs ({probs.shape[0]}) and labels ({labels.shape[0]}) must have the same "
            "number of rows"
        )
    names = _names(class_names, probs.shape[-1])
    n = probs.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(2.1 * n, 4.6), dpi=90, squeeze=False, height_ratios=[1, 1.3])
    for k in range(n):
        y = int(labels[k])
        _show_image(axes[0][k], images[k])
        h = float(entropy(probs[k].double()))
        axes[0][k].set_title(f"label: {names[y]}\nH = {h:.2f} nats", fontsize=8)
        _bars(axes[1][k], probs[k], names, hard=y)
    axes[1][0].set_ylabel("probability")
    handles, labels = axes[1][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper left", frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def plot_mean_soft_labels(matrix: torch.Tensor, *, class_names: Sequence[str] | None = None, title: str | None = None):
    """Heat map of :func:`mean_soft_labels` on a log colour scale (so the small, wrong-class entries show).

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    >>> matrix = mean_soft_labels(probs, torch.tensor([0, 1, 2]))
    >>> fig = plot_mean_soft_labels(matrix, class_names=["cat", "dog", "fox"])
    >>> type(fig).__name__, len(fig.axes), fig.axes[0].get_title()  # the heat map and its colour bar
    ('Figure', 2, 'Mean soft label per true class')
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (classes, classes), got shape {tuple(matrix.shape)}")
    names = _names(class_names, matrix.shape[0])
    m = matrix.double().clamp(min=1e-5).numpy()
    fig, ax = plt.subplots(figsize=(6.2, 5.2), dpi=90)
    im = ax.imshow(m, norm=LogNorm(vmin=1e-4, vmax=1.0), cmap="viridis")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("class the teacher gives probability to")
    ax.set_ylabel("true class of the image")
    fig.colorbar(im, ax=ax, label="mean probability (log scale)")
    ax.set_title(title or "Mean soft label per true class")
    fig.tight_layout()
    return fig


def plot_temperature_effects(
    temperatures: Sequence[float],
    hidden_mass: Sequence[float],
    grad_norms: Sequence[float],
    scaled_grad_norms: Sequence[float],
):
    """Two panels against the temperature: left, the mean probability outside the argmax (how much of a soft
    label the student gets to see); right, on log-log axes, the gradient norm of the soft cross-entropy with
    respect to the student's logits, without and with the ``T^2`` factor. Returns the figure.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> fig = plot_temperature_effects([1, 4], [0.2, 0.6], [0.7, 0.08], [0.7, 1.2])
    >>> [ax.get_title() for ax in fig.axes]
    ['Dark knowledge made visible (test set)', 'Gradient scale (one image)']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    from .plots import plot_lines

    temps = _check_temperatures(temperatures)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    plot_lines(temps, {"_mass": hidden_mass}, left, styles=["o-"], log="x", xlabel="temperature $T$",
               ylabel="mean probability outside the argmax",
               title="Dark knowledge made visible (test set)")  # fmt: skip
    plot_lines(temps, {"soft cross-entropy": grad_norms, "$T^2$ x soft cross-entropy": scaled_grad_norms}, right,
               styles=["o-", "s--"], log="xy", xlabel="temperature $T$", ylabel="gradient norm w.r.t. student logits",
               title="Gradient scale (one image)")  # fmt: skip
    fig.tight_layout()
    return fig
