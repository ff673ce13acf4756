import pytest
import torch

import sdkit
from sdkit.data import Augment
from sdkit.methods import TrainContext


def params_and_buffers(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_teacher_reaches_95_percent_on_digits(digits):
    model = sdkit.build_model("cnn", digits.input_shape, 10, seed=0)
    history = sdkit.train(model, digits, epochs=8, progress=False, device="cpu")
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]
    assert sdkit.evaluate(model, digits.test)["accuracy"] >= 0.95
    assert set(history.records[0]) == {"epoch", "train_loss", "val_accuracy", "val_nll", "lr", "seconds"}
    assert history.best_epoch == max(range(8), key=lambda e: (history["val_accuracy"][e], -e))


def test_distillation_leaves_teacher_untouched_and_separate(digits):
    teacher = sdkit.build_model("cnn", digits.input_shape, 10, seed=0)
    sdkit.train(teacher, digits, epochs=2, progress=False)
    before = params_and_buffers(teacher)
    method = sdkit.Distill(teacher, T=4.0, alpha=0.9)
    student = sdkit.build_model("cnn", digits.input_shape, 10, seed=1)
    sdkit.train(student, digits, method=method, epochs=2, progress=False)
    for key, value in params_and_buffers(teacher).items():  # BatchNorm running stats included
        assert torch.equal(value, before[key]), key
    for key, value in params_and_buffers(method.teacher).items():
        assert torch.equal(value, before[key]), key
    assert method.teacher is not student and method.teacher is not teacher
    assert not ({id(p) for p in student.parameters()} & {id(p) for p in method.teacher.parameters()})


def test_the_student_cannot_be_its_own_teacher(digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    with pytest.raises(ValueError, match="teacher is the student itself"):
        sdkit.train(model, digits, teacher=model, epochs=1, progress=False)


def test_teacher_sees_the_same_augmented_batch_as_the_student(digits):
    data = sdkit.Dataset(**{**digits.__dict__, "augment": Augment(crop_padding=2, flip=True)})
    seen_by = {"student": [], "teacher": []}
    student = sdkit.build_model("mlp", data.input_shape, 10, seed=1)
    method = sdkit.Distill(sdkit.build_model("mlp", data.input_shape, 10, seed=0))

    def record(who):
        def hook(module, inputs, output):  # must return None, or the hook would replace the output
            if who == "teacher" or module.training:
                seen_by[who].append(inputs[0].clone())

        return hook

    student.register_forward_hook(record("student"))
    method.teacher.register_forward_hook(record("teacher"))
    sdkit.train(student, data, method=method, epochs=1, progress=False)
    assert len(seen_by["student"]) == len(seen_by["teacher"]) > 1
    for s, t in zip(seen_by["student"], seen_by["teacher"], strict=True):
        assert torch.equal(s, t)
    # and augmentation really happened: the batches are not plain training images
    assert not any(torch.equal(seen_by["student"][0][0], x) for x in data.train.x)


def test_same_seed_gives_identical_weights_and_different_seed_does_not(digits):
    def run(seed):
        model = sdkit.build_model("cnn", digits.input_shape, 10, seed=0)
        sdkit.train(model, digits, epochs=2, seed=seed, progress=False, device="cpu")
        return params_and_buffers(model)

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_born_again_generations_are_separate_models(digits):
    gens = sdkit.born_again(
        lambda seed: sdkit.build_model("mlp", digits.input_shape, 10, seed=seed),
        digits, generations=2, epochs=8, progress=False,
    )  # fmt: skip
    assert len(gens) == 3
    ids = [{id(p) for p in g.model.parameters()} for g in gens]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    assert all(g.metrics["accuracy"] > 0.9 for g in gens)
    with pytest.raises(ValueError, match="T must be"):
        sdkit.born_again(lambda s: sdkit.build_model("mlp", (1, 8, 8), 10), digits, T=0.0)


@pytest.mark.parametrize("optimizer, schedule", [("adamw", "cosine"), ("sgd", "constant")])
def test_other_optimizers_and_schedules_train(digits, optimizer, schedule):
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    history = sdkit.train(model, digits, epochs=4, optimizer=optimizer, schedule=schedule, lr=0.01 if
                          optimizer == "sgd" else None, label_smoothing=0.1, progress=False)  # fmt: skip
    assert max(history["val_accuracy"]) > 0.85


def test_onecycle_schedule_warms_up_then_anneals(digits):
    history = sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, epochs=8, progress=False)
    lrs = history["lr"]
    assert lrs[1] > lrs[0] and lrs[-1] < 1e-3 and max(lrs) <= 0.1 + 1e-9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -5}, "batch_size must be a positive integer"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"schedule": "step"}, "unknown schedule"),
        ({"select": "best_test"}, "unknown select"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"compile": "yes"}, "compile must be True or False, got compile='yes'"),
    ],
)
def test_bad_training_arguments(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, progress=False, **kwargs)


