"""Whom a team lead should coach today, why, and what to talk about (pure).

Need = (100 − score) + 1.5 × days since last coaching (capped at 30; never coached counts as 30)
+ 5 per day of a declining streak + 8 per red flag. Days off and chatters with no data are never
picked: Hubstaff says they did not work, so there is nothing to coach on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time, timedelta

from coaching.cards import Card, Status, fmt_duration, fmt_kpi
from coaching.chatter_metrics import KPI_LABELS, Kpi

PICKS = 3
LATE_AFTER = timedelta(minutes=5)
"""A briefing that goes out later than this after its time says so (the bot was down, then caught up)."""
SENT_LATE = "_(sent late: Huddle was offline at {due:%H:%M}, when this briefing was due)_"
HEADER = "Hi {first} — your briefing for the {shift}{numbers}."
NUMBERS_FROM = " (numbers from {day:%a %d %b})"
NO_ONE = "No one to coach from the latest numbers{off}."
OFF_COUNT = " ({n} on a day off)"
COACH_THESE = "Coach these {n} today ({teams}):"
ALL_TEAMS = "all teams"
LOG_HINT = "After a session, log it: `log NAME: what you talked about`."
WEAK_PART = 60.0
"""A KPI sub-score below this is worth naming as a weakness."""
COACHING_CAP_DAYS = 30

TALKING_POINTS: dict[Kpi, str] = {
    Kpi.SALES_PER_HR: "Sales/hr is the weakest part: review yesterday's best-selling PPVs together and plan two "
                      "upsell openers for the shift.",
    Kpi.CVR: "Few chats turn into buyers: read two chats that didn't convert and find the moment an offer fit.",
    Kpi.UNLOCK_RATE: "PPVs aren't getting unlocked: look at the teasers and the first price, and try a cheaper "
                     "entry PPV.",
    Kpi.GOLDEN_RATIO: "Golden ratio is low: too much free chatting per sale — practise steering toward a PPV sooner.",
    Kpi.MSGS_PER_HR: "Message pace is slow: look for idle gaps and use saved openers to keep several chats moving.",
    Kpi.REPLY_TIME: "Replies are slow: aim to answer within the team's usual time; keep fewer chats open at once.",
}
BOTTLENECK_POINTS = {
    "PPVs sent per fan": "Funnel: fans are chatted but few PPVs go out — offer earlier in the chat.",
    "Unlock rate": "Funnel: PPVs go out but don't get unlocked — work on teasers and pricing.",
    "Sales per unlock": "Funnel: unlocks are cheap — try bundles or a higher second PPV.",
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


def talking_points(card: Card, limit: int = 2) -> list[str]:
    parts = card.score.parts if card.score else {}
    points = [TALKING_POINTS[k] for k in card.weakest()[:limit] if parts[k] < WEAK_PART]
    if card.funnel and card.funnel.bottleneck:
        points.append(BOTTLENECK_POINTS[card.funnel.bottleneck])
    if card.streak and card.streak.improving:
        points.append(f"Recognise the {card.streak.label.replace('d ', '-day ')} streak.")
    return points


def why(card: Card) -> str:
    parts = []
    if card.score:
        parts.append(f"score {card.score.rounded} ({card.score.tier.value})")
    weakest = [k for k in card.weakest()[:1] if card.score and card.score.parts[k] < WEAK_PART]
    if weakest and card.metrics:
        k = weakest[0]
        value, ref = card.metrics.kpi(k), card.refs.get(k)
        team = f" vs team {fmt_duration(ref) if k is Kpi.REPLY_TIME else fmt_kpi(k, ref)}" if ref else ""
        parts.append(f"weakest: {KPI_LABELS[k]} {fmt_kpi(k, value)}{team}")
    if card.streak:
        parts.append(card.streak.label)
    if card.days_since_coaching is None:
        parts.append("never coached")
    else:
        parts.append(f"last coached {card.days_since_coaching}d ago")
    flags = [f for f in card.red_flags if not f.startswith(("score", "never coached", "not coached"))
             and "declining" not in f]
    parts += flags
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Briefing:
    lead_name: str
    text: str
    picks: tuple[str, ...]


def briefing(lead_name: str, team_names: list[str], cards: list[Card], shift: str,
             late_since: time | None = None) -> Briefing:
    """The DM a team lead gets before their shift; `late_since` (local due time) when sent late."""
    chosen = pick(cards)
    first = lead_name.split()[0] if lead_name.strip() else lead_name
    day = cards[0].day if cards else None
    lines = [HEADER.format(first=first, shift=shift, numbers=NUMBERS_FROM.format(day=day) if day else "")]
    if late_since is not None:
        lines.append(SENT_LATE.format(due=late_since))
    if not chosen:
        off = sum(1 for c in cards if c.status is Status.DAY_OFF)
        lines.append(NO_ONE.format(off=OFF_COUNT.format(n=off) if off else ""))
        return Briefing(lead_name, "\n".join(lines), ())
    lines.append(COACH_THESE.format(n=len(chosen), teams=", ".join(team_names) or ALL_TEAMS))
    for i, card in enumerate(chosen, 1):
        lines.append(f"{i}. *{card.chatter.name}* — {why(card)}")
        lines += [f"   • {p}" for p in talking_points(card)]
    lines.append(LOG_HINT)
    return Briefing(lead_name, "\n".join(lines), tuple(c.chatter.name for c in chosen))
