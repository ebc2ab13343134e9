"""Budtender coaching: shift metrics, watermarks and triggers as pure functions.

Everything here is a function of (transactions, shifts, watermarks, history, clock time) with no
I/O, so the same code runs in the POS order hook, the scheduler tick, the SMS commands, the tests
and the benchmark. Money is Decimal end to end; texts are short and GSM-7 so one SMS segment holds
them (`fit_sms`).

Definitions (the seed system's, made exact):
* sales: sum of totals of counting orders (completed/pending; refunds and voids drop out);
* customers: distinct known customers, plus every anonymous order counted as one;
* average ticket: sales / orders;
* sign-ups: orders flagged `rewards_signup`;
* upsells: orders with at least one line at or above the premium price tier (`upsell_tier`);
* house share: house-brand line totals / all line totals.
A **watermark** is the budtender's own recent level: averages over the working days of the last
`watermark_weeks` weeks before today (a day with orders counts as a worked day), plus their bests.
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from coaching.sms_text import is_gsm, plain, units
from storage.budtenders import Sent, Shift, Watermark
from storage.sales import Transaction

ZERO = Decimal("0")
CENT = Decimal("0.01")

__all__ = ["Sent", "Shift", "Watermark"]  # re-exported: the shapes storage keeps


class Kind:
    """Coaching message types (recorded with each message; reported per type and variant)."""

    MIDSHIFT = "midshift"
    NUDGE = "nudge"
    CELEBRATE = "celebrate"
    SUMMARY = "summary"
    WEEKLY = "weekly"
    ALL = ("midshift", "nudge", "celebrate", "summary", "weekly")


@dataclass(frozen=True, slots=True)
class CoachingRules:
    """The knobs, from `[budtenders]` in the TOML config."""

    signup_target: int = 3
    midshift_every: timedelta = timedelta(hours=2)
    nudge_window: int = 5
    nudge_drop: Decimal = Decimal("0.30")
    nudge_cooldown: timedelta = timedelta(minutes=45)
    nudge_cap: int = 2
    celebrate_gain: Decimal = Decimal("0.25")
    celebrate_min_orders: int = 5
    upsell_tier: int = 3
    watermark_weeks: int = 4
    late_grace: timedelta = timedelta(minutes=30)
    """A scheduled check found later than this after its time is skipped (no stale coaching)."""


@dataclass(slots=True)
class ShiftTally:
    """Running metrics of one shift, updated one order at a time (the incremental path)."""

    orders: int = 0
    sales: Decimal = ZERO
    signups: int = 0
    upsells: int = 0
    house_total: Decimal = ZERO
    lines_total: Decimal = ZERO
    customers: set[int] = field(default_factory=set)
    anonymous: int = 0
    recent: deque[Decimal] = field(default_factory=lambda: deque(maxlen=50))
    categories: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)

    def add(self, txn: Transaction, rules: CoachingRules) -> bool:
        """Count one order; False if it does not count (refunded, voided, seen before)."""
        if not txn.counts or txn.external_id in self.seen:
            return False
        self.seen.add(txn.external_id)
        self.orders += 1
        self.sales += txn.total
        self.recent.append(txn.total)
        if txn.rewards_signup:
            self.signups += 1
        if txn.customer_id is None:
            self.anonymous += 1
        else:
            self.customers.add(txn.customer_id)
        upsell = False
        for item in txn.items:
            self.lines_total += item.line_total
            if item.house_brand:
                self.house_total += item.line_total
            if item.price_tier is not None and item.price_tier >= rules.upsell_tier:
                upsell = True
            if item.category:
                self.categories[item.category.lower()] += 1
        if upsell:
            self.upsells += 1
        return True

    @property
    def customer_count(self) -> int:
        return len(self.customers) + self.anonymous

    @property
    def avg_ticket(self) -> Decimal:
        return (self.sales / self.orders).quantize(CENT) if self.orders else ZERO

    @property
    def house_share(self) -> Decimal:
        return (self.house_total / self.lines_total).quantize(CENT) if self.lines_total else ZERO

    def last_avg(self, n: int) -> Decimal | None:
        if len(self.recent) < n:
            return None
        window = list(self.recent)[-n:]
        return (sum(window, ZERO) / n).quantize(CENT)

    def top_category(self) -> str | None:
        return self.categories.most_common(1)[0][0] if self.categories else None


def tally(transactions: Iterable[Transaction], rules: CoachingRules) -> ShiftTally:
    """Metrics from scratch (the baseline, and the rebuild after a restart or a refund)."""
    t = ShiftTally()
    for txn in transactions:
        t.add(txn, rules)
    return t


@dataclass(frozen=True, slots=True)
class ShiftMetrics:
    sales: Decimal
    orders: int
    customers: int
    avg_ticket: Decimal
    signups: int
    upsells: int
    house_share: Decimal

    @classmethod
    def of(cls, t: ShiftTally) -> ShiftMetrics:
        return cls(t.sales, t.orders, t.customer_count, t.avg_ticket, t.signups, t.upsells, t.house_share)


def shift_metrics(transactions: Iterable[Transaction], rules: CoachingRules | None = None) -> ShiftMetrics:
    return ShiftMetrics.of(tally(transactions, rules or CoachingRules()))


# -- watermarks ------------------------------------------------------------------------------------


def by_local_day(transactions: Iterable[Transaction], tz: str) -> dict[date, list[Transaction]]:
    zone = ZoneInfo(tz)
    days: dict[date, list[Transaction]] = {}
    for txn in transactions:
        days.setdefault(txn.occurred_at.astimezone(zone).date(), []).append(txn)
    return days


def watermark(person_id: int, transactions: Iterable[Transaction], tz: str, now: datetime,
              rules: CoachingRules) -> Watermark:
    """Averages and bests over the worked days of the last `watermark_weeks` weeks, today excluded."""
    today = now.astimezone(ZoneInfo(tz)).date()
    first = today - timedelta(weeks=rules.watermark_weeks)
    days = [tally(txns, rules) for day, txns in sorted(by_local_day(transactions, tz).items()) if first <= day < today]
    days = [d for d in days if d.orders]
    if not days:
        return Watermark(person_id, computed_at=now)
    n = Decimal(len(days))
    orders = sum(d.orders for d in days)
    sales = sum((d.sales for d in days), ZERO)
    lines = sum((d.lines_total for d in days), ZERO)
    house = sum((d.house_total for d in days), ZERO)
    return Watermark(
        person_id=person_id,
        days=len(days),
        avg_ticket=(sales / orders).quantize(CENT),
        avg_day_sales=(sales / n).quantize(CENT),
        avg_signups=(Decimal(sum(d.signups for d in days)) / n).quantize(CENT),
        avg_upsell_rate=(Decimal(sum(d.upsells for d in days)) / orders).quantize(CENT),
        avg_house_share=(house / lines).quantize(CENT) if lines else ZERO,
        best_day_sales=max(d.sales for d in days),
        best_avg_ticket=max(d.avg_ticket for d in days),
        best_signups=max(d.signups for d in days),
        computed_at=now,
    )


# -- texts -----------------------------------------------------------------------------------------

SEGMENT = 160


def gsm7_length(text: str) -> int | None:
    """Septets the text takes in GSM-7, or None if it needs UCS-2 (then a segment holds 70)."""
    n, gsm = units(text)
    return n if gsm else None


def fit_sms(text: str, limit: int = SEGMENT) -> str:
    """Always GSM-7 (a stray emoji or curly quote would cut the room to 70): plain punctuation,
    anything else as "?", then whole trailing sentences dropped until it fits, then a cut."""
    text = " ".join(plain(text).split())
    text = "".join(ch if is_gsm(ch) else "?" for ch in text)
    while units(text)[0] > limit and ". " in text.rstrip("."):
        text = text.rstrip(".").rsplit(". ", 1)[0] + "."
    if units(text)[0] > limit:
        cut = limit - 3
        while units(text[:cut])[0] > limit - 3:  # extension characters take two septets
            cut -= 1
        text = text[:cut].rstrip() + "..."
    return text


def money(amount: Decimal) -> str:
    """$1,240 for big sums, $45.50 for tickets: short enough for SMS, exact enough to act on."""
    if abs(amount) >= 100:
        return f"${amount.quantize(Decimal('1'), ROUND_HALF_UP):,}"
    return f"${amount.quantize(CENT, ROUND_HALF_UP)}"


def pct(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal("1"), ROUND_HALF_UP))


def short_name(name: str) -> str:
    first = name.split()[0] if name.strip() else "there"
    return first[:14]


def variant_for(person_id: int, kind: str, variants: int = 2) -> str:
    """A/B: a stable variant per (budtender, type), so each person sees one style of each type."""
    return "AB"[zlib.crc32(f"{person_id}:{kind}".encode()) % variants]


@dataclass(frozen=True, slots=True)
class Coaching:
    """One message to send: its idempotency key, type, variant and text."""

    key: str
    kind: str
    variant: str
    text: str
    person_id: int
    shift_id: int | None = None


# -- triggers --------------------------------------------------------------------------------------


def due_midshift(shift: Shift, now: datetime, rules: CoachingRules) -> int | None:
    """The number of the mid-shift check due now (1 at +2 h, 2 at +4 h...), or None.

    Checks fall strictly inside the shift; one found later than `late_grace` is skipped.
    """
    if not shift.covers(now):
        return None
    n = int((now - shift.starts_at) / rules.midshift_every)
    if n < 1:
        return None
    at = shift.starts_at + n * rules.midshift_every
    if at >= shift.ends_at or now - at > rules.late_grace:
        return None
    return n


def midshift(name: str, shift: Shift, n: int, t: ShiftTally, wm: Watermark, rules: CoachingRules) -> Coaching:
    first = short_name(name)
    elapsed = n * rules.midshift_every
    where = ("halfway through your shift" if abs(elapsed - shift.length / 2) <= timedelta(minutes=30)
             else f"{int(elapsed.total_seconds() // 3600)}h into your shift")
    variant = variant_for(shift.person_id, Kind.MIDSHIFT)
    usual = f" (your usual {money(wm.avg_ticket)})" if wm.known else ""
    if variant == "A" and t.signups >= rules.signup_target:
        text = (f"Hey {first}, {where} - {t.signups} rewards sign-ups, target hit! "
                f"Avg ticket {money(t.avg_ticket)}{usual}.")
    elif variant == "A":
        text = (f"Hey {first}, {where} - you've signed up {t.signups} customers to rewards. "
                f"Target is {rules.signup_target}. Avg ticket {money(t.avg_ticket)}{usual}.")
    else:
        text = (f"{first}, {where}: {money(t.sales)} from {t.customer_count} customers, avg {money(t.avg_ticket)}"
                f"{usual}. Rewards sign-ups {t.signups} of {rules.signup_target}.")
    return Coaching(f"midshift:{shift.person_id}:{shift.id}:{n}", Kind.MIDSHIFT, variant, fit_sms(text),
                    shift.person_id, shift.id)


def nudge(name: str, shift: Shift, t: ShiftTally, wm: Watermark, history: Sequence[Sent], now: datetime,
          rules: CoachingRules) -> Coaching | None:
    """After an order: the last `nudge_window` tickets average ≥ `nudge_drop` below the watermark.

    Never nags: at most `nudge_cap` per shift, `nudge_cooldown` apart, and a new full window of
    orders since the last nudge; none while muted or without a watermark.
    """
    if not wm.known or shift.muted(now):
        return None
    last = t.last_avg(rules.nudge_window)
    if last is None:
        return None
    drop = (wm.avg_ticket - last) / wm.avg_ticket
    if drop < rules.nudge_drop:
        return None
    nudges = [s for s in history if s.kind == Kind.NUDGE]
    if len(nudges) >= rules.nudge_cap:
        return None
    if nudges:
        prev = max(nudges, key=lambda s: s.sent_at)
        if now - prev.sent_at < rules.nudge_cooldown or t.orders - prev.orders_at_send < rules.nudge_window:
            return None
    first = short_name(name)
    variant = variant_for(shift.person_id, Kind.NUDGE)
    category = t.top_category() or "flower"
    if variant == "A":
        text = (f"{first}, your last {rules.nudge_window} customers spent {pct(drop)}% below your average. "
                f"Consider suggesting the premium {category}.")
    else:
        text = (f"{first}, last {rules.nudge_window} tickets avg {money(last)} vs your usual {money(wm.avg_ticket)}. "
                f"Try a premium {category} or a house-brand add-on.")
    return Coaching(f"nudge:{shift.person_id}:{shift.id}:{len(nudges) + 1}", Kind.NUDGE, variant, fit_sms(text),
                    shift.person_id, shift.id)


def celebrations(name: str, shift: Shift, t: ShiftTally, wm: Watermark, history: Sequence[Sent], now: datetime,
                 rules: CoachingRules) -> list[Coaching]:
    """Once per shift each: the average ticket beats the watermark by ≥ 25 %; the sign-up target is hit."""
    if shift.muted(now):
        return []
    sent = {s.key for s in history}
    first = short_name(name)
    variant = variant_for(shift.person_id, Kind.CELEBRATE)
    out: list[Coaching] = []
    key = f"celebrate:{shift.person_id}:{shift.id}:signups"
    if t.signups >= rules.signup_target > 0 and key not in sent:
        text = (f"Amazing shift {first}! {t.signups} new rewards sign-ups - target hit." if variant == "A"
                else f"{first}, target smashed: {t.signups} rewards sign-ups this shift. Keep it going!")
        out.append(Coaching(key, Kind.CELEBRATE, variant, fit_sms(text), shift.person_id, shift.id))
    key = f"celebrate:{shift.person_id}:{shift.id}:ticket"
    if wm.known and t.orders >= rules.celebrate_min_orders and key not in sent:
        gain = (t.avg_ticket - wm.avg_ticket) / wm.avg_ticket
        if gain >= rules.celebrate_gain:
            text = (f"Amazing shift {first}! You've exceeded your watermark by {pct(gain)}%: "
                    f"avg ticket {money(t.avg_ticket)} vs {money(wm.avg_ticket)}." if variant == "A"
                    else f"{first}, you're on fire: avg ticket {money(t.avg_ticket)}, {pct(gain)}% over your usual.")
            out.append(Coaching(key, Kind.CELEBRATE, variant, fit_sms(text), shift.person_id, shift.id))
    return out


# -- the after-order rules -------------------------------------------------------------------------


@dataclass(slots=True)
class AfterOrder:
    """What an after-order rule sees: the shift so far, with the order just counted into `tally`."""

    name: str
    shift: Shift
    tally: ShiftTally
    watermark: Watermark
    history: Sequence[Sent]
    """The coaching messages already sent this shift."""
    now: datetime
    rules: CoachingRules
    order: Transaction | None = None
    """The order that was just counted (None when the caller evaluates a tally without one)."""


RuleCheck = Callable[[AfterOrder], Coaching | Iterable[Coaching] | None]
"""A pure function: the messages this situation calls for (none, one, or several)."""


@dataclass(frozen=True, slots=True)
class OrderRule:
    """One after-order trigger.

    Rules run by `priority`, highest first (equal priorities in registration order). Rules that
    share a `group` exclude each other: once one of them finds something, the rest of the group
    is not asked. A rule without a group runs whatever the others found.
    """

    name: str
    check: RuleCheck
    priority: int = 0
    group: str | None = None


def by_priority(rules: Iterable[OrderRule]) -> list[OrderRule]:
    """Highest priority first; equal priorities keep their order."""
    return sorted(rules, key=lambda r: -r.priority)


def evaluate(rules: Iterable[OrderRule], situation: AfterOrder) -> list[Coaching]:
    """Every message the rules find for one order, in priority order, a group's lower rules skipped once it fired."""
    return _run(by_priority(rules), situation)


