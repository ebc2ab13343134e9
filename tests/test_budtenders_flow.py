"""Budtender coaching from the budtender's side: shifts on a fake clock, POS orders, replies, restarts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.testing import migrated_sqlite
from coaching.roles import Role
from handlers.budtenders import coach_of
from handlers.store import services
from storage.budtenders import Watermark
from tests.flows import Flow

START = datetime(2026, 11, 23, 9, 55, tzinfo=UTC)  # a Monday; the shift runs 10:00-18:00 UTC
SARAH = "+13235550111"
CONFIG: dict[str, Any] = {
    "stores": [{"code": "main", "name": "Main St", "timezone": "UTC"}],
    "budtenders": {"timezone": "UTC"},
    "shifts": [{"budtender": SARAH, "start": "10:00", "end": "18:00"}],
}
PLUGINS = ["handlers.store", "handlers.budtenders"]


class Store:
    """Sarah on today's shift, with a POS that rings up orders through the store's real ingest."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.n = 0

    async def order(self, total: str, *, signup: bool = False, order_id: str | None = None,
                    event_type: str = "order.created", status: str = "completed",
                    at: datetime | None = None) -> None:
        self.n += 1
        oid = order_id or f"T{self.n}"
        when = (at or self.flow.clock.now()).isoformat()
        data = {"id": oid, "store": "main", "budtender_id": "E1", "occurred_at": when, "total": total,
                "status": status, "rewards_signup": signup,
                "items": [{"sku": "P1", "name": "House OG", "category": "flower", "quantity": 1, "unit_price": total}]}
        body = json.dumps({"id": f"evt-{oid}-{event_type}-{status}", "type": event_type, "data": data}).encode()
        ingest = services(self.flow.app).ingest
        await ingest.accept(body)
        await ingest.idle()
        await self.flow.settle()


async def open_store(database_url: str, start: datetime = START, *, fresh: bool = True) -> tuple[Flow, Store, int]:
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=start, database_url=database_url)
    if fresh:
        sarah = await flow.person("Sarah Kim", {Role.BUDTENDER}, sms=SARAH)
        assert sarah.id is not None

        async def unit(conn: Any) -> None:
            await services(flow.app).sales.upsert_staff_in(conn, [{
                "external_id": "E1", "person_id": sarah.id, "name": "Sarah Kim", "phone": SARAH,
                "role": "budtender", "active": True, "updated_at": start}])

        await flow.app.db.run(unit)
        await coach_of(flow.app).repo.save_watermarks([Watermark(sarah.id, days=10, avg_ticket=Decimal("50.00"),
                                                                  computed_at=start)])
    found = [p for p in await flow.app.people.all(Role.BUDTENDER) if p.name == "Sarah Kim"]
    assert found and found[0].id is not None
    return flow, Store(flow), found[0].id


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[tuple[Flow, Store, int]]:
    flow, store, pid = await open_store(db_url)
    yield flow, store, pid
    await flow.close()


def sarah_texts(flow: Flow) -> list[str]:
    return [m.body for m in flow.channels["sms"].sent if m.address.id == SARAH]


