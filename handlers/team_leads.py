"""Team leads in Slack: the daily CSV, who to coach, chatter cards, the coaching log, briefings.

Commands work as `/huddle who`, a DM `who`, or any channel's command form:

    who [TEAM]                 the three chatters to coach today, and why
    chatter NAME               a chatter's card (score, tier, trend, funnel)
    team [TEAM]                the team's summary and every chatter's score
    log NAME: notes            log a coaching session (also `coached Ana: talked about PPV pricing`)
    report NAME: issue         report a problem with a chatter to the COO
    alias "NAME IN CSV" = "CHATTER"   teach a name once
    shift 09:00 [mon-fri] [TEAM] [Europe/Madrid]   your shift (leads enrolled with an invite)

A CSV dropped in the DM is ingested and answered with a summary. A DM such as "how is maria
doing" gets Maria's card. Briefings go out 30 minutes before each lead's shift: for leads in the
config file, and for invited leads once they set a shift. A briefing that goes out late (the bot
was down at its time and caught up within the scheduler's grace period) says so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.app import App
from bot.context import Context
from bot.errors import UserError
from bot.i18n import N_, Msg, date_text, t, weekday_names
from bot.lazy import lazy_module
from bot.model import Address, OutboundKind, Person
from bot.plugins import Plugin
from bot.router import Greedy, Router
from bot.scheduler import JobFunc, JobRun, ScheduleSpec, daily
from channels.markup import esc, to_plain
from coaching.briefings import LATE_AFTER, pick, why
from coaching.cards import (
    STATUS_TEXT,
    TRAFFIC_TEXT,
    Status,
    TeamView,
    card_text,
    fmt_kpi,
    streak_text,
    team_name,
    tier_text,
)
from coaching.chatter_config import (
    BRIEFING_LEAD,
    DEFAULT_INGEST,
    WEEK,
    ChattersConfig,
    LeadConfig,
    ShiftError,
    parse_shift,
)
from coaching.chatter_metrics import Kpi
from coaching.chatter_service import ChatterService, HoursSource
from coaching.demo_chatters import DEMO_LEADS, seed_demo
from coaching.names import normalize_name
from coaching.roles import Role
from coaching.roles import declare as declare_roles
from coaching.sources.hubstaff import HubstaffClient, HubstaffSettings, parse_hubstaff_csv
from coaching.sources.inflow_csv import CsvError
from storage.chatters import REPORT, ChatterRepo, LeadShift, LeadShiftRepo
from storage.events import BRIEFING, COACHING_SENT, EventLog, NewEvent

if TYPE_CHECKING:
    from aiohttp import web
else:
    web = lazy_module("aiohttp.web")

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


# -- what a team lead reads (the message catalog takes these from here) ---------------------------

SHIFT_USAGE = "shift 09:00 [mon-fri] [TEAM] [Europe/Madrid]"
SHIFT_SET = N_("Got it: your shift starts at {start:%H:%M} {days} ({tz}), covering {teams}. "
             "Your briefing comes 30 minutes before; the next one {next}.")
SHIFT_SHOW = N_("Your shift starts at {start:%H:%M} {days} ({tz}), covering {teams}. Next briefing {next}.")
SHIFT_NONE = N_("You have no shift yet, so no briefing. Set it with <code>shift 09:00 mon-fri</code> "
              "(add a team, or a timezone like Europe/Madrid, if you like).")
SHIFT_OFF = N_("Briefings stopped. Set a shift again any time with <code>shift 09:00 mon-fri</code>.")
SHIFT_NOTHING_TO_STOP = N_("You have no shift set, so there were no briefings to stop.")
SHIFT_FROM_CONFIG = N_("Your shift comes from Huddle's config file: {start:%H:%M} {days} ({tz}). "
                     "Ask your admin to change it there.")
SHIFT_BAD = N_("{problem}. Write it as <code>{usage}</code>, e.g. <code>shift 09:00 mon-fri</code>.")
SHIFT_UNKNOWN_TEAM = N_("I don't know a team called “{team}”. Teams: {teams}.")
SHIFT_NOWHERE = N_("I have no address to send your briefing to. Ask your admin.")
EVERY_TEAM = N_("every team")
NEXT_AT = N_("is {day} at {when:%H:%M}")
NO_NEXT = N_("isn't scheduled")
DAYS_EVERY = N_("every day")
NO_TEAMS_YET = N_("none yet")
NO_SCORE = N_("No score")
LOG_USAGE = N_("Write it as <code>log NAME: what you talked about</code>, e.g. <code>log Ana: PPV pricing</code>.")
ALIAS_USAGE = N_('Write it as <code>alias "Name in the CSV" = "Chatter name"</code>.')
NO_NUMBERS_YET = N_("No numbers yet. Drop the day's Inflow CSV here and I'll take it from there.")
NO_TEAMS = N_("No teams yet: add <code>[[chatters.teams]]</code> to the config, or ask your admin.")
TO_COACH = N_("To coach today ({day} numbers):")
NOT_A_CSV = N_("I can only read CSV exports, and “{name}” isn't one. Export the day from Inflow as CSV.")
NOT_DOWNLOADED = N_("I couldn't download that file. Try sending it again.")
NOT_A_DATE = N_("“{given}” isn't a date I can read; use YYYY-MM-DD.")
NOT_USABLE = N_("I couldn't use “{name}”: {problem}")


def _loc(ctx: Context) -> str | None:
    return ctx.person.locale if ctx.person else None


def _days_text(days: list[str], locale: str | None = None) -> str:
    """`Mon–Fri`, `Mon, Wed` — with the reader's weekday names (`пн–пт`)."""
    if set(days) == set(WEEK):
        return t(locale, DAYS_EVERY)
    names = weekday_names(locale)
    ordered = [d for d in WEEK if d in days]
    if len(ordered) > 2 and WEEK.index(ordered[-1]) - WEEK.index(ordered[0]) == len(ordered) - 1:
        return f"{names[WEEK.index(ordered[0])]}–{names[WEEK.index(ordered[-1])]}"
    return ", ".join(names[WEEK.index(d)] for d in ordered)


