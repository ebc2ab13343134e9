"""Time as a dependency: production reads the wall clock, tests move a fake one by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()


class FakeClock:
    """A clock that only moves when a test calls `advance`; sleepers wake in time order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now.astimezone(UTC)

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float | timedelta) -> None:
        """Move time forward, waking every sleeper whose deadline passes, in order."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._set(deadline)
            if not fut.done():
                fut.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
        self._set(target)
        for _ in range(5):
            await asyncio.sleep(0)

    async def set(self, when: datetime) -> None:
        """Advance to an absolute time (never backwards)."""
        delta = (when - self.now()).total_seconds()
        if delta < 0:
            raise ValueError("FakeClock cannot go back in time")
        await self.advance(delta)

    def _set(self, mono: float) -> None:
        self._now += timedelta(seconds=mono - self._mono)
        self._mono = mono

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())