def _run(ordered: Sequence[OrderRule], situation: AfterOrder) -> list[Coaching]:
    out: list[Coaching] = []
    fired: set[str] = set()
    for rule in ordered:
        if rule.group is not None and rule.group in fired:
            continue
        found = rule.check(situation)
        messages = [] if found is None else [found] if isinstance(found, Coaching) else list(found)
        if messages:
            out += messages
            if rule.group is not None:
                fired.add(rule.group)
    return out


class OrderRules:
    """A registry of after-order rules (one per coach; `BudtenderCoach.order_rules`)."""

    def __init__(self, rules: Iterable[OrderRule] = ()) -> None:
        self._rules: list[OrderRule] = []
        self._ordered: tuple[OrderRule, ...] = ()
        for rule in rules:
            self.register(rule)

    def register(self, rule: OrderRule) -> OrderRule:
        """Add a rule; a second rule with the same name is refused (rules are named in logs and tests)."""
        if any(r.name == rule.name for r in self._rules):
            raise ValueError(f"an after-order rule named {rule.name!r} is registered already")
        self._rules.append(rule)
        self._ordered = tuple(by_priority(self._rules))
        return rule

    def __iter__(self) -> Iterator[OrderRule]:
        return iter(self._ordered)

    def names(self) -> list[str]:
        """The rules in the order they run."""
        return [r.name for r in self]

    def evaluate(self, situation: AfterOrder) -> list[Coaching]:
        return _run(self._ordered, situation)


