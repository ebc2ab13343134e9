"""Chatters, their teams, remembered name aliases, daily metrics and the coaching log.

Daily metrics are unique per (chatter, day): an export uploaded again for the same day updates
the row instead of adding one, and each source (the CSV, Hubstaff) only writes its own columns.
Hours remember where they came from (`hours_source`): a corrected export replaces the hours an
earlier export gave, but never the hours Hubstaff gave (Hubstaff is the authority on who worked).

Team leads enrolled with an invite (not in the config file) keep their shift in
`chat_lead_shifts`, so their briefing is scheduled like a configured lead's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.types import Money, UTCDateTime

chat_teams = sa.Table(
    "chat_teams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

chatters = sa.Table(
    "chatters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("norm_name", sa.String(200), nullable=False, unique=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("chat_teams.id", ondelete="SET NULL")),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

chatter_aliases = sa.Table(
    "chatter_aliases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("alias", sa.String(200), nullable=False),
    sa.Column("norm_alias", sa.String(200), nullable=False, unique=True),
    sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

METRIC_COLUMNS = ("sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s", "fans_chatted",
                  "ppvs_sent", "ppvs_unlocked", "hours", "group")

chatter_days = sa.Table(
    "chatter_days",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("sales", Money),
    sa.Column("cvr", sa.Float),
    sa.Column("unlock_rate", sa.Float),
    sa.Column("golden_ratio", sa.Float),
    sa.Column("msgs_per_hr", sa.Float),
    sa.Column("reply_time_s", sa.Float),
    sa.Column("fans_chatted", sa.Integer),
    sa.Column("ppvs_sent", sa.Integer),
    sa.Column("ppvs_unlocked", sa.Integer),
    sa.Column("hours", sa.Float),
    sa.Column("group", sa.String(200), key="group"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("hours_source", sa.String(16)),
    sa.UniqueConstraint("chatter_id", "day", name="uq_chatter_days_chatter_id_day"),
    sa.Index("ix_chatter_days_day", "day"),
)

HUBSTAFF = "hubstaff"
EXPORT = "export"
"""Values of `chatter_days.hours_source`."""

chat_lead_shifts = sa.Table(
    "chat_lead_shifts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("shift_start", sa.String(5), nullable=False),
    sa.Column("days", sa.String(64), nullable=False),
    sa.Column("teams", sa.JSON, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

coaching_log = sa.Table(
    "coaching_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("lead_id", sa.Integer),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("notes", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_coaching_log_chatter", "chatter_id", "at"),
)

DAY_OFF_HOURS = 1.0
"""Hubstaff is the authority: fewer tracked hours than this means the chatter did not work that day."""


@dataclass(slots=True)
class DayMetrics:
    """A chatter's stored numbers for one day (from the CSV and Hubstaff, merged)."""

    chatter_id: int
    day: date
    sales: Decimal | None = None
    cvr: float | None = None
    unlock_rate: float | None = None
    golden_ratio: float | None = None
    msgs_per_hr: float | None = None
    reply_time_s: float | None = None
    fans_chatted: int | None = None
    ppvs_sent: int | None = None
    ppvs_unlocked: int | None = None
    hours: float | None = None
    group: str | None = None
    hours_source: str | None = None

    @property
    def day_off(self) -> bool:
        """True only when hours are known and under one hour: unknown hours are not a day off."""
        return self.hours is not None and self.hours < DAY_OFF_HOURS

    @property
    def sales_per_hr(self) -> float | None:
        if self.sales is None or not self.hours:
            return None
        return float(self.sales) / self.hours

    @property
    def fans_per_hr(self) -> float | None:
        if self.fans_chatted is None or not self.hours:
            return None
        return self.fans_chatted / self.hours

    def kpi(self, kpi: str) -> float | None:
        """A KPI by its name (`coaching.chatter_metrics.Kpi`)."""
        if kpi == "sales_per_hr":
            return self.sales_per_hr
        if kpi == "reply_time":
            return self.reply_time_s
        return getattr(self, kpi)


