"""The temperature explorers: the softened distribution of one of several samples behind two sliders.

- :func:`static_temperature_explorer` precomputes every frame (samples x a grid of temperatures) and returns
  self-contained HTML: an SVG bar chart, two ``<input type="range">`` sliders and a few lines of inline JavaScript
  that redraw the bars. It needs no kernel, so it works on the published (static) book page.
- :func:`temperature_explorer` wires the drawing to two ipywidgets sliders with a continuous temperature. It needs
  a running kernel to update, but no frontend to be built: the picture is a PNG held by an ``ipywidgets.Image``,
  so building it in a script, a test or a headless notebook run does not fail (there is simply nobody to move the
  sliders).

Every frame is ``sdkit.soften(z, T)`` and its entropy (:func:`sdkit.book.explore.temperature_frames`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ..losses import check_logits, check_positive_int, check_temperature

# the drawing and checks the static figures use, so both show a distribution the same way
from .explore import _bars, _check_temperatures, _names, _show_image, temperature_frames

__all__ = [
    "TemperatureExplorer",
    "temperature_explorer",
    "temperature_grid",
    "explorer_data",
    "StaticTemperatureExplorer",
    "static_temperature_explorer",
]


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

    >>> explorer = TemperatureExplorer(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), T=2.0)
    >>> state = explorer.state()
    >>> state["index"], state["T"], state["probs"], round(state["entropy"], 4)
    (0, 2.0, tensor([0.7311, 0.2689]), 0.5822)
    >>> explorer.index_slider.value, explorer.T_slider.value = 1, 1.0  # what moving the sliders does
    >>> explorer.label.value
    'sample 1: T = 1, entropy = 0.582 nats (0 = one-hot, log C = 0.693 = uniform)'
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
    installed; use :func:`sdkit.book.explore.plot_temperature_grid` for the static version.

    >>> explorer = temperature_explorer(torch.tensor([[2.0, 0.0, -1.0]]), class_names=["cat", "dog", "fox"], T=2.0)
    >>> type(explorer).__name__, type(explorer.widget).__name__
    ('TemperatureExplorer', 'VBox')
    >>> bytes(explorer.picture.value[1:4])  # the bar chart, rendered as a PNG
    b'PNG'
    """
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        warnings.warn(
            "ipywidgets is not installed, so there is no interactive explorer; explore.plot_temperature_grid() draws "
            "the same distributions as a static figure (pip install ipywidgets for the sliders)",
            stacklevel=2,
        )
        return None
    return TemperatureExplorer(logits, images=images, class_names=class_names, T=T, T_range=T_range)


# -------------------------------------------------------------------------------- kernel-free (static) explorer


def temperature_grid(low: float = 0.1, high: float = 100.0, per_decade: int = 20) -> tuple[float, ...]:
    """Log-spaced temperatures ``10**(k / per_decade)`` from ``low`` to ``high``; ``T = 1`` is on the grid.

    >>> grid = temperature_grid(0.1, 10.0, per_decade=2)
    >>> [round(T, 3) for T in grid]
    [0.1, 0.316, 1.0, 3.162, 10.0]
    """
    lo, hi = check_temperature(low, "low"), check_temperature(high, "high")
    if not lo < hi:
        raise ValueError(f"low must be smaller than high, got low={low!r}, high={high!r}")
    check_positive_int(per_decade, "per_decade")
    k_lo, k_hi = math.ceil(math.log10(lo) * per_decade - 1e-9), math.floor(math.log10(hi) * per_decade + 1e-9)
    return tuple(10 ** (k / per_decade) for k in range(k_lo, k_hi + 1))


def explorer_data(
    logits: torch.Tensor, temperatures: Sequence[float] | torch.Tensor, *, decimals: int = 4
) -> dict[str, Any]:
    """Every frame of the static explorer as plain numbers (what the page's script draws).

    For sample ``i`` (a row of ``logits``) and temperature ``T_k``: ``probs[i][k] = sdkit.soften(logits[i], T_k)``
    and ``entropy[i][k] = sdkit.entropy(probs[i][k])`` in nats, rounded to ``decimals`` places (4 places keep a
    12-sample, 61-temperature, 10-class explorer near 60 KB).

    >>> d = explorer_data(torch.tensor([[2.0, 0.0]]), [1.0, 2.0])
    >>> d["probs"]
    [[[0.8808, 0.1192], [0.7311, 0.2689]]]
    >>> d["entropy"]
    [[0.3653, 0.5822]]
    """
    check_logits(logits, "logits")
    if logits.dim() == 1:
        logits = logits[None]
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (classes,) or (samples, classes), got {tuple(logits.shape)}")
    temps = _check_temperatures(temperatures)
    probs, ents = [], []
    for row in logits.detach().double().cpu():
        frames = temperature_frames(row, temps)
        probs.append([[round(float(p), decimals) for p in q] for q in frames.probs])
        ents.append([round(float(h), decimals) for h in frames.entropy])
    return {"temperatures": list(temps), "probs": probs, "entropy": ents}


