"""Who is writing: an address resolves to a person with roles.

Unknown SMS senders become customers (leads) on first contact so the store can greet them;
unknown Slack or Telegram users stay unknown (None) and reach only public commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import phonenumbers
from pydantic import Field

from bot.clock import Clock
from bot.config_file import ConfigFile, StrictModel
from bot.model import Address, Person, Role
from storage.people import PeopleRepo

if TYPE_CHECKING:
    from bot.settings import CoreSettings

AUTO_ENROL: dict[str, Role] = {"sms": Role.CUSTOMER}


def normalize_phone(text: str, region: str = "US") -> str:
    """E.164 for anything a person might type: '(619) 555-0100' → '+16195550100'."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {text!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a phone number: {text!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_address(address: Address) -> Address:
    if address.channel == "sms" and not address.id.isalpha():
        try:
            return Address("sms", normalize_phone(address.id))
        except ValueError:
            return address
    return address


class PersonConfig(StrictModel):
    name: str
    roles: list[Role] = Field(default_factory=list)
    sms: str | None = None
    slack: str | None = None
    telegram: str | None = None
    timezone: str = "UTC"
    locale: str = "en"
    external_id: str | None = None

    def to_person(self) -> Person:
        addrs = []
        if self.sms:
            addrs.append(Address("sms", normalize_phone(self.sms)))
        if self.slack:
            addrs.append(Address("slack", self.slack))
        if self.telegram:
            addrs.append(Address("telegram", self.telegram))
        return Person(None, self.name, frozenset(self.roles), addrs, self.timezone, self.locale, self.external_id)


class Directory:
    def __init__(self, people: PeopleRepo, clock: Clock, settings: CoreSettings) -> None:
        self.people = people
        self.clock = clock
        self.settings = settings

    async def resolve(self, address: Address, display_name: str | None = None) -> Person | None:
        person = await self.people.by_address(address)
        if person is not None:
            return person
        role = AUTO_ENROL.get(address.channel)
        if role is None:
            return None
        lead = Person(
            None,
            display_name or "",
            frozenset({role}),
            [address],
            timezone=self.settings.default_timezone,
            attributes={"lead": True},
        )
        try:
            return await self.people.add(lead, self.clock.now())
        except ValueError:  # another message from the same number won the race
            return await self.people.by_address(address)

    @staticmethod
    def people_from_config(config: ConfigFile) -> list[Person]:
        return [item.to_person() for item in config.section("people", list[PersonConfig], default=[])]

    async def add_people(self, people: list[Person]) -> int:
        """Add the `[[people]]` of the TOML file that are not known yet (matched by address)."""
        added = 0
        for person in people:
            known = [await self.people.by_address(a) for a in person.addresses]
            if any(known):
                continue
            await self.people.add(person, self.clock.now())
            added += 1
        return added
