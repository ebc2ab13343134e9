"""End to end: inbound → store → router → handler → outbox stored → channel sent.

    python -m bench.router [--messages 10000] [--rate 500] [--seconds 6]

Prints, for SQLite with durable commits (and PostgreSQL when HUDDLE_TEST_DATABASE_URL is set):
sustained throughput, and p50/p99 latency (inbound accepted → provider call) at a fixed offered
load, for Huddle's group commit and, in the same run, a naive baseline that commits every unit of
work on its own. Targets on a 2-core machine: ≥ 2,000 msg/s on SQLite, ≥ 1,000 on PostgreSQL;
p99 < 50 ms at 500 msg/s. Beside the throughput, per message: statements sent (round trips on
PostgreSQL, BEGIN and COMMIT included), transactions committed, pool checkouts, and CPU ms of
this process and of PostgreSQL's backends; on a machine shared with other work the CPU per
message is the steadier figure (throughput ≈ 1 / the larger of the two, one core each). Beside
the latency, the slowest durable commit of that run and how many took ≥ 50 ms: a disk that
stalls for a few hundred ms holds every message of those moments, whatever the code does.

Where the time went (issue 13; PostgreSQL measured 84–200 msg/s, group commit 0.8–1.6× naive):

- Sends went one at a time per channel. A per-channel lock around each "sent" write (so a
  delivery report and its receipt never commit side by side) made every send wait for the
  previous one's commit, so group commit had nothing to group: batches averaged 2.6 units,
  1.9 commits per message, and the outbox trickled at one commit per message after the inbound
  side had long finished. The lock is now taken only where writes can run side by side (naive
  mode on PostgreSQL); SQLite and group commit run them in turn anyway.
- Once its lanes were full the claim loop claimed one row per transaction (limit = window −
  backlog ≥ 1): 0.9 claim commits per message. It now waits until half the window is free.
- PostgreSQL paid ~150 µs of SQLAlchemy CPU per statement (execution context, result wrapping,
  greenlet hops) on 9 statements a message, each its own round trip; the hot reads (conversation
  state, consent before a send) took 2.2 pool checkouts a message, and past the 10 kept
  connections the overflow ones were opened (TCP, SSL negotiation) and closed per burst, ~10 %
  of the loop. Statements built per call (the "sent" write, the kept-report lookup) cost
  another ~0.3 ms a message on both engines.

Then the backlog (1,500 messages: 455 msg/s and 1.3 ms of PostgreSQL CPU a message; the default
10,000: 51 msg/s, 8–19 ms): the outbox claim checked each queued row for an older one to its
recipient (NOT EXISTS) and, asking for more rows than there were recipients' heads (256 wanted,
200 people), read the whole queue on every claim — EXPLAIN ANALYZE: a hash anti join of ~250,000
row pairs, 20 ms a claim at 10,000 queued. Claims now read the front of the queue (ix_outbox_queue)
and, for what it does not fill, one index probe per recipient (a recursive skip scan of
ix_outbox_open); rows are locked by id in a materialized CTE; the inbox claim likewise. Every probe
is one the planner cannot turn into a join (a queue filled since the last ANALYZE looks empty, and
the planner then matched every row with every row), and the heartbeat ANALYZEs the queue tables as
they fill. PostgreSQL CPU at 10,000: ~0.2 ms a message.

What changed before that: `Database.run_many` hands every concurrent caller's item of one operation to one
call, so a batch stores its inbound messages in multi-row `INSERT … RETURNING` statements, queues
their replies the same way, marks them handled and sent with one executemany each; `Prepared`
runs on asyncpg directly on PostgreSQL; `Database.query_many` coalesces the hot reads onto one
connection and one statement; the pool keeps its 30 connections. Per message on PostgreSQL:
~16 round trips, 4 commits and 5 checkouts (naive) → ~0.4 round trips, 0.03 commits and 0.2
checkouts (group commit); SQLite group commit from 3.5 to ~0.8 ms of CPU a message.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.app import App
from bot.config_file import ConfigFile
from bot.context import Context
from bot.heap import freeze_startup_heap
from bot.model import Address, Inbound, Outbound
from bot.router import Router
from bot.settings import CoreSettings
from bot.testing import migrated_sqlite
from channels.base import Capabilities, ChannelPolicy, Pacing, SendResult
from coaching.roles import Role
from storage.db import CommitTimes, Database

_ids = itertools.count()


@dataclass
class TimingChannel:
    """A provider that answers at once and notes when each reply reached it."""

    name: str = "telegram"
    policy: ChannelPolicy = field(default_factory=lambda: ChannelPolicy(
        "telegram", capabilities=Capabilities(max_length=4096), pacing=Pacing(concurrency=64)))
    arrived: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def start(self, on_inbound: object, on_delivery: object) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> SendResult:
        tag = outbound.body.rsplit(" ", 1)[-1]
        self.arrived[tag] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.done.set()
        return SendResult([f"p{next(_ids)}"])


def plugin_router() -> Router:
    router = Router("bench")

    @router.command("ping", roles={Role.SALES_MANAGER})
    async def ping(ctx: Context, tag: str) -> str:
        return f"pong {tag}"

    return router


@dataclass
class Trips:
    """What the database was asked for: statements sent (each a round trip on PostgreSQL, BEGIN
    and COMMIT included), transactions committed, connections taken from the pool."""

    statements: int = 0
    commits: int = 0
    checkouts: int = 0
    cpu: float = 0.0
    """Seconds of this process's CPU (all threads)."""
    server_cpu: float | None = None
    """Seconds of the PostgreSQL backends' CPU."""

    def per(self, messages: int) -> str:
        server = "-" if self.server_cpu is None else f"{self.server_cpu * 1000 / messages:.2f}"
        return (f"{self.statements / messages:>6.2f} {self.commits / messages:>7.3f} "
                f"{self.checkouts / messages:>6.2f} {self.cpu * 1000 / messages:>6.2f} {server:>6}")


