"""OHLCV sanity checks and gap detection.

A bar that fails a check never reaches the strategy: one bad candle (a NaN, a high below the
low, a replayed duplicate) would poison every rolling window it enters for hundreds of bars.
The checks are pure; callers decide how to log what was rejected.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from data.bar import Bar, iso_utc


@dataclass(frozen=True)
class Rejected:
    """A row or bar that was refused, and why. `line` is the 1-based file line when known."""

    line: int | None
    ts: int | None
    reason: str
    kind: str = field(default="", compare=False)   # the reason without its values, for counts

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", reason_kind(self.reason))


_KINDS = (("duplicate timestamp", "duplicate timestamp"), ("out-of-order", "out-of-order timestamp"),
          ("negative volume", "negative volume"), ("high ", "high below low"),
          ("open ", "open outside [low, high]"), ("close ", "close outside [low, high]"))


def reason_kind(reason: str) -> str:
    """What a rejection reason says without the values in it, so a flood of bad rows can be
    reported as a count per kind instead of a line per row."""
    if "not a finite number" in reason:
        return f"{reason.split()[0]} not a finite number"
    for prefix, kind in _KINDS:
        if reason.startswith(prefix):
            return kind
    return reason


@dataclass(frozen=True)
class Gap:
    """`missing_bars` bars of the interval are absent between two consecutive kept bars."""

    after_ts: int
    next_ts: int
    missing_bars: int


def bar_problem(bar: Bar) -> str | None:
    """The first thing wrong with a single bar's values, or None if it is a valid candle."""
    for name in ("open", "high", "low", "close", "volume"):
        value = getattr(bar, name)
        if not math.isfinite(value):
            return f"{name} is not a finite number ({value})"
    if bar.volume < 0:
        return f"negative volume ({bar.volume})"
    if bar.high < bar.low:
        return f"high {bar.high} is below low {bar.low}"
    if not bar.low <= bar.open <= bar.high:
        return f"open {bar.open} is outside [low {bar.low}, high {bar.high}]"
    if not bar.low <= bar.close <= bar.high:
        return f"close {bar.close} is outside [low {bar.low}, high {bar.high}]"
    return None


def validate_bars(
    bars: Iterable[Bar], lines: Sequence[int] | None = None
) -> tuple[list[Bar], list[Rejected]]:
    """Keep valid bars with strictly increasing timestamps; refuse the rest with a reason.

    Order is judged against the last KEPT bar, so a duplicate keeps its first occurrence and a
    bar older than what was already accepted is refused. `lines`, when given, are the source
    line numbers of `bars` (same order) and are copied into the rejections.
    """
    kept: list[Bar] = []
    rejected: list[Rejected] = []
    for index, bar in enumerate(bars):
        line = lines[index] if lines is not None else None
        problem = bar_problem(bar)
        if problem is None and kept:
            last_ts = kept[-1].ts
            if bar.ts == last_ts:
                problem = f"duplicate timestamp {iso_utc(bar.ts)}"
            elif bar.ts < last_ts:
                problem = (
                    f"out-of-order timestamp {iso_utc(bar.ts)} "
                    f"(after {iso_utc(last_ts)})"
                )
        if problem is None:
            kept.append(bar)
        else:
            rejected.append(Rejected(line=line, ts=bar.ts, reason=problem))
    return kept, rejected


def find_gaps(bars: Sequence[Bar], interval_ms: int) -> list[Gap]:
    """Every place where consecutive bars are further apart than one interval.

    `missing_bars` counts the whole intervals that fit strictly between the two bars, so a
    spacing of k intervals reports k - 1 missing bars.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    gaps: list[Gap] = []
    for prev, nxt in zip(bars, bars[1:]):
        delta = nxt.ts - prev.ts
        if delta > interval_ms:
            gaps.append(Gap(prev.ts, nxt.ts, (delta - 1) // interval_ms))
    return gaps
