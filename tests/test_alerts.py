"""Alerts and remote control: the queue never blocks, storms are coalesced, Telegram against a
local fake Bot API, commands only from the configured chat, engine events become alerts."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.alert_bridge import AlertBridge, RemoteControl, TelegramService, daily_summary_alert
from monitoring.alerts import Alert, AlertLogHandler, AlertService
from monitoring.redaction import forget_secrets
from monitoring.telegram import TelegramChannel, parse_command

from .conftest import ACTIVE, make_config
from .fake_telegram import FakeBotApi

TOKEN = "123456789:AAFakeTokenForTestsOnly0123456789ab"
CHAT = 4242
STRANGER = 6666


class Recorder:
    name = "recorder"

    def __init__(self, delay_s: float = 0.0, fail: int = 0) -> None:
        self.texts: list[str] = []
        self.delay_s = delay_s
        self.fail = fail

    async def send(self, text: str) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("telegram unreachable")
        self.texts.append(text)


async def settle(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_send_never_waits_for_a_slow_channel_and_delivers_in_order():
    slow = Recorder(delay_s=0.3)
    alerts = AlertService([slow], mode="paper", dedup_window_s=0, send_timeout_s=2)
    await alerts.start()
    t0 = time.perf_counter()
    for i in range(5):
        alerts.send(Alert("INFO", f"alert {i}"))
    assert time.perf_counter() - t0 < 0.01
    await settle(lambda: len(slow.texts) == 5, 5)
    assert [t.split("alert ")[1] for t in slow.texts] == ["0", "1", "2", "3", "4"]
    assert all(t.startswith("[PAPER]") for t in slow.texts)
    await alerts.stop()


async def test_a_hanging_channel_times_out_and_a_failing_one_is_retried():
    hanging, flaky = Recorder(delay_s=30), Recorder(fail=1)
    alerts = AlertService([hanging, flaky], dedup_window_s=0, send_timeout_s=0.1, retries=1, retry_delay_s=0.01)
    await alerts.start()
    alerts.send(Alert("ERROR", "feed lost"))
    await settle(lambda: flaky.texts, 3)
    assert "feed lost" in flaky.texts[0] and hanging.texts == []
    await alerts.stop()


async def test_repeats_are_counted_not_sent_and_storms_are_coalesced():
    now = [0.0]
    rec = Recorder()
    alerts = AlertService([rec], dedup_window_s=60, max_per_minute=3, clock=lambda: now[0])
    for _ in range(4):
        alerts.send(Alert("ERROR", "exchange timeout"))
    now[0] = 61
    alerts.send(Alert("ERROR", "exchange timeout"))
    await alerts.start()
    await settle(lambda: len(rec.texts) == 2)
    assert "repeated 3 more times" in rec.texts[1]
    for i in range(6):
        alerts.send(Alert("WARNING", f"storm {i}"))
    await settle(lambda: len(rec.texts) == 3)
    await asyncio.sleep(0.1)
    assert len(rec.texts) == 3                        # budget of 3 a minute spent
    now[0] = 200                                      # a minute later: one summary of the rest
    await settle(lambda: len(rec.texts) == 4, 3)
    assert "5 alerts held back by the rate limit" in rec.texts[3] and "storm 5" in rec.texts[3]
    await alerts.stop()


async def test_error_log_records_become_alerts_but_channel_failures_do_not_loop():
    rec = Recorder()
    alerts = AlertService([rec], dedup_window_s=0)
    handler = AlertLogHandler(alerts)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        await alerts.start()
        logging.getLogger("agent.engine").error("order E1 outcome unknown")
        logging.getLogger("agent.engine").warning("just a warning")
        logging.getLogger("monitoring.alerts").error("channel failed")
        await settle(lambda: rec.texts)
        await asyncio.sleep(0.05)
        assert len(rec.texts) == 1 and "order E1 outcome unknown" in rec.texts[0]
    finally:
        root.removeHandler(handler)
        await alerts.stop()


def test_parse_command():
    assert parse_command("/stop@fake_bot Confirm") == ("stop", ("confirm",))
    assert parse_command("hello") is None and parse_command("/") is None


# ----- the engine's events ------------------------------------------------------------------
async def test_engine_events_become_alerts_fills_halts_and_start(tmp_path, sample_csv):
    from agent.session import replay_session

    rec = Recorder()
    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, None)
    alerts = AlertService([rec], mode=engine.venue.mode, dedup_window_s=0, max_per_minute=10_000)
    bridge = AlertBridge(engine, alerts)
    await alerts.start()
    await bridge.start()
    await engine.start()
    await engine.wait_finished()
    await engine.emergency_stop()
    await settle(lambda: any("EMERGENCY STOP" in t for t in rec.texts), 10)
    await bridge.stop()
    await alerts.stop(5)
    text = "\n".join(rec.texts)
    assert "Agent started" in text and "Entry filled: BTC/USDT" in text and "Exit filled: BTC/USDT" in text
    assert "PnL" in text and text.count("[PAPER]") == len(rec.texts)
    assert "EMERGENCY STOP: trading HALTED" in text and "clear-halt" in text

    trades = engine.store.closed_trades()
    day_ms = trades[-1].exit_ts
    summary = alerts.format(daily_summary_alert(engine, day_ms))
    today = [t for t in trades if t.exit_ts // 86_400_000 == day_ms // 86_400_000]
    assert f"trades {len(today)}" in summary and f"all time: {len(trades)} trades" in summary
    assert f"PnL {sum(t.pnl for t in today):+.2f} USDT" in summary
    await engine.stop()


async def test_daily_loss_halt_is_named_as_the_kill_switch(tmp_path, sample_csv):
    from agent.events import EngineStateChanged
    from agent.session import replay_session

    rec = Recorder()
    engine = replay_session(make_config(), tmp_path, sample_csv, None)
    alerts = AlertService([rec], dedup_window_s=0)
    bridge = AlertBridge(engine, alerts)
    bridge.on_event(EngineStateChanged("RUNNING", "MONITORING", None, 0))
    bridge.on_event(EngineStateChanged("HALTED", "IN_POSITION", "daily loss limit of 5.0% reached on 2024-01-02", 0))
    await alerts.start()
    await settle(lambda: len(rec.texts) == 2)
    assert "DAILY-LOSS KILL SWITCH" in rec.texts[1] and "5.0%" in rec.texts[1]
    await alerts.stop()
    await engine.stop()


# ----- Telegram end to end against the fake Bot API ------------------------------------------
@pytest.fixture
async def fake_api():
    api = FakeBotApi(TOKEN)
    await api.start()
    yield api
    await api.stop()
    forget_secrets()


async def test_telegram_alerts_and_commands_from_the_configured_chat_only(tmp_path, sample_csv, fake_api, caplog):
    from agent.session import replay_session

    caplog.set_level(logging.INFO)
    engine = replay_session(make_config(), tmp_path, sample_csv, 30.0)
    channel = TelegramChannel(TOKEN, str(CHAT), base_url=fake_api.base_url, poll_timeout_s=1, trust_env=False)
    service = TelegramService(engine, channel, AlertService([channel], mode="paper", dedup_window_s=0))
    await service.start()
    await engine.start()
    try:
        await fake_api.wait_for(lambda t: "Agent started" in t)
        fake_api.user_says(STRANGER, "/pause", username="mallory")
        fake_api.user_says(CHAT, "/status")
        await fake_api.wait_for(lambda t: t.startswith("RUNNING PAPER"))
        assert engine.run_state == "RUNNING"             # the stranger's /pause was ignored
        assert not fake_api.texts(STRANGER)
        assert any("ignored a message from chat 6666" in r.getMessage() for r in caplog.records)
        fake_api.user_says(CHAT, "/pause")
        await fake_api.wait_for(lambda t: t.startswith("paused: no new entries"))
        assert engine.run_state == "PAUSED"
        fake_api.user_says(CHAT, "/resume")
        await fake_api.wait_for(lambda t: t.startswith("resumed"))
        assert engine.run_state == "RUNNING"
        fake_api.user_says(CHAT, "/stop confirm")      # no /stop before: refused
        await fake_api.wait_for(lambda t: "no emergency stop is waiting" in t)
        fake_api.user_says(CHAT, "/stop")
        await fake_api.wait_for(lambda t: "Send /stop confirm within 60 s" in t)
        assert engine.run_state == "RUNNING"
        fake_api.user_says(CHAT, "/stop confirm")
        await fake_api.wait_for(lambda t: t.startswith("EMERGENCY STOP done: HALTED"))
        await fake_api.wait_for(lambda t: "EMERGENCY STOP: trading HALTED" in t)
        assert engine.run_state == "HALTED"
        fake_api.user_says(CHAT, "/balance")
        await fake_api.wait_for(lambda t: t.startswith("cash "))
        fake_api.user_says(CHAT, "/help")
        await fake_api.wait_for(lambda t: "/stop - EMERGENCY STOP" in t)
    finally:
        await engine.stop()
        await service.stop()
    assert all(str(m["chat_id"]) == str(CHAT) for m in fake_api.sent)
    assert TOKEN not in caplog.text


async def test_remote_control_confirmation_expires():
    class E:
        run_state = "RUNNING"
        stopped = False

        def status(self):
            class S:
                open_trade = None
            return S()

        async def emergency_stop(self):
            self.stopped = True

    now = [0.0]
    engine = E()
    rc = RemoteControl(engine, clock=lambda: now[0])
    from monitoring.telegram import Command

    await rc.handle(Command("stop", (), "1", "op"))
    now[0] = 61
    answer = await rc.handle(Command("stop", ("confirm",), "1", "op"))
    assert "send /stop first" in answer and not engine.stopped
    await rc.handle(Command("emergency_stop", (), "1", "op"))
    now[0] = 100
    await rc.handle(Command("stop", ("confirm",), "1", "op"))
    assert engine.stopped
