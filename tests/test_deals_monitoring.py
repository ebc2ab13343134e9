"""Monitoring from the manager's side: a simulated day of `/monitor 1` over 80 deals, messages counted.

Each run sends one digest; an analysis goes out only for a deal that turned red or whose advice
changed, never twice the same; a daily cap holds the rest back and the digest says so.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.model import Person, Role
from bot.testing import Flow
from coaching.deals import Deal, DealEvent, EventKind
from storage.deals import DealRepo
from tests.deals_support import NOW, ago, call, deal

RED = range(1001, 1011)          # silent 8 days: red from the start
STALE = range(1011, 1021)        # silent 4 days, a task planned: yellow, stale
TURNS_STALE = range(1021, 1026)  # silent 2.5 days: stale 12 hours in
TURNS_RED = range(1026, 1031)    # silent 6.6 days: red about 10 hours in
GREEN = range(1031, 1081)        # called 12 hours ago, a task planned


def future_task(created_days: float = 1) -> DealEvent:
    return DealEvent(EventKind.TASK, ago(created_days), text="demo", due_at=NOW + timedelta(days=5))


def eighty() -> list[Deal]:
    out = []
    for i in RED:
        out.append(deal(i, "mia", call(8), future_task(8), created=10))
    for i in STALE:
        out.append(deal(i, "mia", call(4), future_task(4), created=10))
    for i in TURNS_STALE:
        out.append(deal(i, "mia", call(2.5), future_task(2.5), created=10))
    for i in TURNS_RED:
        out.append(deal(i, "mia", call(6.6), future_task(6.6), created=10))
    for i in GREEN:
        out.append(deal(i, "mia", call(0.5), future_task(0.5), created=10))
    assert len(out) == 80
    return out


async def mia_flow(locale: str = "en", timezone: str = "UTC") -> tuple[Flow, Person, DealRepo]:
    flow = await Flow.create(plugins=["handlers.sales_managers"], start=NOW)
    mia = await flow.person("Mia Hart", {Role.SALES_MANAGER}, telegram="300001", locale=locale, timezone=timezone)
    mia.external_id = "mia"
    await flow.app.people.update(mia, flow.clock.now())
    repo = DealRepo(flow.app.db)
    await repo.upsert(eighty(), flow.clock.now())
    return flow, mia, repo


def analysed(bodies: list[str]) -> list[int]:
    """Deal ids of the detailed analyses among the messages, in order."""
    found = (re.search(r"(?:DEAL ANALYSIS|АНАЛИЗ СДЕЛКИ)</b> #(\d+)", b) for b in bodies)
    return [int(m.group(1)) for m in found if m]


async def test_a_day_of_hourly_monitoring_sends_digests_and_only_the_changed_deals() -> None:
    flow, mia, repo = await mia_flow()
    try:
        [ok] = await flow.send(mia, "/monitor 1")
        assert "every 1 h" in ok
        runs: list[list[str]] = []
        for hour in range(1, 25):
            if hour == 5:  # Mia calls one of her red deals: it is no longer red
                d = await repo.get(RED[0])
                assert d is not None
                d.events.append(DealEvent(EventKind.CALL, flow.clock.now(), duration_s=600, direction="out"))
                await repo.upsert([d], flow.clock.now())
            if hour == 14:  # a red deal gets an overdue task: its advice changes
                d = await repo.get(RED[1])
                assert d is not None
                d.events.append(DealEvent(EventKind.TASK, ago(1), text="send contract", due_at=flow.clock.now()
                                          - timedelta(hours=1)))
                await repo.upsert([d], flow.clock.now())
            before = len(flow.sent_to(mia))
            await flow.advance(timedelta(hours=1))
            runs.append(flow.sent_to(mia)[before:])

        digests = [m for run in runs for m in run if m.startswith("📊")]
        assert len(digests) == 24 and all(run[0].startswith("📊") for run in runs)  # exactly one a run, first
        ids = analysed([m for run in runs for m in run])
        assert sorted(ids) == sorted([*RED, *TURNS_RED, RED[1]])  # 10 + 5 that turned red + 1 new advice
        assert len(ids) == 16 and len(flow.sent_to(mia)) == 1 + 24 + 16

        first = runs[0][0]
        assert "Red now" in first and all(f"#{i}</b>" in first for i in RED)
        assert all(f"#{i}</b>" in first for i in STALE) and "#1031</b>" not in first
        assert "55 other deals unchanged" in first and "Analyses of 10 deals follow" in first
        assert set(analysed(runs[0])) == set(RED)
        quiet = runs[2][0]
        assert quiet.startswith("📊 <b>Since the last report</b>") and "80 deals unchanged" in quiet
        assert len(runs[2]) == 1
        turned = next(run for run in runs if any("Turned red" in m for m in run))
        assert set(analysed(turned)) == set(TURNS_RED) and all(f"#{i}</b>" in turned[0] for i in TURNS_RED)
        went = next(run[0] for run in runs if "Went stale" in run[0])
        assert all(f"#{i}</b>" in went for i in TURNS_STALE)
        called = runs[4][0]  # the red deal Mia called: new advice listed, no analysis (it is not red now)
        assert "New advice" in called and f"#{RED[0]}</b>" in called and len(runs[4]) == 1
        advice = runs[13]
        assert analysed(advice) == [RED[1]] and "send contract" not in advice[0]
        assert "Close or reschedule the overdue tasks" in advice[1]
    finally:
        await flow.close()


async def test_the_daily_cap_holds_analyses_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUDDLE_DEALS_DAILY_CAP", "4")
    flow, mia, _ = await mia_flow(locale="ru", timezone="Europe/Moscow")  # 12:00 in Moscow at the start
    try:
        await flow.send(mia, "/monitor 6")
        await flow.advance(timedelta(hours=6))  # 18:00 Moscow
        run = flow.sent_to(mia)[1:]
        assert len(run) == 1 + 4
        assert "Мониторинг сделок" in run[0] and "⏸ 6 анализов отложено: достигнут дневной лимит (4)" in run[0]
        # 00:00 Moscow: a new day and four more; five deals turned red meanwhile, so 2 + 5 wait
        await flow.advance(timedelta(hours=6))
        run = flow.sent_to(mia)[6:]
        assert len(analysed(run)) == 4 and "Стали срочными" in run[0] and "⏸ 7 анализов отложено" in run[0]
        sent = analysed(flow.sent_to(mia))
        assert len(sent) == len(set(sent)) == 8  # never the same analysis twice
    finally:
        await flow.close()


async def test_a_monitoring_day_on_both_databases(db_url: str) -> None:
    """The digest's snapshot and the sent-analysis log on SQLite and PostgreSQL, through the flow."""
    flow = await Flow.create(plugins=["handlers.sales_managers"], start=NOW, database_url=db_url)
    try:
        mia = await flow.person("Mia Hart", {Role.SALES_MANAGER}, telegram="300001")
        mia.external_id = "mia"
        await flow.app.people.update(mia, flow.clock.now())
        await DealRepo(flow.app.db).upsert(eighty(), flow.clock.now())
        await flow.send(mia, "/monitor 6")
        await flow.advance(timedelta(hours=6))
        await flow.advance(timedelta(hours=6))
        bodies = flow.sent_to(mia)[1:]
        assert sum(b.startswith("📊") for b in bodies) == 2
        assert sorted(analysed(bodies)) == sorted([*RED, *TURNS_RED])
        repo = DealRepo(flow.app.db)
        assert len(await repo.watch(mia.id)) == 80  # type: ignore[arg-type]
        assert await repo.sent_since(mia.id, NOW) == 15  # type: ignore[arg-type]
        assert not await repo.record_sent(mia.id, RED[0], next(iter(  # type: ignore[arg-type]
            a for d, a in await repo.sent_advice(mia.id, [RED[0]]))), flow.clock.now())  # type: ignore[arg-type]
    finally:
        await flow.close()
