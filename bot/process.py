"""Process roles and this process's heartbeat.

One code base, three ways to run it:

* `run` — everything in one process (the embedded default, SQLite or PostgreSQL);
* `gateway` — the *device* part only: adapters that need this machine's hardware (or are told to
  run here), their inbox writes and the sending of their outbox rows;
* `worker` — the *work* part: routing, handlers, the scheduler, HTTP and every other adapter.

A role is a set of parts; what a plugin registers belongs to a part (an adapter by its policy's
`local_device`, everything else to the work part), so `setup(app)` never needs to know the role.

Every process registers in `processes` and beats every `heartbeat_interval`; the work it claims
is leased to it for as long as it keeps beating (see `storage/processes.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from bot.clock import Clock
from bot.tasks import cancel_and_wait
from storage.db import Database
from storage.processes import ProcessRepo, ProcessRow, refresh_queue_statistics

log = logging.getLogger(__name__)


class Part(StrEnum):
    DEVICE = "device"
    """Adapters bound to this machine's hardware, their intake (store only) and their sends."""
    WORK = "work"
    """Routing, handlers, coaching jobs, the scheduler, HTTP and the adapters of hosted services."""


ROLES: dict[str, frozenset[Part]] = {
    "run": frozenset({Part.DEVICE, Part.WORK}),
    "gateway": frozenset({Part.DEVICE}),
    "worker": frozenset({Part.WORK}),
}
SHARED_ONLY = frozenset({"gateway", "worker"})
"""Roles that only make sense with another process on the same database (PostgreSQL)."""


class Heartbeat:
    """Registers this process and keeps its lease alive; a beat that fails is retried next time."""

    def __init__(self, db: Database, clock: Clock, process_id: str, role: str, interval: float, lease: float,
                 on_lost: Callable[[], None] | None = None, on_back: Callable[[], None] | None = None) -> None:
        self.repo = ProcessRepo(db)
        self.db = db
        self.clock = clock
        self.id = process_id
        self.role = role
        self.interval = interval
        self.lease = lease
        self.on_lost = on_lost
        self.on_back = on_back
        """Called when a beat succeeds after failing: the database answers again."""
        self.lease_until = clock.now()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = self.clock.now()
        self.lease_until = now + timedelta(seconds=self.lease)
        await self.repo.register(ProcessRow(self.id, self.role, socket.gethostname(), os.getpid(), now, now,
                                            self.lease_until))
        self._task = asyncio.create_task(self._beat(), name="heartbeat")
        log.info("process registered id=%s role=%s lease=%.0fs", self.id, self.role, self.lease)

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            now = self.clock.now()
            try:
                alive = await self.repo.beat(self.id, now, self.lease)
            except Exception as exc:
                if not failing:
                    log.warning("heartbeat failed (database unreachable?) id=%s: %s", self.id, exc)
                failing = True
                continue
            if failing:
                log.info("heartbeat back id=%s", self.id)
                if self.on_back is not None:
                    self.on_back()
            lapsed = now > self.lease_until
            failing = False
            self.lease_until = now + timedelta(seconds=self.lease)
            if (lapsed or not alive) and self.on_lost is not None:
                log.warning("this process's lease ran out while the database was unreachable: others may "
                            "have taken its work over id=%s", self.id)
                self.on_lost()
            if not alive:
                await self.repo.register(ProcessRow(self.id, self.role, socket.gethostname(), os.getpid(), now,
                                                    now, self.lease_until))
            try:
                analyzed = await refresh_queue_statistics(self.db)
            except Exception as exc:
                log.debug("queue statistics not refreshed: %s", exc)
            else:
                if analyzed:
                    log.debug("queue statistics refreshed tables=%s", ",".join(analyzed))

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
            try:
                await self.repo.stop(self.id, self.clock.now())
            except Exception:
                log.warning("could not mark this process stopped id=%s (its lease will run out)", self.id)
