"""``argparse`` ``type=`` converters for the options of every cifarzoo command.

Each one refuses a value with an :class:`argparse.ArgumentTypeError`, which argparse reports as
``argument --threads: must be a positive integer, got 0``: the option is named, and nothing
runs. The rules are the word parsers of :mod:`cifarzoo.training.parsing`, which the settings of
:class:`~cifarzoo.training.Recipe` and :class:`~cifarzoo.training.RunOptions` declare too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar

from ..training import parsing

__all__ = [
    "argument_type",
    "available_cpus",
    "fraction",
    "int_up_to",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "thread_count",
]

T = TypeVar("T")


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: the text of its ``ValueError`` becomes argparse's error
    (argparse itself would replace it with ``invalid ... value``)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = getattr(parse, "__name__", "value")  # argparse names it in messages
    return convert


#: An integer >= 1 (``--epochs``, ``--batch-size``, ``--threads``, ``--eval-every``...).
positive_int = argument_type(parsing.positive_int)
#: An integer >= 0 (``--seed``, ``--val-size``, ``--cutout``...; 0 usually means off).
nonnegative_int = argument_type(parsing.nonnegative_int)
#: A finite number > 0 (``--lr``, ``--distill-temperature``).
positive_float = argument_type(parsing.positive_float)
#: A finite number >= 0 (``--weight-decay``, ``--sam-rho``...).
nonnegative_float = argument_type(parsing.nonnegative_float)
#: A number in [0, 1] (``--label-smoothing``, ``--distill-weight``).
fraction = argument_type(parsing.fraction)


def int_up_to(high: int, what: str) -> Callable[[str], int]:
    """An integer from 1 to ``high`` (``what`` says where the bound comes from)."""
    rule = f"an integer from 1 to {high:,} ({what})"
    return argument_type(parsing.int_parser(rule, lambda v: 1 <= v <= high))


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
