"""Incremental Blaze sync: employees, products, members, then transactions, each from its cursor.

A window is "modified since the cursor, up to the moment this run started". After each page is
committed the cursor moves: when the page came oldest first, to the last row's `modified` (and the
number of rows at that very millisecond already read); otherwise by offset within the same window.
A run stopped by a crash, a rate limit that outlasts the attempts or an expired key resumes where
it stopped, re-reading at most one page.

Transactions become the same POS events the webhook stores (`pos_events`, event id
`blaze:<transaction id>:<modified>`) and go through the same ingest (`PosIngest.apply_stored`):
orders upserted by the POS order id (the Blaze transaction id), points by the loyalty rules under
their `order:<id>:…` keys, and one `order.created` event per order id — a webhook and a sync
that both see an order make one order, one award and one event. Only recent orders
(`blaze_live_hours`) run the after-order coaching hooks; an initial sync of history does not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from bot.clock import Clock
from bot.phones import normalize_phone
from coaching.pos import Envelope, OrderData, PayloadError
from coaching.sources.blaze import ENTITIES, BlazeAuthError, BlazeClient, BlazeError, BlazeSettings
from coaching.sources.pos import OrderProcessed, PosIngest
from storage.blaze import BlazeRepo
from storage.db import Database
from storage.people import PeopleRepo
from storage.store_import import ProductRow, StaffRow, StoreImportWriter

log = logging.getLogger(__name__)

STATUSES = {"completed": "completed", "refundwithinventory": "refunded", "refundwithoutinventory": "refunded",
            "refunded": "refunded", "canceled": "voided", "cancelled": "voided", "voided": "voided"}
"""Blaze transaction statuses that are sales (or their reversal); queued/in-progress carts are skipped."""


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _phone(value: Any) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(str(value))
    except ValueError:
        return None


def _name(*parts: Any) -> str:
    return " ".join(str(p).strip() for p in parts if p and str(p).strip())


def order_event(t: dict[str, Any], store: str | None) -> tuple[str, str, str, dict[str, Any]] | None:
    """A Blaze transaction as a Huddle POS event (event id, type, JSON body, envelope), or None when it is not
    a sale (a cart still open) or cannot be read."""
    status = STATUSES.get(str(t.get("status") or "").replace("_", "").lower())
    tid, modified = t.get("id"), t.get("modified")
    when = from_ms(t.get("processedTime")) or from_ms(t.get("created"))
    if status is None or not tid or when is None:
        return None
    cart = t.get("cart") if isinstance(t.get("cart"), dict) else {}
    total = _money(cart.get("total"))
    if total is None:
        return None
    items = []
    for n, item in enumerate(cart.get("items") or [], 1):
        if not isinstance(item, dict):
            continue
        qty = max(1, round(float(item.get("quantity") or 1)))
        line = _money(item.get("finalPrice")) or Decimal("0")
        unit = _money(item.get("unitPrice")) or (line / qty).quantize(Decimal("0.01"))
        items.append({"id": str(item.get("id") or f"{tid}:{n}"), "sku": item.get("productId") or None,
                      "name": str(item.get("productName") or item.get("name") or "")[:300], "category": "",
                      "quantity": qty, "unit_price": str(unit), "total": str(line)})
    if status != "completed" and total > 0:
        total = -total
    data = {"id": str(tid), "store": store, "customer_id": t.get("memberId") or None,
            "budtender_id": t.get("sellerId") or None, "occurred_at": when.isoformat(), "total": str(total),
            "discount": str(_money(cart.get("totalDiscount")) or Decimal("0")), "status": status, "items": items}
    kind = "order.created" if t.get("created") == modified else "order.updated"
    event_id = f"blaze:{tid}:{modified}"
    envelope = {"id": event_id, "type": kind, "created_at": datetime.now(UTC).isoformat(), "data": data}
    return event_id, kind, json.dumps(envelope), envelope


def _parsed(envelope: dict[str, Any]) -> tuple[Envelope, OrderData]:
    """The event as `parse_event` would read its JSON (same models, same checks), without the round trip."""
    try:
        return Envelope.model_validate(envelope), OrderData.model_validate(envelope["data"])
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PayloadError(f"data.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


@dataclass(slots=True)
class EntityReport:
    entity: str
    rows: int = 0
    calls: int = 0
    pages: int = 0
    applied: int = 0


@dataclass(slots=True)
class SyncReport:
    entities: list[EntityReport] = field(default_factory=list)
    error: str | None = None

    @property
    def calls(self) -> int:
        return sum(e.calls for e in self.entities)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entities)

    def summary(self) -> str:
        lines = [f"{e.entity:<13} {e.rows:>8} rows {e.calls:>6} calls" for e in self.entities]
        if self.error:
            lines.append(f"stopped: {self.error}")
        return "\n".join(lines)


class BlazeSync:
    def __init__(self, db: Database, people: PeopleRepo, clock: Clock, ingest: PosIngest, settings: BlazeSettings,
                 client: BlazeClient, *, stores: Callable[[], dict[str, int]], default_store: str | None) -> None:
        self.db = db
        self.clock = clock
        self.ingest = ingest
        self.settings = settings
        self.client = client
        self.repo = BlazeRepo(db)
        self.writer = StoreImportWriter(db, people)
        self.stores = stores
        self.store = settings.blaze_store or default_store
        self.house = {b.casefold() for b in settings.blaze_house_brands}

    async def run(self, *, since: datetime | None = None, entities: Sequence[str] = ENTITIES,
                  progress: Callable[[str, int, int | None], None] | None = None) -> SyncReport:
        """Sync each entity from its cursor (or from `since`, a fresh window); stops at the first error
        that trying again will not fix, with what was done so far committed."""
        report = SyncReport()
        for entity in entities:
            part = EntityReport(entity)
            report.entities.append(part)
            try:
                await self._entity(entity, part, since, progress)
            except BlazeAuthError as exc:
                report.error = str(exc)
                await self._note_error(entity, str(exc))
                log.error("blaze sync stopped: %s", exc)
                break
            except BlazeError as exc:
                report.error = str(exc)
                await self._note_error(entity, str(exc))
                log.error("blaze sync of %s stopped: %s", entity, exc)
                break
        return report

    async def _note_error(self, entity: str, error: str) -> None:
        cursor = await self.repo.cursor(entity)
        cursor.last_error = error
        await self.repo.save(cursor, self.clock.now())

    async def _entity(self, entity: str, part: EntityReport, since: datetime | None,
                      progress: Callable[[str, int, int | None], None] | None) -> None:
        cursor = await self.repo.cursor(entity)
        now = self.clock.now()
        if since is not None:
            cursor.modified_ms, cursor.window_end_ms, cursor.skip = ms(since), None, 0
        if cursor.window_end_ms is None:  # a new window; otherwise resume the one a crash left
            cursor.window_end_ms, cursor.skip = ms(now), 0
            await self.repo.save(cursor, now)
        limit = self.settings.blaze_page_size
        dated = entity != "employees"
        while True:
            page = await self.client.page(entity, start_ms=cursor.modified_ms, end_ms=cursor.window_end_ms,
                                          skip=cursor.skip, limit=limit)
            part.applied += await self._apply(entity, page.values)
            part.rows += len(page.values)
            part.calls += page.calls
            part.pages += 1
            cursor.rows += len(page.values)
            cursor.calls += page.calls
            cursor.last_error = None
            if progress is not None:
                progress(entity, len(page.values), page.total)
            if page.fetched < limit:  # the window is read: next run starts where it ended
                cursor.modified_ms, cursor.window_end_ms, cursor.skip = cursor.window_end_ms, None, 0
                await self.repo.save(cursor, self.clock.now())
                return
            stamps = [int(v.get("modified") or 0) for v in page.values]
            if dated and stamps == sorted(stamps) and stamps[0] < stamps[-1] and len(stamps) == page.fetched:
                # oldest first: move the start to the last row read (a row modified meanwhile leaves the
                # window at its far end and shifts nothing before the cursor)
                last = stamps[-1]
                at_last = stamps.count(last)
                if last == cursor.modified_ms:
                    cursor.skip += at_last
                else:
                    cursor.modified_ms, cursor.skip = last, at_last
            else:  # no date filter, not oldest first (or one millisecond): plain offsets in the same window
                if dated:
                    log.warning("blaze %s page not sorted by modified; paging by offset", entity)
                cursor.skip += page.fetched
            await self.repo.save(cursor, self.clock.now())

    async def _apply(self, entity: str, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        now = self.clock.now()
        if entity == "employees":
            staff = [StaffRow(str(r["id"]), _name(r.get("firstName"), r.get("lastName")) or str(r["id"]),
                              _phone(r.get("phoneNumber") or r.get("phone")), active=not r.get("deleted"),
                              store=self.store) for r in rows if r.get("id")]
            await self.writer.write_staff(staff, self.stores(), role="budtender", channel="sms", now=now)
            return len(staff)
        if entity == "products":
            products = []
            for r in rows:
                if not r.get("id") or not r.get("name"):
                    continue
                category = r.get("category") if isinstance(r.get("category"), dict) else {}
                brand = r.get("brand") if isinstance(r.get("brand"), dict) else {}
                brand_name = r.get("brandName") or brand.get("name")
                selling = not r.get("deleted") and r.get("active", True) is not False
                products.append(ProductRow(
                    str(r["id"]), str(r["name"])[:300], str(category.get("name") or r.get("categoryName") or "")[:100],
                    brand_name, bool(brand_name and str(brand_name).casefold() in self.house),
                    price=_money(r.get("unitPrice")), in_stock=selling, store=self.store))
            await self.writer.write_products(products, self.stores(), now)
            return len(products)
        if entity == "members":
            store_id = self.stores().get(self.store or "")
            members = [{
                "external_id": str(r["id"]), "first_name": (r.get("firstName") or None),
                "last_name": (r.get("lastName") or None), "phone": _phone(r.get("primaryPhone") or r.get("phone")),
                "email": r.get("email") or None, "signup_date": (from_ms(r.get("created")) or now).date(),
                "rewards_member": True, "store_id": store_id, "favourite_categories": [],
                "attributes": {"source": "blaze"}, "created_at": now, "updated_at": now,
            } for r in rows if r.get("id") and not r.get("deleted")]
            await self.repo.upsert_members(members)
            return len(members)
        return await self._transactions(rows)

    async def _transactions(self, rows: list[dict[str, Any]]) -> int:
        now = self.clock.now()
        events = [e for e in (order_event(r, self.store) for r in rows) if e is not None]
        stored = await self.repo.store_events([e[:3] for e in events], now)
        run: dict[str, tuple[int, Envelope, OrderData]] = {}
        for event_id, _kind, _body, raw in events:
            row_id = stored.get(event_id)
            if row_id is None:  # seen before: applied then (or left to the ingest's retry sweep)
                continue
            try:
                envelope, data = _parsed(raw)
            except PayloadError as exc:
                await self.ingest.events.fail(row_id, str(exc), now, final=True)
                continue
            older = run.get(data.id)
            if older is not None:  # one order once per run: its newest version (rows come oldest first)
                await self.ingest.events.fail(older[0], "superseded by a newer version in the same page", now,
                                              final=True)
            run[data.id] = (row_id, envelope, data)
        live_since = now - timedelta(hours=self.settings.blaze_live_hours)

        def live(done: OrderProcessed) -> bool:
            return done.transaction.occurred_at >= live_since

        return await self.ingest.apply_stored(list(run.values()), live)


__all__ = ["BlazeSync", "EntityReport", "SyncReport", "order_event"]
