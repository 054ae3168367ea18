"""Today's and all-time results from the store (so they survive restarts), and system health."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

from data.feed_health import is_stale
from persistence.records import Stats
from ui import theme
from ui.panels.form import ValuePanel
from ui.panels.style import format_duration, format_money, format_utc_ms, pnl_color

# "live" is the engine's feed state when all is well (a live or replayed feed past its
# catch-up); a degraded live feed reads "degraded (rest)", "down (reconnecting)", ...
HEALTHY = frozenset({"connected", "paper", "replaying", "running", "ok", "live"})
IDLE = frozenset({"finished", "stopped", "idle", "catching up"})


class StatsPanel(ValuePanel):
    """Formats a persistence.records.Stats and the engine's health fields."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Statistics", parent)
        self.currency = ""
        self.add_section("Today")
        for key, caption in (("today_trades", "Trades"), ("today_wl", "Wins / losses"),
                             ("today_win_rate", "Win rate"), ("today_pnl", "Realised PnL")):
            self.add_row(key, caption)
        self.add_section("All time")
        for key, caption in (("total_pnl", "Realised PnL"), ("total_trades", "Trades"),
                             ("win_rate", "Win rate"), ("max_dd", "Max drawdown"),
                             ("sharpe", "Sharpe (per trade)"), ("avg_duration", "Avg duration")):
            self.add_row(key, caption)
        self.add_section("System health")
        for key, caption in (("feed", "Data feed"), ("exchange", "Exchange"),
                             ("latency", "Latency"), ("last_update", "Last update")):
            self.add_row(key, caption)
        self.body.addStretch(1)

    def show_stats(self, stats: Stats, currency: str) -> None:
        self.currency = currency
        losses = stats.today_losses
        self.set("today_trades", str(stats.today_trades))
        self.set("today_wl", f"{stats.today_wins} / {losses}")
        self.set("today_win_rate", _rate(stats.today_win_rate))
        self.set("today_pnl", format_money(stats.today_pnl, currency),
                 color=pnl_color(stats.today_pnl), bold=True)
        self.set("total_pnl", format_money(stats.total_pnl, currency),
                 color=pnl_color(stats.total_pnl), bold=True)
        self.set("total_trades", str(stats.total_trades))
        self.set("win_rate", _rate(stats.win_rate))
        self.set("max_dd", f"{stats.max_drawdown_percent:.2f}%",
                 color=theme.DOWN if stats.max_drawdown_percent > 0 else None)
        self.set("sharpe", f"{stats.sharpe:.2f}" if stats.sharpe is not None else "—")
        avg = stats.avg_duration_minutes
        self.set("avg_duration", format_duration(avg * 60_000) if avg is not None else "—")

    def show_health(self, feed_state: str, exchange_state: str, latency_ms: float | None,
                    last_update_ts: int | None, now_ms: int | None, timeframe_ms: int) -> None:
        """A dot per link: green healthy, grey idle, red anything else. The last update (the
        close of the last closed candle) turns red when the feed claims to be healthy but that
        candle is stale: older than two timeframes (data.feed_health.is_stale, the feed's
        own rule)."""
        self.set("feed", f"● {feed_state}", color=_dot_color(feed_state))
        self.set("exchange", f"● {exchange_state}", color=_dot_color(exchange_state))
        self.set("latency", f"{latency_ms:.0f} ms" if latency_ms is not None else "—")
        stale = (now_ms is not None and feed_state in HEALTHY
                 and is_stale(last_update_ts, now_ms, timeframe_ms))
        self.set("last_update", format_utc_ms(last_update_ts) + (" (stale)" if stale else ""),
                 color=theme.DOWN if stale else None)


def _rate(value: float | None) -> str:
    return f"{value:.1f}%" if value is not None else "—"


def _dot_color(state: str) -> str:
    if state in HEALTHY:
        return theme.UP
    if state in IDLE:
        return theme.NEUTRAL
    return theme.DOWN
