"""Deal messages for Telegram (HTML parse mode): summary, brief, detailed and stale-alert formats.

Every piece of text that came from a CRM, an import or the model is escaped, so a deal called
`<b>Acme & Co</b>` shows as written and cannot break the markup. Labels follow the manager's
language (English and Russian; anything else reads English). The adapter splits long messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import N_, t, tn
from coaching.deal_coach import CoachResult, Source, Urgency
from coaching.deal_rules_text import lang, money, translated
from coaching.deals import Assessment, DealMetrics, Priority

ICON = {Priority.HIGH: "🔴", Priority.MEDIUM: "🟡", Priority.LOW: "🟢"}

LABELS: dict[str, Any] = {
    "title": N_("DEAL ANALYSIS"),
    "deal": N_("Deal"),
    "budget": N_("Budget"),
    "probability": N_("Win probability"),
    "manager": N_("Manager"),
    "stage": N_("Stage"),
    "age": N_("In progress: {d} d"),
    "calls": N_("Calls: {n} ({m} min)"),
    "touches": N_("Contacts: {n}"),
    "silent": N_("Days without activity: {d}"),
    "overdue": N_("Overdue tasks: {n}"),
    "in_stage": N_("In this stage: {d} d"),
    "assessment": N_("ASSESSMENT"),
    "strengths": N_("WHAT'S GOOD"),
    "concerns": N_("CONCERNS"),
    "critical": N_("CRITICAL"),
    "recs": N_("RECOMMENDATIONS"),
    "urgency": {Urgency.TODAY: N_("🔥 TODAY"), Urgency.THIS_WEEK: N_("⏰ THIS WEEK"), Urgency.PLANNED: N_("📅 PLAN")},
    "why": N_("Why"),
    "how": N_("How"),
    "phrases": N_("WHAT TO SAY TO THE CLIENT"),
    "plan": N_("ACTION PLAN (2–3 days)"),
    "ai": N_("🤖 AI analysis of {t}"),
    "rules": N_("📏 Rule-based analysis (AI unavailable) of {t}"),
    "summary": N_("📊 <b>Your deals</b>: {n} active — 🔴 {h} · 🟡 {m} · 🟢 {l}"),
    "summary_none": N_("📊 You have no active deals."),
    "line_silent": N_("{d} d silent"),
    "line_overdue": N_("{n} overdue"),
    "more": N_("…and {n} more"),
    "stale_title": N_("⚠️ <b>Stale deals</b> (no activity ≥ {d} d or overdue tasks): {n}"),
    "stale_none": N_("✅ No stale deals (no activity ≥ {d} d)."),
    "next": N_("Next"),
}

MAX_LINES = 30


_labels: dict[str, dict[str, Any]] = {}


def labels(locale: str) -> dict[str, Any]:
    """LABELS in the reader's language (the message catalog)."""
    code = lang(locale)
    if code not in _labels:
        _labels[code] = translated(LABELS, code)
    return _labels[code]


MAX_ITEM = 800
"""Longest single item shown (a deal name, one recommendation): one line never nears 4,096 chars."""
MAX_NAME = 200


def e(text: object, limit: int = MAX_ITEM) -> str:
    """Clip to `limit` characters, then escape for Telegram HTML (&, < and > outside attributes)."""
    s = " ".join(str(text).split()) if "\n" in str(text) else str(text)
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return escape(s, quote=False)


def local_time(at: datetime, tz: str) -> str:
    try:
        zone = ZoneInfo(tz)
    except Exception:
        zone = ZoneInfo("UTC")
    return at.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def _metrics_block(m: DealMetrics, lb: dict[str, Any]) -> list[str]:
    lines = [
        "⏱ " + lb["age"].format(d=int(m.age_days)),
        "📞 " + lb["calls"].format(n=m.calls, m=round(m.call_minutes)),
        "💬 " + lb["touches"].format(n=m.communications),
        ("⚠️ " if m.days_since_activity >= 3 else "🕒 ") + lb["silent"].format(d=int(m.days_since_activity)),
        "📌 " + lb["in_stage"].format(d=int(m.days_in_stage)),
    ]
    if m.overdue_tasks:
        lines.append("⛔️ " + lb["overdue"].format(n=m.overdue_tasks))
    return lines