def _celebrations(s: AfterOrder) -> list[Coaching]:
    return celebrations(s.name, s.shift, s.tally, s.watermark, s.history, s.now, s.rules)


def _nudge(s: AfterOrder) -> Coaching | None:
    return nudge(s.name, s.shift, s.tally, s.watermark, s.history, s.now, s.rules)


FEEDBACK = "feedback"
"""The group of the built-in rules: one kind of feedback per order, praise before a nudge."""

BUILTIN_RULES = (
    OrderRule("celebrations", _celebrations, priority=20, group=FEEDBACK),
    OrderRule("nudge", _nudge, priority=10, group=FEEDBACK),
)
"""Celebration wins over a nudge: both in one group, the celebration first."""


def after_order(name: str, shift: Shift, t: ShiftTally, wm: Watermark, history: Sequence[Sent], now: datetime,
                rules: CoachingRules, *, order: Transaction | None = None,
                registry: Iterable[OrderRule] = BUILTIN_RULES) -> list[Coaching]:
    """Every after-order rule of `registry` evaluated after one order was counted into `t`."""
    situation = AfterOrder(name, shift, t, wm, history, now, rules, order)
    if isinstance(registry, OrderRules):
        return registry.evaluate(situation)
    return evaluate(registry, situation)


@dataclass(frozen=True, slots=True)
class Goals:
    signups: int
    avg_ticket: Decimal


