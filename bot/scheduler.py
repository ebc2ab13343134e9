"""Jobs on cron and interval schedules (APScheduler 3), each run recorded by a key.

Every run is claimed in `job_runs` under (job, scope, period) before it does anything, so a
restart, a misfire, a catch-up after downtime or a second process never runs the same coaching
twice. The period comes from the *scheduled* fire time, not from when the run happened to start.
Tests drive the same code with `run_due(now)` on a fake clock instead of the wall-clock loop.

A job fires only for times after it was first on a running Huddle's schedule (`scheduled_since`,
recorded when the app starts and when a job is added while it runs): catching up after downtime
sends what was missed within the grace period, never what was due before this database's first
start or before a lead set their shift.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import Field

from bot.clock import Clock
from bot.config_file import StrictModel
from bot.observe import Observers
from storage.job_runs import JobRunRepo

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.settings import CoreSettings
    from storage.db import Database

log = logging.getLogger(__name__)

DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True, slots=True)
class JobRun:
    job: str
    scope: str
    period: str
    fire_time: datetime


JobFunc = Callable[[JobRun], Awaitable[None]]
PeriodFunc = Callable[[datetime], str]


def by_minute(fire_time: datetime) -> str:
    return fire_time.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%MZ")


def daily(tz: str) -> PeriodFunc:
    """One run per local day in `tz` (a briefing per team lead per day)."""
    zone = ZoneInfo(tz)
    return lambda t: t.astimezone(zone).date().isoformat()


def weekly(tz: str) -> PeriodFunc:
    zone = ZoneInfo(tz)

    def period(t: datetime) -> str:
        year, week, _ = t.astimezone(zone).isocalendar()
        return f"{year}-W{week:02d}"

    return period


@dataclass(slots=True)
class Job:
    name: str
    trigger: BaseTrigger
    func: JobFunc
    scope: str = ""
    period: PeriodFunc = by_minute
    last_checked: datetime | None = None
    added_at: datetime | None = None

    @property
    def id(self) -> str:
        return f"{self.name}:{self.scope}" if self.scope else self.name


def cron(expr: str, tz: str) -> CronTrigger:
    """A crontab line (minute hour day month weekday) read as crontab reads it (0 = Sunday)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {expr!r}")
    minute, hour, day, month, dow = fields

    def day_name(token: str) -> str:
        return DAY_NAMES[int(token)] if token.isdigit() else token.lower()

    if dow != "*":
        parts = []
        for item in dow.split(","):
            if "-" in item:
                a, b = item.split("-", 1)
                parts.append(f"{day_name(a)}-{day_name(b)}")
            else:
                parts.append(day_name(item))
        dow = ",".join(parts)
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=ZoneInfo(tz))


class ScheduleException(StrictModel):
    days: list[str]
    cron: str


class ScheduleSpec(StrictModel):
    """A schedule from config: `cron` or `interval_minutes`, with weekday exceptions.

    [schedules.chatter_ingest]
    cron = "30 7 * * *"
    timezone = "UTC"
    exceptions = [{ days = ["mon"], cron = "30 15 * * mon" }]
    """

    cron: str | None = None
    interval_minutes: float | None = Field(None, gt=0)
    timezone: str = "UTC"
    exceptions: list[ScheduleException] = Field(default_factory=list)
    enabled: bool = True

    def trigger(self) -> BaseTrigger:
        ZoneInfo(self.timezone)
        if self.interval_minutes:
            return IntervalTrigger(minutes=self.interval_minutes, timezone=ZoneInfo(self.timezone))
        if not self.cron:
            raise ValueError("a schedule needs cron or interval_minutes")
        if not self.exceptions:
            return cron(self.cron, self.timezone)
        skipped = {d.lower()[:3] for e in self.exceptions for d in e.days}
        kept = [d for d in DAY_NAMES[1:] if d not in skipped]
        minute, hour, day, month, dow = self.cron.split()
        base_days = kept if dow == "*" else [d for d in dow.split(",") if d.lower()[:3] not in skipped]
        triggers: list[BaseTrigger] = []
        if base_days:
            triggers.append(cron(f"{minute} {hour} {day} {month} {','.join(base_days)}", self.timezone))
        triggers += [cron(e.cron, self.timezone) for e in self.exceptions]
        return OrTrigger(triggers)


