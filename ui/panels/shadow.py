"""The backtest shadow in the window: for every trade, what the backtest app itself would have
done with the same signal on the same bars (agent.backtest_shadow), the difference in bps and
its cause (agent.shadow_compare), and the PRD's "live vs backtest" review per UTC month
(agent.shadow_review: win rate, average R and trade count; over 20% degradation is worth
watching, over 50% an alert).

ShadowTracker holds no Qt: it keeps a ShadowBook fed with the engine's per-bar Decisions (the
same ones the chart draws), so a comparison costs only the shadow trade's own bars.
ShadowPanel is the "vs Backtest" tab.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from agent.backtest_shadow import ShadowBook
from agent.shadow_compare import Cause, ShadowComparison, compare_skipped, compare_trade
from agent.shadow_review import (ALERT_DEGRADATION, NORMAL_DEGRADATION, Level, PeriodReview,
                                 monthly_reviews, review_period)
from agent.strategy import Decision, StrategyParams
from persistence.records import SignalRecord, TradeRecord
from ui import theme
from ui.panels.shadow_cell import ShadowCell
from ui.panels.style import format_price, format_utc_minute, format_utc_ms

LEVEL_COLORS = {Level.NORMAL: theme.UP, Level.WATCH: theme.GOLD, Level.ALERT: theme.DOWN,
                Level.NO_DATA: theme.NEUTRAL}


class ShadowTracker:
    """The backtest's decisions over the bars the engine has seen (see the module doc)."""

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self.book = ShadowBook(params)

    def seed(self, history: Sequence[Decision]) -> None:
        """Start again from the engine's history (oldest first)."""
        self.book = ShadowBook(self.params, capacity=max(4096, len(history)))
        self.add(history)

    def add(self, decisions: Sequence[Decision]) -> None:
        """Closed bars newer than the newest one kept (older ones are already in)."""
        book = self.book
        last = int(book.series().ts[-1]) if len(book) else None
        for d in decisions:
            if last is None or d.bar.ts > last:
                book.append(d)
                last = d.bar.ts

    def compare(self, trade: TradeRecord) -> ShadowComparison:
        return compare_trade(self.book.series(), trade, self.book.shadow(trade.signal_ts),
                             self.params)

    def compare_skipped(self, signal: SignalRecord) -> ShadowComparison:
        return compare_skipped(signal, self.book.shadow(signal.bar_ts))

    def reviews(self, trades: Sequence[TradeRecord]) -> list[PeriodReview]:
        """One review per UTC month covered by the bars, newest first."""
        series = self.book.series()
        if not len(series):
            return []
        backtest = self.book.trades()
        months = monthly_reviews(trades, backtest, int(series.ts[0]), int(series.ts[-1]))
        return list(reversed(months))

    def overall(self, trades: Sequence[TradeRecord]) -> PeriodReview | None:
        """The review over every bar kept (the whole replay, or the last 50,000 bars)."""
        series = self.book.series()
        if not len(series):
            return None
        return review_period(trades, self.book.trades(), int(series.ts[0]),
                             int(series.ts[-1]) + 1)


def shadow_cell(c: ShadowComparison) -> ShadowCell:
    """"+3.2 bps" (agent minus backtest PnL, bps of the backtest's entry), the cause and both
    outcomes in the tooltip."""
    sh = c.shadow
    lines = [f"Cause: {c.cause.value}", c.detail]
    if sh is not None:
        back = ("still open" if sh.reason is None else
                f"{sh.reason} at {format_price(sh.exit_price)} on {format_utc_ms(sh.exit_ts)} "
                f"after {sh.bars_held} bars, PnL {sh.pnl_percent:+.2f}%")
        lines.append(f"Backtest: entry {format_price(sh.entry)}, exit {back}")
    t = c.trade
    if t is not None and t.exit_price is not None:
        lines.append(f"Agent: entry {format_price(t.entry_price)}, exit {t.exit_reason} at "
                     f"{format_price(t.exit_price)}, PnL {t.pnl_percent or 0.0:+.2f}%")
    if c.exit_diff_bps is not None:
        lines.append(f"Exit price vs backtest: {c.exit_diff_bps:+.1f} bps")
    tooltip = "\n".join(lines)
    if c.pnl_diff_bps is None:
        return ShadowCell(f"— {c.cause.value}", tooltip, None, theme.NEUTRAL)
    color = theme.NEUTRAL if c.cause is Cause.SAME else (
        theme.UP if c.pnl_diff_bps >= 0 else theme.DOWN)
    return ShadowCell(f"{c.pnl_diff_bps:+.1f} bps", tooltip, c.pnl_diff_bps, color)


