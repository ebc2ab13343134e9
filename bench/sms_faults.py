"""Received texts lost across the SMS fault suite: Huddle's stack against a naive delete-on-read reader.

    python -m bench.sms_faults [--no-kill]

Each scenario puts recorded material (tests/transcripts/sms: python-gsmmodem, gammu, chan_dongle
and Wader transcripts, vendor codes inside answers, a WAP push, a flash SMS, garbage, a status
report in a listing, a firmware that counts the SMSC in its length) into the simulated modem, or
injects a fault (the port vanishing in the middle of an answer, a SIGKILL of the process between
reading and committing, or between committing and deleting), then counts where every stored PDU
ended: a text in the inbox (how many times), held raw, a delivery report, or lost.

Huddle: the real stack (pty, pyserial-asyncio, AT layer, channel, SQLite inbox); the kills are real
SIGKILLs of `python main.py run`, restarted in-process on the same database. Baseline: wave-1's
reading rules (only the URCs it knew were taken out of an answer, the PDU was the second line of a
`+CMGR` answer, an undecodable one was deleted) in a naive delete-on-read reader: read, delete,
hand over. Its crash is the same kill at its own weak point (after the delete, before the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import App
from bot.config_file import ConfigFile
from bot.context import Context
from bot.router import Router
from bot.settings import CoreSettings
from channels.sms import pdu
from channels.sms.link import open_serial
from channels.sms.modem import ModemChannel, ModemConfig
from channels.sms.simulator import SimulatedModem, Transcript
from storage.sms import SmsRepo

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "tests" / "transcripts" / "sms"
PHONE = "+15551234567"
FAST = {"command_timeout": 2.0, "cmgs_timeout": 5.0, "reconnect_min": 0.05, "reconnect_max": 0.5, "ready_wait": 3.0,
        "reassembly_timeout": 1.0}
"""Short timeouts so a run takes seconds; a long text missing a part is delivered after 1 s, not 600."""


@dataclass
class Outcome:
    items: int = 0
    texts: int = 0
    delivered: int = 0
    duplicates: int = 0
    held: int = 0
    reports: int = 0
    texts_lost: int = 0
    others_lost: int = 0
    wrong: int = 0
    """Not-texts (binary, WAP push, flash, reports) handed to a handler as if they were text."""
    note: str = ""


@dataclass
class Scenario:
    name: str
    prepare: Callable[[SimulatedModem], list[str]]
    """Stores the material in the modem; returns the PDUs stored (the items to account for)."""
    fault: str = "none"
    pdus: list[str] = field(default_factory=list)


def _t(name: str) -> Transcript:
    return Transcript(TRANSCRIPTS / name)


def _listing(name: str) -> Callable[[SimulatedModem], list[str]]:
    def prepare(sim: SimulatedModem) -> list[str]:
        slots = _t(name).load_listing(sim)
        return [sim.stored()[s].pdu_hex for s in slots]
    return prepare


def _cmgr(name: str, *commands: str) -> Callable[[SimulatedModem], list[str]]:
    def prepare(sim: SimulatedModem) -> list[str]:
        t = _t(name)
        return [sim.stored()[s].pdu_hex for c in commands if (s := t.store_cmgr(sim, c)) is not None]
    return prepare


def _raw(*hexes: str, length: int | None = None) -> Callable[[SimulatedModem], list[str]]:
    def prepare(sim: SimulatedModem) -> list[str]:
        for h in hexes:
            sim.deliver_pdu(h, length=length)
        return list(hexes)
    return prepare


def _text(text: str) -> Callable[[SimulatedModem], list[str]]:
    def prepare(sim: SimulatedModem) -> list[str]:
        return pdu.encode_deliver(PHONE, text, smsc=sim.smsc)
    return prepare


SCENARIOS = [
    Scenario("^RSSI inside +CMGR (python-gsmmodem #40)", _cmgr("huawei_rssi_inside_cmgr.txt", "AT+CMGR=0")),
    Scenario("echo on, empty alpha (python-gsmmodem #56)", _cmgr("echo_left_on_cmgr.txt", "AT+CMGR=13")),
    Scenario("Huawei E1752 listing (gammu #126)", _listing("huawei_e1752_cmgl.txt")),
    Scenario("invalid line in listing (python-gsmmodem)", _listing("python_gsmmodem_listing_invalid_line.txt")),
    Scenario("vendor codes + blank line in listing", _listing("vendor_urcs_inside_listing.txt")),
    Scenario("MMS notification, 2 parts (WAP push)", _listing("mms_push_two_parts.txt")),
    Scenario("flash, UCS-2 alnum, '37M' length (chan_dongle)",
             _cmgr("chan_dongle_huawei_cmgr.txt", "AT+CMGR=0", "AT+CMGR=1", "AT+CMGR=2")),
    Scenario("status report in a listing", _listing("status_report_in_listing.txt")),
    Scenario("length counts the SMSC octets",
             _raw("07919762020033F1240B919792956102F30000418011026315610133", length=28)),
    Scenario("garbage PDUs", _raw("07917283010010F5040BC872388809", "0791")),
    Scenario("port vanishes mid-read", _text("read while the USB cable was pulled"), fault="vanish"),
    Scenario("kill -9 between read and commit", _text("killed between read and commit"), fault="kill-read"),
    Scenario("kill -9 between commit and delete", _text("killed between commit and delete"), fault="kill-delete"),
]


def _classify(pdus: list[str]) -> list[pdu.Received]:
    return [pdu.read_pdu(h) for h in pdus]


def _expected_text(r: pdu.Received) -> str | None:
    return r.deliver.text if r.kind is pdu.Kind.TEXT and r.deliver is not None else None


# -- Huddle -------------------------------------------------------------------------------------------------


def _settings(db: str) -> CoreSettings:
    return CoreSettings(database_url=db, demo=False, console=False, http_enabled=False, quiet_hours_roles=[],
                        _env_file=None)  # type: ignore[call-arg]


def _app(db: str, seen: list[str]) -> App:
    app = App(_settings(db), config=ConfigFile({}))
    router = Router("bench")

    @router.message()
    async def record(ctx: Context) -> None:
        seen.append(ctx.inbound.text)

    app.include_router(router)
    return app


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _run_app(sim: SimulatedModem, db: str, body: Callable[[ModemChannel], Awaitable[None]]) -> list[str]:
    seen: list[str] = []
    app = _app(db, seen)
    channel = ModemChannel(ModemConfig(port=sim.port, **FAST), SmsRepo(app.db), app.clock, simulator=sim)
    app.add_channel(channel)
    await app.start(run_scheduler=False)
    try:
        await _until(lambda: not channel.sweeping, 10)
        await body(channel)
        await app.dispatcher.idle()
    finally:
        await app.stop()
    return seen


async def _spawn_huddle(sim: SimulatedModem, tmp: Path, db: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUDDLE_DATABASE_URL": db, "HUDDLE_SMS_PORT": sim.port,
           "HUDDLE_DEMO": "false", "HUDDLE_CONSOLE": "false", "HUDDLE_HTTP_ENABLED": "false",
           "HUDDLE_LOG_LEVEL": "WARNING"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "run", cwd=tmp, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await _until(lambda: "AT+CMGL=4" in sim.commands, 120)
    await asyncio.sleep(0.3)
    return child


async def huddle(scenario: Scenario, tmp: Path) -> Outcome:
    sim = SimulatedModem(seed=11)
    await sim.start()
    db = str(tmp / f"huddle-{abs(hash(scenario.name))}.db")
    seen: list[str] = []
    try:
        if scenario.fault in ("kill-read", "kill-delete"):
            child = await _spawn_huddle(sim, tmp, db)
            try:
                if scenario.fault == "kill-read":
                    sim.faults.withhold_final.append("AT+CMGR=")
                else:
                    sim.hang_next("AT+CMGD")
                scenario.pdus = scenario.prepare(sim)
                for h in scenario.pdus:
                    sim.deliver_pdu(h)
                prefix = "AT+CMGR=" if scenario.fault == "kill-read" else "AT+CMGD="
                reached = await _until(lambda: any(c.startswith(prefix) for c in sim.commands), 30)
                await asyncio.sleep(0.3)
            finally:
                child.send_signal(signal.SIGKILL)
                await child.wait()
            committed = len(await _inbox_texts(db))
            window = "read, not committed" if committed == 0 else "committed, not deleted"
            note = f"SIGKILL after {prefix[:-1]} ({window}; slot still in the modem: {bool(sim.stored())})"
            if not reached:
                note += " — the window was missed"
            seen = await _run_app(sim, db, lambda ch: _until(lambda: not sim.stored(), 10))
            out = await _account(scenario, db, seen, sim)
            out.note = note
            return out
        else:
            async def body(channel: ModemChannel) -> None:
                if scenario.fault == "vanish":
                    sim.faults.vanish_mid_answer.append("AT+CMGR=")
                    scenario.pdus = scenario.prepare(sim)
                    for h in scenario.pdus:
                        sim.deliver_pdu(h)
                    await _until(lambda: not sim.stored(), 10)
                else:
                    scenario.pdus = scenario.prepare(sim)
                    await channel.sweep()
                await _until(lambda: not sim.stored(), 5)

            seen = await _run_app(sim, db, body)
        return await _account(scenario, db, seen, sim)
    finally:
        await sim.stop()


async def _inbox_texts(db: str) -> list[str]:
    import sqlalchemy as sa

    from storage.db import Database
    from storage.inbox import inbound

    database = Database(db, durable=False)
    try:
        async with database.read() as conn:
            return [r.text for r in await conn.execute(sa.select(inbound.c.text).where(inbound.c.channel == "sms"))]
    finally:
        await database.close()


async def _account(scenario: Scenario, db: str, seen: list[str], sim: SimulatedModem) -> Outcome:
    """Where every stored PDU ended, from the inbox and sms_held tables (not from our own decoder)."""
    from storage.db import Database

    rows = await _inbox_texts(db)
    database = Database(db, durable=False)
    try:
        held = await SmsRepo(database).held(limit=1000)
    finally:
        await database.close()
    out = Outcome(items=len(scenario.pdus))
    counts = Counter(rows)
    held_pdus = {h.pdu for h in held}
    for r in _classify(scenario.pdus):
        text = _expected_text(r)
        if text is not None:
            out.texts += 1
            n = counts.get(text, 0) + sum(1 for t in counts if t.startswith(text) and t != text)  # partial sets
            if n:
                out.delivered += 1
                out.duplicates += max(0, counts.get(text, 0) - 1)
            else:
                out.texts_lost += 1
        elif r.kind is pdu.Kind.REPORT:
            out.reports += 1  # a report is settled once its slot is freed (the outbox matches it)
        elif r.pdu in held_pdus or any(h.startswith(r.pdu[:40]) for h in held_pdus):
            out.held += 1
        else:
            out.others_lost += 1
    return out


# -- the naive baseline ---------------------------------------------------------------------------------------


WAVE1_URCS = (
    "+CMTI:", "+CDSI:", "+CDS:", "+CMT:", "+CBM:", "RDY", "+CPIN:", "SMS DONE", "PB DONE", "RING",
    "+CREG:", "+CEREG:", "+CGREG:", "NO CARRIER", "+CLIP:", "+CRING:", "+CFUN:", "+STIN:", "+CGEV:",
    "+CNSMOD:", "+SIMCARD:", "+CPSI:", "START", "*ATREADY:", "+RECEIVE",
)
"""The unsolicited codes wave-1's AT layer knew; anything else stayed in a command's answer."""


class NaiveReader:
    """Wave-1's reading rules: known URCs and echo dropped, every other line kept in the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def cmd(self, command: str, timeout: float = 5.0) -> list[str]:
        self.writer.write((command + "\r").encode())
        await self.writer.drain()
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise ConnectionError("port closed")
            line = raw.decode("ascii", "replace").strip()
            if not line or line.startswith("AT") or line.startswith(WAVE1_URCS):
                continue
            if line in ("OK", "ERROR") or line.startswith(("+CMS ERROR", "+CME ERROR")):
                return lines
            lines.append(line)


