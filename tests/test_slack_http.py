"""Slack in HTTP mode: signed events on the shared HTTP server, verified on the app clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp
import pytest

from channels.slack import SlackChannel
from coaching.roles import Role
from tests.fakes.slack_server import FakeSlack, block_action, dm, event_callback, slash_command
from tests.flows import Flow
from tests.slack_support import slack_flow

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIA = "U0TIA"
# Slack's own example from "Verifying requests from Slack".
SLACK_EXAMPLE_TS = 1531420618
SLACK_EXAMPLE_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = datetime.fromtimestamp(SLACK_EXAMPLE_TS + 10, UTC)


def sign(body: str, ts: int, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def flow(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    monkeypatch.setenv("HUDDLE_SLACK_BOT_TOKEN", fake.bot_token)
    monkeypatch.setenv("HUDDLE_SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("HUDDLE_SLACK_API_URL", fake.api_url)
    f = await slack_flow(start=NOW)
    await f.person("Tia Brooks", {Role.TEAM_LEAD}, slack=TIA)
    await f.app.http.start(host="127.0.0.1", port=0)
    try:
        yield f
    finally:
        await f.close()


async def post(
    flow: Flow,
    body: str,
    *,
    ts: int | None = None,
    signature: str | None = None,
    content_type: str = "application/json",
    **headers: str,
) -> tuple[int, str]:
    ts = int(flow.clock.now().timestamp()) if ts is None else ts
    sent = {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature or sign(body, ts),
        "Content-Type": content_type,
        **headers,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{flow.app.http.port}/slack/events", data=body.encode(), headers=sent) as resp,
    ):
        return resp.status, await resp.text()


def event_body(event: dict[str, object], event_id: str = "Ev0HTTP") -> str:
    return json.dumps(event_callback(event, event_id=event_id))


async def test_slacks_published_example_is_accepted(fake: FakeSlack, flow: Flow) -> None:
    status, _ = await post(
        flow,
        SLACK_EXAMPLE_BODY,
        ts=SLACK_EXAMPLE_TS,
        signature=SLACK_EXAMPLE_SIGNATURE,
        content_type="application/x-www-form-urlencoded",
    )
    assert status == 200
    await flow.settle()
    # An unknown user ran /webhook-collect: stored as the command "webhook-collect", told how to enroll.
    [posted] = fake.posted
    assert posted["channel"] == "D2CERLKJA" and "enroll" in posted["text"]


async def test_signed_dm_is_answered(fake: FakeSlack, flow: Flow) -> None:
    status, _ = await post(flow, event_body(dm("stale 4", user=TIA, ts="1531420000.1")))
    assert status == 200
    await flow.settle()
    assert [(p["channel"], p["text"]) for p in fake.posted] == [("D0TIA", "stale 4")]


async def test_bad_signature_is_refused_and_nothing_is_stored(fake: FakeSlack, flow: Flow) -> None:
    body = event_body(dm("stale 4", user=TIA, ts="1531420000.2"))
    status, text = await post(flow, body, signature=sign(body, int(NOW.timestamp()), secret="not-the-secret"))
    assert status == 401 and "signature" in text
    status, _ = await post(flow, body, signature="garbage")
    assert status == 401
    await flow.settle()
    assert fake.posted == []


async def test_missing_or_malformed_headers_are_refused(flow: Flow) -> None:
    body = event_body(dm("hi", user=TIA, ts="1531420000.3"))
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{flow.app.http.port}/slack/events"
        async with session.post(url, data=body) as resp:
            assert resp.status == 401
        async with session.post(
            url, data=body, headers={"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"}
        ) as resp:
            assert resp.status == 401


async def test_five_minute_window(fake: FakeSlack, flow: Flow) -> None:
    now = int(flow.clock.now().timestamp())
    old = event_body(dm("old", user=TIA, ts="1531420000.4"), event_id="Ev0OLD")
    assert (await post(flow, old, ts=now - 301))[0] == 401
    assert (await post(flow, old, ts=now + 301))[0] == 401
    recent = event_body(dm("recent", user=TIA, ts="1531420000.5"), event_id="Ev0RECENT")
    assert (await post(flow, recent, ts=now - 290))[0] == 200
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["Hello Tia, you said: recent"]


async def test_redelivery_with_retry_header_is_handled_once(fake: FakeSlack, flow: Flow) -> None:
    body = event_body(dm("hi", user=TIA, ts="1531420000.6"), event_id="Ev0RETRY")
    assert (await post(flow, body))[0] == 200
    assert (await post(flow, body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}))[0] == 200
    assert (await post(flow, body, **{"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}))[0] == 200
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["Hello Tia, you said: hi"]


async def test_url_verification_answers_the_challenge(flow: Flow) -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    status, text = await post(flow, body)
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in text


async def test_slash_command_and_button_over_http(fake: FakeSlack, flow: Flow) -> None:
    form = urlencode(slash_command("menu", user=TIA, channel="D0TIA", trigger="trig-http-1"))
    assert (await post(flow, form, content_type="application/x-www-form-urlencoded"))[0] == 200
    await flow.settle()
    assert fake.posted[-1]["blocks"][-1]["type"] == "actions"
    click = urlencode(
        {"payload": json.dumps(block_action("pick:maria", user=TIA, channel="D0TIA", trigger="trig-http-2"))}
    )
    assert (await post(flow, click, content_type="application/x-www-form-urlencoded"))[0] == 200
    await flow.settle()
    assert fake.posted[-1]["text"] == "picked maria"


async def test_not_acknowledged_when_the_message_could_not_be_stored(fake: FakeSlack, flow: Flow) -> None:
    channel = flow.app.channels["slack"]
    assert isinstance(channel, SlackChannel)

    async def broken(_inbound: object) -> None:
        raise RuntimeError("database is down")

    channel._on_inbound = broken
    status, _ = await post(flow, event_body(dm("hi", user=TIA, ts="1531420000.7")))
    assert status == 500  # Slack will redeliver it
