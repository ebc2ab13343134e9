"""Conversation state per (person, channel): what a multi-step exchange needs to remember."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.prepared import Prepared
from storage.types import UTCDateTime

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("person_id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


_LOAD = Prepared(
    sa.select(conversations.c.state).where(
        conversations.c.person_id == sa.bindparam("person_id"), conversations.c.channel == sa.bindparam("channel")
    )
)


class ConversationRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, person_id: int, channel: str) -> dict[str, Any]:
        async def unit(conn: AsyncConnection) -> dict[str, Any]:
            row = await _LOAD.first(conn, {"person_id": person_id, "channel": channel})
            return dict(row.state) if row else {}

        return await self.db.query(unit)

    async def save(self, person_id: int, channel: str, state: dict[str, Any], now: datetime) -> None:
        async def unit(conn: AsyncConnection) -> None:
            stmt = self.db.insert(conversations).values(
                person_id=person_id, channel=channel, state=state, updated_at=now
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["person_id", "channel"], set_={"state": state, "updated_at": now}
                )
            )

        await self.db.run(unit)

    async def find(self, key: str, value: Any) -> list[tuple[int, str, dict[str, Any]]]:
        """Conversations whose state has `key == value` (e.g. every handed-off customer)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(conversations))).all()
        return [(r.person_id, r.channel, dict(r.state)) for r in rows if r.state.get(key) == value]
