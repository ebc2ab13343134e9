"""Throwaway PostgreSQL databases for tests: one migrated template per run, a copy per test.

Set `HUDDLE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`; the admin database in
that URL is only used to create and drop `huddle_t_*` databases, so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from storage.db import Database

_template: dict[str, str] = {}
_lock = asyncio.Lock()


def admin_url() -> str | None:
    return os.environ.get("HUDDLE_TEST_DATABASE_URL") or None


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    url = admin_url()
    assert url is not None
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_postgres() -> str:
    """The URL of a new, migrated, empty database (drop it with `drop_postgres`)."""
    url = admin_url()
    if url is None:
        raise RuntimeError("HUDDLE_TEST_DATABASE_URL is not set")
    async with _lock:
        if "name" not in _template:
            name = f"huddle_t_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            await _admin(f'CREATE DATABASE "{name}"')
            db = Database(_dsn(url, name), durable=False)
            await db.upgrade()
            await db.close()
            _template["name"] = name
    name = f"huddle_t_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{_template["name"]}"')
    return _dsn(url, name)


async def drop_postgres(url: str) -> None:
    name = make_url(url).database
    if name and name.startswith("huddle_t_"):
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drop_template() -> None:
    name = _template.pop("name", None)
    if name:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
