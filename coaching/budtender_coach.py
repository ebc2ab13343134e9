"""Budtender coaching at work: loads shifts, orders and watermarks, runs the pure triggers, sends.

One `BudtenderCoach` per app. It is called from three places:
* the event log (`consume`): each new `order.created` after its durable cursor runs the
  after-order rules (`order_rules`: celebration and nudge built in, more registered by plugins)
  through `on_transaction`. The POS order hook only wakes it (and drops the tally of a changed
  order), so a crash between "order stored" and "coached" loses nothing: the next start, order or
  tick reads on from the cursor;
* the scheduler tick: mid-shift checks and end-of-shift summaries; plus the nightly watermark
  refresh and the weekly review;
* the SMS commands (STATS, WEEK, GOAL, BOARD, PAUSE).

Every message is recorded in `budtender_coaching` under the same key as its outbox idempotency
key before it is queued, so a trigger evaluated again (a restart, a replayed webhook, a second
worker) never sends twice. Shift tallies are kept in memory and updated one order at a time; a
miss (restart) or a changed order (refund) rebuilds the tally from the stored orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.model import Address, OutboundKind, Person
from bot.phones import normalize_phone
from coaching import budtenders as bt
from coaching.budtender_shifts import BudtenderConfig, ShiftPattern, expand
from coaching.roles import Role
from storage.budtenders import BudtenderRepo, Shift, ShiftRow, Watermark
from storage.events import ORDER_CREATED, EventLog
from storage.sales import SalesRepo, Transaction

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

CONSUMER = "budtender_coaching"
"""This coach's cursor in the event log."""
LIVE = timedelta(hours=24)
"""Orders that happened longer ago than this are history (an initial POS sync): counted, never coached."""


def order_rules(app: App) -> bt.OrderRules:
    """The app's after-order rules: the built-in ones, plus those plugins register (in any load order)."""
    found = app.deps.get("budtender_order_rules")
    if found is None:
        found = app.deps["budtender_order_rules"] = bt.OrderRules(bt.BUILTIN_RULES)
    return found


def register_order_rule(app: App, rule: bt.OrderRule) -> bt.OrderRule:
    """Add an after-order coaching rule (see docs/howto-coaching-rule.md)."""
    return order_rules(app).register(rule)


