"""The plain data every part of Huddle speaks: who, where, what came in and what goes out.

These are dataclasses with no behaviour beyond small conveniences, so channels, storage, the
router and the coaching code can all share them without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    CUSTOMER = "customer"
    BUDTENDER = "budtender"
    CHATTER = "chatter"
    TEAM_LEAD = "team_lead"
    SALES_MANAGER = "sales_manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Address:
    """Where a person can be reached: ("sms", "+16195550100"), ("slack", "U024BE7LH")."""

    channel: str
    id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Address:
        channel, sep, ident = text.partition(":")
        if not sep or not channel or not ident:
            raise ValueError(f"address must look like CHANNEL:ID, got {text!r}")
        return cls(channel.strip().lower(), ident.strip())


@dataclass(slots=True)
class Person:
    id: int | None
    name: str
    roles: frozenset[Role] = frozenset()
    addresses: list[Address] = field(default_factory=list)
    timezone: str = "UTC"
    locale: str = "en"
    external_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def has_any(self, roles: frozenset[Role] | set[Role]) -> bool:
        return bool(self.roles & roles)

    def address_on(self, channel: str) -> Address | None:
        return next((a for a in self.addresses if a.channel == channel), None)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else self.name


@dataclass(frozen=True, slots=True)
class InboundFile:
    """A file that came with a message; `url` is fetched by the adapter that knows the auth."""

    name: str
    mimetype: str | None = None
    size: int | None = None
    url: str | None = None
    content: bytes | None = None
    provider_id: str | None = None


@dataclass(slots=True)
class Inbound:
    address: Address
    text: str
    provider_id: str | None
    received_at: datetime
    files: list[InboundFile] = field(default_factory=list)
    thread: str | None = None
    callback_data: str | None = None
    """Set when the message is a button press (Telegram callback, Slack action)."""
    display_name: str | None = None
    """The name the provider knows the sender by; used to greet people we do not know yet."""
    sender_type: str | None = None
    """SMS only: the sender's type of number from the PDU (`international`, `national`, `unknown`,
    `alphanumeric`, `abbreviated`, ...). Not stored; None on other channels."""
    id: int | None = None
    """Row id once stored."""


class OutboundKind(StrEnum):
    REPLY = "reply"
    PROACTIVE = "proactive"


class OutboundStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUSED = "refused"
    """Never sent on purpose: the address opted out or is unreachable."""


TERMINAL_STATUSES = frozenset({OutboundStatus.DELIVERED, OutboundStatus.FAILED, OutboundStatus.REFUSED})


@dataclass(frozen=True, slots=True)
class Button:
    """An action offered with a message. Channels that cannot render buttons number them."""

    text: str
    data: str


@dataclass(slots=True)
class Outbound:
    address: Address
    body: str
    kind: OutboundKind = OutboundKind.REPLY
    idempotency_key: str | None = None
    status: OutboundStatus = OutboundStatus.QUEUED
    attempts: int = 0
    next_attempt_at: datetime | None = None
    buttons: list[Button] = field(default_factory=list)
    thread: str | None = None
    reason: str | None = None
    provider_ids: list[str] = field(default_factory=list)
    person_id: int | None = None
    quiet_tz: str | None = None
    """IANA zone whose quiet hours hold this message; None means never held."""
    compliance: bool = False
    """Opt-out confirmations and HELP answers: allowed to an opted-out address."""
    resent: bool = False
    """Set when a crash left the row in flight and it was sent again: it may have arrived twice."""
    created_at: datetime | None = None
    sent_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A provider's word on a message sent earlier, matched by the id `send` returned."""

    channel: str
    provider_id: str
    delivered: bool
    reason: str | None = None
    address: Address | None = None
    at: datetime | None = None