def _png_data_uri(image: torch.Tensor) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = image.detach().float().cpu()
    if img.dim() == 3 and img.shape[0] == 1:
        img = img[0]
    h, w = img.shape[-2:]
    fig = Figure(figsize=(w / 10, h / 10), dpi=10)  # one figure pixel per image pixel
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    _show_image(ax, img)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PLOT = {"width": 440, "height": 250, "left": 40, "right": 8, "top": 12, "bottom": 78}


_SCRIPT = """(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script.sdkit-data").textContent);
  var sample = root.querySelector("input.sdkit-sample"), temp = root.querySelector("input.sdkit-T");
  var bars = root.querySelectorAll("rect.sdkit-bar"), readout = root.querySelector(".sdkit-readout");
  var img = root.querySelector("img.sdkit-image");
  function draw() {
    var i = Number(sample.value), k = Number(temp.value), p = data.probs[i][k];
    for (var c = 0; c < bars.length; c++) {
      var h = p[c] * data.plotHeight;
      bars[c].setAttribute("y", (data.base - h).toFixed(2));
      bars[c].setAttribute("height", h.toFixed(2));
      bars[c].querySelector("title").textContent = data.classes[c] + ": " + p[c].toFixed(4);
    }
    readout.textContent = "sample " + (i + 1) + " of " + data.probs.length + data.captions[i] + " | T = " +
      data.tText[k] + " | entropy H = " + data.entropy[i][k].toFixed(3) + " nats (0 = one-hot, log C = " +
      data.logC.toFixed(3) + " = uniform)";
    if (img) { img.src = data.images[i]; }
    root.setAttribute("data-sample", String(i));
    root.setAttribute("data-t", data.tText[k]);
  }
  sample.addEventListener("input", draw);
  temp.addEventListener("input", draw);
  draw();
})();"""


class StaticTemperatureExplorer:
    """Self-contained HTML for :func:`static_temperature_explorer`; Jupyter and Jupyter Book show ``html``.

    ``data`` holds the precomputed frames (see :func:`explorer_data`) and ``html`` the page fragment.

    >>> explorer = static_temperature_explorer(torch.tensor([[2.0, 0.0]]), temperatures=[1.0, 2.0])
    >>> isinstance(explorer, StaticTemperatureExplorer), explorer.data["temperatures"]
    (True, [1.0, 2.0])
    >>> explorer._repr_html_() == explorer.html, explorer.html.startswith('<div id="sdkit-tx-')
    (True, True)
    """

    def __init__(self, data: dict[str, Any], html_text: str) -> None:
        self.data = data
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        n, k = len(self.data["probs"]), len(self.data["temperatures"])
        return f"StaticTemperatureExplorer({n} samples x {k} temperatures, {len(self.html) / 1024:.0f} KB of HTML)"


