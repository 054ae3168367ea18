"""config.json as the backtest app exports it (format 2.x), loaded and checked before anything trades.

Guarantees:
- What the exporter writes is accepted as is (field order, nulls, naive `created_at`, free-form
  `backtest_metrics`); anything else is refused with one `ConfigError` whose message lists every
  problem as `path.to.field: what is wrong (allowed: ...)`.
- Unknown keys are refused: a typo must never silently fall back to a default.
- API credentials never come from this file. Only placeholders are accepted, and a real-looking
  value is refused without ever being echoed (invariant 4: secrets never reach a message or log).
- Windows are resolved to bar counts exactly as the exporter does, including its 30m quirk.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

TIMEFRAMES = {"1m": 1, "3m": 3, "5m": 5, "10m": 10, "15m": 15, "30m": 30, "60m": 60}
FIB_LEVELS = (0.382, 0.5, 0.618, 0.786, 1.0)
SUPPORTED_MAJOR_VERSION = 2
STRATEGY_NAME = "Seller Exhaustion"
RISK_PER_TRADE_WARNING_PERCENT = 2.0

# Environment variables the agent reads credentials from (see the refusal message below).
CREDENTIAL_ENV_VARS = {
    "api_key": "TRADING_AGENT_API_KEY",
    "api_secret": "TRADING_AGENT_API_SECRET",
    "api_passphrase": "TRADING_AGENT_API_PASSPHRASE",
    "polygon_api_key": "TRADING_AGENT_POLYGON_API_KEY",
}
# A placeholder is null, "" (or only whitespace), or an all-caps "YOUR_..._HERE" token such as
# the exporter's "YOUR_API_KEY_HERE". Anything else is treated as a real credential.
_PLACEHOLDER = re.compile(r"YOUR_[A-Z0-9_]+_HERE")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_CREDENTIALS_ALLOWED = 'null, "" or a placeholder like "YOUR_API_KEY_HERE"'


class ConfigError(Exception):
    """config.json cannot be used. str(e) is the operator-facing message; `problems` lists each
    problem as one `path: what is wrong (allowed: ...)` line, for a dialog or a CLI."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


def _spec(allowed: str, **constraints: Any) -> Any:
    """A pydantic Field that also carries the operator-facing text of its allowed values."""
    return Field(json_schema_extra={"allowed": allowed}, **constraints)


def _number(allowed: str, **constraints: Any) -> Any:
    """A finite float field; JSON integers are accepted (5 for 5.0), booleans and strings are not."""
    return _spec(allowed, strict=True, allow_inf_nan=False, **constraints)


def _bars_from_minutes(minutes: float, bar_minutes: int) -> int:
    """The exporter's conversion: round half to even (Python's round), at least one bar."""
    return max(1, round(minutes / bar_minutes))


