"""``argparse`` ``type=`` converters for the numeric options of every cifarzoo command.

Each one refuses a value outside its range with an :class:`argparse.ArgumentTypeError`, which
argparse reports as ``argument --threads: must be a positive integer, got 0``: the option is
named, and nothing runs.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

__all__ = [
    "available_cpus",
    "fraction",
    "int_up_to",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "thread_count",
]


def _number(
    kind: Callable[[str], float], rule: str, ok: Callable[[float], bool]
) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    convert.__name__ = rule.replace(" ", "_")  # argparse names the type in some messages
    return convert


def _int_converter(rule: str, ok: Callable[[float], bool]) -> Callable[[str], int]:
    convert = _number(int, rule, ok)

    def as_int(text: str) -> int:
        return int(convert(text))

    as_int.__name__ = convert.__name__
    return as_int


#: An integer >= 1 (``--epochs``, ``--batch-size``, ``--threads``, ``--eval-every``...).
positive_int = _int_converter("a positive integer", lambda v: v >= 1)
#: An integer >= 0 (``--seed``, ``--val-size``, ``--cutout``...; 0 usually means off).
nonnegative_int = _int_converter("an integer >= 0", lambda v: v >= 0)
#: A finite number > 0 (``--lr``, ``--distill-temperature``).
positive_float = _number(float, "a number > 0", lambda v: v > 0)
#: A finite number >= 0 (``--weight-decay``, ``--sam-rho``...).
nonnegative_float = _number(float, "a number >= 0", lambda v: v >= 0)
#: A number in [0, 1] (``--label-smoothing``, ``--distill-weight``).
fraction = _number(float, "a number from 0 to 1", lambda v: 0 <= v <= 1)


def int_up_to(high: int, what: str) -> Callable[[str], int]:
    """An integer from 1 to ``high`` (``what`` says where the bound comes from)."""
    return _int_converter(f"an integer from 1 to {high:,} ({what})", lambda v: 1 <= v <= high)


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where there is one, else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks on macOS and Windows
        return os.cpu_count() or 1


def thread_count(text: str) -> int:
    """A number of torch CPU threads (``--threads``): 1 to :func:`available_cpus` (more
    threads than CPUs only wait on each other, and a huge count exhausts memory)."""
    return int_up_to(available_cpus(), "the CPUs available")(text)
