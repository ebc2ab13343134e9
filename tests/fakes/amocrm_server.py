"""A fake amoCRM API v4 on 127.0.0.1: OAuth refresh with rotation, paged leads/notes/events/tasks, 429s.

    async with FakeAmoCrm() as amo:
        amo.add_lead(1, "Acme", price=1000, status_id=101, responsible_user_id=7)
        settings = amo.settings(tmp_path / "tokens.json")

Every API call needs the current access token (401 otherwise); each refresh invalidates the old
refresh token, as amoCRM does. `fail_next(429)` scripts a rate-limit answer; `request_times`
records when each call arrived (for pacing checks).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr

PIPELINES = [{"id": 1, "name": "Sales", "_embedded": {"statuses": [
    {"id": 101, "name": "New lead"}, {"id": 102, "name": "Negotiation"}, {"id": 142, "name": "Won"},
    {"id": 143, "name": "Lost"}]}}]


class FakeAmoCrm:
    def __init__(self) -> None:
        self.leads: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.refresh_token = "r0"
        self.access_token = "a0"
        self.expires_in = 86400
        self.refreshes = 0
        self.failures: list[int] = []
        self.request_times: list[float] = []
        self.paths: list[str] = []
        self._ids = itertools.count(1000)
        self._tokens = itertools.count(1)
        app = web.Application()
        app.router.add_post("/oauth2/access_token", self._token)
        app.router.add_get("/api/v4/leads", self._list("leads"))
        app.router.add_get("/api/v4/leads/notes", self._list("notes"))
        app.router.add_get("/api/v4/events", self._list("events"))
        app.router.add_get("/api/v4/tasks", self._list("tasks"))
        app.router.add_get("/api/v4/leads/pipelines", self._pipelines)
        self.app = app
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> FakeAmoCrm:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner:
            await self.runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, token_file: Path, **overrides: Any) -> Any:
        from coaching.sources.amocrm import AmoSettings

        values: dict[str, Any] = {
            "amocrm_base_url": self.base_url, "amocrm_client_id": "cid", "amocrm_client_secret": SecretStr("shh"),
            "amocrm_refresh_token": SecretStr("r0"), "amocrm_token_file": token_file, "amocrm_rate": 7.0,
        }
        values.update(overrides)
        return AmoSettings(_env_file=None, **values)  # type: ignore[call-arg]

    # -- data ------------------------------------------------------------------------------------

    def add_lead(self, lead_id: int, name: str, **fields: Any) -> None:
        self.leads.append({"id": lead_id, "name": name, "price": 0, "created_at": 1767225600, **fields})

    def add_call(self, lead_id: int, at: int, duration: int, incoming: bool = False) -> None:
        self.notes.append({"id": next(self._ids), "entity_id": lead_id, "created_at": at,
                           "note_type": "call_in" if incoming else "call_out", "params": {"duration": duration}})

    def add_status_change(self, lead_id: int, at: int, before: int, after: int) -> None:
        self.events.append({"id": f"ev{next(self._ids)}", "type": "lead_status_changed", "entity_id": lead_id,
                            "entity_type": "lead", "created_at": at,
                            "value_before": [{"lead_status": {"id": before, "pipeline_id": 1}}],
                            "value_after": [{"lead_status": {"id": after, "pipeline_id": 1}}]})

    def add_task(self, lead_id: int, at: int, due: int, done: bool, text: str = "call back") -> None:
        self.tasks.append({"id": next(self._ids), "entity_id": lead_id, "entity_type": "leads", "created_at": at,
                           "updated_at": at + 60, "complete_till": due, "is_completed": done, "text": text})

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures.extend([status] * times)

    # -- handlers ----------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("grant_type") != "refresh_token" or body.get("client_id") != "cid"
                or body.get("client_secret") != "shh" or body.get("refresh_token") != self.refresh_token):
            return web.json_response({"title": "Unauthorized", "status": 401, "hint": "Refresh token has been revoked"},
                                     status=401)
        n = next(self._tokens)
        self.refreshes += 1
        self.access_token, self.refresh_token = f"a{n}", f"r{n}"
        return web.json_response({"token_type": "Bearer", "expires_in": self.expires_in,
                                  "access_token": self.access_token, "refresh_token": self.refresh_token})

    def _authorized(self, request: web.Request) -> bool:
        self.request_times.append(time.monotonic())
        self.paths.append(request.path_qs)
        return request.headers.get("Authorization") == f"Bearer {self.access_token}"

    def _list(self, key: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
            if self.failures:
                status = self.failures.pop(0)
                return web.json_response({"title": "Too Many Requests", "status": status}, status=status,
                                         headers={"Retry-After": "0.01"} if status == 429 else {})
            items = getattr(self, key)
            q = request.query
            if key == "notes":
                types = set(q.getall("filter[note_type][]", []))
                items = [n for n in items if not types or n["note_type"] in types]
            if key == "events":
                items = [e for e in items if e["type"] == q.get("filter[type]")]
            page, limit = int(q.get("page", "1")), int(q.get("limit", "50"))
            if limit > (100 if key == "events" else 250):
                return web.json_response({"title": "Bad Request", "status": 400}, status=400)
            chunk = items[(page - 1) * limit : page * limit]
            if not chunk:
                return web.Response(status=204)
            links: dict[str, Any] = {"self": {"href": f"{self.base_url}{request.path_qs}"}}
            if page * limit < len(items):
                links["next"] = {"href": f"{self.base_url}{request.path}?page={page + 1}&limit={limit}"}
            return web.json_response({"_page": page, "_links": links, "_embedded": {key: chunk}})

        return handler

    async def _pipelines(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        return web.json_response({"_embedded": {"pipelines": PIPELINES}})
