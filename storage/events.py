"""The event log: one append-only table of business facts, and durable read cursors for its consumers.

Every business change appends its event in the SAME transaction (`append_in(conn, ...)` inside the
repository's unit), so an event exists exactly when the change does. A consumer (playbooks,
coaching triggers) reads the events after its cursor and moves the cursor in the transaction that
records what it did (`advance_in`), so a crash between "stored" and "reacted" loses nothing and
repeats nothing that was committed.

Deduplication: `(type, source_id)` is unique. The source id is the natural key of the fact in its
type — the POS order id for `order.created`, the coaching message key for `coaching.sent` — so a
redelivered webhook, a second source of the same order (a Blaze sync, a receipt import) or a
retried unit never makes two events. An event without a natural key passes `source_id=None` (no
dedupe).

Order: consumers read by id. On PostgreSQL two concurrent transactions could commit ids out of
order (id 11 visible before id 10), and a cursor at 11 would skip 10 for ever; appends therefore
take a transaction-level advisory lock, so transactions that append commit one after another, in
id order. Append late in a unit (after its other writes) to hold that lock briefly. SQLite has a
single writer anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.prepared import Prepared
from storage.types import UTCDateTime

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("person_id", sa.Integer),
    sa.Column("customer_id", sa.Integer),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("source_id", sa.String(200)),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("type", "source_id", name="uq_events_type_source"),
    sa.Index("ix_events_person", "person_id", "id"),
    sa.Index("ix_events_customer", "customer_id", "id"),
    sa.Index("ix_events_occurred", "occurred_at"),
)
"""`person_id` is the subject's core person; `customer_id` their CRM record (a POS customer may have
no person yet: they never texted). Neither is a foreign key: the log outlives what it describes."""

event_cursors = sa.Table(
    "event_cursors",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

ORDER_CREATED = "order.created"
CUSTOMER_CREATED = "customer.created"
SIGNUP = "signup"
OPTOUT = "optout"
OPTIN = "optin"
COACHING_SENT = "coaching.sent"
BRIEFING = "briefing"
"""The `kind` of a `coaching.sent` event for a team lead's chatter briefing (budtender coaching has its own kinds)."""
REPLY_RECEIVED = "reply.received"
TIER_UP = "points.tier_up"
EVENT_TYPES = (ORDER_CREATED, CUSTOMER_CREATED, SIGNUP, OPTOUT, OPTIN, COACHING_SENT, REPLY_RECEIVED, TIER_UP)
"""The types Huddle itself appends (a plugin may append others: the log does not restrict types)."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append."""

    type: str
    source_id: str | None
    occurred_at: datetime
    person_id: int | None = None
    customer_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event."""

    id: int
    type: str
    person_id: int | None
    customer_id: int | None
    payload: dict[str, Any]
    source_id: str | None
    occurred_at: datetime
    recorded_at: datetime


def _event(r: Any) -> Event:
    return Event(int(r.id), r.type, r.person_id, r.customer_id, dict(r.payload or {}), r.source_id,
                 r.occurred_at, r.recorded_at)


_APPEND = Prepared.per_dialect(
    lambda insert: insert(events).on_conflict_do_nothing(index_elements=["type", "source_id"]).returning(events.c.id)
)
_APPEND_MANY = Prepared.per_dialect(
    lambda insert: insert(events).on_conflict_do_nothing(index_elements=["type", "source_id"])
)
_AFTER = Prepared(sa.select(events).where(events.c.id > sa.bindparam("after")).order_by(events.c.id)
                  .limit(sa.bindparam("limit")))
_BY_IDS = Prepared(sa.select(events).where(events.c.id.in_(sa.bindparam("ids", expanding=True))))
_CURSOR = Prepared(sa.select(event_cursors.c.position).where(event_cursors.c.consumer == sa.bindparam("consumer")))
_ADVANCE = Prepared.per_dialect(
    lambda insert: (stmt := insert(event_cursors)).on_conflict_do_update(
        index_elements=["consumer"],
        set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
        where=event_cursors.c.position < stmt.excluded.position,
    )
)

_ORDER_LOCK = 0x68756464  # "hudd": the advisory lock that keeps appends committing in id order


async def _order_appends(conn: AsyncConnection) -> None:
    """PostgreSQL: wait for other appending transactions to commit (re-entrant within one transaction)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ORDER_LOCK})


def _row(e: NewEvent, now: datetime) -> dict[str, Any]:
    return {"type": e.type, "person_id": e.person_id, "customer_id": e.customer_id, "payload": dict(e.payload),
            "source_id": e.source_id, "occurred_at": e.occurred_at, "recorded_at": now}


async def append_in(conn: AsyncConnection, event: NewEvent, now: datetime) -> int | None:
    """Append one event inside the caller's transaction; its id, or None when (type, source id) exists."""
    await _order_appends(conn)
    row = await _APPEND.first(conn, _row(event, now))
    return None if row is None else int(row.id)


async def append_many_in(conn: AsyncConnection, batch: Sequence[NewEvent], now: datetime) -> None:
    """Append events in one executemany inside the caller's transaction (duplicates are skipped)."""
    if not batch:
        return
    await _order_appends(conn)
    await _APPEND_MANY.execute_many(conn, [_row(e, now) for e in batch])


