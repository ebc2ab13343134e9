"""Chatter ingest, name matching and dashboard: figures against naive baselines, in one run.

    python -m bench.chatters_ingest

1. A 220-row Inflow CSV (31 active chatters, messy names, 189 former chatters) → parse, match,
   store, score and build the briefing of every team lead. Target < 200 ms. Baseline: the naive
   way — fuzzy-score every row against every known name, and store row by row.
2. Name matching throughput (names/s): the indexed matcher vs a linear `token_sort_ratio` scan.
3. The COO dashboard for 31 chatters × 90 days. Target < 1 s; file size reported.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

from rapidfuzz import fuzz, utils

from bot.clock import FakeClock
from bot.testing import migrated_sqlite
from coaching.chatter_config import ChattersConfig, LeadConfig
from coaching.chatter_service import ChatterService
from coaching.demo_chatters import synthetic_csv, synthetic_days
from coaching.names import NameMatcher, normalize_name
from coaching.sources.inflow_csv import parse_inflow_csv
from storage.chatters import ChatterRepo
from storage.db import Database

NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
DAY = date(2026, 11, 22)
TEAMS = ["Team North", "Team South", "Team East"]
FIRST = ["Ana", "Bea", "Carlos", "Dara", "Elif", "Femi", "Grace", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Milo",
         "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Vera", "Wale", "Xena", "Yusuf", "Zara",
         "Adedeji", "Bruno", "Chidi", "Dina", "Ezra"]
LAST = ["Ruiz", "Costa", "Mendes", "Okafor", "Yilmaz", "Adeyemi", "Tan", "Sato", "Petrov", "Lim", "Mensah",
        "Berg", "Rossi", "Njoku", "Haddad", "Lund", "Hayes", "Silva", "Aziz", "Reid", "Rao", "Kruger", "Bello",
        "Mora", "Kaya", "Ali", "Oyeniran", "Lopes", "Eze", "Sousa", "Vance"]
ACTIVE = [f"{f} {last}" for f, last in zip(FIRST, LAST, strict=True)]
INACTIVE = [f"Former Chatter {i:03d}" for i in range(189)]


async def setup(path: Path) -> tuple[Database, ChatterService]:
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    db = Database(await migrated_sqlite(path), durable=False)
    leads = [LeadConfig(slack=f"U0TL{i:04d}", name=f"Lead {i}", teams=[t], shift_start=dtime(9, 0))
             for i, t in enumerate(TEAMS)]
    config = ChattersConfig(teams=[], leads=leads)
    service = ChatterService(ChatterRepo(db, normalize_name), config, FakeClock(NOW))
    repo = service.repo
    await repo.sync_roster({t: ACTIVE[i::3] for i, t in enumerate(TEAMS)}, NOW, deactivate_others=False)
    for name in INACTIVE:
        await repo.add_chatter(name, None, NOW, active=False)
    return db, service


async def ours(service: ChatterService, data: bytes) -> float:
    t0 = time.perf_counter()
    await service.ingest_csv(data, DAY)
    for lead in service.config.leads:
        await service.briefing_for(lead, lead.name or "")
    return time.perf_counter() - t0


async def naive(service: ChatterService, data: bytes) -> float:
    """Every row fuzzy-scored against every name, one transaction per stored row, then the same briefings."""
    t0 = time.perf_counter()
    parsed = parse_inflow_csv(data)
    chatters = await service.repo.chatters()
    for row in parsed.rows:
        best = max(chatters, key=lambda c: fuzz.token_sort_ratio(row.name, c.name, processor=utils.default_process))
        if fuzz.token_sort_ratio(row.name, best.name, processor=utils.default_process) < 85 or not best.active:
            continue
        values = {"chatter_id": best.id, "day": DAY, "sales": row.sales, "cvr": row.cvr}
        await service.repo.upsert_days([values], ["sales", "cvr"], NOW)
    for lead in service.config.leads:
        await service.briefing_for(lead, lead.name or "")
    return time.perf_counter() - t0


def matching_throughput(names: list[str], roster: dict[int, str]) -> tuple[float, float]:
    matcher = NameMatcher(roster)
    t0 = time.perf_counter()
    for _ in range(20):
        for n in names:
            matcher.match(n)
    fast = 20 * len(names) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for n in names:
        max(roster.values(), key=lambda c, n=n: fuzz.token_sort_ratio(n, c, processor=utils.default_process))
    slow = len(names) / (time.perf_counter() - t0)
    return fast, slow


async def main() -> None:
    data = synthetic_csv(ACTIVE, len(INACTIVE), DAY).encode()
    tmp = Path(tempfile.mkdtemp(prefix="bench-chatters-"))
    db, service = await setup(tmp / "a")
    runs = [await ours(service, data) for _ in range(7)]  # re-uploads: the same day updated each time
    await db.close()
    db2, service2 = await setup(tmp / "b")
    base = [await naive(service2, data) for _ in range(3)]
    await db2.close()
    rows = len(parse_inflow_csv(data).rows)

    roster = {i: n for i, n in enumerate(ACTIVE + INACTIVE)}
    names = [r.name for r in parse_inflow_csv(data).rows]
    fast, slow = matching_throughput(names, roster)

    db3, service3 = await setup(tmp / "c")
    ids = [c.id for c in await service3.repo.chatters(include_inactive=False)]
    history = synthetic_days(ids, DAY, 90)
    await service3.repo.upsert_days(history, ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr",
                                              "reply_time_s", "fans_chatted", "ppvs_sent", "ppvs_unlocked", "hours"],
                                    NOW)
    renders = []
    for _ in range(3):
        t0 = time.perf_counter()
        html = await service3.dashboard_html(90)
        renders.append(time.perf_counter() - t0)
    await db3.close()

    ours_ms, base_ms = statistics.median(runs) * 1000, statistics.median(base) * 1000
    print(f"{'figure':58} {'value':>12} {'target':>10}")
    print(f"{f'ingest+match+score+{len(service.config.leads)} briefings, {rows} rows/31 active (median)':58} "
          f"{ours_ms:>9.1f} ms {'< 200 ms':>10}")
    print(f"{'  naive baseline (linear fuzzy match, row-by-row writes)':58} {base_ms:>9.1f} ms")
    print(f"{'  speed-up vs baseline':58} {base_ms / ours_ms:>11.1f}x")
    print(f"{f'name matching, {len(roster)}-name roster':58} {fast:>7,.0f} names/s")
    print(f"{'  naive linear token_sort_ratio scan':58} {slow:>7,.0f} names/s")
    print(f"{'  speed-up vs baseline':58} {fast / slow:>11.1f}x")
    print(f"{'dashboard, 31 chatters x 90 days (median)':58} {statistics.median(renders) * 1000:>9.1f} ms "
          f"{'< 1 s':>10}")
    print(f"{'  dashboard file size':58} {len(html.encode()) / 1024:>9.1f} KB")


if __name__ == "__main__":
    asyncio.run(main())
