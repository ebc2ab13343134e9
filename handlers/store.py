"""The store plugin: stores from config, POS webhooks, loyalty, CRM imports and demo data.

`services(app)` returns the one `StoreServices` of this app (created on first use), so the
customer concierge and budtender coaching plugins share settings, repositories and the POS ingest
whatever order they load in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from bot.plugins import Plugin
from bot.scheduler import JobRun
from coaching.pos import MAX_BODY, SIGNATURE_HEADER, TIMESTAMP_HEADER, PayloadError, signature_ok, timestamp_ok
from handlers import store_import, store_seed
from handlers.store_services import StoreServices, services
from storage.customers import Store

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
        try:
            row_id, envelope = await svc.ingest.accept(body)
        except PayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, "event_id": envelope.id, "duplicate": row_id is None})

    return pos_webhook


# -- lifecycle ---------------------------------------------------------------------------------


def setup(app: App) -> None:
    svc = services(app)
    app.hooks.title.implement(lambda: svc.settings.store_name or svc.default_store.name, owner="store")
    app.http.route("POST", "/webhooks/pos", webhook_handler(app, svc))

    async def start(app: App) -> None:
        now = app.clock.now()
        svc.store_ids = await svc.customers.ensure_stores(
            [Store(None, s.code, s.name, s.timezone, s.address, s.phone, s.hours) for s in svc.stores], now
        )
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

    store_import.setup(app)
    app.on_seed_demo(store_seed.seed)


plugin = Plugin("store", setup, description="stores, the POS webhook, loyalty, CRM imports and demo data")

__all__ = ["StoreServices", "plugin", "services", "setup"]
