"""Live store paths at the predecessor's scale: customer-context lookups and POS order webhooks.

    python -m bench.store_live [--events 5000] [--concurrency 50] [--lookups 2000]

1. Loads 10,047 customers, 186,394 transactions and 114,136 items (bench/store_data.py) into a
   durable SQLite file, links 1,000 customers to people, then times `load_context` (what the
   concierge reads for every text): p50/p99 by person id and by phone (first contact), against a
   naive lookup (every query in its own transaction, the whole history loaded and summed in Python).
   Target p99 < 5 ms; the predecessor advertised < 100 ms.
2. Posts signed `order.created` webhooks to the real HTTP server: acknowledgement latency p50/p99
   (target p99 < 20 ms) and end-to-end events/s (stored → order + items → points → an order hook
   that evaluates a coaching trigger from the budtender's last 5 orders; target ≥ 1,000/s), against
   a baseline that processes each event before answering, one transaction at a time. Beside each,
   the slowest durable commit and how many took ≥ 50 ms: when the disk stalls, acks wait with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict, deque
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import sqlalchemy as sa

from bench.store_data import CUSTOMERS, generate
from bot.app import App
from bot.config_file import ConfigFile
from bot.model import Address, Person
from bot.settings import CoreSettings
from coaching.pos import sign
from coaching.roles import Role
from coaching.sources.pos import OrderProcessed, on_order
from coaching.sources.store_csv import ImportOptions, StoreImporter
from storage.catalog import CatalogRepo
from storage.customer_context import load_context
from storage.customers import customers
from storage.db import CommitTimes, Database
from storage.loyalty import loyalty_ledger
from storage.people import PeopleRepo
from storage.sales import transaction_items, transactions

SECRET = "bench-secret"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def naive_context(db: Database, phone: str) -> tuple[int, int]:
    """The way a quick script does it: a transaction per query, all history in Python."""
    async with db.read() as conn:
        cust = (await conn.execute(sa.select(customers).where(customers.c.phone == phone))).first()
    async with db.read() as conn:
        entries = (await conn.execute(sa.select(loyalty_ledger.c.delta).where(
            loyalty_ledger.c.customer_id == cust.id))).all()
    async with db.read() as conn:
        orders = (await conn.execute(sa.select(transactions).where(transactions.c.customer_id == cust.id))).all()
    items = []
    for o in orders:
        async with db.read() as conn:
            items += (await conn.execute(sa.select(transaction_items).where(
                transaction_items.c.transaction_id == o.id))).all()
    return sum(e.delta for e in entries), len(items)


async def lookups(path: str, n: int) -> list[tuple[str, list[float]]]:
    db = Database(path, durable=True)
    people = PeopleRepo(db)
    now = datetime.now(UTC)
    rnd = random.Random(3)
    linked: list[tuple[int, str]] = []

    async def link(conn: sa.ext.asyncio.AsyncConnection) -> None:
        rows = (await conn.execute(sa.select(customers.c.id, customers.c.phone).order_by(customers.c.id)
                                   .limit(1000))).all()
        for r in rows:
            pid = await people.add_in(conn, Person(None, "x", frozenset({Role.CUSTOMER}),
                                                   [Address("sms", r.phone)]), now)
            await conn.execute(customers.update().where(customers.c.id == r.id).values(person_id=pid))
            linked.append((pid, r.phone))

    await db.run(link)
    async with db.read() as conn:
        phones = [r.phone for r in (await conn.execute(sa.select(customers.c.phone)
                                                       .where(customers.c.person_id.is_(None)))).all()]
    stock = await CatalogRepo(db).in_stock(None, 40)  # shared by every customer; the concierge caches it
    results = []
    for label, call in (
        ("context by person id", lambda: load_context(db, *rnd.choice(linked), in_stock=stock)),
        ("context by phone (first text)", lambda: load_context(db, 10**9, rnd.choice(phones), in_stock=stock)),
        ("naive baseline", lambda: naive_context(db, rnd.choice(phones))),
    ):
        times = []
        for _ in range(n if label != "naive baseline" else max(200, n // 10)):
            t = time.perf_counter()
            await call()
            times.append((time.perf_counter() - t) * 1000)
        results.append((label, times))
    await db.close()
    return results


def event(i: int, rnd: random.Random, now: datetime) -> bytes:
    total = Decimal(rnd.randint(800, 25000)) / 100
    return json.dumps({
        "id": f"bench-evt-{i}", "type": "order.created",
        "data": {"id": f"bench-order-{i}", "store": "bench", "customer_id": f"C{rnd.randint(1, CUSTOMERS)}",
                 "budtender_id": f"E{rnd.randint(1, 14)}", "occurred_at": (now - timedelta(seconds=5)).isoformat(),
                 "total": str(total), "items": [{"sku": f"P{rnd.randint(1, 320)}", "name": "item", "category": "flower",
                                                "quantity": 1, "unit_price": str(total)}]},
    }).encode()


def post_all(url: str, events: int, concurrency: int, offset: int, rate: float = 0) -> tuple[list[float], float]:
    """Post `events` signed order webhooks: ack latencies (ms) and the wall-clock start.

    With `rate` the requests leave at that pace whatever the answers do (an open loop, like a POS
    under load); without, `concurrency` clients post back to back (the maximum throughput).
    """
    return asyncio.run(_post_all(url, events, concurrency, offset, rate))


async def _post_all(url: str, events: int, concurrency: int, offset: int, rate: float
                    ) -> tuple[list[float], float]:
    rnd = random.Random(11 + offset)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(event(i + offset, rnd, datetime.now(UTC)))
    latencies: list[float] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            headers = {"X-Huddle-Signature": sign(SECRET, body, time.time()), "Content-Type": "application/json"}
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            latencies.append((time.perf_counter() - t) * 1000)

    async def one(session: aiohttp.ClientSession, body: bytes, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        headers = {"X-Huddle-Signature": sign(SECRET, body, time.time()), "Content-Type": "application/json"}
        t = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        latencies.append((time.perf_counter() - t) * 1000)

    started = time.time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200 if rate else concurrency)) as session:
        if rate:
            t0 = time.perf_counter() + 0.05
            bodies = [queue.get_nowait() for _ in range(events)]
            await asyncio.gather(*(one(session, b, t0 + i / rate) for i, b in enumerate(bodies)))
        else:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies, started


async def webhooks(path: str, events: int, concurrency: int, inline: bool, rate: float = 0
                   ) -> tuple[list[float], float, int, float, CommitTimes]:
    os.sync()  # start on a quiet disk: what earlier phases left dirty is not this phase's fsyncs
    cpu0 = time.process_time()
    settings = CoreSettings(database_url=path, http_port=0, console=False, demo=False, _env_file=None)  # type: ignore[call-arg]
    app = App(settings, config=ConfigFile({"stores": [{"code": "bench", "name": "Bench", "timezone": "UTC"}]}))
    if inline:
        app.db.group_commit = False
    app.load_plugins(["handlers.store"])
    evaluated = 0

    windows: dict[int, deque[Decimal]] = defaultdict(lambda: deque(maxlen=5))

    async def trigger(done: OrderProcessed) -> None:
        """What budtender coaching does per order: last-5 average vs the watermark (kept in memory)."""
        nonlocal evaluated
        t = done.transaction
        if t.budtender_person_id is None:
            return
        window = windows[t.budtender_person_id]
        window.append(t.total)
        average = sum(window, Decimal("0")) / len(window)
        _nudge = len(window) == 5 and average <= Decimal("0.7") * Decimal("80")
        evaluated += 1

    on_order(app, trigger)
    await app.start(run_scheduler=False)
    svc = app.deps["store"]
    if inline:  # baseline: the work happens before the answer
        real_accept = svc.ingest.accept

        async def accept_and_process(body: bytes, warnings: list[str] | None = None):  # type: ignore[no-untyped-def]
            result = await real_accept(body, warnings)
            await svc.ingest.idle()
            return result

        svc.ingest.accept = accept_and_process
    url = f"http://127.0.0.1:{app.http.port}/webhooks/pos"
    # The load generator runs in its own process, as the POS would: it does not share our event loop.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        latencies, started = await asyncio.get_running_loop().run_in_executor(
            pool, post_all, url, events, 1 if inline else concurrency, (10**6 if inline else 0) + int(rate) * 10**4,
            rate)
    await svc.ingest.idle()
    elapsed = time.time() - started  # from the first request to the last order processed
    cpu = time.process_time() - cpu0  # this process only: the server (the client runs in another)
    commits = app.db.commits
    await app.stop()
    return latencies, events / elapsed, evaluated, cpu / events * 1000, commits


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--baseline-events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500, help="offered events/s for the latency run")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL database (needs HUDDLE_TEST_DATABASE_URL)")
    args = parser.parse_args()
    os.environ["HUDDLE_POS_WEBHOOK_SECRET"] = SECRET
    tmp = Path(tempfile.mkdtemp(prefix="huddle-bench-live-"))
    try:
        files = generate(tmp / "data")
        if args.postgres:
            from bot import testing_pg

            path = await testing_pg.fresh_postgres()
        else:
            path = str(tmp / "live.db")
        db = Database(path, durable=True)
        await db.upgrade()
        importer = StoreImporter(db, PeopleRepo(db), lambda: datetime.now(UTC))
        for kind in ("customers", "products", "staff", "transactions", "items"):
            await importer.run(kind, files[kind], ImportOptions(progress=False, default_store="bench"))
        await db.close()
        print(f"data loaded: 10,047 customers, 186,394 transactions, 114,136 items ({db.dialect}, durable commits)")

        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes share them)\n")
        print(f"{'customer-context lookup':<32}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}")
        results = await lookups(path, args.lookups)
        for label, times in results:
            print(f"{label:<32}{len(times):>6}{statistics.median(times):>9.2f}{pct(times, 0.99):>9.2f}")
        base99 = pct(results[2][1], 0.99)
        print(f"p99 by person id vs naive: {base99 / pct(results[0][1], 0.99):.1f}× faster; "
              f"vs the predecessor's advertised 100 ms: {100 / pct(results[0][1], 0.99):.0f}×\n")

        fast = await webhooks(path, args.events, args.concurrency, inline=False)
        paced = await webhooks(path, args.events, 0, inline=False, rate=args.rate)
        slow = await webhooks(path, args.baseline_events, 1, inline=True)
        print(f"{'order webhooks (ms, end-to-end events/s)':<46}{'events':>7}{'ack p50':>9}{'ack p99':>9}"
              f"{'events/s':>10}{'hooks':>7}{'CPU ms/event':>14}{'slowest commit':>16}{'commits ≥50 ms':>16}")
        for label, (lat, rate, hooks, cpu, commits), n in (
            (f"max throughput: {args.concurrency} clients back to back", fast, args.events),
            (f"latency: {args.rate:.0f} events/s offered (open loop)", paced, args.events),
            ("baseline: work before the ack, 1 client", slow, args.baseline_events),
        ):
            disk = f"{commits.longest_ms:>13.0f} ms{commits.slow:>8} of {commits.count:<5}" if commits.count else ""
            print(f"{label:<46}{n:>7}{statistics.median(lat):>9.2f}{pct(lat, 0.99):>9.2f}{rate:>10.0f}{hooks:>7}"
                  f"{cpu:>14.2f}{disk}")
        print(f"end-to-end throughput vs baseline: {fast[1] / slow[1]:.1f}×; server capacity ≈ "
              f"{1000 / fast[3]:.0f} events per CPU-second (load average now {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.postgres:
            from bot import testing_pg

            await testing_pg.drop_postgres(path)
            await testing_pg.drop_template()


if __name__ == "__main__":
    asyncio.run(main())
