"""The outside budtender network: dispensaries that sell the house brand, and their budtenders.

Each network budtender is a person (role `external_budtender`) with their phone as an SMS address,
so an invite for the same name (`python main.py invite external_budtender --name …`) links their
Telegram or Slack account to the same person, and receipts they send earn points on that person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Person
from storage.db import Database, metadata
from storage.loyalty import loyalty_ledger
from storage.people import PeopleRepo, addresses, persons
from storage.receipts import receipts
from storage.types import UTCDateTime

dispensaries = sa.Table(
    "dispensaries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("city", sa.String(100)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
"""`key` is the name folded (case, spacing) so "Green Cross" and "green  cross" are one dispensary."""

network_budtenders = sa.Table(
    "network_budtenders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("dispensary_id", sa.Integer, sa.ForeignKey("dispensaries.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32), unique=True),
    sa.Column("city", sa.String(100)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_network_budtenders_dispensary", "dispensary_id"),
)


def dispensary_key(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(slots=True)
class NetworkRow:
    """One budtender to store (already validated: a name, a dispensary, an E.164 phone or None)."""

    name: str
    dispensary: str
    phone: str | None
    city: str | None = None


@dataclass(slots=True)
class NetworkBudtender:
    id: int
    person_id: int
    name: str
    phone: str | None
    city: str | None
    dispensary: str
    dispensary_city: str | None
    points: int = 0
    receipts: int = 0


class PhoneTaken(ValueError):
    """The phone number already belongs to someone who is not this budtender."""


class BudtenderNetworkRepo:
    def __init__(self, db: Database, role: str) -> None:
        self.db = db
        self.role = role
        self.people = PeopleRepo(db)

    async def write(self, rows: Sequence[NetworkRow], now: datetime, timezone: str = "UTC") -> list[tuple[int, str]]:
        """Upsert budtenders (by phone, else by name within the dispensary) in ONE transaction.

        Returns the positions and reasons of rows refused (a phone that belongs to another person);
        every other row is stored whole, with its person, address and dispensary, or not at all.
        """

        async def unit(conn: AsyncConnection) -> list[tuple[int, str]]:
            refused: list[tuple[int, str]] = []
            for n, row in enumerate(rows):
                try:  # refused before anything of the row is written: nothing of it is left behind
                    await self._write_one(conn, row, now, timezone)
                except PhoneTaken as exc:
                    refused.append((n, str(exc)))
            return refused

        refused = await self.db.run(unit)
        self.people.forget()
        return refused

    async def add(self, row: NetworkRow, now: datetime, timezone: str = "UTC") -> int:
        """One budtender (the `budtenders add` command); returns the person id. Raises PhoneTaken."""

        async def unit(conn: AsyncConnection) -> int:
            return await self._write_one(conn, row, now, timezone)

        person_id = await self.db.run(unit)
        self.people.forget()
        return person_id

    async def _dispensary_in(self, conn: AsyncConnection, name: str, city: str | None, now: datetime) -> int:
        key = dispensary_key(name)
        found = (await conn.execute(sa.select(dispensaries.c.id).where(dispensaries.c.key == key))).scalar()
        if found is not None:
            return int(found)
        result = await conn.execute(dispensaries.insert().values(key=key, name=" ".join(name.split()), city=city,
                                                                 created_at=now))
        return int(result.inserted_primary_key[0])

    async def _write_one(self, conn: AsyncConnection, row: NetworkRow, now: datetime, timezone: str) -> int:
        """Every check first (PhoneTaken is raised before any write), then the writes."""
        nb = network_budtenders.c
        known_place = (await conn.execute(sa.select(dispensaries.c.id)
                                          .where(dispensaries.c.key == dispensary_key(row.dispensary)))).scalar()
        existing = None
        if row.phone:
            existing = (await conn.execute(sa.select(network_budtenders).where(nb.phone == row.phone))).first()
        if existing is None and known_place is not None:
            same_name = (await conn.execute(sa.select(network_budtenders).where(
                nb.dispensary_id == known_place, sa.func.lower(nb.name) == row.name.casefold()))).all()
            if len(same_name) == 1 and (same_name[0].phone is None or row.phone is None):
                existing = same_name[0]
        holder = None
        if row.phone:
            holder = (await conn.execute(sa.select(addresses.c.person_id).where(
                addresses.c.channel == "sms", addresses.c.address == row.phone))).scalar()
        if existing is not None and holder is not None and holder != existing.person_id:
            raise PhoneTaken(f"phone {row.phone} belongs to another person (#{holder})")
        if existing is None and holder is not None and (
                await conn.execute(sa.select(nb.id).where(nb.person_id == holder))).first() is not None:
            raise PhoneTaken(f"phone {row.phone} belongs to another network budtender")
        dispensary_id = await self._dispensary_in(conn, row.dispensary, row.city, now)
        if existing is not None:
            await conn.execute(network_budtenders.update().where(nb.id == existing.id).values(
                name=row.name, phone=row.phone or existing.phone, city=row.city or existing.city,
                dispensary_id=dispensary_id, active=True, updated_at=now))
            person_id = int(existing.person_id)
            await self._add_role_in(conn, person_id, now)
        else:
            if holder is not None:
                person_id = int(holder)
                await self._add_role_in(conn, person_id, now)
            else:
                person = Person(None, row.name, frozenset({self.role}),
                                [Address("sms", row.phone)] if row.phone else [], timezone=timezone,
                                attributes={"source": "budtender network"})
                person_id = await self.people.add_in(conn, person, now)
            await conn.execute(network_budtenders.insert().values(
                person_id=person_id, dispensary_id=dispensary_id, name=row.name, phone=row.phone, city=row.city,
                active=True, created_at=now, updated_at=now))
        if row.phone and holder is None:
            await conn.execute(self.db.insert(addresses).values(person_id=person_id, channel="sms", address=row.phone)
                               .on_conflict_do_nothing(index_elements=["channel", "address"]))
        return person_id

    async def _add_role_in(self, conn: AsyncConnection, person_id: int, now: datetime) -> None:
        roles = (await conn.execute(sa.select(persons.c.roles).where(persons.c.id == person_id))).scalar() or ""
        have = set(filter(None, roles.split(",")))
        if self.role not in have:
            await conn.execute(persons.update().where(persons.c.id == person_id).values(
                roles=",".join(sorted(have | {self.role})), updated_at=now))

    async def list(self, *, dispensary: str | None = None, search: str | None = None,
                   limit: int | None = None) -> list[NetworkBudtender]:
        """Budtenders with their dispensary, points balance and receipt count; `search` matches name,
        phone, city or dispensary (a substring, any case), `dispensary` a substring of its name."""
        nb, d, led = network_budtenders.c, dispensaries.c, loyalty_ledger.c
        points = (sa.select(sa.func.coalesce(sa.func.sum(led.delta), 0)).where(led.person_id == nb.person_id)
                  .scalar_subquery())
        count = (sa.select(sa.func.count()).select_from(receipts).where(
            receipts.c.budtender_person_id == nb.person_id, receipts.c.status == "awarded").scalar_subquery())
        query = (sa.select(nb.id, nb.person_id, nb.name, nb.phone, nb.city, d.name.label("dispensary"),
                           d.city.label("dispensary_city"), points.label("points"), count.label("receipts"))
                 .join(dispensaries, d.id == nb.dispensary_id).order_by(d.key, sa.func.lower(nb.name)))
        if dispensary:
            query = query.where(d.key.contains(dispensary_key(dispensary), autoescape=True))
        if search:
            needle = search.strip().casefold()
            query = query.where(sa.or_(
                sa.func.lower(nb.name).contains(needle, autoescape=True),
                sa.func.coalesce(nb.phone, "").contains(needle, autoescape=True),
                sa.func.lower(sa.func.coalesce(nb.city, "")).contains(needle, autoescape=True),
                d.key.contains(needle, autoescape=True)))
        if limit:
            query = query.limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_budtender(r) for r in rows]

    async def by_person(self, person_id: int) -> NetworkBudtender | None:
        nb, d = network_budtenders.c, dispensaries.c
        async with self.db.read() as conn:
            row = (await conn.execute(
                sa.select(nb.id, nb.person_id, nb.name, nb.phone, nb.city, d.name.label("dispensary"),
                          d.city.label("dispensary_city"))
                .join(dispensaries, d.id == nb.dispensary_id).where(nb.person_id == person_id))).first()
        return _budtender(row) if row else None

    async def counts(self) -> tuple[int, int]:
        """(budtenders, dispensaries)."""
        async with self.db.read() as conn:
            people = (await conn.execute(sa.select(sa.func.count()).select_from(network_budtenders))).scalar_one()
            places = (await conn.execute(sa.select(sa.func.count()).select_from(dispensaries))).scalar_one()
        return int(people), int(places)


def _budtender(r: Any) -> NetworkBudtender:
    return NetworkBudtender(r.id, r.person_id, r.name, r.phone, r.city, r.dispensary, r.dispensary_city,
                            int(getattr(r, "points", 0) or 0), int(getattr(r, "receipts", 0) or 0))


__all__ = ["BudtenderNetworkRepo", "NetworkBudtender", "NetworkRow", "PhoneTaken", "dispensaries",
           "dispensary_key", "network_budtenders"]
