"""A chatter's card and a team's summary for one day, from stored days (pure, no I/O).

The card is what a team lead asks for ("chatter Ana"), what a briefing explains and what the
dashboard draws: status (scored, day off, no data), score and tier, KPI trend arrows, a 7-day
Sales/hr sparkline, streak, traffic, funnel, days since the last coaching, and red flags.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from bot.i18n import N_, Msg, date_text, t, tn
from channels.markup import esc
from coaching.chatter_metrics import KPI_LABELS, LOWER_IS_BETTER, Chatter, DayMetrics, Kpi
from coaching.scoring import References, Score, ScoringConfig, Tier, references, score_day, window
from coaching.trends import (
    Arrow,
    Funnel,
    Streak,
    Traffic,
    funnel,
    funnel_rates,
    imbalance,
    streak,
    traffic,
    trend,
)

TREND_DAYS = 7
SPARK_DAYS = 7
STREAK_LOOKBACK = 10
COACHING_OVERDUE_DAYS = 14
NO_TEAM = "No team"
NO_TEAM_TEXT = N_("No team")

# A card's red flags, kept as texts to translate for each reader (the briefing leaves some out).
FLAG_SCORE = N_("score {score} ({tier})")
FLAG_DECLINING = N_("{n} days declining")
FLAG_SALES_DOWN = N_("Sales/hr down more than 10% on the week")
FLAG_SLOW = N_("slow replies ({reply} vs team {team})")
FLAG_NEVER = N_("never coached")
FLAG_NOT_COACHED = N_("not coached in {n} days")


class Status(StrEnum):
    SCORED = "scored"
    DAY_OFF = "day_off"
    NO_DATA = "no_data"


STATUS_TEXT = {Status.DAY_OFF: N_("Day off"), Status.NO_DATA: N_("No data available")}
TIER_TEXT = {Tier.TOP: N_("Top"), Tier.GOOD: N_("Good"), Tier.FAIR: N_("Fair"), Tier.LOW: N_("Low"),
             Tier.CRITICAL: N_("Critical")}
TRAFFIC_TEXT = {Traffic.HIGH: N_("HIGH"), Traffic.NORMAL: N_("NORMAL"), Traffic.LOW: N_("LOW")}


def tier_text(tier: Tier, locale: str | None = None) -> str:
    return t(locale, TIER_TEXT.get(tier, tier.value))


def streak_text(s: Streak, locale: str | None = None) -> str:
    return (t(locale, "{n}d improving", n=s.days) if s.improving else t(locale, "{n}d declining", n=s.days))


@dataclass(slots=True)
class Card:
    chatter: Chatter
    day: date
    status: Status
    metrics: DayMetrics | None = None
    score: Score | None = None
    arrows: dict[Kpi, Arrow] = field(default_factory=dict)
    spark: list[tuple[date, float | None]] = field(default_factory=list)
    streak: Streak | None = None
    traffic: Traffic | None = None
    funnel: Funnel | None = None
    days_since_coaching: int | None = None
    red_flags: list[Msg] = field(default_factory=list)
    refs: References = field(default_factory=dict)

    @property
    def tier(self) -> Tier | None:
        return self.score.tier if self.score else None

    def weakest(self) -> list[Kpi]:
        """KPIs ordered from the weakest sub-score up."""
        return sorted(self.score.parts, key=lambda k: self.score.parts[k]) if self.score else []


@dataclass(slots=True)
class TeamView:
    name: str
    day: date
    cards: list[Card]
    total_sales: Decimal
    avg_sales_per_hr: float | None
    """Total sales ÷ total hours of the chatters who worked."""
    avg_cvr: float | None
    total_fans: int
    worked: int
    total: int
    avg_fans_per_hr: float | None
    imbalance: float | None


class Scorer:
    """Scores days against their team's rolling references, caching one reference per (team, day)."""

    def __init__(self, chatters: Iterable[Chatter], days: Iterable[DayMetrics], config: ScoringConfig) -> None:
        self.config = config
        self.team_of = {c.id: c.team or NO_TEAM for c in chatters}
        self.by_chatter: dict[int, dict[date, DayMetrics]] = defaultdict(dict)
        self.by_team: dict[str, list[DayMetrics]] = defaultdict(list)
        for d in days:
            if d.chatter_id not in self.team_of:
                continue
            self.by_chatter[d.chatter_id][d.day] = d
            self.by_team[self.team_of[d.chatter_id]].append(d)
        self._refs: dict[tuple[str, date], References] = {}
        self._scores: dict[tuple[int, date], Score | None] = {}

    def refs(self, team: str, on: date) -> References:
        key = (team, on)
        if key not in self._refs:
            self._refs[key] = references(window(self.by_team[team], on, self.config.window_days), self.config.weights)
        return self._refs[key]

    def score(self, chatter_id: int, on: date) -> Score | None:
        key = (chatter_id, on)
        if key not in self._scores:
            d = self.by_chatter[chatter_id].get(on)
            self._scores[key] = score_day(d, self.refs(self.team_of[chatter_id], on), self.config) if d else None
        return self._scores[key]

    def team_days(self, team: str, on: date) -> list[DayMetrics]:
        return [d for d in self.by_team[team] if d.day == on]


