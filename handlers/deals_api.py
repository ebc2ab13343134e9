"""Admin HTTP API for deal coaching, on the shared server behind the admin bearer token.

    POST /api/deals/{id}/analyze?notify=true       202 {job_id}  analyse one deal (and message its manager)
    POST /api/managers/{id}/analyze-deals          202 {job_id}  summary + details for one manager
    POST /api/deals/analyze-all                    202 {job_id}  the same for every manager with deals
    POST /api/deals/check-stale?days_threshold=N   202 {job_id}  alerts to managers with stale deals
    POST /api/monitoring/start?interval_hours=N    200  periodic monitoring for every sales manager
    POST /api/monitoring/stop                      200
    GET  /api/monitoring/status                    200
    GET  /api/deals/jobs/{job_id}                  200  state and result of queued work
    GET  /api/deals/openapi.json                   the OpenAPI description (no token needed)

Queued work runs in the background; its messages carry keys derived from the job id, so each job
sends at most once. Out-of-range values answer 400 with the reason; unknown ids 404.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from bot.app import App
from coaching.deal_desk import DealDesk, RunReport
from coaching.roles import Role
from handlers.sales_managers import MAX_HOURS, MAX_STALE_DAYS, MIN_HOURS, MonitorControl

log = logging.getLogger(__name__)

MAX_JOBS_KEPT = 500


class BadRequest(Exception):
    pass


def _int(request: web.Request, name: str, low: int, high: int, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"{name} is required ({low}–{high})")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    low = raw.lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise BadRequest(f"{name} must be true or false, got {raw[:40]!r}")


def _path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a positive integer")
    return int(raw)


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class DealsApi:
    def __init__(self, app: App, desk: DealDesk, control: MonitorControl) -> None:
        self.app = app
        self.desk = desk
        self.control = control
        self.jobs: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- queued work ---------------------------------------------------------------------------

    def queue(self, kind: str, work: Callable[[str], Awaitable[RunReport]], **info: Any) -> web.Response:
        job_id = uuid.uuid4().hex[:16]
        now = self.app.clock.now().isoformat()
        self.jobs[job_id] = {"job_id": job_id, "kind": kind, "status": "queued", "queued_at": now, **info}
        while len(self.jobs) > MAX_JOBS_KEPT:
            self.jobs.pop(next(iter(self.jobs)))

        async def run() -> None:
            job = self.jobs.get(job_id, {})
            job["status"] = "running"
            try:
                report = await work(job_id)
            except Exception as exc:
                log.exception("deal API job failed job_id=%s kind=%s", job_id, kind)
                job.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
            else:
                job.update(status="done", result=asdict(report))
            job["finished_at"] = self.app.clock.now().isoformat()

        task = asyncio.create_task(run(), name=f"deals-api-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"status": "queued", "job_id": job_id, **info}, status=202)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- handlers ------------------------------------------------------------------------------

    async def analyze_deal(self, request: web.Request) -> web.Response:
        deal_id = _path_id(request, "id")
        notify = _bool(request, "notify", True)
        if await self.desk.repo.get(deal_id) is None:
            return _bad(f"deal {deal_id} not found", 404)
        return self.queue("analyze_deal", lambda job: self.desk.analyze_deal_and_notify(deal_id, job, notify),
                          deal_id=deal_id, notify=notify)

    async def analyze_manager(self, request: web.Request) -> web.Response:
        person_id = _path_id(request, "id")
        person = await self.app.people.get(person_id)
        if person is None or Role.SALES_MANAGER not in person.roles:
            return _bad(f"sales manager {person_id} not found", 404)
        return self.queue("analyze_manager", lambda job: self.desk.analyze_manager(person_id, job),
                          manager_id=person_id, manager_name=person.name)

    async def analyze_all(self, _request: web.Request) -> web.Response:
        return self.queue("analyze_all", self.desk.analyze_all)

    async def check_stale(self, request: web.Request) -> web.Response:
        days = _int(request, "days_threshold", 1, MAX_STALE_DAYS, default=int(self.desk.rules.stale_days))
        return self.queue("check_stale", lambda job: self.desk.check_stale(days, job), days_threshold=days)

    async def monitoring_start(self, request: web.Request) -> web.Response:
        hours = _int(request, "interval_hours", MIN_HOURS, MAX_HOURS, default=24)
        managers = [p for p in await self.app.people.all(Role.SALES_MANAGER) if p.id is not None]
        for p in managers:
            assert p.id is not None
            await self.control.start(p.id, hours)
        return web.json_response({"status": "started", "interval_hours": hours,
                                  "managers": [p.id for p in managers]})

    async def monitoring_stop(self, _request: web.Request) -> web.Response:
        stopped = [m.person_id for m in await self.desk.repo.monitors()]
        for pid in stopped:
            await self.control.stop(pid)
        return web.json_response({"status": "stopped", "managers": stopped})

    async def monitoring_status(self, _request: web.Request) -> web.Response:
        monitors = await self.desk.repo.monitors()
        return web.json_response({
            "is_running": bool(monitors),
            "timestamp": self.app.clock.now().isoformat(),
            "ai": self.desk.coach.ai_enabled,
            "monitors": [{"manager_id": m.person_id, "interval_hours": m.interval_hours,
                          "started_at": m.started_at.isoformat(), "next_run": self.control.next_run(m)}
                         for m in monitors],
        })

    async def job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        return web.json_response(job) if job else _bad("job not found", 404)

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


Route = Callable[[web.Request], Awaitable[web.Response]]


def _guard(handler: Route) -> Route:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return _bad(str(exc))

    return wrapped


def setup(app: App, desk: DealDesk, control: MonitorControl) -> DealsApi:
    api = DealsApi(app, desk, control)
    routes = [
        ("POST", "/api/deals/{id}/analyze", api.analyze_deal),
        ("POST", "/api/managers/{id}/analyze-deals", api.analyze_manager),
        ("POST", "/api/deals/analyze-all", api.analyze_all),
        ("POST", "/api/deals/check-stale", api.check_stale),
        ("POST", "/api/monitoring/start", api.monitoring_start),
        ("POST", "/api/monitoring/stop", api.monitoring_stop),
        ("GET", "/api/monitoring/status", api.monitoring_status),
        ("GET", "/api/deals/jobs/{job_id}", api.job),
    ]
    for method, path, handler in routes:
        app.http.route(method, path, _guard(handler), admin=True)
    app.http.route("GET", "/api/deals/openapi.json", api.openapi)
    app.provide("deals_api", api)

    async def stop(_app: App) -> None:
        await api.stop()

    app.on_shutdown(stop)
    return api


def _op(summary: str, params: list[dict[str, Any]], ok: str = "202", extra: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {"description": "queued; poll /api/deals/jobs/{job_id}" if ok == "202" else "done"},
        "400": {"description": "a value out of range (the reason is in `error`)"},
        "401": {"description": "missing or wrong bearer token"},
    }
    responses.update(extra or {})
    return {"summary": summary, "parameters": params, "responses": responses, "security": [{"bearer": []}]}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


NOT_FOUND = {"404": {"description": "unknown id"}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Huddle deal coaching admin API", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                   "description": "HUDDLE_ADMIN_TOKEN"}}},
    "paths": {
        "/api/deals/{id}/analyze": {"post": _op(
            "Analyse one deal; with notify=true its manager gets the detailed analysis",
            [_p("id"), _q("notify", {"type": "boolean", "default": True}, "message the deal's manager")],
            extra=NOT_FOUND)},
        "/api/managers/{id}/analyze-deals": {"post": _op(
            "Send one manager a summary and details for high-priority deals", [_p("id")], extra=NOT_FOUND)},
        "/api/deals/analyze-all": {"post": _op("The same for every manager with active deals", [])},
        "/api/deals/check-stale": {"post": _op(
            "Alert managers whose deals have no activity for N days or overdue tasks",
            [_q("days_threshold", {"type": "integer", "minimum": 1, "maximum": MAX_STALE_DAYS, "default": 3},
                "days without activity")])},
        "/api/monitoring/start": {"post": _op(
            "Periodic monitoring for every sales manager",
            [_q("interval_hours", {"type": "integer", "minimum": MIN_HOURS, "maximum": MAX_HOURS, "default": 24},
                "hours between summaries")], ok="200")},
        "/api/monitoring/stop": {"post": _op("Stop all periodic monitoring", [], ok="200")},
        "/api/monitoring/status": {"get": _op("Who is monitored, how often, and the next run", [], ok="200")},
        "/api/deals/jobs/{job_id}": {"get": _op(
            "State and result of queued work", [{"name": "job_id", "in": "path", "required": True,
                                                 "schema": {"type": "string"}}], ok="200", extra=NOT_FOUND)},
    },
}
