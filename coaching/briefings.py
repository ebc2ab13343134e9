"""Whom a team lead should coach today, why, and what to talk about (pure).

Need = (100 − score) + 1.5 × days since last coaching (capped at 30; never coached counts as 30)
+ 5 per day of a declining streak + 8 per red flag. Days off and chatters with no data are never
picked: Hubstaff says they did not work, so there is nothing to coach on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time, timedelta

from bot.i18n import N_, date_text, t, tn
from channels.markup import esc
from coaching.cards import (
    FLAG_DECLINING,
    FLAG_NEVER,
    FLAG_NOT_COACHED,
    FLAG_SCORE,
    Card,
    Status,
    fmt_duration,
    fmt_kpi,
    streak_text,
    tier_text,
)
from coaching.chatter_metrics import KPI_LABELS, Kpi

PICKS = 3
LATE_AFTER = timedelta(minutes=5)
"""A briefing that goes out later than this after its time says so (the bot was down, then caught up)."""
SENT_LATE = N_("<i>(sent late: Huddle was offline at {due:%H:%M}, when this briefing was due)</i>")
HEADER = N_("Hi {first} — your briefing for the {shift}{numbers}.")
NUMBERS_FROM = N_(" (numbers from {day})")
NO_ONE = N_("No one to coach from the latest numbers{off}.")
OFF_COUNT = N_(" ({n} on a day off)")
ALL_TEAMS = N_("all teams")
LOG_HINT = N_("After a session, log it: <code>log NAME: what you talked about</code>.")
WEAK_PART = 60.0
"""A KPI sub-score below this is worth naming as a weakness."""
COACHING_CAP_DAYS = 30

TALKING_POINTS: dict[Kpi, str] = {
    Kpi.SALES_PER_HR: N_("Sales/hr is the weakest part: review yesterday's best-selling PPVs together and plan two "
                      "upsell openers for the shift."),
    Kpi.CVR: N_("Few chats turn into buyers: read two chats that didn't convert and find the moment an offer fit."),
    Kpi.UNLOCK_RATE: N_("PPVs aren't getting unlocked: look at the teasers and the first price, and try a cheaper "
                     "entry PPV."),
    Kpi.GOLDEN_RATIO: N_("Golden ratio is low: too much free chatting per sale — "
                         "practise steering toward a PPV sooner."),
    Kpi.MSGS_PER_HR: N_("Message pace is slow: look for idle gaps and use saved openers to keep several chats moving."),
    Kpi.REPLY_TIME: N_("Replies are slow: aim to answer within the team's usual time; keep fewer chats open at once."),
}
BOTTLENECK_POINTS = {
    "PPVs sent per fan": N_("Funnel: fans are chatted but few PPVs go out — offer earlier in the chat."),
    "Unlock rate": N_("Funnel: PPVs go out but don't get unlocked — work on teasers and pricing."),
    "Sales per unlock": N_("Funnel: unlocks are cheap — try bundles or a higher second PPV."),
}


def need(card: Card) -> float:
    score = card.score.value if card.score else 50.0
    days = COACHING_CAP_DAYS if card.days_since_coaching is None else min(card.days_since_coaching,
                                                                           COACHING_CAP_DAYS)
    declining = card.streak.days if card.streak and not card.streak.improving else 0
    return (100 - score) + 1.5 * days + 5 * declining + 8 * len(card.red_flags)


def pick(cards: Iterable[Card], n: int = PICKS) -> list[Card]:
    """The n chatters who need coaching most today (worked days only), most needed first."""
    eligible = [c for c in cards if c.status is Status.SCORED]
    return sorted(eligible, key=lambda c: (-need(c), c.chatter.name))[:n]


def talking_points(card: Card, limit: int = 2, locale: str | None = None) -> list[str]:
    parts = card.score.parts if card.score else {}
    points = [t(locale, TALKING_POINTS[k]) for k in card.weakest()[:limit] if parts[k] < WEAK_PART]
    if card.funnel and card.funnel.bottleneck:
        points.append(t(locale, BOTTLENECK_POINTS[card.funnel.bottleneck]))
    if card.streak and card.streak.improving:
        points.append(t(locale, "Recognise the {days}-day improving streak.", days=card.streak.days))
    return points


def why(card: Card, locale: str | None = None) -> str:
    parts = []
    if card.score:
        parts.append(t(locale, "score {score} ({tier})", score=card.score.rounded,
                       tier=tier_text(card.score.tier, locale)))
    weakest = [k for k in card.weakest()[:1] if card.score and card.score.parts[k] < WEAK_PART]
    if weakest and card.metrics:
        k = weakest[0]
        value, ref = card.metrics.kpi(k), card.refs.get(k)
        shown = fmt_duration(ref, locale) if ref and k is Kpi.REPLY_TIME else fmt_kpi(k, ref, locale)
        team = t(locale, " vs team {value}", value=shown) if ref else ""
        parts.append(t(locale, "weakest: {kpi} {value}{team}", kpi=t(locale, KPI_LABELS[k]),
                       value=fmt_kpi(k, value, locale), team=team))
    if card.streak:
        parts.append(streak_text(card.streak, locale))
    if card.days_since_coaching is None:
        parts.append(t(locale, "never coached"))
    else:
        parts.append(t(locale, "last coached {n}d ago", n=card.days_since_coaching))
    said = {FLAG_SCORE, FLAG_NEVER, FLAG_NOT_COACHED, FLAG_DECLINING}  # already in the parts above
    parts += [f.render(locale) for f in card.red_flags if f.msgid not in said]
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Briefing:
    lead_name: str
    text: str
    picks: tuple[str, ...]


def briefing(lead_name: str, team_names: list[str], cards: list[Card], shift: time | str,
             late_since: time | None = None, locale: str | None = None) -> Briefing:
    """The DM a team lead gets before their shift, in their language; `late_since` when sent late."""
    chosen = pick(cards)
    first = esc(lead_name.split()[0] if lead_name.strip() else lead_name)
    day = cards[0].day if cards else None
    shift_text = t(locale, "{start:%H:%M} shift", start=shift) if isinstance(shift, time) else shift
    lines = [t(locale, HEADER, first=first, shift=shift_text,
               numbers=t(locale, NUMBERS_FROM, day=date_text(locale, day)) if day else "")]
    if late_since is not None:
        lines.append(t(locale, SENT_LATE, due=late_since))
    if not chosen:
        off = sum(1 for c in cards if c.status is Status.DAY_OFF)
        lines.append(t(locale, NO_ONE, off=t(locale, OFF_COUNT, n=off) if off else ""))
        return Briefing(lead_name, "\n".join(lines), ())
    lines.append(tn(locale, "Coach this one today ({teams}):", "Coach these {n} today ({teams}):", len(chosen),
                    teams=", ".join(esc(n) for n in team_names) or t(locale, ALL_TEAMS)))
    for i, card in enumerate(chosen, 1):
        lines.append(f"{i}. <b>{esc(card.chatter.name)}</b> — {why(card, locale)}")
        lines += [f"   • {p}" for p in talking_points(card, locale=locale)]
    lines.append(t(locale, LOG_HINT))
    return Briefing(lead_name, "\n".join(lines), tuple(c.chatter.name for c in chosen))
