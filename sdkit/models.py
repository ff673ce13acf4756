"""Small image classifiers, each buildable by name for any input shape and class count, and where they run.

* ``mlp``: flatten, two hidden layers of ``256 * width`` units.
* ``cnn``: three conv-BN-ReLU blocks (``32w, 64w, 128w`` channels, max-pooling after the first two), then
  global average pooling.
* ``resnet``: the CIFAR ResNet of He et al. (2016), 3x3 stem, ``depth = 6n + 2`` (8, 14, 20, 32, ...),
  stages of ``16w, 32w, 64w`` channels.

``width`` scales every layer, so a student can be a thinner copy of its teacher's architecture.

Devices: every function that takes ``device`` accepts ``"auto"`` (the default), ``"cpu"``, ``"cuda"``,
``"cuda:N"``, ``"mps"`` or a ``torch.device``; :func:`pick_device` resolves it. ``"auto"`` trains on the best
device there is (CUDA, then MPS, then the CPU) and evaluates where the model already is.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "MODELS", "MLP", "SmallCNN", "ResNet", "build_model", "count_parameters", "frozen_copy", "channels_last_while",
    "pick_device", "autocast_for", "cudnn_autotuner",
]  # fmt: skip


def _channels(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


class MLP(nn.Module):
    """Multilayer perceptron: flatten, two hidden layers of ``256 * width`` units with ReLU, then a linear layer.

    >>> model = MLP((1, 8, 8), num_classes=10, width=0.5)
    >>> model(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    >>> count_parameters(model)  # (64*128 + 128) + (128*128 + 128) + (128*10 + 10)
    26122
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        hidden = _channels(256, width)
        n_in = int(torch.tensor(input_shape).prod())
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class GlobalAvgPool(nn.Module):
    """Global average pooling to ``(N, C)``: ``x.mean((-2, -1))``, the same numbers as ``AdaptiveAvgPool2d(1)``
    followed by ``Flatten()``. Its gradient is one expand and a division in either memory format, where flattening
    a pooled channels_last tensor goes back through an ``as_strided`` copy (six more operators per step, which a
    launch-bound GPU step pays for; counted in benchmarks/step_ops.py).

    >>> x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    >>> torch.equal(GlobalAvgPool()(x), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())(x))
    True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1))


class SmallCNN(nn.Module):
    """conv-pool, conv-pool, conv, global average pool, linear. Works from 8x8 inputs upwards.

    >>> model = SmallCNN((1, 8, 8), num_classes=10)
    >>> model(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> model.classifier  # 128 * width channels after global average pooling
    Linear(in_features=128, out_features=10, bias=True)
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = _channels(32, width), _channels(64, width), _channels(128, width)
        self.features = nn.Sequential(
            *_conv_bn(input_shape[0], c1),
            nn.MaxPool2d(2),
            *_conv_bn(c1, c2),
            nn.MaxPool2d(2),
            *_conv_bn(c2, c3),
            GlobalAvgPool(),
        )
        self.classifier = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class AuxOutputs(NamedTuple):
    """What a ResNet's auxiliary heads saw: their logits (shallow to deep) and pooled features (then the net's)."""

    logits: list[torch.Tensor]
    features: list[torch.Tensor]


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, three stages of ``n`` basic blocks, ``depth = 6n + 2``.

    With ``aux_heads=True`` each of the first two stages gets an auxiliary classifier (a strided 3x3 conv to the
    last stage's width, BatchNorm, ReLU, global pooling, linear) for be-your-own-teacher training:
    ``forward(x, return_aux=True)`` returns ``(logits, aux)`` with ``aux.logits`` the heads' logits (shallow to
    deep) and ``aux.features`` the pooled features of each head, then of the network itself. ``forward(x)``
    returns only the final logits, and nothing is kept on the module between calls.

    >>> model = ResNet((1, 8, 8), num_classes=10, depth=8, aux_heads=True)
    >>> [len(stage) for stage in model.stages]  # depth 8 = 6 * 1 + 2: one basic block per stage
    [1, 1, 1]
    >>> model(torch.randn(4, 1, 8, 8)).shape
    torch.Size([4, 10])
    >>> logits, aux = model(torch.randn(4, 1, 8, 8), return_aux=True)
    >>> [z.shape for z in aux.logits], [f.shape for f in aux.features]
    ([torch.Size([4, 10]), torch.Size([4, 10])], [torch.Size([4, 64]), torch.Size([4, 64]), torch.Size([4, 64])])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: float = 1.0,
        depth: int = 8,
        aux_heads: bool = False,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got depth={depth}")
        n = (depth - 2) // 6
        widths = [_channels(16, width), _channels(32, width), _channels(64, width)]
        self.stem = nn.Sequential(*_conv_bn(input_shape[0], widths[0]))
        stages, c_in = [], widths[0]
        for i, c_out in enumerate(widths):
            blocks = [BasicBlock(c_in if j == 0 else c_out, c_out, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.pool = GlobalAvgPool()
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.aux_heads = nn.ModuleList()
        if aux_heads:
            for i, c in enumerate(widths[:-1]):
                stride = 2 ** (len(widths) - 1 - i)
                conv = nn.Conv2d(c, widths[-1], 3, stride, 1, bias=False)
                features = nn.Sequential(conv, nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True), GlobalAvgPool())
                self.aux_heads.append(nn.ModuleDict({"features": features, "fc": nn.Linear(widths[-1], num_classes)}))

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, AuxOutputs]:
        x = self.stem(x)
        stage_outputs = []
        for stage in self.stages:
            x = stage(x)
            stage_outputs.append(x)
        feature = self.pool(x)
        logits = self.classifier(feature)
        if not return_aux:
            return logits
        if not len(self.aux_heads):
            raise ValueError("return_aux=True needs auxiliary heads: build_model('resnet8', ..., aux_heads=True)")
        aux_features = [head["features"](out) for head, out in zip(self.aux_heads, stage_outputs, strict=False)]
        aux_logits = [head["fc"](f) for head, f in zip(self.aux_heads, aux_features, strict=True)]
        return logits, AuxOutputs(aux_logits, [*aux_features, feature])


#: The architecture names :func:`build_model` accepts.
MODELS = ("mlp", "cnn", "resnet")


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    width: float = 1.0,
    depth: int | None = None,
    seed: int = 0,
    aux_heads: bool = False,
) -> nn.Module:
    """Build a model by name (``mlp``, ``cnn``, ``resnet``; ``resnet20`` etc. set the depth, as does ``depth=``
    with ``resnet``, default 8).

    The weights are initialised from ``seed`` without touching the global random state. ``aux_heads`` (ResNet
    only) adds the auxiliary classifiers that :class:`sdkit.self_kd.BYOT` trains.

    >>> model = build_model("cnn", (1, 28, 28), 10, seed=0)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> a, b = build_model("mlp", (1, 8, 8), 10, seed=3), build_model("mlp", (1, 8, 8), 10, seed=3)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # same seed, same weights
    True
    >>> build_model("resnet20", (1, 8, 8), 10, depth=8)
    Traceback (most recent call last):
    ...
    ValueError: model 'resnet20' has depth 20 but depth=8 was passed; pass one of them
    """
    key = name.lower()
    if key.startswith("resnet") and key[6:].isdigit():
        if depth is not None and depth != int(key[6:]):
            raise ValueError(f"model {name!r} has depth {int(key[6:])} but depth={depth} was passed; pass one of them")
        key, depth = "resnet", int(key[6:])
    if depth is not None and key != "resnet":
        raise ValueError(f"depth applies to ResNets only (model 'resnet' or 'resnetN'), got model {name!r}")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)} (or resnetN, e.g. resnet20)")
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number (1.0 = default size), got width={width!r}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    if aux_heads and key != "resnet":
        raise ValueError(f"aux_heads=True needs a ResNet (for BYOT), got model {name!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got num_classes={num_classes!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if key == "mlp":
            return MLP(input_shape, num_classes, width)
        if key == "cnn":
            return SmallCNN(input_shape, num_classes, width)
        return ResNet(input_shape, num_classes, width, depth or 8, aux_heads)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter entries of ``model``, ``sum_p numel(p)`` (trainable or not; buffers are not counted).

    >>> count_parameters(build_model("mlp", (1, 8, 8), 10))  # (64*256 + 256) + (256*256 + 256) + (256*10 + 10)
    85002
    """
    return sum(p.numel() for p in model.parameters())


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off: a teacher that can never be changed by the student's training.

    >>> teacher = frozen_copy(build_model("mlp", (1, 8, 8), 10))
    >>> teacher.training, any(p.requires_grad for p in teacher.parameters())
    (False, False)
    """
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@contextlib.contextmanager
def channels_last_while(model: nn.Module) -> Iterator[bool]:
    """Put a convolutional ``model`` in channels_last memory format for the ``with`` block, then back as it was.

    Yields whether the model has convolutions (and so runs in channels_last); other models are left alone.
    Convolutions on channels_last tensors usually run faster (measurements in benchmarks/).

    >>> model = build_model("cnn", (1, 8, 8), 10)
    >>> with channels_last_while(model) as converted:
    ...     inside = model.features[4].weight.is_contiguous(memory_format=torch.channels_last)
    >>> converted, inside, model.features[4].weight.is_contiguous()  # contiguous (NCHW) again afterwards
    (True, True, True)
    """
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        yield False
        return
    # a weight with one input channel or a 1x1 kernel is both NCHW- and NHWC-contiguous: look at one that is not
    telling = [w for w in convs if not w.is_contiguous() or not w.is_contiguous(memory_format=torch.channels_last)]
    was_channels_last = bool(telling) and telling[0].is_contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        if not was_channels_last:
            model.to(memory_format=torch.contiguous_format)


# ------------------------------------------------------------------------------------ where a model runs


def pick_device(device: str | torch.device = "auto", *, model: nn.Module | None = None) -> torch.device:
    """Resolve a ``device`` argument. ``"auto"`` is the model's own device when ``model`` is given (evaluation
    never moves a model), else CUDA, then Apple's MPS, then the CPU (training); anything else is used as given.

    >>> pick_device("cpu"), pick_device("auto", model=nn.Linear(2, 2))
    (device(type='cpu'), device(type='cpu'))
    >>> pick_device(None)
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device, got device=None
    """
    if isinstance(device, str) and device == "auto":
        first = next(model.parameters(), None) if model is not None else None
        if first is not None:
            return first.device
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device, got device={device!r}"
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here; use device='cpu' or 'auto'")
    return chosen


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    # bf16 autocast only on CUDA: on CPUs without AMX it is several times slower than float32.
    if precision == "bf16" and device.type == "cuda":
        return partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def cudnn_autotuner() -> Iterator[None]:
    # inputs have one shape per run, so cuDNN may time its algorithms once and keep the fastest; the flag is global
    # in PyTorch, so it is restored for the caller
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
