"""Per-manager deal monitoring: stored first, then scheduled, restored on the same grid at start.

Used by the sales managers' commands (`/monitor`) and the admin API alike.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from bot.scheduler import JobRun
from coaching.deal_desk import DealDesk
from storage.deals import Monitor

log = logging.getLogger(__name__)

MONITOR_JOB = "deal_monitor"
MIN_HOURS, MAX_HOURS = 1, 168
MAX_STALE_DAYS = 365


class MonitorControl:
    """Starts, stops and restores per-manager monitoring: stored first, then scheduled."""

    def __init__(self, app: App, desk: DealDesk) -> None:
        self.app = app
        self.desk = desk

    def trigger(self, m: Monitor) -> IntervalTrigger:
        return IntervalTrigger(hours=m.interval_hours, start_date=m.started_at, timezone=UTC)

    def schedule(self, m: Monitor) -> None:
        desk = self.desk

        async def run(job: JobRun) -> None:
            await desk.monitor_run(m.person_id, job.period)

        self.app.scheduler.add(MONITOR_JOB, self.trigger(m), run, scope=str(m.person_id))

    async def start(self, person_id: int, hours: int) -> Monitor:
        if not MIN_HOURS <= hours <= MAX_HOURS:
            raise ValueError(f"interval_hours must be between {MIN_HOURS} and {MAX_HOURS}")
        m = await self.desk.repo.set_monitor(person_id, hours, self.app.clock.now())
        self.app.scheduler.remove(MONITOR_JOB, str(person_id))
        self.schedule(m)
        return m

    async def stop(self, person_id: int) -> bool:
        self.app.scheduler.remove(MONITOR_JOB, str(person_id))
        return await self.desk.repo.stop_monitor(person_id, self.app.clock.now())

    async def restore(self) -> int:
        monitors = await self.desk.repo.monitors()
        for m in monitors:
            self.schedule(m)
        if monitors:
            log.info("deal monitoring restored managers=%s", len(monitors))
        return len(monitors)

    def next_run(self, m: Monitor) -> str:
        now = self.app.clock.now()
        nxt = self.trigger(m).get_next_fire_time(None, now + timedelta(microseconds=1))
        return nxt.strftime("%Y-%m-%d %H:%M UTC") if nxt else "-"