_pg_trips: list[Trips] = []


def _count_asyncpg_round_trips() -> None:
    """Count each asyncpg call that is a round trip to the server (a statement, an executemany,
    BEGIN/COMMIT, a prepare), whichever layer made it; for the newest counter in `_pg_trips`."""
    import functools

    import asyncpg
    from asyncpg.prepared_stmt import PreparedStatement

    if _pg_trips:
        return

    def counted(fn: Any) -> Any:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            _pg_trips[-1].statements += 1
            return await fn(*args, **kwargs)
        return call

    connection = asyncpg.connection.Connection
    connection._execute = counted(connection._execute)  # type: ignore[method-assign]
    connection._executemany = counted(connection._executemany)  # type: ignore[method-assign]
    connection.prepare = counted(connection.prepare)  # type: ignore[method-assign]
    simple = connection.execute

    async def execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments it goes through _execute, counted there
            _pg_trips[-1].statements += 1
        return await simple(self, query, *args, **kwargs)

    connection.execute = execute  # type: ignore[method-assign]
    for name in ("fetch", "fetchrow", "fetchval", "executemany"):
        setattr(PreparedStatement, name, counted(getattr(PreparedStatement, name)))


def count_trips(db: Database) -> Trips:
    """Count at the drivers (sqlite3's trace callback; asyncpg's calls), under any layer."""
    trips = Trips()
    engine = db.sync_engine if db.sync_engine is not None else db.engine.sync_engine

    def statement(*_args: object) -> None:
        trips.statements += 1

    def connected(dbapi: Any, _record: object) -> None:
        if db.dialect == "sqlite":
            dbapi.set_trace_callback(statement)

    if db.dialect == "postgresql":
        _count_asyncpg_round_trips()
        _pg_trips.append(trips)

    def committed(_conn: object) -> None:
        trips.commits += 1

    def checked_out(*_args: object) -> None:
        trips.checkouts += 1

    event.listen(engine, "connect", connected)
    event.listen(engine, "commit", committed)
    event.listen(engine.pool, "checkout", checked_out)
    return trips


