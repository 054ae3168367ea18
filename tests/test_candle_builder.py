"""Candle aggregation: epoch-aligned buckets, complete buckets only, backtest-exact volumes."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require_shared
from hypothesis import given, settings
from hypothesis import strategies as st

from data.bar import Bar
from data.candle_builder import CandleBuilder, aggregate, detect_interval_ms, interval_name
from data.csv_source import DataError, parse_timestamp, read_csv_bars

M5, M10, M15, H1 = 300_000, 600_000, 900_000, 3_600_000
DAY0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a multiple of every interval used here
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def bar(ts: int, o: float = 10.0, h: float = 12.0, lo: float = 9.0, c: float = 11.0,
        v: float = 1.0) -> Bar:
    return Bar(ts, o, h, lo, c, v)


def test_two_5m_bars_make_one_10m_bar() -> None:
    parts = [bar(DAY0, 10, 12, 9, 11, 1.5), bar(DAY0 + M5, 11, 13, 10, 12.5, 2.5)]
    assert aggregate(parts, M5, M10) == [Bar(DAY0, 10, 13, 9, 12.5, 4.0)]


def test_four_15m_bars_make_one_60m_bar() -> None:
    parts = [
        bar(DAY0, 100, 105, 99, 104, 1),
        bar(DAY0 + M15, 104, 110, 103, 108, 2),
        bar(DAY0 + 2 * M15, 108, 109, 95, 96, 3),
        bar(DAY0 + 3 * M15, 96, 101, 96, 100, 4),
    ]
    assert aggregate(parts, M15, H1) == [Bar(DAY0, 100, 110, 95, 100, 10)]


def test_buckets_are_aligned_to_the_epoch_not_the_first_bar() -> None:
    # Data starting at 00:15 cannot complete the 00:00 hour; the first 60m bar is 01:00.
    parts = [bar(DAY0 + k * M15) for k in range(1, 9)]
    out = aggregate(parts, M15, H1)
    assert [b.ts for b in out] == [DAY0 + H1]


def test_bucket_missing_a_middle_part_is_dropped() -> None:
    parts = [bar(DAY0 + k * M15) for k in (0, 1, 3, 4, 5, 6, 7)]
    assert [b.ts for b in aggregate(parts, M15, H1)] == [DAY0 + H1]


def test_trailing_partial_bucket_is_dropped() -> None:
    parts = [bar(DAY0 + k * M15) for k in range(7)]
    assert [b.ts for b in aggregate(parts, M15, H1)] == [DAY0]


def test_misaligned_source_bar_breaks_its_bucket() -> None:
    parts = [bar(DAY0), bar(DAY0 + 7 * 60_000), bar(DAY0 + 2 * M15), bar(DAY0 + 3 * M15)]
    assert aggregate(parts, M15, H1) == []


def test_add_returns_the_candle_when_its_last_part_arrives() -> None:
    builder = CandleBuilder(M15, H1)
    results = [builder.add(bar(DAY0 + k * M15)) for k in range(4)]
    assert results[:3] == [None, None, None]
    assert results[3] is not None and results[3].ts == DAY0


def test_flush_drops_a_partial_bucket_and_counts_it() -> None:
    builder = CandleBuilder(M15, H1)
    builder.add(bar(DAY0))
    assert builder.flush() is None
    assert builder.dropped_buckets == 1
    # The partial is gone: a later complete bucket is not polluted by it.
    results = [builder.add(bar(DAY0 + H1 + k * M15)) for k in range(4)]
    assert results[3] == Bar(DAY0 + H1, 10, 12, 9, 11, 4.0)


def test_dropped_incomplete_bucket_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="data.candle_builder")
    aggregate([bar(DAY0), bar(DAY0 + M15)], M15, H1)
    assert "dropped incomplete 1h bucket 2024-01-01T00:00:00Z: 2 of 4 15m bars" in caplog.text


def test_equal_intervals_pass_bars_through() -> None:
    parts = [bar(DAY0 + k * M15, v=k) for k in range(3)]
    assert aggregate(parts, M15, M15) == parts


def test_source_coarser_than_timeframe_is_an_error_naming_both() -> None:
    with pytest.raises(DataError, match="source bars of 1h are coarser than the 15m timeframe"):
        CandleBuilder(H1, M15)


def test_source_not_dividing_timeframe_is_an_error_naming_both() -> None:
    with pytest.raises(DataError, match="source bars of 10m do not divide the 15m timeframe"):
        CandleBuilder(M10, M15)


def test_out_of_order_bar_is_refused() -> None:
    builder = CandleBuilder(M15, H1)
    builder.add(bar(DAY0 + M15))
    with pytest.raises(DataError, match="is not after the previous bar"):
        builder.add(bar(DAY0))


def test_detect_interval_takes_the_most_common_spacing() -> None:
    ts = [0, 1, 2, 3, 5, 6, 10, 11]
    assert detect_interval_ms([bar(DAY0 + k * M15) for k in ts]) == M15


def test_detect_interval_needs_two_bars() -> None:
    with pytest.raises(DataError, match="cannot detect the bar interval from 1 bar"):
        detect_interval_ms([bar(DAY0)])


@pytest.mark.parametrize(("ms", "name"), [(M5, "5m"), (H1, "1h"), (90_000, "90s"), (1500, "1500ms")])
def test_interval_names(ms: int, name: str) -> None:
    assert interval_name(ms) == name


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300))
def test_volume_is_summed_exactly_as_pandas_resample_sums(volumes: list[float]) -> None:
    # The backtest app aggregates with pandas; its sum order must agree to the last bit,
    # since vol_z is compared strictly against a threshold.
    target = len(volumes) * 60_000
    start = DAY0 - DAY0 % target
    parts = [bar(start + k * 60_000, v=v) for k, v in enumerate(volumes)]
    (candle,) = aggregate(parts, 60_000, target)
    index = pd.to_datetime([p.ts for p in parts], unit="ms", utc=True)
    expected = pd.Series(volumes, index=index).resample(f"{len(volumes)}min", origin="epoch").sum()
    assert candle.volume == float(expected.iloc[0])


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 95), max_size=96), st.sampled_from([(M5, M10), (M15, H1), (M5, H1)]))
def test_only_complete_epoch_buckets_come_out(slots: set[int], intervals: tuple[int, int]) -> None:
    source, target = intervals
    parts = [bar(DAY0 + k * source, v=k + 1.0) for k in sorted(slots)]
    out = aggregate(parts, source, target)
    per = target // source
    expected = [b for b in range(96 // per) if all(b * per + i in slots for i in range(per))]
    assert [c.ts for c in out] == [DAY0 + b * target for b in expected]


def test_btc_15m_to_60m_matches_the_golden_bars_exactly() -> None:
    source = SHARED / "data" / "BTCUSDT_15m.csv"
    golden = SHARED / "data" / "golden" / "btc-60m-from-15m" / "features.csv.gz"
    require_shared(source, "candle builder parity")
    require_shared(golden, "candle builder parity")
    bars, rejected = read_csv_bars(source)
    assert rejected == []
    ours = aggregate(bars, M15, H1)
    with gzip.open(golden, "rt", newline="") as handle:
        expected = [
            Bar(parse_timestamp(r["timestamp"]), float(r["open"]), float(r["high"]),
                float(r["low"]), float(r["close"]), float(r["volume"]))
            for r in csv.DictReader(handle)
        ]
    assert len(ours) == len(expected)
    assert ours == expected
