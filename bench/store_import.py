"""Import time at the predecessor's scale, batch upserts vs a naive row-by-row baseline.

    python -m bench.store_import [--database URL] [--sample 3000]

Generates the files (bench/store_data.py), imports them in order with `StoreImporter` (batched
executemany upserts), then measures the naive way the predecessor's scripts worked — for each row
a SELECT by external id, then an INSERT or UPDATE, committed per row — on a sample of rows, and
prints rows/s for both and the ratio. Re-imports the transactions to show idempotent upserts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.store_data import generate
from coaching.sources.store_csv import ImportOptions, StoreImporter
from storage.customers import customers
from storage.db import Database
from storage.people import PeopleRepo
from storage.sales import transactions


async def naive(db: Database, kind: str, path: Path, limit: int) -> tuple[int, float]:
    """Row by row: SELECT, then INSERT or UPDATE, one transaction per row (the baseline)."""
    now = datetime.now(UTC)
    n = 0
    started = time.perf_counter()
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if n >= limit:
                break
            n += 1
            async with db.transaction() as conn:
                if kind == "customers":
                    ext = "naive-" + row["Customer ID"]
                    query = sa.select(customers.c.id).where(customers.c.external_id == ext)
                    found = (await conn.execute(query)).first()
                    values: dict[str, Any] = {"first_name": row["First Name"], "last_name": row["Last Name"],
                                              "phone": row["Phone Number"], "vip_tier": row["VIP Status"],
                                              "updated_at": now}
                    if found:
                        await conn.execute(customers.update().where(customers.c.id == found.id).values(**values))
                    else:
                        await conn.execute(customers.insert().values(external_id=ext, favourite_categories=[],
                                                                     attributes={}, created_at=now, **values))
                else:
                    ext = "naive-" + row["Transaction ID"]
                    cust = (await conn.execute(sa.select(customers.c.id).where(
                        customers.c.external_id == row["Customer ID"]))).scalar()
                    found = (await conn.execute(sa.select(transactions.c.id)
                                                .where(transactions.c.external_id == ext))).first()
                    values = {"customer_id": cust, "total": row["Total"], "status": row["Status"],
                              "occurred_at": datetime.fromisoformat(row["Transaction Date"]).replace(tzinfo=UTC),
                              "updated_at": now}
                    if found:
                        await conn.execute(transactions.update().where(transactions.c.id == found.id).values(**values))
                    else:
                        await conn.execute(transactions.insert().values(external_id=ext, created_at=now, **values))
    return n, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default=None, help="database URL (default: a fresh SQLite file, durable)")
    parser.add_argument("--sample", type=int, default=3000, help="rows per kind for the naive baseline")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="huddle-bench-"))
    try:
        t0 = time.perf_counter()
        files = generate(tmp / "data")
        print(f"generated files in {time.perf_counter() - t0:.1f} s")
        db = Database(args.database or str(tmp / "bench.db"), durable=True)
        await db.upgrade()
        importer = StoreImporter(db, PeopleRepo(db), lambda: datetime.now(UTC))
        options = ImportOptions(progress=False, default_store="bench")
        rows = []
        for kind in ("customers", "products", "staff", "transactions", "items"):
            started = time.perf_counter()
            report = await importer.run(kind, files[kind], options)
            elapsed = time.perf_counter() - started
            rows.append((kind, report.read, report.written, len(report.skipped), elapsed))
        started = time.perf_counter()
        again = await importer.run("transactions", files["transactions"], options)
        reimport = time.perf_counter() - started
        naive_rows = []
        for kind in ("customers", "transactions"):
            n, elapsed = await naive(db, kind, files[kind], args.sample)
            naive_rows.append((kind, n, elapsed))
        await db.close()

        print(f"\nbackend: {db.dialect} (durable commits)\n")
        print(f"{'kind':<14}{'rows':>9}{'imported':>10}{'skipped':>9}{'seconds':>9}{'rows/s':>10}")
        total_rows = total_s = 0.0
        for kind, read, written, skipped, elapsed in rows:
            total_rows += read
            total_s += elapsed
            print(f"{kind:<14}{read:>9}{written:>10}{skipped:>9}{elapsed:>9.1f}{read / elapsed:>10.0f}")
        print(f"{'all':<14}{int(total_rows):>9}{'':>10}{'':>9}{total_s:>9.1f}{total_rows / total_s:>10.0f}")
        print(f"re-import transactions (idempotent upsert): {again.read} rows, {reimport:.1f} s")
        print(f"\n{'naive baseline':<22}{'rows':>7}{'seconds':>9}{'rows/s':>9}{'batch rows/s':>14}{'speed-up':>10}")
        batch_rate = {k: r / e for k, r, _w, _s, e in rows}
        for kind, n, elapsed in naive_rows:
            rate = n / elapsed
            fast = batch_rate[kind]
            print(f"{kind:<22}{n:>7}{elapsed:>9.1f}{rate:>9.0f}{fast:>14.0f}{fast / rate:>9.1f}×")
        full = sum(r for _k, r, _w, _s, _e in rows[:1]) / (naive_rows[0][1] / naive_rows[0][2]) + sum(
            r for k, r, _w, _s, _e in rows if k == "transactions") / (naive_rows[1][1] / naive_rows[1][2])
        print(f"naive, extrapolated to customers + transactions at full scale: {full:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
