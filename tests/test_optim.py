"""Muon for convolution filters (``cifarzoo.training.optimizer``, ``fit(muon_lr=...)``): the
orthogonalization, the optimizer step against hand computations and torch.optim.SGD, groups,
training and resume."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import InterruptAt, TinyNet, synthetic_split
from flat_fit import fit
from hypothesis import given, settings
from hypothesis import strategies as st

import cifarzoo
from cifarzoo.training import Recipe
from cifarzoo.training.optimizer import MuonSGD, muon_param_groups, orthogonalize


def _matrix(rows: int, cols: int, condition: float, seed: int) -> torch.Tensor:
    """A random matrix whose singular values span ``condition`` (log-spaced)."""
    g = torch.Generator().manual_seed(seed)
    u, _, vt = torch.linalg.svd(torch.randn(rows, cols, generator=g), full_matrices=False)
    k = min(rows, cols)
    return (u * torch.logspace(0, -math.log10(condition), k)) @ vt


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 96),
    cols=st.integers(1, 96),
    condition=st.floats(1.0, 100.0),
    scale=st.floats(1e-4, 1e4),
    seed=st.integers(0, 2**16),
)
def test_orthogonalize_brings_singular_values_near_one(
    rows: int, cols: int, condition: float, scale: float, seed: int
) -> None:
    m = _matrix(rows, cols, condition, seed)
    out = orthogonalize(m * scale)
    assert out.shape == (rows, cols) and out.dtype == torch.float32
    sv = torch.linalg.svdvals(out.double())
    assert float(sv.min()) > 0.55 and float(sv.max()) < 1.25
    # the same singular vectors: out ~ U f(S) V^T, so out^T m is symmetric positive (semi)definite
    cross = (m.T.double() if rows >= cols else m.double()) @ (
        out.double() if rows >= cols else out.T.double()
    )
    torch.testing.assert_close(cross, cross.T, rtol=1e-3, atol=1e-4 * float(cross.abs().max()))
    # and it depends on the direction of the matrix only, not its scale
    torch.testing.assert_close(out, orthogonalize(m), rtol=1e-3, atol=1e-4)


def test_orthogonalize_wants_a_matrix() -> None:
    with pytest.raises(ValueError, match="2-D matrix"):
        orthogonalize(torch.ones(2, 3, 3))


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyNet(dropout=0.0)


def _loss(model: torch.nn.Module, seed: int) -> torch.Tensor:
    images, labels = synthetic_split(32, seed=seed)
    return F.cross_entropy(model(images.float() / 255), labels)


@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_groups_step_exactly_as_torch_sgd(nesterov: bool) -> None:
    ours, ref = _net(), _net()
    opt = MuonSGD(
        [{"params": ours.parameters(), "weight_decay": 5e-4}],
        lr=0.1,
        momentum=0.9,
        nesterov=nesterov,
    )
    ref_opt = torch.optim.SGD(
        ref.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4
    )
    for step in range(4):
        for model, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            _loss(model, step).backward()
            o.step()
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_muon_step_matches_a_hand_computation() -> None:
    model = _net()
    conv = model.conv.weight
    opt = MuonSGD(muon_param_groups(model, lr=0.1, muon_lr=0.02, weight_decay=5e-4), lr=0.1)
    grads = []
    expected = conv.detach().clone()
    buf = torch.zeros_like(expected)
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        assert conv.grad is not None
        g = conv.grad.clone()
        grads.append(g)
        buf = g.clone() if step == 0 else buf * 0.9 + g
        update = g + 0.9 * buf  # Nesterov; no weight decay on Muon groups
        expected = expected * (math.sqrt(8) / expected.norm())
        expected = expected - 0.02 * orthogonalize(update.reshape(8, -1)).reshape(expected.shape)
        opt.step()
        torch.testing.assert_close(conv.detach(), expected, rtol=1e-5, atol=1e-6)
    # each filter is rescaled before its step, so its norm stays near sqrt(out_channels)
    assert float(conv.detach().norm()) == pytest.approx(math.sqrt(8), rel=0.01)


def test_muon_groups_need_matrices() -> None:
    model = _net()
    with pytest.raises(ValueError, match="ndim >= 2"):
        MuonSGD([{"params": list(model.bn.parameters()), "muon": True}], lr=0.01)
    with pytest.raises(ValueError, match="lr > 0"):
        MuonSGD(model.parameters(), lr=0.0)


@pytest.mark.parametrize("name", ["resnet20", "seresnet20", "densenet_bc_100_k12", "lenet"])
def test_muon_groups_cover_every_parameter_once(name: str) -> None:
    model = cifarzoo.create_model(name)
    groups = muon_param_groups(model, lr=0.1, muon_lr=0.01, weight_decay=5e-4)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    for g in groups:
        if g.get("muon"):
            assert all(p.ndim == 4 for p in g["params"]) and g["lr"] == 0.01
        else:
            assert all(p.ndim < 4 for p in g["params"]) and g["lr"] == 0.1
            assert g["weight_decay"] == (5e-4 if g["params"][0].ndim == 2 else 0.0)


def test_fit_with_muon_trains_records_and_resumes_bit_identically(tmp_path: Path) -> None:
    train = synthetic_split(256, seed=0)
    kw: dict[str, Any] = dict(epochs=3, batch_size=32, muon_lr=0.02, quiet=True)
    torch.manual_seed(0)
    whole = InterruptAt(TinyNet(dropout=0.0), at=-1)
    start = copy.deepcopy(whole.state_dict())
    history = fit(whole, train, checkpoint_dir=tmp_path / "whole", **kw)
    assert history.train_loss[-1] < history.train_loss[0]
    saved = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    assert saved["config"]["muon_lr"] == 0.02
    assert [g["muon"] for g in saved["optimizer"]["param_groups"]] == [True, False, False]

    parted = InterruptAt(TinyNet(dropout=0.0), at=8 + 3)  # in epoch 2
    parted.load_state_dict(start)
    with pytest.raises(KeyboardInterrupt):
        fit(parted, train, checkpoint_dir=tmp_path / "parted", **kw)
    resumed = InterruptAt(TinyNet(dropout=0.0), at=-1)
    fit(resumed, train, checkpoint_dir=tmp_path / "parted", resume=True, **kw)
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    with pytest.raises(ValueError, match=r"recipe differs.*muon_lr"):
        fit(
            TinyNet(),
            train,
            epochs=3,
            batch_size=32,
            checkpoint_dir=tmp_path / "whole",
            resume=True,
        )


def test_muon_differs_from_sgd_and_off_by_default() -> None:
    train = synthetic_split(128, seed=1)
    results = []
    for muon_lr in (0.0, 0.02):
        torch.manual_seed(0)
        model = TinyNet(dropout=0.0)
        fit(model, train, epochs=1, batch_size=32, muon_lr=muon_lr, ema_decay=0.0, quiet=True)
        results.append(model.conv.weight.detach().clone())
    assert not torch.allclose(results[0], results[1])
    assert Recipe().muon_lr == 0.0


def test_negative_muon_lr_is_refused() -> None:
    with pytest.raises(ValueError, match="muon_lr must be >= 0"):
        Recipe(muon_lr=-0.01)


def test_muon_groups_ignore_weight_decay() -> None:
    # the filters' norm is reset every step, so decay would only be undone: it is not applied
    models = [_net(), _net()]
    for model, decay in zip(models, (0.0, 0.1), strict=True):
        opt = MuonSGD(
            [{"params": [model.conv.weight], "muon": True, "weight_decay": decay}], lr=0.02
        )
        for step in range(2):
            opt.zero_grad()
            _loss(model, step).backward()
            opt.step()
    torch.testing.assert_close(models[0].conv.weight, models[1].conv.weight, rtol=0, atol=0)
