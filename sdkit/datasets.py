"""Datasets from their files: :func:`load_dataset` and the official file formats.

``load_dataset(name)`` returns a :class:`Data` whose ``train``, ``val`` and ``test`` splits are plain tensors
(images ``(N, C, H, W)`` float32 normalised with the training split's per-channel mean and std, labels int64).
The validation split is carved from the official training set with a fixed seed; model selection uses it and
never the test split.

Batches for training come from :class:`sdkit.data.BatchLoader`.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import gzip
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .data import Augment, Data, Split
from .losses import check_positive_int

__all__ = ["DATASETS", "load_dataset", "default_root", "read_idx", "DamagedFileError"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The stratified Fashion-MNIST sample shipped inside the package (8,000 train + 2,000 test images, official IDX
#: format; how it was drawn and its MIT licence are in the folder's README.md).
FASHION_MNIST_SAMPLE = Path(__file__).parent / "_data" / "fashion-mnist-sample"

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


#: The dataset names :func:`load_dataset` accepts, each with the batch augmentation ``sdkit.train`` applies to it
#: (random crop after zero-padding, horizontal flip): none for the 8x8 digits, crop and flip for Fashion-MNIST.
DATASETS: dict[str, Augment] = {
    "digits": Augment(),  # 8x8 digits: a flipped digit is a different symbol and 8 pixels leave no room to crop
    "fashion-mnist": Augment(crop_padding=2, flip=True),
    "fashion-mnist-sample": Augment(crop_padding=2, flip=True),  # shipped with sdkit: always offline
    "mnist": Augment(crop_padding=2, flip=False),
    "cifar10": Augment(crop_padding=4, flip=True),
    "cifar100": Augment(crop_padding=4, flip=True),
}


# ---------------------------------------------------------------------------------------------------- file formats


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzipped or not, into a numpy array.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each dimension as a
    big-endian uint32. A damaged file (truncated, or a gzip stream whose bytes or checksum are wrong) raises
    ``ValueError`` naming the file; nothing is half-loaded.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes([7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    >>> _ = path.write_bytes(path.read_bytes()[:-1])  # one byte short
    >>> try:
    ...     read_idx(path)
    ... except ValueError as err:
    ...     what, fix = str(err).replace(str(path.parent), "FOLDER").split("; ")
    >>> print(what, fix, sep="\\n")
    FOLDER/labels-idx1-ubyte is damaged: truncated (the header says shape (3,) but it holds 2 values)
    delete it and pass download=True (CLI: --download) to fetch it again, or replace it with an intact copy
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        # gzip raises EOFError when the stream is cut, BadGzipFile (an OSError) for a bad header or CRC, and
        # zlib.error for flipped bytes inside the compressed data
        raise _damaged(path, f"{type(err).__name__}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise _damaged(path, f"not an IDX file of unsigned bytes (bad magic {data[:4]!r})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise _damaged(path, f"truncated inside the header ({len(data)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise _damaged(path, f"truncated (the header says shape {shape} but it holds {body.size} values)")
    return body.reshape(shape)


class DamagedFileError(ValueError):
    """A data file exists but cannot be read (truncated, corrupted, or not in its format)."""


def _damaged(path: Path, why: str) -> DamagedFileError:
    return DamagedFileError(f"{path} is damaged: {why}; {_refetch_hint(path)}")


def _refetch_hint(path: Path) -> str:
    """How to get an intact copy of ``path`` back, depending on who put it there."""
    path = Path(path).absolute()
    if path.is_relative_to(FASHION_MNIST_SAMPLE.absolute()):
        return "reinstall sdkit (pip install --force-reinstall self-distillation-executed), which ships this sample"
    if path.is_relative_to(DEBIAN_FASHION_MNIST):
        return "reinstall Debian's package (sudo apt-get install --reinstall dataset-fashion-mnist)"
    return "delete it and pass download=True (CLI: --download) to fetch it again, or replace it with an intact copy"


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _load_mnist_like(folders: list[Path]) -> tuple[np.ndarray, ...] | None:
    """Return (train_x, train_y, test_x, test_y) from the first folder holding all four IDX files.

    A damaged file raises :class:`DamagedFileError` (naming it and how to fetch it again) rather than falling back
    to another folder: the user should learn that the copy they pointed at is broken.
    """
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder in folders:
        found = [_find_idx(folder, s) for s in stems]
        paths = [p for p in found if p is not None]
        if len(paths) == len(stems):
            arrays = tuple(read_idx(p) for p in paths)
            for images, labels, x_path, y_path in ((*arrays[:2], *paths[:2]), (*arrays[2:], *paths[2:])):
                if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                    why = f"{images.shape} images in {x_path.name} do not match {labels.shape} labels in {y_path.name}"
                    raise _damaged(x_path if images.ndim != 3 else y_path, why)
            return arrays
    return None


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches, which are dicts of numpy arrays, lists and strings, and nothing else.

    A pickle names the functions it calls while loading; a planted file could name ``os.system``. This unpickler
    admits only the few numpy constructors an array needs and refuses every other name, so loading a file from
    someone else cannot run code.
    """

    def find_class(self, module: str, name: str) -> object:
        # Python 2 names (the official files are Python 2 pickles: __builtin__, ...) under their Python 3 names
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _CIFAR_GLOBALS.get((module, name))
        if found is None:
            raise _UnsafePickle(f"{module}.{name}")
        return found


