"""Deal metrics, stale rules and priority rules: pure functions over plain dataclasses.

Everything here takes `now` explicitly and does no I/O, so the same code serves the Telegram
commands, the periodic monitor, the admin API and the 10,000-deal benchmark. Thresholds live in
`DealRules` (defaults from the predecessor SalesBot: stale after 3 days without activity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from storage.deal_records import Deal, DealEvent, DealStatus, EventKind

__all__ = [
    "Assessment", "Deal", "DealEvent", "DealMetrics", "DealRules", "DealStatus", "EventKind", "Priority", "Reason",
    "assess", "assess_all", "compute_metrics", "is_stale", "priority_of", "stale_deals",
]

DAY = 86400.0


class Priority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


PRIORITY_ORDER = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}


@dataclass(frozen=True, slots=True)
class DealRules:
    stale_days: float = 3
    """No activity for this many days makes a deal stale (an overdue task does too)."""
    high_inactive_days: float = 7
    """Silence this long is high priority whatever else is true."""
    stuck_stage_days: float = 14
    """Longer than this in one stage counts as stuck."""
    large_budget: Decimal = Decimal("100000")
    """From this budget on, a stale deal is high priority."""
    low_completion: float = 0.5
    """Below this task completion rate the manager is dropping commitments."""


DEFAULT_RULES = DealRules()


@dataclass(frozen=True, slots=True)
class DealMetrics:
    age_days: float
    days_since_activity: float
    last_activity_at: datetime
    communications: int
    calls: int
    call_minutes: float
    messages: int
    avg_contact_gap_days: float | None
    funnel_moves: int
    backward_moves: int
    days_in_stage: float
    tasks_total: int
    tasks_done: int
    task_completion_rate: float | None
    overdue_tasks: int
    open_tasks: int


def _days(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds() / DAY)


def compute_metrics(deal: Deal, now: datetime, stage_order: Sequence[str] = ()) -> DealMetrics:
    """All metrics of one deal in a single pass over its events.

    Activity means a call, a message, a stage change or a completed task; a deal with none is
    measured from its creation. `stage_order` (the pipeline's stages in order) lets a move back
    in the funnel be told from a move forward.
    """
    calls = messages = moves = backward = tasks_total = tasks_done = overdue = 0
    call_seconds = 0
    last_activity = deal.created_at
    stage_entered = deal.created_at
    contacts: list[datetime] = []
    rank = {s: i for i, s in enumerate(stage_order)}
    for e in deal.events:
        kind = e.kind
        if kind is EventKind.CALL:
            calls += 1
            call_seconds += e.duration_s or 0
            contacts.append(e.at)
            last_activity = max(last_activity, e.at)
        elif kind is EventKind.MESSAGE:
            messages += 1
            contacts.append(e.at)
            last_activity = max(last_activity, e.at)
        elif kind is EventKind.STAGE_CHANGE:
            moves += 1
            if e.from_stage in rank and e.to_stage in rank and rank[e.to_stage] < rank[e.from_stage]:
                backward += 1
            last_activity = max(last_activity, e.at)
            if e.to_stage == deal.stage or not deal.stage:
                stage_entered = max(stage_entered, e.at)
        elif kind is EventKind.TASK:
            tasks_total += 1
            if e.done:
                tasks_done += 1
                if e.done_at is not None:
                    last_activity = max(last_activity, min(e.done_at, now))
            elif e.due_at is not None and e.due_at < now:
                overdue += 1
    gap = None
    if len(contacts) >= 2:
        contacts.sort()
        gap = _days(contacts[-1] - contacts[0]) / (len(contacts) - 1)
    return DealMetrics(
        age_days=_days(now - deal.created_at),
        days_since_activity=_days(now - last_activity),
        last_activity_at=last_activity,
        communications=calls + messages,
        calls=calls,
        call_minutes=call_seconds / 60,
        messages=messages,
        avg_contact_gap_days=gap,
        funnel_moves=moves,
        backward_moves=backward,
        days_in_stage=_days(now - stage_entered),
        tasks_total=tasks_total,
        tasks_done=tasks_done,
        task_completion_rate=(tasks_done / tasks_total) if tasks_total else None,
        overdue_tasks=overdue,
        open_tasks=tasks_total - tasks_done,
    )


class Reason(StrEnum):
    """Why a deal got its priority; the formatter words them in the manager's language."""

    INACTIVE = "inactive"
    LONG_INACTIVE = "long_inactive"
    OVERDUE_TASKS = "overdue_tasks"
    LARGE_AND_STALE = "large_and_stale"
    STUCK_IN_STAGE = "stuck_in_stage"
    NO_CONTACT = "no_contact"
    NO_CALLS = "no_calls"
    LOW_COMPLETION = "low_completion"
    MOVED_BACK = "moved_back"
    NO_NEXT_STEP = "no_next_step"


@dataclass(frozen=True, slots=True)
class Assessment:
    deal: Deal
    metrics: DealMetrics
    stale: bool
    priority: Priority
    reasons: tuple[Reason, ...]


def is_stale(metrics: DealMetrics, days: float = DEFAULT_RULES.stale_days) -> bool:
    """Stale = no activity for at least `days` days, or any overdue task."""
    return metrics.days_since_activity >= days or metrics.overdue_tasks > 0


def priority_of(deal: Deal, m: DealMetrics, rules: DealRules = DEFAULT_RULES) -> tuple[Priority, tuple[Reason, ...]]:
    """The rule-based priority of an active deal, with the reasons that set it.

    High: silent for `high_inactive_days`; or an overdue task while silent for `stale_days`; or a
    large budget going stale. Medium: stale, stuck in a stage, never contacted, a backward move or
    poor task completion. Low: everything else.
    """
    reasons: list[Reason] = []
    inactive = m.days_since_activity >= rules.stale_days
    high = False
    if m.days_since_activity >= rules.high_inactive_days:
        reasons.append(Reason.LONG_INACTIVE)
        high = True
    elif inactive:
        reasons.append(Reason.INACTIVE)
    if m.overdue_tasks:
        reasons.append(Reason.OVERDUE_TASKS)
        high = high or inactive
    if deal.budget >= rules.large_budget and (inactive or m.overdue_tasks):
        reasons.append(Reason.LARGE_AND_STALE)
        high = True
    if m.days_in_stage >= rules.stuck_stage_days:
        reasons.append(Reason.STUCK_IN_STAGE)
    if m.communications == 0 and m.age_days >= 1:
        reasons.append(Reason.NO_CONTACT)
    elif m.calls == 0 and m.age_days >= rules.stale_days:
        reasons.append(Reason.NO_CALLS)
    if m.backward_moves:
        reasons.append(Reason.MOVED_BACK)
    if m.task_completion_rate is not None and m.tasks_total >= 2 and m.task_completion_rate < rules.low_completion:
        reasons.append(Reason.LOW_COMPLETION)
    if m.open_tasks == 0:
        reasons.append(Reason.NO_NEXT_STEP)
    if high:
        return Priority.HIGH, tuple(reasons)
    serious = {Reason.INACTIVE, Reason.OVERDUE_TASKS, Reason.STUCK_IN_STAGE, Reason.NO_CONTACT, Reason.MOVED_BACK,
               Reason.LOW_COMPLETION}
    if serious.intersection(reasons):
        return Priority.MEDIUM, tuple(reasons)
    return Priority.LOW, tuple(reasons)


def assess(
    deal: Deal, now: datetime, rules: DealRules = DEFAULT_RULES, stage_order: Sequence[str] = ()
) -> Assessment:
    m = compute_metrics(deal, now, stage_order)
    priority, reasons = priority_of(deal, m, rules)
    return Assessment(deal, m, is_stale(m, rules.stale_days), priority, reasons)


def assess_all(
    deals: Iterable[Deal], now: datetime, rules: DealRules = DEFAULT_RULES, stage_order: Sequence[str] = ()
) -> list[Assessment]:
    """Active deals, most urgent first (priority, then longest silence)."""
    out = [assess(d, now, rules, stage_order) for d in deals if d.active]
    out.sort(key=lambda a: (PRIORITY_ORDER[a.priority], -a.metrics.days_since_activity, a.deal.id))
    return out


def stale_deals(
    deals: Iterable[Deal], now: datetime, days: float = DEFAULT_RULES.stale_days, rules: DealRules = DEFAULT_RULES
) -> list[Assessment]:
    return [a for a in assess_all(deals, now, rules) if is_stale(a.metrics, days)]
