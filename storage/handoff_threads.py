"""Match a handoff's staff post to the provider's message id once it is sent (Slack thread replies).

A handoff is opened before its staff post is sent, so it first records `outbox:<id>`; the provider's
id of that message (Slack: `CHANNEL:ts`, which is also the `thread` of replies in that thread) is
looked up when a staff message arrives in a thread nobody recognises yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.customers import handoffs
from storage.db import Database
from storage.outbox import receipts


async def resolve_threads(db: Database) -> int:
    """Replace `outbox:<id>` placeholders of open handoffs by the first provider id of that message."""
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(handoffs.c.id, handoffs.c.staff_thread).where(
            handoffs.c.closed_at.is_(None), handoffs.c.staff_thread.like("outbox:%")))).all()
        found: dict[int, str] = {}
        for row in rows:
            outbox_id = int(row.staff_thread.split(":", 1)[1])
            provider = (await conn.execute(sa.select(receipts.c.provider_id).where(receipts.c.outbox_id == outbox_id)
                                           .order_by(receipts.c.id).limit(1))).scalar()
            if provider:
                found[row.id] = provider
    if not found:
        return 0

    async def unit(conn: AsyncConnection) -> None:
        for handoff_id, thread in found.items():
            await conn.execute(handoffs.update().where(handoffs.c.id == handoff_id).values(staff_thread=thread))

    await db.run(unit)
    return len(found)
