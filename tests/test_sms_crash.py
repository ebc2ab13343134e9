"""Nothing received is ever lost: a kill -9 between read and commit, a kill -9 between commit and
delete, a port that vanishes in the middle of an answer, garbage — each text ends delivered once
or held raw, counted, never gone. The kills are real SIGKILLs of a separate Huddle process."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.builtin import status
from channels.sms import pdu
from channels.sms import plugin as sms_plugin
from channels.sms.simulator import SimulatedModem, StoredSms
from storage.sms import SmsRepo
from tests.sms_support import Recorder, eventually, inbox_rows, sms_flow

PHONE = "+15551234567"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=7)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


async def start_huddle(sim: SimulatedModem, tmp: Path, db: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUDDLE_DATABASE_URL": db, "HUDDLE_SMS_PORT": sim.port,
           "HUDDLE_DEMO": "false", "HUDDLE_CONSOLE": "false", "HUDDLE_HTTP_ENABLED": "false"}
    log = _log_file(tmp / "huddle.log")
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.sms_child", cwd=tmp, env=env,
                                                 stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(log)
    await eventually(lambda: "AT+CMGL=4" in sim.commands, timeout=60, what="the child's first sweep")
    await asyncio.sleep(0.3)
    return child


def _log_file(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


async def kill_9(child: asyncio.subprocess.Process) -> None:
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL


async def test_kill_9_between_read_and_commit_then_delivered_once(sim: SimulatedModem, tmp_path: Path) -> None:
    db = str(tmp_path / "huddle.db")
    child = await start_huddle(sim, tmp_path, db)
    try:
        sim.faults.withhold_final.append("AT+CMGR=")  # the answer is read off the wire, never completed
        [slot] = sim.deliver(PHONE, "killed mid-read")
        await eventually(lambda: any(c.startswith("AT+CMGR=") for c in sim.commands), what="the child reads")
        await asyncio.sleep(0.3)
    finally:
        await kill_9(child)
    assert await inbox_rows(db) == []  # nothing was committed...
    assert slot in sim.stored()  # ...so nothing was deleted
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec, database_url=db)
    try:
        await eventually(lambda: rec.texts == ["killed mid-read"], what="delivered after the restart")
        await eventually(lambda: not sim.stored(), what="slot freed")
        assert [r.text for r in await inbox_rows(flow)] == ["killed mid-read"]
    finally:
        await flow.close()


async def test_kill_9_between_commit_and_delete_is_never_delivered_twice(sim: SimulatedModem, tmp_path: Path) -> None:
    db = str(tmp_path / "huddle.db")
    child = await start_huddle(sim, tmp_path, db)
    try:
        sim.hang_next("AT+CMGD")  # committed, then the delete never completes
        [slot] = sim.deliver(PHONE, "killed before the delete")
        await eventually(lambda: any(c.startswith("AT+CMGD=") for c in sim.commands), what="the child deletes")
    finally:
        await kill_9(child)
    [row] = await inbox_rows(db)
    assert row.text == "killed before the delete" and slot in sim.stored()
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec, database_url=db)
    try:
        await eventually(lambda: not sim.stored(), what="slot read again and freed")
        await flow.settle()
        [again] = await inbox_rows(flow)  # deduplicated by provider id: still one row
        assert again.provider_id == row.provider_id
        assert rec.texts == ([] if row.status != "received" else ["killed before the delete"])
        assert again.status != "received"
    finally:
        await flow.close()


async def test_port_vanishing_in_the_middle_of_an_answer(sim: SimulatedModem) -> None:
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        sim.faults.vanish_mid_answer.append("AT+CMGR=")
        sim.deliver(PHONE, "half read")
        await eventually(lambda: rec.texts == ["half read"], what="delivered after the reconnect")
        assert channel.connects == 2
        await eventually(lambda: not sim.stored(), what="slot freed")
        assert [r.text for r in await inbox_rows(flow)] == ["half read"]
    finally:
        await flow.close()


async def test_garbage_is_held_counted_in_status_and_listed(
    sim: SimulatedModem, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = Recorder()
    flow, _ = await sms_flow(sim, rec)
    try:
        sim.deliver_pdu("07917283010010F5040BC872388809")
        sim.deliver_pdu("0791")
        sim.deliver(PHONE, "a real one")
        await eventually(lambda: rec.texts == ["a real one"], what="the text")
        await eventually(lambda: not sim.stored(), what="all slots freed")
        assert len(await SmsRepo(flow.app.db).held()) == 2
        capsys.readouterr()
        flow.app.add_status(sms_plugin._status)  # what the plugin registers in a real run
        await status(flow.app, argparse.Namespace())
        out = capsys.readouterr().out
        assert "SMS raw PDUs held (not texts, or unreadable): 2" in out
        assert "unreadable SMS-DELIVER: address runs past the end" in out
        await sms_plugin._run_sms(flow.app, argparse.Namespace(sms_command="held", all=False, limit=50))
        listing = capsys.readouterr().out
        assert "hex  07917283010010F5040BC872388809" in listing and "hex  0791" in listing
    finally:
        await flow.close()


async def test_every_truncation_of_real_pdus_is_delivered_or_held_and_every_slot_freed() -> None:
    """The property, through the channel: nothing raises out of it, nothing stays, nothing vanishes."""
    sources = ["07919762020033F1240B919792956102F30000418011026315610133",  # python-gsmmodem #40
               "07911732547698F00009D0D432BB2C0300005111713115142108E8329BFD0E8542",  # pdu_sms README
               "07919730071111F10414D0D9B09B5CC637DFEE721E0008117020616444617E041A043E0434"]  # chan_dongle #17
    cuts = sorted({h[:n] for h in sources for n in range(2, len(h) + 1, 2)})
    sim = SimulatedModem(seed=8, capacity=len(cuts) + 5)
    await sim.start()
    rec = Recorder()
    flow, channel = await sms_flow(sim, rec)
    try:
        for slot, h in enumerate(cuts):
            sim.storage["ME"][slot] = StoredSms(h, max(0, len(h) // 2 - 1 - int(h[:2], 16)))
        await channel.sweep()
        await flow.settle()
        assert not sim.stored()
        delivered = len(await inbox_rows(flow))
        held = (await SmsRepo(flow.app.db).held_counts()).get("held", 0)
        expected_texts = sum(pdu.read_pdu(h).kind is pdu.Kind.TEXT for h in cuts)
        assert delivered + held == len(cuts) and delivered == expected_texts
    finally:
        await flow.close()
        await sim.stop()
