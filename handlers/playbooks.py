"""The playbooks plugin: the engine on the event log, the frequency cap at the outbox, the CLI.

    python main.py playbooks list | check FILE | runs [--playbook NAME] | replay --from D --to D
                             | report | resume NAME | templates
    python main.py report impact
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from bot.app import App
from bot.clock import FakeClock
from bot.errors import UserError
from bot.model import Address, OutboundKind
from bot.outbox import GateVerdict, in_quiet_hours
from bot.plugins import Plugin
from bot.scheduler import JobRun, by_minute, cron
from bot.settings import HuddleSettings
from bot.tasks import cancel_and_wait
from coaching.playbook_engine import EngineSettings, PlaybookEngine
from coaching.playbooks import Playbook, PlaybookError, PlaybookFigures, RhythmRules, figures, load_all, load_file
from coaching.reports import register_report
from coaching.sources.pos import OrderProcessed, on_order
from coaching.weekly_report import Section, add_section, interval_chart, money
from handlers.customers import CONSOLE_STAFF
from handlers.store_services import services
from storage.events import BRIEFING, COACHING_SENT, EventLog
from storage.playbooks import MARKETING_KEY, PlaybookRepo

log = logging.getLogger(__name__)


class PlaybookSettings(HuddleSettings):
    playbooks_enabled: bool = Field(True, description="run the playbooks (off: events are still logged)")
    playbooks_demo_templates: bool = Field(True, description="in demo mode, enable the four ready playbooks")
    playbooks_poll: float = Field(1.0, gt=0, description="seconds between looks at the event log and timers")
    frequency_cap_day: int = Field(1, ge=0, description="marketing messages a person may get per 24 h")
    frequency_cap_week: int = Field(3, ge=0, description="marketing messages a person may get per 7 days")
    rhythm_factor: float = Field(2.0, gt=1, description="visit.overdue when days since the last visit reach "
                                                        "this × the customer's usual gap")
    rhythm_min_days: int = Field(14, ge=1, description="…and at least this many days")
    rhythm_min_visits: int = Field(3, ge=2, description="…for customers with at least this many visits")
    playbook_message_cost: Decimal = Field(Decimal("0.01"), ge=0, description="cost of one message in the report")
    playbooks_guard_floor: int = Field(20, ge=1, description="the hourly-share guard never pauses below this "
                                                             "many messages an hour")


@dataclass
class LiveMessenger:
    app: App
    staff: Address

    async def send(self, address: Address, body: str, key: str, person_id: int | None, at: datetime,
                   playbook: str = "") -> int | None:
        queued = await self.app.send(address, body, kind=OutboundKind.PROACTIVE, key=key)
        return queued.id

    async def notify(self, body: str, key: str, at: datetime) -> None:
        await self.app.send(self.staff, body, kind=OutboundKind.PROACTIVE, key=key)


@dataclass
class Playbooks:
    """This app's playbooks and engine (provided as the dependency `playbooks`)."""

    app: App
    settings: PlaybookSettings
    engine: PlaybookEngine | None = None
    playbooks: list[Playbook] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def load(self) -> list[Playbook]:
        """huddle.toml + playbooks/ (+ the ready four in the demo); UserError with the place if wrong."""
        from coaching.playbook_templates import templates

        extra = templates() if self.app.settings.demo and self.settings.playbooks_demo_templates else []
        try:
            self.playbooks = load_all(self.app.config.data, self.app.config.path, extra)
        except PlaybookError as exc:
            raise UserError(str(exc)) from None
        return self.playbooks

    def engine_settings(self) -> EngineSettings:
        svc = services(self.app)
        s = self.settings
        return EngineSettings(default_timezone=svc.default_store.timezone or self.app.settings.default_timezone,
                              rhythm=RhythmRules(s.rhythm_factor, s.rhythm_min_days, s.rhythm_min_visits),
                              guard_floor=s.playbooks_guard_floor, store_name=svc.default_store.name)

    def build(self) -> PlaybookEngine:
        if self.engine is None:
            svc = services(self.app)
            dest = svc.settings.store_staff_destination
            staff = Address.parse(dest) if dest else CONSOLE_STAFF
            self.engine = PlaybookEngine(self.app.db, self.app.clock, self.load(), LiveMessenger(self.app, staff),
                                         self.engine_settings())
        return self.engine

    async def drain(self) -> None:
        """Consume the log and run every due step now (one at a time: the loop and callers share it)."""
        async with self._lock:
            await self.build().drain()

    def kick(self) -> None:
        self._kick.set()

    def schedule_jobs(self) -> int:
        """One scheduler job per `trigger = "schedule"` playbook: the scheduler runs each period once,
        across restarts and workers (its job runs), and the event it appends is deduplicated by
        `playbook:period` — a daily playbook's period is the local date, a crontab's the fire minute."""
        from bot.scheduler import daily
        from coaching.playbooks import SCHEDULE, schedule_cron
        from storage.events import NewEvent

        engine = self.build()
        tz = engine.settings.default_timezone
        added = 0
        for p in engine.playbooks:
            if p.trigger != SCHEDULE or p.spec.schedule is None:
                continue
            line = schedule_cron(p.spec.schedule)
            period = daily(tz) if ":" in p.spec.schedule else by_minute

            async def fire(run: JobRun, name: str = p.name) -> None:
                local = run.fire_time.astimezone(ZoneInfo(tz))
                await EventLog(self.app.db).append(NewEvent(
                    SCHEDULE, f"{name}:{run.period}", run.fire_time, None, None,
                    {"playbook": name, "date": local.date().isoformat(), "at": local.isoformat()}),
                    self.app.clock.now())
                self.kick()

            self.app.scheduler.add("playbook_schedule", cron(line, tz), fire, scope=p.name, period=period)
            added += 1
        return added

    async def _loop(self) -> None:
        engine = self.build()
        while True:
            try:
                await self.drain()
                wake = await engine.repo.next_wake()
                self._kick.clear()
                # the poll (another process's events) runs on real time; the next timer on the app's clock
                waiters = {asyncio.ensure_future(asyncio.sleep(self.settings.playbooks_poll)),
                           asyncio.ensure_future(self._kick.wait())}
                if wake is not None:
                    waiters.add(asyncio.ensure_future(self.app.clock.sleep(
                        max(0.0, (wake - self.app.clock.now()).total_seconds()))))
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("playbook loop error")
                await self.app.clock.sleep(self.settings.playbooks_poll)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="playbooks")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    # -- the frequency cap, asked by the outbox at the last step -------------------------------

    async def gate(self, msg: Any, now: datetime) -> GateVerdict | None:
        key = msg.idempotency_key or ""
        if not key.startswith(MARKETING_KEY):
            return None
        s = self.settings
        sent = await PlaybookRepo(self.app.db).marketing_sent(msg.address.channel, msg.address.id,
                                                             now - timedelta(days=7))
        today = [t for t in sent if t > now - timedelta(days=1)]
        if s.frequency_cap_day and len(today) >= s.frequency_cap_day:
            return GateVerdict(f"frequency cap: {s.frequency_cap_day} marketing message(s) a day",
                               today[-s.frequency_cap_day] + timedelta(days=1))
        if s.frequency_cap_week and len(sent) >= s.frequency_cap_week:
            until = sent[-s.frequency_cap_week] + timedelta(days=7)
            reason = f"frequency cap: {s.frequency_cap_week} marketing messages a week"
            return GateVerdict(reason, until if until - now <= timedelta(days=2) else None)
        if s.frequency_cap_day == 0 or s.frequency_cap_week == 0:
            return GateVerdict("frequency cap: marketing messages are off (cap 0)")
        return None


