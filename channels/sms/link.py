"""The modem link: the serial port, the AT session on it, and keeping both alive.

One supervisor task opens the port, initialises the modem (PDU mode, storage, new-message
indications, status reports) and then waits for trouble. Two kinds of trouble recover differently:

* the port is gone (USB unplugged, modem rebooting): close it and reopen with backoff, but watch the
  device node and try again the moment it reappears, so a replugged modem is back within a second;
* the port is fine but the modem is silent (a hung send, a firmware stall): keep the port and probe
  it with `AT` every second; the first answer re-initialises the session. No backoff grows while
  the modem is merely silent, so it is ready again within moments of answering.

Modems differ, and the choices are made from what each one answers: `+CPIN: READY` without a final
OK (Wavecom, some Quectel firmwares), `AT+CNMI=?` answered with ERROR or a bare OK (a working
`AT+CNMI` is found by trying, and the safety sweep runs more often), a `+CPMS=?` answer that does
not follow 27.005 (a storage the modem named is chosen). Registration and signal are kept fresh
for `health()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from channels.base import ChannelHealth
from channels.sms import pdu
from channels.sms.at import AtError, AtPort, AtTimeout, CmeError, CmsError, PortClosed, Urc

log = logging.getLogger("channels.sms.modem")

Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Cnmi = tuple[int, int, int, int, int]


async def open_serial(port: str, baud: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the port with pyserial-asyncio, exclusively (a second process gets a clear error)."""
    import serial_asyncio

    return await serial_asyncio.open_serial_connection(url=port, baudrate=baud, exclusive=True)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(slots=True)
class ModemConfig:
    port: str | None = None
    baud: int = 115200
    pin: str | None = None
    smsc: str | None = None
    max_parts: int = pdu.DEFAULT_MAX_PARTS
    command_timeout: float = 5.0
    cmgs_timeout: float = 60.0
    send_silence: float = 20.0
    """Seconds without a single byte from the modem, in the middle of a send, before the send is
    declared hung (the CMGS ceiling above is only the last resort)."""
    reassembly_timeout: float = 600.0
    sweep_interval: float = 300.0
    fallback_sweep_interval: float = 30.0
    """The sweep interval when the modem's new-message indications could not be confirmed."""
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    probe_interval: float = 1.0
    """How often a silent modem on an open port is asked `AT` until it answers."""
    sms_done_timeout: float = 30.0
    ready_wait: float = 5.0
    """How long a send waits for a (re)connecting modem before it is put back in the outbox."""
    validity: int | None = pdu.VALIDITY_24H
    max_held_slots: int = 20
    """Modem slots incomplete long texts may hold; beyond it a part's slot is freed once the part is
    committed to our database (its text is safe there), so a huge text cannot fill the modem."""
    rx_priority_wait: float = 10.0
    """Longest a send waits for announced texts to be read and committed before it goes anyway."""
    urc_grace: float = 0.01
    """Pause after a part that took the network a while, so indications the modem buffered during
    the send (AT+CNMI mode 2 flushes them after the result) are seen before the next part."""
    health_interval: float = 60.0


# -- choices from the modem's "=?" answers -----------------------------------------------------------


def _ranges(text: str) -> list[set[int]]:
    """Parse `(0-2),(0-3),(0,2)` into [{0,1,2},{0,1,2,3},{0,2}]."""
    groups: list[set[int]] = []
    for group in re.findall(r"\(([^()]*)\)", text):
        values: set[int] = set()
        for item in group.split(","):
            item = item.strip()
            if "-" in item:
                lo, hi = item.split("-", 1)
                if lo.strip().isdigit() and hi.strip().isdigit():
                    values.update(range(int(lo), int(hi) + 1))
            elif item.isdigit():
                values.add(int(item))
        groups.append(values)
    return groups


