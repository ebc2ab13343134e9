"""The SMS channel: a SIMCom SIM7600 (or any 27.005 modem) on a serial port, in PDU mode.

Receiving is event-driven: the modem announces each stored message with `+CMTI`, we read it,
decode it, reassemble long texts (parts are persisted, so a restart loses nothing), hand the
message to the core, and delete the modem's slot only after the core committed it. A sweep of
the storage at start-up and every few minutes is the safety net. Sending is one `AT+CMGS` per
part; each part's message reference is recorded so delivery reports (`+CDS` or `+CDSI`) can be
matched. A vanished port, a read error or a modem that stops answering leads to a reconnect with
backoff and a full re-initialisation; messages wait in the outbox meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.model import Address, DeliveryReport, Inbound, Outbound
from channels.base import (
    DeliveryHandler,
    InboundHandler,
    PermanentSendError,
    RetryableSendError,
    SendResult,
)
from channels.sms import pdu
from channels.sms.at import AtError, AtPort, AtTimeout, CmeError, CmsError, PortClosed, Urc, cancel_and_wait
from channels.sms.policy import SmsPolicy

log = logging.getLogger(__name__)

Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def open_serial(port: str, baud: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the port with pyserial-asyncio, exclusively (a second process gets a clear error)."""
    import serial_asyncio

    return await serial_asyncio.open_serial_connection(url=port, baudrate=baud, exclusive=True)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class PartStore(Protocol):
    """What the channel needs persisted (implemented by `storage.sms.SmsRepo`)."""

    async def add_part(self, key: tuple[str, int, int], part: int, pdu: str, slot: int | None,
                       storage: str | None, now: datetime) -> list[Any]: ...

    async def parts(self, key: tuple[str, int, int]) -> list[Any]: ...

    async def all_parts(self) -> list[Any]: ...

    async def delete_set(self, key: tuple[str, int, int]) -> None: ...

    async def forget_slots(self, part_ids: list[int]) -> None: ...

    async def expired_sets(self, before: datetime) -> list[tuple[str, int, int]]: ...

    async def sent_parts(self, outbox_id: int) -> dict[int, int]: ...

    async def record_sent(self, outbox_id: int, part: int, message_ref: int, now: datetime) -> None: ...

    async def prune_sent(self, before: datetime) -> int: ...


@dataclass(slots=True)
class ModemConfig:
    port: str | None = None
    baud: int = 115200
    pin: str | None = None
    smsc: str | None = None
    max_parts: int = pdu.DEFAULT_MAX_PARTS
    command_timeout: float = 5.0
    cmgs_timeout: float = 60.0
    reassembly_timeout: float = 600.0
    sweep_interval: float = 300.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    sms_done_timeout: float = 30.0
    ready_wait: float = 5.0
    """How long a send waits for a (re)connecting modem before it is put back in the outbox."""
    validity: int | None = pdu.VALIDITY_24H
    max_held_slots: int = 20
    """Modem slots incomplete long texts may hold; beyond it a part's slot is freed once the part is
    committed to our database (its text is safe there), so a huge text cannot fill the modem."""
    report_grace: float = 0.5
    """Seconds a status report waits after its send returned, so the outbox has recorded the part."""


# -- +CMS ERROR classification -------------------------------------------------------------------

CMS_REASONS = {
    1: "unassigned (unallocated) number", 8: "operator determined barring", 10: "call barred",
    17: "network failure", 21: "short message transfer rejected", 22: "recipient memory full",
    27: "destination out of service", 28: "unidentified subscriber", 29: "facility rejected",
    30: "unknown subscriber", 38: "network out of order", 41: "temporary failure", 42: "congestion",
    47: "resources unavailable", 50: "facility not subscribed", 69: "facility not implemented",
    96: "invalid mandatory information", 111: "protocol error", 300: "modem failure",
    301: "SMS service reserved", 302: "operation not allowed", 303: "operation not supported",
    304: "invalid PDU mode parameter", 310: "SIM not inserted", 311: "SIM PIN required", 313: "SIM failure",
    314: "SIM busy", 315: "SIM wrong", 320: "memory failure", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 500: "unknown error (some LTE networks refuse SMS: try 3G)",
    512: "SIM not ready", 515: "modem busy, please wait", 14: "SIM busy",
}
RETRYABLE_CMS = frozenset({14, 17, 22, 27, 38, 41, 42, 47, 111, 300, 302, 314, 320, 322, 331, 332, 500, 512, 515})
UNREACHABLE_CMS = frozenset({1, 28, 30})


