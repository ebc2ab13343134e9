"""The loyalty ledger: points as signed entries; a balance is the sum, never a stored number.

Each entry has a unique `key` (e.g. `order:123:customer`, `refund:123:customer`) so awarding
or reversing the same order twice is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.events import NewEvent, append_many_in
from storage.prepared import Prepared
from storage.types import UTCDateTime

loyalty_ledger = sa.Table(
    "loyalty_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE")),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE")),
    sa.Column("delta", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("order_external_id", sa.String(100)),
    sa.Column("note", sa.String(300)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("receipt_id", sa.Integer),
    sa.Index("ix_loyalty_ledger_customer", "customer_id"),
    sa.Index("ix_loyalty_ledger_person", "person_id"),
    sa.Index("ix_loyalty_ledger_receipt", "receipt_id"),
    sa.Index("ix_loyalty_ledger_order", "order_external_id"),
    sa.Index("ix_loyalty_ledger_person_time", "person_id", "created_at", "id"),  # admin timeline (admin_0001)
    sa.Index("ix_loyalty_ledger_customer_time", "customer_id", "created_at", "id"),
)
"""`customer_id` for a customer's points; `person_id` for staff points (the budtender bonus).
The source of an entry is its `order_external_id` (a POS order) or `receipt_id` (a receipt photo)."""

POINTS_REVERSED = "points.reversed"
"""The event each reversing entry appends (source id: its key), in the reversal's transaction."""
REVERSAL = "reversal"
"""The reason of an entry a member of staff wrote to cancel another (`python main.py points reverse`)."""


@dataclass(slots=True)
class LedgerEntry:
    key: str
    delta: int
    reason: str
    created_at: datetime
    customer_id: int | None = None
    person_id: int | None = None
    order_external_id: str | None = None
    note: str | None = None
    receipt_id: int | None = None
    id: int | None = None


class AlreadyReversed(ValueError):
    """The entry was reversed before (its reversal key exists)."""


_ADD = Prepared.per_dialect(lambda insert: insert(loyalty_ledger).on_conflict_do_nothing(index_elements=["key"]))
_ADD_OR_REPLACE = Prepared.per_dialect(
    lambda insert: (stmt := insert(loyalty_ledger)).on_conflict_do_update(
        index_elements=["key"], set_={"delta": stmt.excluded.delta}
    )
)
_REMOVE = Prepared(loyalty_ledger.delete().where(loyalty_ledger.c.key.in_(sa.bindparam("keys", expanding=True))))
_DELTAS = Prepared(
    sa.select(loyalty_ledger.c.key, loyalty_ledger.c.delta).where(
        loyalty_ledger.c.key.in_(sa.bindparam("keys", expanding=True))
    )
)


class LoyaltyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_in(self, conn: AsyncConnection, entries: list[LedgerEntry], *, replace: bool = False) -> None:
        """Record entries; an existing key is kept (awarding twice is a no-op) unless `replace`.

        `replace` updates the delta of an existing key: an order whose total changed, a CRM
        balance re-imported.
        """
        if not entries:
            return
        rows = [
            {
                "key": e.key,
                "customer_id": e.customer_id,
                "person_id": e.person_id,
                "delta": e.delta,
                "reason": e.reason,
                "order_external_id": e.order_external_id,
                "note": e.note,
                "created_at": e.created_at,
                "receipt_id": e.receipt_id,
            }
            for e in entries
        ]
        await (_ADD_OR_REPLACE if replace else _ADD).execute_many(conn, rows)

    async def remove_in(self, conn: AsyncConnection, keys: list[str]) -> None:
        if keys:
            await _REMOVE.execute(conn, {"keys": keys})

    @staticmethod
    async def deltas_in(conn: AsyncConnection, keys: list[str]) -> dict[str, int]:
        if not keys:
            return {}
        return {r.key: r.delta for r in await _DELTAS.all(conn, {"keys": keys})}

    @staticmethod
    async def customer_balance_in(conn: AsyncConnection, customer_id: int) -> int:
        total = (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(loyalty_ledger.c.delta), 0)).where(
                    loyalty_ledger.c.customer_id == customer_id
                )
            )
        ).scalar_one()
        return int(total)

    async def customer_balance(self, customer_id: int) -> int:
        async with self.db.read() as conn:
            return await self.customer_balance_in(conn, customer_id)

    async def person_balance(self, person_id: int) -> int:
        """Staff points (the budtender bonus)."""
        async with self.db.read() as conn:
            total = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(loyalty_ledger.c.delta), 0)).where(
                        loyalty_ledger.c.person_id == person_id
                    )
                )
            ).scalar_one()
        return int(total)

    async def person_points(self, person_id: int, since: datetime) -> tuple[int, int]:
        """Staff points: the balance, and the part of it booked since `since` (refunds included)."""
        recent = sa.case((loyalty_ledger.c.created_at >= since, loyalty_ledger.c.delta), else_=0)
        async with self.db.read() as conn:
            row = (await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(loyalty_ledger.c.delta), 0),
                          sa.func.coalesce(sa.func.sum(recent), 0)).where(loyalty_ledger.c.person_id == person_id)
            )).one()
        return int(row[0]), int(row[1])

    async def entries(self, *, customer_id: int | None = None, person_id: int | None = None) -> list[LedgerEntry]:
        query = sa.select(loyalty_ledger).order_by(loyalty_ledger.c.id)
        if customer_id is not None:
            query = query.where(loyalty_ledger.c.customer_id == customer_id)
        if person_id is not None:
            query = query.where(loyalty_ledger.c.person_id == person_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_entry(r) for r in rows]

    async def by_source(self, *, receipt_id: int | None = None, order_external_id: str | None = None,
                        key: str | None = None) -> list[LedgerEntry]:
        """The entries of one source (a receipt, a POS order) or the one entry with `key`, oldest first."""
        query = sa.select(loyalty_ledger).order_by(loyalty_ledger.c.id)
        if receipt_id is not None:
            query = query.where(loyalty_ledger.c.receipt_id == receipt_id)
        if order_external_id is not None:
            query = query.where(loyalty_ledger.c.order_external_id == order_external_id)
        if key is not None:
            query = query.where(loyalty_ledger.c.key == key)
        async with self.db.read() as conn:
            return [_entry(r) for r in (await conn.execute(query)).all()]

    async def reverse(self, keys: list[str], reason: str, now: datetime) -> list[LedgerEntry]:
        """Cancel the entries with `keys` in one transaction: each gets a `reverse:<key>` entry with the
        opposite delta, the same source and `reason` as its note. Entries already reversed (by staff or a
        POS refund), and reversing entries themselves, are left alone; returns the reversals written."""

        async def unit(conn: AsyncConnection) -> list[LedgerEntry]:
            rows = (await conn.execute(sa.select(loyalty_ledger).where(loyalty_ledger.c.key.in_(keys))
                                       .order_by(loyalty_ledger.c.id))).all()
            wanted = [_entry(r) for r in rows if r.reason not in (REVERSAL, "refund") and r.delta != 0]
            done = set((await self.deltas_in(conn, [reversal_key(e.key) for e in wanted])).keys())
            out = [LedgerEntry(reversal_key(e.key), -e.delta, REVERSAL, now, customer_id=e.customer_id,
                               person_id=e.person_id, order_external_id=e.order_external_id, note=reason[:300],
                               receipt_id=e.receipt_id)
                   for e in wanted if reversal_key(e.key) not in done]
            await self.add_in(conn, out)
            if out:
                await append_many_in(conn, [NewEvent(
                    POINTS_REVERSED, e.key, now, e.person_id, e.customer_id,
                    {"delta": e.delta, "reason": reason[:300], "receipt_id": e.receipt_id,
                     "order_id": e.order_external_id}) for e in out], now)
            return out

        return await self.db.run(unit)


def reversal_key(key: str) -> str:
    """The key of the entry that cancels `key`. A POS order's award is cancelled under the key its refund
    would use (`order:T1:customer` → `refund:T1:customer`), so the order refunded later by the POS is not
    reversed twice; anything else gets `reverse:<key>`."""
    if key.startswith("order:"):
        return "refund:" + key.removeprefix("order:")
    return f"reverse:{key}"[:200]


def _entry(r: Any) -> LedgerEntry:
    return LedgerEntry(r.key, r.delta, r.reason, r.created_at, r.customer_id, r.person_id, r.order_external_id,
                       r.note, r.receipt_id, r.id)
