"""From the engine's event bus to the operator's phone, and the operator's commands back.

- AlertBridge subscribes to the bus and maps events to alerts: start and stop, pause and
  resume, HALTED (emergency stop, daily-loss kill switch, internal safety stop) and ERROR,
  entry and exit fills with PnL, rejected orders, market data lost and recovered, and a daily
  summary at 00:00 UTC. The bus handler only queues (AlertService.send never waits).
- RemoteControl answers commands from the configured chat: /status /balance /trades /pause
  /resume /stop (emergency stop, only after `/stop confirm` within CONFIRM_WINDOW_S;
  /emergency_stop is the same) /help.
- KPI warnings: after every entry, exit and skipped signal, and on a feed health report with a
  new failed check, and every KPI_RECHECK_CHECKS checks (not at every 30 s check: each scans
  the ledger),
  the PRD's KPIs over the last 24 hours (monitoring/kpis.py; uptime by whole UTC days) are
  checked; a KPI that crosses its threshold is logged and alerted as a WARNING once, re-armed
  when it is back within.
- headless_services() builds the services for a run (headless or the window) from the
  credentials and settings found: Telegram (alerts + commands) and/or email (SMTP_* settings,
  the backup channel for ERROR and CRITICAL); with neither, the log says so once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from agent.events import EngineStateChanged, OrderChanged, PositionClosed, PositionOpened, SignalSeen
from data.market import FeedStatus
from monitoring.alerts import Alert, AlertLogHandler, AlertService
from monitoring.kpis import KpiReport, kpis_from_store
from monitoring.telegram import Command

log = logging.getLogger(__name__)

CONFIRM_WINDOW_S = 60.0
KPI_RECHECK_CHECKS = 20        # health checks (~10 min) between KPI checks while none fails
FEED_CHECK_S = 5.0
DAY_MS = 86_400_000


def _fmt(x: float | None, digits: int = 8) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


class AlertBridge:
    def __init__(self, engine, alerts: AlertService, *, wall_ms: Callable[[], int] | None = None) -> None:
        self.engine = engine
        self.alerts = alerts
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._run_state: str | None = None
        self._feed_state: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task] = []
        self.quote = engine.config.exchange.quote_currency
        self.base = engine.config.exchange.base_currency
        self._kpi_breached: set[str] = set()
        self._down_checks = -1          # the feed's failed health checks at the last KPI check

    async def start(self) -> None:
        self._unsubscribe = self.engine.bus.subscribe(self.on_event)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch_feed(), name="alerts-feed-watch"),
                       loop.create_task(self._daily_summary(), name="alerts-daily-summary")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ----- events ------------------------------------------------------------------------------
    def on_event(self, event) -> None:
        if isinstance(event, (PositionOpened, PositionClosed)) or (
                isinstance(event, SignalSeen) and event.signal.action == "SKIPPED"):
            self.check_kpis()
        elif isinstance(event, FeedStatus) and (event.checks - event.checks_up != self._down_checks
                                                or event.checks % KPI_RECHECK_CHECKS == 0):
            self._down_checks = event.checks - event.checks_up    # a failed check: uptime fell
            self.check_kpis()                                     # (and now and then: re-armed)
        if isinstance(event, EngineStateChanged):
            self._state(event)
        elif isinstance(event, PositionOpened):
            t = event.trade
            self.alerts.send(Alert("INFO", f"Entry filled: {t.pair}",
                                   f"bought {_fmt(t.amount)} {self.base} @ {_fmt(t.entry_price)}\n"
                                   f"target {_fmt(t.target_price)}, stop {_fmt(t.stop_price)}",
                                   key=f"open:{t.id}"))
        elif isinstance(event, PositionClosed):
            t = event.trade
            pnl, pct = t.pnl, t.pnl_percent
            self.alerts.send(Alert("INFO" if (pnl or 0) >= 0 else "WARNING",
                                   f"Exit filled: {t.pair} ({t.exit_reason or 'closed'})",
                                   f"sold {_fmt(t.amount)} {self.base} @ {_fmt(t.exit_price)}\n"
                                   f"PnL {'-' if pnl is None else f'{pnl:+.2f}'} {self.quote}"
                                   + ("" if pct is None else f" ({pct:+.2f}%)"),
                                   key=f"close:{t.id}"))
        elif isinstance(event, OrderChanged) and event.order.status == "rejected":
            o = event.order
            self.alerts.send(Alert("ERROR", f"Order rejected: {o.side} {o.type} ({o.purpose})",
                                   o.reason or "", key=f"rejected:{o.client_order_id}"))

    def kpis(self, since_ms: int | None = None) -> KpiReport:
        return kpis_from_store(self.engine.store, since_ms=since_ms,
                               timeframe=self.engine.config.timeframe)

    def check_kpis(self) -> KpiReport | None:
        """The last 24 hours' KPIs (engine time); a WARNING for each newly crossed threshold."""
        try:
            report = self.kpis(self.engine.clock.now_ms() - DAY_MS)
        except Exception:                       # a report must never disturb the engine
            log.debug("KPI check failed", exc_info=True)
            return None
        breached = {k.name for k in report.warnings}
        for kpi in report.warnings:
            if kpi.name not in self._kpi_breached:
                log.warning("KPI %s (last 24 h)", kpi.line())
                self.alerts.send(Alert("WARNING", f"KPI: {kpi.label} {kpi.threshold}",
                                       f"{kpi.line()}\n(last 24 hours)", key=f"kpi:{kpi.name}"))
        self._kpi_breached = breached
        return report

    def _state(self, event: EngineStateChanged) -> None:
        previous, self._run_state = self._run_state, event.run_state
        if event.run_state == previous:
            return
        reason = event.reason or ""
        if event.run_state == "HALTED":
            if "daily loss" in reason:
                title = "DAILY-LOSS KILL SWITCH: trading HALTED"
            elif "emergency" in reason:
                title = "EMERGENCY STOP: trading HALTED"
            else:
                title = "Trading HALTED"
            self.alerts.send(Alert("CRITICAL", title, f"{reason}\nThe agent stays halted across "
                                   "restarts until the operator clears it (trading-agent clear-halt).",
                                   key=f"halt:{reason}"))
        elif event.run_state == "ERROR":
            title = "Market data LOST" if "market data lost" in reason else "Engine ERROR"
            self.alerts.send(Alert("ERROR", title, reason, key=f"error:{reason}"))
        elif event.run_state == "RUNNING":
            s = self.engine.status()
            title = "Resumed: new entries allowed" if previous == "PAUSED" else "Agent started"
            self.alerts.send(Alert("INFO", title, f"{s.pair} {s.timeframe}, balance {s.balance:.2f} "
                                   f"{self.quote}" + (", a position is open" if s.open_trade else "")))
        elif event.run_state == "PAUSED":
            self.alerts.send(Alert("WARNING", "Paused: no new entries",
                                   "an open position is still managed by its resting exits"))
        elif event.run_state == "STOPPED" and previous is not None:
            s = self.engine.status()
            self.alerts.send(Alert("WARNING", "Agent stopped", "the open position keeps its exits "
                                   "resting at the venue" if s.open_trade else "no open position"))

    async def _watch_feed(self) -> None:
        """Market data lost and recovered (the engine's feed state, checked every few seconds)."""
        while True:
            state = self.engine.status().feed_state
            if state != self._feed_state:
                if state == "lost":
                    self.alerts.send(Alert("ERROR", "Market data LOST",
                                           "no new prices: the position keeps its exits resting",
                                           key="feed:lost"))
                elif state == "live" and self._feed_state == "lost":
                    self.alerts.send(Alert("INFO", "Market data recovered", key="feed:live"))
                self._feed_state = state
            await asyncio.sleep(FEED_CHECK_S)

    async def _daily_summary(self) -> None:
        while True:
            now = self._wall_ms()
            await asyncio.sleep((DAY_MS - now % DAY_MS) / 1000 + 1)
            try:
                self.alerts.send(daily_summary_alert(self.engine, self._wall_ms() - 2000))
            except Exception:
                log.exception("daily summary failed")