def static_temperature_explorer(
    logits: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    temperatures: Sequence[float] | None = None,
    T: float = 1.0,
) -> StaticTemperatureExplorer:
    """A temperature explorer that needs no kernel: every frame is precomputed, a slider picks the sample and
    another the temperature, and a few lines of inline JavaScript redraw an SVG bar chart of
    ``softmax(logits[i] / T)`` with its entropy.

    ``temperatures`` defaults to :func:`temperature_grid` (61 values from 0.1 to 100, 20 per decade); the
    temperature slider starts at the grid value closest to ``T`` in log scale. ``images`` (in [0, 1], one per
    sample) are embedded as small PNGs; ``captions`` (one per sample) are appended to the read-out line. Without
    JavaScript the page still shows the starting frame, drawn in Python.

    >>> ex = static_temperature_explorer(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), temperatures=[1.0, 2.0])
    >>> ex
    StaticTemperatureExplorer(2 samples x 2 temperatures, 4 KB of HTML)
    >>> ex.data["probs"][0][1]
    [0.7311, 0.2689]
    """
    temps = _check_temperatures(temperature_grid() if temperatures is None else temperatures)
    data = explorer_data(logits, temps)
    n, C = len(data["probs"]), len(data["probs"][0][0])
    names = _names(class_names, C)
    if images is not None and images.shape[0] != n:
        raise ValueError(f"images has {images.shape[0]} rows but logits has {n}; they must match")
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries but logits has {n} rows; they must match")
    T = check_temperature(T)
    k0 = min(range(len(temps)), key=lambda k: abs(math.log(temps[k] / T)))

    P = _PLOT
    plot_w, plot_h = P["width"] - P["left"] - P["right"], P["height"] - P["top"] - P["bottom"]
    base = P["top"] + plot_h
    slot = plot_w / C
    page = {
        **data,
        "classes": names,
        "captions": [f": {c}" for c in captions] if captions is not None else [""] * n,
        "tText": [f"{t:.3g}" for t in temps],
        "logC": math.log(C),
        "plotHeight": plot_h,
        "base": base,
        "images": [_png_data_uri(im) for im in images] if images is not None else [],
    }
    blob = json.dumps(page, separators=(",", ":"))
    safe_blob = blob.replace("</", "<\\/")  # JSON's "\/" escape: no "</script>" inside the data block
    uid = "sdkit-tx-" + hashlib.sha1(blob.encode()).hexdigest()[:12]

    svg = [
        f'<svg class="sdkit-chart" width="{P["width"]}" height="{P["height"]}" viewBox="0 0 {P["width"]} '
        f'{P["height"]}" role="img" aria-label="softened distribution" style="font:11px sans-serif">'
    ]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = base - frac * plot_h
        svg.append(
            f'<line x1="{P["left"]}" x2="{P["width"] - P["right"]}" y1="{y:.2f}" y2="{y:.2f}" stroke="#ddd"/>'
            f'<text x="{P["left"] - 4}" y="{y + 4:.2f}" text-anchor="end" fill="#555">{frac:g}</text>'
        )
    p0 = data["probs"][0][k0]
    for c, name in enumerate(names):
        x, h = P["left"] + c * slot + 0.15 * slot, p0[c] * plot_h
        cx = P["left"] + (c + 0.5) * slot
        svg.append(
            f'<rect class="sdkit-bar" x="{x:.2f}" y="{base - h:.2f}" width="{0.7 * slot:.2f}" height="{h:.2f}" '
            f'fill="#1f77b4"><title>{html.escape(name)}: {p0[c]:.4f}</title></rect>'
            f'<text x="{cx:.2f}" y="{base + 10:.2f}" text-anchor="end" transform="rotate(-45 {cx:.2f} '
            f'{base + 10:.2f})" fill="#333">{html.escape(name)}</text>'
        )
    svg.append(
        f'<text x="12" y="{P["top"] + plot_h / 2:.2f}" transform="rotate(-90 12 {P["top"] + plot_h / 2:.2f})" '
        'text-anchor="middle" fill="#333">probability</text></svg>'
    )
    image = (
        f'<img class="sdkit-image" src="{page["images"][0]}" alt="the selected image" width="112" height="112" '
        'style="image-rendering:pixelated;border:1px solid #ccc;margin-right:12px"/>'
        if images is not None
        else ""
    )
    h0 = data["entropy"][0][k0]
    readout = (
        f"sample 1 of {n}{page['captions'][0]} | T = {page['tText'][k0]} | entropy H = {h0:.3f} nats "
        f"(0 = one-hot, log C = {math.log(C):.3f} = uniform)"
    )
    text = (
        f'<div id="{uid}" class="sdkit-temperature-explorer" data-sample="0" data-t="{page["tText"][k0]}">'
        f'<div style="display:flex;gap:24px;flex-wrap:wrap;align-items:center;margin-bottom:6px">'
        f'<label>sample <input class="sdkit-sample" type="range" min="0" max="{n - 1}" step="1" value="0" '
        f'aria-label="sample"></label>'
        f'<label>temperature (log scale) <input class="sdkit-T" type="range" min="0" max="{len(temps) - 1}" '
        f'step="1" value="{k0}" aria-label="temperature"></label></div>'
        f'<p class="sdkit-readout" style="margin:4px 0;font-family:monospace">{html.escape(readout)}</p>'
        f'<div style="display:flex;align-items:center">{image}{"".join(svg)}</div>'
        f'<script type="application/json" class="sdkit-data">{safe_blob}</script>'
        f"<script>{_SCRIPT % {'id': uid}}</script></div>"
    )
    return StaticTemperatureExplorer(data, text)
