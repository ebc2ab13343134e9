"""A receipt photo through each channel that carries photos (Telegram, Slack, the web chat), each real
adapter against its fake provider, the model a fake server: points rows and both confirmations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.model import Address
from coaching.roles import Role
from storage.invites import InviteRepo
from storage.loyalty import LoyaltyRepo
from storage.receipts import ReceiptRepo, ReceiptStatus
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.receipts_support import CUSTOMER_PHONE, make_flow, network_budtender, reading, receipt_photo

ANN = 7001


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def settle_until(flow, condition, within: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await flow.settle()
        await flow.clock.advance(1)
        await asyncio.sleep(0.05)


async def test_invite_then_a_photo_on_telegram_gives_points_and_two_confirmations(
        monkeypatch: pytest.MonkeyPatch, fake: FakeTelegram, ai: FakeOpenAI) -> None:
    monkeypatch.setenv("HUDDLE_TELEGRAM_TOKEN", fake.token)
    monkeypatch.setenv("HUDDLE_TELEGRAM_API_URL", fake.url)
    monkeypatch.setenv("HUDDLE_TELEGRAM_POLL_TIMEOUT", "1")
    flow = await make_flow(monkeypatch, ai, plugins=("channels.telegram",))
    try:
        ann = await network_budtender(flow, telegram=None)  # imported with her phone, not yet on Telegram
        now = flow.clock.now()
        _, code = await InviteRepo(flow.app.db).create(Role.EXTERNAL_BUDTENDER, now, now + timedelta(days=7),
                                                       name="Ann Lee", person_id=ann.id)
        fake.message(ANN, f"/start {code}", first_name="Ann")
        await fake.wait_sent(1, ANN, within=8)
        assert fake.sent_to(ANN)[0].text.startswith("Welcome, Ann! You're enrolled as partner budtender.")

        ai.reply_json(reading())
        photo = receipt_photo()
        fake.photo(ANN, photo, caption=f"customer {CUSTOMER_PHONE}")
        sent = await fake.wait_sent(2, ANN, within=8)
        assert sent[1].text == ("Receipt #1 from Green Cross: $45.00 of house brand → 45 pts to the customer, "
                                "450 pts to you (your balance: 450).")
        # the adapter fetched the largest size, and that is what the model saw and what is stored
        assert fake.downloads == ["photos/file_0_1.jpg"]
        image, mimetype = await ReceiptRepo(flow.app.db).image(1)
        assert image == photo and mimetype == "image/jpeg"

        async def customer_told() -> bool:
            return bool(flow.sent_to(Address("sms", CUSTOMER_PHONE)))

        await settle_until(flow, customer_told)
        assert flow.sent_to(Address("sms", CUSTOMER_PHONE)) == [
            "You earned 45 points for $45.00 of our products at Green Cross. Your balance: 45 points."]
        entries = await LoyaltyRepo(flow.app.db).by_source(receipt_id=1)
        assert [(e.delta, e.person_id) for e in entries] == [(45, None), (450, ann.id)]
        stored = await ReceiptRepo(flow.app.db).get(1)
        assert stored is not None and stored.status is ReceiptStatus.AWARDED and stored.channel == "telegram"

        # the same photo again, from Telegram: refused, no new points
        fake.photo(ANN, photo, caption=CUSTOMER_PHONE)
        again = await fake.wait_sent(3, ANN, within=8)
        assert again[2].text == "This photo was already sent as receipt #1: a receipt earns points once."
        assert len(await LoyaltyRepo(flow.app.db).entries()) == 2
    finally:
        await flow.close()


async def test_a_receipt_dropped_in_a_slack_dm_is_downloaded_and_earns_points(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    from tests.fakes.slack_server import FakeSlack, dm
    from tests.slack_support import eventually, slack_env

    slack = await FakeSlack.start()
    try:
        slack_env(monkeypatch, slack)
        flow = await make_flow(monkeypatch, ai, plugins=("channels.slack",))
        try:
            ann = await network_budtender(flow, telegram=None)
            await flow.app.people.add_address(ann.id, Address("slack", "U0ANN"))
            flow.app.people.forget()
            await slack.wait_connected()
            ai.reply_json(reading(number="S-77"))
            photo = receipt_photo("slack")
            meta = slack.add_file("F0RCPT", "IMG_2041.jpg", photo, mimetype="image/jpeg")
            await slack.push_event(dm(CUSTOMER_PHONE, user="U0ANN", ts="1700002000.1", subtype="file_share",
                                      files=[meta]))
            await eventually(lambda: bool(slack.posted), within=8)
            assert slack.posted[0]["text"].startswith("Receipt #1 from Green Cross: $45.00 of house brand → 45 pts")
            image, _ = await ReceiptRepo(flow.app.db).image(1)
            assert image == photo
            assert [e.delta for e in await LoyaltyRepo(flow.app.db).by_source(receipt_id=1)] == [45, 450]
        finally:
            await flow.close()
    finally:
        await slack.close()


async def test_a_receipt_uploaded_in_the_web_chat_earns_points(monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    import base64
    import secrets

    from aiohttp.test_utils import TestClient, TestServer

    from tests.flows import CHANNELS

    flow = await make_flow(monkeypatch, ai, channels=[*CHANNELS, "channels.web"], web_chat=True)
    client = TestClient(TestServer(flow.app.http.web))
    await client.start_server()
    try:
        ann = await network_budtender(flow, telegram=None)
        sid = secrets.token_urlsafe(18)
        await flow.app.people.add_address(ann.id, Address("web", sid))
        flow.app.people.forget()
        ws = await client.ws_connect("/chat/ws")
        await ws.send_json({"type": "hello", "session": sid})

        async def until(kind: str) -> dict:  # type: ignore[type-arg]
            while True:
                frame = await asyncio.wait_for(ws.receive_json(), 10)
                if frame["type"] == "message":
                    await ws.send_json({"type": "seen", "ids": [frame["id"]]})
                if frame["type"] == kind:
                    return frame

        welcome = await until("welcome")
        assert welcome["person"]["name"] == "Ann Lee"
        ai.reply_json(reading(number="W-9"))
        photo = receipt_photo("web")
        await ws.send_json({"type": "file", "id": "r1", "name": "receipt.jpg", "mimetype": "image/jpeg",
                            "data": base64.b64encode(photo).decode(), "text": CUSTOMER_PHONE})
        assert (await until("ack"))["id"] == "r1"
        reply = await until("message")
        assert "Receipt #1 from Green Cross: $45.00 of house brand" in json.dumps(reply["body"], ensure_ascii=False)
        image, _ = await ReceiptRepo(flow.app.db).image(1)
        assert image == photo
        assert [e.delta for e in await LoyaltyRepo(flow.app.db).by_source(receipt_id=1)] == [45, 450]
        await ws.close()
    finally:
        await client.close()
        await flow.close()
