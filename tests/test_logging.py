"""Secrets never reach a log line, whichever handler formats it (invariant 4)."""
from __future__ import annotations

import json
import logging

from monitoring.logging_setup import register_secret, setup_logging

SECRET = "sk_live_4f9a8b7c6d5e4f3a2b1c"


def test_a_registered_secret_is_masked_in_the_human_and_json_logs(tmp_path):
    setup_logging(tmp_path, "INFO", console=False)
    register_secret(SECRET)
    logging.getLogger("agent.test").error("exchange said: bad key %s", SECRET)
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logging.getLogger("agent.test").exception("order failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    human = (tmp_path / "agent.log").read_text()
    lines = (tmp_path / "agent.jsonl").read_text().splitlines()
    assert SECRET not in human and "***" in human
    assert all(SECRET not in line for line in lines)
    assert json.loads(lines[0])["level"] == "ERROR"
    setup_logging(None, console=False)


def test_credential_shaped_values_are_masked_even_when_not_registered(tmp_path):
    setup_logging(tmp_path, "INFO", console=False)
    logging.getLogger("agent.test").warning("request failed: api_key=ABCDEF123456&signature=deadbeef99")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "agent.log").read_text()
    assert "ABCDEF123456" not in text and "deadbeef99" not in text
    setup_logging(None, console=False)
