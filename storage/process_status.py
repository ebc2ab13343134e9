"""What `status` says about the processes sharing a database: what each holds, how old the queues are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from storage.db import Database
from storage.inbox import RECEIVED, inbound
from storage.job_runs import job_runs
from storage.outbox import outbox


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a process has claimed and not finished."""

    inbound: int = 0
    outbound: int = 0
    jobs: tuple[str, ...] = ()


async def holdings(db: Database, ids: list[str]) -> dict[str, Holdings]:
    """Claimed, unfinished work of each process: inbound to handle, outbound being sent, job runs."""
    if not ids:
        return {}
    async with db.read() as conn:
        ins = {r[0]: int(r[1]) for r in (await conn.execute(
            sa.select(inbound.c.claimed_by, sa.func.count())
            .where(inbound.c.status == RECEIVED, inbound.c.claimed_by.in_(ids))
            .group_by(inbound.c.claimed_by))).all()}
        outs = {r[0]: int(r[1]) for r in (await conn.execute(
            sa.select(outbox.c.claimed_by, sa.func.count())
            .where(outbox.c.status == "sending", outbox.c.claimed_by.in_(ids))
            .group_by(outbox.c.claimed_by))).all()}
        jobs: dict[str, list[str]] = {}
        for owner, job, scope in (await conn.execute(
                sa.select(job_runs.c.owner, job_runs.c.job, job_runs.c.scope)
                .where(job_runs.c.status == "running", job_runs.c.owner.in_(ids)))).all():
            jobs.setdefault(owner, []).append(f"{job}:{scope}" if scope else job)
    return {i: Holdings(ins.get(i, 0), outs.get(i, 0), tuple(jobs.get(i, ()))) for i in ids}


async def oldest_waiting(db: Database) -> tuple[datetime | None, datetime | None]:
    """When the oldest unhandled inbound was stored, and when the oldest unsent outbound was queued."""
    async with db.read() as conn:
        first_in = (await conn.execute(
            sa.select(sa.func.min(inbound.c.stored_at)).where(inbound.c.status == RECEIVED))).scalar()
        first_out = (await conn.execute(
            sa.select(sa.func.min(outbox.c.created_at)).where(outbox.c.status.in_(("queued", "sending"))))).scalar()
    return first_in, first_out
