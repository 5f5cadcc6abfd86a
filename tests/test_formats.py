"""cifarzoo.formats: one way to write each kind of number, wherever it is shown."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from cifarzoo.formats import DASH, count, duration, percent


@given(st.floats(0, 1e6, allow_nan=False))
def test_a_duration_reads_back_to_its_seconds_within_its_rounding(seconds: float) -> None:
    value, unit = duration(seconds).split(" ")
    scale = {"s": 1, "min": 60, "h": 3600}[unit]
    assert unit == ("s" if seconds < 120 else "min" if seconds < 7200 else "h")
    assert math.isclose(float(value) * scale, seconds, abs_tol=scale * 0.05 + 0.5)


def test_what_was_not_measured_is_a_dash() -> None:
    assert duration(None) == duration(math.nan) == duration(math.inf) == percent(None) == DASH


@given(st.integers(0, 10**12))
@example(999_999)  # rounds to 1000.00 K: written 1.00 M
@example(999)
def test_a_count_reads_back_to_its_value_within_its_rounding(n: int) -> None:
    value, _, unit = count(n).partition(" ")
    scale = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[unit]
    assert (unit == "") == (n < 1000)
    assert unit == "" or 1 <= float(value) < 1000 or unit == "G"
    assert math.isclose(float(value) * scale, n, abs_tol=scale * 0.005 + 0.5)


@given(st.floats(0, 1))
def test_a_percentage_has_two_decimals(x: float) -> None:
    written = percent(x)
    assert written.endswith("%") and len(written.partition(".")[2]) == 3
    assert abs(float(written[:-1]) - 100 * x) <= 0.005 + 1e-9