def playbooks_of(app: App) -> Playbooks:
    found = app.deps.get("playbooks")
    if isinstance(found, Playbooks):
        return found
    use = getattr(app, "use_settings", None)
    settings = use(PlaybookSettings) if use else PlaybookSettings()
    return app.provide("playbooks", Playbooks(app, settings))


# -- replay --------------------------------------------------------------------------------------


@dataclass
class WouldSend:
    at: datetime
    playbook: str
    to: str
    body: str
    note: str = ""


@dataclass
class ReplayMessenger:
    """Records what would have gone out, with the outbox's quiet hours and frequency cap applied."""

    settings: PlaybookSettings
    quiet: tuple[Any, Any]
    timezone_of: dict[str, str]
    sent: list[WouldSend] = field(default_factory=list)
    marketing: dict[str, list[datetime]] = field(default_factory=dict)
    current: str = ""

    async def send(self, address: Address, body: str, key: str, person_id: int | None, at: datetime,
                   playbook: str = "") -> int | None:
        note = ""
        when = at
        tz = self.timezone_of.get(address.id, "UTC")
        held = in_quiet_hours(at, tz, *self.quiet)
        if held is not None:
            when, note = held, "held for quiet hours"
        if key.startswith(MARKETING_KEY):
            past = [t for t in self.marketing.get(address.id, []) if t > when - timedelta(days=7)]
            day = [t for t in past if t > when - timedelta(days=1)]
            if len(day) >= self.settings.frequency_cap_day or len(past) >= self.settings.frequency_cap_week:
                note = "held or refused by the frequency cap"
            else:
                self.marketing.setdefault(address.id, []).append(when)
        self.sent.append(WouldSend(when, playbook, f"{address.channel}:{address.id}", body, note))
        return None

    async def notify(self, body: str, key: str, at: datetime) -> None:
        self.sent.append(WouldSend(at, "", "staff", body))


