"""The `[chatters]` section of the TOML file: teams, team leads' shifts, scoring and sources.

    [chatters]
    timezone = "UTC"                 # the operations day: a CSV without a date is "yesterday" here
    name_cutoff = 85                 # rapidfuzz token_sort_ratio needed for a fuzzy name match
    dashboard_path = "dashboard.html"  # optional: rewritten after every ingest

    [[chatters.teams]]
    name = "Team North"
    chatters = ["Ana Ruiz", "Bea Costa"]

    [[chatters.leads]]
    name = "Ezekiel"
    slack = "U0TL0001"
    teams = ["Team North"]
    timezone = "America/Bogota"
    shift_start = "09:00"            # briefing DM 30 minutes before
    days = ["mon", "tue", "wed", "thu", "fri", "sat"]
    exceptions = [{ days = ["sat"], shift_start = "11:00" }]

    [chatters.scoring]
    weights = { sales_per_hr = 35, cvr = 15, unlock_rate = 15, golden_ratio = 10, msgs_per_hr = 10, reply_time = 15 }
    window_days = 14
    top_multiple = 1.5

Ingest runs on `[schedules.chatter_ingest]` (a `ScheduleSpec`; default 07:30 UTC daily, Mondays
15:30 UTC because the export is not ready before ~14:00 UTC on Mondays).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from pydantic import Field, field_validator

from bot.config_file import StrictModel
from bot.scheduler import DAY_NAMES, ScheduleException, ScheduleSpec, cron
from coaching.scoring import ScoringConfig

WEEK = DAY_NAMES[1:]  # mon … sun
BRIEFING_LEAD = timedelta(minutes=30)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (KeyError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Madrid)") from None
    return value


def _days(value: list[str]) -> list[str]:
    out = [d.strip().lower()[:3] for d in value]
    bad = [d for d in out if d not in WEEK]
    if bad:
        raise ValueError(f"unknown weekday {bad[0]!r} (use mon, tue, …)")
    return out


class ShiftException(StrictModel):
    days: list[str]
    shift_start: time

    _check_days = field_validator("days")(classmethod(lambda cls, v: _days(v)))


class LeadConfig(StrictModel):
    slack: str
    name: str | None = None
    teams: list[str] = Field(min_length=1)
    timezone: str = "UTC"
    shift_start: time
    days: list[str] = Field(default_factory=lambda: list(WEEK))
    exceptions: list[ShiftException] = Field(default_factory=list)

    _check_days = field_validator("days")(classmethod(lambda cls, v: _days(v)))

    _check_tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    def briefing_trigger(self) -> BaseTrigger:
        """30 minutes before each shift start, in the lead's timezone, with the weekday exceptions."""
        excepted = {x for e in self.exceptions for x in e.days}
        base_days = [d for d in self.days if d not in excepted]
        triggers = [cron(_cron_before(self.shift_start, base_days), self.timezone)] if base_days else []
        triggers += [cron(_cron_before(e.shift_start, e.days), self.timezone) for e in self.exceptions]
        return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def _cron_before(start: time, days: list[str]) -> str:
    """`09:00` on mon → `30 8 * * mon`; `00:10` on mon → `40 23 * * sun` (the evening before)."""
    at = datetime(2000, 1, 3, start.hour, start.minute) - BRIEFING_LEAD  # 2000-01-03 is a Monday
    shift = (at.date() - datetime(2000, 1, 3).date()).days
    moved = [WEEK[(WEEK.index(d) + shift) % 7] for d in days] if days else list(WEEK)
    return f"{at.minute} {at.hour} * * {','.join(moved)}"


class TeamConfig(StrictModel):
    name: str
    chatters: list[str] = Field(default_factory=list)


class HubstaffCsvConfig(StrictModel):
    path: Path


class ChattersConfig(StrictModel):
    timezone: str = "UTC"
    name_cutoff: float = Field(85.0, ge=50, le=100)
    dashboard_path: Path | None = None
    teams: list[TeamConfig] = Field(default_factory=list)
    leads: list[LeadConfig] = Field(default_factory=list)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    drop_dir: Path | None = None
    """Optional folder: CSV exports saved here are ingested by the scheduled ingest."""

    _check_tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))


DEFAULT_INGEST = ScheduleSpec(
    cron="30 7 * * *", timezone="UTC",
    exceptions=[ScheduleException(days=["mon"], cron="30 15 * * mon")],
)