async def naive(scenario: Scenario) -> Outcome:
    """For each slot: `AT+CMGR`, the PDU is the second line, decode, delete the slot, hand over."""
    sim = SimulatedModem(seed=11)
    await sim.start()
    delivered: list[str] = []
    try:
        if scenario.fault == "vanish":
            sim.faults.vanish_mid_answer.append("AT+CMGR=")
        scenario.pdus = scenario.prepare(sim)
        if scenario.fault != "none" and not sim.stored():
            for h in scenario.pdus:
                sim.deliver_pdu(h)
        for _attempt in range(2):  # a reader opens the port again after an error
            try:
                reader, writer = await open_serial(sim.port, 115200)
            except Exception:
                await asyncio.sleep(0.3)
                continue
            port = NaiveReader(reader, writer)
            try:
                for command in ("ATE0", "AT+CMGF=0", 'AT+CPMS="ME","ME","ME"'):
                    await port.cmd(command)
                slots = [int(ln.split(":")[1].split(",")[0]) for ln in await port.cmd("AT+CMGL=4", 30)
                         if ln.startswith("+CMGL:")]
                for index in slots:
                    lines = await port.cmd(f"AT+CMGR={index}")
                    head = lines[0].rsplit(",", 1)[-1].strip() if lines and lines[0].startswith("+CMGR") else ""
                    length = int(head) if head.isdigit() else None
                    pdu_hex = lines[1] if len(lines) > 1 else ""
                    await port.cmd(f"AT+CMGD={index}")  # delete on read
                    if scenario.fault == "kill-read":
                        break  # killed after the delete, before its commit: the process is gone
                    try:
                        delivered.append(pdu.decode_deliver(pdu_hex, length).text)
                    except pdu.PduError:
                        pass  # "malformed SMS PDU deleted"
                break
            except (ConnectionError, TimeoutError, OSError):
                await asyncio.sleep(0.3)
            finally:
                with contextlib.suppress(Exception):
                    writer.close()
    finally:
        await sim.stop()
    out = Outcome(items=len(scenario.pdus))
    counts = Counter(delivered)
    for r in _classify(scenario.pdus):
        text = _expected_text(r)
        if text is not None:
            out.texts += 1
            if counts.get(text):
                out.delivered += 1
                out.duplicates += counts[text] - 1
            else:
                out.texts_lost += 1
        else:
            d = r.deliver
            if d is not None and counts.get(d.text):
                out.wrong += 1  # a WAP push or a flash SMS handed to the handler as text
            out.others_lost += 1  # deleted: a report as a "non-deliver" slot (the message stays "sent")
    return out


