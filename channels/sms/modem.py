"""The SMS channel: a SIMCom SIM7600 (or any 27.005 modem) on a serial port, in PDU mode.

A small facade over three jobs, each in its own module:

* `link` — the port and AT session: connect, initialise, recover (reopen a vanished port the
  moment it is back, probe a silent modem without backoff), registration and signal;
* `receiver` — `+CMTI` → read → decode → commit (inbox, long-text parts, or raw in `sms_held`)
  → delete the slot; the sweep as safety net; status reports wherever they appear;
* `sender` — `AT+CMGS` per part, reading first, hung sends detected by silence, delivery
  reports matched by message reference.

Messages wait in the outbox while the modem is away; the channel tells the outbox when it is
ready again (`add_ready_listener`), so queued replies go out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.model import Inbound, Outbound
from channels.base import (
    ChannelHealth,
    DeliveryHandler,
    InboundHandler,
    SendResult,
)
from channels.sms import pdu
from channels.sms.at import AtError, AtPort, Urc, cancel_and_wait
from channels.sms.link import (
    Clock,
    ModemConfig,
    ModemLink,
    Opener,
    choose_cnmi,
    choose_storage,
    open_serial,
)
from channels.sms.policy import SmsPolicy
from channels.sms.receiver import PartStore, Receiver
from channels.sms.sender import CMS_REASONS, Sender, classify_cms

__all__ = [
    "CMS_REASONS", "Clock", "ModemChannel", "ModemConfig", "Opener", "PartStore", "choose_cnmi", "choose_storage",
    "classify_cms", "open_serial",
]

log = logging.getLogger(__name__)


class ModemChannel:
    name = "sms"

    def __init__(self, config: ModemConfig, store: PartStore, clock: Clock, *, opener: Opener = open_serial,
                 simulator: Any = None, policy: SmsPolicy | None = None) -> None:
        self.policy = policy or SmsPolicy()
        self.config = config
        self.store = store
        self.clock = clock
        self.simulator = simulator
        """A `SimulatedModem` when this channel runs against the simulator (demo, tests)."""
        self.link = ModemLink(config, clock, opener, self._urc)
        self.sender: Sender
        self.receiver = Receiver(self.link, store, clock, config, self._report)
        self.sender = Sender(self.link, store, clock, config, self.receiver)
        self._tasks: list[asyncio.Task[None]] = []
        self._sweeps: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.link.ready_listeners.append(self._on_ready)

    # -- what tests, benchmarks and diagnostics look at ----------------------------------------------

    @property
    def ready(self) -> asyncio.Event:
        return self.link.ready

    @property
    def at(self) -> AtPort | None:
        return self.link.at

    @property
    def connects(self) -> int:
        return self.link.connects

    @property
    def storage(self) -> str:
        return self.link.state.storage

    @property
    def cnmi(self) -> tuple[int, int, int, int, int] | None:
        return self.link.state.cnmi.setting

    @property
    def on_handled(self) -> list[Callable[[Inbound], None]]:
        """Hooks called after a message was handed over (benchmarks measure with it)."""
        return self.receiver.on_handled

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self.receiver.on_inbound = on_inbound
        self.sender.on_delivery = on_delivery
        self._stopping = False
        self.link.stopping = False
        self._tasks = [
            asyncio.create_task(self.link.run(), name="sms-link"),
            asyncio.create_task(self.receiver.process_events(), name="sms-events"),
            asyncio.create_task(self._periodic(), name="sms-periodic"),
        ]
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=max(self.config.ready_wait, 1.0))
        except TimeoutError:
            log.warning("SMS modem not ready yet port=%s; will keep trying in the background", self.config.port)

    async def stop_receiving(self) -> None:
        self.receiver.receiving = False

    async def stop(self) -> None:
        self._stopping = True
        self.link.stopping = True
        await cancel_and_wait([*self._tasks, *self._sweeps])
        self._tasks = []
        await self.link.close()

    def add_ready_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` runs each time the modem is ready again (the outbox resumes this channel)."""
        self.link.ready_listeners.append(callback)

    def _on_ready(self) -> None:
        task = asyncio.create_task(self.receiver.sweep_safely(), name="sms-sweep")  # what arrived meanwhile
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _report(self, report: pdu.StatusReportPdu) -> None:
        await self.sender.report(report)

    def _urc(self, urc: Urc) -> None:
        self.link.urc(urc)
        self.receiver.urc(urc)

    async def _periodic(self) -> None:
        """Reassembly timeouts (every minute), the slow sweep and a radio check, on the injected clock."""
        tick = max(1.0, min(60.0, self.config.reassembly_timeout / 4, self.link.sweep_interval))
        since_sweep = since_radio = 0.0
        while not self._stopping:
            await self.clock.sleep(tick)
            since_sweep += tick
            since_radio += tick
            if not self.receiver.receiving:
                continue
            try:
                if since_radio >= self.config.health_interval and self.ready.is_set():
                    since_radio = 0.0
                    try:
                        await self.link.refresh_radio()
                    except AtError as exc:
                        log.info("SMS modem radio check failed: %s", exc)
                if since_sweep >= self.link.sweep_interval and self.ready.is_set():
                    since_sweep = 0.0
                    await self.receiver.sweep_safely()
                    await self.store.prune_sent(self.clock.now() - timedelta(days=3))
                else:
                    await self.receiver.settle_sets()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS periodic check failed")

    # -- the channel contract ---------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        return await self.sender.send(outbound)

    async def sweep(self) -> int:
        return await self.receiver.sweep()

    async def health(self) -> ChannelHealth:
        """Port, registration, signal, last contact and last error, from what the link last saw.

        Answers from memory (no AT command), so `/healthz` is instant even while a send is in flight.
        `up` is False when the port is gone or not initialised, or the modem says it is not registered.
        """
        link = self.link
        radio = link.state.radio
        connected = link.ready.is_set() and link.at is not None and not link.at.closed
        contact = link.last_contact()
        detail: dict[str, Any] = {
            "port": self.config.port,
            "connected": connected,
            "registered": radio.registered,
            "registration": radio.registration,
            "signal_dbm": radio.signal_dbm,
            "signal_bars": radio.signal_bars,
            "last_contact": contact.isoformat() if contact else None,
            "last_error": link.last_error,
            "storage": link.state.storage,
            "indications": link.state.cnmi.describe,
            "sweep_interval": link.sweep_interval,
        }
        if link.state.cnmi.note:
            detail["indications_note"] = link.state.cnmi.note
        return ChannelHealth(connected and radio.registered is not False, detail)

    # -- the demo -------------------------------------------------------------------------------------------

    async def simulate_inbound(self, address_id: str, text: str) -> None:
        """Text the store from `address_id` through the simulated modem (demo and console)."""
        if self.simulator is None:
            raise RuntimeError("simulate_inbound needs the SMS simulator (no real modem can be texted from here)")
        self.simulator.deliver(address_id, text)
