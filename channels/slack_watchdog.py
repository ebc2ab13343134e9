"""Notices a Socket Mode connection that died without closing, and opens a new one.

A websocket can stay "open" on our side while nothing reaches it any more (a NAT dropped it, or
the SDK's own monitor task stopped after an idle reconnect: a known slack-sdk failure where
handlers stop receiving events). The watchdog pings on its own schedule, counts any sign of life
(a pong to one of the pings, or any message), and forces a fresh connection through
`apps.connections.open` when there has been none for `timeout` seconds. It runs on the app clock,
so tests drive it with a fake one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    async def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...


class SocketWatchdog:
    def __init__(self, client: Any, clock: Clock, *, interval: float, timeout: float) -> None:
        self.client = client
        """A `slack_sdk.socket_mode.aiohttp.SocketModeClient`."""
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.messages = 0
        """Bumped by the adapter for every websocket message received."""
        self.reconnects = 0
        self._last_alive = 0.0
        self._pong = 0.0
        self._seen_messages = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last_alive = self.clock.monotonic()
        self._alive_since_last_look()
        self._task = asyncio.create_task(self._run(), name="slack-watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def on_message(self, _message: Any) -> None:
        self.messages += 1

    def silent_for(self) -> float:
        """Seconds since the last sign of life the watchdog has seen (for health reports)."""
        if self._alive_since_last_look():
            self._last_alive = self.clock.monotonic()
        return max(0.0, self.clock.monotonic() - self._last_alive)

    def _alive_since_last_look(self) -> bool:
        """A newer pong than any seen before, or a message, since the last look."""
        alive = False
        pong = getattr(self.client, "last_ping_pong_time", None)
        if isinstance(pong, float | int) and pong > self._pong:
            self._pong = float(pong)
            alive = True
        if self.messages != self._seen_messages:
            self._seen_messages = self.messages
            alive = True
        return alive

    async def _run(self) -> None:
        while not self.client.closed:
            await self.clock.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slack watchdog check failed")

    async def check(self) -> bool:
        """One look at the socket; returns True when it forced a reconnect."""
        now = self.clock.monotonic()
        if self._alive_since_last_look():
            self._last_alive = now
        session = self.client.current_session
        dead = session is None or session.closed
        silent_for = now - self._last_alive
        if dead or silent_for >= self.timeout:
            log.warning(
                "slack socket %s; reconnecting silent_for=%.0fs reconnects=%d",
                "closed" if dead else "silent",
                silent_for,
                self.reconnects + 1,
            )
            self.reconnects += 1
            self._last_alive = now
            await self.client.connect_to_new_endpoint(force=True)
            self._alive_since_last_look()
            return True
        with contextlib.suppress(Exception):
            # The SDK's receive loop records pongs carrying this prefix in `last_ping_pong_time`.
            await session.ping(f"sdk-ping-pong:{time.time()}".encode())
        return False
