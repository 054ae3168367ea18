"""The strategy reproduces the backtest app's own columns on the four golden cases.

Every bar of each case (already aggregated to the case's timeframe) goes through
SellerExhaustionStrategy.update; each indicator must match to 1e-9 relative with NaN exactly
where the golden cell is empty, the signal exactly, and the swing high and five Fibonacci
levels on every signal bar. Skips cleanly when ../shared is absent (a fresh clone).
"""
from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_shared

from agent.config import load_config
from agent.strategy import Decision, SellerExhaustionStrategy, StrategyParams, compute_features
from data.bar import Bar

pytestmark = pytest.mark.golden

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "golden"
SIGNAL_COUNTS = {
    "btc-15m-default": 55,
    "eth-15m-all-exits": 73,
    "btc-60m-from-15m": 37,
    "eth-15m-minutes": 73,
}
CASES = sorted(SIGNAL_COUNTS)
REL = 1e-9
INDICATORS = {  # golden column -> Decision attribute
    "ema_f": "ema_fast", "ema_s": "ema_slow", "atr": "atr",
    "vol_z": "vol_z", "tr_z": "tr_z", "cloc": "cloc",
}
FIB_COLUMNS = ("fib_0382", "fib_0500", "fib_0618", "fib_0786", "fib_1000")


@dataclass(frozen=True)
class Golden:
    params: StrategyParams
    bars: list[Bar]
    columns: dict[str, list[float]]  # empty cell -> NaN
    exhaustion: list[bool]


def _cell(text: str) -> float:
    return math.nan if text == "" else float(text)


@lru_cache(maxsize=None)
def _load(case: str) -> Golden:
    folder = GOLDEN / case
    if not (folder / "features.csv.gz").is_file():
        require_shared(folder / "features.csv.gz", "golden features parity")
    params = StrategyParams.from_config(load_config(folder / "config.json"))
    bars: list[Bar] = []
    exhaustion: list[bool] = []
    columns: dict[str, list[float]] = {k: [] for k in (*INDICATORS, "fib_swing_high", *FIB_COLUMNS)}
    with gzip.open(folder / "features.csv.gz", "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            ts = int(datetime.fromisoformat(row["timestamp"]).timestamp() * 1000)
            bars.append(Bar(ts, float(row["open"]), float(row["high"]), float(row["low"]),
                            float(row["close"]), float(row["volume"])))
            if row["exhaustion"] not in ("True", "False"):
                raise AssertionError(f"{case}: unexpected exhaustion cell {row['exhaustion']!r}")
            exhaustion.append(row["exhaustion"] == "True")
            for name, values in columns.items():
                values.append(_cell(row[name]))
    return Golden(params, bars, columns, exhaustion)


@lru_cache(maxsize=None)
def _decisions(case: str) -> tuple[Decision, ...]:
    golden = _load(case)
    strategy = SellerExhaustionStrategy(golden.params)
    return tuple(strategy.update(bar) for bar in golden.bars)


def _mismatches(mine: list[float], theirs: list[float]) -> list[str]:
    """Rows where the values differ by more than REL relative, or only one side is NaN."""
    bad = []
    for t, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if math.isnan(b):
            ok = math.isnan(a)
        else:
            ok = not math.isnan(a) and abs(a - b) <= REL * abs(b)
        if not ok:
            bad.append(f"t={t}: agent {a!r} vs golden {b!r}")
    return bad


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("column", sorted(INDICATORS))
def test_incremental_indicator_matches_golden_column(case: str, column: str) -> None:
    mine = [getattr(d, INDICATORS[column]) for d in _decisions(case)]
    bad = _mismatches(mine, _load(case).columns[column])
    assert not bad, f"{case} {column}: {len(bad)} rows differ, first: {bad[:3]}"


@pytest.mark.parametrize("case", CASES)
def test_incremental_signal_matches_golden_exhaustion_on_every_bar(case: str) -> None:
    mine = [d.signal for d in _decisions(case)]
    golden = _load(case).exhaustion
    differ = [t for t, (a, b) in enumerate(zip(mine, golden, strict=True)) if a != b]
    assert not differ, f"{case}: signal differs on bars {differ[:10]}"


@pytest.mark.parametrize("case", CASES)
def test_signal_count_is_the_readmes(case: str) -> None:
    assert sum(d.signal for d in _decisions(case)) == SIGNAL_COUNTS[case]
    assert sum(_load(case).exhaustion) == SIGNAL_COUNTS[case]


@pytest.mark.parametrize("case", CASES)
def test_swing_high_and_fib_levels_match_golden_on_every_signal_bar(case: str) -> None:
    golden = _load(case).columns
    for d in _decisions(case):
        t = d.index
        expected_swing = golden["fib_swing_high"][t]
        expected = [golden[c][t] for c in FIB_COLUMNS]
        if not d.signal:
            assert math.isnan(expected_swing) and all(math.isnan(v) for v in expected), t
            assert d.fib is None and math.isnan(d.swing_high), t
            continue
        assert not _mismatches([d.swing_high], [expected_swing]), (t, d.swing_high, expected_swing)
        if math.isnan(expected[0]):
            assert d.fib is None, f"{case} t={t}: agent has levels, golden has none"
            continue
        assert d.fib is not None, f"{case} t={t}: golden has levels, agent has none"
        assert not _mismatches(list(d.fib.prices), expected), (t, d.fib.prices, expected)


@pytest.mark.parametrize("case", CASES)
def test_target_price_is_the_configured_fib_level_on_signal_bars(case: str) -> None:
    golden = _load(case)
    column = FIB_COLUMNS[(0.382, 0.5, 0.618, 0.786, 1.0).index(golden.params.fib_target_level)]
    for d in _decisions(case):
        expected = golden.columns[column][d.index]
        if d.signal and not math.isnan(expected):
            assert d.target_price == pytest.approx(expected, rel=REL, abs=0.0)
        else:
            assert d.target_price is None


@pytest.mark.parametrize("case", CASES)
def test_vectorized_features_match_golden(case: str) -> None:
    golden = _load(case)
    cols = {name: np.array([getattr(b, name) for b in golden.bars])
            for name in ("ts", "open", "high", "low", "close", "volume")}
    f = compute_features(cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"],
                         cols["volume"], golden.params)
    for column, attr in INDICATORS.items():
        bad = _mismatches(getattr(f, attr).tolist(), golden.columns[column])
        assert not bad, f"{case} {column}: {len(bad)} rows differ, first: {bad[:3]}"
    assert f.signal.tolist() == golden.exhaustion
    assert not _mismatches(f.fib_swing_high.tolist(), golden.columns["fib_swing_high"])
    for k, column in enumerate(FIB_COLUMNS):
        assert not _mismatches(f.fib_prices[:, k].tolist(), golden.columns[column]), column
