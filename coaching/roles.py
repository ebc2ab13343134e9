"""The audiences of this business, as role names.

The kernel has no list of roles: each audience's plugin declares its role with a policy
(`bot.roles.RoleSpec`). These names are the domain's vocabulary for them; a `Role` member is a
`str`, so it can be used wherever a role name is expected.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bot.roles import RoleSpec


class Role(StrEnum):
    CUSTOMER = "customer"
    BUDTENDER = "budtender"
    EXTERNAL_BUDTENDER = "external_budtender"
    CHATTER = "chatter"
    TEAM_LEAD = "team_lead"
    SALES_MANAGER = "sales_manager"
    ADMIN = "admin"


SPECS: dict[Role, RoleSpec] = {
    Role.CUSTOMER: RoleSpec(
        "customer", "buys at the store; texts its number", rank=10, enrol_from=frozenset({"sms"}), quiet_hours=True
    ),
    Role.CHATTER: RoleSpec("chatter", "sells in chat; coached by a team lead", rank=20),
    Role.BUDTENDER: RoleSpec("budtender", "sells at the counter; coached by SMS during shifts", rank=30),
    Role.EXTERNAL_BUDTENDER: RoleSpec(
        "external_budtender", "sells the house brand at another dispensary; sends receipts for points", rank=25
    ),
    Role.TEAM_LEAD: RoleSpec("team_lead", "coaches chatters from Slack", rank=40),
    Role.SALES_MANAGER: RoleSpec("sales_manager", "runs deals from Telegram", rank=40),
}
"""Each audience's policy: staff outrank customers, so a customer who also works at the store gets
the staff answer whichever plugin loaded first. `admin` is the kernel's own (`bot/builtin.py`)."""


def declare(app: HasRoles, *roles: Role) -> None:
    """Declare `roles` with their policy (a plugin calls this for the audiences it serves)."""
    for role in roles:
        app.declare_role(SPECS[role])


class HasRoles(Protocol):
    def declare_role(self, spec: RoleSpec) -> RoleSpec: ...
