"""Receipt photos sent by budtenders, and the claims that make each real receipt count once.

A receipt is stored as soon as it arrives (status `reading`), then becomes `awarded`, `review`
(waiting for staff to type the house-brand total), `refused` (with a reason) or, after a staff
reversal, `reversed`. A claim is a unique key — `img:<sha256>` for the photo, `num:<store>:<number>`
for the receipt itself — inserted in the same transaction as the points: two sends of the same
receipt, even racing, can award once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.catalog import products
from storage.customers import Customer, CustomerRepo, customers
from storage.db import Database, metadata
from storage.events import TIER_UP, NewEvent, append_in
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.types import Money, UTCDateTime

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("budtender_person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="SET NULL")),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(300)),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Column("image", sa.LargeBinary),
    sa.Column("mimetype", sa.String(100)),
    sa.Column("caption", sa.String(500)),
    sa.Column("store_name", sa.String(200)),
    sa.Column("receipt_number", sa.String(100)),
    sa.Column("receipt_date", sa.Date),
    sa.Column("customer_phone", sa.String(32)),
    sa.Column("customer_name", sa.String(200)),
    sa.Column("lines", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("house_total", Money),
    sa.Column("customer_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("budtender_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("read_by", sa.String(16)),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("duplicate_of", sa.Integer),
    sa.Column("inbound_id", sa.Integer, unique=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime),
    sa.Index("ix_receipts_status", "status", "id"),
    sa.Index("ix_receipts_image", "image_sha256"),
)
"""`inbound_id`: the message the photo came in. A message handled again after a crash finds its receipt
instead of making a second one."""

RECEIPT_AWARDED = "receipt.awarded"
"""The event a receipt's points append (source id: the receipt id), in the award's transaction."""

receipt_claims = sa.Table(
    "receipt_claims",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("receipt_id", sa.Integer, sa.ForeignKey("receipts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


class ReceiptStatus(StrEnum):
    READING = "reading"
    REVIEW = "review"
    AWARDED = "awarded"
    REFUSED = "refused"
    REVERSED = "reversed"


@dataclass(slots=True)
class StoredReceipt:
    id: int
    status: ReceiptStatus
    reason: str | None
    budtender_person_id: int | None
    customer_id: int | None
    channel: str
    address: str
    image_sha256: str
    caption: str | None
    store_name: str | None
    receipt_number: str | None
    receipt_date: date | None
    customer_phone: str | None
    customer_name: str | None
    lines: list[dict[str, Any]]
    house_total: Decimal | None
    customer_points: int
    budtender_points: int
    read_by: str | None
    decided_by: str | None
    duplicate_of: int | None
    received_at: datetime
    decided_at: datetime | None


@dataclass(slots=True)
class ReceiptFacts:
    """What was read from a receipt (by the model or by staff); None fields are left as they are."""

    store_name: str | None = None
    receipt_number: str | None = None
    receipt_date: date | None = None
    customer_phone: str | None = None
    customer_name: str | None = None
    lines: list[dict[str, Any]] | None = None
    house_total: Decimal | None = None
    read_by: str | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in {
            "store_name": self.store_name, "receipt_number": self.receipt_number, "receipt_date": self.receipt_date,
            "customer_phone": self.customer_phone, "customer_name": self.customer_name, "lines": self.lines,
            "house_total": self.house_total, "read_by": self.read_by}.items() if v is not None}


@dataclass(slots=True)
class Award:
    """The points of one receipt, written in one transaction with its claims."""

    customer_id: int | None
    entries: list[LedgerEntry]
    claims: list[str]
    customer_points: int
    budtender_points: int
    decided_by: str
    facts: ReceiptFacts = field(default_factory=ReceiptFacts)
    tier_up: Callable[[int, str | None], str | None] | None = None
    """The loyalty rules' `tier_up(balance, current tier)`: asked with the customer's new balance."""


def _receipt(r: Any) -> StoredReceipt:
    return StoredReceipt(
        r.id, ReceiptStatus(r.status), r.reason, r.budtender_person_id, r.customer_id, r.channel, r.address,
        r.image_sha256, r.caption, r.store_name, r.receipt_number, r.receipt_date, r.customer_phone, r.customer_name,
        list(r.lines or []), r.house_total, r.customer_points, r.budtender_points, r.read_by, r.decided_by,
        r.duplicate_of, r.received_at, r.decided_at)


_COLUMNS = [c for c in receipts.c if c.name != "image"]


class ReceiptRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.loyalty = LoyaltyRepo(db)

    async def add(self, *, budtender_person_id: int | None, channel: str, address: str, image_sha256: str,
                  image: bytes | None, mimetype: str | None, caption: str | None, now: datetime,
                  inbound_id: int | None = None) -> tuple[int, StoredReceipt | None]:
        """Store a receipt photo as it arrived (status `reading`): its id, and the receipt this inbound
        message already made (None when new)."""

        async def unit(conn: AsyncConnection) -> tuple[int, StoredReceipt | None]:
            if inbound_id is not None:
                found = (await conn.execute(sa.select(*_COLUMNS).where(receipts.c.inbound_id == inbound_id))).first()
                if found is not None:
                    return int(found.id), _receipt(found)
            result = await conn.execute(receipts.insert().values(
                budtender_person_id=budtender_person_id, status=ReceiptStatus.READING.value, channel=channel,
                address=address, image_sha256=image_sha256, image=image, mimetype=mimetype,
                caption=(caption or None) and caption[:500], lines=[], received_at=now, inbound_id=inbound_id))
            return int(result.inserted_primary_key[0]), None

        return await self.db.run(unit)

    async def claimed_by(self, keys: Sequence[str]) -> int | None:
        """The receipt that holds any of these claims (the first found), or None."""
        if not keys:
            return None
        async with self.db.read() as conn:
            found = (await conn.execute(sa.select(receipt_claims.c.receipt_id)
                                        .where(receipt_claims.c.key.in_(list(keys))).limit(1))).scalar()
        return int(found) if found is not None else None

    async def award(self, receipt_id: int, award: Award, now: datetime) -> int | None:
        """Claims, ledger entries, status and the `receipt.awarded` event in one transaction; the id of
        the receipt that already holds a claim (nothing is written but the refusal) or None when awarded."""

        async def unit(conn: AsyncConnection) -> int | None:
            held = (await conn.execute(sa.select(receipt_claims.c.receipt_id).where(
                receipt_claims.c.key.in_(award.claims), receipt_claims.c.receipt_id != receipt_id).limit(1))).scalar()
            if held is not None:
                await self._set_in(conn, receipt_id, ReceiptStatus.REFUSED, now, duplicate_of=int(held),
                                   reason=f"the same receipt as #{held}", decided_by=award.decided_by,
                                   **award.facts.values())
                return int(held)
            await conn.execute(self.db.insert(receipt_claims).values(
                [{"key": k[:300], "receipt_id": receipt_id, "created_at": now} for k in award.claims])
                .on_conflict_do_nothing(index_elements=["key"]))
            await self.loyalty.add_in(conn, award.entries)
            await self._set_in(conn, receipt_id, ReceiptStatus.AWARDED, now, reason=None,
                               customer_id=award.customer_id, customer_points=award.customer_points,
                               budtender_points=award.budtender_points, decided_by=award.decided_by,
                               **award.facts.values())
            row = _receipt((await conn.execute(sa.select(*_COLUMNS).where(receipts.c.id == receipt_id))).one())
            await append_in(conn, NewEvent(
                RECEIPT_AWARDED, str(receipt_id), row.received_at, row.budtender_person_id, award.customer_id, {
                    "receipt_id": receipt_id, "store": row.store_name, "receipt_number": row.receipt_number,
                    "house_total": str(row.house_total) if row.house_total is not None else None,
                    "customer_points": award.customer_points, "budtender_points": award.budtender_points,
                    "budtender_person_id": row.budtender_person_id, "read_by": row.read_by}), now)
            if award.customer_id is not None and award.tier_up is not None:
                await self._tier_in(conn, award.customer_id, award.tier_up, now)
            return None

        return await self.db.run(unit)

    async def _tier_in(self, conn: AsyncConnection, customer_id: int,
                       tier_up: Callable[[int, str | None], str | None], now: datetime) -> None:
        """A customer these points lift to a new tier moves up, with its `points.tier_up` event (the same
        source id as the POS path's, so one tier is reached once whichever points got there)."""
        balance = await self.loyalty.customer_balance_in(conn, customer_id)
        row = (await conn.execute(sa.select(customers.c.vip_tier, customers.c.person_id)
                                  .where(customers.c.id == customer_id))).first()
        if row is None:
            return
        reached = tier_up(balance, row.vip_tier)
        if reached is None:
            return
        await conn.execute(customers.update().where(customers.c.id == customer_id)
                           .values(vip_tier=reached, updated_at=now))
        await append_in(conn, NewEvent(TIER_UP, f"{customer_id}:{reached}", now, row.person_id, customer_id,
                                       {"customer_id": customer_id, "tier": reached, "previous": row.vip_tier,
                                        "balance": balance, "via": "receipt"}), now)

    async def set_status(self, receipt_id: int, status: ReceiptStatus, now: datetime, *, reason: str | None = None,
                         facts: ReceiptFacts | None = None, decided_by: str | None = None,
                         duplicate_of: int | None = None) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await self._set_in(conn, receipt_id, status, now, reason=reason, decided_by=decided_by,
                               duplicate_of=duplicate_of, **(facts.values() if facts else {}))

        await self.db.run(unit)

    @staticmethod
    async def _set_in(conn: AsyncConnection, receipt_id: int, status: ReceiptStatus, now: datetime,
                      **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None or k == "reason"}
        if values.get("reason"):
            values["reason"] = str(values["reason"])[:300]
        decided = None if status in (ReceiptStatus.READING, ReceiptStatus.REVIEW) else now
        await conn.execute(receipts.update().where(receipts.c.id == receipt_id).values(
            status=status.value, decided_at=decided, **values))

    async def get(self, receipt_id: int) -> StoredReceipt | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(*_COLUMNS).where(receipts.c.id == receipt_id))).first()
        return _receipt(row) if row else None

    async def image(self, receipt_id: int) -> tuple[bytes | None, str | None]:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(receipts.c.image, receipts.c.mimetype)
                                      .where(receipts.c.id == receipt_id))).first()
        return (row.image, row.mimetype) if row else (None, None)

    async def list(self, *, statuses: Sequence[ReceiptStatus] | None = None, budtender_person_id: int | None = None,
                   limit: int = 50) -> list[StoredReceipt]:
        """Newest first."""
        query = sa.select(*_COLUMNS).order_by(receipts.c.id.desc()).limit(limit)
        if statuses:
            query = query.where(receipts.c.status.in_([s.value for s in statuses]))
        if budtender_person_id is not None:
            query = query.where(receipts.c.budtender_person_id == budtender_person_id)
        async with self.db.read() as conn:
            return [_receipt(r) for r in (await conn.execute(query)).all()]


