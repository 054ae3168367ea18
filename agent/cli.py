"""`trading-agent`: one entry point for the window, headless runs and the small operator commands.
Every command uses the same engine, config and store modules as the window (no second
implementation).

What the operator can rely on: every failure is ONE readable line on stderr (tracebacks go only
to DATA_DIR/logs/agent.log), and the exit code says what kind it was:
0 done, 1 runtime failure, 2 bad input (config, arguments, data file, data folder),
3 refused for safety (a damaged or mismatched ledger, a busy folder, a run that ended HALTED).

Subcommands live in one table (COMMANDS): a name, a one-line help, its arguments and its
handler. Anything else is a run (`--replay CSV`, the window or `--no-gui`)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitoring.redaction import redact
from agent.config import AgentConfig, ConfigError, config_warnings, default_config, load_config, summarize

log = logging.getLogger("agent")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3
DEMO_GUI_SPEED = 40.0
PROG = "trading-agent"


class UsageError(Exception):
    """Arguments that cannot be acted on; the message says which and why."""


class Refused(Exception):
    """A command refused for safety (exit 3); the message says why and what to do."""


# ----- the subcommand table -------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


def _data_dir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, required=True, help="the data folder")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    _data_dir_argument(p)
    p.add_argument("--csv", type=Path, required=True, help="the CSV file to write (outside the data folder)")
    p.add_argument("--force", action="store_true", help="replace the CSV file if it exists")
    p.add_argument("--bars", type=Path, metavar="CSV", help="the bars the trades were made on "
                   "(the replay CSV): adds the backtest shadow columns")
    p.add_argument("--config", type=Path, help="config the trades were made with, for the "
                   "shadow columns (default: DATA_DIR/config.json)")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, demo=True)


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="config.json exported by the backtest app")


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run(args, demo=True)


def _cmd_validate(args: argparse.Namespace) -> int:
    return validate_config(args.path)


def _cmd_export(args: argparse.Namespace) -> int:
    from agent.data_folder import open_for_reading

    out = _check_export_target(args.csv, args.data_dir, args.force)
    store = open_for_reading(args.data_dir)
    try:
        if args.bars is None:
            rows = store.export_trades_csv(out)
        else:
            header, extra = _shadow_columns(store, args)
            rows = store.export_trades_csv(out, header, extra)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        store.close()
    print(f"wrote {rows} trades to {out}")
    return EXIT_OK


def _status_arguments(p: argparse.ArgumentParser) -> None:
    _data_dir_argument(p)
    p.add_argument("--bars", type=Path, metavar="CSV", help="the bars the trades were made on: adds "
                   "the live-vs-backtest review (overall and per month)")
    p.add_argument("--config", type=Path, help="config the trades were made with, for the review "
                   "(default: DATA_DIR/config.json)")


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.data_folder import open_for_reading

    store = open_for_reading(args.data_dir)
    try:
        _print_status(store)
        if args.bars is not None:
            _print_shadow_review(store, args)
    finally:
        store.close()
    return EXIT_OK


def _print_shadow_review(store, args: argparse.Namespace) -> None:
    """The PRD's live-vs-backtest review: the agent's closed trades against the backtest app's
    own trades on the same bars (20% degradation normal, over 50% an alert)."""
    from agent.backtest_shadow import ShadowSeries, backtest_trades
    from agent.shadow_review import monthly_reviews, review_period

    cfg, params, bars = _shadow_inputs(args)
    series = ShadowSeries.from_bars(bars, params)
    backtest = backtest_trades(series, params)
    trades = store.closed_trades()
    first, last = int(series.ts[0]), int(series.ts[-1])
    print(f"live vs backtest ({args.bars.name}, {cfg.exchange.trading_pair} {cfg.timeframe}):")
    print(f"  all bars   {review_period(trades, backtest, first, last + 1).summary()}")
    for month in monthly_reviews(trades, backtest, first, last):
        if month.agent.trades or month.backtest.trades:
            print(f"  month      {month.summary()}")


def _shadow_inputs(args: argparse.Namespace):
    from agent.strategy import StrategyParams
    from data.replay_feed import load_replay

    config_path = args.config or args.data_dir / "config.json"
    if not config_path.exists():
        raise UsageError(f"the backtest shadow needs the config the trades were made with: "
                         f"--config PATH ({config_path} does not exist)")
    if not args.bars.exists():
        raise UsageError(f"bars file not found: {args.bars}")
    cfg = load_config(config_path)
    return cfg, StrategyParams.from_config(cfg), load_replay(args.bars, cfg.timeframe_minutes).bars


def _cmd_clear_halt(args: argparse.Namespace) -> int:
    return clear_halt(args.data_dir)


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("demo", "replay the built-in SYNTHETIC sample (window, or --no-gui)", _demo_arguments, _cmd_demo),
    Command("validate-config", "check a config.json: summary and warnings; exit 0 valid, 2 invalid",
            _validate_arguments, _cmd_validate),
    Command("export-trades", "write every trade to a CSV file (ISO 8601 UTC times)",
            _export_arguments, _cmd_export),
    Command("status", "halt flag, balance, open position, totals and KPIs of a data folder "
            "(--bars CSV: the live-vs-backtest review)", _status_arguments, _cmd_status),
    Command("clear-halt", "clear an emergency-stop or daily-loss halt (engine stopped)",
            _data_dir_argument, _cmd_clear_halt),
)}


def _commands_epilog() -> str:
    from agent.ops_cli import OPS_HELP

    helps = {**{name: c.help for name, c in COMMANDS.items()}, **OPS_HELP}
    width = max(len(n) for n in helps)
    lines = [f"  {name:<{width}}  {text}" for name, text in helps.items()]
    return ("commands (trading-agent COMMAND --help for its options):\n" + "\n".join(lines)
            + "\n\nexit codes: 0 done, 1 failure (see DATA_DIR/logs/agent.log), 2 bad input, "
            "3 refused for safety")


# ----- entry point and error mapping -----------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from monitoring.logging_setup import flush_logs

    try:
        return _main(argv)
    finally:
        flush_logs()              # log writes happen on a listener thread: written before we return


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)           # every file this process creates is the operator's alone
    if not logging.getLogger().handlers:     # commands without a log: no "last resort" echo
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        # The reader went away (`validate-config CFG | head -1`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):   # stdout is not a real file
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:      # noqa: BLE001 - the one place every error becomes one line
        code, line = classify(exc)
        line = redact(line)                       # an exchange reply may echo a key or signature
        log.error("%s", line, exc_info=exc if code == EXIT_FAILED else None,
                  extra={"file_only": True})
        from monitoring.logging_setup import flush_logs

        flush_logs()              # the queued log lines first: the operator's last line is this one
        print(line, file=sys.stderr)
        return code


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line an error becomes."""
    from agent.data_folder import (ConfigForOtherFolder, DataFolderUnusable, LedgerRefused,
                                   StartupFailed)
    from data.csv_source import DataError
    from persistence.paths import DataDirBusy
    from persistence.store import DataFolderMismatch, StoreCorrupt, StoreError

    if isinstance(exc, (Refused, ConfigForOtherFolder, DataFolderMismatch, LedgerRefused,
                        StoreCorrupt, DataDirBusy)):
        return EXIT_REFUSED, f"refused: {exc}"
    if isinstance(exc, (UsageError, ConfigError, DataFolderUnusable, DataError)):
        return EXIT_BAD_INPUT, f"error: {exc}"
    if isinstance(exc, (StartupFailed, StoreError)):
        return EXIT_FAILED, f"error: {exc}"
    if isinstance(exc, OSError):
        return EXIT_FAILED, f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return EXIT_FAILED, f"error: unexpected {type(exc).__name__}: {exc}"