def choose_cnmi(answer: str) -> Cnmi:
    """mode 2 (buffer in the modem when the link is busy), mt 1 (+CMTI), bm 0, ds 1 (+CDS) or 2 (+CDSI), bfr 0."""
    groups = _ranges(answer) + [set()] * 5
    mode = 2 if 2 in groups[0] else 1
    mt = 1
    ds = 1 if 1 in groups[3] else (2 if 2 in groups[3] else 0)
    bfr = 0 if 0 in groups[4] or not groups[4] else min(groups[4])
    return (mode, mt, 0, ds, bfr)


CNMI_FALLBACKS: list[Cnmi] = [(2, 1, 0, 1, 0), (2, 1, 0, 2, 0), (2, 1, 0, 0, 0), (1, 1, 0, 1, 0), (1, 1, 0, 2, 0),
                              (1, 1, 0, 0, 0)]
"""Tried in turn when `AT+CNMI=?` says nothing usable (ERROR, a bare OK): the first one accepted wins."""


@dataclass(slots=True)
class CnmiChoice:
    setting: Cnmi | None
    offered: bool
    """True when the setting came from the modem's own `AT+CNMI=?` answer."""
    note: str | None = None

    @property
    def describe(self) -> str:
        if self.setting is None:
            return "none"
        return "AT+CNMI=" + ",".join(map(str, self.setting))


async def negotiate_cnmi(ask: Callable[[str], Awaitable[list[str]]]) -> CnmiChoice:
    """Choose and set new-message indications; `ask` runs one AT command (timeouts propagate)."""
    why = "answered with a bare OK"
    try:
        answer = " ".join(await ask("AT+CNMI=?"))
    except AtTimeout:
        raise
    except AtError as exc:
        answer, why = "", f"answered {exc.message}"
    tried: list[Cnmi] = []
    if _ranges(answer):
        choice = choose_cnmi(answer)
        tried.append(choice)
        try:
            await ask("AT+CNMI=" + ",".join(map(str, choice)))
            return CnmiChoice(choice, True)
        except AtTimeout:
            raise
        except AtError:
            why = f"offered {answer.split(':', 1)[-1].strip()} but refused its own choice"
    for candidate in CNMI_FALLBACKS:
        if candidate in tried:
            continue
        try:
            await ask("AT+CNMI=" + ",".join(map(str, candidate)))
        except AtTimeout:
            raise
        except AtError:
            continue
        setting = "AT+CNMI=" + ",".join(map(str, candidate))
        return CnmiChoice(candidate, False, f"AT+CNMI=? {why}; using {setting}, the first setting it accepted")
    return CnmiChoice(None, False, f"AT+CNMI=? {why} and no AT+CNMI setting was accepted: no new-message "
                                   "indications, texts are found by the sweep only")


_STORAGE_NAME = re.compile(r'"?\b([A-Z]{2})\b"?')


def storage_groups(answer: str) -> list[list[str]]:
    """The memories a `+CPMS=?` answer offers, per parameter; forgiving about its shape.

    27.005 says `+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")`. Seen instead: nested parentheses
    (Wavecom, `+CPMS: (("SM","BM","SR"),("SM"))`), no parentheses, no quotes, empty groups (Nokia,
    `+CPMS: (),(),()`). Names are read from the innermost groups, else from the whole answer.
    """
    body = answer.split(":", 1)[1] if ":" in answer else answer
    groups = [_STORAGE_NAME.findall(g) for g in re.findall(r"\(([^()]*)\)", body)]
    groups = [g for g in groups if g]
    if not groups:
        names = _STORAGE_NAME.findall(body)
        groups = [names] if names else []
    return groups


def choose_storage(answer: str) -> str | None:
    """ME for all three memories when offered (phone memory is larger than the SIM's), else SM,
    else the first memory the modem named for reading; None when it named none."""
    groups = storage_groups(answer)
    if not groups:
        return None
    if all("ME" in g for g in groups[:3]):
        return "ME"
    if "SM" in groups[0]:
        return "SM"
    usable = [m for m in groups[0] if m not in ("SR", "BM")]
    return usable[0] if usable else groups[0][0]


