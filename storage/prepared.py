"""Hot statements compiled once and, on SQLite, run straight on the driver's cursor.

A message costs about seven statements (store it, load the conversation, queue the reply, mark
it handled, check consent, mark it sent, note the receipt). SQLAlchemy's per-execute machinery
(execution context, events, result wrapping) costs ~50 µs a statement there, ten times what
SQLite needs for an indexed row, and was half the router's CPU. A `Prepared` statement keeps
SQLAlchemy for what it is good at (the statement, the dialect's SQL, the column types' bind and
result processing) and skips the rest: the SQL is compiled once per set of parameter names and
executed with the same processors SQLAlchemy would apply. An IN list written as
`sa.bindparam(name, expanding=True)` is expanded per call by SQLAlchemy's own
`construct_expanded_state`.

On PostgreSQL the same plan (compiled for the asyncpg dialect: `$n` parameters with their casts)
runs on the asyncpg connection under the SQLAlchemy one, inside its transaction: SQLAlchemy's
execute path cost ~150 µs of CPU a statement there, more than the round trip, and the loop's
CPU is what bounds throughput. asyncpg keeps each statement prepared per connection, and an
executemany is one pipelined round trip. `each_many` turns a group commit's inserts into
multi-row `INSERT … RETURNING` statements (chunks of 2ⁿ rows, so few plans are compiled).
Any statement whose compiled form needs more (Python-side column defaults, literal-rendered
values) goes through `conn.execute` unchanged, so callers get the same rows either way.

Rows are named tuples: attribute access (`row.id`) and indexing (`row[0]`) as with SQLAlchemy's.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table, any_, bindparam, func
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import BULK_IN_THREAD, InlineConnection, pg_driver

MAX_ROWS_PER_STATEMENT = 64
"""The largest multi-row INSERT `each_many` sends: compiling a plan costs ~0.5 ms a row (once per
size per process), so 64 keeps the seven plans of a statement cheap; a batch of 200 is then four
statements instead of 200 round trips."""

Params = Mapping[str, Any]


def among(column: Any, rows: Any, dialect: str) -> Any:
    """`column IN (rows)`, as PostgreSQL plans well whatever its statistics say.

    There it is `column = ANY(ARRAY(rows))`: the rows are computed once and looked up by
    `column`'s index. Planned as a join instead, a table whose statistics are stale (a queue
    that filled since the last ANALYZE looks a few rows long) was joined row by row against the
    subquery, every row of the one against every row of the other.
    """
    if dialect == "postgresql":
        return column == any_(func.array(rows.scalar_subquery()))
    return column.in_(rows)


class _Plan:
    """One compiled form of a statement: its SQL, parameter order and type processors."""

    def __init__(self, statement: Any, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.supported = bool(
            compiled.positional
            and not compiled.insert_prefetch
            and not compiled.update_prefetch
            and not compiled.literal_execute_params
        )
        self.compiled = compiled
        self.expanding = bool(compiled.post_compile_params)
        self.sql: str = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        binds = compiled.binds
        self.defaults = {n: binds[n].effective_value for n in self.names if n not in keys}
        by_name = {n: b.type.dialect_impl(dialect).bind_processor(dialect) for n, b in binds.items()}
        self.processors_by_name = {n: p for n, p in by_name.items() if p is not None}
        self.bind_processors: list[Callable[[Any], Any] | None] = [by_name[n] for n in self.names]
        columns = statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
        try:
            self.result_processors: list[Callable[[Any], Any] | None] = [
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            ]
        except (TypeError, LookupError, SQLAlchemyError):  # it needs the column's type from a cursor (numeric)
            self.result_processors = []
            self.supported = False
        self.row_type: Any = None

    def sql_and_values(self, params: Params) -> tuple[str, list[Any]]:
        if not self.expanding:
            return self.sql, self.bind(params)
        state = self.compiled.construct_expanded_state(params)
        processors = {**self.processors_by_name, **state.processors}  # the latter: the expanded names
        values = [
            process(value) if (process := processors.get(name)) is not None else value
            for name, value in zip(state.positiontup or (), state.positional_parameters, strict=True)
        ]
        return state.statement, values

    def bind(self, params: Params) -> list[Any]:
        out = []
        for name, process in zip(self.names, self.bind_processors, strict=True):
            value = params[name] if name in params else self.defaults[name]
            out.append(value if process is None else process(value))
        return out

    def rows(self, cursor: Any) -> list[Any]:
        raw = cursor.fetchall()
        if not raw:
            return []
        if self.row_type is None:
            self.row_type = namedtuple("Row", [d[0] for d in cursor.description], rename=True)  # type: ignore[misc]
        return self.make_rows(raw)

    def records(self, records: list[Any]) -> list[Any]:
        """asyncpg's records as rows."""
        if not records:
            return []
        if self.row_type is None:
            self.row_type = namedtuple("Row", list(records[0].keys()), rename=True)  # type: ignore[misc]
        return self.make_rows(records)

    def make_rows(self, raw: Sequence[Any]) -> list[Any]:
        make = self.row_type._make
        processors = self.result_processors
        return [make(v if p is None else p(v) for v, p in zip(row, processors, strict=True)) for row in raw]


