"""POS webhook events, stored verbatim before the 200 so that nothing acknowledged is ever lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.prepared import Prepared
from storage.types import UTCDateTime

pos_events = sa.Table(
    "pos_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Index("ix_pos_events_pending", "processed_at", "id"),
)


@dataclass(slots=True)
class PosEvent:
    id: int
    event_id: str
    event_type: str
    body: str
    received_at: datetime
    processed_at: datetime | None
    attempts: int
    error: str | None


def _event(r: Any) -> PosEvent:
    return PosEvent(r.id, r.event_id, r.event_type, r.body, r.received_at, r.processed_at, r.attempts, r.error)


_STORE = Prepared.per_dialect(
    lambda insert: insert(pos_events).on_conflict_do_nothing(index_elements=["event_id"]).returning(pos_events.c.id)
)
_FINISH = Prepared(
    pos_events.update()
    .where(pos_events.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(processed_at=sa.bindparam("done_at"), error=None, attempts=pos_events.c.attempts + 1)
)


class PosEventRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store(self, event_id: str, event_type: str, body: str, now: datetime) -> int | None:
        """Store a verified event; returns its row id, or None when the event id was seen before."""

        values = {"event_id": event_id, "event_type": event_type, "body": body, "received_at": now}

        async def unit(conn: AsyncConnection) -> int | None:
            row = await _STORE.first(conn, values)
            return int(row.id) if row else None

        return await self.db.run(unit)

    async def get(self, row_id: int) -> PosEvent | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(pos_events).where(pos_events.c.id == row_id))).first()
        return _event(row) if row else None

    async def by_event_id(self, event_id: str) -> PosEvent | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(pos_events).where(pos_events.c.event_id == event_id))).first()
        return _event(row) if row else None

    async def pending(self, max_attempts: int = 5, limit: int = 500) -> list[PosEvent]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(pos_events)
                    .where(pos_events.c.processed_at.is_(None), pos_events.c.attempts < max_attempts)
                    .order_by(pos_events.c.id)
                    .limit(limit)
                )
            ).all()
        return [_event(r) for r in rows]

    async def finish_in(self, conn: AsyncConnection, row_id: int, now: datetime) -> None:
        await self.finish_many_in(conn, [row_id], now)

    @staticmethod
    async def finish_many_in(conn: AsyncConnection, row_ids: list[int], now: datetime) -> None:
        """Mark events processed (counting the attempt)."""
        await _FINISH.execute(conn, {"ids": row_ids, "done_at": now})

    async def fail(self, row_id: int, error: str, now: datetime, *, final: bool = False) -> None:
        """Record a failed attempt; `final` (a malformed event) marks it processed so it is not retried."""

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(pos_events.update().where(pos_events.c.id == row_id).values(
                error=error[:2000], attempts=pos_events.c.attempts + 1, processed_at=now if final else None))

        await self.db.run(unit)

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(pos_events))).scalar_one())
