"""The store plugin: stores from config, POS webhooks, loyalty, CRM imports and demo data.

`services(app)` returns the one `StoreServices` of this app (created on first use), so the
customer concierge and budtender coaching plugins share settings, repositories and the POS ingest
whatever order they load in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from bot.scheduler import JobRun
from coaching.pos import MAX_BODY, SIGNATURE_HEADER, TIMESTAMP_HEADER, PayloadError, signature_ok, timestamp_ok
from coaching.sources.pos import PosIngest, order_hooks
from coaching.store_config import DEMO_STORE, StoreConfig, StoreSettings
from storage.catalog import CatalogRepo, Product
from storage.customers import CustomerRepo, Store
from storage.loyalty import LoyaltyRepo
from storage.sales import SalesRepo

log = logging.getLogger(__name__)


@dataclass
class StoreServices:
    settings: StoreSettings
    stores: list[StoreConfig]
    customers: CustomerRepo
    catalog: CatalogRepo
    sales: SalesRepo
    loyalty: LoyaltyRepo
    ingest: PosIngest
    store_ids: dict[str, int] = field(default_factory=dict)
    _stock: dict[int | None, tuple[datetime, list[Product]]] = field(default_factory=dict)

    async def in_stock(self, store_id: int | None, now: datetime, ttl: float = 60.0) -> list[Product]:
        """In-stock products of a store, cached for `ttl` seconds (the same for every customer)."""
        cached = self._stock.get(store_id)
        if cached is not None and (now - cached[0]).total_seconds() < ttl:
            return cached[1]
        found = await self.catalog.in_stock(store_id, limit=40)
        self._stock[store_id] = (now, found)
        return found

    async def ensure_configured(self, now: datetime) -> dict[str, int]:
        """The `[[stores]]` of the config in the database (at start, and before a CLI import); code → id."""
        self.store_ids = await self.customers.ensure_stores(
            [Store(None, s.code, s.name, s.timezone, s.address, s.phone, s.hours) for s in self.stores], now
        )
        return self.store_ids

    @property
    def default_store(self) -> StoreConfig:
        return self.stores[0]

    def store_for(self, store_id: int | None) -> StoreConfig:
        for code, sid in self.store_ids.items():
            if sid == store_id:
                return next((s for s in self.stores if s.code == code), self.default_store)
        return self.default_store


def _settings(app: App) -> StoreSettings:
    use = getattr(app, "use_settings", None)  # the core's registry (secrets redacted from logs) when present
    return use(StoreSettings) if use else StoreSettings()


def services(app: App) -> StoreServices:
    found = app.deps.get("store")
    if isinstance(found, StoreServices):
        return found
    settings = _settings(app)
    stores = app.config.section("stores", list[StoreConfig], default=[]) or [DEMO_STORE]
    svc = StoreServices(
        settings=settings,
        stores=stores,
        customers=CustomerRepo(app.db),
        catalog=CatalogRepo(app.db),
        sales=SalesRepo(app.db),
        loyalty=LoyaltyRepo(app.db),
        ingest=PosIngest(app.db, app.clock, settings.loyalty, order_hooks(app), default_store=stores[0].code),
    )
    app.provide("store", svc)
    return svc


# -- POS webhooks ------------------------------------------------------------------------------


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_handler(app: App, svc: StoreServices) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def pos_webhook(request: web.Request) -> web.Response:
        secret = svc.settings.pos_webhook_secret
        if secret is None:
            return web.json_response({"error": "POS webhooks are off: set HUDDLE_POS_WEBHOOK_SECRET"}, status=503)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "body over 1 MB"}, status=413)
        body = await _read_limited(request, MAX_BODY)
        if body is None:
            return web.json_response({"error": "body over 1 MB"}, status=413)
        if not signature_ok(secret.get_secret_value(), body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("POS webhook refused: bad or missing signature remote=%s", request.remote)
            return web.json_response({"error": f"bad or missing {SIGNATURE_HEADER}"}, status=401)
        if not timestamp_ok(request.headers.get(TIMESTAMP_HEADER), app.clock.now(), svc.settings.pos_webhook_window):
            return web.json_response({"error": f"missing or stale {TIMESTAMP_HEADER}"}, status=401)
        warnings: list[str] = []
        try:
            row_id, envelope = await svc.ingest.accept(body, warnings)
        except PayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        answer: dict[str, object] = {"ok": True, "event_id": envelope.id, "duplicate": row_id is None}
        if warnings:
            answer["warnings"] = warnings
        return web.json_response(answer)

    return pos_webhook


# -- lifecycle ---------------------------------------------------------------------------------


def setup(app: App) -> None:
    svc = services(app)
    app.http.route("POST", "/webhooks/pos", webhook_handler(app, svc))

    async def start(app: App) -> None:
        await svc.ensure_configured(app.clock.now())
        retried = await svc.ingest.retry_pending()
        if retried:
            log.info("POS events left over from the last run processed count=%d", retried)

    async def stop(_app: App) -> None:
        await svc.ingest.stop()

    async def sweep(_run: JobRun) -> None:
        await svc.ingest.retry_pending()

    app.on_startup(start)
    app.on_shutdown(stop)
    app.scheduler.add("pos_retry", IntervalTrigger(minutes=5), sweep)

    from handlers import store_import, store_seed

    store_import.setup(app)
    app.on_seed_demo(store_seed.seed)


__all__ = ["StoreServices", "services", "setup"]
