"""cifarzoo.heap: freed CPU memory kept for the next step of training and evaluation (glibc), and
given back after.

The page faults and resident memory are measured in a fresh Python process, as a training run
starts: one whose main thread still allocates from glibc's main heap (a refused allocation, such
as a test asking for a terabyte, moves a thread to another heap, where blocks over 64 MB always
come from mmap).
"""

from __future__ import annotations

import functools
import json
import platform
import resource
import subprocess
import sys

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
PAGES = BIG // resource.getpagesize()

_PROBE = """
import json, resource
from pathlib import Path

import torch

from cifarzoo.heap import kept_heap


def page_faults(steps=3):
    # training steps whose activations are 64 MB blocks (256 x 64 x 32 x 32 float32), measured
    # after four steps of warm-up, where a kept heap grows to its size
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 1), torch.nn.BatchNorm2d(64), torch.nn.ReLU())
    x = torch.randn(256, 3, 32, 32)

    def step():
        net.zero_grad(set_to_none=True)
        net(x).square().mean().backward()

    for _ in range(4):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


# default malloc first: its 64 MB blocks are fresh mmap pages at every step, while a heap
# that was kept before would leave free chunks that later steps may reuse without faulting
outside = page_faults()
with kept_heap():
    with kept_heap():  # an inner block ending leaves the outer one's heap kept
        pass
    inside = page_faults()
    held = resident()
given_back = held - resident()
print(json.dumps(dict(inside=inside, outside=outside, given_back=given_back)))
"""


@functools.cache
def _measured() -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=True
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_training_steps_reuse_the_kept_heap_and_fault_in_fresh_pages_outside() -> None:
    measured = _measured()
    assert measured["outside"] > 3 * PAGES, "each step's activations should be fresh mmap pages"
    # a kept heap may still grow by a block or two as it fragments: 36 blocks fault outside
    assert measured["inside"] < measured["outside"] // 8, "the steps should reuse the kept heap"


def test_the_kept_memory_is_given_back_on_leaving() -> None:
    assert _measured()["given_back"] > 4 * BIG


def test_nested_blocks_keep_the_heap_until_the_outer_one_ends() -> None:
    measured = _measured()  # measured inside an outer block whose inner block had ended
    assert measured["inside"] < measured["outside"] // 8
    with kept_heap():
        with kept_heap():
            pass
        assert heap_kept()
    assert not heap_kept()


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


def test_an_evaluation_that_fails_leaves_no_kept_heap_behind() -> None:
    class FailsOnItsSecondBatch(TinyNet):
        batches = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.batches += 1
            if self.batches == 2:
                raise RuntimeError("the second batch fails")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="second batch"):
        evaluate(FailsOnItsSecondBatch(), synthetic_split(64), batch_size=16)
    assert not heap_kept()
