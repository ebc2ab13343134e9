"""What a handler gets as its first argument: the message, the sender, and ways to answer.

A `Context` carries only what a handler may touch: the inbound message, the person, the
conversation state, the clock, the channel's policy, and `reply`/`send` through the outbox. It
holds no reference to the application; services come as injected handler parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.clock import Clock
from bot.model import Address, Button, Inbound, Outbound, OutboundKind, Person
from channels.base import ChannelPolicy


class Messaging(Protocol):
    """The part of the kernel a conversation talks to (the dispatcher implements it)."""

    clock: Clock
    deps: Mapping[str, Any]

    def policy(self, channel: str) -> ChannelPolicy: ...

    def help_lines(self, person: Person | None, channel: str) -> list[str]: ...

    async def send(
        self,
        address: Address,
        body: str,
        *,
        kind: OutboundKind = OutboundKind.PROACTIVE,
        key: str | None = None,
        buttons: list[Button] | None = None,
        thread: str | None = None,
        person: Person | None = None,
        compliance: bool = False,
    ) -> Outbound: ...


@dataclass(slots=True)
class Context:
    messaging: Messaging
    inbound: Inbound
    person: Person | None
    command: str | None = None
    args: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    """Conversation state for (person, channel), saved after the handler returns."""
    handler_name: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """What middlewares and filters found out about the message, injectable by name."""
    _replies: int = 0

    @property
    def address(self) -> Address:
        return self.inbound.address

    @property
    def channel(self) -> str:
        return self.inbound.address.channel

    @property
    def text(self) -> str:
        return self.inbound.text

    @property
    def deps(self) -> Mapping[str, Any]:
        """The services plugins provided (what handlers get injected by name), for middlewares and filters."""
        return self.messaging.deps

    @property
    def policy(self) -> ChannelPolicy:
        return self.messaging.policy(self.channel)

    def now(self) -> datetime:
        return self.messaging.clock.now()

    def command_label(self, name: str, channel: str | None = None) -> str:
        """`name` as the sender types it on their channel (`/start`, `START`, `start`)."""
        return self.messaging.policy(channel or self.channel).command_label(name)

    def help_lines(self, person: Person | None = None, channel: str | None = None) -> list[str]:
        """The commands `person` (default: the sender) may use, labelled for the channel."""
        return self.messaging.help_lines(person if person is not None else self.person, channel or self.channel)

    async def reply(self, text: str, buttons: list[Button] | None = None) -> Outbound:
        """Queue an answer to the sender on the channel they wrote from.

        The idempotency key derives from the inbound row, so a message handled again after a
        crash does not answer twice.
        """
        self._replies += 1
        key = f"in:{self.inbound.id}:{self._replies}" if self.inbound.id is not None else None
        if buttons and not self.policy.capabilities.buttons:
            # The channel shows numbered lines; remember them so "2" means the second button.
            self.state["_buttons"] = [(b.text, b.data) for b in buttons]
        return await self.messaging.send(
            self.address,
            text,
            kind=OutboundKind.REPLY,
            key=key,
            buttons=buttons or [],
            thread=self.inbound.thread,
            person=self.person,
        )

    async def send(
        self,
        address: Address,
        text: str,
        *,
        kind: OutboundKind = OutboundKind.PROACTIVE,
        key: str | None = None,
        buttons: list[Button] | None = None,
        person: Person | None = None,
        thread: str | None = None,
    ) -> Outbound:
        """Queue a message to someone else (a relay to staff, a note to a manager)."""
        if key is None and self.inbound.id is not None:
            self._replies += 1
            key = f"in:{self.inbound.id}:{self._replies}:{address}"
        return await self.messaging.send(
            address, text, kind=kind, key=key, buttons=buttons or [], person=person, thread=thread
        )