def classify_cms(code: int | None, text: str = "") -> RetryableSendError | PermanentSendError:
    """Turn a `+CMS ERROR` into the outbox's retry decision."""
    reason = f"+CMS ERROR {code}: {CMS_REASONS.get(code or -1, text or 'unknown')}"
    if code is None or code in RETRYABLE_CMS or code >= 512:
        return RetryableSendError(reason, retry_after=30.0 if code in (515, 14, 314, 512) else None)
    return PermanentSendError(reason, unreachable=code in UNREACHABLE_CMS)


# -- choices from the modem's "=?" answers ---------------------------------------------------------


def _ranges(text: str) -> list[set[int]]:
    """Parse `(0-2),(0-3),(0,2)` into [{0,1,2},{0,1,2,3},{0,2}]."""
    groups: list[set[int]] = []
    for group in re.findall(r"\(([^)]*)\)", text):
        values: set[int] = set()
        for item in group.split(","):
            item = item.strip()
            if "-" in item:
                lo, hi = item.split("-", 1)
                values.update(range(int(lo), int(hi) + 1))
            elif item.isdigit():
                values.add(int(item))
        groups.append(values)
    return groups


def choose_cnmi(answer: str) -> tuple[int, int, int, int, int]:
    """mode 2 (buffer in the modem when the link is busy), mt 1 (+CMTI), bm 0, ds 1 (+CDS) or 2 (+CDSI), bfr 0."""
    groups = _ranges(answer) + [set()] * 5
    mode = 2 if 2 in groups[0] else 1
    mt = 1
    ds = 1 if 1 in groups[3] else (2 if 2 in groups[3] else 0)
    bfr = 0 if 0 in groups[4] or not groups[4] else min(groups[4])
    return (mode, mt, 0, ds, bfr)


def choose_storage(answer: str) -> str:
    """ME for all three memories when offered (phone memory is larger than the SIM's), else SM."""
    groups = [set(re.findall(r'"(\w+)"', g)) for g in re.findall(r"\(([^)]*)\)", answer)]
    if groups and all("ME" in g for g in groups[:3]):
        return "ME"
    return "SM"


# -- the channel --------------------------------------------------------------------------------------


