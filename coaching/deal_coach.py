"""The deal coach: an AI analysis of one deal, or the same analysis from rules when AI can't answer.

The model's answer is validated against `DealAnalysis` (schema-checked structured output, never
free text with fences stripped). Without a key, on a timeout or on invalid output the coach
answers from `rule_analysis` — the same model, labelled `source="rules"`. AI answers are cached by
the deal's fingerprint, so an unchanged deal is never sent to the model twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from coaching.deal_rules_text import lang, money, rule_text
from coaching.deals import Assessment, DealMetrics, EventKind, Priority, Reason
from coaching.prompts import load_prompt

log = logging.getLogger(__name__)

PROMPT_VERSION = "deal_coach/1"
LANGUAGE_NAMES = {"en": "English", "ru": "Russian"}
MAX_EVENTS_IN_PROMPT = 60


class Urgency(StrEnum):
    TODAY = "today"
    THIS_WEEK = "this_week"
    PLANNED = "planned"


class Recommendation(BaseModel):
    action: str = Field(description="what to do, one imperative sentence")
    why: str = Field(description="the reason, tied to this deal's facts")
    how: str = Field(description="how to do it concretely")
    urgency: Urgency


class DealAnalysis(BaseModel):
    """What the coach says about one deal (the AI's schema and the rules' output alike)."""

    assessment: str = Field(description="2-3 sentences on where the deal stands")
    strengths: list[str] = Field(description="what the manager does well on this deal")
    concerns: list[str] = Field(description="potential problems")
    red_flags: list[str] = Field(description="critical issues that need action now; may be empty")
    priority: Priority
    recommendations: list[Recommendation] = Field(description="2-5 actions, most urgent first")
    phrases: list[str] = Field(description="2-3 phrases the manager can say to the client")
    plan: list[str] = Field(description="the plan for the next 2-3 days, 2-4 steps")
    conversion_probability: int = Field(ge=0, le=100, description="chance of winning the deal, percent")


class Source(StrEnum):
    AI = "ai"
    RULES = "rules"


@dataclass(frozen=True, slots=True)
class CoachResult:
    analysis: DealAnalysis
    source: Source
    analyzed_at: datetime
    fingerprint: str
    cached: bool = False


class StructuredAI(Protocol):
    """The shared AI client's interface (coaching/ai.py: `AiClient`)."""

    enabled: bool

    async def structured(
        self, schema: type[BaseModel], system: str, user: str, *, timeout: float | None = None,
        label: str = "structured",
    ) -> BaseModel | None: ...


class AnalysisCache(Protocol):
    async def cached_analysis(self, deal_id: int, fingerprint: str) -> tuple[dict[str, Any], datetime] | None: ...

    async def save_analysis(
        self, deal_id: int, fingerprint: str, locale: str, source: str, analysis: dict[str, Any], at: datetime
    ) -> None: ...


# -- fingerprint and prompt ----------------------------------------------------------------------


def fingerprint(a: Assessment, locale: str) -> str:
    """A hash of everything the model would see that can change the answer.

    Deal fields and events, the language, the prompt version, and the whole days of silence and
    overdue tasks (they grow with time alone): an untouched deal is re-analysed at most daily.
    """
    d = a.deal
    payload = {
        "v": PROMPT_VERSION,
        "lang": lang(locale),
        "deal": [d.id, d.name, d.stage, str(d.budget), d.currency, d.status, d.contact, d.pipeline],
        "events": sorted(
            [e.kind, e.at.isoformat(), e.duration_s, e.direction, e.text, e.from_stage, e.to_stage,
             e.due_at.isoformat() if e.due_at else None, e.done]
            for e in d.events
        ),
        "silent_days": int(a.metrics.days_since_activity),
        "overdue": a.metrics.overdue_tasks,
    }
    return hashlib.sha256(json.dumps(payload, default=str, sort_keys=True).encode()).hexdigest()[:32]


def _fmt_days(x: float) -> str:
    return f"{x:.1f}"


