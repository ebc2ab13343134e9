"""Outbox rows from the user's side: stored before sending, one row per idempotency key, claimed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.model import Address, DeliveryReport, Outbound, OutboundStatus
from storage.db import Database, metadata
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


def _diff(sync_conn: sa.Connection) -> list[object]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
    return [d for d in compare_metadata(ctx, metadata) if "outbox_kept_reports" in repr(d)]


async def test_migration_creates_the_kept_reports_table_as_declared(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        async with db.read() as conn:
            diffs = await conn.run_sync(_diff)
        assert diffs == [], "\n".join(map(repr, diffs))
    finally:
        await db.close()


async def test_receipts_written_at_acceptance_once_then_settled_when_sent(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        repo = OutboxRepo(db)
        a = Address("sms", "+16195550100")
        await repo.enqueue(Outbound(a, "long", idempotency_key="k"), NOW)
        [msg] = await repo.claim("sms", "w1", NOW, 10)
        assert await repo.delivery(DeliveryReport("sms", "8", True, address=a), NOW) is None  # before any receipt
        assert await repo.record_receipt(msg, "7", NOW) is False
        assert await repo.record_receipt(msg, "7", NOW) is False  # the same part named twice: one receipt
        assert await repo.record_receipt(msg, "8", NOW) is True  # the kept report is applied at once
        settled = await repo.delivery(DeliveryReport("sms", "7", True, address=a), NOW)
        assert settled is not None and settled.status is OutboundStatus.SENDING  # not before the send returns
        await repo.mark_sent(msg, ["7", "8"], False, NOW + timedelta(seconds=1))
        [row] = await repo.find()
        assert row.status is OutboundStatus.DELIVERED
        assert [(p, s) for p, s, _r in await repo.receipts_of(msg.id or 0)] == [
            ("7", OutboundStatus.DELIVERED), ("8", OutboundStatus.DELIVERED)]
        assert await repo.kept() == []
    finally:
        await db.close()
