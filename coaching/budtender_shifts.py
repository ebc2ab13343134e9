"""Budtender settings and shift schedules from the TOML config (pure: validation and expansion).

    [budtenders]
    timezone = "America/Los_Angeles"   # the store's day: "today", weekly reviews, nightly watermarks
    signup_target = 3                  # rewards sign-ups per shift
    midshift_every_hours = 2
    nudge_window = 5                   # orders in the "last N customers" average
    nudge_drop_percent = 30            # nudge when that average is this far below the watermark
    nudge_cooldown_minutes = 45
    nudge_cap = 2                      # nudges per shift at most
    celebrate_gain_percent = 25
    upsell_tier = 3                    # product price tier that counts as an upsell (1 value, 2 mid, 3 premium)
    watermark_weeks = 4
    answer_window_hours = 2            # a reply this soon after a coaching message marks it answered
    weekly_review = "0 10 * * 1"       # cron, in `timezone`: Monday 10:00
    watermark_refresh = "30 3 * * *"   # cron, nightly

    [[shifts]]                         # a weekly pattern; one-off shifts: `python main.py import shifts FILE.csv`
    budtender = "+13235550111"         # phone, POS employee id, or full name of a budtender
    days = ["mon", "tue", "wed", "thu", "fri"]
    start = "10:00"
    end = "18:00"                      # an end at or before the start ends the next day
    store = "silverlake"
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from bot.config_file import StrictModel
from coaching.budtenders import CoachingRules

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (KeyError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class BudtenderConfig(StrictModel):
    timezone: str = "America/Los_Angeles"
    signup_target: int = Field(3, ge=0, le=100)
    midshift_every_hours: float = Field(2, gt=0, le=24)
    nudge_window: int = Field(5, ge=1, le=50)
    nudge_drop_percent: Decimal = Field(Decimal("30"), gt=0, lt=100)
    nudge_cooldown_minutes: float = Field(45, ge=0)
    nudge_cap: int = Field(2, ge=0, le=20)
    celebrate_gain_percent: Decimal = Field(Decimal("25"), gt=0)
    celebrate_min_orders: int = Field(5, ge=1)
    upsell_tier: int = Field(3, ge=1, le=10)
    watermark_weeks: int = Field(4, ge=1, le=52)
    answer_window_hours: float = Field(2, gt=0)
    late_grace_minutes: float = Field(30, ge=1)
    ai_timeout_seconds: float = Field(8, gt=0)
    tick_cron: str = "*/5 * * * *"
    weekly_review: str = "0 10 * * 1"
    watermark_refresh: str = "30 3 * * *"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

    def rules(self) -> CoachingRules:
        return CoachingRules(
            signup_target=self.signup_target,
            midshift_every=timedelta(hours=self.midshift_every_hours),
            nudge_window=self.nudge_window,
            nudge_drop=self.nudge_drop_percent / 100,
            nudge_cooldown=timedelta(minutes=self.nudge_cooldown_minutes),
            nudge_cap=self.nudge_cap,
            celebrate_gain=self.celebrate_gain_percent / 100,
            celebrate_min_orders=self.celebrate_min_orders,
            upsell_tier=self.upsell_tier,
            watermark_weeks=self.watermark_weeks,
            late_grace=timedelta(minutes=self.late_grace_minutes),
        )


class ShiftPattern(StrictModel):
    budtender: str = Field(min_length=1)
    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: time
    end: time
    timezone: str | None = None
    store: str | None = None

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        out = []
        for d in value:
            key = d.strip().lower()[:3]
            if key not in DAYS:
                raise ValueError(f"unknown day {d!r} (use mon..sun)")
            out.append(key)
        return out

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


def local_span(day: date, start: time, end: time, tz: str) -> tuple[datetime, datetime]:
    """A shift's start and end in UTC; an end at or before the start is on the next day."""
    zone = ZoneInfo(tz)
    starts = datetime.combine(day, start, zone)
    ends = datetime.combine(day if end > start else day + timedelta(days=1), end, zone)
    return starts.astimezone(ZoneInfo("UTC")), ends.astimezone(ZoneInfo("UTC"))


def expand(pattern: ShiftPattern, first: date, days: int, default_tz: str) -> list[tuple[datetime, datetime]]:
    """The concrete (start, end) of a weekly pattern on each of `days` days from `first`."""
    tz = pattern.timezone or default_tz
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        if DAYS[day.weekday()] in pattern.days:
            out.append(local_span(day, pattern.start, pattern.end, tz))
    return out
