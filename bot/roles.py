"""Roles are names that plugins declare, each with its policy; the kernel has no list of them.

    app.roles.declare(RoleSpec("member", rank=10, enrol_from={"phone"}, quiet_hours=True))

* `rank` decides precedence: when several handlers could answer a person who holds several
  roles, the handler for the highest-ranked role the person holds wins (`bot/router.py`), so the
  answer never depends on which plugin loaded first.
* `enrol_from`: channels whose unknown senders become a person with this role on first contact.
* `quiet_hours`: proactive messages to people with this role wait out the quiet hours in their
  timezone (a channel may also ask it for addresses nobody is known by, see `ChannelPolicy`).

A role stored in the database that no running plugin declares is kept on the person and simply
grants nothing, so switching a plugin off never breaks a start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ANYONE_RANK = -1
"""The rank of a handler open to everyone: below every declared role."""


@dataclass(frozen=True, slots=True)
class RoleSpec:
    name: str
    description: str = ""
    rank: int = 50
    enrol_from: frozenset[str] = field(default_factory=frozenset)
    quiet_hours: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"a role name is lower-case letters, digits and _: {self.name!r}")
        object.__setattr__(self, "enrol_from", frozenset(self.enrol_from))


class Roles:
    """The roles the loaded plugins declared."""

    def __init__(self) -> None:
        self._specs: dict[str, RoleSpec] = {}

    def declare(self, spec: RoleSpec) -> RoleSpec:
        known = self._specs.get(spec.name)
        if known is not None and known != spec:
            raise ValueError(f"role {spec.name!r} is declared twice with different policies")
        for other in self._specs.values():
            both = other.enrol_from & spec.enrol_from
            if other.name != spec.name and both:
                raise ValueError(
                    f"roles {other.name!r} and {spec.name!r} both enrol unknown senders from {', '.join(sorted(both))}"
                )
        self._specs[spec.name] = spec
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._specs.values(), key=lambda s: (-s.rank, s.name)))

    def get(self, name: str) -> RoleSpec | None:
        return self._specs.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._specs)

    def rank(self, name: str) -> int | None:
        spec = self._specs.get(name)
        return spec.rank if spec else None

    def best_rank(self, roles: Iterable[str]) -> int:
        """The highest rank among `roles` that are declared (ANYONE_RANK when none is)."""
        ranks = [spec.rank for r in roles if (spec := self._specs.get(r)) is not None]
        return max(ranks, default=ANYONE_RANK)

    def enrolling(self, channel: str) -> RoleSpec | None:
        """The role unknown senders on `channel` are given, if any."""
        return next((s for s in self._specs.values() if channel in s.enrol_from), None)

    def quiet_hours(self, roles: Iterable[str]) -> bool:
        return any((spec := self._specs.get(r)) is not None and spec.quiet_hours for r in roles)

    def known(self, roles: Iterable[str]) -> frozenset[str]:
        return frozenset(r for r in roles if r in self._specs)
