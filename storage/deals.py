"""Deals, their events, who owns them, cached analyses and monitoring subscriptions.

Deals keep the CRM's own id; events carry a stable `key` from their source, so importing or
syncing the same data twice updates rather than duplicates (a task that got done is updated).
The CRM's manager reference (`owner_ref`) is mapped to a person once, here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.deal_records import Deal, DealEvent, DealStatus, EventKind
from storage.people import addresses, persons
from storage.types import Money, UTCDateTime

deals = sa.Table(
    "deals",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("stage", sa.String(200), nullable=False),
    sa.Column("pipeline", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("budget", Money, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("owner_ref", sa.String(200)),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("contact", sa.String(300)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

deal_events = sa.Table(
    "deal_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("duration_s", sa.Integer),
    sa.Column("direction", sa.String(8)),
    sa.Column("text", sa.Text),
    sa.Column("from_stage", sa.String(200)),
    sa.Column("to_stage", sa.String(200)),
    sa.Column("due_at", UTCDateTime),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("done_at", UTCDateTime),
    sa.UniqueConstraint("deal_id", "key"),
)

deal_owners = sa.Table(
    "deal_owners",
    metadata,
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("owner_ref", sa.String(200), primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
)

deal_analyses = sa.Table(
    "deal_analyses",
    metadata,
    sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("analysis", sa.JSON, nullable=False),
    sa.Column("analyzed_at", UTCDateTime, nullable=False),
)

deal_monitors = sa.Table(
    "deal_monitors",
    metadata,
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("interval_hours", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

deal_watch = sa.Table(
    "deal_watch",
    metadata,
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("stale", sa.Boolean, nullable=False),
    sa.Column("advice", sa.String(64), nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)
"""Each deal as a manager's last monitoring run saw it, so the next run can say what changed."""

