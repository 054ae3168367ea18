"""config.json: what the exporter writes is accepted, everything else is refused with a message
that names the field path and the allowed values."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_shared
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.config import (
    FIB_LEVELS,
    TIMEFRAMES,
    AgentConfig,
    ConfigError,
    Windows,
    config_warnings,
    default_config,
    load_config,
    parse_config,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "data" / "golden"
GOLDEN_CASES = ["btc-15m-default", "btc-60m-from-15m", "eth-15m-all-exits", "eth-15m-minutes"]
REAL_LOOKING_SECRET = "k9Fz2QwX7pLm4TtR8vYb"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return json.loads((REPO / "config.json").read_text(encoding="utf-8"))


def with_changes(base: dict[str, Any], path: str, value: Any) -> str:
    """The example as JSON text with one field set (or removed when value is REMOVE)."""
    data = copy.deepcopy(base)
    *parents, key = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if value is REMOVE:
        del target[key]
    else:
        target[key] = value
    return json.dumps(data)


REMOVE = object()


def rejection(base: dict[str, Any], path: str, value: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(base, path, value))
    return info.value


def assert_names(error: ConfigError, path: str, allowed: str) -> None:
    line = next((p for p in error.problems if p.startswith(f"{path}:")), None)
    assert line is not None, f"no problem for {path} in {error.problems}"
    assert f"(allowed: {allowed}" in line, line
    assert line in str(error)


# ---- acceptance -----------------------------------------------------------------------------

def test_example_config_is_accepted_in_paper_mode_without_warnings() -> None:
    cfg = load_config(REPO / "config.json")
    assert cfg.mode == "paper"
    assert cfg.exchange.testnet is True
    assert config_warnings(cfg) == []


def test_example_description_says_it_is_the_example(example: dict[str, Any]) -> None:
    assert "example" in example["description"].lower()


def test_packaged_default_config_is_identical_to_the_example() -> None:
    assert (REPO / "agent" / "default_config.json").read_bytes() == (REPO / "config.json").read_bytes()


def test_default_config_loads_the_packaged_example() -> None:
    assert default_config() == load_config(REPO / "config.json")


@pytest.mark.golden
@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_exporter_config_is_accepted_field_for_field(case: str) -> None:
    path = GOLDEN / case / "config.json"
    require_shared(path, "golden config parity")
    raw = json.loads(path.read_text(encoding="utf-8"))
    dumped = load_config(path).model_dump(mode="json")
    assert dumped == raw
    assert list(dumped) == list(raw)


@pytest.mark.golden
def test_golden_minutes_case_resolves_to_the_bar_counts_the_backtest_used() -> None:
    path = GOLDEN / "eth-15m-minutes" / "config.json"
    require_shared(path, "golden config parity")
    assert load_config(path).windows() == Windows(ema_fast=96, ema_slow=672, z_window=672,
                                                  atr_window=96)


def test_naive_created_at_stays_naive(example: dict[str, Any]) -> None:
    assert parse_config(json.dumps(example)).created_at.tzinfo is None


def test_integer_accepted_for_a_float_field(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "backtest_params.fee_bp", 5))
    assert cfg.backtest_params.fee_bp == 5.0
    assert isinstance(cfg.backtest_params.fee_bp, float)


def test_backtest_metrics_accepts_any_object(example: dict[str, Any]) -> None:
    metrics = {"total_trades": 40, "win_rate": 0.55, "anything": {"nested": [1, 2]}}
    cfg = parse_config(with_changes(example, "backtest_metrics", metrics))
    assert cfg.backtest_metrics == metrics


def test_backtest_metrics_must_be_null_or_an_object(example: dict[str, Any]) -> None:
    assert_names(rejection(example, "backtest_metrics", [1, 2]), "backtest_metrics",
                 "null or an object")


def test_version_2_minor_without_patch_is_accepted(example: dict[str, Any]) -> None:
    assert parse_config(with_changes(example, "version", "2.0")).version == "2.0"


def test_config_is_immutable(example: dict[str, Any]) -> None:
    cfg = parse_config(json.dumps(example))
    with pytest.raises(ValidationError):
        cfg.risk_management.risk_per_trade_percent = 5.0  # type: ignore[misc]


# ---- reading the file -----------------------------------------------------------------------

def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")


def test_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"description": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + (REPO / "config.json").read_bytes())
    assert load_config(path) == default_config()


def test_error_names_the_file(tmp_path: Path, example: dict[str, Any]) -> None:
    path = tmp_path / "mine.json"
    path.write_text(with_changes(example, "timeframe", "2h"), encoding="utf-8")
    with pytest.raises(ConfigError, match="mine.json"):
        load_config(path)


def test_invalid_json_reports_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('{\n  "version": "2.1.0",\n  "timeframe" "15m"\n}', source="cfg.json")
    assert "cfg.json: invalid JSON at line 3, column 15" in str(info.value)


def test_duplicate_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'timeframe' appears twice"):
        parse_config('{"timeframe": "15m", "timeframe": "60m"}')


def test_number_overflowing_to_infinity_is_rejected(example: dict[str, Any]) -> None:
    text = with_changes(example, "seller_params.vol_z", 1.0).replace('"vol_z": 1.0', '"vol_z": 1e400')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert_names(info.value, "seller_params.vol_z", "a finite number")


def test_nan_is_rejected(example: dict[str, Any]) -> None:
    text = with_changes(example, "seller_params.vol_z", 1.0).replace('"vol_z": 1.0', '"vol_z": NaN')
    with pytest.raises(ConfigError, match="NaN is not a number JSON allows"):
        parse_config(text)


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(ConfigError, match=r"\(top level\): must be a JSON object"):
        parse_config("[]")


def test_every_problem_is_listed(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["timeframe"] = "2h"
    data["risk_management"]["max_daily_trades"] = 0
    data["exchange"]["testnet"] = "yes"
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(data))
    paths = [problem.split(":")[0] for problem in info.value.problems]
    assert paths == ["timeframe", "risk_management.max_daily_trades", "exchange.testnet"]
    assert str(info.value).startswith("config.json: 3 problems")


# ---- missing, mistyped and unknown fields ----------------------------------------------------

def _all_field_paths() -> list[str]:
    data = json.loads((REPO / "config.json").read_text(encoding="utf-8"))
    paths = []
    for key, value in data.items():
        paths.append(key)
        if isinstance(value, dict):
            paths.extend(f"{key}.{sub}" for sub in value)
    return paths


@pytest.mark.parametrize("path", _all_field_paths())
def test_missing_field_is_rejected_by_path(example: dict[str, Any], path: str) -> None:
    error = rejection(example, path, REMOVE)
    assert any(p.startswith(f"{path}: missing (allowed: ") for p in error.problems), error.problems


@pytest.mark.parametrize(("path", "value", "allowed"), [
    ("risk_management.max_daily_trades", "10", "an integer 1 to 100"),
    ("risk_management.max_daily_trades", 10.5, "an integer 1 to 100"),
    ("seller_params.ema_fast", 96.0, "an integer >= 1"),
    ("backtest_params.fee_bp", True, "a number >= 0"),
    ("backtest_params.fee_bp", "5", "a number >= 0"),
    ("backtest_params.use_fib_exits", "true", "true or false"),
    ("exchange.paper_trading", 1, "true or false"),
    ("exchange.exchange_name", 7, "a non-empty ccxt exchange id"),
    ("description", None, "text"),
    ("seller_params.ema_fast_minutes", "1440", "null or a number of minutes"),
    ("seller_params", [], "an object"),
])
def test_mistyped_field_is_rejected(example: dict[str, Any], path: str, value: Any,
                                    allowed: str) -> None:
    assert_names(rejection(example, path, value), path, allowed)


@pytest.mark.parametrize("path", ["risk_per_trade", "exchange.apikey", "seller_params.vol_zz"])
def test_unknown_key_is_rejected_with_the_known_keys(example: dict[str, Any], path: str) -> None:
    error = rejection(example, path, 1)
    line = next(p for p in error.problems if p.startswith(f"{path}:"))
    assert "unknown key" in line
    assert "allowed keys: " in line


def test_unknown_key_suggests_the_close_match(example: dict[str, Any]) -> None:
    error = rejection(example, "exchange.apikey", "x")
    assert "did you mean 'api_key'?" in str(error)


# ---- ranges ---------------------------------------------------------------------------------

RANGES = [
    ("risk_management.risk_per_trade_percent", 0.1, 10, "0.1 to 10"),
    ("risk_management.max_position_size_percent", 1, 100, "1 to 100"),
    ("risk_management.max_daily_loss_percent", 1, 20, "1 to 20"),
    ("risk_management.max_daily_trades", 1, 100, "an integer 1 to 100"),
    ("risk_management.max_open_positions", 1, 10, "an integer 1 to 10"),
    ("risk_management.slippage_tolerance_percent", 0.1, 5, "0.1 to 5"),
    ("risk_management.order_timeout_seconds", 5, 300, "an integer 5 to 300"),
    ("data_feed.websocket_ping_interval", 5, 60, "an integer 5 to 60"),
    ("data_feed.rest_api_interval_seconds", 15, 300, "an integer 15 to 300"),
    ("data_feed.max_missing_bars", 1, 10, "an integer 1 to 10"),
]


def _below(value: float) -> float:
    return value - 1 if isinstance(value, int) else round(value - 0.01, 6)


def _above(value: float) -> float:
    return value + 1 if isinstance(value, int) else round(value + 0.01, 6)


@pytest.mark.parametrize(("path", "low", "high", "allowed"), RANGES)
def test_value_below_range_is_rejected(example: dict[str, Any], path: str, low: float,
                                       high: float, allowed: str) -> None:
    assert_names(rejection(example, path, _below(low)), path, allowed)


@pytest.mark.parametrize(("path", "low", "high", "allowed"), RANGES)
def test_value_above_range_is_rejected(example: dict[str, Any], path: str, low: float,
                                       high: float, allowed: str) -> None:
    assert_names(rejection(example, path, _above(high)), path, allowed)


@pytest.mark.parametrize(("path", "low", "high", "allowed"), RANGES)
def test_range_bounds_are_inclusive(example: dict[str, Any], path: str, low: float,
                                    high: float, allowed: str) -> None:
    parse_config(with_changes(example, path, low))
    parse_config(with_changes(example, path, high))


def test_paper_initial_balance_below_100_is_rejected(example: dict[str, Any]) -> None:
    assert_names(rejection(example, "exchange.paper_initial_balance", 99.99),
                 "exchange.paper_initial_balance", "a number >= 100")


def test_out_of_range_number_is_echoed(example: dict[str, Any]) -> None:
    error = rejection(example, "risk_management.risk_per_trade_percent", 12)
    assert "got 12" in str(error)


@pytest.mark.parametrize(("path", "value", "allowed"), [
    ("backtest_params.fee_bp", -0.1, "a number >= 0"),
    ("backtest_params.slippage_bp", -1, "a number >= 0"),
    ("backtest_params.atr_stop_mult", 0, "a number > 0"),
    ("backtest_params.reward_r", 0.0, "a number > 0"),
    ("backtest_params.max_hold", 0, "an integer >= 1"),
    ("backtest_params.fib_swing_lookback", 0, "an integer >= 1"),
    ("backtest_params.fib_swing_lookahead", -1, "an integer >= 0 and < fib_swing_lookback"),
    ("exchange.exchange_name", "", "a non-empty ccxt exchange id"),
    ("exchange.exchange_name", " binance", "a non-empty ccxt exchange id"),
    ("data_feed.data_source", "polygon", "exchange"),
    ("strategy_name", "Momentum", "Seller Exhaustion"),
    ("created_at", 1763764935, "an ISO 8601 date-time text"),
    ("created_at", "yesterday", "an ISO 8601 date-time text"),
])
def test_senseless_value_is_rejected(example: dict[str, Any], path: str, value: Any,
                                     allowed: str) -> None:
    assert_names(rejection(example, path, value), path, allowed)


@pytest.mark.parametrize("lookahead", [96, 97])
def test_lookahead_not_below_lookback_is_rejected(example: dict[str, Any], lookahead: int) -> None:
    assert_names(rejection(example, "backtest_params.fib_swing_lookahead", lookahead),
                 "backtest_params.fib_swing_lookahead", "0 to 95")


@pytest.mark.parametrize("window", ["ema_fast", "ema_slow", "z_window", "atr_window"])
@pytest.mark.parametrize("value", [0, -5])
def test_non_positive_window_is_rejected(example: dict[str, Any], window: str, value: int) -> None:
    path = f"seller_params.{window}"
    assert_names(rejection(example, path, value), path, "an integer >= 1")


# ---- version, timeframe, Fibonacci level ------------------------------------------------------

@pytest.mark.parametrize("version", ["3.0.0", "10.1"])
def test_newer_major_version_is_rejected(example: dict[str, Any], version: str) -> None:
    assert_names(rejection(example, "version", version), "version", "2.x")


@pytest.mark.parametrize("version", ["1.9.0", "2", "v2.1.0", "2.1.0-beta"])
def test_other_version_is_rejected(example: dict[str, Any], version: str) -> None:
    assert_names(rejection(example, "version", version), "version", "2.x")


@pytest.mark.parametrize("timeframe", ["1h", "2m", "4h", "15", "15M"])
def test_timeframe_outside_the_exporters_list_is_rejected(example: dict[str, Any],
                                                          timeframe: str) -> None:
    assert_names(rejection(example, "timeframe", timeframe), "timeframe",
                 "1m, 3m, 5m, 10m, 15m, 30m, 60m")


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
def test_every_exporter_timeframe_is_accepted(example: dict[str, Any], timeframe: str) -> None:
    cfg = parse_config(with_changes(example, "timeframe", timeframe))
    assert cfg.timeframe_minutes == TIMEFRAMES[timeframe]


@pytest.mark.parametrize("level", [0.236, 0.5000001, 0.62, 0, 1.618])
def test_fib_level_outside_the_five_is_rejected(example: dict[str, Any], level: float) -> None:
    assert_names(rejection(example, "backtest_params.fib_target_level", level),
                 "backtest_params.fib_target_level", "0.382, 0.5, 0.618, 0.786, 1.0")


@pytest.mark.parametrize("level", FIB_LEVELS)
def test_each_fib_level_is_accepted(example: dict[str, Any], level: float) -> None:
    cfg = parse_config(with_changes(example, "backtest_params.fib_target_level", level))
    assert cfg.backtest_params.fib_target_level == level


def test_fib_level_as_integer_one_is_accepted(example: dict[str, Any]) -> None:
    assert parse_config(with_changes(example, "backtest_params.fib_target_level", 1)) \
        .backtest_params.fib_target_level == 1.0


# ---- pair -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pair", ["ADA/USDT", "BTCUSDT", "btc/usdt", "BTC-USDT", "BTC/USDT:USDT"])
def test_pair_not_matching_base_and_quote_is_rejected(example: dict[str, Any], pair: str) -> None:
    assert_names(rejection(example, "exchange.trading_pair", pair), "exchange.trading_pair",
                 "BTC/USDT")


@pytest.mark.parametrize("base", ["", "BT C", "BTC/"])
def test_malformed_currency_is_rejected(example: dict[str, Any], base: str) -> None:
    assert_names(rejection(example, "exchange.base_currency", base), "exchange.base_currency",
                 "a non-empty currency code")


def test_consistent_other_pair_is_accepted(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["exchange"].update(trading_pair="BTC/USDC", base_currency="BTC", quote_currency="USDC")
    assert parse_config(json.dumps(data)).exchange.trading_pair == "BTC/USDC"


# ---- credentials ----------------------------------------------------------------------------

CREDENTIAL_FIELDS = [
    ("exchange.api_key", "TRADING_AGENT_API_KEY"),
    ("exchange.api_secret", "TRADING_AGENT_API_SECRET"),
    ("exchange.api_passphrase", "TRADING_AGENT_API_PASSPHRASE"),
    ("data_feed.polygon_api_key", "TRADING_AGENT_POLYGON_API_KEY"),
]


@pytest.mark.parametrize(("path", "env"), CREDENTIAL_FIELDS)
@pytest.mark.parametrize("placeholder", [None, "", "   ", "YOUR_API_KEY_HERE",
                                         "YOUR_PASSPHRASE_HERE", "YOUR_POLYGON_KEY_HERE"])
def test_placeholder_credential_is_accepted(example: dict[str, Any], path: str, env: str,
                                            placeholder: str | None) -> None:
    parse_config(with_changes(example, path, placeholder))


@pytest.mark.parametrize(("path", "env"), CREDENTIAL_FIELDS)
def test_real_credential_is_refused_without_echoing_it(example: dict[str, Any], path: str,
                                                       env: str) -> None:
    error = rejection(example, path, REAL_LOOKING_SECRET)
    message = str(error)
    assert REAL_LOOKING_SECRET not in message
    assert REAL_LOOKING_SECRET not in repr(error)
    assert REAL_LOOKING_SECRET not in " ".join(error.problems)
    assert error.__cause__ is None and error.__suppress_context__
    assert env in message
    assert "keyring" in message and "`trading-agent keys` command is coming" in message
    assert_names(error, path, 'null, "" or a placeholder')


@pytest.mark.parametrize("value", ["your_api_key_here", "YOUR_API_KEY", "MY_KEY_HERE",
                                   "YOUR_API_KEY_HERE "])
def test_near_placeholder_counts_as_a_credential(example: dict[str, Any], value: str) -> None:
    assert_names(rejection(example, "exchange.api_key", value), "exchange.api_key",
                 'null, "" or a placeholder')


def test_numeric_credential_is_not_echoed(example: dict[str, Any]) -> None:
    error = rejection(example, "exchange.api_secret", 987654321987)
    assert "987654321987" not in str(error)


def test_unknown_key_value_is_not_echoed(example: dict[str, Any]) -> None:
    error = rejection(example, "exchange.secret", REAL_LOOKING_SECRET)
    assert REAL_LOOKING_SECRET not in str(error)


# ---- windows --------------------------------------------------------------------------------

def _with_seller(example: dict[str, Any], timeframe: str, **params: Any) -> AgentConfig:
    data = copy.deepcopy(example)
    data["timeframe"] = timeframe
    data["seller_params"].update(params)
    return parse_config(json.dumps(data))


def test_bar_counts_are_used_when_minutes_are_null(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "60m", ema_fast=24, ema_slow=168, z_window=100, atr_window=14)
    assert cfg.windows() == Windows(ema_fast=24, ema_slow=168, z_window=100, atr_window=14)


def test_minutes_override_bar_counts(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "60m", ema_fast_minutes=1440, atr_window_minutes=720)
    assert cfg.windows() == Windows(ema_fast=24, ema_slow=672, z_window=672, atr_window=12)


@pytest.mark.parametrize(("minutes", "bars"), [(225, 22), (235, 24), (245, 24), (255, 26)])
def test_minutes_round_half_to_even(example: dict[str, Any], minutes: int, bars: int) -> None:
    assert _with_seller(example, "10m", atr_window_minutes=minutes).windows().atr_window == bars


def test_fractional_minutes_round_half_to_even(example: dict[str, Any]) -> None:
    assert _with_seller(example, "15m", atr_window_minutes=337.5).windows().atr_window == 22


@pytest.mark.parametrize("minutes", [0, -30, 7, 0.5])
def test_tiny_or_non_positive_minutes_give_one_bar(example: dict[str, Any], minutes: float) -> None:
    assert _with_seller(example, "15m", atr_window_minutes=minutes).windows().atr_window == 1


def test_30m_converts_minutes_with_15_minute_bars(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "30m", ema_fast_minutes=1440, ema_slow_minutes=10080)
    assert cfg.windows().ema_fast == 96
    assert cfg.windows().ema_slow == 672


def test_30m_bar_counts_are_not_changed_by_the_quirk(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "30m", ema_fast=48, ema_slow=336)
    assert cfg.windows().ema_fast == 48
    assert cfg.windows().ema_slow == 336


@settings(max_examples=150, deadline=None)
@given(minutes=st.integers(min_value=1, max_value=200_000), timeframe=st.sampled_from(list(TIMEFRAMES)))
def test_minutes_resolve_to_the_nearest_bar_count(minutes: int, timeframe: str) -> None:
    example = json.loads((REPO / "config.json").read_text(encoding="utf-8"))
    bar = 15 if timeframe == "30m" else TIMEFRAMES[timeframe]
    bars = _with_seller(example, timeframe, z_window_minutes=minutes).windows().z_window
    assert bars >= 1
    if 2 * minutes >= bar:
        assert abs(bars * bar - minutes) * 2 <= bar


def test_ema_fast_not_below_slow_in_bars_is_rejected(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["seller_params"].update(ema_fast=672, ema_slow=672)
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(data))
    assert_names(info.value, "seller_params.ema_fast", "ema_fast < ema_slow")


def test_ema_order_is_checked_on_resolved_windows(example: dict[str, Any]) -> None:
    # Bar counts are in order, but the minutes that win resolve ema_fast to 200 bars > 168.
    data = copy.deepcopy(example)
    data["timeframe"] = "60m"
    data["seller_params"].update(ema_fast=24, ema_slow=168, ema_fast_minutes=12000)
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(data))
    assert_names(info.value, "seller_params.ema_fast", "ema_fast < ema_slow")
    assert "200 bars" in str(info.value) and "168 bars" in str(info.value)


def test_inverted_bar_counts_are_fine_when_minutes_resolve_in_order(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "15m", ema_fast=700, ema_slow=600,
                       ema_fast_minutes=1440, ema_slow_minutes=10080)
    assert cfg.windows().ema_fast < cfg.windows().ema_slow


# ---- mode -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("paper", "testnet", "mode"), [
    (True, True, "paper"), (True, False, "paper"), (False, True, "testnet"), (False, False, "live"),
])
def test_mode_follows_paper_then_testnet(example: dict[str, Any], paper: bool, testnet: bool,
                                         mode: str) -> None:
    data = copy.deepcopy(example)
    data["exchange"].update(paper_trading=paper, testnet=testnet)
    assert parse_config(json.dumps(data)).mode == mode


# ---- warnings and summary -------------------------------------------------------------------

def test_30m_quirk_warns_when_minutes_are_used(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "30m", ema_fast_minutes=1440)
    warning = next(w for w in config_warnings(cfg) if "30m" in w)
    assert "15-minute bars" in warning
    assert "ema_fast_minutes=1440 -> 96 bars (2880 min)" in warning


def test_30m_without_minutes_does_not_warn(example: dict[str, Any]) -> None:
    assert config_warnings(_with_seller(example, "30m", ema_fast=48, ema_slow=336)) == []


def test_non_positive_minutes_warn(example: dict[str, Any]) -> None:
    warnings = config_warnings(_with_seller(example, "15m", atr_window_minutes=0))
    assert any("atr_window_minutes is 0" in w for w in warnings)


def test_risk_above_2_percent_warns(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "risk_management.risk_per_trade_percent", 2.5))
    assert any("risk_per_trade_percent is 2.5%" in w for w in config_warnings(cfg))


def test_risk_of_2_percent_does_not_warn(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "risk_management.risk_per_trade_percent", 2))
    assert config_warnings(cfg) == []


def test_live_trading_warns(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["exchange"].update(paper_trading=False, testnet=False)
    assert any(w.startswith("LIVE trading") for w in config_warnings(parse_config(json.dumps(data))))


def test_testnet_does_not_warn(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "exchange.paper_trading", False))
    assert config_warnings(cfg) == []


def test_several_open_positions_are_accepted_with_a_warning(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "risk_management.max_open_positions", 3))
    assert cfg.risk_management.max_open_positions == 3
    assert any("max_open_positions is 3" in w for w in config_warnings(cfg))


def test_no_exit_enabled_warns(example: dict[str, Any]) -> None:
    cfg = parse_config(with_changes(example, "backtest_params.use_fib_exits", False))
    assert any("no exit is enabled" in w for w in config_warnings(cfg))


@pytest.mark.parametrize("cloc_min", [1.0, -0.1])
def test_cloc_min_outside_unit_interval_warns(example: dict[str, Any], cloc_min: float) -> None:
    cfg = parse_config(with_changes(example, "seller_params.cloc_min", cloc_min))
    assert any("cloc_min" in w for w in config_warnings(cfg))


def test_summary_names_pair_timeframe_windows_exits_risk_and_mode() -> None:
    text = "\n".join(summarize(default_config()))
    assert "Pair: BTC/USDT on binance" in text
    assert "Timeframe: 15m" in text
    assert "Windows (bars): ema_fast 96, ema_slow 672, z_window 672, atr_window 96" in text
    assert "Fibonacci 0.618 on" in text and "stop off" in text and "time off (96 bars)" in text
    assert "Risk: 1% per trade, max position 10%, max daily loss 5%" in text
    assert "Mode: PAPER" in text


def test_summary_shows_minutes_and_the_30m_quirk(example: dict[str, Any]) -> None:
    cfg = _with_seller(example, "30m", ema_fast_minutes=1440)
    windows_line = next(line for line in summarize(cfg) if line.startswith("Windows"))
    assert "ema_fast 96 (from 1440 min, converted with 15m bars: 30m quirk)" in windows_line


def test_summary_says_live_means_real_money(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["exchange"].update(paper_trading=False, testnet=False)
    assert "Mode: LIVE (real money)" in summarize(parse_config(json.dumps(data)))


def test_summary_does_not_show_credential_fields() -> None:
    text = "\n".join(summarize(default_config()))
    assert "YOUR_" not in text and "api_key" not in text
