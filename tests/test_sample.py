"""The synthetic demo sample: deterministic, valid, realistic enough, and it makes the
exporter's DEFAULT config trade (signals with Fibonacci targets that price then reaches)."""
from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import default_config
from agent.strategy import Decision, SellerExhaustionStrategy, StrategyParams
from data.bar import Bar
from data.replay_feed import load_replay
from data.sample import SAMPLE_START_TS, generate_sample, write_csv
from data.validator import bar_problem

M15 = 900_000
# sha256 of write_csv(generate_sample()): pins the series on every platform and Python version.
PINNED_SHA256 = "26b8c85e885efe2929d22b5b804b9738231a87953c01c00746a6b07af339b915"


@dataclass(frozen=True)
class SimTrade:
    signal_index: int
    exit_index: int
    entry: float
    exit: float


@pytest.fixture(scope="module")
def sample() -> list[Bar]:
    return generate_sample()


@pytest.fixture(scope="module")
def params() -> StrategyParams:
    return StrategyParams.from_config(default_config())


@pytest.fixture(scope="module")
def decisions(sample: list[Bar], params: StrategyParams) -> list[Decision]:
    strategy = SellerExhaustionStrategy(params)
    return [strategy.update(bar) for bar in sample]


def simulate_fib_only(bars: list[Bar], decisions: list[Decision]) -> list[SimTrade]:
    """STRATEGY.md's trade rules with only the Fibonacci exit enabled (the default config):
    enter at the next open, examine exits from s+2, exit at the target when high reaches it;
    like the agent, a signal without levels is skipped."""
    trades: list[SimTrade] = []
    open_at: tuple[int, float, float] | None = None
    for i, (bar, decision) in enumerate(zip(bars, decisions)):
        if open_at is not None and i >= open_at[0] + 2 and bar.high >= open_at[2]:
            trades.append(SimTrade(open_at[0], i, open_at[1], open_at[2]))
            open_at = None
        target = decision.target_price
        if open_at is None and decision.signal and target is not None and i + 1 < len(bars):
            open_at = (i, bars[i + 1].open, target)
    return trades


def csv_sha256(bars: list[Bar], tmp_path: Path) -> str:
    path = tmp_path / "synthetic_check.csv"
    write_csv(bars, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_identical_bars(sample: list[Bar]) -> None:
    assert generate_sample() == sample


def test_different_seed_gives_different_bars(sample: list[Bar]) -> None:
    assert generate_sample(seed=8)[:100] != sample[:100]


def test_default_sample_is_pinned_byte_for_byte(sample: list[Bar], tmp_path: Path) -> None:
    assert csv_sha256(sample, tmp_path) == PINNED_SHA256


def test_bars_are_valid(sample: list[Bar]) -> None:
    assert [bar_problem(b) for b in sample if bar_problem(b)] == []


def test_bars_are_contiguous_from_a_utc_midnight(sample: list[Bar]) -> None:
    assert len(sample) == 9000
    assert sample[0].ts == SAMPLE_START_TS
    assert SAMPLE_START_TS % 86_400_000 == 0
    assert all(b.ts - a.ts == M15 for a, b in zip(sample, sample[1:]))


def test_price_stays_in_a_btc_like_range_around_30000(sample: list[Bar]) -> None:
    closes = [b.close for b in sample]
    assert sample[0].open == 30_000.0
    assert 15_000 < min(closes) and max(closes) < 60_000
    assert 22_000 < statistics.median(closes) < 40_000


def test_volume_follows_the_trading_day(sample: list[Bar]) -> None:
    def mean_volume(hours: range) -> float:
        return statistics.fmean(b.volume for b in sample if (b.ts // 3_600_000) % 24 in hours)

    assert mean_volume(range(14, 17)) > 1.3 * mean_volume(range(2, 5))


def test_volume_spikes_exist(sample: list[Bar]) -> None:
    median = statistics.median(b.volume for b in sample)
    assert sum(b.volume > 4 * median for b in sample) >= 20


def test_interval_changes_timestamps_not_prices(sample: list[Bar]) -> None:
    five = generate_sample(n_bars=500, interval_minutes=5)
    assert all(b.ts - a.ts == 300_000 for a, b in zip(five, five[1:]))
    assert [b.close for b in five] == [b.close for b in sample[:500]]


def test_prefix_of_a_longer_sample_is_the_shorter_sample(sample: list[Bar]) -> None:
    assert generate_sample(n_bars=1000) == sample[:1000]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_bars": -1}, "n_bars must be >= 0"),
    ({"interval_minutes": 0}, "interval_minutes must be positive"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_sample(**kwargs)


def test_written_csv_replays_to_the_same_bars(sample: list[Bar], tmp_path: Path) -> None:
    path = tmp_path / "synthetic_sample_15m.csv"
    write_csv(sample, path)
    data = load_replay(path, 15)
    assert data.bars == sample
    assert data.rejected == [] and data.gaps == []


def test_default_config_uses_only_the_fibonacci_exit(params: StrategyParams) -> None:
    # The simulation below models only that exit; this keeps it honest if the defaults move.
    assert params.use_fib_exits
    assert not (params.use_stop_loss or params.use_traditional_tp or params.use_time_exit)


def test_default_config_signals_at_least_15_times(decisions: list[Decision]) -> None:
    assert sum(d.signal for d in decisions) >= 15


def test_every_signal_has_fibonacci_levels(decisions: list[Decision]) -> None:
    # So the agent (skips a signal without levels) and the backtest (enters anyway) agree.
    assert [d.index for d in decisions if d.signal and d.target_price is None] == []


def test_default_config_completes_at_least_4_fibonacci_trades(
    sample: list[Bar], decisions: list[Decision]
) -> None:
    trades = simulate_fib_only(sample, decisions)
    assert len(trades) >= 4
    assert sum(t.exit > t.entry for t in trades) >= 4


def test_first_trade_comes_soon_after_warm_up(
    sample: list[Bar], decisions: list[Decision], params: StrategyParams
) -> None:
    # The demo plays ~20-50 bars/s: the first trade must come within ~1500 bars of warm-up.
    trades = simulate_fib_only(sample, decisions)
    first_defined = params.atr_window + params.z_window - 1      # tr_z's first bar: 767
    assert first_defined == 767
    assert trades[0].signal_index <= first_defined + 1500
