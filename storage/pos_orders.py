"""The POS webhook's writes: a batch of orders (or one customer record) in one transaction.

For a batch of orders with distinct ids, one transaction: customers found by POS id or phone (a
stub record for an unknown one), orders inserted or updated, their items replaced (a webhook
carries the whole order), the customers' running totals moved by the difference, sign-ups made
members, loyalty entries written, the events marked processed. Statements are set-based (one per
step for the whole batch), which is what keeps the webhook at thousands of orders a second.

Rows come in as plain dataclasses (`IncomingOrder`, `IncomingCustomer`): storage knows nothing of
the webhook's JSON. What an order is worth in points is not storage's business either: the caller
passes a `LedgerPolicy` (pure functions, the loyalty rules live in coaching) that storage asks
inside the transaction, with the parties it found and the ledger entries it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.catalog import CatalogRepo
from storage.customers import CustomerRepo, Totals
from storage.customers import customers as customers_table
from storage.db import Database
from storage.events import CUSTOMER_CREATED, ORDER_CREATED, SIGNUP, TIER_UP, NewEvent, append_in, append_many_in
from storage.loyalty import LedgerEntry, LoyaltyRepo, loyalty_ledger
from storage.pos_events import PosEventRepo
from storage.prepared import Prepared
from storage.sales import SalesRepo, StoredOrder, Transaction, TransactionItem, TransactionStatus

_SUBJECTS = Prepared(
    sa.select(customers_table.c.id, customers_table.c.person_id, customers_table.c.vip_tier,
              customers_table.c.visits, customers_table.c.rewards_member)
    .where(customers_table.c.id.in_(sa.bindparam("ids", expanding=True)))
)
"""Who a batch's customers are before it: person, points tier, visits, membership."""
_BALANCES = Prepared(
    sa.select(loyalty_ledger.c.customer_id, sa.func.sum(loyalty_ledger.c.delta).label("balance"))
    .where(loyalty_ledger.c.customer_id.in_(sa.bindparam("ids", expanding=True)))
    .group_by(loyalty_ledger.c.customer_id)
)
_SET_TIER = Prepared(customers_table.update().where(customers_table.c.id == sa.bindparam("t_id"))
                     .values(vip_tier=sa.bindparam("t_tier"), updated_at=sa.bindparam("t_now")))

COUNTING = frozenset({TransactionStatus.COMPLETED.value, TransactionStatus.PENDING.value})
"""Statuses that count towards a customer's visits and spend (refunds and voids drop out)."""


@dataclass(slots=True)
class IncomingLine:
    """One line of an incoming order."""

    external_id: str | None
    """The POS line id; without one the line is stored as `<order id>:<line number>`."""
    sku: str | None
    name: str
    category: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(slots=True)
class IncomingOrder:
    """An order as the POS sent it, with its store already resolved and its phone normalised."""

    event_row_id: int
    """The `pos_events` row this order came in; marked processed in the same transaction."""
    external_id: str
    store_id: int | None
    occurred_at: datetime
    total: Decimal
    discount: Decimal = Decimal("0")
    status: str = TransactionStatus.COMPLETED.value
    rewards_signup: bool = False
    customer_external_id: str | None = None
    customer_phone: str | None = None
    """E.164, or None when absent or not a phone number."""
    customer_first_name: str | None = None
    customer_last_name: str | None = None
    budtender_external_id: str | None = None
    items: list[IncomingLine] = field(default_factory=list)

    @property
    def counts(self) -> bool:
        return self.status in COUNTING


@dataclass(frozen=True, slots=True)
class OrderParties:
    """Who an order is about, as found (or created) in the transaction: what points are computed from."""

    order: IncomingOrder
    customer_id: int | None
    customer_is_member: bool
    """A rewards member already, or signing up with this order."""
    budtender_person_id: int | None


@dataclass(slots=True)
class LedgerChange:
    """What one order does to the loyalty ledger."""

    remove: list[str] = field(default_factory=list)
    """Keys of entries to delete."""
    put: list[LedgerEntry] = field(default_factory=list)
    """Entries written with their delta (an existing key gets the new delta)."""
    add: list[LedgerEntry] = field(default_factory=list)
    """Entries written once (an existing key is kept as it is)."""


class LedgerPolicy(Protocol):
    """The loyalty rules, as storage asks them for each order of a batch (both calls pure)."""

    def reads(self, order: OrderParties) -> Iterable[str]:
        """Keys of stored ledger entries whose deltas `change` needs (e.g. the awards a refund reverses)."""
        ...

    def change(self, order: OrderParties, stored: Mapping[str, int], now: datetime) -> LedgerChange:
        """The ledger change of this order, given the stored deltas of the keys `reads` named."""
        ...

    def tier_up(self, balance: int, current: str | None) -> str | None:
        """The points tier a customer with this balance (and this tier now) moves up to, or None."""
        ...