class ModemChannel:
    name = "sms"

    def __init__(self, config: ModemConfig, store: PartStore, clock: Clock, *, opener: Opener = open_serial,
                 simulator: Any = None, policy: SmsPolicy | None = None) -> None:
        self.policy = policy or SmsPolicy()
        self.config = config
        self.store = store
        self.clock = clock
        self.opener = opener
        self.simulator = simulator
        """A `SimulatedModem` when this channel runs against the simulator (demo, tests)."""
        self.at: AtPort | None = None
        self.ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._sms_done = asyncio.Event()
        self._booting = False
        self._events: asyncio.Queue[Urc] = asyncio.Queue()
        self._rx_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_inbound: InboundHandler | None = None
        self._on_delivery: DeliveryHandler | None = None
        self._stopping = False
        self._receiving = True
        self.storage = "ME"
        self._cmms = False
        self.cnmi: tuple[int, int, int, int, int] | None = None
        self.connects = 0
        self._send_lock = asyncio.Lock()
        self._send_waiting = 0
        self._swept_away: set[tuple[str, int]] = set()
        """Slots deleted while a sweep works through its listing (so it skips them)."""
        self._inflight_refs: set[int] = set()
        self._sent_at: dict[int, float] = {}
        self._report_tasks: set[asyncio.Task[None]] = set()
        self.on_handled: list[Callable[[Inbound], None]] = []
        """Hooks called after a message was handed over (benchmarks measure with it)."""

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self._on_inbound = on_inbound
        self._on_delivery = on_delivery
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._supervise(), name="sms-supervisor"),
            asyncio.create_task(self._process_events(), name="sms-events"),
            asyncio.create_task(self._periodic(), name="sms-periodic"),
        ]
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=max(self.config.ready_wait, 1.0))
        except TimeoutError:
            log.warning("SMS modem not ready yet port=%s; will keep trying in the background", self.config.port)

    async def stop_receiving(self) -> None:
        self._receiving = False

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait([*self._tasks, *self._report_tasks])
        self._tasks = []
        await self._close_port()

    async def _close_port(self) -> None:
        self.ready.clear()
        if self.at is not None:
            at, self.at = self.at, None
            await at.close()

    def _drop(self, why: str) -> None:
        """Give up on this connection: the supervisor reconnects and re-initialises."""
        if not self._lost.is_set():
            log.warning("SMS modem connection dropped: %s", why)
        self.ready.clear()
        self._lost.set()

    async def _supervise(self) -> None:
        delay = self.config.reconnect_min
        while not self._stopping:
            try:
                await self._connect()
                await self._initialise()
                self.ready.set()
                delay = self.config.reconnect_min
                log.info("SMS modem ready port=%s storage=%s cnmi=%s", self.config.port, self.storage, self.cnmi)
                await self._sweep_safely()
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("SMS modem not usable port=%s error=%s; retrying in %.0f s", self.config.port, exc, delay)
            await self._close_port()
            if self._stopping:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max)

    async def _connect(self) -> None:
        if not self.config.port:
            raise RuntimeError("no modem port configured (HUDDLE_SMS_PORT)")
        reader, writer = await self.opener(self.config.port, self.config.baud)
        self._lost.clear()
        self._sms_done.clear()
        self._booting = False
        self.at = AtPort(reader, writer, self._urc, self._port_closed)
        self.at.start()
        self.connects += 1
        self._cmms = False

    def _port_closed(self, exc: BaseException | None) -> None:
        if self._stopping:
            self.ready.clear()
            return
        self._drop(f"port closed: {exc or 'by us'}")

    async def _cmd(self, command: str, timeout: float | None = None, expect: str | None = None) -> list[str]:
        at = self.at
        if at is None:
            raise PortClosed(command, "not connected")
        try:
            return await at.command(command, timeout or self.config.command_timeout, expect)
        except AtTimeout:
            self._drop(f"no answer to {command}")
            raise

    async def _initialise(self) -> None:
        cfg = self.config
        for attempt in range(5):
            try:
                await self._cmd("AT", timeout=2.0)
                break
            except AtTimeout:
                if attempt == 4:
                    raise
                self._lost.clear()  # a modem still booting: keep this connection and ask again
        await self._cmd("ATE0")
        await self._cmd("AT+CMEE=1")
        await self._unlock_sim()
        if self._booting:
            await self._wait_sms_done()
        for attempt in range(3):
            try:
                await self._cmd("AT+CMGF=0")
                storage_answer = await self._cmd("AT+CPMS=?", expect="+CPMS")
                break
            except (CmsError, CmeError) as exc:
                if attempt == 2:
                    raise
                log.info("modem SMS service not ready yet (%s); waiting for SMS DONE", exc)
                await self._wait_sms_done()
        self.storage = choose_storage(" ".join(storage_answer))
        await self._cmd(f'AT+CPMS="{self.storage}","{self.storage}","{self.storage}"', expect="+CPMS")
        cnmi_answer = await self._cmd("AT+CNMI=?", expect="+CNMI")
        self.cnmi = choose_cnmi(" ".join(cnmi_answer))
        await self._cmd("AT+CNMI=" + ",".join(map(str, self.cnmi)))
        if cfg.smsc:
            await self._cmd(f'AT+CSCA="{cfg.smsc}",{145 if cfg.smsc.startswith("+") else 129}')

    async def _unlock_sim(self) -> None:
        answer = " ".join(await self._cmd("AT+CPIN?", expect="+CPIN"))
        if "READY" in answer:
            return
        if "SIM PIN" in answer and "PIN2" not in answer:
            if not self.config.pin:
                raise RuntimeError("the SIM asks for a PIN: set HUDDLE_SMS_PIN")
            await self._cmd(f'AT+CPIN="{self.config.pin}"', timeout=15)
            self._booting = True  # the SMS service starts after the unlock, announced by SMS DONE
            return
        raise RuntimeError(f"SIM not usable: {answer.strip() or 'no answer'} (PUK needed or SIM missing?)")

    async def _wait_sms_done(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sms_done.wait(), self.config.sms_done_timeout)

    # -- unsolicited codes --------------------------------------------------------------------------

    def _urc(self, urc: Urc) -> None:
        if urc.name == "RDY":
            if self.ready.is_set():
                self._drop("modem restarted (RDY)")
            self._booting = True
            self._sms_done.clear()
        elif urc.name == "SMS DONE":
            self._sms_done.set()
        self._events.put_nowait(urc)

    async def _process_events(self) -> None:
        while not self._stopping:
            urc = await self._events.get()
            try:
                if not self._receiving:
                    continue
                if urc.name == "+CMTI":
                    mem, index = _mem_index(urc.args)
                    if index is not None:
                        await self._receive_slot(mem or self.storage, index)
                elif urc.name == "+CMT":
                    await self._receive_pushed(urc)
                elif urc.name == "+CDS" and urc.pdu:
                    await self._status_report(urc.pdu, _int(urc.args.split(",")[-1]))
                elif urc.name == "+CDSI":
                    mem, index = _mem_index(urc.args)
                    if index is not None:
                        await self._read_report_slot(mem or "SR", index)
                else:
                    log.debug("modem URC %s", urc.line)
            except asyncio.CancelledError:
                raise
            except (AtError, OSError) as exc:
                log.warning("could not handle %s: %s (the sweep will pick it up)", urc.line, exc)
            except Exception:
                log.exception("error handling %s", urc.line)

    # -- receiving --------------------------------------------------------------------------------------

    async def _select(self, mem: str) -> None:
        if mem != self.storage:
            await self._cmd(f'AT+CPMS="{mem}","{self.storage}","{self.storage}"', expect="+CPMS")

    async def _restore(self, mem: str) -> None:
        if mem != self.storage:
            await self._cmd(f'AT+CPMS="{self.storage}","{self.storage}","{self.storage}"', expect="+CPMS")

    async def _receive_slot(self, mem: str, index: int) -> None:
        async with self._rx_lock:
            await self._select(mem)
            try:
                lines = await self._cmd(f"AT+CMGR={index}", expect="+CMGR")
            finally:
                await self._restore(mem)
            if not lines:
                return  # already handled (by the sweep) or the slot is empty
            length = _int(lines[0].split(",")[-1]) if lines[0].startswith("+CMGR") else None
            pdu_hex = lines[1] if len(lines) > 1 else ""
            await self._handle_pdu(mem, index, pdu_hex, length)

    async def _receive_pushed(self, urc: Urc) -> None:
        """+CMT (a message pushed without storage, if a modem is set that way): nothing to delete."""
        async with self._rx_lock:
            await self._handle_pdu(None, None, urc.pdu or "", _int(urc.args.split(",")[-1]))

    async def _handle_pdu(self, mem: str | None, index: int | None, pdu_hex: str, length: int | None) -> None:
        try:
            message = pdu.decode_deliver(pdu_hex, length)
        except pdu.PduError as exc:
            log.warning("malformed SMS PDU deleted slot=%s:%s error=%s hex=%s", mem, index, exc, pdu_hex[:400])
            await self._delete(mem, index)
            return
        pdu_hex = _with_sca(pdu_hex, length)
        concat = message.concat
        if concat is None or concat.total == 1:
            tpdu_hex = pdu_hex[2 + 2 * int(pdu_hex[:2], 16) :]
            await self._hand_over(message.sender, message.text, "sms-" + _digest(tpdu_hex))
            await self._delete(mem, index)
            return
        key = (message.sender, concat.reference, concat.total)
        parts = await self.store.add_part(key, concat.part, pdu_hex, index, mem, self.clock.now())
        if len({p.part for p in parts}) >= concat.total:
            await self._complete(key, parts)
            return
        held = [p for p in await self.store.all_parts() if p.slot is not None]
        if len(held) > self.config.max_held_slots and await self._delete(mem, index):
            await self.store.forget_slots([p.id for p in parts if p.part == concat.part])

    async def _complete(self, key: tuple[str, int, int], parts: list[Any], partial: bool = False) -> None:
        """Hand over a (possibly incomplete) set, delete its slots, then forget its parts."""
        sender, _ref, total = key
        by_number = {p.part: p for p in parts}
        decoded = {n: pdu.decode_deliver(p.pdu) for n, p in sorted(by_number.items())}
        if partial and len(decoded) < total:
            chunks: list[str] = []
            run: list[pdu.DeliverPdu] = []
            for n in range(1, total + 1):
                if n in decoded:
                    run.append(decoded[n])
                else:
                    if run:
                        chunks.append(pdu.join_parts(run))
                        run = []
                    chunks.append(" […] ")
            if run:
                chunks.append(pdu.join_parts(run))
            text = "".join(chunks)
        else:
            text = pdu.join_parts(list(decoded.values()))
        digest = _digest("|".join([sender, *[f"{n}:{by_number[n].pdu}" for n in sorted(by_number)]]))
        await self._hand_over(sender, text, f"sms-{'partial-' if partial else ''}{digest}")
        deleted = True
        for p in parts:
            if p.slot is not None:
                deleted = await self._delete(p.storage, p.slot) and deleted
        if deleted:
            await self.store.delete_set(key)
        else:
            log.info("slots of an SMS set could not be deleted yet; the next sweep retries sender=%s", sender)

    async def _hand_over(self, sender: str, text: str, provider_id: str) -> None:
        assert self._on_inbound is not None
        text = text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
        message = Inbound(Address("sms", sender), text, provider_id, self.clock.now())
        await self._on_inbound(message)  # returns once committed
        for hook in self.on_handled:
            hook(message)

    async def _delete(self, mem: str | None, index: int | None) -> bool:
        if mem is None or index is None:
            return True
        try:
            await self._select(mem)
            try:
                await self._cmd(f"AT+CMGD={index}")
            finally:
                await self._restore(mem)
            self._swept_away.add((mem, index))
            return True
        except AtError as exc:
            log.warning("could not delete SMS slot %s:%s: %s", mem, index, exc)
            return False

    async def sweep(self) -> int:
        """Read everything stored (the safety net) and settle complete and timed-out sets."""
        handled = 0
        async with self._rx_lock:
            lines = await self._cmd("AT+CMGL=4", timeout=60, expect="+CMGL")
            entries: list[tuple[int, int | None, str]] = []
            for i, line in enumerate(lines):
                if line.startswith("+CMGL:") and i + 1 < len(lines):
                    fields = line.split(":", 1)[1].split(",")
                    entries.append((int(fields[0]), _int(fields[-1]), lines[i + 1]))
            present = {idx: _with_sca(h, n) for idx, n, h in entries}
            stale = [p.id for p in await self.store.all_parts()
                     if p.slot is not None and (p.storage != self.storage or present.get(p.slot) != p.pdu)]
            await self.store.forget_slots(stale)
            self._swept_away.clear()
            for idx, length, pdu_hex in entries:
                if (self.storage, idx) in self._swept_away:
                    continue  # settled with an earlier part of its set, already deleted
                await self._handle_pdu(self.storage, idx, pdu_hex, length)
                handled += 1
            await self._settle_stored_sets()
        return handled

    async def _settle_stored_sets(self) -> None:
        sets: dict[tuple[str, int, int], list[Any]] = {}
        for p in await self.store.all_parts():
            sets.setdefault(p.key, []).append(p)
        cutoff = self.clock.now() - timedelta(seconds=self.config.reassembly_timeout)
        expired = set(await self.store.expired_sets(cutoff))
        for key, parts in sets.items():
            if len({p.part for p in parts}) >= key[2]:
                await self._complete(key, parts)
            elif key in expired:
                log.warning("SMS parts missing after %.0f s; delivering what arrived sender=%s parts=%d/%d",
                            self.config.reassembly_timeout, key[0], len(parts), key[2])
                await self._complete(key, parts, partial=True)

    async def _sweep_safely(self) -> None:
        try:
            await self.sweep()
        except (AtError, OSError) as exc:
            log.warning("SMS sweep failed: %s", exc)
        except Exception:
            log.exception("SMS sweep failed")

    async def _periodic(self) -> None:
        """Reassembly timeouts (every minute) and the slow sweep, on the injected clock."""
        tick = max(1.0, min(60.0, self.config.reassembly_timeout / 4))
        since_sweep = 0.0
        while not self._stopping:
            await self.clock.sleep(tick)
            since_sweep += tick
            if not self._receiving:
                continue
            try:
                if since_sweep >= self.config.sweep_interval and self.ready.is_set():
                    since_sweep = 0.0
                    await self._sweep_safely()
                    await self.store.prune_sent(self.clock.now() - timedelta(days=3))
                else:
                    async with self._rx_lock:
                        await self._settle_stored_sets()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS periodic check failed")

    # -- delivery reports ----------------------------------------------------------------------------------

    async def _read_report_slot(self, mem: str, index: int) -> None:
        async with self._rx_lock:
            await self._select(mem)
            try:
                lines = await self._cmd(f"AT+CMGR={index}", expect="+CMGR")
                if len(lines) >= 2:
                    await self._status_report(lines[1], _int(lines[0].split(",")[-1]))
                await self._cmd(f"AT+CMGD={index}")
            finally:
                await self._restore(mem)

    async def _status_report(self, pdu_hex: str, length: int | None) -> None:
        try:
            report = pdu.decode_status_report(pdu_hex, length)
        except pdu.PduError as exc:
            log.warning("malformed status report ignored error=%s hex=%s", exc, pdu_hex[:200])
            return
        if not report.final:
            log.info("SMS still pending at the network mr=%s status=%#04x", report.reference, report.status)
            return
        task = asyncio.create_task(self._hand_report(report))
        self._report_tasks.add(task)
        task.add_done_callback(self._report_tasks.discard)

    async def _hand_report(self, report: pdu.StatusReportPdu) -> None:
        """Hand a report over once the outbox can know its reference (the send has returned)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.config.report_grace / 10)  # let a send that just got its +CMGS resume
        deadline = loop.time() + self.config.cmgs_timeout
        while report.reference in self._inflight_refs and loop.time() < deadline:
            await asyncio.sleep(0.02)
        done = self._sent_at.get(report.reference, loop.time())
        if (wait := done + self.config.report_grace - loop.time()) > 0:
            await asyncio.sleep(wait)
        assert self._on_delivery is not None
        address = Address("sms", report.recipient) if report.recipient.startswith("+") else None
        try:
            await self._on_delivery(DeliveryReport("sms", str(report.reference), report.delivered, report.reason,
                                                   address=address, at=report.discharged))
        except Exception:
            log.exception("delivery report not recorded mr=%s", report.reference)

    # -- sending -------------------------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        cfg = self.config
        try:
            parts = pdu.encode_submit(outbound.address.id, outbound.body, reference=(outbound.id or 0) % 256,
                                      validity=cfg.validity, max_parts=cfg.max_parts)
        except pdu.TooLong as exc:
            raise PermanentSendError(str(exc)) from exc
        except UnicodeEncodeError as exc:
            raise PermanentSendError(f"text holds a character no phone can show (position {exc.start})") from exc
        except ValueError as exc:
            raise PermanentSendError(str(exc), unreachable=True) from exc
        self._send_waiting += 1
        try:
            await self._send_lock.acquire()
        finally:
            self._send_waiting -= 1
        try:
            return await self._send_locked(outbound, parts)
        finally:
            self._send_lock.release()

    async def _send_locked(self, outbound: Outbound, parts: list[pdu.SubmitPdu]) -> SendResult:
        cfg = self.config
        try:
            await asyncio.wait_for(self.ready.wait(), cfg.ready_wait)
        except TimeoutError:
            raise RetryableSendError("SMS modem not connected", retry_after=30.0) from None
        multipart = len(parts) > 1
        refs = await self.store.sent_parts(outbound.id) if multipart and outbound.id is not None else {}
        at = self.at
        if at is None:
            raise RetryableSendError("SMS modem not connected", retry_after=30.0)
        todo = [p for p in parts if p.part not in refs]
        more = len(todo) > 1 or self._send_waiting > 0
        if more != self._cmms:
            with contextlib.suppress(AtError):
                await self._cmd(f"AT+CMMS={1 if more else 0}")  # hold the radio link while more is queued
                self._cmms = more
        try:
            await self._send_parts(at, outbound, todo, refs)
        finally:
            now = asyncio.get_running_loop().time()
            for mr in self._inflight_refs:
                self._sent_at[mr] = now
            self._inflight_refs.clear()
            if len(self._sent_at) > 512:
                self._sent_at = dict(list(self._sent_at.items())[-256:])
        return SendResult([str(refs[p.part]) for p in parts])

    async def _send_parts(
        self, at: AtPort, outbound: Outbound, todo: list[pdu.SubmitPdu], refs: dict[int, int]
    ) -> None:
        cfg = self.config
        for part in todo:
            try:
                lines = await at.send_pdu(part.tpdu_length, part.hex, timeout=cfg.cmgs_timeout)
            except CmsError as exc:
                raise classify_cms(exc.code, exc.message) from exc
            except (AtTimeout, PortClosed) as exc:
                self._drop(f"send: {exc}")
                raise RetryableSendError(f"modem did not answer: {exc}", retry_after=5.0) from exc
            except AtError as exc:
                raise RetryableSendError(f"modem refused: {exc}") from exc
            mr = next((_int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("+CMGS:")), None)
            if mr is None:
                raise RetryableSendError(f"modem gave no message reference: {lines!r}")
            refs[part.part] = mr
            self._inflight_refs.add(mr)
            if outbound.id is not None and part is not todo[-1]:  # progress matters only if a later part fails
                await self.store.record_sent(outbound.id, part.part, mr, self.clock.now())

    # -- the demo -------------------------------------------------------------------------------------------

    async def simulate_inbound(self, address_id: str, text: str) -> None:
        """Text the store from `address_id` through the simulated modem (demo and console)."""
        if self.simulator is None:
            raise RuntimeError("simulate_inbound needs the SMS simulator (no real modem can be texted from here)")
        self.simulator.deliver(address_id, text)


def _mem_index(args: str) -> tuple[str | None, int | None]:
    fields = [f.strip().strip('"') for f in args.split(",")]
    if len(fields) >= 2:
        return fields[0] or None, _int(fields[1])
    return None, _int(fields[0]) if fields else None


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _with_sca(pdu_hex: str, length: int | None) -> str:
    """Normalise to 'with SMSC prefix' so a stored part always decodes the same way."""
    pdu_hex = pdu_hex.strip().upper()
    if length is not None and len(pdu_hex) == 2 * length:
        return "00" + pdu_hex
    return pdu_hex


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]