def _team_funnel_rates(days: Iterable[DayMetrics]) -> tuple[float | None, float | None, float | None]:
    fans = sent = unlocked = 0
    sales = Decimal(0)
    for d in days:
        if d.day_off or None in (d.fans_chatted, d.ppvs_sent, d.ppvs_unlocked, d.sales):
            continue
        fans += d.fans_chatted or 0
        sent += d.ppvs_sent or 0
        unlocked += d.ppvs_unlocked or 0
        sales += d.sales or 0
    return funnel_rates(fans or None, sent or None, unlocked or None, sales if unlocked else None)


def build_card(scorer: Scorer, chatter: Chatter, on: date, last_coached: datetime | None, now: datetime,
               team_fans_avg: float | None = None, team_rates: tuple[float | None, ...] | None = None) -> Card:
    days = scorer.by_chatter.get(chatter.id, {})
    today = days.get(on)
    since = (now.date() - last_coached.date()).days if last_coached else None
    if today is None:
        return Card(chatter, on, Status.NO_DATA, days_since_coaching=since)
    if today.day_off:
        return Card(chatter, on, Status.DAY_OFF, today, days_since_coaching=since)
    team = scorer.team_of[chatter.id]
    score = scorer.score(chatter.id, on)
    previous = [days.get(on - timedelta(days=i)) for i in range(1, TREND_DAYS + 1)]
    worked_before = [d for d in previous if d is not None and not d.day_off]
    arrows = {}
    for kpi in Kpi:
        a = trend(today.kpi(kpi), [d.kpi(kpi) for d in worked_before])
        if a is not None:
            arrows[kpi] = a
    spark = []
    for i in range(SPARK_DAYS - 1, -1, -1):
        d = days.get(on - timedelta(days=i))
        spark.append((on - timedelta(days=i), d.sales_per_hr if d and not d.day_off else None))
    history = []
    for i in range(STREAK_LOOKBACK - 1, -1, -1):
        s = scorer.score(chatter.id, on - timedelta(days=i))
        if s is not None:
            history.append(s.value)
    card = Card(
        chatter, on, Status.SCORED, today, score, arrows, spark, streak(history),
        traffic(today.fans_per_hr, team_fans_avg),
        funnel(today.fans_chatted, today.ppvs_sent, today.ppvs_unlocked, today.sales,
               team_rates or _team_funnel_rates(window(scorer.by_team[team], on, scorer.config.window_days))),
        since, refs=scorer.refs(team, on),
    )
    card.red_flags = red_flags(card)
    return card


def red_flags(card: Card) -> list[Msg]:
    """What to watch on a card, as texts rendered in each reader's language (`str()` is English)."""
    flags: list[Msg] = []
    if card.score and card.score.tier in (Tier.LOW, Tier.CRITICAL):
        flags.append(Msg(FLAG_SCORE, score=card.score.rounded, tier=Msg(TIER_TEXT[card.score.tier])))
    if card.streak and not card.streak.improving:
        flags.append(Msg(FLAG_DECLINING, n=card.streak.days))
    if card.arrows.get(Kpi.SALES_PER_HR) is Arrow.DOWN:
        flags.append(Msg(FLAG_SALES_DOWN))
    reply, ref = (card.metrics.reply_time_s if card.metrics else None), card.refs.get(Kpi.REPLY_TIME)
    if reply is not None and ref and reply > 1.5 * ref:
        flags.append(Msg(FLAG_SLOW, reply=Duration(reply), team=Duration(ref)))
    if card.days_since_coaching is None:
        flags.append(Msg(FLAG_NEVER))
    elif card.days_since_coaching >= COACHING_OVERDUE_DAYS:
        flags.append(Msg(FLAG_NOT_COACHED, n=card.days_since_coaching))
    return flags


