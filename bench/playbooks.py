"""Playbooks: signed webhooks → stored → 20 playbooks evaluated, and a 30-day what-if replay.

    python -m bench.playbooks [--events 5000] [--history 30000]

1. Signed `order.created` webhooks to the real HTTP server (the load generator in its own
   process), with 20 active playbooks on `order.created`: events/s from the first request until
   the engine's cursor has passed the last event (stored → order, points, event log → every
   playbook's CEL condition → runs). Target ≥ 1,000/s on SQLite. The 14 budtenders the orders
   name are on file (as in a configured store). Also the engine alone, on a scratch copy of the
   same stored events (runs and cursors cleared): consume → evaluate → runs → their first step,
   with the HTTP server and the order writes out of the picture; and the same webhooks with no
   playbook at all, the ceiling the HTTP and order path set on this machine. Baseline, on the
   same stored events: each playbook evaluated with a fresh query per event, its run written alone.
2. `playbooks replay` of a 30-day history (≥ 30,000 events, 3,000 customers) through the four
   ready playbooks plus 16 more on a scratch copy. Target < 10 s. Baselines, on a slice of the
   same events, extrapolated: the same engine fed one event at a time (a query and a transaction
   per event), and the naive evaluation of 1. (a fresh query per event × playbook, a transaction
   per run; its steps not even run). The scratch copy is timed on its own as well (it is part of
   the replay's figure).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.store_live import SECRET, post_all
from bot.app import App
from bot.config_file import ConfigFile
from bot.settings import CoreSettings
from coaching.playbook_engine import EngineSettings, PlaybookEngine, subject_key
from coaching.playbook_templates import templates
from coaching.playbooks import Journey, customer_context, event_context, held_out, parse_playbooks
from storage.db import Database
from storage.events import EventLog, events
from storage.playbooks import NewRun, PlaybookRepo


def twenty(trigger: str = "order.created") -> list[dict[str, Any]]:
    """20 playbooks on one trigger: most conditions false for most orders, a few true (runs that wait)."""
    out = []
    for n in range(20):
        cond = [f"event.total > {50 + n * 10}.0 && customer.visits < {n % 5 + 1}",
                f"'flower' in event.categories && event.total < {20 + n}.0",
                f"event.first_order && customer.points > {n * 100}",
                f"customer.tier == 'gold' && event.total > {100 + n}.0"][n % 4]
        out.append({"name": f"bench-{n}", "trigger": trigger, "condition": cond, "holdout": 0.1,
                    "steps": [{"wait": "30d"}, {"send": "Hi {{ customer.first_name }}"}]})
    return out


class Quiet:
    async def send(self, *args: Any, **kwargs: Any) -> int | None:
        return None

    async def notify(self, *args: Any, **kwargs: Any) -> None:
        return None


async def naive_take(engine: PlaybookEngine, batch: list[Any]) -> None:
    """The baseline: for each event and each playbook, a fresh subject query; each run its own transaction."""
    repo, now = engine.repo, engine.clock.now()
    for e in batch:
        for pb in engine.by_trigger.get(e.type, ()):
            subjects = await repo.subjects([e.customer_id] if e.customer_id else [],
                                           [e.person_id] if e.person_id else [])
            key = subject_key(e.customer_id, e.person_id)
            if key is None:
                continue
            ctx = {"event": event_context(e.type, e.payload, e.occurred_at, e.id),
                   "customer": customer_context(subjects.get(key), now), "journey": Journey(now).context(now),
                   "store": {"name": ""}}
            try:
                matched = pb.matches(ctx)
            except Exception:  # a condition that fails on this event: not eligible (as the engine says)
                matched = False
            if matched:
                run = NewRun(pb.name, e.id, key, e.person_id, e.customer_id, held_out(key, pb.name, 0.1), now)
                await repo.take("naive", e.id, [run], [], now)


async def webhooks(path: str, n: int, concurrency: int, durable: bool, playbooks: list[dict[str, Any]] | None = None
                   ) -> tuple[float, int, float, float]:
    """Events/s end to end, runs, the naive baseline's events/s and the engine alone's (0 without playbooks)."""
    settings = CoreSettings(database_url=path, http_port=0, console=False, demo=False,  # type: ignore[call-arg]
                            durable_commits=durable, _env_file=None)
    app = App(settings, config=ConfigFile({"stores": [{"code": "bench", "name": "Bench", "timezone": "UTC"}],
                                           "playbooks": twenty() if playbooks is None else playbooks}))
    app.load_plugins(["handlers.store", "handlers.playbooks"])
    await app.start(run_scheduler=False)
    from storage.sales import staff

    async with app.db.transaction() as conn:  # the budtenders the orders name (E1…E14), as a store has them
        await conn.execute(staff.insert(), [{"external_id": f"E{i}", "name": f"Budtender {i}", "store_id": 1,
                                             "updated_at": app.clock.now()} for i in range(1, 15)])
    log = EventLog(app.db)
    url = f"http://127.0.0.1:{app.http.port}/webhooks/pos"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        _lat, started = await asyncio.get_running_loop().run_in_executor(pool, post_all, url, n, concurrency, 0, 0)
    svc = app.deps["store"]
    await svc.ingest.idle()
    ingested = time.time() - started
    print(f"  (stored and applied: {n / ingested:.0f} orders/s; commits {app.db.commits.count}, "
          f"slowest {app.db.commits.longest_ms:.0f} ms)")
    pb = app.deps["playbooks"]
    last = await log.last_id()
    while await log.cursor("playbooks") < last:
        pb.kick()
        await asyncio.sleep(0.005)
    elapsed = time.time() - started
    engine = pb.build()
    if not engine.playbooks:  # the HTTP + order path's own ceiling on this machine now
        await app.stop()
        return n / elapsed, 0, 0.0, 0.0
    runs = len(await PlaybookRepo(app.db).runs(limit=10**6))
    # the baseline on the same stored events, offline: a slice, extrapolated
    slice_ = (await log.after(0, 500))
    naive = PlaybookEngine(app.db, app.clock, engine.playbooks, Quiet(), consumer="naive")
    t = time.perf_counter()
    await naive_take(naive, slice_)
    naive_rate = len(slice_) / (time.perf_counter() - t)
    evaluations = engine.evaluations
    alone = await engine_alone(app.db, engine, Path(path).parent)
    await app.stop()
    return n / elapsed, runs, naive_rate if evaluations else 0.0, alone


async def engine_alone(live: Database, engine: PlaybookEngine, tmp: Path) -> float:
    """The engine's own rate on the stored events: a scratch copy without runs, drained (events/s)."""
    from storage.scratch import scratch_copy

    directory = tmp / "alone"
    directory.mkdir()
    scratch = await scratch_copy(live, directory)
    try:
        alone = PlaybookEngine(scratch, engine.clock, engine.playbooks, Quiet(), engine.settings)
        n = await EventLog(scratch).last_id()
        t = time.perf_counter()
        await alone.drain()
        return n / (time.perf_counter() - t)
    finally:
        await scratch.close()


