"""`GET /metrics` in the Prometheus text format, through prometheus_client.

Counters and histograms listen to the kernel's observer hooks (`bot/observe.py`); gauges (queue
depths, oldest unsent message, each channel's up/down and numeric health figures such as a radio's
signal) are read fresh at each scrape. prometheus_client is imported by `install`, which the HTTP
server calls just before it starts serving, so no other command pays for it. Each app has its own
registry (tests run several apps in one process).

Scrapes need the admin token, the separate `HUDDLE_METRICS_TOKEN`, or an admin session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.observe import Observers
from channels.base import health_of
from storage.db import Database

if TYPE_CHECKING:
    from aiohttp import web

    from bot.http import HttpServer

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, observers: Observers, db: Database, channels: Mapping[str, object],
                 now: Callable[[], datetime]) -> None:
        self.observers = observers
        self.db = db
        self.channels = channels
        self.now = now
        self.registry: Any = None

    @property
    def installed(self) -> bool:
        return self.registry is not None

    def install(self) -> None:
        """Create the registry and subscribe to the observers (once)."""
        if self.registry is not None:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry(auto_describe=True)
        inbound = Counter("huddle_inbound_messages", "Messages received, by channel and outcome (stored, duplicate)",
                          ["channel", "outcome"], registry=r)
        handled = Counter("huddle_handled_messages", "Messages through the pipeline, by channel and inbox outcome",
                          ["channel", "outcome"], registry=r)
        handler_seconds = Histogram("huddle_handler_seconds", "Time from a stored message to its handled row",
                                    ["channel"], buckets=LATENCY_BUCKETS, registry=r)
        outbound = Counter("huddle_outbound_messages", "Send attempts, by channel and outcome "
                           "(sent, delivered, retry, failed, refused)", ["channel", "outcome"], registry=r)
        send_seconds = Histogram("huddle_send_seconds", "Duration of one provider send call", ["channel"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        retries = Counter("huddle_send_retries", "Sends to be retried, by channel and why (rate_limited, error)",
                          ["channel", "reason"], registry=r)
        jobs = Counter("huddle_job_runs", "Scheduled job runs, by job and outcome (done, failed, skipped)",
                       ["job", "outcome"], registry=r)
        job_seconds = Histogram("huddle_job_seconds", "Duration of scheduled job runs", ["job"],
                                buckets=(0.1, 1, 5, 30, 120, 600), registry=r)
        self.outbox_depth = Gauge("huddle_outbox_messages", "Outbox rows by channel and status",
                                  ["channel", "status"], registry=r)
        self.inbox_depth = Gauge("huddle_inbox_messages", "Inbox rows by channel and status",
                                 ["channel", "status"], registry=r)
        self.oldest = Gauge("huddle_outbox_oldest_unsent_seconds", "Age of the oldest queued or sending message",
                            ["channel"], registry=r)
        self.held = Gauge("huddle_held_messages", "Received messages kept raw because they could not be read",
                          registry=r)
        self.up = Gauge("huddle_channel_up", "1 when the channel can receive and send now", ["channel"], registry=r)
        self.signal = Gauge("huddle_channel_signal_dbm", "Radio signal a channel reports (dBm)", ["channel"],
                            registry=r)
        self.job_failures = Gauge("huddle_job_failed_runs", "Failed runs recorded per job (all processes)", ["job"],
                                  registry=r)

        def on_handled(channel: str, outcome: str, seconds: float) -> None:
            handled.labels(channel, outcome).inc()
            handler_seconds.labels(channel).observe(seconds)

        def on_send(channel: str, outcome: str, seconds: float) -> None:
            outbound.labels(channel, outcome).inc()
            if outcome != "refused":
                send_seconds.labels(channel).observe(seconds)

        def on_job(name: str, outcome: str, seconds: float) -> None:
            jobs.labels(name, outcome).inc()
            if outcome != "skipped":
                job_seconds.labels(name).observe(seconds)

        self.observers.subscribe("inbound", lambda channel, outcome: inbound.labels(channel, outcome).inc())
        self.observers.subscribe("handled", on_handled)
        self.observers.subscribe("send", on_send)
        self.observers.subscribe(
            "retry", lambda channel, limited: retries.labels(channel, "rate_limited" if limited else "error").inc())
        self.observers.subscribe("job", on_job)

    async def refresh(self) -> None:
        """Read the gauges from the database and the channels."""
        from storage.ops import OpsRepo  # here, not at import: every command imports the kernel

        ops = OpsRepo(self.db)
        depths = await ops.depths()
        self.outbox_depth.clear()
        for (channel, status), n in depths.outbox.items():
            self.outbox_depth.labels(channel, status).set(n)
        self.inbox_depth.clear()
        for (channel, status), n in depths.inbox.items():
            self.inbox_depth.labels(channel, status).set(n)
        now = self.now()
        self.oldest.clear()
        for channel in {c for c, _ in depths.outbox}:
            since = depths.oldest_unsent.get(channel)
            self.oldest.labels(channel).set(max(0.0, (now - since).total_seconds()) if since else 0.0)
        self.held.set(depths.held)
        for name, count in (await ops.job_failures_total()).items():
            self.job_failures.labels(name).set(count)
        self.signal.clear()
        for name, channel in sorted(self.channels.items()):
            try:
                health = await health_of(channel)
            except Exception:
                log.exception("health probe failed channel=%s", name)
                self.up.labels(name).set(0)
                continue
            self.up.labels(name).set(1 if health.up else 0)
            dbm = health.detail.get("signal_dbm")
            if isinstance(dbm, int | float) and not isinstance(dbm, bool):
                self.signal.labels(name).set(dbm)

    async def text(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.install()
        await self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metrics_route(http: HttpServer, metrics: Metrics, scrape_token: str | None) -> Callable[..., Any]:
    """The `/metrics` handler: admin token, scrape token or admin session, else 401."""

    async def serve(request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        if await http.admin_check(request, scrape_token) is None:
            return web.json_response({"error": "unauthorized: send Authorization: Bearer <token>"}, status=401)
        body, content_type = await metrics.text()
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return serve


__all__ = ["Metrics", "metrics_route"]
