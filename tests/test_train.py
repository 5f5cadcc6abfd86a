"""Training (fit, resume, interrupts, NaN), evaluation, checkpoints, weights files and plots."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import CLASS_TINTS, InterruptAt, TinyNet, synthetic_split
from flat_fit import fit
from torch import nn

from cifarzoo.checkpoint import (
    CHECKPOINT_NAME,
    ChecksumError,
    atomic_write,
    load_checkpoint,
    load_weights,
    save_weights,
)
from cifarzoo.constants import CIFAR10_MEAN, CIFAR10_STD
from cifarzoo.data import DeviceLoader, Split, load_cifar10
from cifarzoo.metrics import EvalResult, _tta_logits, eval_batch_size, evaluate, predict_logits
from cifarzoo.training import (
    DataMismatchError,
    History,
    LRSchedule,
    NonFiniteLossError,
    Recipe,
    RunOptions,
    read_checkpoint,
    split_settings,
)
from cifarzoo.training import fit as fit_with
from cifarzoo.training.optimizer import param_groups

# amp off: fp32 on every CPU, as evaluate() measures (auto is bf16 on CPUs with bf16 instructions)
SMALL: dict[str, Any] = dict(
    batch_size=32, lr=0.05, warmup_epochs=0.5, quiet=True, device="cpu", amp=False
)


def _data(n: int = 256) -> tuple[tuple[torch.Tensor, torch.Tensor], Split]:
    train = synthetic_split(n, seed=0)
    ev = synthetic_split(100, seed=1)
    return train, Split(*ev)


def test_fit_learns_and_returns_history(tmp_path: Path) -> None:
    torch.manual_seed(0)
    train, ev = _data(320)
    model = TinyNet(dropout=0.0)
    h = fit(model, train, eval_data=ev, epochs=4, ema_decay=0.0, tta_flip=False, **SMALL)
    assert isinstance(h, History) and h.epoch == [1, 2, 3, 4]
    assert len(h.step_loss) == 4 * (320 // 32)
    assert len(h.train_loss) == len(h.eval_acc) == len(h.lr) == len(h.seconds) == 4
    assert h.eval_split == "eval"
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.eval_acc[-1] is not None and h.eval_acc[-1] > 0.5  # chance is 0.1
    assert all(s > 0 for s in h.seconds)
    h.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json") == h
    assert json.loads((tmp_path / "h.json").read_text())["epoch"] == [1, 2, 3, 4]


def test_curves_are_one_forward_pass_with_tta_on(capsys: pytest.CaptureFixture[str]) -> None:
    """With a test-time augmentation on, the recorded curves (and the progress bar's
    ``eval_acc``) are still what ``model(x)`` gives; the TTA figure is shown beside, named."""
    torch.manual_seed(0)
    train, ev = _data(64)
    model = TinyNet(dropout=0.0)
    options = {**SMALL, "quiet": False}
    h = fit(model, train, eval_data=ev, epochs=1, ema_decay=0.0, tta_flip=True, **options)
    single, tta = evaluate(model, ev), evaluate(model, ev, tta_flip=True)
    assert single.loss != tta.loss  # so that the check below tells them apart
    assert (h.eval_acc, h.eval_loss) == ([single.accuracy], [single.loss])
    bar = capsys.readouterr().err
    assert f"eval_acc={100 * single.accuracy:.2f}%" in bar
    assert f"eval_tta_acc={100 * tta.accuracy:.2f}%" in bar


def test_schedule_shapes() -> None:
    s = LRSchedule("onecycle", warmup_steps=10, total_steps=110)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5) and s(110) == 0.0
    c = LRSchedule("cosine", warmup_steps=0, total_steps=100)
    assert c(0) == pytest.approx(1.0) and c(50) == pytest.approx(0.5) and c(100) == 0.0


def test_no_weight_decay_on_norms_and_biases() -> None:
    groups = param_groups(TinyNet(), 5e-4)
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in groups[0]["params"])
    assert {p.ndim for p in groups[1]["params"]} == {1}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_and_resume_is_bit_identical(tmp_path: Path, signum: int) -> None:
    train, ev = _data(256)
    kw: dict[str, Any] = dict(eval_data=ev, epochs=3, ema_decay=0.9, **SMALL)
    torch.manual_seed(0)
    ref_model = InterruptAt(TinyNet(), at=-1, signal=True)
    init = _state(ref_model)
    ref = fit(ref_model, train, checkpoint_dir=tmp_path / "ref", **kw)

    # Interrupted in the middle of epoch 2 (step 3 of 8), by a real signal to this process.
    torch.manual_seed(123)  # a different global RNG state must not matter after resuming
    model = InterruptAt(TinyNet(), at=8 + 3, signal=signum)
    model.load_state_dict(init)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, checkpoint_dir=tmp_path / "run", **kw)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # given back after the run
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 3)
    assert len(ckpt["history"]["epoch"]) == 1

    # fresh weights: all state comes from disk
    resumed_model = InterruptAt(TinyNet(), at=-1, signal=True)
    got = fit(resumed_model, train, checkpoint_dir=tmp_path / "run", resume=True, **kw)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    a, b = ref.to_dict(), got.to_dict()
    a.pop("seconds")
    b.pop("seconds")
    assert a == b
    ck_a = load_checkpoint(tmp_path / "ref" / CHECKPOINT_NAME)
    ck_b = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    for part in ("model", "ema"):
        sa = ck_a[part] if part == "model" else ck_a[part]["module"]
        sb = ck_b[part] if part == "model" else ck_b[part]["module"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part
    # after training the model holds the EMA weights (what eval_acc measured)
    assert all(torch.equal(v, ck_a["ema"]["module"][k]) for k, v in ref_model.state_dict().items())
    assert not all(
        torch.equal(v, ck_a["model"][k])
        for k, v in ref_model.state_dict().items()
        if v.is_floating_point()
    )


class _Stop(Exception):
    pass


class _StopAfter(nn.Module):
    """Wraps a model; raises (like a crash) in training forward call number ``after + 1``."""

    def __init__(self, inner: nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                raise _Stop
        return self.inner(x)


def test_resume_after_a_crash_and_recipe_check(tmp_path: Path) -> None:
    train, ev = _data(128)
    kw: dict[str, Any] = dict(eval_data=ev, epochs=2, **SMALL)
    torch.manual_seed(0)
    model = _StopAfter(TinyNet(), after=10**9)
    init = _state(model)
    full = fit(model, train, checkpoint_dir=tmp_path / "a", **kw)
    crashed = _StopAfter(TinyNet(), after=4 + 1)  # 4 steps per epoch: dies in epoch 2
    crashed.load_state_dict(init)
    with pytest.raises(_Stop):
        fit(crashed, train, checkpoint_dir=tmp_path / "b", **kw)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 1
    again = _StopAfter(TinyNet(), after=10**9)
    got = fit(again, train, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert got.eval_acc == full.eval_acc and got.step_loss == full.step_loss
    with pytest.raises(ValueError, match=r"recipe differs.*lr"):
        fit(TinyNet(), train, checkpoint_dir=tmp_path / "b", resume=True, **{**kw, "lr": 0.5})


class _InfAfter(nn.Module):
    def __init__(self, inner: nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * float("inf")
        return out


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    train, _ = _data(128)
    model = _InfAfter(TinyNet(), after=4 + 2)  # 4 steps per epoch: breaks in epoch 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3.*last good checkpoint"):
        fit(model, train, epochs=3, checkpoint_dir=tmp_path, **SMALL)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_huge_lr_is_caught(tmp_path: Path) -> None:
    train, _ = _data(128)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written"):
        fit(
            TinyNet(),
            train,
            epochs=2,
            checkpoint_dir=tmp_path,
            **{**SMALL, "lr": 1e30, "warmup_epochs": 0},
        )
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_fit_takes_a_recipe_and_run_options() -> None:
    train, _ = _data(64)
    recipe = Recipe(epochs=1, batch_size=64, ema_decay=0.0)
    h = fit_with(TinyNet(), train, recipe, RunOptions(tta_flip=False, quiet=True, device="cpu"))
    assert len(h.step_loss) == 1 and h.eval_acc == [None]
    with pytest.raises(ValueError, match="schedule"):
        Recipe(schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eval_every"):
        RunOptions(eval_every=0)
    # flat keywords (split_settings): a name of neither is refused
    with pytest.raises(TypeError, match=r"unknown training setting\(s\) epoch;"):
        split_settings({"epoch": 1})


# -- evaluate --------------------------------------------------------------------------------


class _Const(nn.Module):
    """Logits that do not depend on the image."""

    num_classes = 10

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


class _Oracle(nn.Module):
    """Nearest class colour (see ``CLASS_TINTS``); flip-invariant."""

    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(CIFAR10_MEAN) * 255
        std = torch.tensor(CIFAR10_STD) * 255
        self.register_buffer("centroids", (CLASS_TINTS.float() + 49.5 - mean) / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean((2, 3))  # [B, 3]
        return -10 * torch.cdist(m, self.centroids)


def test_evaluate_perfect_and_constant_models() -> None:
    ev = Split(*synthetic_split(200, seed=3))
    perfect = evaluate(_Oracle(), ev, tta_flip=True, batch_size=64)
    assert isinstance(perfect, EvalResult)
    assert perfect.accuracy == 1.0 and perfect.per_class_accuracy == [1.0] * 10
    cm = torch.tensor(perfect.confusion_matrix)
    assert torch.equal(cm, torch.diag(torch.full((10,), 20)))
    const = evaluate(_Const([5.0] + [0.0] * 9), ev)
    assert const.accuracy == pytest.approx(0.1)
    assert const.per_class_accuracy == [1.0] + [0.0] * 9
    assert [row[0] for row in const.confusion_matrix] == [20] * 10
    p0 = torch.softmax(torch.tensor([5.0] + [0.0] * 9), 0)[0].item()
    assert const.ece == pytest.approx(abs(p0 - 0.1), abs=1e-6)  # one bin, conf p0, acc 0.1
    lsm = torch.log_softmax(torch.tensor([5.0] + [0.0] * 9), 0)
    assert const.loss == pytest.approx(-(0.1 * lsm[0] + 0.9 * lsm[1]).item(), rel=1e-5)
    uniform = evaluate(_Const([0.0] * 10), ev)
    assert uniform.ece == pytest.approx(0.0, abs=1e-6)
    d = perfect.to_dict()
    assert d["accuracy"] == 1.0 and d["per_class_accuracy"]["airplane"] == 1.0
    assert d["tta_flip"] is True and len(d["confusion_matrix"]) == 10
    assert "airplane" in perfect.table()


def test_evaluate_restores_training_mode() -> None:
    m = TinyNet()
    m.train()
    evaluate(m, synthetic_split(20))
    assert m.training


def test_tta_flip_averages_mirrored_logits() -> None:
    class LeftRight(nn.Module):
        num_classes = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right = x[..., :16].mean((1, 2, 3)), x[..., 16:].mean((1, 2, 3))
            return torch.stack([left - right, right - left], 1)

    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    images[..., :16] = 255
    labels = torch.zeros(4, dtype=torch.long)
    plain = evaluate(LeftRight(), (images, labels), classes=["l", "r"])
    tta = evaluate(LeftRight(), (images, labels), tta_flip=True, classes=["l", "r"])
    assert plain.accuracy == 1.0 and plain.loss < 1e-3
    assert tta.loss == pytest.approx(float(torch.log(torch.tensor(2.0))), rel=1e-5)


def test_tta_translate_weighs_the_image_half_and_each_diagonal_shift_a_quarter() -> None:
    class Probe(nn.Module):
        """Logit 0 is the input pixel at (1, 1) of channel 0: it tells which view came in."""

        num_classes = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = x[:, 0, 1, 1]
            return torch.stack([v, torch.zeros_like(v)], 1)

    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32) / 1000
    got = _tta_logits(Probe(), x, flip=False, translate=True)[0][:, 0]
    # shifts by (-1, -1) and (+1, +1) move pixels (0, 0) and (2, 2) to (1, 1)
    want = x[:, 0, 1, 1] / 2 + (x[:, 0, 0, 0] + x[:, 0, 2, 2]) / 4
    torch.testing.assert_close(got, want)
    mirror = x.flip(3)
    got_flip, plain = _tta_logits(Probe(), x, flip=True, translate=True)
    got_flip = got_flip[:, 0]
    assert torch.equal(plain[:, 0], x[:, 0, 1, 1])  # the image alone, one of the views
    want_mirror = mirror[:, 0, 1, 1] / 2 + (mirror[:, 0, 0, 0] + mirror[:, 0, 2, 2]) / 4
    torch.testing.assert_close(got_flip, (want + want_mirror) / 2)
    assert torch.equal(_tta_logits(Probe(), x, flip=False, translate=False)[0][:, 0], x[:, 0, 1, 1])


def test_evaluate_with_translate_tta_reports_it() -> None:
    torch.manual_seed(0)
    ev = synthetic_split(40)
    res = evaluate(TinyNet(), ev, tta_flip=True, tta_translate=True)
    plain = evaluate(TinyNet(), ev)
    assert res.tta_translate and res.to_dict()["tta_translate"] is True
    assert "(flip + translate TTA)" in res.table() and "TTA" not in plain.table()
    assert res.num_samples == 40


@pytest.mark.parametrize(("flip", "translate"), [(True, False), (False, True), (True, True)])
def test_single_pass_from_the_tta_passes_equals_an_evaluation_without_tta(
    flip: bool, translate: bool
) -> None:
    torch.manual_seed(0)
    model, ev = TinyNet(), synthetic_split(50, seed=2)
    res = evaluate(
        model, ev, tta_flip=flip, tta_translate=translate, batch_size=16, single_pass=True
    )
    assert res.single_pass == evaluate(model, ev, batch_size=16)
    assert (res.tta_flip, res.tta_translate) == (flip, translate)
    tta_only = evaluate(model, ev, tta_flip=flip, tta_translate=translate, batch_size=16)
    assert dataclasses.replace(res, single_pass=None) == tta_only
    assert evaluate(model, ev, single_pass=True).single_pass is None  # nothing else to measure


def test_the_default_evaluation_batch_is_small_on_a_cpu_and_does_not_change_the_results() -> None:
    assert eval_batch_size(torch.device("cpu")) == 100
    assert eval_batch_size(torch.device("cuda")) == 1000
    torch.manual_seed(0)
    model, ev = TinyNet().eval(), synthetic_split(250, seed=3)  # 100 + 100 + a last 50
    default = predict_logits(model, ev, tta_flip=True)
    torch.testing.assert_close(default, predict_logits(model, ev, tta_flip=True, batch_size=250))
    assert evaluate(model, ev).accuracy == evaluate(model, ev, batch_size=250).accuracy


def test_resume_accepts_a_checkpoint_written_before_a_recipe_field_existed(tmp_path: Path) -> None:
    train, ev = _data(64)
    kw: dict[str, Any] = dict(eval_data=ev, epochs=2, checkpoint_dir=tmp_path, **SMALL)
    torch.manual_seed(0)
    fit(TinyNet(), train, **kw)
    path = tmp_path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["config"]["sam_rho"]  # a recipe field the checkpoint predates: its default
    torch.save(state, path)
    # test-time augmentation is no part of the recipe: another one resumes
    h = fit(TinyNet(), train, resume=True, **{**kw, "tta_translate": True})
    assert h.epoch == [1, 2]
    state["config"]["epochs"] = 3
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"recipe differs \(epochs: checkpoint 3 vs now 2\)"):
        fit(TinyNet(), train, resume=True, **kw)
    assert fit(TinyNet(), train, resume=True, **{**kw, "epochs": 3}).epoch == [1, 2, 3]


# -- files -----------------------------------------------------------------------------------


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temp file left behind
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_weights_sha256_sidecar(tmp_path: Path) -> None:
    model = TinyNet()
    path = tmp_path / "model.safetensors"
    digest = save_weights(model.state_dict(), path)
    assert (tmp_path / "model.safetensors.sha256").read_text() == f"{digest}  model.safetensors\n"
    loaded = load_weights(path)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="does not match"):
        load_weights(path)


def test_plots_are_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from cifarzoo.plots import save_training_plots

    h = History(
        epoch=[1, 2],
        train_loss=[2.0, 1.5],
        train_acc=[0.2, 0.4],
        eval_loss=[1.9, None],
        eval_acc=[0.3, None],
        lr=[0.1, 0.05],
        seconds=[1.0, 1.0],
        step_loss=[2.1, 1.9, 1.6, 1.4],
    )
    paths = save_training_plots(h, tmp_path, per_class=[0.5] * 10)
    assert [p.name for p in paths] == ["loss.png", "accuracy.png", "per_class.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_the_accuracy_plot_names_the_last_evaluation_not_the_best() -> None:
    pytest.importorskip("matplotlib")
    from cifarzoo.plots import accuracy_axes, pyplot

    h = History(
        epoch=[1, 2, 3],
        train_loss=[2.0, 1.5, 1.4],
        train_acc=[0.2, 0.4, 0.5],
        eval_loss=[1.9, 1.2, 1.3],
        eval_acc=[0.3, 0.6612, 0.5837],
        lr=[0.1, 0.05, 0.0],
        seconds=[1.0] * 3,
    )
    fig, ax = accuracy_axes(h)
    try:
        assert [t.get_text() for t in ax.texts] == ["last: 58.37%"]
        assert ax.texts[0].xy == (3, pytest.approx(58.37))
        assert not ax.lines[2:]  # no line marks the best epoch
    finally:
        pyplot().close(fig)


def test_plots_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from cifarzoo import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'cifarzoo\[plot\]'"):
        plots.plot_loss(History(), tmp_path / "x.png")


# -- real data -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
def test_lenet_learns_cifar10_in_one_short_epoch(cifar10_root: Path) -> None:
    from cifarzoo.models import create_model

    data = load_cifar10(cifar10_root, name="CIFAR-10 (JPEG mirror)")
    torch.manual_seed(0)
    model = create_model("lenet")
    h = fit(
        model,
        data,
        epochs=1,
        batch_size=128,
        lr=0.05,
        warmup_epochs=0.2,
        ema_decay=0.0,
        tta_flip=False,
        quiet=True,
        device="cpu",
        amp=False,  # fp32, as evaluate() below measures
    )
    assert h.train_acc[0] > 0.2 and h.eval_split == "test"
    result = evaluate(model, data.test)
    assert result.accuracy == h.eval_acc[0]
    assert result.accuracy > 0.35, result.table()


# -- bad input and resuming safely -----------------------------------------------------------


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"^epochs must be >= 1, got 0$"):
        Recipe(epochs=0)
    with pytest.raises(ValueError, match=r"^lr must be > 0, got -0.1$"):
        Recipe(lr=-0.1)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        Recipe(batch_size=0)
    with pytest.raises(ValueError, match=r"^label_smoothing must be in \[0, 1\], got 1.5$"):
        Recipe(label_smoothing=1.5)


def test_labels_out_of_range_are_a_clear_error() -> None:
    im = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    bad = torch.tensor([0, 1, 2, 10])
    with pytest.raises(ValueError, match=r"class indices in 0\.\.9 \(the model has 10 classes\)"):
        evaluate(TinyNet(), (im, bad))
    with pytest.raises(ValueError, match=r"training labels must be class indices in 0\.\.9"):
        fit(TinyNet(), (im, bad), epochs=1, **{**SMALL, "batch_size": 2})
    with pytest.raises(ValueError, match=r"eval labels must be class indices in 0\.\.9"):
        fit(TinyNet(), (im, bad % 10), eval_data=(im, bad), epochs=1, **{**SMALL, "batch_size": 2})
    soft = torch.full((4, 5), 0.2)
    with pytest.raises(ValueError, match=r"probabilities for 5 classes .* the model has 10"):
        fit(TinyNet(), (im, soft), epochs=1, **{**SMALL, "batch_size": 2})

    class Anonymous(nn.Module):  # no num_classes attribute: checked against its outputs
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean((2, 3)))

    with pytest.raises(ValueError, match=r"logits with at least 8 .*largest label is 7"):
        fit(Anonymous(), (im, torch.tensor([0, 1, 2, 7])), epochs=1, **{**SMALL, "batch_size": 2})
    with pytest.raises(ValueError, match=r"logits of shape \[4, 4\], but 10 classes"):
        evaluate(Anonymous(), (im, torch.tensor([0, 1, 2, 3])))
    assert evaluate(Anonymous(), (im, torch.tensor([0, 1, 2, 3])), num_classes=4).num_samples == 4


def test_a_model_without_classifier_is_named_as_such() -> None:
    import cifarzoo

    im = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 9])
    backbone = cifarzoo.lenet(num_classes=0)
    fix = r"no classifier \(num_classes=0.*num_classes=10 or call model\.reset_classifier\(10\)"
    with pytest.raises(ValueError, match="^training labels need class logits, but .*" + fix):
        fit(backbone, (im, labels), epochs=1, **{**SMALL, "batch_size": 2})
    with pytest.raises(ValueError, match=fix):
        evaluate(backbone, (im, labels))
    with pytest.raises(ValueError, match=fix):
        evaluate(backbone, DeviceLoader(im, labels, batch_size=2))


def _checkpoint(tmp_path: Path) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """Training data and fit keywords whose checkpoint is in tmp_path (after 1 epoch)."""
    train, _ = _data(64)
    kw: dict[str, Any] = dict(epochs=1, checkpoint_dir=tmp_path, **SMALL)
    fit(TinyNet(), train, **kw)
    return train, kw


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:1000],  # truncated: torch's zip reader fails
        lambda data: b"not a checkpoint",  # the unpickler fails
        lambda data: b"",  # EOFError
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_corrupt_checkpoint_names_the_file_and_the_fix(tmp_path: Path, damage: Any) -> None:
    train, kw = _checkpoint(tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    mapped_config = read_checkpoint(path, mmap=True)["config"]
    assert Recipe.from_dict(mapped_config) == Recipe.from_dict(read_checkpoint(path)["config"])
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError) as e:
        fit(TinyNet(), train, resume=True, **kw)
    with pytest.raises(ValueError) as mapped:  # the CLI's look at the recipe maps the file
        read_checkpoint(path, mmap=True)
    for msg in (str(e.value), str(mapped.value)):
        assert str(path) in msg and "not a readable cifarzoo training checkpoint" in msg
        assert "train with overwrite=True (CLI: --overwrite) instead of resume=True" in msg
    assert len(fit(TinyNet(), train, overwrite=True, **kw)) == 1  # the fix it names works


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_checkpoint_is_not_called_corrupt(tmp_path: Path) -> None:
    train, kw = _checkpoint(tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.chmod(0)
    try:
        with pytest.raises(PermissionError):
            fit(TinyNet(), train, resume=True, **kw)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied", "checkpoint.pt"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory"),
    ],
)
def test_errors_other_than_the_format_pass_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """A valid checkpoint that cannot be read now (no permission, no memory on the device) is
    not called corrupt: the user must not be told to delete it."""
    from cifarzoo.training import state as state_module

    train, kw = _checkpoint(tmp_path)

    def fail(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(state_module, "load_checkpoint", fail)
    with pytest.raises(type(error)) as e:
        fit(TinyNet(), train, resume=True, **kw)
    assert e.value is error


def test_resume_refuses_other_data(tmp_path: Path) -> None:
    train, ev = _data(128)
    kw: dict[str, Any] = dict(eval_data=ev, epochs=2, checkpoint_dir=tmp_path, **SMALL)
    fit(TinyNet(), train, **{**kw, "epochs": 1})  # a checkpoint after epoch 1 of ... 1
    path = tmp_path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    state["config"]["epochs"] = 2  # as if interrupted after epoch 1 of 2
    torch.save(state, path)
    assert state["data"]["train_images"] == 128 and state["data"]["eval_images"] == 100
    assert len(state["data"]["train_digest"]) == len(state["data"]["eval_digest"]) == 16

    more = synthetic_split(160, seed=0)
    with pytest.raises(DataMismatchError, match=r"training images: checkpoint 128 vs now 160"):
        fit(TinyNet(), more, resume=True, **kw)
    other = synthetic_split(128, seed=5)  # same size, other images
    with pytest.raises(DataMismatchError, match="training images or labels differ"):
        fit(TinyNet(), other, resume=True, **kw)
    with pytest.raises(DataMismatchError, match=r"eval \(100 images\) vs now none \(no images\)"):
        fit(TinyNet(), train, resume=True, **{**kw, "eval_data": None})
    nhwc = (train[0].permute(0, 2, 3, 1).contiguous(), train[1])  # the same data, other layout
    h = fit(TinyNet(), nhwc, resume=True, **kw)
    assert h.epoch == [1, 2]


def test_checkpoint_without_data_fingerprint_still_resumes(tmp_path: Path) -> None:
    train, ev = _data(64)
    kw: dict[str, Any] = dict(eval_data=ev, epochs=2, checkpoint_dir=tmp_path, **SMALL)
    fit(TinyNet(), train, **{**kw, "epochs": 1})
    path = tmp_path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["data"]  # as written before the fingerprint existed
    state["config"]["epochs"] = 2
    torch.save(state, path)
    assert fit(TinyNet(), synthetic_split(96, seed=3), resume=True, **kw).epoch == [1, 2]


class _InfAndSigint(nn.Module):
    """Logits become inf from training call ``bad`` on; SIGINT arrives during that call."""

    def __init__(self, inner: nn.Module, bad: int) -> None:
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.bad:
                out = out * float("inf")
            if self.calls == self.bad:
                os.kill(os.getpid(), signal.SIGINT)
        return out


def test_ctrl_c_after_an_unchecked_nan_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cifarzoo.training import loop as train_module

    bars: list[Any] = []

    class Recorded(train_module.Progress):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(train_module, "Progress", Recorded)
    # As on a GPU: the loss is not looked at after every step.
    monkeypatch.setattr(train_module, "SYNC_EVERY_CPU", 100)
    train, _ = _data(128)  # 4 steps per epoch
    model = _InfAndSigint(TinyNet(), bad=4 + 2)
    with pytest.raises(NonFiniteLossError, match=r"interrupted, but nothing was saved") as e:
        fit(model, train, epochs=3, checkpoint_dir=tmp_path, **{**SMALL, "quiet": False})
    assert "epoch 2, step 2" in str(e.value) and "last good checkpoint is kept" in str(e.value)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert len(bars) == 2 and all(b.bar is None for b in bars)  # every bar was closed


#: A checkpoint written by cifarzoo before the training package (``tests/fixtures``): TinyNet
#: interrupted by Ctrl-C at step 2 of epoch 2 of 2 on ``synthetic_split(64)``, evaluated on
#: ``synthetic_split(20, seed=1)``; its "config" still holds tta_flip, amp, channels_last and
#: compile beside the recipe, and it has no "options".
OLD_CHECKPOINT = Path(__file__).parent / "fixtures" / "checkpoint_v0_1.pt"


def test_a_checkpoint_of_the_format_before_the_training_package_resumes_bit_identically(
    tmp_path: Path,
) -> None:
    old = torch.load(OLD_CHECKPOINT, weights_only=False)
    assert "options" not in old and old["config"]["tta_flip"] is True
    assert (old["epoch"], old["step"]) == (1, 2) and old["partial"] is not None
    recipe = Recipe(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5, ema_decay=0.9)
    # fp32, as the fixture was written ("auto" then meant fp32 on every CPU)
    options = RunOptions(device="cpu", quiet=True, resume=True, amp=False)
    train, ev = synthetic_split(64, seed=0), Split(*synthetic_split(20, seed=1))

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CHECKPOINT_NAME).write_bytes(OLD_CHECKPOINT.read_bytes())
    resumed = InterruptAt(TinyNet(), at=-1)
    got = fit_with(
        resumed, train, recipe, options.replace(checkpoint_dir=tmp_path / "run"), eval_data=ev
    )
    # the whole run, uninterrupted, from the checkpoint's initial weights (EMA updates: 0)
    torch.manual_seed(0)
    reference = InterruptAt(TinyNet(), at=-1)
    ref = fit_with(reference, train, recipe, options.replace(resume=False), eval_data=ev)
    # The fixture's first steps ran on another machine (other kernels, other thread count), so
    # against it the weights are close, not equal; the bit-identical resume of this format is
    # the test below, whose old-format checkpoint is written on this machine.
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-3, atol=1e-4, msg=k)
    assert got.epoch == [1, 2] and got.eval_acc == pytest.approx(ref.eval_acc, abs=0.051)
    assert got.step_loss[:4] == old["history"]["step_loss"]
    assert got.step_loss == pytest.approx(ref.step_loss, rel=1e-3)
    # another recipe is still refused; the options recorded come from the old "config"
    written = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert written["options"]["tta_flip"] is True and "tta_flip" not in written["config"]
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / CHECKPOINT_NAME).write_bytes(OLD_CHECKPOINT.read_bytes())
    with pytest.raises(ValueError, match=r"recipe differs \(lr: checkpoint 0.05 vs now 0.1\)"):
        fit_with(
            TinyNet(),
            train,
            recipe.replace(lr=0.1),
            options.replace(checkpoint_dir=tmp_path / "again"),
        )


def test_a_checkpoint_rewritten_into_the_old_format_resumes_bit_identically(
    tmp_path: Path,
) -> None:
    """The format before the training package, written on this machine: no "options", the run
    options inside "config" (as in ``OLD_CHECKPOINT``); resuming it gives the uninterrupted run."""
    recipe = Recipe(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5, ema_decay=0.9)
    # fp32, as "auto" meant on every CPU when the old format was written
    options = RunOptions(device="cpu", quiet=True, amp=False)
    train, ev = synthetic_split(64, seed=0), Split(*synthetic_split(20, seed=1))
    torch.manual_seed(0)
    reference = InterruptAt(TinyNet(), at=-1)
    init = _state(reference)
    ref = fit_with(reference, train, recipe, options, eval_data=ev)

    run = tmp_path / "run"
    interrupted = InterruptAt(TinyNet(), at=4 + 3)
    interrupted.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        fit_with(interrupted, train, recipe, options.replace(checkpoint_dir=run), eval_data=ev)
    state = torch.load(run / CHECKPOINT_NAME, weights_only=False)
    old_config = torch.load(OLD_CHECKPOINT, weights_only=False)["config"]
    del state["options"], state["threads"], state["model_args"]  # the old format has none
    state["config"] = {**old_config, **state["config"]}
    assert set(state) == set(torch.load(OLD_CHECKPOINT, weights_only=False))
    torch.save(state, run / CHECKPOINT_NAME)

    resumed = InterruptAt(TinyNet(), at=-1)
    got = fit_with(
        resumed, train, recipe, options.replace(checkpoint_dir=run, resume=True), eval_data=ev
    )
    for k, v in reference.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    a, b = ref.to_dict(), got.to_dict()
    a.pop("seconds")
    b.pop("seconds")
    assert a == b