def goals(t: ShiftTally, wm: Watermark, rules: CoachingRules) -> Goals:
    """Tomorrow: the sign-up target, and an average ticket a little above the better of usual and today."""
    base = max(wm.avg_ticket, t.avg_ticket)
    target = (base * Decimal("1.05")).quantize(Decimal("1"), ROUND_HALF_UP) if base else ZERO
    return Goals(rules.signup_target, target)


def summary_due(shift: Shift, now: datetime, rules: CoachingRules) -> bool:
    return shift.ends_at <= now <= shift.ends_at + rules.late_grace + timedelta(hours=2)


def summary(name: str, shift: Shift, t: ShiftTally, wm: Watermark, rules: CoachingRules) -> Coaching:
    first = short_name(name)
    g = goals(t, wm, rules)
    variant = variant_for(shift.person_id, Kind.SUMMARY)
    goal_ticket = f", avg {money(g.avg_ticket)}+" if g.avg_ticket else ""
    if variant == "A":
        text = (f"Shift done, {first}: {money(t.sales)}, {t.customer_count} customers, avg {money(t.avg_ticket)}, "
                f"{t.signups} sign-ups, {t.upsells} upsells, house {pct(t.house_share)}%. "
                f"Tomorrow: {g.signups} sign-ups{goal_ticket}.")
    else:
        vs = f" (usual {money(wm.avg_ticket)})" if wm.known else ""
        text = (f"Thanks {first}! Today {money(t.sales)}, avg {money(t.avg_ticket)}{vs}, {t.signups} sign-ups. "
                f"Tomorrow's goals: {g.signups} sign-ups{goal_ticket}.")
    return Coaching(f"summary:{shift.person_id}:{shift.id}", Kind.SUMMARY, variant, fit_sms(text),
                    shift.person_id, shift.id)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly(name: str, person_id: int, week: Sequence[Transaction], previous: Sequence[Transaction], tz: str,
           week_label: str, rules: CoachingRules, link: str | None = None) -> Coaching | None:
    """The weekly review: the week's numbers against the week before; None for a week off."""
    days = by_local_day(week, tz)
    this = tally(week, rules)
    if not this.orders:
        return None
    before = tally(previous, rules)
    first = short_name(name)
    best_day, best = max(((d, tally(txns, rules)) for d, txns in days.items()), key=lambda x: x[1].sales)
    change = ""
    if before.orders and before.avg_ticket:
        delta = (this.avg_ticket - before.avg_ticket) / before.avg_ticket
        change = f" ({'+' if delta >= 0 else ''}{pct(delta)}% vs last week)"
    variant = variant_for(person_id, Kind.WEEKLY)
    if variant == "A":
        text = (f"{first}, your week: {money(this.sales)} over {len(days)} days, avg ticket {money(this.avg_ticket)}"
                f"{change}, {this.signups} sign-ups. Best day {best_day:%a} {money(best.sales)}.")
    else:
        text = (f"Week in review, {first}: avg ticket {money(this.avg_ticket)}{change}, {this.signups} sign-ups, "
                f"{this.upsells} upsells. Best: {best_day:%a} {money(best.sales)}.")
    if link:
        text = fit_sms(text, SEGMENT - len(link) - 1) + " " + link
    return Coaching(f"weekly:{person_id}:{week_label}", Kind.WEEKLY, variant, fit_sms(text, 2 * 153), person_id)


