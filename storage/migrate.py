"""Apply Alembic migrations from inside the running loop, on either engine.

Each area of Huddle owns a branch of migrations (branch label = area) rooted at the core
revision, so areas evolve their tables independently; `upgrade` applies every head.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


class Database(Protocol):
    """What migrations need of `storage.db.Database` (named here so the two never import each other)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    def read(self) -> AbstractAsyncContextManager[Any]: ...

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database) -> list[str]:
    async with db.transaction() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "heads"))
        return await conn.run_sync(lambda sync: sorted(MigrationContext.configure(sync).get_current_heads()))


async def pending(db: Database) -> list[str]:
    """Revisions known to the code but not yet applied to this database."""
    script = ScriptDirectory.from_config(alembic_config())
    async with db.read() as conn:
        applied = set(await conn.run_sync(lambda s: MigrationContext.configure(s).get_current_heads()))
    if not applied:
        return [rev.revision for rev in script.walk_revisions()]
    done: set[str] = set()
    for head in applied:
        done.update(r.revision for r in script.iterate_revisions(head, "base"))
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in done]
