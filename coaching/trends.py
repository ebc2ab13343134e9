"""Direction and shape over days: trend arrows, streaks, traffic, imbalance and the sales funnel.

Pure functions over `DayMetrics`, so the card, the briefing and the dashboard all tell the same
story. Thresholds follow the coaching reference the team already uses: an arrow when today is more
than 10 % off the previous 7 days' average, a streak from 3 consecutive moves the same way, traffic
HIGH/LOW beyond ±25 % of the team's Fans/hr, imbalance when the busiest chatter has 2× the
quietest's Fans/hr.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from bot.i18n import N_

TREND_THRESHOLD = 0.10
STREAK_MIN = 3
TRAFFIC_BAND = 0.25
IMBALANCE_RATIO = 2.0


class Arrow(StrEnum):
    UP = "up"
    DOWN = "down"


def trend(today: float | None, previous: Iterable[float | None]) -> Arrow | None:
    """UP/DOWN when today is more than 10 % off the average of the previous days given."""
    values = [v for v in previous if v is not None]
    if today is None or not values:
        return None
    avg = sum(values) / len(values)
    if avg == 0:
        return Arrow.UP if today > 0 else None
    change = (today - avg) / abs(avg)
    if change > TREND_THRESHOLD:
        return Arrow.UP
    if change < -TREND_THRESHOLD:
        return Arrow.DOWN
    return None


@dataclass(frozen=True, slots=True)
class Streak:
    improving: bool
    days: int

    @property
    def label(self) -> str:
        return f"{self.days}d {'improving' if self.improving else 'declining'}"


def streak(values: Sequence[float]) -> Streak | None:
    """Consecutive rises (or falls) ending at the last value; None under 3."""
    if len(values) < 2:
        return None
    rising = values[-1] > values[-2]
    if values[-1] == values[-2]:
        return None
    n = 0
    for a, b in zip(reversed(values[:-1]), reversed(values[1:]), strict=True):
        if (b > a) if rising else (b < a):
            n += 1
        else:
            break
    return Streak(rising, n) if n >= STREAK_MIN else None


class Traffic(StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


def traffic(fans_per_hr: float | None, team_avg: float | None) -> Traffic | None:
    if fans_per_hr is None or not team_avg:
        return None
    ratio = fans_per_hr / team_avg
    if ratio > 1 + TRAFFIC_BAND:
        return Traffic.HIGH
    if ratio < 1 - TRAFFIC_BAND:
        return Traffic.LOW
    return Traffic.NORMAL


def imbalance(fans_per_hr: Iterable[float | None]) -> float | None:
    """max/min Fans/hr when it reaches 2×, else None (a warning badge on the team)."""
    values = [v for v in fans_per_hr if v is not None and v > 0]
    if len(values) < 2:
        return None
    ratio = max(values) / min(values)
    return ratio if ratio >= IMBALANCE_RATIO else None


FUNNEL_STAGES = (N_("PPVs sent per fan"), N_("Unlock rate"), N_("Sales per unlock"))


@dataclass(frozen=True, slots=True)
class Funnel:
    fans: int | None
    ppvs_sent: int | None
    ppvs_unlocked: int | None
    sales: Decimal | None
    rates: tuple[float | None, float | None, float | None]
    """sent/fans, unlocked/sent, sales/unlocked."""
    bottleneck: str | None
    """The stage furthest below the team's own rate (None when none is 10 % below)."""


def _ratio(a: float | Decimal | None, b: float | Decimal | None) -> float | None:
    if a is None or not b:
        return None
    return float(a) / float(b)


def funnel_rates(fans: int | None, sent: int | None, unlocked: int | None,
                 sales: Decimal | None) -> tuple[float | None, float | None, float | None]:
    return _ratio(sent, fans), _ratio(unlocked, sent), _ratio(sales, unlocked)


def funnel(fans: int | None, sent: int | None, unlocked: int | None, sales: Decimal | None,
           team_rates: tuple[float | None, float | None, float | None]) -> Funnel:
    rates = funnel_rates(fans, sent, unlocked, sales)
    worst: tuple[float, str] | None = None
    for label, mine, team in zip(FUNNEL_STAGES, rates, team_rates, strict=True):
        if mine is None or not team:
            continue
        rel = mine / team
        if rel < 0.9 and (worst is None or rel < worst[0]):
            worst = (rel, label)
    return Funnel(fans, sent, unlocked, sales, rates, worst[1] if worst else None)
