"""CIFAR-10 on disk and in memory: reading, validating, splitting and fast batched loading.

* :func:`load_cifar10` reads the standard python layout (``ROOT/cifar-10-batches-py``) and checks
  shapes, dtype, labels and counts (not md5 sums, so re-encoded copies are accepted): every
  batch file holds the ``num_cases_per_batch`` images ``batches.meta`` declares (10,000 in the
  official release, the count expected when there is no ``batches.meta``) and each split has
  the same number of images in every class.
* :class:`DeviceLoader` keeps a whole split as one ``uint8`` tensor on the target device and
  produces augmented, normalized, ``channels_last`` batches with a handful of tensor ops per
  batch (random crop with padding, horizontal flip, optional cutout) -- no per-image Python work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import numbers
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from .constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE, NUM_CLASSES

__all__ = [
    "CIFAR10Data",
    "DataFormatError",
    "DeviceLoader",
    "Split",
    "check_labels",
    "default_data_root",
    "load_cifar10",
    "resolve_data_root",
    "stratified_split",
]

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
#: Images in each batch file of the official release, and so in its splits.
IMAGES_PER_FILE = 10_000
NUM_TRAIN = IMAGES_PER_FILE * len(TRAIN_FILES)
NUM_TEST = IMAGES_PER_FILE
ENV_DATA = "CIFARZOO_DATA"

_HOW_TO_GET = (
    "Get the data with `cifarzoo.load_cifar10(root, download=True)` (or "
    "`cifarzoo train MODEL --data ROOT --download`), or unpack the official "
    "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into ROOT so that "
    f"ROOT/{FOLDER}/ holds {', '.join(TRAIN_FILES)}, {TEST_FILE} and {META_FILE}."
)


#: A batch file is about 31 MB; a much larger file is not one, and is not unpickled.
MAX_FILE_BYTES = 64 * 2**20


def _how_to_replace(folder: Path) -> str:
    # --download only fetches missing files, so a damaged copy has to go first.
    return (
        f"The copy in {folder} is damaged or not the official CIFAR-10 python release: delete "
        f"(or replace) the whole {FOLDER} folder, then get the data again; --download and "
        f"download=True only fetch missing files. {_HOW_TO_GET}"
    )


class DataFormatError(ValueError):
    """A CIFAR-10 folder exists but its content is not what the standard layout promises."""


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

    ``name`` describes the data in reports and metrics files; set it when the copy differs
    from the official release (e.g. ``"CIFAR-10 (JPEG mirror)"``).
    """

    train: Split
    test: Split
    val: Split | None = None
    classes: tuple[str, ...] = CIFAR10_CLASSES
    name: str = "CIFAR-10"
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
    """``$CIFARZOO_DATA`` if set, else ``~/.cache/cifarzoo``."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/cifarzoo").expanduser()


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: explicit ``root`` > ``$CIFARZOO_DATA`` > ``~/.cache/cifarzoo``.

    A ``root`` that already *is* the ``cifar-10-batches-py`` folder is accepted too.
    """
    path = Path(root).expanduser() if root is not None else default_data_root()
    if path.name == FOLDER and not (path / FOLDER).exists():
        path = path.parent
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: the batch files cannot run arbitrary code."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 file")


def _read_pickle(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataFormatError(
            f"{path} is {size / 1e6:,.0f} MB, far more than a CIFAR-10 batch file (about 31 MB); "
            f"it was not read. {_how_to_replace(path.parent)}"
        )
    # Unpickling from memory bounds every read by the file's size: a damaged length field
    # cannot make the unpickler allocate gigabytes.
    raw = path.read_bytes()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # damaged pickles fail in many ways: Overflow-, Memory-, IndexError...
        raise DataFormatError(
            f"{path} is not a CIFAR-10 python pickle file ({type(e).__name__}: {e}). "
            f"{_how_to_replace(path.parent)}"
        ) from e
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path} holds a {type(obj).__name__}, expected a dict. {_how_to_replace(path.parent)}"
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[Tensor, Tensor]:
    import numpy as np

    d = _read_pickle(path)
    how = _how_to_replace(path.parent)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise DataFormatError(f"{path} lacks the key(s) {missing} (has {sorted(d)}). {how}")
    data = d["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE
    ):
        desc = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataFormatError(
            f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}. {how}"
        )
    try:
        labels = np.asarray(d["labels"])
    except (ValueError, TypeError) as e:  # e.g. a ragged list
        raise DataFormatError(f"{path}: 'labels' is not a list of integers ({e}). {how}") from e
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(
            f"{path}: 'labels' must be {len(data)} integers, got {labels.dtype} {labels.shape}. "
            f"{how}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataFormatError(
            f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found "
            f"{labels.min()}..{labels.max()}. {how}"
        )
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
    return images, torch.from_numpy(labels.astype(np.int64))