class _UnsafePickle(pickle.UnpicklingError):
    """A pickle asked for a global outside the CIFAR allow-list."""


def _cifar_globals() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2 keeps the implementation in numpy._core; files written under numpy 1 name numpy.core
        from numpy._core import multiarray, numeric  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct  # an ndarray (protocol <= 4)
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar  # a numpy scalar, e.g. an np.int64 label
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # an ndarray (protocol 5)
    allowed[("_codecs", "encode")] = codecs.encode  # bytes pickled by Python 3 with protocol 2
    return allowed


_CIFAR_GLOBALS = _cifar_globals()


def _read_cifar_pickle(path: Path) -> dict:
    """Load one CIFAR pickle (a batch or ``meta``) through :class:`_CifarUnpickler`."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except _UnsafePickle as err:
        raise DamagedFileError(
            f"{path} is not a CIFAR file: unpickling it would call {err}, which a CIFAR batch never holds, so it "
            "was refused (loading it could run code). Delete it and pass download=True (CLI: --download) to fetch "
            "the real file"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle can fail with almost any error
        raise _damaged(path, f"{type(err).__name__}: {err}") from None
    if not isinstance(batch, dict):
        raise _damaged(path, f"it holds a {type(batch).__name__}, not a CIFAR batch's dict")
    return batch


def _load_cifar_batches(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        path = folder / name
        batch = _read_cifar_pickle(path)
        try:
            images = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch[label_key], dtype=np.int64)
            if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or labels.shape != (len(images),):
                raise ValueError(f"{images.shape} images (expected (N, 3072)) and {labels.shape} labels")
        except (KeyError, TypeError, ValueError) as err:
            raise _damaged(path, f"not a CIFAR batch ({type(err).__name__}: {err})") from None
        xs.append(images.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}
    for train in (True, False):
        cls[name](str(root), train=train, download=True)


def _missing(name: str, looked_in: list[Path]) -> FileNotFoundError:
    where = ", ".join(str(p) for p in looked_in)
    how = {
        "fashion-mnist": "install Debian's package (sudo apt-get install dataset-fashion-mnist), "
        "or pass download=True (CLI: --download; torchvision downloads it), or root=FOLDER holding the four IDX files",
    }.get(
        name,
        "pass download=True (CLI: --download; torchvision downloads it), or root=FOLDER holding torchvision's files",
    )
    return FileNotFoundError(f"dataset {name!r} was not found offline (looked in: {where}). To get it: {how}.")


def _raw_arrays(name: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as uint8 (N, C, H, W) and labels, for the official train and test sets."""
    if name == "fashion-mnist-sample":
        arrays = _load_mnist_like([FASHION_MNIST_SAMPLE])
        if arrays is None:
            raise FileNotFoundError(
                f"the Fashion-MNIST sample shipped with sdkit is missing from {FASHION_MNIST_SAMPLE}; "
                "reinstall sdkit (pip install --force-reinstall .) or use load_dataset('fashion-mnist')"
            )
        tx, ty, vx, vy = arrays
        return tx[:, None], ty.astype(np.int64), vx[:, None], vy.astype(np.int64)
    if name in ("mnist", "fashion-mnist"):
        tv_folder = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        folders = [root, tv_folder] + ([DEBIAN_FASHION_MNIST] if name == "fashion-mnist" else [])
        arrays = _load_mnist_like(folders)
        if arrays is None and download:
            _torchvision_download(name, root)
            arrays = _load_mnist_like([tv_folder])
        if arrays is None:
            raise _missing(name, folders)
        tx, ty, vx, vy = arrays
        return tx[:, None], ty.astype(np.int64), vx[:, None], vy.astype(np.int64)
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if name == "cifar10":
        train_files, test_files, key = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"
    else:
        train_files, test_files, key = ["train"], ["test"], "fine_labels"
    if not all((folder / f).exists() for f in train_files + test_files) and download:
        _torchvision_download(name, root)
    if not all((folder / f).exists() for f in train_files + test_files):
        raise _missing(name, [folder])
    return (*_load_cifar_batches(folder, train_files, key), *_load_cifar_batches(folder, test_files, key))


