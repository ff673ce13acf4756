"""Each self-distillation method's defining behaviour, checked against its formula."""

import pytest
import torch
import torch.nn.functional as F

import sdkit
from sdkit.methods import TrainContext
from sdkit.regularizers import virtual_teacher


def toy_data(n=12, classes=3, features=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    split = sdkit.Split(torch.randn(n, 1, 1, features, generator=g), torch.arange(n) % classes)
    return sdkit.Dataset("toy", split, split, split, classes, tuple("abc"[:classes]))


def manual_kl_t2(student, teacher, T):
    q, log_p = torch.softmax(teacher / T, -1), torch.log_softmax(student / T, -1)
    return T * T * (q * (q.log() - log_p)).sum(-1).mean()


def test_class_partners_are_other_samples_of_the_same_class():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1, 3])  # class 3 has a single member
    index = torch.arange(9)
    partners = sdkit.class_partners(labels, index, torch.Generator().manual_seed(0))
    assert torch.equal(labels[partners], labels[index])
    assert partners[8] == 8  # a lone sample is its own partner
    assert all(p != i for i, p in zip(index[:8].tolist(), partners[:8].tolist(), strict=True))
    again = sdkit.class_partners(labels, index, torch.Generator().manual_seed(0))
    assert torch.equal(partners, again)
    # over many draws every other same-class member shows up as a partner of sample 0
    g = torch.Generator().manual_seed(1)
    seen = {int(sdkit.class_partners(labels, torch.tensor([0]), g)) for _ in range(50)}
    assert seen == {2, 5}


def test_cskd_loss_is_ce_plus_classwise_kl():
    data = toy_data()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    method = sdkit.CSKD(T=4.0, lam=1.0, seed=3)
    method.setup(model, TrainContext.of(data, epochs=1))
    batch = sdkit.Batch(data.train.x[:6], data.train.y[:6], torch.arange(6))
    partners = sdkit.class_partners(data.train.y, batch.index, torch.Generator().manual_seed(3))
    logits = model(batch.x)
    expected = F.cross_entropy(logits, batch.y) + manual_kl_t2(logits, model(data.train.x[partners]).detach(), 4.0)
    torch.testing.assert_close(method.loss(model, batch, logits, 0), expected)


def test_virtual_teacher_and_tfkd_loss():
    y = torch.tensor([2, 0])
    q = virtual_teacher(y, 5, 0.9)
    torch.testing.assert_close(q[0], torch.tensor([0.025, 0.025, 0.9, 0.025, 0.025]))
    torch.testing.assert_close(q.sum(-1), torch.ones(2))
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 0.3], [1.0, 0.0, 0.0, -2.0, 0.5]])
    method = sdkit.TeacherFreeKD(correct_prob=0.9, T=4.0, alpha=0.5)
    batch = sdkit.Batch(torch.zeros(2), y, torch.arange(2))
    log_p = torch.log_softmax(logits / 4.0, -1)
    soft = 16.0 * (q * (q.log() - log_p)).sum(-1).mean()
    torch.testing.assert_close(method.loss(None, batch, logits, 0), 0.5 * F.cross_entropy(logits, y) + 0.5 * soft)
    with pytest.raises(ValueError, match="correct_prob"):
        sdkit.TeacherFreeKD(correct_prob=1.0)


def test_ema_update_formula_including_buffers():
    data = toy_data()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    method = sdkit.EMATeacher(ema_decay=0.9)
    method.setup(student, TrainContext.of(data, epochs=1))
    assert method.teacher is not student and not method.teacher.training
    assert [method.decay_at(k) for k in (1, 2, 9, 20)] == pytest.approx([0.5, 2 / 3, 0.9, 0.9])
    for _ in range(3):  # steps 1..3 use m = 1/2, 2/3, 3/4
        old_teacher = {k: v.clone() for k, v in method.teacher.state_dict().items()}
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        student.train()(torch.randn(8, 1, 1, 4))  # moves BatchNorm's running statistics and its counter
        method.after_step(student)
        m = method.decay_at(method.steps)
        for key, value in method.teacher.state_dict().items():
            s = student.state_dict()[key]
            expected = s if not value.is_floating_point() else m * old_teacher[key] + (1 - m) * s
            torch.testing.assert_close(value, expected, msg=key)
    with pytest.raises(ValueError, match="ema_decay"):
        sdkit.EMATeacher(ema_decay=1.0)


