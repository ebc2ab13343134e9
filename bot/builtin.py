"""Core plugin: `/help` on every channel and the operator commands run, status, send, people, db."""

from __future__ import annotations

import argparse
from collections import defaultdict

from bot.app import App, roles_text
from bot.context import Context
from bot.directory import normalize_address, normalize_phone
from bot.errors import UserError
from bot.i18n import N_, t
from bot.model import Address, OutboundKind, Person, Role
from bot.router import ANYONE, Router

router = Router("builtin")


@router.command("help", roles=ANYONE, help=N_("what you can ask me"))
async def help_command(ctx: Context) -> str:
    lines = ctx.app.dispatcher.help_lines(ctx.person, ctx.channel)
    if not lines:
        stranger = ctx.app.dispatcher.stranger_text.get(ctx.channel)
        return t(None, stranger) if stranger else ctx.app.dispatcher.contact_text(ctx.person)
    return "\n".join([t(ctx.person.locale if ctx.person else None, "You can use:"), *lines])


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
    for name, channel in sorted(app.channels.items()):
        kind = "console stand-in (not configured)" if getattr(channel, "stand_in", False) else type(channel).__name__
        print(f"  {name:<10} {kind}")
    print("\nOutbox (channel × status):")
    counts = await out.counts()
    _table(counts)
    print("\nInbox (channel × outcome):")
    _table(await inbox.counts())
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


def _send_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("channel", help="sms, slack, telegram or console")
    p.add_argument("address", help="phone number, Slack user/channel id or Telegram chat id")
    p.add_argument("text", nargs="+", help="the message")


async def send(app: App, args: argparse.Namespace) -> int:
    try:
        ident = normalize_phone(args.address) if args.channel == "sms" else args.address
        address = normalize_address(Address(args.channel, ident))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.channel not in app.channels:
        raise UserError(f"unknown channel {args.channel!r}; known: {', '.join(sorted(app.channels))}")
    msg = await app.send(address, " ".join(args.text), kind=OutboundKind.PROACTIVE)
    print(f"queued #{msg.id} to {address.channel}:{address.id} — the running bot sends it (see `status`)")
    return 0


def _people_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="everyone, with roles and addresses")
    ls.add_argument("--role", choices=[r.value for r in Role])
    add = sub.add_parser("add", help="add a person")
    add.add_argument("name")
    add.add_argument("--role", action="append", choices=[r.value for r in Role], required=True, dest="roles")
    add.add_argument("--sms", help="phone number (E.164 or national)")
    add.add_argument("--slack", help="Slack user id, e.g. U024BE7LH")
    add.add_argument("--telegram", help="Telegram user id")
    add.add_argument("--timezone", default=None)
    add.add_argument("--locale", default="en")
    add.add_argument("--external", action="append", default=[], metavar="SOURCE:ID",
                     help="an id this person has in another system, e.g. amocrm:555 (a CRM user)")
    link = sub.add_parser("link", help="give an existing person an id in another system")
    link.add_argument("person", help="person id (#12 or 12) or exact name")
    link.add_argument("--external", action="append", required=True, metavar="SOURCE:ID",
                      help="e.g. amocrm:555 (the amoCRM user whose deals become this person's)")


async def people(app: App, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = await app.people.all(Role(args.role) if args.role else None)
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
    addresses = []
    try:
        if args.sms:
            addresses.append(Address("sms", normalize_phone(args.sms)))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.slack:
        addresses.append(Address("slack", args.slack))
    if args.telegram:
        addresses.append(Address("telegram", args.telegram))
    tz = args.timezone or app.settings.default_timezone
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except Exception:
        raise UserError(f"--timezone: unknown timezone {tz!r}") from None
    for a in addresses:
        if await app.people.by_address(a):
            raise UserError(f"{a.channel}:{a.id} already belongs to someone")
    person = Person(None, args.name, frozenset(Role(r) for r in args.roles), addresses, tz, args.locale)
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
    app.include_router(router)
    app.add_cli("run", "run the bot (the default)", _no_args, _run, needs_db=False)
    app.add_cli("status", "queue counts, last errors, configured channels", _no_args, status)
    app.add_cli("send", "queue a message through the outbox", _send_args, send)
    app.add_cli("people", "list, add or link people", _people_args, people)
    app.add_cli("db", "database maintenance (db upgrade)", _db_args, db)