def _class_names(name: str, root: Path) -> tuple[str, ...]:
    if name in ("fashion-mnist", "fashion-mnist-sample"):
        return FASHION_MNIST_CLASSES
    if name == "cifar10":
        return CIFAR10_CLASSES
    if name == "cifar100":
        meta = root / "cifar-100-python" / "meta"
        if meta.exists():
            return tuple(_read_cifar_pickle(meta)["fine_label_names"])
        return tuple(str(i) for i in range(100))
    return tuple(str(i) for i in range(10))


# ---------------------------------------------------------------------------------------------------- loading


def default_root() -> Path:
    """Where downloads go and local files are looked for: ``$SDKIT_DATA``, else ``~/.cache/sdkit``."""
    return Path(os.environ.get("SDKIT_DATA", Path.home() / ".cache" / "sdkit"))


def load_dataset(
    name: str = "digits",
    root: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Data:
    """Load a dataset by name as normalised tensors with a train/validation/test split.

    Names: ``digits`` (scikit-learn's bundled 8x8 digits, never downloads), ``fashion-mnist-sample`` (a fixed
    stratified sample of Fashion-MNIST shipped inside sdkit: 8,000 training and 2,000 test images, never
    downloads), ``fashion-mnist`` (all 70,000 images: ``root``, then Debian's
    ``/usr/share/datasets/fashion-mnist``, then torchvision's download if ``download=True``), ``mnist``,
    ``cifar10``, ``cifar100`` (``root``, then torchvision's download if ``download=True``).

    ``val_fraction`` of the official training set becomes the validation split (a seeded random subset; digits has
    no official test set, so 20% of it is held out as test first, also with a fixed seed). ``train_size`` /
    ``test_size`` keep only the first that many (after shuffling) samples, for quick runs.

    Pixels are scaled to ``[0, 1]`` and standardised per channel with the training split's statistics,
    ``x' = (x - mean_train) / std_train`` (:meth:`Data.denormalize` undoes it for plotting).

    >>> data = load_dataset("digits")
    >>> len(data.train), len(data.val), len(data.test), data.input_shape, data.num_classes
    (1294, 144, 359, (1, 8, 8), 10)
    >>> round(float(data.train.x.mean()), 6) + 0.0, round(float(data.train.x.std()), 2)
    (0.0, 1.0)
    >>> len(load_dataset("digits", train_size=100, test_size=50).train)
    100
    >>> sample = load_dataset("fashion-mnist-sample", val_fraction=0.05)  # shipped with sdkit: works offline
    >>> len(sample.train), len(sample.val), len(sample.test), sample.input_shape, sample.class_names[6]
    (7600, 400, 2000, (1, 28, 28), 'Shirt')
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got val_fraction={val_fraction!r}")
    for arg, value in (("train_size", train_size), ("test_size", test_size)):
        if value is not None:
            check_positive_int(value, arg)
    root = Path(root) if root is not None else default_root()
    split_rng = np.random.default_rng(seed)

    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = (bunch.images.astype(np.float32) / 16.0)[:, None]  # pixel values 0..16
        labels = bunch.target.astype(np.int64)
        order = np.random.default_rng(12345).permutation(len(labels))  # fixed test split, independent of `seed`
        n_test = len(labels) // 5
        test_x, test_y = images[order[:n_test]], labels[order[:n_test]]
        train_x, train_y = images[order[n_test:]], labels[order[n_test:]]
    else:
        tx, ty, vx, vy = _raw_arrays(name, root, download)
        train_x, train_y = tx.astype(np.float32) / 255.0, ty
        test_x, test_y = vx.astype(np.float32) / 255.0, vy

    if len(train_y) < 2 or len(test_y) < 1:
        raise ValueError(f"dataset {name!r} is empty or too small ({len(train_y)} train, {len(test_y)} test samples)")
    perm = split_rng.permutation(len(train_y))
    n_val = max(1, int(round(val_fraction * len(train_y))))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if train_size is not None:
        train_idx = train_idx[:train_size]
    if test_size is not None:
        keep = split_rng.permutation(len(test_y))[:test_size]
        test_x, test_y = test_x[keep], test_y[keep]

    mean = train_x[train_idx].mean(axis=(0, 2, 3))
    std = train_x[train_idx].std(axis=(0, 2, 3)) + 1e-8

    def make(x: np.ndarray, y: np.ndarray) -> Split:
        x = (x - mean[None, :, None, None]) / std[None, :, None, None]
        return Split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.copy()))

    num_classes = 100 if name == "cifar100" else 10
    return Data(
        name=name,
        train=make(train_x[train_idx], train_y[train_idx]),
        val=make(train_x[val_idx], train_y[val_idx]),
        test=make(test_x, test_y),
        num_classes=num_classes,
        class_names=_class_names(name, root),
        augment=DATASETS[name],
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )
