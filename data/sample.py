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
        # An explicit loop, not sum(): sum() of floats is compensated since Python 3.12,
        # which would make the series differ between Python versions.
        total = -6.0
        for _ in range(12):
            total += self._rng.random()
        return total

    def chance(self, p: float) -> bool:
        return self._rng.random() < p


class _Generator:
    """Regime shapes are in BARS (as the strategy's windows are), so the series trades the
    same at any interval; the interval only sets timestamps and the hour-of-day volume."""

    def __init__(self, seed: int, interval_ms: int, start_ts: int) -> None:
        self.noise = _Noise(seed)
        self.interval_ms = interval_ms
        self.ts = start_ts
        self.price = _BASE_PRICE
        self.bars: list[Bar] = []

    def _volume(self, surprise: float, boost: float) -> float:
        hour = (self.ts // 3_600_000) % 24
        activity = 1.0 + 0.25 * abs(surprise)  # unexpected moves trade more
        noise = _exp(0.35 * self.noise.normal())
        return round(_BASE_VOLUME * _HOURLY_VOLUME[hour] * activity * boost * noise, 3)

    def _append(self, open_: float, high: float, low: float, close: float, volume: float) -> None:
        open_, close = round(open_, 1), round(close, 1)
        high = max(round(high, 1), open_, close)
        low = min(round(low, 1), open_, close)
        self.bars.append(Bar(self.ts, open_, high, low, close, volume))
        self.ts += self.interval_ms
        self.price = close

    def step(self, drift: float, vol: float, volume_boost: float = 1.0) -> None:
        """One ordinary bar: a log-return of drift + vol * N(0,1), wicks scaled to vol."""
        n = self.noise
        surprise = n.normal()
        move = drift + vol * surprise
        open_ = round(self.price, 1)
        close = open_ * _exp(move)
        high = max(open_, close) * (1.0 + 0.6 * vol * abs(n.normal()))
        low = min(open_, close) * (1.0 - 0.6 * vol * abs(n.normal()))
        self._append(open_, high, low, close, self._volume(surprise, volume_boost))

    def capitulation_bar(self, vol: float) -> None:
        """A flush: deep lower wick, heavy volume, the close back near the high."""
        n = self.noise
        open_ = round(self.price, 1)
        low = open_ * (1.0 - vol * n.uniform(4.0, 8.0))
        close = open_ * (1.0 + vol * n.uniform(-0.8, 0.8))
        high = max(open_, close) * (1.0 + vol * n.uniform(0.0, 0.4))
        volume = self._volume(0.0, n.uniform(4.5, 8.0))
        self._append(open_, high, low, close, volume)

    def run(self, bars: float, drift: float, vol: float, volume_boost: float = 1.0) -> None:
        for _ in range(int(bars)):
            self.step(drift, vol, volume_boost)

    def capitulation_cycle(self) -> None:
        """A grinding decline, one to three exhaustion bars, then a rebound most of the way."""
        n = self.noise
        vol = n.uniform(0.0022, 0.0032)
        self.run(n.uniform(40, 90), -n.uniform(0.0008, 0.0014), vol, 1.2)
        for _ in range(1 + int(n.uniform(0.0, 2.5))):
            self.capitulation_bar(vol)
        if n.chance(0.25):  # a failed bounce and a second, lower flush
            self.run(n.uniform(8, 20), -n.uniform(0.0006, 0.0012), vol, 1.2)
            self.capitulation_bar(vol)
        self.run(n.uniform(40, 80), n.uniform(0.0010, 0.0016), vol * 0.8)

    def next_regime(self) -> None:
        """Pick the next regime, leaning against the move so the price stays near 30,000."""
        n = self.noise
        stretch = self.price / _BASE_PRICE
        p_up = 0.35 if stretch < 0.9 else 0.1 if stretch > 1.1 else 0.2
        p_down = 0.1 if stretch < 0.9 else 0.3 if stretch > 1.1 else 0.18
        pick = n.uniform(0.0, 1.0)
        if pick < p_up:
            self.run(n.uniform(100, 250), n.uniform(0.0002, 0.0005), n.uniform(0.0015, 0.0022))
        elif pick < p_up + p_down:
            self.run(n.uniform(100, 200), -n.uniform(0.0002, 0.0004), n.uniform(0.0015, 0.0022))
        elif pick < 0.7:
            self.run(n.uniform(100, 300), 0.0, n.uniform(0.0010, 0.0016))
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
