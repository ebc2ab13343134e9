"""One database handle for SQLite (the embedded default) and PostgreSQL (scale-out).

Repositories write through `Database.run(unit)`: concurrent units are committed together in one
transaction (group commit), so durable commits stay cheap under load while each caller still
gets its own result or exception only after the data is on disk. `Database.transaction()` is the
plain one-transaction-per-call path (used by the baseline benchmark and by long imports).

SQLite runs on the standard `sqlite3` driver with statements executed inline on the event loop
(an indexed statement takes microseconds, far less than a hop to a driver thread) while COMMIT
(the fsync), a BEGIN that must wait for another process's lock and the WAL checkpoints run in
worker threads. Writes share one kept-open connection and reads another. Units receive an
`InlineConnection` with the `AsyncConnection` methods they use. PostgreSQL runs on asyncpg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

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
I = TypeVar("I")  # noqa: E741
Unit = Callable[[AsyncConnection], Awaitable[T]]
ManyUnit = Callable[[AsyncConnection, list[I]], Awaitable[list[T]]]
"""Does many callers' items in one go: one result per item, in order (see `Database.run_many`)."""


class InlineConnection:
    """The `AsyncConnection` surface units use, over a synchronous SQLite connection."""

    def __init__(self, sync: Connection, on_driver_write: Callable[[str], None]) -> None:
        self.sync_connection = sync
        self.dialect = sync.dialect
        self.driver: Any = sync.connection.driver_connection
        self._on_driver_write = on_driver_write

    def driver_execute(self, sql: str, parameters: list[Any]) -> Any:
        """Run compiled SQL on the sqlite3 connection itself (see storage.prepared); the cursor."""
        cursor = self.driver.execute(sql, parameters)
        self._on_driver_write(sql)
        return cursor

    def driver_execute_many(self, sql: str, rows: list[list[Any]]) -> None:
        self.driver.executemany(sql, rows).close()
        self._on_driver_write(sql)

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        if isinstance(parameters, list) and len(parameters) > BULK_IN_THREAD:
            return await asyncio.to_thread(self.sync_connection.execute, statement, parameters, **kwargs)
        return self.sync_connection.execute(statement, parameters, **kwargs)

    async def scalar(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return self.sync_connection.scalar(statement, parameters, **kwargs)

    async def scalars(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return self.sync_connection.scalars(statement, parameters, **kwargs)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        return self.sync_connection.exec_driver_sql(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(self.sync_connection, *args, **kwargs)


async def _begin_immediate(driver: Any) -> None:
    """Take SQLite's write lock: at once on the loop when it is free, else wait for it in a thread.

    Only another process (a CLI import, a second worker) can hold it, since this process's
    writers queue on `Database._write_lock`; so the common case costs no thread hop, whose
    return can wait up to the GIL switch interval (5 ms) behind a busy loop. The writer
    connection has no busy timeout of its own (see `_sqlite_write`); only the wait has one.
    """
    try:
        driver.execute("BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
    await asyncio.to_thread(_begin_waiting, driver)


def _begin_waiting(driver: Any) -> None:
    driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        driver.execute("BEGIN IMMEDIATE")
    finally:
        driver.execute("PRAGMA busy_timeout=0")


BUSY_TIMEOUT_MS = 30_000
"""How long a write waits for another process's write lock before giving up."""

BULK_IN_THREAD = 200
"""An executemany above this many rows runs in a worker thread so the loop stays responsive."""

CHECKPOINT_INTERVAL = 1.0
"""Seconds between WAL checkpoints on SQLite, when something was written since the last one."""


@dataclass
class CommitTimes:
    """Durations of SQLite commits (the fsync), for benchmarks and for a warning when the disk stalls."""

    count: int = 0
    slow: int = 0
    longest_ms: float = 0.0
    _warned_at: float = field(default=0.0, repr=False)

    SLOW_MS = 50.0
    WARN_MS = 250.0

    def note(self, ms: float) -> None:
        self.count += 1
        self.longest_ms = max(self.longest_ms, ms)
        if ms < self.SLOW_MS:
            return
        self.slow += 1
        now = time.monotonic()
        if ms >= self.WARN_MS and now - self._warned_at > 60:
            self._warned_at = now
            log.warning("slow commit: the disk took %.0f ms to confirm a write (messages waited with it)", ms)


class DatabaseUnavailable(Exception):
    """The database cannot be opened; the message is one line naming it and saying why."""


CONNECT_TIMEOUT = 10.0
"""Seconds `Database.check` waits for the server before calling the database unreachable."""


def _reason(exc: BaseException) -> str:
    """The driver's own words for why a connection failed (the innermost cause), on one line."""
    seen = {id(exc)}
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "orig", None) or inner.__cause__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        inner = nxt
    if isinstance(inner, socket.gaierror):
        return f"the host does not resolve ({inner.strerror})"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused (is the server running, on that host and port?)"
    text = " ".join(str(inner).split()) or type(inner).__name__
    return text.removeprefix(f"<class '{type(inner).__module__}.{type(inner).__name__}'>: ")


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
    def __init__(self, url: str, *, durable: bool = True, group_commit: bool = True, echo: bool = False,
                 commit_inline: bool = False):
        self.url = normalize_url(url)
        self.durable = durable
        self.commit_inline = commit_inline and not durable
        """SQLite: COMMIT on the loop rather than in a thread. Only without fsync (a scratch copy for a
        replay), where the commit is a write to the WAL and the thread hop costs more than it does."""
        self.group_commit = group_commit
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        self.sync_engine: Engine | None = None
        if self.dialect == "sqlite":
            self.sync_engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
                poolclass=QueuePool,
                pool_size=4,
                max_overflow=8,
                echo=echo,
            )
            self._install_sqlite_pragmas()
        else:
            # All kept open (no overflow): an overflow connection is closed on return, and opening one
            # (TCP, SSL negotiation, start-up) cost more than the burst of reads that needed it.
            kwargs.update(pool_size=30, max_overflow=0, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        """Same pool; no BEGIN/COMMIT round trips for the hot single-statement reads of query()."""
        self._write_lock = asyncio.Lock()
        self.person_cache: dict[Any, tuple[float, Any]] = {}
        """PeopleRepo's lookups; cleared by any write to persons or addresses through this handle."""
        for sync in {self.engine.sync_engine, self.sync_engine} - {None}:
            event.listen(sync, "after_cursor_execute", self._watch_people_writes)
        if self.dialect == "postgresql":
            event.listen(self.engine.sync_engine, "connect", self._on_pg_connect)
        self.commits = CommitTimes()
        """How long durable commits took: a slow disk shows here (and in the log), not as a mystery."""
        self._checkpointer: asyncio.Task[None] | None = None
        self._written = False
        self._reader: InlineConnection | None = None
        self._writer: InlineConnection | None = None
        self._reader_busy = False
        self._pending: list[tuple[ManyUnit[Any, Any] | None, Any, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._reads: dict[ManyUnit[Any, Any], list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._read_tasks: set[asyncio.Task[None]] = set()

    # -- set-up -----------------------------------------------------------------------------

    def _watch_people_writes(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._forget_people_on_write(statement)

    def _on_pg_connect(self, _dbapi: Any, record: Any) -> None:
        record.info["on_driver_write"] = self._forget_people_on_write  # see pg_driver

    def _forget_people_on_write(self, statement: str) -> None:
        if self.person_cache and statement[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            head = statement[:80].lower()
            if " persons" in head or " addresses" in head:
                self.person_cache.clear()

    def _install_sqlite_pragmas(self) -> None:
        durable = self.durable

        assert self.sync_engine is not None

        @event.listens_for(self.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves so writers take the lock up front (no upgrade deadlocks).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA wal_autocheckpoint=0")  # Database._checkpoints does it, off the commit path
            cur.close()

        @event.listens_for(self.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            if mode != "NONE":  # NONE: each statement is its own implicit transaction (query())
                conn.exec_driver_sql(f"BEGIN {mode}")

    @asynccontextmanager
    async def _sqlite(self, mode: str) -> AsyncIterator[AsyncConnection]:
        assert self.sync_engine is not None
        conn = self.sync_engine.connect().execution_options(sqlite_begin=mode)
        try:
            trans = conn.begin()
            try:
                yield InlineConnection(conn, self._forget_people_on_write)  # type: ignore[misc]
            except BaseException:
                trans.rollback()
                raise
            if mode == "NONE":
                trans.rollback()  # nothing was begun on the driver; just end SQLAlchemy's bookkeeping
            else:
                trans.commit()
        finally:
            conn.close()

    @asynccontextmanager
    async def _sqlite_write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the one kept-open writer connection (callers hold `_write_lock`).

        Writes in this process are serialized anyway, so one connection serves them all without a
        pool checkout per transaction; it is replaced after any error.
        """
        assert self.sync_engine is not None
        if self._writer is None:
            sync = self.sync_engine.connect().execution_options(sqlite_begin="NONE")
            self._writer = InlineConnection(sync, self._forget_people_on_write)
            self._writer.driver.execute("PRAGMA busy_timeout=0")  # waiting is _begin_immediate's job
        writer = self._writer
        sync = writer.sync_connection
        try:
            await _begin_immediate(writer.driver)
            trans = sync.begin()  # SQLAlchemy's bookkeeping of the BEGIN just issued
            try:
                yield writer  # type: ignore[misc]
            except BaseException:
                trans.rollback()
                raise
            started = time.perf_counter()
            if self.commit_inline:
                trans.commit()
            else:
                await asyncio.to_thread(trans.commit)  # the fsync
            self.commits.note((time.perf_counter() - started) * 1000)
        except BaseException:
            self._writer = None
            with contextlib.suppress(Exception):
                sync.invalidate()  # not back to the pool: it has no busy timeout, and may be mid-transaction
                sync.close()
            raise

    async def upgrade(self) -> list[str]:
        """Apply every pending migration (all branches); return the heads now applied."""
        from storage.migrate import upgrade

        self._make_parent()
        try:
            return await upgrade(self)
        except Exception as exc:
            if type(exc).__name__ != "CommandError" or "Can't locate revision" not in str(exc):  # Alembic's
                raise
            raise DatabaseUnavailable(
                f"database {self.describe()}: it was set up by a newer Huddle ({_reason(exc)}); run that "
                "version, or point HUDDLE_DATABASE_URL at this version's database") from None

    # -- is it there? ------------------------------------------------------------------------

    def file(self) -> Path | None:
        """The SQLite file (None for PostgreSQL or an in-memory database)."""
        database = make_url(self.url).database or ""
        if self.dialect != "sqlite" or database in {"", ":memory:"} or database.startswith("file:"):
            return None
        return Path(database).expanduser()

    def _make_parent(self) -> None:
        path = self.file()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(f"database {self.describe()}: cannot create {path.parent}: "
                                          f"{exc.strerror or exc}") from None

    async def check(self, *, create: bool = False) -> None:
        """Fail fast with one line when this database cannot be used, before anything is written.

        `create=False` (every command but `run` and `db upgrade`) refuses a SQLite file that does not
        exist and a database where Huddle's migrations never ran, so a typo'd path or database name
        is reported instead of becoming a new empty database. A host that does not resolve, a
        refused connection, a wrong password or a missing PostgreSQL database are reported the same
        way; a server that does not answer is given `CONNECT_TIMEOUT` seconds.
        """
        where = self.describe()
        path = self.file()
        if path is not None:
            if path.is_dir():
                raise DatabaseUnavailable(f"database {where}: {path} is a directory, not a database file")
            if not path.exists():
                if not create:
                    raise DatabaseUnavailable(
                        f"database {where}: no such file (check HUDDLE_DATABASE_URL; "
                        "`python main.py db upgrade` creates a new one)")
                self._make_parent()
        try:
            migrated = await asyncio.wait_for(self._probe(), CONNECT_TIMEOUT)
        except TimeoutError:
            raise DatabaseUnavailable(f"database {where}: no answer within {CONNECT_TIMEOUT:.0f} s "
                                      "(check the host and port in HUDDLE_DATABASE_URL)") from None
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
            raise DatabaseUnavailable(f"database {where}: {_reason(exc)}") from None
        if not migrated and not create:
            raise DatabaseUnavailable(
                f"database {where}: Huddle's tables are not there (a typo in HUDDLE_DATABASE_URL? "
                "`python main.py db upgrade` sets up a new database)")

    async def _probe(self) -> bool:
        """Connect, read the schema; True when Huddle's migrations have run here."""
        async with self.read() as conn:
            return bool(await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")))

    def describe(self) -> str:
        """The URL without its password, for logs and `status`."""
        url = make_url(self.url)
        if self.dialect == "sqlite":
            return f"sqlite:///{url.database}"
        return url.set(drivername="postgresql").render_as_string(hide_password=True)

    def _checkpoint_soon(self) -> None:
        self._written = True
        if (self._checkpointer is None or self._checkpointer.done()) and self._has_wal_file():
            self._checkpointer = asyncio.create_task(self._checkpoints(), name="sqlite-checkpoints")

    def _has_wal_file(self) -> bool:
        database = make_url(self.url).database or ""
        return self.dialect == "sqlite" and database not in {"", ":memory:"}

    async def _checkpoints(self) -> None:
        """Copy the WAL into the database file from a worker thread, once a second at most.

        SQLite's own automatic checkpoint runs inside whichever COMMIT crosses 1,000 pages: that
        commit then waits for the database file to be written and fsynced (50–200 ms seen), and
        with it every message of the batch. A PASSIVE checkpoint does not block writers, so here
        commits carry on while it runs; the WAL is reused from its start once it is all copied.
        """
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            if self._written:
                self._written = False
                try:
                    await asyncio.to_thread(self._checkpoint, "PASSIVE")
                except Exception:
                    log.exception("WAL checkpoint failed; will try again")

    def _checkpoint(self, mode: str) -> None:
        assert self.sync_engine is not None
        with self.sync_engine.connect().execution_options(sqlite_begin="NONE") as conn:
            conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")

    async def close(self) -> None:
        if self._flusher and not self._flusher.done():
            await self._flusher
        if self._checkpointer is not None and self._checkpointer.get_loop() is asyncio.get_running_loop():
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            # PASSIVE: TRUNCATE would wait for another process's writer; the last connection to
            # close removes the WAL file anyway.
            await asyncio.to_thread(self._checkpoint, "PASSIVE")
        await self.engine.dispose()
        if self._reader is not None:
            self._reader.sync_connection.close()
        if self._writer is not None:
            self._writer.sync_connection.invalidate()  # it has no busy timeout: not for the pool
            self._writer.sync_connection.close()
        self._reader = self._writer = None
        if self.sync_engine is not None:
            self.sync_engine.dispose()

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed on exit."""
        if self.dialect == "sqlite":
            async with self._write_lock, self._sqlite_write() as conn:
                yield conn
            self._checkpoint_soon()
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot; on SQLite it does not take the write lock."""
        if self.dialect == "sqlite":
            async with self._sqlite("DEFERRED") as conn:
                yield conn
            return
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def query(self, unit: Unit[T]) -> T:
        """Run a read-only `unit(conn)` on the cheapest path for this engine.

        Each statement sees committed data, but two statements of one unit may see different
        commits: use `read()` when a unit needs one consistent snapshot. On SQLite the statements
        run without BEGIN/COMMIT (two fewer round trips for the hot single-statement reads).
        """
        if self.dialect == "sqlite":
            return await self._sqlite_query(unit)
        async with self._autocommit.connect() as conn:
            return await unit(conn)

    async def query_many(self, op: ManyUnit[I, T], item: I) -> T:
        """Like `query`, for a read many callers make at once (`op(conn, items)`: one result per item).

        On PostgreSQL the items of concurrent callers share one pooled connection and one call of
        `op` (a statement for all, where each caller would take a connection and a round trip);
        callers that come while it runs share the next. SQLite runs `op` on this item alone,
        inline: a statement there takes microseconds and has no round trip to save.
        """
        if self.dialect == "sqlite":
            return (await self._sqlite_query(lambda conn: op(conn, [item])))[0]
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        waiting = self._reads.get(op)
        if waiting is None:
            waiting = self._reads[op] = []
            task = asyncio.create_task(self._read_batches(op), name=f"reads-{op.__qualname__}")
            self._read_tasks.add(task)
            task.add_done_callback(self._read_tasks.discard)
        waiting.append((item, fut))
        return await fut

    async def _read_batches(self, op: ManyUnit[Any, Any]) -> None:
        try:
            while self._reads.get(op):
                await asyncio.sleep(0)  # let concurrent callers join
                batch, self._reads[op] = self._reads[op], []
                try:
                    async with self._autocommit.connect() as conn:
                        found = await op(conn, [item for item, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                except BaseException as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    raise
                for (_, fut), result in zip(batch, found, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            left = self._reads.pop(op, [])
            for _, fut in left:
                if not fut.done():
                    fut.set_exception(RuntimeError("database closed"))

    async def _sqlite_query(self, unit: Unit[T]) -> T:
        # One kept-open connection serves the reads: checking a pooled one out and back in cost
        # more than the statement. A read that overlaps another (it awaited something else
        # between statements) takes a pooled connection instead.
        assert self.sync_engine is not None
        if self._reader_busy:
            async with self._sqlite("NONE") as conn:
                return await unit(conn)
        if self._reader is None:
            sync = self.sync_engine.connect().execution_options(sqlite_begin="NONE")
            self._reader = InlineConnection(sync, self._forget_people_on_write)
        self._reader_busy = True
        try:
            return await unit(self._reader)  # type: ignore[arg-type]
        finally:
            self._reader_busy = False
            if self._reader.sync_connection.in_transaction():
                self._reader.sync_connection.rollback()  # nothing begun on the driver: bookkeeping only

    async def run(self, unit: Unit[T]) -> T:
        """Run `unit(conn)` in a transaction shared with other concurrent units (group commit).

        Returns after the commit. If the shared transaction fails, every unit of the batch is
        retried alone so only the faulty one sees its exception.
        """
        if not self.group_commit:
            async with self.transaction() as conn:
                return await unit(conn)
        return await self._join(None, unit)

    async def run_many(self, op: ManyUnit[I, T], item: I) -> T:
        """Like `run`, for an operation that can do many callers' items in one go.

        `op(conn, items)` returns one result per item, in order. In a group commit, the items of
        every caller of `op` in the batch are handed to one call (one multi-row statement where a
        unit would send one per caller); without group commit, or retried alone after a failed
        batch, `op` gets this item alone. Either way the caller's result comes after the commit.
        """
        if not self.group_commit:
            async with self.transaction() as conn:
                return (await op(conn, [item]))[0]
        return await self._join(op, item)

    async def _join(self, op: ManyUnit[Any, T] | None, item: Any) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, item, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let concurrent callers join this batch
            batch, self._pending = self._pending, []
            # Callers in one batch are concurrent (each waits for its result before writing
            # again), so any order among them is one they could have run in; an operation's
            # items keep the callers' order.
            groups: dict[Any, list[tuple[Any, Any, asyncio.Future[Any]]]] = {}
            for entry in batch:
                groups.setdefault(entry[0] if entry[0] is not None else entry, []).append(entry)
            try:
                results: list[tuple[asyncio.Future[Any], Any]] = []
                async with self.transaction() as conn:
                    for entries in groups.values():
                        op = entries[0][0]
                        if op is None:
                            results.append((entries[0][2], await entries[0][1](conn)))
                            continue
                        found = await op(conn, [item for _, item, _ in entries])
                        if len(found) != len(entries):
                            raise RuntimeError(f"{op.__qualname__} returned {len(found)} results for {len(entries)}")
                        results += [(fut, r) for (_, _, fut), r in zip(entries, found, strict=True)]
            except Exception:
                for entry in batch:
                    await self._run_alone(*entry)
                continue
            except BaseException as exc:  # cancelled: fail the waiters rather than hang them
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                raise
            for fut, result in results:
                if not fut.done():
                    fut.set_result(result)

    @property
    def writes_in_turn(self) -> bool:
        """`run` units never commit side by side: each sees every write committed before it.

        True on SQLite (one writer at a time) and with group commit (one batch at a time).
        """
        return self.dialect == "sqlite" or self.group_commit

    async def _run_alone(self, op: ManyUnit[Any, Any] | None, item: Any, fut: asyncio.Future[Any]) -> None:
        try:
            async with self.transaction() as conn:
                result = await item(conn) if op is None else (await op(conn, [item]))[0]
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(result)

    # -- dialect helpers (the only place that knows the two engines differ) -------------------

    def insert(self, table: Table) -> Any:
        """An INSERT that supports `.on_conflict_do_nothing()` / `.on_conflict_do_update()`."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        return sqlite.insert(table)

    async def upsert_in(
        self,
        conn: AsyncConnection,
        table: Table,
        rows: list[dict[str, Any]],
        *,
        key: str = "external_id",
        keep: tuple[str, ...] = (),
    ) -> None:
        """Insert `rows` or update them by `key` in one executemany; `keep` columns are not overwritten."""
        if not rows:
            return
        stmt = self.insert(table)
        updatable = [c for c in rows[0] if c not in {key, *keep}]
        stmt = stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in updatable})
        await conn.execute(stmt, rows)


class PgDriver:
    """The asyncpg connection under a SQLAlchemy one, for `storage.prepared`: inside its transaction,
    noting writes to the people cache, raising SQLAlchemy's exceptions as `conn.execute` would."""

    __slots__ = ("adapted", "conn", "sql")

    def __init__(self, conn: AsyncConnection, adapted: Any, sql: str) -> None:
        self.conn, self.adapted, self.sql = conn, adapted, sql

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return await self.adapted.driver_connection.fetch(sql, *args)  # type: ignore[no-any-return]
        except Exception as error:
            raise await self._translate(error) from error

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return await self.adapted.driver_connection.execute(sql, *args)  # type: ignore[no-any-return]
        except Exception as error:
            raise await self._translate(error) from error

    async def executemany(self, sql: str, args: list[list[Any]]) -> None:
        try:
            await self.adapted.driver_connection.executemany(sql, args)
        except Exception as error:
            raise await self._translate(error) from error

    async def _translate(self, error: Exception) -> BaseException:
        dialect = self.conn.dialect
        try:
            self.adapted._handle_exception(error)  # raises the DBAPI-level exception SQLAlchemy wraps
        except Exception as dbapi_error:
            error = dbapi_error
        if not isinstance(error, dialect.loaded_dbapi.Error):
            return error
        invalid = dialect.is_disconnect(error, self.adapted, None)
        if invalid:
            with contextlib.suppress(Exception):
                await self.conn.invalidate(error)
        return DBAPIError.instance(self.sql, None, error, dialect.loaded_dbapi.Error,
                                   connection_invalidated=invalid, dialect=dialect)


async def pg_driver(conn: AsyncConnection, sql: str) -> PgDriver:
    """`conn`'s asyncpg connection in its transaction: SQLAlchemy's adapter begins one lazily, at
    its first statement, so it is begun here when `conn` has run none yet."""
    raw = await conn.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    if adapted._transaction is None and not adapted.autocommit:
        await adapted._start_transaction()
    on_write = raw.info.get("on_driver_write")
    if on_write is not None:
        on_write(sql)
    return PgDriver(conn, adapted, sql)


def make_test_database(url: str) -> Database:
    """A database for tests: durable commits off for SQLite speed, same code otherwise."""
    return Database(url, durable=False)


__all__ = ["Database", "DatabaseUnavailable", "NullPool", "metadata", "normalize_url"]
