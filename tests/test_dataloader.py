"""Training from a standard torch DataLoader (a user's own data) reaches what the tensor path reaches."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import sdkit

EPOCHS = 5


def write_image_folder(root, split, data):
    """``root/<class>/<i>.png``, torchvision's ImageFolder layout, from a split of normalised tensors."""
    from PIL import Image

    pixels = (data.denormalize(split.x).clamp(0, 1) * 255).round().to(torch.uint8)
    for i, (image, label) in enumerate(zip(pixels, split.y.tolist(), strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy(), mode="L").save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory, digits):
    from torchvision import datasets, transforms

    root = tmp_path_factory.mktemp("digits-png")
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(digits.mean, digits.std)])
    folders = {}
    for name in ("train", "val"):
        write_image_folder(root / name, getattr(digits, name), digits)
        folders[name] = datasets.ImageFolder(root / name, transform, loader=lambda p: _open_gray(p))
    return folders


def _open_gray(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("L")


def loaders(folders):
    train = DataLoader(folders["train"], batch_size=128, shuffle=True)
    return train, DataLoader(folders["val"], batch_size=256)


@pytest.fixture(scope="module")
def teacher(digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(model, digits, epochs=EPOCHS, progress=False, device="cpu")
    return model


@pytest.mark.parametrize("objective", ["kd", "pskd"])
def test_a_dataloader_over_png_files_trains_as_well_as_tensors(digits, image_folders, teacher, objective):
    def objective_kwargs():
        return {"teacher": teacher, "T": 4.0, "alpha": 0.5} if objective == "kd" else {"method": sdkit.PSKD()}

    accuracy = {}
    for path in ("tensors", "dataloader"):
        student = sdkit.build_model("mlp", digits.input_shape, 10, width=0.5, seed=1)
        if path == "tensors":
            sdkit.train(student, digits, epochs=EPOCHS, progress=False, device="cpu", **objective_kwargs())
        else:
            train, val = loaders(image_folders)
            history = sdkit.train(student, train, val=val, epochs=EPOCHS, progress=False, device="cpu",
                                  **objective_kwargs())  # fmt: skip
            assert len(history.records) == EPOCHS and "val_accuracy" in history.records[-1]
        accuracy[path] = sdkit.evaluate(student, digits.test)["accuracy"]
    assert accuracy["tensors"] > 0.85 and accuracy["dataloader"] > 0.85, accuracy
    assert abs(accuracy["tensors"] - accuracy["dataloader"]) < 0.05, accuracy


def test_evaluate_takes_a_dataloader_and_agrees_with_the_split(digits, teacher):
    loader = DataLoader(TensorDataset(digits.test.x, digits.test.y), batch_size=100)
    assert sdkit.evaluate(teacher, loader) == pytest.approx(sdkit.evaluate(teacher, digits.test))


def test_cskd_draws_partners_through_the_dataset(digits):
    dataset = TensorDataset(digits.train.x, digits.train.y)
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    history = sdkit.train(model, DataLoader(dataset, batch_size=128, shuffle=True), method=sdkit.CSKD(),
                          epochs=2, select="last", progress=False, device="cpu")  # fmt: skip
    assert [r["epoch"] for r in history.records] == [0, 1] and "val_accuracy" not in history.records[0]
    assert sdkit.evaluate(model, digits.test)["accuracy"] > 0.7


def test_dataloader_runs_are_reproducible_and_leave_the_callers_random_state(digits):
    dataset = TensorDataset(digits.train.x, digits.train.y)

    def run():
        model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
        loader = DataLoader(dataset, batch_size=128, shuffle=True)
        sdkit.train(model, loader, epochs=1, seed=5, select="last", progress=False, device="cpu")
        return model

    state = torch.get_rng_state()
    a, b = run(), run()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "select='best_val' needs validation data"),
        ({"select": "last", "batch_size": 64}, "batch_size would be ignored with a DataLoader"),
        ({"select": "last", "augment": False}, "augment would be ignored with a DataLoader"),
    ],
)
def test_settings_a_dataloader_decides_are_refused(digits, kwargs, message):
    loader = DataLoader(TensorDataset(digits.train.x, digits.train.y), batch_size=128)
    with pytest.raises(ValueError, match=message):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), loader, progress=False, **kwargs)