def test_ema_loss_ramps_the_soft_weight():
    data = toy_data()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    method = sdkit.EMATeacher(ema_decay=0.9, T=2.0, alpha=0.5)
    method.setup(student, TrainContext.of(data, epochs=5))
    assert [method.alpha_at(t) for t in range(5)] == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5])
    with torch.no_grad():
        student[1].weight.add_(1.0)  # make the student differ from its (older) average
    batch = sdkit.Batch(data.train.x, data.train.y, torch.arange(12))
    logits = student(batch.x)
    teacher_logits = method.teacher(batch.x)
    for epoch in (0, 4):
        a = method.alpha_at(epoch)
        expected = (1 - a) * F.cross_entropy(logits, batch.y) + a * manual_kl_t2(logits, teacher_logits, 2.0)
        torch.testing.assert_close(method.loss(student, batch, logits, epoch), expected)


def test_byot_heads_and_loss():
    model = sdkit.build_model("resnet8", (1, 8, 8), 10, aux_heads=True)
    assert len(model.aux_heads) == 2
    x, y = torch.randn(5, 1, 8, 8), torch.arange(5)
    logits, aux = model.train()(x, return_aux=True)
    assert [a.shape for a in aux.logits] == [(5, 10), (5, 10)]
    assert [f.shape for f in aux.features] == [(5, 64)] * 3
    assert not [k for k in vars(model) if k.startswith("last_")]  # nothing is left on the module
    method = sdkit.BYOT(T=3.0, alpha=0.3, beta=0.0)
    batch = sdkit.Batch(x, y, torch.arange(5))
    expected = F.cross_entropy(logits, y) + sum(
        0.7 * F.cross_entropy(a, y) + 0.3 * manual_kl_t2(a, logits.detach(), 3.0) for a in aux.logits
    )
    torch.testing.assert_close(method.loss(model, batch, method.forward(model, x), 0), expected)
    with_hint = sdkit.BYOT(T=3.0, alpha=0.3, beta=0.5)
    with_hint = with_hint.loss(model, batch, with_hint.forward(model, x), 0)
    hint = sum((f - aux.features[-1]).pow(2).sum(-1).mean() for f in aux.features[:-1])
    torch.testing.assert_close(with_hint, expected + 0.5 * hint)
    model.eval()(x)  # evaluation uses only the final classifier and does not need the heads
    with pytest.raises(ValueError, match="aux_heads=True needs a ResNet"):
        sdkit.build_model("cnn", (1, 8, 8), 10, aux_heads=True)


@pytest.mark.parametrize(
    "make", [sdkit.PSKD, sdkit.CSKD, sdkit.TeacherFreeKD, sdkit.EMATeacher, sdkit.BYOT, sdkit.DLB, sdkit.Mixup]
)
def test_every_method_trains_on_digits(digits, make):
    model = sdkit.build_model("resnet8", digits.input_shape, 10, aux_heads=make is sdkit.BYOT, width=0.5)
    history = sdkit.train(model, digits, method=make(), epochs=4, progress=False)
    assert history["val_accuracy"][-1] > 0.8


def test_byot_refuses_a_model_without_heads(digits):
    with pytest.raises(ValueError, match="BYOT needs a ResNet with auxiliary heads"):
        sdkit.train(sdkit.build_model("resnet8", (1, 8, 8), 10), digits, method=sdkit.BYOT(), progress=False)


