"""Budtenders over SMS: shift coaching driven by POS orders and the clock, and their own numbers on request.

Commands (role budtender; any channel, e.g. `STATS` by SMS):
  STATS / TODAY  today so far: sales, customers, average ticket vs usual, sign-ups, upsells, house share
                 ("today" is the business day: a shift past midnight counts as the day it started)
  POINTS         your own staff points: the balance and today's change
  WEEK           this week so far against the usual
  GOAL           the shift's goals and where you are
  BOARD          today's leaderboard by sales, with your place (the same day as STATS)
  PAUSE          no coaching until the end of your shift; RESUME turns it back on
  HELP           the list (the core's compliance HELP)
Any other text goes to the AI coach (with only this budtender's own numbers) when OPENAI_API_KEY
is set; else, or when the model fails or is slow, a deterministic coaching tip. Any message within
`answer_window_hours` of a coaching message marks that message answered (the feedback loop behind
`python main.py report coaching`).

After-order coaching reads the event log: each new `order.created` (whoever stored the order: the
POS webhook, a Blaze sync) is coached once from the coach's durable cursor. The store's POS ingest
calls every `on_order` hook after an order is committed; this plugin's hook only wakes the reader
(and rebuilds the tally of a changed order). Anything else that creates live orders without the
log calls `await on_transaction(app, transaction)`. History (orders over a day old) does not coach.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import App
from bot.context import Context
from bot.plugins import Plugin
from bot.router import HandlerResult, Router
from bot.scheduler import JobRun, cron, daily, weekly
from coaching import budtenders as bt
from coaching.ai import AiClient, ai_client_for
from coaching.budtender_coach import CONSUMER, BudtenderCoach
from coaching.budtender_shifts import BudtenderConfig, ShiftPattern
from coaching.prompts import load_prompt
from coaching.reports import register_report
from coaching.roles import Role
from coaching.roles import declare as declare_roles
from coaching.sources.imports import ImportKind, register_import
from coaching.sources.pos import OrderProcessed, on_order
from handlers import budtender_trend
from handlers.store_services import StoreServices
from storage.sales import Transaction

log = logging.getLogger(__name__)

router = Router("budtenders")
AI_MAX_CHARS = 306  # two SMS segments at most for a conversational answer
BUDTENDER = {Role.BUDTENDER}


def coach_of(app: App) -> BudtenderCoach:
    return app.deps["budtender_coach"]


async def on_transaction(app: App, transaction: Transaction) -> list[bt.Coaching]:
    """The hook for anything that produces live orders: evaluate the after-order triggers."""
    return await coach_of(app).on_transaction(transaction)


@router.middleware
async def feedback(ctx: Context, call: object) -> HandlerResult:
    """Any message from a budtender soon after a coaching message marks it answered."""
    person = ctx.person
    if person is not None and person.id is not None and Role.BUDTENDER in person.roles:
        coach: BudtenderCoach = ctx.deps["budtender_coach"]
        now = ctx.now()
        try:
            await coach.repo.mark_answered(person.id, now, now - timedelta(hours=coach.config.answer_window_hours))
        except Exception:
            log.exception("could not record the coaching answer person_id=%s", person.id)
    return await call()  # type: ignore[operator]


def _pid(ctx: Context) -> int:
    assert ctx.person is not None and ctx.person.id is not None
    return ctx.person.id


@router.command("stats", "today", roles=BUDTENDER, help="your numbers today so far")
async def stats(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    pid = _pid(ctx)
    t = await budtender_coach.day_so_far(pid)
    if not t.orders:
        return f"{bt.short_name(ctx.person.name)}, no sales recorded for you today yet."  # type: ignore[union-attr]
    wm = await budtender_coach.watermark(pid)
    return bt.stats_text(ctx.person.name, t, wm, budtender_coach.rules)  # type: ignore[union-attr]


@router.command("week", roles=BUDTENDER, help="this week so far vs your usual")
async def week(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    pid = _pid(ctx)
    t, days = await budtender_coach.week_tally(pid)
    first = bt.short_name(ctx.person.name)  # type: ignore[union-attr]
    if not t.orders:
        return f"{first}, no sales recorded for you this week yet."
    wm = await budtender_coach.watermark(pid)
    usual = f" (usual {bt.money(wm.avg_ticket)})" if wm.known else ""
    return bt.fit_sms(f"{first}, this week: {bt.money(t.sales)} over {days} days, avg {bt.money(t.avg_ticket)}{usual}, "
                      f"{t.signups} sign-ups, {t.upsells} upsells, house {bt.pct(t.house_share)}%.")


@router.command("goal", "goals", roles=BUDTENDER, help="your goals for this shift")
async def goal(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    pid = _pid(ctx)
    t = await budtender_coach.today_tally(pid)
    return bt.goal_text(t, await budtender_coach.watermark(pid), budtender_coach.rules)


@router.command("board", "leaderboard", roles=BUDTENDER, help="today's leaderboard")
async def board(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    pid = _pid(ctx)
    return bt.board_text(await budtender_coach.board(pid), pid)


@router.command("points", roles=BUDTENDER, help="your own staff points")
async def points(ctx: Context, budtender_coach: BudtenderCoach, store: StoreServices) -> str:
    """The budtender's own points (the bonus on every sale they ring up), never anyone else's."""
    pid = _pid(ctx)
    _, start, _ = await budtender_coach.business_day(pid)
    balance, today = await store.loyalty.person_points(pid, since=start)
    rules = store.settings.loyalty
    return bt.points_text(ctx.person.name, balance, today,  # type: ignore[union-attr]
                          rules.points_per_dollar * rules.budtender_multiplier)


@router.command("pause", "mute", roles=BUDTENDER, help="no coaching until your shift ends")
async def pause(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    shift = await budtender_coach.repo.shift_at(_pid(ctx), ctx.now())
    if shift is None:
        return "You're not on a shift right now, so there is nothing to pause."
    await budtender_coach.mute(shift, shift.ends_at)
    ends = shift.ends_at.astimezone(ZoneInfo(budtender_coach.tz))
    return f"Coaching paused until your shift ends at {ends:%I:%M %p}. Text RESUME to turn it back on."


@router.command("resume", "unmute", roles=BUDTENDER, help="coaching back on")
async def resume(ctx: Context, budtender_coach: BudtenderCoach) -> str:
    shift = await budtender_coach.repo.shift_at(_pid(ctx), ctx.now())
    if shift is not None and shift.muted(ctx.now()):
        await budtender_coach.mute(shift, None)
    return "Coaching is on. Text PAUSE to mute it until your shift ends."


@router.message(roles=BUDTENDER)
async def chat(ctx: Context, budtender_coach: BudtenderCoach, ai: AiClient, store: StoreServices) -> str:
    """Free text from a budtender: the AI coach with only their own numbers, else a deterministic tip."""
    text = ctx.text.strip()
    if not text:
        return "Text STATS, POINTS, WEEK, GOAL, BOARD or PAUSE."
    pid = _pid(ctx)
    person = ctx.person
    assert person is not None
    if ai.enabled:
        t = await budtender_coach.today_tally(pid)
        wm = await budtender_coach.watermark(pid)
        system = load_prompt("budtender_coach", store_name=store.default_store.name, max_chars=AI_MAX_CHARS,
                             context=json.dumps(bt.coach_context(person.name, t, wm, budtender_coach.rules), indent=1))
        answer = await ai.text(system, text[:1000], max_tokens=160, timeout=budtender_coach.config.ai_timeout_seconds,
                               label="budtender_coach")
        if answer:
            return bt.fit_sms(answer, AI_MAX_CHARS)
    return bt.fit_sms(f"Tip: {bt.tip(ctx.now(), pid)}")


# -- CLI: report coaching, import shifts -----------------------------------------------------------


async def report_coaching(app: App, _args: argparse.Namespace) -> int:
    rates = await coach_of(app).repo.response_rates()
    if not rates:
        print("No coaching messages recorded yet.")
        return 0
    print(f"{'type':<10} {'variant':<7} {'sent':>6} {'answered':>8} {'rate':>6}")
    for r in rates:
        print(f"{r.kind:<10} {r.variant:<7} {r.sent:>6} {r.answered:>8} {r.rate * 100:>5.1f}%")
    return 0


async def import_shifts(app: App, args: argparse.Namespace) -> int:
    from coaching.budtender_import import import_shifts_file

    report = await import_shifts_file(coach_of(app), Path(args.file), overrides=args.map, dry_run=args.dry_run)
    print(report.summary())
    if args.report:
        report.write(Path(args.report))
    return 0 if report.written or not report.read else 1


# -- plugin ----------------------------------------------------------------------------------------


def setup(app: App) -> None:
    declare_roles(app, Role.BUDTENDER)
    config = app.config.section("budtenders", BudtenderConfig, default={})
    patterns = app.config.section("shifts", list[ShiftPattern], default=[])
    links = budtender_trend.link_builder(app)
    coach = app.provide("budtender_coach", BudtenderCoach(app, config, patterns, link_for=links))
    ai_client_for(app)
    app.include_router(router)

    async def hook(done: OrderProcessed) -> None:
        if done.is_new:
            await coach.consume()  # its order.created is in the log: coach from there
        else:
            await coach.on_transaction(done.transaction, changed=True)  # a refund: rebuild the tally

    on_order(app, hook)

    async def tick(_run: JobRun) -> None:
        await coach.consume()  # orders another process ingested, or left uncoached by a crash
        await coach.tick()

    async def nightly(_run: JobRun) -> None:
        await coach.refresh_watermarks()

    async def weekly_review(_run: JobRun) -> None:
        await coach.weekly_reviews()

    tz = config.timezone
    app.scheduler.add("budtender_tick", cron(config.tick_cron, tz), tick)
    app.scheduler.add("budtender_watermarks", cron(config.watermark_refresh, tz), nightly, period=daily(tz))
    app.scheduler.add("budtender_weekly", cron(config.weekly_review, tz), weekly_review, period=weekly(tz))

    async def start(app: App) -> None:
        now = app.clock.now()
        await coach.materialise(now)
        refreshed = await coach.refresh_stale_watermarks()
        if refreshed:
            log.info("budtender watermarks computed count=%d", refreshed)
        await coach.events.join(CONSUMER, now)  # a new coach starts at the log's end: history is not coached

    async def ready(_app: App) -> None:
        await coach.consume()  # what a crash left between "order stored" and "coached"

    app.on_startup(start)
    app.on_ready(ready)
    register_report(app, "coaching", "coaching messages sent and answered, per type and variant", report_coaching)
    register_import(app, ImportKind("shifts", "budtender shifts: budtender (phone, employee id or name), date, "
                                    "start, end", import_shifts))

    budtender_trend.setup(app, coach)
    app.on_seed_demo(_seed)


async def _seed(app: App) -> None:
    """Demo shifts and sales, imported only when an empty database is seeded."""
    from handlers import budtender_seed

    await budtender_seed.seed(app)


plugin = Plugin("budtenders", setup, requires=("store",), description="shift coaching for budtenders by SMS")

__all__ = ["coach_of", "on_transaction", "plugin", "router", "setup"]
