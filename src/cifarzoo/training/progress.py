"""What the user sees and does while a run trains: progress bars, messages, Ctrl-C and SIGTERM."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["Progress", "StopRequest", "log"]


def log(msg: str) -> None:
    """Print ``msg`` without breaking a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(msg)


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM (what a scheduler, ``kill`` or a shutting-down machine sends)
    sets a flag checked between steps, so the run stops with a checkpoint of that very step; a
    second signal interrupts immediately."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()


class Progress:
    """A tqdm bar per epoch (or nothing when quiet)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, leave=True, dynamic_ncols=True, unit="step"
            )

    def update(self, n: int, **postfix: str) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self, **postfix: str) -> None:
        """Close the bar (later calls do nothing)."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix)
            self.bar.close()
            self.bar = None