async def history(path: str, n_events: int, n_customers: int) -> tuple[datetime, datetime]:
    """A 30-day log: customers with phones, orders (10 % first orders), sign-ups, tier-ups, overdue visits."""
    db = Database(path, durable=False)
    await db.check(create=True)
    await db.upgrade()
    from storage.customers import customers, stores

    rnd = random.Random(5)
    end = datetime(2026, 11, 30, tzinfo=UTC)
    start = end - timedelta(days=30)
    now = end
    async with db.transaction() as conn:
        await conn.execute(stores.insert().values(code="bench", name="Bench", timezone="UTC", created_at=now,
                                                  updated_at=now))
        await conn.execute(customers.insert(), [
            {"external_id": f"C{i}", "first_name": f"Cust{i}", "phone": f"+1619{5000000 + i:07d}", "store_id": 1,
             "visits": rnd.randint(0, 30), "lifetime_spend": "100.00", "rewards_member": True,
             "favourite_categories": [], "attributes": {}, "created_at": now, "updated_at": now}
            for i in range(1, n_customers + 1)])
        rows = []
        for i in range(n_events):
            at = start + timedelta(seconds=rnd.uniform(0, 30 * 86400))
            cid = rnd.randint(1, n_customers)
            kind = rnd.random()
            if kind < 0.9:
                rows.append(("order.created", f"O{i}", cid, {"order_id": f"O{i}", "total": f"{rnd.uniform(8, 250):.2f}",
                                                             "first_order": rnd.random() < 0.1, "visits_before": 3,
                                                             "categories": ["flower"], "items": 1}, at))
            elif kind < 0.95:
                rows.append(("signup", str(i), cid, {"customer_id": cid, "via": "pos"}, at))
            elif kind < 0.98:
                rows.append(("points.tier_up", f"{cid}:{i}", cid, {"customer_id": cid, "tier": "gold",
                                                                    "previous": "silver", "balance": 600}, at))
            else:
                rows.append(("visit.overdue", f"{cid}:{i}", cid, {"days_since": 30, "usual_gap_days": 10.0,
                                                                   "ratio": 3.0, "visits": 6, "last_visit": ""}, at))
        rows.sort(key=lambda r: r[4])
        await conn.execute(events.insert(), [
            {"type": t, "source_id": s, "customer_id": c, "person_id": None, "payload": p, "occurred_at": at,
             "recorded_at": at} for t, s, c, p, at in rows])
    await db.close()
    return start, end


