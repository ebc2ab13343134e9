"""Inbound messages: stored before anything else happens, deduplicated by provider id."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Inbound, InboundFile
from storage.db import Database, metadata
from storage.events import REPLY_RECEIVED, NewEvent, append_many_in
from storage.prepared import Prepared, among
from storage.processes import dead_owner
from storage.types import UTCDateTime

inbound = sa.Table(
    "inbound",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("thread", sa.String(200)),
    sa.Column("callback_data", sa.String(500)),
    sa.Column("files", sa.JSON),
    sa.Column("display_name", sa.String(200)),
    sa.Column("person_id", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("handler", sa.String(100)),
    sa.Column("error", sa.Text),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("stored_at", UTCDateTime, nullable=False),
    sa.Column("handled_at", UTCDateTime),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_at", UTCDateTime),
)

RECEIVED, HANDLED, FAILED, IGNORED = "received", "handled", "failed", "ignored"


def _files(files: list[InboundFile]) -> list[dict[str, Any]] | None:
    if not files:
        return None
    return [{k: v for k, v in asdict(f).items() if k != "content"} for f in files]


def _row_to_inbound(row: Any) -> Inbound:
    return Inbound(
        address=Address(row.channel, row.address),
        text=row.text,
        provider_id=row.provider_id,
        received_at=row.received_at,
        files=[InboundFile(**f) for f in (row.files or [])],
        thread=row.thread,
        callback_data=row.callback_data,
        display_name=row.display_name,
        id=row.id,
    )


_STORE = Prepared.per_dialect(
    lambda insert: insert(inbound)
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(inbound.c.id, inbound.c.channel, inbound.c.provider_id)
)
_RECEIVED = sa.literal_column(f"'{RECEIVED}'", sa.String)
"""Written into the SQL, not bound: PostgreSQL proves a partial index's predicate
(`status = 'received'`) only from a constant, whichever plan it caches."""
_CLAIM_OWNER = sa.bindparam("claim_owner", type_=sa.String)
_CLAIM_AT = sa.bindparam("claim_at", type_=UTCDateTime)
# Only a sender's oldest unhandled message (its head) can be taken, so a sender's messages are
# handled one at a time, in order. Two ways to find heads, so that a claim costs what it takes,
# not what waits (issue 13: a NOT EXISTS per waiting row read the whole backlog whenever fewer
# heads were free than asked for — 34 ms a claim with 10,000 messages from 200 senders):
#
# - the front: the first `claim_scan` waiting rows (ix_inbound_received), each one checked
#   against its sender's head. Enough when heads are dense (many senders).
# - the senders: each sender with waiting rows, one probe each (a skip scan of
#   ix_inbound_waiting in (channel, address) order), which gives its head. For what the front
#   did not fill (a few senders with deep backlogs, or heads beyond the front).
#
# Every step is an index probe the planner has no other way to make (see storage/outbox.py).


def _free(claimed_by: Any) -> Any:
    """Nobody handles it: unclaimed, or its owner's lease ran out (`claim_any`: any other owner)."""
    return sa.or_(claimed_by.is_(None),
                  sa.and_(claimed_by != _CLAIM_OWNER,
                          sa.or_(sa.bindparam("claim_any", type_=sa.Boolean), dead_owner(claimed_by, _CLAIM_AT))))


_front, _candidate, _oldest = inbound.alias("front"), inbound.alias("candidate"), inbound.alias("oldest")
_FRONT = sa.select(_front.c.id).where(_front.c.status == _RECEIVED).order_by(_front.c.id).limit(
    sa.bindparam("claim_scan"))


