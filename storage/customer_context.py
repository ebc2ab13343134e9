"""Everything the concierge may know when one customer texts: their record, and nobody else's.

One read transaction and three statements, all keyed by the sender's own person id (or their own
phone number on first contact): the CRM record with the points balance, the latest orders with
their items, and the most-bought products. The store's in-stock products are passed in (shared by
every customer, cached by the caller) or read once. The result is the only data a reply — rule-based
or from the model — is built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.catalog import CatalogRepo, Product, products
from storage.customers import Customer, _customer, customers
from storage.db import Database
from storage.loyalty import loyalty_ledger
from storage.sales import SalesRepo, Transaction, TransactionItem, transaction_items, transactions


@dataclass(slots=True)
class CustomerContext:
    customer: Customer | None
    points: int = 0
    recent: list[Transaction] = field(default_factory=list)
    top_products: list[str] = field(default_factory=list)
    in_stock: list[Product] = field(default_factory=list)


async def customer_and_points_in(conn: AsyncConnection, person_id: int, phone: str | None
                                 ) -> tuple[Customer | None, int]:
    """The person's CRM record (linked, else an unlinked one with their phone) and its balance."""
    balance = (
        sa.select(sa.func.coalesce(sa.func.sum(loyalty_ledger.c.delta), 0))
        .where(loyalty_ledger.c.customer_id == customers.c.id)
        .scalar_subquery()
    )
    match = customers.c.person_id == person_id
    if phone:
        match = sa.or_(match, customers.c.phone == phone)
    rows = (await conn.execute(sa.select(customers, balance.label("points")).where(match).limit(20))).all()
    linked = [r for r in rows if r.person_id == person_id]
    if linked:
        row = linked[0]
    else:
        free = [r for r in rows if r.person_id is None]
        if not free:
            return None, 0
        free.sort(key=lambda r: (r.last_visit_at is not None, r.last_visit_at or 0, r.id), reverse=True)
        row = free[0]
    return _customer(row), int(row.points)


async def recent_orders_in(conn: AsyncConnection, customer_id: int, limit: int = 3) -> list[Transaction]:
    """The latest orders with their items, in one statement."""
    latest = (
        sa.select(transactions)
        .where(transactions.c.customer_id == customer_id)
        .order_by(transactions.c.occurred_at.desc(), transactions.c.id.desc())
        .limit(limit)
        .subquery()
    )
    rows = (
        await conn.execute(
            sa.select(latest, transaction_items.c.id.label("item_id"), transaction_items.c.product_external_id,
                      transaction_items.c.name, transaction_items.c.category, transaction_items.c.quantity,
                      transaction_items.c.unit_price, transaction_items.c.line_total, transaction_items.c.product_id,
                      products.c.price_tier, products.c.house_brand)
            .select_from(latest.outerjoin(transaction_items, transaction_items.c.transaction_id == latest.c.id)
                         .outerjoin(products, products.c.id == transaction_items.c.product_id))
            .order_by(latest.c.occurred_at.desc(), latest.c.id.desc(), transaction_items.c.id)
        )
    ).all()
    out: dict[int, Transaction] = {}
    for r in rows:
        txn = out.get(r.id)
        if txn is None:
            txn = out[r.id] = SalesRepo._transaction(r)
        if r.item_id is not None:
            txn.items.append(_item(r))
    return list(out.values())


def _item(r: Any) -> TransactionItem:
    return TransactionItem(r.product_external_id, r.name, r.category, r.quantity, r.unit_price, r.line_total,
                           r.product_id, r.price_tier, bool(r.house_brand))


async def top_products_in(conn: AsyncConnection, customer_id: int, limit: int = 3) -> list[str]:
    """The customer's most-bought product names (by units, over their completed orders)."""
    units = sa.func.sum(transaction_items.c.quantity)
    rows = (
        await conn.execute(
            sa.select(transaction_items.c.name, units.label("units"))
            .select_from(transaction_items.join(transactions, transactions.c.id == transaction_items.c.transaction_id))
            .where(transactions.c.customer_id == customer_id, transactions.c.status == "completed",
                   transaction_items.c.name != "")
            .group_by(transaction_items.c.name)
            .order_by(units.desc(), transaction_items.c.name)
            .limit(limit)
        )
    ).all()
    return [r.name for r in rows]


async def load_context(db: Database, person_id: int, phone: str | None, store_id: int | None = None, *,
                       recent: int = 3, in_stock: list[Product] | None = None, products_limit: int = 40
                       ) -> CustomerContext:
    async with db.read() as conn:
        customer, points = await customer_and_points_in(conn, person_id, phone)
        if in_stock is None:
            in_stock = await CatalogRepo.in_stock_in(
                conn, store_id if store_id is not None else (customer.store_id if customer else None), products_limit
            )
        if customer is None or customer.id is None:
            return CustomerContext(None, in_stock=in_stock)
        return CustomerContext(
            customer=customer,
            points=points,
            recent=await recent_orders_in(conn, customer.id, recent),
            top_products=await top_products_in(conn, customer.id),
            in_stock=in_stock,
        )
