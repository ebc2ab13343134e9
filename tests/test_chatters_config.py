"""The `[chatters]` config: the example file is valid, shifts become briefing times, mistakes name their key."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from bot.config_file import ConfigError, ConfigFile
from bot.scheduler import ScheduleSpec, fire_times
from coaching.chatter_config import ChattersConfig, LeadConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "huddle.example.toml"


def test_example_file_is_valid() -> None:
    config = ConfigFile(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    chatters = config.section("chatters", ChattersConfig, {})
    assert chatters.leads[0].slack == "U0TL0001" and chatters.scoring.window_days == 14
    assert "chatter_ingest" in config.section("schedules", dict[str, ScheduleSpec], {})


def test_briefing_is_30_minutes_before_the_shift_in_the_leads_zone_with_exceptions() -> None:
    lead = LeadConfig(slack="U1", teams=["T"], timezone="America/New_York", shift_start=time(0, 15),
                      days=["mon", "sat"], exceptions=[{"days": ["sat"], "shift_start": "12:00"}])
    times = fire_times(lead.briefing_trigger(), datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    local = [t.astimezone(lead.briefing_trigger().triggers[0].timezone) for t in times]  # type: ignore[attr-defined]
    assert [(t.strftime("%a %H:%M")) for t in local] == ["Sun 23:45", "Sat 11:30"]


def test_mistakes_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"chatters.leads\[0\].timezone"):
        ConfigFile({"chatters": {"leads": [{"slack": "U1", "teams": ["T"], "shift_start": "09:00",
                                            "timezone": "Mars/Olympus"}]}}).section("chatters", ChattersConfig, {})
    with pytest.raises(ConfigError, match="days"):
        ConfigFile({"chatters": {"leads": [{"slack": "U1", "teams": ["T"], "shift_start": "09:00",
                                            "days": ["funday"]}]}}).section("chatters", ChattersConfig, {})
    with pytest.raises(ConfigError, match="weights"):
        ConfigFile({"chatters": {"scoring": {"weights": {"cvr": 0}}}}).section("chatters", ChattersConfig, {})
    with pytest.raises(ConfigError, match="teamz"):
        ConfigFile({"chatters": {"teamz": []}}).section("chatters", ChattersConfig, {})
