"""SMS storage on both backends: the migration creates what the repository declares; raw PDUs are
kept once per message, listed newest first, counted by outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import Database, metadata
from storage.sms import DELIVERED, HELD, SmsRepo

SMS_TABLES = ("sms_held",)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _diff(sync_conn: sa.Connection) -> list[object]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
    return [d for d in compare_metadata(ctx, metadata) if any(t in repr(d) for t in SMS_TABLES)]


async def test_migration_creates_the_held_table_as_declared(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        async with db.read() as conn:
            assert "sms_held" in await conn.run_sync(lambda s: sa.inspect(s).get_table_names())
            diffs = await conn.run_sync(_diff)
        assert diffs == [], "\n".join(map(repr, diffs))
    finally:
        await db.close()


async def test_raw_pdus_kept_once_listed_newest_first_and_counted(db_url: str) -> None:
    db = Database(db_url, durable=False)
    repo = SmsRepo(db)
    try:
        assert await repo.hold("d1", "0791AA", reason="8-bit data", now=NOW, slot=3, storage="ME")
        assert not await repo.hold("d1", "0791AA", reason="8-bit data", now=NOW + timedelta(seconds=5), slot=3,
                                   storage="ME")  # the same slot read again after a crash adds nothing
        assert await repo.hold("d2", "0791BB", reason="class 0 (flash) message", now=NOW + timedelta(seconds=1),
                               sender="40033", text="INFO\x00SMS")  # NUL cannot go into PostgreSQL text
        assert await repo.hold("d3", "0791CC", reason="read leniently: odd trailing byte in UCS-2 dropped",
                               now=NOW + timedelta(seconds=2), outcome=DELIVERED, provider_id="sms-abc")
        held = await repo.held()
        assert [h.reason for h in held] == ["class 0 (flash) message", "8-bit data"]
        assert held[0].text == "INFO\ufffdSMS" and held[0].sender == "40033" and held[0].slot is None
        assert (held[1].slot, held[1].storage, held[1].received_at) == (3, "ME", NOW)
        assert [h.outcome for h in await repo.held(outcome=None)] == [DELIVERED, HELD, HELD]
        assert await repo.held_counts() == {HELD: 2, DELIVERED: 1}
    finally:
        await db.close()
