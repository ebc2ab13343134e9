"""The engine's batches: many events, runs and workers at once give what one at a time would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.model import Address
from coaching.playbook_engine import PlaybookEngine
from coaching.playbooks import Journey, customer_context, event_context, held_out, parse_playbooks
from storage.customers import customers, stores
from storage.db import Database
from storage.events import NewEvent
from storage.playbooks import PlaybookRepo

START = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


class Recorder:
    """A messenger that keeps what would go out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.notes: list[str] = []

    async def send(self, address: Address, body: str, key: str, person_id: int | None, at: datetime,
                   playbook: str = "") -> int | None:
        await asyncio.sleep(0)  # a real outbox awaits its commit: let concurrent runs interleave
        self.sent.append((address.id, body, key))
        return None

    async def notify(self, body: str, key: str, at: datetime) -> None:
        self.notes.append(body)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, durable=False)
    async with database.transaction() as conn:
        await conn.execute(stores.insert().values(code="main", name="Main", timezone="UTC", created_at=START,
                                                  updated_at=START))
        await conn.execute(customers.insert(), [
            {"external_id": f"C{i}", "first_name": f"Cust{i}", "phone": f"+1619555{1000 + i:04d}", "store_id": 1,
             "visits": i % 4, "lifetime_spend": "10.00", "favourite_categories": [], "attributes": {},
             "created_at": START, "updated_at": START} for i in range(1, 41)])
    yield database
    await database.close()


def orders(n: int, *, start: int = 0, at: datetime = START) -> list[NewEvent]:
    return [NewEvent("order.created", f"O{i}", at, None, i % 40 + 1,
                     {"order_id": f"O{i}", "total": f"{20 + i % 7 * 10}.00", "first_order": i % 3 == 0,
                      "categories": ["flower"]}) for i in range(start, start + n)]


async def append(db: Database, batch: list[NewEvent]) -> None:
    from storage.events import EventLog

    await EventLog(db).append_many(batch, START)


def engine(db: Database, playbooks: list[dict[str, Any]], clock: FakeClock, messenger: Recorder,
           consumer: str = "playbooks") -> PlaybookEngine:
    return PlaybookEngine(db, clock, parse_playbooks(playbooks, "test"), messenger, consumer=consumer)


MANY = [{"name": f"p{n}", "trigger": "order.created", "holdout": 0.2,
         "condition": ["event.total > 40.0", "event.first_order && customer.visits < 2", "event.discount > 1.0",
                       "'flower' in event.categories && event.total < 30.0"][n % 4],
         "steps": [{"send": "Hi {{ customer.first_name }} ({{ event.total }})"}]} for n in range(8)]


async def test_a_batch_of_events_starts_the_runs_one_event_at_a_time_would(db: Database) -> None:
    """Shared contexts, one subject read and one transaction per batch: the same runs, holdout and all."""
    await append(db, orders(120))
    batched = engine(db, MANY, FakeClock(START), Recorder(), consumer="batched")
    await batched.take(await batched.log.read("batched", 1000))
    one = engine(db, MANY, FakeClock(START), Recorder(), consumer="one")
    key = {}
    for e in await one.log.after(0, 1000):
        key[e.id] = e
    # the baseline: each event alone, each playbook on the whole context of its own
    expected = set()
    for e in key.values():
        subject = (await one.repo.subjects([e.customer_id], []))[f"c{e.customer_id}"]
        context = {"event": event_context(e.type, e.payload, e.occurred_at, e.id),
                   "customer": customer_context(subject, START), "journey": Journey(START).context(START),
                   "store": {"name": "Main"}}
        for pb in one.by_trigger["order.created"]:
            with contextlib.suppress(KeyError):
                if pb.matches(context):
                    subject_key = f"c{e.customer_id}"
                    expected.add((pb.name, e.id, subject_key, held_out(subject_key, pb.name, 0.2)))
    stored = {(r.playbook, r.event_id, r.subject, r.held_out) for r, _ in await PlaybookRepo(db).runs(limit=10_000)}
    assert stored == expected and stored
    assert not any(p in ("p2", "p6") for p, *_ in stored)  # no discount in the payloads: the condition fails
    assert all(h == held_out(s, p, 0.2) for p, _, s, h in stored)
    assert await batched.log.cursor("batched") == max(key)
    await batched.take(await batched.log.after(0, 1000))  # the same batch again: no second journey
    assert len(await PlaybookRepo(db).runs(limit=10_000)) == len(stored)