async def server_cpu_seconds(url: str) -> float:
    """CPU time the PostgreSQL backends serving `url`'s database have used (Linux /proc; 0 elsewhere)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                 password=parsed.password, database=parsed.database)
    try:
        pids = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", parsed.database)]
    finally:
        await conn.close()
    return sum(_proc_cpu(pid) for pid in pids)


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def build(url: str, group_commit: bool, people: int) -> tuple[App, TimingChannel, list[Address]]:
    settings = CoreSettings(
        database_url=url,
        durable_commits=True,
        demo=False,
        console=False,
        http_enabled=False,
        telegram_rate=None,
        telegram_per_chat_rate=None,
        outbox_poll_interval=1.0,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database(url, durable=True, group_commit=group_commit)
    db.trips = count_trips(db)  # type: ignore[attr-defined]
    app = App(settings, db=db, config=ConfigFile({}))
    app.include_router(plugin_router())
    channel = TimingChannel()
    app.add_channel(channel)
    await app.start(run_scheduler=False)
    addresses = []
    from bot.model import Person

    for i in range(people):
        addr = Address("telegram", str(10_000 + i))
        await app.people.add(Person(None, f"P{i}", frozenset({Role.SALES_MANAGER}), [addr]), app.clock.now())
        addresses.append(addr)
    freeze_startup_heap()  # as `python main.py run` does once started
    return app, channel, addresses


def inbound(addr: Address, tag: str) -> Inbound:
    return Inbound(addr, f"ping {tag}", provider_id=f"u-{tag}", received_at=datetime.now(UTC))


async def throughput(url: str, group_commit: bool, messages: int) -> tuple[float, Trips]:
    app, channel, addrs = await build(url, group_commit, people=200)
    channel.expected = messages
    trips: Trips = app.db.trips  # type: ignore[attr-defined]
    try:
        trips.statements = trips.commits = trips.checkouts = 0
        pg = url.startswith("postgresql")
        server_before = await server_cpu_seconds(url) if pg else 0.0
        cpu_before = time.process_time()
        start = time.perf_counter()
        sem = asyncio.Semaphore(256)

        async def one(i: int) -> None:
            async with sem:
                await app.inbound(inbound(addrs[i % len(addrs)], f"t{i}"))

        await asyncio.gather(*(one(i) for i in range(messages)))
        await asyncio.wait_for(channel.done.wait(), timeout=300)
        rate = messages / (time.perf_counter() - start)
        trips.cpu = time.process_time() - cpu_before
        if pg:
            trips.server_cpu = await server_cpu_seconds(url) - server_before
        return rate, dataclasses.replace(trips)
    finally:
        await app.stop()


async def latency(
    url: str, group_commit: bool, rate: float, seconds: float
) -> tuple[float, float, float, CommitTimes]:
    app, channel, addrs = await build(url, group_commit, people=200)
    total = int(rate * seconds)
    channel.expected = total
    accepted: dict[str, float] = {}
    tasks = []
    try:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tag = f"l{i}"
            accepted[tag] = time.perf_counter()
            tasks.append(asyncio.create_task(app.inbound(inbound(addrs[i % len(addrs)], tag))))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(channel.done.wait(), timeout=300)
        lat = sorted((channel.arrived[t] - accepted[t]) * 1000 for t in accepted)
        achieved = total / (max(channel.arrived.values()) - start)
        return statistics.median(lat), lat[int(len(lat) * 0.99) - 1], achieved, app.db.commits
    finally:
        await app.stop()


async def fresh_database(kind: str, tmp: Path, used: list[str]) -> str:
    """A new database for one phase, on a quiet disk.

    Earlier phases' files are kept until the end: deleting a 100 MB WAL on a filesystem mounted
    with `discard` (as here) sends the device work that the next phase's fsyncs would queue
    behind. What they left dirty is written back now, before the clock starts.
    """
    from bot import testing_pg

    url = await (testing_pg.fresh_postgres() if kind == "pg" else migrated_sqlite(tmp))
    used.append(url)
    os.sync()
    return url


async def discard(urls: list[str]) -> None:
    from bot import testing_pg

    for url in urls:
        if url.startswith("postgresql"):
            await testing_pg.drop_postgres(url)
        else:
            remove_sqlite_files(url)


def remove_sqlite_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


async def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    backends: list[tuple[str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="huddle-bench-"))
    backends.append(("sqlite (durable)", ""))
    from bot import testing_pg

    if testing_pg.admin_url():
        backends.append(("postgresql", "pg"))
    print(
        f"{'backend':<18} {'mode':<13} {'msg/s':>8} {'stmts':>6} {'commits':>7} {'conns':>6} {'cpu':>6} {'pg cpu':>6}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'at msg/s':>9}  {'slowest commit':>14} {'commits ≥50 ms':>15}"
    )
    print(f"{'':<18} {'':<13} {'':>8} {'(per message in the throughput run; cpu in ms)':>42}")
    used: list[str] = []
    try:
        for label, kind in backends:
            results = {}
            for mode, group in (("group commit", True), ("naive", False)):
                tput, trips = await throughput(await fresh_database(kind, tmp, used), group, args.messages)
                url = await fresh_database(kind, tmp, used)
                p50, p99, achieved, commits = await latency(url, group, args.rate, args.seconds)
                results[mode] = tput
                disk = (
                    f"{commits.longest_ms:>11.0f} ms {commits.slow:>6} of {commits.count:<6}"
                    if commits.count
                    else f"{'-':>14} {'-':>15}"
                )
                print(f"{label:<18} {mode:<13} {tput:>8.0f} {trips.per(args.messages)} {p50:>8.1f} {p99:>8.1f}"
                      f" {achieved:>9.0f}  {disk}", flush=True)
            print(f"{label:<18} ratio group/naive throughput: {results['group commit'] / results['naive']:.1f}×")
    finally:
        await discard(used)
        if testing_pg.admin_url():
            await testing_pg.drop_template()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=6)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
