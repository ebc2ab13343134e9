"""Admin HTTP API for deal coaching, on the shared server behind the admin bearer token.

    POST /api/deals/{id}/analyze          {"notify": true}       202 {job_id}  analyse one deal (message its manager)
    POST /api/managers/{id}/analyze-deals                        202 {job_id}  one manager's digest, now
    POST /api/deals/analyze-all                                  202 {job_id}  the same for every manager
    POST /api/deals/check-stale           {"days_threshold": 3}  202 {job_id}  alerts to managers with stale deals
    POST /api/monitoring/start            {"interval_hours": 24} 200  periodic monitoring for every sales manager
    POST /api/monitoring/stop                                    200
    GET  /api/monitoring/status                                  200
    GET  /api/deals/jobs/{job_id}                                200  state and result of queued work
    GET  /api/openapi.json                                       the OpenAPI description (no token needed)

Every input is a pydantic model (`extra="forbid"`), given as a JSON body with strict types or as
query parameters (`?interval_hours=6`); no body means the defaults shown. A body that is not JSON,
a wrong type, an unknown field or an id out of range answers 400 with `error` and `reasons`, and
starts nothing; an unknown id is 404. The OpenAPI description is generated from the same models.
Queued work runs in the background; its messages carry keys derived from the job id, so each job
sends at most once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bot.app import App
from bot.http import RequestError, error_response, validated
from bot.lazy import lazy_module
from coaching.deal_desk import DealDesk, RunReport
from coaching.roles import Role
from handlers.deal_monitor import MAX_HOURS, MAX_STALE_DAYS, MIN_HOURS, MonitorControl

if TYPE_CHECKING:
    from aiohttp import web
else:
    web = lazy_module("aiohttp.web")

log = logging.getLogger(__name__)

MAX_JOBS_KEPT = 500
MAX_DEAL_ID = 2**63 - 1
MAX_PERSON_ID = 2**31 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyzeDeal(_Body):
    notify: bool = Field(True, description="message the deal's manager the detailed analysis")


class NoInput(_Body):
    """Routes that take no input: the body must be empty or `{}`."""


class CheckStale(_Body):
    days_threshold: int = Field(3, ge=1, le=MAX_STALE_DAYS, description="days without activity")


class MonitoringStart(_Body):
    interval_hours: int = Field(24, ge=MIN_HOURS, le=MAX_HOURS, description="hours between digests")


_DEAL_ID = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_DEAL_ID)])
_PERSON_ID = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_PERSON_ID)])


def _path_id(request: web.Request, name: str, adapter: TypeAdapter[int]) -> int:
    raw = request.match_info[name]
    try:
        return adapter.validate_python(raw, strict=False) if raw.isdigit() else adapter.validate_python(None)
    except ValidationError:
        high = MAX_DEAL_ID if adapter is _DEAL_ID else MAX_PERSON_ID
        raise RequestError(f"{name} must be an integer from 1 to {high}, got {raw[:40]!r}") from None


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
        deal_id = _path_id(request, "id", _DEAL_ID)
        notify = (await validated(request, AnalyzeDeal)).notify
        if await self.desk.repo.get(deal_id) is None:
            return error_response(f"deal {deal_id} not found", 404)
        return self.queue("analyze_deal", lambda job: self.desk.analyze_deal_and_notify(deal_id, job, notify),
                          deal_id=deal_id, notify=notify)

    async def analyze_manager(self, request: web.Request) -> web.Response:
        person_id = _path_id(request, "id", _PERSON_ID)
        await validated(request, NoInput)
        person = await self.app.people.get(person_id)
        if person is None or Role.SALES_MANAGER not in person.roles:
            return error_response(f"sales manager {person_id} not found", 404)
        return self.queue("analyze_manager", lambda job: self.desk.analyze_manager(person_id, job),
                          manager_id=person_id, manager_name=person.name)

    async def analyze_all(self, request: web.Request) -> web.Response:
        await validated(request, NoInput)
        return self.queue("analyze_all", self.desk.analyze_all)

    async def check_stale(self, request: web.Request) -> web.Response:
        days = (await validated(request, CheckStale)).days_threshold
        return self.queue("check_stale", lambda job: self.desk.check_stale(days, job), days_threshold=days)

    async def monitoring_start(self, request: web.Request) -> web.Response:
        hours = (await validated(request, MonitoringStart)).interval_hours
        managers = [p for p in await self.app.people.all(Role.SALES_MANAGER) if p.id is not None]
        for p in managers:
            assert p.id is not None
            await self.control.start(p.id, hours)
        return web.json_response({"status": "started", "interval_hours": hours,
                                  "managers": [p.id for p in managers]})

    async def monitoring_stop(self, request: web.Request) -> web.Response:
        await validated(request, NoInput)
        stopped = [m.person_id for m in await self.desk.repo.monitors()]
        for pid in stopped:
            await self.control.stop(pid)
        return web.json_response({"status": "stopped", "managers": stopped})

    async def monitoring_status(self, request: web.Request) -> web.Response:
        await validated(request, NoInput)
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
        return web.json_response(job) if job else error_response("job not found", 404)

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


ROUTES: list[tuple[str, str, str, type[_Body] | None, str]] = [
    ("POST", "/api/deals/{id}/analyze", "analyze_deal", AnalyzeDeal,
     "Analyse one deal; with notify its manager gets the detailed analysis (unless they already have it)"),
    ("POST", "/api/managers/{id}/analyze-deals", "analyze_manager", NoInput,
     "One manager's digest and new analyses of red deals, now"),
    ("POST", "/api/deals/analyze-all", "analyze_all", NoInput, "The same for every manager with active deals"),
    ("POST", "/api/deals/check-stale", "check_stale", CheckStale,
     "Alert managers whose deals have no activity for N days or overdue tasks"),
    ("POST", "/api/monitoring/start", "monitoring_start", MonitoringStart,
     "Periodic monitoring for every sales manager"),
    ("POST", "/api/monitoring/stop", "monitoring_stop", NoInput, "Stop all periodic monitoring"),
    ("GET", "/api/monitoring/status", "monitoring_status", NoInput, "Who is monitored, how often, and the next run"),
    ("GET", "/api/deals/jobs/{job_id}", "job", None, "State and result of queued work"),
]


def setup(app: App, desk: DealDesk, control: MonitorControl) -> DealsApi:
    api = DealsApi(app, desk, control)
    for method, path, name, _model, _summary in ROUTES:
        app.http.route(method, path, getattr(api, name), admin=True)
    for path in ("/api/openapi.json", "/api/deals/openapi.json"):
        app.http.route("GET", path, api.openapi)
    app.provide("deals_api", api)

    async def stop(_app: App) -> None:
        await api.stop()

    app.on_shutdown(stop)
    return api


_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string", "minLength": 1},
                         "reasons": {"type": "array", "items": {"type": "string"}}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _operation(method: str, path: str, model: type[_Body] | None, summary: str) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    if "{id}" in path:
        high = MAX_DEAL_ID if path.startswith("/api/deals/") else MAX_PERSON_ID
        params.append({"name": "id", "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 1, "maximum": high}})
    if "{job_id}" in path:
        params.append({"name": "job_id", "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 64}})
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}]}
    responses: dict[str, Any] = {
        "400": _json("the request is invalid; `error` and `reasons` say why, and nothing was started", _ERROR),
        "401": _json("missing or wrong bearer token", _ERROR),
    }
    queued = method == "POST" and path not in ("/api/monitoring/start", "/api/monitoring/stop")
    responses["202" if queued else "200"] = _json("queued; poll /api/deals/jobs/{job_id}" if queued else "done")
    if "{" in path:
        responses["404"] = _json("unknown id", _ERROR)
    if model is not None:
        schema = model.model_json_schema()
        props = schema.get("properties", {})
        params += [{"name": name, "in": "query", "required": False, "schema": props[name],
                    "description": props[name].get("description", "")} for name in props]
        if method == "POST":
            op["requestBody"] = {"required": False, "description": "the same fields as JSON (optional: "
                                 "without a body the defaults apply)", "content": {"application/json": {
                                     "schema": {**schema, "additionalProperties": False}}}}
    op["parameters"] = params
    op["responses"] = responses
    return op


def openapi() -> dict[str, Any]:
    """The admin API's OpenAPI 3.1 description, built from the same pydantic models that validate it."""
    paths: dict[str, Any] = {}
    for method, path, _name, model, summary in ROUTES:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, model, summary)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Huddle deal coaching admin API", "version": "2"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                       "description": "HUDDLE_ADMIN_TOKEN"}}},
        "paths": paths,
    }


OPENAPI = openapi()
