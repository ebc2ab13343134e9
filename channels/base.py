"""The contract between Huddle and a provider: translate updates in, translate sends out.

A channel never decides anything. It hands each inbound message to `on_inbound` and returns
only once that call returns (the message is then committed), so a provider acknowledgement or a
modem slot deletion that follows can never lose a message. It turns one `Outbound` into one
provider call and says, through the exception it raises, whether trying again could help.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bot.model import Button, DeliveryReport, Inbound, Outbound

InboundHandler = Callable[[Inbound], Awaitable[None]]
DeliveryHandler = Callable[[DeliveryReport], Awaitable[None]]


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
    """Provider ids of what was sent (one per SMS part), used to match delivery reports."""
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


class SendError(Exception):
    pass


class RetryableSendError(SendError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PermanentSendError(SendError):
    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        """The address itself is dead (bot blocked, chat deleted): stop sending to it."""


@runtime_checkable
class Channel(Protocol):
    name: str
    capabilities: Capabilities
    pacing: Pacing

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