def _header(a: Assessment, r: CoachResult, locale: str, manager: str | None) -> list[str]:
    lb = labels(locale)
    d = a.deal
    lines = [
        f"{ICON[r.analysis.priority]} <b>{lb['title']}</b> #{d.id}",
        "",
        f"📋 {lb['deal']}: <b>{e(d.name, MAX_NAME)}</b>",
        f"💰 {lb['budget']}: {e(money(d.budget, d.currency, locale))}",
        f"📊 {lb['probability']}: {r.analysis.conversion_probability}%",
    ]
    if d.stage:
        lines.append(f"🗂 {lb['stage']}: {e(d.stage)}")
    if manager:
        lines.append(f"👤 {lb['manager']}: {e(manager)}")
    return lines


def _footer(r: CoachResult, locale: str, tz: str) -> str:
    lb = labels(locale)
    return lb["ai" if r.source is Source.AI else "rules"].format(t=local_time(r.analyzed_at, tz))


def _bullets(items: list[str], mark: str = "•") -> list[str]:
    return [f"  {mark} {e(x)}" for x in items]


def format_detailed(a: Assessment, r: CoachResult, locale: str, tz: str = "UTC", manager: str | None = None) -> str:
    """Everything: metrics, assessment, strengths, concerns, critical, recommendations by urgency, phrases, plan."""
    lb = labels(locale)
    an = r.analysis
    lines = _header(a, r, locale, manager)
    lines += ["", *_metrics_block(a.metrics, lb), "", f"📝 <b>{lb['assessment']}:</b>", e(an.assessment)]
    if an.strengths:
        lines += ["", f"✅ <b>{lb['strengths']}:</b>", *_bullets(an.strengths)]
    if an.concerns:
        lines += ["", f"⚠️ <b>{lb['concerns']}:</b>", *_bullets(an.concerns)]
    if an.red_flags:
        lines += ["", f"🚨 <b>{lb['critical']}:</b>", *_bullets(an.red_flags, "⛔️")]
    if an.recommendations:
        lines += ["", f"💡 <b>{lb['recs']}:</b>"]
        n = 0
        for urgency in Urgency:
            group = [x for x in an.recommendations if x.urgency is urgency]
            if not group:
                continue
            lines += ["", f"<b>{lb['urgency'][urgency]}</b>"]
            for rec in group:
                n += 1
                lines += [f"{n}. {e(rec.action)}", f"   {lb['why']}: {e(rec.why)}", f"   {lb['how']}: {e(rec.how)}"]
    if an.phrases:
        lines += ["", f"💬 <b>{lb['phrases']}:</b>", *_bullets(an.phrases)]
    if an.plan:
        lines += ["", f"🎯 <b>{lb['plan']}:</b>", *_bullets(an.plan, "✓")]
    lines += ["", f"<i>{_footer(r, locale, tz)}</i>"]
    return "\n".join(lines)


def format_brief(a: Assessment, r: CoachResult, locale: str, tz: str = "UTC") -> str:
    """The answer to /analyze: the header, metrics, assessment and the most urgent actions."""
    lb = labels(locale)
    an = r.analysis
    lines = _header(a, r, locale, None)
    lines += ["", *_metrics_block(a.metrics, lb), "", f"📝 {e(an.assessment)}"]
    if an.red_flags:
        lines += ["", *[f"🚨 {e(x)}" for x in an.red_flags[:3]]]
    if an.recommendations:
        lines += ["", f"💡 <b>{lb['recs']}:</b>"]
        for i, rec in enumerate(an.recommendations[:3], 1):
            lines.append(f"{i}. {lb['urgency'][rec.urgency].split(' ', 1)[0]} {e(rec.action)}")
    lines += ["", f"<i>{_footer(r, locale, tz)}</i>"]
    return "\n".join(lines)


def deal_line(a: Assessment, locale: str) -> str:
    lb = labels(locale)
    d, m = a.deal, a.metrics
    parts = [e(money(d.budget, d.currency, locale))]
    if m.days_since_activity >= 1:
        parts.append(lb["line_silent"].format(d=int(m.days_since_activity)))
    if m.overdue_tasks:
        parts.append(lb["line_overdue"].format(n=m.overdue_tasks))
    if d.stage:
        parts.append(e(d.stage))
    return f"{ICON[a.priority]} <b>#{d.id}</b> {e(d.name, MAX_NAME)} — {' · '.join(parts)}"


PAGE = MAX_LINES
"""Deals per page of /deals."""


