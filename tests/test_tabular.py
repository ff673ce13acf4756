import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_wine

import sdkit
from sdkit.extras.tabular import TabularDataset, load_tabular, stratified_split


@pytest.mark.parametrize(("name", "loader", "n", "f", "c"), [
    ("breast-cancer", load_breast_cancer, 569, 30, 2),
    ("wine", load_wine, 178, 13, 3),
])  # fmt: skip
def test_shapes_classes_and_stratification(name, loader, n, f, c):
    data = load_tabular(name, seed=3)
    assert isinstance(data, sdkit.Dataset) and isinstance(data, TabularDataset)
    assert data.input_shape == (1, 1, f) and data.num_classes == c and data.num_features == f
    assert len(data.train) + len(data.val) + len(data.test) == n
    y = loader().target
    for k in range(c):
        n_k = int((y == k).sum())
        assert int((data.test.y == k).sum()) == round(0.2 * n_k)
        assert int((data.val.y == k).sum()) == round(0.2 * n_k)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64


def test_splits_are_disjoint_and_cover_every_row():
    data = load_tabular("wine", seed=0)
    raw = load_wine().data
    rows = torch.cat([data.denormalize(s.x).reshape(len(s), -1) for s in (data.train, data.val, data.test)])
    labels = torch.cat([data.train.y, data.val.y, data.test.y]).numpy()
    # match every reconstructed row to the original table: each original row exactly once, with its label
    dist = np.abs(rows.double().numpy()[:, None, :] - raw[None, :, :]).max(-1)
    match = dist.argmin(1)
    assert dist.min(1).max() < 1e-3 * np.abs(raw).max()
    assert sorted(match.tolist()) == list(range(len(raw)))
    assert np.array_equal(labels, load_wine().target[match])


def test_standardised_with_training_statistics_only():
    data = load_tabular("breast-cancer", seed=1, val_fraction=0.25, test_fraction=0.25)
    x = data.train.x.reshape(len(data.train), -1).double()
    assert float(x.mean(0).abs().max()) < 1e-5
    assert float((x.std(0, unbiased=False) - 1).abs().max()) < 1e-5
    xt = data.test.x.reshape(len(data.test), -1).double()
    assert float(xt.mean(0).abs().max()) > 1e-3  # the test rows were not used for the statistics
    raw = load_breast_cancer().data
    idx, _, _ = stratified_split(load_breast_cancer().target, 0.25, 0.25, 1)
    assert np.allclose(data.feature_mean, raw[idx].mean(0)) and np.allclose(data.feature_std, raw[idx].std(0))


def test_split_is_seeded():
    a, b, c = (load_tabular("breast-cancer", seed=s) for s in (5, 5, 6))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.test.x, c.test.x)


def test_mlp_trains_on_tabular_data():
    torch.set_num_threads(1)  # a tiny model: threads only add synchronisation (conftest restores the count)
    data = load_tabular("breast-cancer", seed=0)
    model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    assert model(data.test.x).shape == (len(data.test), 2)
    sdkit.train(model, data, epochs=8, batch_size=64, device="cpu", progress=False)
    assert sdkit.evaluate(model, data.test)["accuracy"] > 0.85  # an easy table: a few epochs suffice


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"name": "covertype"}, "name='covertype'"),
    ({"val_fraction": 0.0}, "val_fraction=0.0"),
    ({"test_fraction": 1.2}, "test_fraction=1.2"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
    ({"seed": -1}, "seed=-1"),
    ({"seed": 1.5}, "seed=1.5"),
])  # fmt: skip
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_tabular(**kwargs)
