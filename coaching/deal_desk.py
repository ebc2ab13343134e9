"""The deal desk: what the commands, the monitor and the admin API do with deals, in one place.

It loads a manager's deals, measures them, asks the coach and formats the messages; sending goes
through the `send` function it is given (the app's outbox), always with a deterministic key so a
retried job or a restarted process never sends the same coaching twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import Field

from bot.i18n import t
from bot.model import Button, Person, Role
from bot.settings import HuddleSettings
from coaching.deal_coach import CoachResult, DealAnalysis, DealCoach, Urgency, rule_analysis
from coaching.deal_format import Digest, format_alert, format_brief, format_detailed, format_digest
from coaching.deals import Assessment, DealRules, Priority, assess, assess_all, is_stale
from storage.deals import DealRepo, Seen
from storage.people import PeopleRepo

log = logging.getLogger(__name__)

Send = Callable[[Person, str, str, list[Button]], Awaitable[None]]
"""send(person, html_text, idempotency_key, buttons)"""

DETAIL_PREFIX = "deal:detail:"


class DealSettings(HuddleSettings):
    deals_stale_days: float = Field(3, gt=0, description="days without activity that make a deal stale")
    deals_high_inactive_days: float = Field(7, gt=0, description="days of silence that make a deal high priority")
    deals_stuck_stage_days: float = Field(14, gt=0, description="days in one stage that count as stuck")
    deals_large_budget: Decimal = Field(Decimal("100000"), ge=0, description="budget from which a stale deal is high")
    deals_ai_concurrency: int = Field(4, ge=1, le=64, description="deal analyses sent to the model at once")
    deals_ai_timeout: float = Field(60.0, gt=0, description="seconds to wait for one AI analysis")
    deals_daily_cap: int = Field(20, ge=0, le=1000,
                                 description="analyses a manager is sent unasked per day, besides the digests")

    def rules(self) -> DealRules:
        return DealRules(
            stale_days=self.deals_stale_days,
            high_inactive_days=self.deals_high_inactive_days,
            stuck_stage_days=self.deals_stuck_stage_days,
            large_budget=self.deals_large_budget,
        )


def detail_button(deal_id: int, locale: str) -> Button:
    return Button(t(locale, "Detailed analysis"), f"{DETAIL_PREFIX}{deal_id}")


def advice_key(analysis: DealAnalysis) -> str:
    """What makes two analyses the same advice: the priority and the recommended actions.

    Day counts in the wording grow on their own; they do not make advice new.
    """
    payload = [analysis.priority.value, [(r.urgency.value, r.action.strip().casefold())
                                         for r in analysis.recommendations]]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:32]


def day_start(now: datetime, tz: str) -> datetime:
    """The start of `now`'s day in zone `tz`, as an aware datetime (UTC for an unknown zone)."""
    try:
        zone = ZoneInfo(tz)
    except Exception:
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


