"""Outbox rows from the user's side: stored before sending, one row per idempotency key, claimed once."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.model import Address, Outbound, OutboundStatus
from storage.db import Database
from storage.outbox import OutboxRepo

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def test_same_key_queues_once_and_claims_once(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        repo = OutboxRepo(db)
        a = Address("sms", "+16195550100")
        first, new1 = await repo.enqueue(Outbound(a, "hi", idempotency_key="k1"), NOW)
        again, new2 = await repo.enqueue(Outbound(a, "hi again", idempotency_key="k1"), NOW)
        assert (new1, new2) == (True, False)
        assert again.id == first.id and again.body == "hi"
        claimed = await repo.claim("sms", "w1", NOW, 10)
        assert [m.id for m in claimed] == [first.id]
        assert await repo.claim("sms", "w2", NOW, 10) == []
        await repo.mark_sent(claimed[0], ["ref-1"], False, NOW)
        rows = await repo.find()
        assert [r.status for r in rows] == [OutboundStatus.SENT]
    finally:
        await db.close()
