"""Hot statements compiled once and, on SQLite, run straight on the driver's cursor.

A message costs about seven statements (store it, load the conversation, queue the reply, mark
it handled, check consent, mark it sent, note the receipt). SQLAlchemy's per-execute machinery
(execution context, events, result wrapping) costs ~50 µs a statement there, ten times what
SQLite needs for an indexed row, and was half the router's CPU. A `Prepared` statement keeps
SQLAlchemy for what it is good at (the statement, the dialect's SQL, the column types' bind and
result processing) and skips the rest: the SQL is compiled once per set of parameter names and
executed with the same processors SQLAlchemy would apply. An IN list written as
`sa.bindparam(name, expanding=True)` is expanded per call by SQLAlchemy's own
`construct_expanded_state`. On PostgreSQL, and for any statement whose compiled form needs more
(Python-side column defaults, literal-rendered values), it goes through `conn.execute` unchanged,
so callers get the same rows either way.

Rows are named tuples: attribute access (`row.id`) and indexing (`row[0]`) as with SQLAlchemy's.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import BULK_IN_THREAD, InlineConnection

Params = Mapping[str, Any]


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
        self.result_processors: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
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

    def _statement(self, conn: AsyncConnection | InlineConnection) -> Any:
        name = conn.dialect.name
        found = self._by_dialect.get(name)
        if found is None and self._build is not None and name == "postgresql":
            from sqlalchemy.dialects import postgresql

            found = self._by_dialect[name] = self._build(postgresql.insert)
        return found if found is not None else self.statement

    def _plan(self, conn: InlineConnection, params: Params) -> _Plan | None:
        keys = tuple(params)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plans[keys] = _Plan(self._statement(conn), conn.dialect, keys)
        return plan if plan.supported else None

    async def all(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> list[Any]:
        """Every row the statement returns (a SELECT or a DML … RETURNING)."""
        params = params or {}
        if isinstance(conn, InlineConnection) and (plan := self._plan(conn, params)) is not None:
            cursor = conn.driver_execute(*plan.sql_and_values(params))
            try:
                return plan.rows(cursor)
            finally:
                cursor.close()
        return list((await conn.execute(self._statement(conn), params)).all())

    async def first(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> Any | None:
        rows = await self.all(conn, params)
        return rows[0] if rows else None

    async def execute(self, conn: AsyncConnection | InlineConnection, params: Params | None = None) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        params = params or {}
        if isinstance(conn, InlineConnection) and (plan := self._plan(conn, params)) is not None:
            cursor = conn.driver_execute(*plan.sql_and_values(params))
            try:
                return int(cursor.rowcount)
            finally:
                cursor.close()
        return int((await conn.execute(self._statement(conn), params)).rowcount or 0)

    async def execute_many(self, conn: AsyncConnection | InlineConnection, rows: Sequence[Params]) -> None:
        """Run a statement that returns no rows once per parameter set (an executemany)."""
        if not rows:
            return
        same_keys = all(tuple(r) == tuple(rows[0]) for r in rows)
        plan = self._plan(conn, rows[0]) if same_keys and isinstance(conn, InlineConnection) else None
        if plan is not None and not plan.expanding and len(rows) <= BULK_IN_THREAD:
            assert isinstance(conn, InlineConnection)
            conn.driver_execute_many(plan.sql, [plan.bind(r) for r in rows])
            return
        await conn.execute(self._statement(conn), list(rows))

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
