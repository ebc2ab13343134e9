"""Scheduled runs keyed by (job, scope, period): the record that makes coaching happen once.

Besides runs, each job has one row under the reserved period `SINCE`: when a running Huddle first
had it on its schedule. A time due before that was never Huddle's to send, so catching up after
downtime skips it (a fresh database's first start sends nothing "late").
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.processes import dead_owner
from storage.types import UTCDateTime

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job", sa.String(100), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("period", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("owner", sa.String(100)),
    sa.Column("fire_time", UTCDateTime),
)


SINCE = "~since"
"""The reserved period of a job's "scheduled since" row (never a real period: those are dates/times)."""


class JobRunRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, job: str, scope: str, period: str, now: datetime, owner: str | None = None,
                    fire_time: datetime | None = None) -> int | None:
        """Record the start of a run; None if this (job, scope, period) already ran or is running.

        A run left `running` by a process whose lease ran out is taken over (its id returned).
        """

        async def unit(conn: AsyncConnection) -> int | None:
            stmt = (
                self.db.insert(job_runs)
                .values(job=job, scope=scope, period=period, status="running", started_at=now, owner=owner,
                        fire_time=fire_time)
                .on_conflict_do_nothing(index_elements=["job", "scope", "period"])
                .returning(job_runs.c.id)
            )
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return int(row.id)
            if owner is None:
                return None
            taken = (await conn.execute(
                job_runs.update()
                .where(job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.period == period,
                       job_runs.c.status == "running", job_runs.c.owner != owner, dead_owner(job_runs.c.owner, now))
                .values(owner=owner, started_at=now)
                .returning(job_runs.c.id))).first()
            return None if taken is None else int(taken.id)

        return await self.db.run(unit)

    async def orphaned(self, now: datetime, owner: str) -> list[tuple[str, str, str, datetime | None]]:
        """Runs left `running` by processes whose lease ran out: (job, scope, period, fire time)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(job_runs.c.job, job_runs.c.scope, job_runs.c.period, job_runs.c.fire_time)
                .where(job_runs.c.status == "running", job_runs.c.owner != owner, dead_owner(job_runs.c.owner, now))
                .order_by(job_runs.c.id))).all()
        return [(r.job, r.scope, r.period, r.fire_time) for r in rows]

    async def finish(self, run_id: int, now: datetime, error: str | None = None) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id)
                .values(status="failed" if error else "done", error=error, finished_at=now)
            )

        await self.db.run(unit)

    async def release(self, run_id: int) -> None:
        """Forget a run that failed before doing anything, so a later attempt may run it."""

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(job_runs.delete().where(job_runs.c.id == run_id))

        await self.db.run(unit)

    async def scheduled_since(self, job: str, scope: str, at: datetime, *, reset: bool = False) -> datetime:
        """When this job was first scheduled (recorded as `at` if never); `reset` moves it to `at`."""

        async def unit(conn: AsyncConnection) -> datetime:
            stmt = self.db.insert(job_runs).values(job=job, scope=scope, period=SINCE, status="scheduled",
                                                   started_at=at)
            if reset:
                stmt = stmt.on_conflict_do_update(index_elements=["job", "scope", "period"],
                                                  set_={"started_at": at})
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=["job", "scope", "period"])
            await conn.execute(stmt)
            return (await conn.execute(sa.select(job_runs.c.started_at).where(
                job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.period == SINCE))).scalar_one()

        return await self.db.run(unit)

    async def ran(self, job: str, scope: str, period: str) -> bool:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(job_runs.c.id).where(
                        job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.period == period
                    )
                )
            ).first()
        return row is not None

    async def last(self, job: str, scope: str = "") -> datetime | None:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    sa.select(sa.func.max(job_runs.c.started_at)).where(
                        job_runs.c.job == job, job_runs.c.scope == scope, job_runs.c.period != SINCE
                    )
                )
            ).scalar_one()