def _credential_check(field: str, value: str | None) -> str | None:
    """Accept only placeholders; refuse anything else without repeating it."""
    if value is None or not value.strip() or _PLACEHOLDER.fullmatch(value):
        return value
    raise PydanticCustomError(
        "real_credential",
        "contains what looks like a real credential; credentials are never read from config.json "
        "(the value is not shown). Replace it with a placeholder and store the credential in the "
        "environment variable {env} (or a .env file) or in the OS keyring (the `trading-agent keys` "
        "command is coming). If this file was ever shared, revoke the key at the exchange",
        {"env": CREDENTIAL_ENV_VARS[field], "allowed": _CREDENTIALS_ALLOWED},
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SellerParams(_Section):
    """Signal parameters. Windows are bar counts unless the matching *_minutes is set."""

    ema_fast: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    ema_slow: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    z_window: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    atr_window: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    ema_fast_minutes: float | None = _number("null or a number of minutes")
    ema_slow_minutes: float | None = _number("null or a number of minutes")
    z_window_minutes: float | None = _number("null or a number of minutes")
    atr_window_minutes: float | None = _number("null or a number of minutes")
    vol_z: float = _number("a finite number")
    tr_z: float = _number("a finite number")
    cloc_min: float = _number("a finite number")


class BacktestParams(_Section):
    """Exit rules and costs, as the backtest simulated them."""

    fib_swing_lookback: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    fib_swing_lookahead: StrictInt = _spec("an integer >= 0 and < fib_swing_lookback", ge=0)
    fib_target_level: float = _number(", ".join(str(level) for level in FIB_LEVELS))
    use_fib_exits: StrictBool = _spec("true or false")
    use_stop_loss: StrictBool = _spec("true or false")
    use_traditional_tp: StrictBool = _spec("true or false")
    use_time_exit: StrictBool = _spec("true or false")
    atr_stop_mult: float = _number("a number > 0", gt=0)
    reward_r: float = _number("a number > 0", gt=0)
    max_hold: StrictInt = _spec("an integer >= 1 (bars)", ge=1)
    fee_bp: float = _number("a number >= 0 (basis points)", ge=0)
    slippage_bp: float = _number("a number >= 0 (basis points)", ge=0)

    @field_validator("fib_target_level")
    @classmethod
    def _known_level(cls, value: float) -> float:
        # The backtest never exits by Fibonacci for other levels (e.g. the optimiser's 0.236).
        if value not in FIB_LEVELS:
            raise PydanticCustomError("fib_level", "is not a Fibonacci level the strategy computes")
        return value

    @model_validator(mode="after")
    def _lookahead_below_lookback(self) -> BacktestParams:
        if self.fib_swing_lookahead >= self.fib_swing_lookback:
            raise PydanticCustomError(
                "lookahead_range",
                "must be smaller than fib_swing_lookback ({lookback}), or no swing high can exist",
                {"field": "fib_swing_lookahead", "lookback": self.fib_swing_lookback,
                 "allowed": f"0 to {self.fib_swing_lookback - 1}"},
            )
        return self


class RiskManagement(_Section):
    """Limits the risk manager enforces; ranges are the exporter's own."""

    risk_per_trade_percent: float = _number("0.1 to 10", ge=0.1, le=10)
    max_position_size_percent: float = _number("1 to 100", ge=1, le=100)
    max_daily_loss_percent: float = _number("1 to 20", ge=1, le=20)
    max_daily_trades: StrictInt = _spec("an integer 1 to 100", ge=1, le=100)
    max_open_positions: StrictInt = _spec("an integer 1 to 10", ge=1, le=10)
    slippage_tolerance_percent: float = _number("0.1 to 5", ge=0.1, le=5)
    order_timeout_seconds: StrictInt = _spec("an integer 5 to 300", ge=5, le=300)


class ExchangeSettings(_Section):
    """Where and how to trade. Credentials are placeholders only (see module docstring)."""

    exchange_name: StrictStr = _spec("a non-empty ccxt exchange id, e.g. binance",
                                     min_length=1, pattern=r"^\S+$")
    trading_pair: StrictStr = _spec("BASE/QUOTE matching base_currency and quote_currency")
    base_currency: StrictStr = _spec("a non-empty currency code without spaces or '/'",
                                     pattern=r"^[^\s/]+$")
    quote_currency: StrictStr = _spec("a non-empty currency code without spaces or '/'",
                                      pattern=r"^[^\s/]+$")
    api_key: StrictStr | None = _spec(_CREDENTIALS_ALLOWED)
    api_secret: StrictStr | None = _spec(_CREDENTIALS_ALLOWED)
    api_passphrase: StrictStr | None = _spec(_CREDENTIALS_ALLOWED)
    testnet: StrictBool = _spec("true or false")
    enable_rate_limit: StrictBool = _spec("true or false")
    paper_trading: StrictBool = _spec("true or false")
    paper_initial_balance: float = _number("a number >= 100", ge=100)

    @field_validator("api_key", "api_secret", "api_passphrase")
    @classmethod
    def _placeholder_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _credential_check(info.field_name, value)

    @model_validator(mode="after")
    def _pair_matches_currencies(self) -> ExchangeSettings:
        expected = f"{self.base_currency}/{self.quote_currency}"
        if self.trading_pair != expected:
            raise PydanticCustomError(
                "pair_mismatch",
                "must be BASE/QUOTE and agree with base_currency and quote_currency",
                {"field": "trading_pair", "allowed": expected},
            )
        return self


class DataFeed(_Section):
    """Market data settings. Only the exchange's own feed is implemented."""

    data_source: Literal["exchange"] = _spec("exchange")
    polygon_api_key: StrictStr | None = _spec(_CREDENTIALS_ALLOWED)
    use_websocket: StrictBool = _spec("true or false")
    websocket_ping_interval: StrictInt = _spec("an integer 5 to 60 (seconds)", ge=5, le=60)
    rest_api_interval_seconds: StrictInt = _spec("an integer 15 to 300", ge=15, le=300)
    max_missing_bars: StrictInt = _spec("an integer 1 to 10", ge=1, le=10)
    validate_ohlcv: StrictBool = _spec("true or false")

    @field_validator("polygon_api_key")
    @classmethod
    def _placeholder_only(cls, value: str | None) -> str | None:
        return _credential_check("polygon_api_key", value)


@dataclass(frozen=True, slots=True)
class Windows:
    """Indicator windows in bars of the configured timeframe, after *_minutes resolution."""

    ema_fast: int
    ema_slow: int
    z_window: int
    atr_window: int


class AgentConfig(_Section):
    """The whole config.json, in the exporter's field order."""

    version: StrictStr = _spec(f"{SUPPORTED_MAJOR_VERSION}.x, e.g. 2.1.0")
    created_at: datetime = _spec("an ISO 8601 date-time text, e.g. 2026-11-21T22:42:15.509740")
    description: StrictStr = _spec("text")
    strategy_name: Literal["Seller Exhaustion"] = _spec(STRATEGY_NAME)
    timeframe: Literal["1m", "3m", "5m", "10m", "15m", "30m", "60m"] = _spec(", ".join(TIMEFRAMES))
    seller_params: SellerParams = _spec("an object")
    backtest_params: BacktestParams = _spec("an object")
    risk_management: RiskManagement = _spec("an object")
    exchange: ExchangeSettings = _spec("an object")
    data_feed: DataFeed = _spec("an object")
    backtest_metrics: dict[str, Any] | None = _spec("null or an object (free-form)")

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        match = _VERSION.fullmatch(value)
        if match is None:
            raise PydanticCustomError("version_format", "is not a version number like 2.1.0")
        if int(match.group(1)) != SUPPORTED_MAJOR_VERSION:
            raise PydanticCustomError(
                "version_major", "major version {major} is not supported by this agent",
                {"major": int(match.group(1))},
            )
        return value

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_at_is_text(cls, value: Any) -> Any:
        # pydantic would also take a number as a Unix time; the exporter always writes text.
        if not isinstance(value, str):
            raise PydanticCustomError("datetime_text", "must be a date-time text")
        return value

    @model_validator(mode="after")
    def _fast_below_slow(self) -> AgentConfig:
        # Checked on the resolved windows: *_minutes may override the bar counts.
        windows = self.windows()
        if windows.ema_fast >= windows.ema_slow:
            raise PydanticCustomError(
                "ema_order",
                "resolves to {fast} bars, which is not below ema_slow ({slow} bars)",
                {"field": "seller_params.ema_fast", "fast": windows.ema_fast,
                 "slow": windows.ema_slow,
                 "allowed": "ema_fast < ema_slow, in bars after converting *_minutes"},
            )
        return self

    @property
    def timeframe_minutes(self) -> int:
        """Length of one bar of the configured timeframe."""
        return TIMEFRAMES[self.timeframe]

    @property
    def conversion_minutes(self) -> int:
        """Bar length the exporter divides *_minutes by: 15 for 30m (its quirk), else the timeframe."""
        return 15 if self.timeframe == "30m" else self.timeframe_minutes

    @property
    def mode(self) -> str:
        """"paper" if paper_trading, else "testnet" if testnet, else "live" (real money)."""
        if self.exchange.paper_trading:
            return "paper"
        return "testnet" if self.exchange.testnet else "live"

    def windows(self) -> Windows:
        """Windows in bars exactly as the backtest used them (*_minutes wins when set)."""
        sp = self.seller_params

        def resolve(bars: int, minutes: float | None) -> int:
            return bars if minutes is None else _bars_from_minutes(minutes, self.conversion_minutes)

        return Windows(
            ema_fast=resolve(sp.ema_fast, sp.ema_fast_minutes),
            ema_slow=resolve(sp.ema_slow, sp.ema_slow_minutes),
            z_window=resolve(sp.z_window, sp.z_window_minutes),
            atr_window=resolve(sp.atr_window, sp.atr_window_minutes),
        )

    def quirk_applies(self) -> bool:
        """True when the exporter's 30m quirk changes a window (30m and some *_minutes set)."""
        return self.timeframe == "30m" and any(
            minutes is not None for minutes in _minutes_fields(self.seller_params).values())


def _minutes_fields(sp: SellerParams) -> dict[str, float | None]:
    return {"ema_fast": sp.ema_fast_minutes, "ema_slow": sp.ema_slow_minutes,
            "z_window": sp.z_window_minutes, "atr_window": sp.atr_window_minutes}


# ---- loading -------------------------------------------------------------------------------

def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a config.json file; every failure is a ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config.json file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "config.json") -> AgentConfig:
    """Validate config.json text. Errors name `source`, each field path and its allowed values."""
    data = _decode_json(text, source)
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        # `from None`: the ValidationError carries input values, which may be secrets.
        problems = [_describe(error) for error in exc.errors(include_url=False)]
        raise ConfigError(_join(source, problems), problems) from None


