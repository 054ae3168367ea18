"""Replay of a CSV file as a feed of closed bars: load once, then stream at a chosen speed.

Loading is where every data problem surfaces (bad rows, invalid bars, gaps, an interval that
does not fit the timeframe), logged once each; the stream only paces bars that are known good.
Pacing runs on the event loop's monotonic clock, never the wall clock.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.bar import Bar, iso_utc
from data.candle_builder import CandleBuilder, detect_interval_ms, interval_name
from data.market import BarClosed, BarOpened, FeedEnded, MarketEvent
from data.csv_source import DataError, read_csv, report_rejections
from data.validator import Gap, Rejected, find_gaps, validate_bars

log = logging.getLogger(__name__)

# At max speed, hand control back to the loop this often so a GUI sharing it stays responsive.
YIELD_EVERY_BARS = 64


@dataclass
class ReplayData:
    """Bars ready for the strategy, plus what was refused or missing on the way."""

    bars: list[Bar]
    rejected: list[Rejected]
    gaps: list[Gap]
    source_interval_ms: int
    target_interval_ms: int


def load_replay(path: Path, timeframe_minutes: int) -> ReplayData:
    """Read, validate and (if the file is finer) aggregate a CSV to the timeframe.

    Each rejected row and each gap in the resulting series is logged at WARNING. Raises
    DataError when the file is unusable: unreadable, bad header, no valid bars, an interval
    coarser than or not dividing the timeframe, or no complete bar after aggregation.
    """
    if timeframe_minutes <= 0:
        raise DataError(f"timeframe must be a positive number of minutes, got {timeframe_minutes}")
    target_ms = timeframe_minutes * 60_000
    contents = read_csv(path)
    bars, invalid = validate_bars(contents.bars, contents.lines)
    rejected = sorted(contents.rejected + invalid, key=lambda r: (r.line or 0))
    report_rejections(path, rejected, len(bars), log)   # a few lines, then counts; most bad: DataError
    if len(bars) < 2:
        raise DataError(
            f"{path}: only {len(bars)} valid bar(s) out of "
            f"{len(bars) + len(rejected)} row(s): nothing usable to replay"
        )
    source_ms = detect_interval_ms(bars)
    if source_ms != target_ms:
        builder = CandleBuilder(source_ms, target_ms)
        fine_count = len(bars)
        bars = [candle for bar in bars if (candle := builder.add(bar)) is not None]
        builder.flush()
        log.info(
            "%s: aggregated %d %s bars into %d %s bars (%d incomplete bucket(s) dropped)",
            path, fine_count, interval_name(source_ms), len(bars),
            interval_name(target_ms), builder.dropped_buckets,
        )
        if not bars:
            raise DataError(
                f"{path}: no complete {interval_name(target_ms)} bucket in "
                f"{fine_count} {interval_name(source_ms)} bars: nothing usable to replay"
            )
    gaps = find_gaps(bars, target_ms)
    for gap in gaps:
        log.warning(
            "%s: gap of %d missing %s bar(s) between %s and %s",
            path, gap.missing_bars, interval_name(target_ms),
            iso_utc(gap.after_ts), iso_utc(gap.next_ts),
        )
    return ReplayData(bars, rejected, gaps, source_ms, target_ms)


class ReplayFeed:
    """Streams a file's bars as market events at `speed` bars per second (None = as fast as
    possible).

    Bars at or before the resume point are catch-up: they go out at once, flagged not live,
    whatever the speed (a restarted replay reaches its live part in a blink). Each live bar is a
    BarOpened at its open and a BarClosed, paced drift-free: bar k is due at anchor + k / speed
    on the loop's monotonic clock. Changing `speed`, pausing or stepping wakes a pending wait at
    once. The stream ends with FeedEnded("finished").
    """

    def __init__(self, bars: Sequence[Bar], speed: float | None, source_name: str = "replay",
                 timeframe_ms: int | None = None) -> None:
        for prev, nxt in zip(bars, bars[1:]):
            if nxt.ts <= prev.ts:
                raise DataError(
                    f"{source_name}: bars must have increasing timestamps: "
                    f"{iso_utc(nxt.ts)} follows {iso_utc(prev.ts)}"
                )
        self._bars = list(bars)
        self._speed = _checked_speed(speed)
        self._source_name = source_name
        self._tf_ms = timeframe_ms or (detect_interval_ms(self._bars) if len(self._bars) > 1 else 60_000)
        self._wake = asyncio.Event()
        self._paused = False
        self._steps = 0
        self.position = 0                 # bars streamed so far (catch-up included)
        self.observer: Callable[[MarketEvent], None] | None = None   # sees each event first

    @property
    def total(self) -> int:
        return len(self._bars)

    @property
    def speed(self) -> float | None:
        """Bars per second, or None for as fast as possible."""
        return self._speed

    @speed.setter
    def speed(self, value: float | None) -> None:
        self._speed = _checked_speed(value)
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """Stop or restart the replay clock (not the engine: a paused clock delivers nothing)."""
        self._paused = paused
        self._wake.set()

    def step(self) -> None:
        """While paused, deliver exactly one more bar."""
        self._steps += 1
        self._wake.set()

    @property
    def source_description(self) -> str:
        """What is being replayed, for the status bar and the log."""
        pace = "max speed" if self._speed is None else f"{self._speed:g} bars/s"
        if not self._bars:
            return f"{self._source_name} (no bars), {pace}"
        return (
            f"{self._source_name} ({len(self._bars)} bars, {iso_utc(self._bars[0].ts)} .. "
            f"{iso_utc(self._bars[-1].ts)}), {pace}"
        )

    async def stream(self, resume_after_ts: int | None = None) -> AsyncIterator[MarketEvent]:
        """The events; `self.observer` (a paper venue), when set, is shown each one just before
        it is yielded, which spares a replay one more async generator layer per event."""
        observer = self.observer
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        since_yield = 0
        due: float | None = None          # when the next live bar is due on loop.time()
        self.position = 0
        tf_ms = self._tf_ms
        for bar in self._bars:
            ts = bar.ts
            live = resume_after_ts is None or ts > resume_after_ts
            if live:
                if self._speed is None and not self._paused:
                    due = None                 # as fast as possible: nothing to wait for
                else:
                    due = await self._wait_turn(loop, due)
            since_yield += 1
            if since_yield >= YIELD_EVERY_BARS:
                await asyncio.sleep(0)
                since_yield = 0
            self.position += 1
            if live:
                opened = BarOpened(ts, bar.open)
                if observer is not None:
                    observer(opened)
                yield opened
            closed = BarClosed(bar, ts + tf_ms, live)
            if observer is not None:
                observer(closed)
            yield closed
        ended = FeedEnded("finished", f"{self._source_name}: {self.position} bars")
        if observer is not None:
            observer(ended)
        yield ended

    async def _wait_turn(self, loop: asyncio.AbstractEventLoop, due: float | None) -> float | None:
        """Sleep until the next live bar is due (or a step releases it while paused); returns
        when the bar after it is due."""
        while True:
            if self._paused:
                if self._steps:
                    self._steps -= 1
                    return None            # re-anchor after a step
                self._wake.clear()
                await self._wake.wait()
                due = None
                continue
            speed = self._speed
            if speed is None or due is None:
                break
            delay = due - loop.time()
            if delay <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            if self._speed != speed and self._speed is not None:
                due = due - 1.0 / speed + 1.0 / self._speed   # re-pace from the previous bar
        speed = self._speed
        return None if speed is None else (loop.time() if due is None else due) + 1.0 / speed


def _checked_speed(speed: float | None) -> float | None:
    if speed is None:
        return None
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"replay speed must be a positive number of bars/s or None, got {speed}")
    return float(speed)
