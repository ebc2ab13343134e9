"""Sending: one `AT+CMGS` per part, each part's message reference handed over as it is accepted.

The modem answers each part with `+CMGS: <mr>`; its status report (`+CDS`) can follow at once,
before the send has returned. So each reference goes to the accept listeners (the outbox, which
writes the receipt) before the next part of the message is sent and before `send` returns (the
last part's is written once the modem is free for the next message), and a report is handed
over the moment it is read: whatever order the two come in, the outbox matches them, and no one
waits on a timer. Reports do not hold sends back; announced texts do.

Reading comes first: before each part the sender waits until every text the modem announced has
been read and committed, so a STOP never queues behind a run of replies. A send that meets a
modem gone silent is given up after `send_silence` seconds without a byte (not only at the CMGS
ceiling); the link then probes the open port and is ready again as soon as the modem answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.model import Address, DeliveryReport, Outbound
from channels.base import (
    AcceptHandler,
    DeliveryHandler,
    NotHandedOver,
    PermanentSendError,
    RetryableSendError,
    SendResult,
)
from channels.sms import pdu
from channels.sms.at import AtError, AtHung, AtPort, AtTimeout, CmsError, PortClosed
from channels.sms.link import Clock, ModemConfig, ModemLink

if TYPE_CHECKING:
    from channels.sms.receiver import PartStore, Receiver

log = logging.getLogger("channels.sms.modem")

SENT_PARTS_KEPT = timedelta(days=3)
"""How long the parts of a long text already sent are remembered (a retry comes long before)."""

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
        self.accept_listeners: list[AcceptHandler] = []
        """Told each part's message reference as the modem accepts it (see `channels.base.listen_accepted`)."""
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._waiting = 0
        self._cmms = False
        link.ready_listeners.append(self._reset_session)

    def _reset_session(self) -> None:
        self._cmms = False  # a re-initialised modem has forgotten AT+CMMS

    async def maintain(self) -> None:
        """Forget sent parts older than `SENT_PARTS_KEPT`, hourly on the injected clock."""
        while True:
            await self.clock.sleep(3600.0)
            try:
                await self.store.prune_sent(self.clock.now() - SENT_PARTS_KEPT)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not forget old sent parts")

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
            await self._take_turn()
        finally:
            self._waiting -= 1
        try:
            result, last = await self._send_locked(outbound, parts)
        finally:
            self._lock.release()
        if last is not None:  # the last part's receipt: the modem takes the next message meanwhile
            await self._accepted(outbound, *last)
        return result

    def stop_sending(self) -> None:
        """Huddle is stopping: messages waiting for the modem go back to the queue untouched."""
        self._stopping.set()

    async def _take_turn(self) -> None:
        """The modem's lock, unless a stop comes first (then `NotHandedOver`: nothing was sent)."""
        if not self._stopping.is_set():
            turn = asyncio.ensure_future(self._lock.acquire())
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not turn.done():
                    turn.cancel()
            if turn.done() and not turn.cancelled():
                if not self._stopping.is_set():
                    return
                self._lock.release()
        raise NotHandedOver("stopping: not handed to the modem")

    async def _send_locked(self, outbound: Outbound, parts: list[pdu.SubmitPdu]
                           ) -> tuple[SendResult, tuple[pdu.SubmitPdu, int] | None]:
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
        last = await self._send_parts(outbound, todo, refs)
        return SendResult([str(refs[p.part]) for p in parts]), last

    async def _send_parts(self, outbound: Outbound, todo: list[pdu.SubmitPdu], refs: dict[int, int]
                          ) -> tuple[pdu.SubmitPdu, int] | None:
        """Send `todo` in order; each part but the last is handed over (`_accepted`) before the next
        goes. The last one is returned, to be handed over once the modem is free for other sends."""
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
            if part is todo[-1]:
                return part, mr
            await self._accepted(outbound, part, mr)
            if cfg.urc_grace and took >= 0.2:  # long enough for the modem to have buffered indications
                await asyncio.sleep(cfg.urc_grace)
        return None

    async def _accepted(self, outbound: Outbound, part: pdu.SubmitPdu, mr: int) -> None:
        """The outbox writes the part's receipt (so its report finds it) before the next part goes,
        and a part that is not the last is remembered, so a retry after a later part fails sends
        only what did not go out. Both in one commit when they can be (the database batches
        concurrent writes)."""
        writes = [self._tell(listener, outbound, str(mr)) for listener in self.accept_listeners]
        if outbound.id is not None and part.part != part.parts:
            writes.append(self.store.record_sent(outbound.id, part.part, mr, self.clock.now()))
        await asyncio.gather(*writes)

    @staticmethod
    async def _tell(listener: AcceptHandler, outbound: Outbound, provider_id: str) -> None:
        try:
            await listener(outbound, provider_id)
        except Exception:  # the part is sent either way: never turn this into a resend
            log.exception("accept listener failed outbox_id=%s mr=%s", outbound.id, provider_id)

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
        """Hand a final status report to the outbox now; it is recorded before this returns, so its
        slot is freed only after the report is committed. Its part's receipt was written when the
        part was accepted (or, if the report came first, the outbox keeps it and matches it then)."""
        if not report.final:
            log.info("SMS still pending at the network mr=%s status=%#04x", report.reference, report.status)
            return
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