async def test_midshift_check_two_hours_into_the_shift(shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = shop
    await flow.advance(timedelta(minutes=5))  # 10:00, the shift starts
    await store.order("40.00", signup=True)
    await flow.advance(timedelta(hours=1, minutes=55))
    assert sarah_texts(flow) == []
    await flow.advance(timedelta(minutes=5))  # 12:00
    texts = sarah_texts(flow)
    assert len(texts) == 1, texts
    assert "Sarah" in texts[0] and "2h into your shift" in texts[0] and len(texts[0]) <= 160
    await flow.advance(timedelta(minutes=30))
    assert len(sarah_texts(flow)) == 1  # no repeat within the period
    await flow.advance(timedelta(hours=1, minutes=30))  # 14:00: halfway
    assert "halfway through your shift" in sarah_texts(flow)[-1]


async def test_five_weak_orders_one_nudge_not_two(shop: tuple[Flow, Store, int]) -> None:
    flow, store, pid = shop
    await flow.advance(timedelta(minutes=10))
    shift = await coach_of(flow.app).current(pid)
    assert shift is not None
    for _ in range(4):
        await store.order("28.00")
        await flow.clock.advance(60)
    assert sarah_texts(flow) == []
    await store.order("28.00")  # the fifth: 44 % below her $50 average
    texts = sarah_texts(flow)
    assert len(texts) == 1 and ("44%" in texts[0] or "$28.00" in texts[0]), texts
    for _ in range(3):
        await flow.clock.advance(60)
        await store.order("25.00")
    assert len(sarah_texts(flow)) == 1
    rows = await coach_of(flow.app).repo.messages()
    assert [(r["kind"], r["key"]) for r in rows] == [("nudge", f"nudge:{pid}:{shift.id}:1")]


async def test_celebration_when_the_signup_target_is_hit(shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = shop
    await flow.advance(timedelta(minutes=10))
    for _ in range(3):
        await store.order("50.00", signup=True)
    texts = sarah_texts(flow)
    assert len(texts) == 1 and "3" in texts[0] and "sign-ups" in texts[0]
    await store.order("50.00", signup=True)
    assert len(sarah_texts(flow)) == 1


async def test_no_coaching_off_shift_or_for_orders_without_a_budtender(shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = shop
    for _ in range(6):
        await store.order("10.00")  # 09:55: before the shift
    assert sarah_texts(flow) == []


async def test_end_of_shift_summary_with_goals(shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = shop
    await flow.advance(timedelta(minutes=10))
    await store.order("60.00", signup=True)
    await flow.advance(timedelta(hours=7, minutes=55))  # 18:00
    last = sarah_texts(flow)[-1]
    assert last.startswith(("Shift done, Sarah", "Thanks Sarah")) and "Tomorrow" in last


async def test_pause_mutes_until_the_end_of_the_shift_and_stats_answer(shop: tuple[Flow, Store, int]) -> None:
    flow, store, pid = shop
    sarah = await flow.app.people.get(pid)
    assert sarah is not None
    assert "not on a shift" in (await flow.send(sarah, "PAUSE"))[0]
    await flow.advance(timedelta(minutes=10))
    await store.order("45.50", signup=True)
    stats = (await flow.send(sarah, "STATS"))[0]
    assert "$45.50" in stats and "1/3 sign-ups" in stats and "usual $50.00" in stats
    assert "Coaching paused" in (await flow.send(sarah, "pause"))[0]
    await flow.advance(timedelta(hours=2))
    assert not any("into your shift" in t for t in sarah_texts(flow))
    assert "Coaching is on" in (await flow.send(sarah, "RESUME"))[0]
    await flow.advance(timedelta(hours=2))
    assert any("into your shift" in t or "halfway" in t for t in sarah_texts(flow))


async def test_replies_mark_coaching_answered_and_commands_work(shop: tuple[Flow, Store, int]) -> None:
    flow, store, pid = shop
    sarah = await flow.app.people.get(pid)
    assert sarah is not None
    await flow.advance(timedelta(hours=2, minutes=5))  # 12:00 mid-shift check
    await store.order("30.00")
    assert len(sarah_texts(flow)) == 1
    tip = await flow.send(sarah, "thanks, any ideas?")
    assert tip[0].startswith("Tip: ")
    rows = await coach_of(flow.app).repo.messages()
    assert rows[0]["answered_at"] is not None
    rates = await coach_of(flow.app).repo.response_rates()
    assert [(r.kind, r.sent, r.answered) for r in rates] == [("midshift", 1, 1)]
    assert (await flow.send(sarah, "BOARD"))[0].startswith("Today: 1. Sarah $30.00")
    assert "Goals: 3 rewards sign-ups" in (await flow.send(sarah, "GOAL"))[0]
    assert "this week: $30.00 over 1 days" in (await flow.send(sarah, "WEEK"))[0]
    assert "Usage" in (await flow.send(sarah, "stats 5 6"))[0] or "Too many" in (await flow.send(sarah, "stats 5"))[0]


async def test_customers_cannot_use_budtender_commands(shop: tuple[Flow, Store, int]) -> None:
    flow, _, _ = shop
    ann = await flow.person("Ann", {Role.CUSTOMER}, sms="+16195550101")
    assert (await flow.send(ann, "BOARD"))[0] == "Sorry, that command isn't available to you."
    emoji = await flow.send(ann, "STATS " + "🌿" * 5000)
    assert emoji and "Sarah" not in emoji[0]


async def test_restart_sends_nothing_twice(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    flow, store, _ = await open_store(url)
    await flow.advance(timedelta(minutes=10))
    for _ in range(5):
        await store.order("28.00")
    await flow.advance(timedelta(hours=1, minutes=55))  # 12:00 mid-shift check
    before = sarah_texts(flow)
    assert len(before) == 2
    await flow.close()

    # the process restarts at 12:01: the tick runs again, the POS re-sends the last order
    flow, store, _ = await open_store(url, START + timedelta(hours=2, minutes=6), fresh=False)
    try:
        await flow.advance(timedelta(minutes=4))
        await store.order("28.00", order_id="T5")
        await store.order("20.00", order_id="T6")
        assert sarah_texts(flow) == []
        outbox = [m for m in await flow.outbox_rows() if m.address.id == SARAH]
        assert len(outbox) == 2
    finally:
        await flow.close()


async def test_watermarks_from_history_and_shift_import(shop: tuple[Flow, Store, int], tmp_path: Path) -> None:
    flow, store, pid = shop
    for d in range(1, 4):
        await store.order("40.00", at=START - timedelta(days=d))
        await store.order("80.00", at=START - timedelta(days=d), signup=True)
    marks = await coach_of(flow.app).refresh_watermarks()
    wm = next(m for m in marks if m.person_id == pid)
    assert (wm.days, wm.avg_ticket, wm.best_day_sales, wm.best_signups) == (3, Decimal("60.00"), Decimal("120"), 1)
    assert (await coach_of(flow.app).repo.watermark(pid)).avg_ticket == Decimal("60.00")

    from coaching.budtender_import import import_shifts_file

    csv = tmp_path / "shifts.csv"
    csv.write_text("Employee ID,Date,Start Time,End Time\nE1,2026-11-24,9am,5pm\nE9,2026-11-24,09:00,17:00\n"
                   "E1,2026-11-25,nine,17:00\nE1,,2026-11-26T22:00,2026-11-27T06:00\n")
    report = await import_shifts_file(coach_of(flow.app), csv, progress=False)
    assert report.written == 2
    assert [line for line, _ in report.skipped] == [3, 4]
    assert "unknown budtender 'E9'" in report.skipped[0][1]
    shifts = await coach_of(flow.app).repo.shifts_of(pid, datetime(2026, 11, 24, tzinfo=UTC), START + timedelta(days=5))
    assert [(s.starts_at.hour, s.ends_at.hour) for s in shifts] == [(9, 17), (22, 6)]
    again = await import_shifts_file(coach_of(flow.app), csv, progress=False)
    assert again.written == 2
    assert len(await coach_of(flow.app).repo.shifts_of(pid, START, START + timedelta(days=5))) == 2  # not doubled


async def test_demo_seed_runs_after_the_store(tmp_path: Path) -> None:
    flow = await Flow.create(plugins=PLUGINS, start=START, demo=True, config={"budtenders": {"timezone": "UTC"}})
    try:
        budtenders = await flow.app.people.all(Role.BUDTENDER)
        assert {p.name for p in budtenders} == {"Sarah Kim", "John Reyes", "Maria Ortiz"}
        coach = coach_of(flow.app)
        marks = [await coach.repo.watermark(p.id) for p in budtenders if p.id]
        assert len(marks) == 3 and all(m.known for m in marks)
        await flow.advance(timedelta(minutes=15))
        assert any("into your shift" in m.body for m in flow.channels["sms"].sent)
    finally:
        await flow.close()


async def test_ai_coach_sees_only_this_budtenders_numbers_and_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from tests.fakes.openai_server import FakeOpenAI

    async with FakeOpenAI() as ai:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key")
        monkeypatch.setenv("HUDDLE_OPENAI_BASE_URL", ai.base_url)
        monkeypatch.setenv("HUDDLE_OPENAI_TIMEOUT", "2")
        flow, store, pid = await open_store(await migrated_sqlite(tmp_path))
        try:
            john = await flow.person("John Reyes", {Role.BUDTENDER}, sms="+13235550112")
            sarah = await flow.app.people.get(pid)
            assert sarah is not None and john.id is not None
            await flow.advance(timedelta(minutes=10))
            await store.order("45.00", signup=True)
            ai.reply_text("Sarah, nice start! Ask the next customer if they'd like to join rewards.")
            reply = await flow.send(sarah, "how am I doing? and how is John doing?")
            assert reply == ["Sarah, nice start! Ask the next customer if they'd like to join rewards."]
            request = ai.requests[-1]
            assert '"avg_ticket": "45.00"' in request.system and '"rewards_signups": 1' in request.system
            assert "John" not in request.system and "Reyes" not in request.system
            ai.reply_status(500, times=2)
            assert (await flow.send(sarah, "any ideas?"))[0].startswith("Tip: ")
            flow.app.deps["budtender_coach"].config = flow.app.deps["budtender_coach"].config.model_copy(
                update={"ai_timeout_seconds": 0.3})
            ai.hang(2)
            assert (await flow.send(sarah, "any ideas?"))[0].startswith("Tip: ")
        finally:
            await flow.close()


async def test_weekly_review_with_a_signed_trend_link(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import asyncio
    import shutil

    import aiohttp

    monkeypatch.setenv("HUDDLE_PUBLIC_URL", "https://huddle.example")
    monkeypatch.setenv("HUDDLE_BUDTENDER_LINK_SECRET", "link-secret")
    flow, store, pid = await open_store(await migrated_sqlite(tmp_path))
    try:
        for d, total in ((2, "60.00"), (3, "60.00"), (5, "90.00"), (9, "50.00"), (10, "50.00")):
            await store.order(total, at=START - timedelta(days=d), signup=d == 5)
        await flow.advance(timedelta(minutes=5))  # Monday 10:00
        texts = sarah_texts(flow)
        assert len(texts) == 1, texts
        review = texts[0]
        assert "Sarah" in review and "+40% vs last week" in review and "1 sign-ups" in review
        link = review.split()[-1]
        assert link.startswith("https://huddle.example/budtenders/trend/")
        assert len(review) <= 306
        await flow.advance(timedelta(days=7))
        assert len([t for t in sarah_texts(flow) if "vs last week" in t or "your week" in t]) == 1  # a quiet week

        port = await flow.app.http.start("127.0.0.1", 0)
        path = link.removeprefix("https://huddle.example")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                assert resp.status == 200
                html = await resp.text()
            forged = path[:-1] + ("0" if path[-1] != "0" else "1")
            async with http.get(f"http://127.0.0.1:{port}{forged}") as resp:
                assert resp.status == 404
            other = path.replace(f"/trend/{pid}-", f"/trend/{pid + 1}-")
            async with http.get(f"http://127.0.0.1:{port}{other}") as resp:
                assert resp.status == 404
        await flow.app.http.stop()
        assert "<svg" in html and "Sarah Kim" in html and "$310" in html
        assert "src=" not in html and "<script" not in html  # no CDN, nothing fetched
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("chromium not installed: the page's rendering is not checked")
        page = tmp_path / "trend.html"
        page.write_text(html)
        shot = tmp_path / "trend.png"
        proc = await asyncio.create_subprocess_exec(
            chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1100,700",
            page.as_uri(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert shot.stat().st_size > 5000
    finally:
        await flow.close()


async def test_nightly_watermarks_job_and_coaching_report(shop: tuple[Flow, Store, int],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from handlers.budtenders import report_coaching

    flow, store, pid = shop
    for d in (1, 2):
        await store.order("80.00", at=START - timedelta(days=d))
    assert (await coach_of(flow.app).repo.watermark(pid)).avg_ticket == Decimal("50.00")
    await flow.advance(timedelta(minutes=5))
    for _ in range(18):  # hour by hour to 04:00 the next night
        await flow.advance(timedelta(hours=1))
    assert (await coach_of(flow.app).repo.watermark(pid)).avg_ticket == Decimal("80.00")

    await report_coaching(flow.app, argparse.Namespace())
    out = capsys.readouterr().out
    assert all(kind in out for kind in ("midshift", "summary", "weekly")) and "0.0%" in out


async def test_refund_drops_out_of_the_numbers_and_bad_input_gets_usage(shop: tuple[Flow, Store, int]) -> None:
    flow, store, pid = shop
    sarah = await flow.app.people.get(pid)
    assert sarah is not None
    await flow.advance(timedelta(minutes=10))
    await store.order("45.00", order_id="R1")
    await store.order("30.00", order_id="R2")
    assert "today: $75.00" in (await flow.send(sarah, "stats"))[0]
    await store.order("45.00", order_id="R1", event_type="order.updated", status="refunded")
    assert "today: $30.00, 1 customers" in (await flow.send(sarah, "STATS"))[0]
    assert (await flow.send(sarah, "pause now please"))[0].startswith("Too many arguments. Usage: PAUSE")
    unknown = (await flow.send(sarah, "/frobnicate"))[0]
    assert "frobnicate" in unknown and "STATS" in unknown and "BOARD" in unknown
    help_text = (await flow.send(sarah, "HELP"))[0]
    assert "STATS" in help_text and "PAUSE" in help_text
    assert (await flow.send(sarah, "🌿" * 5000))[0].startswith("Tip: ")


async def test_an_order_stored_but_never_coached_is_coached_after_a_crash(tmp_path: Path) -> None:
    """After-order coaching reads the event log: the process dies after the third sign-up is
    committed and before its coaching ran; the restarted one celebrates it, once."""
    from storage.events import EventLog

    url = await migrated_sqlite(tmp_path)
    flow, store, pid = await open_store(url)
    await flow.advance(timedelta(minutes=10))
    for _ in range(2):
        await store.order("50.00", signup=True)
    ingest = services(flow.app).ingest
    ingest.hooks.clear()  # the third order is committed, then the process dies before any hook runs
    await store.order("50.00", signup=True)
    assert sarah_texts(flow) == []
    assert await EventLog(flow.app.db).count("order.created") == 3
    await flow.app.db.close()

    again, store, _ = await open_store(url, START + timedelta(minutes=12), fresh=False)
    try:
        await again.settle()
        texts = sarah_texts(again)
        assert len(texts) == 1 and "3" in texts[0] and "sign-ups" in texts[0], texts
        await store.order("50.00", signup=True)
        await again.advance(timedelta(minutes=10))  # the tick reads the log again: nothing new to say
        assert len(sarah_texts(again)) == 1
        rows = await coach_of(again.app).repo.messages()
        assert [(r["kind"], r["person_id"]) for r in rows] == [("celebrate", pid)]
        assert await EventLog(again.app.db).cursor("budtender_coaching") == await EventLog(again.app.db).last_id()
    finally:
        await again.close()
