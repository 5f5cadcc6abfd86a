"""Shared fixtures: real CIFAR-10 (via $CIFARZOO_TEST_DATA) and a synthetic copy of its layout."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path
from signal import SIGINT
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from cifarzoo.constants import CIFAR10_CLASSES


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist workers share the cores: each gets its share of torch's intra-op threads
    (one each for ``-n 2`` on 2 cores), since more threads than cores wait on each other."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slow`` tests first, longest first (``slow(seconds=...)``: about how long on 2
    cores, default 5), so that no worker ends alone on a long test: with ``--dist worksteal``
    (pyproject.toml) a worker that runs dry takes the other's last pending tests, which are
    then short ones. The ``reproduction`` tests run only with CIFARZOO_TEST_REPRODUCTION=1."""

    def expected_seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return 0.0 if slow is None else float(slow.kwargs.get("seconds", 5))

    items.sort(key=expected_seconds, reverse=True)
    if os.environ.get("CIFARZOO_TEST_REPRODUCTION") != "1":
        skip = pytest.mark.skip(
            reason="set CIFARZOO_TEST_REPRODUCTION=1 (CI does) to evaluate every shipped model on "
            "the whole test set"
        )
        for item in items:
            if item.get_closest_marker("reproduction") is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    """A root holding the real ``cifar-10-batches-py``; skips when CIFARZOO_TEST_DATA is unset."""
    root = os.environ.get("CIFARZOO_TEST_DATA")
    if not root:
        pytest.skip("set CIFARZOO_TEST_DATA to a folder holding cifar-10-batches-py")
    path = Path(root)
    if not (path / "cifar-10-batches-py").is_dir():
        pytest.fail(f"CIFARZOO_TEST_DATA={root} has no cifar-10-batches-py folder")
    return path


def lenet_train_args(data: Path, *extra: str) -> list[str]:
    """``cifarzoo train`` arguments for a lenet run of a few seconds: 320 images, batch 64 (5
    steps an epoch), no TTA; ``extra`` adds ``--out``, ``--epochs``..."""
    return [
        "train",
        "lenet",
        "--data",
        str(data),
        "--batch-size",
        "64",
        "--train-subset",
        "320",
        "--device",
        "cpu",
        "--quiet",
        "--no-tta",
        *extra,
    ]


def load_script(path: Path) -> ModuleType:
    """Import a script of the repository (benchmarks/, scripts/) as a module, by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with path.open("wb") as f:
        pickle.dump(
            {
                "batch_label": "synthetic",
                "data": data,
                "labels": labels,
                "filenames": [f"{i}.png" for i in range(len(labels))],
            },
            f,
        )


#: Images in each batch file of ``fake_cifar_root`` (its batches.meta says so): 2,000 training
#: and 400 test images, enough for a stratified val split of 1,000 and a train subset of 640.
FAKE_PER_FILE = 400


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete, valid folder in the standard layout with random pixels and balanced labels,
    ``FAKE_PER_FILE`` images in each batch file.

    Image ``i`` of each split is class ``i % 10``, and its first pixel (red) is ``25 * class``,
    so a model that reads that pixel can be perfect.
    """
    root = tmp_path_factory.mktemp("fakecifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(FAKE_PER_FILE)]
        data = rng.integers(0, 256, (FAKE_PER_FILE, 3072), dtype=np.uint8)
        data[:, 0] = np.array(labels, dtype=np.uint8) * 25
        write_batch(folder / name, data, labels)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump(
            {
                "label_names": list(CIFAR10_CLASSES),
                "num_cases_per_batch": FAKE_PER_FILE,
                "num_vis": 3072,
            },
            f,
        )
    return root


class InterruptAt(nn.Module):
    """Wraps a model; its ``at``-th training forward call is interrupted like Ctrl-C: by a real
    signal to this process (``signal=True``: SIGINT, what a terminal sends; or the signal
    given, e.g. SIGTERM) or by raising KeyboardInterrupt directly. ``at=-1`` never
    interrupts."""

    def __init__(self, inner: nn.Module, at: int, *, signal: bool | int = False) -> None:
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0
        self.signal = SIGINT if signal is True else signal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                if self.signal:
                    os.kill(os.getpid(), self.signal)
                else:
                    raise KeyboardInterrupt
        out: torch.Tensor = self.inner(x)
        return out


class TinyNet(nn.Module):
    """A small CNN with BatchNorm and dropout (exercises buffers and the RNG)."""

    def __init__(self, num_classes: int = 10, bn: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=not bn)
        self.bn: nn.Module = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(x.mean((2, 3))))


CLASS_TINTS = torch.tensor([[(c % 3) * 70, (c // 3 % 3) * 70, (c // 9) * 140] for c in range(10)])


def synthetic_split(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable synthetic images, robust to crops and flips: noise in 0..99 plus a class colour
    (``CLASS_TINTS``, levels 0/70/140 per channel)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    noise = torch.randint(0, 100, (n, 3, 32, 32), generator=g)
    images = (noise + CLASS_TINTS[labels].view(n, 3, 1, 1)).to(torch.uint8)
    return images, labels
