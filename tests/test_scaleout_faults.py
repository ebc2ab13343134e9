"""A gateway and workers on one PostgreSQL database, started as a user starts them, with a fake
SIM7600 on a pty as the store's modem and a backlog of 500 texts from 500 phones; then the faults:
`kill -9` of a worker mid-batch and of the gateway mid-send, connection resets between a worker and
the database, the database unreachable from the gateway. Every text is stored once and handled,
every reply reaches its phone once, or more often only when marked possibly repeated, and work is
taken over only once its owner's lease has run out."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import testing_pg
from channels.sms.policy import SmsPolicy
from channels.sms.simulator import SimulatedModem
from storage.inbox import inbound
from storage.migrate import known_heads
from storage.outbox import outbox
from tests.pg_proxy import PgProxy
from tests.scaleout_support import LEASE, REPLY, ROOT, Cluster, running

pytestmark = pytest.mark.skipif(not testing_pg.admin_url(), reason="needs HUDDLE_TEST_DATABASE_URL (PostgreSQL)")

BACKLOG = 500


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=13)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


@pytest.fixture
async def cluster(sim: SimulatedModem, tmp_path: Path) -> AsyncIterator[Cluster]:
    url = await testing_pg.fresh_postgres()
    c = Cluster(url, tmp_path, sim)
    try:
        yield c
    finally:
        await c.close()
        await testing_pg.drop_postgres(url)


async def _claimed_unhandled(c: Cluster, owner: str) -> set[int]:
    return {r.id for r in await c.rows(inbound, inbound.c.claimed_by == owner, inbound.c.status == "received")}


async def _sending(c: Cluster, owner: str) -> set[int]:
    return {r.id for r in await c.rows(outbox, outbox.c.claimed_by == owner, outbox.c.status == "sending")}


async def _until(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_gateway_and_worker_started_at_once_on_an_empty_database_migrate_it_once(
        sim: SimulatedModem, tmp_path: Path) -> None:
    name = f"huddle_t_{uuid.uuid4().hex[:10]}"
    await testing_pg._admin(f'CREATE DATABASE "{name}"')  # empty: no tables at all
    url = testing_pg._dsn(testing_pg.admin_url() or "", name)
    c = Cluster(url, tmp_path, sim)
    try:
        gateway, worker = await asyncio.gather(c.start("gateway", "gateway", wait=False),
                                               c.start("worker", "worker", wait=False))
        await asyncio.gather(running(gateway), running(worker))
        async with c.db.read() as conn:
            heads = sorted((await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars())
        assert heads == known_heads()
        c.deliver(1)
        await c.all_done(1, timeout=30)
        assert [t[2] for t in c.texts] == [REPLY]
        status = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "status", cwd=ROOT, env=c.env(), stdout=asyncio.subprocess.PIPE)
        out = (await status.communicate())[0].decode()
        ids = await c.process_ids()
        for proc in (gateway, worker):  # each live process: role, id, host, heartbeat, holdings
            line = next(x for x in out.splitlines() if ids[f"{proc.role}:{proc.child.pid}"] in x)
            assert line.split()[0] == proc.role and "heartbeat" in line and "holds 0 inbound, 0 sending" in line
        assert "oldest unhandled inbound: none; oldest unsent outbound: none" in out
    finally:
        await c.close()
        await testing_pg.drop_postgres(url)


async def test_kill_9_of_a_worker_mid_batch_its_claims_wait_for_its_lease_then_another_finishes(
        cluster: Cluster) -> None:
    w1 = await cluster.start("worker", "worker-1")  # the workers first, the gateway last: any order
    w2 = await cluster.start("worker", "worker-2")
    await cluster.start("gateway", "gateway")
    ids = await cluster.process_ids()
    w1_id = ids[f"worker:{w1.child.pid}"]
    cluster.deliver(BACKLOG)
    await _until(lambda: _handled_at_least(cluster, 100))
    held: set[int] = set()

    async def holds() -> bool:
        held.update(await _claimed_unhandled(cluster, w1_id))
        return bool(held)

    await _until(holds, timeout=10)
    await w1.kill_9()
    left = await _claimed_unhandled(cluster, w1_id)
    await asyncio.sleep(LEASE * 0.5)
    # Within the dead worker's lease nobody takes what it held...
    assert await _claimed_unhandled(cluster, w1_id) == left
    await cluster.all_done(BACKLOG, timeout=180)
    # ...and once it is over, the other worker finished it.
    assert await _claimed_unhandled(cluster, w1_id) == set()
    rows = {r.id: r for r in await cluster.rows(inbound)}
    assert all(rows[i].claimed_by == ids[f"worker:{w2.child.pid}"] for i in left)
    last_beat = await cluster.last_heartbeat(w1_id)
    assert all(rows[i].claimed_at >= last_beat + timedelta(seconds=LEASE) for i in left)  # only after expiry
    figures = await cluster.check_once(BACKLOG)
    assert figures["twice"] == 0  # a worker does not send: killing one repeats no text


async def _handled_at_least(c: Cluster, n: int) -> bool:
    return (await c.counts())[1] >= n


async def _sent_at_least(c: Cluster, n: int) -> bool:
    return (await c.counts())[2] >= n


async def test_kill_9_of_the_gateway_mid_send_the_new_gateway_takes_its_sends_after_its_lease(
        cluster: Cluster, sim: SimulatedModem) -> None:
    sim.cmgs_delay = (0.01, 0.03)
    gateway = await cluster.start("gateway", "gateway-1")
    await cluster.start("worker", "worker")
    gw_id = (await cluster.process_ids())[f"gateway:{gateway.child.pid}"]
    cluster.deliver(BACKLOG)
    await _until(lambda: _sent_at_least(cluster, 100))
    in_flight: set[int] = set()

    async def sending() -> bool:
        in_flight.update(await _sending(cluster, gw_id))
        return bool(in_flight)

    await _until(sending, timeout=10)
    await gateway.kill_9()
    killed = time.monotonic()
    left = await _sending(cluster, gw_id)
    assert left, "the gateway was killed with sends in flight"
    print(f"in flight at the kill: {len(left)}")
    again = await cluster.start("gateway", "gateway-2", wait=False)  # the store PC restarts it at once
    await asyncio.sleep(max(0.0, killed + LEASE * 0.5 - time.monotonic()))
    assert await _sending(cluster, gw_id) == left  # still within the dead gateway's lease: untouched
    await running(again)
    await cluster.all_done(BACKLOG, timeout=180)
    rows = {r.id: r for r in await cluster.rows(outbox)}
    # Taken over: of its claimed batch only what it had handed to the modem may have gone out, and
    # only that is marked possibly repeated — at most as many as the channel sends at once.
    flagged = {i for i in left if rows[i].resent}
    print(f"claimed by the dead gateway: {len(left)}, flagged possibly repeated: {len(flagged)}")
    assert len(flagged) <= SmsPolicy.pacing.concurrency
    last_beat = await cluster.last_heartbeat(gw_id)
    assert all(rows[i].claimed_at >= last_beat + timedelta(seconds=LEASE) for i in left)  # only after expiry
    figures = await cluster.check_once(BACKLOG)  # a text received twice is among the flagged
    assert figures["twice"] <= len(flagged) and figures["resent"] == len(flagged)


async def test_connection_resets_between_a_worker_and_the_database_lose_and_double_nothing(
        cluster: Cluster) -> None:
    proxy = PgProxy()
    await proxy.start()
    try:
        database = cluster.url.rsplit("/", 1)[1]
        await cluster.start("worker", "worker", url=proxy.url(database))
        await cluster.start("gateway", "gateway")
        cluster.deliver(BACKLOG)
        for target in (60, 200, 350):
            await _until(lambda t=target: _handled_at_least(cluster, t))
            assert proxy.reset() > 0
        await cluster.all_done(BACKLOG, timeout=180)
        figures = await cluster.check_once(BACKLOG)
        assert figures["twice"] == 0
        assert proxy.connections > 1  # it did reconnect
    finally:
        await proxy.stop()


async def test_database_unreachable_from_the_gateway_texts_stay_in_the_modem_until_it_is_back(
        cluster: Cluster, sim: SimulatedModem) -> None:
    proxy = PgProxy()
    await proxy.start()
    try:
        database = cluster.url.rsplit("/", 1)[1]
        await cluster.start("worker", "worker")
        await cluster.start("gateway", "gateway", url=proxy.url(database))
        cluster.deliver(10)
        await cluster.all_done(10, timeout=60)
        proxy.block()
        cluster.deliver(30, start=10)
        await asyncio.sleep(3)
        assert len(sim.stored()) == 30  # read, not stored: never deleted
        assert (await cluster.counts())[0] == 10
        proxy.unblock()
        await cluster.all_done(40, timeout=90)
        assert sim.stored() == {}
        await cluster.check_once(40)
    finally:
        await proxy.stop()