def _say(ctx: Context, text: Msg | str | None) -> str:
    """A service's answer in the reader's language."""
    if isinstance(text, Msg):
        return text.render(_loc(ctx))
    return text or ""


async def _lead_teams(service: ChatterService, ctx: Context) -> list[str] | None:
    """The teams of the lead writing: from the config file, else their own shift; None for all."""
    lead = service.lead_for(ctx.address.id if ctx.channel == "slack" else None)
    if lead is None and ctx.person is not None:
        slack = ctx.person.address_on("slack")
        lead = service.lead_for(slack.id if slack else None)
    if lead is not None:
        return lead.teams or None
    if ctx.person is not None and ctx.person.id is not None:
        shift = await LeadShiftRepo(service.repo.db).get(ctx.person.id)
        if shift is not None:
            return shift.teams or None
    return None


async def _views(service: ChatterService, ctx: Context, team: str) -> list[TeamView] | str:
    """The teams asked for (by part of a name), else the lead's own, else all; or why not."""
    known = await service.repo.teams()
    if team:
        wanted = [t for t in known if normalize_name(team) in normalize_name(t)]
        if not wanted:
            return t(_loc(ctx), SHIFT_UNKNOWN_TEAM, team=esc(team),
                     teams=", ".join(esc(k) for k in known) or t(_loc(ctx), NO_TEAMS_YET))
    else:
        wanted = await _lead_teams(service, ctx) or known
    return await service.teams(wanted)


@router.command("who", roles=LEADS, help=N_("the three chatters to coach today, and why"))
async def who(ctx: Context, chatters: ChatterService, team: Greedy = "") -> str:
    views = await _views(chatters, ctx, team)
    if isinstance(views, str):
        return views
    cards = [c for v in views for c in v.cards]
    chosen = pick(cards)
    if not cards or all(c.status is Status.NO_DATA for c in cards):
        return t(_loc(ctx), NO_NUMBERS_YET)
    if not chosen:
        return t(_loc(ctx), "Everyone is on a day off in the latest numbers — nobody to coach.")
    lines = [t(_loc(ctx), TO_COACH, day=date_text(_loc(ctx), views[0].day))]
    lines += [f"{i}. <b>{esc(c.chatter.name)}</b> — {why(c, _loc(ctx))}" for i, c in enumerate(chosen, 1)]
    return "\n".join(lines)


@router.command("chatter", roles=LEADS, help=N_("a chatter's card: score, tier, trend, funnel"))
async def chatter(ctx: Context, chatters: ChatterService, name: Greedy) -> str:
    card, problem = await chatters.card(name)
    return card_text(card, _loc(ctx)) if card else _say(ctx, problem)


