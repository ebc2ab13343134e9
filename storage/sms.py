"""SMS modem state that must survive a restart: parts of long texts, parts already sent, raw PDUs.

Parts of a concatenated inbound SMS are kept here (raw PDU and the modem slot they came from)
until the whole message has been committed to the inbox, so a restart half-way through a set
loses nothing. Sent parts are recorded per outbox message so a retry after a failure in the
middle of a long text sends only the parts that did not go out. A PDU that is not a text for a
handler (binary data, WAP push, a flash message, something unreadable) is kept raw in `sms_held`
before its modem slot is freed; a text that could only be read leniently keeps its raw PDU there
too, marked `delivered`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.types import UTCDateTime

sms_parts = sa.Table(
    "sms_parts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("reference", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("pdu", sa.Text, nullable=False),
    sa.Column("slot", sa.Integer),
    sa.Column("storage", sa.String(8)),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("sender", "reference", "total", "part", name="uq_sms_parts_sender"),
)

sms_sent_parts = sa.Table(
    "sms_sent_parts",
    metadata,
    sa.Column("outbox_id", sa.Integer, primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("message_ref", sa.Integer, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)

sms_held = sa.Table(
    "sms_held",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("pdu", sa.Text, nullable=False),
    sa.Column("slot", sa.Integer),
    sa.Column("storage", sa.String(8)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(64)),
    sa.Column("text", sa.Text),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("digest", name="uq_sms_held_digest"),
    sa.Index("ix_sms_held_received_at", "received_at"),
)

HELD, DELIVERED = "held", "delivered"
"""`sms_held.outcome`: never handed to a handler / handed over with what could be read."""

SetKey = tuple[str, int, int]
"""(sender, concatenation reference, total parts)."""


@dataclass(frozen=True, slots=True)
class StoredPart:
    id: int
    sender: str
    reference: int
    total: int
    part: int
    pdu: str
    slot: int | None
    storage: str | None
    received_at: datetime

    @property
    def key(self) -> SetKey:
        return (self.sender, self.reference, self.total)


@dataclass(frozen=True, slots=True)
class HeldPdu:
    id: int
    pdu: str
    slot: int | None
    storage: str | None
    reason: str
    outcome: str
    sender: str | None
    text: str | None
    provider_id: str | None
    received_at: datetime


def _held(row: sa.Row) -> HeldPdu:
    return HeldPdu(row.id, row.pdu, row.slot, row.storage, row.reason, row.outcome, row.sender, row.text,
                   row.provider_id, row.received_at)


def _part(row: sa.Row) -> StoredPart:
    return StoredPart(row.id, row.sender, row.reference, row.total, row.part, row.pdu, row.slot, row.storage,
                      row.received_at)


def _in_set(key: SetKey) -> sa.ColumnElement[bool]:
    sender, reference, total = key
    return sa.and_(sms_parts.c.sender == sender, sms_parts.c.reference == reference, sms_parts.c.total == total)


class SmsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_part(
        self, key: SetKey, part: int, pdu: str, slot: int | None, storage: str | None, now: datetime
    ) -> list[StoredPart]:
        """Store one part (a repeat updates its slot) and return every part of its set so far."""

        async def unit(conn: AsyncConnection) -> list[StoredPart]:
            sender, reference, total = key
            stmt = self.db.insert(sms_parts).values(
                sender=sender, reference=reference, total=total, part=part, pdu=pdu, slot=slot, storage=storage,
                received_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["sender", "reference", "total", "part"], set_={"slot": slot, "storage": storage}
            )
            await conn.execute(stmt)
            rows = await conn.execute(sa.select(sms_parts).where(_in_set(key)).order_by(sms_parts.c.part))
            return [_part(r) for r in rows]

        return await self.db.run(unit)

    async def parts(self, key: SetKey) -> list[StoredPart]:
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(sms_parts).where(_in_set(key)).order_by(sms_parts.c.part))
            return [_part(r) for r in rows]

    async def all_parts(self) -> list[StoredPart]:
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(sms_parts).order_by(sms_parts.c.id))
            return [_part(r) for r in rows]

    async def delete_set(self, key: SetKey) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(sms_parts.delete().where(_in_set(key)))

        await self.db.run(unit)

    async def forget_slots(self, part_ids: list[int]) -> None:
        """The modem no longer holds these parts' slots (deleted, or reused after a crash)."""
        if not part_ids:
            return

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(sms_parts.update().where(sms_parts.c.id.in_(part_ids)).values(slot=None, storage=None))

        await self.db.run(unit)

    async def expired_sets(self, before: datetime) -> list[SetKey]:
        """Sets whose first part arrived before `before` (delivered incomplete after a timeout)."""
        async with self.db.read() as conn:
            first = sa.func.min(sms_parts.c.received_at)
            rows = await conn.execute(
                sa.select(sms_parts.c.sender, sms_parts.c.reference, sms_parts.c.total)
                .group_by(sms_parts.c.sender, sms_parts.c.reference, sms_parts.c.total)
                .having(first < before)
            )
            return [(r.sender, r.reference, r.total) for r in rows]

    async def sent_parts(self, outbox_id: int) -> dict[int, int]:
        """Part number → message reference for the parts of this outbox message already sent."""
        async with self.db.read() as conn:
            t = sms_sent_parts
            rows = await conn.execute(sa.select(t.c.part, t.c.message_ref).where(t.c.outbox_id == outbox_id))
            return {r.part: r.message_ref for r in rows}

    async def record_sent(self, outbox_id: int, part: int, message_ref: int, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            values = {"message_ref": message_ref, "sent_at": now}
            stmt = self.db.insert(sms_sent_parts).values(outbox_id=outbox_id, part=part, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["outbox_id", "part"], set_=values))

        await self.db.run(unit)

    async def prune_sent(self, before: datetime) -> int:
        async def unit(conn: AsyncConnection) -> int:
            result = await conn.execute(sms_sent_parts.delete().where(sms_sent_parts.c.sent_at < before))
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    # -- raw PDUs ---------------------------------------------------------------------------------

    async def hold(
        self,
        digest: str,
        pdu: str,
        *,
        reason: str,
        now: datetime,
        slot: int | None = None,
        storage: str | None = None,
        outcome: str = HELD,
        sender: str | None = None,
        text: str | None = None,
        provider_id: str | None = None,
    ) -> bool:
        """Keep a raw PDU (once per digest: reading the same slot again adds nothing). True if new."""

        def clean(value: str | None) -> str | None:
            return None if value is None else value.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL

        async def unit(conn: AsyncConnection) -> bool:
            stmt = self.db.insert(sms_held).values(
                digest=digest, pdu=pdu, slot=slot, storage=storage, reason=reason[:2000], outcome=outcome,
                sender=clean(sender), text=clean(text), provider_id=provider_id, received_at=now,
            )
            result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))
            return bool(result.rowcount)

        return await self.db.run(unit)

    async def held(self, limit: int = 50, outcome: str | None = HELD) -> list[HeldPdu]:
        """Raw PDUs, newest first; `outcome=None` lists lenient deliveries too."""
        async with self.db.read() as conn:
            query = sa.select(sms_held).order_by(sms_held.c.id.desc()).limit(limit)
            if outcome is not None:
                query = query.where(sms_held.c.outcome == outcome)
            return [_held(r) for r in await conn.execute(query)]

    async def held_counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(sms_held.c.outcome, sa.func.count()).group_by(sms_held.c.outcome))
            return {r[0]: int(r[1]) for r in rows}
