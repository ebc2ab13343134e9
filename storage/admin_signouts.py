"""Admin sessions signed out before their time, so every process refuses their cookie.

A session cookie is checked without storage (an HMAC keyed by the admin token, see
bot/http_auth.py), so a sign-out would otherwise hold only in the process that served it: a
worker behind the same address would keep accepting the cookie until it expired. One row per
signed-out session, kept until the cookie would have expired anyway.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.types import UTCDateTime

admin_signouts = sa.Table(
    "admin_signouts",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("until", UTCDateTime, nullable=False),
)


class SignoutRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, session_id: str, until: datetime, now: datetime) -> None:
        """Record the sign-out (twice is fine) and forget the ones whose cookies have expired."""

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(sa.delete(admin_signouts).where(admin_signouts.c.until < now))
            exists = await conn.scalar(sa.select(admin_signouts.c.session_id)
                                       .where(admin_signouts.c.session_id == session_id))
            if exists is None:
                await conn.execute(admin_signouts.insert().values(session_id=session_id, until=until))

        await self.db.run(unit)

    async def signed_out(self, session_id: str) -> bool:
        async with self.db.read() as conn:
            found = await conn.scalar(sa.select(admin_signouts.c.session_id)
                                      .where(admin_signouts.c.session_id == session_id))
        return found is not None