def team_text(view: TeamView, locale: str | None = None) -> str:
    lines = [f"<b>{team_name(view.name, locale)}</b> · {date_text(locale, view.day)}"]
    lines.append(t(locale, "Sales ${sales:,.2f} · avg {per_hr}/hr · avg CVR {cvr} · {fans} fans · "
                           "{worked}/{total} working", sales=view.total_sales,
                   per_hr=fmt_kpi(Kpi.SALES_PER_HR, view.avg_sales_per_hr), cvr=fmt_kpi(Kpi.CVR, view.avg_cvr),
                   fans=view.total_fans, worked=view.worked, total=view.total))
    if view.imbalance:
        lines.append(t(locale, "⚠ Traffic imbalance: busiest chatter has {x:.1f}× the fans/hr of the quietest.",
                       x=view.imbalance))
    for c in sorted(view.cards, key=lambda c: -(c.score.value if c.score else -1)):
        if c.status is not Status.SCORED or c.score is None:
            lines.append(f"• {esc(c.chatter.name)}: {t(locale, STATUS_TEXT.get(c.status, NO_SCORE))}")
            continue
        extra = f" · {streak_text(c.streak, locale)}" if c.streak else ""
        extra += t(locale, " · traffic {level}", level=t(locale, TRAFFIC_TEXT[c.traffic])) if c.traffic else ""
        lines.append(f"• {esc(c.chatter.name)}: {c.score.rounded} ({tier_text(c.score.tier, locale)}){extra}")
    return "\n".join(lines)


@router.command("team", roles=LEADS, help=N_("team summary and every chatter's score"))
async def team(ctx: Context, chatters: ChatterService, name: Greedy = "") -> str:
    views = await _views(chatters, ctx, name)
    if isinstance(views, str):
        return views
    if not views:
        return t(_loc(ctx), NO_TEAMS)
    return "\n\n".join(team_text(v, _loc(ctx)) for v in views)


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
    return LOG_USAGE


async def _log(ctx: Context, service: ChatterService, text: str, kind: str) -> str:
    parsed = await split_name_notes(service, text)
    if isinstance(parsed, str):
        return t(_loc(ctx), parsed)
    name, notes = parsed
    return _say(ctx, await service.log(name, notes, ctx.person.id if ctx.person else None, kind))