# -- replies ---------------------------------------------------------------------------------------


def business_day(now: datetime, shifts: Iterable[Shift], tz: str) -> tuple[date, datetime, datetime]:
    """The day a budtender's "today" means at `now`, and its window [start, end) in UTC.

    A shift belongs to the day it starts on: on a shift that began yesterday evening, "today" is
    still yesterday until that shift ends, so STATS and BOARD at 01:00 count the whole shift, not
    the hour since midnight. The window runs from local midnight (or from the end of one of the
    budtender's shifts that crossed into the day) to the next midnight (or the end of a shift that
    crosses it). `shifts` are this budtender's shifts around `now`.
    """
    zone = ZoneInfo(tz)
    known = list(shifts)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), zone).astimezone(ZoneInfo("UTC"))

    def crossing(at: datetime) -> Shift | None:
        return next((s for s in known if s.starts_at < at < s.ends_at), None)

    day = now.astimezone(zone).date()
    late = crossing(midnight(day))
    if late is not None and now < late.ends_at:
        day -= timedelta(days=1)
    start, end = midnight(day), midnight(day + timedelta(days=1))
    if (into := crossing(start)) is not None:
        start = into.ends_at
    if (out := crossing(end)) is not None:
        end = out.ends_at
    return day, start, end


def points_text(name: str, balance: int, today: int, per_dollar: Decimal) -> str:
    """A budtender's own staff points (POINTS): the balance, today's change, how they are earned."""
    rate = f"Every $1 you sell earns you {per_dollar.normalize():f} points."
    if not balance and not today:
        return fit_sms(f"{short_name(name)}, you have no points yet. {rate}")
    change = f" ({today:+,} today)" if today else ""
    return fit_sms(f"{short_name(name)}, you have {balance:,} points{change}. {rate}")


