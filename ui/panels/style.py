"""Window-level colours and text formats shared by the panels (the palette itself is ui.theme).

State colours follow the PRD: STOPPED red, STARTING yellow, RUNNING green, PAUSED orange,
HALTED/ERROR red and flashing. Money is signed and coloured green/red, never bare."""
from __future__ import annotations

import math
from datetime import UTC, datetime

from ui import theme
from ui.chart.format import format_price

YELLOW = "#FFEB3B"
ORANGE = "#FF9800"
BLUE = "#2196F3"
WARNING = ORANGE

RUN_STATE_COLORS: dict[str, str] = {
    "STOPPED": theme.DOWN,
    "STARTING": YELLOW,
    "RUNNING": theme.UP,
    "PAUSED": ORANGE,
    "HALTED": theme.DOWN,
    "ERROR": theme.DOWN,
}
FLASHING_STATES = frozenset({"HALTED", "ERROR"})

MODE_BADGES: dict[str, tuple[str, str]] = {   # mode -> (text, colour)
    "paper": ("PAPER", theme.UP),
    "testnet": ("TESTNET", BLUE),
    "live": ("LIVE", theme.DOWN),
}

LEVEL_COLORS: dict[int, str] = {   # logging level -> text colour in the log viewer
    10: theme.NEUTRAL,
    20: theme.TEXT,
    30: ORANGE,
    40: theme.DOWN,
    50: theme.DOWN,
}

__all__ = ["format_price", "format_money", "format_percent", "format_utc_ms", "format_duration",
           "pnl_color", "app_stylesheet", "split_pair"]


def pnl_color(value: float | None) -> str:
    """Green for a gain, red for a loss, the plain text colour for zero or unknown."""
    if value is None or value == 0 or math.isnan(value):
        return theme.TEXT
    return theme.UP if value > 0 else theme.DOWN


def format_money(value: float | None, currency: str = "", signed: bool = True) -> str:
    """"+1,234.56 USDT"; an em dash when unknown."""
    if value is None or math.isnan(value):
        return "—"
    text = f"{value:+,.2f}" if signed else f"{value:,.2f}"
    return f"{text} {currency}".rstrip()


def format_percent(value: float | None, signed: bool = True) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:+.2f}%" if signed else f"{value:.1f}%"


def format_utc_ms(ts_ms: int | None) -> str:
    """"2025-07-04 12:15 UTC" ("12:15:07" when not on a whole minute); the window shows every
    time in UTC, like the chart axis."""
    if ts_ms is None:
        return "—"
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC" if ts_ms % 60_000 == 0 else
                           "%Y-%m-%d %H:%M:%S UTC")


def format_utc_minute(ts_ms: int | None) -> str:
    """"2025-07-04 12:15": for table columns whose header already says UTC."""
    if ts_ms is None:
        return "—"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_duration(ms: float | None) -> str:
    """"2d 03h 15m", "3h 05m", "12m 30s"."""
    if ms is None or ms < 0:
        return "—"
    seconds = int(ms // 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"


def app_stylesheet() -> str:
    """The Dark Forest look for every standard widget of the window."""
    t = theme
    return f"""
QWidget {{ background-color: {t.BACKGROUND}; color: {t.TEXT}; }}
QMainWindow::separator, QSplitter::handle {{ background: {t.BORDER}; }}
QSplitter::handle:horizontal {{ width: 3px; }}
QSplitter::handle:vertical {{ height: 3px; }}
QFrame#panel {{ background-color: {t.SURFACE}; border: 1px solid {t.BORDER}; border-radius: 4px; }}
QFrame#panel QLabel, QWidget#panelRows {{ background: transparent; }}
QLabel[role="caption"] {{ color: {t.TEXT_SECONDARY}; }}
QLabel[role="title"] {{ color: {t.TEXT_SECONDARY}; font-weight: bold; }}
QPushButton {{ background-color: {t.SURFACE}; border: 1px solid {t.BORDER}; border-radius: 4px;
    padding: 4px 9px; }}
QPushButton:hover {{ border-color: {t.ACCENT}; }}
QPushButton:disabled {{ color: #5d7a63; border-color: #23402a; }}
QPushButton#emergencyButton {{ background-color: #7f1d1d; border: 1px solid {t.DOWN};
    font-weight: bold; }}
QPushButton#emergencyButton:hover {{ background-color: #a82020; }}
QPushButton#emergencyButton:disabled {{ background-color: #3a1f1f; color: #8a6a6a; }}
QLineEdit, QPlainTextEdit, QTableWidget {{ background-color: #0b140e; border: 1px solid {t.BORDER};
    selection-background-color: #2f5c39; }}
QHeaderView::section {{ background-color: {t.SURFACE}; color: {t.TEXT_SECONDARY};
    border: 0; border-right: 1px solid {t.BORDER}; padding: 3px; }}
QTabWidget::pane {{ border: 1px solid {t.BORDER}; }}
QTabBar::tab {{ background: {t.SURFACE}; color: {t.TEXT_SECONDARY}; padding: 5px 14px;
    border: 1px solid {t.BORDER}; }}
QTabBar::tab:selected {{ color: {t.TEXT}; border-bottom: 2px solid {t.ACCENT}; }}
QMenuBar, QMenu {{ background-color: {t.SURFACE}; }}
QMenu::item:selected, QMenuBar::item:selected {{ background-color: {t.BORDER}; }}
QCheckBox::indicator {{ width: 13px; height: 13px; }}
QToolTip {{ background-color: {t.SURFACE}; color: {t.TEXT}; border: 1px solid {t.BORDER}; }}
"""


def split_pair(pair: str) -> tuple[str, str]:
    """"BTC/USDT" -> ("BTC", "USDT"); a pair without a slash keeps its name as the base."""
    base, sep, quote = pair.partition("/")
    return (base, quote.split(":")[0]) if sep else (pair, "")
