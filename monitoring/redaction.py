"""Secret redaction for everything the agent writes or shows (invariant 4).

Two kinds of text are removed:
- every configured secret (API key, secret, passphrase, Telegram token, ...) registered with
  `register_secret` by whoever loaded it (agent/credentials.py registers what it finds), also
  in its URL-encoded form;
- anything shaped like a credential whatever its value: `key=value` pairs whose key names a
  key, secret, passphrase, token or signature (query strings, JSON, headers such as
  X-MBX-APIKEY), `Authorization: Bearer ...`, Telegram bot tokens (`bot123:ABC...` in a URL)
  and long hex or base64 runs inside URLs (signatures, listen keys).

`redact()` is the one function; the logging record factory installed by `install()` applies it
to every record at creation (message, arguments, traceback, stack), so no handler, the window's
log panel included, ever sees the clear text. Stored errors (halt and failure reasons), alerts
and UI text call `redact()` before they leave the process's memory.
"""
from __future__ import annotations

import logging
import re
import threading
import traceback
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LEN = 6            # shorter values are not credentials and would mask ordinary words

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()

_KEY_NAMES = (r"(?:x-mbx-apikey|api[_-]?key|apikey|api[_-]?secret|secret(?:[_-]?key)?|passphrase"
              r"|password|passwd|access[_-]?key|private[_-]?key|token|bot[_-]?token|signature|sign"
              r"|listen[_-]?key)")
# key=value, key: value, "key": "value", key = 'value' (values of at least 4 characters)
_PAIR = re.compile(r"(?i)(\b" + _KEY_NAMES + r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}\]]{4,})")
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
_BOT_TOKEN = re.compile(r"(?i)(bot)(\d{5,}:[A-Za-z0-9_-]{20,})")
_URL = re.compile(r"(?i)\b(?:https?|wss?)://[^\s\"'<>]+")
# Inside a URL: a path segment or query value that is a long hex or base64 run
_LONG_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_LONG_B64 = re.compile(r"(?<![0-9A-Za-z+/_-])(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])"
                       r"[A-Za-z0-9+/_-]{40,}={0,2}")


def register_secret(value: str | None) -> None:
    """Mask this exact value (and its URL-encoded form) everywhere from now on."""
    global _secrets
    if not value or len(value.strip()) < MIN_SECRET_LEN:
        return
    forms = {value, value.strip(), quote(value, safe="")}
    with _lock:
        # longest first, so a secret containing another is masked whole
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def forget_secrets() -> None:
    """Tests only: start from an empty registry."""
    global _secrets
    with _lock:
        _secrets = ()


def _url(match: re.Match) -> str:
    url = _LONG_HEX.sub(MASK, match.group(0))
    return _LONG_B64.sub(MASK, url)


def redact(text: object) -> str:
    """`text` with every registered secret and every credential-shaped value replaced by ***."""
    if text is None:
        return ""
    text = str(text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _BOT_TOKEN.sub(lambda m: m.group(1) + MASK, text)
    text = _PAIR.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _URL.sub(_url, text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:                      # a bad format string: keep what we can, redacted
        message = f"{record.msg!r} % {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None             # a handler formatting it itself would see clear text
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._redacted = True
    return record


class RedactionFilter(logging.Filter):
    """For handlers that receive records made before `install()` (or by foreign factories)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_installed_factory = None


def install() -> None:
    """Redact every log record at creation (idempotent): the record factory wraps whatever
    factory is in place, so records are clean before any handler or filter sees them."""
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return
    base = current

    def factory(*args, **kwargs) -> logging.LogRecord:
        return _redact_record(base(*args, **kwargs))

    _installed_factory = factory
    logging.setLogRecordFactory(factory)
    _install_excepthooks()


def _install_excepthooks() -> None:
    """An uncaught exception's traceback (printed by Python itself) is redacted too."""
    import sys
    import threading as th

    if getattr(sys.excepthook, "_redacting", False):
        return

    def excepthook(exc_type, exc, tb) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))

    def thread_hook(args) -> None:
        if args.exc_type is SystemExit:
            return
        sys.stderr.write(redact(f"Exception in thread {getattr(args.thread, 'name', '?')}:\n"
                                + "".join(traceback.format_exception(args.exc_type, args.exc_value,
                                                                     args.exc_traceback))))

    excepthook._redacting = True
    sys.excepthook = excepthook
    th.excepthook = thread_hook
