"""Telegram through python-telegram-bot: alerts out, the operator's commands in.

The bot is used directly (no Application framework) so the agent owns its tasks: messages are
sent by the alert worker with timeouts, and commands are long-polled by one task. Only the
configured chat id is answered; anything else is ignored and logged (without its text). The
base URL can point elsewhere (a local fake of the Bot API in tests, a self-hosted Bot API
server in production)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monitoring.redaction import install as install_redaction, redact, register_secret

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


@dataclass(frozen=True, slots=True)
class Command:
    name: str                   # "status", without the slash or @botname
    args: tuple[str, ...]
    chat_id: str
    user: str


def parse_command(text: str) -> tuple[str, tuple[str, ...]] | None:
    """'/stop@my_bot confirm' -> ('stop', ('confirm',)); None for anything not a command."""
    parts = (text or "").strip().split()
    if not parts or not parts[0].startswith("/"):
        return None
    name = parts[0][1:].split("@", 1)[0].lower()
    return (name, tuple(p.lower() for p in parts[1:])) if name else None


class TelegramChannel:
    name = "telegram"

    def __init__(self, token: str, chat_id: str, *, base_url: str = DEFAULT_BASE_URL,
                 timeout_s: float = 10.0, poll_timeout_s: int = 25, trust_env: bool = True) -> None:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        register_secret(token)
        install_redaction()                   # the token is in every request URL
        # httpx logs every request URL (the token included) at INFO: one line per long poll
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self.chat_id = str(chat_id)
        self.poll_timeout_s = poll_timeout_s
        kwargs = {"httpx_kwargs": {"trust_env": trust_env}}
        request = HTTPXRequest(connection_pool_size=4, read_timeout=timeout_s, write_timeout=timeout_s,
                               connect_timeout=timeout_s, pool_timeout=timeout_s, **kwargs)
        polling = HTTPXRequest(connection_pool_size=1, read_timeout=poll_timeout_s + timeout_s,
                               write_timeout=timeout_s, connect_timeout=timeout_s,
                               pool_timeout=timeout_s, **kwargs)
        self.bot = Bot(token, base_url=base_url, request=request, get_updates_request=polling)
        self._initialized = False
        self._offset: int | None = None

    async def _ensure(self) -> None:
        if not self._initialized:
            await self.bot.initialize()       # getMe: proves the token before first use
            self._initialized = True

    async def send(self, text: str) -> None:
        await self._ensure()
        await self.bot.send_message(chat_id=self.chat_id, text=redact(text))

    async def reply(self, chat_id: str, text: str) -> None:
        await self._ensure()
        await self.bot.send_message(chat_id=chat_id, text=redact(text))

    async def poll_commands(self, handle: Callable[[Command], Awaitable[str | None]],
                            error_delay_s: float = 5.0) -> None:
        """Long-poll for messages until cancelled. Commands from the configured chat go to
        `handle`, whose answer is sent back; other chats are ignored and logged."""
        while True:
            try:
                await self._ensure()
                updates = await self.bot.get_updates(offset=self._offset, timeout=self.poll_timeout_s,
                                                     allowed_updates=["message"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("telegram: polling for commands failed (%s: %s); retrying in %.0f s",
                            type(exc).__name__, redact(exc), error_delay_s)
                await asyncio.sleep(error_delay_s)
                continue
            for update in updates:
                self._offset = update.update_id + 1
                message = update.message
                if message is None or message.text is None:
                    continue
                chat_id = str(message.chat.id)
                user = message.from_user.username or str(message.from_user.id) if message.from_user else "?"
                if chat_id != self.chat_id:
                    log.warning("telegram: ignored a message from chat %s (user %s): only the "
                                "configured chat may command the agent", chat_id, user)
                    continue
                parsed = parse_command(message.text)
                if parsed is None:
                    continue
                command = Command(parsed[0], parsed[1], chat_id, user)
                log.info("telegram: command /%s from %s", command.name, user)
                try:
                    answer = await handle(command)
                except Exception as exc:
                    log.exception("telegram: /%s failed", command.name)
                    answer = f"/{command.name} failed: {exc}"
                if answer:
                    try:
                        await self.reply(chat_id, answer)
                    except Exception as exc:
                        log.warning("telegram: could not answer /%s (%s)", command.name,
                                    type(exc).__name__)

    async def close(self) -> None:
        if self._initialized:
            try:
                await self.bot.shutdown()
            except Exception:
                pass
            self._initialized = False
