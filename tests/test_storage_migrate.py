"""The migration fast path: an up-to-date database is recognised without loading Alembic."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from storage.db import Database
from storage.migrate import alembic_config, applied_heads, known_heads, known_revisions, pending


def test_heads_read_from_the_files_are_alembics_heads() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert known_heads() == sorted(script.get_heads())
    assert set(known_revisions()) == {r.revision for r in script.walk_revisions()}


async def test_a_migrated_database_is_at_the_known_heads_and_has_nothing_pending(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        assert await db.upgrade() == known_heads()
        assert await applied_heads(db) == known_heads()
        assert await pending(db) == []
    finally:
        await db.close()


async def test_a_new_database_has_no_version_table_and_everything_pending(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(str(tmp_path / "new.db"), durable=False)
    try:
        assert await applied_heads(db) is None
        assert set(await pending(db)) == set(known_revisions())
    finally:
        await db.close()
