"""POS events into the store's data: orders, customers, points — then the order hooks.

Webhooks are acknowledged as soon as the event is stored (`PosIngest.accept`); the work happens
after, in one transaction per event (order upserted, items replaced, points awarded or reversed,
event marked processed), then every registered order hook runs (budtender coaching subscribes
here with `on_order(app, hook)`). An event whose work failed is retried by a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.directory import normalize_phone
from coaching.loyalty import LoyaltyRules, award_keys, order_entries, refund_keys, reversal_entries
from coaching.pos import CustomerData, Envelope, OrderData, PayloadError, parse_event
from storage.catalog import products
from storage.customers import CustomerRepo, customers
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.pos_events import PosEvent, PosEventRepo
from storage.sales import SalesRepo, Transaction, TransactionStatus, staff, transactions

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

COUNTING = {TransactionStatus.COMPLETED.value, TransactionStatus.PENDING.value}


@dataclass(slots=True)
class OrderProcessed:
    """What an order hook receives after the order and its points are committed."""

    transaction: Transaction
    previous_status: TransactionStatus | None
    """None when the order is new to Huddle."""
    event_type: str
    received_at: datetime

    @property
    def is_new(self) -> bool:
        return self.previous_status is None


OrderHook = Callable[[OrderProcessed], Awaitable[None]]


def order_hooks(app: App) -> list[OrderHook]:
    return app.deps.setdefault("pos_order_hooks", [])


def on_order(app: App, hook: OrderHook) -> OrderHook:
    """Subscribe to processed orders (any plugin, in any load order)."""
    order_hooks(app).append(hook)
    return hook


def phone_or_none(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalize_phone(text)
    except ValueError:
        return None


class PosIngest:
    def __init__(self, db: Database, clock: Clock, rules: LoyaltyRules, hooks: list[OrderHook],
                 default_store: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self.rules = rules
        self.hooks = hooks
        self.default_store = default_store
        self.events = PosEventRepo(db)
        self.customers = CustomerRepo(db)
        self.sales = SalesRepo(db)
        self.loyalty = LoyaltyRepo(db)
        self._queue: asyncio.Queue[tuple[int, Envelope, OrderData | CustomerData]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- intake ------------------------------------------------------------------------------

    async def accept(self, body: bytes) -> tuple[int | None, Envelope]:
        """Validate and store an event (raises PayloadError); None for an event id seen before."""
        envelope, data = parse_event(body)
        row_id = await self.events.store(envelope.id, envelope.type, body.decode("utf-8"), self.clock.now())
        if row_id is not None:
            self._busy += 1
            self._idle.clear()
            self._queue.put_nowait((row_id, envelope, data))
            self._ensure_worker()
        return row_id, envelope

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="pos-ingest")

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            # Submitted in arrival order: the database's group commit keeps that order.
            await asyncio.gather(*(self._process(*item) for item in batch), return_exceptions=True)
            self._busy -= len(batch)
            if self._busy <= 0:
                self._busy = 0
                self._idle.set()

    async def idle(self) -> None:
        """Wait until every accepted event has been processed (tests, benchmarks, shutdown)."""
        await self._idle.wait()

    async def stop(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.idle(), 10)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def retry_pending(self) -> int:
        """Process events stored but not processed (after a crash, or a failed attempt)."""
        pending = await self.events.pending()
        for event in pending:
            await self.process_stored(event)
        return len(pending)

    async def process_stored(self, event: PosEvent) -> None:
        try:
            envelope, data = parse_event(event.body.encode("utf-8"))
        except PayloadError as exc:
            await self.events.fail(event.id, str(exc), self.clock.now(), final=True)
            return
        await self._process(event.id, envelope, data)

    async def _process(self, row_id: int, envelope: Envelope, data: OrderData | CustomerData) -> None:
        try:
            if isinstance(data, OrderData):
                done = await self.apply_order(row_id, envelope, data)
                for hook in list(self.hooks):
                    try:
                        await hook(done)
                    except Exception:
                        log.exception("order hook failed order=%s hook=%s", data.id, getattr(hook, "__name__", hook))
            else:
                await self.apply_customer(row_id, data)
        except Exception as exc:
            log.exception("POS event failed event_id=%s type=%s", envelope.id, envelope.type)
            await self.events.fail(row_id, f"{type(exc).__name__}: {exc}", self.clock.now())

    # -- the work ----------------------------------------------------------------------------

    async def _store_id(self, conn: AsyncConnection, code: str | None, now: datetime) -> int | None:
        code = code or self.default_store
        if not code:
            return None
        return (await self.customers.store_ids_in(conn, [code], now)).get(code)

    async def _customer(self, conn: AsyncConnection, data: OrderData, store_id: int | None,
                        now: datetime) -> tuple[int | None, bool]:
        """(customer id, is a rewards member) — a stub CRM record is made for an unknown POS customer."""
        phone = phone_or_none(data.customer_phone)
        row = None
        if data.customer_id:
            row = (await conn.execute(sa.select(customers.c.id, customers.c.rewards_member)
                                      .where(customers.c.external_id == data.customer_id))).first()
        if row is None and phone:
            row = (await conn.execute(sa.select(customers.c.id, customers.c.rewards_member)
                                      .where(customers.c.phone == phone).order_by(customers.c.id).limit(1))).first()
        if row is not None:
            return int(row.id), bool(row.rewards_member)
        if not data.customer_id and not phone:
            return None, False
        first, _, last = (data.customer_name or "").partition(" ")
        result = await conn.execute(customers.insert().values(
            external_id=data.customer_id, phone=phone, store_id=store_id, first_name=first or None,
            last_name=last or None, rewards_member=data.rewards_signup,
            signup_date=now.date() if data.rewards_signup else None,
            favourite_categories=[], attributes={"source": "pos"}, created_at=now, updated_at=now))
        return int(result.inserted_primary_key[0]), data.rewards_signup

    async def apply_order(self, row_id: int, envelope: Envelope, data: OrderData) -> OrderProcessed:
        now = self.clock.now()

        async def unit(conn: AsyncConnection) -> TransactionStatus | None:
            store_id = await self._store_id(conn, data.store, now)
            customer_id, member = await self._customer(conn, data, store_id, now)
            budtender = None
            if data.budtender_id:
                budtender = (await conn.execute(sa.select(staff.c.person_id)
                                                .where(staff.c.external_id == data.budtender_id))).scalar()
            before = (await conn.execute(sa.select(transactions.c.id, transactions.c.status, transactions.c.total)
                                         .where(transactions.c.external_id == data.id))).first()
            values = {
                "store_id": store_id, "customer_id": customer_id, "customer_external_id": data.customer_id,
                "budtender_person_id": budtender, "budtender_external_id": data.budtender_id,
                "occurred_at": data.occurred_at, "total": data.total, "discount": data.discount,
                "status": data.status, "rewards_signup": data.rewards_signup, "source": "webhook", "updated_at": now,
            }
            if before is None:
                txn_id = int((await conn.execute(transactions.insert().values(
                    external_id=data.id, created_at=now, **values))).inserted_primary_key[0])
            else:
                txn_id = int(before.id)
                await conn.execute(transactions.update().where(transactions.c.id == txn_id).values(**values))
            await self._items(conn, txn_id, data)
            was_counting = before is not None and before.status in COUNTING
            counting = data.status in COUNTING
            await self._customer_totals(conn, customer_id, data, before, was_counting, counting, now)
            if data.rewards_signup and customer_id is not None:
                await conn.execute(customers.update().where(customers.c.id == customer_id,
                                                            customers.c.rewards_member.is_(False))
                                   .values(rewards_member=True, signup_date=now.date(), updated_at=now))
                member = True
            await self._points(conn, data, customer_id, member, budtender, counting, now)
            await self.events.finish_in(conn, row_id, now)
            return TransactionStatus(before.status) if before is not None else None

        previous = await self.db.run(unit)
        txn = await self.sales.get(data.id)
        assert txn is not None
        return OrderProcessed(txn, previous, envelope.type, now)

    @staticmethod
    async def _items(conn: AsyncConnection, txn_id: int, data: OrderData) -> None:
        skus = [i.sku for i in data.items if i.sku]
        known: dict[str, int] = {}
        if skus:
            rows = (await conn.execute(sa.select(products.c.external_id, products.c.id)
                                       .where(products.c.external_id.in_(skus)))).all()
            known = {r.external_id: r.id for r in rows}
        from storage.sales import transaction_items

        await conn.execute(transaction_items.delete().where(transaction_items.c.transaction_id == txn_id))
        rows_out = [
            {"external_id": item.id or f"{data.id}:{n}", "transaction_id": txn_id,
             "product_id": known.get(item.sku or ""), "product_external_id": item.sku, "name": item.name,
             "category": item.category, "quantity": item.quantity, "unit_price": item.unit_price,
             "line_total": item.line_total}
            for n, item in enumerate(data.items, 1)
        ]
        if rows_out:
            await conn.execute(transaction_items.insert(), rows_out)

    @staticmethod
    async def _customer_totals(conn: AsyncConnection, customer_id: int | None, data: OrderData, before: Any,
                               was_counting: bool, counting: bool, now: datetime) -> None:
        if customer_id is None:
            return
        old = Decimal(before.total) if before is not None and was_counting else Decimal("0")
        new = data.total if counting else Decimal("0")
        visits = (1 if counting else 0) - (1 if was_counting else 0)
        if old == new and visits == 0:
            return
        row = (await conn.execute(sa.select(customers.c.lifetime_spend, customers.c.visits, customers.c.last_visit_at)
                                  .where(customers.c.id == customer_id))).one()
        values: dict[str, Any] = {"lifetime_spend": (row.lifetime_spend or Decimal("0")) + new - old,
                  "visits": max(0, (row.visits or 0) + visits), "updated_at": now}
        if counting and (row.last_visit_at is None or row.last_visit_at < data.occurred_at):
            values["last_visit_at"] = data.occurred_at
        await conn.execute(customers.update().where(customers.c.id == customer_id).values(**values))

    async def _points(self, conn: AsyncConnection, data: OrderData, customer_id: int | None, member: bool,
                      budtender: int | None, counting: bool, now: datetime) -> None:
        award = order_entries(data.id, data.total, customer_id=customer_id, customer_earns=member,
                              budtender_person_id=budtender, rules=self.rules, now=now)
        c_key, b_key = award_keys(data.id)
        if counting:
            await self.loyalty.remove_in(conn, list(refund_keys(data.id)))
            await self.loyalty.add_in(conn, award, replace=True)
            stale = {c_key, b_key} - {e.key for e in award}
            if stale:  # e.g. a total corrected down to zero points
                await self.loyalty.remove_in(conn, list(stale))
            return
        existing = await self.loyalty.deltas_in(conn, [c_key, b_key])
        awarded = [LedgerEntry(k, d, "purchase", now, customer_id=customer_id if k == c_key else None,
                               person_id=budtender if k == b_key else None, order_external_id=data.id)
                   for k, d in existing.items()]
        await self.loyalty.add_in(conn, reversal_entries(awarded, now))

    async def apply_customer(self, row_id: int, data: CustomerData) -> None:
        now = self.clock.now()

        async def unit(conn: AsyncConnection) -> None:
            store_id = await self._store_id(conn, data.store, now)
            row = {
                "external_id": data.id, "store_id": store_id, "first_name": data.first_name,
                "last_name": data.last_name, "phone": phone_or_none(data.phone), "email": data.email,
                "vip_tier": data.vip_tier, "signup_date": data.signup_date or now.date(),
                "rewards_member": data.rewards_member, "favourite_categories": [], "attributes": {"source": "pos"},
                "created_at": now, "updated_at": now,
            }
            await self.customers.upsert_in(conn, [row], keep=("favourite_categories", "attributes"))
            await self.events.finish_in(conn, row_id, now)

        await self.db.run(unit)
