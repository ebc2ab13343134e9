"""People, their addresses, and who opted out of what."""

from __future__ import annotations

import copy
import dataclasses
import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Person
from storage.db import Database, metadata
from storage.events import OPTIN, OPTOUT, NewEvent, append_in
from storage.prepared import Prepared
from storage.types import UTCDateTime

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("roles", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("locale", sa.String(16), nullable=False),
    sa.Column("external_id", sa.String(100)),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

addresses = sa.Table(
    "addresses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("unreachable_at", UTCDateTime),
    sa.Column("unreachable_reason", sa.String(500)),
)

opt_outs = sa.Table(
    "opt_outs",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("address", sa.String(200), primary_key=True),
    sa.Column("opted_out", sa.Boolean, nullable=False),
    sa.Column("keyword", sa.String(32)),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)


def _roles_text(roles: frozenset[str] | set[str]) -> str:
    return ",".join(sorted(str(r) for r in roles))


def _roles(text: str) -> frozenset[str]:
    """Stored role names, kept as they are even when no running plugin declares them."""
    return frozenset(r for r in text.split(",") if r)


class PeopleRepo:
    CACHE_SECONDS = 10.0
    """How long a looked-up person is reused; writes through this repo clear it at once, so only a
    change made by another process (PostgreSQL scale-out) can take this long to be seen."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache = db.person_cache

    def forget(self) -> None:
        """Drop cached lookups (writes through any repo on this database do this themselves)."""
        self._cache.clear()

    # -- reads -------------------------------------------------------------------------------

    async def by_address(self, address: Address) -> Person | None:
        hit = self._cache.get(address)
        if hit is not None and hit[0] > time.monotonic():
            return _copy(hit[1])

        async def unit(conn: AsyncConnection) -> Person | None:
            rows = (await conn.execute(_BY_ADDRESS, {"channel": address.channel, "address": address.id})).all()
            if not rows:
                return None
            return self._person(rows[0], [Address(r.a_channel, r.a_address) for r in rows])

        person = await self.db.query(unit)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[address] = (time.monotonic() + self.CACHE_SECONDS, _copy(person))
        return person

    async def get(self, person_id: int) -> Person | None:
        async with self.db.read() as conn:
            return await self._load(conn, person_id)

    async def by_external_id(self, external_id: str) -> Person | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(persons.c.id).where(persons.c.external_id == external_id))).first()
            return await self._load(conn, row.id) if row else None

    async def all(self, role: str | None = None) -> list[Person]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(persons).order_by(persons.c.name))).all()
            addr_rows = (await conn.execute(sa.select(addresses).order_by(addresses.c.id))).all()
        by_person: dict[int, list[Address]] = {}
        for a in addr_rows:
            by_person.setdefault(a.person_id, []).append(Address(a.channel, a.address))
        people = [self._person(r, by_person.get(r.id, [])) for r in rows]
        return [p for p in people if role is None or role in p.roles]

    async def _load(self, conn: AsyncConnection, person_id: int) -> Person | None:
        row = (await conn.execute(sa.select(persons).where(persons.c.id == person_id))).first()
        if row is None:
            return None
        addr = (
            await conn.execute(
                sa.select(addresses.c.channel, addresses.c.address)
                .where(addresses.c.person_id == person_id)
                .order_by(addresses.c.id)
            )
        ).all()
        return self._person(row, [Address(a.channel, a.address) for a in addr])

    @staticmethod
    def _person(row: Any, addrs: list[Address]) -> Person:
        return Person(
            id=row.id,
            name=row.name,
            roles=_roles(row.roles),
            addresses=addrs,
            timezone=row.timezone,
            locale=row.locale,
            external_id=row.external_id,
            attributes=dict(row.attributes or {}),
        )

    # -- writes ------------------------------------------------------------------------------

    async def add(self, person: Person, now: datetime) -> Person:
        """Insert a person with their addresses; an address already taken raises ValueError."""

        async def unit(conn: AsyncConnection) -> int:
            return await self.add_in(conn, person, now)

        person.id = await self.db.run(unit)
        self.forget()
        return person

    async def add_in(self, conn: AsyncConnection, person: Person, now: datetime) -> int:
        for a in person.addresses:
            taken = (
                await conn.execute(
                    sa.select(addresses.c.person_id).where(
                        addresses.c.channel == a.channel, addresses.c.address == a.id
                    )
                )
            ).first()
            if taken:
                raise ValueError(f"{a} already belongs to person {taken.person_id}")
        result = await conn.execute(
            persons.insert().values(
                name=person.name,
                roles=_roles_text(person.roles),
                timezone=person.timezone,
                locale=person.locale,
                external_id=person.external_id,
                attributes=person.attributes,
                created_at=now,
                updated_at=now,
            )
        )
        person_id = int(result.inserted_primary_key[0])
        if person.addresses:
            await conn.execute(
                addresses.insert(),
                [{"person_id": person_id, "channel": a.channel, "address": a.id} for a in person.addresses],
            )
        return person_id

    async def update(self, person: Person, now: datetime) -> None:
        if person.id is None:
            raise ValueError("person has no id")

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                persons.update()
                .where(persons.c.id == person.id)
                .values(
                    name=person.name,
                    roles=_roles_text(person.roles),
                    timezone=person.timezone,
                    locale=person.locale,
                    external_id=person.external_id,
                    attributes=person.attributes,
                    updated_at=now,
                )
            )

        await self.db.run(unit)
        self.forget()

    async def add_address(self, person_id: int, address: Address) -> None:
        async def unit(conn: AsyncConnection) -> None:
            stmt = self.db.insert(addresses).values(person_id=person_id, channel=address.channel, address=address.id)
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["channel", "address"]))

        await self.db.run(unit)
        self.forget()

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(persons))).scalar_one())

    # -- reachability and consent ---------------------------------------------------------------

    async def mark_unreachable(self, address: Address, reason: str, now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                addresses.update()
                .where(addresses.c.channel == address.channel, addresses.c.address == address.id)
                .values(unreachable_at=now, unreachable_reason=reason[:500])
            )

        await self.db.run(unit)
        self.forget()

    async def set_opt_out(self, address: Address, opted_out: bool, keyword: str, now: datetime) -> None:
        """Record consent; a change appends `optout` / `optin` to the event log in the same transaction."""

        async def unit(conn: AsyncConnection) -> None:
            was = await opted_out_in(conn, address)
            stmt = self.db.insert(opt_outs).values(
                channel=address.channel, address=address.id, opted_out=opted_out, keyword=keyword, changed_at=now
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["channel", "address"],
                    set_={"opted_out": opted_out, "keyword": keyword, "changed_at": now},
                )
            )
            if was != opted_out:
                owner = (await conn.execute(
                    sa.select(addresses.c.person_id).where(addresses.c.channel == address.channel,
                                                           addresses.c.address == address.id).limit(1)
                )).scalar()
                await append_in(conn, NewEvent(OPTOUT if opted_out else OPTIN, None, now, owner, None,
                                               {"channel": address.channel, "keyword": keyword}), now)

        await self.db.run(unit)
        self.forget()

    async def is_opted_out(self, address: Address) -> bool:
        async with self.db.read() as conn:
            return await opted_out_in(conn, address)


def _copy(person: Person | None) -> Person | None:
    """A copy a caller may change without changing the cached one."""
    if person is None:
        return None
    return dataclasses.replace(person, addresses=list(person.addresses), attributes=copy.deepcopy(person.attributes))


_a1 = addresses.alias("a1")
_a2 = addresses.alias("a2")
_BY_ADDRESS = (
    sa.select(persons, _a2.c.channel.label("a_channel"), _a2.c.address.label("a_address"))
    .select_from(_a1.join(persons, persons.c.id == _a1.c.person_id).join(_a2, _a2.c.person_id == persons.c.id))
    .where(_a1.c.channel == sa.bindparam("channel"), _a1.c.address == sa.bindparam("address"))
    .order_by(_a2.c.id)
)

_CAN_SEND = Prepared(
    sa.select(
        sa.select(opt_outs.c.opted_out)
        .where(opt_outs.c.channel == sa.bindparam("channel"), opt_outs.c.address == sa.bindparam("address"))
        .scalar_subquery()
        .label("opted_out"),
        sa.select(addresses.c.unreachable_reason)
        .where(
            addresses.c.channel == sa.bindparam("channel"),
            addresses.c.address == sa.bindparam("address"),
            addresses.c.unreachable_at.is_not(None),
        )
        .limit(1)
        .scalar_subquery()
        .label("unreachable"),
    )
)


async def consent_in(conn: AsyncConnection, address: Address) -> tuple[bool, str | None]:
    """(opted out?, why unreachable) in one statement: the outbox asks this before every send."""
    row = await _CAN_SEND.first(conn, {"channel": address.channel, "address": address.id})
    assert row is not None
    return bool(row.opted_out), row.unreachable


async def opted_out_in(conn: AsyncConnection, address: Address) -> bool:
    row = (
        await conn.execute(
            sa.select(opt_outs.c.opted_out).where(
                opt_outs.c.channel == address.channel, opt_outs.c.address == address.id
            )
        )
    ).first()
    return bool(row and row.opted_out)


async def unreachable_in(conn: AsyncConnection, address: Address) -> str | None:
    row = (
        await conn.execute(
            sa.select(addresses.c.unreachable_at, addresses.c.unreachable_reason).where(
                addresses.c.channel == address.channel, addresses.c.address == address.id
            )
        )
    ).first()
    if row and row.unreachable_at is not None:
        return row.unreachable_reason or "unreachable"
    return None
