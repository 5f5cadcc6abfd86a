"""CIFAR-10 on disk and in memory: reading, validating, splitting and fast batched loading.

* :func:`load_cifar10` reads the standard python layout (``ROOT/cifar-10-batches-py``, each file
  read by :mod:`cifarzoo.batch_files`) and checks shapes, dtype, labels and counts (not md5
  sums, so re-encoded copies are accepted): every batch file holds the ``num_cases_per_batch``
  images ``batches.meta`` declares (10,000 in the official release, the count expected when
  there is no ``batches.meta``) and each split has the same number of images in every class.
  The md5 sums name the data: only the official release (:func:`is_official_release`) is called
  ``"CIFAR-10"`` unless the caller names it.
* :class:`DeviceLoader` (defined in :mod:`cifarzoo.loader`, importable from here too) keeps a
  whole split on the target device and produces augmented, normalized batches with tensor ops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .batch_files import (
    FOLDER,
    HOW_TO_GET,
    IMAGES_PER_FILE,
    TEST_FILE,
    TRAIN_FILES,
    DataFormatError,
    how_to_replace,
    read_batch,
    read_meta,
)
from .constants import CIFAR10_CLASSES, NUM_CLASSES
from .loader import DeviceLoader, PadMode, check_labels

__all__ = [
    "DEFAULT_DATA_ROOT",
    "ENV_DATA",
    "OFFICIAL_NAME",
    "UNVERIFIED_NAME",
    "CIFAR10Data",
    "DataFormatError",
    "DeviceLoader",
    "PadMode",
    "Split",
    "check_labels",
    "data_name",
    "default_data_root",
    "is_official_release",
    "load_cifar10",
    "official_checksums",
    "resolve_data_root",
    "stratified_split",
]

NUM_TRAIN = IMAGES_PER_FILE * len(TRAIN_FILES)
NUM_TEST = IMAGES_PER_FILE
ENV_DATA = "CIFARZOO_DATA"
#: The data root when none is given and ``$CIFARZOO_DATA`` is unset.
DEFAULT_DATA_ROOT = "~/.cache/cifarzoo"
#: The name of the official release, recognised by its files' md5 sums.
OFFICIAL_NAME = "CIFAR-10"
#: The name of CIFAR-10 files that are not the official release's (a re-encoded mirror, a
#: modified copy) when the caller does not name them, e.g. ``"CIFAR-10 (JPEG mirror)"``.
UNVERIFIED_NAME = "CIFAR-10 (unverified copy)"

# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 ``[N, 3, 32, 32]`` (NCHW) and ``labels`` int64 ``[N]``."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"Split.images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}"
            )
        if labels.dtype != torch.int64 or labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(
                f"Split.labels must be int64 [N] with N={len(images)}, got {labels.dtype} "
                f"{list(labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: Tensor) -> Split:
        """The images and labels at ``indices`` (a new split, no sharing of index order)."""
        return Split(self.images[indices], self.labels[indices])

    def class_counts(self, num_classes: int = NUM_CLASSES) -> list[int]:
        return [int(c) for c in torch.bincount(self.labels, minlength=num_classes)]


@dataclass(frozen=True)
class CIFAR10Data:
    """CIFAR-10 as tensors: ``train``, optional ``val`` (held out of train) and ``test``.

    ``name`` describes the data in reports and metrics files: :func:`load_cifar10` calls the
    official release ``"CIFAR-10"`` and other files :data:`UNVERIFIED_NAME` unless told a name
    (e.g. ``"CIFAR-10 (JPEG mirror)"``); tensors built by hand are unverified too.
    """

    train: Split
    test: Split
    val: Split | None = None
    classes: tuple[str, ...] = CIFAR10_CLASSES
    name: str = UNVERIFIED_NAME
    root: Path | None = None

    @property
    def eval_split(self) -> Split:
        """The split used for model selection: ``val`` when present, else ``test``."""
        return self.val if self.val is not None else self.test

    @property
    def eval_split_name(self) -> str:
        return "val" if self.val is not None else "test"

    def hold_out(self, val_size: int, *, seed: int = 0) -> CIFAR10Data:
        """A copy with ``val_size`` training images moved into ``val`` (stratified by class,
        seeded): the split ``load_cifar10(..., val_size=val_size, seed=seed)`` makes.

        Raises:
            ValueError: if there already is a ``val`` split, or ``val_size`` is not between 1
                and the number of training images minus one.
        """
        if self.val is not None:
            raise ValueError(
                f"{self.name} already holds out {len(self.val):,} images for validation; "
                "hold out from data without a val split"
            )
        train_idx, val_idx = stratified_split(self.train.labels, val_size, seed=seed)
        return dataclasses.replace(
            self, train=self.train.subset(train_idx), val=self.train.subset(val_idx)
        )

    def describe(self) -> str:
        parts = [f"train {len(self.train):,}"]
        if self.val is not None:
            parts.append(f"val {len(self.val):,}")
        parts.append(f"test {len(self.test):,}")
        return f"{self.name}: " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """``$CIFARZOO_DATA`` if set, else ``~/.cache/cifarzoo`` (:data:`DEFAULT_DATA_ROOT`)."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_ROOT).expanduser()


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: explicit ``root`` > ``$CIFARZOO_DATA`` > ``~/.cache/cifarzoo``.

    A ``root`` that already *is* the ``cifar-10-batches-py`` folder is accepted too.
    """
    path = Path(root).expanduser() if root is not None else default_data_root()
    if path.name == FOLDER and not (path / FOLDER).exists():
        path = path.parent
    return path


def _download(root: Path) -> None:
    """Fetch CIFAR-10 through torchvision into a hidden folder in ``root``, then add only the
    files that ``root`` lacks: a file the user has is never replaced or deleted."""
    try:
        import torchvision
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise RuntimeError(f"downloading CIFAR-10 needs torchvision. {HOW_TO_GET}") from e
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-download-", dir=root) as staging:
        try:
            torchvision.datasets.CIFAR10(staging, train=True, download=True)
        except Exception as e:
            raise RuntimeError(
                f"could not download CIFAR-10 into {root}: {type(e).__name__}: {e}. Check the "
                f"network connection, or fetch the data by hand: {HOW_TO_GET}"
            ) from e
        _add_missing_files(Path(staging) / FOLDER, root / FOLDER)


def _add_missing_files(source: Path, target: Path) -> None:
    """Link each file of ``source`` into ``target`` unless ``target`` has one of that name
    (``os.link`` fails on an existing name: no check-then-write race)."""
    target.mkdir(exist_ok=True)
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        try:
            os.link(path, target / path.name)
        except FileExistsError:
            continue
        except OSError:  # no hard links on this file system: copy, creating the file anew
            with contextlib.suppress(FileExistsError), open(target / path.name, "xb") as f:
                f.write(path.read_bytes())


def _read_split(folder: Path, files: Sequence[str], what: str, per_file: int, source: str) -> Split:
    """The ``what`` split: the images of ``files`` in order. Each file must hold ``per_file``
    images (``source`` says where that count comes from), the split as many of every class."""
    parts = []
    for name in files:
        images, labels = read_batch(folder / name)
        if len(labels) != per_file:
            raise DataFormatError(
                f"{folder / name} has {len(labels):,} images, expected {per_file:,} ({source}). "
                f"{how_to_replace(folder)}"
            )
        parts.append((images, labels))
    split = Split(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    counts = split.class_counts()
    if min(counts) != max(counts):
        raise DataFormatError(
            f"{folder}: the {what} split ({len(split):,} images) should have the same number "
            f"of images per class, found {counts}. {how_to_replace(folder)}"
        )
    return split


def official_checksums() -> dict[str, str]:
    """The md5 sum of each data file of the official python release, as torchvision's
    ``CIFAR10`` checks them (``train_list`` and ``test_list``)."""
    from torchvision.datasets.cifar import CIFAR10

    return {name: md5 for name, md5 in [*CIFAR10.train_list, *CIFAR10.test_list]}


def is_official_release(
    root: str | os.PathLike[str] | None = None, *, checksums: Mapping[str, str] | None = None
) -> bool:
    """Whether every data file in ``ROOT/cifar-10-batches-py`` has the official release's md5
    sum (``checksums``, default :func:`official_checksums`)."""
    from torchvision.datasets.utils import check_integrity

    folder = resolve_data_root(root) / FOLDER
    expected = official_checksums() if checksums is None else checksums
    return all(check_integrity(str(folder / name), md5) for name, md5 in expected.items())


def data_name(root: str | os.PathLike[str] | None = None) -> str:
    """:data:`OFFICIAL_NAME` for the official release (:func:`is_official_release`), else
    :data:`UNVERIFIED_NAME`."""
    return OFFICIAL_NAME if is_official_release(root) else UNVERIFIED_NAME


def _check_folders(base: Path, folder: Path) -> None:
    """Refuse a data root, or a ``cifar-10-batches-py`` in it, that is a file: neither is
    missing data (nothing to download) nor damaged data (nothing to delete)."""
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(
            f"the data root {base} is a file, not a folder: pass the folder that holds (or is "
            f"to hold) {FOLDER}/ (CLI: --data DIR)"
        )
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{folder} is a file, not the folder of the CIFAR-10 python release: move it "
            f"aside, then unpack or download the data so that {folder}/ holds its batch files"
        )


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    val_size: int = 0,
    seed: int = 0,
    name: str | None = None,
) -> CIFAR10Data:
    """Read CIFAR-10 from ``ROOT/cifar-10-batches-py`` into uint8 tensors.

    Args:
        root: data root; ``None`` means ``$CIFARZOO_DATA`` or ``~/.cache/cifarzoo``.
        download: fetch the data through torchvision when the folder is missing.
        val_size: number of training images held out (stratified by class, seeded) as ``val``.
        seed: seed of the validation split.
        name: description stored in the result, e.g. ``"CIFAR-10 (JPEG mirror)"``; default
            :func:`data_name`: ``"CIFAR-10"`` for the official release, recognised by its
            files' md5 sums, else ``"CIFAR-10 (unverified copy)"``.

    Raises:
        FileNotFoundError: the folder (or a file in it) is missing and ``download`` is false.
        DataFormatError: a file exists but has the wrong format, shape, dtype, labels or count
            (each batch file must hold the ``num_cases_per_batch`` images of ``batches.meta``,
            10,000 without one, and each split as many images of every class).
        NotADirectoryError: the data root, or its ``cifar-10-batches-py``, is a file.
        RuntimeError: the download failed.
    """
    base = resolve_data_root(root)
    folder = base / FOLDER
    _check_folders(base, folder)
    files = [*TRAIN_FILES, TEST_FILE]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and download:
        _download(base)
        missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        where = "" if folder.is_dir() else f" (the folder {folder} does not exist)"
        raise FileNotFoundError(
            f"CIFAR-10 not found: missing {', '.join(missing)} in {folder}{where}. "
            f"Data root resolution: explicit root > ${ENV_DATA} > {DEFAULT_DATA_ROOT}. {HOW_TO_GET}"
        )
    per_file, source, classes = read_meta(folder)
    data = CIFAR10Data(
        train=_read_split(folder, TRAIN_FILES, "training", per_file, source),
        test=_read_split(folder, [TEST_FILE], "test", per_file, source),
        classes=classes,
        name=data_name(base) if name is None else name,
        root=base,
    )
    return data.hold_out(val_size, seed=seed) if val_size else data


def stratified_split(labels: Tensor, val_size: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices ``(train, val)`` with ``len(val) == val_size`` and class proportions preserved.

    Per-class quotas use the largest-remainder method; the choice within each class is a seeded
    permutation. Both index tensors are sorted (the original order is kept).
    """
    n = len(labels)
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Integral):
        raise TypeError(
            f"val_size is a number of images (an int in 1..{n - 1}), got {val_size!r}; for a "
            f"fraction f of the {n:,} images pass round(f * {n})"
        )
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in 1..{n - 1}, got {val_size}")
    counts = torch.bincount(labels).tolist()
    exact = [c * val_size / n for c in counts]
    quota = [math.floor(e) for e in exact]
    order = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quota[c]), c))
    for c in order[: val_size - sum(quota)]:
        quota[c] += 1
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c, q in enumerate(quota):
        idx = torch.nonzero(labels == c).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:q]])
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.cat(chosen)] = True
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()
