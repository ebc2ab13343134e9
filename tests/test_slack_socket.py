"""Slack in Socket Mode, from the user's side: real Bolt, real outbox, a fake Slack on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.model import OutboundStatus, Role
from bot.testing import Flow
from channels.slack import SlackChannel
from tests.fakes.slack_server import BOT_USER, FakeSlack, dm
from tests.slack_support import slack_env, slack_flow

TIA = "U0TIA"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def flow(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    slack_env(monkeypatch, fake)
    f = await slack_flow()
    await f.person("Tia Brooks", {Role.TEAM_LEAD}, slack=TIA)
    await fake.wait_connected()
    try:
        yield f
    finally:
        await f.close()


def posts_to(fake: FakeSlack, channel: str) -> list[str]:
    return [str(p["text"]) for p in fake.posted if p["channel"] == channel]


async def test_dm_hi_is_answered_in_the_dm_channel(fake: FakeSlack, flow: Flow) -> None:
    ack = await fake.push_event(dm("hi", user=TIA, ts="1700000100.000100"))
    assert "envelope_id" in ack
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: hi"]
    assert [c.args["users"] for c in fake.calls_to("conversations.open")] == [TIA]
    assert isinstance(flow.app.channels["slack"], SlackChannel)


async def test_conversations_open_is_cached(fake: FakeSlack, flow: Flow) -> None:
    for i in range(3):
        await fake.push_event(dm(f"ping {i}", user=TIA, ts=f"1700000100.00010{i}"))
        await flow.settle()
    assert len(posts_to(fake, "D0TIA")) == 3
    assert len(fake.calls_to("conversations.open")) == 1


async def test_slash_command_text_is_the_command(fake: FakeSlack, flow: Flow) -> None:
    ack = await fake.push_command("stale 5", user=TIA, channel="D0TIA")
    assert ack.get("payload") in (None, {})
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["stale 5"]


async def test_slash_command_in_a_channel_says_where_the_answer_goes(fake: FakeSlack, flow: Flow) -> None:
    ack = await fake.push_command("ping", user=TIA, channel="C0TEAM")
    assert "DM" in ack["payload"]["text"]
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["pong"]


async def test_empty_slash_command_asks_for_help(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_command("", user=TIA, channel="D0TIA")
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: help"]


async def test_mention_in_a_channel_is_answered_in_its_thread(fake: FakeSlack, flow: Flow) -> None:
    event = {
        "type": "app_mention",
        "channel": "C0TEAM",
        "user": TIA,
        "ts": "1700000200.000200",
        "text": f"<@{BOT_USER}> stale 7",
        "event_ts": "1700000200.000200",
    }
    await fake.push_event(event)
    await flow.settle()
    [post] = fake.posted
    assert (post["channel"], post["thread_ts"], post["text"]) == ("C0TEAM", "1700000200.000200", "stale 7")
    assert fake.calls_to("conversations.open") == []


async def test_redelivered_event_is_handled_once(fake: FakeSlack, flow: Flow) -> None:
    event = dm("hi", user=TIA, ts="1700000300.000300")
    await fake.push_event(event, event_id="Ev0REDO")
    await fake.push_event(event, event_id="Ev0REDO", retry_attempt=1)
    # Slack also sends message.im and app_mention for one message: same channel:ts, stored once
    await fake.push_event({**event, "type": "app_mention"}, event_id="Ev0OTHER")
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: hi"]


async def test_own_and_edited_messages_are_acknowledged_and_dropped(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_event(dm("my own post", user=BOT_USER, ts="1700000400.000400", bot_id="B0001"))
    await fake.push_event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": "D0TIA",
            "channel_type": "im",
            "ts": "1700000400.000401",
            "message": {"text": "edited"},
        }
    )
    await fake.push_event({"type": "reaction_added", "user": TIA, "reaction": "tada"})
    await flow.settle()
    assert fake.posted == []


async def test_buttons_become_block_kit_and_a_click_is_callback_data(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_command("menu", user=TIA, channel="D0TIA")
    await flow.settle()
    [post] = fake.posted
    actions = next(b for b in post["blocks"] if b["type"] == "actions")
    assert [e["value"] for e in actions["elements"]] == ["pick:maria", "pick:ajay"]
    assert post["text"] == "Pick one"
    await fake.push_click("pick:ajay", user=TIA, channel="D0TIA")
    await flow.settle()
    assert posts_to(fake, "D0TIA")[-1] == "picked ajay"


async def test_text_is_escaped_and_unescaped(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_event(dm("sales &gt; 5 &amp; cvr &lt; 2 <https://x.example|link>", user=TIA, ts="1700000500.1"))
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: sales &gt; 5 &amp; cvr &lt; 2 link"]


async def test_long_emoji_text_arrives_and_is_answered(fake: FakeSlack, flow: Flow) -> None:
    text = "🙂" * 5000
    await fake.push_event(dm(text, user=TIA, ts="1700000600.1"))
    await flow.settle()
    [answer] = posts_to(fake, "D0TIA")
    assert answer.endswith("🙂" * 5000)


async def test_stranger_is_told_how_to_enroll(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_event(dm("hi", user="U0NEW", ts="1700000700.1"))
    await flow.settle()
    [answer] = posts_to(fake, "D0NEW")
    assert "enroll" in answer


async def test_429_then_success(fake: FakeSlack, flow: Flow) -> None:
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=7)
    await fake.push_event(dm("hi", user=TIA, ts="1700000800.1"))
    await flow.settle()
    assert posts_to(fake, "D0TIA") == []
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.QUEUED and "rate limit" in (row.reason or "")
    await flow.advance(5)
    assert posts_to(fake, "D0TIA") == []  # Retry-After 7 s is honoured
    await flow.advance(10)
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: hi"]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.DELIVERED and row.attempts == 2


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "account_inactive"])
async def test_dead_channel_fails_and_marks_unreachable(fake: FakeSlack, flow: Flow, error: str) -> None:
    fake.fail_next("chat.postMessage", error)
    await fake.push_event(dm("hi", user=TIA, ts="1700000900.1"))
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED and error in (row.reason or "")
    sent = await flow.app.send(row.address, "anyone there?", key="later")
    await flow.settle()
    [later] = [r for r in await flow.outbox_rows() if r.id == sent.id]
    assert later.status is OutboundStatus.REFUSED and "unreachable" in (later.reason or "")
    assert len(fake.calls_to("chat.postMessage")) == 1


async def test_server_error_is_retried(fake: FakeSlack, flow: Flow) -> None:
    fake.fail_next("chat.postMessage", "internal_error", status=500)
    await fake.push_event(dm("hi", user=TIA, ts="1700001000.1"))
    await flow.settle()
    await flow.advance(30)
    assert posts_to(fake, "D0TIA") == ["Hello Tia, you said: hi"]


async def test_proactive_to_a_channel_id_posts_directly(fake: FakeSlack, flow: Flow) -> None:
    from bot.model import Address

    await flow.app.send(Address("slack", "C0TEAM"), "Briefing *today*: 3 people", key="brief:1")
    await flow.settle()
    assert posts_to(fake, "C0TEAM") == ["Briefing *today*: 3 people"]
    assert fake.calls_to("conversations.open") == []


async def test_not_acknowledged_when_the_message_could_not_be_stored(fake: FakeSlack, flow: Flow) -> None:
    channel = flow.app.channels["slack"]
    assert isinstance(channel, SlackChannel)

    async def broken(_inbound: object) -> None:
        raise RuntimeError("database is down")

    channel._on_inbound = broken
    with pytest.raises(TimeoutError):
        await fake.push_event(dm("hi", user=TIA, ts="1700001100.1"), within=0.5)


async def test_healthz_reports_the_socket_and_503_when_it_closes(fake: FakeSlack, flow: Flow) -> None:
    """GET /healthz from an operator's side: the Slack entry says connected, then down with 503."""
    import aiohttp

    port = await flow.app.http.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                body = await r.json()
                assert r.status == 200 and body["ok"] is True
                slack = body["channels"]["slack"]
                assert slack["up"] is True and slack["connected"] is True and slack["mode"] == "socket"
                assert "watchdog_silent_for" in slack and slack["reconnects"] == 0
            await fake.close()
            channel = flow.app.channels["slack"]
            assert isinstance(channel, SlackChannel) and channel.socket is not None
            session = channel.socket.client.current_session
            assert session is not None
            await session.close()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                body = await r.json()
                assert r.status == 503 and body["ok"] is False
                assert body["channels"]["slack"]["up"] is False and body["channels"]["slack"]["connected"] is False
    finally:
        await flow.app.http.stop()


