"""Budtender triggers over a store-day of orders: incremental tallies vs recompute-from-scratch.

    python -m bench.budtenders_triggers [--orders 600] [--budtenders 8] [--db-orders 400]

1. Pure: every order is counted into its shift's running tally and the after-order triggers run
   (incremental), against recounting the whole shift so far for every order (the baseline).
2. In the app (SQLite, fake clock): `BudtenderCoach.on_transaction` with its in-memory tally,
   against the same with its caches dropped before every order (each order re-reads the shift,
   its orders, the coaching history and the person from the database). Both send through the outbox.
The triggers sent must be identical on both paths; the script checks that.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from coaching import budtenders as bt
from storage.budtenders import Sent, Shift, Watermark
from storage.sales import Transaction, TransactionItem

DAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def store_day(n_orders: int, n_budtenders: int, seed: int = 1) -> tuple[list[Shift], list[Transaction]]:
    rng = random.Random(seed)
    shifts = [Shift(i + 1, i + 1, DAY + timedelta(hours=4 * (i % 2)), DAY + timedelta(hours=8 + 4 * (i % 2)))
              for i in range(n_budtenders)]
    orders = []
    for n in range(n_orders):
        shift = rng.choice(shifts)
        at = shift.starts_at + timedelta(seconds=rng.randint(0, int(shift.length.total_seconds()) - 1))
        total = Decimal(rng.randint(1500, 12000)) / 100
        item = TransactionItem("P", "Thing", rng.choice(["flower", "vapes", "edibles"]), 1, total, total,
                               price_tier=rng.randint(1, 3), house_brand=rng.random() < 0.3)
        orders.append(Transaction(n + 1, f"B{n + 1}", 1, rng.randint(1, 5000), shift.person_id, at, total,
                                  rewards_signup=rng.random() < 0.08, items=[item]))
    orders.sort(key=lambda t: t.occurred_at)
    return shifts, orders


def run_pure(shifts: list[Shift], orders: list[Transaction], incremental: bool) -> tuple[float, list[str], list[float]]:
    rules = bt.CoachingRules()
    by_person = {s.person_id: s for s in shifts}
    marks = {s.person_id: Watermark(s.person_id, days=10, avg_ticket=Decimal("70.00")) for s in shifts}
    tallies: dict[int, bt.ShiftTally] = {}
    seen: dict[int, list[Transaction]] = {}
    history: dict[int, list[Sent]] = {}
    keys: list[str] = []
    lat: list[float] = []
    start = time.perf_counter()
    for txn in orders:
        t0 = time.perf_counter()
        pid = txn.budtender_person_id
        assert pid is not None
        shift = by_person[pid]
        if incremental:
            t = tallies.setdefault(pid, bt.ShiftTally())
            t.add(txn, rules)
        else:
            seen.setdefault(pid, []).append(txn)
            t = bt.tally(seen[pid], rules)
        found = bt.after_order("Sam", shift, t, marks[pid], history.get(pid, []), txn.occurred_at, rules)
        for c in found:
            history.setdefault(pid, []).append(Sent(c.key, c.kind, txn.occurred_at, t.orders))
            keys.append(c.key)
        lat.append(time.perf_counter() - t0)
    return time.perf_counter() - start, keys, lat


async def run_app(n_orders: int, n_budtenders: int, cached: bool) -> tuple[float, list[str], list[float]]:
    from bot.testing import migrated_sqlite
    from coaching.roles import Role
    from handlers.budtenders import coach_of
    from storage.budtenders import ShiftRow
    from tests.flows import Flow

    tmp = Path(tempfile.mkdtemp(prefix="bench-budtenders-"))
    flow = await Flow.create(plugins=["handlers.store", "handlers.budtenders"], start=DAY,
                             database_url=await migrated_sqlite(tmp), config={"budtenders": {"timezone": "UTC"}})
    try:
        coach = coach_of(flow.app)
        people = [await flow.person(f"Bud {i}", {Role.BUDTENDER}, sms=f"+1323555{i:04d}") for i in range(n_budtenders)]
        await coach.repo.upsert_shifts([ShiftRow(p.id, DAY, DAY + timedelta(hours=12)) for p in people if p.id], DAY)
        await coach.repo.save_watermarks([Watermark(p.id, days=10, avg_ticket=Decimal("70.00"), computed_at=DAY)
                                          for p in people if p.id])
        _, orders = store_day(n_orders, n_budtenders)
        ids = [p.id for p in people]
        rows = [{"external_id": o.external_id, "budtender_person_id": ids[(o.budtender_person_id or 1) - 1],
                 "occurred_at": DAY + timedelta(seconds=20 * i), "total": o.total, "status": "completed",
                 "rewards_signup": o.rewards_signup, "source": "bench", "created_at": DAY, "updated_at": DAY}
                for i, o in enumerate(orders)]
        keys: list[str] = []
        lat: list[float] = []
        start = time.perf_counter()
        for row in rows:
            await flow.clock.set(row["occurred_at"])

            async def unit(conn: Any, row: dict[str, Any] = row) -> None:
                await coach.sales.upsert_transactions_in(conn, [row])

            await flow.app.db.run(unit)
            txn = await coach.sales.get(row["external_id"])
            assert txn is not None
            t0 = time.perf_counter()
            if not cached:
                coach.drop_caches()
            keys += [c.key for c in await coach.on_transaction(txn)]
            lat.append(time.perf_counter() - t0)
        return time.perf_counter() - start, keys, lat
    finally:
        await flow.close()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def row(label: str, total: float, lat: list[float], sent: int) -> str:
    return (f"{label:<34} {total * 1000:>9.1f} {statistics.median(lat) * 1e6:>9.1f} {p99(lat) * 1e6:>9.1f} "
            f"{len(lat) / total:>10.0f} {sent:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=600, help="orders in the store-day (pure part)")
    parser.add_argument("--budtenders", type=int, default=8)
    parser.add_argument("--db-orders", type=int, default=400, help="orders through the app with SQLite")
    args = parser.parse_args()

    print(f"{'path':<34} {'total ms':>9} {'p50 µs':>9} {'p99 µs':>9} {'orders/s':>10} {'sent':>6}")
    for n in (args.orders, args.orders * 10):
        shifts, orders = store_day(n, args.budtenders)
        inc_t, inc_keys, inc_lat = run_pure(shifts, orders, incremental=True)
        base_t, base_keys, base_lat = run_pure(shifts, orders, incremental=False)
        assert inc_keys == base_keys, "incremental and recomputed triggers differ"
        print(row(f"pure, {n} orders, incremental", inc_t, inc_lat, len(inc_keys)))
        print(row(f"pure, {n} orders, recompute", base_t, base_lat, len(base_keys)))
        print(f"{'':<34} ratio recompute/incremental: {base_t / inc_t:.1f}x")
    inc_t, inc_keys, inc_lat = asyncio.run(run_app(args.db_orders, args.budtenders, cached=True))
    base_t, base_keys, base_lat = asyncio.run(run_app(args.db_orders, args.budtenders, cached=False))
    assert inc_keys == base_keys, "cached and re-read triggers differ"
    print(row(f"app+SQLite, {args.db_orders}, cached tally", sum(inc_lat), inc_lat, len(inc_keys)))
    print(row(f"app+SQLite, {args.db_orders}, re-read shift", sum(base_lat), base_lat, len(base_keys)))
    print(f"{'':<34} ratio re-read/cached (trigger time): {sum(base_lat) / sum(inc_lat):.1f}x")


if __name__ == "__main__":
    main()