async def test_two_workers_on_the_same_due_runs_send_each_message_once(db: Database) -> None:
    await append(db, orders(80))
    clock, out = FakeClock(START), Recorder()
    a, b = engine(db, MANY, clock, out), engine(db, MANY, clock, out)
    a.settings.guard_floor = b.settings.guard_floor = 10_000  # the hourly guard is another test's
    await a.consume()
    due = await a.repo.due(clock.now(), 1000)
    assert due and sum(await asyncio.gather(a.run_due(1000), b.run_due(1000))) == len(due)
    keys = [k for _, _, k in out.sent]
    assert len(keys) == len(set(keys))  # one winner per run
    runs = await PlaybookRepo(db).runs(limit=10_000)
    sent = [r for r, steps in runs if steps and steps[0].result == "sent"]
    assert len(sent) == len(keys) and all(r.status == "done" for r, _ in runs)
    assert all(len(steps) == 1 for _, steps in runs)


async def test_later_events_of_a_batch_stop_the_journeys_earlier_ones_started(db: Database) -> None:
    """An order stops the open win-back style journey of its customer (stop-when visited), once, in log order."""
    waiting = [{"name": "back", "trigger": "order.created", "holdout": 0.0, "stop_when": ["visited"],
                "steps": [{"wait": "7d"}, {"send": "Come back {{ customer.first_name }}"}]},
               {"name": "keep", "trigger": "order.created", "holdout": 0.0, "condition": "event.total > 50.0",
                "steps": [{"wait": "7d"}, {"send": "Still here"}]}]
    clock, out = FakeClock(START), Recorder()
    pb = engine(db, waiting, clock, out)
    first = orders(10)  # customers 1..10
    await append(db, first)
    await pb.drain()
    await clock.advance(timedelta(hours=1))
    seen = clock.now() - timedelta(minutes=1)  # the orders happened a minute before the engine reads them
    later = [NewEvent("order.created", f"L{n}", seen, None, cid, {"order_id": f"L{n}", "total": "60.00"})
             for n, cid in enumerate((2, 4, 4, 6))]  # customer 4 twice in one batch
    await append(db, later)
    await pb.drain()
    runs = {(r.playbook, r.customer_id, r.event_id): r for r, _ in await PlaybookRepo(db).runs(limit=1000)}
    first_ids = {r.customer_id: r.event_id for r in runs.values() if r.started_at == START}
    for cid in (2, 4, 6):
        stopped = runs[("back", cid, first_ids[cid])]
        assert stopped.status == "stopped" and stopped.stop_reason == "visited"
    for cid in (1, 3, 5):
        assert runs[("back", cid, first_ids[cid])].status == "waiting"
    assert all(r.status == "waiting" for (name, _, _), r in runs.items() if name == "keep")  # not its stop-when
    fresh = [r for (name, cid, _), r in runs.items() if name == "back" and r.started_at > START]
    assert len(fresh) == 4 and all(r.status == "waiting" for r in fresh)  # the new journeys are not stopped


async def test_the_hourly_guard_counts_the_sends_of_its_own_batch(db: Database) -> None:
    blast = [{"name": "blast", "trigger": "order.created", "holdout": 0.0, "max_share_per_hour": 0.1,
              "steps": [{"send": "Hi {{ customer.first_name }}"}]}]
    clock, out = FakeClock(START), Recorder()
    pb = engine(db, blast, clock, out)
    pb.settings.guard_floor = 5
    await append(db, orders(30))
    await pb.drain()
    assert len(out.sent) == 5 and await pb.repo.sent_since("blast", START - timedelta(hours=1)) == 5
    assert "blast" in await pb.repo.paused() and len(out.notes) == 1