# -- signal and registration ---------------------------------------------------------------------------


def csq_to_dbm(rssi: int) -> tuple[int | None, int]:
    """AT+CSQ rssi (0-31, 99 unknown) as dBm and 0-4 bars."""
    if rssi == 99 or rssi < 0 or rssi > 31:
        return None, 0
    bars = 1 if rssi < 10 else 2 if rssi < 15 else 3 if rssi < 20 else 4
    return -113 + 2 * rssi, bars if rssi > 1 else 0


REG_STATES = {
    "0": ("not registered, not searching", "check that the SIM is activated and the antenna is connected"),
    "1": ("registered, home network", ""),
    "2": ("searching for a network", "wait a minute; if it stays so, check the antenna and coverage"),
    "3": ("registration denied", "the operator refuses this SIM: check the plan is active and SMS is allowed"),
    "4": ("unknown", "check the antenna and coverage"),
    "5": ("registered, roaming", ""),
}


def registration_state(lines: list[str]) -> str | None:
    """The <stat> of a `+CREG?`/`+CEREG?` answer (`+CREG: 0,1` → "1")."""
    for line in lines:
        if ":" in line:
            fields = [f.strip() for f in line.split(":", 1)[1].split(",")]
            if len(fields) >= 2 and fields[1].isdigit():
                return fields[1]
            if len(fields) == 1 and fields[0].isdigit():  # an unsolicited-style `+CREG: 1`
                return fields[0]
    return None


@dataclass(slots=True)
class RadioState:
    registration: str | None = None
    """"home", "roaming", "searching", "denied", "not registered" or None (never answered)."""
    signal_dbm: int | None = None
    signal_bars: int = 0
    checked_at: datetime | None = None

    @property
    def registered(self) -> bool | None:
        if self.registration is None:
            return None
        return self.registration in ("home", "roaming")


_REG_NAMES = {"0": "not registered", "1": "home", "2": "searching", "3": "denied", "4": "unknown", "5": "roaming"}


def _device_exists(port: str) -> bool:
    """A stat of a device node (instant; /dev/ttyUSB2 disappears while the modem is unplugged)."""
    return os.path.exists(port)


# -- the link -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class LinkState:
    storage: str = "ME"
    cpms_params: int = 3
    """How many memories the modem takes in `AT+CPMS=` (a Wavecom takes two)."""
    cnmi: CnmiChoice = field(default_factory=lambda: CnmiChoice(None, False))
    radio: RadioState = field(default_factory=RadioState)


