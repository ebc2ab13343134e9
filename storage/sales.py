"""Sales: staff (budtenders as the POS knows them), transactions and their line items.

Coaching consumes `Transaction` (with its items): budtender, customer, total as Decimal, time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.prepared import Prepared
from storage.types import Money, UTCDateTime

staff = sa.Table(
    "store_staff",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), nullable=False, unique=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32)),
    sa.Column("role", sa.String(32), nullable=False, server_default="budtender"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""The POS's employee id → Huddle person (role budtender), so orders name a person to coach."""

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), nullable=False, unique=True),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="SET NULL")),
    sa.Column("customer_external_id", sa.String(100)),
    sa.Column("budtender_person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("budtender_external_id", sa.String(100)),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("total", Money, nullable=False),
    sa.Column("discount", Money, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="completed"),
    sa.Column("rewards_signup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(16), nullable=False, server_default="import"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_transactions_budtender_time", "budtender_person_id", "occurred_at"),
    sa.Index("ix_transactions_customer_time", "customer_id", "occurred_at"),
    sa.Index("ix_transactions_store_time", "store_id", "occurred_at"),
)

transaction_items = sa.Table(
    "transaction_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(150), nullable=False, unique=True),
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="SET NULL")),
    sa.Column("product_external_id", sa.String(100)),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("category", sa.String(100), nullable=False, server_default=""),
    sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
    sa.Column("unit_price", Money, nullable=False),
    sa.Column("line_total", Money, nullable=False),
    sa.Index("ix_transaction_items_transaction", "transaction_id"),
)
"""`external_id` is the POS line id, or `<order external id>:<line number>` when it has none."""


class TransactionStatus(StrEnum):
    COMPLETED = "completed"
    PENDING = "pending"
    REFUNDED = "refunded"
    VOIDED = "voided"


@dataclass(slots=True)
class TransactionItem:
    product_external_id: str | None
    name: str
    category: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    product_id: int | None = None
    price_tier: int | None = None
    house_brand: bool = False


@dataclass(slots=True)
class Transaction:
    """One order as coaching consumes it (money is Decimal, times are aware UTC)."""

    id: int | None
    external_id: str
    store_id: int | None
    customer_id: int | None
    budtender_person_id: int | None
    occurred_at: datetime
    total: Decimal
    status: TransactionStatus = TransactionStatus.COMPLETED
    rewards_signup: bool = False
    items: list[TransactionItem] = field(default_factory=list)
    customer_external_id: str | None = None
    budtender_external_id: str | None = None

    @property
    def counts(self) -> bool:
        """Whether the order counts towards sales (refunded and voided ones do not)."""
        return self.status in (TransactionStatus.COMPLETED, TransactionStatus.PENDING)


def _status(value: str) -> TransactionStatus:
    try:
        return TransactionStatus(value)
    except ValueError:
        return TransactionStatus.COMPLETED


_STAFF_PEOPLE = Prepared(
    sa.select(staff.c.external_id, staff.c.person_id).where(
        staff.c.external_id.in_(sa.bindparam("exts", expanding=True))
    )
)
_ORDERS_BY_EXTERNAL = Prepared(
    sa.select(transactions.c.id, transactions.c.external_id, transactions.c.status, transactions.c.total).where(
        transactions.c.external_id.in_(sa.bindparam("exts", expanding=True))
    )
)
_ADD_ORDER = Prepared(transactions.insert().returning(transactions.c.id, transactions.c.external_id))
_UPDATE_ORDER = Prepared(transactions.update().where(transactions.c.id == sa.bindparam("b_id")))
_DROP_ITEMS = Prepared(
    transaction_items.delete().where(transaction_items.c.transaction_id.in_(sa.bindparam("ids", expanding=True)))
)
_ADD_ITEMS = Prepared(transaction_items.insert())