def default_config() -> AgentConfig:
    """The example configuration shipped with the package (paper trading), used by the demo."""
    text = resources.files("agent").joinpath("default_config.json").read_text(encoding="utf-8")
    return parse_config(text, source="agent/default_config.json")


class _JsonProblem(ValueError):
    """Raised inside the JSON hooks; turned into a ConfigError naming the source."""


def _reject_constant(name: str) -> float:
    raise _JsonProblem(f"{name} is not a number JSON allows; use a finite number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last duplicate silently; two values for one key is an editing mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JsonProblem(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _decode_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except _JsonProblem as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from None


def _describe(error: Any) -> str:
    """One problem line: `path: what is wrong (allowed: ...)`; never includes the input value."""
    loc = [str(part) for part in error["loc"]]
    ctx = error.get("ctx") or {}
    if "field" in ctx:
        loc.extend(str(ctx["field"]).split("."))
    path = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = list(_model_at(loc[:-1]).model_fields)
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        return f"{path}: {message} (allowed keys: {', '.join(known)})"
    message = _MESSAGES.get(kind, error["msg"]) + _echo(loc, error.get("input"))
    allowed = ctx.get("allowed") or _allowed_text(loc)
    return f"{path}: {message} (allowed: {allowed})" if allowed else f"{path}: {message}"


# pydantic's wording names our classes for these; the operator edits JSON, not Python.
_MESSAGES = {"missing": "missing", "model_type": "must be a JSON object",
             "dict_type": "must be a JSON object", "model_attributes_type": "must be a JSON object"}


def _echo(loc: list[str], value: Any) -> str:
    """`, got 12` for a wrong number or boolean. Text is never echoed, nor anything given for a
    credential field: it may be a secret."""
    if loc and loc[-1] in CREDENTIAL_ENV_VARS:
        return ""
    if isinstance(value, (bool, int, float)):
        return f", got {json.dumps(value)}"
    return ""


def _model_at(loc: list[str]) -> type[BaseModel]:
    """The section model that `loc` points into (the innermost model along the path)."""
    model: type[BaseModel] = AgentConfig
    for part in loc:
        info = model.model_fields.get(part)
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def _allowed_text(loc: list[str]) -> str | None:
    if not loc:
        return "a JSON object with the exporter's sections"
    info = _model_at(loc[:-1]).model_fields.get(loc[-1])
    if info is None or not isinstance(info.json_schema_extra, dict):
        return None
    allowed = info.json_schema_extra.get("allowed")
    return str(allowed) if allowed is not None else None


def _join(source: str, problems: list[str]) -> str:
    count = len(problems)
    header = f"{source}: {count} problem{'s' if count != 1 else ''}"
    return "\n".join([header, *(f"  - {problem}" for problem in problems)])


# ---- reporting -----------------------------------------------------------------------------

def config_warnings(cfg: AgentConfig) -> list[str]:
    """Accepted but risky or surprising settings; shown by validate-config, the GUI and the log."""
    warnings: list[str] = []
    if cfg.quirk_applies():
        windows = cfg.windows()
        converted = ", ".join(
            f"{name}_minutes={minutes:g} -> {getattr(windows, name)} bars "
            f"({getattr(windows, name) * cfg.timeframe_minutes} min)"
            for name, minutes in _minutes_fields(cfg.seller_params).items() if minutes is not None)
        warnings.append(
            "timeframe 30m with *_minutes: the exporting app converts minutes with 15-minute bars, "
            f"so each window is twice as long as written ({converted}). The agent reproduces this "
            "to match the backtest; re-export with bar counts if that was not intended.")
    for name, minutes in _minutes_fields(cfg.seller_params).items():
        if minutes is not None and minutes <= 0:
            warnings.append(f"seller_params.{name}_minutes is {minutes:g}; the exporter treats "
                            "a non-positive window as 1 bar.")
    risk = cfg.risk_management
    if risk.risk_per_trade_percent > RISK_PER_TRADE_WARNING_PERCENT:
        warnings.append(f"risk_management.risk_per_trade_percent is {risk.risk_per_trade_percent:g}%:"
                        f" above {RISK_PER_TRADE_WARNING_PERCENT:g}% of the balance per trade.")
    if risk.max_open_positions > 1:
        warnings.append(f"risk_management.max_open_positions is {risk.max_open_positions}: one "
                        "strategy on one pair holds at most one position, so 1 is what applies.")
    bp = cfg.backtest_params
    if not (bp.use_fib_exits or bp.use_stop_loss or bp.use_traditional_tp or bp.use_time_exit):
        warnings.append("no exit is enabled (Fibonacci, stop, take-profit, time): a position "
                        "would only close by hand.")
    if not 0 <= cfg.seller_params.cloc_min < 1:
        warnings.append(f"seller_params.cloc_min is {cfg.seller_params.cloc_min:g}: close location "
                        "lies in [0, 1], so this threshold never or always passes.")
    if cfg.mode == "live":
        warnings.append("LIVE trading: paper_trading and testnet are both false; orders will "
                        f"use real money on {cfg.exchange.exchange_name}.")
    return warnings


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def summarize(cfg: AgentConfig) -> list[str]:
    """Readable summary lines for `validate-config` and the GUI import dialog (no secrets)."""
    sp, bp, risk, ex, feed = (cfg.seller_params, cfg.backtest_params, cfg.risk_management,
                              cfg.exchange, cfg.data_feed)
    windows = cfg.windows()
    quirk = ", converted with 15m bars: 30m quirk" if cfg.quirk_applies() else ""
    window_text = ", ".join(
        f"{name} {getattr(windows, name)}"
        + (f" (from {minutes:g} min{quirk})" if minutes is not None else "")
        for name, minutes in _minutes_fields(sp).items())
    exits = ", ".join([
        f"Fibonacci {bp.fib_target_level:g} {_onoff(bp.use_fib_exits)}"
        f" (swing lookback {bp.fib_swing_lookback}, lookahead {bp.fib_swing_lookahead})",
        f"stop {_onoff(bp.use_stop_loss)} (low - {bp.atr_stop_mult:g} x ATR)",
        f"take-profit {_onoff(bp.use_traditional_tp)} ({bp.reward_r:g}R)",
        f"time {_onoff(bp.use_time_exit)} ({bp.max_hold} bars)",
    ])
    mode = {"paper": f"PAPER (simulated, initial balance {ex.paper_initial_balance:g} "
                     f"{ex.quote_currency})",
            "testnet": "TESTNET (exchange sandbox, no real money)",
            "live": "LIVE (real money)"}[cfg.mode]
    return [
        f"Config: version {cfg.version}, created {cfg.created_at.isoformat()}"
        + (f", {cfg.description!r}" if cfg.description else ""),
        f"Strategy: {cfg.strategy_name}",
        f"Pair: {ex.trading_pair} on {ex.exchange_name}",
        f"Timeframe: {cfg.timeframe}",
        f"Windows (bars): {window_text}",
        f"Signal: vol_z > {sp.vol_z:g}, tr_z > {sp.tr_z:g}, cloc > {sp.cloc_min:g}",
        f"Exits: {exits}",
        f"Costs: fee {bp.fee_bp:g} bp, slippage {bp.slippage_bp:g} bp",
        f"Risk: {risk.risk_per_trade_percent:g}% per trade, max position "
        f"{risk.max_position_size_percent:g}%, max daily loss {risk.max_daily_loss_percent:g}%, "
        f"max {risk.max_daily_trades} trades/day, max {risk.max_open_positions} open position(s), "
        f"slippage tolerance {risk.slippage_tolerance_percent:g}%, order timeout "
        f"{risk.order_timeout_seconds} s",
        f"Mode: {mode}",
        f"Data feed: {feed.data_source}, websocket {_onoff(feed.use_websocket)} (ping "
        f"{feed.websocket_ping_interval} s), REST every {feed.rest_api_interval_seconds} s, "
        f"max {feed.max_missing_bars} missing bars, OHLCV validation {_onoff(feed.validate_ohlcv)}",
        "Backtest metrics: " + ("none" if cfg.backtest_metrics is None
                                else f"{len(cfg.backtest_metrics)} entries"),
    ]
