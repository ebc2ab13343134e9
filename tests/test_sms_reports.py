"""Status reports on the real modem stack (simulator pty, pyserial-asyncio, AT layer) matched with no timer.

The modem answers each part with `+CMGS: <mr>` and its status report (`+CDS`) can follow at once,
before the send has returned to the outbox. These tests hold the send's return back until the
report is on its receipt (the clock is fake and never moved), so a report matched only after the
send returned, or after any grace period, fails them. Every test runs on SQLite and PostgreSQL.

World material: the status report recorded in python-gsmmodem's test suite (reference 214 to
+31628870634, delivered; also in tests/test_sms_pdu.py), pushed inline between `+CMGS: 214` and
its OK, as a SIMCom with `AT+CNMI=2,1,0,1,0` may do while the link is busy.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.model import Address, Outbound, OutboundStatus
from channels.base import SendResult
from channels.sms import pdu
from channels.sms.modem import ModemChannel
from channels.sms.simulator import SimulatedModem
from storage.outbox import OutboxRepo
from tests.flows import Flow
from tests.sms_support import eventually, sms_flow

PHONE = "+15551234567"
GSMMODEM_REPORT = "0006D60B911326880736F4111011719551401110117195714000"
"""python-gsmmodem's SMS-STATUS-REPORT: mr 214, recipient +31628870634, status 0 (delivered)."""


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=3)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


def hold_return_until(channel: ModemChannel, ready: Callable[[Outbound], Awaitable[bool]]) -> list[bool]:
    """Make the outbox's `channel.send` return only once `ready(outbound)` (real pty I/O meanwhile).

    Returns a list that records, per send, that the condition was met before the send returned.
    """
    send = channel.send
    met: list[bool] = []

    async def held(outbound: Outbound) -> SendResult:
        result = await send(outbound)
        await eventually(lambda: ready(outbound), what="report matched before the send returned")
        met.append(True)
        return result

    channel.send = held  # type: ignore[method-assign]
    return met


async def parts_of(flow: Flow, msg_id: int | None) -> list[tuple[str, OutboundStatus, str | None]]:
    assert msg_id is not None
    return await OutboxRepo(flow.app.db).receipts_of(msg_id)


async def all_parts(flow: Flow, outbound: Outbound, status: OutboundStatus, count: int = 1) -> bool:
    parts = await parts_of(flow, outbound.id)
    return len(parts) == count and all(s is status for _pid, s, _r in parts)


async def test_a_report_that_overtakes_the_send_is_matched_at_once(sim: SimulatedModem, db_url: str) -> None:
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        start = flow.clock.now()
        met = hold_return_until(channel, lambda o: all_parts(flow, o, OutboundStatus.DELIVERED))
        await flow.app.send(Address("sms", PHONE), "Your order is ready", key="ready")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert met == [True]
        assert row.status is OutboundStatus.DELIVERED
        [(mr, _status, _reason)] = await parts_of(flow, row.id)
        assert mr == str(sim.sent[0].mr)
        assert await OutboxRepo(flow.app.db).kept() == []
        assert flow.clock.now() == start  # no timer was needed: the fake clock never moved
    finally:
        await flow.close()


async def test_every_part_of_a_long_text_has_its_report_matched(sim: SimulatedModem, db_url: str) -> None:
    body = "Your points: 120 🎉 thanks for shopping with us! " * 4
    count = pdu.count_parts(body)
    assert count >= 3
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        start = flow.clock.now()
        met = hold_return_until(channel, lambda o: all_parts(flow, o, OutboundStatus.DELIVERED, count))
        await flow.app.send(Address("sms", PHONE), body, key="long")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert met == [True] and row.status is OutboundStatus.DELIVERED
        parts = await parts_of(flow, row.id)
        assert [pid for pid, _s, _r in parts] == [str(p.mr) for p in sim.sent]  # one receipt per part, in order
        assert {s for _p, s, _r in parts} == {OutboundStatus.DELIVERED}
        assert await OutboxRepo(flow.app.db).kept() == []
        assert flow.clock.now() == start
    finally:
        await flow.close()


