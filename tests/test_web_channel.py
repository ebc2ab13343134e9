"""The web chat channel (channels/web.py), from the browser's side.

Protocol tests talk to `/chat/ws` with aiohttp's test client, as the page's script does; the
browser test drives the real page in headless Chromium through Playwright.

Material from outside: the XSS vectors are from OWASP's "XSS Filter Evasion Cheat Sheet"
(OWASP/CheatSheetSeries, cheatsheets/XSS_Filter_Evasion_Cheat_Sheet.md); the base64 vectors are
RFC 4648 §10; close code 1009 ("message too big") is RFC 6455 §7.4.1.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

import main
from bot.model import Address, Button, OutboundStatus
from bot.plugins import Plugin
from bot.roles import RoleSpec
from bot.router import Greedy, Reply, Router
from channels.base import Markup
from channels.markup import esc, render
from channels.web import WebChannel, WebPolicy, body_tree
from storage.inbox import inbound
from storage.invites import InviteRepo
from tests.flows import CHANNELS, Flow, migrated_sqlite
from tests.test_chatters_flow import EXPORT

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

# -- a tiny audience to probe the protocol with ----------------------------------------------------

probe = Router("web_probe")
MEMBER = "member"


@probe.command("ping", roles={MEMBER})
async def ping(ctx: Any) -> Reply:
    return Reply("pong <b>bold</b> " + esc("<script>x</script> & co"),
                 [Button("More", "more:1"), Button("Less", "less:1")])


@probe.callback("more:", roles={MEMBER})
async def more(ctx: Any) -> str:
    return f"more {ctx.args} (pressed “{esc(ctx.text)}”)"


@probe.command("echo", roles={MEMBER})
async def echo(ctx: Any, rest: Greedy = "") -> str:
    return rest  # on purpose not escaped: a handler that forgot esc() must still not script the page


@probe.file(roles={MEMBER})
async def upload(ctx: Any) -> str:
    f = ctx.inbound.files[0]
    assert f.content is not None
    content = f.content.decode("utf-8", "replace")
    return f"got {esc(f.name)} {f.mimetype} {f.size} bytes [{esc(content)}] {esc(ctx.text)}"


def _probe_setup(app: Any) -> None:
    app.declare_role(RoleSpec(MEMBER, rank=5))
    app.include_router(probe)


PROBE = Plugin("web_probe", _probe_setup)
AUDIENCES = [p for p in main.PLUGINS if not p.startswith("channels.")]


async def web_flow(*, plugins: Any = (PROBE,), **kwargs: Any) -> Flow:
    kwargs.setdefault("web_chat", True)
    return await Flow.create(channels=[*CHANNELS, "channels.web"], plugins=plugins, **kwargs)


class Browser:
    """What the page's script does, frame by frame."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.counter = 0

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.ws.receive_json(), timeout)

    async def until(self, kind: str, *, seen: bool = True) -> dict[str, Any]:
        """The next frame of `kind` (frames of other kinds before it are dropped); messages are acknowledged."""
        while True:
            frame = await self.recv()
            if frame["type"] == "message" and seen:
                await self.ws.send_json({"type": "seen", "ids": [frame["id"]]})
            if frame["type"] == kind:
                return frame

    async def hello(self, session: str | None = None) -> dict[str, Any]:
        await self.ws.send_json({"type": "hello", "session": session})
        return await self.until("welcome")

    def next_id(self) -> str:
        self.counter += 1
        return f"c{self.counter}"

    async def say(self, text: str, **extra: Any) -> dict[str, Any]:
        """Send a text; returns the reply (after checking the message was acknowledged first)."""
        cid = extra.pop("id", None) or self.next_id()
        await self.ws.send_json({"type": "text", "id": cid, "text": text, **extra})
        ack = await self.until("ack")
        assert ack["id"] == cid
        return await self.until("message")

    async def sync(self) -> None:
        """Frames are handled in order: once the pong is back, everything sent before it was handled."""
        await self.ws.send_json({"type": "ping"})
        await self.until("pong")


