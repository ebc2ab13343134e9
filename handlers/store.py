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

from bot import phones
from bot.app import App
from bot.model import Address
from bot.scheduler import JobRun
from coaching.pos import MAX_BODY, SIGNATURE_HEADER, TIMESTAMP_HEADER, PayloadError, check_signature
from coaching.sources.pos import PosIngest, order_hooks
from coaching.store_config import DEMO_STORE, UNSET_STORE_CODE, StoreConfig, StoreSettings
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
    relays_in_flight: dict[int, tuple[Address, str | None, str]] = field(default_factory=dict)
    """Staff replies still being tried after `reply N` answered: outbox id → (staff, thread, who)."""
    configured: bool = True
    """False when neither `[[stores]]` nor the demo names a store: HOURS/ADDRESS say they are not set."""
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


def resolve_stores(app: App) -> tuple[list[StoreConfig], bool]:
    """The stores of this deployment, each with its timezone; and whether any was really configured.

    `[[stores]]` when present. Otherwise the demo store in demo mode, and in a real deployment a
    stand-in that carries only HUDDLE_STORE_NAME: its hours and address are unknown, never the
    demo's. A store without a timezone gets HUDDLE_DEFAULT_TIMEZONE.
    """
    core = app.settings
    tz = core.default_timezone
    configured = app.config.section("stores", list[StoreConfig], default=[])
    if configured:
        return [s if s.timezone else s.model_copy(update={"timezone": tz}) for s in configured], True
    default_name = type(core).model_fields["store_name"].default
    if core.demo:
        name = core.store_name if core.store_name != default_name else DEMO_STORE.name
        return [DEMO_STORE.model_copy(update={"name": name})], True
    return [StoreConfig(code=UNSET_STORE_CODE, name=core.store_name, timezone=tz)], False


def services(app: App) -> StoreServices:
    found = app.deps.get("store")
    if isinstance(found, StoreServices):
        return found
    settings = _settings(app)
    stores, configured = resolve_stores(app)
    # One store name everywhere: STOP/START confirmations, HELP, the console and the coaching prompts.
    app.settings.store_name = stores[0].name
    region = stores[0].region()
    if region:
        phones.set_default_region(region)
    svc = StoreServices(
        settings=settings,
        stores=stores,
        configured=configured,
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
        secrets = svc.settings.pos_secrets()
        if not secrets:
            return web.json_response({"error": "POS webhooks are off: set HUDDLE_POS_WEBHOOK_SECRET"}, status=503)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "body over 1 MB"}, status=413)
        body = await _read_limited(request, MAX_BODY)
        if body is None:
            return web.json_response({"error": "body over 1 MB"}, status=413)
        refused = check_signature(
            secrets, body, request.headers.get(SIGNATURE_HEADER), app.clock.now(), svc.settings.pos_webhook_window,
            legacy=svc.settings.pos_webhook_legacy_signature, legacy_timestamp=request.headers.get(TIMESTAMP_HEADER),
        )
        if refused is not None:
            log.warning("POS webhook refused: %s remote=%s", refused, request.remote)
            return web.json_response({"error": refused}, status=401)
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
        if not svc.configured:
            log.warning(
                "no [[stores]] in the config and HUDDLE_DEMO=false: customers are told the store's hours and "
                "address are not set, HELP names %r, quiet hours use HUDDLE_DEFAULT_TIMEZONE=%s. Add a [[stores]] "
                "entry (see huddle.example.toml).", svc.default_store.name, svc.default_store.timezone)
        await svc.ensure_configured(app.clock.now())
        retried = await svc.ingest.retry_pending()
        if retried:
            log.info("POS events left over from the last run processed count=%d", retried)

    async def stop(_app: App) -> None:
        await svc.ingest.stop()

    async def sweep(_run: JobRun) -> None:
        await svc.ingest.retry_pending()

    async def timezone_for(address: Address) -> str | None:
        """A new person's zone: the store of their CRM record (by phone), else the first store's."""
        if address.channel == "sms":
            store_id = await svc.customers.store_id_for_phone(address.id)
            if store_id is not None:
                return svc.store_for(store_id).timezone
        return svc.default_store.timezone

    app.directory.timezone_for = timezone_for
    app.on_startup(start)
    app.on_shutdown(stop)
    app.scheduler.add("pos_retry", IntervalTrigger(minutes=5), sweep)

    from handlers import store_import, store_seed

    store_import.setup(app)
    app.on_seed_demo(store_seed.seed)


__all__ = ["StoreServices", "services", "setup"]