class BudtenderCoach:
    def __init__(self, app: App, config: BudtenderConfig, patterns: list[ShiftPattern],
                 link_for: Callable[[int, str], str] | None = None) -> None:
        self.app = app
        self.config = config
        self.rules = config.rules()
        self.patterns = patterns
        self.repo = BudtenderRepo(app.db)
        self.sales = SalesRepo(app.db)
        self._tallies: dict[int, bt.ShiftTally] = {}
        self._marks: dict[int, Watermark] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._materialised: set[date] = set()
        self._shifts: dict[int, tuple[Shift, datetime]] = {}
        self._people: dict[int, tuple[Person, datetime]] = {}
        self._history: dict[int, list[bt.Sent]] = {}
        self.link_for = link_for
        """`(person_id, week_label) -> url` for the weekly trend page, when links are configured."""
        self.order_rules = order_rules(app)
        """What is evaluated after each order (`register_order_rule` adds to it)."""
        self.events = EventLog(app.db)
        self._consuming = asyncio.Lock()
        self._joined = False

    @property
    def tz(self) -> str:
        return self.config.timezone

    def today(self, now: datetime | None = None) -> date:
        return (now or self.app.clock.now()).astimezone(ZoneInfo(self.tz)).date()

    def day_span(self, day: date) -> tuple[datetime, datetime]:
        zone = ZoneInfo(self.tz)
        start = datetime.combine(day, datetime.min.time(), zone)
        return start.astimezone(ZoneInfo("UTC")), (start + timedelta(days=1)).astimezone(ZoneInfo("UTC"))

    # -- sending -----------------------------------------------------------------------------

    async def deliver(self, message: bt.Coaching, person: Person, orders: int = 0) -> bool:
        """Record, then queue under the same key; False if there is nowhere to send it."""
        address = person.address_on("sms") or (person.addresses[0] if person.addresses else None)
        if address is None:
            log.warning("budtender has no address person_id=%s kind=%s", person.id, message.kind)
            return False
        now = self.app.clock.now()
        new = await self.repo.record(key=message.key, person_id=message.person_id, shift_id=message.shift_id,
                                     kind=message.kind, variant=message.variant, text=message.text, sent_at=now,
                                     orders=orders)
        if new and message.shift_id is not None and message.shift_id in self._history:
            self._history[message.shift_id].append(bt.Sent(message.key, message.kind, now, orders))
        # Queued even when recorded before: a crash between the two must not lose it; the outbox key dedupes.
        await self.app.send(address, message.text, kind=OutboundKind.PROACTIVE, key=message.key, person=person)
        if new:
            log.info("coaching queued kind=%s variant=%s person_id=%s key=%s", message.kind, message.variant,
                     person.id, message.key)
        return True

    # -- data --------------------------------------------------------------------------------

    async def watermark(self, person_id: int) -> Watermark:
        found = self._marks.get(person_id)
        if found is None:
            found = self._marks[person_id] = await self.repo.watermark(person_id)
        return found

    async def shift_tally(self, shift: Shift, *, fresh: bool = False) -> bt.ShiftTally:
        t = None if fresh else self._tallies.get(shift.id)
        if t is None:
            orders = await self.sales.between(shift.starts_at, shift.ends_at, budtender_person_id=shift.person_id)
            t = self._tallies[shift.id] = bt.tally(orders, self.rules)
        return t

    async def day_tally(self, person_id: int, day: date) -> bt.ShiftTally:
        start, end = self.day_span(day)
        return bt.tally(await self.sales.between(start, end, budtender_person_id=person_id), self.rules)

    def forget(self, shift_id: int) -> None:
        self._tallies.pop(shift_id, None)

    # Small read-through caches for the per-order path (the database stays the truth: a miss, an
    # expiry or a restart reads it again, and the coaching keys dedupe across processes anyway).
    CACHE_TTL = timedelta(minutes=5)

    async def shift_at(self, person_id: int, when: datetime) -> Shift | None:
        now = self.app.clock.now()
        hit = self._shifts.get(person_id)
        if hit is not None and hit[0].covers(when) and now - hit[1] < self.CACHE_TTL:
            return hit[0]
        shift = await self.repo.shift_at(person_id, when)
        if shift is not None:
            self._shifts[person_id] = (shift, now)
        return shift

    async def person(self, person_id: int) -> Person | None:
        now = self.app.clock.now()
        hit = self._people.get(person_id)
        if hit is not None and now - hit[1] < self.CACHE_TTL:
            return hit[0]
        person = await self.app.people.get(person_id)
        if person is not None:
            self._people[person_id] = (person, now)
        return person

    async def history(self, person_id: int, shift_id: int) -> list[bt.Sent]:
        found = self._history.get(shift_id)
        if found is None:
            found = self._history[shift_id] = await self.repo.history(person_id, shift_id)
        return found

    def drop_caches(self) -> None:
        """Forget everything cached (the benchmark's recompute-from-scratch baseline uses it)."""
        for cache in (self._tallies, self._shifts, self._people, self._history):
            cache.clear()

    async def mute(self, shift: Shift, until: datetime | None) -> None:
        await self.repo.mute(shift.id, until)
        self._shifts.pop(shift.person_id, None)

    # -- after an order ----------------------------------------------------------------------

    async def on_transaction(self, txn: Transaction, *, changed: bool = False) -> list[bt.Coaching]:
        """Evaluate the after-order triggers for the order's budtender; returns what was queued.

        `changed` (an update of a known order, e.g. a refund) rebuilds the tally and sends nothing.
        """
        pid = txn.budtender_person_id
        if pid is None:
            return []
        async with self._locks[pid]:
            shift = await self.shift_at(pid, txn.occurred_at)
            if shift is None:
                return []
            if changed:
                self.forget(shift.id)
                return []
            cached = self._tallies.get(shift.id)
            if cached is None:
                t = await self.shift_tally(shift)  # the new order is stored already, so it is in
            else:
                t = cached
                t.add(txn, self.rules)
            now = self.app.clock.now()
            if not shift.covers(now) and now - shift.ends_at > self.rules.late_grace:
                return []  # an order that arrived long after its shift: counted, no live coaching
            person = await self.person(pid)
            if person is None:
                return []
            history = await self.history(pid, shift.id)
            found = bt.after_order(person.name, shift, t, await self.watermark(pid), history, now, self.rules,
                                   order=txn, registry=self.order_rules)
            for message in found:
                await self.deliver(message, person, t.orders)
            return found

    async def consume(self, limit: int = 500) -> int:
        """Coach the new orders in the event log after this coach's cursor; the events read.

        The cursor moves after each batch is coached. A crash in between coaches that batch again,
        which sends nothing twice: every message is recorded under its key before it is queued."""
        async with self._consuming:
            if not self._joined:
                await self.events.join(CONSUMER, self.app.clock.now())
                self._joined = True
            read = 0
            while batch := await self.events.read(CONSUMER, limit):
                now = self.app.clock.now()
                for e in batch:
                    if (e.type != ORDER_CREATED or e.payload.get("budtender_person_id") is None
                            or now - e.occurred_at > LIVE or e.source_id is None):
                        continue
                    try:
                        txn = await self.sales.get(e.source_id)
                        if txn is not None:
                            await self.on_transaction(txn)
                    except Exception:
                        log.exception("after-order coaching failed order=%s event=%s", e.source_id, e.id)
                await self.events.advance(CONSUMER, batch[-1].id, now)
                read += len(batch)
            return read

    # -- scheduled ---------------------------------------------------------------------------

    async def tick(self) -> list[bt.Coaching]:
        """Mid-shift checks and end-of-shift summaries that are due now."""
        now = self.app.clock.now()
        await self.materialise(now)
        window = self.rules.late_grace + timedelta(hours=2)
        shifts = await self.repo.shifts_ending_after(now - window, now)
        candidates: list[tuple[Shift, str, int | None]] = []
        for shift in shifts:
            if shift.covers(now):
                n = bt.due_midshift(shift, now, self.rules)
                if n is not None and not shift.muted(now):
                    candidates.append((shift, f"midshift:{shift.person_id}:{shift.id}:{n}", n))
            elif bt.summary_due(shift, now, self.rules):
                candidates.append((shift, f"summary:{shift.person_id}:{shift.id}", None))
        done = await self.repo.recorded([key for _, key, _ in candidates])
        sent: list[bt.Coaching] = []
        for shift, key, n in candidates:
            if key in done:
                continue
            person = await self.app.people.get(shift.person_id)
            if person is None:
                continue
            wm = await self.watermark(shift.person_id)
            if n is not None:
                t = await self.shift_tally(shift)
                message = bt.midshift(person.name, shift, n, t, wm, self.rules)
            else:
                t = await self.shift_tally(shift, fresh=True)
                message = bt.summary(person.name, shift, t, wm, self.rules)
                self.forget(shift.id)
                self._history.pop(shift.id, None)
            if await self.deliver(message, person, t.orders):
                sent.append(message)
        return sent

    async def budtenders(self) -> list[Person]:
        return await self.app.people.all(Role.BUDTENDER)

    async def refresh_watermarks(self, people: list[Person] | None = None) -> list[Watermark]:
        """Each budtender's averages and bests over the last N weeks (the nightly job)."""
        now = self.app.clock.now()
        since = now - timedelta(weeks=self.rules.watermark_weeks, days=1)
        marks = []
        for person in people if people is not None else await self.budtenders():
            assert person.id is not None
            orders = await self.sales.between(since, now, budtender_person_id=person.id)
            marks.append(bt.watermark(person.id, orders, self.tz, now, self.rules))
        await self.repo.save_watermarks(marks)
        self._marks.update({m.person_id: m for m in marks})
        return marks

    async def refresh_stale_watermarks(self) -> int:
        """At start-up: compute the watermarks never computed or older than a day."""
        now = self.app.clock.now()
        stale = []
        for person in await self.budtenders():
            assert person.id is not None
            wm = await self.repo.watermark(person.id)
            if wm.computed_at is None or now - wm.computed_at > timedelta(days=1):
                stale.append(person)
        if stale:
            await self.refresh_watermarks(stale)
        return len(stale)

    def week_label(self, day: date) -> str:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"

    async def weekly_reviews(self, now: datetime | None = None) -> list[bt.Coaching]:
        """The review of the last full week (Monday to Sunday before today) for every budtender."""
        now = now or self.app.clock.now()
        this_monday = bt.week_start(self.today(now))
        start = self.day_span(this_monday - timedelta(days=7))[0]
        end = self.day_span(this_monday)[0]
        prev_start = self.day_span(this_monday - timedelta(days=14))[0]
        label = self.week_label(this_monday - timedelta(days=7))
        sent = []
        for person in await self.budtenders():
            assert person.id is not None
            orders = await self.sales.between(prev_start, end, budtender_person_id=person.id)
            week = [o for o in orders if o.occurred_at >= start]
            previous = [o for o in orders if o.occurred_at < start]
            link = self.link_for(person.id, label) if self.link_for is not None else None
            message = bt.weekly(person.name, person.id, week, previous, self.tz, label, self.rules, link)
            if message is not None and await self.deliver(message, person, len(week)):
                sent.append(message)
        return sent

    # -- shifts from config ------------------------------------------------------------------

    async def resolve_budtender(self, ref: str) -> int | None:
        """A phone number, a POS employee id or a full name → the budtender's person id."""
        ref = ref.strip()
        try:
            person = await self.app.people.by_address(Address("sms", normalize_phone(ref)))
            if person is not None:
                return person.id
        except ValueError:
            pass
        found = await self.sales.staff_person(ref)
        if found is not None:
            return found
        person = await self.app.people.by_external_id(ref)
        if person is not None:
            return person.id
        named = [p for p in await self.budtenders() if p.name.strip().lower() == ref.lower()]
        return named[0].id if len(named) == 1 else None

    async def materialise(self, now: datetime, days: int = 2) -> int:
        """Store the config's weekly shifts for today and the next day(s), once per day."""
        today = self.today(now)
        if not self.patterns or today in self._materialised:
            return 0
        rows: list[ShiftRow] = []
        complete = True
        for pattern in self.patterns:
            pid = await self.resolve_budtender(pattern.budtender)
            if pid is None:
                log.warning("shift for an unknown budtender skipped budtender=%r", pattern.budtender)
                complete = False  # try again next tick: the budtender may be imported meanwhile
                continue
            # yesterday too: a night shift that began yesterday is still running
            for starts, ends in expand(pattern, today - timedelta(days=1), days + 1, self.tz):
                rows.append(ShiftRow(pid, starts, ends, pattern.store, "config"))
        count = await self.repo.upsert_shifts(rows, now)
        if complete:
            self._materialised.add(today)
        return count

    # -- for the SMS commands ----------------------------------------------------------------

    async def current(self, person_id: int) -> Shift | None:
        return await self.repo.shift_at(person_id, self.app.clock.now())

    async def today_tally(self, person_id: int) -> bt.ShiftTally:
        shift = await self.current(person_id)
        if shift is not None:
            return await self.shift_tally(shift)
        return await self.day_tally(person_id, self.today())

    async def business_day(self, person_id: int, now: datetime | None = None) -> tuple[date, datetime, datetime]:
        """This budtender's "today" and its window (see `bt.business_day`): a shift past midnight
        still counts as the day it started on, for STATS and BOARD alike."""
        now = now or self.app.clock.now()
        around = await self.repo.shifts_of(person_id, now - timedelta(days=2), now + timedelta(days=2))
        return bt.business_day(now, around, self.tz)

    async def day_so_far(self, person_id: int) -> bt.ShiftTally:
        """STATS: this budtender's business day (the same window BOARD ranks)."""
        _, start, end = await self.business_day(person_id)
        return bt.tally(await self.sales.between(start, end, budtender_person_id=person_id), self.rules)

    async def week_tally(self, person_id: int) -> tuple[bt.ShiftTally, int]:
        monday = bt.week_start(self.today())
        start = self.day_span(monday)[0]
        orders = await self.sales.between(start, self.app.clock.now() + timedelta(seconds=1),
                                          budtender_person_id=person_id)
        return bt.tally(orders, self.rules), len(bt.by_local_day(orders, self.tz))

    async def board(self, person_id: int | None = None) -> list[tuple[int, str, bt.ShiftTally]]:
        """Today's sales per budtender, in the store where `person_id` sold last today (all stores if none).

        "Today" is the asker's business day, the window STATS uses, and the asker's own orders all
        count, so their line on the board is their STATS, also on a shift that crosses midnight.
        """
        if person_id is None:
            start, end = self.day_span(self.today())
        else:
            _, start, end = await self.business_day(person_id)
        orders = await self.sales.between(start, end, with_items=False)
        mine = [o.store_id for o in orders if o.budtender_person_id == person_id and o.store_id is not None]
        if mine:
            orders = [o for o in orders if o.store_id == mine[-1] or o.budtender_person_id == person_id]
        by_person: dict[int, list[Transaction]] = defaultdict(list)
        for order in orders:
            if order.budtender_person_id is not None:
                by_person[order.budtender_person_id].append(order)
        rows = []
        for pid, orders in by_person.items():
            person = await self.app.people.get(pid)
            if person is not None:
                rows.append((pid, person.name, bt.tally(orders, self.rules)))
        return rows
