"""Customers texting the store, from the customer's side: keywords, joining, handoff, the model, privacy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from bot.model import Address
from coaching.roles import Role
from coaching.sms_text import segments
from handlers.store import services
from storage.outbox import receipts
from tests.fakes.openai_server import FakeOpenAI
from tests.flows import Flow

START = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
MARIA = Address("sms", "+13235550101")  # demo customers (handlers/store_seed.py)
DEVON = Address("sms", "+13235550102")
AIKO = Address("sms", "+13235550103")
STRANGER = Address("sms", "+13105550177")
STORE = {"code": "silverlake", "name": "MOTA Silverlake", "timezone": "America/Los_Angeles",
         "address": "3825 W Sunset Blvd, Los Angeles", "hours": "Open daily 9am-10pm", "phone": "+13235550142"}


async def make_flow(monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI | None = None, **store: Any) -> Flow:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if ai is not None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key")
        monkeypatch.setenv("HUDDLE_OPENAI_BASE_URL", ai.base_url)
        monkeypatch.setenv("HUDDLE_OPENAI_TIMEOUT", "2")
        monkeypatch.setenv("HUDDLE_CONCIERGE_AI_TIMEOUT", "0.5")
    return await Flow.create(plugins=["handlers.store", "handlers.customers"], start=START, demo=True,
                             config={"stores": [{**STORE, **store}]})


@pytest.fixture
async def flow(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    f = await make_flow(monkeypatch)
    yield f
    await f.close()


async def say(flow: Flow, who: Address, text: str) -> str:
    replies = await flow.send(who, text)
    assert len(replies) == 1, replies
    assert segments(replies[0]) <= 2, replies[0]
    return replies[0]


async def test_points_hours_address_from_the_record_and_config(flow: Flow) -> None:
    reply = await say(flow, MARIA, "POINTS")
    assert reply.startswith("Maria, you have 151 points (Gold member).") and "1 point per $1" in reply
    assert "Open daily 9am-10pm" in await say(flow, MARIA, "hours?")
    assert "3825 W Sunset Blvd" in await say(flow, MARIA, "where are you located")
    assert "91 points" in await say(flow, DEVON, "how many points do I have")


async def test_greeting_is_personal(flow: Flow) -> None:
    reply = await say(flow, AIKO, "hey")
    assert reply.startswith("Hi Aiko! You have") and "Last visit Nov 22" in reply


async def test_product_question_gets_in_stock_picks(flow: Flow) -> None:
    reply = await say(flow, MARIA, "do you have any flower?")
    assert "MOTA House OG 3.5g $35" in reply and "Alien Labs" not in reply  # out of stock
    reply = await say(flow, DEVON, "any gummies?")
    assert "Kiva Camino Gummies" in reply


async def test_unknown_number_is_greeted_then_joins_with_a_name(flow: Flow) -> None:
    reply = await say(flow, STRANGER, "hello")
    assert "Welcome to MOTA Silverlake" in reply and "JOIN" in reply
    assert await say(flow, STRANGER, "JOIN") == (
        "Happy to sign you up for MOTA Silverlake rewards! What's your first name?")
    reply = await say(flow, STRANGER, "it's ana ruiz")
    assert reply.startswith("Welcome to MOTA Silverlake rewards, Ana!")
    person = await flow.app.people.by_address(STRANGER)
    assert person and person.name == "Ana Ruiz" and "lead" not in person.attributes and Role.CUSTOMER in person.roles
    customer = await services(flow.app).customers.by_external_id("missing")
    assert customer is None
    assert "Ana, you have 0 points" in await say(flow, STRANGER, "points")
    assert "already a rewards member" in await say(flow, STRANGER, "sign up")


async def test_join_name_answer_that_is_not_a_name_falls_through(flow: Flow) -> None:
    await say(flow, STRANGER, "join")
    reply = await say(flow, STRANGER, "what are your hours")
    assert "Open daily" in reply
    assert "first name" in await say(flow, STRANGER, "join")


async def test_imported_customer_texting_first_time_is_linked(flow: Flow, tmp_path: Any) -> None:
    from coaching.sources.store_csv import ImportOptions, StoreImporter

    path = tmp_path / "c.csv"
    path.write_text("Customer ID,First Name,Last Name,Phone,Points,VIP Status\nC77,Lena,Park,310-555-0177,420,Gold\n")
    await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run("customers", path,
                                                                            ImportOptions(progress=False))
    reply = await say(flow, STRANGER, "points")
    assert reply.startswith("Lena, you have 420 points (Gold member)")
    person = await flow.app.people.by_address(STRANGER)
    assert person and person.name == "Lena Park"
    lena = await services(flow.app).customers.by_external_id("C77")
    assert lena and lena.person_id == person.id


async def test_human_handoff_relay_and_hand_back(flow: Flow) -> None:
    sam = await flow.person("Sam Ortiz", {Role.ADMIN}, console="sam")
    staff = Address("console", "staff")
    reply = await say(flow, MARIA, "can I talk to a person? my order was wrong")
    assert "team member will text you back" in reply
    post = flow.sent_to(staff)[-1]
    assert post.startswith("Customer handoff #1 - Maria Lopez (+13235550101, Gold, 151 pts, last visit Nov 20)")
    assert "my order was wrong" in post and "reply 1" in post

    assert await flow.send(MARIA, "hello?? anyone") == []  # the bot stays silent while handed off
    assert await flow.send(MARIA, "POINTS") == []
    assert await flow.send(MARIA, "Done, thanks") == []
    assert flow.sent_to(staff)[-3:] == ["#1 Maria Lopez: hello?? anyone", "#1 Maria Lopez: POINTS",
                                        "#1 Maria Lopez: Done, thanks"]

    assert await flow.send(sam, "reply 1 So sorry Maria! We'll swap it today.") == ["Sent to Maria Lopez (#1)."]
    assert flow.sent_to(MARIA)[-1] == "Sam at MOTA Silverlake: So sorry Maria! We'll swap it today."
    assert await flow.send(sam, "reply +1 (323) 555-0101 Ask for Jess.") == ["Sent to Maria Lopez (#1)."]
    assert (await flow.send(sam, "reply 9 hi"))[0].startswith("No open customer conversation '9'")
    assert await flow.send(sam, "handoffs") == ["#1 Maria Lopez since 19:00 UTC"]

    assert await flow.send(sam, "done 1") == ["#1 handed back to the bot."]
    assert "Text HUMAN anytime" in flow.sent_to(MARIA)[-1]
    assert "151 points" in await say(flow, MARIA, "points")
    assert (await flow.send(sam, "done 1"))[0].startswith("No open customer conversation")


async def test_customer_cannot_use_staff_commands(flow: Flow) -> None:
    reply = await say(flow, DEVON, "reply 1 give me Maria's points")
    assert "Maria" not in reply and "151" not in reply


async def test_handoff_to_slack_and_reply_in_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await make_flow(monkeypatch, staff_destination="slack:C0STAFF")
    try:
        lee = await flow.person("Lee Chan", {Role.TEAM_LEAD}, slack="U0LEE")
        await say(flow, DEVON, "human")
        slack = flow.channels["slack"]
        post = slack.sent[-1]
        assert post.address == Address("slack", "C0STAFF") and "Devon Price" in post.body
        async with flow.app.db.read() as conn:  # the provider's id of the post is the thread staff reply in
            thread = (await conn.execute(sa.select(receipts.c.provider_id).where(
                receipts.c.outbox_id == post.id))).scalar()
        assert thread
        replies = await flow.send(lee, "We have Kiva in stock, want me to hold one?", thread=thread)
        assert replies == ["Sent to Devon Price (#1)."]
        assert flow.sent_to(DEVON)[-1] == "Lee at MOTA Silverlake: We have Kiva in stock, want me to hold one?"
        await flow.send(DEVON, "yes please")
        assert slack.sent[-1].body == "#1 Devon Price: yes please" and slack.sent[-1].thread == thread
        assert await flow.send(lee, "done", thread=thread) == ["#1 handed back to the bot."]
    finally:
        await flow.close()


async def test_customer_never_gets_another_customers_data(flow: Flow) -> None:
    for text in ["What are Maria Lopez's points? her number is +13235550101",
                 "points for +1 323 555 0101", "show me Aiko's last order", "POINTS Maria"]:
        reply = await say(flow, DEVON, text)
        assert "Maria" not in reply and "151" not in reply and "Aiko" not in reply and "Connected" not in reply


async def test_huge_emoji_text_gets_a_short_reply(flow: Flow) -> None:
    reply = await say(flow, MARIA, "🌿😀" * 2500)
    assert reply.startswith("Thanks, Maria!")


async def test_staff_reply_with_nothing_to_say_is_usage(flow: Flow) -> None:
    sam = await flow.person("Sam Ortiz", {Role.ADMIN}, console="sam")
    assert (await flow.send(sam, "reply"))[0].startswith("Usage: reply N TEXT")
    assert (await flow.send(sam, "reply 1"))[0].startswith("Usage: reply N TEXT")


# -- the model ------------------------------------------------------------------------------------


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_model_answers_free_text_from_only_this_customers_data(monkeypatch: pytest.MonkeyPatch,
                                                                     ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai)
    try:
        ai.reply_text("Hi Maria! Our MOTA House OG pairs well with a chill evening. Want us to hold one?")
        reply = await say(flow, MARIA, "what would you suggest for a chill evening? also what did Aiko buy?")
        assert reply.startswith("Hi Maria! Our MOTA House OG")
        request = ai.requests[-1]
        assert "Maria" in request.system and '"points": 151' in request.system and "MOTA House OG" in request.system
        for other in ("Aiko", "Tanaka", "Devon", "Price", "+1323555010", "Alien Labs"):
            assert other not in request.system, other
        assert request.user == "what would you suggest for a chill evening? also what did Aiko buy?"
        # Keywords never go to the model.
        assert "151 points" in await say(flow, MARIA, "points") and len(ai.requests) == 1
    finally:
        await flow.close()


async def test_model_failures_fall_back_to_rules(monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai)
    try:
        ai.hang(3)  # slower than the concierge's 0.5 s
        assert (await say(flow, MARIA, "tell me a joke")).startswith("Thanks, Maria!")
        ai.reply_status(500, times=2)
        assert (await say(flow, MARIA, "tell me a joke")).startswith("Thanks, Maria!")
        ai.reply_text("   ")
        assert (await say(flow, MARIA, "tell me a joke")).startswith("Thanks, Maria!")
        ai.reply_text("word " * 400)  # far too long: trimmed to two SMS
        reply = await say(flow, MARIA, "tell me a joke")
        assert reply.endswith("...") and len(reply) <= 306
        ai.reply_text("Here is everything about our store. " * 20)  # asked for more: up to four SMS
        reply = (await flow.send(MARIA, "tell me more details"))[0]
        assert 2 < segments(reply) <= 4
    finally:
        await flow.close()


async def test_help_and_stop_come_from_the_core_with_store_contact(flow: Flow) -> None:
    reply = await say(flow, MARIA, "HELP")
    assert reply.startswith("MOTA Silverlake +13235550142: text POINTS, HOURS, ADDRESS, JOIN or HUMAN.")
    assert "unsubscribed" in await say(flow, MARIA, "STOP")
    assert await flow.send(MARIA, "points") == []  # opted out: nothing is sent
