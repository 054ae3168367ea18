"""One logging set-up for every front end.

- Console (stderr, so the journal under systemd): human-readable lines.
- DATA_DIR/logs/agent.log: the same human lines, rotating (tracebacks readable with `less`).
- DATA_DIR/logs/agent.jsonl: JSON lines (python-json-logger), rotating, one object per record:
  ts, level, logger, mode, message (+ exception, + any `extra=` fields).
- Every line carries the trading mode (PAPER, TESTNET, LIVE): a `[MODE]` prefix in human lines,
  a `mode` field in JSON. `set_log_mode()` changes it for every later record.
- Log I/O never blocks the engine: the root logger gets one QueueHandler; a QueueListener thread
  does the formatting and the file and console writes. `flush_logs()` waits until what was
  logged so far is written (tests, and before a forced exit).
- Redaction (invariant 4): the record factory installed by monitoring.redaction cleans every
  record when it is made, in the producer's thread, before it is queued; the queue handler
  re-applies it to records made by a foreign factory, and every formatter redacts its output.
"""
from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from monitoring.redaction import (MASK, RedactionFilter, install as install_redaction,  # noqa: F401
                                  redact, register_secret)

HUMAN_FORMAT = "[%(mode)s] %(asctime)s %(levelname)-8s %(name)s: %(message)s"
MODES = ("PAPER", "TESTNET", "LIVE")

_mode = "PAPER"
_lock = threading.Lock()
_listener: logging.handlers.QueueListener | None = None
_queue_handler: "AgentQueueHandler | None" = None


def set_log_mode(mode: str) -> None:
    """Stamp every later record with this trading mode (paper, testnet or live)."""
    global _mode
    upper = str(mode).upper()
    if upper not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    _mode = upper


class _ModeFilter(logging.Filter):
    """Stamps the mode at record time (in the producer's thread, before it is queued)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "mode"):
            record.mode = _mode
        return True


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "mode"):
            record.mode = _mode
        return redact(super().format(record))


class JsonLinesFormatter(JsonFormatter):
    """python-json-logger with our field names, UTC ISO times and redaction of the whole line."""

    FIELDS = ("asctime", "levelname", "name", "mode", "message")
    RENAME = {"asctime": "ts", "levelname": "level", "name": "logger", "exc_info": "exception"}
    SKIP_EXTRA = ("file_only", "mode")

    def __init__(self) -> None:
        super().__init__(list(self.FIELDS), rename_fields=dict(self.RENAME))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
            f".{int(record.msecs):03d}Z"

    def add_fields(self, log_data, record, message_dict) -> None:
        if not hasattr(record, "mode"):
            record.mode = _mode
        super().add_fields(log_data, record, message_dict)
        for key in self.SKIP_EXTRA:
            if key in log_data and key not in self.FIELDS:
                del log_data[key]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files (the current one and each new one after a rotation) are
    created owner-only (0600): logs name balances, positions and the data folder."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


class AgentQueueHandler(logging.handlers.QueueHandler):
    """The root logger's only agent handler: puts the (already redacted) record on a queue.
    Unlike the stdlib's prepare(), the message is not pre-formatted with its traceback, so the
    JSON formatter can keep the exception in its own field."""

    def __init__(self, q: queue.Queue) -> None:
        super().__init__(q)
        self.addFilter(RedactionFilter())
        self.addFilter(_ModeFilter())

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info and not record.exc_text:   # a foreign record: format it here
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(record)                 # unbounded: never waits

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (at most timeout_s) until the listener has written every record queued so far."""
        if _listener is None or threading.current_thread() is getattr(_listener, "_thread", None):
            return
        deadline = time.monotonic() + timeout_s
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.002)
        for handler in _listener.handlers:
            try:
                handler.flush()
            except Exception:
                pass


def _not_file_only(record: logging.LogRecord) -> bool:
    """Records logged with extra={"file_only": True} (an error the CLI already reports on the
    console in its own one line) go to the log files only."""
    return not getattr(record, "file_only", False)


def flush_logs(timeout_s: float = 5.0) -> None:
    if _queue_handler is not None:
        _queue_handler.flush(timeout_s)


def _stop_listener() -> None:
    global _listener, _queue_handler
    root = logging.getLogger()
    if _queue_handler is not None:
        _queue_handler.flush()
        root.removeHandler(_queue_handler)
        _queue_handler.close()
        _queue_handler = None
    if _listener is not None:
        _listener.stop()                               # processes what is left, joins the thread
        for handler in _listener.handlers:
            handler.close()
        _listener = None


atexit.register(_stop_listener)


def setup_logging(log_dir: Path | None, level: str = "INFO", console: bool = True,
                  mode: str | None = None) -> None:
    """Idempotent: replaces the handlers (and the listener) this function installed before.
    `mode` (paper, testnet, live) is stamped on every line from now on."""
    global _listener, _queue_handler
    install_redaction()                      # every record is redacted when it is made
    if mode is not None:
        set_log_mode(mode)
    with _lock:
        _stop_listener()
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
            jsonl.setLevel(logging.DEBUG)
            jsonl.setFormatter(JsonLinesFormatter())
            handlers += [human, jsonl]
        for handler in handlers:
            handler.formatter.converter = time.gmtime
        if not handlers:
            return
        q: queue.Queue = queue.Queue()
        _listener = logging.handlers.QueueListener(q, *handlers, respect_handler_level=True)
        _listener.start()
        _queue_handler = AgentQueueHandler(q)
        _queue_handler._agent_handler = True
        root.addHandler(_queue_handler)
