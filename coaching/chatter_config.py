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

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from pydantic import Field, field_validator

from bot.config_file import StrictModel
from bot.i18n import N_, Msg
from bot.scheduler import DAY_NAMES, ScheduleException, ScheduleSpec, cron
from channels.markup import esc
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
    teams: list[str] = Field(default_factory=list)
    """The teams the briefing covers; empty (or left out) for every team."""
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


# -- a shift typed by a team lead: `shift 09:00 mon-fri North Europe/Madrid` -------------------

BAD_TIME = N_("“{word}” isn't a time; write it like 09:00 or 9am")
NO_TIME = N_("say when your shift starts, like 09:00")
BAD_ZONE = N_("“{word}” isn't a timezone I know; use a name like Europe/Madrid")


class ShiftError(ValueError):
    """A `shift …` request that can't be read; `message` is rendered in the lead's language."""

    def __init__(self, message: Msg) -> None:
        self.message = message
        super().__init__(str(message))
DAY_WORDS = {"daily": WEEK, "everyday": WEEK, "weekdays": WEEK[:5], "weekends": WEEK[5:], "weekend": WEEK[5:]}
_TIME_RE = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.I)


@dataclass(frozen=True, slots=True)
class ShiftRequest:
    start: time
    days: list[str]
    timezone: str | None
    teams: list[str]
    """The words left over, split at commas: the teams asked for (matched by the caller)."""


def _clock(word: str) -> time | None:
    m = _TIME_RE.match(word.strip())
    if not m or (m.group(2) is None and m.group(3) is None and ":" not in word and len(word) > 2):
        return None
    hour, minute, half = int(m.group(1)), int(m.group(2) or 0), (m.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _day_words(word: str) -> list[str] | None:
    w = word.lower().strip(",")
    if w in DAY_WORDS:
        return list(DAY_WORDS[w])
    out: list[str] = []
    for part in filter(None, w.split(",")):
        if "-" in part:
            a, _, b = part.partition("-")
            a, b = a[:3], b[:3]
            if a not in WEEK or b not in WEEK:
                return None
            i, j = WEEK.index(a), WEEK.index(b)
            out += [WEEK[(i + k) % 7] for k in range((j - i) % 7 + 1)]
        elif part[:3] in WEEK and WEEK[WEEK.index(part[:3])].startswith(part[:3]) and (
                len(part) == 3 or part in {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                           "sunday", "tues", "thur", "thurs"}):
            out.append(part[:3])
        else:
            return None
    return out or None


def parse_shift(text: str) -> ShiftRequest:
    """`"09:00 mon-fri North Europe/Madrid"` → a ShiftRequest; ValueError (plain words) otherwise.

    Words in any order: one time (`09:00`, `9am`), days (`mon-fri`, `mon,wed,fri`, `weekdays`,
    `daily`; every day when left out), an IANA timezone, and the rest is team names.
    """
    start: time | None = None
    days: list[str] = []
    zone: str | None = None
    rest: list[str] = []
    words = text.replace("–", "-").split()
    i = 0
    while i < len(words):
        word = words[i]
        joined = f"{word} {words[i + 1]}" if i + 1 < len(words) else ""
        if joined and joined.lower() in {"every day", "each day"}:
            days += WEEK
            i += 2
            continue
        if start is None and joined.lower().endswith((" am", " pm")) and (t := _clock(joined)) is not None:
            start = t  # "9 am"
            i += 1
        elif start is None and (t := _clock(word)) is not None:
            start = t
        elif (d := _day_words(word)) is not None:
            days += d
        elif "/" in word or word.upper() == "UTC":
            try:
                zone = _zone(word if "/" in word else "UTC")
            except ValueError:
                raise ShiftError(Msg(BAD_ZONE, word=esc(word))) from None
        elif re.fullmatch(r"\d{1,2}[:.]\d{2}|\d{1,2}\s*(am|pm)", word, re.I):
            raise ShiftError(Msg(BAD_TIME, word=esc(word)))
        else:
            rest.append(word)
        i += 1
    if start is None:
        raise ShiftError(Msg(NO_TIME))
    teams = [t.strip() for t in " ".join(rest).split(",") if t.strip()]
    return ShiftRequest(start, list(dict.fromkeys(days)) or list(WEEK), zone, teams)


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
