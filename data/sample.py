"""SYNTHETIC sample market data for the demo and tests: generated, not real prices.

The demo must trade without network access or a bundled data file, so the repo generates a
15-minute BTC-like series from a seed: quiet ranges, up trends, and grinding downtrends that
end in capitulation bars (volume spike, wide range, close near the high: the "seller
exhaustion" the strategy buys) followed by rebounds towards the prior swing high.

Determinism on every platform and Python version: only `random.Random.random()` is used (the
one generator output Python guarantees to reproduce for a seed) and only IEEE-exact
arithmetic (+ - * /, round): no math.exp/log/sin (libm results differ in the last bit between
platforms) and no numpy. Files written from it are named synthetic_*.csv by convention.
"""
from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data.bar import Bar
from data.csv_source import COLUMNS

SAMPLE_START_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_BASE_PRICE = 30_000.0
_BASE_VOLUME = 400.0
# Relative volume by UTC hour: thin Asian night, busier European and US sessions.
_HOURLY_VOLUME = (
    0.85, 0.80, 0.75, 0.70, 0.70, 0.75, 0.85, 0.95, 1.05, 1.10, 1.10, 1.05,
    1.05, 1.15, 1.30, 1.40, 1.35, 1.25, 1.15, 1.05, 1.00, 0.95, 0.90, 0.85,
)


def _exp(x: float) -> float:
    """e**x by (1 + x/1024)**1024: only multiplications, so bit-identical everywhere."""
    y = 1.0 + x / 1024.0
    for _ in range(10):
        y *= y
    return y


class _Noise:
    """Approximately standard normal draws built from random() alone (Irwin-Hall, n=12)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._rng.random()

    def normal(self) -> float:
        return sum(self._rng.random() for _ in range(12)) - 6.0

    def chance(self, p: float) -> bool:
        return self._rng.random() < p


@dataclass
class _Regime:
    """A stretch of bars with one drift (per bar, log) and volatility (per bar, log)."""

    kind: str
    bars: int
    drift: float
    vol: float


class _Generator:
    def __init__(self, seed: int, interval_ms: int, start_ts: int) -> None:
        self.noise = _Noise(seed)
        self.interval_ms = interval_ms
        # Windows below are calibrated in 15-minute bars; scale them to the interval.
        self.scale = 900_000 / interval_ms
        self.ts = start_ts
        self.price = _BASE_PRICE
        self.bars: list[Bar] = []

    def emit(self, log_return: float, vol: float, volume_boost: float = 1.0,
             wick: float = 1.0, close_loc: float | None = None) -> None:
        open_ = round(self.price, 1)
        close = round(open_ * _exp(log_return), 1)
        spread = abs(vol) * wick
        high = max(open_, close) * (1.0 + spread * abs(self.noise.normal()) * 0.6)
        low = min(open_, close) * (1.0 - spread * abs(self.noise.normal()) * 0.6)
        if close_loc is not None:
            # Capitulation: a long lower wick, the close in the top part of the range.
            low = min(open_, close) * (1.0 - spread * self.noise.uniform(2.5, 4.0))
            high = max(close, (close - close_loc * low) / (1.0 - close_loc) if close_loc < 1 else close)
            high = max(high, open_)
        high = max(round(high, 1), open_, close)
        low = min(round(low, 1), open_, close)
        hour = (self.ts // 3_600_000) % 24
        size_move = 1.0 + 8.0 * abs(log_return) / max(vol, 1e-9) * 0.1
        volume = _BASE_VOLUME * _HOURLY_VOLUME[hour] * size_move * volume_boost
        volume *= _exp(0.35 * self.noise.normal())
        self.bars.append(Bar(self.ts, open_, high, low, close, round(volume, 3)))
        self.ts += self.interval_ms
        self.price = close

    def run_regime(self, regime: _Regime) -> None:
        for _ in range(regime.bars):
            r = regime.drift + regime.vol * self.noise.normal()
            self.emit(r, regime.vol)

    def capitulation_cycle(self) -> None:
        """Grinding decline, a flush with exhaustion bars, then a rebound."""
        n = self.noise
        decline_bars = int(n.uniform(50, 90) * self.scale)
        vol = n.uniform(0.0022, 0.0030)
        self.run_regime(_Regime("down", decline_bars, -n.uniform(0.0008, 0.0013), vol))
        for _ in range(int(n.uniform(1, 3.99))):
            self.emit(-n.uniform(0.3, 1.0) * vol, vol * 2.5,
                      volume_boost=n.uniform(5.0, 9.0), close_loc=n.uniform(0.7, 0.9))
        rebound_bars = int(n.uniform(40, 80) * self.scale)
        self.run_regime(_Regime("rebound", rebound_bars, n.uniform(0.0010, 0.0016), vol * 0.8))

    def next_regime(self) -> None:
        n = self.noise
        pick = n.uniform(0.0, 1.0)
        if pick < 0.35:
            self.run_regime(_Regime("quiet", int(n.uniform(100, 300) * self.scale), 0.0,
                                    n.uniform(0.0010, 0.0016)))
        elif pick < 0.6:
            self.run_regime(_Regime("up", int(n.uniform(100, 250) * self.scale),
                                    n.uniform(0.0002, 0.0005), n.uniform(0.0015, 0.0022)))
        else:
            self.capitulation_cycle()


def generate_sample(
    n_bars: int = 9000,
    seed: int = 7,
    interval_minutes: int = 15,
    start_ts: int = SAMPLE_START_TS,
) -> list[Bar]:
    """`n_bars` synthetic, valid, gap-free bars; the same arguments always give the same bars."""
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, got {n_bars}")
    if interval_minutes <= 0:
        raise ValueError(f"interval_minutes must be positive, got {interval_minutes}")
    generator = _Generator(seed, interval_minutes * 60_000, start_ts)
    while len(generator.bars) < n_bars:
        generator.next_regime()
    return generator.bars[:n_bars]


def write_csv(bars: Sequence[Bar], path: Path) -> None:
    """Write bars in the replay format: header, then Unix ms timestamps and plain numbers."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for bar in bars:
            writer.writerow(
                (bar.ts, repr(bar.open), repr(bar.high), repr(bar.low), repr(bar.close),
                 repr(bar.volume))
            )
