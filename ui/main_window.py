"""The main window: lays out the panels, turns button clicks into engine commands, and turns
engine events (through the bridge) into panel updates.

It holds no trading logic. Every command runs as an asyncio task with a done-callback, so the
event loop is never blocked and no failure goes unseen; every question goes through
ui.dialogs (no nested Qt loops). Closing the window shuts the engine down gracefully: the
first close event is ignored, one shutdown task awaits engine.stop(), then the window closes
for real and `wait_closed()` returns. With a position open, closing the window first asks
(Cancel is the default) and says what happens to the position; SIGTERM and Ctrl+C do not ask.

The operator's own actions are logged at INFO and acknowledged with an info toast; orange and
red toasts are kept for what the operator did not ask for."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from importlib import metadata
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QDialog, QMainWindow, QScrollArea, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from agent.config import TIMEFRAMES, ConfigError
from agent.shadow_compare import SHADOW_EXPORT_COLUMNS, export_row
from monitoring.kpis import kpis_from_store
from persistence.store import StoreError
from agent.events import (BalanceChanged, BarClosed, EngineStateChanged, PositionClosed,
                          PositionOpened, ReplayFinished, SignalSeen)
from ui import dialogs, log_handler
from ui.bridge import EngineBridge, TickSummary
from ui.chart.widget import ChartWidget
from ui.notifications import Notifier, _as_bool
from ui.panels.chart_sync import ChartSync
from ui.panels.control_bar import ControlBar
from ui.panels.log_viewer import LogViewer
from ui.panels.performance import PerformancePanel
from ui.panels.position import PositionPanel
from ui.panels.replay_bar import ReplayBar
from ui.panels.signals_table import SignalsTable
from ui.panels.shadow import ShadowPanel, ShadowTracker, shadow_cell, shadow_short
from ui.panels.trade_card import trade_card
from ui.panels.stats import StatsPanel
from ui.panels.style import app_stylesheet, format_money, format_price, split_pair
from ui.panels.trades_table import TradesTable

if TYPE_CHECKING:
    from agent.engine import Engine

log = logging.getLogger(__name__)

ORGANIZATION = "trading-agent"
APPLICATION = "trading-agent"
REFRESH_MS = 1000
KPI_REFRESH_S = 5.0            # the KPIs read the whole ledger: not every second
DAY_MS = 86_400_000
REPLAY_PROGRESS_MS = 200
SHUTDOWN_WAIT_S = 10.0
LAYERS = (("ema", "EMAs"), ("fib", "Fibonacci ladder"), ("markers", "Trade markers"))


def default_settings() -> QSettings:
    """The user's settings (QSettings.setPath/setDefaultFormat redirect them in tests)."""
    return QSettings(QSettings.defaultFormat(), QSettings.Scope.UserScope, ORGANIZATION,
                     APPLICATION)


