"""Apply Alembic migrations from inside the running loop, on either engine.

Each area of Huddle owns a branch of migrations (branch label = area) rooted at the core
revision, so areas evolve their tables independently; `upgrade` applies every head.
"""

from __future__ import annotations

import ast
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa


class Database(Protocol):
    """What migrations need of `storage.db.Database` (named here so the two never import each other)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    def read(self) -> AbstractAsyncContextManager[Any]: ...

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x4875_6464_6C65  # "Huddle": the advisory lock every migrating process takes first


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def known_revisions() -> dict[str, tuple[str, ...]]:
    """Each migration file's revision and what it revises, read from the files without Alembic."""
    found: dict[str, tuple[str, ...]] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(node.value)  # type: ignore[union-attr]
        if "revision" in values:
            down = values.get("down_revision")
            found[values["revision"]] = tuple(down) if isinstance(down, tuple | list) else ((down,) if down else ())
    return found


def known_heads() -> list[str]:
    revisions = known_revisions()
    revised = {d for downs in revisions.values() for d in downs}
    return sorted(r for r in revisions if r not in revised)


async def applied_heads(db: Database) -> list[str] | None:
    """The heads recorded in the database (None when it has no version table yet)."""
    async with db.read() as conn:
        def read(sync: Any) -> list[str] | None:
            if not sa.inspect(sync).has_table("alembic_version"):
                return None
            return sorted(r[0] for r in sync.execute(sa.text("SELECT version_num FROM alembic_version")))

        return await conn.run_sync(read)


async def upgrade(db: Database) -> list[str]:
    """Apply pending migrations; when the database is already at the code's heads, Alembic is not even loaded."""
    heads = known_heads()
    if await applied_heads(db) == heads:
        return heads
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    async with db.transaction() as conn:
        if conn.dialect.name == "postgresql":
            # Processes started at the same moment on a fresh database (a gateway and a worker)
            # migrate one after the other: the second waits here, then finds nothing to do.
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "heads"))
        return await conn.run_sync(lambda sync: sorted(MigrationContext.configure(sync).get_current_heads()))


async def pending(db: Database) -> list[str]:
    """Revisions known to the code but not yet applied to this database."""
    if await applied_heads(db) == known_heads():
        return []
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    async with db.read() as conn:
        applied = set(await conn.run_sync(lambda s: MigrationContext.configure(s).get_current_heads()))
    if not applied:
        return [rev.revision for rev in script.walk_revisions()]
    done: set[str] = set()
    for head in applied:
        done.update(r.revision for r in script.iterate_revisions(head, "base"))
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in done]
