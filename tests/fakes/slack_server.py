"""A fake Slack on 127.0.0.1: the Web API methods Huddle calls, private file downloads, and Socket Mode.

    fake = await FakeSlack.start()
    settings: HUDDLE_SLACK_API_URL=fake.api_url, tokens fake.bot_token / fake.app_token
    ack = await fake.push_event({"type": "message", "channel_type": "im", ...})
    fake.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=3)
    fake.go_silent()   # the socket stays open but nothing comes back, not even pongs

Web API methods answer JSON like Slack (`ok`, `error`); a missing or wrong bearer token is
`invalid_auth`. Socket Mode: `apps.connections.open` (app token) hands out a ws:// URL; the
websocket says `hello`, then carries envelopes that the client must acknowledge with their
`envelope_id` — `push_*` returns that acknowledgement (or raises TimeoutError when none comes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_USER = "UBOT0001"


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class Scripted:
    error: str
    status: int = 200
    retry_after: float | None = None


@dataclass
class FakeSlack:
    bot_token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-fake-app-token"
    calls: list[Call] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, tuple[dict[str, Any], bytes, str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    """file id → where its download redirects (to test that the token stays with Slack's hosts)."""
    unavailable: set[str] = field(default_factory=set)
    """file ids whose download answers 503 (Slack having a bad minute)."""
    scripted: dict[str, list[Scripted]] = field(default_factory=dict)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connections: int = 0
    silent: bool = False
    downloads: list[dict[str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _connected: asyncio.Event = field(default_factory=asyncio.Event)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(cls) -> FakeSlack:
        fake = cls()
        app = web.Application()
        app.router.add_post("/api/{method}", fake._api)
        app.router.add_get("/api/{method}", fake._api)
        app.router.add_get("/files-pri/{file_id}/{name}", fake._download)
        app.router.add_get("/elsewhere/{file_id}", fake._foreign)
        app.router.add_get("/link", fake._socket)
        fake.runner = web.AppRunner(app, access_log=None)
        await fake.runner.setup()
        site = web.TCPSite(fake.runner, "127.0.0.1", 0)
        await site.start()
        fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return fake

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def env(self) -> dict[str, str]:
        """HUDDLE_* variables that point a Socket Mode Huddle at this fake."""
        return {
            "HUDDLE_SLACK_BOT_TOKEN": self.bot_token,
            "HUDDLE_SLACK_APP_TOKEN": self.app_token,
            "HUDDLE_SLACK_API_URL": self.api_url,
        }

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(self, method: str, error: str, *, status: int = 200, retry_after: float | None = None) -> None:
        self.scripted.setdefault(method, []).append(Scripted(error, status, retry_after))

    def add_file(
        self, file_id: str, name: str, content: bytes, *, mimetype: str = "text/csv", partial: bool = False
    ) -> dict[str, Any]:
        """Register a file; returns the `files[]` entry a message event would carry."""
        meta = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(content),
            "url_private": f"{self.base}/files-pri/{file_id}/{name}",
            "url_private_download": f"{self.base}/files-pri/{file_id}/{name}",
        }
        self.files[file_id] = (meta, content, mimetype)
        if partial:
            return {"id": file_id, "mode": "hidden_by_limit", "file_access": "check_file_info"}
        return dict(meta)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def go_silent(self) -> None:
        self.silent = True

    # -- Web API -----------------------------------------------------------------------------

    async def _args(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data) if isinstance(data, dict) else {}
        form = await request.post()
        args: dict[str, Any] = {k: v for k, v in form.items()}
        args.update(request.query)
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        self.calls.append(Call(method, args))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or str(args.get("token", ""))
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        queue = self.scripted.get(method)
        if queue:
            s = queue.pop(0)
            headers = {"Retry-After": str(int(s.retry_after))} if s.retry_after is not None else {}
            return web.json_response({"ok": False, "error": s.error}, status=s.status, headers=headers)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _m_auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "huddle",
            "team_id": "T0001",
            "user_id": BOT_USER,
            "bot_id": "B0001",
            "is_enterprise_install": False,
        }

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        if not users or users.startswith("UGONE"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users.lstrip("UW")}}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = f"1700000000.{next(self._ts):06d}"
        self.posted.append({**args, "ts": ts})
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text"), "ts": ts}}

    def _m_files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        entry = self.files.get(str(args.get("file", "")))
        if entry is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": dict(entry[0])}

    def _m_apps_connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link?ticket={self.connections + 1}"}

    async def _download(self, request: web.Request) -> web.Response:
        self.downloads.append({"path": request.path, "auth": request.headers.get("Authorization", "")})
        entry = self.files.get(request.match_info["file_id"])
        if request.match_info["file_id"] in self.unavailable:
            return web.Response(status=503, text="try again")
        if request.match_info["file_id"] in self.redirects:
            raise web.HTTPFound(self.redirects[request.match_info["file_id"]])
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}" or entry is None:
            # Slack's answer to a missing token or scope: a login page, status 200.
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        return web.Response(body=entry[1], content_type=entry[2].split(";")[0])

    async def _foreign(self, request: web.Request) -> web.Response:
        self.downloads.append({"path": request.path, "auth": request.headers.get("Authorization", "")})
        return web.Response(body=b"x", content_type="text/plain")

    # -- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections += 1
        self.silent = False
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        self._connected.set()
        try:
            async for msg in ws:
                if self.silent:
                    continue
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    fut = self._acks.pop(str(data.get("envelope_id")), None)
                    if fut is not None and not fut.done():
                        fut.set_result(data)
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    async def wait_connected(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until `count` Socket Mode connections have been made in all (the newest one open)."""
        async with asyncio.timeout(within):
            while self.connections < count or not self.sockets:
                self._connected.clear()
                await self._connected.wait()

    async def push(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, within: float = 3.0
    ) -> dict[str, Any]:
        """Send one envelope on the newest socket and wait for its acknowledgement."""
        if not self.sockets:
            raise RuntimeError("no Socket Mode connection")
        envelope_id = f"env-{next(self._ts)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = fut
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        await self.sockets[-1].send_str(json.dumps(envelope))
        try:
            return await asyncio.wait_for(fut, within)
        finally:
            self._acks.pop(envelope_id, None)

    async def push_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_attempt: int = 0, within: float = 3.0
    ) -> dict[str, Any]:
        body = event_callback(event, event_id=event_id or f"Ev{next(self._ts):08d}")
        return await self.push("events_api", body, retry_attempt=retry_attempt, within=within)

    async def push_command(
        self, text: str, *, user: str, command: str = "/huddle", channel: str = "D1", within: float = 3.0
    ) -> dict[str, Any]:
        return await self.push(
            "slash_commands",
            slash_command(text, user=user, command=command, channel=channel, trigger=f"trig-{next(self._ts)}"),
            within=within,
        )

    async def push_click(
        self, value: str, *, user: str, channel: str = "D1", thread_ts: str | None = None, within: float = 3.0
    ) -> dict[str, Any]:
        return await self.push(
            "interactive",
            block_action(value, user=user, channel=channel, thread_ts=thread_ts, trigger=f"trig-{next(self._ts)}"),
            within=within,
        )


def event_callback(event: dict[str, Any], *, event_id: str = "Ev0001", event_time: int = 1700000000) -> dict[str, Any]:
    return {
        "token": "verification-token",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [{"team_id": "T0001", "user_id": BOT_USER, "is_bot": True}],
    }


def dm(text: str, *, user: str, ts: str, channel: str | None = None, **extra: Any) -> dict[str, Any]:
    """A message.im event as Slack sends it."""
    return {
        "type": "message",
        "channel_type": "im",
        "channel": channel or "D" + user.lstrip("UW"),
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": "T0001",
        **extra,
    }


def slash_command(
    text: str, *, user: str, command: str = "/huddle", channel: str = "D1", trigger: str = "trig-1"
) -> dict[str, Any]:
    return {
        "token": "verification-token",
        "team_id": "T0001",
        "channel_id": channel,
        "user_id": user,
        "user_name": "tia",
        "command": command,
        "text": text,
        "api_app_id": "A0001",
        "response_url": "https://hooks.slack.com/commands/1",
        "trigger_id": trigger,
    }


def block_action(
    value: str, *, user: str, channel: str = "D1", thread_ts: str | None = None, trigger: str = "trig-1"
) -> dict[str, Any]:
    container: dict[str, Any] = {"type": "message", "message_ts": "1700000000.000001", "channel_id": channel}
    if thread_ts:
        container["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": user, "username": "tia", "name": "tia", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "verification-token",
        "container": container,
        "trigger_id": trigger,
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"type": "message", "ts": "1700000000.000001", "text": "pick"},
        "actions": [
            {
                "action_id": "huddle-0",
                "block_id": "huddle-actions-0",
                "type": "button",
                "value": value,
                "text": {"type": "plain_text", "text": "Pick"},
                "action_ts": "1700000001.000001",
            }
        ],
    }
