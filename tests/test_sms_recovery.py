"""Recovery without stalls, each with a bound: the real channel on a pty, the outbox on a fake clock
that never moves, so nothing here can be rescued by a timer running out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.model import Address, OutboundKind, OutboundStatus
from channels.sms.simulator import SimulatedModem
from tests.sms_support import Recorder, eventually, inbox_rows, sms_flow


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=5)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


async def test_after_a_reconnect_queued_replies_go_out_within_a_second(sim: SimulatedModem) -> None:
    """Was: a send that failed with "not connected" paused the SMS lane for 30 s, nothing lifted it."""
    flow, channel = await sms_flow(sim, ready_wait=0.3)
    ready_at: list[float] = []
    channel.add_ready_listener(lambda: ready_at.append(time.monotonic()))
    try:
        sim.unplug()
        await eventually(lambda: not channel.ready.is_set(), what="modem gone")
        for i in range(3):
            await flow.app.send(Address("sms", f"+1555000000{i}"), f"reply {i}", kind=OutboundKind.REPLY, key=f"r{i}")
        await eventually(lambda: _all(flow, "not connected"), what="sends failed while unplugged")
        for n in (1, 2):  # more replies to the first customer, queued behind the failed one
            await flow.app.send(Address("sms", "+15550000000"), f"more {n}", kind=OutboundKind.REPLY, key=f"m{n}")
        await asyncio.sleep(1.0)  # it stays unplugged a while; the fake clock does not move
        assert sim.sent == []
        sim.plug()
        await eventually(lambda: len(sim.sent) == 5, timeout=5, what="queued replies sent")
        sent_at = time.monotonic()
        assert ready_at and sent_at - ready_at[-1] <= 1.0, f"{sent_at - ready_at[-1]:.2f} s after ready"
        assert sorted(p.text for p in sim.sent) == ["more 1", "more 2", "reply 0", "reply 1", "reply 2"]
        first = [p.text for p in sim.sent if p.number == "+15550000000"]
        assert first == ["reply 0", "more 1", "more 2"]  # one customer's replies stay in order
        await eventually(lambda: _done(flow), what="rows marked sent")
    finally:
        await flow.close()


async def _done(flow: object) -> bool:
    rows = await flow.outbox_rows()  # type: ignore[attr-defined]
    return all(r.status in (OutboundStatus.SENT, OutboundStatus.DELIVERED) for r in rows)


async def _all(flow: object, reason: str) -> bool:
    rows = await flow.outbox_rows()  # type: ignore[attr-defined]
    return len(rows) >= 3 and all(r.status is OutboundStatus.QUEUED and reason in (r.reason or "") for r in rows)


async def test_a_modem_hanging_mid_send_resumes_both_directions_within_5s_of_answering(sim: SimulatedModem) -> None:
    """Was: both directions stopped until the 60 s CMGS ceiling, then 41 s more of backoff to be ready."""
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec, cmgs_timeout=30.0, send_silence=0.5, probe_interval=0.2)
    try:
        sim.faults.hang_after_prompt = 1
        sim.faults.hang_for = 2.0  # takes the PDU, then says nothing at all for 2 s
        started = time.monotonic()
        await flow.app.send(Address("sms", "+15550000001"), "first", kind=OutboundKind.REPLY, key="a")
        await flow.app.send(Address("sms", "+15550000002"), "second", kind=OutboundKind.REPLY, key="b")
        await eventually(lambda: sim.frozen_until > 0, what="modem hung")
        sim.deliver("+15557654321", "arrives during the hang")  # announced only once it wakes up
        answers_again = sim.frozen_until
        await eventually(lambda: rec.texts == ["arrives during the hang"], timeout=10, what="receiving resumed")
        received_after = time.monotonic() - answers_again
        await eventually(lambda: sorted(p.text for p in sim.sent) == ["first", "second"], timeout=10,
                         what="sending resumed")
        sent_after = time.monotonic() - answers_again
        assert received_after <= 5.0 and sent_after <= 5.0, (received_after, sent_after)
        assert time.monotonic() - started < 30.0 / 2  # detected by silence, far from the CMGS ceiling
        assert channel.connects == 1  # the port was never the problem: probed, not reopened
        assert [r.text for r in await inbox_rows(flow)] == ["arrives during the hang"]
    finally:
        await flow.close()


async def test_reading_is_not_starved_by_sending_a_stop_is_committed_before_the_next_send() -> None:
    """Was: a STOP waited 4-7 s behind replies. Now: read and committed before the next CMGS starts."""
    sim = SimulatedModem(seed=6, cmgs_delay=(0.3, 0.3))
    await sim.start()
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        for i in range(6):
            await flow.app.send(Address("sms", f"+1555111000{i}"), f"reply {i}", kind=OutboundKind.REPLY, key=f"s{i}")
        await eventually(lambda: sim.cmgs_count() >= 2, what="sending under way")
        at_commit: list[int] = []
        channel.on_handled.append(lambda _m: at_commit.append(sim.cmgs_count()))
        before = sim.cmgs_count()  # the CMGS in flight is counted: it cannot be interrupted
        sim.deliver("+15559998888", "STOP")
        await eventually(lambda: at_commit, what="STOP committed")
        assert at_commit == [before], f"{at_commit[0] - before} send(s) started before the STOP was committed"
        assert [r.text for r in await inbox_rows(flow)] == ["STOP"]
        replies = {f"reply {i}" for i in range(6)}
        await eventually(lambda: replies <= {p.text for p in sim.sent}, timeout=10, what="the replies still all go")
    finally:
        await flow.close()
        await sim.stop()


async def test_health_registered_signal_contact_and_down_when_unplugged(sim: SimulatedModem) -> None:
    flow, channel = await sms_flow(sim)
    try:
        health = await channel.health()
        assert health.up
        d = health.detail
        assert (d["registered"], d["registration"], d["signal_dbm"], d["signal_bars"]) == (True, "home", -71, 4)
        assert d["port"] == sim.port and d["last_contact"] and d["connected"]
        sim.unplug()
        await eventually(lambda: not channel.ready.is_set(), what="port gone")
        health = await channel.health()
        assert not health.up and not health.detail["connected"]
        assert "port closed" in (health.detail["last_error"] or "")
        sim.plug()
        await eventually(lambda: channel.ready.is_set(), what="back")
        assert (await channel.health()).up
    finally:
        await flow.close()


async def test_health_is_down_when_the_network_denies_registration(sim: SimulatedModem) -> None:
    sim.script["AT+CREG?"] = "\r\n+CREG: 0,3\r\n\r\nOK\r\n"
    sim.script["AT+CEREG?"] = "\r\n+CEREG: 0,3\r\n\r\nOK\r\n"
    flow, channel = await sms_flow(sim)
    try:
        health = await channel.health()
        assert not health.up and health.detail["registration"] == "denied" and health.detail["connected"]
    finally:
        await flow.close()


async def test_the_outbox_resumes_any_channel_that_signals_it_is_ready_again() -> None:
    """The outbox side alone, with a fake channel: no provider names, just the ready-again signal."""
    from bot.testing import FakeChannel, Flow
    from channels.base import RetryableSendError

    class Comeback(FakeChannel):
        def __init__(self) -> None:
            super().__init__("pager")
            self.listeners: list[object] = []

        def add_ready_listener(self, callback: object) -> None:
            self.listeners.append(callback)

    channel = Comeback()
    flow = await Flow.create(channels={})
    flow.app.add_channel(channel)
    flow.app.outbox.register(channel)
    flow.app.outbox.senders["pager"].start()
    try:
        channel.fail_next(RetryableSendError("gone", retry_after=600.0))
        await flow.app.send(Address("pager", "7"), "one", kind=OutboundKind.REPLY, key="p1")
        await flow.app.send(Address("pager", "7"), "two", kind=OutboundKind.REPLY, key="p2")  # queued behind it
        await flow.settle()
        assert channel.bodies() == [] and len(channel.listeners) == 1
        channel.listeners[0]()  # type: ignore[operator]
        await eventually(lambda: channel.bodies() == ["one", "two"], what="resumed without the clock moving")
    finally:
        await flow.close()
