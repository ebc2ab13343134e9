"""Stores and their customers (the CRM): who shops where, their tier, rewards membership and tastes.

A customer row is the CRM record; `person_id` links it to the core `persons` row that owns the
customer's SMS address, so the concierge can go from an inbound text to the CRM record in one
indexed lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.events import CUSTOMER_CREATED, SIGNUP, NewEvent, append_many_in
from storage.prepared import Prepared
from storage.types import Money, UTCDateTime

stores = sa.Table(
    "stores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("address", sa.String(500)),
    sa.Column("phone", sa.String(32)),
    sa.Column("hours", sa.String(500)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), unique=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL"), unique=True),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("phone", sa.String(32), index=True),
    sa.Column("email", sa.String(200)),
    sa.Column("vip_tier", sa.String(32)),
    sa.Column("signup_date", sa.Date),
    sa.Column("rewards_member", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("favourite_categories", sa.JSON, nullable=False),
    sa.Column("lifetime_spend", Money, nullable=False, server_default="0"),
    sa.Column("visits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_visit_at", UTCDateTime),
    sa.Column("birthday", sa.Date),
    sa.Column("sms_opt_in", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

handoffs = sa.Table(
    "store_handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_address", sa.String(200), nullable=False),
    sa.Column("staff_channel", sa.String(32), nullable=False),
    sa.Column("staff_address", sa.String(200), nullable=False),
    sa.Column("staff_thread", sa.String(200)),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(200)),
    sa.Index("ix_store_handoffs_open", "person_id", "closed_at"),
)
"""One row per HUMAN request: which staff destination got it and whether it is still open."""


@dataclass(slots=True)
class Store:
    id: int | None
    code: str
    name: str
    timezone: str = "America/Los_Angeles"
    address: str | None = None
    phone: str | None = None
    hours: str | None = None


@dataclass(slots=True)
class Customer:
    """A CRM record as the concierge and coaching see it."""

    id: int | None
    external_id: str | None
    person_id: int | None
    store_id: int | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None = None
    vip_tier: str | None = None
    signup_date: date | None = None
    rewards_member: bool = False
    favourite_categories: list[str] = field(default_factory=list)
    lifetime_spend: Decimal = Decimal("0")
    visits: int = 0
    last_visit_at: datetime | None = None
    birthday: date | None = None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p).strip()


def _customer(row: Any) -> Customer:
    return Customer(
        id=row.id,
        external_id=row.external_id,
        person_id=row.person_id,
        store_id=row.store_id,
        first_name=row.first_name,
        last_name=row.last_name,
        phone=row.phone,
        email=row.email,
        vip_tier=row.vip_tier,
        signup_date=row.signup_date,
        rewards_member=bool(row.rewards_member),
        favourite_categories=list(row.favourite_categories or []),
        lifetime_spend=row.lifetime_spend if row.lifetime_spend is not None else Decimal("0"),
        visits=row.visits or 0,
        last_visit_at=row.last_visit_at,
        birthday=row.birthday,
    )


@dataclass(slots=True)
class Handoff:
    id: int
    person_id: int
    customer_address: str
    staff_channel: str
    staff_address: str
    staff_thread: str | None
    opened_at: datetime
    closed_at: datetime | None = None


def _handoff(row: Any) -> Handoff:
    return Handoff(row.id, row.person_id, row.customer_address, row.staff_channel, row.staff_address,
                   row.staff_thread, row.opened_at, row.closed_at)


def _in(column: Any, name: str) -> Any:
    return column.in_(sa.bindparam(name, expanding=True))


_MEMBERS_BY_EXTERNAL = Prepared(
    sa.select(customers.c.id, customers.c.external_id.label("key"), customers.c.rewards_member).where(
        _in(customers.c.external_id, "exts")
    )
)
_MEMBERS_BY_PHONE = Prepared(
    sa.select(customers.c.id, customers.c.phone.label("key"), customers.c.rewards_member)
    .where(_in(customers.c.phone, "phones"))
    .order_by(customers.c.id.desc())
)
_TOTALS = Prepared(
    sa.select(customers.c.id, customers.c.lifetime_spend, customers.c.visits, customers.c.last_visit_at).where(
        _in(customers.c.id, "ids")
    )
)
_SET_TOTALS = Prepared(
    customers.update()
    .where(customers.c.id == sa.bindparam("c_id"))
    .values(
        lifetime_spend=sa.bindparam("c_spend"),
        visits=sa.bindparam("c_visits"),
        last_visit_at=sa.bindparam("c_last"),
        updated_at=sa.bindparam("c_now"),
    )
)
_ENROL_MEMBERS = Prepared(
    customers.update()
    .where(_in(customers.c.id, "ids"), customers.c.rewards_member.is_(False))
    .values(rewards_member=True, signup_date=sa.bindparam("c_date"), updated_at=sa.bindparam("c_now"))
)


@dataclass(slots=True)
class Totals:
    """A customer's running purchase totals, kept on the record for fast context lookups."""

    customer_id: int
    lifetime_spend: Decimal
    visits: int
    last_visit_at: datetime | None


