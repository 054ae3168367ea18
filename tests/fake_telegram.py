"""A local fake of the Telegram Bot API (aiohttp on 127.0.0.1): enough of getMe, sendMessage
and getUpdates for python-telegram-bot pointed at it with base_url."""
from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web


class FakeBotApi:
    def __init__(self, token: str, delay_s: float = 0.0) -> None:
        self.token = token
        self.delay_s = delay_s
        self.sent: list[dict] = []              # sendMessage calls: chat_id, text
        self.calls: list[str] = []
        self._updates: list[dict] = []
        self._update_id = 100
        self._message_id = 1
        self._new = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/bot"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def user_says(self, chat_id: int, text: str, username: str = "operator") -> None:
        self._update_id += 1
        self._message_id += 1
        self._updates.append({"update_id": self._update_id, "message": {
            "message_id": self._message_id, "date": int(time.time()), "text": text,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": username, "username": username}}})
        self._new.set()

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [m["text"] for m in self.sent if chat_id is None or str(m["chat_id"]) == str(chat_id)]

    async def wait_for(self, predicate, timeout_s: float = 10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for text in list(self.texts()):
                if predicate(text):
                    return text
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching message; sent: {self.texts()}")

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"},
                                     status=401)
        method = request.match_info["method"]
        self.calls.append(method)
        if request.content_type == "application/json":
            data = await request.json()
        else:
            data = dict(await request.post())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "fake", "username": "fake_bot"}
        elif method == "sendMessage":
            self.sent.append({"chat_id": data.get("chat_id"), "text": data.get("text")})
            self._message_id += 1
            result = {"message_id": self._message_id, "date": int(time.time()), "text": data.get("text"),
                      "chat": {"id": int(data.get("chat_id")), "type": "private"}}
        elif method == "getUpdates":
            offset = int(data.get("offset") or 0)
            timeout = float(data.get("timeout") or 0)
            if not any(u["update_id"] >= offset for u in self._updates) and timeout:
                self._new.clear()
                try:
                    await asyncio.wait_for(self._new.wait(), timeout)
                except TimeoutError:
                    pass
            result = [u for u in self._updates if u["update_id"] >= offset]
        elif method in ("close", "logOut", "deleteWebhook"):
            result = True
        else:
            return web.json_response({"ok": False, "error_code": 404, "description": f"no {method}"},
                                     status=404)
        return web.Response(text=json.dumps({"ok": True, "result": result}), content_type="application/json")
