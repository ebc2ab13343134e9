"""Prepared statements give the same rows and writes as SQLAlchemy's own execution, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.customers import customers
from storage.db import Database
from storage.inbox import inbound
from storage.prepared import Prepared

NOW = datetime(2026, 3, 1, 17, 30, 15, 123456, tzinfo=UTC)

_BY_ID = Prepared(sa.select(inbound).where(inbound.c.id == sa.bindparam("row_id")))
_BY_IDS = Prepared(
    sa.select(inbound.c.id, inbound.c.text)
    .where(inbound.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(inbound.c.id)
)
_SET_STATUS = Prepared(inbound.update().where(inbound.c.id == sa.bindparam("row_id")))


def _row(n: int, files: object = None) -> dict[str, object]:
    return {
        "channel": "sms",
        "address": "+16195550100",
        "provider_id": f"p{n}",
        "text": f"hello {n} 🌿",
        "files": files,
        "status": "received",
        "received_at": NOW,
        "stored_at": NOW,
    }


async def test_prepared_rows_match_sqlalchemy(db_url: str) -> None:
    db = Database(db_url, durable=False)
    insert = Prepared(db.insert(inbound).on_conflict_do_nothing(index_elements=["channel", "provider_id"])
                      .returning(inbound.c.id))
    try:
        async def write(conn: AsyncConnection) -> list[int]:
            first = await insert.first(conn, _row(1, files=[{"name": "a.csv"}]))
            again = await insert.first(conn, _row(1))
            assert again is None  # the conflict returns nothing, as with SQLAlchemy
            rest = await insert.all_many(conn, [_row(2), _row(3)])
            assert first is not None
            return [first.id, *sorted(r.id for r in rest)]

        ids = await db.run(write)
        assert len(set(ids)) == 3

        async def read(conn: AsyncConnection) -> tuple[object, object, list[object]]:
            fast = await _BY_ID.first(conn, {"row_id": ids[0]})
            slow = (await conn.execute(sa.select(inbound).where(inbound.c.id == ids[0]))).one()
            listed = await _BY_IDS.all(conn, {"ids": ids[1:]})
            return fast, slow, listed

        fast, slow, listed = await db.query(read)
        assert tuple(fast) == tuple(slow)  # type: ignore[arg-type]
        assert fast.received_at == NOW and fast.files == [{"name": "a.csv"}]  # type: ignore[union-attr]
        assert fast.text == "hello 1 🌿"  # type: ignore[union-attr]
        assert [(r.id, r.text) for r in listed] == [(ids[1], "hello 2 🌿"), (ids[2], "hello 3 🌿")]  # type: ignore[attr-defined]
        if db.dialect == "sqlite":  # the driver path ran, not the fallback
            assert [p.supported for p in [*_BY_ID._plans.values(), *_BY_IDS._plans.values()]] == [True, True]

        async def update(conn: AsyncConnection) -> int:
            changed = await _SET_STATUS.execute(conn, {"row_id": ids[0], "status": "handled", "handled_at": NOW})
            await _SET_STATUS.execute_many(
                conn, [{"row_id": i, "status": "failed", "handled_at": NOW} for i in ids[1:]]
            )
            return changed

        assert await db.run(update) == 1
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(inbound.c.status, inbound.c.handled_at).order_by(inbound.c.id))).all()
        assert [tuple(r) for r in rows] == [("handled", NOW), ("failed", NOW), ("failed", NOW)]
    finally:
        await db.close()


async def test_prepared_money_and_empty_results(db_url: str) -> None:
    db = Database(db_url, durable=False)
    by_ext = Prepared(
        sa.select(customers.c.external_id, customers.c.lifetime_spend).where(
            customers.c.external_id.in_(sa.bindparam("exts", expanding=True))
        )
    )
    try:
        async def write(conn: AsyncConnection) -> None:
            await conn.execute(customers.insert().values(
                external_id="C1", lifetime_spend=Decimal("12.50"), rewards_member=False, visits=0,
                favourite_categories=[], attributes={}, created_at=NOW, updated_at=NOW,
            ))

        await db.run(write)

        async def read(conn: AsyncConnection) -> tuple[list[object], list[object]]:
            return await by_ext.all(conn, {"exts": ["C1", "nobody"]}), await by_ext.all(conn, {"exts": ["nobody"]})

        found, none = await db.query(read)
        assert [(r.external_id, r.lifetime_spend) for r in found] == [("C1", Decimal("12.50"))]  # type: ignore[attr-defined]
        assert none == []
    finally:
        await db.close()


async def test_values_beside_an_in_list_are_stored_as_sqlalchemy_stores_them(db_url: str) -> None:
    db = Database(db_url, durable=False)
    finish = Prepared(
        inbound.update()
        .where(inbound.c.id.in_(sa.bindparam("ids", expanding=True)))
        .values(status="handled", handled_at=sa.bindparam("done_at"))
    )
    try:
        async def write(conn: AsyncConnection) -> list[int]:
            ids = [r.id for r in await Prepared(inbound.insert().returning(inbound.c.id)).all_many(
                conn, [_row(1), _row(2)])]
            await finish.execute(conn, {"ids": [ids[0]], "done_at": NOW})
            await conn.execute(inbound.update().where(inbound.c.id == ids[1]).values(status="handled",
                                                                                      handled_at=NOW))
            return sorted(ids)

        ids = await db.run(write)
        async with db.read() as conn:
            stored = (await conn.execute(sa.text("SELECT id, CAST(handled_at AS TEXT) FROM inbound ORDER BY id"))).all()
            typed = (await conn.execute(sa.select(inbound.c.handled_at).order_by(inbound.c.id))).scalars().all()
        assert [r[0] for r in stored] == ids
        assert stored[0][1] == stored[1][1]  # same text as SQLAlchemy's own write
        assert typed == [NOW, NOW]
    finally:
        await db.close()
