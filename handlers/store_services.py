"""The store's shared services: settings, stores, repositories and the POS ingest of one app.

The store plugin builds them once in its `setup` and provides them as the dependency `store`;
plugins that require "store" (customers, budtenders) take them as an injected `store` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot import phones
from bot.model import Address
from coaching.sources.pos import PosIngest, order_hooks
from coaching.store_config import DEMO_STORE, UNSET_STORE_CODE, StoreConfig, StoreSettings
from storage.catalog import CatalogRepo, Product
from storage.customers import CustomerRepo, Store
from storage.db import Database
from storage.loyalty import LoyaltyRepo
from storage.people import PeopleRepo
from storage.sales import SalesRepo

if TYPE_CHECKING:
    from bot.app import App
    from bot.outbox import Outbox


@dataclass
class StoreServices:
    db: Database
    people: PeopleRepo
    outbox: Outbox
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


def resolve_stores(app: App, settings: StoreSettings) -> tuple[list[StoreConfig], bool]:
    """The stores of this deployment, each with its timezone; and whether any was really configured.

    `[[stores]]` when present. Otherwise the demo store in demo mode, and in a real deployment a
    stand-in that carries only HUDDLE_STORE_NAME: its hours and address are unknown, never the
    demo's. A store without a timezone gets HUDDLE_DEFAULT_TIMEZONE.
    """
    tz = app.settings.default_timezone
    configured = app.config.section("stores", list[StoreConfig], default=[])
    if configured:
        return [s if s.timezone else s.model_copy(update={"timezone": tz}) for s in configured], True
    if app.settings.demo:
        return [DEMO_STORE.model_copy(update={"name": settings.store_name or DEMO_STORE.name})], True
    return [StoreConfig(code=UNSET_STORE_CODE, name=settings.store_name or "our store", timezone=tz)], False


def services(app: App) -> StoreServices:
    found = app.deps.get("store")
    if isinstance(found, StoreServices):
        return found
    settings = _settings(app)
    stores, configured = resolve_stores(app, settings)
    region = stores[0].region()
    if region:
        phones.set_default_region(region)
    svc = StoreServices(
        db=app.db,
        people=app.people,
        outbox=app.outbox,
        configured=configured,
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


