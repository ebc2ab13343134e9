"""The console: talk to Huddle from the terminal as any person, and see what they would receive.

With no accounts configured, every provider channel that is missing gets a stand-in here, so
`python main.py` runs the whole product in one terminal:

    /who                  people and their roles
    /as Ann               act as Ann (a name, part of one, a phone number or any address)
    stale 5               sent as Ann, on her first channel
    /quit                 stop Huddle

Messages are shown as they would arrive on the recipient's channel, buttons as numbered choices
(typing the number presses the button, as on SMS). A channel that can simulate inbound traffic
itself (the SMS simulator) carries the text, so the demo exercises the same stack as production.

The console reads stdin only when it is a terminal, and on the event loop itself: no thread sits
in `readline()`, so Ctrl-C, `/quit` and SIGTERM end the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

from rapidfuzz import fuzz, process, utils

from bot.model import Address, Inbound, Outbound, Person
from bot.plugins import Plugin
from channels.base import Capabilities, ChannelPolicy, Keyword, Markup, Pacing, SendResult, degrade_buttons
from channels.markup import to_plain
from channels.sms.policy import texting_keyword

log = logging.getLogger(__name__)

STAFF_ADDRESS = Address("console", "staff")
"""Where staff notices go when no real staff destination is configured."""

_ids = itertools.count(1)


class ConsolePolicy(ChannelPolicy):
    """The console itself: plain text, numbered buttons, and the texting rules (to try STOP)."""

    name = "console"
    texting = True
    address_label = "console name"

    def keyword(self, text: str) -> Keyword | None:
        return texting_keyword(text)


def stand_in_policy(real: ChannelPolicy) -> ChannelPolicy:
    """A declared channel shown in the terminal: its own addresses, commands and rules; buttons numbered."""
    caps = Capabilities(max_length=real.capabilities.max_length, markup=real.capabilities.markup)
    return real.derive(capabilities=caps, pacing=Pacing(concurrency=4))


@dataclass
class StandInChannel:
    """A channel that is not configured here: sends are shown in the terminal."""

    policy: ChannelPolicy
    stand_in: bool = True

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def summary(self) -> str:
        return "console stand-in (not configured)" if self.name != "console" else "the terminal"

    async def start(self, on_inbound: Any, on_delivery: Any) -> None:
        return None

    async def send(self, outbound: Outbound) -> SendResult:
        return SendResult([f"{self.name}-console-{next(_ids)}"], delivered=True)

    async def stop(self) -> None:
        return None


def plain(body: str, markup: Markup) -> str:
    """What the recipient would read, without formatting (the body is neutral markup)."""
    return to_plain(body)


def render(outbound: Outbound, name: str | None, markup: Markup = Markup.PLAIN) -> str:
    """The message as its recipient reads it, its buttons as numbered choices ("reply 2" presses the second)."""
    who = f"{name} " if name else ""
    head = f"── to {who}[{outbound.address.channel} {outbound.address.id}]"
    if outbound.resent:
        head += " (possibly repeated after a restart)"
    return f"{head}\n{plain(degrade_buttons(outbound.body, outbound.buttons), markup)}\n"


class ConsoleUI:
    """Reads lines from the terminal and turns them into inbound messages of the acting person."""

    def __init__(
        self,
        app: Any,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.app = app
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.acting: Person | None = None
        self.task: asyncio.Task[None] | None = None
        self._names: dict[int, str] = {}
        self._fd: int | None = None
        self._pending = b""
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()

    # -- output --------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    async def show(self, outbound: Outbound) -> None:
        """Outbox hook: print every message as it leaves, named by its recipient."""
        name = None
        if outbound.person_id is not None:
            name = self._names.get(outbound.person_id)
            if name is None:
                person = await self.app.people.get(outbound.person_id)
                name = person.name if person else None
                if name:
                    self._names[outbound.person_id] = name
        self.write(render(outbound, name, self.app.policy(outbound.address.channel).capabilities.markup))

    # -- input ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.app.outbox.on_sent.append(self.show)
        self.task = asyncio.create_task(self._read_loop(), name="console")
        self._watch_stdin()
        self.write(
            f"Huddle console — talking to {self.app.hooks.title()}. "
            "/who lists people, /as NAME acts as one, /help, /quit."
        )

    async def stop(self) -> None:
        if self.show in self.app.outbox.on_sent:
            self.app.outbox.on_sent.remove(self.show)
        self._unwatch_stdin()
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    # The terminal is read by the event loop itself (`add_reader`), never by a thread blocked in
    # readline(): such a thread cannot be interrupted, so Ctrl-C, /quit or SIGTERM would wait for
    # the next Enter before the process could exit.

    def _watch_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        self._fd = self.stdin.fileno()
        loop.add_reader(self._fd, self._readable)

    def _unwatch_stdin(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None

    def _readable(self) -> None:
        """A line (or end of input) is waiting on the terminal: read it without blocking the loop."""
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # Ctrl-D, or the terminal went away
            self._unwatch_stdin()
            self._lines.put_nowait(None)
            return
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            self._lines.put_nowait(raw.decode("utf-8", errors="replace"))

    async def _read_loop(self) -> None:
        while True:
            line = await self._lines.get()
            if line is None:
                self.app.request_stop()
                return
            try:
                await self.handle_line(line.rstrip("\r\n"))
            except Exception as exc:  # the console must survive anything typed into it
                self.write(f"! {type(exc).__name__}: {exc}")

    async def handle_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        word, _, rest = text.partition(" ")
        commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/as": self.act_as,
            "/who": self.who,
            "/quit": self.quit,
            "/exit": self.quit,
        }
        if word.lower() in commands:
            await commands[word.lower()](rest.strip())
            return
        if word.lower() == "/help" and self.acting is None:
            self.write("/who — list people · /as NAME — act as someone · /quit — stop Huddle")
            return
        if self.acting is None:
            self.write("Pick someone first: /as NAME (see /who).")
            return
        await self.say(text)

    async def who(self, _rest: str = "") -> None:
        people = await self.app.people.all()
        if not people:
            self.write("Nobody yet. Add people with `python main.py people add` or enable demo data.")
            return
        for p in people:
            roles = ", ".join(sorted(p.roles)) or "-"
            addrs = " ".join(f"{a.channel}:{a.id}" for a in p.addresses)
            marker = "*" if self.acting and self.acting.id == p.id else " "
            self.write(f"{marker} {p.name:<24} {roles:<28} {addrs}")

    async def find(self, query: str) -> Person | None:
        people = await self.app.people.all()
        q = query.strip().lower()
        for p in people:
            if any(q == a.id.lower() or q == f"{a.channel}:{a.id}".lower() for a in p.addresses):
                return p
        digits = "".join(c for c in q if c.isdigit())
        if len(digits) >= 7:
            for p in people:
                if any(a.channel == "sms" and a.id.endswith(digits[-10:]) for a in p.addresses):
                    return p
        exact = [p for p in people if p.name.lower() == q]
        if exact:
            return exact[0]
        starts = [p for p in people if any(w.startswith(q) for w in p.name.lower().split())]
        if len(starts) == 1:
            return starts[0]
        if len(starts) > 1:
            raise LookupError(f"{len(starts)} people match “{query}”: {', '.join(p.name for p in starts)}")
        names = {p.id: p.name for p in people}
        best = process.extractOne(query, names, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=80)
        if best is None:
            return None
        return next(p for p in people if p.id == best[2])

    async def act_as(self, query: str) -> None:
        if not query:
            self.write("Usage: /as NAME (or a phone number or an address like telegram:100001)")
            return
        try:
            person = await self.find(query)
        except LookupError as exc:
            self.write(f"{exc}. Be more specific.")
            return
        if person is None:
            address = _address_from(query, self.app.policies)
            if address is None:
                self.write(f"No one matches “{query}”. /who lists people.")
                return
            self.acting = Person(None, address.id, frozenset(), [address])
            self.write(f"Acting as a stranger at {address.channel}:{address.id}.")
            return
        self.acting = person
        address = self.address_for(person)
        self.write(f"Acting as {person.name} on {address.channel} ({address.id}).")

    def address_for(self, person: Person) -> Address:
        for a in person.addresses:
            if a.channel in self.app.channels:
                return a
        return Address("console", f"person-{person.id}")

    async def say(self, text: str) -> None:
        assert self.acting is not None
        address = self.address_for(self.acting)
        channel = self.app.channels.get(address.channel)
        simulate = getattr(channel, "simulate_inbound", None)
        if simulate is not None:
            await simulate(address.id, text)
            return
        await self.app.inbound(
            Inbound(
                address=address,
                text=text,
                provider_id=f"console-{id(self)}-{next(_ids)}",
                received_at=self.app.clock.now(),
                display_name=self.acting.name,
            )
        )

    async def quit(self, _rest: str = "") -> None:
        self.write("Stopping…")
        self.app.request_stop()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


def _address_from(text: str, policies: dict[str, ChannelPolicy]) -> Address | None:
    """`telegram:100001` on a declared channel, or a `+` number on the texting channel that takes it."""
    if ":" in text:
        channel, _, ident = text.partition(":")
        policy = policies.get(channel.strip().lower())
        if policy is None:
            return None
        try:
            return Address(policy.name, policy.normalize(ident))
        except ValueError:
            return None
    digits = "".join(c for c in text if c.isdigit())
    if text.strip().startswith("+") and len(digits) >= 8:
        for policy in policies.values():
            if policy.texting and policy.name != "console":
                try:
                    return Address(policy.name, policy.normalize(text.strip()))
                except ValueError:
                    continue
    return None


def setup(app: Any) -> None:
    """The console itself, and at start a stand-in for every declared channel that has no adapter."""
    app.declare_channel(ConsolePolicy())
    app.hooks.stand_in.implement(
        lambda policy: StandInChannel(policy if policy.name == "console" else stand_in_policy(policy)), owner="console"
    )
    if not app.settings.console:
        return
    ui = ConsoleUI(app)

    async def start_ui(_app: Any) -> None:
        if not _is_terminal(ui.stdin):
            # Started by a service manager, a pipe or a script: nobody is there to type, and a
            # reader on a pipe that stays open would keep the process alive after SIGTERM.
            log.info("console off: stdin is not a terminal")
            return
        ui.start()

    async def stop_ui(_app: Any) -> None:
        await ui.stop()

    app.on_ready(start_ui)
    app.on_shutdown(stop_ui)


plugin = Plugin("console", setup, description="the terminal, standing in for every channel not configured")
