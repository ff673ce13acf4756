import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import sdkit
import sdkit.data as sdata
import sdkit.datasets as sdatasets


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """Write an IDX file exactly as the MNIST/Fashion-MNIST distributions do (uint8, big-endian dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist_files(folder: Path, n_train=50, n_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for stem, arr in arrays.items():
        write_idx(folder / stem, arr, compress)
    return arrays


def test_digits_split_shapes_and_disjointness(digits):
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(digits.test) == 1797 // 5 and abs(len(digits.val) - round(0.1 * (1797 - 359))) <= 1
    rows = lambda s: {tuple(r) for r in s.x.flatten(1).tolist()}  # noqa: E731
    # the digits set has a handful of exact duplicate images, so allow a few shared rows but no real overlap
    assert len(rows(digits.train) & rows(digits.test)) < 5
    assert abs(float(digits.train.x.mean())) < 1e-4 and float(digits.train.x.std()) == pytest.approx(1.0, abs=1e-3)
    assert digits.augment.crop_padding == 0 and not digits.augment.flip  # flipped digits are other symbols


def test_validation_split_depends_on_seed_but_test_does_not():
    a, b = sdkit.load_dataset("digits", seed=0), sdkit.load_dataset("digits", seed=1)
    assert torch.equal(a.test.y, b.test.y)  # digits' test split is fixed; only the validation carve-out moves
    assert not torch.equal(a.val.x, b.val.x)
    assert torch.equal(sdkit.load_dataset("digits", seed=0).val.x, a.val.x)


def test_read_idx_roundtrip_gz_and_plain(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", arr, compress=True)
    write_idx(tmp_path / "b", arr, compress=False)
    np.testing.assert_array_equal(sdkit.read_idx(tmp_path / "a.gz"), arr)
    np.testing.assert_array_equal(sdkit.read_idx(tmp_path / "b"), arr)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        sdkit.read_idx(tmp_path / "junk")
    header = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 10)
    (tmp_path / "short").write_bytes(header + b"\x00" * 3)
    with pytest.raises(ValueError, match="truncated"):
        sdkit.read_idx(tmp_path / "short")


def test_fashion_mnist_from_a_folder_of_idx_gz_files(tmp_path):
    arrays = fake_mnist_files(tmp_path, n_train=50, n_test=20)
    data = sdkit.load_dataset("fashion-mnist", tmp_path, val_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 20)
    assert data.input_shape == (1, 28, 28) and data.class_names[0] == "T-shirt/top"
    assert data.augment.flip and data.augment.crop_padding == 2
    # test images come back exactly (undo the normalisation)
    restored = data.denormalize(data.test.x) * 255
    np.testing.assert_allclose(restored[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"], atol=1e-3)
    assert data.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_from_torchvision_raw_layout(tmp_path):
    # torchvision keeps the uncompressed IDX files in ROOT/MNIST/raw/
    fake_mnist_files(tmp_path / "MNIST" / "raw", n_train=30, n_test=10, compress=False)
    data = sdkit.load_dataset("mnist", tmp_path, train_size=20)
    assert (len(data.train), len(data.test)) == (20, 10)
    assert not data.augment.flip  # a flipped digit is another symbol


def write_cifar(root: Path, n_per_batch=8, hundred=False, seed=0):
    rng = np.random.default_rng(seed)
    if hundred:
        folder, files, key, classes = root / "cifar-100-python", ["train", "test"], "fine_labels", 100
    else:
        folder = root / "cifar-10-batches-py"
        files, key, classes = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10
    folder.mkdir(parents=True)
    for name in files:
        images = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)  # rows: 1024 R, 1024 G, 1024 B
        batch = {"data": images, key: list(rng.integers(0, classes, n_per_batch))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)  # the real files are Python pickles of exactly these dicts
    if hundred:
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"class{i}" for i in range(100)]}, f)
    return folder


def test_cifar10_from_python_pickles(tmp_path):
    folder = write_cifar(tmp_path)
    data = sdkit.load_dataset("cifar10", tmp_path, val_fraction=0.25)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 8)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    restored = data.denormalize(data.test.x) * 255
    np.testing.assert_allclose(restored.reshape(8, -1).numpy(), raw["data"], atol=1e-3)
    assert data.class_names[3] == "cat"


def test_cifar100_from_python_pickles(tmp_path):
    write_cifar(tmp_path, hundred=True)
    data = sdkit.load_dataset("cifar100", tmp_path, val_fraction=0.25)
    assert data.num_classes == 100 and data.class_names[5] == "class5"


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sdatasets, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*download=True"):
        sdkit.load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar10.*download=True"):
        sdkit.load_dataset("cifar10", tmp_path)


def test_unknown_dataset_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; choose one of"):
        sdkit.load_dataset("imagenet")
    with pytest.raises(ValueError, match="val_fraction"):
        sdkit.load_dataset("digits", val_fraction=1.0)
    with pytest.raises(ValueError, match="train_size"):
        sdkit.load_dataset("digits", train_size=0)


def test_loader_yields_each_sample_once_per_epoch(digits):
    loader = sdkit.BatchLoader(digits.train, batch_size=100, seed=3)
    for _ in range(2):
        seen = torch.cat([b.index for b in loader])
        assert sorted(seen.tolist()) == list(range(len(digits.train)))
    assert len(loader) == -(-len(digits.train) // 100)
    for batch in loader:  # without augmentation a batch is exactly the indexed samples
        assert torch.equal(batch.x, digits.train.x[batch.index]) and torch.equal(batch.y, digits.train.y[batch.index])


def test_loader_drop_last_and_shuffle_is_seeded(digits):
    loader = sdkit.BatchLoader(digits.train, batch_size=100, drop_last=True, seed=0)
    assert all(len(b.y) == 100 for b in loader) and len(loader) == len(digits.train) // 100
    first = lambda seed: next(iter(sdkit.BatchLoader(digits.train, 64, seed=seed))).index  # noqa: E731
    assert torch.equal(first(5), first(5)) and not torch.equal(first(5), first(6))
    fixed = sdkit.BatchLoader(digits.train, 64, shuffle=False)
    assert next(iter(fixed)).index.tolist() == list(range(64))


def test_augment_crop_shifts_content_and_flip_mirrors():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = sdkit.augment_batch(x, sdata.Augment(crop_padding=2), g)
    assert out.shape == x.shape
    for i in range(2):
        # each output is a window of the zero-padded image: find its offset and compare exactly
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        assert any(torch.equal(out[i], padded[:, dy : dy + 6, dx : dx + 6]) for dy in range(5) for dx in range(5))
    flipped = sdkit.augment_batch(x, sdata.Augment(flip=True), torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_augmentation_is_reproducible_and_varies():
    x = torch.randn(64, 1, 8, 8)
    aug = sdata.Augment(crop_padding=2, flip=True)
    a = sdkit.augment_batch(x, aug, torch.Generator().manual_seed(0))
    b = sdkit.augment_batch(x, aug, torch.Generator().manual_seed(0))
    c = sdkit.augment_batch(x, aug, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_loader_rejects_bad_input(digits):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        sdkit.BatchLoader(digits.train, 0)
    with pytest.raises(ValueError, match="empty"):
        sdkit.BatchLoader(sdkit.Split(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), 4)


def test_debian_fashion_mnist_loads_when_installed(full_fashion_mnist_folder):
    data = sdkit.load_dataset("fashion-mnist", "/nonexistent-root", train_size=100, test_size=50)
    assert (len(data.train), len(data.val), len(data.test)) == (100, 6000, 50)


def test_fashion_mnist_sample_is_stratified_and_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(sdatasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setenv("SDKIT_DATA", str(tmp_path / "empty-cache"))
    train_y = sdatasets.read_idx(sdatasets.FASHION_MNIST_SAMPLE / "train-labels-idx1-ubyte.gz")
    test_y = sdatasets.read_idx(sdatasets.FASHION_MNIST_SAMPLE / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(train_y).tolist() == [800] * 10 and np.bincount(test_y).tolist() == [200] * 10
    data = sdkit.load_dataset("fashion-mnist-sample", val_fraction=0.1)
    assert (len(data.train), len(data.val), len(data.test)) == (7200, 800, 2000)
    assert data.input_shape == (1, 28, 28) and data.class_names == sdatasets.FASHION_MNIST_CLASSES
    assert data.augment == sdatasets.DATASETS["fashion-mnist"]
    assert sum(f.stat().st_size for f in sdatasets.FASHION_MNIST_SAMPLE.glob("*.gz")) < 5_000_000


def test_fashion_mnist_sample_is_drawn_from_the_official_files(full_fashion_mnist_folder):
    # every sample image is an official image with the official label, none twice
    for prefix in ("train", "t10k"):
        official_x = sdatasets.read_idx(full_fashion_mnist_folder / f"{prefix}-images-idx3-ubyte.gz")
        official_y = sdatasets.read_idx(full_fashion_mnist_folder / f"{prefix}-labels-idx1-ubyte.gz")
        sample_x = sdatasets.read_idx(sdatasets.FASHION_MNIST_SAMPLE / f"{prefix}-images-idx3-ubyte.gz")
        sample_y = sdatasets.read_idx(sdatasets.FASHION_MNIST_SAMPLE / f"{prefix}-labels-idx1-ubyte.gz")
        where = {official_x[i].tobytes(): i for i in range(len(official_x))}
        found = [where.get(image.tobytes()) for image in sample_x]
        assert None not in found and len(set(found)) == len(found)
        assert (official_y[found] == sample_y).all()