class MainWindow(QMainWindow):
    """See the module docstring."""

    def __init__(self, engine: Engine, settings: QSettings | None = None,
                 config_path: Path | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.config_path = config_path       # where a .env with credentials may sit beside it
        self.settings = settings if settings is not None else default_settings()
        self.exit_code = 0
        self._tasks: set[asyncio.Task] = set()
        self._shutdown_task: asyncio.Task | None = None
        self._shutdown_done = False
        self._closed = asyncio.Event()
        self._run_state = engine.run_state
        self._day_pnl: float | None = None
        self._quotes: dict[int, tuple[str, float]] = {}   # trade id -> (action, quoted price)
        self._quit_question: asyncio.Task | None = None
        self._seek_target: int | None = None
        self.shadow = ShadowTracker(engine.params)
        self._comparisons: dict[int, object] = {}      # trade id -> settled ShadowComparison
        self._fresh_comparisons: dict[int, object] = {}  # not settled: computed again later
        self._skipped_signals: list = []                # SignalRecords the agent did not trade
        self._shadow_bars = -1                          # book size at the last shadow update
        self._shadow_shown: tuple = ()                  # what the vs Backtest tab last showed

        self.setObjectName("mainWindow")
        self.setStyleSheet(app_stylesheet())
        self.bridge = EngineBridge(engine.bus, parent=self)
        self._log_handler = log_handler.install()
        self.log_pump = log_handler.LogPump(self._log_handler, parent=self)

        self.control_bar = ControlBar()
        self.replay_bar = ReplayBar()
        self.replay_bar.setVisible(engine.is_replay)
        self.chart = ChartWidget()
        self.chart_sync = ChartSync(self.chart, engine.config.timeframe_minutes * 60_000,
                                    self._quote())
        self.chart_sync.card = self._trade_card
        self.position_panel = PositionPanel()
        self.stats_panel = StatsPanel()
        self.trades_table = TradesTable()
        self.log_viewer = LogViewer()
        self.tabs = QTabWidget()
        self.performance = PerformancePanel()
        self.tabs.addTab(self.trades_table, "Trades")
        self.tabs.addTab(self.performance, "Performance")
        self.tabs.setTabToolTip(1, "Realised equity with drawdowns shaded, PnL per UTC day, and the "
                                   "operating KPIs of the last 24 hours")
        self._kpis_at = float("-inf")          # monotonic time of the last KPI read
        self.tabs.currentChanged.connect(lambda _index: self._refresh_kpis(force=True))
        self.signals_table = SignalsTable()
        self.tabs.addTab(self.signals_table, "Signals")
        self.tabs.setTabToolTip(self.tabs.indexOf(self.signals_table),
                                "Every signal with its decision: ENTERED, or SKIPPED and why")
        self.shadow_panel = ShadowPanel()
        self.tabs.addTab(self.shadow_panel, "vs Backtest")
        self.tabs.setTabToolTip(self.tabs.indexOf(self.shadow_panel),
                                "Each trade beside the backtest app's own decision for the same "
                                "signal, and the monthly live-vs-backtest review")
        self.tabs.addTab(self.log_viewer, "Log")
        self._build_layout()
        self.notifier = Notifier(self, self.settings)
        self._build_menus()
        self.statusBar().showMessage(f"Data folder: {engine.data_dir}")
        self._connect()

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._refresh_timer.start()
        self._replay_timer = QTimer(self)
        self._replay_timer.setInterval(REPLAY_PROGRESS_MS)
        self._replay_timer.timeout.connect(self.refresh_replay)
        if engine.is_replay:
            self._replay_timer.start()
        self._restore_settings()
        self._load_from_store()
        self.refresh()

    # ----- layout ----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        self.bottom_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.bottom_splitter.setObjectName("bottomSplitter")
        for panel in (self.position_panel, self.stats_panel):
            scroll = QScrollArea()
            scroll.setObjectName("panelScroll")
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setWidget(panel)
            scroll.setMinimumWidth(240)
            self.bottom_splitter.addWidget(scroll)
        self.bottom_splitter.addWidget(self.tabs)
        self.bottom_splitter.setStretchFactor(2, 1)
        self.bottom_splitter.setSizes([276, 258, 1066])   # the tables get the width
        self.main_splitter = QSplitter(Qt.Orientation.Vertical)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.chart)
        self.main_splitter.addWidget(self.bottom_splitter)
        self.main_splitter.setStretchFactor(0, 3)      # the chart gets the space
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setCollapsible(0, False)
        self.main_splitter.setSizes([640, 300])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.control_bar)
        layout.addWidget(self.replay_bar)
        layout.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)
        screen = self.screen().availableGeometry()
        self.resize(min(1500, screen.width()), min(950, screen.height()))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.import_action = _action(self, "&Import config.json…", self.import_config, "Ctrl+I")
        self.export_action = _action(self, "&Export trades CSV…", self.export_trades, "Ctrl+E")
        file_menu.addAction(self.import_action)
        file_menu.addAction(self.export_action)
        self.keys_action = _action(self, "Exchange API &keys…", self.edit_credentials)
        file_menu.addAction(self.keys_action)
        file_menu.addSeparator()
        file_menu.addAction(_action(self, "&Quit", self.close, QKeySequence.StandardKey.Quit))

        view_menu = self.menuBar().addMenu("&View")
        self.layer_actions: dict[str, QAction] = {}
        for layer, text in LAYERS:
            action = QAction(text, self, checkable=True)
            action.setChecked(_as_bool(self.settings.value(f"view/{layer}", True)))
            action.toggled.connect(lambda on, name=layer: self._set_layer(name, on))
            self.chart.set_layer_visible(layer, action.isChecked())
            self.layer_actions[layer] = action
            view_menu.addAction(action)
        self.log_action = QAction("&Log", self, checkable=True)
        self.log_action.setChecked(_as_bool(self.settings.value("view/log", True)))
        self.log_action.toggled.connect(self._set_log_visible)
        self._set_log_visible(self.log_action.isChecked())
        view_menu.addAction(self.log_action)
        view_menu.addSeparator()
        view_menu.addAction(_action(self, "Follow latest candle", self.chart.follow_latest, "End"))
        self.deselect_action = _action(self, "Deselect trade", self.deselect_trade, "Esc")
        view_menu.addAction(self.deselect_action)
        view_menu.addSeparator()
        self.sound_action = QAction("Sound on errors", self, checkable=True)
        self.sound_action.setChecked(self.notifier.sound_enabled)
        self.sound_action.toggled.connect(self.notifier.set_sound_enabled)
        view_menu.addAction(self.sound_action)

        if self.engine.is_replay:
            replay_menu = self.menuBar().addMenu("&Replay")
            self.replay_play_action = _action(self, "Pause / play the replay clock",
                                              self.toggle_replay_clock, "Space")
            self.replay_step_action = _action(self, "Step one bar", self.step_replay,
                                              "Ctrl+Right")
            replay_menu.addAction(self.replay_play_action)
            replay_menu.addAction(self.replay_step_action)

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(_action(self, "&About", self.show_about))

    def _connect(self) -> None:
        bar = self.control_bar
        bar.start_requested.connect(self.start_engine)
        bar.pause_requested.connect(lambda: self._spawn("Pause", self.engine.pause))
        bar.resume_requested.connect(lambda: self._spawn("Resume", self.engine.resume))
        bar.stop_requested.connect(self.stop_trading)
        bar.emergency_requested.connect(self.emergency_stop)
        bar.clear_halt_requested.connect(self.clear_halt)
        replay = self.replay_bar
        replay.speed_requested.connect(self.set_replay_speed)
        replay.clock_paused_requested.connect(self.set_replay_clock_paused)
        replay.step_requested.connect(self.step_replay)
        replay.seek_requested.connect(self.seek_replay)
        if self.engine.is_replay:
            replay.show_speed(self.engine.replay_speed)
            self.refresh_replay()
        self.position_panel.manual_close_requested.connect(self.manual_close)
        self.trades_table.trade_selected.connect(self.chart_sync.select_trade)
        self.chart.trade_clicked.connect(self.select_trade_id)
        self.signals_table.signal_selected.connect(self.show_signal)
        b = self.bridge
        b.state_changed.connect(self._on_state)
        b.bars_closed.connect(self._on_bars)
        b.price_ticked.connect(self._on_tick)
        b.signal_seen.connect(self._on_signal)
        b.position_opened.connect(self._on_position_opened)
        b.position_closed.connect(self._on_position_closed)
        b.balance_changed.connect(self._on_balance)
        b.replay_finished.connect(self._on_replay_finished)
        self.log_pump.lines.connect(self.log_viewer.append_lines)
        self.log_pump.lines.connect(self.notifier.on_log_lines)

    # ----- commands --------------------------------------------------------------------------
    def start_engine(self) -> asyncio.Task:
        return self._spawn("Start", self._start)

    def edit_credentials(self) -> asyncio.Task:
        return self._spawn("API keys", self.ask_credentials, busy=False)

    async def _start(self) -> None:
        """A testnet or live config without API keys asks for them first (stored in the OS
        keyring); without them Start is refused with where they were looked for."""
        from agent.engine import EngineBusy

        if self.engine.config.mode != "paper":
            creds = self._find_credentials()
            if not creds.has_exchange_keys and not await self.ask_credentials():
                raise EngineBusy(self._find_credentials().missing_message())
        await self.engine.start()

    def _find_credentials(self):
        from agent import credentials as cr

        ex = self.engine.config.exchange
        return cr.load_credentials(exchange=ex.exchange_name,
                                   account=cr.default_account(ex.testnet),
                                   config_path=self.config_path, fields=cr.EXCHANGE_FIELDS)

    async def ask_credentials(self) -> bool:
        """Ask for the exchange keys and store them in the OS keyring; True when the config's
        keys are complete afterwards. Values are never shown again (last 4 characters)."""
        from ui.credentials_dialog import dialog_for, store_in_keyring

        dialog = dialog_for(self.engine.config, self.config_path, self._find_credentials(), self)
        accepted = await dialogs.run_dialog(dialog) == QDialog.DialogCode.Accepted
        values = dialog.take_values()
        dialog.deleteLater()
        if accepted and values:
            self.notify(f"Stored in the OS keyring: {store_in_keyring(dialog.service, values)}")
        return self._find_credentials().has_exchange_keys

    def stop_trading(self) -> asyncio.Task:
        return self._spawn("Stop", self._stop_trading)

    def emergency_stop(self) -> asyncio.Task:
        return self._spawn("Emergency stop", self._emergency_stop, busy=False)

    def manual_close(self) -> asyncio.Task:
        return self._spawn("Manual close", self._manual_close)

    def clear_halt(self) -> asyncio.Task:
        return self._spawn("Clear halt", self._clear_halt)

    def import_config(self) -> asyncio.Task:
        return self._spawn("Import config", self._import_config)

    def export_trades(self) -> asyncio.Task:
        return self._spawn("Export trades", self._export_trades, busy=False)

    def show_about(self) -> asyncio.Task:
        return self._spawn("About", self._about, busy=False)

    async def wait_idle(self) -> None:
        """Wait until every command started from the window has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def wait_closed(self) -> int:
        """Return once the window has shut the engine down and closed; the exit code."""
        await self._closed.wait()
        return self.exit_code

    def _spawn(self, name: str, command: Callable[[], Awaitable[object]],
               busy: bool = True) -> asyncio.Task:
        task = asyncio.ensure_future(self._run_command(name, command, busy))
        task.set_name(f"ui:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._command_done)
        return task

    async def _run_command(self, name: str, command: Callable[[], Awaitable[object]],
                           busy: bool) -> None:
        from agent.engine import EngineBusy

        if busy:
            self.control_bar.set_busy(True)
        try:
            log.info("operator: %s", name)
            await command()
        except EngineBusy as exc:
            log.info("%s refused: %s", name, exc)
            await dialogs.inform(self, f"{name} refused", str(exc), level="warning")
        except Exception as exc:
            log.exception("%s failed", name)
            await dialogs.inform(self, f"{name} failed", str(exc), level="error")
        finally:
            if busy:
                self.control_bar.set_busy(False)
            if not self._shutdown_done and self._shutdown_task is None:
                self.refresh()

    def _command_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an unhandled error", task.get_name(),
                      exc_info=task.exception())

    async def _emergency_stop(self) -> None:
        trade = self.engine.status().open_trade
        position = ("close the open position of "
                    f"{trade.amount:.8g} {split_pair(trade.pair)[0]} at market, then "
                    if trade is not None else "")
        text = (f"Emergency stop will {position}HALT the agent.\n\n"
                "No new trades are opened until you clear the halt; the halt is kept across "
                "restarts.")
        if not await dialogs.confirm(self, "Emergency stop", text, confirm_label="Emergency Stop",
                                     destructive=True,
                                     live=self._live_quote if trade is not None else None):
            return
        quote = self.engine.status().last_price
        if trade is not None and quote is not None:
            self._quotes[trade.id] = ("Emergency stop", quote)
        await self.engine.emergency_stop()

    async def _manual_close(self) -> None:
        status = self.engine.status()
        trade = status.open_trade
        if trade is None:
            await dialogs.inform(self, "Manual close", "There is no open position.")
            return
        base = split_pair(trade.pair)[0]
        text = (f"Close {trade.amount:.8g} {base} at market?\n\nA market order fills at the "
                "next price, which can differ from the quote below. The trade is recorded with "
                "exit reason MANUAL.")
        if not await dialogs.confirm(self, "Manual close", text, confirm_label="Close position",
                                     destructive=True, live=self._live_quote):
            return
        quote = self.engine.status().last_price
        if quote is not None:
            self._quotes[trade.id] = ("Manual close", quote)
        await self.engine.manual_close()
        if self.engine.status().open_trade is not None:
            self.notify(f"Manual close sent at a quote of {format_price(quote)}; waiting for the "
                        "fill" if quote is not None else "Manual close sent; waiting for the fill")

    def _live_quote(self) -> str:
        """The line a confirmation re-reads while it is open: price and unrealised PnL now."""
        status = self.engine.status()
        if status.last_price is None:
            return "Quote: no live price yet (the order waits for the first one)"
        quote = split_pair(status.pair)[1]
        return (f"Quote now: {format_price(status.last_price)} · unrealised "
                f"{format_money(status.unrealized_pnl, quote)}")

    async def _stop_trading(self) -> None:
        status = self.engine.status()
        trade = status.open_trade
        if trade is not None:
            text = (f"Stop trading?\n\nNo new entries and no more market data. The open "
                    f"position of {trade.amount:.8g} {split_pair(trade.pair)[0]} is kept: "
                    + self._position_fate())
            if not await dialogs.confirm(self, "Stop", text, confirm_label="Stop, keep position"):
                return
        await self.engine.stop_trading()
        self.notify("Stopped: no new entries" + ("; the position keeps its stop and target"
                                                  if trade is not None else ""))

    def _position_fate(self) -> str:
        """What happens to an open position while the agent is not running, in plain words."""
        if self.engine.status().mode == "paper":
            return ("on paper nothing watches it while the agent is stopped or closed; it is "
                    "managed again, with its stop and target, at the next Start or launch with "
                    "this data folder.")
        return ("its stop and target orders stay resting at the exchange and can fill while the "
                "agent is stopped or closed.")

    async def _clear_halt(self) -> None:
        status = self.engine.status()
        text = (f"The agent is halted: {status.halt_reason or 'no reason recorded'}.\n\n"
                "Clear the halt? The engine goes to STOPPED; trading resumes only when you "
                "press Start.")
        if await dialogs.confirm(self, "Clear halt", text, confirm_label="Clear halt"):
            await self.engine.clear_halt()
            self.notify("Halt cleared: the engine is STOPPED; press Start to trade")

    async def _import_config(self) -> None:
        status = self.engine.status()
        if status.run_state in ("RUNNING", "PAUSED", "STARTING") or status.open_trade is not None:
            why = ("close the open position" if status.open_trade is not None
                   else f"stop the engine (it is {status.run_state})")
            await dialogs.inform(self, "Import config", f"Cannot import a config now: {why} "
                                 "first.", level="warning")
            return
        path = await dialogs.choose_open_file(self, "Import config.json",
                                              "Config (*.json);;All files (*)")
        if path is None:
            return
        old_market = (status.pair, status.timeframe)
        try:
            summary, warnings = await self.engine.import_config(path)
            self.config_path = path
        except ConfigError as exc:
            log.error("config %s rejected: %s", path, exc)
            count = len(exc.problems)
            await dialogs.show_problems(
                self, "Invalid config", f"{path.name} was not imported "
                f"({count} problem{'s' if count != 1 else ''}):", exc.problems)
            return
        new = self.engine.status()
        if (new.pair, new.timeframe) != old_market:
            self._reset_market()
        self._reset_shadow()
        self.update_shadow()
        text = "\n".join(summary)
        if warnings:
            text += "\n\nWarnings:\n" + "\n".join(f"• {w}" for w in warnings)
        self.notify(f"Config imported from {path.name}")
        if self.engine.config.mode != "paper" and not self._find_credentials().has_exchange_keys:
            await self.ask_credentials()
        await dialogs.inform(self, "Config imported", text,
                             level="warning" if warnings else "info")

    async def _export_trades(self) -> None:
        """The CSV goes outside the data folder (it holds the ledger), as with the CLI's
        export-trades; the backtest shadow columns are added for the trades compared."""
        path = await dialogs.choose_save_file(self, "Export trades", "CSV (*.csv)",
                                              str(default_export_folder() / "trades.csv"), "csv")
        if path is None:
            return
        refusal = export_refusal(path, self.engine.data_dir)
        if refusal is None:
            extra = {tid: export_row(c) for tid in self._trade_ids()
                     if (c := self.comparison(tid)) is not None}
            try:
                rows = self.engine.store.export_trades_csv(path, SHADOW_EXPORT_COLUMNS, extra)
            except (StoreError, OSError) as exc:
                refusal = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if refusal is not None:
            log.warning("export refused: %s", refusal)
            await dialogs.inform(self, "Export trades", f"Not exported: {refusal}",
                                 level="warning")
            return
        log.info("exported %d trades to %s", rows, path)
        self.statusBar().showMessage(f"Exported {rows} trades to {path}", 10_000)
        self.notify(f"Exported {rows} trades to {path.name}")

    def _trade_ids(self) -> list[int]:
        return [t.id for t in self.trades_table.trades if t.id is not None]

    async def _about(self) -> None:
        try:
            version = metadata.version("trading-agent")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        await dialogs.inform(self, "About Trading Agent",
                             f"Trading Agent {version}\n\nSeller-exhaustion execution agent.\n\n"
                             f"Data folder:\n{self.engine.data_dir}")

    # ----- engine events ---------------------------------------------------------------------
    def _on_state(self, event: EngineStateChanged) -> None:
        self._run_state = event.run_state
        reason = event.reason if event.run_state in ("HALTED", "ERROR") else None
        self.control_bar.set_run_state(event.run_state, event.position_state, reason)
        self._show_state_meaning(event.run_state)
        self._update_title()

    def _show_state_meaning(self, run_state: str) -> None:
        if run_state == "PAUSED":
            self.statusBar().showMessage(
                "PAUSED: no new entries; an open position is still managed by its stop and "
                "target" + ("; the replay keeps playing (Space holds it)"
                            if self.engine.is_replay else ""))
        elif run_state == "STOPPED":
            self.statusBar().showMessage("STOPPED: not trading and not following the market")

    def _on_bars(self, events: list[BarClosed]) -> None:
        decisions = [event.decision for event in events]
        sync = self.chart_sync
        first = decisions[0].bar.ts
        if sync.last_bar_ts is None or first > sync.last_bar_ts + sync.timeframe_ms:
            # Bars the engine warmed up silently (a resumed replay) never came as events.
            history = self.engine.history()
            sync.seed(history)
            self.shadow.add(history)
        sync.add_bars(decisions)
        self.shadow.add(decisions)

    def _on_tick(self, tick: TickSummary) -> None:
        self.chart_sync.tick(tick)

    def _on_signal(self, event: SignalSeen) -> None:
        self.chart_sync.signal_seen(event.signal)
        self.signals_table.add_signal(event.signal)
        if event.signal.action == "SKIPPED":
            self._skipped_signals.append(event.signal)

    def select_trade_id(self, trade_id: int) -> None:
        """A trade marker was clicked: select its trade here, in the Trades table and on the
        chart (the open trade has no row; it is shown as the current trade)."""
        if self.trades_table.select_trade_id(trade_id):   # emits trade_selected -> chart
            self.tabs.setCurrentWidget(self.trades_table)
            return
        open_trade = self.chart_sync.open_trade
        if open_trade is not None and open_trade.id == trade_id:
            self.trades_table.deselect()
            self.chart_sync.select_trade(open_trade)

    def show_signal(self, signal) -> None:
        """A signal picked in the Signals tab: an entered one selects its trade, a skipped one
        shows its dim ladder on its bars."""
        if signal.action == "ENTERED" and signal.reason.startswith("trade "):
            trade_id = signal.reason.removeprefix("trade ")
            if trade_id.isdigit() and self.trades_table.select_trade_id(int(trade_id)):
                return
        self.trades_table.deselect()
        self.chart_sync.show_signal(signal)

    def deselect_trade(self) -> None:
        """Esc: no trade selected; the chart returns to the current trade and newest candle."""
        self.trades_table.deselect()
        self.chart_sync.select_trade(None)

    def _on_position_opened(self, event: PositionOpened) -> None:
        if self.chart_sync.selected is not None:
            self.trades_table.deselect()     # the chart lets go of an old trade (ChartSync)
        self.chart_sync.position_opened(event.trade)
        QTimer.singleShot(0, self.refresh)     # its own loop turn: no single long stall

    def _on_position_closed(self, event: PositionClosed) -> None:
        self._report_fill(event.trade)
        self.chart_sync.position_closed(event.trade)
        self.trades_table.add_trade(event.trade)
        self._show_performance()
        self._shadow_bars = -1                           # a new trade to compare
        QTimer.singleShot(0, self.refresh)

    def _report_fill(self, trade) -> None:
        """An exit the operator asked for: its fill against the price the dialog quoted."""
        asked = self._quotes.pop(trade.id, None) if trade.id is not None else None
        if asked is None or trade.exit_price is None:
            return
        action, quote = asked
        diff = trade.exit_price - quote
        bps = diff / quote * 10_000 if quote else 0.0
        text = (f"{action} filled at {format_price(trade.exit_price)} against a quote of "
                f"{format_price(quote)} ({diff:+,.2f}, {bps:+.1f} bps; "
                f"PnL {format_money(trade.pnl, self._quote())})")
        log.info("%s", text)
        self.statusBar().showMessage(text)
        self.notify(text)

    def notify(self, text: str) -> None:
        """Acknowledge an operator's own action: an info toast, never an orange warning."""
        self.notifier.toast(text, logging.INFO)

    def _on_balance(self, event: BalanceChanged) -> None:
        self._day_pnl = event.day_pnl
        self.control_bar.set_balance(event.balance, event.day_pnl, self._quote(), event.equity)
        self._update_title()

    def _on_replay_finished(self, event: ReplayFinished) -> None:
        self.statusBar().showMessage(f"Replay finished: {event.bars:,} bars processed; "
                                     "no more bars will come")
        self.refresh_replay()
        self.replay_bar.show_finished()
        self._spawn("Replay summary", lambda: self._replay_summary(event), busy=False)

    def replay_summary_text(self, bars: int) -> str:
        """Trades, win rate, PnL, max drawdown and the comparison with the backtest."""
        self._shadow_bars = -1
        self.update_shadow()
        trades = [t for t in self.engine.store.closed_trades() if t.pnl is not None]
        stats = self.engine.store.stats(self.engine.clock.now_ms())
        quote = self._quote()
        initial = self.engine.config.exchange.paper_initial_balance
        pnl = sum(t.pnl for t in trades)
        wins = sum(1 for t in trades if t.pnl > 0)
        lines = [f"The replay is finished: {bars:,} bars processed.", "",
                 f"Trades: {len(trades)}" + (f" ({wins} won, {wins / len(trades) * 100:.0f}%)"
                                             if trades else ""),
                 f"Realised PnL: {format_money(pnl, quote)}"
                 + (f" ({pnl / initial * 100:+.2f}% of {initial:,.0f} {quote})" if initial else ""),
                 f"Max drawdown: {stats.max_drawdown_percent:.2f}%"]
        if self.engine.status().open_trade is not None:
            lines.append("A position is still open (the replay ended before its exit).")
        overall = self.shadow.overall(self.trades_table.trades)
        if overall is not None:
            lines += ["", f"vs backtest: {overall.summary()}"]
        return "\n".join(lines)

    async def _replay_summary(self, event: ReplayFinished) -> None:
        await dialogs.inform(self, "Replay finished", self.replay_summary_text(event.bars))

    # ----- periodic refresh ------------------------------------------------------------------
    def refresh(self) -> None:
        """Pull the engine's status into the panels (every second, and after each command)."""
        if self._shutdown_task is not None:
            return
        status = self.engine.status()
        now = self.engine.clock.now_ms()
        quote = self._quote()
        self._run_state = status.run_state
        self.control_bar.set_mode(status.mode)
        self.control_bar.set_market(status.pair, status.timeframe)
        if self.control_bar.run_state != status.run_state and self.bridge.pending == 0:
            self.control_bar.set_run_state(status.run_state, status.position_state,
                                           status.halt_reason)
        self.control_bar.set_balance(status.balance, status.day_pnl, quote, status.equity)
        self._day_pnl = status.day_pnl
        self.position_panel.show_position(
            status.open_trade, status.last_price, status.unrealized_pnl, now,
            can_close=status.run_state in ("RUNNING", "PAUSED", "HALTED"))
        self.stats_panel.show_health(status.feed_state, status.exchange_state, status.latency_ms,
                                     status.last_update_ts, now,
                                     TIMEFRAMES[status.timeframe] * 60_000)
        if self.bridge.pending == 0:
            self._sync_open_trade(status.open_trade)
        self.stats_panel.show_stats(self.engine.store.stats(now), quote)   # cheap (store doc)
        self._refresh_kpis()
        self._seed_warm_history(status)
        self._show_placeholder(status)
        self.update_shadow()
        self._update_title()

    def _refresh_kpis(self, force: bool = False) -> None:
        """The Performance tab's KPIs, while it is shown: every KPI_REFRESH_S, or at once."""
        if self.tabs.currentWidget() is not self.performance or self.engine.store.closed:
            return
        if not force and time.monotonic() - self._kpis_at < KPI_REFRESH_S:
            return
        self._kpis_at = time.monotonic()
        try:
            report = kpis_from_store(self.engine.store, since_ms=self.engine.clock.now_ms() - DAY_MS,
                                     timeframe=self.engine.config.timeframe)
        except StoreError as exc:
            log.warning("operating KPIs unavailable: %s", exc)
            return
        self.performance.set_kpis(report)

    def _seed_warm_history(self, status) -> None:
        """Bars the engine only warmed on (a live feed's history, a resumed replay's committed
        bars) come as no events: once the feed is past them, an empty chart shows them instead
        of waiting for the first live close (up to a whole timeframe on a live market)."""
        if self.chart.candle_count() or status.feed_state == "catching up" or self.bridge.pending:
            return
        history = self.engine.history()
        if history:
            self.chart_sync.seed(history)
            self.shadow.add(history)

    def _show_placeholder(self, status) -> None:
        """What an empty chart is waiting for, from the engine's own state."""
        if self.chart.candle_count():
            return
        if status.feed_state == "catching up":
            wanted = self.engine.params.warmup_bars()
            have = min(len(self.engine.history()), wanted)
            text = f"Warming up the indicators ({have:,} of {wanted:,} bars)"
        elif status.run_state in ("STOPPED", "HALTED", "ERROR"):
            text = (f"Waiting for data: the engine is {status.run_state}"
                    + (" (press Start)" if status.run_state == "STOPPED" else ""))
        else:
            text = f"Waiting for data (feed: {status.feed_state})"
        self.chart.set_placeholder(text)

    # ----- replay clock ----------------------------------------------------------------------
    def refresh_replay(self) -> None:
        """Progress, clock and speed of a replay (a fast timer: "bar 4,300 of 9,000" moves)."""
        pacer = self.engine.pacer
        if pacer is None or self._shutdown_task is not None:
            return
        if self._seek_target is not None and pacer.position >= self._seek_target:
            self._seek_target = None
            self.statusBar().showMessage(f"Replay held at bar {pacer.position:,}")
        self.replay_bar.show_progress(pacer.position, pacer.total)
        self.replay_bar.show_clock(pacer.paused)

    def set_replay_clock_paused(self, paused: bool) -> None:
        pacer = self.engine.pacer
        if pacer is None:
            return
        self._seek_target = None
        pacer.set_paused(paused)
        log.info("operator: replay clock %s", "held" if paused else "running")
        self.statusBar().showMessage(
            "Replay clock held: no bars arrive (Step or Space to go on); the engine state is "
            "unchanged" if paused else "Replay clock running")
        self.refresh_replay()

    def toggle_replay_clock(self) -> None:
        if self.engine.pacer is not None:
            self.set_replay_clock_paused(not self.engine.pacer.paused)

    def step_replay(self) -> None:
        pacer = self.engine.pacer
        if pacer is None:
            return
        if not pacer.paused:
            self.set_replay_clock_paused(True)
            return
        pacer.step()

    def set_replay_speed(self, speed: float | None) -> None:
        self.engine.set_replay_speed(speed)
        self.replay_bar.show_speed(speed)

    def seek_replay(self, target: int) -> None:
        """Run the replay to bar `target` and hold the clock there: the clock is held and
        released one step per bar, and steps are not paced, so it runs at full speed and stops
        exactly on the bar."""
        pacer = self.engine.pacer
        if pacer is None or target <= pacer.position:
            return
        target = min(target, pacer.total)
        pacer.set_paused(True)
        for _ in range(target - pacer.position):
            pacer.step()
        self._seek_target = target
        log.info("operator: replay runs to bar %d and holds", target)
        self.refresh_replay()

    # ----- backtest shadow -------------------------------------------------------------------
    def update_shadow(self) -> None:
        """Compare the trades whose backtest outcome is not settled yet, and review the months
        again; only when bars or trades were added since the last time."""
        if len(self.shadow.book) == self._shadow_bars:
            return
        self._shadow_bars = len(self.shadow.book)
        trades = self.trades_table.trades
        fresh = {}
        for trade in trades:
            if trade.id is None or trade.id in self._comparisons:
                continue
            comparison = self.shadow.compare(trade)
            fresh[trade.id] = comparison
            if comparison.shadow is not None and comparison.shadow.reason is not None:
                self._comparisons[trade.id] = comparison      # both closed: it cannot change
        if fresh:
            self.trades_table.set_shadow({tid: shadow_cell(c) for tid, c in fresh.items()})
            self._fresh_comparisons = fresh
            for trade in trades:
                if trade.id in fresh:
                    self.chart_sync.refresh_card(trade)
        backtest = self.shadow.book.trades()
        closed_backtest = sum(1 for t in backtest if t.reason is not None)
        key = (len(trades), len(self._comparisons), tuple(fresh), len(self._skipped_signals),
               len(backtest), closed_backtest)
        if key == self._shadow_shown and not fresh:
            return          # nothing the panel shows changed: no table refill every second
        self._shadow_shown = key
        backtest_signals = {t.signal_ts for t in backtest}
        skipped = [self.shadow.compare_skipped(sig) for sig in self._skipped_signals
                   if sig.bar_ts in backtest_signals]
        shown = {**self._comparisons, **self._fresh_comparisons}
        self.shadow_panel.show_comparisons(list(shown.values()) + skipped)
        self.shadow_panel.show_reviews(self.shadow.reviews(trades), self.shadow.overall(trades))

    def comparison(self, trade_id: int):
        """The latest comparison of a closed trade with the backtest's shadow, if any."""
        return self._comparisons.get(trade_id) or self._fresh_comparisons.get(trade_id)

    def _trade_card(self, trade) -> str:
        c = self.comparison(trade.id) if trade.id is not None else None
        return trade_card(trade, self._quote(), shadow_short(c) if c is not None else None)

    def _reset_shadow(self) -> None:
        """New parameters or market: the backtest's decisions are computed again."""
        self.shadow = ShadowTracker(self.engine.params)
        self.shadow.seed(self.engine.history())
        self._comparisons = {}
        self._fresh_comparisons = {}
        self._shadow_bars = -1
        self._shadow_shown = ()

    def _sync_open_trade(self, trade) -> None:
        """Catch up with a position the engine restored at start-up (no event announces it)."""
        shown = self.chart_sync.open_trade
        if trade is not None and (shown is None or shown.id != trade.id):
            self.chart_sync.position_opened(trade)

    def _load_from_store(self) -> None:
        """Closed trades and recent candles the engine already has (they survive restarts)."""
        closed = self.engine.store.closed_trades()
        self.trades_table.set_trades(closed, self._quote())
        self._show_performance(closed)
        history = self.engine.history()
        self.chart_sync.seed(history)
        self.shadow.seed(history)
        signals = self.engine.store.signals()
        self.signals_table.set_signals(signals)
        self._skipped_signals = [s for s in signals if s.action == "SKIPPED"]
        self.chart_sync.seed_trades(closed, self.engine.status().open_trade)

    def _show_performance(self, closed=None) -> None:
        trades = closed if closed is not None else self.trades_table.trades
        self.performance.set_trades(trades, self.engine.config.exchange.paper_initial_balance,
                                    self._quote())

    def _reset_market(self) -> None:
        """A config for another pair or timeframe: the old candles mean nothing any more."""
        self.chart_sync = ChartSync(self.chart, self.engine.config.timeframe_minutes * 60_000,
                                    self._quote())
        self.chart_sync.card = self._trade_card
        self.trades_table.trade_selected.disconnect()
        self.trades_table.trade_selected.connect(self.chart_sync.select_trade)
        self.chart.clear_fib_ladder()
        self.chart.clear_position()
        self._load_from_store()

    def _update_title(self) -> None:
        status_pnl = format_money(self._day_pnl, self._quote()) if self._day_pnl is not None else ""
        cfg = self.engine.config
        self.setWindowTitle(f"{self._run_state} · {cfg.exchange.trading_pair} {cfg.timeframe}"
                            f" · Today {status_pnl} — Trading Agent")

    def _quote(self) -> str:
        return split_pair(self.engine.config.exchange.trading_pair)[1] or \
            self.engine.config.exchange.quote_currency

    # ----- view toggles and settings ---------------------------------------------------------
    def _set_layer(self, layer: str, visible: bool) -> None:
        self.chart.set_layer_visible(layer, visible)
        self.settings.setValue(f"view/{layer}", visible)

    def _set_log_visible(self, visible: bool) -> None:
        self.tabs.setTabVisible(self.tabs.indexOf(self.log_viewer), visible)
        self.settings.setValue("view/log", visible)

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        for key, splitter in (("window/main_splitter", self.main_splitter),
                              ("window/bottom_splitter", self.bottom_splitter)):
            state = self.settings.value(key)
            if state is not None:
                splitter.restoreState(state)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/main_splitter", self.main_splitter.saveState())
        self.settings.setValue("window/bottom_splitter", self.bottom_splitter.saveState())
        self.settings.sync()

    # ----- shutdown --------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self._shutdown_done:
            event.accept()
            return
        event.ignore()
        if self._shutdown_task is not None or self._quit_question is not None:
            return
        if self.engine.status().open_trade is not None:
            self._quit_question = asyncio.ensure_future(self._ask_before_quit())
        else:
            self.shutdown_now()

    def shutdown_now(self) -> None:
        """Close without asking (SIGTERM, Ctrl+C, a confirmed quit)."""
        if self._quit_question is not None and not self._quit_question.done():
            self._quit_question.cancel()
        if self._shutdown_task is None and not self._shutdown_done:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())

    async def _ask_before_quit(self) -> None:
        trade = self.engine.status().open_trade
        text = "A position is open." if trade is None else (
            f"A position of {trade.amount:.8g} {split_pair(trade.pair)[0]} is open.")
        text += "\n\nIf you quit, the position stays open: " + self._position_fate()
        try:
            quit_ = await dialogs.confirm(self, "Quit with an open position", text,
                                          confirm_label="Quit, keep position")
        finally:
            self._quit_question = None
        if quit_:
            log.info("operator: quit with the position open")
            self.shutdown_now()

    async def _shutdown(self) -> None:
        """Answer open dialogs with Cancel, let running commands finish, stop the engine,
        then close for real."""
        log.info("window closing: stopping the engine")
        self._refresh_timer.stop()
        self.save_settings()
        try:
            for dialog in self.findChildren(QDialog):
                if dialog.isVisible():
                    dialog.reject()
            if self._tasks:
                await asyncio.wait(tuple(self._tasks), timeout=SHUTDOWN_WAIT_S)
            await self.engine.stop()
        except Exception:
            log.exception("the engine did not stop cleanly")
            self.exit_code = 1
        finally:
            self.bridge.close()
            self.log_pump.stop()
            log_handler.uninstall(self._log_handler)
            self._shutdown_done = True
            self.close()
            self._closed.set()


def default_export_folder() -> Path:
    """Where an export is suggested: the user's Documents folder, else the home folder."""
    documents = QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.DocumentsLocation)
    for folder in (documents, str(Path.home())):
        if folder and Path(folder).is_dir():
            return Path(folder)
    return Path.home()


def export_refusal(path: Path, data_dir: Path) -> str | None:
    """Why a CSV may not be written there, in one line (the CLI's rule: never inside the data
    folder, which holds the ledger); None when it may."""
    try:
        path.resolve().relative_to(Path(data_dir).resolve())
    except ValueError:
        return None
    return (f"{path} is inside the data folder {data_dir}, which holds the ledger: choose "
            "another folder (e.g. Documents)")


def _action(parent: QWidget, text: str, slot: Callable[[], object],
            shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _checked=False: slot())
    return action
