"""Declared extension points: the kernel asks a question, one plugin answers it.

Instead of patching a core attribute (`dispatcher.contact_text = …`), a plugin implements a hook
that the kernel declares here, with a default for when nobody does:

    app.hooks.contact_text.implement(lambda person, channel: "Acme: 555-0100", owner="shop")

A hook has one owner. A second plugin implementing the same hook is an error at start, naming
both, so which answer people get never depends on the order plugins loaded in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec, TypeVar

from bot.model import Address, Person
from channels.base import Channel, ChannelPolicy

P = ParamSpec("P")
R = TypeVar("R")


class HookError(ValueError):
    pass


class Hook(Generic[P, R]):
    def __init__(self, name: str, default: Callable[P, R], doc: str = "") -> None:
        self.name = name
        self.default = default
        self.__doc__ = doc
        self._impl: Callable[P, R] | None = None
        self.owner: str | None = None

    def implement(self, func: Callable[P, R], *, owner: str) -> Callable[P, R]:
        if self._impl is not None and self.owner != owner:
            raise HookError(f"hook {self.name!r} is implemented by both {self.owner!r} and {owner!r}")
        self._impl, self.owner = func, owner
        return func

    @property
    def implemented(self) -> bool:
        return self._impl is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return (self._impl or self.default)(*args, **kwargs)


def _contact(person: Person | None, channel: str) -> str:
    return "Reply HELP for help or STOP to opt out."


def _stranger(channel: str) -> str:
    return "Hi! I don't know you yet, so I can't share anything here. Ask your Huddle admin to enroll you."


COMPLIANCE_DEFAULTS = {
    "opted_out": "You're unsubscribed and will get no more messages. Reply START to resubscribe.",
    "opted_in": "You're subscribed again. Reply STOP to opt out, HELP for help.",
    "help_opted_out": "You're unsubscribed and get no texts from us. Reply START to opt back in.",
}


def _compliance(kind: str, person: Person | None, channel: str) -> str:
    return COMPLIANCE_DEFAULTS[kind]


async def _no_timezone(address: Address) -> str | None:
    return None


class KernelHooks:
    """Every question the kernel may ask plugins."""

    def __init__(self) -> None:
        self.contact_text: Hook[[Person | None, str], str] = Hook(
            "contact_text", _contact, "the HELP answer: who we are and how to reach a person"
        )
        self.stranger_text: Hook[[str], str] = Hook(
            "stranger_text", _stranger, "what an unknown sender is told on a channel where nobody is enrolled"
        )
        self.new_person_timezone: Hook[[Address], Awaitable[str | None]] = Hook(
            "new_person_timezone", _no_timezone, "the IANA zone of someone enrolled on first contact (None: default)"
        )
        self.title: Hook[[], str] = Hook("title", lambda: "Huddle", "the name people know this deployment by")
        self.stand_in: Hook[[ChannelPolicy], Channel | None] = Hook(
            "stand_in", lambda policy: None, "an adapter for a declared channel that is not configured (the console)"
        )
        self.compliance_text: Hook[[str, Person | None, str], str] = Hook(
            "compliance_text", _compliance, "the wording of opt-out/opt-in confirmations (kinds in COMPLIANCE_DEFAULTS)"
        )