def shadow_short(c: ShadowComparison) -> str:
    """One line for a trade's hover card."""
    if c.pnl_diff_bps is None:
        return c.cause.value
    return f"{c.pnl_diff_bps:+.1f} bps vs backtest ({c.cause.value})"


REVIEW_COLUMNS = ("Month (UTC)", "Trades agent / backtest", "Win rate agent / backtest",
                  "Avg R agent / backtest", "Verdict")
COMPARE_COLUMNS = ("Signal (UTC)", "Agent", "Backtest", "Diff", "Cause")


class ShadowPanel(QWidget):
    """The "vs Backtest" tab: the review of each month, then one row per signal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shadowPanel")
        self.headline = QLabel("No trades to compare yet")
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.PlainText)
        self.headline.setToolTip(
            "The backtest app's own decision for each signal, on the same bars and rules "
            f"(STRATEGY.md). Degradation up to {NORMAL_DEGRADATION:.0%} is normal, over "
            f"{ALERT_DEGRADATION:.0%} is an alert (PRD).")
        self.reviews = _table(REVIEW_COLUMNS)
        self.comparisons = _table(COMPARE_COLUMNS)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.headline)
        layout.addWidget(self.reviews, 1)
        layout.addWidget(self.comparisons, 2)

    def show_reviews(self, reviews: Sequence[PeriodReview], overall: PeriodReview | None) -> None:
        """Newest month first; the headline is the verdict over every bar."""
        self.reviews.setRowCount(len(reviews))
        for row, r in enumerate(reviews):
            a, b = r.agent, r.backtest
            cells = (_month(r.start_ts), f"{a.trades} / {b.trades}",
                     f"{_pct(a.win_rate)} / {_pct(b.win_rate)}",
                     f"{_r(a.avg_r)} / {_r(b.avg_r)}", _verdict(r))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == len(cells) - 1:
                    item.setForeground(QColor(LEVEL_COLORS[r.level]))
                    item.setToolTip("\n".join(
                        f"{c.metric}: agent {_num(c.agent)}, backtest {_num(c.backtest)}, "
                        f"degradation {_deg(c.degradation)} ({c.level.value})" for c in r.checks))
                self.reviews.setItem(row, column, item)
        self.reviews.resizeColumnsToContents()
        if overall is not None:
            self.headline.setText(f"Live vs backtest, {overall.summary()}")
            self.headline.setStyleSheet(f"color: {LEVEL_COLORS[overall.level]};")
        else:
            self.headline.setText("No trades to compare yet")
            self.headline.setStyleSheet("")

    def show_comparisons(self, comparisons: Sequence[ShadowComparison]) -> None:
        """Newest signal first."""
        rows = sorted(comparisons, key=lambda c: c.signal_ts, reverse=True)
        self.comparisons.setRowCount(len(rows))
        for row, c in enumerate(rows):
            cell = shadow_cell(c)
            t, sh = c.trade, c.shadow
            agent = (f"skipped: {c.skip_reason}" if t is None else
                     "open" if t.exit_price is None else
                     f"{t.exit_reason} {format_price(t.exit_price)} {t.pnl_percent or 0.0:+.2f}%")
            back = ("—" if sh is None else "open" if sh.reason is None else
                    f"{sh.reason} {format_price(sh.exit_price)} {sh.pnl_percent:+.2f}%")
            for column, text in enumerate((format_utc_minute(c.signal_ts), agent, back, cell.text,
                                           c.cause.value)):
                item = QTableWidgetItem(text)
                item.setToolTip(cell.tooltip)
                if column == 3 and cell.color:
                    item.setForeground(QColor(cell.color))
                self.comparisons.setItem(row, column, item)
        self.comparisons.resizeColumnsToContents()


def _table(columns: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setShowGrid(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _verdict(r: PeriodReview) -> str:
    worst = max(r.checks, key=lambda c: -1.0 if c.degradation is None else c.degradation)
    text = r.level.value.upper() if r.level is Level.ALERT else r.level.value
    return text if worst.degradation is None else f"{text} ({worst.metric} {_deg(worst.degradation)})"


def _month(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0f}%"


def _r(x: float | None) -> str:
    return "—" if x is None else f"{x:+.2f}R"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _deg(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.0f}%"
