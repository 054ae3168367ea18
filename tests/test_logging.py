"""Logs: human lines on the console and in agent.log, JSON lines (python-json-logger) in
agent.jsonl, the mode on every line, secrets never in any of them (invariant 4), and log I/O
on a listener thread so a slow disk never blocks the caller."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from monitoring import logging_setup
from monitoring.logging_setup import flush_logs, register_secret, set_log_mode, setup_logging

SECRET = "sk_live_4f9a8b7c6d5e4f3a2b1c"


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    setup_logging(None, console=False, mode="paper")


def _json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_registered_secret_is_masked_in_the_human_and_json_logs(tmp_path):
    setup_logging(tmp_path, "INFO", console=False)
    register_secret(SECRET)
    logging.getLogger("agent.test").error("exchange said: bad key %s", SECRET)
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logging.getLogger("agent.test").exception("order failed")
    flush_logs()
    human = (tmp_path / "agent.log").read_text()
    raw = (tmp_path / "agent.jsonl").read_text()
    entries = _json_lines(tmp_path / "agent.jsonl")
    assert SECRET not in human and "***" in human
    assert SECRET not in raw
    assert entries[0]["level"] == "ERROR" and entries[0]["message"] == "exchange said: bad key ***"
    assert "RuntimeError: auth failed for ***" in entries[1]["exception"]
    assert entries[1]["message"] == "order failed"        # the traceback has its own field


def test_credential_shaped_values_are_masked_even_when_not_registered(tmp_path):
    setup_logging(tmp_path, "INFO", console=False)
    logging.getLogger("agent.test").warning("request failed: api_key=ABCDEF123456&signature=deadbeef99")
    flush_logs()
    for name in ("agent.log", "agent.jsonl"):
        text = (tmp_path / name).read_text()
        assert "ABCDEF123456" not in text and "deadbeef99" not in text


def test_every_line_carries_the_mode_prefix_in_human_lines_and_a_field_in_json(tmp_path, capsys):
    setup_logging(tmp_path, "INFO", console=True, mode="live")
    log = logging.getLogger("agent.test")
    log.info("first")
    set_log_mode("testnet")
    log.warning("second")
    flush_logs()
    human = (tmp_path / "agent.log").read_text().splitlines()
    assert human[0].startswith("[LIVE] ") and human[0].endswith("agent.test: first")
    assert human[1].startswith("[TESTNET] ")
    entries = _json_lines(tmp_path / "agent.jsonl")
    assert [(e["mode"], e["message"]) for e in entries] == [("LIVE", "first"), ("TESTNET", "second")]
    assert set(entries[0]) == {"ts", "level", "logger", "mode", "message"}
    assert entries[0]["ts"].endswith("Z") and entries[0]["logger"] == "agent.test"
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[LIVE] ") and err[1].startswith("[TESTNET] ")
    with pytest.raises(ValueError):
        set_log_mode("real money")


def test_extra_fields_reach_the_json_and_file_only_records_skip_the_console(tmp_path, capsys):
    setup_logging(tmp_path, "INFO", console=True)
    logging.getLogger("agent.test").info("order sent", extra={"client_order_id": "ta-E1"})
    logging.getLogger("agent.test").error("one line", extra={"file_only": True})
    flush_logs()
    entries = _json_lines(tmp_path / "agent.jsonl")
    assert entries[0]["client_order_id"] == "ta-E1"
    assert "file_only" not in entries[1]
    assert "one line" not in capsys.readouterr().err
    assert "one line" in (tmp_path / "agent.log").read_text()


def test_a_blocked_log_writer_never_blocks_the_caller(tmp_path):
    """The engine's loop only enqueues: a handler stuck on I/O holds up the listener thread,
    not the logging call."""
    setup_logging(tmp_path, "INFO", console=False)
    release = threading.Event()
    listener = logging_setup._listener
    assert listener is not None

    class Stuck(logging.Handler):
        def emit(self, record):
            release.wait(10)

    listener.handlers = (*listener.handlers, Stuck())
    log = logging.getLogger("agent.test")
    started = time.perf_counter()
    for i in range(200):
        log.info("line %d", i)
    elapsed = time.perf_counter() - started
    release.set()
    flush_logs()
    assert elapsed < 1.0, elapsed
    assert len((tmp_path / "agent.jsonl").read_text().splitlines()) == 200
