"""The writes of a CRM / POS import: batches of plain rows upserted by external id.

`coaching.sources.store_csv` reads and checks the files and hands over rows of the dataclasses
below; each `write_*` call is one transaction and one executemany per table, so importing the
same file twice changes nothing and a corrected file updates what it names. Rows name their store
by code; the caller resolves the codes (`CustomerRepo.store_ids`), since what an unknown code
means (today: no store, and a note in the report) is its decision. One `StoreImportWriter` serves
one run: the id maps it needs (customers, staff, transactions, products) are read once, in the
first batch that needs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Person
from storage.catalog import CatalogRepo
from storage.customers import CustomerRepo, customers
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.people import PeopleRepo, addresses, persons
from storage.sales import SalesRepo, TransactionStatus, transactions


@dataclass(slots=True)
class CustomerRow:
    external_id: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None = None
    vip_tier: str | None = None
    signup_date: date | None = None
    rewards_member: bool = True
    favourite_categories: list[str] | None = None
    birthday: date | None = None
    lifetime_spend: Decimal = Decimal("0")
    visits: int = 0
    last_visit_at: datetime | None = None
    sms_opt_in: bool = True
    store: str | None = None
    """The store's code."""
    points: int | None = None
    """The CRM's points balance: one ledger entry `import:<id>:balance`, replaced on a re-import."""


@dataclass(slots=True)
class TransactionRow:
    external_id: str
    occurred_at: datetime
    total: Decimal
    customer_external_id: str | None = None
    budtender_external_id: str | None = None
    discount: Decimal = Decimal("0")
    status: str = TransactionStatus.COMPLETED.value
    rewards_signup: bool = False
    store: str | None = None


@dataclass(slots=True)
class ItemRow:
    external_id: str
    transaction_external_id: str
    product_external_id: str | None
    name: str
    category: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(slots=True)
class ProductRow:
    external_id: str
    name: str
    category: str = ""
    brand: str | None = None
    house_brand: bool = False
    price_tier: int = 2
    price: Decimal | None = None
    in_stock: bool = True
    store: str | None = None


@dataclass(slots=True)
class StaffRow:
    external_id: str
    name: str
    phone: str | None
    role: str = "budtender"
    active: bool = True
    store: str | None = None
    timezone: str = "UTC"
    """The zone of the person made for a new staff member."""


@dataclass(slots=True)
class TransactionsWritten:
    unknown_customers: int = 0
    unknown_staff: int = 0


