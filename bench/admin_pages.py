"""A person's admin page with 10,000 messages: keyset pages against OFFSET and unpaged baselines.

    python -m bench.admin_pages [--messages 10000] [--noise 40000] [--runs 30]

Builds a SQLite file (durable settings, all migrations) with one person who has `--messages`
messages in and out across two channels, plus POS orders and points, among `--noise` messages of
other people; then serves the real admin page over the real HTTP server and times GET
/admin/people/{id} (first page, and a page deep in the history through its keyset cursor), as the
browser would ask for it. Baselines in the same run: the same deep page fetched with OFFSET, and
the whole history unpaged (every row loaded and rendered). Target: the page opens < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from bot.app import App
from bot.config_file import ConfigFile
from bot.model import Address, Person
from bot.settings import CoreSettings
from handlers.admin_web import LABELS
from storage.inbox import inbound
from storage.outbox import outbox
from storage.timeline import Cursor, Entry

TOKEN = "bench-admin"
START = datetime(2026, 1, 1, tzinfo=UTC)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def fill(app: App, person_id: int, messages: int, noise: int) -> None:
    """Rows straight into the inbox and outbox (as the dispatcher and outbox would leave them)."""
    rows_in: list[dict[str, Any]] = []
    rows_out: list[dict[str, Any]] = []
    step = max(1, (messages + noise) // messages)
    mine_count = 0
    for i in range(messages + noise):
        mine = i % step == 0 and mine_count < messages
        mine_count += mine
        pid = person_id if mine else 10_000 + i % 500
        at = START + timedelta(seconds=30 * i)
        channel = "sms" if i % 3 else "slack"
        if i % 2:
            rows_in.append({"channel": channel, "address": f"a{pid}", "provider_id": f"p{i}", "text": f"question {i}",
                            "person_id": pid, "status": "handled", "received_at": at, "stored_at": at})
        else:
            rows_out.append({"channel": channel, "address": f"a{pid}", "body": f"answer {i}", "kind": "reply",
                             "idempotency_key": f"k{i}", "status": "failed" if i % 97 == 0 else "delivered",
                             "attempts": 1, "next_attempt_at": at, "reason": "carrier said no" if i % 97 == 0 else None,
                             "person_id": pid, "compliance": False, "resent": False, "created_at": at,
                             "updated_at": at})

    async def unit(conn: Any) -> None:
        for chunk in range(0, len(rows_in), 5000):
            await conn.execute(inbound.insert(), rows_in[chunk:chunk + 5000])
        for chunk in range(0, len(rows_out), 5000):
            await conn.execute(outbox.insert(), rows_out[chunk:chunk + 5000])

    await app.db.run(unit)


async def offset_page(app: App, person_id: int, offset: int, limit: int) -> list[Entry]:
    """The naive deep page: both sources sorted and skipped with OFFSET (what keyset avoids)."""
    i, o = inbound.c, outbox.c
    both = sa.union_all(
        sa.select(i.received_at.label("at"), sa.literal("in").label("src"), i.id, i.channel, i.text.label("text"),
                  i.status, i.error.label("detail")).where(i.person_id == person_id),
        sa.select(o.created_at.label("at"), sa.literal("out").label("src"), o.id, o.channel, o.body.label("text"),
                  o.status, o.reason.label("detail")).where(o.person_id == person_id),
    ).subquery()
    query = sa.select(both).order_by(both.c.at.desc(), both.c.src.desc(), both.c.id.desc()).offset(offset).limit(limit)
    async with app.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [Entry(_at(r.at), r.src, r.id, r.channel, "", r.text, r.status, r.detail or "") for r in rows]


def _at(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def unpaged(app: App, person_id: int) -> list[Entry]:
    return await offset_page(app, person_id, 0, 10**9)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--noise", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huddle-bench-admin-"))
    settings = CoreSettings(database_url=str(work / "admin.db"), demo=False, console=False, http_enabled=False,
                            admin_token=TOKEN, _env_file=None)  # type: ignore[call-arg]
    app = App(settings, config=ConfigFile({}))
    app.load_plugins(["channels.sms.plugin", "channels.slack", "handlers.store", "handlers.customers",
                      "handlers.admin"])
    try:
        await app.open_db()
        person = await app.people.add(Person(None, "Busy Customer", frozenset({"customer"}),
                                             [Address("sms", "+13235550177")]), START)
        assert person.id is not None
        t0 = time.perf_counter()
        await fill(app, person.id, args.messages, args.noise)
        print(f"filled {args.messages:,} messages of one person among {args.noise:,} others "
              f"in {time.perf_counter() - t0:.1f}s")
        port = await app.http.start("127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}/admin/people/{person.id}"
        pages: Any = app.deps["admin_pages"]
        deep = (await pages.timeline.page(person.id, None, 50))
        cursor: Cursor | None = deep.next
        for _ in range(args.messages // 100):  # half-way down the history
            page = await pages.timeline.page(person.id, cursor, 50)
            cursor = page.next
        assert cursor is not None
        jinja = pages.jinja

        def render(entries: list[Entry]) -> str:
            return jinja.get_template("_timeline.html").render(entries=entries, labels=LABELS)

        results: dict[str, list[float]] = {k: [] for k in ("keyset first page (HTTP)", "keyset deep page (HTTP)",
                                                              "keyset deep page (query + render)",
                                                              "OFFSET deep page (query + render)",
                                                              "unpaged history (query + render)")}
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for _ in range(args.runs):
                for name, url in (("keyset first page (HTTP)", base),
                                  ("keyset deep page (HTTP)", f"{base}?before={cursor.encode()}")):
                    t = time.perf_counter()
                    async with http.get(url) as r:
                        body = await r.text()
                        assert r.status == 200 and body.count("<li class=") == 50, (r.status, body[:200])
                    results[name].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                render((await pages.timeline.page(person.id, cursor, 50)).entries)
                results["keyset deep page (query + render)"].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                render(await offset_page(app, person.id, args.messages // 2, 50))
                results["OFFSET deep page (query + render)"].append((time.perf_counter() - t) * 1000)
                if len(results["unpaged history (query + render)"]) < max(3, args.runs // 5):
                    t = time.perf_counter()
                    render(await unpaged(app, person.id))
                    results["unpaged history (query + render)"].append((time.perf_counter() - t) * 1000)
        baseline = statistics.median(results["unpaged history (query + render)"])
        print(f"\n{'what':<36} {'p50 ms':>8} {'p95 ms':>8} {'vs unpaged':>11}")
        for name, values in results.items():
            p50 = statistics.median(values)
            print(f"{name:<36} {p50:>8.1f} {pct(values, 0.95):>8.1f} {baseline / p50:>10.1f}x")
        worst = max(pct(results["keyset first page (HTTP)"], 0.95), pct(results["keyset deep page (HTTP)"], 0.95))
        print(f"\ntarget: the page opens < 300 ms — p95 {worst:.1f} ms: {'met' if worst < 300 else 'NOT met'}")
    finally:
        await app.http.stop()
        await app.db.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
