"""System health and the empty chart speak from the engine's own state: a live feed is green,
a candle older than two timeframes is stale, and an empty chart says what it waits for."""
from __future__ import annotations

import dataclasses

import pytest

from ui import theme
from ui.panels.stats import StatsPanel
from window_helpers import until

pytestmark = pytest.mark.gui
T0 = 1_704_067_200_000
M15 = 900_000


@pytest.fixture
def panel(qtbot) -> StatsPanel:
    p = StatsPanel()
    qtbot.addWidget(p)
    return p


def _color(panel: StatsPanel, key: str) -> str:
    return panel._values[key].styleSheet()


def test_a_live_feed_shows_a_green_dot(panel):
    panel.show_health("live", "paper", None, T0, T0 + M15, M15)
    assert panel.text("feed") == "● live"
    assert theme.UP in _color(panel, "feed") and theme.DOWN not in _color(panel, "feed")


def test_a_degraded_live_feed_shows_a_red_dot(panel):
    panel.show_health("degraded (rest)", "testnet", 80.0, T0, T0, M15)
    assert theme.DOWN in _color(panel, "feed")


def test_a_candle_two_timeframes_old_is_not_yet_stale(panel):
    panel.show_health("live", "paper", None, T0, T0 + 2 * M15, M15)
    assert theme.DOWN not in _color(panel, "last_update")
    assert "stale" not in panel.text("last_update")


def test_a_candle_older_than_two_timeframes_is_stale(panel):
    panel.show_health("live", "paper", None, T0, T0 + 2 * M15 + 1, M15)
    assert theme.DOWN in _color(panel, "last_update")
    assert panel.text("last_update").endswith("(stale)")


def test_staleness_follows_the_timeframe(panel):
    """A 1-hour feed's last candle 40 minutes old is normal (the old 2-minute rule said stale)."""
    panel.show_health("live", "paper", None, T0, T0 + 40 * 60_000, 60 * 60_000)
    assert theme.DOWN not in _color(panel, "last_update")


def test_a_stopped_feed_is_never_called_stale(panel):
    panel.show_health("stopped", "paper", None, T0, T0 + 100 * M15, M15)
    assert theme.DOWN not in _color(panel, "last_update")
    assert theme.NEUTRAL in _color(panel, "feed")


async def test_the_window_shows_a_running_replay_feed_in_green(window):
    await window.start_engine()
    await until(lambda: window.engine.status().feed_state == "live", "the feed is live")
    window.refresh()
    assert window.stats_panel.text("feed") == "● live"
    assert theme.UP in _color(window.stats_panel, "feed")


async def test_an_empty_chart_says_the_stopped_engine_waits_for_start(window):
    window.refresh()
    assert window.chart.placeholder.isVisible()
    assert window.chart.placeholder.text() == "Waiting for data: the engine is STOPPED (press Start)"


async def test_an_empty_chart_counts_the_warm_up_bars(window, monkeypatch):
    engine = window.engine
    status = dataclasses.replace(engine.status(), feed_state="catching up", run_state="RUNNING")
    monkeypatch.setattr(engine, "status", lambda: status)
    monkeypatch.setattr(engine, "history", lambda: [None] * 120)
    window.refresh()
    wanted = engine.params.warmup_bars()
    assert window.chart.placeholder.text() == \
        f"Warming up the indicators (120 of {wanted:,} bars)"


async def test_the_placeholder_goes_once_candles_arrive(window):
    await window.start_engine()
    await until(lambda: window.chart.candle_count() > 0, "candles")
    window.refresh()
    assert not window.chart.placeholder.isVisible()
