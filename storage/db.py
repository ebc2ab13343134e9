"""One database handle for SQLite (the embedded default) and PostgreSQL (scale-out).

Repositories write through `Database.run(unit)`: concurrent units are committed together in one
transaction (group commit), so durable commits stay cheap under load while each caller still
gets its own result or exception only after the data is on disk. `Database.transaction()` is the
plain one-transaction-per-call path (used by the baseline benchmark and by long imports).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""All tables register here; migrations are the source of truth for the live schema."""

T = TypeVar("T")
Unit = Callable[[AsyncConnection], Awaitable[T]]


def normalize_url(url: str) -> str:
    """Accept a bare file path or a driverless URL and name the async driver Huddle uses."""
    if "://" not in url:
        return f"sqlite+aiosqlite:///{url}"
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use a SQLite file or postgresql://")


class Database:
    def __init__(self, url: str, *, durable: bool = True, group_commit: bool = True, echo: bool = False):
        self.url = normalize_url(url)
        self.durable = durable
        self.group_commit = group_commit
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            self._install_sqlite_pragmas()
        self._write_lock = asyncio.Lock()
        self._pending: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- set-up -----------------------------------------------------------------------------

    def _install_sqlite_pragmas(self) -> None:
        durable = self.durable

        @event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves so writers take the lock up front (no upgrade deadlocks).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(self.engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

    async def upgrade(self) -> list[str]:
        """Apply every pending migration (all branches); return the heads now applied."""
        from storage.migrate import upgrade

        return await upgrade(self)

    def describe(self) -> str:
        """The URL without its password, for logs and `status`."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        if self._flusher and not self._flusher.done():
            await self._flusher
        await self.engine.dispose()

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed on exit."""
        if self.dialect == "sqlite":
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot; on SQLite it does not take the write lock."""
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = await conn.execution_options(sqlite_begin="DEFERRED")
            async with conn.begin():
                yield conn

    async def run(self, unit: Unit[T]) -> T:
        """Run `unit(conn)` in a transaction shared with other concurrent units (group commit).

        Returns after the commit. If the shared transaction fails, every unit of the batch is
        retried alone so only the faulty one sees its exception.
        """
        if not self.group_commit:
            async with self.transaction() as conn:
                return await unit(conn)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let concurrent callers join this batch
            batch, self._pending = self._pending, []
            try:
                results: list[Any] = []
                async with self.transaction() as conn:
                    for unit, _ in batch:
                        results.append(await unit(conn))
            except Exception:
                if len(batch) == 1:
                    await self._run_alone(*batch[0])
                else:
                    for unit, fut in batch:
                        await self._run_alone(unit, fut)
                continue
            except BaseException as exc:  # cancelled: fail the waiters rather than hang them
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                raise
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _run_alone(self, unit: Unit[Any], fut: asyncio.Future[Any]) -> None:
        try:
            async with self.transaction() as conn:
                result = await unit(conn)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(result)

    # -- dialect helpers (the only place that knows the two engines differ) -------------------

    def insert(self, table: Table) -> Any:
        """An INSERT that supports `.on_conflict_do_nothing()` / `.on_conflict_do_update()`."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)


def make_test_database(url: str) -> Database:
    """A database for tests: durable commits off for SQLite speed, same code otherwise."""
    return Database(url, durable=False)


__all__ = ["Database", "NullPool", "metadata", "normalize_url"]