class Prepared:
    """A statement to run many times with different parameters; see the module docstring."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._by_dialect: dict[str, Any] = {}
        self._build: Callable[[Callable[[Table], Any]], Any] | None = None
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._multi: dict[tuple[str, tuple[str, ...], int], Prepared] = {}

    @classmethod
    def per_dialect(cls, build: Callable[[Callable[[Table], Any]], Any]) -> Prepared:
        """A statement whose syntax differs by engine, such as INSERT … ON CONFLICT.

        `build(insert)` is called with each dialect's own `insert` construct:
        `Prepared.per_dialect(lambda insert: insert(t).on_conflict_do_nothing(index_elements=["key"]))`.
        """
        prepared = cls(build(sqlite.insert))
        prepared._by_dialect = {"sqlite": prepared.statement}
        prepared._build = build  # PostgreSQL's variant is built on first use there (its dialect loads then)
        return prepared

    @classmethod
    def dialects(cls, statement: Any, **by_dialect: Any) -> Prepared:
        """A statement with another form on some engines: `Prepared.dialects(s, postgresql=s_pg)`."""
        prepared = cls(statement)
        prepared._by_dialect = dict(by_dialect)
        return prepared

    def _statement(self, conn: AsyncConnection | InlineConnection) -> Any:
        name = conn.dialect.name
        found = self._by_dialect.get(name)
        if found is None and self._build is not None and name == "postgresql":
            from sqlalchemy.dialects import postgresql

            found = self._by_dialect[name] = self._build(postgresql.insert)
        return found if found is not None else self.statement

    def _plan(self, conn: AsyncConnection | InlineConnection, params: Params) -> _Plan | None:
        keys = tuple(params)
        plan = self._plans.get((conn.dialect.name, *keys))
        if plan is None:
            plan = self._plans[(conn.dialect.name, *keys)] = _Plan(self._statement(conn), conn.dialect, keys)
        return plan if plan.supported else None

    async def all(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> list[Any]:
        """Every row the statement returns (a SELECT or a DML … RETURNING)."""
        params = params or {}
        if isinstance(conn, InlineConnection):
            if (plan := self._plan(conn, params)) is not None:
                cursor = conn.driver_execute(*plan.sql_and_values(params))
                try:
                    return plan.rows(cursor)
                finally:
                    cursor.close()
        elif (plan := self._plan(conn, params)) is not None:
            sql, values = plan.sql_and_values(params)
            driver = await pg_driver(conn, sql)
            return plan.records(await driver.fetch(sql, *values))
        return list((await conn.execute(self._statement(conn), params)).all())

    async def first(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> Any | None:
        rows = await self.all(conn, params)
        return rows[0] if rows else None

    async def execute(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        params = params or {}
        if isinstance(conn, InlineConnection):
            if (plan := self._plan(conn, params)) is not None:
                cursor = conn.driver_execute(*plan.sql_and_values(params))
                try:
                    return int(cursor.rowcount)
                finally:
                    cursor.close()
        elif (plan := self._plan(conn, params)) is not None:
            sql, values = plan.sql_and_values(params)
            driver = await pg_driver(conn, sql)
            status = await driver.execute(sql, *values)  # "UPDATE 3"
            tail = status.rsplit(" ", 1)[-1]
            return int(tail) if tail.isdigit() else 0
        return int((await conn.execute(self._statement(conn), params)).rowcount or 0)

    async def execute_many(self, conn: AsyncConnection | InlineConnection, rows: Sequence[Params]) -> None:
        """Run a statement that returns no rows once per parameter set (an executemany)."""
        if not rows:
            return
        same_keys = all(tuple(r) == tuple(rows[0]) for r in rows)
        plan = self._plan(conn, rows[0]) if same_keys else None
        if plan is not None and not plan.expanding:
            if isinstance(conn, InlineConnection):
                if len(rows) <= BULK_IN_THREAD:
                    conn.driver_execute_many(plan.sql, [plan.bind(r) for r in rows])
                    return
            else:
                driver = await pg_driver(conn, plan.sql)
                await driver.executemany(plan.sql, [plan.bind(r) for r in rows])
                return
        await conn.execute(self._statement(conn), list(rows))

    async def each_many(
        self, conn: AsyncConnection | InlineConnection, rows: Sequence[Params], key: Sequence[str]
    ) -> list[Any | None]:
        """An INSERT … RETURNING per parameter set: for each, its returned row, or None where it
        inserted nothing (ON CONFLICT DO NOTHING). Rows are inserted in the order given.

        The returned columns include `key`, the columns that name a row. On PostgreSQL a run of
        rows with a complete key, each key once, is sent as multi-row statements and the returned
        rows are matched back by key; a row without a complete key (or repeating one) is sent alone.
        SQLite runs one prepared insert per row (a few µs each, no round trip).
        """
        if isinstance(conn, InlineConnection) or len(rows) < 2:
            return [await self.first(conn, r) for r in rows]
        out: list[Any | None] = [None] * len(rows)
        run: list[tuple[int, tuple[Any, ...]]] = []
        seen: set[tuple[Any, ...]] = set()
        for i, row in enumerate(rows):
            named = tuple(row[c] for c in key)
            if None in named or named in seen:
                await self._insert_run(conn, rows, run, key, out)
                run = []
                out[i] = await self.first(conn, row)
                continue
            seen.add(named)
            run.append((i, named))
        await self._insert_run(conn, rows, run, key, out)
        return out

    async def _insert_run(
        self,
        conn: AsyncConnection | InlineConnection,
        rows: Sequence[Params],
        run: list[tuple[int, tuple[Any, ...]]],
        key: Sequence[str],
        out: list[Any | None],
    ) -> None:
        start = 0
        while start < len(run):
            size = min(MAX_ROWS_PER_STATEMENT, 1 << ((len(run) - start).bit_length() - 1))
            chunk = run[start:start + size]
            start += size
            if size == 1:
                out[chunk[0][0]] = await self.first(conn, rows[chunk[0][0]])
                continue
            names = tuple(rows[chunk[0][0]])
            plan = self._multi_plan(conn, names, size)
            params: dict[str, Any] = {}
            for j, (i, _) in enumerate(chunk):
                params.update({f"{c}__{j}": rows[i][c] for c in names})
            found = {tuple(getattr(r, c) for c in key): r for r in await plan.all(conn, params)}
            for i, named in chunk:
                out[i] = found.get(named)

    def _multi_plan(self, conn: AsyncConnection | InlineConnection, names: tuple[str, ...], size: int) -> Prepared:
        """This INSERT with `size` rows of VALUES, each column a parameter `<column>__<row>`."""
        found = self._multi.get((conn.dialect.name, names, size))
        if found is None:
            statement = self._statement(conn)
            table = statement.table
            found = Prepared(statement.values([
                {c: bindparam(f"{c}__{j}", type_=table.c[c].type) for c in names} for j in range(size)
            ]))
            if len(self._multi) > 64:
                self._multi.clear()
            self._multi[(conn.dialect.name, names, size)] = found
        return found

    async def all_many(self, conn: AsyncConnection | InlineConnection, rows: Sequence[Params]) -> list[Any]:
        """An INSERT … RETURNING per parameter set; every returned row, in no promised order.

        sqlite3 has no executemany with RETURNING, so SQLite runs one prepared insert per row (a few
        µs each); PostgreSQL sends them together through SQLAlchemy's insertmanyvalues.
        """
        if not rows:
            return []
        if isinstance(conn, InlineConnection):
            out: list[Any] = []
            for row in rows:
                out += await self.all(conn, row)
            return out
        return list((await conn.execute(self._statement(conn), list(rows))).all())


__all__ = ["Prepared"]