async def test_a_failed_part_fails_the_long_text_with_the_networks_reason(sim: SimulatedModem, db_url: str) -> None:
    sim.fail_delivery(PHONE, 0x46)
    body = "Reminder: your order is waiting at the counter. " * 4
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        count = pdu.count_parts(body)
        hold_return_until(channel, lambda o: all_parts(flow, o, OutboundStatus.FAILED, count))
        await flow.app.send(Address("sms", PHONE), body, key="fails")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.FAILED and row.reason == "validity period expired"
    finally:
        await flow.close()


async def test_a_recorded_report_inside_the_cmgs_answer_is_matched(sim: SimulatedModem, db_url: str) -> None:
    """The report comes before the send has even read its own reference: kept, then matched at acceptance."""
    sim.report_delay = 3600.0  # the simulator's own report never comes: only the recorded one
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        start = flow.clock.now()
        sim._mr = 214
        sim.faults.mid_response.append(f"+CDS: 25\r\n{GSMMODEM_REPORT}")
        met = hold_return_until(channel, lambda o: all_parts(flow, o, OutboundStatus.DELIVERED))
        await flow.app.send(Address("sms", "+31628870634"), "Your order is ready", key="gsmmodem")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert met == [True] and row.status is OutboundStatus.DELIVERED
        assert await parts_of(flow, row.id) == [("214", OutboundStatus.DELIVERED, None)]
        assert await OutboxRepo(flow.app.db).kept() == []
        assert flow.clock.now() == start
    finally:
        await flow.close()


async def test_a_slow_receipt_write_still_gets_its_report(sim: SimulatedModem, db_url: str) -> None:
    """The report is read while the receipt is not written yet (a busy database): kept, then matched."""
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        repo = OutboxRepo(flow.app.db)
        record = flow.app.outbox.accepted

        async def slow(outbound: Outbound, provider_id: str) -> None:
            await eventually(lambda: _kept(repo), what="the report kept first")
            await record(outbound, provider_id)

        channel.sender.accept_listeners[:] = [slow]
        met = hold_return_until(channel, lambda o: all_parts(flow, o, OutboundStatus.DELIVERED))
        await flow.app.send(Address("sms", PHONE), "hi", key="slow")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert met == [True] and row.status is OutboundStatus.DELIVERED
        assert await repo.kept() == []
    finally:
        await flow.close()


async def test_a_report_for_an_unknown_reference_is_logged_and_kept(
    sim: SimulatedModem, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    flow, _channel = await sms_flow(sim, database_url=db_url)
    try:
        repo = OutboxRepo(flow.app.db)
        caplog.set_level(logging.INFO)
        sim.urc(f"+CDS: 25\r\n{GSMMODEM_REPORT}")  # mr 214: nothing was sent
        await eventually(lambda: "delivery report for no known message kept" in caplog.text, what="logged")
        [kept] = await repo.kept()
        assert (kept.channel, kept.provider_id, kept.address, kept.delivered) == ("sms", "214", "+31628870634", True)
        assert kept.reported_at is not None
        assert "provider_id=214" in caplog.text
        # a later message that gets the same reference is not taken for the one the report was about
        await flow.clock.advance(60)
        sim._mr = 214
        sim.report_delay = 3600.0
        await flow.app.send(Address("sms", "+31628870634"), "hello", key="later")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.SENT
        assert len(await repo.kept()) == 1
    finally:
        await flow.close()


async def test_an_accept_listener_that_fails_never_makes_a_resend(sim: SimulatedModem, db_url: str) -> None:
    flow, channel = await sms_flow(sim, database_url=db_url)
    try:
        async def broken(_outbound: Outbound, _provider_id: str) -> None:
            raise RuntimeError("listener bug")

        channel.add_accept_listener(broken)
        await flow.app.send(Address("sms", PHONE), "once only", key="once")
        await flow.settle()
        assert [p.text for p in sim.sent] == ["once only"]
        [row] = await flow.outbox_rows()
        await eventually(lambda: _row_is(flow, OutboundStatus.DELIVERED), what="delivered")
        assert row.attempts == 1
    finally:
        await flow.close()


async def _kept(repo: OutboxRepo) -> bool:
    return bool(await repo.kept())


async def _row_is(flow: Any, status: OutboundStatus) -> bool:
    rows = await flow.outbox_rows()
    return bool(rows) and rows[0].status is status