@router.command("log", "coached", roles=LEADS, help=N_("log a coaching session"), usage="log NAME: notes…")
async def log_session(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    return await _log(ctx, chatters, text, "coaching")


@router.command("report", roles=LEADS, help=N_("report an issue with a chatter"), usage="report NAME: issue…")
async def report(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    return await _log(ctx, chatters, text, REPORT)


@router.command("alias", roles=LEADS, help=N_("teach a name once"), usage='alias "NAME IN CSV" = "CHATTER"')
async def alias(ctx: Context, chatters: ChatterService, text: Greedy) -> str:
    m = _ALIAS_RE.match(text)
    if not m:
        return t(_loc(ctx), ALIAS_USAGE)
    return _say(ctx, await chatters.alias(m.group("a"), m.group("b"), ctx.person.id if ctx.person else None))


class LeadBriefings:
    """Schedules the briefings: configured leads at setup, invited leads from their stored shifts.

    An invited lead's job is added when they set a shift (and at every start), and removed when
    they turn it off, so "like configured ones" holds: same trigger, same job, once a day.
    """

    JOB = "chatter_briefing"

    def __init__(self, app: App, service: ChatterService) -> None:
        self.app = app
        self.service = service
        self.shifts = LeadShiftRepo(app.db)

    @staticmethod
    def address_for(person: Person) -> Address | None:
        """Slack if they have it (where briefings are read), else their first address."""
        return person.address_on("slack") or (person.addresses[0] if person.addresses else None)

    async def configured_lead(self, person: Person) -> LeadConfig | None:
        slack = person.address_on("slack")
        return self.service.lead_for(slack.id) if slack else None

    def schedule_config(self, lead: LeadConfig) -> None:
        self.app.scheduler.add(self.JOB, lead.briefing_trigger(), briefing_job(self.app, self.service, lead),
                               scope=f"slack:{lead.slack}", period=daily(lead.timezone))

    def _lead(self, person: Person, shift: LeadShift) -> LeadConfig:
        address = self.address_for(person)
        return LeadConfig(slack=address.id if address else "", name=person.name, teams=shift.teams,
                          timezone=shift.timezone, shift_start=time.fromisoformat(shift.shift_start), days=shift.days)

    def schedule_shift(self, person: Person, shift: LeadShift) -> None:
        assert person.id is not None
        lead = self._lead(person, shift)
        self.app.scheduler.remove(self.JOB, f"person:{person.id}")
        self.app.scheduler.add(self.JOB, lead.briefing_trigger(),
                               briefing_job(self.app, self.service, lead, person_id=person.id),
                               scope=f"person:{person.id}", period=daily(lead.timezone))

    def unschedule(self, person_id: int) -> None:
        self.app.scheduler.remove(self.JOB, f"person:{person_id}")

    def next_text(self, person_id: int, locale: str | None = None) -> str:
        job = self.app.scheduler.jobs.get(f"{self.JOB}:person:{person_id}")
        nxt: datetime | None = job.trigger.get_next_fire_time(None, self.app.clock.now()) if job else None
        if nxt is None:
            return t(locale, NO_NEXT)
        return t(locale, NEXT_AT, day=date_text(locale, nxt.date()), when=nxt)  # in the lead's zone (the trigger's)

    async def load(self) -> None:
        """At start: a job for every invited lead who set a shift (configured leads win)."""
        configured = {lead.slack for lead in self.service.config.leads}
        for shift in await self.shifts.all():
            person = await self.app.people.get(shift.person_id)
            if person is None:
                continue
            slack = person.address_on("slack")
            if slack is not None and slack.id in configured:
                continue
            self.schedule_shift(person, shift)


@router.command("shift", roles=LEADS, help=N_("your shift: a briefing comes 30 minutes before it"),
                usage=SHIFT_USAGE)
async def shift(ctx: Context, chatters: ChatterService, briefings: LeadBriefings, text: Greedy = "") -> str:
    person = ctx.person
    assert person is not None and person.id is not None
    loc = person.locale
    configured = await briefings.configured_lead(person)
    if configured is not None:
        return t(loc, SHIFT_FROM_CONFIG, start=configured.shift_start, days=_days_text(configured.days, loc),
                 tz=esc(configured.timezone))
    current = await briefings.shifts.get(person.id)
    words = text.strip().lower()
    if not words:
        if current is None:
            return t(loc, SHIFT_NONE)
        return t(loc, SHIFT_SHOW, start=time.fromisoformat(current.shift_start), days=_days_text(current.days, loc),
                                 tz=esc(current.timezone),
                                 teams=", ".join(esc(n) for n in current.teams) or t(loc, EVERY_TEAM),
                                 next=briefings.next_text(person.id, loc))
    if words in {"off", "stop", "none", "cancel"}:
        if current is None:
            return t(loc, SHIFT_NOTHING_TO_STOP)
        await briefings.shifts.remove(person.id)
        briefings.unschedule(person.id)
        return t(loc, SHIFT_OFF)
    try:
        request = parse_shift(text)
    except ValueError as exc:
        said = exc.message.render(loc) if isinstance(exc, ShiftError) else esc(str(exc))
        return t(loc, SHIFT_BAD, problem=said[:1].upper() + said[1:], usage=SHIFT_USAGE)
    known = await chatters.repo.teams()
    teams: list[str] = []
    for word in request.teams:
        found = [t for t in known if normalize_name(word) in normalize_name(t)]
        if not found:
            return t(loc, SHIFT_UNKNOWN_TEAM, team=esc(word),
                     teams=", ".join(esc(k) for k in known) or t(loc, NO_TEAMS_YET))
        teams += [t for t in found if t not in teams]
    if briefings.address_for(person) is None:
        return t(loc, SHIFT_NOWHERE)
    zone = request.timezone or person.timezone or "UTC"
    new = LeadShift(person.id, f"{request.start:%H:%M}", request.days, teams, zone)
    await briefings.shifts.put(new, ctx.now())
    briefings.schedule_shift(person, new)
    return t(loc, SHIFT_SET, start=request.start, days=_days_text(request.days, loc), tz=esc(zone),
             teams=", ".join(esc(n) for n in teams) or t(loc, EVERY_TEAM), next=briefings.next_text(person.id, loc))


_NOT_NAMES = frozenset({"it", "you", "things", "everyone", "everybody", "everything", "we", "they", "that", "this"})


def _how_is(ctx: Context) -> bool:
    m = _HOW_IS_RE.match(ctx.text)
    return bool(m) and normalize_name(m.group("name")) not in _NOT_NAMES  # type: ignore[union-attr]


@router.message(_how_is, roles=LEADS)
async def how_is(ctx: Context, chatters: ChatterService) -> str:
    m = _HOW_IS_RE.match(ctx.text)
    assert m is not None
    card, problem = await chatters.card(m.group("name"))
    return card_text(card, _loc(ctx)) if card else _say(ctx, problem)


@router.file(roles=LEADS)
async def upload(ctx: Context, chatters: ChatterService) -> str:
    f = ctx.inbound.files[0]
    name = f.name or "file"
    if not name.lower().endswith((".csv", ".tsv", ".txt")) and (f.mimetype or "").split(";")[0] not in {
        "text/csv", "text/plain", "text/tab-separated-values", "application/csv", "application/vnd.ms-excel"
    }:
        return t(_loc(ctx), NOT_A_CSV, name=esc(name))
    if f.content is None:
        return t(_loc(ctx), NOT_DOWNLOADED)
    given = _DATE_RE.search(ctx.text or "")
    try:
        day = date.fromisoformat(given.group(1)) if given else None
    except ValueError:
        return t(_loc(ctx), NOT_A_DATE, given=given.group(1) if given else "")
    try:
        summary = await chatters.ingest_file(f.content, day, filename=name)
    except CsvError as exc:
        return t(_loc(ctx), NOT_USABLE, name=esc(name), problem=exc.render(_loc(ctx)))
    await chatters.write_dashboard_if_configured()
    return summary.text(_loc(ctx))


# -- jobs ------------------------------------------------------------------------------------------


def briefing_job(app: App, service: ChatterService, lead: LeadConfig, person_id: int | None = None) -> JobFunc:
    """A lead's briefing: to the Slack id of a configured lead, or to an invited lead's own address."""

    async def run(job: JobRun) -> None:
        if person_id is None:
            address: Address | None = Address("slack", lead.slack)
            person = await app.people.by_address(address)
            if person is None:
                log.warning("briefing skipped: no person with this Slack id lead=%s", lead.slack)
                return
        else:
            person = await app.people.get(person_id)
            address = LeadBriefings.address_for(person) if person is not None else None
            if person is None or address is None:
                log.warning("briefing skipped: lead person_id=%s has no address", person_id)
                return
        late = app.clock.now() - job.fire_time > LATE_AFTER
        if late:
            log.warning("briefing sent late lead=%s due=%s", address.id, job.fire_time.isoformat())
        text = (await service.briefing_for(lead, person.name, job.fire_time + BRIEFING_LEAD,
                                           late_since=job.fire_time if late else None, locale=person.locale)).text
        who = lead.slack if person_id is None else f"person:{person_id}"
        key = f"briefing:{who}:{job.period}"
        # The coaching fact goes to the event log first (deduplicated by the key, like the message),
        # so `report impact` and playbooks see briefings next to budtender coaching.
        now = app.clock.now()
        shift_day = (job.fire_time + BRIEFING_LEAD).astimezone(ZoneInfo(lead.timezone)).date()
        await EventLog(app.db).append(NewEvent(COACHING_SENT, key, now, person.id, None, {
            "kind": BRIEFING, "variant": "late" if late else "on_time", "teams": list(lead.teams),
            "day": shift_day.isoformat()}), now)
        await app.send(address, text, kind=OutboundKind.PROACTIVE, key=key, person=person)

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
    declare_roles(app, Role.TEAM_LEAD, Role.CHATTER)
    config = app.config.section("chatters", ChattersConfig, {})
    if not config.leads and app.settings.demo:
        config = config.model_copy(update={"leads": DEMO_LEADS})
    service = ChatterService(ChatterRepo(app.db, normalize_name), config, app.clock, hours_source(app))
    app.provide("chatters", service)
    briefings = app.provide("briefings", LeadBriefings(app, service))
    app.include_router(router)

    async def startup(app: App) -> None:
        await service.sync_roster()
        for lead in config.leads:
            address = Address("slack", lead.slack)
            if lead.name and await app.people.by_address(address) is None:
                await app.people.add(Person(None, lead.name, frozenset({Role.TEAM_LEAD}), [address], lead.timezone),
                                     app.clock.now())
        await briefings.load()

    app.on_startup(startup)
    app.on_seed_demo(lambda app: seed_demo(app, service))
    for lead in config.leads:
        briefings.schedule_config(lead)
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
            raise UserError(f"ingest: {args.file.name}: {to_plain(str(exc))}") from None
        await service.write_dashboard_if_configured()
        print(to_plain(summary.text()))
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


plugin = Plugin("team_leads", setup, description="chatter coaching for team leads in Slack")
