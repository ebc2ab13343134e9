"""Scale-out on PostgreSQL: one worker vs two on the same backlog, and the cross-process reply latency.

    HUDDLE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python -m bench.scaleout \
        [--backlog 500] [--replies 200]

Every process is started as a user starts it (`python main.py gateway|worker`), each on a fresh
throwaway database. Throughput: the workers start idle, then a backlog of texts from distinct
phones is stored at once, as a gateway stores them (unclaimed, one NOTIFY at commit); the clock
runs until every one is handled. Shares: how many each worker handled. Latency: a gateway on a
simulated SIM7600 and one worker; texts one at a time; from the gateway storing the inbound to the
gateway claiming the reply for its send call (database timestamps, one clock), and from the phone
sending to the phone receiving (through the modem).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bot import testing_pg
from bot.model import Address, Inbound
from channels.sms.simulator import SimulatedModem
from storage.inbox import InboxRepo, inbound
from storage.outbox import outbox
from tests.scaleout_support import Cluster, number


async def throughput(workers: int, backlog: int) -> tuple[float, Counter[str]]:
    url = await testing_pg.fresh_postgres()
    sim = SimulatedModem()
    await sim.start()
    c = Cluster(url, Path(tempfile.mkdtemp(prefix="scaleout-")), sim)
    try:
        for i in range(workers):
            await c.start("worker", f"worker-{i + 1}")
        now = datetime.now(UTC)
        repo = InboxRepo(c.db)

        async def store_all(conn: object) -> None:
            for i in range(backlog):
                msg = Inbound(Address("sms", number(i)), f"hours? #{i}", provider_id=f"b{i}", received_at=now)
                await repo.store_in(conn, msg, now)  # type: ignore[arg-type]

        started = time.perf_counter()
        async with c.db.transaction() as conn:
            await store_all(conn)
        while (await c.counts())[1] < backlog:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        shares = Counter(r.claimed_by for r in await c.rows(inbound))
        return backlog / elapsed, shares
    finally:
        await c.close()
        await sim.stop()
        await testing_pg.drop_postgres(url)


async def latency(replies: int) -> tuple[list[float], list[float], list[float], list[float]]:
    url = await testing_pg.fresh_postgres()
    sim = SimulatedModem()
    await sim.start()
    c = Cluster(url, Path(tempfile.mkdtemp(prefix="scaleout-")), sim)
    phone: list[float] = []
    try:
        await c.start("gateway", "gateway")
        await c.start("worker", "worker")
        for i in range(replies):
            before = len(c.texts)
            sent = time.monotonic()
            c.deliver(1, start=i)
            while len(c.texts) == before:
                if time.monotonic() - sent > 30:
                    raise SystemExit(f"no reply to text #{i} within 30 s:\n{c.logs_tail()}")
                await asyncio.sleep(0.0005)
            phone.append((c.texts[-1][0] - sent) * 1000)
        async with c.db.read() as conn:
            rows = (await conn.execute(
                sa.select(inbound.c.stored_at, inbound.c.claimed_at.label("taken"), outbox.c.created_at,
                          outbox.c.claimed_at)
                .join(outbox, outbox.c.idempotency_key == sa.func.concat("in:", inbound.c.id, ":1")))).all()

        def ms(a: datetime, b: datetime) -> float:
            return (b - a).total_seconds() * 1000

        db_ms = [ms(r.stored_at, r.claimed_at) for r in rows]
        to_worker = [ms(r.stored_at, r.taken) for r in rows]
        to_gateway = [ms(r.created_at, r.claimed_at) for r in rows]
        return db_ms, phone, to_worker, to_gateway
    finally:
        await c.close()
        await sim.stop()
        await testing_pg.drop_postgres(url)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--replies", type=int, default=200)
    args = parser.parse_args()
    if not testing_pg.admin_url():
        raise SystemExit("set HUDDLE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")
    one, _ = await throughput(1, args.backlog)
    two, shares2 = await throughput(2, args.backlog)
    print(f"backlog of {args.backlog} texts, handled by workers (`python main.py worker`), PostgreSQL")
    print(f"  1 worker : {one:7.0f} msg/s")
    print(f"  2 workers: {two:7.0f} msg/s  ({two / one:.2f}x one worker)  shares: "
          + ", ".join(f"{n / args.backlog:.0%}" for n in sorted(shares2.values(), reverse=True)))
    db_ms, phone_ms, to_worker, to_gateway = await latency(args.replies)
    await testing_pg.drop_template()
    print(f"reply latency, {args.replies} texts one at a time, gateway + worker processes")
    print(f"  gateway stores inbound -> worker -> gateway send call: p50 {statistics.median(db_ms):6.1f} ms"
          f"  p99 {pct(db_ms, 99):6.1f} ms  (target p99 < 100 ms)")
    print(f"  phone sends -> phone receives (through the modem):      p50 {statistics.median(phone_ms):6.1f} ms"
          f"  p99 {pct(phone_ms, 99):6.1f} ms")
    print(f"  of which the hops: inbound stored -> worker claims it   p50 {statistics.median(to_worker):6.1f} ms"
          f"  p99 {pct(to_worker, 99):6.1f} ms")
    print(f"                     reply queued -> gateway claims it    p50 {statistics.median(to_gateway):6.1f} ms"
          f"  p99 {pct(to_gateway, 99):6.1f} ms")
    print("  (the rest is the handler's own work; load average at the end: "
          f"{' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())} on {__import__('os').cpu_count()} cores)")


if __name__ == "__main__":
    asyncio.run(main())
