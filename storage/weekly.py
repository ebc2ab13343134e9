"""The Monday report's figures for one week [start, end): sales, loyalty, coaching, deals.

Aggregates only (sums and counts grouped in SQL); the report's wording and charts are built from
these plain rows in `coaching/weekly_report.py`. Chatter scores come from the chatter service, not
from here, because scoring is coaching logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from storage.budtenders import coaching_messages
from storage.customers import customers, stores
from storage.db import Database
from storage.deals import deal_events, deals
from storage.loyalty import loyalty_ledger
from storage.people import persons
from storage.sales import transactions
from storage.types import UTCDateTime


@dataclass(slots=True)
class StoreWeek:
    name: str
    sales: Decimal = Decimal("0")
    orders: int = 0
    visitors: int = 0
    by_day: dict[date, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class CoachingRow:
    person_id: int
    name: str
    sent: int
    answered: int


@dataclass(slots=True)
class DealRow:
    person_id: int | None
    name: str
    won: int = 0
    lost: int = 0
    stale: int = 0
    won_value: Decimal = Decimal("0")


@dataclass(slots=True)
class WeekData:
    start: datetime
    end: datetime
    stores: list[StoreWeek]
    signups: int
    points_issued: int
    points_redeemed: int
    coaching: list[CoachingRow]
    deals: list[DealRow]


class WeeklyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def week(self, start: datetime, end: datetime, tz: str = "UTC", stale_days: float = 3) -> WeekData:
        """Figures for [start, end); sales per day by the calendar of `tz` (the report's zone)."""
        zone = ZoneInfo(tz)
        t = transactions.c
        done = sa.and_(t.occurred_at >= start, t.occurred_at < end, t.status == "completed")
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(sa.func.coalesce(stores.c.name, "(no store)").label("store"), t.occurred_at, t.total,
                          t.customer_id)
                .select_from(transactions.outerjoin(stores, stores.c.id == t.store_id)).where(done))).all()
            by_store: dict[str, StoreWeek] = {}
            visitors: dict[str, set[int]] = {}
            for r in rows:
                s = by_store.setdefault(r.store, StoreWeek(r.store))
                total = Decimal(str(r.total))
                s.sales += total
                s.orders += 1
                day = r.occurred_at.astimezone(zone).date()
                s.by_day[day] = s.by_day.get(day, Decimal("0")) + total
                if r.customer_id is not None:
                    visitors.setdefault(r.store, set()).add(r.customer_id)
            for name, ids in visitors.items():
                by_store[name].visitors = len(ids)

            signup_orders = (await conn.execute(sa.select(sa.func.count()).where(done, t.rewards_signup))).scalar_one()
            joined = (await conn.execute(sa.select(sa.func.count()).where(
                customers.c.rewards_member, customers.c.signup_date >= start.date(),
                customers.c.signup_date < end.date()))).scalar_one()
            lg = loyalty_ledger.c
            in_week = sa.and_(lg.created_at >= start, lg.created_at < end)
            issued = (await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(lg.delta), 0))
                                         .where(in_week, lg.delta > 0))).scalar_one()
            redeemed = (await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(lg.delta), 0))
                                           .where(in_week, lg.delta < 0))).scalar_one()

            c = coaching_messages.c
            answered = sa.func.sum(sa.case((c.answered_at.is_not(None), 1), else_=0))
            coach = (await conn.execute(
                sa.select(c.person_id, persons.c.name, sa.func.count().label("sent"), answered.label("answered"))
                .select_from(coaching_messages.join(persons, persons.c.id == c.person_id))
                .where(c.sent_at >= start, c.sent_at < end)
                .group_by(c.person_id, persons.c.name).order_by(persons.c.name))).all()

            d = deals.c
            closed = (await conn.execute(
                sa.select(d.person_id, d.status, sa.func.count().label("n"), sa.func.sum(d.budget).label("value"))
                .where(d.status.in_(("won", "lost")), d.updated_at >= start, d.updated_at < end)
                .group_by(d.person_id, d.status))).all()
            last_event = (sa.select(deal_events.c.deal_id,
                                    sa.func.max(deal_events.c.at, type_=UTCDateTime).label("last"))
                          .group_by(deal_events.c.deal_id).subquery())
            activity = sa.func.coalesce(last_event.c.last, d.created_at)
            stale = (await conn.execute(
                sa.select(d.person_id, sa.func.count().label("n"))
                .select_from(deals.outerjoin(last_event, last_event.c.deal_id == d.id))
                .where(d.status == "active", activity < end - timedelta(days=stale_days))
                .group_by(d.person_id))).all()
            owner_ids = {r.person_id for r in closed} | {r.person_id for r in stale}
            names = {r.id: r.name for r in (await conn.execute(
                sa.select(persons.c.id, persons.c.name).where(persons.c.id.in_([i for i in owner_ids if i])))).all()}

        deal_rows: dict[int | None, DealRow] = {}
        for r in closed:
            row = deal_rows.setdefault(r.person_id, DealRow(r.person_id, names.get(r.person_id, "(no manager)")))
            if r.status == "won":
                row.won += int(r.n)
                row.won_value += Decimal(str(r.value or 0))
            else:
                row.lost += int(r.n)
        for r in stale:
            row = deal_rows.setdefault(r.person_id, DealRow(r.person_id, names.get(r.person_id, "(no manager)")))
            row.stale += int(r.n)
        return WeekData(
            start, end, sorted(by_store.values(), key=lambda s: s.name),
            # a sign-up at the till is often also the customer's record: the larger count, never both
            max(int(signup_orders), int(joined)),
            int(issued), -int(redeemed),
            [CoachingRow(r.person_id, r.name, int(r.sent), int(r.answered or 0)) for r in coach],
            sorted(deal_rows.values(), key=lambda r: r.name),
        )


__all__ = ["CoachingRow", "DealRow", "StoreWeek", "WeekData", "WeeklyRepo"]
