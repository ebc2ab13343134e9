"""Receiving: every stored or pushed PDU ends as a delivered text, a delivery report or a held raw PDU.

A modem slot is deleted only after what it held is committed: the text to the inbox (through the
core's `on_inbound`), a part of a long text to `sms_parts`, anything else raw to `sms_held`. So
whatever happens between reading and deleting (a crash, a vanished port), the slot is read again
and the inbox's deduplication by provider id keeps the text from being delivered twice.

Listings are read defensively: in a `+CMGR`/`+CMGL` answer the PDU is the hex line that matches the
announced length; vendor codes, blank or invalid lines and echo are logged and skipped, never taken
for a PDU and never deleted in its place. An entry whose PDU cannot be found keeps its slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.model import Address, Inbound
from channels.base import InboundHandler
from channels.sms import pdu
from channels.sms.at import AtError, Urc, is_hex
from channels.sms.link import Clock, ModemConfig, ModemLink

log = logging.getLogger("channels.sms.modem")

RX_URCS = frozenset({"+CMTI", "+CMT", "+CDS", "+CDSI"})
"""Unsolicited codes that announce something to read."""
TEXT_URCS = frozenset({"+CMTI", "+CMT"})
"""Those that announce a text: sends wait until it is committed (a STOP goes before replies). A
status report does not hold sends back; it is matched whenever it is read."""


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

    async def hold(self, digest: str, pdu: str, *, reason: str, now: datetime, slot: int | None = None,
                   storage: str | None = None, outcome: str = "held", sender: str | None = None,
                   text: str | None = None, provider_id: str | None = None) -> bool: ...


# -- listings ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One message of a `+CMGL` listing or a `+CMGR` answer."""

    index: int | None
    length: int | None
    pdu: str | None = None
    candidates: list[str] = field(default_factory=list)
    fits: bool = False
    """The chosen PDU has the announced length: no doubt which line it is."""


def _int(text: str) -> int | None:
    text = text.strip().strip('"')
    return int(text) if text.isdigit() else None


def _fits(hex_line: str, length: int | None) -> bool:
    """Does this hex line have the announced TPDU length (with or without its SMSC prefix)?"""
    if length is None or len(hex_line) % 2:
        return False
    octets = len(hex_line) // 2
    sca = int(hex_line[:2], 16) + 1
    return octets in (length, length + sca)


def parse_listing(lines: list[str], prefix: str, index: int | None = None) -> tuple[list[Entry], list[str]]:
    """Entries of a `+CMGL`/`+CMGR` answer, and the lines that were neither a header nor its PDU.

    `+CMGL: <index>,<stat>,[<alpha>],<length>` / `+CMGR: <stat>,[<alpha>],<length>`, each followed by
    its PDU. Between them anything may appear; the PDU is the hex line of the announced length, or
    else the longest hex line (a firmware that counts the length its own way; the caller reads such
    a slot a second time before trusting it).
    """
    entries: list[Entry] = []
    skipped: list[str] = []
    current: Entry | None = None
    head = prefix + ":"
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(head):
            fields = line[len(head):].split(",")
            slot = _int(fields[0]) if prefix == "+CMGL" else index
            current = Entry(slot, _int(fields[-1]))
            entries.append(current)
        elif is_hex(line) and len(line) % 2 == 0:
            if current is None:
                current = Entry(index, None)  # an answer whose header was lost: still its PDU
                entries.append(current)
            current.candidates.append(line)
        else:
            skipped.append(line)
    for entry in entries:
        fitting = [c for c in entry.candidates if _fits(c, entry.length)]
        chosen = fitting[0] if fitting else max(entry.candidates, key=len, default=None)
        entry.pdu, entry.fits = chosen, bool(fitting)
        skipped += [c for c in entry.candidates if c is not chosen]
    return entries, skipped


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# -- the receiver -----------------------------------------------------------------------------------