def pages(items: list[Assessment]) -> int:
    return max(1, -(-len(items) // PAGE))


def format_summary(items: list[Assessment], locale: str, *, page: int = 1) -> str:
    """Active deals, most urgent first, one line each, `PAGE` a page (the /deals answer)."""
    lb = labels(locale)
    if not items:
        return lb["summary_none"]
    counts = {p: sum(1 for a in items if a.priority is p) for p in Priority}
    lines = [lb["summary"].format(n=len(items), h=counts[Priority.HIGH], m=counts[Priority.MEDIUM],
                                  l=counts[Priority.LOW]), ""]
    start = (page - 1) * PAGE
    lines += [deal_line(a, locale) for a in items[start : start + PAGE]]
    if pages(items) > 1:
        lines += ["", t(locale, "Page {page} of {pages}: deals {first}–{last}.", page=page, pages=pages(items),
                        first=start + 1, last=min(len(items), start + PAGE))]
    return "\n".join(lines)


@dataclass(slots=True)
class Digest:
    """What one monitoring run tells a manager: only what changed since the run before."""

    items: list[Assessment]
    first: bool
    turned_red: list[Assessment] = field(default_factory=list)
    went_stale: list[Assessment] = field(default_factory=list)
    new_advice: list[Assessment] = field(default_factory=list)
    analyses: int = 0
    held_back: int = 0
    cap: int = 0

    @property
    def unchanged(self) -> int:
        return len(self.items) - len(self.turned_red) - len(self.went_stale) - len(self.new_advice)


def format_digest(d: Digest, locale: str) -> str:
    """One message per monitoring run: red, stale and new advice since the last run; a count of the rest."""
    if not d.items:
        return labels(locale)["summary_none"]
    counts = {p: sum(1 for a in d.items if a.priority is p) for p in Priority}
    totals = dict(n=len(d.items), h=counts[Priority.HIGH], m=counts[Priority.MEDIUM], l=counts[Priority.LOW])
    head = (t(locale, "📊 <b>Deal monitoring</b>: {n} active — 🔴 {h} · 🟡 {m} · 🟢 {l}", **totals) if d.first
            else t(locale, "📊 <b>Since the last report</b>: {n} active — 🔴 {h} · 🟡 {m} · 🟢 {l}", **totals))
    lines = [head]
    sections = [
        (d.turned_red, t(locale, "🔴 <b>Red now</b>:") if d.first else t(locale, "🔴 <b>Turned red</b>:")),
        (d.went_stale, t(locale, "⚠️ <b>Stale</b>:") if d.first else t(locale, "⚠️ <b>Went stale</b>:")),
        (d.new_advice, t(locale, "💡 <b>New advice</b>:")),
    ]
    for group, title in sections:
        if not group:
            continue
        lines += ["", title, *[deal_line(a, locale) for a in group[:MAX_LINES]]]
        if len(group) > MAX_LINES:
            lines.append(labels(locale)["more"].format(n=len(group) - MAX_LINES))
    if d.unchanged:
        lines += ["", tn(locale, "✅ {n} other deal unchanged.", "✅ {n} other deals unchanged.", d.unchanged)
                      if d.turned_red or d.went_stale or d.new_advice
                      else tn(locale, "✅ {n} deal unchanged.", "✅ {n} deals unchanged.", d.unchanged)]
    if d.analyses:
        lines.append(tn(locale, "The analysis of {n} deal follows.", "Analyses of {n} deals follow.", d.analyses))
    if d.held_back:
        lines.append(tn(locale, "⏸ {n} analysis held back: the daily limit of {cap} is reached. "
                                "Ask /analyze #ID for any deal.",
                        "⏸ {n} analyses held back: the daily limit of {cap} is reached. "
                        "Ask /analyze #ID for any deal.", d.held_back, cap=d.cap))
    return "\n".join(lines)


def format_alert(items: list[Assessment], days: float, locale: str, next_steps: dict[int, str] | None = None) -> str:
    """Stale deals with the first thing to do on each (the /stale answer and stale-check alerts)."""
    lb = labels(locale)
    shown = int(days) if float(days).is_integer() else days
    if not items:
        return lb["stale_none"].format(d=shown)
    lines = [lb["stale_title"].format(d=shown, n=len(items)), ""]
    for a in items[:MAX_LINES]:
        lines.append(deal_line(a, locale))
        step = (next_steps or {}).get(a.deal.id)
        if step:
            lines.append(f"   👉 {lb['next']}: {e(step)}")
    if len(items) > MAX_LINES:
        lines.append(lb["more"].format(n=len(items) - MAX_LINES))
    return "\n".join(lines)