async def replay(app: App, start: datetime, end: datetime) -> tuple[list[WouldSend], int]:
    """What-if: the stored events of [start, end) through today's playbooks, on a scratch copy."""
    from storage.scratch import scratch_copy

    pb = playbooks_of(app)
    playbooks = pb.load()
    with tempfile.TemporaryDirectory(prefix="huddle-replay-") as tmp:
        scratch = await scratch_copy(app.db, Path(tmp))
        try:
            return await replay_on(scratch, playbooks, pb.engine_settings(), pb.settings, app, start, end)
        finally:
            await scratch.close()


async def replay_on(scratch: Any, playbooks: list[Playbook], engine_settings: EngineSettings,
                    settings: PlaybookSettings, app: App | None, start: datetime, end: datetime
                    ) -> tuple[list[WouldSend], int]:
    clock = FakeClock(start)
    repo = PlaybookRepo(scratch)
    tz_of: dict[str, str] = {}
    quiet = (app.settings.quiet_hours_start, app.settings.quiet_hours_end) if app else (
        datetime.min.time().replace(hour=21), datetime.min.time().replace(hour=8))
    messenger = ReplayMessenger(settings, quiet, tz_of)
    engine = PlaybookEngine(scratch, clock, playbooks, messenger, engine_settings, consumer="replay")
    events = await EventLog(scratch).between(start, end)
    subjects = await repo.subjects({e.customer_id for e in events if e.customer_id},
                                   {e.person_id for e in events if e.person_id})
    for s in subjects.values():
        for _, ident in s.addresses:
            tz_of[ident] = s.timezone or engine_settings.default_timezone
        if s.phone:
            tz_of[s.phone] = s.timezone or engine_settings.default_timezone
    async def run_until(when: datetime) -> None:
        """Fire every timer due by `when`, each at its own time."""
        while (wake := await repo.next_wake()) is not None and wake <= when:
            if wake > clock.now():
                await clock.set(wake)
            if not await engine.run_due(limit=1000):
                break
        if when > clock.now():
            await clock.set(when)

    async def feed(batch: list[Any]) -> None:
        await run_until(batch[0].occurred_at)
        if batch[-1].occurred_at > clock.now():
            await clock.set(batch[-1].occurred_at)
        await engine.take(batch)
        while await engine.run_due(limit=1000):
            pass

    hour: list[Any] = []
    for e in events:
        slot = e.occurred_at.replace(minute=0, second=0, microsecond=0)
        if hour and slot != hour[0].occurred_at.replace(minute=0, second=0, microsecond=0):
            await feed(hour)
            hour = []
        hour.append(e)
    if hour:
        await feed(hour)
    await run_until(end)
    return sorted(messenger.sent, key=lambda w: w.at), len(events)