async def refresh_customer_totals_in(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Visits, lifetime spend and last visit of these customers from their transactions (exact Decimal sums)."""
    counting = [TransactionStatus.COMPLETED.value, TransactionStatus.PENDING.value]
    rows = (await conn.execute(
        sa.select(transactions.c.customer_id, transactions.c.total, transactions.c.occurred_at)
        .where(transactions.c.customer_id.in_(ids), transactions.c.status.in_(counting)))).all()
    totals: dict[int, list[Any]] = {cid: [Decimal("0"), 0, None] for cid in ids}
    for r in rows:
        t = totals[r.customer_id]
        t[0] += r.total
        t[1] += 1
        if t[2] is None or r.occurred_at > t[2]:
            t[2] = r.occurred_at
    await conn.execute(
        customers.update().where(customers.c.id == sa.bindparam("cid")).values(
            lifetime_spend=sa.bindparam("spend"), visits=sa.bindparam("n"), last_visit_at=sa.bindparam("last")),
        [{"cid": cid, "spend": t[0], "n": t[1], "last": t[2]} for cid, t in totals.items()],
    )


class StoreImportWriter:
    """The batches of one import run, each in its own transaction."""

    def __init__(self, db: Database, people: PeopleRepo) -> None:
        self.db = db
        self.people = people
        self.customers = CustomerRepo(db)
        self.catalog = CatalogRepo(db)
        self.sales = SalesRepo(db)
        self.loyalty = LoyaltyRepo(db)
        self._customer_ids: dict[str, int] | None = None
        self._staff: dict[str, int | None] | None = None
        self._txn_ids: dict[str, int] | None = None
        self._product_ids: dict[str, int] | None = None
        self.touched: set[int] = set()
        """Customers whose transactions this run wrote (their totals are refreshed at the end)."""

    @staticmethod
    def _store(stores: Mapping[str, int], code: str | None) -> int | None:
        return stores.get(code) if code else None

    async def write_customers(self, rows: Sequence[CustomerRow], stores: Mapping[str, int], now: datetime) -> int:
        """Upsert CRM records (attributes of an existing record are kept) and their points balances."""
        out = [{
            "external_id": r.external_id, "first_name": r.first_name, "last_name": r.last_name, "phone": r.phone,
            "email": r.email, "vip_tier": r.vip_tier, "signup_date": r.signup_date,
            "rewards_member": r.rewards_member, "favourite_categories": r.favourite_categories or [],
            "birthday": r.birthday, "lifetime_spend": r.lifetime_spend, "visits": r.visits,
            "last_visit_at": r.last_visit_at, "sms_opt_in": r.sms_opt_in, "store_id": self._store(stores, r.store),
            "attributes": {"source": "import"}, "created_at": now, "updated_at": now,
        } for r in rows]
        points = {r.external_id: r.points for r in rows if r.points is not None}
        async with self.db.transaction() as conn:
            await self.customers.upsert_in(conn, out, keep=("attributes",))
            if points:
                ids = await self.customers.ids_by_external_in(conn, list(points))
                await self.loyalty.add_in(conn, [
                    LedgerEntry(f"import:{ext}:balance", pts, "import", now, customer_id=ids[ext], note="CRM balance")
                    for ext, pts in points.items() if ext in ids
                ], replace=True)
        return len(out)

    async def write_transactions(self, rows: Sequence[TransactionRow], stores: Mapping[str, int],
                                 now: datetime) -> TransactionsWritten:
        """Upsert transactions, linked to the customers and staff known when the run started.

        Rows naming a customer or budtender id that is not imported are kept, unlinked, and counted.
        """
        async with self.db.transaction() as conn:
            if self._customer_ids is None or self._staff is None:
                self._customer_ids = await self.customers.ids_by_external_in(conn)
                self._staff = await self.sales.staff_persons_in(conn)
            cids, staff = self._customer_ids, self._staff
            out = []
            written = TransactionsWritten()
            for r in rows:
                cid = cids.get(r.customer_external_id) if r.customer_external_id else None
                if r.customer_external_id and cid is None:
                    written.unknown_customers += 1
                if r.budtender_external_id and r.budtender_external_id not in staff:
                    written.unknown_staff += 1
                if cid is not None:
                    self.touched.add(cid)
                out.append({
                    "external_id": r.external_id, "customer_external_id": r.customer_external_id,
                    "budtender_external_id": r.budtender_external_id, "occurred_at": r.occurred_at,
                    "total": r.total, "discount": r.discount, "status": r.status,
                    "rewards_signup": r.rewards_signup, "store_id": self._store(stores, r.store), "customer_id": cid,
                    "budtender_person_id": staff.get(r.budtender_external_id or ""), "source": "import",
                    "created_at": now, "updated_at": now,
                })
            await self.sales.upsert_transactions_in(conn, out)
        return written

    async def refresh_customer_totals(self, customer_ids: set[int]) -> None:
        """Visits, lifetime spend and last visit from the transactions, 5,000 customers a transaction."""
        ids = sorted(customer_ids)
        for i in range(0, len(ids), 5000):
            async with self.db.transaction() as conn:
                await refresh_customer_totals_in(conn, ids[i : i + 5000])

    async def write_items(self, rows: Sequence[ItemRow]) -> list[int]:
        """Upsert line items; the positions (in `rows`) of those whose transaction is unknown, not written."""
        async with self.db.transaction() as conn:
            if self._txn_ids is None or self._product_ids is None:
                self._txn_ids = await self.sales.ids_by_external_in(conn)
                self._product_ids = await self.catalog.ids_by_external_in(conn)
            txn_ids, product_ids = self._txn_ids, self._product_ids
            out, unknown = [], []
            for n, r in enumerate(rows):
                tid = txn_ids.get(r.transaction_external_id)
                if tid is None:
                    unknown.append(n)
                    continue
                out.append({
                    "external_id": r.external_id, "product_external_id": r.product_external_id, "name": r.name,
                    "category": r.category, "quantity": r.quantity, "unit_price": r.unit_price,
                    "line_total": r.line_total, "transaction_id": tid,
                    "product_id": product_ids.get(r.product_external_id or ""),
                })
            await self.sales.upsert_items_in(conn, out)
        return unknown

    async def write_products(self, rows: Sequence[ProductRow], stores: Mapping[str, int], now: datetime) -> int:
        async with self.db.transaction() as conn:
            await self.catalog.upsert_in(conn, product_rows(rows, stores, now))
        return len(rows)

    async def write_staff(self, rows: Sequence[StaffRow], stores: Mapping[str, int], *, role: str, channel: str,
                          now: datetime) -> list[tuple[int, str]]:
        """Upsert staff, each linked to a person with `role` and their phone as an address on `channel`.

        The positions (in `rows`) and reasons of those refused (a phone that belongs to someone else).
        """
        async with self.db.transaction() as conn:
            known = await self.sales.staff_persons_in(conn)
            out, refused = [], []
            for n, r in enumerate(rows):
                try:
                    person_id = await self._staff_person_in(conn, r, known.get(r.external_id), role, channel, now)
                except ValueError as exc:
                    refused.append((n, str(exc)))
                    continue
                out.append({"external_id": r.external_id, "name": r.name, "phone": r.phone, "role": r.role,
                            "active": r.active, "store_id": self._store(stores, r.store), "person_id": person_id,
                            "updated_at": now})
            await self.sales.upsert_staff_in(conn, out)
        return refused

    async def _staff_person_in(self, conn: AsyncConnection, r: StaffRow, person_id: int | None, role: str,
                               channel: str, now: datetime) -> int:
        """The staff member's person: the one already linked, the one with this phone, or a new one."""
        if person_id is None and r.phone:
            person_id = (await conn.execute(sa.select(addresses.c.person_id).where(
                addresses.c.channel == channel, addresses.c.address == r.phone))).scalar()
        if person_id is None:
            person = Person(None, r.name, frozenset({role}), [Address(channel, r.phone)] if r.phone else [],
                            timezone=r.timezone, external_id=f"pos-staff:{r.external_id}",
                            attributes={"source": "import"})
            return await self.people.add_in(conn, person, now)
        row = (await conn.execute(sa.select(persons.c.roles, persons.c.name, persons.c.attributes)
                                  .where(persons.c.id == person_id))).one()
        roles = set(filter(None, row.roles.split(",")))
        values: dict[str, Any] = {"updated_at": now}
        if role not in roles:
            values["roles"] = ",".join(sorted(roles | {role}))
        if not row.name or (row.attributes or {}).get("lead"):
            values["name"] = r.name
            values["attributes"] = {k: v for k, v in (row.attributes or {}).items() if k != "lead"}
        await conn.execute(persons.update().where(persons.c.id == person_id).values(**values))
        if r.phone:
            await conn.execute(self.db.insert(addresses).values(person_id=person_id, channel=channel, address=r.phone)
                               .on_conflict_do_nothing(index_elements=["channel", "address"]))
        return int(person_id)


def product_rows(rows: Sequence[ProductRow], stores: Mapping[str, int], now: datetime) -> list[dict[str, Any]]:
    """`products` table rows for an upsert."""
    return [{
        "external_id": r.external_id, "name": r.name, "category": r.category, "brand": r.brand,
        "house_brand": r.house_brand, "price_tier": r.price_tier, "price": r.price, "in_stock": r.in_stock,
        "store_id": stores.get(r.store) if r.store else None, "updated_at": now,
    } for r in rows]


__all__ = ["CustomerRow", "ItemRow", "ProductRow", "StaffRow", "StoreImportWriter", "TransactionRow",
           "TransactionsWritten", "refresh_customer_totals_in"]
