"""A fake SIMCom SIM7600 on a pseudo-terminal, for tests, benchmarks and the demo.

The modem stack opens the pty's slave side (through a stable symlink, like a udev name) with the
real pyserial-asyncio transport and speaks real AT commands to it. The simulator answers a
SIM7600's SMS subset in PDU mode: ME/SR storage, `+CMTI` for new messages, `+CDS`/`+CDSI` status
reports, the boot sequence, realistic CMGS delays, and fault injection (CMS errors, a hang, the
port closing, an unsolicited code inside a response, a reboot, a malformed PDU, an answer without
its final result, the port vanishing in the middle of an answer, the whole modem going silent).

Recorded material from real modems can be replayed through it: `script` answers chosen commands
with the exact bytes a given firmware sent (a `+CPIN: READY` with no OK, a malformed `+CPMS=?`), and
`load_listing` stores the entries of a recorded `+CMGL` answer, noise lines included, so that the
stack reads them from a pty exactly as it would from that modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.tasks import cancel_and_wait
from channels.sms import pdu

log = logging.getLogger(__name__)

BOOT_URCS = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")


@dataclass(slots=True)
class StoredSms:
    pdu_hex: str
    tpdu_length: int | str
    read: bool = False
    noise: list[str] = field(default_factory=list)
    """Lines a real modem printed around this entry (vendor codes, junk), replayed after its PDU."""
    before: list[str] = field(default_factory=list)
    """Lines printed before this entry's header."""
    between: list[str] = field(default_factory=list)
    """Lines printed between this entry's header and its PDU."""
    cmgr_header: str | None = None
    cmgl_header: str | None = None
    """Headers exactly as a recorded modem printed them (`+CMGR: ,,25`, `+CMGR: 0,"",25`)."""


@dataclass(slots=True)
class SentSms:
    """What the 'network' received from the modem: one entry per CMGS (one SMS part)."""

    number: str
    text: str
    mr: int
    part: int
    parts: int
    reference: int | None
    pdu_hex: str


@dataclass(slots=True)
class Faults:
    cms: list[tuple[int, str]] = field(default_factory=list)
    """(code, command prefix) errors to answer, first matching command first."""
    hangs: list[str] = field(default_factory=list)
    """Command prefixes to swallow without any answer (the modem hangs on them)."""
    mid_response: list[str] = field(default_factory=list)
    """Unsolicited lines to slip into the next response that has information lines."""
    delivery_status: dict[str, int] = field(default_factory=dict)
    """Number → TP-Status its status reports carry (0 delivered; 0x46 expired, ...)."""
    withhold_final: list[str] = field(default_factory=list)
    """Command prefixes answered with their information lines but no final result (the modem stalls)."""
    vanish_mid_answer: list[str] = field(default_factory=list)
    """Command prefixes after whose first answer line the port disappears (USB unplugged mid-read)."""
    hang_after_prompt: int = 0
    """CMGS commands that get their '>' prompt, take the PDU and then never answer."""
    hang_for: float = 0.0
    """With `hang_after_prompt`: the whole modem then stays silent this long (see `freeze`)."""


