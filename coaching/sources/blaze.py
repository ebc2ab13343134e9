"""The Blaze POS partner API: paged reads by modified date, within a share of the call budget.

Endpoints (BLAZE Developer API, swagger 2.0 at the partner host; headers `partner_key` = the partner
key and `Authorization` = the dispensary key):

| entity       | path                                          | window params (epoch ms)  | paging       |
|--------------|-----------------------------------------------|---------------------------|--------------|
| members      | GET /api/v1/partner/members                   | startDate, endDate        | skip, limit  |
| products     | GET /api/v1/partner/store/inventory/products/dates | startDate, endDate   | skip, limit  |
| transactions | GET /api/v1/partner/transactions              | startDate, endDate        | skip, limit  |
| employees    | GET /api/v1/partner/employees                 | (none: filtered here)     | start, limit |

Each answers a `SearchResult…`: `{"values": [...], "skip": n, "limit": n, "total": n}`; every
record carries `id`, `created`, `modified` (epoch ms) and `deleted`. (The swagger types the
transaction dates as strings; Huddle sends epoch milliseconds there too.) The swagger says nothing of
the order of results: the sync moves its cursor by `modified` when a page comes oldest first, and by
offset within the window otherwise (`coaching/sources/blaze_sync.py`).

Budget: Blaze allows 10,000 calls per 5 minutes and may disable a key that exceeds it. The client
takes `budget_share` of that through an `aiolimiter.AsyncLimiter` sized so that no 5-minute window
can exceed the share (bursts of at most 10 s worth). A 429 waits `Retry-After` seconds (a number or
an HTTP date) and tries again; 5xx and network errors back off exponentially; 401/403 (an expired or
wrong key) stop the sync with `BlazeAuthError`, the cursor untouched.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from bot.settings import HuddleSettings

if TYPE_CHECKING:
    import httpx
    from aiolimiter import AsyncLimiter

log = logging.getLogger(__name__)

BUDGET_CALLS = 10_000
BUDGET_SECONDS = 300.0
ENTITIES = ("employees", "products", "members", "transactions")
"""Sync order: who sells and what is sold before the sales that name them."""
PATHS = {
    "members": "/api/v1/partner/members",
    "products": "/api/v1/partner/store/inventory/products/dates",
    "transactions": "/api/v1/partner/transactions",
    "employees": "/api/v1/partner/employees",
}
DATED = frozenset({"members", "products", "transactions"})


class BlazeSettings(HuddleSettings):
    blaze_api_key: SecretStr | None = Field(None, description="the dispensary key (Authorization); unset: no sync")
    blaze_partner_key: SecretStr | None = Field(None, description="the partner key (partner_key header)")
    blaze_base_url: str = Field("https://api.partners.blaze.me", description="the partner API's base URL")
    blaze_budget_share: float = Field(0.5, gt=0, le=1,
                                      description="share of Blaze's 10,000 calls / 5 min this process may use")
    blaze_page_size: int = Field(500, ge=1, le=1000, description="rows asked per call (limit)")
    blaze_sync_minutes: float = Field(5.0, gt=0, description="minutes between scheduled syncs")
    blaze_store: str | None = Field(None, description="store code the Blaze shop's sales belong to (default: first)")
    blaze_house_brands: list[str] = Field(default_factory=list, description="brands that are the store's own")
    blaze_timeout: float = Field(30.0, gt=0, description="seconds for one call")
    blaze_live_hours: float = Field(2.0, ge=0, description="orders newer than this run after-order coaching")


class BlazeError(RuntimeError):
    """The API failed in a way trying again now will not fix."""


class BlazeAuthError(BlazeError):
    """401/403: the key is wrong, expired or disabled."""


@dataclass(slots=True)
class Page:
    values: list[dict[str, Any]]
    total: int | None
    calls: int
    """HTTP calls this page took (retries included): what the budget counts."""
    fetched: int
    """Rows the server returned (before the window filter of an undated entity): a short page ends it."""


def budget_limiter(share: float, budget: int = BUDGET_CALLS, period: float = BUDGET_SECONDS) -> AsyncLimiter:
    """A leaky bucket whose worst 5-minute window stays within `share × budget` calls.

    aiolimiter lets a full bucket burst before leaking at rate/period; a bucket of 10 s worth,
    leaking for 300 s, can pass at most 31 bucketfuls in any 300 s window: so the bucket holds 1/31.
    """
    from aiolimiter import AsyncLimiter

    allowed = max(2.0, budget * share)
    window = 10.0
    per_window = math.floor(allowed * window / (period + window))
    if per_window < 1:  # a tiny share: one call per bucket, a longer bucket
        per_window, window = 1, period / (allowed - 1)
    return AsyncLimiter(per_window, window)


def retry_after_seconds(value: str | None, now: datetime, default: float = 5.0) -> float:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110), else `default`."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class BlazeClient:
    def __init__(self, settings: BlazeSettings, *, limiter: AsyncLimiter | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), max_attempts: int = 6) -> None:
        if settings.blaze_api_key is None:
            raise ValueError("HUDDLE_BLAZE_API_KEY is not set")
        import httpx  # only when a sync runs

        self.settings = settings
        self.limiter = limiter or budget_limiter(settings.blaze_budget_share)
        self.sleep = sleep
        self.now = now
        self.max_attempts = max_attempts
        headers = {"Authorization": settings.blaze_api_key.get_secret_value(), "Accept": "application/json"}
        if settings.blaze_partner_key is not None:
            headers["partner_key"] = settings.blaze_partner_key.get_secret_value()
        self.http: httpx.AsyncClient = httpx.AsyncClient(base_url=settings.blaze_base_url.rstrip("/"),
                                                         headers=headers, timeout=settings.blaze_timeout)
        self.calls = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def page(self, entity: str, *, start_ms: int, end_ms: int, skip: int, limit: int) -> Page:
        """One page of `entity` modified in [start_ms, end_ms], oldest first, after `skip` rows."""
        params: dict[str, int] = {"limit": limit}
        if entity in DATED:
            params.update(startDate=start_ms, endDate=end_ms, skip=skip)
        else:
            params["start"] = skip
        body, calls = await self._get(PATHS[entity], params)
        values = body.get("values") if isinstance(body, dict) else None
        if not isinstance(values, list):
            raise BlazeError(f"{entity}: the answer has no 'values' list")
        total = body.get("total")
        rows = [v for v in values if isinstance(v, dict)]
        if entity not in DATED:  # no date filter on the server: keep the window here
            rows = [v for v in rows if start_ms <= int(v.get("modified") or 0) <= end_ms]
        return Page(rows, int(total) if isinstance(total, int) else None, calls, len(values))

    async def _get(self, path: str, params: dict[str, int]) -> tuple[Any, int]:
        import httpx

        delay = 1.0
        calls = 0
        for attempt in range(1, self.max_attempts + 1):
            async with self.limiter:
                calls += 1
                self.calls += 1
                try:
                    resp = await self.http.get(path, params=params)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    resp = None
            if resp is not None:
                if resp.status_code == 200:
                    try:
                        return resp.json(), calls
                    except ValueError:
                        raise BlazeError(f"{path}: the answer is not JSON") from None
                if resp.status_code in (401, 403):
                    raise BlazeAuthError(f"Blaze refused the key ({resp.status_code}): {_message(resp)}; "
                                         "check HUDDLE_BLAZE_API_KEY and HUDDLE_BLAZE_PARTNER_KEY")
                if resp.status_code == 429:
                    wait = retry_after_seconds(resp.headers.get("Retry-After"), self.now())
                    log.warning("blaze rate limited (429) path=%s: waiting %.0fs", path, wait)
                    await self.sleep(wait)
                    continue
                if resp.status_code < 500:
                    raise BlazeError(f"{path}: HTTP {resp.status_code}: {_message(resp)}")
                problem = f"HTTP {resp.status_code}"
            if attempt == self.max_attempts:
                break
            log.warning("blaze call failed path=%s (%s); retrying in %.0fs", path, problem, delay)
            await self.sleep(delay)
            delay = min(delay * 2, 60.0)
        raise BlazeError(f"{path}: still failing after {self.max_attempts} attempts")


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("errorType") or body)[:200]
    return str(body)[:200]


__all__ = ["BUDGET_CALLS", "BUDGET_SECONDS", "ENTITIES", "PATHS", "BlazeAuthError", "BlazeClient", "BlazeError",
           "BlazeSettings", "Page", "budget_limiter", "retry_after_seconds"]
