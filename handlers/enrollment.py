"""Who may use Huddle on Telegram or Slack: people who redeemed an invite code made by an admin.

An admin runs `python main.py invite sales_manager --name "Ann"` and passes the printed code on;
`/start CODE` (Telegram, also through a t.me deep link) or `start CODE` (Slack DM, SMS) links the
sender's address to a person with that role. Everyone else gets a polite "not enrolled" from the
dispatcher and no data. Nothing here depends on the channel, except that a Telegram group chat
cannot enrol (a group is not a person).
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from bot.app import App
from bot.clock import Clock
from bot.context import Context
from bot.errors import UserError
from bot.i18n import N_, t
from bot.model import Address
from bot.plugins import Plugin
from bot.router import ANYONE, Greedy, Router
from bot.settings import HuddleSettings
from coaching.roles import Role
from storage.invites import Invite, InviteRepo, Outcome, Redemption, normalize_code
from storage.people import PeopleRepo

log = logging.getLogger(__name__)

router = Router("enrollment")

NOT_ENROLLED = N_(
    "Hi! You're not enrolled yet, so I can't share anything here. "
    "If your admin gave you an invite code, send {start} CODE."
)
NEED_CODE = N_("Hi! To use this bot you need an invite code from your Huddle admin. Send it as {start} CODE.")
INVALID = N_(
    "Sorry, that invite code isn't valid: it may have expired or been used already. "
    "Please ask your admin for a new one."
)
TOO_MANY = N_("Too many codes tried from this account. Please wait an hour, or ask your admin for help.")
TAKEN = N_("This account is already linked to someone else, so the code can't be used here. Please ask your admin.")
GROUP = N_("Please send your invite code to me in a private chat, not in a group.")
ROLE_NAMES = {
    Role.CUSTOMER: N_("customer"),
    Role.BUDTENDER: N_("budtender"),
    Role.EXTERNAL_BUDTENDER: N_("partner budtender"),
    Role.CHATTER: N_("chatter"),
    Role.TEAM_LEAD: N_("team lead"),
    Role.SALES_MANAGER: N_("sales manager"),
    Role.ADMIN: N_("admin"),
}


class EnrollmentSettings(HuddleSettings):
    invite_ttl_hours: float = Field(168.0, gt=0, description="how long a new invite code stays valid")
    invite_max_failures: int = Field(5, ge=1, description="wrong codes per address per hour before a pause")


class Enrollment:
    """Redeems codes, and slows down anyone guessing them (a per-address count, in memory)."""

    def __init__(
        self, invites: InviteRepo, people: PeopleRepo, clock: Clock, max_failures: int = 5, window: float = 3600.0
    ) -> None:
        self.invites = invites
        self.people = people
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.failures: dict[Address, deque[float]] = {}

    def _recent(self, address: Address) -> deque[float]:
        now = self.clock.monotonic()
        recent = self.failures.get(address, deque())
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        if not recent:
            self.failures.pop(address, None)
        return recent

    def locked(self, address: Address) -> bool:
        return len(self._recent(address)) >= self.max_failures

    async def redeem(self, code: str, address: Address, display_name: str | None) -> Redemption:
        result = await self.invites.redeem(code, address, display_name, self.clock.now())
        if result.outcome is Outcome.INVALID:
            self.failures.setdefault(address, self._recent(address)).append(self.clock.monotonic())
        if result.outcome is Outcome.ENROLLED:
            self.people.forget()  # the directory cached this sender as a stranger a moment ago
        return result


def _start_label(ctx: Context) -> str:
    return ctx.command_label("start")


def _role_text(role: str, locale: str | None) -> str:
    return t(locale, ROLE_NAMES.get(role, str(role).replace("_", " ")))


@router.command("start", roles=ANYONE, usage="start CODE", help=N_("enrol with an invite code"), hidden=True)
async def start(ctx: Context, enrollment: Enrollment, people: PeopleRepo, code: Greedy = "") -> str:
    person = ctx.person
    loc = person.locale if person else None
    label = _start_label(ctx)
    help_label = ctx.command_label("help")
    if not normalize_code(code or ""):
        if person is not None and person.roles:
            return t(loc, "Welcome back, {name}! Send {help} to see what you can do.",
                     name=person.first_name or t(loc, "there"), help=help_label)
        return t(loc, NEED_CODE, start=label)
    if not ctx.policy.may_enrol(ctx.address.id):  # a group chat is not a person
        return t(loc, GROUP)
    if enrollment.locked(ctx.address):
        return t(loc, TOO_MANY)
    result = await enrollment.redeem(code, ctx.address, ctx.inbound.display_name)
    if result.outcome is Outcome.INVALID:
        log.info("invite code refused channel=%s", ctx.channel)
        return t(loc, INVALID)
    if result.outcome is Outcome.TAKEN:
        return t(loc, TAKEN)
    assert result.person_id is not None and result.role is not None
    if result.outcome is Outcome.ALREADY:
        return t(loc, "You're already enrolled as {role}. Send {help} to see what you can do.",
                 role=_role_text(result.role, loc), help=help_label)
    enrolled = await people.get(result.person_id)
    assert enrolled is not None
    ctx.person = enrolled
    loc = enrolled.locale
    log.info("enrolled person_id=%s role=%s channel=%s new=%s", enrolled.id, result.role, ctx.channel, result.created)
    lines = ctx.help_lines(enrolled)
    text = t(loc, "Welcome, {name}! You're enrolled as {role}.", name=enrolled.first_name or t(loc, "there"),
             role=_role_text(result.role, loc))
    if lines:
        text += "\n\n" + t(loc, "You can use:") + "\n" + "\n".join(lines)
    return text


# -- the admin's side: python main.py invite ... ------------------------------------------------


def _configure(parser: argparse.ArgumentParser, roles: list[str]) -> None:
    parser.add_argument("role", nargs="?", choices=roles, help="role the code grants")
    parser.add_argument("--name", help="the person's name; an existing person with this name gets the address")
    parser.add_argument("--person-id", type=int, help="attach the address to this existing person")
    parser.add_argument("--hours", type=float, help="hours the code stays valid (default HUDDLE_INVITE_TTL_HOURS)")
    parser.add_argument("--locale", help="language for a new person, e.g. en or ru")
    parser.add_argument("--timezone", help="IANA timezone for a new person, e.g. Europe/Moscow")
    parser.add_argument("--list", action="store_true", help="list invites not yet used")
    parser.add_argument("--revoke", type=int, metavar="ID", help="revoke an unused invite")


def _describe(invite: Invite) -> str:
    who = invite.name or (f"person #{invite.person_id}" if invite.person_id else "new person")
    return f"#{invite.id}  {invite.role:<14} {who:<24} expires {invite.expires_at:%Y-%m-%d %H:%M} UTC"


async def _run(app: App, args: argparse.Namespace) -> int:
    repo = InviteRepo(app.db)
    now = app.clock.now()
    if args.list:
        pending = await repo.open(now)
        print("\n".join(_describe(i) for i in pending) if pending else "No open invites.")
        return 0
    if args.revoke is not None:
        ok = await repo.revoke(args.revoke, now)
        if not ok:
            raise UserError(f"invite --revoke: no unused invite #{args.revoke} (see invite --list)")
        print(f"Invite #{args.revoke} revoked.")
        return 0
    if not args.role:
        roles = ", ".join(r.value for r in Role)
        raise UserError(f"invite: say which role the code grants ({roles}), "
                        "e.g. python main.py invite sales_manager --name Ann")
    if args.timezone:
        try:
            ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(f"invite --timezone: unknown timezone {args.timezone!r}") from None
    person_id = args.person_id
    name = args.name.strip() if args.name else None
    if person_id is not None:
        known = await app.people.get(person_id)
        if known is None:
            raise UserError(f"invite --person-id: no person #{person_id} (see people list)")
        name = name or known.name
    elif name:
        same = [p for p in await app.people.all() if p.name.casefold() == name.casefold()]
        if len(same) > 1:
            ids = ", ".join(f"#{p.id}" for p in same)
            raise UserError(f"invite: {len(same)} people are called {name!r} ({ids}): use --person-id.")
        if same:
            person_id = same[0].id
    hours = args.hours if args.hours is not None else EnrollmentSettings().invite_ttl_hours
    if hours <= 0:
        raise UserError("invite --hours must be positive")
    expires = now + timedelta(hours=hours)
    invite, code = await repo.create(
        args.role, now, expires, name=name, person_id=person_id, locale=args.locale, timezone=args.timezone
    )
    print(invite_text(invite, code, expires, _bot_username(app)))
    return 0


def _bot_username(app: App) -> str | None:
    settings = app.deps.get("telegram_settings")
    username = getattr(settings, "telegram_bot_username", None)
    return username.lstrip("@") if username else None


def invite_text(invite: Invite, code: str, expires: datetime, bot_username: str | None = None) -> str:
    who = f" for {invite.name}" if invite.name else ""
    lines = [
        f"Invite #{invite.id}{who}: role {invite.role}, valid once, until {expires:%Y-%m-%d %H:%M} UTC.",
        "",
        f"    {code}",
        "",
        f"Telegram: send  /start {code}  to the bot"
        + (f", or open https://t.me/{bot_username}?start={normalize_code(code)}" if bot_username else ""),
        f"Slack: send  start {code}  to the bot in a direct message",
    ]
    return "\n".join(lines)


def setup(app: App) -> None:
    settings = app.use_settings(EnrollmentSettings)
    app.provide("enrollment", Enrollment(InviteRepo(app.db), app.people, app.clock, settings.invite_max_failures))
    app.include_router(router)
    default = app.hooks.stranger_text.default

    def stranger(channel: str) -> str:
        """On chat channels, where nobody is enrolled on first contact, strangers hear how to enrol."""
        policy = app.policy(channel)
        if policy.texting or app.roles.enrolling(channel) is not None:
            return default(channel)
        return t(None, NOT_ENROLLED, start=policy.command_label("start"))

    app.hooks.stranger_text.implement(stranger, owner="enrollment")
    app.add_cli("invite", "make a one-time code that enrols a Telegram/Slack user with a role",
                lambda parser: _configure(parser, app.roles.names), _run)


plugin = Plugin("enrollment", setup, description="invite codes that enrol people on chat channels")

__all__ = ["Enrollment", "EnrollmentSettings", "invite_text", "plugin", "router", "setup"]