class SimulatedModem:
    def __init__(
        self,
        *,
        directory: Path | None = None,
        cmgs_delay: tuple[float, float] = (0.0, 0.0),
        read_delay: float = 0.0,
        report_delay: float = 0.0,
        capacity: int = 50,
        smsc: str = "+15550000000",
        cnmi_ds: str = "(0-2)",
        echo: bool = True,
        seed: int | None = None,
    ) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="huddle-sim-"))
        self.link = self.directory / "ttySIM7600"
        self.cmgs_delay = cmgs_delay
        self.read_delay = read_delay
        self.report_delay = report_delay
        self.capacity = capacity
        self.smsc = smsc
        self.cnmi_ds_options = cnmi_ds
        self.rng = random.Random(seed)
        self.pin: str | None = None
        """A PIN the SIM asks for (after each boot) before SMS works; None: an unlocked SIM."""
        self.unlocked = True
        self.faults = Faults()
        self.storage: dict[str, dict[int, StoredSms]] = {"ME": {}, "SM": {}, "SR": {}}
        self.sent: list[SentSms] = []
        self.commands: list[str] = []
        self.log: list[tuple[float, str]] = []
        """(monotonic time, command) for every command the modem received."""
        self.script: dict[str, str] = {}
        """Command (upper case) → the exact text to answer with, replacing the built-in answer."""
        self.frozen_until = 0.0
        """Monotonic time until which the modem ignores everything (a firmware stall)."""
        self.on_text: list[Callable[[str, str], None]] = []
        """Called with (number, text) when every part of a sent message has arrived."""
        self._assembly: dict[tuple[str, int, int], dict[int, str]] = {}
        self._network_queue: list[str] = []
        """PDUs the network holds because the modem's storage was full."""
        self._mr = 0
        self._ref = self.rng.randrange(65536)
        self._reset_state(echo)
        self._master: int | None = None
        self._slave: int | None = None
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._data = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.opened = 0
        """How many ptys were created (1 + port closings + reboots)."""

    def _reset_state(self, echo: bool = True) -> None:
        self.echo = echo
        self.cmgf = 0
        self.cmee = 0
        self.mems = ["ME", "ME", "ME"]
        self.cnmi = (0, 0, 0, 0, 0)
        self.cmms = 0
        self.sms_ready = True

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The stable path to open (a symlink to the current pty, like /dev/ttyUSB2)."""
        return str(self.link)

    async def start(self) -> str:
        self._open_pty()
        self._worker = asyncio.create_task(self._work(), name="sim7600")
        return self.port

    async def stop(self) -> None:
        await cancel_and_wait([t for t in (self._worker, *self._tasks) if t is not None])
        self._close_pty()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._inbuf.clear()
        self._outbuf.clear()
        self.opened += 1

    def _close_pty(self) -> None:
        loop = asyncio.get_running_loop()
        if self._master is not None:
            loop.remove_reader(self._master)
            loop.remove_writer(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the wire ----------------------------------------------------------------------------------

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # nobody holds the other side right now
        self._inbuf += data
        self._data.set()

    def write(self, text: str) -> None:
        if self._master is None:
            return
        self._outbuf += text.encode("ascii")
        self._flush()

    def _flush(self) -> None:
        if self._master is None:
            return
        loop = asyncio.get_running_loop()
        try:
            n = os.write(self._master, self._outbuf)
            del self._outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._outbuf.clear()
        if self._outbuf:
            loop.add_writer(self._master, self._flush)
        else:
            loop.remove_writer(self._master)

    def urc(self, line: str) -> None:
        wait = self.frozen_until - time.monotonic()
        if wait > 0:  # a stalled modem announces nothing until it wakes up
            asyncio.get_running_loop().call_later(wait, self.urc, line)
            return
        self.write(f"\r\n{line}\r\n")

    async def _take(self, terminators: bytes) -> bytes:
        while True:
            positions = [i for i in (self._inbuf.find(bytes([t])) for t in terminators) if i >= 0]
            if positions:
                i = min(positions)
                chunk = bytes(self._inbuf[: i + 1])
                del self._inbuf[: i + 1]
                return chunk
            self._data.clear()
            await self._data.wait()

    # -- command loop ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            raw = await self._take(b"\r\n")
            line = raw.decode("ascii", "replace").strip()
            if not line:
                continue
            if time.monotonic() < self.frozen_until:
                log.info("simulator frozen; ignores %r", line)
                continue
            if self.echo:
                self.write(line + "\r")
            self.commands.append(line)
            self.log.append((time.monotonic(), line))
            if self._swallow(line):
                continue
            if (scripted := self.script.get(line.upper())) is not None:
                self.write(scripted)
                continue
            try:
                await self._command(line)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("simulator failed on %r", line)
                self._final("ERROR")

    def _swallow(self, line: str) -> bool:
        upper = line.upper()
        for i, prefix in enumerate(self.faults.hangs):
            if upper.startswith(prefix.upper()):
                del self.faults.hangs[i]
                log.info("simulator hangs on %r", line)
                return True
        return False

    def _cms_fault(self, upper: str) -> int | None:
        for i, (code, prefix) in enumerate(self.faults.cms):
            if upper.startswith(prefix.upper()):
                del self.faults.cms[i]
                return code
        return None

    def _fault_for(self, faults: list[str], command: str) -> bool:
        for i, prefix in enumerate(faults):
            if command.upper().startswith(prefix.upper()):
                del faults[i]
                return True
        return False

    def _respond(self, lines: list[str], final: str = "OK", command: str = "") -> None:
        if command and lines and self._fault_for(self.faults.vanish_mid_answer, command):
            self.write(f"\r\n{lines[0]}\r\n")
            log.info("simulator port vanishes in the middle of the answer to %r", command)
            self._spawn(self.close_port(reopen_after=0.1))
            return
        out = []
        for i, ln in enumerate(lines):
            out.append(f"\r\n{ln}")
            if i == 0 and self.faults.mid_response:
                out += [f"\r\n{u}" for u in self.faults.mid_response]
                self.faults.mid_response.clear()
        self.write("".join(out) + ("\r\n" if out else ""))
        if command and self._fault_for(self.faults.withhold_final, command):
            log.info("simulator withholds the final result of %r", command)
            return
        self._final(final)

    def _final(self, final: str) -> None:
        if self.faults.mid_response:
            for u in self.faults.mid_response:
                self.urc(u)
            self.faults.mid_response.clear()
        self.write(f"\r\n{final}\r\n")

    def _cms(self, code: int) -> None:
        self._final(f"+CMS ERROR: {code}" if self.cmee else "ERROR")

    def _cme(self, code: int) -> None:
        self._final(f"+CME ERROR: {code}" if self.cmee else "ERROR")

    async def _command(self, line: str) -> None:
        upper = line.upper()
        if (code := self._cms_fault(upper)) is not None:
            if upper.startswith("AT+CMGS="):
                self.write("\r\n> ")
                await self._take(b"\x1a\x1b")
            self._cms(code)
            return
        sms_cmd = upper.startswith(("AT+CMGS", "AT+CMGR", "AT+CMGL", "AT+CMGD", "AT+CPMS"))
        if sms_cmd and not self.unlocked:
            self._cms(311)
            return
        if sms_cmd and not self.sms_ready:
            self._cms(515)
            return
        if upper == "AT":
            self._final("OK")
        elif upper in ("ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            self._final("OK")
        elif upper.startswith("AT+CMEE="):
            self.cmee = int(upper.split("=")[1] or 0)
            self._final("OK")
        elif upper == "AT+CPIN?":
            self._respond(["+CPIN: READY" if self.unlocked else "+CPIN: SIM PIN"])
        elif upper.startswith("AT+CPIN="):
            if self.unlocked:
                self._cme(3)  # operation not allowed: no PIN is asked for
            elif line.split("=", 1)[1].strip().strip('"') == self.pin:
                self.unlocked = True
                self.sms_ready = False
                self._final("OK")
                self._spawn(self._sms_done_later())
            else:
                self._cme(16)  # incorrect password
        elif upper.startswith("AT+CMGF="):
            self.cmgf = int(upper.split("=")[1])
            self._final("OK")
        elif upper == "AT+CMGF?":
            self._respond([f"+CMGF: {self.cmgf}"])
        elif upper == "AT+CPMS=?":
            self._respond(['+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")'])
        elif upper.startswith("AT+CPMS="):
            names = [n.strip().strip('"') for n in line.split("=", 1)[1].split(",")]
            for i, n in enumerate(names[:3]):
                self.mems[i] = n.upper()
            self._respond(["+CPMS: " + ",".join(f"{len(self.storage[m])},{self.capacity}" for m in self.mems)])
        elif upper == "AT+CPMS?":
            self._respond(["+CPMS: " + ",".join(f'"{m}",{len(self.storage[m])},{self.capacity}' for m in self.mems)])
        elif upper == "AT+CNMI=?":
            self._respond([f"+CNMI: (0-2),(0-3),(0,2),{self.cnmi_ds_options},(0,1)"])
        elif upper.startswith("AT+CNMI="):
            values = [int(v or 0) for v in upper.split("=")[1].split(",")]
            self.cnmi = tuple((values + [0] * 5)[:5])  # type: ignore[assignment]
            self._final("OK")
        elif upper.startswith("AT+CMGR="):
            await self._cmgr(int(upper.split("=")[1]))
        elif upper.startswith("AT+CMGL"):
            box = self.storage[self.mems[0]]
            lines = []
            for idx in sorted(box):
                sms = box[idx]
                header = sms.cmgl_header or f"+CMGL: {idx},{1 if sms.read else 0},,{sms.tpdu_length}"
                lines += [*sms.before, header, *sms.between, sms.pdu_hex, *sms.noise]
                sms.read = True
            self._respond(lines, command=line)
        elif upper.startswith("AT+CMGD="):
            args = upper.split("=")[1].split(",")
            box = self.storage[self.mems[0]]
            if len(args) > 1 and int(args[1] or 0) == 4:
                box.clear()
            else:
                box.pop(int(args[0]), None)
            self._final("OK")
            while self._network_queue and len(self.storage[self.mems[2]]) < self.capacity:
                self.deliver_pdu(self._network_queue.pop(0))
        elif upper.startswith("AT+CMGS="):
            await self._cmgs(int(upper.split("=")[1]))
        elif upper.startswith("AT+CMMS="):
            self.cmms = int(upper.split("=")[1])
            self._final("OK")
        elif upper == "AT+CSCA?":
            self._respond([f'+CSCA: "{self.smsc}",145'])
        elif upper.startswith("AT+CSCA="):
            self.smsc = line.split("=", 1)[1].split(",")[0].strip('"')
            self._final("OK")
        elif upper == "AT+CGMI":
            self._respond(["SIMCOM INCORPORATED"])
        elif upper == "AT+CGMM":
            self._respond(["SIMCOM_SIM7600G-H"])
        elif upper == "AT+CGMR":
            self._respond(["+CGMR: LE20B04SIM7600G22 (simulated)"])
        elif upper in ("AT+CGSN", "AT+GSN"):
            self._respond(["861234567890123"])
        elif upper == "AT+CREG?":
            self._respond(["+CREG: 0,1"])
        elif upper == "AT+CEREG?":
            self._respond(["+CEREG: 0,1"])
        elif upper == "AT+CSQ":
            self._respond(["+CSQ: 21,99"])
        elif upper == "AT+CRESET":
            self._final("OK")
            self._spawn(self.reboot())
        elif upper in ("AT&F", "AT&F0", "AT+CSMS=0"):
            self._final("OK")
        else:
            self._final("ERROR")

    async def _cmgr(self, index: int) -> None:
        if self.read_delay:
            await asyncio.sleep(self.read_delay)
        sms = self.storage[self.mems[0]].get(index)
        if sms is None:
            self._final("OK")  # an empty slot (or another storage selected): a bare OK
            return
        stat = 1 if sms.read else 0
        sms.read = True
        header = sms.cmgr_header or f"+CMGR: {stat},,{sms.tpdu_length}"
        self._respond([*sms.before, header, *sms.between, sms.pdu_hex, *sms.noise], command=f"AT+CMGR={index}")

    async def _cmgs(self, length: int) -> None:
        self.write("\r\n> ")
        data = (await self._take(b"\x1a\x1b")).decode("ascii", "replace")
        if data.endswith("\x1b"):
            self._final("OK")  # cancelled
            return
        if self.faults.hang_after_prompt > 0:
            self.faults.hang_after_prompt -= 1
            log.info("simulator took the PDU and hangs")
            if self.faults.hang_for:
                self.freeze(self.faults.hang_for)
            return
        hex_text = data[:-1].strip()
        try:
            decoded = pdu.decode_submit(hex_text)
            raw = bytes.fromhex(hex_text)
            if len(raw) - 1 - raw[0] != length:
                raise pdu.PduError("length does not match")
        except (pdu.PduError, ValueError, IndexError):
            self._cms(304)
            return
        low, high = self.cmgs_delay
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))
        mr = self._mr
        self._mr = (self._mr + 1) % 256
        concat = decoded.concat
        self.sent.append(SentSms(decoded.recipient, decoded.text, mr, concat.part if concat else 1,
                                 concat.total if concat else 1, concat.reference if concat else None, hex_text))
        self._respond([f"+CMGS: {mr}"])
        self._assemble(decoded)
        if decoded.status_report and self.cnmi[3]:
            self._spawn(self._status_report(mr, decoded.recipient))

    def _assemble(self, decoded: pdu.SubmitDecoded) -> None:
        if decoded.concat is None:
            self._emit_text(decoded.recipient, decoded.text)
            return
        c = decoded.concat
        key = (decoded.recipient, c.reference, c.total)
        parts = self._assembly.setdefault(key, {})
        parts[c.part] = decoded.text
        if len(parts) == c.total:
            del self._assembly[key]
            self._emit_text(decoded.recipient, "".join(parts[i] for i in range(1, c.total + 1)))

    def _emit_text(self, number: str, text: str) -> None:
        for cb in list(self.on_text):
            try:
                cb(number, text)
            except Exception:
                log.exception("on_text listener failed")

    async def _status_report(self, mr: int, recipient: str) -> None:
        if self.report_delay:
            await asyncio.sleep(self.report_delay)
        status = self.faults.delivery_status.get(recipient, 0)
        report = pdu.encode_status_report(mr, recipient, status, datetime.now(UTC), smsc=self.smsc)
        tpdu_len = len(report) // 2 - 1 - int(report[:2], 16)
        if self.cnmi[3] == 1:
            self.urc(f"+CDS: {tpdu_len}\r\n{report}")
        else:
            slot = self._store("SR", report, tpdu_len)
            if slot is not None:
                self.urc(f'+CDSI: "SR",{slot}')

    # -- the phone side ----------------------------------------------------------------------------

    def _store(self, mem: str, pdu_hex: str, tpdu_length: int | str) -> int | None:
        box = self.storage[mem]
        for slot in range(self.capacity):
            if slot not in box:
                box[slot] = StoredSms(pdu_hex, tpdu_length)
                return slot
        return None

    def deliver_pdu(
        self, pdu_hex: str, *, mid_response: bool = False, length: int | str | None = None,
        noise: list[str] | None = None, before: list[str] | None = None, mem: str | None = None,
        cmgr_header: str | None = None, between: list[str] | None = None,
    ) -> int | None:
        """Put one PDU (with SMSC prefix) into the receive storage and announce it with +CMTI.

        `length` overrides the TPDU length the modem will print (a firmware that counts its own
        way); `noise`/`before` are lines printed with the entry when it is read or listed.
        """
        try:
            raw = bytes.fromhex(pdu_hex)
            tpdu_length: int | str = len(raw) - 1 - raw[0]
        except (ValueError, IndexError):
            tpdu_length = len(pdu_hex) // 2
        mem = mem or self.mems[2]
        slot = self._store(mem, pdu_hex, tpdu_length if length is None else length)
        if slot is None:
            # A full modem refuses the message; the network keeps it and tries again later.
            self._network_queue.append(pdu_hex)
            return None
        stored = self.storage[mem][slot]
        stored.noise, stored.before, stored.cmgr_header = list(noise or []), list(before or []), cmgr_header
        stored.between = list(between or [])
        if self.cnmi[1] in (1, 3):  # the new-message indication was switched on
            line = f'+CMTI: "{mem}",{slot}'
            if mid_response:
                self.faults.mid_response.append(line)
            else:
                self.urc(line)
        return slot

    def load_listing(self, lines: list[str], *, mem: str | None = None, announce: bool = False) -> list[int]:
        """Store the entries of a recorded `+CMGL` answer at their slots, with the noise around them.

        Lines between an entry's PDU and the next header come back after that PDU when it is read
        or listed; lines before the first header come back before it. Returns the slots.
        """
        mem = mem or self.mems[2]
        box = self.storage[mem]
        slots: list[int] = []
        before: list[str] = []
        current: StoredSms | None = None
        for raw in lines:
            line = raw.strip()
            if line == "OK" or line.upper().startswith("AT+CMGL"):
                continue
            if not line:
                if current is not None and current.pdu_hex:
                    current.noise.append("")  # a blank line the modem printed
                continue
            if line.startswith("+CMGL:"):
                fields = line.split(":", 1)[1].split(",")
                slot = int(fields[0])
                length = fields[-1].strip()
                current = StoredSms("", int(length) if length.isdigit() else length, read=fields[1].strip() != "0",
                                    before=before, cmgl_header=line)
                before = []
                box[slot] = current
                slots.append(slot)
            elif current is not None and not current.pdu_hex and all(c in "0123456789ABCDEFabcdef" for c in line):
                current.pdu_hex = line
            elif current is not None and not current.pdu_hex:
                current.between.append(line)
            elif current is not None:
                current.noise.append(line)
            else:
                before.append(line)
        if announce and self.cnmi[1] in (1, 3):
            for slot in slots:
                self.urc(f'+CMTI: "{mem}",{slot}')
        return slots

    def deliver(
        self,
        sender: str,
        text: str,
        *,
        wide_ref: bool = False,
        parts: list[int] | None = None,
        mid_response: bool = False,
        when: datetime | None = None,
    ) -> list[int | None]:
        """A phone texts the modem; `parts` (1-based) delivers only some parts of a long text."""
        self._ref = (self._ref + 1) % (65536 if wide_ref else 256)
        hexes = pdu.encode_deliver(sender, text, when, reference=self._ref, wide_ref=wide_ref, smsc=self.smsc)
        chosen = parts or list(range(1, len(hexes) + 1))
        return [self.deliver_pdu(hexes[i - 1], mid_response=mid_response) for i in chosen]

    def pdus_for(self, sender: str, text: str, reference: int) -> list[str]:
        return pdu.encode_deliver(sender, text, reference=reference, smsc=self.smsc)

    # -- faults ------------------------------------------------------------------------------------

    def fail_next(self, code: int, command: str = "AT+CMGS", times: int = 1) -> None:
        self.faults.cms += [(code, command)] * times

    def hang_next(self, command: str = "AT", times: int = 1) -> None:
        self.faults.hangs += [command] * times

    def freeze(self, seconds: float) -> None:
        """The whole modem goes silent for `seconds` (a firmware stall): input is ignored, nothing said."""
        self.frozen_until = time.monotonic() + seconds

    def cmgs_count(self) -> int:
        return sum(1 for c in self.commands if c.upper().startswith("AT+CMGS="))

    def fail_delivery(self, number: str, status: int = 0x46) -> None:
        self.faults.delivery_status[number] = status

    def unplug(self) -> None:
        """The USB device vanishes and stays away: the port and its device node are gone."""
        self._close_pty()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def plug(self) -> None:
        """The device comes back (a new pty under the same name)."""
        self._open_pty()

    async def close_port(self, reopen_after: float = 0.05) -> None:
        """The USB device vanishes and comes back (same name, new device)."""
        self._close_pty()
        await asyncio.sleep(reopen_after)
        self._open_pty()

    async def reboot(self, boot_delay: float = 0.05, sms_done_after: float = 0.05) -> None:
        """A modem reset: the port goes, comes back, prints the boot URCs; settings are lost."""
        self._close_pty()
        self._reset_state()
        self.sms_ready = False
        self.unlocked = self.pin is None
        await asyncio.sleep(boot_delay)
        self._open_pty()
        self.urc("RDY")
        self.urc("+CPIN: READY" if self.unlocked else "+CPIN: SIM PIN")
        await asyncio.sleep(sms_done_after)
        self.sms_ready = True
        self.urc("SMS DONE")
        self.urc("PB DONE")

    async def _sms_done_later(self) -> None:
        await asyncio.sleep(0.05)
        self.sms_ready = True
        self.urc("SMS DONE")

    def lock_sim(self, pin: str) -> None:
        self.pin = pin
        self.unlocked = False

    def stored(self, mem: str = "ME") -> dict[int, StoredSms]:
        return self.storage[mem]


class Transcript:
    """A recorded modem exchange (tests/transcripts/sms/*.txt): commands and the lines answered.

    `# ...` lines say where it was published; `> AT+...` starts a block; `<blank>` is an empty line.
    """

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.source: list[str] = []
        self.blocks: list[tuple[str, list[str]]] = []
        for raw in path.read_text().splitlines():
            if raw.startswith("#"):
                self.source.append(raw[1:].strip())
            elif raw.startswith("> "):
                self.blocks.append((raw[2:].strip(), []))
            elif raw.strip() and self.blocks:
                self.blocks[-1][1].append("" if raw.strip() == "<blank>" else raw.rstrip())

    def answer(self, command: str) -> list[str]:
        return next(lines for cmd, lines in self.blocks if cmd == command)

    def script(self, sim: SimulatedModem, *commands: str) -> None:
        """Let the simulator answer these commands (all blocks if none named) byte for byte."""
        for cmd, lines in self.blocks:
            if not commands or cmd in commands:
                sim.script[cmd.upper()] = "".join(f"\r\n{ln}" if ln else "\r\n" for ln in lines) + "\r\n"

    def load_listing(self, sim: SimulatedModem, announce: bool = False) -> list[int]:
        return sim.load_listing(self.answer("AT+CMGL=4"), announce=announce)

    def store_cmgr(self, sim: SimulatedModem, command: str) -> int | None:
        """Store the entry a recorded `+CMGR` answer shows, noise and header as printed; announce it."""
        lines = [ln for ln in self.answer(command) if not ln.upper().startswith("AT") and ln != "OK"]
        i = next(n for n, ln in enumerate(lines) if ln.startswith("+CMGR:"))
        j = next(n for n in range(i + 1, len(lines)) if lines[n] and all(c in "0123456789ABCDEFabcdef" for c in
                                                                         lines[n]))
        header, pdu_hex = lines[i], lines[j]
        length = header.rsplit(",", 1)[-1].strip()
        return sim.deliver_pdu(pdu_hex, length=int(length) if length.isdigit() else length, before=lines[:i],
                               between=lines[i + 1 : j], noise=lines[j + 1 :], cmgr_header=header)


_NUM = re.compile(r"^\+?\d{3,20}$")


def is_phone_number(text: str) -> bool:
    return bool(_NUM.match(text))