def deal_facts(a: Assessment, now: datetime) -> str:
    """The deal as the model sees it: facts of this deal only, no other client or manager."""
    d, m = a.deal, a.metrics
    lines = [
        f"Deal: {d.name}",
        f"Stage: {d.stage or '-'}",
        f"Budget: {d.budget} {d.currency}",
        f"Client contact: {d.contact or '-'}",
        f"Deal age: {_fmt_days(m.age_days)} days",
        f"Days since last activity: {_fmt_days(m.days_since_activity)}",
        f"Days in current stage: {_fmt_days(m.days_in_stage)}",
        f"Calls: {m.calls} ({m.call_minutes:.0f} min), messages: {m.messages}",
        f"Average gap between contacts: {_fmt_days(m.avg_contact_gap_days) if m.avg_contact_gap_days else '-'} days",
        f"Funnel moves: {m.funnel_moves} (backward: {m.backward_moves})",
        f"Tasks: {m.tasks_done}/{m.tasks_total} done, {m.overdue_tasks} overdue",
        f"Rule-based priority: {a.priority.value} ({', '.join(r.value for r in a.reasons) or 'none'})",
        "Recent events (oldest first):",
    ]
    for e in sorted(d.events, key=lambda e: e.at)[-MAX_EVENTS_IN_PROMPT:]:
        when = e.at.strftime("%Y-%m-%d %H:%M")
        if e.kind is EventKind.CALL:
            lines.append(f"- {when} call {e.direction or ''} {round((e.duration_s or 0) / 60)} min {e.text or ''}")
        elif e.kind is EventKind.MESSAGE:
            lines.append(f"- {when} message {e.direction or ''}: {(e.text or '')[:300]}")
        elif e.kind is EventKind.STAGE_CHANGE:
            lines.append(f"- {when} stage {e.from_stage or '-'} -> {e.to_stage or '-'}")
        else:
            due = e.due_at.strftime("%Y-%m-%d") if e.due_at else "-"
            state = "done" if e.done else ("OVERDUE" if e.due_at and e.due_at < now else "open")
            lines.append(f"- {when} task due {due} [{state}]: {(e.text or '')[:200]}")
    return "\n".join(lines)


# -- the rules -----------------------------------------------------------------------------------


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _values(a: Assessment, locale: str) -> dict[str, Any]:
    m = a.metrics
    return {
        "days": int(m.days_since_activity),
        "overdue": m.overdue_tasks,
        "budget": money(a.deal.budget, a.deal.currency, locale),
        "stage": a.deal.stage or "-",
        "stage_days": int(m.days_in_stage),
        "completion": round((m.task_completion_rate or 0) * 100),
        "calls": m.calls,
        "minutes": round(m.call_minutes),
        "moves": m.funnel_moves,
        "contact": a.deal.contact or "",
        "deal": _short(a.deal.name),
    }


def rule_probability(a: Assessment) -> int:
    """A deterministic win chance: starts at 50, rewards contact and progress, punishes silence."""
    m = a.metrics
    p = 50.0 + min(m.funnel_moves, 4) * 5 + min(m.calls, 5) * 2
    p -= max(0.0, m.days_since_activity - 2) * 4
    p -= m.overdue_tasks * 5 + m.backward_moves * 10
    if m.task_completion_rate is not None:
        p += (m.task_completion_rate - 0.5) * 10
    return int(max(5, min(90, round(p))))


def rule_analysis(a: Assessment, locale: str) -> DealAnalysis:
    """The offline analysis: the same fields the model fills, from the priority rules."""
    t = rule_text(locale)
    v = _values(a, locale)
    m, reasons = a.metrics, set(a.reasons)
    said = [t["reason"][r].format(**v) for r in a.reasons]
    why = "; ".join(said[:3])
    assessment = t["assessment"][a.priority.value].format(why=why)
    strengths = []
    if m.calls >= 2:
        strengths.append(t["strength"]["calls"].format(**v))
    if m.funnel_moves >= 1 and not m.backward_moves:
        strengths.append(t["strength"]["moves"].format(**v))
    if m.task_completion_rate is not None and m.task_completion_rate >= 0.8:
        strengths.append(t["strength"]["tasks"].format(**v))
    if m.days_since_activity < 2 and m.communications:
        strengths.append(t["strength"]["recent"].format(days=round(m.days_since_activity)))
    critical = {Reason.LONG_INACTIVE, Reason.OVERDUE_TASKS, Reason.LARGE_AND_STALE}
    red_flags = [t["reason"][r].format(**v) for r in a.reasons if r in critical]
    concerns = [t["reason"][r].format(**v) for r in a.reasons if r not in critical]

    recs: list[Recommendation] = []

    def rec(key: str, urgency: Urgency, **extra: Any) -> None:
        action, rwhy, how = t["rec"][key]
        vals = {**v, **extra}
        recs.append(Recommendation(action=action.format(**vals), why=rwhy.format(**vals), how=how.format(**vals),
                                   urgency=urgency))

    if reasons & {Reason.INACTIVE, Reason.LONG_INACTIVE, Reason.LARGE_AND_STALE}:
        rec("call_today", Urgency.TODAY, why=why)
    if Reason.NO_CONTACT in reasons:
        rec("first_contact", Urgency.TODAY)
    if Reason.OVERDUE_TASKS in reasons:
        rec("close_tasks", Urgency.TODAY)
    if reasons & {Reason.STUCK_IN_STAGE, Reason.MOVED_BACK}:
        rec("unstick", Urgency.THIS_WEEK)
    if Reason.NO_CALLS in reasons:
        rec("add_call", Urgency.THIS_WEEK)
    if Reason.NO_NEXT_STEP in reasons:
        rec("next_step", Urgency.THIS_WEEK if a.priority is Priority.LOW else Urgency.TODAY)
    if not recs:
        rec("keep", Urgency.PLANNED)

    phrases = [t["phrases"]["revive"].format(contact=_short(a.deal.contact or t["client"]),
                                                deal=_short(a.deal.name)),
               t["phrases"]["objection"], t["phrases"]["next"]]
    plan = [t["plan"]["today"]]
    if m.overdue_tasks:
        plan.append(t["plan"]["tasks"])
    plan += [t["plan"]["send"], t["plan"]["follow"]]
    return DealAnalysis(
        assessment=assessment,
        strengths=strengths,
        concerns=concerns,
        red_flags=red_flags,
        priority=a.priority,
        recommendations=recs[:5],
        phrases=phrases,
        plan=plan[:4],
        conversion_probability=rule_probability(a),
    )


