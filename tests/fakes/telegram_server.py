"""A fake Telegram Bot API on 127.0.0.1 for tests and benchmarks (no network).

It answers what Huddle's adapter calls, with the shapes Telegram uses: `getMe`, `getUpdates`
(long poll with `timeout`, `offset` confirming earlier updates), `sendMessage` (HTML checked,
length checked, blocked users and unknown chats refused), `answerCallbackQuery`, `setWebhook`,
`deleteWebhook`. Tests script errors (`fail_next`) such as a 429 with `parameters.retry_after`.

    fake = FakeTelegram()
    base = await fake.start()          # point HUDDLE_TELEGRAM_API_URL here
    fake.message(42, "/start CODE")    # a user writes to the bot
    await fake.wait_sent(1)
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token_for-fake"
BOT_ID = 123456


@dataclass
class Failure:
    method: str
    status: int
    description: str
    chat_id: int | None = None
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None


@dataclass
class Sent:
    chat_id: int
    text: str
    """The visible text after entity parsing, as Telegram stores it."""
    raw: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    message_id: int
    at: float = field(default_factory=time.monotonic)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_ALLOWED = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "tg-spoiler",
    "span",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")


class ParseError(ValueError):
    pass


def parse_html(text: str) -> str:
    """Telegram's HTML rules, strictly: allowed tags, balanced, only four named entities."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            if not m:
                raise ParseError(f"Unclosed start tag at byte offset {i}")
            name = m.group(2).lower()
            if name not in _ALLOWED:
                raise ParseError(f'Unsupported start tag "{name}" at byte offset {i}')
            if m.group(1):
                if not stack or stack[-1] != name:
                    expected = stack[-1] if stack else ""
                    raise ParseError(f'Unmatched end tag at byte offset {i}, expected "</{expected}>"')
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise ParseError(f"Unsupported HTML entity at byte offset {i}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == ">":
            raise ParseError(f"Unexpected end tag at byte offset {i}")
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


class FakeTelegram:
    def __init__(self, token: str = TOKEN, *, username: str = "huddle_test_bot") -> None:
        self.token = token
        self.me = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Huddle",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.updates: list[dict[str, Any]] = []
        self.redelivered: list[dict[str, Any]] = []
        self.confirmed = 0
        self.sent: list[Sent] = []
        self.answered: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.offsets: list[int | None] = []
        """The offset of each getUpdates call, in order."""
        self.served: list[tuple[int, int]] = []
        """(number of the getUpdates call, update_id) for every update handed out."""
        self.failures: list[Failure] = []
        self.blocked: set[int] = set()
        self.chats: dict[int, dict[str, Any]] = {}
        self.callbacks: dict[str, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.files: dict[str, tuple[str, bytes]] = {}
        """file_id → (file_path, content) for getFile and the download URL."""
        self.downloads: list[str] = []
        self.latency = 0.0
        self._update_ids = itertools.count(100_000)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(9_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._closing = True
        async with self._changed:
            self._changed.notify_all()  # end pending long polls now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what users do -------------------------------------------------------------------------

    def user(self, user_id: int, first_name: str = "Ann", last_name: str | None = None) -> dict[str, Any]:
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": f"user{user_id}",
            "language_code": "en",
        }
        if last_name:
            user["last_name"] = last_name
        return user

    def _chat(self, chat_id: int, user: dict[str, Any], title: str | None = None) -> dict[str, Any]:
        if chat_id < 0:
            chat = {"id": chat_id, "title": title or "Sales team", "type": "supergroup"}
        else:
            chat = {"id": chat_id, "first_name": user["first_name"], "username": user["username"], "type": "private"}
        self.chats[chat_id] = chat
        return chat

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        self.updates.append(update)
        self._notify()
        return update

    def message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Ann",
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """A user writes `text` (in a private chat unless `chat_id` names a group)."""
        user = self.user(user_id, first_name, last_name)
        chat = self._chat(user_id if chat_id is None else chat_id, user)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        return self.push({"update_id": next(self._update_ids), "message": message})

    def photo(self, user_id: int, content: bytes, *, caption: str | None = None, first_name: str = "Ann",
              width: int = 240, height: int = 320) -> dict[str, Any]:
        """A user sends a photo: Telegram offers it in sizes (a thumbnail and the original), each a file."""
        user = self.user(user_id, first_name)
        chat = self._chat(user_id, user)
        n = len(self.files)
        sizes = []
        for i, (w, h, data) in enumerate(((90, 120, content[: max(1, len(content) // 8)]), (width, height, content))):
            file_id = f"AgACAgIAAxkBAAI{n}_{i}"
            self.files[file_id] = (f"photos/file_{n}_{i}.jpg", data)
            sizes.append({"file_id": file_id, "file_unique_id": f"AQAD{n}{i}", "file_size": len(data),
                          "width": w, "height": h})
        message: dict[str, Any] = {"message_id": next(self._message_ids), "from": user, "chat": chat,
                                   "date": int(time.time()), "photo": sizes}
        if caption:
            message["caption"] = caption
        return self.push({"update_id": next(self._update_ids), "message": message})

    def update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Any other update type (edited_message, my_chat_member, …) as given."""
        return self.push({"update_id": next(self._update_ids), kind: payload})

    def press(self, user_id: int, sent: Sent, data: str, first_name: str = "Ann") -> dict[str, Any]:
        """The user presses the button carrying `data` under a message the bot sent."""
        user = self.user(user_id, first_name)
        query_id = str(next(self._callback_ids))
        message = {
            "message_id": sent.message_id,
            "from": self.me,
            "chat": self.chats[sent.chat_id],
            "date": int(time.time()),
            "text": sent.text,
        }
        if sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        query = {"id": query_id, "from": user, "message": message, "chat_instance": f"ci{sent.chat_id}", "data": data}
        self.callbacks[query_id] = query
        return self.push({"update_id": next(self._update_ids), "callback_query": query})

    def redeliver(self, update: dict[str, Any]) -> None:
        """Hand out `update` again on the next getUpdates, whatever the offset (at-least-once)."""
        self.redelivered.append(update)
        self._notify()

    def unconfirm(self) -> None:
        """Forget confirmations, as if the confirming getUpdates never arrived (a crash)."""
        self.confirmed = 0

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        chat_id: int | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        default = {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
            400: "Bad Request: chat not found",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }
        self.failures.append(
            Failure(
                method, status, description or default.get(status, "Error"), chat_id, retry_after, migrate_to_chat_id
            )
        )

    def block(self, chat_id: int) -> None:
        self.chats.setdefault(chat_id, {"id": chat_id, "first_name": "X", "type": "private"})
        self.blocked.add(chat_id)

    def sent_to(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    async def wait_sent(self, count: int, chat_id: int | None = None, within: float = 5.0) -> list[Sent]:
        """Wait (real time) until at least `count` messages were sent (to `chat_id`)."""

        def matching() -> list[Sent]:
            return self.sent if chat_id is None else self.sent_to(chat_id)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), within)
        return matching()

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass

    # -- the API -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        if method.lower() == "getupdates":
            self.offsets.append(int(params["offset"]) if params.get("offset") else None)
        self._notify()
        if self.latency:
            await asyncio.sleep(self.latency)
        for f in list(self.failures):
            chat_matches = f.chat_id is None or str(f.chat_id) == str(params.get("chat_id"))
            if f.method.lower() == method.lower() and chat_matches:
                self.failures.remove(f)
                self._notify()
                extra: dict[str, Any] = {}
                if f.retry_after is not None:
                    extra["retry_after"] = f.retry_after
                if f.migrate_to_chat_id is not None:
                    extra["migrate_to_chat_id"] = f.migrate_to_chat_id
                return self._error(f.status, f.description, extra or None)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return self._error(404, "Not Found")
        try:
            result = await handler(params)
        except _ApiError as exc:
            return self._error(exc.status, exc.description)
        finally:
            self._notify()
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    @staticmethod
    def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        found = next((data for p, data in self.files.values() if p == path), None)
        if found is None:
            return web.Response(status=404, text="Not Found")
        self.downloads.append(path)
        return web.Response(body=found, content_type="application/octet-stream")

    async def _m_getfile(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.files.get(str(params.get("file_id")))
        if found is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, data = found
        if len(data) > 20 * 1024 * 1024:
            raise _ApiError(400, "Bad Request: file is too big")
        return {"file_id": params["file_id"], "file_unique_id": f"u{abs(hash(path))}", "file_size": len(data),
                "file_path": path}

    async def _m_getme(self, _params: dict[str, Any]) -> dict[str, Any]:
        return self.me

    async def _m_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params["offset"]) if params.get("offset") else None
        if offset is not None and offset > self.confirmed:
            self.confirmed = offset
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)

        def ready() -> list[dict[str, Any]]:
            again, self.redelivered = self.redelivered, []
            fresh = [u for u in self.updates if u["update_id"] >= self.confirmed]
            return (again + fresh)[:limit]

        call = len(self.offsets)
        found = ready()
        if found or timeout <= 0:
            self.served += [(call, u["update_id"]) for u in found]
            return found
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while not found and not self._closing and loop.time() < deadline:
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
                except TimeoutError:
                    break
                found = ready()
        self.served += [(call, u["update_id"]) for u in found]
        return found

    async def _m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.chats:
            raise _ApiError(400, "Bad Request: chat not found")
        raw = str(params.get("text", ""))
        parse_mode = params.get("parse_mode")
        text = raw
        if parse_mode == "HTML":
            try:
                text = parse_html(raw)
            except ParseError as exc:
                raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        sent = Sent(chat_id, text, raw, parse_mode, markup, next(self._message_ids))
        self.sent.append(sent)
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self.me,
            "chat": self.chats[chat_id],
            "date": int(time.time()),
            "text": text,
        }
        if markup:
            message["reply_markup"] = markup
        return message

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> bool:
        if params.get("callback_query_id") not in self.callbacks:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.answered.append(params)
        return True

    async def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        return True

    async def _m_deletewebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self.confirmed = max([self.confirmed, *[u["update_id"] + 1 for u in self.updates]])
        return True

    async def _m_getwebhookinfo(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


__all__ = ["BOT_ID", "TOKEN", "FakeTelegram", "Sent", "parse_html"]
