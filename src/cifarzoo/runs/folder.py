"""Run folders of ``cifarzoo train``: their file names, and how they are named, locked,
finished and replaced.

- Without ``--out`` every run gets a new folder ``runs/MODEL/version_N`` (as Lightning names
  its log folders), created with an exclusive ``mkdir`` so that two runs never share one.
- While a run trains it holds the lock file ``.train.lock`` in its folder (:mod:`filelock`), so
  a second process that trains into the same folder stops at once.
- ``metrics.json`` (:data:`MARKER`) is written last and removed first: a folder without it is
  an unfinished run (still training, or interrupted), whatever else it holds.
- A folder that holds a run is only written into with ``--resume`` or ``--overwrite``
  (``resume=True``/``overwrite=True`` for :func:`~cifarzoo.training.fit`'s ``checkpoint_dir``):
  :func:`check_run_folder` is that rule, for the command line and the Python API alike.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock, Timeout

from ..checkpoint import CHECKPOINT_NAME, sha256_sidecar
from ..pretrained import HF_WEIGHTS_FILE

__all__ = [
    "API_WORDS",
    "CLI_WORDS",
    "GRAD_FLOW_FILE",
    "HISTORY_FILE",
    "LOCK_NAME",
    "MARKER",
    "RUN_FILES",
    "WEIGHTS_FILE",
    "RunLockedError",
    "SwitchWords",
    "UnfinishedRunError",
    "check_finished",
    "check_run_folder",
    "clear_run",
    "existing_run_files",
    "is_finished",
    "new_version_folder",
    "run_lock",
]

#: The run's metrics; written last by ``cifarzoo train``, a run folder without it is unfinished.
MARKER = "metrics.json"
#: The final weights (safetensors, beside a ``.sha256`` sidecar): the Hub's file name, so that a
#: run folder's weights load as a Hub folder's do.
WEIGHTS_FILE = HF_WEIGHTS_FILE
#: Per-epoch curves (:class:`cifarzoo.training.History`).
HISTORY_FILE = "history.json"
#: Gradient records of a run that kept them (``benchmarks/lab_comparison.py`` writes them).
GRAD_FLOW_FILE = "grad_flow.json"
LOCK_NAME = ".train.lock"
#: The figures of a run (:func:`cifarzoo.plots.save_training_plots` draws them): loss and
#: accuracy curves, per-class test accuracy.
CURVE_FILES = ("loss.png", "accuracy.png", "per_class.png")
#: The files of a run, removed (the marker first) when ``--overwrite`` replaces it.
RUN_FILES = (
    MARKER,
    WEIGHTS_FILE,
    sha256_sidecar(WEIGHTS_FILE).name,
    HISTORY_FILE,
    *CURVE_FILES,
    CHECKPOINT_NAME,
)
_VERSION = re.compile(r"version_(\d+)")
_TEMP = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp")


class RunLockedError(RuntimeError):
    """Another process is training into the same run folder."""


class UnfinishedRunError(FileNotFoundError):
    """A run folder has no :data:`MARKER`: the run is still training or was interrupted."""


def existing_run_files(folder: Path) -> list[str]:
    """The files of a run that ``folder`` holds (empty for a new or empty folder)."""
    return [name for name in RUN_FILES if (folder / name).is_file()]


class SwitchWords(NamedTuple):
    """How a caller spells the run folder and the two ways of writing into one that holds a
    run, in the messages of :func:`check_run_folder`."""

    folder: str
    resume: str
    overwrite: str


#: The command line's words: ``--out``, ``--resume``, ``--overwrite``.
CLI_WORDS = SwitchWords("--out", "--resume", "--overwrite")
#: :class:`~cifarzoo.training.RunOptions`' words.
API_WORDS = SwitchWords("checkpoint_dir", "resume=True", "overwrite=True")


def check_run_folder(
    folder: Path, *, resume: bool, overwrite: bool, words: SwitchWords = API_WORDS
) -> None:
    """Refuse to train into ``folder`` when it holds a run (finished, or another run's
    checkpoint) that the caller did not ask to continue (``resume``, which needs the
    checkpoint) or to replace (``overwrite``): nothing a user made is replaced unasked."""
    held = existing_run_files(folder)
    if not held or overwrite or (resume and (folder / CHECKPOINT_NAME).is_file()):
        return
    if resume:
        raise ValueError(
            f"{words.folder} {folder} holds a run ({', '.join(held)}) but no {CHECKPOINT_NAME} "
            f"to resume from; pass {words.overwrite} to replace it, or another {words.folder} "
            "folder"
        )
    raise ValueError(
        f"{words.folder} {folder} already holds a run ({', '.join(held)}); pass {words.resume} "
        f"to continue it, {words.overwrite} to replace it, or another {words.folder} folder"
    )


def new_version_folder(parent: Path) -> Path:
    """Create and return ``parent/version_N``, N one more than the largest there (0 first).
    ``mkdir`` is exclusive, so a run started at the same moment takes the next number."""
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in parent.iterdir() if (m := _VERSION.fullmatch(p.name))]
    n = max(numbers, default=-1) + 1
    while True:
        folder = parent / f"version_{n}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.train.lock`` for the ``with`` block, or raise :class:`RunLockedError` at
    once if another process holds it. The operating system releases it when the process ends,
    even killed, so a stale lock never blocks a resume; the temporary files that such a killed
    run left are removed once the lock is taken."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockedError(
            f"another `cifarzoo train` is writing into {folder} (it holds the lock {path}); "
            "wait for it to finish, or pass another --out folder"
        ) from None
    try:
        _remove_stale_temps(folder)
        yield
    finally:
        lock.release()


def _remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files of run files that a killed run left (``atomic_write`` names
    them ``.NAME.<8 hex>.tmp``); only the lock holder writes them, so none is in use."""
    for path in folder.iterdir():
        m = _TEMP.fullmatch(path.name)
        if m and m.group(1) in RUN_FILES and path.is_file():
            path.unlink(missing_ok=True)


def clear_run(folder: Path) -> None:
    """Remove the run files of ``folder`` (:data:`RUN_FILES`, the marker first, so that an
    interruption leaves an unfinished run, never two mixed); other files are kept."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


def is_finished(folder: Path) -> bool:
    """Whether ``folder`` holds a finished run (its :data:`MARKER`)."""
    return (folder / MARKER).is_file()


def check_finished(folder: Path) -> None:
    """Raise :class:`UnfinishedRunError` unless ``folder`` holds a finished run."""
    if is_finished(folder):
        return
    held = existing_run_files(folder)
    state = (
        f"it holds {', '.join(held)} but no {MARKER}, which `cifarzoo train` writes last: the "
        "run is still training or was interrupted (resume it with `cifarzoo train MODEL --out "
        f"{folder} --resume`)"
        if held
        else f"it holds no `cifarzoo train` run ({MARKER} and {WEIGHTS_FILE} are missing)"
    )
    raise UnfinishedRunError(f"{folder} is not a finished run: {state}")
