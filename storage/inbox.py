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
from storage.prepared import Prepared
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
_older = inbound.alias("older")
_CLAIMABLE = (
    sa.select(inbound.c.id)
    .where(
        inbound.c.status == RECEIVED,
        sa.or_(inbound.c.claimed_by.is_(None),
               sa.and_(inbound.c.claimed_by != sa.bindparam("claim_owner"),
                       sa.or_(sa.bindparam("claim_any", type_=sa.Boolean),
                              dead_owner(inbound.c.claimed_by, sa.bindparam("claim_at", type_=UTCDateTime))))),
        ~sa.exists().where(_older.c.channel == inbound.c.channel, _older.c.address == inbound.c.address,
                           _older.c.status == RECEIVED, _older.c.id < inbound.c.id),
    )
    .order_by(inbound.c.id)
    .limit(sa.bindparam("claim_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = Prepared(
    inbound.update()
    .where(inbound.c.id.in_(_CLAIMABLE.scalar_subquery()))
    .values(claimed_by=sa.bindparam("claim_owner"), claimed_at=sa.bindparam("claim_at", type_=UTCDateTime))
    .returning(*inbound.c)
)
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
        claim side by side without waiting on each other.
        """

        async def unit(conn: AsyncConnection) -> list[Inbound]:
            rows = await _CLAIM.all(conn, {"claim_owner": owner, "claim_at": now, "claim_limit": limit,
                                            "claim_any": anyone_else})
            return sorted((_row_to_inbound(r) for r in rows), key=lambda m: m.id or 0)

        return await self.db.run(unit)

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
