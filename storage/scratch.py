"""A scratch copy of the live database for what-if runs (`playbooks replay`): the live one is only read.

SQLite: the online backup API copies the file page by page under a read snapshot. PostgreSQL:
a migrated scratch SQLite file is filled with the tables a replay reads, row for row. Either way
the copy's playbook runs and cursors are cleared, so the stored events replay against the
playbooks as they are now.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from storage.customers import customers, stores
from storage.db import Database
from storage.events import event_cursors, events
from storage.loyalty import loyalty_ledger
from storage.people import addresses, opt_outs, persons
from storage.playbooks import playbook_pauses, playbook_runs, playbook_steps
from storage.sales import transactions

REPLAY_TABLES = (stores, persons, addresses, opt_outs, customers, transactions, loyalty_ledger, events)


def _backup(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


async def scratch_copy(live: Database, directory: Path) -> Database:
    """A new database in `directory` holding what a replay needs of `live`; the caller closes it."""
    target = directory / "replay.db"
    file = live.file()
    if live.dialect == "sqlite" and file is not None:
        await asyncio.to_thread(_backup, file, target)
        scratch = Database(str(target), durable=False, commit_inline=True)
        await scratch.upgrade()
    else:
        scratch = Database(str(target), durable=False, commit_inline=True)
        await scratch.check(create=True)
        await scratch.upgrade()
        async with live.read() as src:
            for table in REPLAY_TABLES:
                rows = [dict(r._mapping) for r in (await src.execute(sa.select(table))).all()]
                for start in range(0, len(rows), 2000):
                    async with scratch.transaction() as dst:
                        await dst.execute(table.insert(), rows[start:start + 2000])
    async with scratch.transaction() as conn:
        for table in (playbook_steps, playbook_runs, playbook_pauses, event_cursors):
            await conn.execute(table.delete())
    return scratch