async def stored(flow: Flow) -> list[Any]:
    """The inbound rows of the web channel, oldest first."""
    async with flow.app.db.read() as conn:
        query = sa.select(inbound).where(inbound.c.channel == "web").order_by(inbound.c.id)
        return list((await conn.execute(query)).all())


def text_of(nodes: list[Any]) -> str:
    return "".join(n if isinstance(n, str) else text_of(n["children"]) for n in nodes)


@pytest.fixture
async def member_flow() -> AsyncIterator[tuple[Flow, TestClient, str]]:
    flow = await web_flow()
    sid = secrets.token_urlsafe(18)
    await flow.person("Ann Probe", {MEMBER}, web=sid)
    client = TestClient(TestServer(flow.app.http.web))
    await client.start_server()
    try:
        yield flow, client, sid
    finally:
        await client.close()
        await flow.close()


async def connect(client: TestClient, session: str | None = None) -> tuple[Browser, dict[str, Any]]:
    browser = Browser(await client.ws_connect("/chat/ws"))
    return browser, await browser.hello(session)


# -- the protocol ----------------------------------------------------------------------------------------


async def test_text_gets_its_reply_with_markup_as_a_tree_and_real_buttons(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, welcome = await connect(client, sid)
    assert welcome["session"] == sid and welcome["person"]["name"] == "Ann Probe"
    assert welcome["person"]["roles"] == ["member"] and welcome["demo"] is False

    reply = await browser.say("ping")
    assert reply["body"] == ["pong ", {"tag": "b", "children": ["bold"]}, " <script>x</script> & co"]
    assert reply["buttons"] == [{"text": "More", "data": "more:1"}, {"text": "Less", "data": "less:1"}]
    await browser.sync()
    await flow.settle()  # the send's own bookkeeping may still be committing when the browser says "seen"
    [row] = [r for r in await flow.outbox_rows() if r.address == Address("web", sid)]
    assert row.status is OutboundStatus.DELIVERED  # the browser said it showed it


async def test_button_press_reaches_the_callback_handler(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    await browser.say("ping")
    await browser.ws.send_json({"type": "button", "id": "b1", "data": "more:1", "label": "More"})
    assert (await browser.until("ack"))["id"] == "b1"
    reply = await browser.until("message")
    assert text_of(reply["body"]) == "more 1 (pressed “More”)"
    presses = [m for m in await stored(flow) if m.callback_data]
    assert [(m.callback_data, m.text, m.provider_id) for m in presses] == [("more:1", "More", f"{sid}:b1")]


async def test_file_upload_reaches_the_file_handler_with_its_bytes(member_flow: Any) -> None:
    _flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    # RFC 4648 §10 test vectors: what the browser's btoa() sends must decode to these bytes
    for plain, encoded in [("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                           ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]:
        await browser.ws.send_json({"type": "file", "id": browser.next_id(), "name": f"{plain}.txt",
                                    "mimetype": "text/plain", "data": encoded, "text": "for 2026-11-20"})
        await browser.until("ack")
        reply = await browser.until("message")
        assert text_of(reply["body"]) == f"got {plain}.txt text/plain {len(plain)} bytes [{plain}] for 2026-11-20"


async def test_file_over_the_limit_gets_a_clear_error_and_reaches_no_handler(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    cap = flow.app.channels["web"].settings.web_max_file_bytes
    assert cap == 2 * 1024 * 1024
    data = base64.b64encode(b"x" * (cap + 1)).decode()
    await browser.ws.send_json({"type": "file", "id": "big", "name": "huge.csv", "mimetype": "text/csv", "data": data})
    error = await browser.until("error")
    assert error == {"type": "error", "id": "big", "error": "“huge.csv” is over the 2 MB limit for files."}
    await browser.ws.send_json({"type": "file", "id": "bad", "name": "x.csv", "data": "not base64!"})
    error = await browser.until("error")
    assert error["error"] == "“x.csv” didn't arrive intact (its base64 is broken)." and error["id"] == "bad"
    assert (await browser.say("ping"))["buttons"]  # the socket still works
    assert [m.text for m in await stored(flow)] == ["ping"]


async def test_bad_frames_get_a_short_error_and_the_socket_stays_open(member_flow: Any) -> None:
    flow, client, sid = member_flow
    ws = await client.ws_connect("/chat/ws")
    browser = Browser(ws)
    await ws.send_json({"type": "text", "id": "early", "text": "hi"})
    assert (await browser.until("error"))["error"] == 'Say hello first: {"type": "hello"}.'
    await browser.hello(sid)
    limit = flow.app.channels["web"].settings.web_max_text_chars
    no_id = 'Every message needs an "id": 1-64 letters, digits, _ or -.'
    cases: list[tuple[Any, str]] = [
        ("{not json", "That wasn't valid JSON."),
        ("[1, 2]", 'A message is a JSON object with a "type".'),
        ('{"text": "no type"}', 'A message is a JSON object with a "type".'),
        ('{"type": "launch"}', "Unknown message type “launch”."),
        ('{"type": "text", "text": "no id"}', no_id),
        ('{"type": "text", "id": "<b>", "text": "bad id"}', no_id),
        ('{"type": "text", "id": "e1", "text": "   "}', "That message is empty."),
        ('{"type": "text", "id": "e2", "text": 42}', "“text” must be text."),
        (json.dumps({"type": "text", "id": "e3", "text": "y" * (limit + 1)}),
         f"That message is {limit + 1:,} characters; the limit is {limit:,}."),
        ('{"type": "button", "id": "e4", "data": ""}', "That button press carries no valid data."),
        ('{"type": "seen", "ids": "all"}', "“seen” takes a list of message ids."),
        ('{"type": "pick", "person": 1}',
         "Picking a person only works in the demo. Send start CODE with your invite code."),
        ('{"type": "file", "id": "e5", "data": "Zg=="}', "A file needs a name (up to 255 characters)."),
    ]
    for raw, expected in cases:
        await ws.send_str(raw)
        assert (await browser.until("error"))["error"] == expected, raw
    await ws.send_bytes(b"\x00\x01")
    assert (await browser.until("error"))["error"].startswith("Send JSON text frames")
    assert (await browser.say("ping"))["buttons"]
    assert [m.text for m in await stored(flow)] == ["ping"]


async def test_a_frame_over_the_hard_limit_closes_that_socket_only(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    channel: WebChannel = flow.app.channels["web"]
    await browser.ws.send_str("x" * (channel.frame_limit + 1))
    closed = await asyncio.wait_for(browser.ws.receive(), 10)
    assert closed.type is WSMsgType.CLOSE and closed.data == 1009  # RFC 6455: message too big
    again, welcome = await connect(client, sid)
    assert welcome["person"]["name"] == "Ann Probe"
    assert (await again.say("ping"))["buttons"]


async def test_a_resent_message_is_stored_and_answered_once(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    await browser.say("echo once", id="same")
    await browser.ws.send_json({"type": "text", "id": "same", "text": "echo once"})  # a resend after a reconnect
    assert (await browser.until("ack"))["id"] == "same"
    await browser.sync()
    await flow.settle()
    assert [m.text for m in await stored(flow)] == ["echo once"]
    assert len([r for r in await flow.outbox_rows() if r.address.channel == "web"]) == 1


async def test_an_offline_session_keeps_its_messages_until_it_returns_even_across_a_restart(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    sid = secrets.token_urlsafe(18)
    flow = await web_flow(database_url=url)
    address = Address("web", sid)
    try:
        await flow.person("Ann Probe", {MEMBER}, web=sid)
        await flow.app.send(address, "While you were away: <b>3</b> new", key="away-1")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.SENT  # handed over, not yet seen
        async with TestClient(TestServer(flow.app.http.web)) as client:
            browser, _ = await connect(client, sid)
            replay = await browser.until("message")
            assert replay["body"] == ["While you were away: ", {"tag": "b", "children": ["3"]}, " new"]
            assert replay["id"] == f"m{row.id}"
            await browser.sync()
        assert (await flow.outbox_rows())[0].status is OutboundStatus.DELIVERED
        await flow.app.send(address, "Second, while the bot restarts", key="away-2")
        await flow.settle()
    finally:
        await flow.close()

    restarted = await web_flow(database_url=url)  # a new process: nothing in memory
    try:
        async with TestClient(TestServer(restarted.app.http.web)) as client:
            browser, welcome = await connect(client, sid)
            assert welcome["session"] == sid and welcome["person"]["name"] == "Ann Probe"
            replay = await browser.until("message")
            assert text_of(replay["body"]) == "Second, while the bot restarts"
            await browser.sync()
        statuses = [r.status for r in await restarted.outbox_rows()]
        assert statuses == [OutboundStatus.DELIVERED, OutboundStatus.DELIVERED]
    finally:
        await restarted.close()


async def test_a_browser_that_never_says_seen_leaves_the_message_sent_and_gets_it_again(member_flow: Any) -> None:
    flow, client, sid = member_flow
    browser, _ = await connect(client, sid)
    await browser.ws.send_json({"type": "text", "id": "q", "text": "ping"})
    first = await browser.until("message", seen=False)
    await flow.clock.advance(timedelta(seconds=3))  # past web_ack_timeout
    await flow.settle()
    [row] = [r for r in await flow.outbox_rows() if r.address.channel == "web"]
    assert row.status is OutboundStatus.SENT
    await browser.ws.close()
    again, _ = await connect(client, sid)
    replay = await again.until("message")  # acknowledged this time
    assert replay["id"] == first["id"]
    await again.sync()
    [row] = [r for r in await flow.outbox_rows() if r.address.channel == "web"]
    assert row.status is OutboundStatus.DELIVERED


async def test_a_stranger_enrols_with_an_invite_code_outside_the_demo() -> None:
    flow = await web_flow(plugins=AUDIENCES, demo=False)
    try:
        async with TestClient(TestServer(flow.app.http.web)) as client:
            page = await (await client.get("/chat")).text()
            assert "data-person" not in page and "Not signed in: send start CODE" in page
            browser, welcome = await connect(client, "made-up-session-id-123456")
            assert welcome["person"] is None and welcome["session"] != "made-up-session-id-123456"
            assert len(welcome["session"]) >= 24
            reply = await browser.say("deals")
            assert text_of(reply["body"]) == (
                "Hi! You're not enrolled yet, so I can't share anything here. "
                "If your admin gave you an invite code, send start CODE."
            )
            now = flow.clock.now()
            _invite, code = await InviteRepo(flow.app.db).create("sales_manager", now, now + timedelta(days=1),
                                                                  name="Ann Lee")
            await browser.ws.send_json({"type": "text", "id": "enrol", "text": f"start {code}"})
            whoami = await browser.until("whoami")
            assert whoami["person"]["name"] == "Ann Lee" and whoami["person"]["roles"] == ["sales manager"]
            reply = await browser.until("message")
            assert text_of(reply["body"]).startswith("Welcome, Ann! You're enrolled as sales manager.")
            assert "deals" in text_of(reply["body"])
            person = await flow.app.people.by_address(Address("web", welcome["session"]))
            assert person is not None and person.name == "Ann Lee"
    finally:
        await flow.close()


async def test_a_socket_opened_from_another_site_is_refused(member_flow: Any) -> None:
    _flow, client, _sid = member_flow
    response = await client.get("/chat/ws", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                     "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 403


async def test_the_channel_is_off_outside_the_demo_unless_asked_for() -> None:
    flow = await Flow.create(channels=[*CHANNELS, "channels.web"], plugins=[PROBE], demo=False)
    try:
        assert "web" in flow.app.policies and not isinstance(flow.app.channels["web"], WebChannel)
        async with TestClient(TestServer(flow.app.http.web)) as client:
            assert (await client.get("/chat")).status == 404
    finally:
        await flow.close()


def test_setting_the_channel_up_imports_no_http_library(tmp_path: Path) -> None:
    """`status` and `--help` set every plugin up: the chat must not be what pulls aiohttp in.

    The kernel decides for itself when it loads aiohttp; this checks that no import of it starts
    from channels/web.py while the app is built (a finder on sys.meta_path looks at the stack).
    """
    code = (
        "import sys, traceback, main\n"
        "blamed = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'aiohttp':\n"
        "            blamed.extend(f.filename for f in traceback.extract_stack() if f.filename.endswith('web.py'))\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from bot.cli import build_app\n"
        "app = build_app(main.PLUGINS)\n"
        "assert app.channel_summaries()['web'].startswith('browser chat at http://'), app.channel_summaries()\n"
        "app.build_channels()\n"
        "assert type(app.channels['web']).__name__ == 'WebChannel', app.channels\n"
        "import channels.web\n"
        "print(sorted({b for b in blamed if 'channels' in b}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUDDLE_DEMO": "true", "HUDDLE_DATABASE_URL": str(tmp_path / "x.db")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # and, whatever the kernel imports first, the module itself names aiohttp only lazily or for type checkers
    tree = ast.parse((ROOT / "channels" / "web.py").read_text(encoding="utf-8"))
    eager = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node):
            names = [a.name for a in sub.names] if isinstance(sub, ast.Import) else (
                [sub.module or ""] if isinstance(sub, ast.ImportFrom) else [])
            eager += [f"line {sub.lineno}: {n}" for n in names if n.split(".")[0] == "aiohttp"]
    assert eager == []


async def test_the_running_bot_serves_the_chat_and_stops_promptly_with_a_socket_open(tmp_path: Path) -> None:
    """`python main.py run` as an operator starts it: the page, a conversation, then SIGTERM."""
    root = ROOT
    env = {**os.environ, "PYTHONPATH": str(root), "HUDDLE_DATABASE_URL": str(tmp_path / "huddle.db"),
           "HUDDLE_DEMO": "true", "HUDDLE_CONSOLE": "false", "HUDDLE_HTTP_PORT": "0", "HUDDLE_SMS_SIMULATOR": "false",
           "HUDDLE_DURABLE_COMMITS": "false", "HUDDLE_LOG_FORMAT": "kv"}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(root / "main.py"), "run", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
            assert line, "the bot exited:\n" + "".join(output)
            output.append(line)
            found = re.search(r"web chat at (http://127\.0\.0\.1:\d+/chat)", line)
            url = found.group(1) if found else None
        drain = asyncio.ensure_future(_drain(proc.stdout, output))
        async with aiohttp.ClientSession() as http:
            page = await (await http.get(url)).text()
            maria = re.search(r'data-person="(\d+)">Maria Lopez<', page)
            assert maria is not None
            ws = await http.ws_connect(url + "/ws", origin=url.rsplit("/", 1)[0])
            browser = Browser(ws)
            await browser.hello()
            await pick(browser, int(maria.group(1)))
            assert "151 points" in text_of((await browser.say("POINTS"))["body"])
            proc.send_signal(signal.SIGTERM)
            closing = await asyncio.wait_for(ws.receive(), 10)
            assert closing.type is WSMsgType.CLOSE and closing.data == 1001  # RFC 6455: going away
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "stopped" in "".join(output) and "Traceback" not in "".join(output)


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode())


def test_policy_session_ids() -> None:
    policy = WebPolicy()
    assert policy.normalize(" abcdefghijklmnop_-12 ") == "abcdefghijklmnop_-12"
    for bad in ["short", "has space in it 1234", "x" * 65, "<script>alert(1)</script>"]:
        with pytest.raises(ValueError):
            policy.normalize(bad)
    assert policy.command_label("stale") == "stale"
    caps = policy.capabilities
    assert caps.buttons and caps.files and caps.markup is Markup.TELEGRAM_HTML


# OWASP XSS Filter Evasion Cheat Sheet vectors (and the same tricks aimed at <a href>, the one tag with an URL)
XSS_VECTORS = [
    "javascript:/*--></title></style></textarea></script></xmp>"
    "<svg/onload='+/\"`/+/onmouseover=1/+/[*/[]/+alert(42);//'>",
    '<a onmouseover="alert(document.cookie)">xxs link</a>',
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>">',
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    "<svg/onload=alert('XSS')>",
    "<BODY ONLOAD=alert('XSS')>",
    "</script><script>alert('XSS');</script>",
    "<<SCRIPT>alert(\"XSS\");//\\<</SCRIPT>",
    "<a href=\"javascript:alert('XSS')\">click</a>",
    "<a href=\"jav&#x09;ascript:alert('XSS');\">tab</a>",
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">entities</a>',
    "<a href=\" &#14;  javascript:alert('XSS');\">spaces</a>",
    "<a href='vbscript:msgbox(\"XSS\")'>vb</a>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    '<a href="https://example.com/" onclick="alert(1)">fine link</a>',
]


def _tags(nodes: list[Any]) -> list[dict[str, Any]]:
    found = []
    for n in nodes:
        if isinstance(n, dict):
            found.append(n)
            found += _tags(n["children"])
    return found


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_a_body_becomes_a_tree_of_allowed_tags_with_safe_links_only(vector: str) -> None:
    tree = body_tree(render(vector, Markup.TELEGRAM_HTML))
    for node in _tags(tree):
        assert set(node) <= {"tag", "children", "href"}
        assert node["tag"] in {"b", "i", "u", "s", "code", "pre", "a", "blockquote", "span"}
        if node["tag"] == "a":
            assert node["href"].startswith(("http://", "https://", "mailto:", "tel:"))
    if "fine link" in vector:
        assert _tags(tree) == [{"tag": "a", "href": "https://example.com/", "children": ["fine link"]}]


# -- the demo playground: every audience, through the real handlers --------------------------------------


@pytest.fixture
async def demo() -> AsyncIterator[tuple[Flow, TestClient, dict[str, int]]]:
    flow = await web_flow(plugins=AUDIENCES, demo=True, web_chat=None)
    people = {p.name: p.id for p in await flow.app.people.all() if p.id is not None}
    client = TestClient(TestServer(flow.app.http.web))
    await client.start_server()
    try:
        yield flow, client, people
    finally:
        await client.close()
        await flow.close()


async def pick(browser: Browser, person_id: int, session: str | None = None) -> dict[str, Any]:
    await browser.ws.send_json({"type": "pick", "person": person_id, "session": session})
    return await browser.until("welcome")


async def test_demo_page_lists_every_audience_and_escapes_names(demo: Any) -> None:
    flow, client, people = demo
    await flow.person('<img src=x onerror="alert(1)"> & Co', {"customer"})
    response = await client.get("/chat")
    page = await response.text()
    assert response.status == 200 and "default-src 'none'" in response.headers["Content-Security-Policy"]
    for heading, name in [("Customer", "Maria Lopez"), ("Budtender", "Sarah Kim"), ("Team lead", "Ezekiel Mensah"),
                          ("Sales manager", "Alex Morgan")]:
        assert f"<h3>{heading} " in page and f'data-person="{people[name]}">{name}</button>' in page
    assert page.index("<h3>Customer ") < page.index("<h3>Budtender ") < page.index("<h3>Team lead ")
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; Co" in page
    assert "<img" not in page and "https://" not in page  # nothing from a CDN


async def test_demo_all_four_audiences_talk_through_the_real_handlers(demo: Any) -> None:
    flow, client, people = demo
    browser, welcome = await connect(client)
    assert welcome["person"] is None and welcome["demo"] is True

    maria = await pick(browser, people["Maria Lopez"])
    assert maria["person"] == {"id": people["Maria Lopez"], "name": "Maria Lopez", "roles": ["customer"]}
    reply = await browser.say("POINTS")
    assert text_of(reply["body"]).startswith("Maria, you have 151 points (Gold member).")

    await pick(browser, people["Sarah Kim"])
    assert text_of((await browser.say("STATS"))["body"]).startswith("Sarah, today:")

    await pick(browser, people["Ezekiel Mensah"])
    await browser.ws.send_json({"type": "file", "id": "csv", "name": "inflow.csv", "mimetype": "text/csv",
                                "data": base64.b64encode(EXPORT.encode()).decode()})
    await browser.until("ack")
    assert "4 chatters saved" in text_of((await browser.until("message"))["body"])

    alex = await pick(browser, people["Alex Morgan"])
    reply = await browser.say("analyze 5001")
    assert "Acme Logistics" in text_of(reply["body"])
    [button] = reply["buttons"]
    assert button["text"] == "Detailed analysis"
    await browser.ws.send_json({"type": "button", "id": "detail", "data": button["data"], "label": button["text"]})
    await browser.until("ack")
    detail = text_of((await browser.until("message"))["body"])
    assert "Acme Logistics" in detail and detail != text_of(reply["body"])

    # picking Alex again from this browser reuses his session: one web address per browser and person
    again = await pick(browser, people["Alex Morgan"], alex["session"])
    assert again["session"] == alex["session"]
    person = await flow.app.people.get(people["Alex Morgan"])
    assert person is not None and [a.id for a in person.addresses if a.channel == "web"] == [alex["session"]]
    # someone else's session cannot be borrowed
    other = await pick(browser, people["Maria Lopez"], alex["session"])
    assert other["session"] not in (alex["session"], maria["session"])


# -- the real page in a real browser ---------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed (Debian's chromium)")
async def test_the_page_in_headless_chromium(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    flow = await web_flow(plugins=[*AUDIENCES, PROBE], demo=True, web_chat=None)
    await flow.person('<img src=x onerror="alert(1)">', {MEMBER})
    probe_person = await flow.person("Pat Probe", {MEMBER})
    port = await flow.app.http.start("127.0.0.1", 0)
    dialogs: list[str] = []
    console_errors: list[str] = []
    try:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # a phone; the page's own Content-Security-Policy stays on (so the test waits without eval)
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc: console_errors.append(str(exc)))
                await page.goto(f"http://127.0.0.1:{port}/chat")
                await page.wait_for_selector("#status.online")
                assert await page.inner_text("#who") == "Pick someone below to talk as them."
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "web_chat_picker.png"))

                # a sales manager: type, see the reply, press its button
                await page.click("button.person:text-is('Alex Morgan')")
                await page.locator("#who", has_text="Alex Morgan").wait_for()
                assert await page.inner_text("#who") == "Acting as Alex Morgan · sales manager"
                await page.fill("#text", "analyze 5001")
                await page.press("#text", "Enter")
                first = page.locator(".msg.bot").first
                await first.wait_for()
                assert "Acme Logistics" in await first.inner_text()
                assert await first.locator("b").first.inner_text() == "DEAL ANALYSIS"  # markup, not escaped tags
                await first.locator("button.choice", has_text="Detailed analysis").click()
                await page.locator(".msg.bot").nth(1).wait_for()
                assert await page.locator(".msg.me").count() == 2
                assert "Detailed analysis" in await page.locator(".msg.me").nth(1).inner_text()
                assert await page.locator("button.choice.pressed").count() == 1
                pressed = ARTIFACTS / "web_chat_button.png"
                pressed.unlink(missing_ok=True)
                await first.locator("button.choice").scroll_into_view_if_needed()
                await page.screenshot(path=str(pressed))

                # a file, as a team lead would drop a CSV
                await page.click("summary")
                await page.click(f"button.person[data-person='{probe_person.id}']")
                await page.locator("#who", has_text="Pat Probe").wait_for()
                assert await page.locator(".msg").count() == 0  # a new person, a new conversation
                await page.set_input_files("#file", files=[{"name": "day.csv", "mimeType": "text/csv",
                                                            "buffer": b"name,sales\nAna,12"}])
                await page.locator(".msg.bot").first.wait_for()
                got = await page.locator(".msg.bot").first.inner_text()
                assert "got day.csv text/csv 17 bytes [name,sales\nAna,12]" in got
                too_big = b"x" * (2 * 1024 * 1024 + 1)
                await page.set_input_files("#file", files=[{"name": "huge.csv", "mimeType": "text/csv",
                                                            "buffer": too_big}])
                await page.locator(".note.error").first.wait_for()
                refusal = await page.locator(".note.error").first.inner_text()
                assert refusal == "“huge.csv” is over the 2 MB limit for files."

                # what a handler forgot to escape is shown as text, never run
                for i, vector in enumerate(XSS_VECTORS):
                    await page.fill("#text", "echo " + vector)
                    await page.press("#text", "Enter")
                    await page.locator(".msg.bot").nth(1 + i).wait_for()
                assert await page.locator("#log img, #log svg, #log script, #log iframe").count() == 0
                hrefs = await page.eval_on_selector_all("#log a", "els => els.map(e => e.getAttribute('href'))")
                assert hrefs == ["https://example.com/"]

                # Maria, the customer, last: the screenshot shows her conversation
                await page.click("summary")
                await page.click("button.person:text-is('Maria Lopez')")
                await page.locator("#who", has_text="Maria Lopez").wait_for()
                await page.fill("#text", "POINTS")
                await page.press("#text", "Enter")
                await page.locator(".msg.bot").first.wait_for()
                assert "151 points" in await page.locator(".msg.bot").first.inner_text()
                await page.locator(".msg.me .meta", has_text="sending…").first.wait_for(state="detached")

                shot = ARTIFACTS / "web_chat.png"
                shot.unlink(missing_ok=True)
                await page.screenshot(path=str(shot))
                colours = await _colours(browser, shot.read_bytes())
                button_colours = await _colours(browser, pressed.read_bytes())
            finally:
                await browser.close()
    finally:
        await flow.close()
    assert dialogs == [] and console_errors == []
    assert colours["size"] == [390, 844]
    assert colours["header"] > 390 * 40  # the dark blue header band
    assert colours["mine"] > 2_000  # the sender's own bubble (light blue)
    assert colours["distinct"] > 50  # text was drawn, not a blank page
    assert button_colours["pressed"] > 500  # the pressed button's fill


async def _colours(browser: Any, png: bytes) -> dict[str, Any]:
    """Decode the screenshot in the browser itself (no imaging library here) and count some colours."""
    page = await browser.new_page()
    try:
        await page.set_content("<canvas id=c></canvas>")
        return await page.evaluate(
            """async (b64) => {
                const img = new Image();
                img.src = "data:image/png;base64," + b64;
                await img.decode();
                const c = document.getElementById("c");
                c.width = img.width; c.height = img.height;
                const ctx = c.getContext("2d");
                ctx.drawImage(img, 0, 0);
                const d = ctx.getImageData(0, 0, img.width, img.height).data;
                let header = 0, mine = 0, pressed = 0;
                const seen = new Set();
                for (let i = 0; i < d.length; i += 4) {
                    const r = d[i], g = d[i + 1], b = d[i + 2];
                    if (r === 0x1f && g === 0x3a && b === 0x5f) header++;
                    if (r === 0xd7 && g === 0xe8 && b === 0xff) mine++;
                    if (r === 0xe8 && g === 0xee && b === 0xf7) pressed++;
                    seen.add((r << 16) | (g << 8) | b);
                }
                return {size: [img.width, img.height], header, mine, pressed, distinct: seen.size};
            }""",
            base64.b64encode(png).decode(),
        )
    finally:
        await page.close()
