"""amoCRM API v4 as a deal source: leads, call notes, stage changes and tasks, over httpx.

* OAuth 2: the access token is refreshed with the refresh token when it expires or a call gets
  401. amoCRM rotates the refresh token on every refresh (the old one stops working), so the new
  pair is written at once to a JSON token file created with mode 0600 (atomic replace). The very
  first refresh token can come from `HUDDLE_AMOCRM_REFRESH_TOKEN`; after that the file rules.
* Pacing: amoCRM allows 7 requests per second per integration; requests are spaced to
  `amocrm_rate` (6/s by default), and a 429 waits and tries again.
* Lists are paged (`page`, `limit`); an empty page answers 204.

`fetch_deals` maps leads to `Deal`s (status 142 = won, 143 = lost) with their events;
`sync_amocrm` stores them. The responsible user id becomes the deal's `owner_ref` (source
"amocrm"); link it to a person with `DealRepo.map_owner("amocrm", "<user id>", person_id)`, or
give the person that external id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from bot.lazy import lazy_module
from bot.settings import HuddleSettings
from coaching.deals import Deal, DealEvent, DealStatus, EventKind
from storage.deals import DealRepo, UpsertResult

if TYPE_CHECKING:
    import httpx
else:
    httpx = lazy_module("httpx")  # the HTTP client only when the API is configured

log = logging.getLogger(__name__)

WON_STATUS, LOST_STATUS = 142, 143
CALL_NOTES = ("call_in", "call_out")
MESSAGE_NOTES = ("sms_in", "sms_out", "amomail_message")
PAGE_LIMIT = 250
EVENTS_LIMIT = 100  # the events endpoint caps `limit` at 100
MAX_RETRIES = 5
SOURCE = "amocrm"


class AmoSettings(HuddleSettings):
    amocrm_base_url: str | None = Field(None, description="https://SUBDOMAIN.amocrm.ru (or .kommo.com)")
    amocrm_client_id: str | None = None
    amocrm_client_secret: SecretStr | None = None
    amocrm_redirect_uri: str = Field("https://localhost/", description="the integration's redirect URI")
    amocrm_refresh_token: SecretStr | None = Field(None, description="first refresh token; the token file rules after")
    amocrm_token_file: Path = Field(Path("amocrm_tokens.json"), description="where rotated tokens live (mode 0600)")
    amocrm_rate: float = Field(6.0, gt=0, le=7, description="requests per second (amoCRM allows 7)")
    amocrm_timeout: float = Field(30.0, gt=0)
    amocrm_sync_minutes: float | None = Field(None, gt=0, description="pull from amoCRM this often (off when unset)")

    @property
    def configured(self) -> bool:
        return bool(self.amocrm_base_url and self.amocrm_client_id and self.amocrm_client_secret)


class AmoCrmError(Exception):
    """amoCRM refused or failed in a way retrying will not fix (bad credentials, 4xx)."""


# -- tokens --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float


class TokenFile:
    """The OAuth pair on disk: read at start, replaced atomically with mode 0600 on each rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Tokens | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Tokens(str(data["access_token"]), str(data["refresh_token"]), float(data["expires_at"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise AmoCrmError(f"token file {self.path} is unreadable: {type(exc).__name__}") from None

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            payload = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                       "expires_at": tokens.expires_at}
            os.write(fd, json.dumps(payload).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


# -- pacing --------------------------------------------------------------------------------------


class Pacer:
    """Spaces requests at least 1/rate seconds apart (amoCRM counts requests per second)."""

    def __init__(
        self,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._mono = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._mono()
            if self._next > now:
                await self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


# -- the client ----------------------------------------------------------------------------------


class AmoCrmClient:
    def __init__(
        self,
        settings: AmoSettings,
        *,
        http: httpx.AsyncClient | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not settings.configured:
            raise AmoCrmError("amoCRM is not configured")
        self.settings = settings
        self.http = http or httpx.AsyncClient(base_url=str(settings.amocrm_base_url), timeout=settings.amocrm_timeout)
        self._own_http = http is None
        self.pacer = pacer or Pacer(settings.amocrm_rate, sleep=sleep)
        self.tokens = TokenFile(settings.amocrm_token_file)
        self._sleep = sleep
        self._wall = wall
        self._current: Tokens | None = None
        self._refresh_lock = asyncio.Lock()
        self.requests = 0

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AmoCrmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # tokens

    async def _access_token(self) -> str:
        if self._current is None:
            self._current = self.tokens.load()
        if self._current is None or self._current.expires_at <= self._wall() + 60:
            await self.refresh(self._current.access_token if self._current else None)
        assert self._current is not None
        return self._current.access_token

    async def refresh(self, stale_access: str | None) -> None:
        """Trade the refresh token for a new pair and persist it before using it (single flight)."""
        async with self._refresh_lock:
            if self._current is not None and stale_access is not None and self._current.access_token != stale_access:
                return  # another task refreshed while we waited
            current = self._current or self.tokens.load()
            refresh_token = current.refresh_token if current else (
                self.settings.amocrm_refresh_token.get_secret_value() if self.settings.amocrm_refresh_token else "")
            if not refresh_token:
                raise AmoCrmError("no amoCRM refresh token: set HUDDLE_AMOCRM_REFRESH_TOKEN once")
            secret = self.settings.amocrm_client_secret
            body = {
                "client_id": self.settings.amocrm_client_id,
                "client_secret": secret.get_secret_value() if secret else "",
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "redirect_uri": self.settings.amocrm_redirect_uri,
            }
            await self.pacer.wait()
            self.requests += 1
            response = await self.http.post("/oauth2/access_token", json=body)
            if response.status_code != 200:
                raise AmoCrmError(f"token refresh refused: HTTP {response.status_code}")
            data = response.json()
            expires_at = self._wall() + float(data.get("expires_in", 0))
            tokens = Tokens(data["access_token"], data["refresh_token"], expires_at)
            self.tokens.save(tokens)  # the old refresh token is dead now: persist before anything else
            self._current = tokens
            log.info("amoCRM token refreshed expires_in=%s", data.get("expires_in"))

    # requests

    async def get(self, path: str, params: list[tuple[str, Any]] | None = None) -> dict[str, Any] | None:
        """One GET with pacing, a token refresh on 401 and waits on 429/5xx; None for 204 (empty)."""
        refreshed = False
        for attempt in range(MAX_RETRIES + 1):
            token = await self._access_token()
            await self.pacer.wait()
            self.requests += 1
            try:
                response = await self.http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError as exc:
                if attempt == MAX_RETRIES:
                    raise AmoCrmError(f"{path}: {type(exc).__name__}") from None
                await self._sleep(min(30.0, 2.0**attempt))
                continue
            status = response.status_code
            if status == 204:
                return None
            if status == 200:
                return dict(response.json())
            if status == 401 and not refreshed:
                refreshed = True
                await self.refresh(token)
                continue
            if status == 429 or status >= 500:
                if attempt == MAX_RETRIES:
                    break
                retry_after = response.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else min(30.0, 2.0**attempt)
                log.info("amoCRM busy status=%s path=%s wait=%.1fs", status, path, wait)
                await self._sleep(wait)
                continue
            raise AmoCrmError(f"{path}: HTTP {status}")
        raise AmoCrmError(f"{path}: still failing after {MAX_RETRIES} retries")

    async def paged(self, path: str, key: str, params: list[tuple[str, Any]] | None = None,
                    limit: int = PAGE_LIMIT) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            data = await self.get(path, [*(params or []), ("page", page), ("limit", limit)])
            if not data:
                return
            items = (data.get("_embedded") or {}).get(key) or []
            for item in items:
                yield item
            if not items or not (data.get("_links") or {}).get("next"):
                return
            page += 1

    async def leads(self) -> AsyncIterator[dict[str, Any]]:
        async for lead in self.paged("/api/v4/leads", "leads"):
            yield lead

    async def notes(self, types: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
        params = [("filter[note_type][]", t) for t in types]
        async for note in self.paged("/api/v4/leads/notes", "notes", params):
            yield note

    async def status_events(self) -> AsyncIterator[dict[str, Any]]:
        params = [("filter[type]", "lead_status_changed"), ("filter[entity]", "lead")]
        async for event in self.paged("/api/v4/events", "events", params, limit=EVENTS_LIMIT):
            yield event

    async def tasks(self) -> AsyncIterator[dict[str, Any]]:
        async for task in self.paged("/api/v4/tasks", "tasks", [("filter[entity_type]", "leads")]):
            yield task

    async def stage_names(self) -> dict[int, tuple[str, str]]:
        """status id → (pipeline name, stage name)."""
        names: dict[int, tuple[str, str]] = {}
        data = await self.get("/api/v4/leads/pipelines") or {}
        for pipeline in (data.get("_embedded") or {}).get("pipelines") or []:
            for status in ((pipeline.get("_embedded") or {}).get("statuses") or []):
                names[int(status["id"])] = (str(pipeline.get("name", "")), str(status.get("name", "")))
        return names


# -- mapping -------------------------------------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _status_id(values: Any) -> int | None:
    for v in values or []:
        status = (v or {}).get("lead_status") or {}
        if "id" in status:
            return int(status["id"])
    return None


async def fetch_deals(client: AmoCrmClient, *, limit: int | None = None) -> list[Deal]:
    """Every lead with its calls, messages, stage changes and tasks, as `Deal`s."""
    stages = await client.stage_names()

    def stage_name(status_id: int | None) -> str:
        return stages.get(status_id or -1, ("", str(status_id or "")))[1]

    deals: dict[int, Deal] = {}
    async for lead in client.leads():
        status_id = int(lead.get("status_id") or 0)
        status = {WON_STATUS: DealStatus.WON, LOST_STATUS: DealStatus.LOST}.get(status_id, DealStatus.ACTIVE)
        if lead.get("is_deleted"):
            continue
        created = _ts(lead.get("created_at")) or datetime.now(UTC)
        deal = Deal(
            id=int(lead["id"]), name=str(lead.get("name") or f"Lead {lead['id']}")[:500], created_at=created,
            stage=stage_name(status_id), budget=Decimal(str(lead.get("price") or 0)), currency="RUB",
            status=status, owner_ref=str(lead["responsible_user_id"]) if lead.get("responsible_user_id") else None,
            pipeline=stages.get(status_id, ("", ""))[0] or None, source=SOURCE,
        )
        deals[deal.id] = deal
        if limit is not None and len(deals) >= limit:
            break
    async for note in client.notes(CALL_NOTES + MESSAGE_NOTES):
        d = deals.get(int(note.get("entity_id") or 0))
        at = _ts(note.get("created_at"))
        if d is None or at is None:
            continue
        kind = note.get("note_type")
        params = note.get("params") or {}
        if kind in CALL_NOTES:
            d.events.append(DealEvent(EventKind.CALL, at, duration_s=int(params.get("duration") or 0),
                                      direction="in" if kind == "call_in" else "out", key=f"note:{note['id']}"))
        else:
            d.events.append(DealEvent(EventKind.MESSAGE, at, direction="in" if kind == "sms_in" else "out",
                                      text=str(params.get("text") or "")[:2000] or None, key=f"note:{note['id']}"))
    async for event in client.status_events():
        d = deals.get(int(event.get("entity_id") or 0))
        at = _ts(event.get("created_at"))
        if d is None or at is None:
            continue
        before, after = _status_id(event.get("value_before")), _status_id(event.get("value_after"))
        d.events.append(DealEvent(EventKind.STAGE_CHANGE, at, from_stage=stage_name(before), to_stage=stage_name(after),
                                  key=f"event:{event['id']}"))
    async for task in client.tasks():
        d = deals.get(int(task.get("entity_id") or 0))
        at = _ts(task.get("created_at"))
        if d is None or at is None:
            continue
        done = bool(task.get("is_completed"))
        d.events.append(DealEvent(EventKind.TASK, at, text=str(task.get("text") or "")[:2000] or None,
                                  due_at=_ts(task.get("complete_till")), done=done,
                                  done_at=_ts(task.get("updated_at")) if done else None, key=f"task:{task['id']}"))
    return list(deals.values())


async def sync_amocrm(settings: AmoSettings, repo: DealRepo, now: datetime, *, limit: int | None = None,
                      pacer: Pacer | None = None) -> UpsertResult:
    async with AmoCrmClient(settings, pacer=pacer) as client:
        deals = await fetch_deals(client, limit=limit)
        log.info("amoCRM fetched deals=%s requests=%s", len(deals), client.requests)
    return await repo.upsert(deals, now)