def _download(root: Path) -> None:
    """Fetch CIFAR-10 through torchvision into a hidden folder in ``root``, then add only the
    files that ``root`` lacks: a file the user has is never replaced or deleted."""
    try:
        import torchvision
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise RuntimeError(f"downloading CIFAR-10 needs torchvision. {_HOW_TO_GET}") from e
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-download-", dir=root) as staging:
        try:
            torchvision.datasets.CIFAR10(staging, train=True, download=True)
        except Exception as e:
            raise RuntimeError(
                f"could not download CIFAR-10 into {root}: {type(e).__name__}: {e}. Check the "
                f"network connection, or fetch the data by hand: {_HOW_TO_GET}"
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


def _read_meta(folder: Path) -> tuple[int, str, tuple[str, ...]]:
    """``(images per batch file, where that count comes from, class names)`` of ``folder``:
    from ``batches.meta`` when there is one, else the official release's."""
    if not (folder / META_FILE).is_file():
        return IMAGES_PER_FILE, f"the official count; there is no {META_FILE}", CIFAR10_CLASSES
    meta = _read_pickle(folder / META_FILE)
    per_file, source = meta.get("num_cases_per_batch"), f"num_cases_per_batch in {META_FILE}"
    if per_file is None:
        per_file = IMAGES_PER_FILE
        source = f"the official count; {META_FILE} has no num_cases_per_batch"
    if isinstance(per_file, bool) or not isinstance(per_file, numbers.Integral) or per_file <= 0:
        raise DataFormatError(
            f"{folder / META_FILE}: 'num_cases_per_batch' must be a positive integer, got "
            f"{per_file!r}. {_how_to_replace(folder)}"
        )
    names = meta.get("label_names")
    classes = CIFAR10_CLASSES
    if isinstance(names, list) and len(names) == NUM_CLASSES:
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return int(per_file), source, classes


def _read_split(folder: Path, files: Sequence[str], what: str, per_file: int, source: str) -> Split:
    """The ``what`` split: the images of ``files`` in order. Each file must hold ``per_file``
    images (``source`` says where that count comes from), the split as many of every class."""
    parts = []
    for name in files:
        images, labels = _read_batch(folder / name)
        if len(labels) != per_file:
            raise DataFormatError(
                f"{folder / name} has {len(labels):,} images, expected {per_file:,} ({source}). "
                f"{_how_to_replace(folder)}"
            )
        parts.append((images, labels))
    split = Split(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    counts = split.class_counts()
    if min(counts) != max(counts):
        raise DataFormatError(
            f"{folder}: the {what} split ({len(split):,} images) should have the same number "
            f"of images per class, found {counts}. {_how_to_replace(folder)}"
        )
    return split


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    val_size: int = 0,
    seed: int = 0,
    name: str = "CIFAR-10",
) -> CIFAR10Data:
    """Read CIFAR-10 from ``ROOT/cifar-10-batches-py`` into uint8 tensors.

    Args:
        root: data root; ``None`` means ``$CIFARZOO_DATA`` or ``~/.cache/cifarzoo``.
        download: fetch the data through torchvision when the folder is missing.
        val_size: number of training images held out (stratified by class, seeded) as ``val``.
        seed: seed of the validation split.
        name: description stored in the result, e.g. ``"CIFAR-10 (JPEG mirror)"``.

    Raises:
        FileNotFoundError: the folder (or a file in it) is missing and ``download`` is false.
        DataFormatError: a file exists but has the wrong format, shape, dtype, labels or count
            (each batch file must hold the ``num_cases_per_batch`` images of ``batches.meta``,
            10,000 without one, and each split as many images of every class).
        RuntimeError: the download failed.
    """
    base = resolve_data_root(root)
    folder = base / FOLDER
    files = [*TRAIN_FILES, TEST_FILE]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and download:
        _download(base)
        missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        where = "" if folder.is_dir() else f" (the folder {folder} does not exist)"
        raise FileNotFoundError(
            f"CIFAR-10 not found: missing {', '.join(missing)} in {folder}{where}. "
            f"Data root resolution: explicit root > ${ENV_DATA} > ~/.cache/cifarzoo. {_HOW_TO_GET}"
        )
    per_file, source, classes = _read_meta(folder)
    data = CIFAR10Data(
        train=_read_split(folder, TRAIN_FILES, "training", per_file, source),
        test=_read_split(folder, [TEST_FILE], "test", per_file, source),
        classes=classes,
        name=name,
        root=base,
    )
    return data.hold_out(val_size, seed=seed) if val_size else data


def stratified_split(labels: Tensor, val_size: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices ``(train, val)`` with ``len(val) == val_size`` and class proportions preserved.

    Per-class quotas use the largest-remainder method; the choice within each class is a seeded
    permutation. Both index tensors are sorted (the original order is kept).
    """
    n = len(labels)
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

PadMode = Literal["reflect", "zeros"]


def _no_classifier_error(what: str, classes: int) -> ValueError:
    """The error for labels of ``classes`` classes given to a model built with
    ``num_classes=0`` (a backbone: it returns features, not logits)."""
    return ValueError(
        f"{what} need class logits, but the model has no classifier (num_classes=0: it returns "
        f"features); build it with num_classes={classes} or call "
        f"model.reset_classifier({classes})"
    )


def check_labels(labels: Tensor, num_classes: int | None, what: str = "labels") -> None:
    """Raise a ``ValueError`` unless ``labels`` fit ``num_classes`` classes.

    Class indices ``[N]`` must lie in ``0..num_classes - 1`` (only ``>= 0`` is checked when
    ``num_classes`` is ``None``); class probabilities ``[N, C]`` must have ``C == num_classes``.
    Checking up front turns what would be an ``IndexError`` in the loss (a device-side assert
    on CUDA) into an error that says what is wrong.
    """
    if labels.dim() == 2:
        if num_classes == 0:
            raise _no_classifier_error(what, int(labels.shape[1]))
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"{what} are class probabilities for {labels.shape[1]} classes "
                f"({list(labels.shape)}), but the model has {num_classes}; give one column per "
                "class of the model"
            )
        return
    if labels.numel() == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if num_classes == 0:
        raise _no_classifier_error(what, max(hi + 1, NUM_CLASSES))
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        valid = "0 or more" if num_classes is None else f"in 0..{num_classes - 1}"
        raise ValueError(
            f"{what} must be class indices {valid}"
            + ("" if num_classes is None else f" (the model has {num_classes} classes)")
            + f", found values from {lo} to {hi}; fix the labels or use a model with "
            "num_classes large enough"
        )


def _as_nhwc_uint8(images: Tensor) -> Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"images must be a uint8 tensor [N, 3, H, W] or [N, H, W, 3], got {images.dtype} "
            f"{list(images.shape)}"
        )
    if images.shape[1] == 3 and images.shape[-1] != 3:
        return images.permute(0, 2, 3, 1)
    if images.shape[-1] == 3:
        return images
    if images.shape[1] == 3:  # [N, 3, H, 3]: ambiguous, take the documented NCHW reading
        return images.permute(0, 2, 3, 1)
    raise ValueError(f"images must have 3 channels (NCHW or NHWC), got {list(images.shape)}")


def _pad_index(size: int, pad: int, mode: PadMode) -> Tensor:
    """Source index of each padded position (``-1`` = zero) along one axis."""
    pos = torch.arange(-pad, size + pad)
    if mode == "reflect":
        pos = pos.abs()
        pos = torch.where(pos >= size, 2 * (size - 1) - pos, pos)
        return pos
    return torch.where((pos < 0) | (pos >= size), torch.full_like(pos, -1), pos)


class DeviceLoader:
    """Batches of an in-memory split, augmented and normalized with batched tensor ops.

    The whole split is stored once on ``device`` as ``uint8`` NHWC (already padded when random
    crops are on). Each epoch draws one permutation and all augmentation parameters from a
    generator seeded with ``(seed, epoch)``; each batch is then one gather (crop + flip at once),
    a float conversion, normalization and optional cutout. Batches come out as
    ``(float images [B, 3, H, W] in channels_last, int64 labels [B])`` on ``device``.

    Args:
        images: uint8 ``[N, 3, H, W]`` or ``[N, H, W, 3]``.
        labels: integer class indices ``[N]``, or float class probabilities ``[N, C]`` (soft
            labels, e.g. a teacher's for distillation), which batches then carry as ``[B, C]``.
        batch_size: the **global** batch size; with ``world_size > 1`` each rank yields
            ``batch_size // world_size`` images per step (it must divide evenly).
        train: default for ``shuffle``, ``augment`` and ``drop_last``.
        crop_padding: random-crop padding in pixels (0 turns random crops off).
        pad_mode: ``"reflect"`` or ``"zeros"`` (the torchvision ``RandomCrop`` default).
        flip: random horizontal flips (when augmenting).
        alternate_flip: with ``flip``, mirror each image in every other epoch instead of at
            random (as airbench does): a random half of the images in even epochs, the other
            half in odd ones, so every two epochs show each image both ways.
        cutout: side of a square zeroed (set to the mean) at a random place; 0 = off.
        rank, world_size: shard for distributed training. Every rank draws the same global
            permutation and augmentation; rank ``r`` takes the ``r``-th slice of every global batch,
            so the union over ranks of one step is exactly the single-process batch.
        seed: base seed; epoch ``e`` uses a generator seeded from ``(seed, e)``.
        num_classes: when given, the labels are checked against it (see :func:`check_labels`);
            negative class indices are always refused.

    ``label_classes`` is the number of classes the labels need: the largest class index + 1,
    or ``C`` for probabilities ``[N, C]``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        train: bool = False,
        shuffle: bool | None = None,
        augment: bool | None = None,
        drop_last: bool | None = None,
        crop_padding: int = 4,
        pad_mode: PadMode = "reflect",
        flip: bool = True,
        alternate_flip: bool = False,
        cutout: int = 0,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_classes: int | None = None,
    ) -> None:
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be positive and divisible by world_size "
                f"({world_size})"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        if pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"pad_mode must be 'reflect' or 'zeros', got {pad_mode!r}")
        if crop_padding < 0 or cutout < 0:
            raise ValueError(
                f"crop_padding and cutout must be >= 0 (0 turns them off), got {crop_padding} "
                f"and {cutout}"
            )
        nhwc = _as_nhwc_uint8(images)
        soft = labels.dim() == 2
        if labels.dim() not in (1, 2) or len(labels) != len(nhwc):
            raise ValueError(
                f"labels must be class indices [N] or class probabilities [N, C] with "
                f"N={len(nhwc)}, got shape {list(labels.shape)}"
            )
        if soft != labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(
                f"labels must be integer class indices [N] or float probabilities [N, C], "
                f"got {labels.dtype} {list(labels.shape)}"
            )
        if len(nhwc) == 0:
            raise ValueError("cannot load an empty split")
        check_labels(labels, num_classes)
        self.soft_labels = soft
        self.label_classes = int(labels.shape[1]) if soft else int(labels.max()) + 1
        self.device = torch.device(device) if device is not None else nhwc.device
        self.batch_size = batch_size
        self.shuffle = train if shuffle is None else shuffle
        self.augment = train if augment is None else augment
        self.drop_last = train if drop_last is None else drop_last
        self.crop_padding = crop_padding if self.augment else 0
        self.pad_mode: PadMode = pad_mode
        self.flip = flip and self.augment
        self.alternate_flip = alternate_flip and self.flip
        self.cutout = cutout if self.augment else 0
        self.dtype = dtype
        self.channels_last = channels_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        n, h, w, _ = nhwc.shape
        if self.augment and pad_mode == "reflect" and crop_padding >= min(h, w):
            raise ValueError(
                f"crop_padding {crop_padding} must be smaller than the image size ({h}x{w}) with "
                "pad_mode='reflect': a reflection cannot add more pixels than the image has. "
                "Use a smaller crop_padding (4 is usual for 32x32) or pad_mode='zeros'"
            )
        self.num_images = int(n)
        self.image_size = (int(h), int(w))
        p = self.crop_padding
        self._padded_hw = (int(h) + 2 * p, int(w) + 2 * p)
        nhwc = nhwc.to(self.device)
        if p:
            rows, cols = _pad_index(h, p, pad_mode), _pad_index(w, p, pad_mode)
            store = nhwc[:, rows.clamp(min=0).to(self.device)][
                :, :, cols.clamp(min=0).to(self.device)
            ]
            if pad_mode == "zeros":
                store[:, (rows < 0).to(self.device)] = 0
                store[:, :, (cols < 0).to(self.device)] = 0
        else:
            store = nhwc
        if self.flip:  # a mirrored copy: a flipped crop is a plain crop of the mirror
            store = torch.cat([store, store.flip(2)])
        # Every run of W consecutive pixels of the store, as overlapping rows of W*3 bytes: a
        # batch (crop + flip) is then ONE gather of B*H such rows, each a contiguous copy.
        flat = store.contiguous().view(-1)
        self._store = flat
        self._windows = flat.as_strided((flat.numel() // 3 - (int(w) - 1), int(w) * 3), (3, 1))
        self._labels = labels.to(self.device, torch.float32 if soft else torch.int64)
        # Normalization as one fused multiply-add over the flat [B, H*W*3] batch.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device) * 255
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device) * 255
        self._scale = (1 / std_t).repeat(int(h) * int(w)).to(dtype)
        self._bias = (-mean_t / std_t).repeat(int(h) * int(w)).to(dtype)
        self._row_offsets = torch.arange(h, device=self.device) * self._padded_hw[1]
        self._ar_h = torch.arange(h, device=self.device)
        self._ar_w = torch.arange(w, device=self.device)

    # -- sizes ------------------------------------------------------------------------------

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def __len__(self) -> int:
        """Number of batches (steps) per epoch, the same on every rank."""
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)

    # -- epochs -----------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation/augmentation the next ``iter()`` uses."""
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self.epoch_batches(epoch)

    def _generator(self, epoch: int) -> torch.Generator:
        mixed = (self.seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % (2**63)
        return torch.Generator().manual_seed(mixed)

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``epoch``, beginning at step ``start`` (for mid-epoch resumption)."""
        n = self.num_images
        g = self._generator(epoch)
        # All randomness is drawn on the CPU in a fixed order, then moved once per epoch:
        # results do not depend on the device, and ranks agree on everything.
        perm = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        p = self.crop_padding
        shifts = (
            torch.randint(0, 2 * p + 1, (n, 2), generator=g)
            if p
            else torch.zeros(n, 2, dtype=torch.int64)
        )
        flips = (
            torch.randint(0, 2, (n,), generator=g).bool()
            if self.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        if self.alternate_flip:  # per image: one random draw for the run, inverted every epoch
            first = torch.randint(0, 2, (n,), generator=self._generator(-1)).bool()
            flips = (first ^ bool(epoch % 2))[perm]
        h, w = self.image_size
        centers = (
            torch.stack(
                [torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)], 1
            )
            if self.cutout
            else None
        )
        dev = self.device
        perm, shifts, flips = perm.to(dev), shifts.to(dev), flips.to(dev)
        if centers is not None:
            centers = centers.to(dev)
        for step in range(start, len(self)):
            lo = step * self.batch_size
            hi = min(lo + self.batch_size, n)
            if self.world_size > 1:
                pos = torch.arange(lo, hi).tensor_split(self.world_size)[self.rank]
                lo, hi = (int(pos[0]), int(pos[-1]) + 1) if len(pos) else (lo, lo)
            yield self._make_batch(
                perm[lo:hi],
                shifts[lo:hi],
                flips[lo:hi],
                None if centers is None else centers[lo:hi],
            )

    def _make_batch(
        self, idx: Tensor, shifts: Tensor, flips: Tensor, centers: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        h, w = self.image_size
        ph, pw = self._padded_hw
        # first pixel of each output row: (copy, image, row + dy, dx) in the padded store
        image = idx + flips.long() * self.num_images
        base = image * (ph * pw) + shifts[:, 0] * pw + shifts[:, 1]
        starts = (base[:, None] + self._row_offsets).view(-1)
        rgb = self._windows.index_select(0, starts).view(-1, h * w * 3)
        x = torch.addcmul(self._bias, rgb, self._scale).view(-1, h, w, 3)
        if centers is not None:
            top = centers - self.cutout // 2  # [B, 2]: first row/column of the hole
            dy = self._ar_h[None, :] - top[:, 0:1]
            dx = self._ar_w[None, :] - top[:, 1:2]
            ys = (dy >= 0) & (dy < self.cutout)
            xs = (dx >= 0) & (dx < self.cutout)
            x = x.masked_fill_((ys[:, :, None] & xs[:, None, :])[..., None], 0.0)
        x = x.permute(0, 3, 1, 2)  # NCHW view with channels_last strides
        if not self.channels_last:
            x = x.contiguous()
        return x, self._labels[idx]

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(images={self.num_images}, batch_size={self.batch_size}, "
            f"steps={len(self)}, shuffle={self.shuffle}, augment={self.augment}, "
            f"crop_padding={self.crop_padding}, flip={self.flip}, cutout={self.cutout}, "
            f"device={self.device}, rank={self.rank}/{self.world_size})"
        )
