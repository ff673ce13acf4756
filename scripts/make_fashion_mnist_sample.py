"""Draw the Fashion-MNIST sample that ships inside sdkit (``sdkit/_data/fashion-mnist-sample``).

The sample is the official files cut down: from the official training set, the first 800 images of each class in
the order of a seeded permutation (8,000 images); from the official test set, the first 200 of each class
(2,000 images). The images keep their bytes and the files keep their format (gzipped IDX, as the official ones),
so ``sdkit.datasets.read_idx`` and every other IDX reader load them unchanged. The order inside each file is the
permutation's order, with classes interleaved.

    python scripts/make_fashion_mnist_sample.py /usr/share/datasets/fashion-mnist sdkit/_data/fashion-mnist-sample

The source folder holds the four official files (Debian's ``dataset-fashion-mnist`` or torchvision's
``FashionMNIST/raw``). The output is byte-for-byte reproducible: gzip's header carries no file name or time.
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

from sdkit.datasets import read_idx

PER_CLASS = {"train": 800, "t10k": 200}
SEED = 20261130


def stratified_order(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Positions of the first ``per_class`` samples of each class in a seeded permutation, in permutation order."""
    order = np.random.default_rng(seed).permutation(len(labels))
    rank_in_class = np.zeros(len(labels), dtype=np.int64)
    seen: dict[int, int] = {}
    for position in order:
        label = int(labels[position])
        rank_in_class[position] = seen.get(label, 0)
        seen[label] = seen.get(label, 0) + 1
    return np.array([p for p in order if rank_in_class[p] < per_class])


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with the four official Fashion-MNIST files")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        images = read_idx(next(args.source.glob(f"{split}-images-idx3-ubyte*")))
        labels = read_idx(next(args.source.glob(f"{split}-labels-idx1-ubyte*")))
        keep = stratified_order(labels, per_class, SEED)
        write_idx_gz(args.out / f"{split}-images-idx3-ubyte.gz", images[keep])
        write_idx_gz(args.out / f"{split}-labels-idx1-ubyte.gz", labels[keep])
        print(f"{split}: {len(keep)} images, {np.bincount(labels[keep]).tolist()} per class")


if __name__ == "__main__":
    main()