# -- CLI -----------------------------------------------------------------------------------------


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    sub.add_parser("list", help="each playbook, its trigger, active or not, sends in the last 7 days")
    check = sub.add_parser("check", help="validate a playbook file: one line with the place, exit 2")
    check.add_argument("file", type=Path)
    runs = sub.add_parser("runs", help="executions with each step's result")
    runs.add_argument("--playbook", default=None)
    runs.add_argument("--limit", type=int, default=30)
    rep = sub.add_parser("replay", help="what-if: stored events of those days through today's playbooks "
                                        "(sends nothing, writes nothing live)")
    rep.add_argument("--from", dest="start", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    rep.add_argument("--to", dest="end", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    sub.add_parser("report", help="per playbook: eligible, sent, replied, converted, incremental revenue vs holdout")
    resume = sub.add_parser("resume", help="resume a playbook the hourly-share guard paused")
    resume.add_argument("name")
    sub.add_parser("templates", help="print the four ready playbooks as TOML")


async def _run(app: App, args: argparse.Namespace) -> int:
    action = args.action
    if action == "check":
        try:
            found = load_file(args.file)
        except PlaybookError as exc:
            print(f"huddle: {exc}", file=sys.stderr)
            return 2
        print(f"{args.file}: {len(found)} playbook(s) OK: {', '.join(p.name for p in found) or '(none)'}")
        return 0
    if action == "templates":
        from coaching.playbook_templates import TEMPLATES

        print(TEMPLATES.strip())
        return 0
    await app.open_db(create=False)  # `check` and `templates` need no database; the rest do
    pb = playbooks_of(app)
    repo = PlaybookRepo(app.db)
    if action == "list":
        playbooks = pb.load()
        counts = await repo.counts(app.clock.now() - timedelta(days=7))
        paused = await repo.paused()
        if not playbooks:
            print("No playbooks: add [[playbooks]] to huddle.toml or files to playbooks/ (see huddle.example.toml).")
            return 0
        print(f"{'playbook':<22} {'trigger':<16} {'state':<8} {'runs':>6} {'sent 7d':>8}  source")
        for p in playbooks:
            state = "paused" if p.name in paused else ("active" if p.spec.enabled else "off")
            runs_n, sent = counts.get(p.name, (0, 0))
            trigger = f"{p.trigger} {p.spec.schedule}" if p.spec.schedule else p.trigger
            print(f"{p.name:<22} {trigger:<16} {state:<8} {runs_n:>6} {sent:>8}  {p.source}")
        return 0
    if action == "runs":
        found = await repo.runs(args.playbook, args.limit)
        if not found:
            print("No runs yet.")
            return 0
        for run, steps in found:
            who = f"customer {run.customer_id}" if run.customer_id else f"person {run.person_id}"
            flags = " held-out" if run.held_out else ""
            extra = f" ({run.stop_reason})" if run.stop_reason else ""
            wake = f" next {run.wake_at:%Y-%m-%d %H:%M}Z" if run.wake_at and run.status in ("active", "waiting") \
                else ""
            print(f"#{run.id} {run.playbook} event {run.event_id} {who}{flags}: {run.status}{extra}{wake}")
            for s in steps:
                err = f" error: {s.error}" if s.error else ""
                detail = f" — {s.detail}" if s.detail else ""
                print(f"    step {s.step} {s.kind}: {s.result} (attempts {s.attempts}){detail}{err}")
        return 0
    if action == "resume":
        if not await repo.resume(args.name):
            print(f"{args.name} was not paused.")
            return 1
        print(f"{args.name} resumed.")
        return 0
    if action == "replay":
        start = datetime.combine(args.start, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(args.end, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
        sent, n = await replay(app, start, end)
        for w in sent:
            note = f"  [{w.note}]" if w.note else ""
            print(f"{w.at:%Y-%m-%d %H:%M}Z  {w.to:<20} {w.body}{note}")
        customers = sum(1 for w in sent if w.to != "staff")
        print(f"replayed {n} events {args.start}..{args.end}: {customers} message(s) would go out, "
              f"{len(sent) - customers} staff note(s); nothing was sent or written.")
        return 0
    if action == "report":
        return await report(app, pb)
    return 2


ROI_NOTE = ("incremental = (revenue per treated person − per held-out person) × treated, within each playbook's "
            "attribution window;\nlast-touch = all revenue after a message, what most tools report: it counts "
            "customers who would have come anyway.")


async def roi(app: App, pb: Playbooks, start: datetime | None = None,
              end: datetime | None = None) -> dict[str, PlaybookFigures]:
    """Each playbook's figures over the runs that started in [start, end) (all runs by default)."""
    repo = PlaybookRepo(app.db)
    playbooks = {p.name: p for p in pb.load()}
    rows = []
    for name in sorted({*playbooks, *(await repo.counts(datetime.min.replace(tzinfo=UTC)))}):
        days = playbooks[name].spec.attribution_days if name in playbooks else 7
        rows.extend(await repo.report_rows(timedelta(days=days), name, started_from=start, started_before=end))
    return figures(rows)


async def report(app: App, pb: Playbooks) -> int:
    found = await roi(app, pb)
    if not found:
        print("No playbook runs yet.")
        return 0
    cost = pb.settings.playbook_message_cost
    print(f"{'playbook':<16} {'eligible':>8} {'held':>5} {'sent':>5} {'replied':>7} {'conv':>5} "
          f"{'$/treated':>9} {'$/held':>7} {'incremental (95% CI)':>28} {'last-touch':>10} {'cost':>7}")
    for name, f in sorted(found.items()):
        i = f.impact
        inc = (f"{i.incremental:>9} [{i.low}, {i.high}]" if i.incremental is not None else "no holdout yet")
        print(f"{name:<16} {f.eligible:>8} {f.held:>5} {f.sent:>5} {f.replied:>7} {f.converted:>5} "
              f"{i.per_treated:>9} {i.per_held:>7} {inc:>28} {f.last_touch:>10} {cost * f.sent:>7.2f}")
    print(ROI_NOTE)
    return 0


def roi_section(app: App, pb: Playbooks) -> Callable[[datetime, datetime], Awaitable[Section | None]]:
    """The weekly report's "Playbook ROI": the week's journeys, as `playbooks report` counts them,
    with a chart of each one's incremental revenue and interval beside its last-touch figure."""

    async def source(start: datetime, end: datetime) -> Section:
        found = await roi(app, pb, start, end)
        cost = pb.settings.playbook_message_cost
        headers = ["playbook", "eligible", "held out", "sent", "replied", "converted", "$ per treated",
                   "$ per held out", "incremental (95 % CI)", "last touch", "cost"]
        rows, points = [], []
        for name, f in sorted(found.items()):
            i = f.impact
            inc = (f"{money(i.incremental)} [{money(i.low)}, {money(i.high)}]"
                   if i.incremental is not None and i.low is not None and i.high is not None else "no holdout yet")
            rows.append([name, str(f.eligible), str(f.held), str(f.sent), str(f.replied), str(f.converted),
                         money(i.per_treated), money(i.per_held), inc, money(f.last_touch), money(cost * f.sent)])
            if i.incremental is not None and i.low is not None and i.high is not None:
                points.append((name, float(i.incremental), float(i.low), float(i.high), float(f.last_touch)))
        note = ROI_NOTE.replace("\n", " ") if rows else "No playbook journey started this week."
        return Section("Playbook ROI", headers, rows, note, interval_chart(points))

    return source


async def report_impact(app: App, _args: argparse.Namespace) -> int:
    """Coaching by type and variant, from the one event log (`coaching.sent`): budtender coaching
    (mid-shift, nudge, celebration, …) against the budtender's sales in the 2 h after vs the same 2 h
    a week before; chatter briefings against the lead's teams' sales on the briefed day vs the same
    weekday a week before when that lead had no briefing."""
    from coaching.playbooks import impact

    sent = await EventLog(app.db).of(types=[COACHING_SENT])
    if not sent:
        print("No coaching messages in the event log yet.")
        return 0
    repo = PlaybookRepo(app.db)
    window = timedelta(hours=2)
    week = timedelta(days=7)
    groups: dict[tuple[str, str], tuple[list[Decimal], list[Decimal]]] = {}
    briefed: dict[int, set[date]] = {}
    for e in sent:
        if e.payload.get("kind") == BRIEFING and e.person_id is not None and e.payload.get("day"):
            briefed.setdefault(e.person_id, set()).add(date.fromisoformat(e.payload["day"]))
    teams = _TeamSales(app)
    skipped = 0
    for e in sent:
        if e.person_id is None:
            continue
        kind, variant = str(e.payload.get("kind")), str(e.payload.get("variant"))
        if kind == BRIEFING:
            if not e.payload.get("day"):
                continue
            day = date.fromisoformat(e.payload["day"])
            earlier = day - week
            names = list(e.payload.get("teams") or [])
            after_day, before_day = await teams.on(names, day), await teams.on(names, earlier)
            if earlier in briefed.get(e.person_id, set()) or after_day is None or before_day is None:
                skipped += 1  # no comparable day: briefed then too, or no numbers for one of the days
                continue
            after, before = after_day, before_day
        else:
            after = await repo.staff_sales(e.person_id, e.occurred_at, e.occurred_at + window)
            before = await repo.staff_sales(e.person_id, e.occurred_at - week, e.occurred_at - week + window)
        g = groups.setdefault((kind, variant), ([], []))
        g[0].append(after)
        g[1].append(before)
    print(f"{'type':<12} {'variant':<8} {'messages':>8} {'$ after':>11} {'$ -7d':>11} {'difference (95% CI)':>30}")
    for (kind, variant), (after, before) in sorted(groups.items()):
        i = impact(after, before)
        per = (f"{(i.per_treated - i.per_held):>8} [{(i.low or 0) / max(i.treated, 1):.2f}, "
               f"{(i.high or 0) / max(i.treated, 1):.2f}]") if i.incremental is not None else "-"
        print(f"{kind:<12} {variant:<8} {len(after):>8} {i.per_treated:>11} {i.per_held:>11} {per:>30}")
    print("budtender coaching: the budtender's sales in the 2 h after the message vs the same 2 h one week "
          "earlier;\nbriefing: the lead's teams' chatter sales on the briefed day vs the same weekday one week "
          "earlier, counted only when that lead had no briefing then"
          + (f" ({skipped} briefing(s) without such a day left out)." if skipped else "."))
    return 0


class _TeamSales:
    """Chatter sales per day for a set of teams (every team when none is named), from `chatter_days`."""

    def __init__(self, app: App) -> None:
        from storage.chatters import ChatterRepo

        self.repo = ChatterRepo(app.db)
        self._roster: dict[str, list[int]] | None = None

    async def on(self, teams: list[str], day: date) -> Decimal | None:
        """The teams' summed sales that day; None when no chatter of theirs has numbers for it."""
        if self._roster is None:
            self._roster = {}
            for c in await self.repo.chatters():
                self._roster.setdefault(c.team or "", []).append(c.id)
        ids = [i for name, members in self._roster.items() if not teams or name in teams for i in members]
        rows = [d for d in await self.repo.days(day, day, ids) if d.sales is not None] if ids else []
        if not rows:
            return None
        return sum((Decimal(str(d.sales)) for d in rows), Decimal("0"))


# -- demo -----------------------------------------------------------------------------------------


async def _seed(app: App) -> None:
    from handlers import playbook_seed

    await playbook_seed.seed(app)


# -- plugin ---------------------------------------------------------------------------------------


def setup(app: App) -> None:
    pb = playbooks_of(app)
    app.add_cli("playbooks", "playbooks: list | check FILE | runs | replay --from --to | report | resume NAME",
                _configure, _run, needs_db=False)
    register_report(app, "impact", "coaching messages and chatter briefings by type and variant vs comparable "
                    "moments without one",
                    report_impact)
    app.outbox.gates.append(pb.gate)
    add_section(app, "playbooks", roi_section(app, pb))

    async def order_done(_done: OrderProcessed) -> None:
        pb.kick()

    on_order(app, order_done)

    async def start(app: App) -> None:
        if pb.settings.playbooks_enabled:
            pb.schedule_jobs()

    async def ready(app: App) -> None:
        if pb.settings.playbooks_enabled:
            await pb.build().detect_overdue()
            pb.start()

    async def stop(_app: App) -> None:
        await pb.stop()

    async def overdue_job(_run: JobRun) -> None:
        if pb.settings.playbooks_enabled:
            await pb.build().detect_overdue()
            pb.kick()

    app.on_startup(start)
    app.on_ready(ready)
    app.on_shutdown(stop)
    tz = services(app).default_store.timezone or app.settings.default_timezone
    app.scheduler.add("playbook_states", cron("*/15 * * * *", tz), overdue_job)
    app.on_seed_demo(_seed)


plugin = Plugin("playbooks", setup, requires=("store",),
                description="playbooks: journeys from the event log, with a holdout and an ROI report")

__all__ = ["PlaybookSettings", "Playbooks", "playbooks_of", "plugin", "replay", "replay_on"]
