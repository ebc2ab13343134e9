"""Slack file uploads reach `@router.file` with their bytes; a silently dead socket is replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.slack import SlackChannel
from coaching.roles import Role
from tests.fakes.slack_server import FakeSlack, dm
from tests.flows import Flow
from tests.slack_support import eventually, slack_env, slack_flow

TIA = "U0TIA"
CSV = b"Chatter,Sales,CVR\nMaria Lopez,$1,234.50,12.5%\n"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def flow(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    slack_env(monkeypatch, fake, HUDDLE_SLACK_WATCHDOG_INTERVAL="10", HUDDLE_SLACK_WATCHDOG_TIMEOUT="30")
    f = await slack_flow()
    await f.person("Tia Brooks", {Role.TEAM_LEAD}, slack=TIA)
    await fake.wait_connected()
    try:
        yield f
    finally:
        await f.close()


def file_share(files: list[dict[str, object]], ts: str, text: str = "") -> dict[str, object]:
    return dm(text, user=TIA, ts=ts, subtype="file_share", files=files)


async def test_csv_dropped_in_the_dm_is_downloaded_with_the_bot_token(fake: FakeSlack, flow: Flow) -> None:
    meta = fake.add_file("F0CSV", "inflow-2026-01-05.csv", CSV)
    await fake.push_event(file_share([meta], "1700001100.1"))
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["got inflow-2026-01-05.csv: 46 bytes, first line 'Chatter,Sales,CVR'"]
    assert fake.downloads[0]["auth"] == f"Bearer {fake.bot_token}"


async def test_partial_file_object_is_completed_with_files_info(fake: FakeSlack, flow: Flow) -> None:
    meta = fake.add_file("F0PART", "hours.csv", CSV, partial=True)
    await fake.push_event(file_share([meta], "1700001200.1"))
    await flow.settle()
    assert [c.args["file"] for c in fake.calls_to("files.info")] == ["F0PART"]
    assert fake.posted[0]["text"].startswith("got hours.csv: 46 bytes")


async def test_login_page_instead_of_the_file_is_not_taken_for_the_file(fake: FakeSlack, flow: Flow) -> None:
    meta = fake.add_file("F0SCOPE", "day.csv", CSV)
    meta["url_private_download"] = meta["url_private_download"].replace("F0SCOPE", "F0MISSING")
    await fake.push_event(file_share([meta], "1700001300.1"))
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["couldn't read day.csv"]


async def test_token_is_not_sent_to_a_foreign_redirect(fake: FakeSlack, flow: Flow) -> None:
    meta = fake.add_file("F0AWAY", "away.csv", CSV)
    fake.redirects["F0AWAY"] = f"http://localhost:{fake.port}/elsewhere/F0AWAY"
    await fake.push_event(file_share([meta], "1700001400.1"))
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["couldn't read away.csv"]
    assert all(d["auth"] == "" for d in fake.downloads if d["path"].startswith("/elsewhere"))


async def test_watchdog_replaces_a_silent_socket(fake: FakeSlack, flow: Flow) -> None:
    channel = flow.app.channels["slack"]
    assert isinstance(channel, SlackChannel) and channel.watchdog is not None
    assert channel.socket is not None
    client = channel.socket.client
    # A healthy socket answers the watchdog's pings: no reconnect however long it stays idle.
    for _ in range(6):
        before = client.last_ping_pong_time or 0.0
        await flow.clock.advance(10)  # the watchdog looks, then pings
        await eventually(lambda before=before: (client.last_ping_pong_time or 0.0) > before)
    assert fake.connections == 1 and channel.watchdog.reconnects == 0

    fake.go_silent()
    for _ in range(6):
        await flow.clock.advance(10)
        if channel.watchdog.reconnects:
            break
    await fake.wait_connected(count=2)
    assert channel.watchdog.reconnects == 1
    assert len(fake.calls_to("apps.connections.open")) == 2

    # Events flow through the new connection.
    await fake.push_event(dm("hi again", user=TIA, ts="1700001500.1"))
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["Hello Tia, you said: hi again"]


async def test_file_slack_cannot_serve_right_now_is_left_for_redelivery(fake: FakeSlack, flow: Flow) -> None:
    meta = fake.add_file("F0LATER", "later.csv", CSV)
    fake.unavailable.add("F0LATER")
    event = file_share([meta], "1700001600.1")
    with pytest.raises(TimeoutError):  # not acknowledged: Slack will send it again
        await fake.push_event(event, event_id="Ev0LATER", within=0.5)
    fake.unavailable.clear()
    await fake.push_event(event, event_id="Ev0LATER", retry_attempt=1)
    await flow.settle()
    assert [p["text"] for p in fake.posted] == ["got later.csv: 46 bytes, first line 'Chatter,Sales,CVR'"]