class Receiver:
    def __init__(self, link: ModemLink, store: PartStore, clock: Clock, config: ModemConfig) -> None:
        self.link = link
        self.store = store
        self.clock = clock
        self.config = config
        self.on_report: Callable[[pdu.StatusReportPdu], Awaitable[None]] | None = None
        """Where final status reports go (the sender's `report`); committed before the slot is freed."""
        self.on_inbound: InboundHandler | None = None
        self.on_handled: list[Callable[[Inbound], None]] = []
        """Hooks called after a message was handed over (benchmarks measure with it)."""
        self.receiving = True
        self._events: asyncio.Queue[Urc] = asyncio.Queue()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._swept_away: set[tuple[str, int]] = set()
        """Slots deleted while a sweep works through its listing (so it skips them)."""
        self.sweeps: set[asyncio.Task[None]] = set()
        """Sweeps started because the modem became ready (what arrived while it was away)."""
        link.ready_listeners.append(self._sweep_soon)

    # -- announcements ------------------------------------------------------------------------------

    def urc(self, urc: Urc) -> None:
        if urc.name in TEXT_URCS:
            self._pending += 1
            self._idle.clear()
        self._events.put_nowait(urc)

    async def wait_idle(self, timeout: float) -> None:
        """Wait (up to `timeout`) until everything announced has been read and committed."""
        if self._idle.is_set():
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.info("sending although %d announced message(s) are not read yet", self._pending)

    async def process_events(self) -> None:
        while True:
            urc = await self._events.get()
            try:
                if self.receiving:
                    await self._event(urc)
            except asyncio.CancelledError:
                raise
            except (AtError, OSError, TimeoutError) as exc:
                log.warning("could not handle %s: %s (the sweep will pick it up)", urc.line, exc or "modem not ready")
            except Exception:
                log.exception("error handling %s", urc.line)
            finally:
                if urc.name in TEXT_URCS:
                    self._pending = max(0, self._pending - 1)
                    if self._pending == 0:
                        self._idle.set()

    async def _event(self, urc: Urc) -> None:
        if urc.name in RX_URCS and not self.link.ready.is_set():
            await asyncio.wait_for(self.link.ready.wait(), self.config.ready_wait)
        if urc.name == "+CMTI":
            mem, index = _mem_index(urc.args)
            if index is not None:
                await self.read_slot(mem or self.link.state.storage, index)
        elif urc.name == "+CMT":
            async with self._lock:
                await self._settle(None, None, pdu.read_pdu(urc.pdu or "", _int(urc.args.split(",")[-1])))
        elif urc.name == "+CDS":
            if urc.pdu:
                async with self._lock:
                    await self._settle(None, None, pdu.read_pdu(urc.pdu, _int(urc.args.split(",")[-1]), report=True))
            else:
                log.warning("+CDS without its PDU line: %r", urc.line)
        elif urc.name == "+CDSI":
            mem, index = _mem_index(urc.args)
            if index is not None:
                await self.read_slot(mem or "SR", index)
        else:
            log.debug("modem URC %s", urc.line)

    # -- reading -----------------------------------------------------------------------------------

    async def read_slot(self, mem: str, index: int) -> None:
        async with self._lock:
            await self._read_slot_locked(mem, index)

    async def _read_entry(self, mem: str, index: int) -> Entry | None:
        lines = await self.link.in_memory(mem, f"AT+CMGR={index}", expect="+CMGR")
        entries, skipped = parse_listing(lines, "+CMGR", index)
        if skipped:
            log.warning("skipped lines in the answer for slot %s:%s: %r", mem, index, skipped[:5])
        if not entries:
            return None  # an empty slot (already handled, or another storage): a bare OK
        if entries[0].pdu is None:
            log.warning("no PDU in the answer for slot %s:%s; the slot is kept lines=%r", mem, index, lines[:6])
            return None
        return entries[0]

    async def _read_slot_locked(self, mem: str, index: int, first: Entry | None = None) -> bool:
        entry = first or await self._read_entry(mem, index)
        if entry is None:
            return False
        if not entry.fits:  # not the announced length: only a second, identical reading is trusted
            again = await self._read_entry(mem, index)
            if again is None or (again.pdu != entry.pdu and not again.fits):
                log.warning("slot %s:%s read twice with different results; kept for the next sweep", mem, index)
                return False
            entry = again
        assert entry.pdu is not None
        await self._settle(mem, index, pdu.read_pdu(entry.pdu, entry.length))
        return True

    async def _settle(self, mem: str | None, index: int | None, received: pdu.Received) -> None:
        """Commit what a PDU is (text, part, report or raw), then free its slot."""
        if received.kind is pdu.Kind.REPORT:
            assert received.report is not None and self.on_report is not None
            await self.on_report(received.report)  # committed before its slot is freed
            await self.delete(mem, index)
            return
        d = received.deliver
        if received.kind is pdu.Kind.HELD or d is None:
            await self._hold(received, mem, index)
            await self.delete(mem, index)
            return
        concat = d.concat
        if concat is None or concat.total == 1:
            provider_id = "sms-" + digest(received.tpdu)
            await self._hand_over(d, d.text, provider_id)
            if d.notes:
                await self._hold(received, mem, index, lenient=True, provider_id=provider_id)
            await self.delete(mem, index)
            return
        if d.notes:  # the part is kept in sms_parts, normalised; keep the PDU as the modem gave it too
            await self._hold(received, mem, index, lenient=True)
        key = (d.sender, concat.reference, concat.total)
        parts = await self.store.add_part(key, concat.part, received.pdu, index, mem, self.clock.now())
        if len({p.part for p in parts}) >= concat.total:
            await self._complete(key, parts)
            return
        held = [p for p in await self.store.all_parts() if p.slot is not None]
        if len(held) > self.config.max_held_slots and await self.delete(mem, index):
            await self.store.forget_slots([p.id for p in parts if p.part == concat.part])

    async def _hold(self, received: pdu.Received, mem: str | None, index: int | None, *, lenient: bool = False,
                    provider_id: str | None = None) -> None:
        """Keep the raw PDU: `held` (never handed over) or, `lenient`, `delivered` with what could be read."""
        d = received.deliver
        text = d.text if d is not None and d.encoding is not pdu.Encoding.BINARY else None
        if not lenient:
            reason = received.reason or "not a text"
            outcome = "held"
        else:
            reason = "read leniently: " + "; ".join(received.notes)
            outcome = "delivered"
        new = await self.store.hold(digest(received.tpdu), received.pdu, reason=reason, now=self.clock.now(),
                                    slot=index, storage=mem, outcome=outcome, sender=d.sender if d else None,
                                    text=text, provider_id=provider_id)
        if new and outcome == "held":
            log.warning("SMS held raw (not handed to a handler) slot=%s:%s reason=%s hex=%s", mem, index, reason,
                        received.pdu[:400])
        elif new:
            log.info("SMS delivered with what could be read slot=%s:%s notes=%s", mem, index, reason)

    async def _complete(self, key: tuple[str, int, int], parts: list[Any], partial: bool = False) -> None:
        """Hand over a (possibly incomplete) set, delete its slots, then forget its parts."""
        sender, _ref, total = key
        by_number = {p.part: p for p in parts}
        decoded: dict[int, pdu.DeliverPdu] = {}
        first: pdu.DeliverPdu | None = None
        for n, p in sorted(by_number.items()):
            received = pdu.read_pdu(p.pdu)
            if received.deliver is None:  # cannot happen for a part we stored, but never lose it
                await self._hold(received, p.storage, p.slot)
                continue
            decoded[n] = received.deliver
            first = first or received.deliver
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
            text = pdu.join_parts([decoded[n] for n in sorted(decoded)])
        part_digest = digest("|".join([sender, *[f"{n}:{by_number[n].pdu}" for n in sorted(by_number)]]))
        provider_id = f"sms-{'partial-' if partial else ''}{part_digest}"
        if first is not None:
            await self._hand_over(first, text, provider_id)
        deleted = True
        for p in parts:
            if p.slot is not None:
                deleted = await self.delete(p.storage, p.slot) and deleted
        if deleted:
            await self.store.delete_set(key)
        else:
            log.info("slots of an SMS set could not be deleted yet; the next sweep retries sender=%s", sender)

    async def _hand_over(self, d: pdu.DeliverPdu, text: str, provider_id: str) -> None:
        assert self.on_inbound is not None
        text = text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
        message = Inbound(Address("sms", d.sender), text, provider_id, self.clock.now(),
                          sender_type=d.sender_type.value)
        await self.on_inbound(message)  # returns once committed
        for hook in self.on_handled:
            hook(message)

    async def delete(self, mem: str | None, index: int | None) -> bool:
        if mem is None or index is None:
            return True
        try:
            await self.link.in_memory(mem, f"AT+CMGD={index}")
            self._swept_away.add((mem, index))
            return True
        except AtError as exc:
            log.warning("could not delete SMS slot %s:%s: %s", mem, index, exc)
            return False

    # -- the safety net ----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Read everything stored (the safety net) and settle complete and timed-out sets."""
        handled = 0
        storage = self.link.state.storage
        async with self._lock:
            lines = await self.link.cmd("AT+CMGL=4", timeout=60, expect="+CMGL")
            entries, skipped = parse_listing(lines, "+CMGL")
            if skipped:
                log.warning("skipped %d line(s) in the storage listing: %r", len(skipped), skipped[:5])
            readings = {e.index: pdu.read_pdu(e.pdu, e.length) for e in entries
                        if e.pdu and e.fits and e.index is not None}
            stale = [p.id for p in await self.store.all_parts()
                     if p.slot is not None and (p.storage != storage or
                                                (r := readings.get(p.slot)) is None or r.pdu != p.pdu)]
            await self.store.forget_slots(stale)
            self._swept_away.clear()
            for entry in entries:
                if entry.index is None or (storage, entry.index) in self._swept_away:
                    continue  # settled with an earlier part of its set, already deleted
                if entry.index not in readings:
                    log.info("listing shows slot %s:%s without a PDU of its length; reading it alone", storage,
                             entry.index)
                    handled += await self._read_slot_locked(storage, entry.index)
                    continue
                await self._settle(storage, entry.index, readings[entry.index])
                handled += 1
            await self._settle_stored_sets()
            if self.link.state.cnmi.setting is not None and self.link.state.cnmi.setting[3] == 2:
                handled += await self._sweep_reports()
        return handled

    async def _sweep_reports(self) -> int:
        """Status reports left in SR memory (their +CDSI was missed while the link was down)."""
        try:
            lines = await self.link.in_memory("SR", "AT+CMGL=4", timeout=30, expect="+CMGL")
        except AtError as exc:
            log.debug("SR memory cannot be listed: %s", exc)
            return 0
        entries, _skipped = parse_listing(lines, "+CMGL")
        for entry in entries:
            if entry.pdu is not None and entry.index is not None:
                await self._settle("SR", entry.index, pdu.read_pdu(entry.pdu, entry.length))
        return len(entries)

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

    def _sweep_soon(self) -> None:
        task = asyncio.create_task(self.sweep_safely(), name="sms-sweep")  # what arrived meanwhile
        self.sweeps.add(task)
        task.add_done_callback(self.sweeps.discard)

    async def maintain(self) -> None:
        """Reassembly timeouts (every minute at most) and the slow sweep, on the injected clock."""
        tick = max(1.0, min(60.0, self.config.reassembly_timeout / 4, self.link.sweep_interval))
        since_sweep = 0.0
        while True:
            await self.clock.sleep(tick)
            since_sweep += tick
            if not self.receiving:
                continue
            try:
                if since_sweep >= self.link.sweep_interval and self.link.ready.is_set():
                    since_sweep = 0.0
                    await self.sweep_safely()
                else:
                    await self.settle_sets()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS periodic check failed")

    async def sweep_safely(self) -> None:
        try:
            await self.sweep()
        except (AtError, OSError) as exc:
            log.warning("SMS sweep failed: %s", exc)
        except Exception:
            log.exception("SMS sweep failed")

    async def settle_sets(self) -> None:
        async with self._lock:
            await self._settle_stored_sets()


def _mem_index(args: str) -> tuple[str | None, int | None]:
    """`"ME",3` → ("ME", 3); SIM900 adds `,"MMS PUSH",2,1` after them, which changes nothing."""
    fields = [f.strip().strip('"') for f in args.split(",")]
    if len(fields) >= 2:
        return fields[0] or None, _int(fields[1])
    return None, _int(fields[0]) if fields else None