def test_bad_labels_in_data_are_caught_before_training(digits):
    bad = sdkit.Dataset(**{**digits.__dict__, "num_classes": 5})
    with pytest.raises(ValueError, match="data.train.y must lie in \\[0, 5\\)"):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), bad, progress=False)


def test_pskd_schedule_and_targets():
    method = sdkit.PSKD(alpha_T=0.8)
    data = sdkit.Dataset("toy", *(sdkit.Split(torch.zeros(4, 1, 1, 1), torch.tensor([0, 1, 1, 0])),) * 3, 2, ("a", "b"))
    method.setup(torch.nn.Identity(), TrainContext.of(data, epochs=5))
    assert [method.alpha_at(t) for t in range(5)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    y = torch.tensor([0, 1, 1, 0])
    batch = sdkit.Batch(torch.zeros(4, 1), y, torch.arange(4))
    loss0 = method.loss(None, batch, logits, epoch=0)  # epoch 0: one-hot targets = plain cross-entropy
    torch.testing.assert_close(loss0, torch.nn.functional.cross_entropy(logits, y))
    method.end_epoch(None, 0)
    assert bool(method.has_previous.all())
    new_logits = torch.zeros(4, 2)
    loss1 = method.loss(None, batch, new_logits, epoch=1)
    target = 0.8 * torch.nn.functional.one_hot(y, 2) + 0.2 * torch.softmax(logits, -1)
    expected = -(target * torch.log_softmax(new_logits, -1)).sum(-1).mean()
    torch.testing.assert_close(loss1, expected)
    # a sample missing from an epoch (dropped last batch) keeps its older prediction
    method.end_epoch(None, 1)
    partial = sdkit.Batch(torch.zeros(2, 1), y[:2], torch.arange(2))
    partial_logits = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    method.loss(None, partial, partial_logits, epoch=2)
    method.end_epoch(None, 2)
    torch.testing.assert_close(method.previous[:2], partial_logits.softmax(-1))
    torch.testing.assert_close(method.previous[2:], torch.full((2, 2), 0.5))  # from epoch 1's zero logits


def test_dropout_is_seeded_and_the_callers_random_state_is_untouched(digits):
    def run(caller_seed):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                    torch.nn.Dropout(0.5), torch.nn.Linear(64, 10))  # fmt: skip
        for p in model.parameters():
            torch.nn.init.constant_(p, 0.01)
        torch.manual_seed(caller_seed)  # whatever the caller's state, the same seed must give the same weights
        before = torch.get_rng_state()
        sdkit.train(model, digits, epochs=1, seed=5, progress=False)
        assert torch.equal(torch.get_rng_state(), before)
        return model.state_dict()

    a, b = run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kd_loss_keeps_float64():
    s = torch.randn(3, 4, dtype=torch.float64)
    assert sdkit.kd_loss(s, s.flip(0), 2.0).dtype == torch.float64
    assert sdkit.kd_loss(s.half(), s.flip(0).half(), 2.0).dtype == torch.float32


def test_cudnn_autotuner_is_on_while_training_and_restored_after(digits):
    seen = []
    before = torch.backends.cudnn.benchmark
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(model, digits, epochs=1, progress=False, device="cpu",
                on_epoch_end=lambda epoch, h: seen.append(torch.backends.cudnn.benchmark))  # fmt: skip
    assert seen == [True] and torch.backends.cudnn.benchmark == before


