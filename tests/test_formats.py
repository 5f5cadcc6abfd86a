"""cifarzoo.formats: one way to write each kind of number, wherever it is shown."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cifarzoo.formats import DASH, count, duration, percent, times


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


@given(st.floats(min_value=1e-9, max_value=1e9))
@example(0.9996)
@example(999.6)
def test_a_ratio_has_three_significant_digits_and_reads_back(x: float) -> None:
    written = times(x)
    assert written.endswith("x") and "e" not in written
    digits = written[:-1].replace(",", "")
    significant = digits.replace(".", "").lstrip("0")
    assert len(significant) == 3 or (x >= 999.5 and "." not in digits), written
    assert float(digits) == pytest.approx(x, rel=5e-3)


def test_a_ratio_keeps_its_trailing_zeros() -> None:
    written = [times(v) for v in (1.0004, 0.68, 655.2, 99.96, 1234.5, 0.0000123)]
    assert written == ["1.00x", "0.680x", "655x", "100x", "1,230x", "0.0000123x"]
    assert times(None) == times(float("inf")) == DASH