def fire_times(trigger: BaseTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Scheduled fire times in (after, until]."""
    times: list[datetime] = []
    t = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while t is not None and t <= until and len(times) < 10_000:
        times.append(t)
        t = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
    return times


class Scheduler:
    def __init__(self, db: Database, clock: Clock, settings: CoreSettings) -> None:
        self.runs = JobRunRepo(db)
        self.clock = clock
        self.settings = settings
        self.jobs: dict[str, Job] = {}
        self._aps: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._since: dict[str, datetime] = {}
        self._live = False
        self.observers = Observers()

    # -- declaring jobs ------------------------------------------------------------------------

    def add(
        self,
        name: str,
        trigger: BaseTrigger | ScheduleSpec,
        func: JobFunc,
        *,
        scope: str = "",
        period: PeriodFunc = by_minute,
    ) -> Job:
        if isinstance(trigger, ScheduleSpec):
            trigger = trigger.trigger()
        now = self.clock.now()
        job = Job(name, trigger, func, scope, period, last_checked=now, added_at=now)
        self.jobs[job.id] = job
        self._since.pop(job.id, None)
        if self._live:  # added while running (a lead sets a shift): scheduled from now on
            self._spawn(self._record_since(job, reset=True), f"scheduler-since-{job.id}")
        if self._aps is not None:
            self._schedule(job)
        return job

    def remove(self, name: str, scope: str = "") -> None:
        job = self.jobs.pop(f"{name}:{scope}" if scope else name, None)
        self._since.pop(f"{name}:{scope}" if scope else name, None)
        if job is not None and self._aps is not None and self._aps.get_job(job.id):
            self._aps.remove_job(job.id)

    # -- since when each job is Huddle's to run ----------------------------------------------

    async def _record_since(self, job: Job, *, reset: bool = False) -> datetime:
        at = job.added_at or self.clock.now()
        since = await self.runs.scheduled_since(job.name, job.scope, at, reset=reset)
        if self.jobs.get(job.id) is job:
            self._since[job.id] = since
        return since

    async def since(self, job: Job) -> datetime:
        """When a running Huddle first had `job` on its schedule (recorded now if never)."""
        hit = self._since.get(job.id)
        return hit if hit is not None else await self._record_since(job)

    async def record_schedule(self) -> None:
        """At start, before any catch-up: every job's first-scheduled time, for the ones that have none."""
        for job in list(self.jobs.values()):
            await self.since(job)
        self._live = True

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- running -------------------------------------------------------------------------------

    async def run_once(self, job: str, scope: str, period: str, func: Callable[[], Awaitable[Any]],
                       fire_time: datetime | None = None) -> bool:
        """Run `func` only if (job, scope, period) has not run before; True if it ran now.

        The run is claimed in the database under this process's id, so of all the workers only one
        runs it; one left half-done by a process that died is taken over (see `sweep_orphans`).
        """
        run_id = await self.runs.claim(job, scope, period, self.clock.now(), self.settings.worker_id, fire_time)
        if run_id is None:
            log.info("skipped, already ran job=%s scope=%s period=%s", job, scope, period)
            self.observers.job(job, "skipped", 0.0)
            return False
        started = time.perf_counter()
        try:
            await func()
        except Exception as exc:
            log.exception("job failed job=%s scope=%s period=%s", job, scope, period)
            await self.runs.finish(run_id, self.clock.now(), error=f"{type(exc).__name__}: {exc}"[:2000])
            self.observers.job(job, "failed", time.perf_counter() - started)
            return True
        await self.runs.finish(run_id, self.clock.now())
        self.observers.job(job, "done", time.perf_counter() - started)
        return True

    async def fire(self, job: Job, fire_time: datetime) -> bool:
        run = JobRun(job.name, job.scope, job.period(fire_time), fire_time)
        return await self.run_once(job.name, job.scope, run.period, lambda: job.func(run), fire_time)

    async def sweep_orphans(self) -> list[JobRun]:
        """Finish runs whose worker died mid-job (its lease ran out): the job runs again for that period."""
        ran = []
        for name, scope, period, fire_time in await self.runs.orphaned(self.clock.now(), self.settings.worker_id):
            job = self.jobs.get(f"{name}:{scope}" if scope else name)
            if job is None:
                continue  # not a job of this process's plugins
            run = JobRun(name, scope, period, fire_time or self.clock.now())
            log.warning("taking over a run left unfinished by a stopped process job=%s scope=%s period=%s",
                        name, scope, period)
            if await self.run_once(name, scope, period, lambda job=job, run=run: job.func(run), run.fire_time):
                ran.append(run)
        return ran

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.outbox_poll_interval)
            try:
                await self.sweep_orphans()
            except Exception:
                log.exception("sweep for unfinished job runs failed")

    async def run_due(self, now: datetime | None = None) -> list[JobRun]:
        """Fire every job whose latest scheduled time since the last check has passed (coalesced)."""
        now = now or self.clock.now()
        ran: list[JobRun] = []
        for job in list(self.jobs.values()):
            since = max(job.last_checked or now, await self.since(job))
            times = fire_times(job.trigger, since, now)
            job.last_checked = now
            if times and await self.fire(job, times[-1]):
                ran.append(JobRun(job.name, job.scope, job.period(times[-1]), times[-1]))
        return ran

    async def catch_up(self) -> list[JobRun]:
        """After downtime: run each job's latest missed time if still within the grace period.

        Only times after the job was first scheduled count as missed (see `since`).
        """
        now = self.clock.now()
        for job in self.jobs.values():
            job.last_checked = now - timedelta(seconds=self.settings.scheduler_misfire_grace)
        return await self.run_due(now)

    def start(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler  # the loop itself, only when serving

        self._aps = AsyncIOScheduler(
            job_defaults={
                "misfire_grace_time": self.settings.scheduler_misfire_grace,
                "coalesce": True,
                "max_instances": 1,
            },
            timezone=ZoneInfo("UTC"),
        )
        for job in self.jobs.values():
            self._schedule(job)
        self._aps.start()
        self._spawn(self.catch_up(), "scheduler-catch-up")
        self._spawn(self._sweep_loop(), "scheduler-orphans")

    def _schedule(self, job: Job) -> None:
        assert self._aps is not None

        async def run() -> None:
            now = self.clock.now()
            grace = timedelta(seconds=self.settings.scheduler_misfire_grace)
            since = max(now - grace, await self.since(job))
            times = fire_times(job.trigger, since, now + timedelta(seconds=1))
            if times:
                await self.fire(job, times[-1])

        self._aps.add_job(run, job.trigger, id=job.id, replace_existing=True, name=job.id)

    async def stop(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None
        self._live = False
        for t in list(self._tasks):
            t.cancel()

    def describe(self) -> list[tuple[str, str]]:
        now = self.clock.now()
        out = []
        for job in self.jobs.values():
            nxt = job.trigger.get_next_fire_time(None, now)
            out.append((job.id, nxt.isoformat() if nxt else "-"))
        return out
