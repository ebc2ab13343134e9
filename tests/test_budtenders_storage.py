"""Budtender storage on SQLite and PostgreSQL: shifts upserted once, coaching recorded once, answers, rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.model import Address, Person
from coaching.roles import Role
from storage.budtenders import BudtenderRepo, ShiftRow, Watermark
from storage.db import Database
from storage.people import PeopleRepo

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


async def test_shifts_watermarks_and_the_coaching_record(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        people = PeopleRepo(db)
        sam = await people.add(Person(None, "Sam Lee", frozenset({Role.BUDTENDER}), [Address("sms", "+13235550199")]),
                               NOW)
        assert sam.id is not None
        repo = BudtenderRepo(db)
        rows = [ShiftRow(sam.id, NOW, NOW + timedelta(hours=8)), ShiftRow(sam.id, NOW + timedelta(days=1),
                                                                           NOW + timedelta(days=1, hours=8))]
        await repo.upsert_shifts(rows, NOW)
        await repo.upsert_shifts([ShiftRow(sam.id, NOW, NOW + timedelta(hours=6), "silverlake", "import")], NOW)
        shifts = await repo.shifts_of(sam.id, NOW - timedelta(days=1), NOW + timedelta(days=3))
        assert len(shifts) == 2 and shifts[0].ends_at == NOW + timedelta(hours=6)
        shift = await repo.shift_at(sam.id, NOW + timedelta(hours=1))
        assert shift is not None and shift.store_code == "silverlake"
        assert await repo.shift_at(sam.id, NOW + timedelta(hours=7)) is None
        await repo.mute(shift.id, shift.ends_at)
        muted = await repo.get_shift(shift.id)
        assert muted is not None and muted.muted(NOW) and not muted.muted(shift.ends_at)

        mark = Watermark(sam.id, days=12, avg_ticket=Decimal("51.37"), avg_day_sales=Decimal("1234.56"),
                         avg_signups=Decimal("2.33"), best_signups=5, computed_at=NOW)
        await repo.save_watermarks([mark])
        await repo.save_watermarks([mark])
        assert await repo.watermark(sam.id) == mark
        assert not (await repo.watermark(sam.id + 99)).known

        async def record(key: str, kind: str, at: datetime, variant: str = "A") -> bool:
            return await repo.record(key=key, person_id=sam.id, shift_id=shift.id, kind=kind, variant=variant,
                                     text="hi", sent_at=at, orders=5)

        assert await record("nudge:1", "nudge", NOW)
        assert not await record("nudge:1", "nudge", NOW + timedelta(minutes=1))
        assert await record("midshift:1", "midshift", NOW + timedelta(hours=2), "B")
        assert await repo.recorded(["nudge:1", "nope"]) == {"nudge:1"}
        history = await repo.history(sam.id, shift.id)
        assert [(h.key, h.orders_at_send) for h in history] == [("nudge:1", 5), ("midshift:1", 5)]
        later = NOW + timedelta(hours=2, minutes=30)
        assert await repo.mark_answered(sam.id, later, later - timedelta(hours=2)) == "midshift"
        assert await repo.mark_answered(sam.id, later, later - timedelta(hours=2)) is None  # nudge is too old
        rates = {(r.kind, r.variant): (r.sent, r.answered, r.rate) for r in await repo.response_rates()}
        assert rates == {("midshift", "B"): (1, 1, Decimal("1.000")), ("nudge", "A"): (1, 0, Decimal("0.000"))}
    finally:
        await db.close()
