"""Sales managers on Telegram: their deals, stale alerts, AI coaching and periodic monitoring.

    /deals [PAGE]       my active deals, most urgent first, 30 a page ("Next 30" button)
    /analyze DEAL_ID    coaching for one deal (`5001` or `#5001`), with a "Detailed analysis" button
    /stale [DAYS]       deals without activity for DAYS days (default 3) or with overdue tasks
    /monitor HOURS      a digest of what changed every HOURS hours (1–168), new analyses of red deals
    /monitor_stop       stop it
    /status             monitoring, deal counts and whether AI is on

A deal that is unknown and a deal of someone else get the same plain "not found". Monitoring is
stored per manager and rescheduled at start, on the same grid, so a restart neither loses nor
repeats a run (job runs and outbox keys are both per run).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot import i18n
from bot.app import App
from bot.context import Context
from bot.i18n import N_, tn
from bot.model import Button, OutboundKind, Person, Role
from bot.router import Reply, Router, UsageError
from bot.scheduler import JobRun
from channels.markup import esc
from coaching.ai import ai_client_for
from coaching.deal_coach import DealCoach
from coaching.deal_desk import DETAIL_PREFIX, DealDesk, DealSettings
from storage.deals import DealRepo, Monitor

log = logging.getLogger(__name__)

router = Router("sales_managers")
SM = {Role.SALES_MANAGER}
MONITOR_JOB = "deal_monitor"
MIN_HOURS, MAX_HOURS = 1, 168
MAX_STALE_DAYS = 365
PAGE_PREFIX = "deal:page:"

TEXTS: dict[str, str] = {
    "not_found": N_("Deal {id} not found."),
    "monitor_on": N_("✅ Monitoring is on: a summary every {h} h, details for high-priority deals. "
                  "Next report: {next}."),
    "monitor_off": N_("⏹ Monitoring stopped."),
    "monitor_none": N_("Monitoring was not running."),
    "status": N_("<b>Status</b>\nMonitoring: {mon}\nActive deals: {n} (🔴 {h} high, stale: {s})\nAnalysis: {ai}"),
    "mon_on": N_("every {h} h, next report {next}"),
    "mon_off": N_("off (start with /monitor HOURS)"),
    "ai_on": N_("AI coach"),
    "ai_off": N_("rule-based (AI is not configured)"),
    "help": N_("<b>Deal coaching</b> — what you can ask:"),
}


def say(person: Person | None, key: str, **values: object) -> str:
    return i18n.t(person.locale if person else None, TEXTS[key], **values)


# -- monitoring control (used by the commands and the admin API) ----------------------------------


class MonitorControl:
    """Starts, stops and restores per-manager monitoring: stored first, then scheduled."""

    def __init__(self, app: App, desk: DealDesk) -> None:
        self.app = app
        self.desk = desk

    def trigger(self, m: Monitor) -> IntervalTrigger:
        return IntervalTrigger(hours=m.interval_hours, start_date=m.started_at, timezone=UTC)

    def schedule(self, m: Monitor) -> None:
        desk = self.desk

        async def run(job: JobRun) -> None:
            await desk.monitor_run(m.person_id, job.period)

        self.app.scheduler.add(MONITOR_JOB, self.trigger(m), run, scope=str(m.person_id))

    async def start(self, person_id: int, hours: int) -> Monitor:
        if not MIN_HOURS <= hours <= MAX_HOURS:
            raise ValueError(f"interval_hours must be between {MIN_HOURS} and {MAX_HOURS}")
        m = await self.desk.repo.set_monitor(person_id, hours, self.app.clock.now())
        self.app.scheduler.remove(MONITOR_JOB, str(person_id))
        self.schedule(m)
        return m

    async def stop(self, person_id: int) -> bool:
        self.app.scheduler.remove(MONITOR_JOB, str(person_id))
        return await self.desk.repo.stop_monitor(person_id, self.app.clock.now())

    async def restore(self) -> int:
        monitors = await self.desk.repo.monitors()
        for m in monitors:
            self.schedule(m)
        if monitors:
            log.info("deal monitoring restored managers=%s", len(monitors))
        return len(monitors)

    def next_run(self, m: Monitor) -> str:
        now = self.app.clock.now()
        nxt = self.trigger(m).get_next_fire_time(None, now + timedelta(microseconds=1))
        return nxt.strftime("%Y-%m-%d %H:%M UTC") if nxt else "-"


# -- commands --------------------------------------------------------------------------------------


def _me(ctx: Context) -> Person:
    assert ctx.person is not None and ctx.person.id is not None  # roles are checked by the core
    return ctx.person


DEAL_ID = re.compile(r"#?(\d{1,18})")


def parse_deal_id(raw: str) -> int:
    """`5001` or `#5001` (as the lists print it); anything else is a usage error."""
    m = DEAL_ID.fullmatch(raw.strip())
    if m is None:
        shown = raw if len(raw) <= 24 else raw[:20] + "…"
        raise UsageError("“{shown}” is not a valid {name}.", shown=shown, name="DEAL_ID")
    return int(m.group(1))


async def _deals_page(ctx: Context, deal_desk: DealDesk, page: int) -> Reply:
    from coaching.deal_format import PAGE, format_summary, pages

    me = _me(ctx)
    items = await deal_desk.my_deals(me)
    last = pages(items)
    if not 1 <= page <= last:
        raise UsageError(tn(me.locale, "There is {n} page.", "There are {n} pages.", last))
    buttons = []
    if page < last:
        left = min(PAGE, len(items) - page * PAGE)
        buttons.append(Button(i18n.t(me.locale, "Next {n}", n=left), f"{PAGE_PREFIX}{page + 1}"))
    return Reply(format_summary(items, me.locale, page=page), buttons=buttons)


@router.command("deals", roles=SM, help=N_("my active deals, most urgent first, 30 a page"))
async def deals(ctx: Context, deal_desk: DealDesk, page: int = 1) -> Reply:
    return await _deals_page(ctx, deal_desk, page)


@router.callback(PAGE_PREFIX, roles=SM)
async def deals_next(ctx: Context, deal_desk: DealDesk) -> Reply | str:
    raw = ctx.args.strip()
    return await _deals_page(ctx, deal_desk, int(raw) if raw.isdigit() and len(raw) < 6 else 0)


@router.command("analyze", roles=SM, help=N_("coaching for one deal"))
async def analyze(ctx: Context, deal_id: str, deal_desk: DealDesk) -> str | Reply:
    me = _me(ctx)
    number = parse_deal_id(deal_id)
    got = await deal_desk.brief(me, number)
    if got is None:
        return say(me, "not_found", id=number)
    text, buttons = got
    return Reply(text, buttons=buttons)


@router.callback(DETAIL_PREFIX, roles=SM)
async def detail(ctx: Context, deal_desk: DealDesk) -> str:
    me = _me(ctx)
    raw = ctx.args.strip()
    if not raw.isdigit() or len(raw) > 18:
        return say(me, "not_found", id=esc(raw[:20] or "?"))
    text = await deal_desk.detailed(me, int(raw))
    return text if text is not None else say(me, "not_found", id=raw)


@router.command("stale", roles=SM, help=N_("deals with no activity for DAYS days (default 3) or overdue tasks"))
async def stale(ctx: Context, deal_desk: DealDesk, days: int = 3) -> str:
    if not 1 <= days <= MAX_STALE_DAYS:
        raise UsageError("DAYS must be between {low} and {high}.", low=1, high=MAX_STALE_DAYS)
    return await deal_desk.stale_text(_me(ctx), days)


@router.command("monitor", roles=SM, help=N_("a digest of what changed every HOURS hours (1–168)"))
async def monitor(ctx: Context, hours: int, deal_monitor: MonitorControl) -> str:
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise UsageError("HOURS must be between {low} and {high}.", low=MIN_HOURS, high=MAX_HOURS)
    me = _me(ctx)
    assert me.id is not None
    m = await deal_monitor.start(me.id, hours)
    return say(me, "monitor_on", h=hours, next=deal_monitor.next_run(m))


@router.command("monitor_stop", roles=SM, help=N_("stop the periodic deal digest"))
async def monitor_stop(ctx: Context, deal_monitor: MonitorControl) -> str:
    me = _me(ctx)
    assert me.id is not None
    return say(me, "monitor_off" if await deal_monitor.stop(me.id) else "monitor_none")


@router.command("status", roles=SM, help=N_("monitoring, deal counts and AI status"))
async def status(ctx: Context, deal_desk: DealDesk, deal_monitor: MonitorControl) -> str:
    from coaching.deals import Priority, is_stale

    me = _me(ctx)
    assert me.id is not None
    items = await deal_desk.my_deals(me)
    m = await deal_desk.repo.monitor(me.id)
    mon = (say(me, "mon_on", h=m.interval_hours, next=deal_monitor.next_run(m)) if m and m.active
           else say(me, "mon_off"))
    return say(
        me, "status", mon=mon, n=len(items), h=sum(a.priority is Priority.HIGH for a in items),
        s=sum(is_stale(a.metrics, deal_desk.rules.stale_days) for a in items),
        ai=say(me, "ai_on" if deal_desk.coach.ai_enabled else "ai_off"),
    )


@router.command("help", roles=SM, help=N_("this list"))
async def help_(ctx: Context) -> str:
    lines = ctx.app.dispatcher.help_lines(ctx.person, ctx.channel)
    return "\n".join([say(ctx.person, "help"), *(esc(line) for line in lines)])


# -- wiring ----------------------------------------------------------------------------------------


def _schedule_amocrm_sync(app: App, repo: DealRepo) -> None:
    """Pull deals from amoCRM every `HUDDLE_AMOCRM_SYNC_MINUTES` when amoCRM is configured."""
    from coaching.sources.amocrm import AmoSettings, sync_amocrm

    amo = AmoSettings()
    if not (amo.configured and amo.amocrm_sync_minutes):
        return

    async def sync(_run: JobRun) -> None:
        result = await sync_amocrm(amo, repo, app.clock.now())
        log.info("amoCRM sync deals=%s events=%s unassigned=%s", result.deals, result.events, len(result.unassigned))
        if result.unmapped_owners:
            log.warning("amoCRM users linked to nobody (python main.py people link NAME --external amocrm:ID): %s",
                        ", ".join(f"{ref} ({n} deals)" for ref, n in sorted(result.unmapped_owners.items())))

    trigger = IntervalTrigger(minutes=amo.amocrm_sync_minutes, start_date=app.clock.now(), timezone=UTC)
    app.scheduler.add("amocrm_sync", trigger, sync)


def setup(app: App) -> None:
    settings = DealSettings()
    repo = DealRepo(app.db)
    coach = DealCoach(ai_client_for(app), repo, concurrency=settings.deals_ai_concurrency,
                      timeout=settings.deals_ai_timeout)

    async def send(person: Person, text: str, key: str, buttons: list[Button]) -> None:
        address = person.address_on("telegram") or (person.addresses[0] if person.addresses else None)
        if address is None:
            log.warning("deal message not sent: person has no address person_id=%s key=%s", person.id, key)
            return
        await app.send(address, text, kind=OutboundKind.PROACTIVE, key=key, buttons=buttons, person=person)

    desk = DealDesk(repo, app.people, coach, app.clock.now, send, settings.rules(), settings.deals_daily_cap)
    control = MonitorControl(app, desk)
    app.provide("deal_desk", desk)
    app.provide("deal_monitor", control)
    app.include_router(router)

    async def restore(_app: App) -> None:
        await control.restore()

    app.on_startup(restore)
    _schedule_amocrm_sync(app, repo)

    async def link_amocrm(ref: str, person: Person) -> str:
        """`people add/link … --external amocrm:555`: that amoCRM user's deals are this person's."""
        from coaching.sources.amocrm import SOURCE

        assert person.id is not None
        if not ref.isdigit():
            log.warning("amoCRM user ids are numbers; linking %r anyway", ref)
        moved = await repo.map_owner(SOURCE, ref, person.id)
        return f"linked amoCRM user {ref} to #{person.id} {person.name} ({moved} stored deal(s) now theirs)"

    app.on_external("amocrm", link_amocrm)

    from handlers import deals_api, deals_cli
    from handlers.deals_demo import seed_demo

    deals_api.setup(app, desk, control)
    deals_cli.setup(app)
    app.on_seed_demo(seed_demo)
