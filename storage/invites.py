"""Invite codes: how a person on Telegram or Slack gets a role without anyone typing their user id.

Only a hash of each code is stored (SHA-256 of the normalised code: the codes are random with
~59 bits, so a slow hash adds nothing). Redeeming is one transaction: the invite is claimed with a
conditional UPDATE, so two people racing with one code cannot both win, on either backend.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Person
from storage.db import Database, metadata
from storage.people import PeopleRepo, addresses, persons
from storage.types import UTCDateTime

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("person_id", sa.Integer),
    sa.Column("locale", sa.String(16)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("used_by", sa.Integer),
    sa.Column("used_address", sa.String(250)),
    sa.Column("revoked_at", UTCDateTime),
)

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
"""No 0/O, 1/I/L or U: codes are read aloud and typed on phones."""
CODE_LENGTH = 12


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def hash_code(text: str) -> str:
    return hashlib.sha256(normalize_code(text).encode()).hexdigest()


@dataclass(slots=True)
class Invite:
    id: int
    role: str
    name: str | None
    person_id: int | None
    locale: str | None
    timezone: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: int | None
    used_address: str | None
    revoked_at: datetime | None


class Outcome(StrEnum):
    ENROLLED = "enrolled"
    """A new person was created, or the role and address were added to a known one."""
    ALREADY = "already"
    """The sender already has the role: the code was not used up."""
    INVALID = "invalid"
    """Unknown, used, revoked or expired: indistinguishable to the sender on purpose."""
    TAKEN = "taken"
    """The invite names a person, and this address already belongs to someone else."""


@dataclass(slots=True)
class Redemption:
    outcome: Outcome
    person_id: int | None = None
    role: str | None = None
    created: bool = False


def _invite(row: Any) -> Invite:
    return Invite(
        id=row.id,
        role=row.role,
        name=row.name,
        person_id=row.person_id,
        locale=row.locale,
        timezone=row.timezone,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.used_by,
        used_address=row.used_address,
        revoked_at=row.revoked_at,
    )


class InviteRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.people = PeopleRepo(db)

    async def create(
        self,
        role: str,
        now: datetime,
        expires_at: datetime,
        *,
        name: str | None = None,
        person_id: int | None = None,
        locale: str | None = None,
        timezone: str | None = None,
    ) -> tuple[Invite, str]:
        """A new invite and its code (the only time the code exists in clear)."""
        code = new_code()

        async def unit(conn: AsyncConnection) -> int:
            result = await conn.execute(
                invites.insert().values(
                    code_hash=hash_code(code),
                    role=str(role),
                    name=name,
                    person_id=person_id,
                    locale=locale,
                    timezone=timezone,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            return int(result.inserted_primary_key[0])

        invite_id = await self.db.run(unit)
        invite = Invite(invite_id, role, name, person_id, locale, timezone, now, expires_at, None, None, None, None)
        return invite, code

    async def open(self, now: datetime) -> list[Invite]:
        """Invites that can still be redeemed, oldest first."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(invites)
                    .where(invites.c.used_at.is_(None), invites.c.revoked_at.is_(None), invites.c.expires_at > now)
                    .order_by(invites.c.id)
                )
            ).all()
        return [_invite(r) for r in rows]

    async def get(self, invite_id: int) -> Invite | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(invites).where(invites.c.id == invite_id))).first()
        return _invite(row) if row else None

    async def revoke(self, invite_id: int, now: datetime) -> bool:
        async def unit(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                invites.update()
                .where(invites.c.id == invite_id, invites.c.used_at.is_(None), invites.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return result.rowcount == 1

        return await self.db.run(unit)

    async def redeem(self, code: str, address: Address, display_name: str | None, now: datetime) -> Redemption:
        """Link `address` to a person with the invite's role, in one transaction."""

        async def unit(conn: AsyncConnection) -> Redemption:
            return await self._redeem(conn, code, address, display_name, now)

        return await self.db.run(unit)

    async def _redeem(
        self, conn: AsyncConnection, code: str, address: Address, display_name: str | None, now: datetime
    ) -> Redemption:
        row = (
            await conn.execute(
                sa.select(invites).where(
                    invites.c.code_hash == hash_code(code),
                    invites.c.used_at.is_(None),
                    invites.c.revoked_at.is_(None),
                    invites.c.expires_at > now,
                )
            )
        ).first()
        if row is None:
            return Redemption(Outcome.INVALID)
        invite = _invite(row)
        holder = (
            await conn.execute(
                sa.select(addresses.c.person_id).where(
                    addresses.c.channel == address.channel, addresses.c.address == address.id
                )
            )
        ).first()
        holder_id = holder.person_id if holder else None
        target_id = invite.person_id if invite.person_id is not None else holder_id
        if invite.person_id is not None and holder_id is not None and holder_id != invite.person_id:
            return Redemption(Outcome.TAKEN)
        target = await self.people._load(conn, target_id) if target_id is not None else None
        if target_id is not None and target is None:
            return Redemption(Outcome.INVALID)  # the named person was deleted since
        if target is not None and invite.role in target.roles and holder_id == target.id:
            return Redemption(Outcome.ALREADY, target.id, invite.role)

        claimed = await conn.execute(
            invites.update()
            .where(invites.c.id == invite.id, invites.c.used_at.is_(None), invites.c.revoked_at.is_(None))
            .values(used_at=now, used_address=str(address))
        )
        if claimed.rowcount != 1:
            return Redemption(Outcome.INVALID)  # someone else won the race

        created = target is None
        if target is None:
            person = Person(
                None,
                invite.name or display_name or f"{address.channel} user {address.id}",
                frozenset({invite.role}),
                [address],
                timezone=invite.timezone or "UTC",
                locale=invite.locale or "en",
            )
            person_id = await self.people.add_in(conn, person, now)
        else:
            person_id = target.id
            assert person_id is not None
            values: dict[str, Any] = {
                "roles": ",".join(sorted(str(r) for r in target.roles | {invite.role})),
                "updated_at": now,
            }
            if not target.name.strip():
                values["name"] = invite.name or display_name or target.name
            if invite.locale:
                values["locale"] = invite.locale
            if invite.timezone:
                values["timezone"] = invite.timezone
            await conn.execute(persons.update().where(persons.c.id == person_id).values(**values))
            if holder_id is None:
                await conn.execute(
                    addresses.insert().values(person_id=person_id, channel=address.channel, address=address.id)
                )
            else:  # an address that failed before is live again now that its owner wrote to us
                await conn.execute(
                    addresses.update()
                    .where(addresses.c.channel == address.channel, addresses.c.address == address.id)
                    .values(unreachable_at=None, unreachable_reason=None)
                )
        await conn.execute(invites.update().where(invites.c.id == invite.id).values(used_by=person_id))
        return Redemption(Outcome.ENROLLED, person_id, invite.role, created)


__all__ = ["Invite", "InviteRepo", "Outcome", "Redemption", "hash_code", "invites", "new_code", "normalize_code"]