async def after_in(conn: AsyncConnection, position: int, limit: int = 1000,
                   types: Collection[str] | None = None) -> list[Event]:
    """Events with an id above `position`, oldest first (filtered by type after the read)."""
    rows = [_event(r) for r in await _AFTER.all(conn, {"after": position, "limit": limit})]
    return rows if types is None else [e for e in rows if e.type in types]


async def cursor_in(conn: AsyncConnection, consumer: str) -> int:
    row = await _CURSOR.first(conn, {"consumer": consumer})
    return 0 if row is None else int(row.position)


async def advance_in(conn: AsyncConnection, consumer: str, position: int, now: datetime) -> None:
    """Move a consumer's cursor forward (never back) inside the transaction recording its work."""
    await _ADVANCE.execute(conn, {"consumer": consumer, "position": position, "updated_at": now})


class EventLog:
    """The log for callers outside a transaction (consumers, reports, replay)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, event: NewEvent, now: datetime) -> int | None:
        """Append in a transaction of its own (a source with no business row to write with it)."""

        async def unit(conn: AsyncConnection) -> int | None:
            return await append_in(conn, event, now)

        return await self.db.run(unit)

    async def append_many(self, batch: Sequence[NewEvent], now: datetime) -> None:
        if not batch:
            return

        async def unit(conn: AsyncConnection) -> None:
            await append_many_in(conn, batch, now)

        await self.db.run(unit)

    async def get(self, event_id: int) -> Event | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.id == event_id))).first()
        return None if row is None else _event(row)

    async def get_many(self, ids: Collection[int]) -> dict[int, Event]:
        """Events by id, in one query per 500 ids (a batch of runs reads its triggering events)."""
        wanted = sorted(set(ids))
        out: dict[int, Event] = {}
        async with self.db.read() as conn:
            for start in range(0, len(wanted), 500):
                for r in await _BY_IDS.all(conn, {"ids": wanted[start:start + 500]}):
                    out[int(r.id)] = _event(r)
        return out

    async def after(self, position: int, limit: int = 1000, types: Collection[str] | None = None) -> list[Event]:
        return await self.db.query(lambda conn: after_in(conn, position, limit, types))

    async def cursor(self, consumer: str) -> int:
        return await self.db.query(lambda conn: cursor_in(conn, consumer))

    async def read(self, consumer: str, limit: int = 1000) -> list[Event]:
        """The next events for `consumer` (after its durable cursor); move it with `advance(_in)`."""

        async def unit(conn: AsyncConnection) -> list[Event]:
            return await after_in(conn, await cursor_in(conn, consumer), limit)

        return await self.db.query(unit)

    async def advance(self, consumer: str, position: int, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await advance_in(conn, consumer, position, now)

        await self.db.run(unit)

    async def join(self, consumer: str, now: datetime) -> int:
        """A consumer's cursor; one that never read the log starts at its end (it reacts from now
        on, not to the history a database already holds). Returns the position."""

        async def unit(conn: AsyncConnection) -> int:
            found = await _CURSOR.first(conn, {"consumer": consumer})
            if found is not None:
                return int(found.position)
            end = int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)))).scalar_one())
            await advance_in(conn, consumer, end, now)
            return end

        return await self.db.run(unit)

    async def between(self, start: datetime, end: datetime, types: Collection[str] | None = None) -> list[Event]:
        """Events that occurred in [start, end), in log order (replay, reports)."""
        query = sa.select(events).where(events.c.occurred_at >= start, events.c.occurred_at < end)
        if types is not None:
            query = query.where(events.c.type.in_(list(types)))
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(events.c.id))).all()
        return [_event(r) for r in rows]

    async def of(self, *, person_id: int | None = None, customer_id: int | None = None,
                 types: Collection[str] | None = None) -> list[Event]:
        """One subject's events, oldest first."""
        query = sa.select(events).order_by(events.c.id)
        if person_id is not None:
            query = query.where(events.c.person_id == person_id)
        if customer_id is not None:
            query = query.where(events.c.customer_id == customer_id)
        if types is not None:
            query = query.where(events.c.type.in_(list(types)))
        async with self.db.read() as conn:
            return [_event(r) for r in (await conn.execute(query)).all()]

    async def by_source(self, type_: str, source_id: str) -> Event | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.type == type_,
                                                              events.c.source_id == source_id))).first()
        return None if row is None else _event(row)

    async def count(self, type_: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(events)
        if type_ is not None:
            query = query.where(events.c.type == type_)
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def last_id(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)))).scalar_one())


__all__ = ["BRIEFING", "COACHING_SENT", "CUSTOMER_CREATED", "EVENT_TYPES", "OPTIN", "OPTOUT", "ORDER_CREATED",
           "REPLY_RECEIVED", "SIGNUP", "TIER_UP", "Event", "EventLog", "NewEvent", "advance_in", "after_in",
           "append_in", "append_many_in", "cursor_in", "event_cursors", "events"]
