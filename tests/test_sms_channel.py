"""The SMS channel end to end: real pyserial-asyncio on a pty against the simulated SIM7600."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.model import Address, Outbound, OutboundStatus
from channels.base import PermanentSendError
from channels.sms import pdu
from channels.sms.simulator import SimulatedModem
from storage.sms import SmsRepo
from tests.sms_support import Recorder, eventually, sms_flow

PHONE = "+15551234567"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=1)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


async def test_receive_single_and_slot_deleted_after_commit(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        sim.deliver(PHONE, "Hello store [x] €5")
        await eventually(lambda: rec.texts, what="handler")
        assert rec.texts == ["Hello store [x] €5"]
        assert rec.messages[0].address == Address("sms", PHONE)
        await eventually(lambda: not sim.stored(), what="slot deleted")
    finally:
        await flow.close()


@pytest.mark.parametrize(
    ("sender", "text", "wide"),
    [
        (PHONE, "long text " * 60, False),
        (PHONE, "Привет, как дела? " * 20, True),
        ("+447700900123", "emoji 😀👍🏽🇺🇸 and more " * 15, False),
        # an alphanumeric sender's text is stored but reaches no handler: tests/test_trust_senders.py
    ],
)
async def test_receive_multipart_ucs2_emoji_alphanumeric(
    sim: SimulatedModem, sender: str, text: str, wide: bool
) -> None:
    rec = Recorder()
    flow, _channel = await sms_flow(sim, rec)
    try:
        sim.deliver(sender, text, wide_ref=wide)
        await eventually(lambda: rec.texts, what="handler")
        assert rec.texts == [text]
        assert rec.messages[0].address.id == sender
        await eventually(lambda: not sim.stored(), what="slots deleted")
        await eventually(lambda: _parts(flow, 0), what="parts forgotten")
    finally:
        await flow.close()


async def test_five_thousand_characters_with_emoji_and_controls_arrive_whole(sim: SimulatedModem) -> None:
    text = ("ok 😀\x01\t\x07 ñ " * 600)[:5000]  # about 80 parts: more than the modem's 50 slots
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        sim.deliver(PHONE, text)
        await eventually(lambda: rec.texts, timeout=20, what="handler")
        assert rec.texts == [text]
        assert pdu.count_parts(text) > sim.capacity
    finally:
        await flow.close()


async def test_send_long_emoji_message_in_parts_then_delivered(sim: SimulatedModem) -> None:
    flow, _ = await sms_flow(sim)
    try:
        body = "Your points: 120 🎉 " * 20
        expected = pdu.count_parts(body)
        assert expected > 1
        await flow.app.send(Address("sms", PHONE), body, key="long-1")
        await flow.settle()
        assert len(sim.sent) == expected
        for part in sim.sent:
            assert part.number == PHONE and part.parts == expected
            units = len(part.text.encode("utf-16-be")) // 2
            assert units <= pdu.MULTI_UCS2
            assert pdu.decode_submit(part.pdu_hex).text == part.text
        assert "".join(p.text for p in sorted(sim.sent, key=lambda p: p.part)) == body
        [row] = await flow.outbox_rows()
        await eventually(lambda: _status(flow, row.id, OutboundStatus.DELIVERED), what="delivery reports")
    finally:
        await flow.close()


async def test_failed_delivery_report_carries_the_reason(sim: SimulatedModem) -> None:
    sim.fail_delivery(PHONE, 0x46)
    flow, _ = await sms_flow(sim)
    try:
        await flow.app.send(Address("sms", PHONE), "hi", key="k")
        await flow.settle()
        [row] = await flow.outbox_rows()
        await eventually(lambda: _status(flow, row.id, OutboundStatus.FAILED), what="failure report")
        [row] = await flow.outbox_rows()
        assert row.reason == "validity period expired"
    finally:
        await flow.close()


async def test_reports_stored_in_sr_memory_are_read(sim: SimulatedModem) -> None:
    sim.cnmi_ds_options = "(0,2)"
    flow, channel = await sms_flow(sim)
    try:
        assert channel.cnmi and channel.cnmi[3] == 2
        await flow.app.send(Address("sms", PHONE), "hi", key="k")
        await flow.settle()
        [row] = await flow.outbox_rows()
        await eventually(lambda: _status(flow, row.id, OutboundStatus.DELIVERED), what="+CDSI report")
        await eventually(lambda: not sim.stored("SR"), what="report deleted")
    finally:
        await flow.close()


async def test_too_long_is_refused_with_a_reason_never_truncated(sim: SimulatedModem) -> None:
    flow, channel = await sms_flow(sim)
    try:
        await flow.app.send(Address("sms", PHONE), "x" * 1600, key="k")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.FAILED
        assert "more than the limit of 10" in (row.reason or "")
        with pytest.raises(PermanentSendError, match="no phone can show"):  # the core cannot even store one
            await channel.send(Outbound(Address("sms", PHONE), "broken \ud83d"))
        assert sim.sent == []
    finally:
        await flow.close()


async def test_cms_errors_retryable_then_permanent(sim: SimulatedModem) -> None:
    flow, _ = await sms_flow(sim)
    try:
        sim.fail_next(500)
        await flow.app.send(Address("sms", PHONE), "first", key="a")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.QUEUED and "500" in (row.reason or "")
        await flow.advance(10)
        assert [p.text for p in sim.sent] == ["first"]
        sim.fail_next(1)
        await flow.app.send(Address("sms", "+15550001111"), "second", key="b")
        await flow.settle()
        rows = await flow.outbox_rows()
        assert rows[1].status is OutboundStatus.FAILED and "unassigned" in (rows[1].reason or "")
    finally:
        await flow.close()


async def test_hang_times_out_recovers_on_the_open_port_and_the_queued_message_goes_out_once(
    sim: SimulatedModem,
) -> None:
    flow, channel = await sms_flow(sim)
    try:
        sim.hang_next("AT+CMGS")
        await flow.app.send(Address("sms", PHONE), "after the hang", key="h")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.QUEUED
        await eventually(lambda: channel.ready.is_set(), what="ready again")
        assert channel.connects == 1  # the port was fine: probed and re-initialised, not reopened
        await flow.advance(10)
        await flow.settle()
        assert [p.text for p in sim.sent] == ["after the hang"]
        [row] = await flow.outbox_rows()
        assert row.status in (OutboundStatus.SENT, OutboundStatus.DELIVERED)
    finally:
        await flow.close()


async def test_failure_mid_multipart_resends_only_missing_parts(sim: SimulatedModem) -> None:
    flow, _ = await sms_flow(sim)
    try:
        body = "p" * 400  # three parts
        sim.faults.cms.append((500, "AT+CMGS"))
        sim.faults.cms.clear()
        # let part 1 through, fail part 2
        original = sim._cms_fault
        calls = {"n": 0}

        def fault(upper: str) -> int | None:
            if upper.startswith("AT+CMGS"):
                calls["n"] += 1
                if calls["n"] == 2:
                    return 500
            return original(upper)

        sim._cms_fault = fault  # type: ignore[method-assign]
        await flow.app.send(Address("sms", PHONE), body, key="m")
        await flow.settle()
        await flow.advance(10)
        assert sorted(p.part for p in sim.sent) == [1, 2, 3]
        assert len({p.reference for p in sim.sent}) == 1
    finally:
        await flow.close()


async def test_port_closing_and_reboot_reconnect_and_keep_receiving(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        await sim.close_port()
        await eventually(lambda: channel.connects >= 2 and channel.ready.is_set(), what="reconnect after close")
        sim.deliver(PHONE, "after close")
        await eventually(lambda: rec.texts == ["after close"], what="receive after close")
        await sim.reboot()
        await eventually(lambda: channel.connects >= 3 and channel.ready.is_set(), what="reconnect after reboot")
        assert sim.cnmi[1] == 1  # indications switched on again after the reset lost them
        sim.deliver(PHONE, "after reboot")
        await eventually(lambda: rec.texts == ["after close", "after reboot"], what="receive after reboot")
    finally:
        await flow.close()


async def test_urc_in_the_middle_of_a_response(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        sim.deliver(PHONE, "old one")
        await eventually(lambda: rec.texts, what="first")
        sim.deliver(PHONE, "slipped in", mid_response=True)
        assert channel.at is not None
        lines = await channel.at.command("AT+CPMS?", expect="+CPMS")
        assert lines and lines[0].startswith("+CPMS:")  # the URC did not end up in the answer
        await eventually(lambda: rec.texts == ["old one", "slipped in"], what="mid-response +CMTI")
    finally:
        await flow.close()


async def test_malformed_pdu_held_raw_before_its_slot_is_freed_and_nothing_stops(
    sim: SimulatedModem, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        sim.deliver_pdu("07917283010010F5040BC872388809")
        sim.deliver(PHONE, "still fine")
        await eventually(lambda: rec.texts == ["still fine"], what="next message")
        await eventually(lambda: not sim.stored(), what="malformed slot freed")
        [held] = await SmsRepo(flow.app.db).held()
        assert held.pdu == "07917283010010F5040BC872388809" and held.slot == 0 and held.storage == "ME"
        assert "unreadable SMS-DELIVER" in held.reason
        assert "SMS held raw" in caplog.text
    finally:
        await flow.close()


async def test_restart_in_the_middle_of_a_multipart_set(sim: SimulatedModem, db_url: str) -> None:
    text = "a long story " * 40
    hexes = sim.pdus_for(PHONE, text, reference=77)
    assert len(hexes) == 4
    rec1 = Recorder()
    flow, _ = await sms_flow(sim, rec1, database_url=db_url)
    try:
        for h in hexes[:2]:
            sim.deliver_pdu(h)
        await eventually(lambda: _parts(flow, 2), what="two parts stored")
        assert len(sim.stored()) == 2  # slots kept until the whole message is committed
    finally:
        await flow.close()
    for h in hexes[2:3]:
        sim.deliver_pdu(h)  # arrives while the bot is down
    rec2 = Recorder()
    flow, _ = await sms_flow(sim, rec2, database_url=db_url)
    try:
        await eventually(lambda: _parts(flow, 3), what="sweep stored the third part")
        assert rec2.texts == []
        sim.deliver_pdu(hexes[3])
        await eventually(lambda: rec2.texts, what="complete message")
        assert rec2.texts == [text]
        await eventually(lambda: not sim.stored(), what="slots deleted")
        await eventually(lambda: _parts(flow, 0), what="parts forgotten")
    finally:
        await flow.close()
    assert rec1.texts == []


async def test_crash_between_commit_and_slot_delete_never_delivers_twice(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        sim.fail_next(321, "AT+CMGD", times=2)  # deleting fails: slots and parts stay
        sim.deliver(PHONE, "twice? " * 40)
        await eventually(lambda: rec.texts, what="delivered once")
        await eventually(lambda: not sim.faults.cms, what="deletes attempted")
        await channel.sweep()  # the safety net finds the slots again
        await flow.settle()
        assert len(rec.texts) == 1
        assert not sim.stored()
        assert await SmsRepo(flow.app.db).all_parts() == []
    finally:
        await flow.close()


async def test_incomplete_set_delivered_after_timeout(sim: SimulatedModem) -> None:
    text = "part of a story " * 30
    hexes = sim.pdus_for(PHONE, text, reference=5)
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec, reassembly_timeout=600)
    try:
        sim.deliver_pdu(hexes[0])
        sim.deliver_pdu(hexes[2])
        await eventually(lambda: _parts(flow, 2), what="parts stored")
        await flow.advance(300)
        assert rec.texts == []
        await flow.advance(400)
        await eventually(lambda: rec.texts, what="partial delivery")
        assert " […] " in rec.texts[0]
        assert rec.texts[0].startswith(pdu.decode_deliver(hexes[0]).text)
        await eventually(lambda: not sim.stored(), what="slots deleted")
    finally:
        await flow.close()


async def test_locked_sim_is_unlocked_with_the_pin(sim: SimulatedModem) -> None:
    sim.lock_sim("4321")
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec, pin="4321")
    try:
        assert channel.ready.is_set() and sim.unlocked
        sim.deliver(PHONE, "after unlock")
        await eventually(lambda: rec.texts == ["after unlock"], what="receive after PIN")
        assert 'AT+CPIN="4321"' in sim.commands
    finally:
        await flow.close()


async def test_locked_sim_without_a_pin_keeps_trying_and_sends_wait(sim: SimulatedModem) -> None:
    sim.lock_sim("4321")
    flow, channel = await sms_flow(sim, ready_wait=0.2)
    try:
        assert not channel.ready.is_set()
        await flow.app.send(Address("sms", PHONE), "queued", key="q")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.QUEUED and "not connected" in (row.reason or "")
    finally:
        await flow.close()


async def test_simulate_inbound_goes_through_the_stack(sim: SimulatedModem) -> None:
    rec = Recorder(answer=lambda t: f"got {t}")
    flow, channel = await sms_flow(sim, rec)
    try:
        await channel.simulate_inbound(PHONE, "hi there")
        await eventually(lambda: rec.texts == ["hi there"], what="inbound")
        await flow.settle()
        assert [p.text for p in sim.sent] == ["got hi there"]
    finally:
        await flow.close()


async def _status(flow: object, outbox_id: int | None, status: OutboundStatus) -> bool:
    rows = await flow.outbox_rows()  # type: ignore[attr-defined]
    return any(r.id == outbox_id and r.status is status for r in rows)


async def _parts(flow: object, n: int) -> bool:
    return len(await SmsRepo(flow.app.db).all_parts()) == n  # type: ignore[attr-defined]
