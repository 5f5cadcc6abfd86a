"""CIFAR-10's python release on disk: the layout of its folder, and reading its pickled batch
files safely (numpy arrays only, bounded in size, every shape, dtype and label checked), with
errors that say how to get a good copy."""

from __future__ import annotations

import io
import numbers
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .constants import CIFAR10_CLASSES, IMAGE_SIZE, NUM_CLASSES

__all__ = [
    "FOLDER",
    "HOW_TO_GET",
    "IMAGES_PER_FILE",
    "MAX_FILE_BYTES",
    "META_FILE",
    "TEST_FILE",
    "TRAIN_FILES",
    "DataFormatError",
    "how_to_replace",
    "read_batch",
    "read_meta",
    "read_pickle",
]

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
#: Images in each batch file of the official release, and so in its splits.
IMAGES_PER_FILE = 10_000

HOW_TO_GET = (
    "Get the data with `cifarzoo.load_cifar10(root, download=True)` (or "
    "`cifarzoo train MODEL --data ROOT --download`), or unpack the official "
    "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into ROOT so that "
    f"ROOT/{FOLDER}/ holds {', '.join(TRAIN_FILES)}, {TEST_FILE} and {META_FILE}."
)


#: A batch file is about 31 MB; a much larger file is not one, and is not unpickled.
MAX_FILE_BYTES = 64 * 2**20


def how_to_replace(folder: Path) -> str:
    """What to do about a damaged copy in ``folder``: delete it, then get the data again."""
    # --download only fetches missing files, so a damaged copy has to go first.
    return (
        f"The copy in {folder} is damaged or not the official CIFAR-10 python release: delete "
        f"(or replace) the whole {FOLDER} folder, then get the data again; --download and "
        f"download=True only fetch missing files. {HOW_TO_GET}"
    )


class DataFormatError(ValueError):
    """A CIFAR-10 folder exists but its content is not what the standard layout promises."""


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


def read_pickle(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataFormatError(
            f"{path} is {size / 1e6:,.0f} MB, far more than a CIFAR-10 batch file (about 31 MB); "
            f"it was not read. {how_to_replace(path.parent)}"
        )
    # Unpickling from memory bounds every read by the file's size: a damaged length field
    # cannot make the unpickler allocate gigabytes.
    raw = path.read_bytes()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except MemoryError as e:  # a damaged length field, or a machine out of memory: never
        # advise deleting data that may be fine
        raise MemoryError(
            f"out of memory while reading {path}: free some memory (other programs, fewer "
            "--threads) and try again; if it fails with memory free, the file is damaged: "
            "compare it with a fresh copy of the CIFAR-10 python release"
        ) from e
    except Exception as e:  # damaged pickles fail in many ways: Overflow-, IndexError...
        raise DataFormatError(
            f"{path} is not a CIFAR-10 python pickle file ({type(e).__name__}: {e}). "
            f"{how_to_replace(path.parent)}"
        ) from e
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path} holds a {type(obj).__name__}, expected a dict. {how_to_replace(path.parent)}"
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_batch(path: Path) -> tuple[Tensor, Tensor]:
    import numpy as np

    d = read_pickle(path)
    how = how_to_replace(path.parent)
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


def read_meta(folder: Path) -> tuple[int, str, tuple[str, ...]]:
    """``(images per batch file, where that count comes from, class names)`` of ``folder``:
    from ``batches.meta`` when there is one, else the official release's."""
    if not (folder / META_FILE).is_file():
        return IMAGES_PER_FILE, f"the official count; there is no {META_FILE}", CIFAR10_CLASSES
    meta = read_pickle(folder / META_FILE)
    per_file, source = meta.get("num_cases_per_batch"), f"num_cases_per_batch in {META_FILE}"
    if per_file is None:
        per_file = IMAGES_PER_FILE
        source = f"the official count; {META_FILE} has no num_cases_per_batch"
    if isinstance(per_file, bool) or not isinstance(per_file, numbers.Integral) or per_file <= 0:
        raise DataFormatError(
            f"{folder / META_FILE}: 'num_cases_per_batch' must be a positive integer, got "
            f"{per_file!r}. {how_to_replace(folder)}"
        )
    names = meta.get("label_names")
    classes = CIFAR10_CLASSES
    if isinstance(names, list) and len(names) == NUM_CLASSES:
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return int(per_file), source, classes
