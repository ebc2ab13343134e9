"""The contract between Huddle and a provider: translate updates in, translate sends out.

A channel never decides anything. It hands each inbound message to `on_inbound` and returns
only once that call returns (the message is then committed), so a provider acknowledgement or a
modem slot deletion that follows can never lose a message. It turns one `Outbound` into one
provider call and says, through the exception it raises, whether trying again could help.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bot.model import Button, DeliveryReport, Inbound, Outbound

InboundHandler = Callable[[Inbound], Awaitable[None]]
DeliveryHandler = Callable[[DeliveryReport], Awaitable[None]]
AcceptHandler = Callable[[Outbound, str], Awaitable[None]]
"""`await accepted(outbound, provider_id)`: the provider took (a part of) `outbound` under that id."""


class Markup(StrEnum):
    PLAIN = "plain"
    SLACK_MRKDWN = "slack_mrkdwn"
    TELEGRAM_HTML = "telegram_html"


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_length: int | None = None
    """Longest body one send can carry; the channel splits or refuses beyond it."""
    markup: Markup = Markup.PLAIN
    """What `send` receives: the outbox renders each neutral-markup body to this once (channels/markup.py)."""
    buttons: bool = False
    files: bool = False


@dataclass(frozen=True, slots=True)
class Pacing:
    """Token-bucket limits the outbox applies to this channel (rates in messages per second)."""

    global_rate: float | None = None
    global_burst: int = 1
    per_recipient_rate: float | None = None
    per_recipient_burst: int = 1
    concurrency: int = 8
    """How many sends may be in flight at once (an SMS modem takes one at a time)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_ids: list[str] = field(default_factory=list)
    """Provider ids of what was sent (one per SMS part), used to match delivery reports. Ids already
    given to an accept listener (`listen_accepted`) are listed too; each is recorded once."""
    delivered: bool = False
    """True when the provider's acceptance already means delivery (console, Slack)."""


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """A channel's live state for `/healthz`, `status` and the admin pages.

    `up` is False when the channel is configured but cannot receive or send right now (modem
    unplugged or unregistered, Slack socket closed, Telegram polling failing). `detail` holds
    what an operator wants to see (signal, registration, last contact, last error), JSON-ready.
    """

    up: bool
    detail: dict[str, Any] = field(default_factory=dict)


async def health_of(channel: object) -> ChannelHealth:
    """A channel's `health()` if it has one; otherwise up (it has nothing to report)."""
    probe = getattr(channel, "health", None)
    if probe is None:
        return ChannelHealth(True)
    result = probe()
    if hasattr(result, "__await__"):
        result = await result
    return result


@dataclass(frozen=True, slots=True)
class Keyword:
    """A carrier keyword found in a text: what it asks for, and the words to record with it."""

    kind: str
    """`opt_out`, `opt_in` or `help`."""
    record: str
    """What the consent log keeps of it (the keyword, or the rule and sentence that matched)."""


