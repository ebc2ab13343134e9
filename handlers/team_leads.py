"""Team leads in Slack: the daily CSV, who to coach, chatter cards, the coaching log, briefings.

Commands work as `/huddle who`, a DM `who`, or any channel's command form:

    who [TEAM]                 the three chatters to coach today, and why
    chatter NAME               a chatter's card (score, tier, trend, funnel)
    team [TEAM]                the team's summary and every chatter's score
    log NAME: notes            log a coaching session (also `coached Ana: talked about PPV pricing`)
    report NAME: issue         report a problem with a chatter to the COO
    alias "NAME IN CSV" = "CHATTER"   teach a name once

A CSV dropped in the DM is ingested and answered with a summary. A DM such as "how is maria
doing" gets Maria's card. Briefings go out 30 minutes before each lead's shift.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from datetime import date
from pathlib import Path

from aiohttp import web

from bot.app import App
from bot.context import Context
from bot.errors import UserError
from bot.model import Address, OutboundKind, Person, Role
from bot.router import Greedy, Router
from bot.scheduler import JobFunc, JobRun, ScheduleSpec, daily
from coaching.briefings import pick, why
from coaching.cards import STATUS_TEXT, Status, TeamView, card_text, fmt_kpi
from coaching.chatter_config import BRIEFING_LEAD, DEFAULT_INGEST, ChattersConfig, LeadConfig
from coaching.chatter_metrics import Kpi
from coaching.chatter_service import ChatterService, HoursSource
from coaching.demo_chatters import DEMO_LEADS, seed_demo
from coaching.names import normalize_name
from coaching.sources.hubstaff import HubstaffClient, HubstaffSettings, parse_hubstaff_csv
from coaching.sources.inflow_csv import CsvError
from storage.chatters import REPORT, ChatterRepo

log = logging.getLogger(__name__)

router = Router("team_leads")
LEADS = {Role.TEAM_LEAD, Role.ADMIN}
DASHBOARD_DAYS = 90
_QUOTES = "\"“”'‘’"
_ALIAS_RE = re.compile(rf"^\s*[{_QUOTES}]?(?P<a>[^{_QUOTES}=]+?)[{_QUOTES}]?\s*=\s*[{_QUOTES}]?(?P<b>[^{_QUOTES}=]+?)"
                       rf"[{_QUOTES}]?\s*$")
_HOW_IS_RE = re.compile(r"^\s*(?:how(?:'s|’s| is| are)|how about|what about)\s+(?P<name>.+?)"
                        r"(?:\s+(?:doing|going|today|lately|this week))*\s*\??\s*$", re.I)
_DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def _lead_teams(service: ChatterService, ctx: Context) -> list[str] | None:
    lead = service.lead_for(ctx.address.id if ctx.channel == "slack" else None)
    if lead is None and ctx.person is not None:
        slack = ctx.person.address_on("slack")
        lead = service.lead_for(slack.id if slack else None)
    return lead.teams if lead else None


async def _views(service: ChatterService, ctx: Context, team: str) -> list[TeamView] | str:
    """The teams asked for (by part of a name), else the lead's own, else all; or why not."""
    known = await service.repo.teams()
    if team:
        wanted = [t for t in known if normalize_name(team) in normalize_name(t)]
        if not wanted:
            return f"I don't know a team called “{team}”. Teams: {', '.join(known) or 'none yet'}."
    else:
        wanted = _lead_teams(service, ctx) or known
    return await service.teams(wanted)


@router.command("who", roles=LEADS, help="the three chatters to coach today, and why")
async def who(ctx: Context, chatters: ChatterService, team: Greedy = "") -> str:
    views = await _views(chatters, ctx, team)
    if isinstance(views, str):
        return views
    cards = [c for v in views for c in v.cards]
    chosen = pick(cards)
    if not cards or all(c.status is Status.NO_DATA for c in cards):
        return "No numbers yet. Drop the day's Inflow CSV here and I'll take it from there."
    if not chosen:
        return "Everyone is on a day off in the latest numbers — nobody to coach."
    lines = [f"To coach today ({views[0].day:%a %d %b} numbers):"]
    lines += [f"{i}. *{c.chatter.name}* — {why(c)}" for i, c in enumerate(chosen, 1)]
    return "\n".join(lines)


@router.command("chatter", roles=LEADS, help="a chatter's card: score, tier, trend, funnel")
async def chatter(ctx: Context, chatters: ChatterService, name: Greedy) -> str:
    card, problem = await chatters.card(name)
    return card_text(card) if card else (problem or "")


