"""The SMS channel: a SIMCom SIM7600 (or any 27.005 modem) on a serial port, in PDU mode.

A small facade over three jobs, each in its own module:

* `link` — the port and AT session: connect, initialise, recover (reopen a vanished port the
  moment it is back, probe a silent modem without backoff), registration and signal;
* `receiver` — `+CMTI` → read → decode → commit (inbox, long-text parts, or raw in `sms_held`)
  → delete the slot; the sweep as safety net; status reports wherever they appear;
* `sender` — `AT+CMGS` per part, reading first, hung sends detected by silence; each part's
  message reference goes to the outbox as the modem accepts it, status reports go to the outbox
  as they are read (the outbox matches the two, in whichever order they come).

Messages wait in the outbox while the modem is away; the channel tells the outbox when it is
ready again (`add_ready_listener`), so queued replies go out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.model import Inbound, Outbound
from bot.tasks import cancel_and_wait
from channels.base import (
    AcceptHandler,
    ChannelHealth,
    DeliveryHandler,
    InboundHandler,
    SendResult,
)
from channels.sms.at import AtPort, Urc
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
    """The `Channel` for SMS: wires link, receiver and sender together and adds nothing of its own."""

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
        self.receiver = Receiver(self.link, store, clock, config)
        self.sender = Sender(self.link, store, clock, config, self.receiver)
        self.receiver.on_report = self.sender.report
        self._tasks: list[asyncio.Task[None]] = []

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

    @property
    def sweeping(self) -> bool:
        """A sweep started by the modem becoming ready is still under way."""
        return bool(self.receiver.sweeps)

    # -- the channel contract ---------------------------------------------------------------------------

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self.receiver.on_inbound = on_inbound
        self.sender.on_delivery = on_delivery
        self.link.stopping = False
        self._tasks = [
            asyncio.create_task(self.link.run(), name="sms-link"),
            asyncio.create_task(self.link.watch_radio(), name="sms-radio"),
            asyncio.create_task(self.receiver.process_events(), name="sms-events"),
            asyncio.create_task(self.receiver.maintain(), name="sms-maintain"),
            asyncio.create_task(self.sender.maintain(), name="sms-sent-parts"),
        ]
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=max(self.config.ready_wait, 1.0))
        except TimeoutError:
            log.warning("SMS modem not ready yet port=%s; will keep trying in the background", self.config.port)

    async def send(self, outbound: Outbound) -> SendResult:
        return await self.sender.send(outbound)

    async def stop_receiving(self) -> None:
        self.receiver.receiving = False

    def stop_sending(self) -> None:
        self.sender.stop_sending()

    async def stop(self) -> None:
        self.link.stopping = True
        await cancel_and_wait([*self._tasks, *self.receiver.sweeps])
        self._tasks = []
        await self.link.close()

    async def health(self) -> ChannelHealth:
        return self.link.health()

    def add_ready_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` runs each time the modem is ready again (the outbox resumes this channel)."""
        self.link.ready_listeners.append(callback)

    def add_accept_listener(self, callback: AcceptHandler) -> None:
        """`await callback(outbound, mr)` as each part is accepted, before the next one is sent."""
        self.sender.accept_listeners.append(callback)

    def _urc(self, urc: Urc) -> None:
        self.link.urc(urc)
        self.receiver.urc(urc)

    # -- operator tools and the demo -------------------------------------------------------------------

    async def sweep(self) -> int:
        return await self.receiver.sweep()

    async def catch_up(self) -> None:
        """The database is back: read what stayed in the modem's storage meanwhile (never deleted unstored)."""
        await self.receiver.sweep_safely()

    async def simulate_inbound(self, address_id: str, text: str) -> None:
        """Text the store from `address_id` through the simulated modem (demo and console)."""
        if self.simulator is None:
            raise RuntimeError("simulate_inbound needs the SMS simulator (no real modem can be texted from here)")
        self.simulator.deliver(address_id, text)