# -- the coach -----------------------------------------------------------------------------------


class DealCoach:
    """Analyses deals with the AI when it can, from rules when it cannot; at most `concurrency` at once."""

    def __init__(
        self,
        ai: StructuredAI | None,
        cache: AnalysisCache | None = None,
        *,
        concurrency: int = 4,
        timeout: float | None = 60.0,
    ) -> None:
        self.ai = ai
        self.cache = cache
        self.timeout = timeout
        self.concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)

    @property
    def ai_enabled(self) -> bool:
        return bool(self.ai is not None and self.ai.enabled)

    async def analyze(self, a: Assessment, locale: str, now: datetime) -> CoachResult:
        fp = fingerprint(a, locale)
        if not self.ai_enabled:
            return CoachResult(rule_analysis(a, locale), Source.RULES, now, fp)
        if self.cache is not None:
            hit = await self.cache.cached_analysis(a.deal.id, fp)
            if hit is not None:
                data, at = hit
                return CoachResult(DealAnalysis.model_validate(data), Source.AI, at, fp, cached=True)
        analysis = await self._ask(a, locale, now)
        if analysis is None:
            log.info("deal analysis from rules deal_id=%s reason=ai-unavailable-or-invalid", a.deal.id)
            return CoachResult(rule_analysis(a, locale), Source.RULES, now, fp)
        if self.cache is not None:
            data = analysis.model_dump(mode="json")
            await self.cache.save_analysis(a.deal.id, fp, lang(locale), Source.AI.value, data, now)
        return CoachResult(analysis, Source.AI, now, fp)

    async def _ask(self, a: Assessment, locale: str, now: datetime) -> DealAnalysis | None:
        assert self.ai is not None
        language = LANGUAGE_NAMES[lang(locale)]
        system = load_prompt("deal_coach_system", language=language)
        user = load_prompt("deal_coach_user", language=language, facts=deal_facts(a, now))
        async with self._limit:
            try:
                result = await self.ai.structured(DealAnalysis, system, user, timeout=self.timeout, label="deal_coach")
            except Exception:  # the client promises None, but a coach must never take a handler down
                log.exception("AI client failed deal_id=%s", a.deal.id)
                return None
        if result is None:
            return None
        if not isinstance(result, DealAnalysis):
            try:
                return DealAnalysis.model_validate(result.model_dump())
            except Exception:
                return None
        return result

    async def analyze_many(self, items: list[Assessment], locale: str, now: datetime) -> list[CoachResult]:
        return list(await asyncio.gather(*(self.analyze(a, locale, now) for a in items)))


def metrics_line(m: DealMetrics) -> dict[str, Any]:
    """Metrics as JSON-friendly values (API answers)."""
    return {
        "age_days": round(m.age_days, 1),
        "days_since_activity": round(m.days_since_activity, 1),
        "communications": m.communications,
        "calls": m.calls,
        "call_minutes": round(m.call_minutes, 1),
        "messages": m.messages,
        "avg_contact_gap_days": round(m.avg_contact_gap_days, 1) if m.avg_contact_gap_days is not None else None,
        "funnel_moves": m.funnel_moves,
        "days_in_stage": round(m.days_in_stage, 1),
        "task_completion_rate": round(m.task_completion_rate, 2) if m.task_completion_rate is not None else None,
        "overdue_tasks": m.overdue_tasks,
    }