def test_a_conv_teacher_is_put_in_the_students_channels_last_layout(digits):
    student, teacher = (sdkit.build_model("cnn", digits.input_shape, 10, seed=s) for s in (0, 1))
    method = sdkit.Distill(teacher)
    method.setup(student, TrainContext.of(digits, epochs=1))
    deep = [m.weight for m in method.teacher.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert deep and all(w.is_contiguous(memory_format=torch.channels_last) for w in deep)
    assert not any(w.is_contiguous() for w in deep)  # really converted, not contiguous in both layouts
    x = digits.test.x[:16]
    nhwc = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(method.teacher_logits(nhwc), teacher.eval()(x), atol=1e-5, rtol=1e-4)


def test_dlb_revisits_half_the_last_batch_and_matches_its_formula():
    # Shen et al. 2022: L_t = CE(z_t, y_t) + alpha * T^2 * KL(softmax(z_{t-1}(x_r) / T) || softmax(z_t(x_r) / T)),
    # where x_r are the samples carried over from step t - 1 and z_{t-1}(x_r) their (detached) logits then
    data = toy_data(n=12)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    method = sdkit.DLB(T=3.0, alpha=0.7)
    method.setup(model, TrainContext.of(data, epochs=1))
    first = sdkit.Batch(data.train.x[:4], data.train.y[:4], torch.arange(4))
    assert method.prepare(first) is first  # nothing to re-visit at the first step
    z1 = model(first.x)
    torch.testing.assert_close(method.loss(model, first, z1, 0), F.cross_entropy(z1, first.y))

    second = sdkit.Batch(data.train.x[4:8], data.train.y[4:8], torch.arange(4, 8))
    extended = method.prepare(second)
    assert extended.index.tolist() == [4, 5, 6, 7, 0, 1]  # the new batch, then half of the last one
    torch.testing.assert_close(extended.x[4:], first.x[:2])
    with torch.no_grad():  # the weights move between the steps (unevenly, so the softmax changes too)
        model[1].weight.add_(torch.arange(12.0).view(3, 4) / 10)
    z2 = model(extended.x)
    old = z1[:2].detach()
    expected = F.cross_entropy(z2, extended.y) + 0.7 * 9.0 * F.kl_div(
        F.log_softmax(z2[4:] / 3.0, -1), F.log_softmax(old / 3.0, -1), reduction="batchmean", log_target=True
    )
    torch.testing.assert_close(method.loss(model, extended, z2, 0), expected)
    assert float(manual_kl_t2(z2[4:], old, 3.0).detach()) > 1e-3  # the consistency term is really exercised
    torch.testing.assert_close(
        manual_kl_t2(z2[4:], old, 3.0),
        9.0
        * F.kl_div(
            F.log_softmax(z2[4:] / 3.0, -1), F.log_softmax(old / 3.0, -1), reduction="batchmean", log_target=True
        ),
    )
    method.end_epoch(model, 0)
    third = sdkit.Batch(data.train.x[8:], data.train.y[8:], torch.arange(8, 12))
    assert method.prepare(third) is third  # an epoch starts afresh
    with pytest.raises(ValueError, match="alpha"):
        sdkit.DLB(alpha=-1.0)


def test_mixup_mixes_inputs_and_labels_with_one_lambda():
    torch.manual_seed(0)
    data = toy_data(n=8)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    method = sdkit.Mixup(alpha=0.4)
    batch = sdkit.Batch(data.train.x, data.train.y, torch.arange(8))
    mixed = method.prepare(batch)
    lam, perm = method.lam, method.perm
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(8))
    torch.testing.assert_close(mixed.x, lam * batch.x + (1 - lam) * batch.x[perm])
    z = model(mixed.x)
    expected = lam * F.cross_entropy(z, batch.y) + (1 - lam) * F.cross_entropy(z, batch.y[perm])
    torch.testing.assert_close(method.loss(model, mixed, z, 0), expected)
    # lambda ~ Beta(alpha, alpha): its mean is 1/2 and its variance 1 / (4 (2 alpha + 1))
    lams = []
    for _ in range(4000):
        method.prepare(batch)
        lams.append(method.lam)
    lams = torch.tensor(lams)
    assert abs(float(lams.mean()) - 0.5) < 0.02 and abs(float(lams.var()) - 1 / (4 * 1.8)) < 0.01
    with pytest.raises(ValueError, match="alpha"):
        sdkit.Mixup(alpha=0.0)


def test_label_smoothing_targets_teacher_free_kds_virtual_teacher():
    data = toy_data(n=6, classes=3)
    method = sdkit.LabelSmoothing(correct_prob=0.8)
    method.setup(None, TrainContext.of(data, epochs=1))
    assert method.label_smoothing == pytest.approx(0.2 * 3 / 2)  # eps = (1 - p) C / (C - 1)
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    batch = sdkit.Batch(data.train.x, data.train.y, torch.arange(6))
    q = virtual_teacher(batch.y, 3, 0.8)  # 0.8 on the label, 0.1 elsewhere
    expected = -(q * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(method.loss(None, batch, logits, 0), expected)
    with pytest.raises(ValueError, match="correct_prob"):
        sdkit.LabelSmoothing(correct_prob=0.0)
