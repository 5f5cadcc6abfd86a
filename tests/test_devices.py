"""cifarzoo.devices: the device choice and the bf16 rule that training and evaluation share."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import TinyNet, synthetic_split

from cifarzoo import devices
from cifarzoo.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cifarzoo.training import Recipe, RunOptions, fit

CPU = torch.device("cpu")


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads Linux's /proc/cpuinfo")
def test_bf16_is_fast_on_exactly_the_cpus_with_bf16_instructions() -> None:
    flags = _cpu_flags()
    assert devices.fast_bf16(CPU) == bool({"amx_bf16", "avx512_bf16"} & flags)
    assert devices.fast_bf16(torch.device("meta")) is False


@pytest.mark.parametrize("fast", [True, False])
def test_auto_follows_the_rule_and_a_given_value_wins(
    monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    monkeypatch.setattr(devices, "fast_bf16", lambda device: fast)
    assert devices.resolve_amp(None, CPU) is fast
    assert devices.resolve_amp(True, CPU) is True and devices.resolve_amp(False, CPU) is False
    assert RunOptions(amp=None).resolved_amp("cpu") is fast


def test_autocast_is_bf16_only_when_asked() -> None:
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 2)
    with devices.autocast(CPU, True):
        assert layer(x).dtype == torch.bfloat16
    with devices.autocast(CPU, False):
        assert layer(x).dtype == torch.float32


def _run(folder: Path, options: RunOptions) -> None:
    torch.manual_seed(0)
    recipe = Recipe(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0.5, ema_decay=0.0)
    fit(TinyNet(), synthetic_split(32, seed=0), recipe, options.replace(checkpoint_dir=folder))


@pytest.mark.parametrize("fast", [True, False])
def test_a_checkpoint_records_the_precision_that_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    monkeypatch.setattr(devices, "fast_bf16", lambda device: fast)
    _run(tmp_path, RunOptions(device="cpu", quiet=True, tta_flip=False))
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["options"]["amp"] is fast


def test_resuming_an_earlier_auto_checkpoint_where_bf16_is_now_on_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``amp=None`` in a checkpoint of an earlier version meant fp32 on every CPU."""
    _run(tmp_path, RunOptions(device="cpu", quiet=True, tta_flip=False, amp=False))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    state["options"]["amp"] = None
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    resume = RunOptions(device="cpu", quiet=True, tta_flip=False, resume=True)
    monkeypatch.setattr(devices, "fast_bf16", lambda device: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(tmp_path, resume)  # fp32 then and now: no warning
    state["options"]["amp"] = None
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    monkeypatch.setattr(devices, "fast_bf16", lambda device: True)
    with pytest.warns(UserWarning, match="amp=off with amp=auto; results will not be bit"):
        _run(tmp_path, resume)
