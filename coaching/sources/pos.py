"""POS events into the store's data: orders, customers, points — then the order hooks.

Webhooks are acknowledged as soon as the event is stored (`PosIngest.accept`); the work happens
after, in one transaction per batch of events (`storage.pos_orders`: order upserted, items
replaced, points awarded or reversed by the loyalty rules of `coaching.loyalty.OrderLedger`,
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
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.phones import normalize_phone
from coaching.loyalty import LoyaltyRules, OrderLedger
from coaching.pos import CustomerData, Envelope, OrderData, PayloadError, parse_event
from storage.catalog import CatalogRepo
from storage.customers import CustomerRepo
from storage.db import Database
from storage.loyalty import LoyaltyRepo
from storage.pos_events import PosEvent, PosEventRepo
from storage.pos_orders import IncomingCustomer, IncomingLine, IncomingOrder, PosOrderRepo
from storage.sales import SalesRepo, Transaction, TransactionStatus

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


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
        self.catalog = CatalogRepo(db)
        self.orders = PosOrderRepo(db)
        self.ledger = OrderLedger(rules)
        """What an order is worth in points, asked by the batch inside its transaction."""
        self._queue: asyncio.Queue[tuple[int, Envelope, OrderData | CustomerData]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._stores: dict[str, int] = {}
        self._staff: set[str] = set()
        """POS employee ids known to exist (misses are looked up again: staff are imported any time)."""
        self.batch_size = 64
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- intake ------------------------------------------------------------------------------

    async def accept(self, body: bytes, warnings: list[str] | None = None) -> tuple[int | None, Envelope]:
        """Validate and store an event (raises PayloadError); None for an event id seen before.

        An unknown store is refused (it would otherwise become a new store named after the typo);
        an unknown budtender is appended to `warnings` and the order is kept without one.
        """
        envelope, data = parse_event(body)
        found = await self.check_references(data)
        if warnings is not None:
            warnings.extend(found)
        row_id = await self.events.store(envelope.id, envelope.type, body.decode("utf-8"), self.clock.now())
        if row_id is not None:
            self._busy += 1
            self._idle.clear()
            self._queue.put_nowait((row_id, envelope, data))
            self._ensure_worker()
        return row_id, envelope

    async def check_references(self, data: OrderData | CustomerData) -> list[str]:
        """Refuse a store Huddle does not know; the warnings for an unknown budtender."""
        if data.store is not None and data.store not in self._stores:
            self._stores = await self.customers.store_ids()
            if data.store not in self._stores:
                known = ", ".join(sorted(self._stores)) or "none yet"
                raise PayloadError(f"data.store: unknown store {data.store!r} (known: {known}); "
                                   "add it to [[stores]] in huddle.toml")
        if not isinstance(data, OrderData) or not data.budtender_id or data.budtender_id in self._staff:
            return []
        found = await self.sales.staff_people({data.budtender_id})
        if data.budtender_id in found:
            self._staff.add(data.budtender_id)
            return []
        log.warning("POS order with an unknown budtender order=%s budtender_id=%s", data.id, data.budtender_id)
        return [f"data.budtender_id: unknown budtender {data.budtender_id!r}: the order is kept without a "
                "budtender (import staff, then send the order again)"]

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="pos-ingest")

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self.batch_size:
                batch.append(self._queue.get_nowait())
            try:
                await self._process_batch(batch)
            except Exception:  # never let the worker die; the sweep retries what is left
                log.exception("POS batch failed")
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

    async def _process_batch(self, batch: list[tuple[int, Envelope, OrderData | CustomerData]]) -> None:
        """Runs of orders are applied together (one transaction); an order seen twice starts a new run."""
        run: list[tuple[int, Envelope, OrderData]] = []
        ids: set[str] = set()
        for row_id, envelope, data in batch:
            if isinstance(data, OrderData) and data.id not in ids:
                run.append((row_id, envelope, data))
                ids.add(data.id)
                continue
            await self._orders(run)
            run, ids = [], set()
            if isinstance(data, OrderData):
                run, ids = [(row_id, envelope, data)], {data.id}
            else:
                await self._process(row_id, envelope, data)
        await self._orders(run)

    async def _orders(self, run: list[tuple[int, Envelope, OrderData]],
                      coach: Callable[[OrderProcessed], bool] | None = None) -> int:
        """Apply a run (a bad order is found by applying each alone and recorded as failed); then the
        order hooks for those `coach` accepts (all by default). Returns how many orders were applied."""
        if not run:
            return 0
        try:
            done = await self.apply_orders(run)
        except Exception as exc:
            if len(run) == 1:
                row_id, envelope, _ = run[0]
                log.exception("POS event failed event_id=%s type=%s", envelope.id, envelope.type)
                await self.events.fail(row_id, f"{type(exc).__name__}: {exc}", self.clock.now())
                return 0
            applied = 0
            for item in run:  # find the bad one: each alone
                applied += await self._orders([item], coach)
            return applied
        await self._run_hooks([d for d in done if coach is None or coach(d)])
        return len(done)

    async def apply_stored(self, run: list[tuple[int, Envelope, OrderData]],
                           coach: Callable[[OrderProcessed], bool] | None = None) -> int:
        """Orders already stored as `pos_events` by another source (the Blaze sync), applied now, in the
        caller's task; `coach` picks the orders that run the after-order hooks (live ones, not history)."""
        return await self._orders(run, coach)

    async def _run_hooks(self, done: list[OrderProcessed]) -> None:
        for processed in done:
            for hook in list(self.hooks):
                try:
                    await hook(processed)
                except Exception:
                    log.exception("order hook failed order=%s hook=%s", processed.transaction.external_id,
                                  getattr(hook, "__name__", hook))

    async def _process(self, row_id: int, envelope: Envelope, data: OrderData | CustomerData) -> None:
        if isinstance(data, OrderData):
            await self._orders([(row_id, envelope, data)])
            return
        try:
            await self.apply_customer(row_id, data)
        except Exception as exc:
            log.exception("POS event failed event_id=%s type=%s", envelope.id, envelope.type)
            await self.events.fail(row_id, f"{type(exc).__name__}: {exc}", self.clock.now())

    # -- the work ----------------------------------------------------------------------------

    async def _store_ids(self, codes: set[str], now: datetime) -> dict[str, int]:
        """code → id. Only the configured default store is ever added here; an unknown code (refused
        at the door, so only in events stored before that rule) maps to no store, not a new one."""
        missing = codes - self._stores.keys()
        if missing:
            create = [self.default_store] if self.default_store in missing else None
            self._stores = await self.customers.store_ids(create, now)
        return self._stores

    async def apply_order(self, row_id: int, envelope: Envelope, data: OrderData) -> OrderProcessed:
        return (await self.apply_orders([(row_id, envelope, data)]))[0]

    async def apply_orders(self, run: list[tuple[int, Envelope, OrderData]]) -> list[OrderProcessed]:
        """Apply orders (distinct order ids) in one transaction (`storage.pos_orders`), points by `self.ledger`."""
        now = self.clock.now()
        codes = {d.store or self.default_store for _, _, d in run} - {None}
        stores = await self._store_ids(codes, now) if codes else {}  # type: ignore[arg-type]
        orders = [self._incoming(row_id, d, stores) for row_id, _, d in run]
        applied = await self.orders.apply_orders(orders, self.ledger, now)
        return [OrderProcessed(a.transaction, a.previous_status, envelope.type, now)
                for (_, envelope, _), a in zip(run, applied, strict=True)]

    def _incoming(self, row_id: int, d: OrderData, stores: dict[str, int]) -> IncomingOrder:
        first, _, last = (d.customer_name or "").partition(" ")
        return IncomingOrder(
            event_row_id=row_id, external_id=d.id, store_id=stores.get(d.store or self.default_store or ""),
            occurred_at=d.occurred_at, total=d.total, discount=d.discount, status=d.status,
            rewards_signup=d.rewards_signup, customer_external_id=d.customer_id,
            customer_phone=phone_or_none(d.customer_phone), customer_first_name=first or None,
            customer_last_name=last or None, budtender_external_id=d.budtender_id,
            items=[IncomingLine(i.id, i.sku, i.name, i.category, i.quantity, i.unit_price, i.line_total)
                   for i in d.items],
        )

    async def apply_customer(self, row_id: int, data: CustomerData) -> None:
        now = self.clock.now()
        code = data.store or self.default_store
        store_id = (await self._store_ids({code}, now)).get(code) if code else None
        await self.orders.apply_customer(row_id, IncomingCustomer(
            external_id=data.id, store_id=store_id, first_name=data.first_name, last_name=data.last_name,
            phone=phone_or_none(data.phone), email=data.email, vip_tier=data.vip_tier,
            signup_date=data.signup_date or now.date(), rewards_member=data.rewards_member), now)