def _dispatch(argv: list[str]) -> int:
    from agent.ops_cli import OPS_COMMANDS, dispatch

    if argv and argv[0] in OPS_COMMANDS:          # keys, backup: agent/ops_cli.py
        return dispatch(argv[0], argv[1:])
    if argv and argv[0] in COMMANDS:
        command = COMMANDS[argv[0]]
        p = argparse.ArgumentParser(prog=f"{PROG} {command.name}", description=command.help)
        command.arguments(p)
        return command.handler(p.parse_args(argv[1:]))
    if argv and not argv[0].startswith("-"):
        raise UsageError(f"unknown command {argv[0]!r}; commands: {', '.join([*COMMANDS, *OPS_COMMANDS])} "
                         f"(or options for a run: {PROG} --help)")
    p = argparse.ArgumentParser(prog=PROG, description="Seller-exhaustion trading agent",
                                epilog=_commands_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _run_arguments(p, demo=False)
    return _run(p.parse_args(argv), demo=False)


def _run_arguments(p: argparse.ArgumentParser, demo: bool) -> None:
    if not demo:
        p.add_argument("--config", type=Path, help="config.json exported by the backtest app "
                       "(default: DATA_DIR/config.json, else the built-in example)")
        p.add_argument("--replay", type=Path, metavar="CSV", help="replay historical bars from a CSV "
                       "(without it: the live market of the config's exchange)")
        p.add_argument("--exchange-url", metavar="URL", help="a Binance-compatible exchange at another "
                       "base URL for REST and WebSocket (the local simulator, a proxy)")
        p.add_argument("--live", action="store_true", help="confirm trading REAL money when the config "
                       "says paper_trading false and testnet false (refused without it)")
    p.add_argument("--data-dir", type=Path, help="where trades.db, state.json and logs live "
                   "(default: the per-user data folder; the demo uses a temporary folder, "
                   "removed at exit)")
    p.add_argument("--no-gui", action="store_true", help="run headless (systemd, CI)")
    p.add_argument("--speed", default=None, help="replay speed: bars per second, or 'max'")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise UsageError(f"--speed must be 'max' or a number of bars per second, got {text!r}") from None
    if not math.isfinite(speed):
        raise UsageError(f"--speed must be a finite number of bars per second (or 'max'), got {text!r}")
    if not speed > 0:
        raise UsageError(f"--speed must be positive, got {text!r}")
    return speed


# ----- operator commands ----------------------------------------------------------------------

def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _check_export_target(out: Path, data_dir: Path, force: bool) -> Path:
    """The CSV goes beside the ledger's folder, never into it, and never over a file unless
    asked: `--csv DATA/trades.db` once replaced the ledger with a CSV."""
    if _inside(out, data_dir):
        raise Refused(f"--csv {out} is inside the data folder {data_dir}: write the export "
                      "somewhere else (the data folder holds the ledger)")
    if out.is_dir():
        raise UsageError(f"--csv {out} is a folder; name a file in it")
    if not out.parent.is_dir():
        raise UsageError(f"--csv {out}: folder {out.parent} does not exist")
    if out.exists() and not force:
        raise Refused(f"--csv {out} already exists; add --force to replace it")
    return out


def _shadow_columns(store, args: argparse.Namespace) -> tuple[tuple[str, ...], dict[int, tuple]]:
    """The backtest shadow of every stored trade, from the bars in --bars (the store keeps none)."""
    from agent.backtest_shadow import ShadowSeries
    from agent.shadow_compare import SHADOW_EXPORT_COLUMNS, export_row, shadow_report

    _, params, bars = _shadow_inputs(args)
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

    from agent.accounting import Checkpoint
    from data.bar import iso_utc

    cp = Checkpoint.load(store)
    stats = store.stats(time.time_ns() // 1_000_000)
    trade = store.open_trade()
    identity = store.identity()
    print(f"data folder: {store.path.parent} ({identity or 'not claimed yet'})")
    print(f"halted: {cp.halt_reason or 'no'}")
    print(f"balance: {'-' if cp.balance is None else f'{cp.balance:.2f}'}")
    print(f"last bar: {'-' if cp.last_bar_ts is None else iso_utc(cp.last_bar_ts)}")
    print(f"open position: {'none' if trade is None else f'{trade.amount:.8g} @ {trade.entry_price:.10g}'}")
    print(f"trades: {stats.total_trades}, pnl {stats.total_pnl:.2f}, "
          f"win rate {'-' if stats.win_rate is None else f'{stats.win_rate:.1f}%'}")
    from monitoring.kpis import kpis_from_store

    for line in kpis_from_store(store).lines():      # the PRD's KPIs, WARNING past a threshold
        print(line)


def clear_halt(data_dir: Path) -> int:
    """Clear the halt in the ledger and rewrite state.json to match. Refused while an engine
    holds the folder (it would neither see the change nor keep it)."""
    from agent.accounting import Checkpoint
    from agent.data_folder import open_for_reading, read_state_document
    from persistence.paths import DataDirLock
    from persistence.state_file import write_state
    from persistence.store import Store

    open_for_reading(data_dir).close()            # damaged, missing or behind state.json: say so
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except OSError as exc:
        raise Refused(f"cannot change {data_dir}: {exc.strerror or exc} (is the folder read-only?)") from None
    try:
        try:
            store = Store(data_dir / "trades.db")
        except Exception as exc:
            from persistence.store import StoreError

            if isinstance(exc, StoreError) and "readonly" in str(exc).replace("-", ""):
                raise Refused(f"cannot change {data_dir}: the ledger is read-only") from None
            raise
        try:
            cp = Checkpoint.load(store)
            reason = cp.halt_reason or store.get_meta("halt_reason")
            state_path = data_dir / "state.json"
            doc = read_state_document(state_path)
            if not reason and not (doc and doc.get("run_state") == "HALTED"):
                print("not halted")
                return EXIT_OK
            cp.halt_reason = None
            cp.save(store)
            store.set_meta("halt_reason", "")       # the key older folders kept it under
            store.commit(durable=True)
        finally:
            store.close()
        if doc is not None:
            doc["halt_reason"] = None
            if doc.get("run_state") in ("HALTED", "ERROR"):
                doc["run_state"] = "STOPPED"
            try:
                write_state(state_path, doc)
            except OSError as exc:
                raise Refused(f"halt cleared in trades.db, but {state_path} could not be "
                              f"rewritten: {exc.strerror or exc}") from None
        was = reason or (doc or {}).get("halt_reason") or "state.json said HALTED"
        print(f"halt cleared (was: {was}); state.json rewritten")
    finally:
        lock.release()
    return EXIT_OK


# ----- runs -----------------------------------------------------------------------------------

def _resolve_config(args: argparse.Namespace, data_dir: Path | None, demo: bool) -> AgentConfig:
    if demo:
        return default_config()
    if args.config is not None:
        return load_config(args.config)
    if data_dir is not None and (data_dir / "config.json").is_file():
        return load_config(data_dir / "config.json")
    args.config_note = ("no --config given: using the built-in EXAMPLE config "
                        "(agent/default_config.json); pass --config PATH for your exported one")
    return default_config()


def _run_warnings(config: AgentConfig, mode: str) -> list[str]:
    """config_warnings, with the real-money one replaced by what will actually happen."""
    out = []
    for warning in config_warnings(config):
        if warning.startswith("LIVE trading") and mode != config.mode:
            warning = (f"the config asks for {config.mode.upper()} trading, but this run trades on "
                       f"{mode.upper()}: every order is simulated, no money moves")
        out.append(warning)
    return out


def _run(args: argparse.Namespace, demo: bool) -> int:
    """A run: everything that can be refused is checked before the data folder is touched
    (speed, config, replay file, window), then the folder itself (pre-flight), then the engine."""
    from agent.data_folder import identity_of, preflight
    from agent.paper_venue import PaperVenue
    from monitoring.logging_setup import set_log_mode, setup_logging
    from persistence.paths import default_data_dir

    setup_logging(None, args.log_level, console=True)
    speed = parse_speed(args.speed) if args.speed else (None if args.no_gui or not demo else DEMO_GUI_SPEED)
    temp_dir: Path | None = None
    data_dir = args.data_dir if args.data_dir is not None else (None if demo else default_data_dir())
    config = _resolve_config(args, data_dir, demo)
    live_market = not demo and args.replay is None
    if not demo and not live_market and not args.replay.is_file():
        raise UsageError(f"replay file not found: {args.replay}")
    mode = config.mode if live_market else PaperVenue.mode     # a replay always trades on paper
    set_log_mode(mode)
    if not live_market and getattr(args, "exchange_url", None):
        raise UsageError("--exchange-url is for the live market; a --replay reads its bars from the CSV")
    if not args.no_gui:
        _check_gui_can_start()
    if live_market:
        _check_live_confirmed(config, args)
    loaded = None
    if not demo and not live_market:      # a file that is mostly bad is refused before the folder exists
        from data.csv_source import DataError
        from data.replay_feed import load_replay

        try:
            with _HeldRecords() as held:      # shown now, written to the folder's log once it exists
                loaded = load_replay(args.replay, config.timeframe_minutes)
        except DataError:
            if data_dir is not None and (data_dir / "trades.db").exists():
                preflight(data_dir, identity_of(config, mode))   # a folder refusal says more
            raise
    if data_dir is None:
        temp_dir = data_dir = Path(tempfile.mkdtemp(prefix="trading-agent-demo-"))
    try:
        checked = preflight(data_dir, identity_of(config, mode))
        setup_logging(data_dir / "logs", args.log_level, console=True, mode=mode)
        if loaded is not None:
            held.write_to_files()
        if temp_dir is not None:
            log.info("demo: temporary data folder %s (removed at exit)", data_dir)
        elif checked.new_folder or checked.new_ledger:
            log.warning("new data folder %s: a new ledger starts here (%s %s, %s)", data_dir,
                        config.exchange.trading_pair, config.timeframe, mode)
        else:
            log.info("data folder: %s", data_dir)
        if getattr(args, "config_note", None):
            log.warning("%s", args.config_note)
        for warning in _run_warnings(config, mode):
            log.warning("config: %s", warning)
        csv_path = None if live_market else (_write_demo_sample(data_dir) if demo else args.replay)
        return _drive(args, config, data_dir, csv_path, speed, demo, mode, loaded)
    finally:
        if temp_dir is not None:
            _close_file_logs()
            shutil.rmtree(temp_dir, ignore_errors=True)


class _HeldRecords(logging.Handler):
    """What reading the replay file logged before the data folder (and its log) existed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "_HeldRecords":
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)

    def write_to_files(self) -> None:
        for record in self.records:
            record.file_only = True               # the console has shown it already
            logging.getLogger(record.name).handle(record)


def _close_file_logs() -> None:
    from monitoring.logging_setup import setup_logging

    setup_logging(None, "INFO", console=True)


def _check_gui_can_start() -> None:
    try:
        from ui.app import gui_unavailable_reason
    except ImportError as exc:
        raise UsageError(f"the window cannot start ({exc}); run with --no-gui") from None
    reason = gui_unavailable_reason()
    if reason:
        raise UsageError(reason)


def _check_live_confirmed(config: AgentConfig, args: argparse.Namespace) -> None:
    """Real money needs two deliberate steps: the config says so AND the command line says so."""
    if config.mode == "live" and not args.live and not args.no_gui:
        from ui.live_confirm import confirm_live

        if confirm_live(config):
            log.warning("LIVE trading confirmed in the window for %s", config.exchange.trading_pair)
            return
        raise Refused("live trading was not confirmed in the window (type the pair to confirm, "
                      "or pass --live)")
    if config.mode == "live" and not args.live:
        raise Refused(f"the config trades REAL money on {config.exchange.exchange_name} "
                      f"{config.exchange.trading_pair} (paper_trading false, testnet false); "
                      "add --live to confirm, or set paper_trading true")
    if args.live and config.mode != "live":
        raise UsageError(f"--live confirms real-money trading, but the config trades on "
                         f"{config.mode}: drop --live, or set paper_trading and testnet false")


def _check_exchange_ready(config: AgentConfig, creds, exchange_url: str | None) -> None:
    """Before any order at an exchange: it answers, the key is accepted and may trade spot; a
    key that can withdraw is a warning. A refusal is one line, exit 3, before the engine starts."""
    from agent.live_safety import check_live_ready
    from agent.session import exchange_client

    async def check():
        client = exchange_client(config, api_key=creds.api_key, secret=creds.api_secret,
                                 password=creds.get("api_passphrase"), exchange_url=exchange_url)
        try:
            return await check_live_ready(config, creds, client)
        finally:
            await client.close()

    readiness = asyncio.run(check())
    readiness.log()
    if not readiness.ok:
        raise Refused(readiness.refusal)


def _credentials(config: AgentConfig, args: argparse.Namespace, mode: str, config_path: Path | None):
    """The run's credentials. Testnet and live need exchange keys: the window asks for them
    (stored in the OS keyring) before it opens; headless, or when the operator cancels, the run
    is refused naming where they were looked for."""
    from agent.credentials import CredentialError, load_for_config

    try:       # every value found is registered with the redactor before anything can log it
        creds = load_for_config(config, config_path)
        if mode != "paper" and not creds.has_exchange_keys and not args.no_gui:
            from ui.credentials_dialog import ask_before_window

            if ask_before_window(config, config_path, creds):
                creds = load_for_config(config, config_path)
    except CredentialError as exc:
        raise UsageError(str(exc)) from None
    if mode != "paper" and not creds.has_exchange_keys:
        raise Refused(f"{mode} trading needs exchange credentials: {creds.missing_message()}")
    return creds


def _drive(args: argparse.Namespace, config: AgentConfig, data_dir: Path, csv_path: Path | None,
           speed: float | None, demo: bool, mode: str, loaded=None) -> int:
    creds = _credentials(config, args, mode, None if demo else args.config)
    if mode != "paper":
        _check_exchange_ready(config, creds, args.exchange_url)

    def make_engine():
        from agent import session

        if csv_path is not None:
            return session.replay_session(config, data_dir, csv_path, speed, loaded)
        return session.market_session(config, data_dir, mode, api_key=creds.api_key,
                                      secret=creds.api_secret, password=creds.get("api_passphrase"),
                                      exchange_url=args.exchange_url)

    if args.no_gui:
        from agent.alert_bridge import headless_services
        from agent.headless import run_headless

        return asyncio.run(run_headless(make_engine, services=headless_services(config, creds, data_dir)))
    from agent.alert_bridge import headless_services
    from ui.app import run_gui

    return run_gui(make_engine, autostart=True, services=headless_services(config, creds, data_dir),
                   config_path=None if demo else args.config)


def _write_demo_sample(data_dir: Path) -> Path:
    from data.sample import generate_sample, write_csv

    path = data_dir / "synthetic_sample_15m.csv"
    if not path.exists():
        write_csv(generate_sample(), path)
    log.info("demo: replaying the SYNTHETIC sample %s", path)
    return path