async def test_two_workers_batches_of_one_playbook_share_its_hourly_guard(db: Database, db_url: str) -> None:
    """Two processes (two database handles) advance disjoint halves of one playbook's runs at once:
    together they send no more than the guard allows one of them."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves one process; its batches already go in turn")
    blast = [{"name": "blast", "trigger": "order.created", "holdout": 0.0, "max_share_per_hour": 0.1,
              "steps": [{"send": "Hi {{ customer.first_name }}"}]}]
    other = Database(db_url, durable=False)
    try:
        clock, out = FakeClock(START), Recorder()
        a, b = engine(db, blast, clock, out), engine(other, blast, clock, out)
        a.settings.guard_floor = b.settings.guard_floor = 5
        await append(db, orders(30))
        await a.consume()
        due = await a.repo.due(clock.now(), 1000)
        first = await a.repo.claim_many(due[::2], a.settings.lease, clock.now())
        second = await b.repo.claim_many(due[1::2], b.settings.lease, clock.now())
        assert len(first) == len(second) == 15
        await asyncio.gather(a._advance_all(first), b._advance_all(second))
        assert len(out.sent) == 5 and await a.repo.sent_since("blast", START - timedelta(hours=1)) == 5
        assert "blast" in await a.repo.paused() and len(out.notes) == 1
    finally:
        await other.close()


async def test_a_batch_that_fails_to_record_sends_nothing_twice_when_run_again(db: Database,
                                                                               monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    """A crash between the sends and the batch's write: after the lease the runs repeat with the same keys."""
    clock, out = FakeClock(START), Recorder()
    pb = engine(db, [{"name": "hi", "trigger": "order.created", "holdout": 0.0, "steps": [{"send": "Hi"}]}], clock,
                out)
    await append(db, orders(12))
    await pb.consume()
    real = pb.repo.record

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(pb.repo, "record", crash)
    with pytest.raises(RuntimeError):
        await pb.run_due()
    first = [k for _, _, k in out.sent]
    monkeypatch.setattr(pb.repo, "record", real)
    assert await pb.run_due() == 0  # claimed: not due again before the lease ends
    await clock.advance(pb.settings.lease + timedelta(seconds=1))
    await pb.run_due()
    assert sorted(k for _, _, k in out.sent[len(first):]) == sorted(first)  # the outbox dedupes these keys
    assert len(first) == 12
    assert all(r.status == "done" and len(steps) == 1 for r, steps in await PlaybookRepo(db).runs(limit=100))


async def test_a_journey_that_opens_with_a_wait_is_waiting_from_its_start_once(db: Database) -> None:
    """Its first step is recorded as the run starts; the same events again start and record nothing more."""
    opens = [{"name": "later", "trigger": "order.created", "holdout": 0.0,
              "steps": [{"wait": "2d"}, {"send": "Hi {{ customer.first_name }}"}]},
             {"name": "paused", "trigger": "order.created", "holdout": 0.0,
              "steps": [{"wait": "1d"}, {"send": "Hi"}]}]
    clock, out = FakeClock(START), Recorder()
    pb = engine(db, opens, clock, out)
    await pb.repo.pause("paused", "test", START)
    await append(db, orders(6))
    await pb.take(await pb.log.read("playbooks", 1000))
    again = engine(db, opens, clock, out, consumer="again")  # a second delivery of the same events
    await again.take(await again.log.read("again", 1000))
    runs = await PlaybookRepo(db).runs(limit=100)
    later = [(r, steps) for r, steps in runs if r.playbook == "later"]
    assert len(later) == 6 and len(runs) == 12
    for r, steps in later:
        assert (r.status, r.step, r.wake_at) == ("waiting", 1, START + timedelta(days=2))
        assert [(s.step, s.kind, s.result, s.attempts) for s in steps] == [(0, "wait", "waiting", 1)]
    # a paused playbook's journeys wait for it to be resumed before their first step, as before
    assert all(r.status == "active" and r.step == 0 and not steps for r, steps in runs if r.playbook == "paused")
    assert await pb.run_due() == 0
    await pb.repo.resume("paused")
    assert await pb.run_due() == 6
    assert all(r.status == "waiting" and r.wake_at == START + timedelta(days=1)
               for r, _ in await PlaybookRepo(db).runs(playbook="paused"))
    await clock.advance(timedelta(days=2))
    await pb.run_due()
    assert len(out.sent) == 12 and len({k for _, _, k in out.sent}) == 12
