"""The headless run (`--no-gui`, systemd): start the engine, tell systemd, stop on a signal.

- READY=1 only once the engine runs (RUNNING, or HALTED: a halted agent stays up, watching and
  alerting, and never trades until the operator clears the halt). STATUS= follows the run
  state, the position and today's PnL; WATCHDOG=1 pings come from this loop.
- SIGTERM / SIGINT: STOPPING=1, no new entries (pause), the order step in flight finishes
  (engine.settle), then engine.stop(): state committed and state.json written, the open
  position keeps its exits resting at the venue (nothing is cancelled), the lock released.
  Done within STOP_DEADLINE_S or the process exits anyway (the store is crash-safe); a second
  signal forces the exit at once.
- Exit codes: 0 stopped or finished, 1 the engine failed (ERROR), 3 stopped while HALTED (so
  a supervisor or a script sees that the agent is not trading)."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from monitoring.logging_setup import flush_logs
from monitoring.redaction import redact
from monitoring.systemd import SdNotifier, status_line

log = logging.getLogger("agent.headless")

EXIT_OK, EXIT_FAILED, EXIT_HALTED = 0, 1, 3
EXIT_FORCED = 130
STOP_DEADLINE_S = 9.0            # systemd's TimeoutStopSec in the units is 15 s


class Service(Protocol):
    """Something that runs beside the engine (alerts, remote control)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def engine_status_line(engine) -> str:
    s = engine.status()
    t = s.open_trade
    position = "flat" if t is None else f"long {t.amount:.8g} @ {t.entry_price:.8g}"
    if s.halt_reason and s.run_state == "HALTED":
        position += f" | halted: {s.halt_reason[:120]}"
    return status_line(s.run_state, s.mode, position, s.day_pnl, engine.config.exchange.quote_currency)


def _flush_logs() -> None:
    """Log lines are written by a listener thread: wait for them before printing or exiting."""
    try:
        flush_logs()
    except Exception:                    # never let logging stop an exit
        pass


async def run_headless(make_engine: Callable[[], object],
                       services: Iterable[Callable[[object], Service]] = (),
                       notifier: SdNotifier | None = None) -> int:
    notifier = notifier or SdNotifier()
    engine = make_engine()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            log.warning("%s received: stopping (no new entries; resting exits stay at the venue). "
                        "A second signal forces the exit.", name)
            notifier.stopping(f"stopping ({name})")
            stopping.set()
        else:
            log.error("%s received again: forced exit now (the store is crash-safe; a restart "
                      "resumes from the last commit)", name)
            _flush_logs()
            os._exit(EXIT_FORCED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    from agent.events import BalanceChanged, EngineStateChanged, PositionClosed, PositionOpened

    status_events = (EngineStateChanged, PositionOpened, PositionClosed, BalanceChanged)

    def publish_status(event=None) -> None:
        if event is not None and not isinstance(event, status_events):
            return                           # prices and bars: the line changes with the balance
        try:
            notifier.status(engine_status_line(engine))
        except Exception:                    # never let supervision disturb the engine
            log.debug("status line failed", exc_info=True)

    failures: list[str] = []

    def watch_failures(event) -> None:
        if getattr(event, "run_state", None) == "ERROR":
            failures.append(getattr(event, "reason", None) or "unknown failure")

    engine.bus.subscribe(watch_failures)
    logs = Path(getattr(engine, "data_dir", ".")) / "logs" / "agent.log"
    running: list[Service] = []
    watchdog: asyncio.Task | None = None
    try:
        for factory in services:
            service = factory(engine)
            await service.start()
            running.append(service)
        await engine.start()
        if engine.run_state not in ("RUNNING", "HALTED", "PAUSED"):
            log.error("the engine did not start: %s (%s)", engine.run_state, engine.halt_reason or
                      "details above")
            notifier.status(engine_status_line(engine))
            await engine.stop()
            _flush_logs()
            print(f"error: {redact(failures[-1] if failures else engine.run_state)} "
                  f"(details in {logs})", file=sys.stderr)
            return EXIT_FAILED
        engine.bus.subscribe(publish_status)
        notifier.ready(engine_status_line(engine))
        if notifier.watchdog_interval_s is not None:
            watchdog = loop.create_task(notifier.watchdog_loop(), name="systemd-watchdog")
        finished = asyncio.ensure_future(engine.wait_finished())
        stop_wait = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({finished, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (finished, stop_wait):
            fut.cancel()
        if stopping.is_set():
            try:
                status, stats = await asyncio.wait_for(_graceful_stop(engine), STOP_DEADLINE_S)
            except TimeoutError:
                log.error("graceful stop took longer than %.0f s: exiting anyway (the store is "
                          "crash-safe)", STOP_DEADLINE_S)
                _flush_logs()
                os._exit(EXIT_FAILED)
        else:
            notifier.stopping(f"{engine.run_state}: stopping")
            stats = engine.store.stats(engine.clock.now_ms())
            await engine.stop()
            status = engine.status()                # after stop: the state state.json now holds
        log.info("done: %s, cash %.2f, equity %.2f%s%s%s", status.run_state, status.balance,
                 status.equity, " (a position is open, its exits rest at the venue)" if status.open_trade else "",
                 f", {stats.total_trades} closed trades, realised pnl {stats.total_pnl:.2f}" if stats else "",
                 f", HALTED: {status.halt_reason}" if status.halt_reason else "")
        if status.run_state == "ERROR" or failures:
            _flush_logs()
            print(f"error: {redact(failures[-1] if failures else 'the engine failed')} "
                  f"(details in {logs})", file=sys.stderr)
            return EXIT_FAILED
        if status.halt_reason:
            _flush_logs()
            print(f"halted: {redact(status.halt_reason)}; clear it with `trading-agent clear-halt "
                  f"--data-dir {getattr(engine, 'data_dir', 'DATA_DIR')}` once reviewed", file=sys.stderr)
            return EXIT_HALTED
        return EXIT_OK
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for service in reversed(running):
            try:
                await asyncio.wait_for(service.stop(), 3.0)
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        notifier.close()



async def _graceful_stop(engine):
    if engine.run_state == "RUNNING":
        await engine.pause()                  # no new entries from here on
    await engine.settle()                     # the order step in flight completes
    stats = engine.store.stats(engine.clock.now_ms())
    await engine.stop()                       # commit, state.json, exits stay resting
    return engine.status(), stats             # the state state.json now holds
