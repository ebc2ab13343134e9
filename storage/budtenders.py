"""Budtender shifts, watermarks and the coaching record (every message: type, variant, text, sent, answered).

The coaching record's unique `key` is the same as the outbox idempotency key, so a trigger
evaluated again after a restart finds its message already recorded and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.events import COACHING_SENT, NewEvent, append_in
from storage.types import Money, UTCDateTime

shifts = sa.Table(
    "budtender_shifts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("store_code", sa.String(64)),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("muted_until", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("person_id", "starts_at"),
)

watermarks = sa.Table(
    "budtender_watermarks",
    metadata,
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("avg_ticket", Money, nullable=False),
    sa.Column("avg_day_sales", Money, nullable=False),
    sa.Column("avg_signups", Money, nullable=False),
    sa.Column("avg_upsell_rate", Money, nullable=False),
    sa.Column("avg_house_share", Money, nullable=False),
    sa.Column("best_day_sales", Money, nullable=False),
    sa.Column("best_avg_ticket", Money, nullable=False),
    sa.Column("best_signups", sa.Integer, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
)

coaching_messages = sa.Table(
    "budtender_coaching",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("shift_id", sa.Integer, sa.ForeignKey("budtender_shifts.id", ondelete="SET NULL")),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("variant", sa.String(8), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("answered_at", UTCDateTime),
)


@dataclass(frozen=True, slots=True)
class Shift:
    id: int
    person_id: int
    starts_at: datetime
    ends_at: datetime
    store_code: str | None = None
    muted_until: datetime | None = None

    def covers(self, when: datetime) -> bool:
        return self.starts_at <= when < self.ends_at

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and now < self.muted_until

    @property
    def length(self) -> timedelta:
        return self.ends_at - self.starts_at


@dataclass(frozen=True, slots=True)
class Watermark:
    """A budtender's own recent averages and bests (recomputed nightly)."""

    person_id: int
    days: int = 0
    avg_ticket: Decimal = Decimal("0")
    avg_day_sales: Decimal = Decimal("0")
    avg_signups: Decimal = Decimal("0")
    avg_upsell_rate: Decimal = Decimal("0")
    avg_house_share: Decimal = Decimal("0")
    best_day_sales: Decimal = Decimal("0")
    best_avg_ticket: Decimal = Decimal("0")
    best_signups: int = 0
    computed_at: datetime | None = None

    @property
    def known(self) -> bool:
        return self.days > 0 and self.avg_ticket > 0


@dataclass(frozen=True, slots=True)
class Sent:
    """A coaching message already recorded (what the trigger rules look back at)."""

    key: str
    kind: str
    sent_at: datetime
    orders_at_send: int = 0


_WM_FIELDS = ("days", "avg_ticket", "avg_day_sales", "avg_signups", "avg_upsell_rate", "avg_house_share",
              "best_day_sales", "best_avg_ticket", "best_signups")


@dataclass(frozen=True, slots=True)
class ShiftRow:
    """A shift to store: `source` is config, import or demo."""

    person_id: int
    starts_at: datetime
    ends_at: datetime
    store_code: str | None = None
    source: str = "config"


@dataclass(frozen=True, slots=True)
class ResponseRate:
    kind: str
    variant: str
    sent: int
    answered: int

    @property
    def rate(self) -> Decimal:
        return (Decimal(self.answered) / self.sent).quantize(Decimal("0.001")) if self.sent else Decimal("0")


def _shift(row: Any) -> Shift:
    return Shift(row.id, row.person_id, row.starts_at, row.ends_at, row.store_code, row.muted_until)


class BudtenderRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- shifts ------------------------------------------------------------------------------

    async def upsert_shifts(self, rows: list[ShiftRow], now: datetime) -> int:
        """Insert or update shifts by (person, start); a shift's mute survives a re-import."""
        if not rows:
            return 0

        async def unit(conn: AsyncConnection) -> int:
            stmt = self.db.insert(shifts)
            stmt = stmt.on_conflict_do_update(
                index_elements=["person_id", "starts_at"],
                set_={"ends_at": stmt.excluded.ends_at, "store_code": stmt.excluded.store_code},
            )
            await conn.execute(stmt, [
                {"person_id": r.person_id, "starts_at": r.starts_at, "ends_at": r.ends_at, "store_code": r.store_code,
                 "source": r.source, "created_at": now} for r in rows
            ])
            return len(rows)

        return await self.db.run(unit)

    async def shift_at(self, person_id: int, when: datetime) -> Shift | None:
        async with self.db.read() as conn:
            row = (await conn.execute(
                sa.select(shifts).where(shifts.c.person_id == person_id, shifts.c.starts_at <= when,
                                        shifts.c.ends_at > when).order_by(shifts.c.starts_at.desc()).limit(1)
            )).first()
        return _shift(row) if row else None

    async def get_shift(self, shift_id: int) -> Shift | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(shifts).where(shifts.c.id == shift_id))).first()
        return _shift(row) if row else None

    async def shifts_ending_after(self, after: datetime, starting_before: datetime) -> list[Shift]:
        """Shifts that end after `after` and started before `starting_before` (the tick's window)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(shifts).where(shifts.c.ends_at > after, shifts.c.starts_at <= starting_before)
                .order_by(shifts.c.starts_at, shifts.c.id)
            )).all()
        return [_shift(r) for r in rows]

    async def shifts_of(self, person_id: int, start: datetime, end: datetime) -> list[Shift]:
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(shifts).where(shifts.c.person_id == person_id, shifts.c.starts_at >= start,
                                        shifts.c.starts_at < end).order_by(shifts.c.starts_at)
            )).all()
        return [_shift(r) for r in rows]

    async def mute(self, shift_id: int, until: datetime | None) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(shifts.update().where(shifts.c.id == shift_id).values(muted_until=until))

        await self.db.run(unit)

    # -- watermarks --------------------------------------------------------------------------

    async def save_watermarks(self, marks: list[Watermark]) -> None:
        if not marks:
            return

        async def unit(conn: AsyncConnection) -> None:
            stmt = self.db.insert(watermarks)
            stmt = stmt.on_conflict_do_update(
                index_elements=["person_id"],
                set_={c: getattr(stmt.excluded, c) for c in (*_WM_FIELDS, "computed_at")},
            )
            await conn.execute(stmt, [
                {"person_id": m.person_id, "computed_at": m.computed_at, **{f: getattr(m, f) for f in _WM_FIELDS}}
                for m in marks
            ])

        await self.db.run(unit)

    async def watermark(self, person_id: int) -> Watermark:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(watermarks).where(watermarks.c.person_id == person_id))).first()
        if row is None:
            return Watermark(person_id)
        return Watermark(person_id, computed_at=row.computed_at, **{f: getattr(row, f) for f in _WM_FIELDS})

    # -- the coaching record -----------------------------------------------------------------

    async def record(self, *, key: str, person_id: int, shift_id: int | None, kind: str, variant: str, text: str,
                     sent_at: datetime, orders: int = 0) -> bool:
        """Record a message before it is queued; False if its key was recorded already (do not send)."""

        async def unit(conn: AsyncConnection) -> bool:
            stmt = (
                self.db.insert(coaching_messages)
                .values(key=key, person_id=person_id, shift_id=shift_id, kind=kind, variant=variant, text=text,
                        orders=orders, sent_at=sent_at)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(coaching_messages.c.id)
            )
            if (await conn.execute(stmt)).first() is None:
                return False
            await append_in(conn, NewEvent(COACHING_SENT, key, sent_at, person_id, None, {
                "kind": kind, "variant": variant, "shift_id": shift_id, "orders": orders}), sent_at)
            return True

        return await self.db.run(unit)

    async def history(self, person_id: int, shift_id: int) -> list[Sent]:
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(coaching_messages.c.key, coaching_messages.c.kind, coaching_messages.c.sent_at,
                          coaching_messages.c.orders)
                .where(coaching_messages.c.person_id == person_id, coaching_messages.c.shift_id == shift_id)
                .order_by(coaching_messages.c.sent_at, coaching_messages.c.id)
            )).all()
        return [Sent(r.key, r.kind, r.sent_at, r.orders) for r in rows]

    async def recorded(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(coaching_messages.c.key).where(coaching_messages.c.key.in_(keys))))
            return {r.key for r in rows}

    async def mark_answered(self, person_id: int, now: datetime, since: datetime) -> str | None:
        """The feedback loop: mark the latest unanswered message sent after `since` answered; its kind."""

        async def unit(conn: AsyncConnection) -> str | None:
            row = (await conn.execute(
                sa.select(coaching_messages.c.id, coaching_messages.c.kind)
                .where(coaching_messages.c.person_id == person_id, coaching_messages.c.answered_at.is_(None),
                       coaching_messages.c.sent_at >= since, coaching_messages.c.sent_at <= now)
                .order_by(coaching_messages.c.sent_at.desc(), coaching_messages.c.id.desc()).limit(1)
            )).first()
            if row is None:
                return None
            await conn.execute(coaching_messages.update().where(coaching_messages.c.id == row.id)
                               .values(answered_at=now))
            return str(row.kind)

        return await self.db.run(unit)

    async def messages(self, person_id: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(coaching_messages).order_by(coaching_messages.c.sent_at, coaching_messages.c.id)
        if person_id is not None:
            query = query.where(coaching_messages.c.person_id == person_id)
        async with self.db.read() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def response_rates(self) -> list[ResponseRate]:
        """Sent and answered per type and variant (`python main.py report coaching`)."""
        c = coaching_messages.c
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(c.kind, c.variant, sa.func.count(), sa.func.count(c.answered_at))
                .group_by(c.kind, c.variant).order_by(c.kind, c.variant)
            )).all()
        return [ResponseRate(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
