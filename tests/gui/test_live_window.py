"""The window over a LIVE market session (LiveFeed on a fake exchange with a virtual clock, paper
venue): what a trader sees between starting the agent and the first live candle close."""
from __future__ import annotations

import pytest

from agent.session import live_paper_session
from data.sample import generate_sample
from tests.conftest import ACTIVE, make_config
from tests.fake_exchange import EngineClock, FakeExchange, VirtualClock
from window_helpers import until

pytestmark = pytest.mark.gui
START_BAR = 3985


@pytest.fixture
async def live_window(tmp_path):
    from ui.main_window import MainWindow

    bars = generate_sample()
    clock = VirtualClock(bars[START_BAR].ts + 120_000)     # two minutes into a 15m bar
    engine = live_paper_session(make_config(**ACTIVE), tmp_path / "data", FakeExchange(clock, bars),
                                feed_clock=clock, engine_clock=EngineClock(clock))
    window = MainWindow(engine)
    window.show()
    yield window, clock, bars
    window.shutdown_now()
    await window.wait_closed()
    await engine.source.feed.close()


async def test_the_chart_shows_the_warm_up_history_before_the_first_live_close(live_window):
    window, clock, bars = live_window
    await window.start_engine()
    await clock.advance(60)                                # live, the current bar still open
    await until(lambda: window.engine.status().feed_state == "live", "the feed is live")
    window.bridge.drain()                                  # as the screen-rate timer does
    window.refresh()                                       # as the 1 s timer does
    history = window.engine.history()
    assert history and history[-1].bar.ts == bars[START_BAR - 1].ts
    assert window.chart.candle_count() >= len(history), "the chart shows what the engine warmed on"
    assert window.chart_sync.last_bar_ts == bars[START_BAR - 1].ts
    await clock.advance(900)                               # the bar closes live: it follows on
    await until(lambda: window.bridge.pending == 0, "events delivered")
    window.bridge.drain()
    assert window.chart_sync.last_bar_ts == bars[START_BAR].ts
