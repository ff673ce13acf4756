"""Look at temperature and soft labels: static figures for the book, and an ipywidgets explorer for local readers.

A logit vector ``z`` with ``C`` classes becomes a distribution at temperature ``T``:

    q_i(T) = exp(z_i / T) / sum_j exp(z_j / T),        H(q(T)) = -sum_i q_i(T) log q_i(T)  (nats).

As ``T -> 0`` the distribution tends to the one-hot vector of the argmax (``H -> 0`` when the largest logit is
unique); as ``T -> inf`` it tends to the uniform distribution (``H -> log C``). In between, ``H`` never decreases
with ``T``: ``dH/dT = Var_q(z) / T^3 >= 0`` (the variance of the logits under ``q(T)``).

Pure functions (:func:`temperature_frames`, :func:`most_ambiguous`, :func:`mean_soft_labels`) compute; the
``plot_*`` functions draw with matplotlib and return the figure; :func:`temperature_explorer` wires the same
drawing to two sliders. It needs no running frontend: the picture is a PNG held by an ``ipywidgets.Image``, so
building it in a script, a test or a headless notebook run does not fail (there is simply nobody to move the
sliders).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from ._checks import check_logits, check_positive_int, check_probs, check_temperature
from .temperature import entropy, soften

__all__ = [
    "TemperatureFrames",
    "TemperatureExplorer",
    "temperature_frames",
    "most_ambiguous",
    "mean_soft_labels",
    "plot_temperature_grid",
    "plot_soft_vs_hard",
    "plot_mean_soft_labels",
    "temperature_explorer",
]

DEFAULT_TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0)


class TemperatureFrames(NamedTuple):
    """One logit vector softened at several temperatures: ``probs[k] = softmax(logits / temperatures[k])``."""

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
    """Indices of the ``k`` rows of ``probs`` with the highest entropy, most ambiguous first (ties: lower index)."""
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
    probabilities, filled) and its hard label (the one-hot annotation, outlined)."""
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
    """Heat map of :func:`mean_soft_labels` on a log colour scale (so the small, wrong-class entries show)."""
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


def _render_png(probs: torch.Tensor, T: float, h: float, names: list[str], image: torch.Tensor | None) -> bytes:
    # A bare Figure (not pyplot): it is never registered with a GUI or inline backend, so nothing leaks or
    # shows up twice, and rendering needs no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 if image is not None else 4.2, 3.0), dpi=80)
    FigureCanvasAgg(fig)
    if image is not None:
        ax_img, ax = fig.subplots(1, 2, width_ratios=[1, 2.2])
        _show_image(ax_img, image)
    else:
        ax = fig.subplots()
    _bars(ax, probs, names, title=f"T = {T:.3g}, H = {h:.3f} nats (max log C = {math.log(len(names)):.3f})")
    ax.set_ylabel("probability")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class TemperatureExplorer:
    """Two sliders (which sample, log-scaled ``T``), a text line and a picture of ``softmax(logits[i] / T)``.

    ``widget`` is the ipywidgets container; the object displays as that widget in Jupyter. ``state()`` returns
    what is currently shown, which is also how the tests drive it without a frontend.
    """

    def __init__(
        self,
        logits: torch.Tensor,
        *,
        images: torch.Tensor | None = None,
        class_names: Sequence[str] | None = None,
        T: float = 1.0,
        T_range: tuple[float, float] = (0.05, 100.0),
    ) -> None:
        import ipywidgets as widgets

        check_logits(logits, "logits")
        if logits.dim() == 1:
            logits = logits[None]
        if logits.dim() != 2:
            raise ValueError(f"logits must have shape (classes,) or (samples, classes), got {tuple(logits.shape)}")
        if images is not None and images.shape[0] != logits.shape[0]:
            raise ValueError(f"images has {images.shape[0]} rows but logits has {logits.shape[0]}; they must match")
        lo, hi = (check_temperature(t, "T_range") for t in T_range)
        if not lo < hi:
            raise ValueError(f"T_range must be (low, high) with low < high, got T_range={T_range!r}")
        T = check_temperature(T)
        if not lo <= T <= hi:
            raise ValueError(f"T={T!r} lies outside T_range={T_range!r}")
        self.logits, self.images = logits.detach().cpu(), images
        self.names = _names(class_names, logits.shape[-1])
        self.index_slider = widgets.IntSlider(
            value=0, min=0, max=logits.shape[0] - 1, description="sample", disabled=logits.shape[0] == 1
        )
        self.T_slider = widgets.FloatLogSlider(
            value=T, base=10, min=math.log10(lo), max=math.log10(hi), step=0.01, description="T", readout_format=".3g"
        )
        self.label = widgets.HTML()
        self.picture = widgets.Image(format="png")
        self.widget = widgets.VBox([widgets.HBox([self.index_slider, self.T_slider]), self.label, self.picture])
        self.index_slider.observe(self._update, names="value")
        self.T_slider.observe(self._update, names="value")
        self._update()

    def state(self) -> dict[str, Any]:
        """The sample index, temperature, softened distribution and its entropy currently shown."""
        i, T = int(self.index_slider.value), float(self.T_slider.value)
        frames = temperature_frames(self.logits[i], [T])
        return {"index": i, "T": T, "probs": frames.probs[0], "entropy": float(frames.entropy[0])}

    def _update(self, change: Any = None) -> None:
        s = self.state()
        self.label.value = (
            f"sample {s['index']}: T = {s['T']:.3g}, entropy = {s['entropy']:.3f} nats "
            f"(0 = one-hot, log C = {math.log(len(self.names)):.3f} = uniform)"
        )
        image = None if self.images is None else self.images[s["index"]]
        self.picture.value = _render_png(s["probs"], s["T"], s["entropy"], self.names, image)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)


def temperature_explorer(
    logits: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    T: float = 1.0,
    T_range: tuple[float, float] = (0.05, 100.0),
) -> TemperatureExplorer | None:
    """An interactive explorer of ``softmax(logits[i] / T)``: pick a sample (a row of ``logits``, shown with its
    image if ``images`` in [0, 1] are given) and slide ``T``. Returns None, with a warning, if ipywidgets is not
    installed; use :func:`plot_temperature_grid` for the static version."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        warnings.warn(
            "ipywidgets is not installed, so there is no interactive explorer; plot_temperature_grid() draws the same "
            "distributions as a static figure (pip install ipywidgets for the sliders)",
            stacklevel=2,
        )
        return None
    return TemperatureExplorer(logits, images=images, class_names=class_names, T=T, T_range=T_range)