class ReceiptLookups:
    """The reads a receipt needs: the house-brand names the model may see, and the customer."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.customers = CustomerRepo(db)

    async def house_brand_names(self) -> list[str]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(products.c.name).where(products.c.house_brand.is_(True))
                                       .order_by(products.c.name))).all()
        return sorted({r.name for r in rows})

    async def customer_by_phone(self, phone: str) -> Customer | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(customers.c.id).where(customers.c.phone == phone)
                                      .order_by(customers.c.id).limit(1))).scalar()
        return await self.customers.get(int(row)) if row is not None else None

    async def customers_named(self, name: str) -> list[Customer]:
        """Customers whose "first last" is `name` (any case)."""
        first, _, last = " ".join(name.split()).casefold().partition(" ")
        query = sa.select(customers.c.id).where(sa.func.lower(customers.c.first_name) == first).limit(5)
        query = query.where(sa.func.lower(customers.c.last_name) == last) if last else query
        async with self.db.read() as conn:
            ids = [int(r) for r in (await conn.execute(query)).scalars()]
        return [c for c in [await self.customers.get(i) for i in ids] if c is not None]

    async def add_customer(self, phone: str, name: str | None, now: datetime) -> int:
        """A CRM record for a customer first met on a receipt (a rewards member from now on)."""
        first, _, last = (name or "").partition(" ")

        async def unit(conn: AsyncConnection) -> int:
            return await self.customers.add_in(
                conn, phone=phone, first_name=first or None, last_name=last or None, rewards_member=True,
                signup_date=now.date(), favourite_categories=[], attributes={"source": "receipt"},
                created_at=now, updated_at=now)

        return await self.db.run(unit)


__all__ = [
    "RECEIPT_AWARDED",
    "Award",
    "ReceiptFacts",
    "ReceiptLookups",
    "ReceiptRepo",
    "ReceiptStatus",
    "StoredReceipt",
    "receipt_claims",
    "receipts",
]
