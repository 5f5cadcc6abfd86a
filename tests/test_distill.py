"""Knowledge distillation: soft labels in the loader, teacher targets in fit(), predict_logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import CLASS_TINTS, TinyNet, synthetic_split
from flat_fit import fit
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarzoo.cli import main
from cifarzoo.data import DeviceLoader, Split
from cifarzoo.metrics import _tta_logits, predict_logits
from cifarzoo.training import DistEnv, Recipe, RunOptions, Teacher
from cifarzoo.training.loop import _Trainer

SMALL: dict[str, Any] = dict(batch_size=32, lr=0.05, warmup_epochs=0.5, quiet=True, device="cpu")


def _class_of(x: torch.Tensor) -> torch.Tensor:
    """Recover the class of augmented synthetic batches from the mean colour (the tint)."""
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    pixels = (x * std + mean) * 255 - 49.5  # remove the noise's mean (0..99)
    colour = pixels.mean((2, 3))
    return torch.cdist(colour, CLASS_TINTS.float()).argmin(1)


@settings(max_examples=10, deadline=None)
@given(
    batch_size=st.integers(1, 40),
    padding=st.integers(0, 4),
    cutout=st.sampled_from([0, 8]),
    seed=st.integers(0, 1000),
)
def test_soft_labels_follow_their_images(
    batch_size: int, padding: int, cutout: int, seed: int
) -> None:
    images, labels = synthetic_split(80, seed=seed)
    soft = F.one_hot(labels, 10).float() * 0.7 + 0.03  # rows sum to 1, argmax = label
    loader = DeviceLoader(
        images,
        soft,
        batch_size=batch_size,
        train=True,
        crop_padding=padding,
        cutout=cutout,
        seed=seed,
    )
    for x, y in loader:
        assert y.dtype == torch.float32 and y.shape == (len(x), 10)
        assert torch.equal(y.argmax(1), _class_of(x))


def test_soft_labels_are_validated() -> None:
    images, labels = synthetic_split(20)
    with pytest.raises(ValueError, match=r"float probabilities \[N, C\]"):
        DeviceLoader(images, F.one_hot(labels, 10), batch_size=4)  # integer [N, C]
    with pytest.raises(ValueError, match=r"integer class indices \[N\]"):
        DeviceLoader(images, labels.float(), batch_size=4)  # float [N]
    with pytest.raises(ValueError, match=r"N=20"):
        DeviceLoader(images, torch.rand(19, 10), batch_size=4)


def test_predict_logits_matches_the_model_in_order() -> None:
    torch.manual_seed(0)
    images, labels = synthetic_split(50)
    model = TinyNet(dropout=0.0).eval()
    logits = predict_logits(model, (images, labels), tta_flip=True, batch_size=16)
    assert logits.shape == (50, 10) and logits.dtype == torch.float32
    loader = DeviceLoader(images, labels, batch_size=50)
    x, _ = next(iter(loader))
    with torch.no_grad():
        expected = _tta_logits(model, x, True, False)[0]
    torch.testing.assert_close(logits, expected)
    shuffled = DeviceLoader(images, labels, batch_size=16, train=True)
    with pytest.raises(ValueError, match="unshuffled"):
        predict_logits(model, shuffled)


def test_distilling_from_confident_correct_logits_equals_hard_label_training() -> None:
    (images, labels), ev = synthetic_split(256), Split(*synthetic_split(64, seed=1))
    common: dict[str, Any] = dict(epochs=2, ema_decay=0.0, label_smoothing=0.1, **SMALL)
    torch.manual_seed(0)
    plain = TinyNet(dropout=0.0)
    fit(plain, (images, labels), eval_data=ev, **common)
    torch.manual_seed(0)
    student = TinyNet(dropout=0.0)
    confident = 1e4 * F.one_hot(labels, 10).float()  # softmax: exactly the one-hot label
    fit(student, (images, labels), eval_data=ev, teacher=confident, distill_weight=1.0, **common)
    for a, b in zip(plain.state_dict().values(), student.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _training_targets(
    teacher: Teacher, data: tuple[torch.Tensor, torch.Tensor], **recipe: float
) -> torch.Tensor:
    """The per-image targets fit() trains on (the label rows of its loader)."""
    cfg = Recipe(batch_size=16, **recipe)
    cpu, env = torch.device("cpu"), DistEnv.from_env()
    options = RunOptions(device="cpu", quiet=True, amp=False)  # the teacher in fp32 everywhere
    trainer = _Trainer(TinyNet(), data, cfg, options, None, cpu, env, teacher)
    return trainer.loader._labels


def test_soft_targets_mix_labels_and_the_tempered_teacher() -> None:
    images, labels = synthetic_split(64)
    teacher = TinyNet(dropout=0.0).eval()
    targets = _training_targets(
        teacher, (images, labels), distill_weight=0.3, distill_temperature=4.0
    )
    logits = predict_logits(teacher, (images, labels), tta_flip=True)
    expected = 0.7 * F.one_hot(labels, 10) + 0.3 * torch.softmax(logits / 4, 1)
    torch.testing.assert_close(targets, expected)
    torch.testing.assert_close(targets.sum(1), torch.ones(64))


def test_an_ensemble_teacher_averages_probabilities() -> None:
    images, labels = synthetic_split(64)
    torch.manual_seed(0)
    members = [TinyNet(dropout=0.0).eval() for _ in range(3)]
    targets = _training_targets(members, (images, labels), distill_weight=1.0)
    probs = [torch.softmax(predict_logits(m, (images, labels), tta_flip=True), 1) for m in members]
    torch.testing.assert_close(targets, sum(probs) / 3)


def test_distillation_needs_a_teacher_and_a_weight() -> None:
    data = synthetic_split(64)
    with pytest.raises(ValueError, match=r"distill_weight=0\.0"):
        fit(TinyNet(), data, epochs=1, teacher=torch.zeros(64, 10), **SMALL)
    with pytest.raises(ValueError, match="teacher=None"):
        fit(TinyNet(), data, epochs=1, distill_weight=0.5, **SMALL)
    with pytest.raises(ValueError, match=r"\[64, num_classes\]"):
        fit(TinyNet(), data, epochs=1, teacher=torch.zeros(63, 10), distill_weight=0.5, **SMALL)
    with pytest.raises(ValueError, match="distill_temperature"):
        Recipe(distill_weight=0.5, distill_temperature=0.0)


def test_cli_trains_a_student_from_a_teacher_run(fake_cifar_root: Path, tmp_path: Path) -> None:
    base = ["--data", str(fake_cifar_root), "--batch-size", "64", "--train-subset", "320"]
    base += ["--epochs", "1", "--device", "cpu", "--quiet", "--no-tta"]
    assert main(["train", "lenet", *base, "--out", str(tmp_path / "teacher")]) == 0
    student = tmp_path / "student"
    teacher = f"lenet={tmp_path / 'teacher'}"
    args = ["train", "lenet", *base, "--out", str(student), "--teacher", teacher]
    args += ["--teacher", teacher, "--distill-temperature", "2"]  # an ensemble of two
    assert main(args) == 0
    metrics = json.loads((student / "metrics.json").read_text())
    digest = (tmp_path / "teacher" / "model.safetensors.sha256").read_text().split()[0]
    assert metrics["teacher"] == [f"lenet (model.safetensors, sha256 {digest})"] * 2
    assert metrics["recipe"]["distill_weight"] == 0.5
    assert metrics["recipe"]["distill_temperature"] == 2.0
    plain = tmp_path / "plain"
    assert main(["train", "lenet", *base, "--out", str(plain)]) == 0
    assert json.loads((plain / "metrics.json").read_text())["teacher"] is None
