"""Group commit's batched statements store exactly what one transaction per call stores.

Each scenario runs twice on the same database, on SQLite and on PostgreSQL: once with group
commit, its callers concurrent (they share one transaction and one multi-row statement), and once
naive, the same calls one after another in their order, a transaction each. The answers and the
rows must be the same: a batch behaves as its callers' calls made in turn. A caller hears back only once its
row is committed (another connection sees it), and a batch that fails acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from bot.model import Address, Inbound, Outbound, OutboundKind, Person
from storage.conversations import ConversationRepo
from storage.db import Database
from storage.inbox import InboxRepo, inbound
from storage.outbox import OutboxRepo, outbox
from storage.people import PeopleRepo, consent_in, consent_many

NOW = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)


def _msg(channel: str, provider_id: str | None, text: str | None = None) -> Inbound:
    return Inbound(Address(channel, "+16195550100"), text if text is not None else f"hi {provider_id}",
                   provider_id=provider_id, received_at=NOW)


def _commits(db: Database) -> list[int]:
    count = [0]
    engine = db.sync_engine if db.sync_engine is not None else db.engine.sync_engine
    event.listen(engine, "commit", lambda _conn: count.__setitem__(0, count[0] + 1))
    return count


async def _stored(db: Database, channel: str) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(inbound.c.id, inbound.c.provider_id, inbound.c.text)
                                   .where(inbound.c.channel == channel).order_by(inbound.c.id))).all()
    return [tuple(r) for r in rows]


def _by_position(answers: list[int | None], rows: list[tuple[Any, ...]]) -> list[int | None]:
    """Row ids as their position among the stored rows, so two runs compare."""
    position = {row[0]: i for i, row in enumerate(rows)}
    return [None if a is None else position[a] for a in answers]


async def _calls(group: bool, calls: list[Any]) -> list[Any]:
    """Concurrently under group commit; one after another, in order, without."""
    if group:
        return list(await asyncio.gather(*calls))
    return [await call for call in calls]


async def _inbound_scenario(url: str, group: bool) -> tuple[list[int | None], list[tuple[Any, ...]], int]:
    channel = "group" if group else "naive"
    db = Database(url, durable=False, group_commit=group)
    commits = _commits(db)
    repo = InboxRepo(db)
    try:
        first = await _calls(group, [repo.store(_msg(channel, f"p{i}"), NOW) for i in range(10)])
        before = commits[0]
        second = [
            _msg(channel, "p3"),  # stored by the first batch: a redelivery
            _msg(channel, "q1"),
            _msg(channel, "q1", "the same id again in this batch"),
            _msg(channel, None, "no provider id"),
            _msg(channel, "q2"),
            _msg(channel, None, "no provider id either"),
            _msg(channel, "p9"),
            _msg(channel, "q3"),
        ]
        answers = await _calls(group, [repo.store(m, NOW) for m in second])
        second_commits = commits[0] - before
        rows = await _stored(db, channel)
        return _by_position([*first, *answers], rows), [r[1:] for r in rows], second_commits
    finally:
        await db.close()


async def test_batched_inbound_stores_what_naive_stores(db_url: str) -> None:
    grouped, grouped_rows, grouped_commits = await _inbound_scenario(db_url, group=True)
    naive, naive_rows, naive_commits = await _inbound_scenario(db_url, group=False)
    assert grouped == naive
    assert grouped_rows == naive_rows
    # Deduplicated by provider id across batches and inside one, stored in the callers' order.
    assert grouped[10:] == [None, 10, None, 11, 12, 13, None, 14]
    assert [r[0] for r in grouped_rows] == [*(f"p{i}" for i in range(10)), "q1", None, "q2", None, "q3"]
    assert grouped_rows[10] == ("q1", "hi q1")  # the first of the two with that id
    assert (grouped_commits, naive_commits) == (1, 8)  # the batch did share one transaction


async def _outbox_scenario(url: str, group: bool) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    channel = "group" if group else "naive"
    db = Database(url, durable=False, group_commit=group)
    repo = OutboxRepo(db)

    def out(key: str | None, body: str) -> Outbound:
        return Outbound(Address(channel, "+16195550100"), body, kind=OutboundKind.REPLY, idempotency_key=key)

    try:
        await repo.enqueue(out("k1", "first k1"), NOW)
        answers = await _calls(group, [repo.enqueue(m, NOW) for m in [
            out("k1", "k1 again"), out("k2", "first k2"), out("k2", "k2 again"), out(None, "no key"),
            out("k3", "k3"), out(None, "no key either"),
        ]])
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(outbox.c.id, outbox.c.idempotency_key, outbox.c.body)
                                       .where(outbox.c.channel == channel).order_by(outbox.c.id))).all()
        position = {r.id: i for i, r in enumerate(rows)}
        return ([(position[m.id], m.body, new) for m, new in answers],
                [(r.idempotency_key, r.body) for r in rows])
    finally:
        await db.close()


async def test_batched_outbox_queues_what_naive_queues(db_url: str) -> None:
    grouped = await _outbox_scenario(db_url, group=True)
    naive = await _outbox_scenario(db_url, group=False)
    assert grouped == naive
    answers, rows = grouped
    assert answers == [(0, "first k1", False), (1, "first k2", True), (1, "first k2", False),
                       (2, "no key", True), (3, "k3", True), (4, "no key either", True)]
    assert rows == [("k1", "first k1"), ("k2", "first k2"), (None, "no key"), ("k3", "k3"), (None, "no key either")]


@pytest.mark.parametrize("group", [True, False], ids=["group", "naive"])
async def test_acknowledged_only_once_committed(db_url: str, group: bool) -> None:
    """Whoever hears back from `store` can rely on the row: another connection already sees it."""
    db = Database(db_url, durable=False, group_commit=group)
    other = Database(db_url, durable=False)
    repo = InboxRepo(db)
    seen: list[bool] = []

    async def store_then_look(i: int) -> None:
        row_id = await repo.store(_msg("sms", f"a{i}"), NOW)
        async with other.read() as conn:
            found = (await conn.execute(sa.select(inbound.c.id).where(inbound.c.id == row_id))).first()
        seen.append(found is not None)

    try:
        await asyncio.gather(*(store_then_look(i) for i in range(20)))
        assert seen == [True] * 20
    finally:
        await db.close()
        await other.close()


async def test_a_bad_message_fails_alone_and_the_rest_are_stored_once(db_url: str) -> None:
    db = Database(db_url, durable=False, group_commit=True)
    repo = InboxRepo(db)
    bad = _msg("sms", "bad")
    bad.text = None  # type: ignore[assignment]  # NOT NULL: the shared statement fails with it
    try:
        results = await asyncio.gather(*(repo.store(m, NOW) for m in [
            _msg("sms", "g1"), bad, _msg("sms", "g2"), _msg("sms", "g1")]), return_exceptions=True)
        assert isinstance(results[1], sa.exc.IntegrityError | sqlite3.IntegrityError)
        assert isinstance(results[0], int) and isinstance(results[2], int) and results[3] is None
        assert [r[1] for r in await _stored(db, "sms")] == ["g1", "g2"]
    finally:
        await db.close()


async def test_a_failed_batch_stores_nothing_and_acknowledges_nothing(db_url: str) -> None:
    db = Database(db_url, durable=False, group_commit=True)
    repo = InboxRepo(db)
    try:
        async with db.transaction() as conn:
            await conn.execute(sa.text("ALTER TABLE inbound RENAME TO inbound_away"))
        results = await asyncio.gather(*(repo.store(_msg("sms", f"f{i}"), NOW) for i in range(6)),
                                       return_exceptions=True)
        assert all(isinstance(r, sa.exc.DBAPIError | sqlite3.Error) for r in results), results
        async with db.transaction() as conn:
            await conn.execute(sa.text("ALTER TABLE inbound_away RENAME TO inbound"))
        assert await _stored(db, "sms") == []
        # The same messages, delivered again once the database is back, are stored (none was taken
        # for a duplicate of a row that never committed).
        again = await asyncio.gather(*(repo.store(_msg("sms", f"f{i}"), NOW) for i in range(6)))
        assert all(isinstance(r, int) for r in again)
    finally:
        await db.close()


async def test_coalesced_reads_answer_each_caller_for_its_own_key(db_url: str) -> None:
    """Concurrent conversation loads and consent checks share statements on PostgreSQL; each caller
    still gets the answer for its own (person, channel) or address, the same as asked alone."""
    db = Database(db_url, durable=False)
    people, conversations = PeopleRepo(db), ConversationRepo(db)
    try:
        ann = await people.add(Person(None, "Ann", frozenset({"customer"}), [Address("sms", "+16195550101")]), NOW)
        bob = await people.add(Person(None, "Bob", frozenset({"customer"}), [Address("sms", "+16195550102")]), NOW)
        assert ann.id is not None and bob.id is not None
        await conversations.save(ann.id, "sms", {"step": "ann on sms"}, NOW)
        await conversations.save(ann.id, "telegram", {"step": "ann on telegram"}, NOW)
        await conversations.save(bob.id, "telegram", {"step": "bob on telegram"}, NOW)
        await people.set_opt_out(Address("sms", "+16195550101"), True, "STOP", NOW)
        await people.mark_unreachable(Address("sms", "+16195550102"), "number disconnected", NOW)

        keys = [(ann.id, "sms"), (bob.id, "sms"), (ann.id, "telegram"), (bob.id, "telegram"), (999, "sms")]
        states = await asyncio.gather(*(conversations.load(p, c) for p, c in keys))
        assert [s.get("step") for s in states] == ["ann on sms", None, "ann on telegram", "bob on telegram", None]

        wanted = [Address("sms", "+16195550101"), Address("sms", "+16195550102"), Address("sms", "+16195550103"),
                  Address("telegram", "+16195550101")]
        together = await asyncio.gather(*(db.query_many(consent_many, a) for a in wanted))
        alone = [await db.query(lambda conn, a=a: consent_in(conn, a)) for a in wanted]
        assert together == alone == [(True, None), (False, "number disconnected"), (False, None), (False, None)]
    finally:
        await db.close()
