"""What the operator's health view and the metrics read: queue depths, oldest unsent, recent failures.

Read-only queries over the inbox, outbox, held texts and job runs; nothing here changes a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from storage.db import Database
from storage.inbox import inbound
from storage.job_runs import job_runs
from storage.outbox import outbox
from storage.sms import sms_held as held
from storage.types import UTCDateTime

UNSENT = ("queued", "sending")


@dataclass(frozen=True, slots=True)
class Failure:
    at: datetime
    channel: str
    address: str
    status: str
    reason: str
    outbox_id: int


@dataclass(frozen=True, slots=True)
class JobRunInfo:
    job: str
    scope: str
    period: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Depths:
    outbox: dict[tuple[str, str], int]
    """(channel, status) → rows."""
    inbox: dict[tuple[str, str], int]
    oldest_unsent: dict[str, datetime]
    """channel → created_at of its oldest queued or sending message."""
    held: int


class OpsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def depths(self) -> Depths:
        async with self.db.read() as conn:
            out = (await conn.execute(sa.select(outbox.c.channel, outbox.c.status, sa.func.count())
                                      .group_by(outbox.c.channel, outbox.c.status))).all()
            inb = (await conn.execute(sa.select(inbound.c.channel, inbound.c.status, sa.func.count())
                                      .group_by(inbound.c.channel, inbound.c.status))).all()
            first = sa.func.min(outbox.c.created_at, type_=UTCDateTime)
            oldest = (await conn.execute(sa.select(outbox.c.channel, first)
                                         .where(outbox.c.status.in_(UNSENT)).group_by(outbox.c.channel))).all()
            kept = (await conn.execute(sa.select(sa.func.count()).select_from(held))).scalar_one()
        return Depths(
            {(r[0], r[1]): int(r[2]) for r in out},
            {(r[0], r[1]): int(r[2]) for r in inb},
            {r[0]: r[1] for r in oldest if r[1] is not None},
            int(kept),
        )

    async def failures_since(self, since: datetime, limit: int = 50) -> list[Failure]:
        """Messages that failed or were refused since `since`, newest first."""
        query = (sa.select(outbox.c.id, outbox.c.updated_at, outbox.c.channel, outbox.c.address, outbox.c.status,
                           outbox.c.reason)
                 .where(outbox.c.status.in_(("failed", "refused")), outbox.c.updated_at >= since)
                 .order_by(outbox.c.updated_at.desc(), outbox.c.id.desc()).limit(limit))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Failure(r.updated_at, r.channel, r.address, r.status, r.reason or "", r.id) for r in rows]

    async def held_recent(self, limit: int = 20) -> list[dict[str, object]]:
        """Texts kept raw because they could not be read (newest first)."""
        query = (sa.select(held.c.id, held.c.received_at, held.c.sender, held.c.reason, held.c.outcome)
                 .order_by(held.c.id.desc()).limit(limit))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def last_runs(self) -> dict[tuple[str, str], JobRunInfo]:
        """The latest run of each (job, scope)."""
        latest = (sa.select(job_runs.c.job, job_runs.c.scope, sa.func.max(job_runs.c.id).label("id"))
                  .group_by(job_runs.c.job, job_runs.c.scope).subquery())
        query = sa.select(job_runs).join(latest, job_runs.c.id == latest.c.id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {(r.job, r.scope): JobRunInfo(r.job, r.scope, r.period, r.status, r.started_at, r.finished_at, r.error)
                for r in rows}

    async def job_failures_total(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(job_runs.c.job, sa.func.count()).where(job_runs.c.status == "failed")
                                       .group_by(job_runs.c.job))).all()
        return {r[0]: int(r[1]) for r in rows}


__all__ = ["Depths", "Failure", "JobRunInfo", "OpsRepo"]
