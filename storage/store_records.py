"""Store records prepared as plain data and written together in one transaction (the demo seeds).

A seeder builds customers, staff, products and orders as the dataclasses below; links between
them are by external id (an order names its customer and its budtender by POS id, a line its
product by sku) and are resolved here, inside the transaction, so a seed is there whole or not at
all. People come as `bot.model.Person` and are created with their addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Person
from storage.catalog import CatalogRepo, Product
from storage.customers import CustomerRepo
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.people import PeopleRepo
from storage.sales import SalesRepo, TransactionStatus
from storage.store_import import refresh_customer_totals_in


@dataclass(slots=True)
class NewCustomer:
    """A CRM record, with the person who owns its address when there is one."""

    external_id: str
    person: Person | None
    store_id: int | None
    first_name: str | None
    last_name: str | None = None
    phone: str | None = None
    vip_tier: str | None = None
    signup_date: date | None = None
    rewards_member: bool = False
    favourite_categories: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NewStaff:
    """A POS employee and the person they are (orders naming the employee id are theirs)."""

    external_id: str
    person: Person
    store_id: int | None
    name: str
    phone: str | None = None
    role: str = "budtender"
    active: bool = True


@dataclass(slots=True)
class NewLine:
    sku: str | None
    name: str
    category: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(slots=True)
class NewOrder:
    external_id: str
    store_id: int | None
    occurred_at: datetime
    total: Decimal
    status: str = TransactionStatus.COMPLETED.value
    rewards_signup: bool = False
    source: str = "demo"
    customer_external_id: str | None = None
    budtender_external_id: str | None = None
    lines: list[NewLine] = field(default_factory=list)
    """Stored as `<order id>:<n>` from 1, each linked to the product with its sku if there is one."""
    points: list[LedgerEntry] = field(default_factory=list)
    """Ledger entries of this order; one naming neither a customer nor a person is the order's customer's."""


@dataclass(slots=True)
class StoreRecords:
    products: list[Product] = field(default_factory=list)
    customers: list[NewCustomer] = field(default_factory=list)
    staff: list[NewStaff] = field(default_factory=list)
    orders: list[NewOrder] = field(default_factory=list)


class StoreRecordsRepo:
    def __init__(self, db: Database, people: PeopleRepo) -> None:
        self.db = db
        self.people = people
        self.catalog = CatalogRepo(db)
        self.sales = SalesRepo(db)
        self.loyalty = LoyaltyRepo(db)

    async def write(self, records: StoreRecords, now: datetime) -> dict[str, int]:
        """Write everything in one transaction; external id (customer or staff) → id of the person made.

        The customers' visits, spend and last visit are then those of their orders.
        """

        async def unit(conn: AsyncConnection) -> dict[str, int]:
            if records.products:
                await self.catalog.upsert_in(conn, [{
                    "external_id": p.external_id, "store_id": p.store_id, "name": p.name, "category": p.category,
                    "brand": p.brand, "house_brand": p.house_brand, "price_tier": p.price_tier, "price": p.price,
                    "in_stock": p.in_stock, "updated_at": now,
                } for p in records.products])
            people: dict[str, int] = {}
            customer_ids: dict[str, int] = {}
            for c in records.customers:
                person_id = None
                if c.person is not None:
                    person_id = people[c.external_id] = await self.people.add_in(conn, c.person, now)
                customer_ids[c.external_id] = await CustomerRepo.add_in(
                    conn, external_id=c.external_id, person_id=person_id, store_id=c.store_id,
                    first_name=c.first_name, last_name=c.last_name, phone=c.phone, vip_tier=c.vip_tier,
                    signup_date=c.signup_date, rewards_member=c.rewards_member,
                    favourite_categories=c.favourite_categories, attributes=c.attributes, created_at=now,
                    updated_at=now)
            staff_people: dict[str, int | None] = {}
            for s in records.staff:
                person_id = people[s.external_id] = await self.people.add_in(conn, s.person, now)
                staff_people[s.external_id] = person_id
                await self.sales.upsert_staff_in(conn, [{
                    "external_id": s.external_id, "person_id": person_id, "store_id": s.store_id, "name": s.name,
                    "phone": s.phone, "role": s.role, "active": s.active, "updated_at": now}])
            await self._orders(conn, records.orders, customer_ids, staff_people, now)
            return people

        return await self.db.run(unit)

    async def _orders(self, conn: AsyncConnection, orders: list[NewOrder], customer_ids: dict[str, int],
                      staff_people: dict[str, int | None], now: datetime) -> None:
        if not orders:
            return
        missing = {o.customer_external_id for o in orders if o.customer_external_id} - customer_ids.keys()
        if missing:
            customer_ids = {**await CustomerRepo.ids_by_external_in(conn, sorted(missing)), **customer_ids}
        missing = {o.budtender_external_id for o in orders if o.budtender_external_id} - staff_people.keys()
        if missing:
            staff_people = {**await self.sales.staff_people_in(conn, missing), **staff_people}
        product_ids = await self.catalog.ids_by_external_in(conn) if any(o.lines for o in orders) else {}
        entries: list[LedgerEntry] = []
        touched: set[int] = set()
        for o in orders:
            cid = customer_ids.get(o.customer_external_id) if o.customer_external_id else None
            row = {"external_id": o.external_id, "store_id": o.store_id, "customer_id": cid,
                   "customer_external_id": o.customer_external_id,
                   "budtender_person_id": staff_people.get(o.budtender_external_id or ""),
                   "budtender_external_id": o.budtender_external_id, "occurred_at": o.occurred_at,
                   "total": o.total, "status": o.status, "rewards_signup": o.rewards_signup, "source": o.source,
                   "created_at": now, "updated_at": now}
            await SalesRepo.add_in(conn, row, [
                {"external_id": f"{o.external_id}:{n}", "product_id": product_ids.get(line.sku or ""),
                 "product_external_id": line.sku, "name": line.name, "category": line.category,
                 "quantity": line.quantity, "unit_price": line.unit_price, "line_total": line.line_total}
                for n, line in enumerate(o.lines, 1)
            ])
            entries += [e if e.customer_id is not None or e.person_id is not None else replace(e, customer_id=cid)
                        for e in o.points]
            if cid is not None:
                touched.add(cid)
        await self.loyalty.add_in(conn, entries)
        if touched:
            await refresh_customer_totals_in(conn, sorted(touched))


__all__ = ["NewCustomer", "NewLine", "NewOrder", "NewStaff", "StoreRecords", "StoreRecordsRepo"]