@dataclass(slots=True)
class AppliedOrder:
    """An order after the batch committed: as coaching consumes it, and what it was before."""

    transaction: Transaction
    previous_status: TransactionStatus | None
    """None when the order is new."""


@dataclass(slots=True)
class IncomingCustomer:
    """A customer record the POS created (or sent again): upserted by its POS id."""

    external_id: str
    store_id: int | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None
    vip_tier: str | None
    signup_date: date
    rewards_member: bool


class PosOrderRepo:
    """Applies POS events; each call is one transaction (shared with concurrent units: group commit)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.customers = CustomerRepo(db)
        self.sales = SalesRepo(db)
        self.loyalty = LoyaltyRepo(db)
        self.catalog = CatalogRepo(db)
        self.events = PosEventRepo(db)

    async def apply_orders(self, orders: Sequence[IncomingOrder], ledger: LedgerPolicy,
                           now: datetime) -> list[AppliedOrder]:
        """Apply orders (distinct order ids) in one transaction with set-based statements; in their order."""

        async def unit(conn: AsyncConnection) -> list[AppliedOrder]:
            who = await self._customers(conn, orders, now)
            staff_map = await self.sales.staff_people_in(
                conn, {d.budtender_external_id for d in orders if d.budtender_external_id})
            before = await self.sales.orders_in(conn, [d.external_id for d in orders])
            values = []
            for d in orders:
                cid, _member = who[d.external_id]
                values.append({
                    "external_id": d.external_id, "store_id": d.store_id,
                    "customer_id": cid, "customer_external_id": d.customer_external_id,
                    "budtender_person_id": staff_map.get(d.budtender_external_id or ""),
                    "budtender_external_id": d.budtender_external_id, "occurred_at": d.occurred_at, "total": d.total,
                    "discount": d.discount, "status": d.status, "rewards_signup": d.rewards_signup,
                    "source": "webhook", "created_at": now, "updated_at": now,
                })
            txn_ids = {d.external_id: before[d.external_id].id for d in orders if d.external_id in before}
            new = [v for v in values if v["external_id"] not in before]
            txn_ids.update(await self.sales.add_orders_in(conn, new))
            old = [{**{k: v for k, v in row.items() if k not in ("external_id", "created_at")},
                    "b_id": txn_ids[row["external_id"]]} for row in values if row["external_id"] in before]
            await self.sales.update_orders_in(conn, old)
            products_info = await self._items(conn, orders, txn_ids, [txn_ids[d] for d in before])
            cids = sorted({cid for cid, _ in who.values() if cid is not None})
            subjects = {s.id: s for s in await _SUBJECTS.all(conn, {"ids": cids})} if cids else {}
            await self._customer_totals(conn, orders, who, before, now)
            signups = [cid for d in orders if d.rewards_signup and (cid := who[d.external_id][0]) is not None]
            await self.customers.enrol_members_in(conn, signups, now)
            parties = [OrderParties(d, *who[d.external_id], v["budtender_person_id"])
                       for d, v in zip(orders, values, strict=True)]
            await self._ledger(conn, parties, ledger, now)
            await self.events.finish_many_in(conn, [d.event_row_id for d in orders], now)
            await self._append_events(conn, orders, who, before, subjects, values, ledger, now)
            done = []
            for d, v in zip(orders, values, strict=True):
                txn = Transaction(
                    id=txn_ids[d.external_id], external_id=d.external_id, store_id=v["store_id"],
                    customer_id=v["customer_id"], budtender_person_id=v["budtender_person_id"],
                    occurred_at=d.occurred_at, total=d.total, status=TransactionStatus(d.status),
                    rewards_signup=d.rewards_signup, customer_external_id=d.customer_external_id,
                    budtender_external_id=d.budtender_external_id,
                    items=[TransactionItem(i.sku, i.name, i.category, i.quantity, i.unit_price, i.line_total,
                                           *products_info.get(i.sku or "", (None, None, False))) for i in d.items],
                )
                prev = before.get(d.external_id)
                done.append(AppliedOrder(txn, TransactionStatus(prev.status) if prev is not None else None))
            return done

        return await self.db.run(unit)

    async def _append_events(self, conn: AsyncConnection, orders: Sequence[IncomingOrder],
                             who: dict[str, tuple[int | None, bool]], before: dict[str, StoredOrder],
                             subjects: dict[int, Any], values: list[dict[str, Any]], ledger: LedgerPolicy,
                             now: datetime) -> None:
        """The batch's events, in its transaction: each new order, each sign-up, each points tier reached.

        `order.created` has the POS order id as its source id, so the same order arriving again (a
        redelivery, a sync) never appends twice; `first_order` is true when the customer had no
        counted visit before this batch and this is their earliest new order in it.
        """
        out: list[NewEvent] = []
        firsts: set[int] = set()
        for d, v in zip(orders, values, strict=True):
            cid = who[d.external_id][0]
            subject = subjects.get(cid) if cid is not None else None
            person = subject.person_id if subject is not None else None
            if d.rewards_signup and cid is not None and (subject is None or not subject.rewards_member):
                out.append(NewEvent(SIGNUP, str(cid), d.occurred_at, person, cid,
                                    {"customer_id": cid, "via": "pos", "order_id": d.external_id}))
            if d.external_id in before:
                continue
            first = bool(cid is not None and d.counts and subject is not None and not subject.visits
                         and cid not in firsts)
            if first and cid is not None:
                firsts.add(cid)
            out.append(NewEvent(ORDER_CREATED, d.external_id, d.occurred_at, person, cid, {
                "order_id": d.external_id, "total": str(d.total), "discount": str(d.discount), "status": d.status,
                "store_id": d.store_id, "budtender_person_id": v["budtender_person_id"],
                "rewards_signup": d.rewards_signup, "first_order": first,
                "visits_before": int(subject.visits or 0) if subject is not None else 0,
                "categories": sorted({i.category for i in d.items if i.category}),
                "items": sum(i.quantity for i in d.items),
            }))
        if subjects:
            balances = {r.customer_id: int(r.balance or 0) for r in await _BALANCES.all(conn, {"ids": list(subjects)})}
            moved = []
            for cid, subject in subjects.items():
                reached = ledger.tier_up(balances.get(cid, 0), subject.vip_tier)
                if reached is None:
                    continue
                moved.append({"t_id": cid, "t_tier": reached, "t_now": now})
                out.append(NewEvent(TIER_UP, f"{cid}:{reached}", now, subject.person_id, cid,
                                    {"customer_id": cid, "tier": reached, "previous": subject.vip_tier,
                                     "balance": balances.get(cid, 0)}))
            if moved:
                await _SET_TIER.execute_many(conn, moved)
        await append_many_in(conn, out, now)

    async def _customers(self, conn: AsyncConnection, orders: Sequence[IncomingOrder],
                         now: datetime) -> dict[str, tuple[int | None, bool]]:
        """order id → (customer id, is a rewards member); a stub record is made for an unknown POS customer."""
        exts = {d.customer_external_id for d in orders if d.customer_external_id}
        phones = {d.customer_phone for d in orders if d.customer_phone}
        by_ext, by_phone = await self.customers.members_in(conn, exts, phones)
        out: dict[str, tuple[int | None, bool]] = {}
        for d in orders:
            ext, phone = d.customer_external_id, d.customer_phone
            found = (by_ext.get(ext) if ext else None) or (by_phone.get(phone) if phone else None)
            if found is None and (ext or phone):
                new_id = await self.customers.add_in(
                    conn, external_id=ext, phone=phone, store_id=d.store_id,
                    first_name=d.customer_first_name, last_name=d.customer_last_name,
                    rewards_member=False, signup_date=None,
                    favourite_categories=[], attributes={"source": "pos"}, created_at=now, updated_at=now)
                await append_in(conn, NewEvent(CUSTOMER_CREATED, str(new_id), d.occurred_at, None, new_id,
                                               {"customer_id": new_id, "via": "pos_order", "store_id": d.store_id}),
                                now)
                found = (new_id, d.rewards_signup)
                if ext:
                    by_ext[ext] = found
                if phone:
                    by_phone[phone] = found
            if found is None:
                out[d.external_id] = (None, False)
            else:
                out[d.external_id] = (found[0], found[1] or d.rewards_signup)
        return out

    async def _items(self, conn: AsyncConnection, orders: Sequence[IncomingOrder], txn_ids: dict[str, int],
                     replaced: list[int]) -> dict[str, tuple[int, int, bool]]:
        """Replace the orders' items; returns sku → (product id, price tier, house brand)."""
        known = await self.catalog.tiers_in(conn, {i.sku for d in orders for i in d.items if i.sku})
        rows_out = [
            {"external_id": item.external_id or f"{d.external_id}:{n}", "transaction_id": txn_ids[d.external_id],
             "product_id": known.get(item.sku or "", (None,))[0], "product_external_id": item.sku,
             "name": item.name, "category": item.category, "quantity": item.quantity,
             "unit_price": item.unit_price, "line_total": item.line_total}
            for d in orders for n, item in enumerate(d.items, 1)
        ]
        await self.sales.replace_order_items_in(conn, replaced, rows_out)
        return known

    async def _customer_totals(self, conn: AsyncConnection, orders: Sequence[IncomingOrder],
                               who: dict[str, tuple[int | None, bool]], before: dict[str, StoredOrder],
                               now: datetime) -> None:
        """Move each customer's visits, spend and last visit by what these orders changed."""
        deltas: dict[int, list[Any]] = {}
        for d in orders:
            cid = who[d.external_id][0]
            if cid is None:
                continue
            prev = before.get(d.external_id)
            was = prev is not None and prev.status in COUNTING
            counting = d.counts
            old = Decimal(prev.total) if prev is not None and was else Decimal("0")
            new = d.total if counting else Decimal("0")
            visits = (1 if counting else 0) - (1 if was else 0)
            if old == new and visits == 0:
                continue
            acc = deltas.setdefault(cid, [Decimal("0"), 0, None])
            acc[0] += new - old
            acc[1] += visits
            if counting and (acc[2] is None or d.occurred_at > acc[2]):
                acc[2] = d.occurred_at
        if not deltas:
            return
        updated = []
        for t in await self.customers.totals_in(conn, list(deltas)):
            spend, visits, last = deltas[t.customer_id]
            latest = t.last_visit_at if last is None or (t.last_visit_at and t.last_visit_at >= last) else last
            updated.append(Totals(t.customer_id, t.lifetime_spend + spend, max(0, t.visits + visits), latest))
        await self.customers.set_totals_in(conn, updated, now)

    async def _ledger(self, conn: AsyncConnection, parties: list[OrderParties], ledger: LedgerPolicy,
                      now: datetime) -> None:
        """Counting orders first (stale entries removed, awards put), then the reversals of the others."""
        counting = [p for p in parties if p.order.counts]
        reversed_ = [p for p in parties if not p.order.counts]
        if counting:
            changes = [ledger.change(p, {}, now) for p in counting]
            await self.loyalty.remove_in(conn, [k for c in changes for k in c.remove])
            await self.loyalty.add_in(conn, [e for c in changes for e in c.put], replace=True)
            await self.loyalty.add_in(conn, [e for c in changes for e in c.add])
        if reversed_:
            stored = await self.loyalty.deltas_in(conn, [k for p in reversed_ for k in ledger.reads(p)])
            changes = [ledger.change(p, stored, now) for p in reversed_]
            await self.loyalty.remove_in(conn, [k for c in changes for k in c.remove])
            await self.loyalty.add_in(conn, [e for c in changes for e in c.put], replace=True)
            await self.loyalty.add_in(conn, [e for c in changes for e in c.add])

    async def apply_customer(self, event_row_id: int, customer: IncomingCustomer, now: datetime) -> None:
        """Upsert a POS customer record (its tastes and attributes kept) and mark its event processed."""

        async def unit(conn: AsyncConnection) -> None:
            row = {
                "external_id": customer.external_id, "store_id": customer.store_id,
                "first_name": customer.first_name, "last_name": customer.last_name, "phone": customer.phone,
                "email": customer.email, "vip_tier": customer.vip_tier, "signup_date": customer.signup_date,
                "rewards_member": customer.rewards_member, "favourite_categories": [],
                "attributes": {"source": "pos"}, "created_at": now, "updated_at": now,
            }
            existing = await self.customers.ids_by_external_in(conn, [customer.external_id])
            await self.customers.upsert_in(conn, [row], keep=("favourite_categories", "attributes"))
            await self.events.finish_in(conn, event_row_id, now)
            if not existing:
                cid = (await self.customers.ids_by_external_in(conn, [customer.external_id]))[customer.external_id]
                occurred = datetime.combine(customer.signup_date, time(12), tzinfo=UTC) \
                    if customer.signup_date < now.date() else now
                new = [NewEvent(CUSTOMER_CREATED, str(cid), occurred, None, cid,
                                {"customer_id": cid, "via": "pos", "store_id": customer.store_id})]
                if customer.rewards_member:
                    new.append(NewEvent(SIGNUP, str(cid), occurred, None, cid,
                                        {"customer_id": cid, "via": "pos"}))
                await append_many_in(conn, new, now)

        await self.db.run(unit)


__all__ = ["AppliedOrder", "IncomingCustomer", "IncomingLine", "IncomingOrder", "LedgerChange", "LedgerPolicy",
           "OrderParties", "PosOrderRepo"]
