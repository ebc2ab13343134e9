"""Recorded modem transcripts through the real stack: a pty, pyserial-asyncio, the AT layer, the
channel, the inbox. Every file under tests/transcripts/sms says where its lines were published."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from smspdudecoder.easy import read_incoming_sms

from bot.model import Address, OutboundStatus
from channels.sms.diagnostics import diagnose
from channels.sms.simulator import SimulatedModem, StoredSms, Transcript
from storage.sms import SmsRepo
from tests.sms_support import Recorder, eventually, inbox_rows, sms_flow, transcript


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=3)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


async def test_huawei_rssi_inside_a_cmgr_answer_is_skipped_and_the_text_delivered(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        slot = transcript("huawei_rssi_inside_cmgr.txt").store_cmgr(sim, "AT+CMGR=0")
        await eventually(lambda: rec.texts, what="delivered")
        assert rec.texts == ["3"]
        assert rec.messages[0].address == Address("sms", "+79295916203")
        assert rec.messages[0].sender_type == "international"
        await eventually(lambda: slot not in sim.stored(), what="slot freed")
        assert await SmsRepo(flow.app.db).held(outcome=None) == []
    finally:
        await flow.close()


async def test_echo_left_on_and_an_empty_alpha_field(sim: SimulatedModem) -> None:
    t = transcript("echo_left_on_cmgr.txt")
    t.script(sim, "ATE0")  # this modem keeps echoing whatever ATE0 says
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        assert sim.echo
        t.store_cmgr(sim, "AT+CMGR=13")
        await eventually(lambda: rec.texts, what="delivered")
        assert rec.texts == ["vanila"] and rec.messages[0].address.id == "+972548123314"
        await eventually(lambda: not sim.stored(), what="slot freed")
    finally:
        await flow.close()


async def test_huawei_e1752_listing_with_echo(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        transcript("huawei_e1752_cmgl.txt").load_listing(sim)
        assert await channel.sweep() == 1
        await eventually(lambda: rec.texts, what="delivered")
        assert rec.texts == ["Test"] and rec.messages[0].address.id == "+33660334189"
        assert not sim.stored()
    finally:
        await flow.close()


PYTHON_GSMMODEM_EXPECTED = [
    ("+27748577604", "Hello raspberry pi"),
    ("+2784000153099999", "New and here to stay! Don't just recharge SUPACHARGE and get your recharged airtime+FREE "
                          "CellC to CellC mins & SMSs+Free data to use anytime. T&C apply. Cell C"),
    ("+27840001463", "Standard Bank: Your accounts are no longer FICA compliant. Please bring ID & proof of residence "
                     "to any branch to reactivate your accounts. Queries? 0860003422."),
]


async def test_python_gsmmodem_listing_with_an_invalid_line(sim: SimulatedModem) -> None:
    """python-gsmmodem's own expectations for its recorded listing; its 4th entry is part 1 of 2."""
    t = transcript("python_gsmmodem_listing_invalid_line.txt")
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec, reassembly_timeout=600)
    try:
        t.load_listing(sim)
        await channel.sweep()
        await eventually(lambda: len(rec.texts) == 3, what="three texts")
        assert sorted((m.address.id, m.text) for m in rec.messages) == sorted(PYTHON_GSMMODEM_EXPECTED)
        assert set(sim.stored()) == {3}  # part 1 of 2 waits for its other half; its slot is kept
        [part] = await SmsRepo(flow.app.db).all_parts()
        assert (part.sender, part.total, part.part, part.slot) == ("5433", 2, 1, 3)
        await flow.advance(700)  # the other half never comes: deliver what arrived, free the slot
        await eventually(lambda: len(rec.texts) == 4, what="partial delivery")
        assert rec.texts[3].startswith("Balans 15.00hrn, bonus 0.00hrn.\n***\nBezlimit na life:)")
        assert rec.texts[3].endswith(" […] ")
        await eventually(lambda: not sim.stored(), what="slot freed")
        [kept] = await SmsRepo(flow.app.db).held(outcome=None)  # its announced length was off: raw kept
        assert kept.outcome == "delivered" and "length 159 does not match" in kept.reason
    finally:
        await flow.close()


