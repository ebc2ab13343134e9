"""The 0–100 performance score and its tiers.

Normalisation (documented in the README): each KPI is compared with the team's reference — the
median of that KPI over the team's worked days in the last `window_days` days (14 by default,
up to and including the day scored). A chatter exactly at the median scores 100 / `top_multiple`
(66.7 with the default 1.5) on that KPI; `top_multiple` × the median or better scores 100; zero
scores 0, linearly in between. Reply time is inverted (median ÷ value), so being faster than the
team scores higher. The score is the weighted average of the KPI sub-scores a day has; a KPI the
export did not carry is left out and the remaining weights are rescaled, never counted as zero.
Days off (< 1 h in Hubstaff) are neither scored nor used as references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from statistics import median

from pydantic import Field, field_validator

from bot.config_file import StrictModel
from coaching.chatter_metrics import LOWER_IS_BETTER, DayMetrics, Kpi

DEFAULT_WEIGHTS: dict[Kpi, float] = {
    Kpi.SALES_PER_HR: 35.0,
    Kpi.CVR: 15.0,
    Kpi.UNLOCK_RATE: 15.0,
    Kpi.GOLDEN_RATIO: 10.0,
    Kpi.MSGS_PER_HR: 10.0,
    Kpi.REPLY_TIME: 15.0,
}


class ScoringConfig(StrictModel):
    """`[chatters.scoring]` in the TOML file."""

    weights: dict[Kpi, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    window_days: int = Field(14, ge=1, le=120)
    top_multiple: float = Field(1.5, gt=1.0)

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[Kpi, float]) -> dict[Kpi, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be >= 0 with at least one above 0")
        return value


class Tier(StrEnum):
    TOP = "Top"
    GOOD = "Good"
    FAIR = "Fair"
    LOW = "Low"
    CRITICAL = "Critical"


def tier_for(score: float) -> Tier:
    s = round(score)
    if s >= 80:
        return Tier.TOP
    if s >= 60:
        return Tier.GOOD
    if s >= 40:
        return Tier.FAIR
    if s >= 20:
        return Tier.LOW
    return Tier.CRITICAL


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    tier: Tier
    parts: dict[Kpi, float]
    """KPI → its 0–100 sub-score (only KPIs the day had)."""

    @property
    def rounded(self) -> int:
        return round(self.value)


References = dict[Kpi, float | None]


def references(days: Iterable[DayMetrics], kpis: Iterable[Kpi]) -> References:
    """The team median of each KPI over the worked days given."""
    values: dict[Kpi, list[float]] = {k: [] for k in kpis}
    for d in days:
        if d.day_off:
            continue
        for k in values:
            v = d.kpi(k)
            if v is not None:
                values[k].append(v)
    return {k: (median(v) if v else None) for k, v in values.items()}


def window(days: Iterable[DayMetrics], on: date, window_days: int) -> list[DayMetrics]:
    start = on - timedelta(days=window_days - 1)
    return [d for d in days if start <= d.day <= on]


def sub_score(kpi: Kpi, value: float, reference: float, top_multiple: float) -> float | None:
    if reference <= 0:
        return None
    ratio = (1.0 if value <= 0 else reference / value) if kpi in LOWER_IS_BETTER else value / reference
    return max(0.0, min(100.0, 100.0 * ratio / top_multiple))


def score_day(day: DayMetrics, refs: Mapping[Kpi, float | None], config: ScoringConfig) -> Score | None:
    """None for a day off or a day with no KPI to score."""
    if day.day_off:
        return None
    parts: dict[Kpi, float] = {}
    for kpi, weight in config.weights.items():
        value, ref = day.kpi(kpi), refs.get(kpi)
        if weight <= 0 or value is None or ref is None:
            continue
        s = sub_score(kpi, value, ref, config.top_multiple)
        if s is not None:
            parts[kpi] = s
    if not parts:
        return None
    total = sum(config.weights[k] for k in parts)
    value = sum(config.weights[k] * s for k, s in parts.items()) / total
    return Score(value, tier_for(value), parts)