class ModemLink:
    """The port and the AT session: connect, initialise, watch, recover."""

    def __init__(self, config: ModemConfig, clock: Clock, opener: Opener, on_urc: Callable[[Urc], None]) -> None:
        self.config = config
        self.clock = clock
        self.opener = opener
        self.on_urc = on_urc
        self.at: AtPort | None = None
        self.ready = asyncio.Event()
        self.state = LinkState()
        self.connects = 0
        self.last_error: str | None = None
        self.ready_listeners: list[Callable[[], None]] = []
        """Called every time the modem becomes ready (after start, a reconnect or a recovered hang)."""
        self.stopping = False
        self._lost = asyncio.Event()
        self._sms_done = asyncio.Event()
        self._booting = False
        self._keep_port = False

    # -- the session ------------------------------------------------------------------------------

    @property
    def sweep_interval(self) -> float:
        """The configured sweep, or a faster one when +CMTI cannot be relied on."""
        cfg = self.config
        if self.state.cnmi.offered:
            return cfg.sweep_interval
        return min(cfg.sweep_interval, cfg.fallback_sweep_interval)

    async def cmd(self, command: str, timeout: float | None = None, expect: str | None = None,
                  settle: float | None = None) -> list[str]:
        at = self.at
        if at is None:
            raise PortClosed(command, "not connected")
        try:
            return await at.command(command, timeout or self.config.command_timeout, expect, settle)
        except AtTimeout:
            self.drop(f"no answer to {command}", keep_port=True)
            raise

    def _cpms(self, first: str) -> str:
        rest = [self.state.storage] * (self.state.cpms_params - 1)
        return "AT+CPMS=" + ",".join(f'"{m}"' for m in [first, *rest])

    async def select(self, mem: str) -> None:
        if mem != self.state.storage:
            await self.cmd(self._cpms(mem), expect="+CPMS")

    async def restore(self, mem: str) -> None:
        if mem != self.state.storage:
            await self.cmd(self._cpms(self.state.storage), expect="+CPMS")

    async def in_memory(self, mem: str, command: str, timeout: float | None = None,
                        expect: str | None = None) -> list[str]:
        """Run `command` with `mem` selected for reading and deleting, then select ours again."""
        await self.select(mem)
        try:
            return await self.cmd(command, timeout, expect)
        finally:
            if self.at is not None and not self.at.closed:
                with contextlib.suppress(AtError):
                    await self.restore(mem)

    def drop(self, why: str, *, keep_port: bool = False) -> None:
        """Give up on this session: the supervisor re-initialises (probing first if `keep_port`)."""
        if not self._lost.is_set():
            log.warning("SMS modem connection dropped: %s", why)
            self.last_error = why
        self._keep_port = self._keep_port or keep_port
        self.ready.clear()
        self._lost.set()

    def last_contact(self) -> datetime | None:
        if self.at is None:
            return None
        return self.clock.now() - timedelta(seconds=max(0.0, time.monotonic() - self.at.last_rx))

    def health(self) -> ChannelHealth:
        """Port, registration, signal, last contact and last error, from what the link last saw.

        Answers from memory (no AT command), so `/healthz` is instant even while a send is in flight.
        `up` is False when the port is gone or not initialised, or the modem says it is not registered.
        """
        radio = self.state.radio
        connected = self.ready.is_set() and self.at is not None and not self.at.closed
        contact = self.last_contact()
        detail: dict[str, object] = {
            "port": self.config.port,
            "connected": connected,
            "registered": radio.registered,
            "registration": radio.registration,
            "signal_dbm": radio.signal_dbm,
            "signal_bars": radio.signal_bars,
            "last_contact": contact.isoformat() if contact else None,
            "last_error": self.last_error,
            "storage": self.state.storage,
            "indications": self.state.cnmi.describe,
            "sweep_interval": self.sweep_interval,
        }
        if self.state.cnmi.note:
            detail["indications_note"] = self.state.cnmi.note
        return ChannelHealth(connected and radio.registered is not False, detail)

    # -- unsolicited codes the link itself cares about ------------------------------------------------

    def urc(self, urc: Urc) -> None:
        if urc.name == "RDY":
            if self.ready.is_set():
                self.drop("modem restarted (RDY)")
            self._booting = True
            self._sms_done.clear()
        elif urc.name == "SMS DONE" or (urc.name == "+QIND" and "SMS DONE" in urc.args.upper()):
            self._sms_done.set()
        elif urc.name in ("+CREG", "+CEREG") and (stat := registration_state([urc.line])) is not None:
            self.state.radio.registration = _REG_NAMES.get(stat, f"state {stat}")

    # -- supervision -------------------------------------------------------------------------------

    async def run(self) -> None:
        delay = self.config.reconnect_min
        while not self.stopping:
            try:
                if self.at is not None and self.at.closed:
                    await self.close()
                if self.at is None:
                    await self._open()
                self._lost.clear()
                self._keep_port = False
                await self._initialise()
                self._became_ready()
                delay = self.config.reconnect_min
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("SMS modem not usable port=%s error=%s", self.config.port, self.last_error)
                if isinstance(exc, AtTimeout):
                    self._keep_port = True
            self.ready.clear()
            if self.stopping:
                break
            if self.at is not None and not self.at.closed and self._keep_port:
                await self._probe_until_alive()
                continue
            if self.at is not None and not self.at.closed:
                await asyncio.sleep(delay)  # it answers but refuses (SIM locked, SMS not ready): slowly
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            await self.close()
            await self._wait_for_port(delay)
            delay = min(delay * 2, self.config.reconnect_max)

    async def _open(self) -> None:
        if not self.config.port:
            raise RuntimeError("no modem port configured (HUDDLE_SMS_PORT)")
        reader, writer = await self.opener(self.config.port, self.config.baud)
        self._sms_done.clear()
        self._booting = False
        self.at = AtPort(reader, writer, self.on_urc, self._port_closed)
        self.at.start()
        self.connects += 1

    def _port_closed(self, exc: BaseException | None) -> None:
        if self.stopping:
            self.ready.clear()
            return
        self._keep_port = False
        self.drop(f"port closed: {exc or 'by us'}")

    async def close(self) -> None:
        self.ready.clear()
        if self.at is not None:
            at, self.at = self.at, None
            await at.close()

    async def _wait_for_port(self, delay: float) -> None:
        """Sleep `delay`, but come back as soon as the device node reappears (a replugged modem)."""
        port = self.config.port or ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        existed = _device_exists(port)
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(0.25, left))
            exists = _device_exists(port)
            if exists and not existed:
                log.info("SMS modem port %s is back", port)
                return
            existed = exists

    async def _probe_until_alive(self) -> None:
        """The port is open but the modem is silent: ask `AT` until it answers, without backoff."""
        at = self.at
        assert at is not None
        log.info("SMS modem silent on an open port; asking AT every %.1f s until it answers",
                 self.config.probe_interval)
        with contextlib.suppress(AtError):
            await at.write("\x1b")  # leave any half-entered PDU
        loop = asyncio.get_running_loop()
        while not self.stopping and not at.closed:
            started = loop.time()
            try:
                await at.command("AT", timeout=max(0.2, min(1.0, self.config.probe_interval)))
            except PortClosed:
                return
            except AtTimeout:
                await asyncio.sleep(max(0.0, self.config.probe_interval - (loop.time() - started)))
                continue
            except AtError:
                pass  # an ERROR is an answer too
            await asyncio.sleep(0.2)  # let late answers to the stuck command arrive and be dropped
            log.info("SMS modem answers again")
            return

    def _became_ready(self) -> None:
        self.ready.set()
        self.last_error = None
        s = self.state
        log.info("SMS modem ready port=%s storage=%s cnmi=%s%s", self.config.port, s.storage, s.cnmi.describe,
                 f" ({s.cnmi.note})" if s.cnmi.note else "")
        for listener in list(self.ready_listeners):
            try:
                listener()
            except Exception:
                log.exception("ready listener failed")

    # -- initialisation ------------------------------------------------------------------------------

    async def _initialise(self) -> None:
        cfg = self.config
        await self.cmd("AT", timeout=2.0)
        await self.cmd("ATE0")
        with contextlib.suppress(CmeError, CmsError):
            await self.cmd("AT+CMEE=1")
        await self._unlock_sim()
        if self._booting:
            await self._wait_sms_done()
        for attempt in range(3):
            try:
                await self.cmd("AT+CMGF=0")
                break
            except (CmsError, CmeError) as exc:
                if attempt == 2:
                    raise
                log.info("modem SMS service not ready yet (%s); waiting for SMS DONE", exc)
                await self._wait_sms_done()
        await self._choose_storage()
        self.state.cnmi = await negotiate_cnmi(lambda c: self.cmd(c, expect="+CNMI"))
        if self.state.cnmi.note:
            log.warning("SMS modem: %s; sweeping every %.0f s", self.state.cnmi.note, self.sweep_interval)
        if cfg.smsc:
            await self.cmd(f'AT+CSCA="{cfg.smsc}",{145 if cfg.smsc.startswith("+") else 129}')
        with contextlib.suppress(AtError):
            await self.refresh_radio()

    async def _unlock_sim(self) -> None:
        settle = min(0.5, self.config.command_timeout / 3)  # some firmwares end +CPIN: READY with no OK
        answer = " ".join(await self.cmd("AT+CPIN?", expect="+CPIN", settle=settle))
        if "READY" in answer:
            return
        if "SIM PIN" in answer and "PIN2" not in answer:
            if not self.config.pin:
                raise RuntimeError("the SIM asks for a PIN: set HUDDLE_SMS_PIN")
            await self.cmd(f'AT+CPIN="{self.config.pin}"', timeout=15)
            self._booting = True  # the SMS service starts after the unlock, announced by SMS DONE
            return
        raise RuntimeError(f"SIM not usable: {answer.strip() or 'no answer'} (PUK needed or SIM missing?)")

    async def _wait_sms_done(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sms_done.wait(), self.config.sms_done_timeout)

    async def _choose_storage(self) -> None:
        try:
            answer = " ".join(await self.cmd("AT+CPMS=?", expect="+CPMS"))
        except (CmsError, CmeError):
            answer = ""
        except AtError as exc:
            if isinstance(exc, AtTimeout):
                raise
            answer = ""
        groups = storage_groups(answer)
        choice = choose_storage(answer)
        if choice is None:
            current = await self._current_storage()
            log.warning("modem offered no usable storage in %r; keeping its current one (%s)", answer, current)
            self.state.storage, self.state.cpms_params = current, 1
            return
        preferred = min(3, len(groups)) if len(groups) > 1 else 3
        for params in [preferred, *(p for p in (3, 2, 1) if p != preferred)]:
            self.state.storage, self.state.cpms_params = choice, params
            try:
                await self.cmd(self._cpms(choice), expect="+CPMS")
                return
            except AtTimeout:
                raise
            except AtError:
                continue
        log.warning("modem refused AT+CPMS for %s; keeping its current storage", choice)
        self.state.storage, self.state.cpms_params = await self._current_storage(), 1

    async def _current_storage(self) -> str:
        with contextlib.suppress(AtError):
            for line in await self.cmd("AT+CPMS?", expect="+CPMS"):
                names = _STORAGE_NAME.findall(line.split(":", 1)[-1])
                if names:
                    return names[0]
        return "SM"

    async def watch_radio(self) -> None:
        """Ask registration and signal every `health_interval` seconds (injected clock) for `health()`."""
        while not self.stopping:
            await self.clock.sleep(self.config.health_interval)
            if not self.ready.is_set():
                continue
            try:
                await self.refresh_radio()
            except asyncio.CancelledError:
                raise
            except AtError as exc:
                log.info("SMS modem radio check failed: %s", exc)
            except Exception:
                log.exception("SMS modem radio check failed")

    async def refresh_radio(self) -> RadioState:
        """Ask registration (CREG, CEREG: either registered is enough) and signal (CSQ)."""
        radio = self.state.radio
        states: list[str] = []
        for command, prefix in (("AT+CREG?", "+CREG"), ("AT+CEREG?", "+CEREG")):
            try:
                stat = registration_state(await self.cmd(command, expect=prefix))
            except AtTimeout:
                raise
            except AtError:
                continue
            if stat is not None:
                states.append(stat)
        if states:
            best = next((s for s in states if s in ("1", "5")), states[0])
            radio.registration = _REG_NAMES.get(best, f"state {best}")
        with contextlib.suppress(CmsError, CmeError):
            lines = await self.cmd("AT+CSQ", expect="+CSQ")
            m = re.search(r"\+CSQ:\s*(\d+)", " ".join(lines))
            radio.signal_dbm, radio.signal_bars = csq_to_dbm(int(m.group(1)) if m else 99)
        radio.checked_at = self.clock.now()
        return radio