# -- the table ------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.CRITICAL)
    scenarios = [s for s in SCENARIOS if not (args.no_kill and s.fault.startswith("kill"))]
    rows: list[tuple[str, Outcome, Outcome]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for s in scenarios:
            base = await naive(Scenario(s.name, s.prepare, s.fault))
            ours = await huddle(s, Path(d))
            rows.append((s.name, ours, base))
    head = (f"{'scenario':<48}{'PDUs':>5}{'texts':>6} | {'Huddle: lost dup held rep':<27}| "
            f"{'naive: lost wrong discarded':<28}")
    print(head)
    print("-" * len(head))
    total_ours, total_base = Outcome(), Outcome()
    for name, ours, base in rows:
        print(f"{name:<48}{ours.items:>5}{ours.texts:>6} | {ours.texts_lost:>12}{ours.duplicates:>4}{ours.held:>5}"
              f"{ours.reports:>4}  | {base.texts_lost:>11}{base.wrong:>6}{base.others_lost:>10}")
        for f in ("items", "texts", "delivered", "duplicates", "held", "reports", "texts_lost", "others_lost"):
            setattr(total_ours, f, getattr(total_ours, f) + getattr(ours, f))
        for f in ("texts_lost", "wrong", "others_lost", "delivered"):
            setattr(total_base, f, getattr(total_base, f) + getattr(base, f))
    print("-" * len(head))
    print(f"{'total':<48}{total_ours.items:>5}{total_ours.texts:>6} | {total_ours.texts_lost:>12}"
          f"{total_ours.duplicates:>4}{total_ours.held:>5}{total_ours.reports:>4}  | {total_base.texts_lost:>11}"
          f"{total_base.wrong:>6}{total_base.others_lost:>10}")
    for name, ours, _base in rows:
        if ours.note:
            print(f"  {name}: {ours.note}")
    print()
    crashes = sum(1 for s in scenarios if s.fault.startswith("kill"))
    print(f"received texts lost: Huddle {total_ours.texts_lost} of {total_ours.texts}, naive delete-on-read "
          f"{total_base.texts_lost} of {total_ours.texts}; texts handed to handlers twice: {total_ours.duplicates} "
          f"(texts in flight at a crash: {crashes})")
    print(f"not-texts (WAP push, flash, garbage, reports) kept raw or settled: Huddle "
          f"{total_ours.held + total_ours.reports} of {total_ours.items - total_ours.texts}; naive discarded "
          f"{total_base.others_lost}, and handed {total_base.wrong} to handlers as text")
    print(f"({time.perf_counter() - started:.0f} s; the kills are real SIGKILLs of `python main.py run`)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-kill", action="store_true", help="skip the two scenarios that kill a process")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
