"""Core plugin: `/help` on every channel and the operator commands run, status, send, people, db."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.context import Context
from bot.errors import UserError
from bot.hooks import KernelHooks
from bot.i18n import N_, t
from bot.model import Address, OutboundKind, Person
from bot.plugins import Plugin
from bot.roles import Roles, RoleSpec
from bot.router import ANYONE, Router

if TYPE_CHECKING:
    from bot.app import App

router = Router("builtin")

ADMIN = RoleSpec("admin", "runs Huddle: every operator command, in any channel", rank=90)


@router.command("help", roles=ANYONE, help=N_("what you can ask me"))
async def help_command(ctx: Context, hooks: KernelHooks, roles: Roles) -> str:
    lines = ctx.help_lines()
    if not lines:
        if ctx.person is None or not roles.known(ctx.person.roles):
            return hooks.stranger_text(ctx.channel)
        return hooks.contact_text(ctx.person, ctx.channel)
    return "\n".join([t(ctx.person.locale if ctx.person else None, "You can use:"), *lines])


def roles_text(roles: frozenset[str]) -> str:
    return ", ".join(sorted(roles)) or "-"


# -- CLI ------------------------------------------------------------------------------------------


def _no_args(_p: argparse.ArgumentParser) -> None:
    return None


async def _run(_app: App, _args: argparse.Namespace) -> int:  # handled by bot.cli.serve
    return 0


async def status(app: App, _args: argparse.Namespace) -> int:
    from storage.inbox import InboxRepo
    from storage.migrate import pending
    from storage.outbox import OutboxRepo

    out = OutboxRepo(app.db)
    inbox = InboxRepo(app.db)
    print(f"Database: {app.db.describe()}")
    waiting = await pending(app.db)
    print(f"Migrations: {'up to date' if not waiting else 'pending: ' + ', '.join(waiting)}")
    print("\nChannels:")
    for name, summary in app.channel_summaries().items():
        print(f"  {name:<10} {summary}")
    print("\nOutbox (channel × status):")
    counts = await out.counts()
    _table(counts)
    print("\nInbox (channel × outcome):")
    _table(await inbox.counts())
    await _processes(app)
    print(f"\nPeople: {await app.people.count()}")
    errors = await out.recent_errors()
    if errors:
        print("\nLast send errors:")
        for at, channel, status_, reason in errors:
            print(f"  {at:%Y-%m-%d %H:%M} {channel:<9} {status_:<8} {reason}")
    count, latest = await inbox.unanswered_senders()
    if count:
        print(f"\nTexts from senders that are not people (kept, never answered, never leads): {count}")
        for at, sender, kind, text in latest:
            preview = " ".join(text.split())
            preview = preview if len(preview) <= 60 else preview[:59] + "…"
            print(f"  {at:%Y-%m-%d %H:%M} {sender:<14} {kind:<12} {preview}")
    failures = await inbox.recent_errors()
    if failures:
        print("\nLast handler failures:")
        for at, channel, error in failures:
            print(f"  {at:%Y-%m-%d %H:%M} {channel:<9} {error}")
    for section in app.status_sections:
        lines = await section(app)
        if lines:
            print("\n" + "\n".join(lines))
    jobs = app.scheduler.describe()
    if jobs:
        print("\nScheduled jobs:")
        for job, trigger in jobs:
            print(f"  {job:<40} {trigger}")
    return 0


async def _processes(app: App) -> None:
    """The live gateways and workers, what each holds, and how long the oldest work has waited."""
    from storage.process_status import holdings, oldest_waiting
    from storage.processes import ProcessRepo

    now = app.clock.now()
    live = await ProcessRepo(app.db).live(now)
    held = await holdings(app.db, [p.id for p in live])
    print("\nProcesses (live: beating within their lease):")
    if not live:
        print("  (none)")
    for p in live:
        h = held[p.id]
        jobs = f", jobs {', '.join(h.jobs)}" if h.jobs else ""
        beat = max(0.0, (now - p.heartbeat_at).total_seconds())
        print(f"  {p.role:<8} {p.id:<36} host {p.host:<16} heartbeat {beat:4.1f} s ago  "
              f"holds {h.inbound} inbound, {h.outbound} sending{jobs}")
    first_in, first_out = await oldest_waiting(app.db)
    print(f"  oldest unhandled inbound: {_age(now, first_in)}; oldest unsent outbound: {_age(now, first_out)}")


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "none"
    seconds = max(0.0, (now - then).total_seconds())
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _table(counts: dict[tuple[str, str], int]) -> None:
    if not counts:
        print("  (empty)")
        return
    rows: dict[str, dict[str, int]] = defaultdict(dict)
    cols: list[str] = []
    for (channel, state), n in counts.items():
        rows[channel][state] = n
        if state not in cols:
            cols.append(state)
    order = ["queued", "sending", "sent", "delivered", "failed", "refused", "received", "handled", "ignored"]
    cols.sort(key=lambda c: order.index(c) if c in order else len(order))
    print("  " + f"{'':<10}" + "".join(f"{c:>11}" for c in cols))
    for channel in sorted(rows):
        print("  " + f"{channel:<10}" + "".join(f"{rows[channel].get(c, 0):>11}" for c in cols))


def _send_args(app: App) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        names = sorted(app.policies)
        p.add_argument("channel", help=", ".join(names) or "a declared channel")
        p.add_argument("address", help="; ".join(f"{n}: {app.policies[n].address_label}" for n in names))
        p.add_argument("text", nargs="+", help="the message")

    return configure


async def send(app: App, args: argparse.Namespace) -> int:
    if args.channel not in app.policies:
        raise UserError(f"unknown channel {args.channel!r}; known: {', '.join(sorted(app.policies))}")
    try:
        address = app.parse_address(args.address, args.channel)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    msg = await app.send(address, " ".join(args.text), kind=OutboundKind.PROACTIVE)
    print(f"queued #{msg.id} to {address.channel}:{address.id} — the running bot sends it (see `status`)")
    return 0


def _people_args(app: App) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
        ls = sub.add_parser("list", help="everyone, with roles and addresses")
        ls.add_argument("--role", choices=app.roles.names)
        add = sub.add_parser("add", help="add a person")
        add.add_argument("name")
        add.add_argument("--role", action="append", choices=app.roles.names, required=True, dest="roles")
        for name in sorted(app.policies):
            add.add_argument(f"--{name}", dest=f"address_{name}", metavar="ID", help=app.policies[name].address_label)
        add.add_argument("--timezone", default=None)
        add.add_argument("--locale", default="en")
        add.add_argument("--external", action="append", default=[], metavar="SOURCE:ID",
                         help="an id this person has in another system, e.g. crm:555")
        link = sub.add_parser("link", help="give an existing person an id in another system")
        link.add_argument("person", help="person id (#12 or 12) or exact name")
        link.add_argument("--external", action="append", required=True, metavar="SOURCE:ID",
                          help="e.g. crm:555 (the id this person has in that system)")

    return configure


async def people(app: App, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = await app.people.all(args.role)
        for p in found:
            addrs = " ".join(f"{a.channel}:{a.id}" for a in p.addresses)
            print(f"{p.id:>5}  {p.name:<28} {roles_text(p.roles):<28} {addrs}")
        print(f"{len(found)} people")
        return 0
    if args.action == "link":
        person = await _find_person(app, args.person)
        for line in await _link_external(app, person, _externals(app, args.external)):
            print(line)
        return 0
    externals = _externals(app, args.external)
    addresses: list[Address] = []
    for name in sorted(app.policies):
        ident = getattr(args, f"address_{name}", None)
        if ident:
            try:
                addresses.append(app.parse_address(ident, name))
            except ValueError as exc:
                raise UserError(f"--{name}: {exc}") from None
    tz = args.timezone or app.settings.default_timezone
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except Exception:
        raise UserError(f"--timezone: unknown timezone {tz!r}") from None
    for a in addresses:
        if await app.people.by_address(a):
            raise UserError(f"{a.channel}:{a.id} already belongs to someone")
    person = Person(None, args.name, frozenset(args.roles), addresses, tz, args.locale)
    added = await app.people.add(person, app.clock.now())
    print(f"added #{added.id} {added.name} ({roles_text(added.roles)})")
    for line in await _link_external(app, added, externals):
        print(line)
    return 0


def _externals(app: App, given: list[str]) -> list[tuple[str, str]]:
    """`amocrm:555` → ("amocrm", "555"), checked before anything is stored."""
    from bot.cli import UserError

    out = []
    for raw in given:
        source, sep, ref = raw.partition(":")
        source, ref = source.strip().lower(), ref.strip()
        if not sep or not source or not ref:
            raise UserError(f"--external must look like SOURCE:ID (e.g. amocrm:555), got {raw!r}")
        if source not in app.external_linkers:
            known = ", ".join(sorted(app.external_linkers)) or "none"
            raise UserError(f"--external: unknown source {source!r} (known: {known})")
        out.append((source, ref))
    return out


async def _link_external(app: App, person: Person, externals: list[tuple[str, str]]) -> list[str]:
    return [await app.external_linkers[source](ref, person) for source, ref in externals]


async def _find_person(app: App, query: str) -> Person:
    from bot.cli import UserError

    raw = query.strip().lstrip("#")
    if raw.isdigit():
        found = await app.people.get(int(raw))
        if found is None:
            raise UserError(f"no person #{raw}")
        return found
    same = [p for p in await app.people.all() if p.name.casefold() == query.strip().casefold()]
    if len(same) != 1:
        raise UserError(f"{len(same)} people are called {query!r}" + (": use the id" if same else ""))
    return same[0]


def _db_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("upgrade", help="apply pending migrations")


async def db(app: App, args: argparse.Namespace) -> int:
    heads = await app.db.upgrade()  # already applied by the CLI (needs_db); this reads the heads back
    print(f"database {app.db.describe()} is at {', '.join(heads)}")
    return 0


def setup(app: App) -> None:
    app.declare_role(ADMIN)
    app.provide("hooks", app.hooks)
    app.provide("roles", app.roles)
    app.include_router(router)
    app.add_cli("run", "run the bot, everything in one process (the default)", _no_args, _run, needs_db=False)
    app.add_cli("gateway", "PostgreSQL: run only this machine's device adapters (the modem): their intake and sends",
                _no_args, _run, needs_db=False)
    app.add_cli("worker", "PostgreSQL: run routing, handlers, the scheduler and HTTP (any number, anywhere)",
                _no_args, _run, needs_db=False)
    app.add_cli("status", "queue counts, last errors, configured channels", _no_args, status)
    app.add_cli("send", "queue a message through the outbox", _send_args(app), send)
    app.add_cli("people", "list, add or link people", _people_args(app), people)
    app.add_cli("db", "database maintenance (db upgrade)", _db_args, db)


plugin = Plugin("core", setup, description="help, and the operator commands run, status, send, people, db")
