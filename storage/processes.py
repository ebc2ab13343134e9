"""Running Huddle processes (gateways, workers, all-in-one) and the leases their heartbeats keep.

Work a process claims (an inbound to handle, an outbound to send, a scheduled run) names it as
owner. The lease on all of it is the owner's row here: `lease_until` moves forward with every
heartbeat, so another process takes the work over only once the owner has stopped beating for a
whole lease (`dead_owner`), never while it is alive, however long one send takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.types import UTCDateTime

processes = sa.Table(
    "processes",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime),
)


def dead_owner(owner: Any, now: Any) -> Any:
    """SQL: `owner` names a process whose lease has run out (or that never registered)."""
    live = sa.select(processes.c.id).where(processes.c.lease_until >= now, processes.c.stopped_at.is_(None))
    return sa.and_(owner.is_not(None), owner.not_in(live.scalar_subquery()))


@dataclass(frozen=True, slots=True)
class ProcessRow:
    id: str
    role: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime


class ProcessRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, row: ProcessRow) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(processes.delete().where(processes.c.id == row.id))
            await conn.execute(processes.insert().values(
                id=row.id, role=row.role, host=row.host, pid=row.pid, started_at=row.started_at,
                heartbeat_at=row.heartbeat_at, lease_until=row.lease_until))

        await self.db.run(unit)

    async def beat(self, process_id: str, now: datetime, lease: float) -> bool:
        """Extend this process's lease; False if it was stopped or lost (another took its work)."""

        async def unit(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                processes.update()
                .where(processes.c.id == process_id, processes.c.stopped_at.is_(None))
                .values(heartbeat_at=now, lease_until=now + timedelta(seconds=lease)))
            return bool(result.rowcount)

        return await self.db.run(unit)

    async def stop(self, process_id: str, now: datetime) -> None:
        """A clean stop: the lease ends now, so what is left is taken over at once."""

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(processes.update().where(processes.c.id == process_id)
                               .values(lease_until=now, stopped_at=now))

        await self.db.run(unit)

    async def live(self, now: datetime) -> list[ProcessRow]:
        p = processes.c
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(processes).where(p.lease_until >= now, p.stopped_at.is_(None))
                .order_by(p.role, p.started_at))).all()
        return [ProcessRow(r.id, r.role, r.host, r.pid, r.started_at, r.heartbeat_at, r.lease_until) for r in rows]


QUEUE_TABLES = ("inbound", "outbox")
_STALE_STATISTICS = sa.text(
    "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('inbound', 'outbox') AND schemaname = current_schema()"
    " AND n_mod_since_analyze > 200 + 0.2 * greatest(n_live_tup, 0)"
)
_ANALYZE_LOCK = 0x68756464_6c650001 & 0x7FFFFFFFFFFFFFFF
"""Advisory lock key: one process at a time refreshes them."""


async def refresh_queue_statistics(db: Database) -> list[str]:
    """ANALYZE the queue tables that changed much since their last statistics (PostgreSQL).

    The claims' plans depend on them: a queue that filled in a burst since the last ANALYZE
    looks empty to the planner, which then reads index ranges that hold the whole queue for each
    row it checks. Autovacuum looks at most once a minute (`autovacuum_naptime`); a queue fills
    in seconds. Returns the tables analyzed; does nothing while another process is at it.
    """
    if db.dialect != "postgresql":
        return []

    async with db.read() as conn:
        stale = [r[0] for r in (await conn.execute(_STALE_STATISTICS)).all() if r[0] in QUEUE_TABLES]
    if not stale:
        return []
    async with db.transaction() as conn:  # its own, not a shared group commit
        locked = (await conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ANALYZE_LOCK})).scalar()
        if not locked:
            return []
        await conn.execute(sa.text(f"ANALYZE {', '.join(stale)}"))
    return stale


def lost_connection(exc: BaseException) -> bool:
    """The database went away under this operation (reset, restart, unreachable), as opposed to
    an error in what was asked: the work should be retried, not recorded as failed."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import InterfaceError as SaInterfaceError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError | ConnectionError | SaInterfaceError):
            return True
        if isinstance(cur, DBAPIError) and cur.connection_invalidated:
            return True
        name = type(cur).__name__
        if name in {"ConnectionDoesNotExistError", "InterfaceError", "ConnectionFailureError",
                    "CannotConnectNowError", "AdminShutdownError", "InternalClientError"}:
            return True
        if "connection is closed" in str(cur) or "connection was closed" in str(cur):
            return True
        cur = getattr(cur, "orig", None) or cur.__cause__ or cur.__context__
    return False
