"""The sd_notify protocol, without a dependency: datagrams of `KEY=value` lines to the
AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').

What the agent sends (agent/headless.py decides when):
- READY=1 once the engine runs (RUNNING, or HALTED and watching), never before;
- WATCHDOG=1 every half of $WATCHDOG_USEC, from a task on the engine's own event loop, so a
  stuck loop stops the pings and systemd restarts the service;
- STATUS=<one line>: run state, position, today's PnL (`systemctl status` shows it);
- STOPPING=1 when a stop begins.
Outside systemd (no $NOTIFY_SOCKET) every call is a no-op. A send error is logged once and
never raised: supervision must not be able to break trading."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from monitoring.redaction import redact

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes:
    """$NOTIFY_SOCKET as a sendto() address: '@name' is the abstract socket '\\0name'."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class SdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET") or ""
        self.address = socket_address(raw) if raw and (raw.startswith(("@", "/"))) else None
        self._sock: socket.socket | None = None
        self._failed = False
        self._watchdog_usec = _watchdog_usec(env)
        self.sent: list[str] = []              # the last messages, for diagnostics
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of WatchdogSec (as systemd recommends), or None when no watchdog is armed."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 2 / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Send one datagram of `KEY=value` lines. False when not under systemd or on error."""
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode("utf-8", "replace"), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd notification failed (%s); supervision messages may be lost", exc)
            return False
        self.sent = (self.sent + [message])[-20:]
        return True

    def ready(self, status: str) -> bool:
        self._last_status = status
        return self.notify("READY=1", f"STATUS={redact(status)}", f"MAINPID={os.getpid()}")

    def status(self, line: str) -> bool:
        """STATUS=, only when the line changed."""
        if line == self._last_status:
            return False
        self._last_status = line
        return self.notify(f"STATUS={redact(line)}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={redact(status)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    async def watchdog_loop(self, health: Callable[[], bool] | None = None) -> None:
        """Ping at half the watchdog period from the running loop. A `health` that returns
        False withholds the ping (systemd then restarts the service)."""
        interval = self.watchdog_interval_s
        if interval is None or not self.enabled:
            return
        while True:
            if health is None or health():
                self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None                             # the watchdog is armed for another process
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec if usec > 0 else None


def status_line(run_state: str, mode: str, position: str, day_pnl: float, quote: str) -> str:
    """One line for `systemctl status`: 'RUNNING PAPER | flat | today +12.34 USDT'."""
    return f"{run_state} {mode.upper()} | {position} | today {day_pnl:+.2f} {quote}"