def team_text(view: TeamView) -> str:
    lines = [f"*{view.name}* · {view.day:%a %d %b}"]
    lines.append(
        f"Sales ${view.total_sales:,.2f} · avg {fmt_kpi(Kpi.SALES_PER_HR, view.avg_sales_per_hr)}/hr · "
        f"avg CVR {fmt_kpi(Kpi.CVR, view.avg_cvr)} · {view.total_fans} fans · {view.worked}/{view.total} working"
    )
    if view.imbalance:
        lines.append(f"⚠ Traffic imbalance: busiest chatter has {view.imbalance:.1f}× the fans/hr of the quietest.")
    for c in sorted(view.cards, key=lambda c: -(c.score.value if c.score else -1)):
        if c.status is not Status.SCORED or c.score is None:
            lines.append(f"• {c.chatter.name}: {STATUS_TEXT.get(c.status, 'No score')}")
            continue
        extra = f" · {c.streak.label}" if c.streak else ""
        extra += f" · traffic {c.traffic.value}" if c.traffic else ""
        lines.append(f"• {c.chatter.name}: {c.score.rounded} ({c.score.tier.value}){extra}")
    return "\n".join(lines)


@router.command("team", roles=LEADS, help="team summary and every chatter's score")
async def team(ctx: Context, chatters: ChatterService, name: Greedy = "") -> str:
    views = await _views(chatters, ctx, name)
    if isinstance(views, str):
        return views
    if not views:
        return "No teams yet: add `[[chatters.teams]]` to the config, or ask your admin."
    return "\n\n".join(team_text(v) for v in views)


async def split_name_notes(service: ChatterService, text: str) -> tuple[str, str] | str:
    """`"Ana: talked about pricing"` or `"Ana Ruiz talked about pricing"` → (name, notes)."""
    text = text.strip()
    for sep in (":", " - ", " — ", ","):
        if sep in text:
            name, notes = text.split(sep, 1)
            return name.strip(), notes.strip()
    words = text.split()
    for n in range(min(4, len(words) - 1), 0, -1):
        candidate = " ".join(words[:n])
        found, _ = await service.find(candidate)
        if found is not None:
            return candidate, " ".join(words[n:])
    return "Write it as `log NAME: what you talked about`, e.g. `log Ana: PPV pricing`."


async def _log(ctx: Context, service: ChatterService, text: str, kind: str) -> str:
    parsed = await split_name_notes(service, text)
    if isinstance(parsed, str):
        return parsed
    name, notes = parsed
    return await service.log(name, notes, ctx.person.id if ctx.person else None, kind)


