"""Leases, fair claims and per-recipient order between processes sharing one database, from the
storage API each process uses: nothing of a live process is taken, a dead one's work is taken once
its lease is over (sends flagged possibly repeated), and one sender's messages never run in two
processes at once. Scheduled runs are claimed once across workers and finished by another when
the first dies mid-job."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FakeClock
from bot.model import Address, Inbound, Outbound, OutboundStatus
from bot.scheduler import Scheduler
from bot.settings import CoreSettings
from storage.db import Database
from storage.inbox import HANDLED, InboxRepo
from storage.outbox import OutboxRepo
from storage.processes import ProcessRepo, ProcessRow

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEASE = 15.0


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, durable=False)
    try:
        yield database
    finally:
        await database.close()


async def register(db: Database, pid: str, now: datetime = NOW, role: str = "worker") -> None:
    await ProcessRepo(db).register(ProcessRow(pid, role, "host", 1, now, now, now + timedelta(seconds=LEASE)))


async def test_a_live_process_keeps_its_sends_and_a_dead_ones_are_taken_once_its_lease_is_over(db: Database) -> None:
    repo = OutboxRepo(db)
    await register(db, "gw-a")
    await register(db, "gw-b")
    to = Address("sms", "+16195550100")
    await repo.enqueue(Outbound(to, "your order is ready", idempotency_key="k1"), NOW)
    [claimed] = await repo.claim("sms", "gw-a", NOW, 10)
    await repo.hand_over(claimed, NOW)  # to the provider: it may go out
    later = NOW + timedelta(seconds=LEASE - 1)
    assert await ProcessRepo(db).beat("gw-b", later, LEASE)
    assert await repo.recover("gw-b", ["sms"], later) == 0  # gw-a is within its lease: in flight, untouched
    assert (await repo.get(claimed.id or 0)).status is OutboundStatus.SENDING  # type: ignore[union-attr]
    assert await ProcessRepo(db).beat("gw-a", later, LEASE)  # a heartbeat moves the lease on
    expired = NOW + timedelta(seconds=LEASE + 1)
    assert await repo.recover("gw-b", ["sms"], expired) == 0
    dead = later + timedelta(seconds=LEASE + 1)  # gw-a stopped beating a whole lease ago
    assert await repo.recover("gw-b", ["sms"], dead) == 1
    row = await repo.get(claimed.id or 0)
    assert row is not None and row.status is OutboundStatus.QUEUED and row.resent  # possibly repeated
    [again] = await repo.claim("sms", "gw-b", dead, 10)
    assert again.id == claimed.id and again.resent


async def test_a_takeover_flags_only_the_sends_handed_to_the_provider(db: Database) -> None:
    repo = OutboxRepo(db)
    await register(db, "gw-a")
    people = [Address("sms", f"+1619555{n:04d}") for n in range(6)]
    for i, to in enumerate(people):
        await repo.enqueue(Outbound(to, f"m{i}", idempotency_key=f"k{i}"), NOW)
    batch = await repo.claim("sms", "gw-a", NOW, 10)
    assert len(batch) == 6
    for msg in batch[:2]:  # the two being sent when gw-a died; the rest waited their turn
        await repo.hand_over(msg, NOW)
    dead = NOW + timedelta(seconds=LEASE + 1)
    assert await repo.recover("gw-b", ["sms"], dead) == 6
    rows = {m.id: await repo.get(m.id or 0) for m in batch}
    assert all(r is not None and r.status is OutboundStatus.QUEUED for r in rows.values())
    assert {m.body for m in batch if rows[m.id].resent} == {"m0", "m1"}  # type: ignore[union-attr]
    assert [rows[m.id].attempts for m in batch] == [1, 1, 0, 0, 0, 0]  # type: ignore[union-attr]
    again = await repo.claim("sms", "gw-b", dead, 10)
    assert sorted(m.body for m in again if m.resent) == ["m0", "m1"]


async def test_a_clean_stop_ends_the_lease_at_once(db: Database) -> None:
    repo = OutboxRepo(db)
    await register(db, "gw-a")
    await repo.enqueue(Outbound(Address("sms", "+16195550100"), "hi", idempotency_key="k1"), NOW)
    await repo.claim("sms", "gw-a", NOW, 10)
    await ProcessRepo(db).stop("gw-a", NOW)
    assert await repo.recover("gw-b", ["sms"], NOW + timedelta(seconds=1)) == 1
    assert [p.id for p in await ProcessRepo(db).live(NOW)] == []


async def test_one_recipient_is_never_sent_to_by_two_processes_at_once(db: Database) -> None:
    repo = OutboxRepo(db)
    await register(db, "a")
    await register(db, "b")
    ann, bob = Address("sms", "+16195550100"), Address("sms", "+16195550101")
    for i in range(3):
        await repo.enqueue(Outbound(ann, f"ann {i}", idempotency_key=f"ann{i}"), NOW)
        await repo.enqueue(Outbound(bob, f"bob {i}", idempotency_key=f"bob{i}"), NOW)
    first = await repo.claim("sms", "a", NOW, 10)
    assert [m.body for m in first] == ["ann 0", "bob 0"]  # the head of each recipient's queue only
    assert await repo.claim("sms", "b", NOW, 10) == []  # both recipients are being sent to by `a`
    assert [m.body for m in await repo.claim("sms", "a", NOW, 10)] == ["ann 1", "bob 1"]  # a's lanes keep order
    await repo.mark_sent(first[0], [], False, NOW)
    assert await repo.claim("sms", "b", NOW, 10) == []  # ann 1 is still in a's hands
    for m in await repo.find(status=OutboundStatus.SENDING):
        await repo.mark_sent(m, [], False, NOW)
    taken = await repo.claim("sms", "b", NOW, 10)
    assert [m.body for m in taken] == ["ann 2", "bob 2"]


async def test_concurrent_claimers_share_a_backlog_and_never_overlap_on_a_recipient(db: Database) -> None:
    repo = OutboxRepo(db)
    workers = ["a", "b", "c"]
    for w in workers:
        await register(db, w)
    people = [Address("sms", f"+1619555{n:04d}") for n in range(30)]
    for i in range(240):
        await repo.enqueue(Outbound(people[i % 30], f"m{i}", idempotency_key=f"k{i}"), NOW)
    sent: dict[str, list[int]] = {w: [] for w in workers}
    busy: dict[str, str] = {}
    overlaps: list[str] = []
    order: dict[str, list[int]] = {}

    async def worker(name: str) -> None:
        rng = random.Random(name)
        idle = 0
        while idle < 5:
            claimed = await repo.claim("sms", name, NOW, 4)
            if not claimed:
                idle += 1
                await asyncio.sleep(0.005)
                continue
            idle = 0
            for m in claimed:
                owner = busy.setdefault(m.address.id, name)
                if owner != name:
                    overlaps.append(m.address.id)
            for m in claimed:
                await asyncio.sleep(rng.random() * 0.002)
                order.setdefault(m.address.id, []).append(m.id or 0)
                await repo.mark_sent(m, [], False, NOW)
                sent[name].append(m.id or 0)
            for m in claimed:
                if not await repo.find(address=m.address, status=OutboundStatus.SENDING):
                    busy.pop(m.address.id, None)

    await asyncio.gather(*(worker(w) for w in workers))
    assert sorted(i for ids in sent.values() for i in ids) == sorted(m.id for m in await repo.find())
    assert overlaps == []
    assert all(ids == sorted(ids) for ids in order.values())  # each recipient's messages in order
    if db.dialect == "postgresql":  # SKIP LOCKED: every worker got a fair part
        assert all(len(ids) >= 30 for ids in sent.values()), {w: len(v) for w, v in sent.items()}


async def test_inbound_claims_take_each_senders_oldest_message_and_dead_owners_work(db: Database) -> None:
    inbox = InboxRepo(db)
    await register(db, "w1")
    await register(db, "w2")
    ann, bob = Address("sms", "+16195550100"), Address("sms", "+16195550101")
    ids = [await inbox.store(Inbound(a, f"{a.id[-1]}{i}", provider_id=f"p{a.id}{i}", received_at=NOW), NOW)
           for i in range(2) for a in (ann, bob)]
    first = await inbox.claim("w1", NOW, 10)
    assert [m.text for m in first] == ["00", "10"]  # oldest of each sender: one turn per sender at a time
    assert await inbox.claim("w2", NOW, 10) == []
    await inbox.finish(first[0].id or 0, HANDLED, NOW)
    [next_ann] = await inbox.claim("w2", NOW, 10)
    assert next_ann.text == "01" and next_ann.id == ids[2]
    later = NOW + timedelta(seconds=LEASE + 1)  # w1 died holding bob's first message
    await ProcessRepo(db).beat("w2", later, LEASE)
    [taken] = await inbox.claim("w2", later, 10)
    assert taken.text == "10"


async def test_a_scheduled_run_runs_once_across_workers_and_a_dead_workers_run_is_finished(db: Database) -> None:
    clock = FakeClock(NOW)
    ran: list[str] = []
    started = asyncio.Event()
    hang = asyncio.Event()

    def scheduler(name: str, blocks: bool) -> Scheduler:
        s = Scheduler(db, clock, CoreSettings(worker_id=name, database_url=str(db.url)))

        async def job(run: object) -> None:
            ran.append(name)
            if blocks:
                started.set()
                await hang.wait()  # dies in the middle of the job

        s.add("briefing", _every_minute(), job)
        return s

    one, two = scheduler("w1", blocks=True), scheduler("w2", blocks=False)
    await clock.advance(60)
    for name in ("w1", "w2"):
        await register(db, name, clock.now())
    first = asyncio.create_task(one.run_due())
    await started.wait()
    assert await two.run_due() == []  # claimed by w1: runs once across workers
    assert await two.sweep_orphans() == []  # w1 is alive: its run is its own
    first.cancel()  # w1 is killed mid-job
    await clock.advance(LEASE + 1)
    await ProcessRepo(db).beat("w2", clock.now(), LEASE)
    [finished] = await two.sweep_orphans()
    assert finished.job == "briefing" and ran == ["w1", "w2"]
    assert await two.sweep_orphans() == []


def _every_minute() -> object:
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(minute="*", timezone=ZoneInfo("UTC"))