def daily_summary_alert(engine, day_ms: int) -> Alert:
    """The day containing day_ms, from the store (survives restarts), with the day's KPIs;
    a WARNING when any KPI crossed its threshold that day."""
    from data.bar import iso_utc

    stats = engine.store.stats(day_ms)
    s = engine.status()
    quote = engine.config.exchange.quote_currency
    rate = "-" if stats.today_trades == 0 else f"{100 * stats.today_wins / stats.today_trades:.0f}%"
    kpis = kpis_from_store(engine.store, since_ms=day_ms - day_ms % DAY_MS,
                           timeframe=engine.config.timeframe)
    return Alert("WARNING" if kpis.warnings else "INFO", f"Daily summary {iso_utc(day_ms)[:10]}",
                 f"{s.run_state}; trades {stats.today_trades} (win rate {rate}), PnL "
                 f"{stats.today_pnl:+.2f} {quote}; balance {s.balance:.2f}, equity {s.equity:.2f}\n"
                 f"all time: {stats.total_trades} trades, PnL {stats.total_pnl:+.2f} {quote}\n"
                 + "\n".join(kpis.lines()),
                 key=f"summary:{iso_utc(day_ms)[:10]}")


class RemoteControl:
    """The operator's commands; authenticated by chat id in the channel before they get here."""

    HELP = ("/status - run state, position, today's PnL\n/balance - cash and equity\n"
            "/trades - the last 5 closed trades\n/pause - no new entries (open position still managed)\n"
            "/resume - allow entries again\n/stop - EMERGENCY STOP: flatten at market and halt "
            "(asks for /stop confirm)\n/help - this list")

    def __init__(self, engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self._clock = clock
        self._stop_requested_at: float | None = None

    async def handle(self, command: Command) -> str | None:
        name, args = command.name, command.args
        e = self.engine
        if name in ("start", "help"):
            return self.HELP
        if name == "status":
            from agent.headless import engine_status_line

            s = e.status()
            return engine_status_line(e) + f"\nfeed {s.feed_state}, last price {_fmt(s.last_price)}"
        if name == "balance":
            s = e.status()
            q = e.config.exchange.quote_currency
            return (f"cash {s.balance:.2f} {q}, equity {s.equity:.2f} {q}, today {s.day_pnl:+.2f} {q}, "
                    f"unrealised {s.unrealized_pnl:+.2f} {q}")
        if name == "trades":
            trades = e.store.closed_trades(limit=5)
            if not trades:
                return "no closed trades yet"
            return "\n".join(f"#{t.id} {t.exit_reason or ''} pnl {t.pnl:+.2f} ({t.pnl_percent:+.2f}%)"
                             for t in trades)
        if name == "pause":
            if e.run_state != "RUNNING":
                return f"not paused: the engine is {e.run_state}"
            await e.pause()
            return "paused: no new entries; an open position is still managed"
        if name == "resume":
            if e.run_state != "PAUSED":
                return f"not resumed: the engine is {e.run_state}"
            await e.resume()
            return "resumed: new entries allowed"
        if name in ("stop", "emergency_stop"):
            now = self._clock()
            if args[:1] == ("confirm",):
                if self._stop_requested_at is None or now - self._stop_requested_at > CONFIRM_WINDOW_S:
                    self._stop_requested_at = None
                    return "no emergency stop is waiting for confirmation: send /stop first"
                self._stop_requested_at = None
                log.critical("EMERGENCY STOP confirmed from Telegram")
                await e.emergency_stop()
                return f"EMERGENCY STOP done: {e.run_state}. Clear the halt on the machine to trade again."
            self._stop_requested_at = now
            s = e.status()
            return ("EMERGENCY STOP will " + ("sell the open position at market, then " if s.open_trade else "")
                    + f"halt trading until cleared on the machine. Send /stop confirm within "
                    f"{CONFIRM_WINDOW_S:.0f} s to go ahead.")
        return f"unknown command /{name}; /help lists them"


class AlertServices:
    """Alerts (to every channel), the event bridge, ERROR/CRITICAL log records as alerts and,
    with a command channel (Telegram), remote control: one service beside the engine."""

    def __init__(self, engine, alerts: AlertService, commands=None) -> None:
        self.engine = engine
        self.channel = commands
        self.alerts = alerts
        self.bridge = AlertBridge(engine, alerts)
        self.remote = RemoteControl(engine)
        self._log_handler = AlertLogHandler(alerts)
        self._poll: asyncio.Task | None = None

    async def start(self) -> None:
        await self.alerts.start()
        await self.bridge.start()
        logging.getLogger().addHandler(self._log_handler)
        if self.channel is not None:
            self._poll = asyncio.get_running_loop().create_task(
                self.channel.poll_commands(self.remote.handle), name="telegram-commands")

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        logging.getLogger().removeHandler(self._log_handler)
        await self.bridge.stop()
        await self.alerts.stop()
        for channel in self.alerts.channels:
            close = getattr(channel, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.debug("closing alert channel %s failed", getattr(channel, "name", "?"), exc_info=True)


class TelegramService(AlertServices):
    """Alerts + remote control over one Telegram bot."""

    def __init__(self, engine, channel, alerts: AlertService) -> None:
        super().__init__(engine, alerts, commands=channel)


def run_mode(config) -> str:
    return "PAPER" if config.exchange.paper_trading else ("TESTNET" if config.exchange.testnet else "LIVE")


def headless_services(config, creds, data_dir: Path, env=None) -> list:
    """The services a run starts beside the engine, headless or in the window: Telegram when
    its token and chat id were found, email when SMTP_HOST and ALERT_EMAIL_TO are set (ERROR
    and CRITICAL only). Bad email settings are logged and skipped, never fatal."""
    from monitoring.mail import EmailChannel, EmailSettings, EmailSettingsError

    env = os.environ if env is None else env
    telegram = creds is not None and creds.has_telegram
    try:
        email = EmailSettings.from_env(env)
    except EmailSettingsError as exc:
        log.error("email alerts off: %s", exc)
        email = None
    if not telegram and email is None:
        log.info("alerts: no Telegram bot token and chat id found and no SMTP_HOST set; "
                 "alerts go to the log only")
        return []
    if email is not None:
        log.info("alerts: email (ERROR and CRITICAL) via %s", email.describe())
    mode = run_mode(config)
    base_url = env.get("TELEGRAM_API_BASE_URL") if telegram else None

    def factory(engine) -> AlertServices:
        channels: list = []
        commands = None
        if telegram:
            from monitoring.telegram import DEFAULT_BASE_URL, TelegramChannel

            commands = TelegramChannel(creds.telegram_bot_token, creds.telegram_chat_id,
                                       base_url=base_url or DEFAULT_BASE_URL)
            channels.append(commands)
        if email is not None:
            channels.append(EmailChannel(email))
        alerts = AlertService(channels, mode=(engine.venue.mode or mode).upper())
        return AlertServices(engine, alerts, commands=commands)

    return [factory]