async def test_simulated_inbound_goes_the_same_way(fake: FakeSlack, flow: Flow) -> None:
    channel = flow.app.channels["slack"]
    assert isinstance(channel, SlackChannel)
    await channel.simulate_inbound(TIA, "ping")
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["pong"]


async def test_a_rejected_bot_token_stops_the_start_with_a_plain_reason(fake: FakeSlack) -> None:
    from bot.clock import FakeClock
    from channels.slack import SlackSettings

    settings = SlackSettings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token="xoxb-wrong", slack_app_token=fake.app_token, slack_api_url=fake.api_url
    )
    channel = SlackChannel(settings, FakeClock())

    async def ignore(_: object) -> None:
        return None

    with pytest.raises(RuntimeError, match="HUDDLE_SLACK_BOT_TOKEN"):
        await channel.start(ignore, ignore)
    assert channel.session is None or channel.session.closed
    assert fake.calls_to("apps.connections.open") == []


async def test_threads_are_answered_in_their_thread(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_event(dm("ping", user=TIA, ts="1700002000.2", thread_ts="1700002000.1"))
    mention = {"type": "app_mention", "channel": "C0TEAM", "user": TIA, "ts": "1700002001.2",
               "thread_ts": "1700002001.1", "text": f"<@{BOT_USER}> ping"}  # fmt: skip
    await fake.push_event(mention)
    await flow.settle()
    assert sorted((p["channel"], p.get("thread_ts"), p["text"]) for p in fake.posted) == [
        ("C0TEAM", "1700002001.1", "pong"),
        ("D0TIA", "1700002000.1", "pong"),
    ]


async def test_other_slash_commands_keep_their_name(fake: FakeSlack, flow: Flow) -> None:
    await fake.push_command("5", user=TIA, command="/stale", channel="D0TIA")
    await flow.settle()
    assert posts_to(fake, "D0TIA") == ["stale 5"]
