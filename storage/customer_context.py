"""Everything the concierge may know when one customer texts: their record, and nobody else's.

One read transaction, all by the sender's own person id (or their own phone number): the CRM
record, the points balance, recent orders with items, most-bought products, and the store's
in-stock products. The result is the only data a reply — rule-based or from the model — is built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.catalog import CatalogRepo, Product
from storage.customers import Customer, CustomerRepo
from storage.db import Database
from storage.loyalty import LoyaltyRepo
from storage.sales import SalesRepo, Transaction, transaction_items, transactions


@dataclass(slots=True)
class CustomerContext:
    customer: Customer | None
    points: int = 0
    recent: list[Transaction] = field(default_factory=list)
    top_products: list[str] = field(default_factory=list)
    in_stock: list[Product] = field(default_factory=list)


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


async def load_context(db: Database, person_id: int, phone: str | None, store_id: int | None = None,
                       *, recent: int = 3, products: int = 40) -> CustomerContext:
    async with db.read() as conn:
        customer = await CustomerRepo.for_person_in(conn, person_id, phone)
        in_stock = await CatalogRepo.in_stock_in(conn, store_id if store_id is not None else
                                                 (customer.store_id if customer else None), products)
        if customer is None or customer.id is None:
            return CustomerContext(None, in_stock=in_stock)
        return CustomerContext(
            customer=customer,
            points=await LoyaltyRepo.customer_balance_in(conn, customer.id),
            recent=await SalesRepo(db).recent_for_customer_in(conn, customer.id, recent),
            top_products=await top_products_in(conn, customer.id),
            in_stock=in_stock,
        )