@dataclass(slots=True)
class StoredOrder:
    """What an incoming order is compared with: the stored status and total."""

    id: int
    external_id: str
    status: str
    total: Decimal


class SalesRepo:
    """Transactions with their items, staff ↔ person mapping. Writes are batch upserts by external id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ------------------------------------------------------------------------------

    async def upsert_transactions_in(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert or update by `external_id` (one executemany); rows carry every column but `id`."""
        await self.db.upsert_in(conn, transactions, rows, keep=("created_at",))

    async def upsert_items_in(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        await self.db.upsert_in(conn, transaction_items, rows)

    async def replace_items_in(self, conn: AsyncConnection, transaction_id: int, rows: list[dict[str, Any]]) -> None:
        """A webhook carries the whole order: its items replace the stored ones."""
        await conn.execute(transaction_items.delete().where(transaction_items.c.transaction_id == transaction_id))
        if rows:
            await conn.execute(transaction_items.insert(), rows)

    @staticmethod
    async def add_in(conn: AsyncConnection, row: dict[str, Any], items: list[dict[str, Any]]) -> int:
        """Insert one transaction and its items (rows without `transaction_id`); its id."""
        result = await conn.execute(transactions.insert().values(**row))
        transaction_id = int(result.inserted_primary_key[0])
        if items:
            await conn.execute(transaction_items.insert(), [{**i, "transaction_id": transaction_id} for i in items])
        return transaction_id

    @staticmethod
    async def orders_in(conn: AsyncConnection, external_ids: list[str]) -> dict[str, StoredOrder]:
        """The stored orders among these external ids, by external id."""
        rows = await _ORDERS_BY_EXTERNAL.all(conn, {"exts": external_ids})
        return {r.external_id: StoredOrder(r.id, r.external_id, r.status, Decimal(r.total)) for r in rows}

    @staticmethod
    async def add_orders_in(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert transactions (rows carry every column but `id`); external id → new id."""
        return {r.external_id: r.id for r in await _ADD_ORDER.all_many(conn, rows)}

    @staticmethod
    async def update_orders_in(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Update transactions by id, given as `b_id` in each row with the columns to set."""
        await _UPDATE_ORDER.execute_many(conn, rows)

    @staticmethod
    async def replace_order_items_in(conn: AsyncConnection, replaced: list[int], rows: list[dict[str, Any]]) -> None:
        """Drop the items of the `replaced` transactions, then insert `rows` (a webhook carries whole orders)."""
        if replaced:
            await _DROP_ITEMS.execute(conn, {"ids": replaced})
        await _ADD_ITEMS.execute_many(conn, rows)

    @staticmethod
    async def staff_people_in(conn: AsyncConnection, external_ids: set[str]) -> dict[str, int | None]:
        """POS employee id → person id, for these employees only."""
        if not external_ids:
            return {}
        rows = await _STAFF_PEOPLE.all(conn, {"exts": sorted(external_ids)})
        return {r.external_id: r.person_id for r in rows}

    async def staff_people(self, external_ids: set[str]) -> dict[str, int | None]:
        """POS employee id → person id, for those of these employees that are known."""
        return await self.db.query(lambda conn: self.staff_people_in(conn, external_ids))

    async def upsert_staff_in(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        await self.db.upsert_in(conn, staff, rows)

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    async def ids_by_external_in(conn: AsyncConnection, external_ids: list[str] | None = None) -> dict[str, int]:
        query = sa.select(transactions.c.external_id, transactions.c.id)
        if external_ids is not None:
            query = query.where(transactions.c.external_id.in_(external_ids))
        return {r.external_id: r.id for r in (await conn.execute(query)).all()}

    @staticmethod
    async def staff_persons_in(conn: AsyncConnection) -> dict[str, int | None]:
        """POS employee id → person id of every known staff member."""
        rows = (await conn.execute(sa.select(staff.c.external_id, staff.c.person_id))).all()
        return {r.external_id: r.person_id for r in rows}

    async def staff_persons(self) -> dict[str, int | None]:
        async with self.db.read() as conn:
            return await self.staff_persons_in(conn)

    async def staff_person(self, external_id: str) -> int | None:
        """The person id of the staff member with this POS employee id, if linked."""
        async with self.db.read() as conn:
            query = sa.select(staff.c.person_id).where(staff.c.external_id == external_id)
            found = (await conn.execute(query)).scalar()
        return None if found is None else int(found)

    async def get(self, external_id: str) -> Transaction | None:
        async with self.db.read() as conn:
            return await self.get_in(conn, external_id)

    async def get_in(self, conn: AsyncConnection, external_id: str) -> Transaction | None:
        row = (await conn.execute(sa.select(transactions).where(transactions.c.external_id == external_id))).first()
        if row is None:
            return None
        return (await self._with_items(conn, [row]))[0]

    async def between(
        self,
        start: datetime,
        end: datetime,
        *,
        store_id: int | None = None,
        budtender_person_id: int | None = None,
        with_items: bool = True,
    ) -> list[Transaction]:
        """Orders with `start <= occurred_at < end`, oldest first (what shift metrics are made of)."""
        query = sa.select(transactions).where(transactions.c.occurred_at >= start, transactions.c.occurred_at < end)
        if store_id is not None:
            query = query.where(transactions.c.store_id == store_id)
        if budtender_person_id is not None:
            query = query.where(transactions.c.budtender_person_id == budtender_person_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(transactions.c.occurred_at, transactions.c.id))).all()
            if not with_items:
                return [self._transaction(r) for r in rows]
            return await self._with_items(conn, rows)

    async def recent_for_customer_in(
        self, conn: AsyncConnection, customer_id: int, limit: int = 5
    ) -> list[Transaction]:
        rows = (
            await conn.execute(
                sa.select(transactions)
                .where(transactions.c.customer_id == customer_id)
                .order_by(transactions.c.occurred_at.desc(), transactions.c.id.desc())
                .limit(limit)
            )
        ).all()
        return await self._with_items(conn, rows)

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(transactions))).scalar_one())

    # -- mapping -----------------------------------------------------------------------------

    @staticmethod
    def _transaction(row: Any) -> Transaction:
        return Transaction(
            id=row.id,
            external_id=row.external_id,
            store_id=row.store_id,
            customer_id=row.customer_id,
            budtender_person_id=row.budtender_person_id,
            occurred_at=row.occurred_at,
            total=row.total,
            status=_status(row.status),
            rewards_signup=bool(row.rewards_signup),
            customer_external_id=row.customer_external_id,
            budtender_external_id=row.budtender_external_id,
        )

    async def _with_items(self, conn: AsyncConnection, rows: list[Any]) -> list[Transaction]:
        from storage.catalog import products

        result = [self._transaction(r) for r in rows]
        if not result:
            return result
        by_id = {t.id: t for t in result}
        ids = list(by_id)
        item_rows: list[Any] = []
        for i in range(0, len(ids), 500):  # bounded IN lists on both engines
            item_rows += (
                await conn.execute(
                    sa.select(transaction_items, products.c.price_tier, products.c.house_brand)
                    .select_from(transaction_items.outerjoin(products, products.c.id == transaction_items.c.product_id))
                    .where(transaction_items.c.transaction_id.in_(ids[i : i + 500]))
                    .order_by(transaction_items.c.id)
                )
            ).all()
        for r in item_rows:
            by_id[r.transaction_id].items.append(
                TransactionItem(
                    product_external_id=r.product_external_id,
                    name=r.name,
                    category=r.category,
                    quantity=r.quantity,
                    unit_price=r.unit_price,
                    line_total=r.line_total,
                    product_id=r.product_id,
                    price_tier=r.price_tier,
                    house_brand=bool(r.house_brand),
                )
            )
        return result