def _front_heads(dialect: str) -> Any:
    c = _candidate.c
    head = (
        sa.select(_oldest.c.id)
        .where(_oldest.c.channel == c.channel, _oldest.c.address == c.address, _oldest.c.status == _RECEIVED)
        .order_by(_oldest.c.channel, _oldest.c.address, _oldest.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(c.id).where(among(c.id, _FRONT, dialect), _free(c.claimed_by), head == c.id)


_first, _lowest = inbound.alias("first_waiting"), inbound.alias("lowest")
_senders = (
    sa.select(_first.c.channel, _first.c.address, _first.c.id, _first.c.claimed_by)
    .where(_first.c.id == sa.select(_lowest.c.id).where(_lowest.c.status == _RECEIVED)
           .order_by(_lowest.c.channel, _lowest.c.address, _lowest.c.id).limit(1).scalar_subquery())
    .cte("senders", recursive=True)
)
_next, _after = inbound.alias("next_waiting"), inbound.alias("after_waiting")
_next_head = (
    sa.select(_after.c.id)
    .where(_after.c.status == _RECEIVED,
           sa.tuple_(_after.c.channel, _after.c.address) > sa.tuple_(_senders.c.channel, _senders.c.address))
    .order_by(_after.c.channel, _after.c.address, _after.c.id)
    .limit(1)
    .scalar_subquery()
)
_senders = _senders.union_all(
    sa.select(_next.c.channel, _next.c.address, _next.c.id, _next.c.claimed_by).select_from(
        _senders.join(_next, _next.c.id == _next_head))
)
_SENDER_HEADS = sa.select(_senders.c.id).where(_free(_senders.c.claimed_by))


def _claim(heads: Any, dialect: str, *extra: Any) -> Any:
    # Locked by id, once, in a materialized CTE; a row locked after another claim committed is
    # read as that claim left it, and is not taken (see `storage.outbox._claim`).
    picked = (
        sa.select(inbound.c.id, inbound.c.status, inbound.c.claimed_by)
        .where(among(inbound.c.id, heads, dialect))
        .order_by(inbound.c.id)
        .limit(sa.bindparam("claim_limit"))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    still_free = sa.select(picked.c.id).where(picked.c.status == _RECEIVED, _free(picked.c.claimed_by))
    return (
        inbound.update()
        .where(among(inbound.c.id, still_free, dialect))
        .values(claimed_by=_CLAIM_OWNER, claimed_at=_CLAIM_AT)
        .returning(*inbound.c, *extra)
    )


_FRONT_SIZE = sa.select(sa.func.count()).select_from(_FRONT.subquery()).scalar_subquery().label("front_size")
"""Returned with what the front claimed: a front shorter than `claim_scan` held every waiting
message, so the senders have nothing more to give."""
_CLAIM_FRONT = Prepared.dialects(_claim(_front_heads("sqlite"), "sqlite", _FRONT_SIZE),
                                 postgresql=_claim(_front_heads("postgresql"), "postgresql", _FRONT_SIZE))
_CLAIM_SENDERS = Prepared.dialects(_claim(_SENDER_HEADS, "sqlite"), postgresql=_claim(_SENDER_HEADS, "postgresql"))
CLAIM_SCAN = 4
"""The front a claim reads first, in rows per row wanted (at least `CLAIM_SCAN_MIN`)."""
CLAIM_SCAN_MIN = 256
"""Enough to see past the heads other processes are busy with."""
_FINISH = Prepared(inbound.update().where(inbound.c.id == sa.bindparam("row_id")))


def _values(message: Inbound, now: datetime, owner: str | None = None) -> dict[str, Any]:
    return {
        "channel": message.address.channel,
        "address": message.address.id,
        "provider_id": message.provider_id,
        "text": message.text,
        "thread": message.thread,
        "callback_data": message.callback_data,
        "files": _files(message.files),
        "display_name": message.display_name,
        "status": RECEIVED,
        "person_id": None,
        "handler": None,
        "error": None,
        "received_at": message.received_at,
        "stored_at": now,
        "handled_at": None,
        "claimed_by": owner,
        "claimed_at": now if owner is not None else None,
    }


async def _store_many(
    conn: AsyncConnection, items: list[tuple[Inbound, datetime, str | None]]
) -> list[int | None]:
    found = await _STORE.each_many(conn, [_values(m, now, owner) for m, now, owner in items],
                                   key=("channel", "provider_id"))
    return [None if row is None else int(row.id) for row in found]


async def _finish_many(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[None]:
    """Mark messages handled; a person wrote to us: `reply.received`, once per message (recorded at
    the batch's latest time, each occurring at its own)."""
    await _FINISH.execute_many(conn, rows)
    events = [NewEvent(REPLY_RECEIVED, str(r["row_id"]), r["handled_at"], r["person_id"], None,
                       {"inbound_id": r["row_id"], "handler": r["handler"], "status": r["status"]})
              for r in rows if r["person_id"] is not None]
    if events:
        await append_many_in(conn, events, max(e.occurred_at for e in events))
    return [None] * len(rows)


class InboxRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store(self, message: Inbound, now: datetime, owner: str | None = None) -> int | None:
        """Insert the message; None when the provider id was seen before (a redelivery).

        `owner`: the process that will handle it (it is claimed as stored); None leaves it for a
        worker to claim (a gateway's intake). Concurrent messages share one multi-row insert
        (`Database.run_many`); a provider id seen twice in one batch is stored once, for the first.
        """
        return await self.db.run_many(_store_many, (message, now, owner))

    async def store_in(self, conn: AsyncConnection, message: Inbound, now: datetime,
                       owner: str | None = None) -> int | None:
        return (await _store_many(conn, [(message, now, owner)]))[0]

    async def finish(
        self,
        inbound_id: int,
        status: str,
        now: datetime,
        *,
        person_id: int | None = None,
        handler: str | None = None,
        error: str | None = None,
    ) -> None:
        values = {"row_id": inbound_id, "status": status, "handled_at": now}
        values |= {"person_id": person_id, "handler": handler, "error": error}
        await self.db.run_many(_finish_many, values)

    async def claim(self, owner: str, now: datetime, limit: int, *, anyone_else: bool = False) -> list[Inbound]:
        """Take up to `limit` messages to handle: unclaimed ones, or ones whose owner's lease ran out
        (`anyone_else`: whoever else claimed them; an embedded database has one Huddle at a time).

        Only the oldest unhandled message of each sender can be taken, so a sender's messages are
        handled one at a time in order, whichever worker takes them; `SKIP LOCKED` lets workers
        claim side by side without waiting on each other. The front of the backlog first, then
        the senders for what it did not fill (see `_CLAIM_FRONT`).
        """

        async def unit(conn: AsyncConnection) -> list[Inbound]:
            params = {"claim_owner": owner, "claim_at": now, "claim_limit": limit, "claim_any": anyone_else,
                      "claim_scan": max(limit * CLAIM_SCAN, CLAIM_SCAN_MIN)}
            rows = await _CLAIM_FRONT.all(conn, params)
            if len(rows) < limit and (not rows or rows[0].front_size >= params["claim_scan"]):
                rows += await _CLAIM_SENDERS.all(conn, {**params, "claim_limit": limit - len(rows)})
            return sorted((_row_to_inbound(r) for r in rows), key=lambda m: m.id or 0)

        return await self.db.run(unit)

    async def strays(self, owner: str, claimed_at: datetime, held: list[int]) -> list[Inbound]:
        """Messages this process's claim at `claimed_at` took but it does not hold: that claim's
        commit went through while its answer was lost (the database went away)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(inbound).where(
                inbound.c.status == RECEIVED, inbound.c.claimed_by == owner, inbound.c.claimed_at == claimed_at,
                inbound.c.id.not_in(held)).order_by(inbound.c.id))).all()
        return [_row_to_inbound(r) for r in rows]

    async def release(self, ids: list[int], owner: str) -> None:
        """Give back claimed messages this process will not handle (a clean stop)."""
        if not ids:
            return

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(inbound.update().where(
                inbound.c.id.in_(ids), inbound.c.status == RECEIVED, inbound.c.claimed_by == owner,
            ).values(claimed_by=None, claimed_at=None))

        await self.db.run(unit)

    async def unhandled(self) -> list[Inbound]:
        """Messages stored but never handled (the process stopped in between)."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(sa.select(inbound).where(inbound.c.status == RECEIVED).order_by(inbound.c.id))
            ).all()
        return [_row_to_inbound(r) for r in rows]

    async def get(self, inbound_id: int) -> tuple[Inbound, str, str | None] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(inbound).where(inbound.c.id == inbound_id))).first()
        return None if row is None else (_row_to_inbound(row), row.status, row.error)

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(inbound.c.channel, inbound.c.status, sa.func.count()).group_by(
                        inbound.c.channel, inbound.c.status
                    )
                )
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def recent_errors(self, limit: int = 5) -> list[tuple[datetime, str, str]]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(inbound.c.handled_at, inbound.c.channel, inbound.c.error)
                    .where(inbound.c.status == FAILED)
                    .order_by(inbound.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [(r[0], r[1], r[2] or "") for r in rows]

    async def unanswered_senders(self, limit: int = 5) -> tuple[int, list[tuple[datetime, str, str, str]]]:
        """Texts from senders that are not people (`AMAZON`, short codes): how many, and the latest
        (received at, sender, kind, text). The dispatcher files them with handler `sender:<kind>`."""
        match = inbound.c.handler.like("sender:%")
        async with self.db.read() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).where(match))).scalar() or 0
            rows = (await conn.execute(
                sa.select(inbound.c.received_at, inbound.c.address, inbound.c.handler, inbound.c.text)
                .where(match).order_by(inbound.c.id.desc()).limit(limit)
            )).all()
        return int(total), [(r[0], r[1], (r[2] or "").removeprefix("sender:"), r[3]) for r in rows]
