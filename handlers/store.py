"""The store plugin: stores from config, POS webhooks, loyalty, CRM imports and demo data.

`services(app)` returns the one `StoreServices` of this app (created on first use), so the
customer concierge and budtender coaching plugins share settings, repositories and the POS ingest
whatever order they load in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from bot.lazy import lazy_module
from bot.model import Address
from bot.plugins import Plugin
from bot.scheduler import JobRun
from coaching.pos import MAX_BODY, SIGNATURE_HEADER, TIMESTAMP_HEADER, PayloadError, check_signature
from handlers import store_import
from handlers.store_services import StoreServices, services

if TYPE_CHECKING:
    from aiohttp import web
else:
    web = lazy_module("aiohttp.web")

log = logging.getLogger(__name__)


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
    app.hooks.title.implement(lambda: svc.default_store.name, owner="store")
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

    app.hooks.new_person_timezone.implement(timezone_for, owner="store")
    app.on_startup(start)
    app.on_shutdown(stop)
    app.scheduler.add("pos_retry", IntervalTrigger(minutes=5), sweep)

    store_import.setup(app)
    app.on_seed_demo(_seed)


async def _seed(app: App) -> None:
    """Demo data, imported only when an empty database is seeded."""
    from handlers import store_seed

    await store_seed.seed(app)


plugin = Plugin("store", setup, description="stores, the POS webhook, loyalty, CRM imports and demo data")

__all__ = ["StoreServices", "plugin", "services", "setup"]
