"""Sharpness-aware minimization (``fit(sam_rho=...)``): the ascent step, frozen norm statistics,
and one whole training step checked against a hand computation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyNet, synthetic_split
from flat_fit import fit
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarzoo.metrics import model_mean_std
from cifarzoo.training import Recipe, frozen_norm_statistics, sam_ascent


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@settings(max_examples=20, deadline=None)
@given(rho=st.floats(1e-3, 10.0), seed=st.integers(0, 2**16))
def test_ascent_moves_the_weights_rho_along_the_gradient(rho: float, seed: int) -> None:
    torch.manual_seed(seed)
    model = TinyNet(dropout=0.0)
    images, labels = synthetic_split(16, seed=seed)
    F.cross_entropy(model(images.float() / 255), labels).backward()
    before = _params(model)
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    moves = sam_ascent(model, rho)
    deltas = [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]
    total = torch.sqrt(sum((d.double() ** 2).sum() for d in deltas))
    assert float(total) == pytest.approx(rho, rel=1e-4)
    cosines = [
        F.cosine_similarity(d.flatten(), g.flatten(), dim=0)
        for d, g in zip(deltas, grads, strict=True)
    ]
    assert all(float(c) > 0.999 for c in cosines if c.abs() > 0)
    for p, move in moves:  # stepping back restores the weights
        p.data.sub_(move)
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)


def test_ascent_without_gradients_changes_nothing() -> None:
    model = TinyNet()
    before = _params(model)
    assert sam_ascent(model, 0.05) == []
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_frozen_norm_statistics_keep_running_stats_but_normalize_with_the_batch() -> None:
    model = TinyNet(dropout=0.0).train()
    bn = model.bn
    assert isinstance(bn, torch.nn.BatchNorm2d)
    images = synthetic_split(32)[0].float() / 255
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    tracked = int(bn.num_batches_tracked)
    with frozen_norm_statistics(model):
        frozen_out = model(images)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert int(bn.num_batches_tracked) == tracked and bn.momentum == 0.1
    torch.testing.assert_close(frozen_out, model(images))  # batch statistics in both passes
    assert not torch.equal(bn.running_mean, mean)  # outside the context they update again


def test_sam_step_takes_the_gradient_at_the_ascent_point() -> None:
    torch.manual_seed(0)
    images, labels = synthetic_split(64, seed=0)
    model = TinyNet(bn=False, dropout=0.0)
    start = copy.deepcopy(model)
    rho, lr = 0.5, 0.1
    fit(
        model,
        (images, labels),
        epochs=1,
        batch_size=64,  # one step over every image: the batch order cannot matter
        lr=lr,
        momentum=0.0,
        nesterov=False,
        weight_decay=0.0,
        label_smoothing=0.0,
        warmup_epochs=0.0,
        ema_decay=0.0,
        crop_padding=0,
        flip=False,
        channels_last=False,
        sam_rho=rho,
        quiet=True,
        device="cpu",
        amp=False,  # fp32, as the expected step below (auto is bf16 on some CPUs)
    )
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in model_mean_std(start))
    x = (images.float() / 255 - mean) / std

    def grads(m: torch.nn.Module) -> list[torch.Tensor]:
        m.zero_grad()
        F.cross_entropy(m(x), labels).backward()
        return [p.grad.clone() for p in m.parameters() if p.grad is not None]

    g = grads(start)
    norm = torch.sqrt(sum((gi**2).sum() for gi in g))
    adversary = copy.deepcopy(start)
    with torch.no_grad():
        for p, gi in zip(adversary.parameters(), g, strict=True):
            p.add_(rho * gi / norm)
    g_sam = grads(adversary)
    for p, p0, gi, gs in zip(model.parameters(), start.parameters(), g, g_sam, strict=True):
        expected = p0.detach() - lr * gs
        torch.testing.assert_close(p.detach(), expected, rtol=1e-4, atol=1e-5)
        plain = p0.detach() - lr * gi
        assert not torch.allclose(expected, plain, rtol=1e-4, atol=1e-5) or gi.abs().max() == 0


def test_sam_trains_resumes_and_is_recorded(tmp_path: Path) -> None:
    train = synthetic_split(256, seed=0)
    model = TinyNet(dropout=0.0)
    history = fit(
        model, train, epochs=2, batch_size=32, sam_rho=0.05, checkpoint_dir=tmp_path, quiet=True
    )
    assert history.train_loss[-1] < history.train_loss[0]
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["config"]["sam_rho"] == 0.05
    with pytest.raises(ValueError, match=r"recipe differs.*sam_rho"):
        fit(TinyNet(), train, epochs=2, batch_size=32, checkpoint_dir=tmp_path, resume=True)


def test_negative_rho_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sam_rho must be in \[0, 1\]"):
        Recipe(sam_rho=-0.1)
