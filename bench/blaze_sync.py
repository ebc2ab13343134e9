"""A 100,000-row initial Blaze sync from the fake partner API, against Blaze's call budget.

    python -m bench.blaze_sync [--rows 100000] [--page-size 500] [--share 0.5] [--database URL]

Fills the fake (tests/fakes/blaze_server.py) with employees, products, members and transactions
(about 2 % members, 0.5 % products, the rest sales), runs `BlazeSync` from empty cursors into a fresh
database (orders through the POS ingest: customers' totals, points, one `order.created` each), and
prints rows/s, the calls made, the calls in the busiest 5 minutes and per 5 minutes at this rate,
against the share of the 10,000-call budget. The baseline, measured in the same run, reads the same
pages with the same client and stores nothing: the ratio is what storing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coaching.sources.blaze import BUDGET_CALLS, ENTITIES, BlazeClient, BlazeSettings, budget_limiter
from coaching.sources.blaze_sync import BlazeSync
from handlers.store_services import services
from storage.events import ORDER_CREATED, EventLog
from tests.fakes.blaze_server import DISPENSARY_KEY, PARTNER_KEY, FakeBlaze, employee, member, product, transaction
from tests.flows import Flow

START = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def fill(fake: FakeBlaze, rows: int) -> dict[str, int]:
    t0 = int((START - timedelta(days=90)).timestamp() * 1000)
    n_emp = max(2, rows // 2000)
    n_prod = max(5, rows // 200)
    n_mem = max(10, rows // 50)
    n_txn = rows - n_emp - n_prod - n_mem
    fake.add("employees", *[employee(i, t0 + i) for i in range(1, n_emp + 1)])
    fake.add("products", *[product(i, t0 + i, brand="MOTA" if i % 3 == 0 else "Other") for i in range(1, n_prod + 1)])
    fake.add("members", *[member(i, t0 + i) for i in range(1, n_mem + 1)])
    step = (90 * 86400 * 1000) // max(1, n_txn)
    fake.add("transactions", *[transaction(i, t0 + i * step, member_n=1 + i % n_mem, seller_n=1 + i % n_emp,
                                           product_n=1 + i % n_prod, total=float(20 + i % 80))
                               for i in range(1, n_txn + 1)])
    return {"employees": n_emp, "products": n_prod, "members": n_mem, "transactions": n_txn}


def conf(fake: FakeBlaze, page: int, share: float) -> BlazeSettings:
    return BlazeSettings(_env_file=None, blaze_api_key=DISPENSARY_KEY, blaze_partner_key=PARTNER_KEY,  # type: ignore[call-arg]
                         blaze_base_url=fake.url, blaze_page_size=page, blaze_budget_share=share,
                         blaze_house_brands=["MOTA"])


async def fetch_only(fake: FakeBlaze, settings: BlazeSettings, end_ms: int) -> tuple[int, int, float]:
    """The baseline: the same pages through the same client, nothing stored."""
    client = BlazeClient(settings, limiter=budget_limiter(settings.blaze_budget_share))
    rows = calls = 0
    started = time.perf_counter()
    try:
        for entity in ENTITIES:
            skip = 0
            while True:
                page = await client.page(entity, start_ms=0, end_ms=end_ms, skip=skip, limit=settings.blaze_page_size)
                rows += len(page.values)
                calls += page.calls
                skip += page.fetched
                if page.fetched < settings.blaze_page_size:
                    break
    finally:
        await client.aclose()
    return rows, calls, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--share", type=float, default=0.5, help="share of the 10,000 calls / 5 min budget")
    parser.add_argument("--database", default=None, help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    fake = FakeBlaze()
    await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="huddle-blaze-bench-"))
    try:
        made = fill(fake, args.rows)
        print(f"fake Blaze: {sum(made.values()):,} rows " + ", ".join(f"{k} {v:,}" for k, v in made.items()))
        settings = conf(fake, args.page_size, args.share)
        base_rows, base_calls, base_s = await fetch_only(fake, settings, int(START.timestamp() * 1000))
        fake.calls.clear()

        url = args.database
        if url is None:
            from bot.testing import migrated_sqlite

            url = await migrated_sqlite(tmp)
        flow = await Flow.create(plugins=["handlers.store", "handlers.blaze"], start=START, database_url=url,
                                 config={"stores": [{"code": "main", "name": "Bench", "timezone": "UTC"}]})
        try:
            svc = services(flow.app)
            await svc.ensure_configured(flow.clock.now())
            client = BlazeClient(settings, limiter=budget_limiter(args.share))
            sync = BlazeSync(flow.app.db, flow.app.people, flow.clock, svc.ingest, settings, client,
                             stores=lambda: svc.store_ids, default_store=svc.default_store.code)
            started = time.perf_counter()
            report = await sync.run()
            elapsed = time.perf_counter() - started
            await client.aclose()
            orders = await EventLog(flow.app.db).count(ORDER_CREATED)
        finally:
            await flow.close()
        if report.error:
            print(f"sync stopped: {report.error}")
        budget = BUDGET_CALLS * args.share
        per5 = report.calls / elapsed * 300 if elapsed else 0.0
        busiest = fake.max_calls_in(300)
        print(f"{'':<28}{'rows':>10}{'calls':>8}{'seconds':>9}{'rows/s':>10}")
        print(f"{'baseline: fetch only':<28}{base_rows:>10,}{base_calls:>8}{base_s:>9.1f}{base_rows / base_s:>10,.0f}")
        print(f"{'sync: fetch + store':<28}{report.rows:>10,}{report.calls:>8}{elapsed:>9.1f}"
              f"{report.rows / elapsed:>10,.0f}")
        print(f"ratio sync / fetch-only rows/s: {(report.rows / elapsed) / (base_rows / base_s):.2f}")
        print(f"order.created events: {orders:,} (transactions {made['transactions']:,})")
        print(f"calls in the busiest 5 minutes: {busiest:,}; at this rate {per5:,.0f} per 5 minutes; "
              f"budget share {args.share:g} = {budget:,.0f} per 5 minutes "
              f"({busiest / budget:.1%} of it used; limiter bucket {int(client.limiter.max_rate)} per "
              f"{client.limiter.time_period:g} s)")
    finally:
        await fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
