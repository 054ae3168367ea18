"""Performance at a glance: the realised equity curve with its drawdowns shaded, one bar of
realised PnL per UTC day, and the operating KPIs of the last 24 hours (a crossed threshold in
red, as `status` and the alerts say it). Built from what the store holds, so it is the same
after a restart; an open position is not in it (its unrealised PnL is in the Position panel)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from monitoring.kpis import KpiReport
from persistence.records import TradeRecord
from ui import theme
from ui.chart.axes import PriceAxis, UtcTimeAxis
from ui.panels.style import format_money, format_percent

DAY_S = 86_400
KPI_WIDTH = 340


@dataclass(frozen=True, slots=True)
class EquityCurve:
    ts_s: np.ndarray          # the start, then each exit time (Unix seconds)
    equity: np.ndarray        # realised equity after each exit
    peak: np.ndarray          # running maximum of equity

    @property
    def max_drawdown_percent(self) -> float:
        if self.equity.shape[0] == 0:
            return 0.0
        return float(np.max((self.peak - self.equity) / self.peak) * 100.0)


def equity_curve(trades: Sequence[TradeRecord], initial: float) -> EquityCurve:
    """Realised equity from `initial`, stepping at every closed trade's exit (oldest first)."""
    closed = sorted((t for t in trades if t.exit_ts is not None and t.pnl is not None),
                    key=lambda t: t.exit_ts)
    if not closed:
        return EquityCurve(np.empty(0), np.empty(0), np.empty(0))
    ts = np.array([closed[0].entry_ts] + [t.exit_ts for t in closed], dtype=np.float64) / 1000.0
    equity = initial + np.concatenate(([0.0], np.cumsum([t.pnl for t in closed])))
    return EquityCurve(ts, equity, np.maximum.accumulate(equity))


def daily_pnl(trades: Sequence[TradeRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(UTC day start in seconds, realised PnL of the trades that closed that day)."""
    days: dict[int, float] = {}
    for t in trades:
        if t.exit_ts is None or t.pnl is None:
            continue
        day = t.exit_ts // 1000 // DAY_S * DAY_S
        days[day] = days.get(day, 0.0) + t.pnl
    keys = sorted(days)
    return np.array(keys, dtype=np.float64), np.array([days[k] for k in keys])


def _plot(parent: QWidget) -> pg.PlotWidget:
    axes = {"bottom": UtcTimeAxis(), "right": PriceAxis("right")}
    for axis in axes.values():
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.TEXT_SECONDARY))
    widget = pg.PlotWidget(parent, background=theme.BACKGROUND, axisItems=axes)
    plot = widget.getPlotItem()
    plot.hideAxis("left")
    plot.showAxis("right")
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.showGrid(x=False, y=True, alpha=0.15)
    return widget


class PerformancePanel(QWidget):
    """Equity curve (drawdowns shaded red) over daily PnL bars (green gain, red loss)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("performancePanel")
        self.summary = QLabel("No closed trades yet")
        self.summary.setObjectName("performanceSummary")
        self.summary.setStyleSheet(f"color: {theme.TEXT_SECONDARY};")
        self.summary.setWordWrap(True)           # a long summary must not widen the window
        self.equity_widget = _plot(self)
        self.daily_widget = _plot(self)
        self.daily_widget.setXLink(self.equity_widget)
        eq = self.equity_widget.getPlotItem()
        self.peak_item = eq.plot(pen=pg.mkPen(theme.DOWN, width=1))
        self.equity_item = eq.plot(pen=pg.mkPen(theme.ACCENT, width=2))
        shade = pg.mkColor(theme.DOWN)
        shade.setAlpha(70)
        self.drawdown_fill = pg.FillBetweenItem(self.peak_item, self.equity_item, brush=shade)
        eq.addItem(self.drawdown_fill)
        self.daily_bars = pg.BarGraphItem(x=[], height=[], width=DAY_S * 0.8)
        self.daily_widget.getPlotItem().addItem(self.daily_bars)
        self.curve = equity_curve([], 0.0)
        self.kpis = QLabel("Operating KPIs: none yet")
        self.kpis.setObjectName("performanceKpis")
        self.kpis.setWordWrap(True)
        self.kpis.setTextFormat(Qt.TextFormat.RichText)
        self.kpis.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.kpis.setMaximumWidth(KPI_WIDTH)
        self.kpi_report = KpiReport()
        plots = QVBoxLayout()
        plots.setSpacing(2)
        plots.addWidget(self.summary)
        plots.addWidget(self.equity_widget, 3)
        plots.addWidget(self.daily_widget, 2)
        layout = QHBoxLayout(self)                 # the KPIs beside the plots: they keep their height
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(plots, 1)
        layout.addWidget(self.kpis)

    def set_trades(self, trades: Sequence[TradeRecord], initial: float, currency: str) -> None:
        self.curve = curve = equity_curve(trades, initial)
        if curve.ts_s.shape[0] == 0:
            self.summary.setText("No closed trades yet")
            for item in (self.equity_item, self.peak_item):
                item.setData([], [])
            self.daily_bars.setOpts(x=[], height=[])
            return
        self.equity_item.setData(curve.ts_s, curve.equity, stepMode=None)
        self.peak_item.setData(curve.ts_s, curve.peak)
        days, pnl = daily_pnl(trades)
        brushes = [pg.mkBrush(theme.UP if v >= 0 else theme.DOWN) for v in pnl]
        pens = [pg.mkPen(theme.UP if v >= 0 else theme.DOWN) for v in pnl]
        self.daily_bars.setOpts(x=days + DAY_S / 2, height=pnl, brushes=brushes, pens=pens)
        total = float(curve.equity[-1] - initial)
        self.summary.setText(
            f"Realised equity {format_money(curve.equity[-1], currency, signed=False)} "
            f"({format_money(total, currency)}, {format_percent(total / initial * 100)}) · "
            f"max drawdown {curve.max_drawdown_percent:.2f}% · {len(days)} trading days")
        self.equity_widget.getPlotItem().enableAutoRange()
        self.daily_widget.getPlotItem().enableAutoRange()

    def set_kpis(self, report: KpiReport) -> None:
        """The operating KPIs (last 24 hours), one line each; a crossed threshold in red."""
        if report == self.kpi_report:
            return
        self.kpi_report = report
        lines = []
        for kpi in report.kpis:
            color = theme.DOWN if kpi.breached else theme.TEXT_SECONDARY
            flag = f" &mdash; WARNING: {escape(kpi.threshold)}" if kpi.breached else ""
            lines.append(f'<span style="color:{color}">{escape(kpi.label)}: {escape(kpi.text)}{flag}</span>')
        self.kpis.setText("<b>Last 24 hours</b><br>" + "<br>".join(lines))