class CustomerRepo:
    """Stores, CRM records and handoffs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- stores ------------------------------------------------------------------------------

    async def ensure_stores(self, items: list[Store], now: datetime) -> dict[str, int]:
        """Insert or update stores by code (from the TOML config); returns code → id."""

        async def unit(conn: AsyncConnection) -> dict[str, int]:
            for s in items:
                values = {"name": s.name, "timezone": s.timezone, "address": s.address, "phone": s.phone,
                          "hours": s.hours, "updated_at": now}
                stmt = self.db.insert(stores).values(code=s.code, created_at=now, **values)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["code"], set_=values))
            return await self.store_ids_in(conn)

        return await self.db.run(unit)

    async def store_ids_in(self, conn: AsyncConnection, create: list[str] | None = None,
                           now: datetime | None = None) -> dict[str, int]:
        """code → id; codes in `create` that are unknown are added with their code as name."""
        known = {r.code: r.id for r in (await conn.execute(sa.select(stores.c.code, stores.c.id))).all()}
        missing = [c for c in dict.fromkeys(create or []) if c and c not in known]
        if missing:
            assert now is not None
            await conn.execute(
                self.db.insert(stores).on_conflict_do_nothing(index_elements=["code"]),
                [{"code": c, "name": c, "timezone": "UTC", "created_at": now, "updated_at": now} for c in missing],
            )
            known = {r.code: r.id for r in (await conn.execute(sa.select(stores.c.code, stores.c.id))).all()}
        return known

    async def store_ids(self, create: list[str] | None = None, now: datetime | None = None) -> dict[str, int]:
        """code → id of every store; unknown codes in `create` are added first, named after their code."""
        if not create:
            return await self.db.query(self.store_ids_in)
        return await self.db.run(lambda conn: self.store_ids_in(conn, create, now))

    async def stores(self) -> list[Store]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(stores).order_by(stores.c.id))).all()
        return [Store(r.id, r.code, r.name, r.timezone, r.address, r.phone, r.hours) for r in rows]

    # -- customers ---------------------------------------------------------------------------

    async def upsert_in(self, conn: AsyncConnection, rows: list[dict[str, Any]], keep: tuple[str, ...] = ()) -> None:
        """Insert or update by `external_id` in one executemany; `keep` columns are not overwritten."""
        await self.db.upsert_in(conn, customers, rows, keep=("created_at", *keep))

    @staticmethod
    async def first_store_id_in(conn: AsyncConnection) -> int | None:
        return (await conn.execute(sa.select(stores.c.id).order_by(stores.c.id).limit(1))).scalar()

    async def first_store_id(self) -> int | None:
        return await self.db.query(self.first_store_id_in)

    @staticmethod
    async def add_in(conn: AsyncConnection, **values: Any) -> int:
        result = await conn.execute(customers.insert().values(**values))
        return int(result.inserted_primary_key[0])

    @staticmethod
    async def update_in(conn: AsyncConnection, customer_id: int, **values: Any) -> None:
        await conn.execute(customers.update().where(customers.c.id == customer_id).values(**values))

    @staticmethod
    async def ids_by_external_in(conn: AsyncConnection, external_ids: list[str] | None = None) -> dict[str, int]:
        query = sa.select(customers.c.external_id, customers.c.id).where(customers.c.external_id.is_not(None))
        if external_ids is not None:
            query = query.where(customers.c.external_id.in_(external_ids))
        return {r.external_id: r.id for r in (await conn.execute(query)).all()}

    @staticmethod
    async def members_in(
        conn: AsyncConnection, external_ids: set[str], phones: set[str]
    ) -> tuple[dict[str, tuple[int, bool]], dict[str, tuple[int, bool]]]:
        """(external id → (id, rewards member), phone → (id, rewards member)); the oldest record wins a phone."""
        by_ext: dict[str, tuple[int, bool]] = {}
        by_phone: dict[str, tuple[int, bool]] = {}
        if external_ids:
            for r in await _MEMBERS_BY_EXTERNAL.all(conn, {"exts": sorted(external_ids)}):
                by_ext[r.key] = (r.id, bool(r.rewards_member))
        if phones:
            for r in await _MEMBERS_BY_PHONE.all(conn, {"phones": sorted(phones)}):
                by_phone[r.key] = (r.id, bool(r.rewards_member))
        return by_ext, by_phone

    @staticmethod
    async def totals_in(conn: AsyncConnection, ids: list[int]) -> list[Totals]:
        rows = await _TOTALS.all(conn, {"ids": ids})
        return [Totals(r.id, r.lifetime_spend or Decimal("0"), r.visits or 0, r.last_visit_at) for r in rows]

    @staticmethod
    async def set_totals_in(conn: AsyncConnection, totals: list[Totals], now: datetime) -> None:
        await _SET_TOTALS.execute_many(
            conn,
            [
                {"c_id": t.customer_id, "c_spend": t.lifetime_spend, "c_visits": t.visits, "c_last": t.last_visit_at,
                 "c_now": now}
                for t in totals
            ],
        )

    @staticmethod
    async def enrol_members_in(conn: AsyncConnection, ids: list[int], now: datetime) -> None:
        """Make these customers rewards members from today (those already members keep their date)."""
        if ids:
            await _ENROL_MEMBERS.execute(conn, {"ids": ids, "c_date": now.date(), "c_now": now})

    async def get(self, customer_id: int) -> Customer | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(customers).where(customers.c.id == customer_id))).first()
        return _customer(row) if row else None

    async def store_id_for_phone(self, phone: str) -> int | None:
        """The store of the CRM record with this phone (the most recent visit wins), if any."""
        async with self.db.read() as conn:
            row = (await conn.execute(
                sa.select(customers.c.store_id).where(customers.c.phone == phone, customers.c.store_id.is_not(None))
                .order_by(customers.c.last_visit_at.desc().nulls_last(), customers.c.id.desc()).limit(1)
            )).first()
        return None if row is None else int(row.store_id)

    async def by_external_id(self, external_id: str) -> Customer | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(customers).where(customers.c.external_id == external_id))).first()
        return _customer(row) if row else None

    @staticmethod
    async def for_person_in(conn: AsyncConnection, person_id: int, phone: str | None) -> Customer | None:
        """The CRM record of a person: linked by person id, else an unlinked one with their phone (latest visit)."""
        match = customers.c.person_id == person_id
        if phone:
            match = sa.or_(match, customers.c.phone == phone)  # one indexed lookup on each column
        rows = (await conn.execute(sa.select(customers).where(match).limit(20))).all()
        linked = [r for r in rows if r.person_id == person_id]
        if linked:
            return _customer(linked[0])
        free = [r for r in rows if r.person_id is None]
        free.sort(key=lambda r: (r.last_visit_at is not None, r.last_visit_at or 0, r.id), reverse=True)
        return _customer(free[0]) if free else None

    async def link_person(self, customer_id: int, person_id: int, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                customers.update()
                .where(customers.c.id == customer_id, customers.c.person_id.is_(None))
                .values(person_id=person_id, updated_at=now)
            )

        await self.db.run(unit)

    async def enrol(self, person_id: int, phone: str | None, first_name: str, last_name: str | None,
                    store_id: int | None, now: datetime) -> Customer:
        """JOIN: make the person a rewards member, creating their CRM record if they have none."""

        async def unit(conn: AsyncConnection) -> int:
            existing = await self.for_person_in(conn, person_id, phone)
            values = {"person_id": person_id, "first_name": first_name, "last_name": last_name,
                      "rewards_member": True, "updated_at": now}
            if existing is not None:
                if existing.signup_date is None or not existing.rewards_member:
                    values["signup_date"] = now.date()
                await conn.execute(customers.update().where(customers.c.id == existing.id).values(**values))
                cid = int(existing.id)  # type: ignore[arg-type]
                new: list[NewEvent] = []
            else:
                result = await conn.execute(
                    customers.insert().values(
                        phone=phone, store_id=store_id, signup_date=now.date(), favourite_categories=[],
                        attributes={"source": "sms"}, created_at=now, **values,
                    )
                )
                cid = int(result.inserted_primary_key[0])
                new = [NewEvent(CUSTOMER_CREATED, str(cid), now, person_id, cid,
                                {"customer_id": cid, "via": "sms", "store_id": store_id})]
            if existing is None or not existing.rewards_member:
                new.append(NewEvent(SIGNUP, str(cid), now, person_id, cid, {"customer_id": cid, "via": "sms"}))
            await append_many_in(conn, new, now)
            return cid

        customer_id = await self.db.run(unit)
        found = await self.get(customer_id)
        assert found is not None
        return found

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar_one())

    # -- handoffs ----------------------------------------------------------------------------

    async def open_handoff(self, person_id: int, customer_address: str, staff_channel: str, staff_address: str,
                           now: datetime) -> Handoff:
        """Open a handoff, or return the one already open for this person."""

        async def unit(conn: AsyncConnection) -> int:
            row = (
                await conn.execute(
                    sa.select(handoffs.c.id).where(handoffs.c.person_id == person_id, handoffs.c.closed_at.is_(None))
                )
            ).first()
            if row:
                return int(row.id)
            result = await conn.execute(
                handoffs.insert().values(person_id=person_id, customer_address=customer_address,
                                         staff_channel=staff_channel, staff_address=staff_address, opened_at=now)
            )
            return int(result.inserted_primary_key[0])

        handoff_id = await self.db.run(unit)
        found = await self.handoff(handoff_id)
        assert found is not None
        return found

    async def set_handoff_thread(self, handoff_id: int, thread: str) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(handoffs.update().where(handoffs.c.id == handoff_id).values(staff_thread=thread))

        await self.db.run(unit)

    async def handoff(self, handoff_id: int) -> Handoff | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id))).first()
        return _handoff(row) if row else None

    async def open_handoff_for(self, *, person_id: int | None = None, customer_address: str | None = None,
                               staff_thread: str | None = None) -> Handoff | None:
        query = sa.select(handoffs).where(handoffs.c.closed_at.is_(None))
        if person_id is not None:
            query = query.where(handoffs.c.person_id == person_id)
        if customer_address is not None:
            query = query.where(handoffs.c.customer_address == customer_address)
        if staff_thread is not None:
            query = query.where(handoffs.c.staff_thread == staff_thread)
        async with self.db.read() as conn:
            row = (await conn.execute(query.order_by(handoffs.c.id.desc()).limit(1))).first()
        return _handoff(row) if row else None

    async def open_handoffs(self) -> list[Handoff]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(handoffs).where(handoffs.c.closed_at.is_(None))
                                       .order_by(handoffs.c.id))).all()
        return [_handoff(r) for r in rows]

    async def close_handoff(self, handoff_id: int, closed_by: str, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                handoffs.update()
                .where(handoffs.c.id == handoff_id, handoffs.c.closed_at.is_(None))
                .values(closed_at=now, closed_by=closed_by[:200])
            )

        await self.db.run(unit)
