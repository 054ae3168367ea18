"""Replay loading (validate, aggregate, log) and the paced feed."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from data.bar import Bar
from data.csv_source import DataError
from data.market import BarClosed, BarOpened, FeedEnded
from data.replay_feed import YIELD_EVERY_BARS, ReplayFeed, load_replay

M5, M15 = 300_000, 900_000
DAY0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HEADER = "timestamp,open,high,low,close,volume\n"


def row(ts: int, o: float = 10, h: float = 12, lo: float = 9, c: float = 11, v: float = 1) -> str:
    return f"{ts},{o},{h},{lo},{c},{v}\n"


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "replay.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def bars(n: int, start: int = DAY0, step: int = M15) -> list[Bar]:
    return [Bar(start + k * step, 10.0, 12.0, 9.0, 11.0, 1.0) for k in range(n)]


def test_load_keeps_valid_bars_at_the_timeframe(tmp_path: Path) -> None:
    data = load_replay(write(tmp_path, [row(DAY0 + k * M15) for k in range(5)]), 15)
    assert [b.ts for b in data.bars] == [DAY0 + k * M15 for k in range(5)]
    assert (data.source_interval_ms, data.target_interval_ms) == (M15, M15)
    assert data.rejected == [] and data.gaps == []


def test_load_rejects_invalid_rows_and_logs_each_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [row(DAY0), row(DAY0 + M15, h=8), row(DAY0 + M15), row(DAY0 + M15, v=5),
            "junk,1,2,3,4,5\n", row(DAY0 + 2 * M15, v=-1), row(DAY0 + 2 * M15)]
    with caplog.at_level(logging.WARNING, logger="data.replay_feed"):
        data = load_replay(write(tmp_path, rows), 15)
    assert [b.ts for b in data.bars] == [DAY0, DAY0 + M15, DAY0 + 2 * M15]
    assert [r.line for r in data.rejected] == [3, 5, 6, 7]
    assert "line 3 rejected: high 8.0 is below low 9.0" in caplog.text
    assert "line 5 rejected: duplicate timestamp 2024-01-01T00:15:00Z" in caplog.text
    assert "line 6 rejected: timestamp 'junk'" in caplog.text
    assert "line 7 rejected: negative volume (-1.0)" in caplog.text


def test_load_logs_gaps_with_their_size(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [row(DAY0 + k * M15) for k in (0, 1, 2, 6, 7)]
    with caplog.at_level(logging.WARNING, logger="data.replay_feed"):
        data = load_replay(write(tmp_path, rows), 15)
    assert [(g.after_ts, g.next_ts, g.missing_bars) for g in data.gaps] == [
        (DAY0 + 2 * M15, DAY0 + 6 * M15, 3)
    ]
    assert ("gap of 3 missing 15m bar(s) between 2024-01-01T00:30:00Z and "
            "2024-01-01T01:30:00Z") in caplog.text


def test_load_aggregates_finer_bars_to_the_timeframe(tmp_path: Path) -> None:
    # 5m from 00:05: the 00:00 bucket is incomplete and dropped; 00:10 .. 00:50 make 10m bars.
    rows = [row(DAY0 + k * M5, v=k) for k in range(1, 12)]
    data = load_replay(write(tmp_path, rows), 10)
    assert (data.source_interval_ms, data.target_interval_ms) == (M5, 2 * M5)
    assert [b.ts for b in data.bars] == [DAY0 + k * 2 * M5 for k in range(1, 6)]
    assert [b.volume for b in data.bars] == [5.0, 9.0, 13.0, 17.0, 21.0]


def test_gaps_are_reported_on_the_aggregated_series(tmp_path: Path) -> None:
    rows = [row(DAY0 + k * M15) for k in range(16) if k != 6]
    data = load_replay(write(tmp_path, rows), 60)
    assert [b.ts for b in data.bars] == [DAY0, DAY0 + 2 * 4 * M15, DAY0 + 3 * 4 * M15]
    assert [g.missing_bars for g in data.gaps] == [1]


def test_source_coarser_than_timeframe_is_a_data_error(tmp_path: Path) -> None:
    rows = [row(DAY0 + k * M15) for k in range(4)]
    with pytest.raises(DataError, match="source bars of 15m are coarser than the 5m timeframe"):
        load_replay(write(tmp_path, rows), 5)


def test_file_without_valid_bars_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="only 0 valid bar\\(s\\) out of 2 row\\(s\\)"):
        load_replay(write(tmp_path, [row(DAY0, h=1), "x,1,2,3,4,5\n"]), 15)


def test_no_complete_bucket_is_a_data_error(tmp_path: Path) -> None:
    rows = [row(DAY0 + k * M15) for k in range(3)]
    with pytest.raises(DataError, match="no complete 1h bucket in 3 15m bars"):
        load_replay(write(tmp_path, rows), 60)


async def collect(feed: ReplayFeed, start_after_ts: int | None = None) -> list[Bar]:
    """The live bars of a stream, checking each opens before it closes and the stream ends."""
    out: list[Bar] = []
    events = [e async for e in feed.stream(start_after_ts)]
    assert isinstance(events[-1], FeedEnded) and events[-1].reason == "finished"
    for prev, e in zip(events, events[1:]):
        if isinstance(e, BarClosed) and e.live:
            assert isinstance(prev, BarOpened) and prev.ts == e.bar.ts and prev.price == e.bar.open
            out.append(e.bar)
    return out


async def closed_bars(feed: ReplayFeed):
    async for e in feed.stream():
        if isinstance(e, BarClosed):
            yield e.bar


async def test_max_speed_streams_every_bar_in_order() -> None:
    source = bars(300)
    assert await collect(ReplayFeed(source, None)) == source


async def test_stream_resumes_after_the_given_timestamp() -> None:
    source = bars(10)
    out = await collect(ReplayFeed(source, None), start_after_ts=source[6].ts)
    assert out == source[7:]


async def test_catch_up_bars_come_first_unpaced_and_flagged_not_live() -> None:
    source = bars(50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = [e async for e in ReplayFeed(source, 2.0).stream(source[47].ts)]
    catch_up = [e.bar for e in events if isinstance(e, BarClosed) and not e.live]
    assert catch_up == source[:48]
    assert not any(isinstance(e, BarOpened) and e.ts <= source[47].ts for e in events)
    assert loop.time() - started < 5, "48 catch-up bars at 2 bars/s would take 24 s"


async def test_a_paused_replay_delivers_nothing_until_stepped_one_bar_at_a_time() -> None:
    feed = ReplayFeed(bars(5), None)
    feed.set_paused(True)
    seen: list[Bar] = []

    async def consume() -> None:
        async for bar in closed_bars(feed):
            seen.append(bar)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    assert seen == []
    feed.step()
    await asyncio.sleep(0.05)
    assert len(seen) == 1 and feed.position == 1
    feed.set_paused(False)
    await asyncio.wait_for(task, 5)
    assert len(seen) == 5 and feed.position == feed.total


async def test_resume_point_between_bars_starts_at_the_next_bar() -> None:
    source = bars(10)
    out = await collect(ReplayFeed(source, None), start_after_ts=source[3].ts + 1)
    assert out == source[4:]


async def test_paced_stream_takes_at_least_its_schedule() -> None:
    # 20 bars at 200 bars/s: the first is immediate, the other 19 are 5 ms apart.
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await collect(ReplayFeed(bars(20), 200.0))
    assert len(out) == 20
    assert loop.time() - started >= 0.09


async def test_lowering_speed_mid_stream_slows_the_rest() -> None:
    feed = ReplayFeed(bars(12), None)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    async for _ in closed_bars(feed):
        times.append(loop.time())
        if len(times) == 2:
            feed.speed = 100.0
    assert times[-1] - times[1] >= 0.09


async def test_raising_speed_wakes_a_pending_wait() -> None:
    feed = ReplayFeed(bars(5), 0.001)  # 1000 s per bar unless the change is seen at once
    seen: list[Bar] = []

    async def consume() -> None:
        async for bar in closed_bars(feed):
            seen.append(bar)
            if len(seen) == 1:
                asyncio.get_running_loop().call_soon(setattr, feed, "speed", None)

    await asyncio.wait_for(consume(), timeout=30)
    assert len(seen) == 5


async def test_max_speed_yields_to_the_loop_regularly() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    start_ticks = ticks
    n = 20 * YIELD_EVERY_BARS
    out = await collect(ReplayFeed(bars(n), None))
    task.cancel()
    assert len(out) == n
    assert ticks - start_ticks >= 19


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive number of bars/s or None, got 0"):
        ReplayFeed(bars(2), 0)


def test_speed_setter_validates() -> None:
    feed = ReplayFeed(bars(2), None)
    with pytest.raises(ValueError, match="got nan"):
        feed.speed = float("nan")


def test_feed_refuses_bars_out_of_order() -> None:
    source = bars(3)
    with pytest.raises(DataError, match="increasing timestamps"):
        ReplayFeed([source[1], source[0]], None)


def test_source_description_names_source_span_and_speed() -> None:
    feed = ReplayFeed(bars(3), 25.0, source_name="synthetic_sample_15m.csv")
    assert feed.source_description == (
        "synthetic_sample_15m.csv (3 bars, 2024-01-01T00:00:00Z .. 2024-01-01T00:30:00Z), "
        "25 bars/s"
    )
    feed.speed = None
    assert feed.source_description.endswith("max speed")
