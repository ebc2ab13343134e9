"""Sending: one `AT+CMGS` per part, delivery reports matched by message reference.

Reading comes first: before each part the sender waits until every text the modem announced has
been read and committed, so a STOP never queues behind a run of replies. A send that meets a
modem gone silent is given up after `send_silence` seconds without a byte (not only at the CMGS
ceiling); the link then probes the open port and is ready again as soon as the modem answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from bot.model import Address, DeliveryReport, Outbound
from channels.base import DeliveryHandler, PermanentSendError, RetryableSendError, SendResult
from channels.sms import pdu
from channels.sms.at import AtError, AtHung, AtPort, AtTimeout, CmsError, PortClosed
from channels.sms.link import Clock, ModemConfig, ModemLink

if TYPE_CHECKING:
    from channels.sms.receiver import PartStore, Receiver

log = logging.getLogger("channels.sms.modem")

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


class Sender:
    def __init__(self, link: ModemLink, store: PartStore, clock: Clock, config: ModemConfig,
                 receiver: Receiver) -> None:
        self.link = link
        self.store = store
        self.clock = clock
        self.config = config
        self.receiver = receiver
        self.on_delivery: DeliveryHandler | None = None
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._cmms = False
        self._inflight_refs: set[int] = set()
        self._sent_at: dict[int, float] = {}
        self.report_tasks: set[asyncio.Task[None]] = set()
        link.ready_listeners.append(self._reset_session)

    def _reset_session(self) -> None:
        self._cmms = False  # a re-initialised modem has forgotten AT+CMMS

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
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            return await self._send_locked(outbound, parts)
        finally:
            self._lock.release()

    async def _send_locked(self, outbound: Outbound, parts: list[pdu.SubmitPdu]) -> SendResult:
        cfg = self.config
        try:
            await asyncio.wait_for(self.link.ready.wait(), cfg.ready_wait)
        except TimeoutError:
            raise RetryableSendError("SMS modem not connected", retry_after=30.0) from None
        multipart = len(parts) > 1
        refs = await self.store.sent_parts(outbound.id) if multipart and outbound.id is not None else {}
        todo = [p for p in parts if p.part not in refs]
        more = len(todo) > 1 or self._waiting > 0
        if more != self._cmms:
            with contextlib.suppress(AtError):
                await self.link.cmd(f"AT+CMMS={1 if more else 0}")  # hold the radio link while more is queued
                self._cmms = more
        try:
            await self._send_parts(outbound, todo, refs)
        finally:
            now = asyncio.get_running_loop().time()
            for mr in self._inflight_refs:
                self._sent_at[mr] = now
            self._inflight_refs.clear()
            if len(self._sent_at) > 512:
                self._sent_at = dict(list(self._sent_at.items())[-256:])
        return SendResult([str(refs[p.part]) for p in parts])

    async def _send_parts(self, outbound: Outbound, todo: list[pdu.SubmitPdu], refs: dict[int, int]) -> None:
        cfg = self.config
        for part in todo:
            await self.receiver.wait_idle(cfg.rx_priority_wait)  # texts the modem announced go first
            at = self.link.at
            if at is None or not self.link.ready.is_set():
                raise RetryableSendError("SMS modem not connected", retry_after=30.0)
            started = asyncio.get_running_loop().time()
            lines = await self._cmgs(at, part)
            took = asyncio.get_running_loop().time() - started
            mr = next((_int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("+CMGS:")), None)
            if mr is None:
                raise RetryableSendError(f"modem gave no message reference: {lines!r}")
            refs[part.part] = mr
            self._inflight_refs.add(mr)
            if outbound.id is not None and part is not todo[-1]:  # progress matters only if a later part fails
                await self.store.record_sent(outbound.id, part.part, mr, self.clock.now())
            if cfg.urc_grace and took >= 0.2:  # long enough for the modem to have buffered indications
                await asyncio.sleep(cfg.urc_grace)

    async def _cmgs(self, at: AtPort, part: pdu.SubmitPdu) -> list[str]:
        cfg = self.config
        try:
            return await at.send_pdu(part.tpdu_length, part.hex, timeout=cfg.cmgs_timeout, silence=cfg.send_silence)
        except CmsError as exc:
            raise classify_cms(exc.code, exc.message) from exc
        except AtHung as exc:
            self.link.drop(f"send: {exc}", keep_port=True)
            raise RetryableSendError(f"modem went silent during the send ({exc})", retry_after=5.0) from exc
        except (AtTimeout, PortClosed) as exc:
            self.link.drop(f"send: {exc}", keep_port=isinstance(exc, AtTimeout))
            raise RetryableSendError(f"modem did not answer: {exc}", retry_after=5.0) from exc
        except AtError as exc:
            raise RetryableSendError(f"modem refused: {exc}") from exc

    # -- delivery reports ----------------------------------------------------------------------------

    async def report(self, report: pdu.StatusReportPdu) -> None:
        """Record a status report. With no send under way it is recorded before this returns, so its
        slot is freed only after the report is committed; one that may belong to a send still under
        way waits for it in a task (the reader must not wait on a send that waits on the reader)."""
        if not report.final:
            log.info("SMS still pending at the network mr=%s status=%#04x", report.reference, report.status)
            return
        if not self._lock.locked() and report.reference not in self._inflight_refs:
            await self._hand_report(report)  # no send under way: recorded before its slot is freed
            return
        task = asyncio.create_task(self._hand_report(report))
        self.report_tasks.add(task)
        task.add_done_callback(self.report_tasks.discard)

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
        await self._record(report)

    async def _record(self, report: pdu.StatusReportPdu) -> None:
        assert self.on_delivery is not None
        address = Address("sms", report.recipient) if report.recipient.startswith("+") else None
        try:
            await self.on_delivery(DeliveryReport("sms", str(report.reference), report.delivered, report.reason,
                                                  address=address, at=report.discharged))
        except Exception:
            log.exception("delivery report not recorded mr=%s", report.reference)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None
