"""How a command-line word becomes the value of a setting, for the ``parse`` of a field's
declaration (:func:`~cifarzoo.training.fields.setting`).

Each parser refuses a word with ``ValueError("must be <rule>, got <word>")``; the command line
(:mod:`cifarzoo.cli.argtypes`) reports that text with the option's name
(``argument --epochs: must be a positive integer, got 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "fraction",
    "int_parser",
    "nonnegative_float",
    "nonnegative_int",
    "number_parser",
    "positive_float",
    "positive_int",
]


def number_parser(
    kind: Callable[[str], float], rule: str, ok: Callable[[float], bool]
) -> Callable[[str], float]:
    """A parser of a finite ``kind`` (``int``, ``float``) that passes ``ok``; ``rule`` words
    the allowed values in its error (``"a number > 0"``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"must be {rule}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise ValueError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = rule.replace(" ", "_")  # the command line names the type in some messages
    return parse


def int_parser(rule: str, ok: Callable[[float], bool]) -> Callable[[str], int]:
    """:func:`number_parser` of an integer."""
    parse = number_parser(int, rule, ok)

    def as_int(text: str) -> int:
        return int(parse(text))

    as_int.__name__ = parse.__name__
    return as_int


#: An integer >= 1 (``--epochs``, ``--batch-size``, ``--eval-every``...).
positive_int = int_parser("a positive integer", lambda v: v >= 1)
#: An integer >= 0 (``--seed``, ``--cutout``...; 0 usually means off).
nonnegative_int = int_parser("an integer >= 0", lambda v: v >= 0)
#: A finite number > 0 (``--lr``, ``--distill-temperature``).
positive_float = number_parser(float, "a number > 0", lambda v: v > 0)
#: A finite number >= 0 (``--weight-decay``, ``--sam-rho``...).
nonnegative_float = number_parser(float, "a number >= 0", lambda v: v >= 0)
#: A number in [0, 1] (``--label-smoothing``, ``--distill-weight``).
fraction = number_parser(float, "a number from 0 to 1", lambda v: 0 <= v <= 1)
