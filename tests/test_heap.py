"""cifarzoo.heap: freed CPU memory kept for the next step of training and evaluation (glibc), and
given back after."""

from __future__ import annotations

import platform
import resource
from pathlib import Path

import pytest
import torch
from conftest import TinyNet, synthetic_split

from cifarzoo.heap import heap_kept, kept_heap
from cifarzoo.metrics import evaluate, predict_logits
from cifarzoo.training import Recipe, RunOptions, fit

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="glibc's malloc only (elsewhere kept_heap changes nothing)",
)

BIG = 64 << 20  # above glibc's largest mmap threshold (32 MB): served by mmap unless kept


def _page_faults_of_training_steps(steps: int = 3) -> int:
    """Minor page faults of ``steps`` training steps whose activations are 64 MB blocks each,
    after four steps of warm-up (where a kept heap grows to its size)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 1), torch.nn.BatchNorm2d(64), torch.nn.ReLU())
    x = torch.randn(256, 3, 32, 32)  # activations 256 x 64 x 32 x 32 float32: 64 MB

    def step() -> None:
        net.zero_grad(set_to_none=True)
        net(x).square().mean().backward()

    for _ in range(4):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def test_training_steps_reuse_the_kept_heap_and_fault_in_fresh_pages_outside() -> None:
    with kept_heap() as kept:
        assert kept and heap_kept()
        inside = _page_faults_of_training_steps()
    assert not heap_kept()
    outside = _page_faults_of_training_steps()
    pages = BIG // resource.getpagesize()
    assert outside > 3 * pages, "each step's activations should come from fresh mmap pages"
    assert inside < outside // 20, "the steps should reuse the kept heap"


def test_the_kept_memory_is_given_back_on_leaving() -> None:
    with kept_heap():
        _page_faults_of_training_steps()
        held = _resident_bytes()
    assert _resident_bytes() < held - 4 * BIG, "leaving should give the kept memory back"


def test_nested_blocks_keep_the_heap_until_the_outer_one_ends() -> None:
    with kept_heap():
        with kept_heap():
            pass
        assert heap_kept()
        inside = _page_faults_of_training_steps()
    assert not heap_kept()
    assert inside < BIG // resource.getpagesize() // 20


def test_disabled_changes_nothing() -> None:
    with kept_heap(enabled=False) as kept:
        assert kept is False and not heap_kept()


def test_fit_keeps_the_heap_while_it_trains_on_a_cpu() -> None:
    seen: list[bool] = []
    model = TinyNet()
    model.register_forward_hook(lambda *_: seen.append(heap_kept()))
    fit(model, synthetic_split(64), Recipe(epochs=1, batch_size=32), RunOptions(quiet=True))
    assert seen and all(seen)
    assert not heap_kept()


def test_evaluation_keeps_the_heap_on_a_cpu() -> None:
    seen: list[bool] = []
    model = TinyNet()
    model.register_forward_hook(lambda *_: seen.append(heap_kept()))
    images, labels = synthetic_split(64)
    evaluate(model, (images, labels), batch_size=16)
    predict_logits(model, (images, labels), batch_size=16)
    assert len(seen) == 8 and all(seen)
    assert not heap_kept()
