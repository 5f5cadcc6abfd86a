"""Freed CPU memory kept for the next step, where the C library is glibc (Linux).

glibc's malloc serves every block above its mmap threshold (32 MB at most) with fresh pages from
``mmap`` and unmaps them when the block is freed. A training step of a big network at a large
batch allocates gigabytes of such activations, so every step pays a page fault and the zeroing of
each 4 KB page again (docs/training.rst gives the speed-up). Inside :func:`kept_heap` malloc takes
no memory from ``mmap`` and returns none to the system; on leaving, large blocks come from
``mmap`` again and the heap is trimmed, so the memory is given back.

This holds for the main heap, the one a process's main thread allocates from. Other threads
have heaps of at most 64 MB, so glibc maps larger blocks afresh for them whatever the settings
(as it does for the main thread once a request the system refused moved it to such a heap).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import threading
from collections.abc import Iterator

__all__ = ["heap_kept", "kept_heap"]

# mallopt(3) parameters and the values restored on leaving: glibc's largest dynamic mmap
# threshold on 64-bit systems (where a long-running PyTorch process settles), twice that as the
# trim threshold (what glibc pairs with it), and its default count of mmap'd blocks.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_RESTORED = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20, _M_MMAP_MAX: 65536}
_NO_TRIM = -1  # mallopt(3): "setting M_TRIM_THRESHOLD to -1 disables trimming completely"

_lock = threading.Lock()
_depth = 0


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def heap_kept() -> bool:
    """Whether a :func:`kept_heap` block is in effect now."""
    return _depth > 0


@contextlib.contextmanager
def kept_heap(enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory in the heap for the duration of the block (nested blocks share it).

    Yields whether it is in effect: ``False`` when ``enabled`` is false or the C library is not
    glibc (macOS, Windows, musl), where nothing changes.
    """
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for param, value in _RESTORED.items():
                    libc.mallopt(param, value)
                libc.malloc_trim(0)
