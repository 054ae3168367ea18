"""One logging set-up for every front end: a human console, a rotating human log file and a
rotating JSON-lines file in the data folder. Every handler passes through the redactor, so a
registered secret (API key, secret, passphrase, token) never reaches a log line in clear text,
whoever formats it (invariant 4)."""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path

from monitoring.redaction import MASK, install as install_redaction, redact, register_secret  # noqa: F401

HUMAN_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_text or record.exc_info:   # exc_text: already redacted at record creation
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files (the current one and each new one after a rotation) are
    created owner-only (0600): logs name balances, positions and the data folder."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


def _not_file_only(record: logging.LogRecord) -> bool:
    """Records logged with extra={"file_only": True} (an error the CLI already reports on the
    console in its own one line) go to the log files only."""
    return not getattr(record, "file_only", False)


def setup_logging(log_dir: Path | None, level: str = "INFO", console: bool = True) -> None:
    """Idempotent: replaces the handlers this function installed before."""
    import time

    install_redaction()                      # every record is redacted when it is made
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_agent_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    handlers: list[logging.Handler] = []
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(level.upper())
        stream.setFormatter(RedactingFormatter(HUMAN_FORMAT, "%H:%M:%S"))
        stream.addFilter(_not_file_only)
        handlers.append(stream)
    if log_dir is not None:
        if not log_dir.is_dir():
            log_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(log_dir, 0o700)
        human = PrivateRotatingFileHandler(log_dir / "agent.log", maxBytes=10_000_000,
                                                     backupCount=5, encoding="utf-8")
        human.setLevel(logging.DEBUG)
        human.setFormatter(RedactingFormatter(HUMAN_FORMAT))
        jsonl = PrivateRotatingFileHandler(log_dir / "agent.jsonl", maxBytes=10_000_000,
                                                     backupCount=5, encoding="utf-8")
        jsonl.setLevel(logging.INFO)
        jsonl.setFormatter(JsonLinesFormatter())
        handlers += [human, jsonl]
    for handler in handlers:
        handler.formatter.converter = time.gmtime
        handler._agent_handler = True
        root.addHandler(handler)