def stats_text(name: str, t: ShiftTally, wm: Watermark, rules: CoachingRules) -> str:
    usual = f" (usual {money(wm.avg_ticket)})" if wm.known else ""
    return fit_sms(f"{short_name(name)}, today: {money(t.sales)}, {t.customer_count} customers, "
                   f"avg {money(t.avg_ticket)}{usual}, {t.signups}/{rules.signup_target} sign-ups, "
                   f"{t.upsells} upsells, house {pct(t.house_share)}%.")


def goal_text(t: ShiftTally, wm: Watermark, rules: CoachingRules) -> str:
    g = goals(ShiftTally(), wm, rules)
    ticket = f" Avg ticket goal {money(g.avg_ticket)}+ (now {money(t.avg_ticket)})." if g.avg_ticket else ""
    return fit_sms(f"Goals: {rules.signup_target} rewards sign-ups per shift ({t.signups} so far).{ticket}")


def board_text(rows: Sequence[tuple[int, str, ShiftTally]], me: int) -> str:
    """Today's leaderboard by sales; the asker's place is always named."""
    if not rows:
        return "No sales recorded today yet."
    ranked = sorted(rows, key=lambda r: (-r[2].sales, r[1]))
    parts = [f"{i}. {short_name(n)} {money(t.sales)}" for i, (_, n, t) in enumerate(ranked[:4], 1)]
    mine = next((i for i, r in enumerate(ranked, 1) if r[0] == me), None)
    tail = f" You're #{mine} of {len(ranked)}." if mine else ""
    return fit_sms("Today: " + ", ".join(parts) + "." + tail)


