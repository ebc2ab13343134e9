"""SQLite under the bot: another process's write lock, WAL checkpoints off the commit path, recovery."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

import storage.db as storage_db
from bot.model import Address, Inbound
from bot.testing import migrated_sqlite
from storage.db import CommitTimes, Database
from storage.inbox import InboxRepo, inbound

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def file_size(path: str) -> int:
    return Path(path).stat().st_size


def message(n: int, text: str = "hi") -> Inbound:
    return Inbound(Address("sms", "+16195550100"), text, provider_id=f"m{n}", received_at=NOW)


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(inbound))).scalar_one())


async def test_a_write_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    path = await migrated_sqlite(tmp_path)
    db = Database(path, durable=False)
    other = sqlite3.connect(path, isolation_level=None)  # a CLI import in another process, say
    try:
        other.execute("BEGIN IMMEDIATE")
        store = asyncio.create_task(InboxRepo(db).store(message(1), NOW))
        await asyncio.sleep(0.2)
        assert not store.done()  # waiting for the lock, not failing and not blocking the loop
        other.execute("COMMIT")
        assert await asyncio.wait_for(store, 5) is not None
        assert await count(db) == 1
    finally:
        other.close()
        await db.close()


async def test_wal_is_copied_into_the_database_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_db, "CHECKPOINT_INTERVAL", 0.05)
    path = await migrated_sqlite(tmp_path)
    db = Database(path, durable=False)
    try:
        before = file_size(path)
        repo = InboxRepo(db)
        await asyncio.gather(*(repo.store(message(n, "x" * 2000), NOW) for n in range(300)))
        for _ in range(100):  # the commits themselves never copy the WAL (no automatic checkpoint)
            if file_size(path) > before:
                break
            await asyncio.sleep(0.05)
        assert file_size(path) > before + 300 * 2000
    finally:
        await db.close()
    reopened = Database(path, durable=False)
    assert await count(reopened) == 300
    await reopened.close()


async def test_a_failed_unit_leaves_the_writer_usable(tmp_path: Path) -> None:
    db = Database(await migrated_sqlite(tmp_path), durable=False)
    repo = InboxRepo(db)
    try:
        async def broken(conn: AsyncConnection) -> None:
            await conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

        with pytest.raises(sa.exc.OperationalError):
            await db.run(broken)
        assert await repo.store(message(1), NOW) is not None
        assert await repo.store(message(1), NOW) is None  # still deduplicated: the same file, committed
        assert await count(db) == 1
    finally:
        await db.close()


def test_a_stalled_disk_is_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    times = CommitTimes()
    for ms in (0.4, 1.2, 75.0, 400.0, 900.0):
        times.note(ms)
    assert (times.count, times.slow, times.longest_ms) == (5, 3, 900.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["slow commit: the disk took 400 ms to confirm a write (messages waited with it)"]


async def test_commit_times_are_recorded(tmp_path: Path) -> None:
    db = Database(await migrated_sqlite(tmp_path), durable=False)
    try:
        await InboxRepo(db).store(message(1), NOW)
        assert db.commits.count == 1 and db.commits.longest_ms > 0
    finally:
        await db.close()
