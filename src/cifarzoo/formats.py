"""How cifarzoo writes numbers for people, in tables, model cards, reports and the CLI:
percentages, ratios, durations, counts and hardware names (one format for each, wherever it
appears)."""

from __future__ import annotations

import math
import re

__all__ = ["DASH", "count", "duration", "hardware_name", "mebibytes", "percent", "times"]

#: What a table shows for a value that was not measured.
DASH = "\u2014"


def percent(x: float | None) -> str:
    """A fraction as a percentage with two decimals (``0.8861`` -> ``88.61%``; a dash for
    ``None``)."""
    return DASH if x is None else f"{100 * x:.2f}%"


def times(x: float | None) -> str:
    """A ratio with three significant digits, trailing zeros kept and no exponent
    (``0.51287`` -> ``0.513x``, ``1.0004`` -> ``1.00x``, ``655.2`` -> ``655x``, ``1234.5`` ->
    ``1,230x``; a dash for ``None`` or a value that is not finite)."""
    if x is None or not math.isfinite(x):
        return DASH
    if x == 0:
        return "0x"
    rounded = float(f"{x:.2e}")  # three significant digits: 0.9996 is 1.00, not 0.9996
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}x"


def duration(seconds: float | None) -> str:
    """``seconds`` in the unit that reads best: seconds under 2 minutes, minutes under 2 hours,
    then hours (a dash for ``None`` or a value that is not finite)."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def count(n: float) -> str:
    """A count with a K/M/G suffix and two decimals (``11_173_962`` -> ``11.17 M``; 999,999
    is ``1.00 M``, not ``1000.00 K``)."""
    if n < 1000:
        return str(int(n))
    value = float(n)
    for unit in ("K", "M", "G"):
        value /= 1000
        if round(value, 2) < 1000 or unit == "G":
            break
    return f"{value:.2f} {unit}"


def mebibytes(size: int | None) -> str:
    """A size in bytes as MiB with two decimals (``4_738_560`` -> ``4.52``; a dash for
    ``None``); the unit goes in the column's header or after the figure."""
    return DASH if size is None else f"{size / 2**20:.2f}"


def hardware_name(hardware: str | None) -> str:
    """A recorded hardware description, short: ``Intel(R) Xeon(R) Processor (2 CPUs, 1
    threads)`` -> ``Intel Xeon (2 CPUs, 1 thread)`` (a dash for none)."""
    if not hardware:
        return DASH
    text = re.sub(r"\((?:R|TM)\)| Processor\b| CPU @ [\d.]+GHz", "", hardware)
    return re.sub(r"\b1 threads\b", "1 thread", " ".join(text.split()))