@router.command("log", "coached", roles=LEADS, help="log a coaching session", usage="log NAME: notes…")
async def log_session(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    return await _log(ctx, chatters, text, "coaching")


@router.command("report", roles=LEADS, help="report an issue with a chatter", usage="report NAME: issue…")
async def report(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    return await _log(ctx, chatters, text, REPORT)


@router.command("alias", roles=LEADS, help="teach a name once", usage='alias "NAME IN CSV" = "CHATTER"')
async def alias(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    m = _ALIAS_RE.match(text)
    if not m:
        return 'Write it as `alias "Name in the CSV" = "Chatter name"`.'
    return await chatters.alias(m.group("a"), m.group("b"), ctx.person.id if ctx.person else None)


_NOT_NAMES = frozenset({"it", "you", "things", "everyone", "everybody", "everything", "we", "they", "that", "this"})


def _how_is(ctx: Context) -> bool:
    m = _HOW_IS_RE.match(ctx.text)
    return bool(m) and normalize_name(m.group("name")) not in _NOT_NAMES  # type: ignore[union-attr]


@router.message(_how_is, roles=LEADS)
async def how_is(ctx: Context, chatters: ChatterService) -> str:
    m = _HOW_IS_RE.match(ctx.text)
    assert m is not None
    card, problem = await chatters.card(m.group("name"))
    return card_text(card) if card else (problem or "")


@router.file(roles=LEADS)
async def upload(ctx: Context, chatters: ChatterService) -> str:
    f = ctx.inbound.files[0]
    name = f.name or "file"
    if not name.lower().endswith((".csv", ".tsv", ".txt")) and (f.mimetype or "").split(";")[0] not in {
        "text/csv", "text/plain", "text/tab-separated-values", "application/csv", "application/vnd.ms-excel"
    }:
        return f"I can only read CSV exports, and “{name}” isn't one. Export the day from Inflow as CSV."
    if f.content is None:
        return "I couldn't download that file. Try sending it again."
    given = _DATE_RE.search(ctx.text or "")
    try:
        day = date.fromisoformat(given.group(1)) if given else None
    except ValueError:
        return f"“{given.group(1) if given else ''}” isn't a date I can read; use YYYY-MM-DD."
    try:
        summary = await chatters.ingest_file(f.content, day, filename=name)
    except CsvError as exc:
        return f"I couldn't use “{name}”: {exc}"
    await chatters.write_dashboard_if_configured()
    return summary.text()


# -- jobs ------------------------------------------------------------------------------------------


def briefing_job(app: App, service: ChatterService, lead: LeadConfig) -> JobFunc:
    address = Address("slack", lead.slack)

    async def run(job: JobRun) -> None:
        person = await app.people.by_address(address)
        if person is None:
            log.warning("briefing skipped: no person with this Slack id lead=%s", lead.slack)
            return
        text = (await service.briefing_for(lead, person.name, job.fire_time + BRIEFING_LEAD)).text
        await app.send(address, text, kind=OutboundKind.PROACTIVE, key=f"briefing:{lead.slack}:{job.period}",
                       person=person)

    return run


def ingest_job(service: ChatterService) -> JobFunc:
    async def run(job: JobRun) -> None:
        await service.scheduled_ingest()

    return run


# -- CLI, HTTP, wiring -----------------------------------------------------------------------------


def _configure_ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="the Inflow CSV export")
    p.add_argument("--date", type=date.fromisoformat, default=None, help="the day it covers (YYYY-MM-DD)")


def _configure_dashboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("dashboard.html"), help="where to write the HTML file")
    p.add_argument("--days", type=int, default=DASHBOARD_DAYS)


def hours_source(app: App) -> HoursSource | None:
    """Hubstaff's API when configured, else its CSV export when one is named, else nothing."""
    settings = HubstaffSettings()
    if settings.api_configured:
        client = HubstaffClient(settings, app.clock)

        async def close(app: App) -> None:
            await client.aclose()

        app.on_shutdown(close)
        return client.daily_hours
    if settings.hubstaff_csv is not None:
        path = settings.hubstaff_csv

        async def from_csv(day: date) -> dict[str, float] | None:
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                return None
            by_day = parse_hubstaff_csv(data)
            return by_day.get(day) or by_day.get(None)

        return from_csv
    return None


def setup(app: App) -> None:
    config = app.config.section("chatters", ChattersConfig, {})
    if not config.leads and app.settings.demo:
        config = config.model_copy(update={"leads": DEMO_LEADS})
    service = ChatterService(ChatterRepo(app.db, normalize_name), config, app.clock, hours_source(app))
    app.provide("chatters", service)
    app.include_router(router)

    async def startup(app: App) -> None:
        await service.sync_roster()
        for lead in config.leads:
            address = Address("slack", lead.slack)
            if lead.name and await app.people.by_address(address) is None:
                await app.people.add(Person(None, lead.name, frozenset({Role.TEAM_LEAD}), [address], lead.timezone),
                                     app.clock.now())

    app.on_startup(startup)
    app.on_seed_demo(lambda app: seed_demo(app, service))
    for lead in config.leads:
        app.scheduler.add("chatter_briefing", lead.briefing_trigger(), briefing_job(app, service, lead),
                          scope=f"slack:{lead.slack}", period=daily(lead.timezone))
    raw = (app.config.data.get("schedules") or {}).get("chatter_ingest")
    spec = app.config.section("schedules", dict[str, ScheduleSpec], {}).get("chatter_ingest") if raw else DEFAULT_INGEST
    if spec is not None and spec.enabled:
        app.scheduler.add("chatter_ingest", spec, ingest_job(service), period=daily(spec.timezone))

    async def dashboard(request: web.Request) -> web.Response:
        raw_days = request.query.get("days", "")
        days = int(raw_days) if raw_days.isdigit() else DASHBOARD_DAYS
        html = await service.dashboard_html(min(days, 365))
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    app.http.route("GET", "/dashboard", dashboard, admin=True)

    async def cli_ingest(app: App, args: argparse.Namespace) -> int:
        await service.sync_roster()
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise UserError(f"ingest: can't read {args.file}: {exc.strerror or exc}") from None
        try:
            summary = await service.ingest_file(data, args.date, filename=args.file.name)
        except CsvError as exc:  # the file is not a readable export: the operator's to fix, nothing stored
            raise UserError(f"ingest: {args.file.name}: {exc}") from None
        await service.write_dashboard_if_configured()
        print(summary.text().replace("`", ""))
        return 0

    async def cli_dashboard(app: App, args: argparse.Namespace) -> int:
        html = await service.dashboard_html(args.days)
        try:
            args.out.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"dashboard: can't write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {args.out} ({len(html.encode()) / 1024:.0f} KB)")
        return 0

    app.add_cli("ingest", "ingest an Inflow CSV export: ingest FILE.csv [--date YYYY-MM-DD]", _configure_ingest,
                cli_ingest)
    app.add_cli("dashboard", "write the COO dashboard: dashboard --out FILE.html", _configure_dashboard,
                cli_dashboard)
