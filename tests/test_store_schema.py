"""The store migration creates exactly the tables the repositories declare, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import storage.budtender_network
import storage.catalog
import storage.customers
import storage.loyalty
import storage.pos_events
import storage.receipts
import storage.sales  # noqa: F401  (registers tables)
from storage.customers import customers, stores
from storage.db import Database, metadata
from storage.sales import transactions

STORE_TABLES = {"stores", "customers", "store_handoffs", "products", "store_staff", "transactions",
                "transaction_items", "loyalty_ledger", "pos_events"}


def _diff(sync_conn: sa.Connection) -> list[object]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
    diffs = compare_metadata(ctx, metadata)
    out = []
    for d in diffs:
        flat = d if isinstance(d, tuple) else d[0]
        text = repr(flat)
        if any(t in text for t in STORE_TABLES):
            out.append(d)
    return out


async def test_migration_matches_tables(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        async with db.read() as conn:
            names = set(await conn.run_sync(lambda s: sa.inspect(s).get_table_names()))
            assert names >= STORE_TABLES
            diffs = await conn.run_sync(_diff)
        assert diffs == [], "\n".join(map(repr, diffs))
        now = datetime(2026, 11, 23, 12, tzinfo=UTC)

        async def unit(conn: sa.ext.asyncio.AsyncConnection) -> None:
            sid = (await conn.execute(stores.insert().values(code="main", name="Main", timezone="UTC",
                                                             created_at=now, updated_at=now))).inserted_primary_key[0]
            cid = (await conn.execute(customers.insert().values(
                external_id="C1", store_id=sid, first_name="Ann", signup_date=date(2025, 1, 2),
                favourite_categories=["flower"], attributes={}, lifetime_spend=Decimal("12.30"),
                created_at=now, updated_at=now))).inserted_primary_key[0]
            await conn.execute(transactions.insert().values(
                external_id="T1", store_id=sid, customer_id=cid, occurred_at=now, total=Decimal("45.67"),
                created_at=now, updated_at=now))

        await db.run(unit)
        async with db.read() as conn:
            row = (await conn.execute(sa.select(transactions))).one()
            cust = (await conn.execute(sa.select(customers))).one()
        assert row.total == Decimal("45.67") and row.status == "completed" and row.occurred_at == now
        assert cust.favourite_categories == ["flower"] and cust.lifetime_spend == Decimal("12.30")
    finally:
        await db.close()
