"""Match a handoff's staff post to the provider's message id once it is sent (Slack thread replies)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.customers import handoffs
from storage.db import Database
from storage.outbox import receipts


async def resolve_threads(db: Database) -> int:
    """Replace `outbox:<id>` placeholders of open handoffs by the first provider id of that message."""

    async def unit(conn: AsyncConnection) -> int:
        rows = (await conn.execute(sa.select(handoffs.c.id, handoffs.c.staff_thread).where(
            handoffs.c.closed_at.is_(None), handoffs.c.staff_thread.like("outbox:%")))).all()
        changed = 0
        for row in rows:
            outbox_id = int(row.staff_thread.split(":", 1)[1])
            provider = (await conn.execute(sa.select(receipts.c.provider_id).where(receipts.c.outbox_id == outbox_id)
                                           .order_by(receipts.c.id).limit(1))).scalar()
            if provider:
                await conn.execute(handoffs.update().where(handoffs.c.id == row.id).values(staff_thread=provider))
                changed += 1
        return changed

    return await db.run(unit)
