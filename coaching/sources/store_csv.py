"""CRM / POS CSV imports for the store: customers, transactions, items, products, staff.

Every kind upserts by external id in batches (one executemany per batch, written by
`storage.store_import`), so importing the same file twice changes nothing and a corrected file
updates what it names. Column names accepted for
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
from storage.catalog import PRICE_TIERS
from storage.customers import CustomerRepo
from storage.db import Database
from storage.people import PeopleRepo
from storage.sales import TransactionStatus, staff
from storage.store_import import CustomerRow, ItemRow, ProductRow, StaffRow, StoreImportWriter, TransactionRow

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


Row = CustomerRow | TransactionRow | ItemRow | ProductRow | StaffRow
Batch = list[tuple[int, Any]]
"""(line number, row) pairs of one kind."""


class StoreImporter:
    """Runs one import kind over a file; batch upserts, a report with line numbers and reasons."""

    def __init__(self, db: Database, people: PeopleRepo, now: Callable[[], datetime]) -> None:
        self.db = db
        self.people = people
        self.now = now
        self.customers = CustomerRepo(db)

    async def run(self, kind: str, path: Path, options: ImportOptions,
                  overrides: dict[str, str] | None = None) -> ImportReport:
        header, rows = read_rows(path, progress=options.progress, desc=f"import {kind}")
        cols = Columns.resolve(header, ALIASES[kind], REQUIRED[kind], overrides)
        report = ImportReport(kind, str(path))
        parse = getattr(self, f"_parse_{kind}")
        write = getattr(self, f"_write_{kind}")
        state: dict[str, Any] = {"seen": {}, "writer": StoreImportWriter(self.db, self.people)}
        batch: Batch = []
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

    async def _flush(self, write: Any, batch: Batch, options: ImportOptions, report: ImportReport,
                     state: dict[str, Any]) -> None:
        # Later rows with the same external id win (one row per key in a statement).
        unique: dict[str, tuple[int, Row]] = {}
        for line, row in batch:
            unique[row.external_id] = (line, row)
        items = list(unique.values())
        if options.dry_run:
            report.written += len(items)
            return
        report.written += await write(items, options, report, state)

    async def _known_stores(self, items: Batch, state: dict[str, Any]) -> dict[str, int]:
        """code → id of the stores that exist; a code that does not is counted, never made a new store."""
        codes = [r.store for _, r in items if r.store]
        stores: dict[str, int] | None = state.get("stores")
        if stores is None or any(c not in stores for c in codes):  # read again: a store may have been added
            stores = state["stores"] = await self.customers.store_ids()
        missing = state.setdefault("unknown_stores", Counter())
        for code in codes:
            if code not in stores:
                missing[code] += 1
        return stores

    # -- customers ---------------------------------------------------------------------------

    def _parse_customers(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> CustomerRow:
        g = cols.get
        first, last = g(cells, "first_name"), g(cells, "last_name")
        if not first and g(cells, "name"):
            first, _, last = g(cells, "name").partition(" ")
        row = CustomerRow(
            external_id=_ext(g(cells, "external_id"), "customer id"),
            first_name=first[:100] or None,
            last_name=last.strip()[:100] or None,
            phone=phone(g(cells, "phone")),
            email=g(cells, "email")[:200] or None,
            vip_tier=g(cells, "vip_tier")[:32] or None,
            signup_date=day(g(cells, "signup_date"), "signup date"),
            rewards_member=boolean(g(cells, "rewards_member"), "rewards member") if "rewards_member" in cols.index
            else True,
            favourite_categories=text_list(g(cells, "favourite_categories")),
            birthday=day(g(cells, "birthday"), "birthday"),
            lifetime_spend=optional_money(g(cells, "lifetime_spend"), "lifetime spend") or Decimal("0"),
            visits=integer(g(cells, "visits"), "visits", default=0),
            last_visit_at=when(g(cells, "last_visit"), o.timezone, "last visit") if g(cells, "last_visit") else None,
            sms_opt_in=boolean(g(cells, "sms_opt_in"), "sms opt-in") if g(cells, "sms_opt_in") else True,
            store=g(cells, "store") or o.default_store,
            points=integer(g(cells, "points"), "points") if g(cells, "points") else None,
        )
        if not (row.first_name or row.phone):
            raise RowError("neither a name nor a phone number")
        return row

    async def _write_customers(self, items: Batch, _o: ImportOptions, report: ImportReport,
                               state: dict[str, Any]) -> int:
        stores = await self._known_stores(items, state)
        return await state["writer"].write_customers([r for _, r in items], stores, self.now())

    # -- transactions ------------------------------------------------------------------------

    def _parse_transactions(self, cols: Columns, cells: list[str], o: ImportOptions,
                            _s: dict[str, Any]) -> TransactionRow:
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
        return TransactionRow(
            external_id=_ext(g(cells, "external_id"), "transaction id"),
            customer_external_id=g(cells, "customer_external_id")[:100] or None,
            budtender_external_id=g(cells, "budtender_external_id")[:100] or None,
            occurred_at=when(g(cells, "occurred_at"), o.timezone, "date"),
            total=total,
            discount=discount,
            status=status.value,
            rewards_signup=boolean(g(cells, "rewards_signup"), "rewards signup") if g(cells, "rewards_signup")
            else False,
            store=g(cells, "store") or o.default_store,
        )

    async def _write_transactions(self, items: Batch, _o: ImportOptions, report: ImportReport,
                                  state: dict[str, Any]) -> int:
        stores = await self._known_stores(items, state)
        written = await state["writer"].write_transactions([r for _, r in items], stores, self.now())
        state["unknown_customers"] = state.get("unknown_customers", 0) + written.unknown_customers
        state["unknown_staff"] = state.get("unknown_staff", 0) + written.unknown_staff
        return len(items)

    async def _finish_transactions(self, report: ImportReport, state: dict[str, Any]) -> None:
        if state.get("unknown_customers"):
            report.notes.append(f"note: {state['unknown_customers']} transactions name a customer id that is not "
                                "imported yet (kept; import customers, then transactions again to link them)")
        if state.get("unknown_staff"):
            report.notes.append(f"note: {state['unknown_staff']} transactions name a budtender id that is not "
                                "imported (kept without a budtender; import staff, then transactions again)")
        touched: set[int] = state["writer"].touched
        if touched:
            await self.refresh_customer_totals(touched)

    async def refresh_customer_totals(self, customer_ids: set[int]) -> None:
        """Visits, lifetime spend and last visit from the transactions (exact Decimal sums in Python)."""
        await StoreImportWriter(self.db, self.people).refresh_customer_totals(customer_ids)

    # -- items -------------------------------------------------------------------------------

    def _parse_items(self, cols: Columns, cells: list[str], _o: ImportOptions, state: dict[str, Any]) -> ItemRow:
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
        return ItemRow(
            external_id=_ext(ext, "item id"),
            transaction_external_id=txn,
            product_external_id=g(cells, "product_external_id")[:100] or None,
            name=g(cells, "name")[:300],
            category=g(cells, "category")[:100].lower(),
            quantity=quantity,
            unit_price=unit,  # type: ignore[arg-type]
            line_total=line_total,
        )

    async def _write_items(self, items: Batch, _o: ImportOptions, report: ImportReport,
                           state: dict[str, Any]) -> int:
        unknown = await state["writer"].write_items([r for _, r in items])
        for n in unknown:
            line, r = items[n]
            report.skip(line, f"unknown transaction {r.transaction_external_id!r} (import transactions first)")
        return len(items) - len(unknown)

    # -- products ----------------------------------------------------------------------------

    def _parse_products(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> ProductRow:
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
        return ProductRow(
            external_id=_ext(g(cells, "external_id"), "sku"),
            name=name[:300],
            category=g(cells, "category")[:100].lower(),
            brand=brand,
            house_brand=house,
            price_tier=tier,
            price=optional_money(g(cells, "price"), "price"),
            in_stock=in_stock,
            store=g(cells, "store") or None,
        )

    async def _write_products(self, items: Batch, _o: ImportOptions, report: ImportReport,
                              state: dict[str, Any]) -> int:
        stores = await self._known_stores(items, state)
        return await state["writer"].write_products([r for _, r in items], stores, self.now())

    # -- staff -------------------------------------------------------------------------------

    def _parse_staff(self, cols: Columns, cells: list[str], o: ImportOptions, _s: dict[str, Any]) -> StaffRow:
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
        return StaffRow(
            external_id=_ext(g(cells, "external_id"), "employee id"),
            name=name[:200],
            phone=phone(g(cells, "phone")),
            role=(g(cells, "role") or "budtender")[:32].lower(),
            active=active_text not in {"0", "no", "false", "inactive", "terminated", "n"},
            store=g(cells, "store") or o.default_store,
            timezone=tz or getattr(o.timezone, "key", "UTC"),
        )

    async def _write_staff(self, items: Batch, _o: ImportOptions, report: ImportReport,
                           state: dict[str, Any]) -> int:
        """Each budtender becomes a person with the budtender role, their phone their SMS address."""
        stores = await self._known_stores(items, state)
        refused = await state["writer"].write_staff([r for _, r in items], stores, role=Role.BUDTENDER.value,
                                                    channel="sms", now=self.now())
        for n, reason in refused:
            report.skip(items[n][0], reason)
        return len(items) - len(refused)



__all__ = ["ALIASES", "REQUIRED", "ImportOptions", "StoreImporter", "staff"]