async def test_vendor_codes_blank_line_and_echo_inside_a_listing(sim: SimulatedModem) -> None:
    t = transcript("vendor_urcs_inside_listing.txt")
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        t.load_listing(sim)
        sim.echo = True  # and the modem echoes the command, as recorded
        assert await channel.sweep() == 3
        await eventually(lambda: len(rec.texts) == 3, what="three texts")
        assert sorted(rec.texts) == ["It is easy to read text messages via AT commands.", "Test2", "hello!!!"]
        assert {m.address.id for m in rec.messages} == {"+27821234567", "+85291234567", "Tele2"}
        assert next(m for m in rec.messages if m.address.id == "Tele2").sender_type == "alphanumeric"
        assert not sim.stored()
        assert await SmsRepo(flow.app.db).held(outcome=None) == []
    finally:
        await flow.close()


async def test_mms_notification_in_two_parts_is_held_raw_never_handed_over(sim: SimulatedModem) -> None:
    t = transcript("mms_push_two_parts.txt")
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        t.load_listing(sim)
        await channel.sweep()
        await eventually(lambda: rec.texts, what="the text")
        assert rec.texts == ["ABCD"] and rec.messages[0].address.id == "+01234556670"
        held = await SmsRepo(flow.app.db).held()
        assert sorted(h.slot for h in held) == [0, 1]
        assert all(h.reason == "WAP push (MMS notification or settings) to port 2948" for h in held)
        assert {h.sender for h in held} == {"MMS"} and all(h.storage == "ME" for h in held)
        assert {h.pdu for h in held} == {e.pdu_hex for e in _entries(t)[:2]}
        assert not sim.stored()
        assert [r.text for r in await inbox_rows(flow)] == ["ABCD"]  # nothing else reached the inbox
    finally:
        await flow.close()


def _entries(t: Transcript) -> list[StoredSms]:
    modem = SimulatedModem()
    modem.load_listing(t.answer("AT+CMGL=4"))
    return [modem.stored()[i] for i in sorted(modem.stored())]


async def test_chan_dongle_pdus_flash_held_alphanumeric_and_a_broken_length_delivered(sim: SimulatedModem) -> None:
    t = transcript("chan_dongle_huawei_cmgr.txt")
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        for command in ("AT+CMGR=0", "AT+CMGR=1", "AT+CMGR=2"):
            t.store_cmgr(sim, command)
        await eventually(lambda: len(rec.texts) == 2, what="two texts")
        await eventually(lambda: not sim.stored(), what="all slots freed")
        by_sender = {m.address.id: m for m in rec.messages}
        assert by_sender["YandexMoney"].text.startswith("Код подтверждения: 6927. Никому не сообщайте")
        assert by_sender["YandexMoney"].sender_type == "alphanumeric"
        assert by_sender["Nagios-BTN"].text == "TestSMS jeden Tag"  # "+CMGR: 0,,37M" did not stop it
        [flash] = await SmsRepo(flow.app.db).held()
        assert flash.reason == "class 0 (flash) message" and flash.sender == "40033"
        assert flash.text and flash.text.startswith("INFO SMS 04/03, 12:04: Costo chiamata")  # shown, not handled
        # smspdudecoder reads the same texts from the same bytes
        for m in rec.messages:
            stored = next(h for c, lines in t.blocks for h in lines if len(h) > 40 and m.address.id in
                          read_incoming_sms(h)["sender"])
            assert read_incoming_sms(stored)["content"] == m.text
    finally:
        await flow.close()


async def test_status_report_in_a_listing_is_a_delivery_report(sim: SimulatedModem) -> None:
    sim.cnmi_ds_options = "(0)"  # no reports of its own: only the recorded one
    flow, channel = await sms_flow(sim)
    try:
        sim._mr = 214
        await flow.app.send(Address("sms", "+31628870634"), "hi", key="r")
        await flow.settle()
        [row] = await flow.outbox_rows()
        assert row.status is OutboundStatus.SENT
        transcript("status_report_in_listing.txt").load_listing(sim)
        await channel.sweep()  # returns once the report is recorded and then its slot freed
        assert await _status(flow, OutboundStatus.DELIVERED) and not sim.stored()
        assert await SmsRepo(flow.app.db).held(outcome=None) == [] and await inbox_rows(flow) == []
    finally:
        await flow.close()


