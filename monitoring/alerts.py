"""Alerts to the operator's phone that never block or break the engine.

- `AlertService.send()` is synchronous and never waits: the alert is redacted, deduplicated and
  put on a bounded queue; one worker task delivers it to every channel with a timeout and a
  couple of retries. A slow or dead channel delays only other alerts.
- Storms are rate-limited and coalesced: the same alert (same key) within `dedup_window_s` is
  counted, not sent, and the next one that goes out says how often it repeated; beyond
  `max_per_minute` messages the rest are folded into one summary message.
- Every alert carries the trading mode (PAPER / TESTNET / LIVE) in its first word.
- `AlertLogHandler` forwards ERROR and CRITICAL log records as alerts.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitoring.redaction import redact

log = logging.getLogger(__name__)

LEVEL_ICON = {"INFO": "ℹ️", "WARNING": "⚠️", "ERROR": "❗", "CRITICAL": "🚨"}
LEVEL_RANK = {"INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@dataclass(frozen=True, slots=True)
class Alert:
    level: str                  # INFO WARNING ERROR CRITICAL
    title: str
    text: str = ""
    key: str | None = None      # what makes two alerts "the same" (default: level + title)

    @property
    def dedup_key(self) -> str:
        return self.key or f"{self.level}:{self.title}"


class Channel(Protocol):
    """A way to the operator. A channel with a `min_level` attribute (e.g. "ERROR": the email
    backup channel) gets only alerts at or above it."""

    name: str

    async def send(self, text: str) -> None: ...


def _accepts(channel: Channel, level: str) -> bool:
    floor = getattr(channel, "min_level", None)
    return floor is None or LEVEL_RANK.get(level, 0) >= LEVEL_RANK.get(str(floor).upper(), 0)


class AlertService:
    def __init__(self, channels: list[Channel], *, mode: str = "PAPER", queue_size: int = 500,
                 dedup_window_s: float = 300.0, max_per_minute: int = 20, send_timeout_s: float = 10.0,
                 retries: int = 2, retry_delay_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.channels = list(channels)
        self.mode = mode.upper()
        self.dedup_window_s = dedup_window_s
        self.max_per_minute = max_per_minute
        self.send_timeout_s = send_timeout_s
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self._clock = clock
        self._queue: deque[tuple[str, str]] = deque()      # (level, text)
        self._queue_size = queue_size
        self._wakeup: asyncio.Event | None = None
        self._last_sent: dict[str, float] = {}
        self._repeats: dict[str, int] = {}
        self._sent_times: deque[float] = deque()
        self._coalesced: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.dropped = 0
        self.delivered: list[str] = []           # the last texts delivered (diagnostics, tests)

    # ----- producer side: never blocks -------------------------------------------------------
    def send(self, alert: Alert) -> bool:
        """Queue an alert; False when it was folded into a repeat count. Thread-safe: from
        another thread the alert is handed to the loop."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.send, alert)
            return True
        now = self._clock()
        key = alert.dedup_key
        last = self._last_sent.get(key)
        if last is not None and now - last < self.dedup_window_s:
            self._repeats[key] = self._repeats.get(key, 0) + 1
            return False
        self._last_sent[key] = now
        repeats = self._repeats.pop(key, 0)
        text = self.format(alert, repeats)
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((alert.level, text))
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def format(self, alert: Alert, repeats: int = 0) -> str:
        head = f"[{self.mode}] {LEVEL_ICON.get(alert.level, '')} {alert.title}".replace("  ", " ")
        body = f"\n{alert.text}" if alert.text else ""
        tail = f"\n(repeated {repeats} more time{'s' if repeats != 1 else ''} since the last message)" if repeats else ""
        return redact(head + body + tail)[:4000]          # Telegram's limit is 4096

    # ----- the worker -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts")

    async def stop(self, drain_timeout_s: float = 3.0) -> None:
        """Deliver what is queued (for at most drain_timeout_s), then stop the worker."""
        if self._task is None:
            return
        deadline = self._clock() + drain_timeout_s
        while (self._queue or self._coalesced) and self._clock() < deadline and not self._task.done():
            await asyncio.sleep(0.05)
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._task = None
        self._loop = self._loop_thread = None

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue and not self._coalesced:
                self._wakeup.clear()
                await self._wakeup.wait()
            now = self._clock()
            while self._sent_times and now - self._sent_times[0] >= 60.0:
                self._sent_times.popleft()
            if len(self._sent_times) >= self.max_per_minute:
                # over budget: fold the queue into one summary, sent when the budget returns
                while self._queue:
                    self._coalesced.append(self._queue.popleft())
                await asyncio.sleep(min(1.0, max(0.05, 60.0 - (now - self._sent_times[0]))))
                continue
            if self._coalesced:
                batch, self._coalesced = self._coalesced, []
                level = max((lv for lv, _ in batch), key=lambda lv: LEVEL_RANK.get(lv, 0))
                text = (f"[{self.mode}] {len(batch)} alerts held back by the rate limit:\n"
                        + "\n".join(line.splitlines()[0] for _, line in batch))[:4000]
            else:
                level, text = self._queue.popleft()
            self._sent_times.append(now)
            await self._deliver(text, level)

    async def _deliver(self, text: str, level: str = "CRITICAL") -> None:
        for channel in self.channels:
            if not _accepts(channel, level):
                continue
            for attempt in range(self.retries + 1):
                try:
                    await asyncio.wait_for(channel.send(text), self.send_timeout_s)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if attempt == self.retries:
                        log.warning("alert channel %s failed %d times (%s: %s); alert dropped",
                                    channel.name, attempt + 1, type(exc).__name__, redact(exc))
                    else:
                        await asyncio.sleep(self.retry_delay_s * (attempt + 1))
        self.delivered = (self.delivered + [text])[-50:]


class AlertLogHandler(logging.Handler):
    """ERROR and CRITICAL log records become alerts (the channels' own loggers excepted, so a
    failing channel cannot feed itself)."""

    QUIET = ("monitoring.alerts", "monitoring.telegram", "telegram", "httpx", "httpcore", "asyncio")

    def __init__(self, service: AlertService) -> None:
        super().__init__(logging.ERROR)
        self.service = service

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.QUIET):
            return
        try:
            message = record.getMessage()
            self.service.send(Alert(record.levelname, message.splitlines()[0][:300],
                                    key=f"log:{record.name}:{message[:200]}"))
        except Exception:
            self.handleError(record)