class ChannelPolicy:
    """What Huddle knows about a channel whether or not its adapter runs in this process.

    A channel plugin declares its policy always (`app.declare_channel`), and adds the adapter
    only when the channel is configured; the console and the test harness stand in with the same
    policy. Everything provider-specific that the rest of Huddle needs lives here, once:
    capabilities and markup, pacing limits, how an address is written, how a command is spelled,
    and whether carrier texting rules apply. Subclass and override what differs.
    """

    name: str = ""
    capabilities: Capabilities = Capabilities()
    pacing: Pacing = Pacing()
    texting: bool = False
    """Carrier rules apply: STOP/START/HELP keywords before any handler, quiet hours for
    proactive messages even to addresses nobody is known by."""
    address_label: str = "address"
    """What an address on this channel is, for people (`--help`, errors): "phone number"."""
    local_device: bool = False
    """The adapter needs this machine's hardware (a modem on a USB port): on PostgreSQL it runs in
    `python main.py gateway` on that machine, not in the workers (`HUDDLE_GATEWAY_CHANNELS` overrides)."""

    def __init__(self, name: str | None = None, **overrides: Any) -> None:
        if name is not None:
            self.name = name
        for key, value in overrides.items():
            if not hasattr(type(self), key):
                raise TypeError(f"ChannelPolicy has no {key!r}")
            setattr(self, key, value)
        if not self.name:
            raise ValueError("a channel policy needs a name")

    def normalize(self, ident: str) -> str:
        """The canonical form of an address id as stored (raise ValueError for one that is invalid)."""
        ident = ident.strip()
        if not ident:
            raise ValueError(f"empty {self.address_label}")
        return ident

    def command_label(self, command: str) -> str:
        """How a person types `command` here: `/stale` on Telegram, `STALE` by SMS."""
        return command

    def sender(self, ident: str) -> str:
        """The stored form of an id a message came from: canonical, or kept as received."""
        try:
            return self.normalize(ident)
        except ValueError:
            return ident.strip()

    def machine_sender(self, ident: str) -> str | None:
        """What kind of machine sent this (`"alphanumeric"`, `"short_code"`), or None for a person.

        A machine's message is stored and shown to the operator, but no handler gets it.
        """
        return None

    def keyword(self, text: str) -> Keyword | None:
        """STOP / START / HELP as this channel's carriers define them (None: ordinary text)."""
        return None

    def refuses(self, outbound: Outbound) -> str | None:
        """Why this channel can never carry `outbound` to its address (None: it can)."""
        return None

    def can_reply(self, ident: str) -> bool:
        """False for senders that cannot receive anything back (an alphanumeric SMS sender)."""
        return True

    def may_enrol(self, ident: str) -> bool:
        """False for senders that must never become a person (a machine, a short code)."""
        return True

    def allows_proactive(self, ident: str) -> bool:
        """False for addresses that may get replies but no unprompted message (a short code)."""
        return True

    def derive(self, **attributes: Any) -> ChannelPolicy:
        """A copy with some attributes changed (a stand-in's capabilities, a test's pacing)."""
        new = copy.copy(self)
        for key, value in attributes.items():
            if not hasattr(new, key):
                raise TypeError(f"ChannelPolicy has no {key!r}")
            setattr(new, key, value)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def listen_ready(channel: object, callback: Callable[[], None]) -> bool:
    """Subscribe to a channel's "ready again" signal, if it offers one (`add_ready_listener`).

    A channel whose provider can vanish and come back (a modem on a serial port) calls `callback`
    each time it can send again; the outbox then lifts the pause a failed send put on the channel
    and retries at once what was waiting for it. Returns False for channels without the signal.
    """
    add = getattr(channel, "add_ready_listener", None)
    if add is None:
        return False
    add(callback)
    return True


async def catch_up(channel: object) -> None:
    """Ask a channel to read again what its provider kept while Huddle could not store it (a
    modem's storage while the database was unreachable), if it can (`catch_up`)."""
    again = getattr(channel, "catch_up", None)
    if again is not None:
        await again()


def listen_accepted(channel: object, callback: AcceptHandler) -> bool:
    """Give a channel the outbox's receipt recorder, if it takes one (`add_accept_listener`).

    A provider that answers each part of a send with an id before that part's delivery report can
    come back (an SMS modem's `+CMGS: <mr>`, then `+CDS` for it) calls `await callback(outbound,
    provider_id)` as each part is accepted, with the `Outbound` it was given: before it sends the
    next part of that message, and before `send` returns. The outbox records the receipt right
    then, so a report that overtakes `send()`'s return finds its message and nobody has to wait
    for it. The callback never raises. Channels without the method keep working: their
    `SendResult.provider_ids` are recorded when `send` returns (and a report that came first is
    kept and matched then). Returns False for them.
    """
    add = getattr(channel, "add_accept_listener", None)
    if add is None:
        return False
    add(callback)
    return True


class SendError(Exception):
    pass


class RetryableSendError(SendError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class NotHandedOver(SendError):
    """The channel gives the message back untouched: it is stopping, and the message was still
    waiting its turn (e.g. for the modem). Not an attempt; the outbox queues it again as it was."""


class PermanentSendError(SendError):
    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        """The address itself is dead (bot blocked, chat deleted): stop sending to it."""


@runtime_checkable
class Channel(Protocol):
    """A running adapter. Its `policy` says what it can render and how fast it may send.

    Optional: `health()`, `add_ready_listener(cb)` (see `listen_ready`),
    `add_accept_listener(cb)` (see `listen_accepted`) and `stop_sending()`: the outbox is stopping,
    so sends still waiting their turn raise `NotHandedOver` and only those already with the
    provider are waited for.
    """

    name: str
    policy: ChannelPolicy

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        """Begin receiving; return once running (receive loops run as tasks)."""
        ...

    async def send(self, outbound: Outbound) -> SendResult: ...

    async def stop(self) -> None: ...


def degrade_buttons(body: str, buttons: list[Button]) -> str:
    """Render buttons as numbered lines for channels that cannot show them (Rasa-style)."""
    if not buttons:
        return body
    lines = [body.rstrip(), ""] if body.strip() else []
    lines += [f"{i}. {html.escape(b.text, quote=False)}" for i, b in enumerate(buttons, 1)]  # neutral markup
    lines.append("Reply with a number.")
    return "\n".join(lines)