async def test_zte_report_announced_in_sr_memory(sim: SimulatedModem) -> None:
    sim.cnmi_ds_options = "(0)"
    t = transcript("zte_status_report_in_sr.txt")
    flow, _ = await sms_flow(sim)
    try:
        sim._mr = 253
        await flow.app.send(Address("sms", "+447917267410"), "hello", key="z")
        await flow.settle()
        lines = [ln for ln in t.answer("AT+CMGR=50") if ln != "OK"]
        sim.storage["SR"][50] = StoredSms(lines[1], 25, cmgr_header=lines[0])
        sim.urc('+CDSI: "SR",50')
        await eventually(lambda: _status(flow, OutboundStatus.DELIVERED), what="delivered by the SR report")
        await eventually(lambda: not sim.stored("SR"), what="report slot freed")
        assert sim.mems[0] == "ME"  # our storage selected again after reading SR
    finally:
        await flow.close()


async def _status(flow: object, status: OutboundStatus) -> bool:
    rows = await flow.outbox_rows()  # type: ignore[attr-defined]
    return bool(rows) and all(r.status is status for r in rows)


# -- modems that differ ---------------------------------------------------------------------------------


async def test_wavecom_cpin_without_ok_nested_cpms_and_two_memories(sim: SimulatedModem) -> None:
    transcript("wavecom_profile.txt").script(sim)
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        assert channel.ready.is_set()
        assert channel.storage == "SM" and channel.link.state.cpms_params == 2
        assert 'AT+CPMS="SM","SM"' in sim.commands
        sim.deliver("+15551234567", "on a Wavecom")
        await eventually(lambda: rec.texts == ["on a Wavecom"], what="received")
    finally:
        await flow.close()
    checks = {c.name: c for c in await diagnose(sim.port)}  # the bot holds the port while it runs
    assert checks["SIM"].ok and checks["SIM"].value == "READY"


async def test_cnmi_test_command_refused_falls_back_and_sweeps_faster(sim: SimulatedModem) -> None:
    transcript("nokia_no_cnmi_profile.txt").script(sim)
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        assert channel.cnmi == (2, 1, 0, 1, 0)
        note = channel.link.state.cnmi.note or ""
        assert "AT+CNMI=? answered ERROR" in note and "AT+CNMI=2,1,0,1,0" in note
        assert channel.link.sweep_interval == 30.0
        assert channel.storage == "SM"  # nothing offered: the modem's current storage
        health = await channel.health()
        assert health.up and health.detail["indications_note"] == note
    finally:
        await flow.close()
    checks = {c.name: c for c in await diagnose(sim.port)}
    assert "answered ERROR" in checks["indications"].value and "every 30 s" in checks["indications"].value


async def test_cnmi_bare_ok_and_no_setting_accepted_texts_still_arrive_by_the_sweep(sim: SimulatedModem) -> None:
    sim.script["AT+CNMI=?"] = "\r\nOK\r\n"
    for setting in ("2,1,0,1,0", "2,1,0,2,0", "2,1,0,0,0", "1,1,0,1,0", "1,1,0,2,0", "1,1,0,0,0"):
        sim.script[f"AT+CNMI={setting}"] = "\r\nERROR\r\n"
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec, sweep_interval=300)
    try:
        assert channel.cnmi is None
        assert "bare OK" in (channel.link.state.cnmi.note or "")
        sim.deliver("+15551234567", "no indication for me")  # stored, never announced
        await flow.advance(31)
        await eventually(lambda: rec.texts == ["no indication for me"], what="found by the 30 s sweep")
    finally:
        await flow.close()


async def test_pushed_texts_and_reports_without_storage(sim: SimulatedModem) -> None:
    """+CMT (a text pushed with no slot) and a garbage +CDS: delivered, and held raw as "pushed"."""
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        sim.urc("+CMT: ,24\r\n06917228195339040B917228214365F700003130805120618005D4F29C2E03")
        sim.urc("+CDS: 6\r\n0006D60B9113")
        await eventually(lambda: rec.texts == ["Test2"], what="pushed text")
        await eventually(lambda: SmsRepo(flow.app.db).held(), what="garbage report held")
        [held] = await SmsRepo(flow.app.db).held()
        assert held.slot is None and "status report" in held.reason
    finally:
        await flow.close()


def test_quectel_sms_done_arrives_as_qind() -> None:
    """Quectel modems announce the SMS service as `+QIND: SMS DONE`, not a bare `SMS DONE`."""
    from channels.sms.at import Urc
    from channels.sms.link import ModemConfig, ModemLink

    link = ModemLink(ModemConfig(), clock=None, opener=None, on_urc=lambda _u: None)  # type: ignore[arg-type]
    assert not link._sms_done.is_set()
    link.urc(Urc("+QIND", "SMS DONE"))
    assert link._sms_done.is_set()