@dataclass(slots=True)
class Chatter:
    id: int
    name: str
    team: str | None = None
    active: bool = True
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Snapshot:
    chatters: list[Chatter]
    days: list[DayMetrics]
    last_coached: dict[int, datetime]


COACHING = "coaching"
REPORT = "report"


@dataclass(frozen=True, slots=True)
class LogEntry:
    chatter_id: int
    lead_id: int | None
    kind: str
    notes: str
    at: datetime


class ChatterRepo:
    def __init__(self, db: Database, normalize: Callable[[str], str] = lambda s: " ".join(s.casefold().split())):
        self.db = db
        self.normalize = normalize
        """How names are keyed (unique); the coaching layer passes its name normaliser."""

    # -- roster ----------------------------------------------------------------------------------

    async def sync_roster(self, teams: dict[str, Sequence[str]], now: datetime, *, deactivate_others: bool) -> int:
        """Make the roster match `{team: [chatter names]}`; returns how many chatters are active."""

        async def unit(conn: AsyncConnection) -> int:
            listed: set[str] = set()
            for team, names in teams.items():
                team_id = await self._team_id(conn, team, now)
                for name in names:
                    norm = self.normalize(name)
                    listed.add(norm)
                    stmt = self.db.insert(chatters).values(
                        name=name, norm_name=norm, team_id=team_id, active=True, created_at=now, updated_at=now
                    )
                    await conn.execute(stmt.on_conflict_do_update(
                        index_elements=["norm_name"],
                        set_={"name": name, "team_id": team_id, "active": True, "updated_at": now},
                    ))
            if deactivate_others:
                await conn.execute(
                    chatters.update().where(chatters.c.norm_name.not_in(listed) if listed else sa.true())
                    .values(active=False, updated_at=now)
                )
            return len(listed)

        return await self.db.run(unit)

    async def add_chatter(self, name: str, team: str | None, now: datetime, active: bool = True) -> int:
        async def unit(conn: AsyncConnection) -> int:
            team_id = await self._team_id(conn, team, now) if team else None
            result = await conn.execute(chatters.insert().values(
                name=name, norm_name=self.normalize(name), team_id=team_id, active=active, created_at=now,
                updated_at=now,
            ))
            return int(result.inserted_primary_key[0])

        return await self.db.run(unit)

    async def _team_id(self, conn: AsyncConnection, name: str, now: datetime) -> int:
        row = (await conn.execute(sa.select(chat_teams.c.id).where(chat_teams.c.name == name))).first()
        if row:
            return int(row.id)
        result = await conn.execute(chat_teams.insert().values(name=name, created_at=now))
        return int(result.inserted_primary_key[0])

    async def teams(self) -> list[str]:
        async with self.db.read() as conn:
            return list((await conn.execute(sa.select(chat_teams.c.name).order_by(chat_teams.c.name))).scalars())

    async def chatters(self, *, include_inactive: bool = True) -> list[Chatter]:
        """Chatters with their remembered aliases, by name."""
        async with self.db.read() as conn:
            return await self._chatters_in(conn, include_inactive)

    async def _chatters_in(self, conn: AsyncConnection, include_inactive: bool) -> list[Chatter]:
        query = (
            sa.select(chatters.c.id, chatters.c.name, chatters.c.active, chat_teams.c.name.label("team"))
            .select_from(chatters.outerjoin(chat_teams, chatters.c.team_id == chat_teams.c.id))
            .order_by(chatters.c.name)
        )
        if not include_inactive:
            query = query.where(chatters.c.active.is_(True))
        rows = (await conn.execute(query)).all()
        alias_rows = (await conn.execute(sa.select(chatter_aliases.c.alias, chatter_aliases.c.chatter_id))).all()
        by_chatter: dict[int, list[str]] = {}
        for a in alias_rows:
            by_chatter.setdefault(a.chatter_id, []).append(a.alias)
        return [Chatter(r.id, r.name, r.team, bool(r.active), by_chatter.get(r.id, [])) for r in rows]

    async def snapshot(self, since: date, until: date, *, include_inactive: bool = False) -> Snapshot:
        """Chatters, their days in [since, until] and last coaching times, in one read."""
        async with self.db.read() as conn:
            return Snapshot(
                await self._chatters_in(conn, include_inactive),
                await self._days_in(conn, since, until, None),
                await self._last_coached_in(conn),
            )

    # -- aliases ---------------------------------------------------------------------------------

    async def aliases(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(chatter_aliases.c.alias, chatter_aliases.c.chatter_id))).all()
        return {r.alias: r.chatter_id for r in rows}

    async def add_alias(self, alias: str, chatter_id: int, by: int | None, now: datetime) -> None:
        """Remember that `alias` means this chatter (a later confirmation replaces an earlier one)."""

        async def unit(conn: AsyncConnection) -> None:
            stmt = self.db.insert(chatter_aliases).values(
                alias=alias, norm_alias=self.normalize(alias), chatter_id=chatter_id, created_by=by, created_at=now
            )
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["norm_alias"], set_={"alias": alias, "chatter_id": chatter_id, "created_by": by,
                                                     "created_at": now},
            ))

        await self.db.run(unit)

    # -- daily metrics ---------------------------------------------------------------------------

    async def upsert_days(self, rows: Sequence[dict[str, Any]], columns: Iterable[str], now: datetime, *,
                          hours_source: str | None = None) -> int:
        """Insert or update (chatter_id, day) rows, writing only `columns` (the source's own).

        With `hours_source=HUBSTAFF` the hours always win; with `EXPORT` they replace an earlier
        export's hours but never Hubstaff's. Without a source (seeding, tests) hours are written
        as given.
        """
        cols = [c for c in columns if c in METRIC_COLUMNS]
        if not rows:
            return 0
        values = []
        for r in rows:
            value = {"chatter_id": r["chatter_id"], "day": r["day"], "updated_at": now, **{c: r.get(c) for c in cols}}
            if "hours" in cols and hours_source is not None:
                value["hours_source"] = hours_source if r.get("hours") is not None else None
            values.append(value)

        async def unit(conn: AsyncConnection) -> int:
            stmt = self.db.insert(chatter_days)
            set_: dict[str, Any] = {c: stmt.excluded[c] for c in cols}
            if "hours" in cols and hours_source == EXPORT:
                by_hubstaff = chatter_days.c.hours_source == HUBSTAFF
                set_["hours"] = sa.case((by_hubstaff, chatter_days.c.hours), else_=stmt.excluded.hours)
                set_["hours_source"] = sa.case((by_hubstaff, chatter_days.c.hours_source),
                                               else_=stmt.excluded.hours_source)
            elif "hours" in cols and hours_source is not None:
                set_["hours_source"] = stmt.excluded.hours_source
            stmt = stmt.on_conflict_do_update(
                index_elements=["chatter_id", "day"], set_={**set_, "updated_at": stmt.excluded.updated_at},
            )
            await conn.execute(stmt, values)
            return len(values)

        return await self.db.run(unit)

    async def days(self, since: date, until: date, chatter_ids: Iterable[int] | None = None) -> list[DayMetrics]:
        async with self.db.read() as conn:
            return await self._days_in(conn, since, until, chatter_ids)

    async def _days_in(self, conn: AsyncConnection, since: date, until: date,
                       chatter_ids: Iterable[int] | None) -> list[DayMetrics]:
        query = (
            sa.select(chatter_days)
            .where(chatter_days.c.day >= since, chatter_days.c.day <= until)
            .order_by(chatter_days.c.chatter_id, chatter_days.c.day)
        )
        if chatter_ids is not None:
            query = query.where(chatter_days.c.chatter_id.in_(list(chatter_ids)))
        rows = (await conn.execute(query)).all()
        return [
            DayMetrics(chatter_id=r.chatter_id, day=r.day, hours_source=r.hours_source,
                       **{c: getattr(r, c) for c in METRIC_COLUMNS})
            for r in rows
        ]

    async def count_days(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(chatter_days))).scalar_one())

    async def latest_day(self) -> date | None:
        async with self.db.read() as conn:
            return (await conn.execute(sa.select(sa.func.max(chatter_days.c.day)))).scalar_one()

    # -- coaching log ----------------------------------------------------------------------------

    async def log(self, chatter_id: int, lead_id: int | None, kind: str, notes: str, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(coaching_log.insert().values(
                chatter_id=chatter_id, lead_id=lead_id, kind=kind, notes=notes, at=now
            ))

        await self.db.run(unit)

    async def last_coached(self) -> dict[int, datetime]:
        async with self.db.read() as conn:
            return await self._last_coached_in(conn)

    async def _last_coached_in(self, conn: AsyncConnection) -> dict[int, datetime]:
        query = (
            sa.select(coaching_log.c.chatter_id, sa.func.max(coaching_log.c.at).label("at"))
            .where(coaching_log.c.kind == COACHING)
            .group_by(coaching_log.c.chatter_id)
        )
        rows = (await conn.execute(query)).all()
        dialect = self.db.engine.dialect
        return {r.chatter_id: UTCDateTime().process_result_value(r.at, dialect) for r in rows}

    async def entries(self, chatter_id: int, limit: int = 5) -> list[LogEntry]:
        query = (
            sa.select(coaching_log).where(coaching_log.c.chatter_id == chatter_id)
            .order_by(coaching_log.c.at.desc(), coaching_log.c.id.desc()).limit(limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [LogEntry(r.chatter_id, r.lead_id, r.kind, r.notes, r.at) for r in rows]

    async def recent(self, kind: str, since: date, limit: int = 50) -> list[LogEntry]:
        query = (
            sa.select(coaching_log).where(coaching_log.c.kind == kind)
            .order_by(coaching_log.c.at.desc(), coaching_log.c.id.desc()).limit(limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [LogEntry(r.chatter_id, r.lead_id, r.kind, r.notes, r.at) for r in rows if r.at.date() >= since]


@dataclass(frozen=True, slots=True)
class LeadShift:
    """An invited team lead's shift: briefings go out 30 minutes before it."""

    person_id: int
    shift_start: str
    """"HH:MM" in `timezone`."""
    days: list[str]
    teams: list[str]
    """Empty: every team."""
    timezone: str


class LeadShiftRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[LeadShift]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(chat_lead_shifts).order_by(chat_lead_shifts.c.person_id))).all()
        return [self._shift(r) for r in rows]

    async def get(self, person_id: int) -> LeadShift | None:
        query = sa.select(chat_lead_shifts).where(chat_lead_shifts.c.person_id == person_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return self._shift(row) if row else None

    async def put(self, shift: LeadShift, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            values = {"shift_start": shift.shift_start, "days": ",".join(shift.days), "teams": list(shift.teams),
                      "timezone": shift.timezone, "updated_at": now}
            stmt = self.db.insert(chat_lead_shifts).values(person_id=shift.person_id, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["person_id"], set_=values))

        await self.db.run(unit)

    async def remove(self, person_id: int) -> bool:
        async def unit(conn: AsyncConnection) -> bool:
            result = await conn.execute(chat_lead_shifts.delete().where(chat_lead_shifts.c.person_id == person_id))
            return bool(result.rowcount)

        return await self.db.run(unit)

    @staticmethod
    def _shift(row: Any) -> LeadShift:
        return LeadShift(row.person_id, row.shift_start, [d for d in row.days.split(",") if d], list(row.teams or []),
                         row.timezone)
