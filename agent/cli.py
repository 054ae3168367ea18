"""`trading-agent`: one entry point for the window, headless runs and the small operator commands.
Every command uses the same engine, config and store modules as the window (no second
implementation). Exit codes: 0 done, 1 runtime failure (logged with context), 2 bad input
(config, arguments, data), 3 refused for safety."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from agent.config import AgentConfig, ConfigError, config_warnings, default_config, load_config, summarize
from monitoring.redaction import redact  # ops: error lines printed to the terminal are redacted

log = logging.getLogger("agent")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3
COMMANDS = ("demo", "validate-config", "export-trades", "status", "clear-halt")
DEMO_GUI_SPEED = 40.0


class UsageError(Exception):
    """Arguments that cannot be acted on; the message says which and why."""


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise UsageError(f"--speed must be 'max' or a number of bars per second, got {text!r}") from None
    if not speed > 0:
        raise UsageError(f"--speed must be positive, got {text!r}")
    return speed


def _run_parser(prog: str, demo: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Seller-exhaustion trading agent"
                                + (": the demo replay of a synthetic sample" if demo else ""))
    if not demo:
        p.add_argument("--config", type=Path, help="config.json exported by the backtest app "
                       "(default: DATA_DIR/config.json, else the built-in example)")
        p.add_argument("--replay", type=Path, metavar="CSV", help="replay historical bars from a CSV")
    p.add_argument("--data-dir", type=Path, help="where trades.db, state.json and logs live "
                   "(default: the per-user data folder; the demo uses a fresh temporary folder)")
    p.add_argument("--no-gui", action="store_true", help="run headless (systemd, CI)")
    p.add_argument("--speed", default=None, help="replay speed: bars per second, or 'max'")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # --- ops commands: keys, backup (agent/ops_cli.py) ---
        from agent.ops_cli import OPS_COMMANDS, dispatch
        if argv and argv[0] in OPS_COMMANDS:
            return dispatch(argv[0], argv[1:])
        # --- end ops commands ---
        if argv and argv[0] in COMMANDS:
            return _command(argv[0], argv[1:])
        return _run(_run_parser("trading-agent", demo=False).parse_args(argv), demo=False)
    except (UsageError, ConfigError) as exc:
        print(f"error: {redact(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK


def _command(name: str, argv: list[str]) -> int:
    if name == "demo":
        return _run(_run_parser("trading-agent demo", demo=True).parse_args(argv), demo=True)
    p = argparse.ArgumentParser(prog=f"trading-agent {name}")
    if name == "validate-config":
        p.add_argument("path", type=Path)
        return validate_config(p.parse_args(argv).path)
    p.add_argument("--data-dir", type=Path, required=True)
    if name == "export-trades":
        p.add_argument("--csv", type=Path, required=True)
        p.add_argument("--bars", type=Path, metavar="CSV", help="the bars the trades were made on "
                       "(the replay CSV): adds the backtest shadow columns")
        p.add_argument("--config", type=Path, help="config the trades were made with, for the "
                       "shadow columns (default: DATA_DIR/config.json)")
    args = p.parse_args(argv)
    from persistence.paths import DataDirBusy, DataDirLock
    from persistence.store import Store, StoreError

    db = args.data_dir / "trades.db"
    if not db.exists():
        raise UsageError(f"no trades.db in {args.data_dir}")
    lock = DataDirLock(args.data_dir)
    if name == "clear-halt":
        try:
            lock.acquire()          # a running engine would not see the change, and could overwrite it
        except DataDirBusy as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return EXIT_REFUSED
    try:
        store = Store(db)
    except StoreError as exc:
        lock.release()
        raise UsageError(str(exc)) from None
    try:
        if name == "export-trades":
            if args.bars is None:
                rows = store.export_trades_csv(args.csv)
            else:
                header, extra = _shadow_columns(store, args)
                rows = store.export_trades_csv(args.csv, header, extra)
            print(f"wrote {rows} trades to {args.csv}")
        elif name == "status":
            _print_status(store)
        else:
            reason = store.get_meta("halt_reason")
            if not reason:
                print("not halted")
            else:
                store.set_meta("halt_reason", "")
                store.commit(durable=True)
                print(f"halt cleared (was: {reason})")
    finally:
        store.close()
        lock.release()
    return EXIT_OK


def _shadow_columns(store, args: argparse.Namespace) -> tuple[tuple[str, ...], dict[int, tuple]]:
    """The backtest shadow of every stored trade, from the bars in --bars (the store keeps none)."""
    from agent.backtest_shadow import ShadowSeries
    from agent.shadow_compare import SHADOW_EXPORT_COLUMNS, export_row, shadow_report
    from agent.strategy import StrategyParams
    from data.csv_source import DataError
    from data.replay_feed import load_replay

    config_path = args.config or args.data_dir / "config.json"
    if not config_path.exists():
        raise UsageError(f"the shadow columns need the config the trades were made with: "
                         f"--config PATH ({config_path} does not exist)")
    if not args.bars.exists():
        raise UsageError(f"bars file not found: {args.bars}")
    cfg = load_config(config_path)
    params = StrategyParams.from_config(cfg)
    try:
        bars = load_replay(args.bars, cfg.timeframe_minutes).bars
    except DataError as exc:
        raise UsageError(str(exc)) from None
    series = ShadowSeries.from_bars(bars, params)
    trades = store.closed_trades() + ([t] if (t := store.open_trade()) is not None else [])
    report = shadow_report(series, trades, [], params, backtest=())
    return SHADOW_EXPORT_COLUMNS, {c.trade.id: export_row(c) for c in report if c.trade is not None}


def validate_config(path: Path) -> int:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"INVALID {path}\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"valid: {path}")
    for line in summarize(cfg):
        print(f"  {line}")
    for warning in config_warnings(cfg):
        print(f"  WARNING: {warning}")
    return EXIT_OK


def _print_status(store) -> None:
    import time

    stats = store.stats(time.time_ns() // 1_000_000)
    trade = store.open_trade()
    print(f"halted: {store.get_meta('halt_reason') or 'no'}")
    print(f"balance: {store.get_meta('balance') or '-'}")
    print(f"open position: {'none' if trade is None else f'{trade.amount} @ {trade.entry_price}'}")
    print(f"trades: {stats.total_trades}, pnl {stats.total_pnl:.2f}, "
          f"win rate {'-' if stats.win_rate is None else f'{stats.win_rate:.1f}%'}")


def _resolve_config(args: argparse.Namespace, data_dir: Path, demo: bool) -> AgentConfig:
    if demo:
        return default_config()
    if args.config is not None:
        return load_config(args.config)
    if (data_dir / "config.json").exists():
        return load_config(data_dir / "config.json")
    return default_config()


def _run(args: argparse.Namespace, demo: bool) -> int:
    from monitoring.logging_setup import setup_logging
    from persistence.paths import DataDirBusy, default_data_dir

    if demo:
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="trading-agent-demo-"))
    else:
        data_dir = args.data_dir or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = _resolve_config(args, data_dir, demo)
    setup_logging(data_dir / "logs", args.log_level, console=True)
    # --- ops: credentials (agent/credentials.py); every value found is registered with the redactor ---
    from agent.credentials import CredentialError, load_for_config
    try:
        creds = load_for_config(config, None if demo else args.config)
    except CredentialError as exc:
        raise UsageError(str(exc)) from None
    # --- end ops ---
    for warning in config_warnings(config):
        log.warning("config: %s", warning)
    if demo:
        csv_path = _write_demo_sample(data_dir)
        speed = parse_speed(args.speed) if args.speed else (None if args.no_gui else DEMO_GUI_SPEED)
    elif args.replay is not None:
        csv_path = args.replay
        speed = parse_speed(args.speed) if args.speed else None
    else:
        raise UsageError("live market data arrives with the exchange issue; for now run a replay "
                         "(--replay CSV) or `trading-agent demo`")
    if not csv_path.exists():
        raise UsageError(f"replay file not found: {csv_path}")
    log.info("data folder: %s", data_dir)

    def make_engine():
        from agent.session import replay_session

        return replay_session(config, data_dir, csv_path, speed)

    try:
        if args.no_gui:
            # --- ops: systemd notify, signals, alerts (agent/headless.py, agent/alert_bridge.py) ---
            from agent.alert_bridge import headless_services
            from agent.headless import run_headless
            return asyncio.run(run_headless(make_engine, services=headless_services(config, creds, data_dir)))
            # --- end ops ---
        from ui.app import run_gui

        return run_gui(make_engine, autostart=True)
    except (UsageError, ConfigError):
        raise
    except DataDirBusy as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        from data.csv_source import DataError

        if isinstance(exc, DataError):
            raise UsageError(str(exc)) from None
        log.exception("the agent stopped on an unexpected error")
        print(f"error: {redact(exc)} (details in {data_dir / 'logs' / 'agent.log'})", file=sys.stderr)
        return EXIT_FAILED


def _write_demo_sample(data_dir: Path) -> Path:
    from data.sample import generate_sample, write_csv

    path = data_dir / "synthetic_sample_15m.csv"
    if not path.exists():
        write_csv(generate_sample(), path)
    log.info("demo: replaying the SYNTHETIC sample %s", path)
    return path
