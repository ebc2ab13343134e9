"""Budtenders at other dispensaries who sell the house brand: enrolment, receipts for points, staff review.

Who they are: `python main.py import budtenders FILE.csv` (name, phone, dispensary, city) or
`python main.py budtenders add NAME --dispensary D [--phone P] [--city C] [--invite]`; each becomes a
person with the role `external_budtender` and their phone as an SMS address. An invite
(`python main.py invite external_budtender --name "Ann Lee"`, or `budtenders add … --invite`) links
their Telegram or Slack account to the same person with `start CODE`.

What they do: send a photo of a receipt (Telegram photo, Slack file, the web chat's upload; a
caption may name the customer or give their phone). Points: see `coaching/receipt_service.py`.
`POINTS` answers their balance.

Staff: a receipt the model cannot be trusted with waits in review; staff are told on
HUDDLE_RECEIPTS_REVIEW_TO (e.g. `slack:C0STAFF`, or the console) and answer `receipt N TOTAL [PHONE]`
or `receipt N refuse REASON` (admin or team lead), or use the CLI: `python main.py receipts
[--pending]`, `receipts review N --total 45.50 [--phone P]`, `receipts refuse N --reason …`,
`points list --receipt N | --order ID`, `points reverse --receipt N | --order ID | --key KEY --reason …`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import Field

from bot.app import App
from bot.context import Context
from bot.errors import UserError
from bot.model import Address, OutboundKind
from bot.plugins import Plugin
from bot.router import Greedy, Router
from bot.settings import HuddleSettings
from coaching.ai import ai_client_for
from coaching.receipt_service import ReceiptService, Review
from coaching.receipts import ReceiptRules, dollars, is_image
from coaching.roles import Role
from coaching.roles import declare as declare_roles
from coaching.sources.imports import ImportKind, parse_map, register_import
from handlers.store_services import services
from storage.budtender_network import BudtenderNetworkRepo, NetworkRow, PhoneTaken
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.receipts import ReceiptStatus, StoredReceipt

log = logging.getLogger(__name__)

router = Router("external_budtenders")
EXTERNAL = {Role.EXTERNAL_BUDTENDER}
STAFF = {Role.ADMIN, Role.TEAM_LEAD}
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class ReceiptSettings(HuddleSettings):
    receipts_max_age_days: int = Field(30, ge=1, description="a receipt older than this many days earns nothing")
    receipts_match_score: float = Field(85.0, ge=50, le=100,
                                        description="rapidfuzz score (0-100) for a line to count as a house product")
    receipts_review_to: str | None = Field(
        None, description="where staff hear of receipts to review, CHANNEL:ID (e.g. slack:C0STAFF); unset: the log")


def service_of(app: App) -> ReceiptService:
    return app.deps["receipts"]


# -- budtenders' side --------------------------------------------------------------------------


@router.file(roles=EXTERNAL)
async def receipt_photo(ctx: Context, receipts: ReceiptService) -> str:
    photo = next((f for f in ctx.inbound.files if is_image(f.name, f.mimetype)), None)
    if photo is None:
        return "Please send a photo of the receipt (a picture, not a document)."
    if photo.content is None:
        return "I couldn't download that photo. Please send it again."
    if len(photo.content) > MAX_IMAGE_BYTES:
        return "That photo is over 10 MB. Please send a smaller one."
    assert ctx.person is not None and ctx.person.id is not None
    outcome = await receipts.receive(budtender_person_id=ctx.person.id, address=ctx.address, content=photo.content,
                                     mimetype=photo.mimetype, caption=ctx.text or None, inbound_id=ctx.inbound.id)
    return outcome.reply


@router.command("points", roles=EXTERNAL, help="your points from receipts")
async def my_points(ctx: Context, receipts: ReceiptService) -> str:
    assert ctx.person is not None and ctx.person.id is not None
    balance = await receipts.loyalty.person_balance(ctx.person.id)
    recent = await receipts.repo.list(budtender_person_id=ctx.person.id, limit=3)
    lines = [f"{ctx.person.first_name}, you have {balance} points."]
    for r in recent:
        lines.append(f"#{r.id} {r.status.value}" + (f": {r.budtender_points} pts" if r.budtender_points else "")
                     + (f" ({r.reason})" if r.reason and r.status is not ReceiptStatus.AWARDED else ""))
    return "\n".join(lines)


@router.message(roles=EXTERNAL)
async def how_to(ctx: Context) -> str:
    return ("Send me a photo of a receipt with our products to earn points — add the customer's phone number "
            f"as the caption. {ctx.command_label('points')} shows your balance.")


# -- staff's side ------------------------------------------------------------------------------


def _staff_name(ctx: Context) -> str:
    return ctx.person.name if ctx.person else str(ctx.address)


@router.command("receipt", roles=STAFF, usage="receipt N TOTAL [PHONE] | receipt N refuse REASON",
                help="confirm a receipt in review with its house-brand total, or refuse it")
async def review(ctx: Context, receipts: ReceiptService, number: int, rest: Greedy = "") -> str:
    words = rest.split()
    if not words:
        return f"Say the house-brand total: receipt {number} 45.50 (add the customer's phone if it's not on it)."
    if words[0].lower() == "refuse":
        reason = " ".join(words[1:]).strip() or "refused by staff"
        return await receipts.refuse(number, reason, by=_staff_name(ctx))
    try:
        total = Decimal(words[0].replace("$", "").replace(",", ""))
    except InvalidOperation:
        return f"“{words[0]}” isn't an amount. Example: receipt {number} 45.50"
    phone = words[1] if len(words) > 1 else None
    return await receipts.decide(number, total, by=_staff_name(ctx), phone=phone)


# -- CLI -------------------------------------------------------------------------------------------


def _configure_budtenders(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    ls = sub.add_parser("list", help="the network, with points and receipts")
    ls.add_argument("--dispensary", help="only this dispensary (part of its name)")
    ls.add_argument("--search", help="name, phone, city or dispensary contains this")
    add = sub.add_parser("add", help="add one budtender (and print an invite with --invite)")
    add.add_argument("name")
    add.add_argument("--dispensary", required=True)
    add.add_argument("--phone")
    add.add_argument("--city")
    add.add_argument("--invite", action="store_true", help="also make an invite code for Telegram/Slack")


async def _run_budtenders(app: App, args: argparse.Namespace) -> int:
    repo = BudtenderNetworkRepo(app.db, Role.EXTERNAL_BUDTENDER)
    if args.action == "add":
        from bot.phones import normalize_phone

        try:
            phone = normalize_phone(args.phone) if args.phone else None
        except ValueError:
            raise UserError(f"budtenders add --phone: {args.phone!r} is not a phone number") from None
        try:
            person_id = await repo.add(NetworkRow(" ".join(args.name.split()), args.dispensary, phone, args.city),
                                       app.clock.now(), app.settings.default_timezone)
        except PhoneTaken as exc:
            raise UserError(f"budtenders add: {exc}") from None
        print(f"{args.name} of {args.dispensary} is person #{person_id}.")
        if args.invite:
            from datetime import timedelta

            from handlers.enrollment import EnrollmentSettings, invite_text
            from storage.invites import InviteRepo

            now = app.clock.now()
            expires = now + timedelta(hours=EnrollmentSettings().invite_ttl_hours)
            invite, code = await InviteRepo(app.db).create(Role.EXTERNAL_BUDTENDER, now, expires, name=args.name,
                                                          person_id=person_id)
            print(invite_text(invite, code, expires))
        return 0
    found = await repo.list(dispensary=getattr(args, "dispensary", None), search=getattr(args, "search", None))
    if not found:
        print("No budtenders" + (" match." if getattr(args, "search", None) or getattr(args, "dispensary", None)
                                 else " yet: python main.py import budtenders FILE.csv"))
        return 0
    print(f"{'person':>6}  {'name':<24} {'phone':<14} {'dispensary':<28} {'city':<16} {'points':>7} {'receipts':>8}")
    for b in found:
        print(f"{b.person_id:>6}  {b.name[:24]:<24} {b.phone or '-':<14} {b.dispensary[:28]:<28} "
              f"{(b.city or b.dispensary_city or '-')[:16]:<16} {b.points:>7} {b.receipts:>8}")
    people = len(found)
    places = len({b.dispensary for b in found})
    print(f"{people} budtender{'s' if people != 1 else ''} at {places} dispensar{'ies' if places != 1 else 'y'}")
    return 0


async def _import_budtenders(app: App, args: argparse.Namespace) -> int:
    from coaching.budtender_network import import_network
    from coaching.sources.csv_rows import FileRefused

    try:
        overrides = parse_map(args.map)
    except ValueError as exc:
        print(f"huddle: {exc}", file=sys.stderr)
        return 2
    repo = BudtenderNetworkRepo(app.db, Role.EXTERNAL_BUDTENDER)
    try:
        report = await import_network(repo, args.file, now=app.clock.now, overrides=overrides, dry_run=args.dry_run,
                                      progress=False if args.no_progress else None,
                                      timezone=app.settings.default_timezone)
    except FileRefused as exc:
        print(f"huddle: import budtenders: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.dry_run:
        print("dry run: nothing written")
    if args.report:
        report.write(args.report)
    return 0 if report.written or not report.read else 1


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _configure_receipts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pending", action="store_true", help="only receipts waiting for staff review")
    parser.add_argument("--limit", type=int, default=50)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    rv = sub.add_parser("review", help="confirm a receipt in review with its house-brand total")
    rv.add_argument("id", type=int)
    rv.add_argument("--total", required=True, help="house-brand total on the receipt, e.g. 45.50")
    rv.add_argument("--phone", help="the customer's phone, when the receipt does not say")
    rf = sub.add_parser("refuse", help="refuse a receipt in review")
    rf.add_argument("id", type=int)
    rf.add_argument("--reason", required=True)
    sh = sub.add_parser("show", help="one receipt's details; --image FILE saves its photo")
    sh.add_argument("id", type=int)
    sh.add_argument("--image", type=Path, help="write the photo here")


def _describe(r: StoredReceipt) -> str:
    total = dollars(r.house_total) if r.house_total is not None else "-"
    what = f"{r.store_name or '?'} #{r.receipt_number or '?'}"
    pts = f"{r.customer_points}+{r.budtender_points} pts" if r.customer_points or r.budtender_points else ""
    why = f"  ({r.reason})" if r.reason else ""
    return f"#{r.id:<5} {r.received_at:%Y-%m-%d %H:%M}  {r.status.value:<9} {what[:32]:<32} {total:>10} {pts:<14}{why}"


async def _run_receipts(app: App, args: argparse.Namespace) -> int:
    svc = service_of(app)
    by = "console"
    if args.action == "review":
        try:
            total = Decimal(args.total.replace("$", "").replace(",", ""))
        except InvalidOperation:
            raise UserError(f"receipts review --total: {args.total!r} is not an amount") from None
        print(await svc.decide(args.id, total, by=by, phone=args.phone))
        return 0
    if args.action == "refuse":
        print(await svc.refuse(args.id, args.reason, by=by))
        return 0
    if args.action == "show":
        r = await svc.repo.get(args.id)
        if r is None:
            raise UserError(f"receipts show: no receipt #{args.id}")
        print(_describe(r))
        print(f"from {r.channel}:{r.address} (person #{r.budtender_person_id}), customer #{r.customer_id or '-'}, "
              f"read by {r.read_by or '-'}, decided by {r.decided_by or '-'}; caption: {r.caption or '-'}")
        for ln in r.lines:
            mark = f"  = {ln.get('house_product')}" if ln.get("house_product") else ""
            print(f"  {ln.get('quantity')} × {ln.get('product')}  {ln.get('line_total')}{mark}")
        if args.image:
            content, _ = await svc.repo.image(args.id)
            args.image.write_bytes(content or b"")
            print(f"photo written to {args.image}")
        return 0
    statuses = [ReceiptStatus.REVIEW] if args.pending else None
    found = await svc.repo.list(statuses=statuses, limit=args.limit)
    if not found:
        print("No receipts waiting for review." if args.pending else "No receipts yet.")
        return 0
    for r in found:
        print(_describe(r))
    return 0


def _configure_points(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    for name, help_text in (("list", "ledger rows of one source"), ("reverse", "cancel the points of one source")):
        p = sub.add_parser(name, help=help_text)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--receipt", type=int, help="a receipt id")
        which.add_argument("--order", help="a POS order id")
        which.add_argument("--key", help="one ledger entry's key")
        if name == "reverse":
            p.add_argument("--reason", required=True, help="why (kept on the reversing entries)")
            p.add_argument("--by", default="staff", help="who reverses (kept with the reason)")


def _entry_line(e: LedgerEntry) -> str:
    who = f"customer #{e.customer_id}" if e.customer_id is not None else f"person #{e.person_id}"
    source = f"receipt #{e.receipt_id}" if e.receipt_id is not None else (
        f"order {e.order_external_id}" if e.order_external_id else "-")
    note = f"  “{e.note}”" if e.note else ""
    return f"{e.created_at:%Y-%m-%d %H:%M}  {e.delta:>+7}  {e.reason:<14} {who:<14} {source:<18} {e.key}{note}"


async def _run_points(app: App, args: argparse.Namespace) -> int:
    loyalty = LoyaltyRepo(app.db)
    entries = await loyalty.by_source(receipt_id=args.receipt, order_external_id=args.order, key=args.key)
    if args.action == "list":
        if not entries:
            print("No ledger rows for that source.")
        for e in entries:
            print(_entry_line(e))
        return 0
    if not entries:
        raise UserError("points reverse: no ledger rows for that source (see points list)")
    if args.receipt is not None:
        done = await service_of(app).reverse(args.receipt, args.reason, by=args.by)
    else:
        done = await loyalty.reverse([e.key for e in entries], f"{args.reason} (by {args.by})", app.clock.now())
    if not done:
        print("Nothing to reverse: those points were reversed already.")
        return 0
    for e in done:
        print(_entry_line(e))
    print(f"{len(done)} reversing row{'s' if len(done) != 1 else ''} written.")
    return 0


# -- wiring ----------------------------------------------------------------------------------------


def review_notice(app: App, settings: ReceiptSettings) -> Review:
    """Tell staff a receipt waits for them, where HUDDLE_RECEIPTS_REVIEW_TO says (else the log)."""

    async def notify(receipt: StoredReceipt, why: str) -> None:
        text = (f"Receipt #{receipt.id} needs a look ({why}). Answer “receipt {receipt.id} TOTAL [PHONE]” with the "
                f"house-brand total, or “receipt {receipt.id} refuse REASON” (in a Slack channel, mention me). "
                f"Photo: python main.py receipts show {receipt.id} --image r{receipt.id}.jpg")
        if not settings.receipts_review_to:
            log.warning("receipt to review (set HUDDLE_RECEIPTS_REVIEW_TO to tell staff in chat): %s", text)
            return
        await app.send(Address.parse(settings.receipts_review_to), text, kind=OutboundKind.PROACTIVE,
                       key=f"receipt:{receipt.id}:review")

    return notify


def setup(app: App) -> None:
    declare_roles(app, Role.EXTERNAL_BUDTENDER)
    settings = app.use_settings(ReceiptSettings)
    store = services(app)
    rules = ReceiptRules(
        loyalty=store.settings.loyalty,
        max_age_days=settings.receipts_max_age_days, match_score=settings.receipts_match_score)
    async def send(address: Address, body: str, key: str) -> None:
        await app.send(address, body, kind=OutboundKind.PROACTIVE, key=key)

    service = ReceiptService(app.db, app.clock, ai_client_for(app), rules, send, review_notice(app, settings))
    app.provide("receipts", service)
    app.include_router(router)
    register_import(app, ImportKind("budtenders", "the outside budtender network: name, phone, dispensary, city",
                                    _import_budtenders, _import_options))
    app.add_cli("budtenders", "the outside budtender network: budtenders list [--dispensary D] [--search S] | add",
                _configure_budtenders, _run_budtenders)
    app.add_cli("receipts", "receipt photos and their state: receipts [--pending] | review N --total T | refuse | show",
                _configure_receipts, _run_receipts)
    app.add_cli("points", "ledger rows by source, and reversing them: points list|reverse --receipt N|--order ID",
                _configure_points, _run_points)


plugin = Plugin("external_budtenders", setup, requires=("store",),
                description="outside budtenders: the network, receipt photos for points, staff review")

__all__ = ["ReceiptSettings", "plugin", "router", "service_of", "setup"]
