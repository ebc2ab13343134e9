"""CRM / POS CSV imports for the store: customers, transactions, items, products, staff.

Every kind upserts by external id in batches (one executemany per batch), so importing the same
file twice changes nothing and a corrected file updates what it names. Column names accepted for
each field are in `ALIASES` (Blaze, Dutchie, Treez, Flowhub and Alleaves exports, and the
predecessor CRM's own columns); `--map FIELD=COLUMN` covers anything else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Person
from bot.phones import normalize_phone
from coaching.roles import Role
from coaching.sources.csv_rows import (
    BrokenRecord,
    Columns,
    ImportReport,
    RowError,
    boolean,
    day,
    integer,
    money,
    optional_money,
    read_rows,
    text_list,
    when,
)
from storage.catalog import PRICE_TIERS, CatalogRepo
from storage.customers import CustomerRepo, customers
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.people import PeopleRepo
from storage.sales import SalesRepo, TransactionStatus, staff, transactions

BATCH = 2000

ALIASES: dict[str, dict[str, list[str]]] = {
    "customers": {
        "external_id": ["customer_id", "customerid", "member_id", "crm_id", "contact_id", "customer_number",
                        "id", "patient_id", "consumer_id"],
        "first_name": ["firstname", "first", "given_name"],
        "last_name": ["lastname", "last", "surname", "family_name"],
        "name": ["full_name", "customer_name", "customer"],
        "phone": ["phone_number", "mobile", "mobile_phone", "cell", "cell_phone", "primary_phone", "telephone",
                  "sms"],
        "email": ["email_address", "e_mail"],
        "vip_tier": ["tier", "vip", "vip_status", "loyalty_tier", "member_tier", "customer_type", "segment"],
        "signup_date": ["created", "created_at", "date_joined", "member_since", "join_date", "registration_date",
                        "signup", "date_created"],
        "rewards_member": ["loyalty_member", "is_loyalty", "enrolled", "loyalty", "rewards", "is_member"],
        "points": ["loyalty_points", "points_balance", "reward_points", "balance"],
        "favourite_categories": ["favorite_categories", "preferred_categories", "favorites", "favourites",
                                 "preferences"],
        "birthday": ["birth_date", "dob", "date_of_birth"],
        "store": ["store_id", "location", "location_id", "shop", "dispensary", "store_code"],
        "lifetime_spend": ["lifetime_value", "ltv", "total_spent", "total_spend", "lifetime_sales"],
        "visits": ["visit_count", "total_visits", "number_of_visits", "orders"],
        "last_visit": ["last_visit_date", "last_purchase", "last_order_date", "last_visit_at"],
        "sms_opt_in": ["text_opt_in", "sms_opt_in", "accepts_sms", "marketing_opt_in"],
    },
    "transactions": {
        "external_id": ["transaction_id", "order_id", "receipt_id", "ticket_id", "sale_id", "order_number", "id"],
        "customer_external_id": ["customer_id", "member_id", "customerid", "patient_id", "consumer_id"],
        "budtender_external_id": ["employee_id", "budtender_id", "staff_id", "sold_by_id", "cashier_id",
                                  "employee", "budtender", "sold_by"],
        "occurred_at": ["date", "created_at", "transaction_date", "completed_at", "order_date", "timestamp",
                        "date_time", "sale_date", "completed"],
        "total": ["amount", "total_amount", "grand_total", "order_total", "total_price", "net_total"],
        "discount": ["discount_amount", "total_discount", "discounts"],
        "status": ["order_status", "transaction_status", "state"],
        "rewards_signup": ["loyalty_signup", "new_member", "signup", "rewards_enrolled", "joined_rewards"],
        "store": ["store_id", "location", "location_id", "shop", "dispensary", "store_code"],
    },
    "items": {
        "external_id": ["item_id", "line_id", "line_item_id", "transaction_item_id", "id"],
        "transaction_external_id": ["transaction_id", "order_id", "receipt_id", "ticket_id", "sale_id"],
        "product_external_id": ["product_id", "sku", "product_sku", "item_sku", "product_code"],
        "name": ["product_name", "item_name", "product", "description"],
        "category": ["product_category", "category_name", "type", "product_type"],
        "quantity": ["qty", "units", "quantity_sold"],
        "unit_price": ["price", "item_price", "unit_cost", "price_each"],
        "line_total": ["total", "amount", "subtotal", "line_amount", "total_price"],
    },
    "products": {
        "external_id": ["sku", "product_id", "product_sku", "product_code", "id"],
        "name": ["product_name", "item_name", "product", "title"],
        "category": ["product_category", "category_name", "type", "product_type"],
        "brand": ["vendor", "brand_name", "manufacturer", "producer"],
        "house_brand": ["is_house_brand", "private_label", "own_brand", "house"],
        "price_tier": ["tier", "pricing_tier", "price_level"],
        "price": ["unit_price", "retail_price", "msrp", "price_each"],
        "in_stock": ["available", "is_available", "stock", "quantity_on_hand", "on_hand", "inventory", "qty"],
        "store": ["store_id", "location", "location_id", "store_code"],
    },
    "staff": {
        "external_id": ["employee_id", "staff_id", "budtender_id", "user_id", "id"],
        "first_name": ["firstname", "first"],
        "last_name": ["lastname", "last", "surname"],
        "name": ["full_name", "employee_name", "budtender_name", "employee", "budtender"],
        "phone": ["phone_number", "mobile", "cell", "cell_phone", "telephone"],
        "role": ["position", "title", "job_title"],
        "store": ["store_id", "location", "location_id", "store_code"],
        "active": ["is_active", "status", "enabled"],
        "timezone": ["tz", "time_zone"],
    },
}

REQUIRED: dict[str, list[str | tuple[str, ...]]] = {
    "customers": ["external_id", ("first_name", "name", "phone")],
    "transactions": ["external_id", "occurred_at", "total"],
    "items": ["transaction_external_id", ("unit_price", "line_total")],
    "products": ["external_id", "name"],
    "staff": ["external_id", ("name", "first_name")],
}

STATUS_WORDS = {
    "completed": TransactionStatus.COMPLETED, "complete": TransactionStatus.COMPLETED,
    "paid": TransactionStatus.COMPLETED, "closed": TransactionStatus.COMPLETED, "sale": TransactionStatus.COMPLETED,
    "fulfilled": TransactionStatus.COMPLETED, "": TransactionStatus.COMPLETED,
    "refunded": TransactionStatus.REFUNDED, "refund": TransactionStatus.REFUNDED,
    "returned": TransactionStatus.REFUNDED, "return": TransactionStatus.REFUNDED,
    "voided": TransactionStatus.VOIDED, "void": TransactionStatus.VOIDED, "cancelled": TransactionStatus.VOIDED,
    "canceled": TransactionStatus.VOIDED, "pending": TransactionStatus.PENDING, "open": TransactionStatus.PENDING,
}


def phone(text: str) -> str | None:
    if not text.strip():
        return None
    try:
        return normalize_phone(text)
    except ValueError:
        raise RowError(f"phone {text!r} is not a phone number") from None


def _ext(text: str, what: str = "external id") -> str:
    if not text:
        raise RowError(f"{what} is empty")
    if len(text) > 100:
        raise RowError(f"{what} is longer than 100 characters")
    return text


@dataclass
class ImportOptions:
    timezone: tzinfo = UTC
    default_store: str | None = None
    dry_run: bool = False
    progress: bool | None = None
    house_brands: tuple[str, ...] = ()


class StoreImporter:
    """Runs one import kind over a file; batch upserts, a report with line numbers and reasons."""

    def __init__(self, db: Database, people: PeopleRepo, now: Callable[[], datetime]) -> None:
        self.db = db
        self.people = people
        self.now = now
        self.customers = CustomerRepo(db)
        self.catalog = CatalogRepo(db)
        self.sales = SalesRepo(db)
        self.loyalty = LoyaltyRepo(db)

    async def run(self, kind: str, path: Path, options: ImportOptions,
                  overrides: dict[str, str] | None = None) -> ImportReport:
        header, rows = read_rows(path, progress=options.progress, desc=f"import {kind}")
        cols = Columns.resolve(header, ALIASES[kind], REQUIRED[kind], overrides)
        report = ImportReport(kind, str(path))
        parse = getattr(self, f"_parse_{kind}")
        write = getattr(self, f"_write_{kind}")
        state: dict[str, Any] = {"seen": {}}
        batch: list[tuple[int, dict[str, Any]]] = []
        for line, cells in rows:
            report.read += 1
            if isinstance(cells, BrokenRecord):  # an unbalanced quote: its rows are not one customer
                report.skip(line, cells.reason)
                continue
            try:
                row = parse(cols, cells, options, state)
            except RowError as exc:
                report.skip(line, str(exc))
                continue
            batch.append((line, row))
            if len(batch) >= BATCH:
                await self._flush(write, batch, options, report, state)
                batch = []
        if batch:
            await self._flush(write, batch, options, report, state)
        finish = getattr(self, f"_finish_{kind}", None)
        if finish is not None and not options.dry_run:
            await finish(report, state)
        unknown: Counter[str] = state.get("unknown_stores", Counter())
        if unknown:
            named = ", ".join(f"{code!r} ×{n}" for code, n in unknown.most_common(5))
            report.notes.append(f"note: {sum(unknown.values())} rows name a store Huddle does not know ({named}): "
                                "kept without a store; add it to [[stores]] in huddle.toml, then import again")
        return report

    async def _known_stores(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]],
                            state: dict[str, Any]) -> dict[str, int]:
        """code → id of the stores that exist; a code that does not is counted, never made a new store."""
        stores = await self.customers.store_ids_in(conn)
        missing = state.setdefault("unknown_stores", Counter())
        for _, r in items:
            if r["_store"] and r["_store"] not in stores:
                missing[r["_store"]] += 1
        return stores

    async def _flush(self, write: Any, batch: list[tuple[int, dict[str, Any]]], options: ImportOptions,
                     report: ImportReport, state: dict[str, Any]) -> None:
        # Later rows with the same external id win (one row per key in a statement).
        unique: dict[str, tuple[int, dict[str, Any]]] = {}
        for line, row in batch:
            unique[row["external_id"]] = (line, row)
        items = list(unique.values())
        if options.dry_run:
            report.written += len(items)
            return
        async with self.db.transaction() as conn:
            written = await write(conn, items, options, report, state)
        report.written += written

    # -- customers ---------------------------------------------------------------------------

    def _parse_customers(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> dict[str, Any]:
        g = cols.get
        first, last = g(cells, "first_name"), g(cells, "last_name")
        if not first and g(cells, "name"):
            first, _, last = g(cells, "name").partition(" ")
        row = {
            "external_id": _ext(g(cells, "external_id"), "customer id"),
            "first_name": first[:100] or None,
            "last_name": last.strip()[:100] or None,
            "phone": phone(g(cells, "phone")),
            "email": g(cells, "email")[:200] or None,
            "vip_tier": g(cells, "vip_tier")[:32] or None,
            "signup_date": day(g(cells, "signup_date"), "signup date"),
            "rewards_member": boolean(g(cells, "rewards_member"), "rewards member") if "rewards_member" in cols.index
            else True,
            "favourite_categories": text_list(g(cells, "favourite_categories")),
            "birthday": day(g(cells, "birthday"), "birthday"),
            "lifetime_spend": optional_money(g(cells, "lifetime_spend"), "lifetime spend") or Decimal("0"),
            "visits": integer(g(cells, "visits"), "visits", default=0),
            "last_visit_at": when(g(cells, "last_visit"), o.timezone, "last visit") if g(cells, "last_visit") else None,
            "sms_opt_in": boolean(g(cells, "sms_opt_in"), "sms opt-in") if g(cells, "sms_opt_in") else True,
            "_store": g(cells, "store") or o.default_store,
            "_points": integer(g(cells, "points"), "points") if g(cells, "points") else None,
        }
        if not (row["first_name"] or row["phone"]):
            raise RowError("neither a name nor a phone number")
        return row

    async def _write_customers(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]],
                               _o: ImportOptions, report: ImportReport, state: dict[str, Any]) -> int:
        now = self.now()
        stores = await self._known_stores(conn, items, state)
        rows, points = [], {}
        for _, r in items:
            if r["_points"] is not None:
                points[r["external_id"]] = r["_points"]
            out = {k: v for k, v in r.items() if not k.startswith("_")}
            out.update(store_id=stores.get(r["_store"]) if r["_store"] else None, attributes={"source": "import"},
                       created_at=now, updated_at=now)
            rows.append(out)
        await self.customers.upsert_in(conn, rows, keep=("attributes",))
        if points:
            ids = await self.customers.ids_by_external_in(conn, list(points))
            await self.loyalty.add_in(conn, [
                LedgerEntry(f"import:{ext}:balance", pts, "import", now, customer_id=ids[ext], note="CRM balance")
                for ext, pts in points.items() if ext in ids
            ], replace=True)
        return len(rows)

    # -- transactions ------------------------------------------------------------------------

    def _parse_transactions(self, cols: Columns, cells: list[str], o: ImportOptions,
                            _s: dict[str, Any]) -> dict[str, Any]:
        g = cols.get
        status_word = g(cells, "status").lower()
        if status_word not in STATUS_WORDS:
            raise RowError(f"status {g(cells, 'status')!r} is not one of completed, refunded, voided, pending")
        total = money(g(cells, "total"), "total")
        status = STATUS_WORDS[status_word]
        if total < 0 and status not in (TransactionStatus.REFUNDED, TransactionStatus.VOIDED):
            raise RowError(f"total {total} is negative for a {status.value} sale (a refund has status refunded)")
        # An amount off, whatever its sign: Square's Transactions export writes "-$3.00".
        discount = abs(optional_money(g(cells, "discount"), "discount") or Decimal("0"))
        return {
            "external_id": _ext(g(cells, "external_id"), "transaction id"),
            "customer_external_id": g(cells, "customer_external_id")[:100] or None,
            "budtender_external_id": g(cells, "budtender_external_id")[:100] or None,
            "occurred_at": when(g(cells, "occurred_at"), o.timezone, "date"),
            "total": total,
            "discount": discount,
            "status": status.value,
            "rewards_signup": boolean(g(cells, "rewards_signup"), "rewards signup") if g(cells, "rewards_signup")
            else False,
            "_store": g(cells, "store") or o.default_store,
        }

    async def _write_transactions(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]],
                                  _o: ImportOptions, report: ImportReport, state: dict[str, Any]) -> int:
        now = self.now()
        if "customer_ids" not in state:
            state["customer_ids"] = await self.customers.ids_by_external_in(conn)
            state["staff"] = await self.sales.staff_persons_in(conn)
            state["touched"] = set()
        cids: dict[str, int] = state["customer_ids"]
        stores = await self._known_stores(conn, items, state)
        rows = []
        unknown_customers = unknown_staff = 0
        for _, r in items:
            out = {k: v for k, v in r.items() if not k.startswith("_")}
            cid = cids.get(r["customer_external_id"]) if r["customer_external_id"] else None
            if r["customer_external_id"] and cid is None:
                unknown_customers += 1
            if r["budtender_external_id"] and r["budtender_external_id"] not in state["staff"]:
                unknown_staff += 1
            if cid is not None:
                state["touched"].add(cid)
            out.update(store_id=stores.get(r["_store"]) if r["_store"] else None, customer_id=cid,
                       budtender_person_id=state["staff"].get(r["budtender_external_id"] or ""),
                       source="import", created_at=now, updated_at=now)
            rows.append(out)
        state["unknown_customers"] = state.get("unknown_customers", 0) + unknown_customers
        state["unknown_staff"] = state.get("unknown_staff", 0) + unknown_staff
        await self.sales.upsert_transactions_in(conn, rows)
        return len(rows)

    async def _finish_transactions(self, report: ImportReport, state: dict[str, Any]) -> None:
        if state.get("unknown_customers"):
            report.notes.append(f"note: {state['unknown_customers']} transactions name a customer id that is not "
                                "imported yet (kept; import customers, then transactions again to link them)")
        if state.get("unknown_staff"):
            report.notes.append(f"note: {state['unknown_staff']} transactions name a budtender id that is not "
                                "imported (kept without a budtender; import staff, then transactions again)")
        touched: set[int] = state.get("touched", set())
        if touched:
            await self.refresh_customer_totals(touched)

    async def refresh_customer_totals(self, customer_ids: set[int]) -> None:
        """Visits, lifetime spend and last visit from the transactions (exact Decimal sums in Python)."""
        ids = sorted(customer_ids)
        counting = [TransactionStatus.COMPLETED.value, TransactionStatus.PENDING.value]
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            async with self.db.transaction() as conn:
                rows = (await conn.execute(
                    sa.select(transactions.c.customer_id, transactions.c.total, transactions.c.occurred_at)
                    .where(transactions.c.customer_id.in_(chunk), transactions.c.status.in_(counting)))).all()
                totals: dict[int, list[Any]] = {cid: [Decimal("0"), 0, None] for cid in chunk}
                for r in rows:
                    t = totals[r.customer_id]
                    t[0] += r.total
                    t[1] += 1
                    if t[2] is None or r.occurred_at > t[2]:
                        t[2] = r.occurred_at
                await conn.execute(
                    customers.update().where(customers.c.id == sa.bindparam("cid")).values(
                        lifetime_spend=sa.bindparam("spend"), visits=sa.bindparam("n"),
                        last_visit_at=sa.bindparam("last")),
                    [{"cid": cid, "spend": t[0], "n": t[1], "last": t[2]} for cid, t in totals.items()],
                )

    # -- items -------------------------------------------------------------------------------

    def _parse_items(self, cols: Columns, cells: list[str], _o: ImportOptions, state: dict[str, Any]) -> dict[str, Any]:
        g = cols.get
        txn = _ext(g(cells, "transaction_external_id"), "transaction id")
        seen: dict[str, int] = state["seen"]
        seen[txn] = seen.get(txn, 0) + 1
        quantity = integer(g(cells, "quantity"), "quantity", default=1)
        if quantity < 0:
            raise RowError(f"quantity {quantity} is negative")
        unit = optional_money(g(cells, "unit_price"), "unit price")
        line_total = optional_money(g(cells, "line_total"), "line total")
        if unit is None and line_total is None:
            raise RowError("neither a unit price nor a line total")
        if unit is None:
            unit = (line_total / quantity).quantize(Decimal("0.01")) if quantity else line_total  # type: ignore[operator]
        if line_total is None:
            line_total = unit * quantity
        ext = g(cells, "external_id") or f"{txn}:{seen[txn]}"
        return {
            "external_id": _ext(ext, "item id"),
            "_txn": txn,
            "product_external_id": g(cells, "product_external_id")[:100] or None,
            "name": g(cells, "name")[:300],
            "category": g(cells, "category")[:100].lower(),
            "quantity": quantity,
            "unit_price": unit,
            "line_total": line_total,
        }

    async def _write_items(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]], _o: ImportOptions,
                           report: ImportReport, state: dict[str, Any]) -> int:
        if "txn_ids" not in state:
            state["txn_ids"] = await self.sales.ids_by_external_in(conn)
            state["product_ids"] = await self.catalog.ids_by_external_in(conn)
        rows = []
        for line, r in items:
            tid = state["txn_ids"].get(r["_txn"])
            if tid is None:
                report.skip(line, f"unknown transaction {r['_txn']!r} (import transactions first)")
                continue
            out = {k: v for k, v in r.items() if not k.startswith("_")}
            out.update(transaction_id=tid, product_id=state["product_ids"].get(r["product_external_id"] or ""))
            rows.append(out)
        await self.sales.upsert_items_in(conn, rows)
        return len(rows)

    # -- products ----------------------------------------------------------------------------

    def _parse_products(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> dict[str, Any]:
        g = cols.get
        name = g(cells, "name")
        if not name:
            raise RowError("name is empty")
        tier_text = g(cells, "price_tier").lower()
        if not tier_text:
            tier = 2
        elif tier_text in PRICE_TIERS:
            tier = PRICE_TIERS[tier_text]
        else:
            tier = integer(tier_text, "price tier")
            if tier not in (1, 2, 3):
                raise RowError(f"price tier {tier_text!r} is not 1-3 or value/mid/premium")
        stock = g(cells, "in_stock")
        try:
            in_stock = boolean(stock, "in stock") if stock else True
        except RowError:
            in_stock = integer(stock, "in stock") > 0
        brand = g(cells, "brand")[:200] or None
        house = boolean(g(cells, "house_brand"), "house brand") if g(cells, "house_brand") else (
            bool(brand) and brand.lower() in o.house_brands)
        return {
            "external_id": _ext(g(cells, "external_id"), "sku"),
            "name": name[:300],
            "category": g(cells, "category")[:100].lower(),
            "brand": brand,
            "house_brand": house,
            "price_tier": tier,
            "price": optional_money(g(cells, "price"), "price"),
            "in_stock": in_stock,
            "_store": g(cells, "store"),
        }

    async def _write_products(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]],
                              _o: ImportOptions, report: ImportReport, state: dict[str, Any]) -> int:
        now = self.now()
        stores = await self._known_stores(conn, items, state)
        rows = []
        for _, r in items:
            out = {k: v for k, v in r.items() if not k.startswith("_")}
            out.update(store_id=stores.get(r["_store"]) if r["_store"] else None, updated_at=now)
            rows.append(out)
        await self.catalog.upsert_in(conn, rows)
        return len(rows)

    # -- staff -------------------------------------------------------------------------------

    def _parse_staff(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> dict[str, Any]:
        g = cols.get
        name = g(cells, "name") or " ".join(p for p in (g(cells, "first_name"), g(cells, "last_name")) if p)
        if not name:
            raise RowError("name is empty")
        tz = g(cells, "timezone")
        if tz:
            try:
                ZoneInfo(tz)
            except (KeyError, ValueError):
                raise RowError(f"timezone {tz!r} is not an IANA zone") from None
        active_text = g(cells, "active").lower()
        return {
            "external_id": _ext(g(cells, "external_id"), "employee id"),
            "name": name[:200],
            "phone": phone(g(cells, "phone")),
            "role": (g(cells, "role") or "budtender")[:32].lower(),
            "active": active_text not in {"0", "no", "false", "inactive", "terminated", "n"},
            "_store": g(cells, "store") or o.default_store,
            "_tz": tz or getattr(o.timezone, "key", "UTC"),
        }

    async def _write_staff(self, conn: AsyncConnection, items: list[tuple[int, dict[str, Any]]], _o: ImportOptions,
                           report: ImportReport, state: dict[str, Any]) -> int:
        now = self.now()
        stores = await self._known_stores(conn, items, state)
        known = await self.sales.staff_persons_in(conn)
        rows = []
        for line, r in items:
            person_id = known.get(r["external_id"])
            try:
                person_id = await self._staff_person(conn, r, person_id, now)
            except ValueError as exc:
                report.skip(line, str(exc))
                continue
            out = {k: v for k, v in r.items() if not k.startswith("_")}
            out.update(store_id=stores.get(r["_store"]) if r["_store"] else None, person_id=person_id,
                       updated_at=now)
            rows.append(out)
        await self.sales.upsert_staff_in(conn, rows)
        return len(rows)

    async def _staff_person(self, conn: AsyncConnection, r: dict[str, Any], person_id: int | None,
                            now: datetime) -> int:
        """The budtender's person: the one already linked, the one with this phone, or a new one."""
        from storage.people import addresses, persons

        if person_id is None and r["phone"]:
            person_id = (await conn.execute(sa.select(addresses.c.person_id).where(
                addresses.c.channel == "sms", addresses.c.address == r["phone"]))).scalar()
        if person_id is None:
            person = Person(None, r["name"], frozenset({Role.BUDTENDER}),
                            [Address("sms", r["phone"])] if r["phone"] else [], timezone=r["_tz"],
                            external_id=f"pos-staff:{r['external_id']}", attributes={"source": "import"})
            return await self.people.add_in(conn, person, now)
        row = (await conn.execute(sa.select(persons.c.roles, persons.c.name, persons.c.attributes)
                                  .where(persons.c.id == person_id))).one()
        roles = set(filter(None, row.roles.split(",")))
        values: dict[str, Any] = {"updated_at": now}
        if Role.BUDTENDER.value not in roles:
            values["roles"] = ",".join(sorted(roles | {Role.BUDTENDER.value}))
        if not row.name or (row.attributes or {}).get("lead"):
            values["name"] = r["name"]
            values["attributes"] = {k: v for k, v in (row.attributes or {}).items() if k != "lead"}
        await conn.execute(persons.update().where(persons.c.id == person_id).values(**values))
        if r["phone"]:
            await conn.execute(self.db.insert(addresses).values(person_id=person_id, channel="sms", address=r["phone"])
                               .on_conflict_do_nothing(index_elements=["channel", "address"]))
        return int(person_id)


KINDS = {
    "customers": "CRM customers: id, name, phone, VIP tier, signup date, points, favourite categories",
    "transactions": "POS transactions: id, date, total, status, customer id, budtender (employee) id",
    "items": "transaction line items: transaction id, sku, name, category, quantity, price",
    "products": "the product catalogue: sku, name, category, brand, house brand, price tier, in stock",
    "staff": "budtenders: employee id, name, phone (becomes their SMS address), store",
}

__all__ = ["ALIASES", "KINDS", "REQUIRED", "ImportOptions", "StoreImporter", "staff"]
