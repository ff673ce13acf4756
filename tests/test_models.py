import pytest
import torch

import sdkit


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet8", "resnet14"])
@pytest.mark.parametrize("shape, classes", [((1, 8, 8), 10), ((1, 28, 28), 10), ((3, 32, 32), 100)])
def test_every_model_builds_for_every_dataset_shape(name, shape, classes):
    model = sdkit.build_model(name, shape, classes)
    assert model(torch.randn(3, *shape)).shape == (3, classes)


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_width_makes_a_smaller_student(name):
    big = sdkit.count_parameters(sdkit.build_model(name, (1, 28, 28), 10, width=1.0))
    small = sdkit.count_parameters(sdkit.build_model(name, (1, 28, 28), 10, width=0.25))
    assert small < big / 4


def test_resnet_depth_is_6n_plus_2():
    blocks = lambda m: sum(isinstance(b, sdkit.models.BasicBlock) for b in m.modules())  # noqa: E731
    assert blocks(sdkit.build_model("resnet20", (3, 32, 32), 10)) == 9
    assert blocks(sdkit.build_model("resnet", (3, 32, 32), 10, depth=8)) == 3
    with pytest.raises(ValueError, match="6n \\+ 2"):
        sdkit.build_model("resnet", (3, 32, 32), 10, depth=10)


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = sdkit.build_model("cnn", (1, 8, 8), 10, seed=4)
    after = torch.rand(1)
    assert torch.equal(before, after)  # building a model did not consume the global random stream
    b = sdkit.build_model("cnn", (1, 8, 8), 10, seed=4)
    c = sdkit.build_model("cnn", (1, 8, 8), 10, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of"):
        sdkit.build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="width must be a positive number"):
        sdkit.build_model("cnn", (1, 8, 8), 10, width=0)
    with pytest.raises(ValueError, match="input_shape"):
        sdkit.build_model("cnn", (8, 8), 10)
    with pytest.raises(ValueError, match="num_classes"):
        sdkit.build_model("cnn", (1, 8, 8), 1)


def test_frozen_copy_is_a_separate_frozen_model():
    model = sdkit.build_model("cnn", (1, 8, 8), 10)
    teacher = sdkit.frozen_copy(model)
    assert teacher is not model and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in model.parameters())
    shared = {id(p) for p in model.parameters()} & {id(p) for p in teacher.parameters()}
    assert not shared


def test_resnet_name_and_depth_must_agree():
    assert len(sdkit.build_model("resnet", (1, 8, 8), 10, depth=14).stages[0]) == 2
    assert len(sdkit.build_model("resnet14", (1, 8, 8), 10, depth=14).stages[0]) == 2
    with pytest.raises(ValueError, match="'resnet20' has depth 20 but depth=8"):
        sdkit.build_model("resnet20", (1, 8, 8), 10, depth=8)
    with pytest.raises(ValueError, match="depth applies to ResNets only"):
        sdkit.build_model("cnn", (1, 8, 8), 10, depth=8)
