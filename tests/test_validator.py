"""OHLCV validation: each rejection reason, ordering rules, gap sizes."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.bar import Bar
from data.validator import Gap, Rejected, bar_problem, find_gaps, validate_bars

M15 = 900_000
T0 = 1_700_000_100_000 - 1_700_000_100_000 % M15


def ok(ts: int, price: float = 100.0) -> Bar:
    return Bar(ts, price, price + 1.0, price - 1.0, price + 0.5, 10.0)


def reason_for(bar: Bar) -> str:
    kept, rejected = validate_bars([bar])
    assert kept == []
    return rejected[0].reason


def test_valid_bar_is_kept() -> None:
    assert validate_bars([ok(T0)]) == ([ok(T0)], [])


def test_zero_volume_and_flat_bar_are_valid() -> None:
    flat = Bar(T0, 5.0, 5.0, 5.0, 5.0, 0.0)
    assert validate_bars([flat]) == ([flat], [])


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_nan_in_any_field_is_rejected(field: str) -> None:
    values = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1.0}
    values[field] = math.nan
    assert reason_for(Bar(T0, **values)) == f"{field} is not a finite number (nan)"


def test_infinity_is_rejected() -> None:
    assert "high is not a finite number (inf)" in reason_for(Bar(T0, 1.0, math.inf, 0.5, 1.0, 1.0))


def test_high_below_low_is_rejected() -> None:
    assert reason_for(Bar(T0, 1.0, 1.0, 2.0, 1.0, 1.0)) == "high 1.0 is below low 2.0"


def test_open_above_high_is_rejected() -> None:
    assert "open 3.0 is outside [low 1.0, high 2.0]" == reason_for(Bar(T0, 3.0, 2.0, 1.0, 1.5, 1.0))


def test_open_below_low_is_rejected() -> None:
    assert "open 0.5 is outside" in reason_for(Bar(T0, 0.5, 2.0, 1.0, 1.5, 1.0))


def test_close_outside_range_is_rejected() -> None:
    assert "close 2.5 is outside [low 1.0, high 2.0]" == reason_for(Bar(T0, 1.5, 2.0, 1.0, 2.5, 1.0))


def test_negative_volume_is_rejected() -> None:
    assert reason_for(Bar(T0, 1.5, 2.0, 1.0, 1.5, -0.1)) == "negative volume (-0.1)"


def test_duplicate_timestamp_keeps_the_first() -> None:
    first, again = ok(T0, 100.0), ok(T0, 200.0)
    kept, rejected = validate_bars([first, again])
    assert kept == [first]
    assert rejected[0].ts == T0
    assert rejected[0].reason.startswith("duplicate timestamp")


def test_out_of_order_timestamp_is_rejected() -> None:
    kept, rejected = validate_bars([ok(T0), ok(T0 + 2 * M15), ok(T0 + M15)])
    assert [b.ts for b in kept] == [T0, T0 + 2 * M15]
    assert rejected[0].reason.startswith("out-of-order timestamp")


def test_order_is_judged_against_kept_bars_only() -> None:
    bad = Bar(T0 + 5 * M15, math.nan, 1.0, 1.0, 1.0, 1.0)
    kept, rejected = validate_bars([ok(T0), bad, ok(T0 + M15)])
    assert [b.ts for b in kept] == [T0, T0 + M15]
    assert len(rejected) == 1


def test_line_numbers_are_carried_into_rejections() -> None:
    _, rejected = validate_bars([ok(T0), ok(T0)], lines=[7, 9])
    assert rejected == [Rejected(line=9, ts=T0, reason=rejected[0].reason)]


def test_no_gap_in_contiguous_bars() -> None:
    assert find_gaps([ok(T0 + i * M15) for i in range(5)], M15) == []


def test_gap_reports_its_size_in_bars() -> None:
    bars = [ok(T0), ok(T0 + M15), ok(T0 + 5 * M15), ok(T0 + 7 * M15)]
    assert find_gaps(bars, M15) == [
        Gap(after_ts=T0 + M15, next_ts=T0 + 5 * M15, missing_bars=3),
        Gap(after_ts=T0 + 5 * M15, next_ts=T0 + 7 * M15, missing_bars=1),
    ]


def test_find_gaps_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_ms must be positive"):
        find_gaps([ok(T0)], 0)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
any_float = st.one_of(finite, st.just(math.nan), st.just(math.inf))
raw_bars = st.lists(
    st.builds(Bar, st.integers(0, 40).map(lambda k: T0 + k * M15),
              any_float, any_float, any_float, any_float, any_float),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(raw_bars)
def test_kept_bars_are_valid_and_strictly_increasing(bars: list[Bar]) -> None:
    kept, rejected = validate_bars(bars)
    assert len(kept) + len(rejected) == len(bars)
    assert all(bar_problem(b) is None for b in kept)
    assert all(a.ts < b.ts for a, b in zip(kept, kept[1:]))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 300), min_size=1, max_size=60))
def test_gaps_account_for_every_missing_bar(slots: set[int]) -> None:
    bars = [ok(T0 + k * M15) for k in sorted(slots)]
    gaps = find_gaps(bars, M15)
    span = max(slots) - min(slots) + 1
    assert sum(g.missing_bars for g in gaps) == span - len(slots)
    assert all(g.missing_bars >= 1 for g in gaps)
