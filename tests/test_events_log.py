"""The event log from its producers' and consumers' side: one event per business change, committed with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.model import Address
from handlers.store import services
from storage.budtenders import BudtenderRepo
from storage.events import (
    COACHING_SENT,
    CUSTOMER_CREATED,
    OPTIN,
    OPTOUT,
    ORDER_CREATED,
    REPLY_RECEIVED,
    SIGNUP,
    TIER_UP,
    EventLog,
    NewEvent,
    append_in,
)
from tests.flows import Flow
from tests.test_store_webhooks import Pos, _store, order

START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


@pytest.fixture
async def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> AsyncIterator[tuple[Flow, Pos]]:
    async for pair in _store(monkeypatch, tmp_path, db_url):
        yield pair


async def test_an_order_appends_order_created_once_whatever_delivers_it(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    log = EventLog(flow.app.db)
    assert (await pos.post(order("evt-1", "T1", "60.00")))[0] == 200
    assert (await pos.post(order("evt-1", "T1", "60.00")))[0] == 200  # the same delivery again
    assert (await pos.post(order("evt-sync-9", "T1", "60.00")))[0] == 200  # another source, same order
    await services(flow.app).ingest.idle()
    orders = await log.of(types=[ORDER_CREATED])
    assert len(orders) == 1
    [e] = orders
    customer = await services(flow.app).customers.by_external_id("C1")
    assert customer is not None
    assert (e.source_id, e.customer_id, e.payload["total"], e.payload["first_order"]) == ("T1", customer.id,
                                                                                          "60.00", True)
    assert e.occurred_at == datetime(2026, 11, 23, 17, 59, tzinfo=UTC)
    assert (await pos.post(order("evt-2", "T2", "10.00")))[0] == 200
    await services(flow.app).ingest.idle()
    second = await log.by_source(ORDER_CREATED, "T2")
    assert second is not None and second.payload["first_order"] is False and second.payload["visits_before"] == 1


async def test_a_new_pos_customer_signing_up_and_reaching_a_tier(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    log = EventLog(flow.app.db)
    payload = order("evt-1", "T9", "1200.00", customer="C99", rewards_signup=True)
    payload["data"]["customer_phone"] = "+16195550177"
    assert (await pos.post(payload))[0] == 200
    await services(flow.app).ingest.idle()
    customer = await services(flow.app).customers.by_external_id("C99")
    assert customer is not None and customer.vip_tier == "vip"
    mine = await log.of(customer_id=customer.id)
    assert [e.type for e in mine] == [CUSTOMER_CREATED, SIGNUP, ORDER_CREATED, TIER_UP]
    assert mine[-1].payload == {"customer_id": customer.id, "tier": "vip", "previous": None, "balance": 1200}
    assert (await pos.post(order("evt-2", "T10", "5.00", customer="C99")))[0] == 200
    await services(flow.app).ingest.idle()
    assert await log.count(TIER_UP) == 1 and await log.count(SIGNUP) == 1


async def test_a_pos_customer_record_appends_customer_created_once(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    body = {"id": "evt-c1", "type": "customer.created", "created_at": "2026-11-23T18:00:00Z",
            "data": {"id": "C50", "first_name": "Bo", "phone": "+16195550150", "signup_date": "2026-11-23"}}
    assert (await pos.post(body))[0] == 200
    assert (await pos.post({**body, "id": "evt-c2"}))[0] == 200
    await services(flow.app).ingest.idle()
    log = EventLog(flow.app.db)
    assert await log.count(CUSTOMER_CREATED) == 1


async def test_consent_and_replies_are_events_with_their_person(db_url: str) -> None:
    flow = await Flow.create(plugins=["handlers.store", "handlers.customers"], database_url=db_url, start=START,
                             config={"stores": [{"code": "main", "name": "Green Leaf", "timezone": "UTC"}]})
    try:
        cara = Address("sms", "+16195550100")
        await flow.send(cara, "STOP")
        await flow.send(cara, "STOP")  # already out: no second event
        await flow.send(cara, "START")
        person = await flow.app.people.by_address(cara)
        assert person is not None
        log = EventLog(flow.app.db)
        mine = await log.of(person_id=person.id)
        assert [e.type for e in mine if e.type in (OPTOUT, OPTIN)] == [OPTOUT, OPTIN]
        assert mine[0].payload["channel"] == "sms"
        replies = [e for e in mine if e.type == REPLY_RECEIVED]
        assert len(replies) == 3 and len({e.source_id for e in replies}) == 3
    finally:
        await flow.close()


async def test_a_coaching_message_is_an_event_once(db_url: str) -> None:
    flow = await Flow.create(database_url=db_url, start=START)
    try:
        sam = await flow.person("Sam", ["budtender"])
        assert sam.id is not None
        repo = BudtenderRepo(flow.app.db)
        for _ in range(2):
            await repo.record(key="mid:1:7", person_id=sam.id, shift_id=None, kind="mid_shift", variant="b",
                              text="Nice pace", sent_at=START)
        [e] = await EventLog(flow.app.db).of(types=[COACHING_SENT])
        assert (e.person_id, e.source_id, e.payload["kind"], e.payload["variant"]) == (sam.id, "mid:1:7",
                                                                                        "mid_shift", "b")
    finally:
        await flow.close()


async def test_cursor_is_durable_and_a_rolled_back_change_leaves_no_event(db_url: str) -> None:
    flow = await Flow.create(database_url=db_url, start=START)
    try:
        db = flow.app.db
        log = EventLog(db)

        async def fails(conn: object) -> None:
            await append_in(conn, NewEvent("order.created", "X1", START), START)  # type: ignore[arg-type]
            raise RuntimeError("the business change failed")

        with pytest.raises(RuntimeError):
            await db.run(fails)
        assert await log.count() == 0
        for n in range(5):
            await log.append(NewEvent("test.tick", f"t{n}", START + timedelta(minutes=n), payload={"n": n}), START)
        assert await log.append(NewEvent("test.tick", "t0", START), START) is None  # deduplicated
        first = await log.read("consumer-a", limit=2)
        assert [e.payload["n"] for e in first] == [0, 1]
        await log.advance("consumer-a", first[-1].id, START)
        await log.advance("consumer-a", first[0].id, START)  # never moves back
        assert [e.payload["n"] for e in await log.read("consumer-a")] == [2, 3, 4]
        assert [e.payload["n"] for e in await log.read("consumer-b")] == [0, 1, 2, 3, 4]
        window = await log.between(START + timedelta(minutes=1), START + timedelta(minutes=3))
        assert [e.payload["n"] for e in window] == [1, 2]
    finally:
        await flow.close()
    again = EventLog(flow.app.db.__class__(db_url))
    try:
        assert await again.cursor("consumer-a") == first[-1].id
    finally:
        await again.db.close()
