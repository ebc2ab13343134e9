"""Who is writing: an address resolves to a person with roles.

Unknown SMS senders become customers (leads) on first contact so the store can greet them;
unknown Slack or Telegram users stay unknown (None) and reach only public commands.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from bot.clock import Clock
from bot.config_file import ConfigFile, StrictModel
from bot.model import Address, Person, Role
from bot.phones import SenderKind, normalize_phone, normalize_sender, sender_kind
from bot.settings import check_timezone
from storage.people import PeopleRepo

if TYPE_CHECKING:
    from bot.settings import CoreSettings

AUTO_ENROL: dict[str, Role] = {"sms": Role.CUSTOMER}


def normalize_address(address: Address) -> Address:
    """SMS senders in their stored form (E.164, short code digits, or the alphanumeric name)."""
    if address.channel == "sms":
        return Address("sms", normalize_sender(address.id))
    return address


def may_enrol(address: Address) -> bool:
    """Only a phone number becomes a lead: short codes and alphanumeric senders are businesses."""
    return address.channel != "sms" or sender_kind(address.id) is SenderKind.PHONE


TimezoneFor = Callable[[Address], Awaitable[str | None]]


class PersonConfig(StrictModel):
    name: str
    roles: list[Role] = Field(default_factory=list)
    sms: str | None = None
    slack: str | None = None
    telegram: str | None = None
    timezone: str | None = None
    """IANA zone; unset: the store's (or HUDDLE_DEFAULT_TIMEZONE)."""
    locale: str = "en"
    external_id: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    def to_person(self, default_timezone: str = "") -> Person:
        """The person; without a timezone of its own, `default_timezone` ("" = decided at start)."""
        addrs = []
        if self.sms:
            addrs.append(Address("sms", normalize_phone(self.sms)))
        if self.slack:
            addrs.append(Address("slack", self.slack))
        if self.telegram:
            addrs.append(Address("telegram", self.telegram))
        return Person(None, self.name, frozenset(self.roles), addrs, self.timezone or default_timezone, self.locale,
                      self.external_id)


class Directory:
    def __init__(self, people: PeopleRepo, clock: Clock, settings: CoreSettings) -> None:
        self.people = people
        self.clock = clock
        self.settings = settings
        self.timezone_for: TimezoneFor | None = None
        """The zone of a new lead (the store plugin answers with the store's); else HUDDLE_DEFAULT_TIMEZONE."""

    async def lead_timezone(self, address: Address | None) -> str:
        """Where a person we have never seen is (quiet hours hold marketing in *their* night)."""
        if self.timezone_for is not None and address is not None:
            found = await self.timezone_for(address)
            if found:
                return found
        return self.settings.default_timezone

    async def resolve(self, address: Address, display_name: str | None = None) -> Person | None:
        person = await self.people.by_address(address)
        if person is not None:
            return person
        role = AUTO_ENROL.get(address.channel)
        if role is None or not may_enrol(address):
            return None
        lead = Person(
            None,
            display_name or "",
            frozenset({role}),
            [address],
            timezone=await self.lead_timezone(address),
            attributes={"lead": True},
        )
        try:
            return await self.people.add(lead, self.clock.now())
        except ValueError:  # another message from the same number won the race
            return await self.people.by_address(address)

    def people_from_config(self, config: ConfigFile) -> list[Person]:
        return [item.to_person() for item in config.section("people", list[PersonConfig], default=[])]

    async def add_people(self, people: list[Person]) -> int:
        """Add the `[[people]]` of the TOML file that are not known yet (matched by address)."""
        added = 0
        for person in people:
            known = [await self.people.by_address(a) for a in person.addresses]
            if any(known):
                continue
            if not person.timezone:
                person.timezone = await self.lead_timezone(person.addresses[0] if person.addresses else None)
            await self.people.add(person, self.clock.now())
            added += 1
        return added


__all__ = ["AUTO_ENROL", "Directory", "PersonConfig", "may_enrol", "normalize_address", "normalize_phone"]
