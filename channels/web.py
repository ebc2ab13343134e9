"""Web chat: talk to Huddle from a browser at `/chat`, over a WebSocket on the shared HTTP server.

One browser tab is one *session*: a random id (`secrets.token_urlsafe`) that is the address id on
this channel, `Address("web", session_id)`. In demo mode the page lists the demo people and a
click links the session to one of them (the playground for every audience); otherwise nobody is
listed and a stranger enrols with `start CODE` like on any chat channel. Messages go through the
same inbox, router and outbox as every other channel.

The protocol is JSON text frames. The browser says `hello` (with the session it had, if any) and
gets `welcome`; it sends `text`, `button` (a press: `callback_data`) and `file` (base64), each with
a client id that becomes the provider id (a resend after a reconnect is dropped by the inbox), and
gets `ack` once the message is committed. Huddle sends `message` (the body as a tree of allowed
tags, built into the page with DOM calls, never `innerHTML`, plus buttons); the browser answers
`seen`, which is the delivery report.

Nothing sent is lost while a browser is away: a message to a session with no open socket is
recorded as sent but not delivered, and every (re)connect replays the session's messages that are
still not delivered, from the outbox itself, so a restart in between loses nothing either.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import html
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from bot.lazy import lazy_module
from bot.model import Address, Button, DeliveryReport, Inbound, InboundFile, Outbound, OutboundStatus, Person
from bot.plugins import Plugin
from bot.settings import HuddleSettings
from channels.base import (
    Capabilities,
    ChannelHealth,
    ChannelPolicy,
    DeliveryHandler,
    InboundHandler,
    Markup,
    Pacing,
    SendResult,
)
from channels.markup import Tag, Text, render, tokens
from storage.outbox import OutboxRepo

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App
    from bot.clock import Clock
    from bot.roles import Roles
    from storage.people import PeopleRepo
else:
    web = lazy_module("aiohttp.web")  # imported when the chat is first served, never for other commands

log = logging.getLogger(__name__)

PAGE_PATH = "/chat"
SOCKET_PATH = "/chat/ws"
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_BUTTON_DATA = 256
GOING_AWAY = 1001
"""RFC 6455 close code for a server going down."""
MAX_SESSIONS = 10_000
"""Sessions kept in memory; the oldest idle ones are forgotten first (their people and messages stay stored)."""
MAX_OUTSTANDING = 500
"""Unseen messages a session keeps in memory; older ones are replayed from the outbox."""

PendingLookup = Callable[[Address], Awaitable[list[Outbound]]]


class WebSettings(HuddleSettings):
    web_chat: bool | None = Field(None, description="serve the browser chat at /chat (unset: on in demo mode)")
    web_max_file_bytes: int = Field(2 * 1024 * 1024, ge=1, le=20 * 1024 * 1024, description="largest upload")
    web_max_text_chars: int = Field(4000, ge=1, le=100_000, description="longest message a browser may send")
    web_ack_timeout: float = Field(2.0, gt=0, description="seconds a send waits for the browser to say it showed it")


class WebPolicy(ChannelPolicy):
    """A browser: a small safe HTML (the neutral tags), real buttons and files, no carrier rules."""

    name = "web"
    capabilities = Capabilities(max_length=None, markup=Markup.TELEGRAM_HTML, buttons=True, files=True)
    pacing = Pacing(concurrency=32)
    address_label = "web chat session id"

    def normalize(self, ident: str) -> str:
        ident = ident.strip()
        if not SESSION_RE.fullmatch(ident):
            raise ValueError("a web chat session id is 16-64 letters, digits, _ or -")
        return ident


# -- bodies as trees the page builds with DOM calls ------------------------------------------------

_TREE_TAGS = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s", "strike": "s",
              "del": "s", "code": "code", "pre": "pre", "a": "a", "blockquote": "blockquote"}
_SAFE_HREF = re.compile(r"(?:https?://|mailto:|tel:)", re.IGNORECASE)

Node = str | dict[str, Any]


def body_tree(rendered: str) -> list[Node]:
    """A rendered body (the outbox's safe HTML subset) as nested nodes: text, or {tag, href?, children}.

    Only the tags of the neutral markup survive (others become spans) and a link keeps its address
    only when it is http(s), mailto or tel, so the page can build it without ever parsing HTML.
    """
    root: list[Node] = []
    stack: list[list[Node]] = [root]
    for token in tokens(rendered):
        if isinstance(token, Text):
            siblings = stack[-1]
            if siblings and isinstance(siblings[-1], str):
                siblings[-1] += token.text  # entities come as separate tokens: one text node
            else:
                siblings.append(token.text)
        elif isinstance(token, Tag):
            node: dict[str, Any] = {"tag": _TREE_TAGS.get(token.name, "span"), "children": []}
            href = token.attrs.get("href", "").strip()
            if node["tag"] == "a":
                if _SAFE_HREF.match(href):
                    node["href"] = href
                else:
                    node["tag"] = "span"
            stack[-1].append(node)
            stack.append(node["children"])
        elif len(stack) > 1:
            stack.pop()
    return root


# -- sessions ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    id: str
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    outstanding: OrderedDict[str, tuple[int, dict[str, Any]]] = field(default_factory=OrderedDict)
    """Messages pushed (or waiting to be) and not yet seen: provider id → (outbox id, frame)."""
    waiting: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    """Sends waiting for the browser's `seen`, by provider id."""
    person: dict[str, Any] | None = None

    @property
    def address(self) -> Address:
        return Address(WebPolicy.name, self.id)

    def remember(self, pid: str, order: int, frame: dict[str, Any]) -> None:
        self.outstanding[pid] = (order, frame)
        while len(self.outstanding) > MAX_OUTSTANDING:
            self.outstanding.popitem(last=False)  # still stored as not delivered: replayed from the outbox


class FrameError(Exception):
    """A frame the browser can fix: answered with a short `error`, the socket stays open."""

    def __init__(self, message: str, client_id: str | None = None, retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.client_id = client_id
        self.retry = retry


class WebChannel:
    """The adapter: the `/chat` page, the WebSocket, and sends pushed to a session's sockets."""

    name = "web"

    def __init__(
        self,
        settings: WebSettings,
        policy: WebPolicy,
        clock: Clock,
        *,
        people: PeopleRepo,
        roles: Roles,
        pending: PendingLookup,
        demo: bool,
        title: Callable[[], str] = lambda: "Huddle",
        url: str = PAGE_PATH,
        stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.people = people
        self.roles = roles
        self.pending = pending
        self.demo = demo
        self.title = title
        self.url = url
        self.stopping = stopping
        """Resolves when the process is asked to stop (`App.wait_stopped`): open sockets are closed
        then, before the HTTP server's shutdown would wait up to a minute for them."""
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.frame_limit = (settings.web_max_file_bytes + 2) // 3 * 4 + 64 * 1024
        """Largest frame read at all (a file at the limit, base64, plus its fields); beyond it the
        socket is closed with 1009 "message too big" before the frame is buffered."""
        self._on_inbound: InboundHandler | None = None
        self._on_delivery: DeliveryHandler | None = None
        self._running = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._watch: asyncio.Task[None] | None = None

    @property
    def summary(self) -> str:
        picker = "demo people to pick" if self.demo else "invite codes only"
        return f"browser chat at {self.url} ({picker})"

    # -- the Channel contract -------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self._on_inbound = on_inbound
        self._on_delivery = on_delivery
        self._running = True
        if self.stopping is not None and self._watch is None:
            self._watch = asyncio.create_task(self._close_when_stopping(), name="web-chat-close-on-stop")

    async def _close_when_stopping(self) -> None:
        assert self.stopping is not None
        await self.stopping()
        self._running = False
        await self.close_sockets()

    async def stop_receiving(self) -> None:
        self._running = False

    async def stop(self) -> None:
        self._running = False
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.close_sockets()
        for session in self.sessions.values():
            for fut in session.waiting.values():
                if not fut.done():
                    fut.cancel()

    async def close_sockets(self, _app: object = None) -> None:
        """Close every open socket, said hello or not (so the HTTP server's shutdown never waits on one)."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=GOING_AWAY, message=b"Huddle is restarting")

    def health(self) -> ChannelHealth:
        online = sum(1 for s in self.sessions.values() if s.sockets)
        return ChannelHealth(self._running, {
            "sessions_online": online,
            "sockets": len(self._sockets),
            "unseen": sum(len(s.outstanding) for s in self.sessions.values()),
        })

    async def send(self, outbound: Outbound) -> SendResult:
        """Push to the session's open sockets; with none, keep it (sent, not yet delivered) for its return.

        Delivered means the browser said it showed the message; the send waits for that a moment
        (`web_ack_timeout`), and a later `seen` arrives as a delivery report.
        """
        session = self._session(outbound.address.id)
        pid = _provider_id(outbound)
        frame = self._frame(pid, outbound.body, outbound.buttons, outbound.created_at or self.clock.now())
        if session.person is None:
            await self._refresh_identity(session)
        session.remember(pid, outbound.id or 0, frame)
        if not session.sockets:
            return SendResult([pid], delivered=False)
        seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.waiting[pid] = seen
        try:
            await self._push(session, frame)
            delivered = await self._wait(seen, self.settings.web_ack_timeout)
        finally:
            session.waiting.pop(pid, None)
        return SendResult([pid], delivered=delivered)

    # -- sessions ----------------------------------------------------------------------------------

    def _session(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            session = self.sessions[sid] = Session(sid)
            self._prune()
        else:
            self.sessions.move_to_end(sid)
        return session

    def _prune(self) -> None:
        if len(self.sessions) <= MAX_SESSIONS:
            return
        for sid, session in list(self.sessions.items()):
            if len(self.sessions) <= MAX_SESSIONS:
                break
            if not session.sockets and not session.waiting:
                del self.sessions[sid]

    async def _refresh_identity(self, session: Session, *, announce: bool = True) -> None:
        """Who the session is now: after `start CODE` a stranger's session becomes someone, and the page says so."""
        person = await self.people.by_address(session.address)
        view = self._person_view(person) if person is not None else None
        if view == session.person:
            return
        session.person = view
        if view is not None and announce:
            await self._push(session, {"type": "whoami", "person": view})

    def _person_view(self, person: Person) -> dict[str, Any]:
        roles = sorted(person.roles, key=lambda r: (-(self.roles.rank(r) or -1), r))
        return {"id": person.id, "name": person.name, "roles": [r.replace("_", " ") for r in roles]}

    async def _resume(self, sid: object) -> Session:
        """The session a browser had (kept in memory, or linked to a person before a restart), or a new one."""
        if isinstance(sid, str) and SESSION_RE.fullmatch(sid):
            if sid in self.sessions:
                return self._session(sid)
            if await self.people.by_address(Address(self.name, sid)) is not None:
                return self._session(sid)
        return self._session(secrets.token_urlsafe(18))

    # -- pushing -----------------------------------------------------------------------------------

    def _frame(self, pid: str, body: str, buttons: Iterable[Button], at: datetime) -> dict[str, Any]:
        return {
            "type": "message",
            "id": pid,
            "body": body_tree(body),
            "buttons": [{"text": b.text, "data": b.data} for b in buttons],
            "at": at.isoformat(),
        }

    async def _push(self, session: Session, frame: dict[str, Any]) -> None:
        for ws in list(session.sockets):
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):  # closing under us: the message stays unseen
                session.sockets.discard(ws)

    async def _wait(self, fut: asyncio.Future[None], timeout: float) -> bool:
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return fut.done() and not fut.cancelled()

    async def _replay(self, session: Session, ws: web.WebSocketResponse) -> None:
        """Everything this session has not seen yet, oldest first: the outbox's record, and what is in hand."""
        frames: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in await self.pending(session.address):
            if row.id is not None and row.status is OutboundStatus.SENT:
                pid = _provider_id(row)
                body = render(row.body, self.policy.capabilities.markup)
                frames[pid] = (row.id or 0, self._frame(pid, body, row.buttons, row.created_at or self.clock.now()))
        for pid, (order, frame) in session.outstanding.items():
            frames.setdefault(pid, (order, frame))
        for pid, (order, frame) in sorted(frames.items(), key=lambda item: item[1][0] or 1 << 62):
            session.outstanding.setdefault(pid, (order, frame))
            await ws.send_json(frame)

    # -- HTTP --------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """The chat page: server-rendered, self-contained, every text escaped."""
        people = await self.people.all() if self.demo else []
        nonce = secrets.token_urlsafe(16)
        body = page_html(
            title=self.title(),
            groups=self._groups(people),
            demo=self.demo,
            config={
                "socket": SOCKET_PATH,
                "demo": self.demo,
                "maxFileBytes": self.settings.web_max_file_bytes,
                "maxTextChars": self.settings.web_max_text_chars,
                "maxFrame": self.frame_limit,
                "start": self.policy.command_label("start"),
            },
            nonce=nonce,
        )
        headers = {
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)

    def _groups(self, people: list[Person]) -> list[tuple[str, str, list[Person]]]:
        """Demo people by their highest declared role, audiences in rank order (customers first)."""
        groups: dict[str, list[Person]] = {}
        for person in people:
            known = [r for r in person.roles if r in self.roles]
            top = max(known, key=lambda r: (self.roles.rank(r) or 0, r)) if known else ""
            groups.setdefault(top, []).append(person)
        ordered = sorted(groups, key=lambda r: (r == "", self.roles.rank(r) or 0, r))
        found = []
        for role in ordered:
            spec = self.roles.get(role) if role else None
            label = role.replace("_", " ").capitalize() if role else "Others"
            found.append((label, spec.description if spec else "", groups[role]))
        return found

    def _origin_ok(self, request: web.Request) -> bool:
        """A browser names the page that opens a socket: only this server's own page may."""
        origin = request.headers.get("Origin")
        if not origin:
            return True  # not a browser (a test client, a script): nothing to hijack
        given = origin.split("://", 1)[-1].rstrip("/").lower()
        hosts = {request.headers.get("Host", ""), *request.headers.get("X-Forwarded-Host", "").split(",")}
        return given in {h.strip().lower() for h in hosts if h.strip()}

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_ok(request):
            return web.Response(status=403, text="This chat only opens from its own page.")
        if not self._running:
            return web.Response(status=503, text="Huddle is starting or stopping; try again in a moment.")
        ws = web.WebSocketResponse(max_msg_size=self.frame_limit, heartbeat=30)
        await ws.prepare(request)
        conn: dict[str, Session | None] = {"session": None}
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type is web.WSMsgType.TEXT:
                    await self._on_text(ws, conn, msg.data)
                elif msg.type is web.WSMsgType.BINARY:
                    await _error(ws, 'Send JSON text frames, e.g. {"type": "text", "id": "1", "text": "hi"}.')
                elif msg.type is web.WSMsgType.ERROR:
                    log.info("web socket closed: %s", ws.exception())
                    break
        finally:
            self._sockets.discard(ws)
            session = conn["session"]
            if session is not None:
                session.sockets.discard(ws)
        return ws

    # -- frames from the browser -------------------------------------------------------------------

    async def _on_text(self, ws: web.WebSocketResponse, conn: dict[str, Session | None], raw: str) -> None:
        try:
            try:
                data = json.loads(raw)
            except ValueError:
                raise FrameError("That wasn't valid JSON.") from None
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise FrameError("A message is a JSON object with a \"type\".")
            kind = data["type"]
            if kind == "hello":
                await self._attach(ws, conn, await self._resume(data.get("session")))
                return
            session = conn["session"]
            if session is None:
                raise FrameError("Say hello first: {\"type\": \"hello\"}.")
            if kind == "ping":
                await ws.send_json({"type": "pong"})  # frames are handled in order: a barrier, a keep-alive
            elif kind == "pick":
                await self._pick(ws, conn, session, data)
            elif kind == "seen":
                await self._seen(session, data.get("ids"))
            elif kind in ("text", "button", "file"):
                await self._inbound(ws, session, kind, data)
            else:
                raise FrameError(f"Unknown message type “{kind[:40]}”.")
        except FrameError as exc:
            await _error(ws, exc.message, exc.client_id, exc.retry)

    async def _attach(self, ws: web.WebSocketResponse, conn: dict[str, Session | None], session: Session) -> None:
        previous = conn["session"]
        if previous is not None:
            previous.sockets.discard(ws)
        conn["session"] = session
        session.sockets.add(ws)
        await self._refresh_identity(session, announce=False)
        await ws.send_json({"type": "welcome", "session": session.id, "person": session.person, "demo": self.demo})
        await self._replay(session, ws)

    async def _pick(
        self, ws: web.WebSocketResponse, conn: dict[str, Session | None], session: Session, data: dict[str, Any]
    ) -> None:
        """Demo only: act as one of the demo people, on a session of this browser's for them."""
        if not self.demo:
            raise FrameError(f"Picking a person only works in the demo. Send "
                             f"{self.policy.command_label('start')} CODE with your invite code.")
        person_id = data.get("person")
        if not isinstance(person_id, int) or isinstance(person_id, bool):
            raise FrameError("Pick a person by their id.")
        person = await self.people.get(person_id)
        if person is None or person.id is None:
            raise FrameError("There is no such person.")
        reuse = data.get("session")
        if isinstance(reuse, str) and SESSION_RE.fullmatch(reuse):
            holder = await self.people.by_address(Address(self.name, reuse))
            if holder is not None and holder.id == person.id:
                await self._attach(ws, conn, self._session(reuse))
                return
        chosen = self._session(secrets.token_urlsafe(18))
        await self.people.add_address(person.id, chosen.address)
        log.info("web session picked a demo person person_id=%s", person.id)
        await self._attach(ws, conn, chosen)

    async def _seen(self, session: Session, ids: object) -> None:
        if not isinstance(ids, list):
            raise FrameError("“seen” takes a list of message ids.")
        for pid in ids[:100]:
            if not isinstance(pid, str) or pid not in session.outstanding:
                continue  # not a message of this session
            session.outstanding.pop(pid, None)
            waiting = session.waiting.get(pid)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)  # the send returns delivered
            elif waiting is None and self._on_delivery is not None:
                await self._on_delivery(
                    DeliveryReport(self.name, pid, True, address=session.address, at=self.clock.now())
                )

    async def _inbound(self, ws: web.WebSocketResponse, session: Session, kind: str, data: dict[str, Any]) -> None:
        cid = data.get("id")
        if not isinstance(cid, str) or not CLIENT_ID_RE.fullmatch(cid):
            raise FrameError("Every message needs an \"id\": 1-64 letters, digits, _ or -.")
        limit = self.settings.web_max_text_chars
        text = data.get("text", "")
        if not isinstance(text, str):
            raise FrameError("“text” must be text.", cid)
        if len(text) > limit:
            raise FrameError(f"That message is {len(text):,} characters; the limit is {limit:,}.", cid)
        files: list[InboundFile] = []
        callback = None
        if kind == "text":
            if not text.strip():
                raise FrameError("That message is empty.", cid)
        elif kind == "button":
            callback = data.get("data")
            if not isinstance(callback, str) or not 1 <= len(callback) <= MAX_BUTTON_DATA:
                raise FrameError("That button press carries no valid data.", cid)
            label = data.get("label")
            text = label[:200] if isinstance(label, str) and label.strip() else callback
        else:
            files.append(self._file(cid, data))
        if not self._running or self._on_inbound is None:
            raise FrameError("Huddle is restarting; your message will be sent again when it is back.", cid, retry=True)
        message = Inbound(
            address=session.address,
            text=text,
            provider_id=f"{session.id}:{cid}",
            received_at=self.clock.now(),
            files=files,
            callback_data=callback,
            display_name=session.person["name"] if session.person else None,
        )
        try:
            await self._on_inbound(message)
        except Exception:
            log.exception("web inbound could not be stored")
            raise FrameError("Huddle couldn't take that message just now; it will be sent again.", cid,
                             retry=True) from None
        await ws.send_json({"type": "ack", "id": cid, "at": self.clock.now().isoformat()})

    def _file(self, cid: str, data: dict[str, Any]) -> InboundFile:
        name, mimetype, encoded = data.get("name"), data.get("mimetype"), data.get("data")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise FrameError("A file needs a name (up to 255 characters).", cid)
        if mimetype is not None and (not isinstance(mimetype, str) or len(mimetype) > 200):
            raise FrameError("That file's type can't be read.", cid)
        if not isinstance(encoded, str):
            raise FrameError("A file's content goes in \"data\", base64-encoded.", cid)
        cap = self.settings.web_max_file_bytes
        if len(encoded) > (cap + 2) // 3 * 4 + 4:
            raise FrameError(f"“{name[:80]}” is over the {_size(cap)} limit for files.", cid)
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise FrameError(f"“{name[:80]}” didn't arrive intact (its base64 is broken).", cid) from None
        if len(content) > cap:
            raise FrameError(f"“{name[:80]}” is over the {_size(cap)} limit for files.", cid)
        return InboundFile(name.strip(), mimetype or None, len(content), content=content, provider_id=cid)


def _provider_id(outbound: Outbound) -> str:
    """The id a message has on this channel: its outbox row, so a replay after a restart carries the
    same id, the browser shows it once, and its `seen` settles that row."""
    return f"m{outbound.id}" if outbound.id is not None else "x" + secrets.token_urlsafe(12)


async def _error(ws: web.WebSocketResponse, message: str, client_id: str | None = None, retry: bool = False) -> None:
    frame: dict[str, Any] = {"type": "error", "error": message}
    if client_id is not None:
        frame["id"] = client_id
    if retry:
        frame["retry"] = True
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(frame)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


# -- the page ----------------------------------------------------------------------------------------


def _json_for_script(value: object) -> str:
    """JSON that cannot end its <script> element or open a comment."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(
    *, title: str, groups: list[tuple[str, str, list[Person]]], demo: bool, config: dict[str, Any], nonce: str
) -> str:
    e = html.escape
    if demo:
        sections = []
        for label, description, people in groups:
            buttons = "".join(
                f'<button type="button" class="person" data-person="{int(p.id or 0)}">'
                f'{e(p.name or "(no name)")}</button>'
                for p in people
            )
            hint = f'<span class="hint">{e(description)}</span>' if description else ""
            sections.append(f'<section class="group"><h3>{e(label)} {hint}</h3><div class="people">{buttons}</div>'
                            "</section>")
        picker = (
            '<details id="picker" open><summary>Talk as someone from the demo</summary>'
            + ("".join(sections) or "<p>No demo people yet.</p>")
            + "</details>"
        )
        nobody = "Pick someone below to talk as them."
    else:
        picker = ""
        nobody = f"Not signed in: send {config['start']} CODE with the invite code your admin gave you."
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>{e(title)} · web chat</title>
<style nonce="{nonce}">{_CSS}</style>
</head>
<body>
<header>
  <div class="bar"><h1>{e(title)}</h1><span id="status" class="status">connecting…</span></div>
  <p id="who" class="who" data-nobody="{e(nobody)}">{e(nobody)}</p>
</header>
{picker}
<main id="log" aria-live="polite"></main>
<form id="composer" autocomplete="off">
  <label class="attach" title="Send a file" aria-label="Send a file"><svg viewBox="0 0 24 24" width="22" height="22"
    aria-hidden="true"><path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"
    d="M21 11.5l-8.6 8.6a5 5 0 01-7.1-7.1l8.6-8.6a3.5 3.5 0 015 5L10.3 18a2 2 0 01-2.8-2.8l7.9-7.9"/></svg><input
    id="file" type="file"></label>
  <input id="text" type="text" maxlength="{int(config['maxTextChars'])}" placeholder="Type a message"
         aria-label="Message">
  <button id="send" type="submit">Send</button>
</form>
<script id="huddle-config" type="application/json">{_json_for_script(config)}</script>
<script nonce="{nonce}">{_JS}</script>
</body>
</html>
"""


_CSS = """
*{box-sizing:border-box}
html,body{height:100%;margin:0}
body{display:flex;flex-direction:column;max-width:760px;margin:0 auto;font:16px/1.4 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2129}
header{padding:.6rem .9rem;background:#1f3a5f;color:#fff}
.bar{display:flex;align-items:center;gap:.6rem}
h1{font-size:1.1rem;margin:0;flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.status{font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;background:#8a6d00}
.status.online{background:#1d7a46}
.who{margin:.3rem 0 0;font-size:.9rem;opacity:.95}
details{background:#fff;border-bottom:1px solid #d8dbe0;padding:.4rem .9rem;max-height:45vh;overflow:auto}
summary{cursor:pointer;font-weight:600;padding:.3rem 0}
.group h3{font-size:.85rem;margin:.5rem 0 .3rem;text-transform:none}
.hint{font-weight:400;color:#5b6270}
.people{display:flex;flex-wrap:wrap;gap:.4rem}
button{font:inherit;cursor:pointer;border-radius:.5rem;border:1px solid #b8c2d0;background:#fff;color:#1f3a5f;
padding:.45rem .75rem;min-height:2.5rem}
button:hover{background:#e8eef7}
button.person.current{background:#1f3a5f;color:#fff}
main{flex:1;overflow-y:auto;padding:.8rem .9rem;display:flex;flex-direction:column;gap:.5rem}
.msg{max-width:88%;padding:.5rem .75rem;border-radius:.8rem;white-space:pre-wrap;overflow-wrap:anywhere}
.msg.bot{align-self:flex-start;background:#fff;border:1px solid #d8dbe0;border-bottom-left-radius:.2rem}
.msg.me{align-self:flex-end;background:#d7e8ff;border-bottom-right-radius:.2rem}
.msg .meta{font-size:.72rem;color:#5b6270;margin-top:.2rem;text-align:right}
.msg pre{background:#f0f1f4;padding:.4rem;border-radius:.3rem;overflow-x:auto;white-space:pre}
.msg code{background:#f0f1f4;padding:0 .2rem;border-radius:.2rem}
.buttons{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.5rem;white-space:normal}
button.choice.pressed{background:#e8eef7;border-color:#1f3a5f}
.note{align-self:center;font-size:.85rem;color:#5b6270;text-align:center}
.note.error{color:#a1251b}
form{display:flex;gap:.4rem;padding:.6rem .9rem;background:#fff;border-top:1px solid #d8dbe0}
#text{flex:1;min-width:0;font:inherit;padding:.5rem .7rem;border:1px solid #b8c2d0;border-radius:.5rem}
.attach{display:flex;align-items:center;justify-content:center;min-width:2.5rem;cursor:pointer;color:#1f3a5f}
.attach input{display:none}
@media (prefers-color-scheme:dark){body{background:#15181d;color:#e6e8eb}details,form{background:#1d2128;
border-color:#30353e}.msg.bot{background:#1d2128;border-color:#30353e}.msg.me{background:#23426b}
button{background:#1d2128;color:#cfe0ff;border-color:#3a4250}#text{background:#15181d;color:inherit;
border-color:#3a4250}.hint,.note,.msg .meta{color:#9aa3b0}.msg pre,.msg code{background:#2a2f37}}
"""

_JS = r"""
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("huddle-config").textContent);
  const $ = (id) => document.getElementById(id);
  const log = $("log"), form = $("composer"), input = $("text"), fileInput = $("file"),
        statusEl = $("status"), who = $("who"), picker = $("picker");
  const SESSION_KEY = "huddle.web.session", PEOPLE_KEY = "huddle.web.people";
  let ws = null, session = sessionStorage.getItem(SESSION_KEY), tries = 0, welcomed = false;
  const unacked = new Map();
  const seen = new Set();

  function newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  const TAGS = {b: "b", i: "i", u: "u", s: "s", code: "code", pre: "pre", a: "a", blockquote: "blockquote",
                span: "span"};
  function safeHref(href) {
    try {
      const url = new URL(href, location.href);
      return ["http:", "https:", "mailto:", "tel:"].includes(url.protocol) ? url.href : null;
    } catch (err) { return null; }
  }
  function build(nodes, parent) {
    for (const n of nodes || []) {
      if (typeof n === "string") { parent.appendChild(document.createTextNode(n)); continue; }
      if (!n || typeof n !== "object") continue;
      const tag = Object.prototype.hasOwnProperty.call(TAGS, n.tag) ? TAGS[n.tag] : "span";
      let node;
      const href = tag === "a" ? safeHref(String(n.href || "")) : null;
      if (href) {
        node = document.createElement("a");
        node.href = href; node.rel = "noopener noreferrer"; node.target = "_blank";
      } else {
        node = document.createElement(tag === "a" ? "span" : tag);
      }
      build(n.children, node);
      parent.appendChild(node);
    }
  }
  function clock(iso) {
    const d = iso ? new Date(iso) : new Date();
    return isNaN(d) ? "" : d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function note(text, kind) {
    const n = el("div", "note" + (kind ? " " + kind : ""), text);
    log.appendChild(n); scroll();
  }
  function size(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(1).replace(".0", "") + " MB" : Math.ceil(n / 1024) + " KB";
  }
  function setStatus(text, online) { statusEl.textContent = text; statusEl.classList.toggle("online", !!online); }
  function setMe(person) {
    document.querySelectorAll("button.person").forEach(
      (b) => b.classList.toggle("current", !!person && b.dataset.person === String(person.id)));
    if (!person) { who.textContent = who.dataset.nobody; return; }
    who.textContent = "Acting as " + person.name + (person.roles.length ? " · " + person.roles.join(", ") : "");
  }
  function remember(personId, sid) {
    let map = {};
    try { map = JSON.parse(localStorage.getItem(PEOPLE_KEY) || "{}") || {}; } catch (err) { map = {}; }
    map[String(personId)] = sid;
    try { localStorage.setItem(PEOPLE_KEY, JSON.stringify(map)); } catch (err) { /* private mode */ }
  }
  function sessionFor(personId) {
    try { return (JSON.parse(localStorage.getItem(PEOPLE_KEY) || "{}") || {})[String(personId)] || null; }
    catch (err) { return null; }
  }
  function showBot(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    const row = el("div", "msg bot");
    row.dataset.id = m.id;
    const body = el("div", "body");
    build(m.body, body);
    row.appendChild(body);
    if (Array.isArray(m.buttons) && m.buttons.length) {
      const bar = el("div", "buttons");
      for (const b of m.buttons) {
        const btn = el("button", "choice", String(b.text));
        btn.type = "button";
        btn.addEventListener("click", () => {
          btn.classList.add("pressed");
          send({type: "button", id: newId(), data: String(b.data), label: String(b.text)}, "▸ " + b.text);
        });
        bar.appendChild(btn);
      }
      row.appendChild(bar);
    }
    row.appendChild(el("div", "meta", clock(m.at)));
    log.appendChild(row); scroll();
  }
  function showMine(frame, label) {
    const row = el("div", "msg me");
    row.dataset.cid = frame.id;
    row.appendChild(el("div", "body", label));
    row.appendChild(el("div", "meta", "sending…"));
    log.appendChild(row); scroll();
  }
  function mark(cid, text) {
    const row = log.querySelector('[data-cid="' + cid + '"] .meta');
    if (row) row.textContent = text;
  }
  function transmit(frame) {
    if (ws && ws.readyState === WebSocket.OPEN && welcomed) ws.send(JSON.stringify(frame));
  }
  function send(frame, label) {
    const raw = JSON.stringify(frame);
    if (raw.length > cfg.maxFrame) { note("That is too big to send.", "error"); return; }
    unacked.set(frame.id, frame);
    showMine(frame, label);
    transmit(frame);
  }
  function onFrame(event) {
    let m;
    try { m = JSON.parse(event.data); } catch (err) { return; }
    if (!m || typeof m !== "object") return;
    if (m.type === "welcome") {
      if (session && session !== m.session) { log.textContent = ""; seen.clear(); }
      session = m.session; welcomed = true;
      try { sessionStorage.setItem(SESSION_KEY, session); } catch (err) { /* private mode */ }
      setMe(m.person);
      if (m.person) { remember(m.person.id, session); if (picker) picker.open = false; }
      for (const f of unacked.values()) transmit(f);
    } else if (m.type === "whoami") {
      setMe(m.person);
      if (m.person) remember(m.person.id, session);
    } else if (m.type === "message") {
      showBot(m);
      ws.send(JSON.stringify({type: "seen", ids: [m.id]}));
    } else if (m.type === "ack") {
      unacked.delete(m.id); mark(m.id, clock(m.at));
    } else if (m.type === "error") {
      if (m.id && !m.retry) { unacked.delete(m.id); mark(m.id, "not sent"); }
      note(String(m.error), "error");
    }
  }
  function connect() {
    setStatus("connecting…", false);
    welcomed = false;
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + cfg.socket);
    ws.addEventListener("open", () => {
      tries = 0; setStatus("online", true);
      ws.send(JSON.stringify({type: "hello", session}));
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", (event) => {
      setStatus("offline, reconnecting…", false);
      if (event.code === 1009) note("That was too big to send.", "error");
      setTimeout(connect, Math.min(10000, 500 * 2 ** tries++));
    });
  }
  document.querySelectorAll("button.person").forEach((b) => b.addEventListener("click", () => {
    if (!ws || ws.readyState !== WebSocket.OPEN) { note("Not connected yet; try again in a moment.", "error"); return; }
    unacked.clear();
    const id = Number(b.dataset.person);
    ws.send(JSON.stringify({type: "pick", person: id, session: sessionFor(id)}));
  }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (text.length > cfg.maxTextChars) { note("That message is too long.", "error"); return; }
    input.value = "";
    send({type: "text", id: newId(), text}, text);
  });
  fileInput.addEventListener("change", async () => {
    const f = fileInput.files[0];
    fileInput.value = "";
    if (!f) return;
    if (f.size > cfg.maxFileBytes) {
      note("“" + f.name + "” is over the " + size(cfg.maxFileBytes) + " limit for files.", "error");
      return;
    }
    const bytes = new Uint8Array(await f.arrayBuffer());
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    const caption = input.value.trim();
    input.value = "";
    send({type: "file", id: newId(), name: f.name, mimetype: f.type || null, data: btoa(bin), text: caption},
         "File: " + f.name + " (" + size(f.size) + ")" + (caption ? "\n" + caption : ""));
  });
  connect();
})();
"""


# -- the plugin --------------------------------------------------------------------------------------


def setup(app: App) -> None:
    """Declare the channel always; serve `/chat` when enabled (by default in demo mode)."""
    settings = app.use_settings(WebSettings)
    policy = WebPolicy()
    app.declare_channel(policy)
    enabled = settings.web_chat if settings.web_chat is not None else app.settings.demo
    if not enabled:
        return
    outbox = OutboxRepo(app.db)

    async def pending(address: Address) -> list[Outbound]:
        return await outbox.find(address=address, status=OutboundStatus.SENT, limit=MAX_OUTSTANDING)

    host = app.settings.http_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    url = f"http://{host}:{app.settings.http_port}{PAGE_PATH}"
    channel = WebChannel(settings, policy, app.clock, people=app.people, roles=app.roles, pending=pending,
                         demo=app.settings.demo, title=app.hooks.title, url=url, stopping=app.wait_stopped)
    # built (cheaply: no I/O, no import) now for its routes, started with the other adapters
    app.add_channel_factory("web", lambda: channel, channel.summary)

    async def announce(app: App) -> None:
        if app.http.port is not None:
            channel.url = url.replace(f":{app.settings.http_port}/", f":{app.http.port}/", 1)
            log.info("web chat at %s%s", channel.url, " (demo: pick a person)" if channel.demo else "")

    app.on_ready(announce)
    app.http.route("GET", PAGE_PATH, channel.page)
    app.http.route("GET", SOCKET_PATH, channel.socket)

    async def close_on_http_shutdown(app: App) -> None:
        """Also close sockets when the HTTP application shuts down, if it is not serving yet
        (a test server); a running bot has bound its port by now, and `stopping` covers it."""
        if app.http.web.frozen:
            return
        app.http.web.on_shutdown.append(channel.close_sockets)

    app.on_startup(close_on_http_shutdown)


plugin = Plugin("web", setup, description="browser chat at /chat: the playground in demo mode")

__all__ = ["WebChannel", "WebPolicy", "WebSettings", "body_tree", "page_html", "plugin", "setup"]