async def replays(path: str, start: datetime, end: datetime) -> tuple[float, int, int, float, float, float]:
    from handlers.playbooks import PlaybookSettings, replay_on
    from storage.scratch import scratch_copy

    playbooks = templates() + parse_playbooks(twenty()[:16], "bench")
    live = Database(path, durable=False)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        scratch = await scratch_copy(live, Path(tmp))
        copied = time.perf_counter() - t
        sent, n = await replay_on(scratch, playbooks, EngineSettings(), PlaybookSettings(_env_file=None), None,
                                  start, end)
        elapsed = time.perf_counter() - t
        await scratch.close()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = await scratch_copy(live, Path(tmp))
        engine = PlaybookEngine(scratch, _Clock(end), playbooks, Quiet(), consumer="naive")
        batch = await EventLog(scratch).between(start, end)
        slice_ = batch[:1500]
        t = time.perf_counter()
        for e in slice_:  # one event at a time: a subject query and a transaction per event
            await engine.take([e])
        naive = len(slice_) / (time.perf_counter() - t)
        await scratch.close()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = await scratch_copy(live, Path(tmp))
        engine = PlaybookEngine(scratch, _Clock(end), playbooks, Quiet(), consumer="naive")
        slice_ = (await EventLog(scratch).between(start, end))[:1500]
        t = time.perf_counter()
        await naive_take(engine, slice_)
        fresh = len(slice_) / (time.perf_counter() - t)
        await scratch.close()
    await live.close()
    return elapsed, n, len(sent), naive, copied, fresh


class _Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--history", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--dir", default=None, help="where the databases go (e.g. /dev/shm to leave the disk out)")
    parser.add_argument("--durable", action="store_true",
                        help="fsync every commit (the product's default; the figure is then the disk's)")
    args = parser.parse_args()
    os.environ["HUDDLE_POS_WEBHOOK_SECRET"] = SECRET
    with tempfile.TemporaryDirectory(prefix="huddle-bench-pb-", dir=args.dir) as tmp:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes share them)")
        rate, runs, naive, alone = await webhooks(str(Path(tmp) / "live.db"), args.events, args.concurrency,
                                                  args.durable)
        bare, *_ = await webhooks(str(Path(tmp) / "bare.db"), args.events, args.concurrency, args.durable, [])
        print(f"{'webhook → stored → 20 playbooks evaluated':<48}{'events/s':>10}{'runs':>8}{'target':>10}"
              f"   ({'durable' if args.durable else 'no fsync'} commits; load {os.getloadavg()[0]:.2f})")
        print(f"{'  engine (batched, end to end)':<48}{rate:>10.0f}{runs:>8}{'≥ 1,000':>10}")
        print(f"{'  engine alone (stored events → runs)':<48}{alone:>10.0f}")
        print(f"{'  no playbook at all (HTTP + orders: the ceiling)':<48}{bare:>10.0f}")
        print(f"{'  baseline (fresh query per event × playbook)':<48}{naive:>10.0f}{'':>8}"
              f"{'':>10}   ratio {rate / naive if naive else float('nan'):.1f}× (alone {alone / naive:.1f}×)")
        hist = str(Path(tmp) / "history.db")
        start, end = await history(hist, args.history, args.customers)
        elapsed, n, sent, naive_rate, copied, fresh = await replays(hist, start, end)
        print(f"{'replay of 30 days':<48}{'events':>10}{'seconds':>9}{'messages':>10}{'target':>8}"
              f"   (load {os.getloadavg()[0]:.2f})")
        print(f"{'  engine (hourly batches, scratch copy)':<48}{n:>10}{elapsed:>9.2f}{sent:>10}{'< 10 s':>8}")
        print(f"{'    of which the scratch copy':<48}{'':>10}{copied:>9.2f}")
        print(f"{'  baseline (one event at a time), extrapolated':<48}{n:>10}{n / naive_rate:>9.2f}{'':>10}"
              f"{'':>8}   ratio {(n / naive_rate) / elapsed:.1f}×")
        print(f"{'  baseline (fresh query per event × playbook)':<48}{n:>10}{n / fresh:>9.2f}{'':>10}"
              f"{'':>8}   ratio {(n / fresh) / elapsed:.1f}×")


if __name__ == "__main__":
    asyncio.run(main())