def coach_context(name: str, t: ShiftTally, wm: Watermark, rules: CoachingRules) -> dict[str, object]:
    """What the AI coach may see: this budtender's own numbers, nothing about anyone else."""
    g = goals(t, wm, rules)
    return {
        "budtender": short_name(name),
        "today": {"sales": str(t.sales), "orders": t.orders, "customers": t.customer_count,
                  "avg_ticket": str(t.avg_ticket), "rewards_signups": t.signups, "upsells": t.upsells,
                  "house_brand_share_percent": pct(t.house_share), "top_category": t.top_category()},
        "usual": {"avg_ticket": str(wm.avg_ticket), "day_sales": str(wm.avg_day_sales),
                  "signups_per_day": str(wm.avg_signups), "best_day_sales": str(wm.best_day_sales)}
        if wm.known else None,
        "goals": {"rewards_signups_per_shift": g.signups, "avg_ticket": str(g.avg_ticket)},
    }


TIPS = (
    "Ask every customer if they're in rewards - sign-ups take 20 seconds and bring them back.",
    "Pair flower with a house pre-roll: an easy add-on that lifts the ticket.",
    "Ask what they liked last time, then offer the premium version of it.",
    "Mention one new arrival per customer - curiosity sells.",
    "Suggest a house-brand alternative: same quality, better margin for the store.",
)


def tip(now: datetime, person_id: int) -> str:
    """A deterministic coaching tip (the answer to free text without an AI key)."""
    return TIPS[(now.toordinal() + person_id) % len(TIPS)]