def test_compile_flag_runs_the_forward_pass_through_torch_compile(digits, monkeypatch):
    compiled = []
    real_compile = torch.compile

    def spy(module, *args, **kwargs):
        compiled.append(module)
        return real_compile(module, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    eager, fast = (sdkit.build_model("mlp", digits.input_shape, 10, seed=0) for _ in range(2))
    sdkit.train(eager, digits, epochs=2, progress=False, device="cpu")
    assert compiled == []
    sdkit.train(fast, digits, epochs=2, progress=False, device="cpu", compile=True)
    assert compiled == [fast]
    # the compiled graph computes the same function, up to float rounding in fused kernels
    for (name, a), b in zip(eager.state_dict().items(), fast.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=name)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_one_cycle_schedule_works_for_a_handful_of_steps(steps):
    # torch's OneCycleLR divides by zero when its warm-up phase has length 0 (pct_start * steps == 1)
    from sdkit.train import _schedule

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = _schedule("onecycle", opt, steps)
    used = []
    for _ in range(steps):
        used.append(opt.param_groups[0]["lr"])  # the rate this step trains with
        opt.step()
        sched.step()
    assert all(0 < lr <= 0.1 + 1e-12 for lr in used)
    if steps >= 3:  # warm up to the peak, then anneal
        assert max(used) > 0.04 and used[-1] < 0.01 * max(used)


def test_training_for_exactly_four_steps(digits):
    data = sdkit.load_dataset("digits", train_size=256)
    model = sdkit.build_model("mlp", data.input_shape, 10, seed=0)
    history = sdkit.train(model, data, epochs=1, batch_size=64, progress=False, device="cpu")
    assert len(history.records) == 1 and history["train_loss"][0] > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": sdkit.PSKD(), "T": 2.0}, "T=2.0 would be ignored: method=PSKD"),
        ({"method": sdkit.PSKD(), "alpha": 0.5}, "alpha=0.5 would be ignored"),
        ({"method": sdkit.PSKD(), "label_smoothing": 0.1}, "label_smoothing=0.1 would be ignored"),
        ({"T": 2.0}, "T=2.0 would be ignored without a teacher"),
        ({"alpha": 0.3}, "alpha=0.3 would be ignored without a teacher"),
        ({"momentm": 0.5}, "unknown setting\\(s\\) \\['momentm'\\]"),
    ],
)
def test_settings_the_objective_would_ignore_are_errors(digits, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, progress=False, **kwargs)


def test_config_object_and_keywords_give_the_same_run(digits):
    def run(**kwargs):
        model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
        history = sdkit.train(model, digits, progress=False, device="cpu", **kwargs)
        return model, history

    config = sdkit.TrainConfig(epochs=2, lr=0.05, seed=4)
    (a, ha), (b, hb) = run(config=config), run(epochs=2, lr=0.05, seed=4)
    assert ha.config == hb.config == config
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    (_, hc) = run(config=config, epochs=1)  # a keyword overrides the config's field
    assert hc.config.epochs == 1 and hc.config.lr == 0.05


def test_resume_compares_the_stored_config_and_rejects_a_checkpoint_without_one(tmp_path, digits):
    path = tmp_path / "run.pt"
    sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, epochs=1, checkpoint=path, progress=False)
    assert sdkit.load_checkpoint(path)["config"]["epochs"] == 1
    with pytest.raises(ValueError, match="lr=None.*this run has lr=0.05"):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, epochs=1, lr=0.05, checkpoint=path,
                    resume=True, progress=False)  # fmt: skip
    state = sdkit.load_checkpoint(path)
    del state["config"], state["epochs"]
    sdkit.save_checkpoint(path, state)
    with pytest.raises(ValueError, match="epochs=None"):
        sdkit.train(sdkit.build_model("mlp", digits.input_shape, 10), digits, epochs=1, checkpoint=path,
                    resume=True, progress=False)  # fmt: skip


def test_cskd_partners_follow_trains_seed_unless_the_method_sets_one(digits):
    def partners(train_seed, method_seed=None):
        method = sdkit.CSKD(seed=method_seed)
        model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
        sdkit.train(model, digits, method=method, epochs=1, seed=train_seed, progress=False, device="cpu")
        return method.generator.get_state()

    assert not torch.equal(partners(0), partners(1))
    assert torch.equal(partners(0, method_seed=7), partners(1, method_seed=7))


def test_train_and_predict_leave_the_models_memory_format_and_mode(digits):
    model = sdkit.build_model("cnn", digits.input_shape, 10, width=0.25).train()
    deep = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    sdkit.predict_logits(model, digits.test.x[:8])
    assert model.training and all(w.is_contiguous() for w in deep)
    sdkit.train(model, digits, epochs=1, progress=False, device="cpu")
    assert all(w.is_contiguous() for w in deep)
