"""Email, the backup alert channel: settings from the environment, ERROR/CRITICAL only, sent off
the engine's loop, against a local SMTP server (aiosmtpd); KPI warnings and the daily summary."""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from agent.alert_bridge import AlertBridge, daily_summary_alert, headless_services
from agent.events import SignalSeen
from monitoring.alerts import Alert, AlertService
from monitoring.mail import EmailChannel, EmailSettings, EmailSettingsError
from monitoring.redaction import forget_secrets, redact
from persistence.records import SignalRecord

from .conftest import ACTIVE, make_config

PASSWORD = "smtp-canary-Pw-7f3a9c2e81"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"agent" \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()
    forget_secrets()


def _env(port: int, **more) -> dict[str, str]:
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USER": "agent",
           "SMTP_PASSWORD": PASSWORD, "ALERT_EMAIL_TO": "me@example.org, backup@example.org",
           "SMTP_STARTTLS": "false"}
    env.update(more)
    return env


async def _settle(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_settings_from_the_environment():
    assert EmailSettings.from_env({}) is None
    with pytest.raises(EmailSettingsError, match="ALERT_EMAIL_TO"):
        EmailSettings.from_env({"SMTP_HOST": "mail.example.org"})
    with pytest.raises(EmailSettingsError, match="SMTP_PORT"):
        EmailSettings.from_env({"SMTP_HOST": "h", "SMTP_PORT": "smtp", "ALERT_EMAIL_TO": "a@b"})
    s = EmailSettings.from_env(_env(2525, SMTP_STARTTLS="yes"))
    assert s.to == ("me@example.org", "backup@example.org") and s.starttls and s.user == "agent"
    assert s.sender == "trading-agent@" + socket.gethostname()
    assert PASSWORD not in repr(s) and PASSWORD not in s.describe()
    assert redact(f"auth failed with {PASSWORD}") == "auth failed with ***"   # registered
    forget_secrets()


def test_the_password_can_come_from_systemd_credentials(tmp_path):
    (tmp_path / "SMTP_PASSWORD").write_text(PASSWORD + "\n")
    env = _env(25)
    del env["SMTP_PASSWORD"]
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    assert EmailSettings.from_env(env).password == PASSWORD
    forget_secrets()


async def test_errors_and_critical_alerts_are_emailed_with_auth_info_and_warnings_are_not(smtp):
    email = EmailChannel(EmailSettings.from_env(_env(smtp.port)))
    alerts = AlertService([email], mode="live", dedup_window_s=0)
    await alerts.start()
    for level in ("INFO", "WARNING", "ERROR", "CRITICAL"):
        alerts.send(Alert(level, f"{level} title", f"body mentions {PASSWORD}"))
    await _settle(lambda: len(smtp.messages) == 2 and email.sent == 2)   # the server sees DATA before the client counts it
    await alerts.stop()
    subjects = [m["Subject"] for m in smtp.messages]
    assert subjects[0].startswith("trading-agent: [LIVE]") and "ERROR title" in subjects[0]
    assert "CRITICAL title" in subjects[1]
    assert smtp.envelopes[0].rcpt_tos == ["me@example.org", "backup@example.org"]
    body = smtp.messages[0].get_content()
    assert "body mentions ***" in body and PASSWORD not in body
    assert email.sent == 2


async def test_a_wrong_password_fails_the_send_without_echoing_it(smtp, caplog):
    caplog.set_level(logging.WARNING)
    settings = EmailSettings.from_env(_env(smtp.port, SMTP_PASSWORD="wrong-password-123456"))
    alerts = AlertService([EmailChannel(settings)], retries=0, send_timeout_s=5)
    await alerts.start()
    alerts.send(Alert("CRITICAL", "halted"))
    await _settle(lambda: any("email failed" in r.getMessage() or "alert channel email failed"
                              in r.getMessage() for r in caplog.records))
    await alerts.stop()
    assert smtp.messages == []
    assert "wrong-password-123456" not in caplog.text


async def test_a_stalled_mail_server_never_blocks_the_loop(caplog):
    """A server that accepts and never greets: the send waits in a thread, the loop runs on."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings = EmailSettings.from_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.getsockname()[1]),
                                       "ALERT_EMAIL_TO": "me@example.org", "SMTP_STARTTLS": "0"})
    settings = EmailSettings(**{**settings.__dict__, "timeout_s": 1.0})
    alerts = AlertService([EmailChannel(settings)], retries=0, send_timeout_s=5)
    await alerts.start()
    ticks = 0
    started = time.monotonic()
    alerts.send(Alert("ERROR", "feed lost"))
    while time.monotonic() - started < 0.8:
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks > 40                          # the loop kept running while the send hung
    await _settle(lambda: "alert channel email failed" in caplog.text, 10)
    await alerts.stop()
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


async def test_the_run_services_email_a_halt_without_telegram(smtp, tmp_path, sample_csv):
    from agent.session import replay_session

    factories = headless_services(make_config(), None, tmp_path, env=_env(smtp.port))
    assert len(factories) == 1
    engine = replay_session(make_config(), tmp_path, sample_csv, 50.0)
    service = factories[0](engine)
    await service.start()
    await engine.start()
    await engine.emergency_stop()
    await _settle(lambda: any("EMERGENCY STOP" in (m["Subject"] or "") for m in smtp.messages))
    await engine.stop()
    await service.stop()
    assert all(m["Subject"].startswith("trading-agent: [PAPER]") for m in smtp.messages)
    assert not any("Agent started" in m["Subject"] for m in smtp.messages)    # INFO: not emailed


def test_no_channel_configured_means_no_services(caplog):
    caplog.set_level(logging.INFO)
    assert headless_services(make_config(), None, None, env={}) == []
    assert "alerts go to the log only" in caplog.text
    assert headless_services(make_config(), None, None, env={"SMTP_HOST": "h"}) == []
    assert "email alerts off: SMTP_HOST is set but ALERT_EMAIL_TO is not" in caplog.text


# ----- KPI warnings and the daily summary ---------------------------------------------------
class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send(self, text: str) -> None:
        self.texts.append(text)


def _signal(ts: int, action: str, reason: str) -> SignalRecord:
    return SignalRecord(bar_ts=ts, close=1.0, ema_fast=1.0, ema_slow=1.0, vol_z=1.0, tr_z=1.0, cloc=1.0,
                        fib_swing_high=None, fib_levels=None, target_price=None, action=action, reason=reason)


async def _bridged(tmp_path, sample_csv):
    """A replay engine (not started) and its alert bridge, alerts recorded."""
    from agent.session import replay_session

    engine = replay_session(make_config(**ACTIVE), tmp_path, sample_csv, None)
    rec = Recorder()
    alerts = AlertService([rec], mode="paper", dedup_window_s=0)
    bridge = AlertBridge(engine, alerts)
    await alerts.start()
    return engine, rec, alerts, bridge


async def test_a_crossed_kpi_threshold_is_one_warning_and_in_the_daily_summary(tmp_path, sample_csv):
    engine, rec, alerts, bridge = await _bridged(tmp_path, sample_csv)
    now = 1_754_051_400_000            # the replay clock has not started: 24 h window from 0 covers it
    engine.store.insert_signal(_signal(now - 3_600_000, "ENTERED", "trade 1"))
    missed = _signal(now - 1_800_000, "SKIPPED", "entry order rejected: insufficient balance")
    engine.store.insert_signal(missed)
    engine.store.commit()
    bridge.on_event(SignalSeen(missed))
    bridge.on_event(SignalSeen(missed))                # still breached: no second warning
    await _settle(lambda: len(rec.texts) >= 1)
    await asyncio.sleep(0.1)
    assert len(rec.texts) == 1
    assert "KPI: execution rate below 90%" in rec.texts[0] and "50.0% (1 of 2 signals traded)" in rec.texts[0]
    engine.store.add_link_checks(now, 4, 2)
    summary = daily_summary_alert(engine, now)
    assert summary.level == "WARNING"
    assert "execution rate: 50.0%" in summary.text and "connection uptime: 50.0%" in summary.text
    assert "WARNING: below 99%" in summary.text
    await alerts.stop()
    await engine.stop()


async def test_a_health_report_with_a_new_failed_check_warns_once_of_a_low_uptime(tmp_path, sample_csv):
    from data.market import FeedStatus

    engine, rec, alerts, bridge = await _bridged(tmp_path, sample_csv)
    now = 1_754_051_400_000

    def report(checks: int, up: int) -> FeedStatus:
        return FeedStatus(ts=now, state="ok", transport="websocket", data_whole=True,
                          checks=checks, checks_up=up)

    engine.store.add_link_checks(now, 100, 97)            # what the engine counted
    engine.store.commit()
    bridge.on_event(report(100, 97))
    bridge.on_event(report(100, 97))                      # nothing new: no second warning
    await _settle(lambda: len(rec.texts) >= 1)
    await asyncio.sleep(0.1)
    assert len(rec.texts) == 1 and "KPI: connection uptime below 99%" in rec.texts[0]
    assert "97.0% of 100 health checks (3 with the link down)" in rec.texts[0]
    await alerts.stop()
    await engine.stop()
