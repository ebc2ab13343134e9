"""Shared fixtures: `db_url` runs a test on SQLite and on PostgreSQL (when HUDDLE_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import testing_pg
from bot.testing import migrated_sqlite
from tests.flows import Flow

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_template() -> object:
    yield
    if testing_pg.admin_url():
        try:
            asyncio.run(testing_pg.drop_template())
        except Exception:  # the server went away: nothing left to clean
            pass


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield await migrated_sqlite(tmp_path)
        return
    if not testing_pg.admin_url():
        pytest.skip("PostgreSQL not configured: set HUDDLE_TEST_DATABASE_URL (see README)")
    url = await testing_pg.fresh_postgres()
    try:
        yield url
    finally:
        await testing_pg.drop_postgres(url)


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    """A bare flow (no plugins) on SQLite and a fake clock; tests add routers through `flow.app`."""
    f = await Flow.create()
    try:
        yield f
    finally:
        await f.close()
