"""Email: the backup alert channel (PRD) for ERROR and CRITICAL alerts (halts are CRITICAL).

Settings come from the environment (or the systemd unit's Environment=/EnvironmentFile=):
SMTP_HOST (required to enable it), SMTP_PORT (default 587; 465 means implicit TLS),
SMTP_USER and SMTP_PASSWORD (optional; the password is a credential: registered with the
redactor, also read from $CREDENTIALS_DIRECTORY/SMTP_PASSWORD for LoadCredentialEncrypted=),
ALERT_EMAIL_TO (required: one or more addresses, comma-separated), ALERT_EMAIL_FROM (default
SMTP_USER, else trading-agent@<host>), SMTP_STARTTLS (default on; "0"/"false"/"no" for a
local relay without TLS).

Sending uses the standard library's smtplib in a worker thread (asyncio.to_thread) with a
socket timeout, so a slow or dead mail server never blocks the engine's loop; AlertService
adds the overall timeout and the retries.
"""
from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from monitoring.redaction import redact, register_secret

FALSE = {"0", "false", "no", "off"}


class EmailSettingsError(Exception):
    """The SMTP settings are incomplete or malformed (the message names the variable)."""


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    to: tuple[str, ...]
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout_s: float = 10.0

    @property
    def implicit_tls(self) -> bool:
        return self.port == 465

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "EmailSettings | None":
        """None when SMTP_HOST is not set (email not configured); EmailSettingsError when it is
        set but the rest cannot work. The password is registered with the redactor."""
        env = os.environ if env is None else env
        host = (env.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        port_text = (env.get("SMTP_PORT") or "587").strip()
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise EmailSettingsError(f"SMTP_PORT must be a port number, got {port_text!r}") from None
        to = tuple(a.strip() for a in (env.get("ALERT_EMAIL_TO") or "").split(",") if a.strip())
        if not to:
            raise EmailSettingsError("SMTP_HOST is set but ALERT_EMAIL_TO is not: name who gets "
                                     "the alert emails (comma-separated addresses)")
        if any("@" not in a for a in to):
            raise EmailSettingsError("ALERT_EMAIL_TO must hold email addresses (comma-separated)")
        user = (env.get("SMTP_USER") or "").strip() or None
        password = env.get("SMTP_PASSWORD") or _systemd_credential(env, "SMTP_PASSWORD")
        if password:
            register_secret(password)
        if password and not user:
            raise EmailSettingsError("SMTP_PASSWORD is set but SMTP_USER is not")
        sender = ((env.get("ALERT_EMAIL_FROM") or "").strip()
                  or (user if user and "@" in user else f"trading-agent@{socket.gethostname()}"))
        starttls = (env.get("SMTP_STARTTLS") or "true").strip().lower() not in FALSE
        return cls(host=host, port=port, to=to, sender=sender, user=user, password=password or None,
                   starttls=starttls)

    def describe(self) -> str:
        """Where alerts go, for the log (never the password)."""
        security = "TLS" if self.implicit_tls else ("STARTTLS" if self.starttls else "no TLS")
        return f"{self.host}:{self.port} ({security}) to {', '.join(self.to)}"


def _systemd_credential(env: Mapping[str, str], name: str) -> str | None:
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    path = Path(folder) / name
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class EmailChannel:
    """An AlertService channel; gets ERROR and CRITICAL alerts only (min_level)."""

    name = "email"

    def __init__(self, settings: EmailSettings, *, min_level: str = "ERROR") -> None:
        self.settings = settings
        self.min_level = min_level
        self.sent = 0

    def message(self, text: str) -> EmailMessage:
        text = redact(text)
        first = text.splitlines()[0] if text else "alert"
        msg = EmailMessage()
        msg["Subject"] = f"trading-agent: {first}"[:200]
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(self.settings.to)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2] or None)
        msg.set_content(text + "\n\n-- \nsent by trading-agent (backup alert channel)\n")
        return msg

    def _send_blocking(self, msg: EmailMessage) -> None:
        s = self.settings
        if s.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            client.ehlo()
            if s.starttls and not s.implicit_tls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if s.user and s.password:
                client.login(s.user, s.password)
            client.send_message(msg)
        finally:
            try:
                client.quit()
            except Exception:
                client.close()

    async def send(self, text: str) -> None:
        msg = self.message(text)
        try:
            await asyncio.to_thread(self._send_blocking, msg)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib errors can echo the server's reply to AUTH: keep only a redacted summary
            raise RuntimeError(redact(f"email via {self.settings.host}:{self.settings.port} "
                                      f"failed: {type(exc).__name__}: {exc}")[:300]) from None
        self.sent += 1

    async def close(self) -> None:
        return None
