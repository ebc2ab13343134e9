"""A fake Blaze partner API on 127.0.0.1, shaped like the published swagger (no network).

    fake = FakeBlaze()
    base = await fake.start()                  # HUDDLE_BLAZE_BASE_URL
    fake.add("members", {"id": "m1", "firstName": "Maria", ..., "modified": 1700000000000})
    fake.fail_next(429, retry_after="7")      # a rate limit with Retry-After
    fake.expire_key()                          # 401 from now on, Blaze's error shape

Routes: `GET /api/v1/partner/members`, `/api/v1/partner/store/inventory/products/dates`,
`/api/v1/partner/transactions` (startDate/endDate epoch ms, inclusive; skip; limit) and
`/api/v1/partner/employees` (start, limit; no date filter). Answers `{"values", "skip", "limit",
"total"}`, oldest `modified` first. Headers `partner_key` and `Authorization` are checked. Every
call is recorded with its time, so tests and the bench can count calls per window; `budget`
makes the fake answer 429 itself once more than that many calls arrived in `budget_window` s.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DISPENSARY_KEY = "dispensary-key-0123456789abcdef"
PARTNER_KEY = "partner-key-fedcba9876543210"
MAX_LIMIT = 500
PATHS = {
    "/api/v1/partner/members": "members",
    "/api/v1/partner/store/inventory/products/dates": "products",
    "/api/v1/partner/transactions": "transactions",
    "/api/v1/partner/employees": "employees",
}


@dataclass
class Call:
    entity: str
    params: dict[str, str]
    status: int
    at: float


class FakeBlaze:
    def __init__(self, *, key: str = DISPENSARY_KEY, partner_key: str = PARTNER_KEY) -> None:
        self.key = key
        self.partner_key = partner_key
        self.data: dict[str, list[dict[str, Any]]] = {e: [] for e in PATHS.values()}
        self.calls: list[Call] = []
        self.failures: deque[tuple[int, str | None]] = deque()
        self.expired = False
        self.budget: int | None = None
        self.budget_window = 300.0
        self.newest_first = False
        """Serve pages newest first (the client must not rely on the order)."""
        self._sorted: dict[str, bool] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        for path in PATHS:
            app.router.add_get(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting -------------------------------------------------------------------------------

    def add(self, entity: str, *records: dict[str, Any]) -> None:
        """Records as Blaze returns them (`id`, `created`, `modified` in epoch ms, ...); an id seen before
        is replaced (a record modified again)."""
        rows = self.data[entity]
        index = {r["id"]: i for i, r in enumerate(rows)}
        for r in records:
            if r["id"] in index:
                rows[index[r["id"]]] = r
            else:
                index[r["id"]] = len(rows)
                rows.append(r)
        self._sorted[entity] = False

    def fail_next(self, status: int, *, retry_after: str | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.failures.append((status, retry_after))

    def expire_key(self) -> None:
        self.expired = True

    def calls_of(self, entity: str, status: int | None = 200) -> list[Call]:
        return [c for c in self.calls if c.entity == entity and (status is None or c.status == status)]

    def max_calls_in(self, window: float) -> int:
        """The most calls that arrived within any `window` seconds."""
        times = [c.at for c in self.calls]
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] > window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- the API ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        entity = PATHS[request.path]
        params = dict(request.query)
        now = time.monotonic()

        def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
            self.calls.append(Call(entity, params, status, now))
            return web.json_response(body, status=status, headers=headers)

        if request.headers.get("Authorization") != self.key or request.headers.get("partner_key") != self.partner_key \
                or self.expired:
            return answer(401, {"field": "Authorization", "message": "Invalid or expired API key",
                                "errorType": "com.fourtwenty.core.exceptions.BlazeAuthException"})
        if self.failures:
            status, retry = self.failures.popleft()
            headers = {"Retry-After": retry} if retry is not None else None
            return answer(status, {"field": "", "message": f"fake failure {status}", "errorType": "fake"}, headers)
        if self.budget is not None:
            recent = [c for c in self.calls if now - c.at <= self.budget_window and c.status == 200]
            if len(recent) >= self.budget:
                wait = int(self.budget_window - (now - recent[0].at)) + 1
                return answer(429, {"message": "rate limit"}, {"Retry-After": str(wait)})
        try:
            limit = min(int(params.get("limit", "50")), MAX_LIMIT)
            skip = int(params.get("skip") or params.get("start") or 0)
            start = int(params["startDate"]) if "startDate" in params else None
            end = int(params["endDate"]) if "endDate" in params else None
        except ValueError:
            return answer(400, {"field": "startDate", "message": "not a number", "errorType": "BadRequest"})
        rows = self._rows(entity)
        if entity != "employees":
            rows = [r for r in rows
                    if (start is None or r["modified"] >= start) and (end is None or r["modified"] <= end)]
        if self.newest_first:
            rows = rows[::-1]
        values = rows[skip: skip + limit]
        return answer(200, {"values": values, "skip": skip, "limit": limit, "total": len(rows)})

    def _rows(self, entity: str) -> list[dict[str, Any]]:
        rows = self.data[entity]
        if not self._sorted.get(entity):
            rows.sort(key=lambda r: (r["modified"], str(r["id"])))
            self._sorted[entity] = True
        return rows


def member(n: int, modified: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"m{n}", "firstName": f"First{n}", "lastName": f"Last{n}", "primaryPhone": f"619555{n % 10000:04d}",
            "email": f"c{n}@example.com", "created": modified, "modified": modified, "deleted": False, **extra}


def product(n: int, modified: int, *, brand: str = "MOTA", **extra: Any) -> dict[str, Any]:
    return {"id": f"p{n}", "name": f"{brand} Product {n}", "sku": f"SKU{n}", "category": {"name": "Flower"},
            "brandName": brand, "unitPrice": 25.0 + n % 5, "active": True, "created": modified, "modified": modified,
            "deleted": False, **extra}


def employee(n: int, modified: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "firstName": f"Bud{n}", "lastName": "Tender", "phoneNumber": f"619777{n % 10000:04d}",
            "created": modified, "modified": modified, "deleted": False, **extra}


def transaction(n: int, modified: int, *, member_n: int | None = 1, seller_n: int | None = 1,
                status: str = "Completed", total: float = 45.0, product_n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": f"t{n}", "transNo": str(10000 + n), "memberId": f"m{member_n}" if member_n else None,
            "sellerId": f"e{seller_n}" if seller_n else None, "status": status, "processedTime": modified,
            "created": modified, "modified": modified, "deleted": False,
            "cart": {"total": total, "totalDiscount": 0, "items": [{
                "id": f"t{n}i1", "productId": f"p{product_n}", "quantity": 1, "unitPrice": total,
                "finalPrice": total}]},
            **extra}


__all__ = ["DISPENSARY_KEY", "PARTNER_KEY", "Call", "FakeBlaze", "employee", "member", "product", "transaction"]
