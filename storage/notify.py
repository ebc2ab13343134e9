"""Wake-ups between processes: PostgreSQL LISTEN/NOTIFY on a dedicated asyncpg connection.

Triggers (migration procs_0001) notify `huddle_outbox` with the channel name when a row becomes
queued, and `huddle_inbound` when a message is stored for any worker to claim. Notifications are
only a doorbell: they carry no work, are sent at commit, and a lost one costs at most the slow
poll, which stays as the safety net. After the connection comes back everyone is woken once,
since notifications sent while it was down are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

OUTBOX = "huddle_outbox"
INBOUND = "huddle_inbound"
KEEPALIVE = 5.0
"""Seconds between pings that find a connection cut without a word (a reset, a dead network)."""


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Calls `handlers[topic](payload)` for each notification; `on_connect()` after every (re)connect."""

    def __init__(self, url: str, handlers: dict[str, Callable[[str], None]], on_connect: Callable[[], None]) -> None:
        self.dsn = plain_dsn(url)
        self.handlers = handlers
        self.on_connect = on_connect
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def _run(self) -> None:
        import asyncpg

        delay = 0.2
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncio.wait_for(asyncpg.connect(self.dsn), 10)
                self._conn = conn
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for topic in self.handlers:
                    await conn.add_listener(topic, self._notified)
                self.connected.set()
                delay = 0.2
                self.on_connect()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), KEEPALIVE)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), KEEPALIVE)
                raise ConnectionError("listen connection closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set():
                    log.warning("LISTEN connection lost, reconnecting (slow poll meanwhile): %s", exc)
                self.connected.clear()
                await self._close()
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    def _notified(self, _conn: Any, _pid: int, topic: str, payload: str) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(payload)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        await self._close()
