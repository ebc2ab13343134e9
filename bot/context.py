"""What a handler gets as its first argument: the message, the sender, and ways to answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.model import Address, Button, Inbound, Outbound, OutboundKind, Person

if TYPE_CHECKING:
    from bot.app import App


@dataclass(slots=True)
class Context:
    app: App
    inbound: Inbound
    person: Person | None
    command: str | None = None
    args: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    """Conversation state for (person, channel), saved after the handler returns."""
    handler_name: str = ""
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

    def now(self) -> datetime:
        return self.app.clock.now()

    async def reply(self, text: str, buttons: list[Button] | None = None) -> Outbound:
        """Queue an answer to the sender on the channel they wrote from.

        The idempotency key derives from the inbound row, so a message handled again after a
        crash does not answer twice.
        """
        self._replies += 1
        key = f"in:{self.inbound.id}:{self._replies}" if self.inbound.id is not None else None
        channel = self.app.channels.get(self.channel)
        if buttons and channel is not None and not channel.capabilities.buttons:
            # The channel shows numbered lines; remember them so "2" means the second button.
            self.state["_buttons"] = [(b.text, b.data) for b in buttons]
        return await self.app.send(
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
    ) -> Outbound:
        """Queue a message to someone else (a relay to staff, a note to a manager)."""
        if key is None and self.inbound.id is not None:
            self._replies += 1
            key = f"in:{self.inbound.id}:{self._replies}:{address}"
        return await self.app.send(address, text, kind=kind, key=key, buttons=buttons or [], person=person)
