"""Budtenders asking for their own numbers: POINTS, and STATS / BOARD on a shift past midnight."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.model import Person
from coaching import budtenders as bt
from coaching.roles import Role
from handlers.store import services
from storage.budtenders import Shift
from tests.flows import Flow

SARAH, JOHN, ANN = "+13235550111", "+13235550112", "+16195550101"
START = datetime(2026, 11, 23, 17, 55, tzinfo=UTC)  # a Monday, just before Sarah's night shift
CONFIG: dict[str, Any] = {
    "stores": [{"code": "main", "name": "Main St", "timezone": "UTC"}],
    "budtenders": {"timezone": "UTC"},
    "shifts": [{"budtender": SARAH, "start": "18:00", "end": "02:00"},   # crosses midnight
               {"budtender": JOHN, "start": "12:00", "end": "23:00"}],
}


class Till:
    """The store's POS ringing up orders through the real ingest (as the webhook would)."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.n = 0

    async def ring(self, total: str, budtender: str, *, status: str = "completed", order_id: str | None = None,
                   event_type: str = "order.created") -> None:
        self.n += 1
        oid = order_id or f"T{self.n}"
        data = {"id": oid, "store": "main", "budtender_id": budtender, "customer_id": "C1",
                "occurred_at": self.flow.clock.now().isoformat(), "total": total, "status": status,
                "items": [{"sku": "P1", "name": "House OG", "category": "flower", "quantity": 1,
                           "unit_price": total}]}
        body = json.dumps({"id": f"evt-{self.n}", "type": event_type, "data": data}).encode()
        ingest = services(self.flow.app).ingest
        await ingest.accept(body)
        await ingest.idle()
        await self.flow.settle()


async def _staff(flow: Flow, name: str, phone: str, ext: str) -> Person:
    person = await flow.person(name, {Role.BUDTENDER}, sms=phone)

    async def unit(conn: Any) -> None:
        await services(flow.app).sales.upsert_staff_in(conn, [{
            "external_id": ext, "person_id": person.id, "name": name, "phone": phone, "role": "budtender",
            "active": True, "updated_at": START}])

    await flow.app.db.run(unit)
    return person


@pytest.fixture
async def night(db_url: str) -> AsyncIterator[tuple[Flow, Till, Person, Person]]:
    flow = await Flow.create(plugins=["handlers.store", "handlers.customers", "handlers.budtenders"],
                             config=CONFIG, start=START, database_url=db_url)
    sarah = await _staff(flow, "Sarah Kim", SARAH, "E1")
    john = await _staff(flow, "John Reyes", JOHN, "E2")
    async with flow.app.db.transaction() as conn:
        await services(flow.app).customers.upsert_in(conn, [{
            "external_id": "C1", "first_name": "Ann", "phone": ANN, "rewards_member": True,
            "favourite_categories": [], "attributes": {}, "created_at": START, "updated_at": START}])
    await flow.advance(60)  # the tick materialises today's shifts
    try:
        yield flow, Till(flow), sarah, john
    finally:
        await flow.close()


async def test_a_budtender_texts_points_and_sees_their_own(night: tuple[Flow, Till, Person, Person]) -> None:
    flow, till, sarah, john = night
    assert (await flow.send(sarah, "POINTS")) == ["Sarah, you have no points yet. Every $1 you sell earns you 10 "
                                                  "points."]
    await flow.advance(timedelta(minutes=10))
    await till.ring("45.50", "E1")   # 45 points × 10
    await till.ring("20.00", "E1")   # 20 × 10
    await till.ring("99.00", "E2")   # John's, not Sarah's
    assert (await flow.send(sarah, "points")) == ["Sarah, you have 650 points (+650 today). Every $1 you sell "
                                                  "earns you 10 points."]
    await till.ring("20.00", "E1", status="refunded", order_id="T2", event_type="order.updated")
    assert "450 points (+450 today)" in (await flow.send(sarah, "Points"))[0]
    assert "990 points" in (await flow.send(john, "POINTS"))[0]
    await flow.advance(timedelta(days=1, hours=10))  # another day: the balance stays, today starts at 0
    assert (await flow.send(sarah, "POINTS"))[0].startswith("Sarah, you have 450 points. Every $1")


async def test_a_customer_texting_points_still_gets_their_rewards_balance(
    night: tuple[Flow, Till, Person, Person]
) -> None:
    flow, till, _, _ = night
    await till.ring("30.00", "E1")  # Ann (customer C1) earns 30 points, Sarah 300
    ann = await flow.person("Ann", {Role.CUSTOMER}, sms=ANN)
    [answer] = await flow.send(ann, "POINTS")
    assert "30 points" in answer and "300" not in answer and "isn't available" not in answer


async def test_stats_and_board_agree_on_a_shift_that_crosses_midnight(
    night: tuple[Flow, Till, Person, Person]
) -> None:
    flow, till, sarah, _ = night
    await flow.advance(timedelta(hours=2, minutes=5))      # 20:00 Monday
    await till.ring("100.00", "E1")
    await flow.advance(timedelta(hours=1))                  # 21:00
    await till.ring("50.00", "E2")
    await flow.advance(timedelta(hours=4))                  # 01:00 Tuesday, Sarah still on her Monday shift
    await till.ring("30.00", "E1")
    await flow.advance(timedelta(minutes=30))               # 01:30
    stats = (await flow.send(sarah, "STATS"))[0]
    board = (await flow.send(sarah, "BOARD"))[0]
    assert stats.startswith("Sarah, today: $130, 1 customers, avg $65.00"), stats  # both orders of the shift
    assert board.startswith("Today: 1. Sarah $130, 2. John $50.00.") and "You're #1 of 2" in board, board
    assert "sign-ups per shift (0 so far)" in (await flow.send(sarah, "GOAL"))[0]
    await flow.advance(timedelta(hours=1))                  # 02:30: the shift is over, a new day begins
    assert (await flow.send(sarah, "STATS"))[0] == "Sarah, no sales recorded for you today yet."
    assert (await flow.send(sarah, "BOARD"))[0] == "No sales recorded today yet."


def test_business_day_rules() -> None:
    """The pure rule, including a shift that crosses a DST change (America/Los_Angeles, 2026-11-01)."""
    def shift(start: datetime, end: datetime) -> Shift:
        return Shift(id=1, person_id=1, starts_at=start, ends_at=end)

    la = "America/Los_Angeles"
    night = shift(datetime(2026, 10, 31, 18, 0, tzinfo=UTC) + timedelta(hours=7),   # Sat 18:00 PDT
                  datetime(2026, 11, 1, 10, 0, tzinfo=UTC))                          # Sun 02:00 PST
    during = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)                                 # Sun 01:00 PST
    day, start, end = bt.business_day(during, [night], la)
    assert day == date(2026, 10, 31) and start == datetime(2026, 10, 31, 7, 0, tzinfo=UTC) and end == night.ends_at
    after = datetime(2026, 11, 1, 11, 0, tzinfo=UTC)                                 # Sun 03:00 PST
    day, start, end = bt.business_day(after, [night], la)
    assert day == date(2026, 11, 1) and start == night.ends_at and end == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    plain_day = bt.business_day(after, [], la)
    assert plain_day == (date(2026, 11, 1), datetime(2026, 11, 1, 7, 0, tzinfo=UTC),
                         datetime(2026, 11, 2, 8, 0, tzinfo=UTC))  # a 25-hour day