deal_sent = sa.Table(
    "deal_sent",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
    sa.Column("advice", sa.String(64), nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("person_id", "deal_id", "advice", name="uq_deal_sent_advice"),
)
"""Every analysis a manager was sent unasked, by its advice: never the same one twice; counted per day."""

CHUNK = 500


@dataclass(frozen=True, slots=True)
class Seen:
    priority: str
    stale: bool
    advice: str


@dataclass(frozen=True, slots=True)
class Monitor:
    person_id: int
    interval_hours: int
    started_at: datetime
    active: bool


@dataclass(frozen=True, slots=True)
class UpsertResult:
    deals: int
    events: int
    unassigned: list[int]
    """Deal ids whose owner could not be matched to a person."""
    unmapped_owners: dict[str, int] = field(default_factory=dict)
    """CRM owner references that match no person, with how many deals each has."""


def event_key(e: DealEvent) -> str:
    """The source's key, or a hash of the event's content when the source has none."""
    if e.key:
        return e.key[:200]
    raw = "|".join(str(x) for x in (e.kind, e.at.isoformat(), e.duration_s, e.direction, e.text, e.from_stage,
                                    e.to_stage, e.due_at.isoformat() if e.due_at else ""))
    return "h:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def _event(row: Any) -> DealEvent:
    return DealEvent(
        kind=EventKind(row.kind), at=row.at, duration_s=row.duration_s, direction=row.direction, text=row.text,
        from_stage=row.from_stage, to_stage=row.to_stage, due_at=row.due_at, done=bool(row.done),
        done_at=row.done_at, key=row.key,
    )


def _deal(row: Any) -> Deal:
    return Deal(
        id=int(row.id), name=row.name, created_at=row.created_at, stage=row.stage, budget=row.budget,
        currency=row.currency, status=DealStatus(row.status), owner_ref=row.owner_ref, person_id=row.person_id,
        contact=row.contact, pipeline=row.pipeline, source=row.source,
    )


class DealRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, items: Sequence[Deal], now: datetime) -> UpsertResult:
        """Insert or update deals and their events in one transaction; owners resolved to people."""

        async def unit(conn: AsyncConnection) -> UpsertResult:
            owners: dict[tuple[str, str], int | None] = {}
            unassigned: list[int] = []
            unmapped: dict[str, int] = {}
            n_events = 0
            for d in items:
                person_id = d.person_id
                if person_id is None and d.owner_ref:
                    k = (d.source, d.owner_ref)
                    if k not in owners:
                        owners[k] = await self._resolve_owner(conn, d.source, d.owner_ref)
                    person_id = owners[k]
                if person_id is None:
                    unassigned.append(d.id)
                    if d.owner_ref:
                        unmapped[d.owner_ref] = unmapped.get(d.owner_ref, 0) + 1
                values = {
                    "source": d.source, "name": d.name[:500], "stage": (d.stage or "")[:200], "pipeline": d.pipeline,
                    "status": d.status.value, "budget": d.budget, "currency": d.currency[:8],
                    "owner_ref": d.owner_ref, "person_id": person_id, "contact": d.contact,
                    "created_at": d.created_at, "updated_at": now,
                }
                stmt = self.db.insert(deals).values(id=d.id, **values)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
                rows = [
                    {
                        "deal_id": d.id, "key": event_key(e), "kind": e.kind.value, "at": e.at,
                        "duration_s": e.duration_s, "direction": e.direction, "text": e.text,
                        "from_stage": e.from_stage, "to_stage": e.to_stage, "due_at": e.due_at, "done": e.done,
                        "done_at": e.done_at,
                    }
                    for e in d.events
                ]
                if rows:
                    ins = self.db.insert(deal_events)
                    await conn.execute(
                        ins.on_conflict_do_update(
                            index_elements=["deal_id", "key"],
                            set_={c: getattr(ins.excluded, c) for c in ("at", "duration_s", "text", "due_at", "done",
                                                                        "done_at", "to_stage", "from_stage")},
                        ),
                        rows,
                    )
                    n_events += len(rows)
            return UpsertResult(len(items), n_events, unassigned, unmapped)

        return await self.db.run(unit)

    async def _resolve_owner(self, conn: AsyncConnection, source: str, ref: str) -> int | None:
        """The owners map first, then a person whose external id, Telegram id or name is `ref`."""
        row = (await conn.execute(sa.select(deal_owners.c.person_id).where(
            deal_owners.c.source == source, deal_owners.c.owner_ref == ref))).first()
        if row:
            return int(row.person_id)
        row = (await conn.execute(sa.select(persons.c.id).where(persons.c.external_id == ref))).first()
        if row is None:
            row = (await conn.execute(sa.select(addresses.c.person_id.label("id")).where(
                addresses.c.channel == "telegram", addresses.c.address == ref))).first()
        if row is None:
            row = (await conn.execute(sa.select(persons.c.id).where(
                sa.func.lower(persons.c.name) == ref.strip().lower()))).first()
        return int(row.id) if row else None

    async def map_owner(self, source: str, owner_ref: str, person_id: int) -> int:
        """Link a CRM user to a person and give them the deals already imported under that name.

        Returns how many stored deals are now theirs.
        """

        async def unit(conn: AsyncConnection) -> int:
            stmt = self.db.insert(deal_owners).values(source=source, owner_ref=owner_ref, person_id=person_id)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["source", "owner_ref"],
                                                          set_={"person_id": person_id}))
            result = await conn.execute(deals.update().where(deals.c.source == source,
                                                             deals.c.owner_ref == owner_ref)
                                        .values(person_id=person_id))
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    # -- reads ---------------------------------------------------------------------------------

    async def _with_events(self, conn: AsyncConnection, rows: Iterable[Any]) -> list[Deal]:
        found = {int(r.id): _deal(r) for r in rows}
        ids = list(found)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            result = await conn.execute(
                sa.select(deal_events).where(deal_events.c.deal_id.in_(chunk)).order_by(deal_events.c.at,
                                                                                        deal_events.c.id))
            for r in result:
                found[int(r.deal_id)].events.append(_event(r))
        return list(found.values())

    async def get(self, deal_id: int) -> Deal | None:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(deals).where(deals.c.id == deal_id))).all()
            got = await self._with_events(conn, rows)
        return got[0] if got else None

    async def for_person(self, person_id: int, *, active_only: bool = True) -> list[Deal]:
        q = sa.select(deals).where(deals.c.person_id == person_id)
        if active_only:
            q = q.where(deals.c.status == DealStatus.ACTIVE.value)
        async with self.db.read() as conn:
            return await self._with_events(conn, (await conn.execute(q.order_by(deals.c.id))).all())

    async def all_active(self) -> list[Deal]:
        q = sa.select(deals).where(deals.c.status == DealStatus.ACTIVE.value).order_by(deals.c.id)
        async with self.db.read() as conn:
            return await self._with_events(conn, (await conn.execute(q)).all())

    async def owners_with_active_deals(self) -> list[int]:
        q = (sa.select(deals.c.person_id).where(deals.c.status == DealStatus.ACTIVE.value,
                                                deals.c.person_id.is_not(None))
             .distinct().order_by(deals.c.person_id))
        async with self.db.read() as conn:
            return [int(r.person_id) for r in await conn.execute(q)]

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(deals))).scalar_one())

    # -- analysis cache (the coach's AnalysisCache) --------------------------------------------

    async def cached_analysis(self, deal_id: int, fingerprint: str) -> tuple[dict[str, Any], datetime] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(deal_analyses.c.analysis, deal_analyses.c.analyzed_at).where(
                deal_analyses.c.deal_id == deal_id, deal_analyses.c.fingerprint == fingerprint))).first()
        return (dict(row.analysis), row.analyzed_at) if row else None

    async def save_analysis(
        self, deal_id: int, fingerprint: str, locale: str, source: str, analysis: dict[str, Any], at: datetime
    ) -> None:
        async def unit(conn: AsyncConnection) -> None:
            values = {"locale": locale, "source": source, "analysis": analysis, "analyzed_at": at}
            stmt = self.db.insert(deal_analyses).values(deal_id=deal_id, fingerprint=fingerprint, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["deal_id", "fingerprint"], set_=values))

        await self.db.run(unit)

    # -- monitoring ------------------------------------------------------------------------------

    async def set_monitor(self, person_id: int, interval_hours: int, now: datetime) -> Monitor:
        async def unit(conn: AsyncConnection) -> None:
            values = {"interval_hours": interval_hours, "started_at": now, "active": True, "updated_at": now}
            stmt = self.db.insert(deal_monitors).values(person_id=person_id, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["person_id"], set_=values))

        await self.db.run(unit)
        return Monitor(person_id, interval_hours, now, True)

    async def stop_monitor(self, person_id: int, now: datetime) -> bool:
        """True if a running monitor was stopped."""

        async def unit(conn: AsyncConnection) -> bool:
            result = await conn.execute(deal_monitors.update().where(
                deal_monitors.c.person_id == person_id, deal_monitors.c.active.is_(True))
                .values(active=False, updated_at=now))
            return bool(result.rowcount)

        return await self.db.run(unit)

    # -- what a manager was told (monitoring digests) ---------------------------------------------

    async def watch(self, person_id: int) -> dict[int, Seen]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(deal_watch).where(deal_watch.c.person_id == person_id))).all()
        return {int(r.deal_id): Seen(r.priority, bool(r.stale), r.advice) for r in rows}

    async def save_watch(self, person_id: int, seen: dict[int, Seen], now: datetime) -> None:
        """Replace the manager's snapshot with `seen` (deals no longer active drop out)."""

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(deal_watch.delete().where(deal_watch.c.person_id == person_id))
            rows = [{"person_id": person_id, "deal_id": d, "priority": v.priority, "stale": v.stale,
                     "advice": v.advice, "seen_at": now} for d, v in seen.items()]
            for i in range(0, len(rows), CHUNK):
                await conn.execute(deal_watch.insert(), rows[i : i + CHUNK])

        await self.db.run(unit)

    async def sent_advice(self, person_id: int, deal_ids: Sequence[int]) -> set[tuple[int, str]]:
        """(deal id, advice) pairs already sent to this manager, for these deals."""
        found: set[tuple[int, str]] = set()
        async with self.db.read() as conn:
            for i in range(0, len(deal_ids), CHUNK):
                q = sa.select(deal_sent.c.deal_id, deal_sent.c.advice).where(
                    deal_sent.c.person_id == person_id, deal_sent.c.deal_id.in_(list(deal_ids[i : i + CHUNK])))
                found.update((int(r.deal_id), r.advice) for r in await conn.execute(q))
        return found

    async def sent_since(self, person_id: int, since: datetime) -> int:
        """How many analyses this manager was sent unasked since `since` (the daily cap)."""
        async with self.db.read() as conn:
            q = sa.select(sa.func.count()).select_from(deal_sent).where(
                deal_sent.c.person_id == person_id, deal_sent.c.sent_at >= since)
            return int((await conn.execute(q)).scalar_one())

    async def record_sent(self, person_id: int, deal_id: int, advice: str, now: datetime) -> bool:
        """Note an analysis as sent; False when this very advice had been sent before."""

        async def unit(conn: AsyncConnection) -> bool:
            stmt = self.db.insert(deal_sent).values(person_id=person_id, deal_id=deal_id, advice=advice, sent_at=now)
            result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["person_id", "deal_id", "advice"]))
            return bool(result.rowcount)

        return await self.db.run(unit)

    async def monitor(self, person_id: int) -> Monitor | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(deal_monitors).where(deal_monitors.c.person_id == person_id))).first()
        return Monitor(row.person_id, row.interval_hours, row.started_at, bool(row.active)) if row else None

    async def monitors(self, *, active_only: bool = True) -> list[Monitor]:
        q = sa.select(deal_monitors).order_by(deal_monitors.c.person_id)
        if active_only:
            q = q.where(deal_monitors.c.active.is_(True))
        async with self.db.read() as conn:
            rows = (await conn.execute(q)).all()
        return [Monitor(r.person_id, r.interval_hours, r.started_at, bool(r.active)) for r in rows]