def build_team(name: str, scorer: Scorer, chatters: Sequence[Chatter], on: date,
               last_coached: Mapping[int, datetime], now: datetime) -> TeamView:
    today = [d for d in scorer.team_days(name, on) if not d.day_off]
    fans_hr = [d.fans_per_hr for d in today]
    known = [v for v in fans_hr if v is not None]
    fans_avg = sum(known) / len(known) if known else None
    rates = _team_funnel_rates(window(scorer.by_team[name], on, scorer.config.window_days))
    cards = [build_card(scorer, c, on, last_coached.get(c.id), now, fans_avg, rates) for c in chatters]
    hours = sum(d.hours or 0 for d in today if d.sales is not None)
    sales = sum((d.sales or Decimal(0) for d in today), Decimal(0))
    cvrs = [d.cvr for d in today if d.cvr is not None]
    return TeamView(
        name, on, cards, sales, float(sales) / hours if hours else None,
        sum(cvrs) / len(cvrs) if cvrs else None, sum(d.fans_chatted or 0 for d in today),
        sum(1 for c in cards if c.status is Status.SCORED), len(cards), fans_avg, imbalance(fans_hr),
    )


# -- words ---------------------------------------------------------------------------------------


def fmt_duration(seconds: float, locale: str | None = None) -> str:
    """`1m 30s` (`1 мин 30 с`): a reply time as the reader writes it."""
    s = round(seconds)
    if s >= 60:
        return t(locale, "{m}m {s:02d}s", m=s // 60, s=s % 60)
    return t(locale, "{s}s", s=s)


class Duration:
    """A duration rendered in the reader's language when the text it is in is shown."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def render(self, locale: str | None) -> str:
        return fmt_duration(self.seconds, locale)

    def __str__(self) -> str:
        return self.render(None)


def fmt_kpi(kpi: Kpi, value: float | None, locale: str | None = None) -> str:
    if value is None:
        return "–"
    if kpi is Kpi.SALES_PER_HR:
        return f"${value:,.2f}"
    if kpi in (Kpi.CVR, Kpi.UNLOCK_RATE, Kpi.GOLDEN_RATIO):
        return f"{value * 100:.1f}%"
    if kpi is Kpi.REPLY_TIME:
        return fmt_duration(value, locale)
    return f"{value:.0f}"


def arrow_text(kpi: Kpi, arrow: Arrow | None) -> str:
    if arrow is None:
        return ""
    good = (arrow is Arrow.UP) != (kpi in LOWER_IS_BETTER)
    return (" ↑" if arrow is Arrow.UP else " ↓") + ("" if good else "!")


def team_name(name: str, locale: str | None = None) -> str:
    """A team's name as neutral markup ("No team" translated)."""
    return t(locale, NO_TEAM_TEXT) if name == NO_TEAM else esc(name)


def card_text(card: Card, locale: str | None = None) -> str:
    """The card in neutral markup, in the reader's language: what `chatter NAME` answers."""
    c = card.chatter
    head = f"<b>{esc(c.name)}</b>" + (f" · {esc(c.team)}" if c.team else "") + f" · {date_text(locale, card.day)}"
    if card.status is not Status.SCORED:
        return f"{head}\n{t(locale, STATUS_TEXT[card.status])}."
    assert card.metrics is not None
    lines = [head]
    if card.score:
        lines.append(t(locale, "Score <b>{score}</b> ({tier})", score=card.score.rounded,
                       tier=tier_text(card.score.tier, locale))
                     + (f" · {streak_text(card.streak, locale)}" if card.streak else ""))
    kpis = [f"{t(locale, KPI_LABELS[k])} {fmt_kpi(k, card.metrics.kpi(k), locale)}{arrow_text(k, card.arrows.get(k))}"
            for k in Kpi if card.metrics.kpi(k) is not None]
    if kpis:
        lines.append(" · ".join(kpis))
    if card.traffic:
        lines.append(t(locale, "Traffic {level} ({fans:.1f} fans/hr)",
                       level=t(locale, TRAFFIC_TEXT.get(card.traffic, card.traffic.value)),
                       fans=card.metrics.fans_per_hr))
    if card.funnel and card.funnel.fans:
        f = card.funnel
        lines.append(t(locale, "Funnel: {fans} fans → {sent} PPVs sent → {unlocked} unlocked → ${sales:,.2f}",
                       fans=f.fans, sent=f.ppvs_sent or 0, unlocked=f.ppvs_unlocked or 0, sales=f.sales or 0)
                     + (t(locale, " · bottleneck: {what}", what=t(locale, f.bottleneck)) if f.bottleneck else ""))
    if card.days_since_coaching is None:
        lines.append(t(locale, "Not coached yet."))
    elif card.days_since_coaching == 0:
        lines.append(t(locale, "Coached today."))
    else:
        lines.append(tn(locale, "Last coached {n} day ago.", "Last coached {n} days ago.", card.days_since_coaching))
    if card.red_flags:
        lines.append(t(locale, "Watch: {flags}", flags="; ".join(f.render(locale) for f in card.red_flags)))
    return "\n".join(lines)
