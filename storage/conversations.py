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
    sa.select(conversations.c.person_id, conversations.c.channel, conversations.c.state).where(
        conversations.c.person_id.in_(sa.bindparam("person_ids", expanding=True)),
        conversations.c.channel.in_(sa.bindparam("channels", expanding=True)),
    )
)


_LOAD_ONE = Prepared(
    sa.select(conversations.c.state).where(
        conversations.c.person_id == sa.bindparam("person_id"), conversations.c.channel == sa.bindparam("channel")
    )
)


async def _load_many(conn: AsyncConnection, keys: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """The states of many (person, channel) pairs in one statement (see `Database.query_many`)."""
    if len(keys) == 1:  # an IN list costs more to expand than the statement takes on SQLite
        row = await _LOAD_ONE.first(conn, {"person_id": keys[0][0], "channel": keys[0][1]})
        return [dict(row.state) if row else {}]
    params = {"person_ids": sorted({p for p, _ in keys}), "channels": sorted({c for _, c in keys})}
    found = {(r.person_id, r.channel): r.state for r in await _LOAD.all(conn, params)}
    return [dict(found[key]) if key in found else {} for key in keys]


class ConversationRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, person_id: int, channel: str) -> dict[str, Any]:
        return await self.db.query_many(_load_many, (person_id, channel))

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
