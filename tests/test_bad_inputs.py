"""Bad inputs to training, methods, checkpoints and comparisons that the feature tests do not already cover.

Each case asserts the exception type and that the message names the problem (and, where there is one, the fix).
The losses' and temperature functions' cases live in test_losses.py, test_temperature.py and test_properties.py.
"""

import dataclasses

import pytest
import torch

import sdkit


def mlp(data, classes=None, seed=0):
    return sdkit.build_model("mlp", data.input_shape, classes or data.num_classes, seed=seed)


def with_split(data, name, x, y=None):
    split = getattr(data, name)
    return dataclasses.replace(data, **{name: sdkit.Split(x, split.y if y is None else y)})


def test_teacher_with_another_class_count_is_rejected_during_training(digits):
    teacher = mlp(digits, classes=3)
    with pytest.raises(ValueError, match="teacher predicts 3 classes but the student 10; they must match"):
        sdkit.train(mlp(digits), digits, teacher=teacher, epochs=1, progress=False)


def test_nan_in_the_data_is_rejected_before_training(digits):
    x = digits.train.x.clone()
    x[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="data.train.x contains NaN or infinite values"):
        sdkit.train(mlp(digits), with_split(digits, "train", x), epochs=1, progress=False)


def test_an_empty_split_is_rejected_before_training(digits):
    empty = with_split(digits, "val", digits.val.x[:0], digits.val.y[:0])
    with pytest.raises(ValueError, match="data.val is empty; every split needs at least one sample"):
        sdkit.train(mlp(digits), empty, epochs=1, progress=False)


def test_train_argument_types_and_combinations(digits):
    with pytest.raises(TypeError, match="data must be an sdkit Data .* got tuple"):
        sdkit.train(mlp(digits), (digits.train.x, digits.train.y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="pass either teacher= .* or method=, not both"):
        sdkit.train(mlp(digits), digits, teacher=mlp(digits, seed=1), method=sdkit.PSKD(), epochs=1, progress=False)
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of"):
        sdkit.train(mlp(digits), digits, precision="fp8", epochs=1, progress=False)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda t: sdkit.Distill(t, T=float("nan")), ValueError, "T must be a finite number > 0"),
        (lambda t: sdkit.Distill(t, alpha=-0.5), ValueError, "alpha is the weight of the soft .* got alpha=-0.5"),
        (lambda t: sdkit.Distill("teacher.pt"), TypeError, "teacher must be an nn.Module, got str"),
        (lambda t: sdkit.PSKD(alpha_T=1.5), ValueError, "alpha_T .* must lie in \\[0, 1\\], got alpha_T=1.5"),
        (lambda t: sdkit.CSKD(T=0), ValueError, "T must be a finite number > 0"),
        (lambda t: sdkit.CSKD(lam=-1), ValueError, "lam .* must be >= 0, got lam=-1"),
        (lambda t: sdkit.EMATeacher(T=float("inf")), ValueError, "T must be a finite number > 0"),
        (lambda t: sdkit.BYOT(alpha=2), ValueError, "alpha .* got alpha=2"),
    ],
)  # fmt: skip
def test_method_arguments_are_validated(make, error, message):
    teacher = torch.nn.Linear(4, 3)
    with pytest.raises(error, match=message):
        make(teacher)


def test_incomplete_checkpoint_names_what_is_missing(tmp_path):
    path = tmp_path / "partial.pt"
    sdkit.save_checkpoint(path, {"epoch": 1, "model": {}})
    with pytest.raises(ValueError, match="is incomplete: missing \\['optimizer', 'scheduler', .*delete it"):
        sdkit.load_checkpoint(path)


def test_compare_needs_methods_and_seeds(digits):
    with pytest.raises(ValueError, match="methods must name at least one method"):
        sdkit.compare(digits, [], seeds=[0])
    for seeds in ([], 3, [0, 0], ["0"]):  # empty, a count, a repeat, not an integer
        with pytest.raises(ValueError, match=r"seeds must be a sequence of distinct integer seeds, e\.g\. \[0, 1, 2\]"):
            sdkit.compare(digits, ["plain"], seeds=seeds)
