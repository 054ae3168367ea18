"""Feeds the chart from engine events: candles, EMAs, the live candle, the Fibonacci ladder,
trade markers and the open position.

What the ladder shows, in order of precedence: the trade the operator selected (in the table
or by clicking a marker); else the open trade; else the latest signal (dimmed, "not traded:
REASON", when that signal was skipped) or the last closed trade. A new position drops the
selection and follows the newest candle again: an old trade never holds the view. Each
marker carries its trade's id and hover card (trade_card). Bars are deduplicated by time, so seeding from the engine's history and
then receiving the same bars as events never draws a candle twice.

Cost: the chart's append_bar scrolls and extends the EMA tails per call (~1 ms with a full
scene), so a batch of more than BATCH_APPEND bars (a replay at --speed max delivers hundreds
per frame) rebuilds the chart once from columns kept here instead, keeping the operator's
zoom and whether the view follows the newest candle."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from agent.strategy import RATIOS, Decision
from indicators.fibonacci import levels_between
from persistence.records import SignalRecord, TradeRecord
from ui.bridge import TickSummary
from ui.panels.trade_card import trade_card
from ui.panels.trades_table import exit_marker_kind

log = logging.getLogger(__name__)

BATCH_APPEND = 8          # larger batches rebuild the chart in one call
MAX_CANDLES = 50_000      # as many as the engine keeps in its history
SIGNAL_FOCUS_BARS = 24   # bars shown either side of a signal picked in the Signals tab
MAX_SKIPS_KEPT = 256      # skip reasons remembered for signals not drawn yet


class Chart(Protocol):
    """The part of ui.chart.ChartWidget this module drives."""

    view: object            # the pyqtgraph ViewBox: its X range is kept across a rebuild
    following: bool

    def fit_y(self) -> None: ...
    def set_history(self, ts_ms, o, h, l, c, ema_fast, ema_slow, volume=None) -> None: ...
    def append_bar(self, ts_ms, o, h, l, c, ema_fast, ema_slow, volume=...) -> None: ...
    def update_live(self, ts_ms, o, h, l, c) -> None: ...
    def set_fib_ladder(self, levels, target_ratio, start_ts_ms, end_ts_ms,
                       not_traded=None) -> None: ...
    def clear_fib_ladder(self) -> None: ...
    def add_entry_marker(self, ts_ms, price, trade_id=None) -> None: ...
    def add_exit_marker(self, ts_ms, price, kind, trade_id=None) -> None: ...
    def set_trade_card(self, trade_id, text) -> None: ...
    def select_trade_markers(self, trade_id) -> None: ...
    def follow_latest(self) -> None: ...
    def clear_markers(self) -> None: ...
    def set_position(self, entry_ts_ms, entry_price, stop_price) -> None: ...
    def clear_position(self) -> None: ...
    def focus_range(self, start_ts_ms, end_ts_ms) -> None: ...
    def candle_count(self) -> int: ...


class ChartSync:
    """Translates engine records into ChartWidget calls (see the module docstring)."""

    def __init__(self, chart: Chart, timeframe_ms: int, currency: str = "") -> None:
        self.chart = chart
        self.timeframe_ms = timeframe_ms
        self.currency = currency
        # A trade's hover card; the window adds the backtest's outcome when it knows it.
        self.card: Callable[[TradeRecord], str] = lambda t: trade_card(t, self.currency)
        self.last_closed: TradeRecord | None = None
        self.last_bar_ts: int | None = None
        self.last_close: float | None = None
        self.open_trade: TradeRecord | None = None
        self.selected: TradeRecord | None = None
        self.ladder_source: str | None = None     # "selected" | "trade" | "signal" | None
        self._ladder_start: int | None = None
        self._live: tuple[int, float, float, float, float] | None = None  # ts, o, h, l, c
        self._columns: list[list[float]] = [[] for _ in range(8)]  # ts o h l c ema_f ema_s volume
        # Skip reasons by signal bar. The engine decides a skip before it announces the bar, so
        # the reason usually arrives first; a pending entry dropped later arrives after.
        self._skipped: dict[int, str] = {}

    # ----- candles ------------------------------------------------------------------------
    def seed(self, history: Sequence[Decision]) -> None:
        """Replace the chart's candles with the engine's recent history (oldest first)."""
        if not history:
            return
        self._columns = [[] for _ in range(8)]
        self._keep(history[-MAX_CANDLES:])
        self._rebuild(keep_view=False)
        self.last_bar_ts = history[-1].bar.ts
        self.last_close = history[-1].bar.close
        self._live = None

    def add_bars(self, decisions: Sequence[Decision]) -> list[Decision]:
        """Append closed bars newer than the chart's newest; returns the ones appended."""
        newest = self.last_bar_ts
        added = [d for d in decisions if newest is None or d.bar.ts > newest]
        if not added:
            return added
        self._keep(added)
        if len(added) > BATCH_APPEND:
            self._rebuild(keep_view=True)
        else:
            for d in added:
                b = d.bar
                self.chart.append_bar(b.ts, b.open, b.high, b.low, b.close, d.ema_fast, d.ema_slow,
                                      b.volume)
        self.last_bar_ts = added[-1].bar.ts
        self.last_close = added[-1].bar.close
        if self.open_trade is None and self.selected is None:
            signals = [d for d in added if d.signal and d.fib is not None]
            if signals:
                self._show_signal_ladder(signals[-1])
        if self._live is not None and self._live[0] <= self.last_bar_ts:
            self._live = None
        return added

    def tick(self, tick: TickSummary) -> None:
        """Draw the forming candle. A tick exactly on a bar boundary is the close of the bar
        that just ended (a replay publishes those), not a new candle: it draws nothing."""
        if self.last_bar_ts is None or tick.ts % self.timeframe_ms == 0:
            return
        bucket = tick.ts - tick.ts % self.timeframe_ms
        if bucket <= self.last_bar_ts:
            return
        if self._live is None or self._live[0] != bucket:
            opening = self.last_close if self.last_close is not None else tick.price
            self._live = (bucket, opening, max(opening, tick.high), min(opening, tick.low),
                          tick.price)
        else:
            _, o, h, l, _ = self._live
            self._live = (bucket, o, max(h, tick.high), min(l, tick.low), tick.price)
        self.chart.update_live(*self._live)

    # ----- trades -------------------------------------------------------------------------
    def seed_trades(self, closed: Sequence[TradeRecord], open_trade: TradeRecord | None) -> None:
        """Markers for every closed trade, the open position, and the current ladder."""
        self.chart.clear_markers()
        for trade in closed:
            self._add_markers(trade)
        self.last_closed = closed[-1] if closed else None
        if open_trade is not None:
            self.position_opened(open_trade)
        elif closed:
            self._show_trade_ladder(closed[-1], "trade")

    def position_opened(self, trade: TradeRecord) -> None:
        """A new position: it is what the operator must see, so a selected old trade lets go
        of the view and the chart follows the newest candle again."""
        self.open_trade = trade
        if self.selected is not None:
            self.selected = None
            self.chart.select_trade_markers(None)
            self.chart.follow_latest()
        self.chart.add_entry_marker(trade.entry_ts, trade.entry_price, trade.id)
        self._set_card(trade)
        self.chart.set_position(trade.entry_ts, trade.entry_price, trade.stop_price)
        self._show_trade_ladder(trade, "trade")

    def position_closed(self, trade: TradeRecord) -> None:
        self.open_trade = None
        self.last_closed = trade
        self.chart.clear_position()
        if trade.exit_ts is not None and trade.exit_price is not None:
            self.chart.add_exit_marker(trade.exit_ts, trade.exit_price,
                                       exit_marker_kind(trade.exit_reason, trade.pnl), trade.id)
        self._set_card(trade)
        if self.selected is None:
            self._show_trade_ladder(trade, "trade")

    def refresh_card(self, trade: TradeRecord) -> None:
        """The card's facts changed (e.g. the backtest's outcome became known)."""
        self._set_card(trade)

    def signal_seen(self, signal: SignalRecord) -> None:
        """A signal's decision. A skipped signal's ladder is dim, "not traded: REASON", and
        stops where the skip was decided: it is not live."""
        if signal.action != "SKIPPED":
            return
        self._skipped[signal.bar_ts] = signal.reason
        if len(self._skipped) > MAX_SKIPS_KEPT:
            del self._skipped[next(iter(self._skipped))]
        if self.ladder_source != "signal" or self._ladder_start != signal.bar_ts:
            return
        levels = _levels_from_dict(signal.fib_levels)
        if levels:
            end = max(signal.bar_ts + self.timeframe_ms, self.last_bar_ts or signal.bar_ts)
            self.chart.set_fib_ladder(levels, _target_ratio(levels, signal.target_price),
                                      signal.bar_ts, end, not_traded=signal.reason)

    def show_signal(self, signal: SignalRecord) -> None:
        """A signal picked in the Signals tab: its ladder (dim when skipped) and its bars."""
        levels = _levels_from_dict(signal.fib_levels)
        skipped = signal.reason if signal.action == "SKIPPED" else None
        end = signal.bar_ts + SIGNAL_FOCUS_BARS * self.timeframe_ms
        if levels:
            self.chart.set_fib_ladder(levels, _target_ratio(levels, signal.target_price),
                                      signal.bar_ts, end, not_traded=skipped)
            self.ladder_source = "selected"
            self._ladder_start = signal.bar_ts
        self.selected = None
        self.chart.select_trade_markers(None)
        self.chart.focus_range(signal.bar_ts - SIGNAL_FOCUS_BARS * self.timeframe_ms, end)

    def select_trade(self, trade: TradeRecord | None) -> None:
        """Show a trade picked in the table or on the chart, its markers ringed (None: back
        to the current trade and the newest candle)."""
        self.selected = trade
        self.chart.select_trade_markers(trade.id if trade is not None else None)
        if trade is None:
            current = self.open_trade or self.last_closed
            if current is not None:
                self._show_trade_ladder(current, "trade")
            else:
                self.chart.clear_fib_ladder()
                self.ladder_source = None
            self.chart.follow_latest()
            return
        self._show_trade_ladder(trade, "selected")
        end = trade.exit_ts if trade.exit_ts is not None else (self.last_bar_ts or trade.entry_ts)
        self.chart.focus_range(trade.signal_ts, end)

    # ----- internals ----------------------------------------------------------------------
    def _keep(self, decisions: Sequence[Decision]) -> None:
        cols = self._columns
        for d in decisions:
            b = d.bar
            for col, value in zip(cols, (b.ts, b.open, b.high, b.low, b.close, d.ema_fast,
                                         d.ema_slow, b.volume)):
                col.append(value)
        excess = len(cols[0]) - MAX_CANDLES
        if excess > 0:
            for col in cols:
                del col[:excess]

    def _rebuild(self, keep_view: bool) -> None:
        """One set_history call for everything kept; optionally restore zoom and following."""
        chart = self.chart
        following = chart.following
        (x0, x1) = chart.view.viewRange()[0] if keep_view else (0.0, 0.0)
        old_newest = self.last_bar_ts
        ts = np.asarray(self._columns[0], dtype=np.int64)
        o, h, l, c, ef, es, vol = (np.asarray(col, dtype=np.float64)
                                   for col in self._columns[1:])
        chart.set_history(ts, o, h, l, c, ef, es, vol)
        if not keep_view or old_newest is None or x1 <= x0:
            return
        if following:
            shift = (int(ts[-1]) - old_newest) / 1000.0
            chart.view.setXRange(x0 + shift, x1 + shift, padding=0.0)
        else:
            chart.view.setXRange(x0, x1, padding=0.0)
            chart.following = False
        chart.fit_y()

    def _add_markers(self, trade: TradeRecord) -> None:
        self.chart.add_entry_marker(trade.entry_ts, trade.entry_price, trade.id)
        if trade.exit_ts is not None and trade.exit_price is not None:
            self.chart.add_exit_marker(trade.exit_ts, trade.exit_price,
                                       exit_marker_kind(trade.exit_reason, trade.pnl), trade.id)
        self._set_card(trade)

    def _set_card(self, trade: TradeRecord) -> None:
        if trade.id is not None:
            self.chart.set_trade_card(trade.id, self.card(trade))

    def _show_trade_ladder(self, trade: TradeRecord, source: str) -> None:
        if trade.swing_high is None or trade.swing_low is None:
            self.chart.clear_fib_ladder()
            self.ladder_source = None
            return
        fib = levels_between(trade.swing_high, trade.swing_low)
        if fib is None:
            self.chart.clear_fib_ladder()
            self.ladder_source = None
            return
        end = trade.exit_ts if trade.status == "closed" else None
        self.chart.set_fib_ladder(list(zip(RATIOS, fib.prices)), trade.fib_target_level,
                                  trade.signal_ts, end)
        self.ladder_source = source
        self._ladder_start = trade.signal_ts

    def _show_signal_ladder(self, d: Decision) -> None:
        """The newest signal's ladder: live (open-ended, target emphasised) while its entry is
        pending, dim and cut off when it was skipped."""
        if d.fib is None:
            return
        levels = list(zip(RATIOS, d.fib.prices))
        skipped = self._skipped.get(d.bar.ts)
        end = None if skipped is None else d.bar.ts + self.timeframe_ms
        self.chart.set_fib_ladder(levels, _target_ratio(levels, d.target_price), d.bar.ts, end,
                                  not_traded=skipped)
        self.ladder_source = "signal"
        self._ladder_start = d.bar.ts


def _levels_from_dict(levels: dict[str, float] | None) -> list[tuple[float, float]]:
    if not levels:
        return []
    return sorted((float(ratio), price) for ratio, price in levels.items())


def _target_ratio(levels: Sequence[tuple[float, float]], target: float | None) -> float | None:
    """The ratio whose price is the decision's target (the target is computed from the same
    levels, so it matches one of them exactly up to rounding)."""
    if target is None:
        return None
    for ratio, price in levels:
        if math.isclose(price, target, rel_tol=1e-12, abs_tol=1e-12):
            return ratio
    return None
