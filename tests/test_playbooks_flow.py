"""Playbooks from the user's side: a signed POS webhook in, the right SMS out at the right local time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.model import Address, OutboundStatus
from coaching.pos import sign
from coaching.sources.store_csv import ImportOptions, StoreImporter
from handlers.playbooks import playbooks_of, replay
from handlers.store import services
from storage.events import ORDER_CREATED, EventLog
from storage.playbooks import PlaybookRepo
from tests.flows import Flow

SECRET = "whsec_pb"
ROOT = Path(__file__).resolve().parent.parent
# 05:00 UTC on a Tuesday = 21:00 Monday in Los Angeles: "the next 10:00" is 10:00 LA = 18:00 UTC Tuesday
START = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
ANN = Address("sms", "+16195550101")

THANKS = {
    "name": "thank-you", "trigger": "order.created", "condition": "event.first_order && event.total > 50.0",
    "holdout": 0.0, "stop_when": ["replied", "opted_out"],
    "steps": [{"wait_until": "10:00"},
              {"send": "Thanks {{ customer.first_name }}! You have {{ customer.points }} points."},
              {"wait": "21d"}, {"branch": "journey.visits_since_start > 0", "then": "end"},
              {"send": "Double points this week, {{ customer.first_name }}."}],
}


class Pos:
    def __init__(self, flow: Flow, session: aiohttp.ClientSession, port: int) -> None:
        self.flow, self.session = flow, session
        self.url = f"http://127.0.0.1:{port}/webhooks/pos"

    async def order(self, event_id: str, order_id: str, total: str, customer: str = "C1",
                    phone: str = "+16195550101") -> int:
        body = json.dumps({"id": event_id, "type": "order.created", "created_at": START.isoformat(),
                           "data": {"id": order_id, "store": "main", "customer_id": customer,
                                    "customer_phone": phone, "occurred_at": self.flow.clock.now().isoformat(),
                                    "total": total, "items": [{"sku": "P1", "name": "OG 3.5g", "category": "flower",
                                                               "quantity": 1, "unit_price": total}]}}).encode()
        headers = {"X-Huddle-Signature": sign(SECRET, body, self.flow.clock.now().timestamp()),
                   "Content-Type": "application/json"}
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        await services(self.flow.app).ingest.idle()
        return resp.status


async def make_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str | None,
                     playbooks: list[dict[str, Any]], customers: str = "C1,Ann,Lee,619-555-0101,0\n",
                     extra_plugins: tuple[str, ...] = (), config: dict[str, Any] | None = None,
                     ) -> tuple[Flow, aiohttp.ClientSession, Pos]:
    monkeypatch.setenv("HUDDLE_POS_WEBHOOK_SECRET", SECRET)
    stores = [{"code": "main", "name": "Main St", "timezone": "America/Los_Angeles"}]
    flow = await Flow.create(plugins=["handlers.store", "handlers.customers", "handlers.playbooks", *extra_plugins],
                             start=START, database_url=db_url,
                             config={"stores": stores, "playbooks": playbooks, **(config or {})})
    csv = tmp_path / "customers.csv"
    csv.write_text("Customer ID,First Name,Last Name,Phone,Points\n" + customers)
    await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run("customers", csv,
                                                                          ImportOptions(progress=False))
    port = await flow.app.http.start("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    return flow, session, Pos(flow, session, port)


@pytest.fixture
async def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> AsyncIterator[tuple[Flow, Pos]]:
    flow, session, pos = await make_store(monkeypatch, tmp_path, db_url, [THANKS])
    try:
        yield flow, pos
    finally:
        await session.close()
        await flow.app.http.stop()
        await flow.close()


async def tick(flow: Flow, hours: float = 0) -> None:
    if hours:
        await flow.clock.advance(timedelta(hours=hours))
    await playbooks_of(flow.app).drain()
    await flow.settle()


async def test_first_order_is_thanked_the_next_morning_local_time(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    await pos.order("evt-1", "T1", "60.00")
    await tick(flow)
    assert flow.sent_to(ANN) == []  # 21:00 in LA: the thanks waits for tomorrow 10:00
    [(run, steps)] = await PlaybookRepo(flow.app.db).runs()
    assert run.status == "waiting" and run.wake_at == datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    event = await EventLog(flow.app.db).get(run.event_id)
    assert event is not None and event.type == ORDER_CREATED and event.source_id == "T1"
    await tick(flow, 12.9)  # 09:54 LA the next day
    assert flow.sent_to(ANN) == []
    await tick(flow, 0.2)
    assert flow.sent_to(ANN) == ["Thanks Ann! You have 60 points."]
    [(run, steps)] = await PlaybookRepo(flow.app.db).runs()
    assert [(s.kind, s.result) for s in steps] == [("wait_until", "waiting"), ("send", "sent"), ("wait", "waiting")]
    [row] = await flow.outbox_rows()
    assert row.sent_at is not None and row.sent_at.astimezone(UTC).hour == 18
    # 21 days with no visit: the branch takes the offer
    await tick(flow, 21 * 24 + 1)
    assert flow.sent_to(ANN)[-1] == "Double points this week, Ann."
    [(run, steps)] = await PlaybookRepo(flow.app.db).runs()
    assert run.status == "done" and steps[3].result == "else → step 4"


async def test_the_same_order_twice_is_one_journey(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    await pos.order("evt-1", "T1", "60.00")
    await pos.order("evt-1", "T1", "60.00")  # redelivered
    await pos.order("evt-9", "T1", "60.00")  # the same order from another source
    await tick(flow)
    await tick(flow, 13.5)
    assert len(await PlaybookRepo(flow.app.db).runs()) == 1
    assert flow.sent_to(ANN) == ["Thanks Ann! You have 60 points."]


async def test_a_reply_stops_the_journey(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    await pos.order("evt-1", "T1", "60.00")
    await tick(flow)
    await tick(flow, 13.5)
    await flow.send(ANN, "thank you!")
    await tick(flow, 22 * 24)
    sent = flow.sent_to(ANN)
    assert "Thanks Ann! You have 60 points." in sent and not [t for t in sent if "Double points" in t]
    [(run, _)] = await PlaybookRepo(flow.app.db).runs()
    assert (run.status, run.stop_reason) == ("stopped", "replied")


async def test_a_held_out_customer_gets_nothing_and_is_counted(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from coaching.playbooks import held_out

    # customers C1..C40 with their own phones; which are held out is fixed by the hash of person and playbook
    rows = "".join(f"C{n},P{n},X,619-555-{1000 + n:04d},0\n" for n in range(1, 41))
    flow, session, pos = await make_store(monkeypatch, tmp_path, None, [{**THANKS, "holdout": 0.5}], rows)
    try:
        for n in range(1, 41):
            await pos.order(f"e{n}", f"T{n}", "80.00", customer=f"C{n}", phone=f"+1619555{1000 + n:04d}")
        await tick(flow)
        await tick(flow, 13.5)
        svc = services(flow.app)
        held, treated = [], []
        for n in range(1, 41):
            c = await svc.customers.by_external_id(f"C{n}")
            assert c is not None
            (held if held_out(f"c{c.id}", "thank-you", 0.5) else treated).append(n)
        assert held and treated
        for n in held:
            assert flow.sent_to(Address("sms", f"+1619555{1000 + n:04d}")) == []
        for n in treated:
            assert flow.sent_to(Address("sms", f"+1619555{1000 + n:04d}")) == [f"Thanks P{n}! You have 80 points."]
        runs = await PlaybookRepo(flow.app.db).runs(limit=100)
        assert sum(r.held_out for r, _ in runs) == len(held)
        assert all(s.result == "held_out" for r, steps in runs if r.held_out for s in steps if s.kind == "send")
        # the report counts them; a held-out customer who comes back anyway is revenue without a message
        await pos.order("back-1", "B1", "40.00", customer=f"C{held[0]}", phone=f"+1619555{1000 + held[0]:04d}")
        from coaching.playbooks import figures

        [f] = figures(await PlaybookRepo(flow.app.db).report_rows(timedelta(days=7))).values()
        assert (f.eligible, f.held, f.treated, f.sent) == (40, len(held), len(treated), len(treated))
        assert f.impact.per_held > 0 and f.impact.incremental is not None and f.impact.incremental < 0
    finally:
        await session.close()
        await flow.app.http.stop()
        await flow.close()


async def test_frequency_cap_holds_a_second_marketing_message_the_same_day(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    now_a = {"name": "a", "trigger": "order.created", "holdout": 0.0, "steps": [{"send": "A for {{ event.total }}"}]}
    now_b = {"name": "b", "trigger": "order.created", "holdout": 0.0, "steps": [{"send": "B"}]}
    flow, session, pos = await make_store(monkeypatch, tmp_path, None, [now_a, now_b])
    await flow.clock.advance(timedelta(hours=13))  # 10:00 in LA: no quiet hours
    try:
        await pos.order("e1", "T1", "20.00")
        await tick(flow)
        assert len(flow.sent_to(ANN)) == 1
        held = [r for r in await flow.outbox_rows() if r.status is OutboundStatus.QUEUED]
        assert len(held) == 1 and held[0].reason and "frequency cap" in held[0].reason
        await tick(flow, 23)
        assert len(flow.sent_to(ANN)) == 1
        await tick(flow, 1.5)
        assert sorted(flow.sent_to(ANN)) == ["A for 20.0", "B"]
    finally:
        await session.close()
        await flow.app.http.stop()
        await flow.close()


async def test_a_playbook_messaging_too_many_in_an_hour_is_paused_and_staff_told(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUDDLE_PLAYBOOKS_GUARD_FLOOR", "3")
    blast = {"name": "blast", "trigger": "order.created", "holdout": 0.0, "max_share_per_hour": 0.1,
             "marketing": False, "steps": [{"send": "Hi {{ customer.first_name }}"}]}
    rows = "".join(f"C{n},P{n},X,619-555-{1000 + n:04d},0\n" for n in range(1, 11))
    flow, session, pos = await make_store(monkeypatch, tmp_path, None, [blast], rows)
    await flow.clock.advance(timedelta(hours=13))
    try:
        for n in range(1, 11):
            await pos.order(f"e{n}", f"T{n}", "10.00", customer=f"C{n}", phone=f"+1619555{1000 + n:04d}")
        await tick(flow)
        repo = PlaybookRepo(flow.app.db)
        assert await repo.sent_since("blast", START - timedelta(hours=1)) == 3
        assert "blast" in await repo.paused()
        staff = flow.sent_to(Address("console", "staff"))
        assert len(staff) == 1 and "blast" in staff[0] and "paused" in staff[0]
    finally:
        await session.close()
        await flow.app.http.stop()
        await flow.close()


async def test_replay_prints_what_would_go_out_and_writes_nothing_live(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    await pos.order("evt-1", "T1", "60.00")
    await pos.order("evt-2", "T2", "30.00", customer="C7", phone="+16195550177")
    await tick(flow)
    repo = PlaybookRepo(flow.app.db)
    before = (await repo.runs(), await EventLog(flow.app.db).cursor("playbooks"), len(await flow.outbox_rows()))
    sent, n = await replay(flow.app, START - timedelta(days=1), START + timedelta(days=30))
    assert n >= 2
    texts = [(w.at, w.to, w.body) for w in sent]
    assert (datetime(2026, 11, 24, 18, 0, tzinfo=UTC), "sms:+16195550101", "Thanks Ann! You have 60 points.") in texts
    assert any(b == "Double points this week, Ann." for _, _, b in texts)
    assert all("+16195550177" not in to for _, to, _ in texts)  # second order was not a first order over $50
    after = (await repo.runs(), await EventLog(flow.app.db).cursor("playbooks"), len(await flow.outbox_rows()))
    assert after == before and flow.sent_to(ANN) == []


def test_the_ready_templates_check_clean(tmp_path: Path) -> None:
    from coaching.playbook_templates import TEMPLATES

    path = tmp_path / "templates.toml"
    path.write_text(TEMPLATES)
    done = subprocess.run([sys.executable, "main.py", "playbooks", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, env={"HUDDLE_DATABASE_URL": str(tmp_path / "x.db"),
                                                               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0 and "4 playbook(s) OK" in done.stdout


async def test_a_crash_during_a_wait_sends_once_after_restart(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """The process dies while a journey waits (database closed, nothing stopped cleanly); a new one sends once."""
    from bot.testing import migrated_sqlite

    url = await migrated_sqlite(tmp_path)
    flow, session, pos = await make_store(monkeypatch, tmp_path, url, [THANKS])
    await pos.order("evt-1", "T1", "60.00")
    await tick(flow)
    [(run, _)] = await PlaybookRepo(flow.app.db).runs()
    assert run.status == "waiting"
    await session.close()
    await flow.app.http.stop()
    await playbooks_of(flow.app).stop()
    await flow.app.db.close()  # killed here: no shutdown hooks, the wait only in the database

    later = START + timedelta(hours=13, minutes=30)
    second = await Flow.create(plugins=["handlers.store", "handlers.customers", "handlers.playbooks"], start=later,
                               database_url=url, config={"stores": [{"code": "main", "name": "Main St",
                                                                     "timezone": "America/Los_Angeles"}],
                                                         "playbooks": [THANKS]})
    try:
        await tick(second)
        await tick(second, 1)
        assert second.sent_to(ANN) == ["Thanks Ann! You have 60 points."]
        [row] = await second.outbox_rows()
        assert row.status in (OutboundStatus.SENT, OutboundStatus.DELIVERED)
    finally:
        await second.close()
