"""A whole audience in one file: volunteers who ask for their shifts, on any channel.

It declares a role with its policy, a router with a command and a free-text handler (with a
filter that hands the handler what it matched), a service injected by name, and a hook. See
`docs/howto-audience.md`; `tests/test_docs_examples.py` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.context import Context
from bot.plugins import Plugin
from bot.roles import RoleSpec
from bot.router import Regex, Router, UsageError

VOLUNTEER = RoleSpec("volunteer", "helps at events; asks for their shifts", rank=30)

router = Router("volunteers")


@dataclass
class Rota:
    """The service this audience needs (a real one would read storage through a repository)."""

    shifts: dict[int, list[str]] = field(default_factory=dict)

    def of(self, person_id: int | None) -> list[str]:
        return self.shifts.get(person_id or 0, [])


@router.command("shifts", roles={"volunteer"}, help="your next shifts")
async def shifts(ctx: Context, rota: Rota, count: int = 3) -> str:
    if count < 1:
        raise UsageError("COUNT is at least 1.")
    mine = rota.of(ctx.person.id if ctx.person else None)[:count]
    return "Your next shifts: " + "; ".join(mine) if mine else "No shifts booked. Ask your coordinator."


@router.message(Regex(r"\b(swap|cover)\b.*\b(sat|sun)\w*"), roles={"volunteer"})
async def swap(ctx: Context, match: Any) -> str:
    return f"Noted: you'd like to {match.group(1)} {match.group(2).capitalize()}. A coordinator will confirm."


def setup(app: Any) -> None:
    app.declare_role(VOLUNTEER)
    app.provide("rota", Rota())
    app.include_router(router)


plugin = Plugin("volunteers", setup, description="volunteers and their shifts (an example)")
