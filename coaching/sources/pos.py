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

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.phones import normalize_phone
from coaching.loyalty import LoyaltyRules, award_keys, order_entries, refund_keys, reversal_entries
from coaching.pos import CustomerData, Envelope, OrderData, PayloadError, parse_event
from storage.catalog import CatalogRepo
from storage.customers import CustomerRepo, Totals
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.pos_events import PosEvent, PosEventRepo
from storage.sales import SalesRepo, Transaction, TransactionItem, TransactionStatus

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
        self.catalog = CatalogRepo(db)
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
            self._stores = await self.db.query(self.customers.store_ids_in)
            if data.store not in self._stores:
                known = ", ".join(sorted(self._stores)) or "none yet"
                raise PayloadError(f"data.store: unknown store {data.store!r} (known: {known}); "
                                   "add it to [[stores]] in huddle.toml")
        if not isinstance(data, OrderData) or not data.budtender_id or data.budtender_id in self._staff:
            return []
        found = await self.db.query(lambda conn: self.sales.staff_people_in(conn, {data.budtender_id or ""}))
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

    async def _orders(self, run: list[tuple[int, Envelope, OrderData]]) -> None:
        if not run:
            return
        try:
            done = await self.apply_orders(run)
        except Exception as exc:
            if len(run) == 1:
                row_id, envelope, _ = run[0]
                log.exception("POS event failed event_id=%s type=%s", envelope.id, envelope.type)
                await self.events.fail(row_id, f"{type(exc).__name__}: {exc}", self.clock.now())
                return
            for item in run:  # find the bad one: each alone
                await self._orders([item])
            return
        await self._run_hooks(done)

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

    async def _store_ids(self, conn: AsyncConnection, codes: set[str], now: datetime) -> dict[str, int]:
        """code → id. Only the configured default store is ever added here; an unknown code (refused
        at the door, so only in events stored before that rule) maps to no store, not a new one."""
        missing = codes - self._stores.keys()
        if missing:
            create = [self.default_store] if self.default_store in missing else None
            self._stores = await self.customers.store_ids_in(conn, create, now)
        return self._stores

    async def apply_order(self, row_id: int, envelope: Envelope, data: OrderData) -> OrderProcessed:
        return (await self.apply_orders([(row_id, envelope, data)]))[0]

    async def apply_orders(self, run: list[tuple[int, Envelope, OrderData]]) -> list[OrderProcessed]:
        """Apply orders (distinct order ids) in one transaction with set-based statements."""
        now = self.clock.now()
        orders = [d for _, _, d in run]

        async def unit(conn: AsyncConnection) -> list[OrderProcessed]:
            codes = {d.store or self.default_store for d in orders} - {None}
            stores = await self._store_ids(conn, codes, now) if codes else {}  # type: ignore[arg-type]
            who = await self._customers(conn, orders, stores, now)
            staff_map = await self.sales.staff_people_in(conn, {d.budtender_id for d in orders if d.budtender_id})
            before = await self.sales.orders_in(conn, [d.id for d in orders])
            values = []
            for d in orders:
                cid, _member = who[d.id]
                values.append({
                    "external_id": d.id, "store_id": stores.get(d.store or self.default_store or ""),
                    "customer_id": cid, "customer_external_id": d.customer_id,
                    "budtender_person_id": staff_map.get(d.budtender_id or ""),
                    "budtender_external_id": d.budtender_id, "occurred_at": d.occurred_at, "total": d.total,
                    "discount": d.discount, "status": d.status, "rewards_signup": d.rewards_signup,
                    "source": "webhook", "created_at": now, "updated_at": now,
                })
            txn_ids = {d.id: before[d.id].id for d in orders if d.id in before}
            new = [v for v in values if v["external_id"] not in before]
            txn_ids.update(await self.sales.add_orders_in(conn, new))
            old = [{**{k: v for k, v in row.items() if k not in ("external_id", "created_at")},
                    "b_id": txn_ids[row["external_id"]]} for row in values if row["external_id"] in before]
            await self.sales.update_orders_in(conn, old)
            products_info = await self._items(conn, orders, txn_ids, [txn_ids[d] for d in before])
            await self._customer_totals(conn, orders, who, before, now)
            signups = [cid for d in orders if d.rewards_signup and (cid := who[d.id][0]) is not None]
            await self.customers.enrol_members_in(conn, signups, now)
            await self._points(conn, orders, who, staff_map, now)
            await self.events.finish_many_in(conn, [r for r, _, _ in run], now)
            done = []
            for (_, envelope, d), v in zip(run, values, strict=True):
                txn = Transaction(
                    id=txn_ids[d.id], external_id=d.id, store_id=v["store_id"], customer_id=v["customer_id"],
                    budtender_person_id=v["budtender_person_id"], occurred_at=d.occurred_at, total=d.total,
                    status=TransactionStatus(d.status), rewards_signup=d.rewards_signup,
                    customer_external_id=d.customer_id, budtender_external_id=d.budtender_id,
                    items=[TransactionItem(i.sku, i.name, i.category, i.quantity, i.unit_price, i.line_total,
                                           *products_info.get(i.sku or "", (None, None, False))) for i in d.items],
                )
                prev = before.get(d.id)
                done.append(OrderProcessed(txn, TransactionStatus(prev.status) if prev is not None else None,
                                           envelope.type, now))
            return done

        return await self.db.run(unit)

    async def _customers(self, conn: AsyncConnection, orders: list[OrderData], stores: dict[str, int],
                         now: datetime) -> dict[str, tuple[int | None, bool]]:
        """order id → (customer id, is a rewards member); a stub record is made for an unknown POS customer."""
        exts = {d.customer_id for d in orders if d.customer_id}
        phones = {p for p in (phone_or_none(d.customer_phone) for d in orders) if p}
        by_ext, by_phone = await self.customers.members_in(conn, exts, phones)
        out: dict[str, tuple[int | None, bool]] = {}
        for d in orders:
            phone = phone_or_none(d.customer_phone)
            found = (by_ext.get(d.customer_id) if d.customer_id else None) or (by_phone.get(phone) if phone else None)
            if found is None and (d.customer_id or phone):
                first, _, last = (d.customer_name or "").partition(" ")
                new_id = await self.customers.add_in(
                    conn, external_id=d.customer_id, phone=phone,
                    store_id=stores.get(d.store or self.default_store or ""),
                    first_name=first or None, last_name=last or None, rewards_member=d.rewards_signup,
                    signup_date=now.date() if d.rewards_signup else None, favourite_categories=[],
                    attributes={"source": "pos"}, created_at=now, updated_at=now)
                found = (new_id, d.rewards_signup)
                if d.customer_id:
                    by_ext[d.customer_id] = found
                if phone:
                    by_phone[phone] = found
            if found is None:
                out[d.id] = (None, False)
            else:
                out[d.id] = (found[0], found[1] or d.rewards_signup)
        return out

    async def _items(self, conn: AsyncConnection, orders: list[OrderData], txn_ids: dict[str, int],
                     replaced: list[int]) -> dict[str, tuple[int, int, bool]]:
        """Replace the orders' items; returns sku → (product id, price tier, house brand)."""
        known = await self.catalog.tiers_in(conn, {i.sku for d in orders for i in d.items if i.sku})
        rows_out = [
            {"external_id": item.id or f"{d.id}:{n}", "transaction_id": txn_ids[d.id],
             "product_id": known.get(item.sku or "", (None,))[0], "product_external_id": item.sku,
             "name": item.name, "category": item.category, "quantity": item.quantity,
             "unit_price": item.unit_price, "line_total": item.line_total}
            for d in orders for n, item in enumerate(d.items, 1)
        ]
        await self.sales.replace_order_items_in(conn, replaced, rows_out)
        return known

    async def _customer_totals(self, conn: AsyncConnection, orders: list[OrderData],
                               who: dict[str, tuple[int | None, bool]], before: dict[str, Any],
                               now: datetime) -> None:
        deltas: dict[int, list[Any]] = {}
        for d in orders:
            cid = who[d.id][0]
            if cid is None:
                continue
            prev = before.get(d.id)
            was = prev is not None and prev.status in COUNTING
            counting = d.status in COUNTING
            old = Decimal(prev.total) if was else Decimal("0")
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

    async def _points(self, conn: AsyncConnection, orders: list[OrderData], who: dict[str, tuple[int | None, bool]],
                      staff_map: dict[str, int | None], now: datetime) -> None:
        counting = [d for d in orders if d.status in COUNTING]
        reversed_ = [d for d in orders if d.status not in COUNTING]
        if counting:
            awards: list[LedgerEntry] = []
            stale: list[str] = []
            for d in counting:
                cid, member = who[d.id]
                entries = order_entries(d.id, d.total, customer_id=cid, customer_earns=member,
                                        budtender_person_id=staff_map.get(d.budtender_id or ""), rules=self.rules,
                                        now=now)
                awards += entries
                stale += sorted(set(award_keys(d.id)) - {e.key for e in entries})
            await self.loyalty.remove_in(conn, [k for d in counting for k in refund_keys(d.id)] + stale)
            await self.loyalty.add_in(conn, awards, replace=True)
        if reversed_:
            keys = [k for d in reversed_ for k in award_keys(d.id)]
            existing = await self.loyalty.deltas_in(conn, keys)
            awarded = []
            for d in reversed_:
                c_key, b_key = award_keys(d.id)
                if c_key in existing:
                    awarded.append(LedgerEntry(c_key, existing[c_key], "purchase", now, customer_id=who[d.id][0],
                                               order_external_id=d.id))
                if b_key in existing:
                    awarded.append(LedgerEntry(b_key, existing[b_key], "purchase", now,
                                               person_id=staff_map.get(d.budtender_id or ""), order_external_id=d.id))
            await self.loyalty.add_in(conn, reversal_entries(awarded, now))

    async def apply_customer(self, row_id: int, data: CustomerData) -> None:
        now = self.clock.now()

        async def unit(conn: AsyncConnection) -> None:
            code = data.store or self.default_store
            store_id = (await self._store_ids(conn, {code}, now)).get(code) if code else None
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
