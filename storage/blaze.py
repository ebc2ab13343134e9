"""What the Blaze POS sync keeps: a cursor per entity, and the writes of one fetched page.

The cursor is (`modified_ms`, `skip`) inside a window that ends at `window_end_ms`: the page to
ask for next is "modified between modified_ms and window_end_ms, after the first `skip` rows". It
moves only after a page's rows are committed, so a crash re-reads at most one page, and every write
below is idempotent (upserts by the POS id; orders through `pos_events`, deduplicated by event id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.customers import CustomerRepo
from storage.db import Database, metadata
from storage.pos_events import pos_events
from storage.types import UTCDateTime

blaze_cursors = sa.Table(
    "blaze_cursors",
    metadata,
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("modified_ms", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("window_end_ms", sa.BigInteger),
    sa.Column("skip", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500)),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


@dataclass(slots=True)
class Cursor:
    entity: str
    modified_ms: int = 0
    window_end_ms: int | None = None
    """Set while a window is being read; None between runs."""
    skip: int = 0
    rows: int = 0
    calls: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None


class BlazeRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.customers = CustomerRepo(db)

    async def cursor(self, entity: str) -> Cursor:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(blaze_cursors).where(blaze_cursors.c.entity == entity))).first()
        if row is None:
            return Cursor(entity)
        return Cursor(row.entity, int(row.modified_ms), row.window_end_ms, row.skip, int(row.rows), int(row.calls),
                      row.last_error, row.updated_at)

    async def cursors(self) -> list[Cursor]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(blaze_cursors.c.entity).order_by(blaze_cursors.c.entity))).all()
        return [await self.cursor(r.entity) for r in rows]

    async def save(self, cursor: Cursor, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await self.save_in(conn, cursor, now)

        await self.db.run(unit)

    async def save_in(self, conn: AsyncConnection, cursor: Cursor, now: datetime) -> None:
        values = {"entity": cursor.entity, "modified_ms": cursor.modified_ms, "window_end_ms": cursor.window_end_ms,
                  "skip": cursor.skip, "rows": cursor.rows, "calls": cursor.calls,
                  "last_error": (cursor.last_error or None) and cursor.last_error[:500], "updated_at": now}
        stmt = self.db.insert(blaze_cursors).values(values)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["entity"],
                                                      set_={k: v for k, v in values.items() if k != "entity"}))

    async def upsert_members(self, rows: list[dict[str, Any]]) -> None:
        """CRM records by POS id; the running totals, tastes and attributes of a known record are kept."""
        async with self.db.transaction() as conn:
            await self.customers.upsert_in(conn, rows, keep=("favourite_categories", "attributes", "lifetime_spend",
                                                             "visits", "last_visit_at"))

    async def store_events(self, items: Sequence[tuple[str, str, str]], now: datetime) -> dict[str, int]:
        """Store (event id, type, body) rows not seen before, in one transaction; event id → row id of the
        new ones (an event id stored earlier, by the webhook or an earlier page, is left out)."""
        if not items:
            return {}
        ids = [i[0] for i in items]

        async def unit(conn: AsyncConnection) -> dict[str, int]:
            seen = set((await conn.execute(sa.select(pos_events.c.event_id)
                                           .where(pos_events.c.event_id.in_(ids)))).scalars())
            fresh = [{"event_id": e, "event_type": t, "body": b, "received_at": now}
                     for e, t, b in items if e not in seen]
            if not fresh:
                return {}
            await conn.execute(self.db.insert(pos_events).on_conflict_do_nothing(index_elements=["event_id"]), fresh)
            rows = (await conn.execute(sa.select(pos_events.c.event_id, pos_events.c.id).where(
                pos_events.c.event_id.in_([f["event_id"] for f in fresh])))).all()
            return {r.event_id: int(r.id) for r in rows}

        return await self.db.run(unit)


__all__ = ["BlazeRepo", "Cursor", "blaze_cursors"]