@dataclass(slots=True)
class RunReport:
    managers: int = 0
    deals: int = 0
    messages: int = 0
    ai: int = 0
    rules: int = 0
    held_back: int = 0
    """Analyses not sent because the manager reached the daily limit."""
    identical: int = 0
    """Analyses not sent because the manager already had the same advice."""
    unchanged: int = 0
    """Deals the digest only counted."""
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DealDesk:
    repo: DealRepo
    people: PeopleRepo
    coach: DealCoach
    now: Callable[[], datetime]
    send: Send
    rules: DealRules = field(default_factory=DealRules)
    daily_cap: int = 20
    """Analyses a manager may be sent unasked per day (their timezone), besides one digest a run."""

    # -- reading -------------------------------------------------------------------------------

    async def my_deals(self, person: Person) -> list[Assessment]:
        assert person.id is not None
        return assess_all(await self.repo.for_person(person.id), self.now(), self.rules)

    async def my_deal(self, person: Person, deal_id: int) -> Assessment | None:
        """The deal if it is this person's; None for unknown and for someone else's alike."""
        deal = await self.repo.get(deal_id)
        if deal is None or deal.person_id is None or deal.person_id != person.id:
            return None
        return assess(deal, self.now(), self.rules)

    async def stale(self, person: Person, days: float) -> list[Assessment]:
        return [a for a in await self.my_deals(person) if is_stale(a.metrics, days)]

    async def analyze(self, person: Person, a: Assessment) -> CoachResult:
        return await self.coach.analyze(a, person.locale, self.now())

    # -- texts ---------------------------------------------------------------------------------

    async def brief(self, person: Person, deal_id: int) -> tuple[str, list[Button]] | None:
        a = await self.my_deal(person, deal_id)
        if a is None:
            return None
        r = await self.analyze(person, a)
        return format_brief(a, r, person.locale, person.timezone), [detail_button(deal_id, person.locale)]

    async def detailed(self, person: Person, deal_id: int) -> str | None:
        a = await self.my_deal(person, deal_id)
        if a is None:
            return None
        r = await self.analyze(person, a)
        return format_detailed(a, r, person.locale, person.timezone, person.name)

    async def stale_text(self, person: Person, days: float) -> str:
        items = await self.stale(person, days)
        steps = await self._first_steps(person, items)
        return format_alert(items, days, person.locale, steps)

    async def _first_steps(self, person: Person, items: list[Assessment]) -> dict[int, str]:
        """The most urgent rule-based action per deal (no model calls for a list)."""
        from coaching.deal_coach import rule_analysis

        steps: dict[int, str] = {}
        for a in items:
            recs = rule_analysis(a, person.locale).recommendations
            today = [r for r in recs if r.urgency is Urgency.TODAY] or recs
            if today:
                steps[a.deal.id] = today[0].action
        return steps

    # -- proactive work ------------------------------------------------------------------------

    async def monitor_run(self, person_id: int, period: str) -> RunReport:
        """One periodic run for one manager: one digest of what changed, then only new analyses.

        The digest lists deals that turned red or went stale since the manager's last run and deals
        whose advice changed, and counts the rest. An analysis goes out for a red deal only when its
        advice differs from every one this manager was already sent, and at most `daily_cap` a day
        (in the manager's timezone); the digest says how many it held back.
        """
        report = RunReport()
        person = await self.people.get(person_id)
        if person is None or Role.SALES_MANAGER not in person.roles:
            log.info("deal monitor skipped: not a sales manager person_id=%s", person_id)
            return report
        now = self.now()
        items = await self.my_deals(person)
        report.managers, report.deals = 1, len(items)
        prev = await self.repo.watch(person_id)
        seen = {a.deal.id: Seen(a.priority.value, a.stale, advice_key(rule_analysis(a, person.locale)))
                for a in items}
        digest = Digest(items, first=not prev, cap=self.daily_cap)
        for a in items:
            before, now_seen = prev.get(a.deal.id), seen[a.deal.id]
            if a.priority is Priority.HIGH and (before is None or before.priority != Priority.HIGH.value):
                digest.turned_red.append(a)
            elif a.stale and (before is None or not before.stale):
                digest.went_stale.append(a)
            elif before is not None and before.advice != now_seen.advice:
                digest.new_advice.append(a)

        red = [a for a in items if a.priority is Priority.HIGH]
        results = await self.coach.analyze_many(red, person.locale, now)  # concurrently, bounded
        already = await self.repo.sent_advice(person_id, [a.deal.id for a in red])
        room = max(0, self.daily_cap - await self.repo.sent_since(person_id, day_start(now, person.timezone)))
        listed = {a.deal.id for a in (*digest.turned_red, *digest.went_stale, *digest.new_advice)}
        to_send: list[tuple[Assessment, CoachResult, str]] = []
        for a, r in zip(red, results, strict=True):
            key = advice_key(r.analysis)
            if (a.deal.id, key) in already:
                report.identical += 1
                continue
            if len(to_send) >= room:
                digest.held_back += 1
                continue
            to_send.append((a, r, key))
            if a.deal.id not in listed:
                digest.new_advice.append(a)
        digest.analyses = len(to_send)
        report.held_back = digest.held_back
        report.unchanged = digest.unchanged

        await self.send(person, format_digest(digest, person.locale), f"dealmon:{person_id}:{period}:digest", [])
        report.messages += 1
        for a, r, key in to_send:
            await self._send_result(person, a, r, f"dealmon:{person_id}:{period}:deal:{a.deal.id}", report)
            await self.repo.record_sent(person_id, a.deal.id, key, now)
        await self.repo.save_watch(person_id, seen, now)
        return report

    async def _offer(self, person: Person, a: Assessment, r: CoachResult, key: str, report: RunReport) -> None:
        """Send an analysis unasked unless this manager already has it or is at the day's limit."""
        advice = advice_key(r.analysis)
        assert person.id is not None
        if (a.deal.id, advice) in await self.repo.sent_advice(person.id, [a.deal.id]):
            report.identical += 1
            return
        if await self.repo.sent_since(person.id, day_start(self.now(), person.timezone)) >= self.daily_cap:
            report.held_back += 1
            return
        await self._send_result(person, a, r, key, report)
        await self.repo.record_sent(person.id, a.deal.id, advice, self.now())

    async def _send_result(self, person: Person, a: Assessment, r: CoachResult, key: str, report: RunReport) -> None:
        report.ai += r.source == "ai"
        report.rules += r.source == "rules"
        await self.send(person, format_detailed(a, r, person.locale, person.timezone, person.name), key, [])
        report.messages += 1

    async def analyze_deal_and_notify(self, deal_id: int, job_id: str, notify: bool) -> RunReport:
        report = RunReport()
        deal = await self.repo.get(deal_id)
        if deal is None:
            report.errors.append(f"deal {deal_id} not found")
            return report
        person = await self.people.get(deal.person_id) if deal.person_id else None
        a = assess(deal, self.now(), self.rules)
        report.deals = 1
        if person is None:
            await self.coach.analyze(a, "en", self.now())
            report.errors.append(f"deal {deal_id} has no manager to notify")
            return report
        report.managers = 1
        if notify:
            await self._offer(person, a, await self.analyze(person, a), f"dealapi:{job_id}:deal:{deal_id}", report)
        else:
            r = await self.analyze(person, a)
            report.ai += r.source == "ai"
            report.rules += r.source == "rules"
        return report

    async def analyze_manager(self, person_id: int, job_id: str) -> RunReport:
        """Like a monitor run, on demand: a summary and details for high-priority deals."""
        return await self.monitor_run(person_id, f"api-{job_id}")

    async def analyze_all(self, job_id: str) -> RunReport:
        total = RunReport()
        for pid in await self.repo.owners_with_active_deals():
            r = await self.monitor_run(pid, f"api-{job_id}")
            total.managers += r.managers
            total.deals += r.deals
            total.messages += r.messages
            total.ai += r.ai
            total.rules += r.rules
            total.held_back += r.held_back
            total.identical += r.identical
            total.unchanged += r.unchanged
        return total

    async def check_stale(self, days: float, job_id: str) -> RunReport:
        """An alert to every manager who has stale deals (nothing to those who have none)."""
        report = RunReport()
        for pid in await self.repo.owners_with_active_deals():
            person = await self.people.get(pid)
            if person is None:
                continue
            items = await self.stale(person, days)
            report.deals += len(items)
            if not items:
                continue
            report.managers += 1
            text = format_alert(items, days, person.locale, await self._first_steps(person, items))
            await self.send(person, text, f"dealstale:{job_id}:{pid}", [])
            report.messages += 1
        return report
