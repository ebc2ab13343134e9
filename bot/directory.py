"""Who is writing: an address resolves to a person with roles.

An unknown sender becomes a person only where a declared role says so (`RoleSpec.enrol_from`)
and the channel's policy agrees that this sender may enrol (a machine sender never does);
everyone else stays unknown (None) and reaches only what is open to anyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from pydantic import ConfigDict, Field, field_validator, model_validator

from bot.clock import Clock
from bot.config_file import ConfigError, ConfigFile, StrictModel
from bot.model import Address, Person
from bot.roles import Roles
from bot.settings import check_timezone
from channels.base import ChannelPolicy
from storage.people import PeopleRepo

PolicyLookup = Callable[[str], ChannelPolicy | None]


class PersonConfig(StrictModel):
    """One `[[people]]` entry: a name, roles, and an address per channel (`phone = "+1…"`).

    Address keys are the names of the channels the plugins declared; an unknown key is an error.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    roles: list[str] = Field(default_factory=list)
    timezone: str | None = None
    """IANA zone; unset: where a new person on their first address would be (the store's)."""
    locale: str = "en"
    external_id: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _addresses_are_text(self) -> PersonConfig:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, str):
                raise ValueError(f"{key}: an address is text")
        return self

    def addresses(self, policies: PolicyLookup) -> list[Address]:
        found = []
        for channel, ident in (self.model_extra or {}).items():
            policy = policies(channel)
            if policy is None:
                raise ValueError(f"{channel}: Extra inputs are not permitted (not a channel)")
            found.append(Address(channel, policy.normalize(ident)))
        return found


class Directory:
    def __init__(
        self,
        people: PeopleRepo,
        clock: Clock,
        roles: Roles,
        policies: PolicyLookup,
        timezone_for: Callable[[Address | None], Awaitable[str]],
    ) -> None:
        self.people = people
        self.clock = clock
        self.roles = roles
        self.policies = policies
        self.timezone_for = timezone_for

    async def resolve(self, address: Address, display_name: str | None = None) -> Person | None:
        person = await self.people.by_address(address)
        if person is not None:
            return person
        spec = self.roles.enrolling(address.channel)
        policy = self.policies(address.channel)
        if spec is None or policy is None or not policy.may_enrol(address.id):
            return None
        lead = Person(
            None,
            display_name or "",
            frozenset({spec.name}),
            [address],
            timezone=await self.timezone_for(address),
            attributes={"lead": True},
        )
        try:
            return await self.people.add(lead, self.clock.now())
        except ValueError:  # another message from the same number won the race
            return await self.people.by_address(address)

    def people_from_config(self, config: ConfigFile) -> list[Person]:
        """`[[people]]` validated against the declared roles and channels (a bad key names itself).

        A person without a timezone gets "" here; `add_people` gives them a new person's zone.
        """
        entries = config.section("people", list[PersonConfig], default=[])
        found = []
        for i, item in enumerate(entries):
            unknown = [r for r in item.roles if r not in self.roles]
            if unknown:
                raise ConfigError(
                    f"people[{i}].roles: unknown role {unknown[0]!r} (known: {', '.join(self.roles.names)})"
                )
            try:
                addresses = item.addresses(self.policies)
            except ValueError as exc:
                raise ConfigError(f"people[{i}].{exc}") from None
            found.append(Person(None, item.name, frozenset(item.roles), addresses,
                                item.timezone or "", item.locale, item.external_id))
        return found

    async def add_people(self, people: Iterable[Person]) -> int:
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


def parse_address(text: str, policies: PolicyLookup, channel: str | None = None) -> Address:
    """`channel:id`, or an id on `channel`, in the canonical form that channel's policy writes."""
    if channel is None:
        channel, sep, ident = text.partition(":")
        if not sep:
            raise ValueError(f"address must look like CHANNEL:ID, got {text!r}")
    else:
        ident = text
    channel = channel.strip().lower()
    policy = policies(channel)
    if policy is None:
        raise ValueError(f"unknown channel {channel!r}")
    return Address(channel, policy.normalize(ident))

