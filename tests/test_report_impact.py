"""`python main.py report impact` from the user's side: budtender coaching and chatter briefings,
each from the one event log (`coaching.sent`), against comparable moments without one."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any

import pytest

from bot.model import Address
from coaching.demo_chatters import synthetic_days
from coaching.roles import Role
from storage.budtenders import BudtenderRepo
from storage.chatters import ChatterRepo
from storage.events import BRIEFING, COACHING_SENT, EventLog
from tests.flows import Flow
from tests.test_chatters_flow import CONFIG, ROSTER, START

COLUMNS = ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s", "fans_chatted", "ppvs_sent",
           "ppvs_unlocked", "hours"]


async def _cli(flow: Flow, *argv: str) -> Any:
    name, *rest = argv
    command = flow.app.cli_commands[name]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return await command.run(flow.app, parser.parse_args(rest))


async def test_report_impact_shows_briefings_next_to_budtender_coaching(capsys: pytest.CaptureFixture[str]) -> None:
    flow = await Flow.create(plugins=["handlers.team_leads", "handlers.store", "handlers.playbooks"],
                             config=CONFIG, start=START)
    try:
        tl = await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001")
        repo: ChatterRepo = flow.app.deps["chatters"].repo
        ids = {c.name: c.id for c in await repo.chatters()}
        north = [ids[n] for n in ROSTER]
        await repo.upsert_days(synthetic_days(north, START.date() - timedelta(days=1), 14), COLUMNS, START)
        # the numbers that count: Team North sold $800 the Monday before, $1,200 on the briefed Monday
        monday, before = START.date(), START.date() - timedelta(days=7)
        await repo.upsert_days([{"chatter_id": c, "day": d, "sales": s} for c in north
                                for d, s in ((before, "100.00"), (monday, "150.00"))], ["sales"], START)
        south = [{"chatter_id": ids["Sol Reyes"], "day": monday, "sales": "999.00"}]  # another team: not counted
        await repo.upsert_days(south, ["sales"], START)

        await flow.advance(timedelta(hours=2, minutes=30))  # Monday 09:30 Madrid: the 10:00 shift's briefing
        await flow.advance(timedelta(hours=3))  # 19:30 Manila: the 20:00 shift's
        assert len(flow.sent_to(tl)) == 1
        briefings = [e for e in await EventLog(flow.app.db).of(types=[COACHING_SENT])
                     if e.payload["kind"] == BRIEFING]
        assert sorted(e.source_id or "" for e in briefings) == ["briefing:U0TL0001:2026-11-23",
                                                                 "briefing:U0TL0002:2026-11-23"]
        assert {(e.payload["day"], e.payload["variant"], tuple(e.payload["teams"])) for e in briefings} == {
            ("2026-11-23", "on_time", ("Team North",))}
        await flow.advance(timedelta(days=1))  # Tuesday's briefings: no numbers for Tuesday yet
        # a budtender's coaching message, recorded as the coaching job records it
        sam = await flow.person("Sam", {Role.BUDTENDER}, phone="+16195550190")
        assert sam.id is not None
        await BudtenderRepo(flow.app.db).record(key="midshift:x:1:1", person_id=sam.id, shift_id=None,
                                                kind="midshift", variant="A", text="Halfway there",
                                                sent_at=flow.clock.now())
        capsys.readouterr()
        assert await _cli(flow, "report", "impact") == 0
        out = capsys.readouterr().out
        [row] = [line.split() for line in out.splitlines() if line.startswith("briefing ")]
        assert row[:5] == ["briefing", "on_time", "2", "1200.00", "800.00"] and row[5] == "400.00"
        [bud] = [line.split() for line in out.splitlines() if line.startswith("midshift ")]
        assert bud[:5] == ["midshift", "A", "1", "0.00", "0.00"]
        assert "briefing(s) without such a day left out" in out  # Tuesday's: nothing to compare yet
    finally:
        await flow.close()


async def test_a_briefing_is_one_event_even_when_its_job_runs_again() -> None:
    flow = await Flow.create(plugins=["handlers.team_leads"], config=CONFIG, start=START)
    try:
        await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001")
        await flow.advance(timedelta(hours=2, minutes=30))
        job = flow.app.scheduler.jobs["chatter_briefing:slack:U0TL0001"]
        fire = START + timedelta(hours=2, minutes=30)
        from bot.scheduler import JobRun

        await job.func(JobRun(job.name, job.scope, job.period(fire), fire))  # taken over after a crash
        await flow.settle()
        found = [e for e in await EventLog(flow.app.db).of(types=[COACHING_SENT]) if e.payload["kind"] == BRIEFING]
        assert [e.source_id for e in found] == ["briefing:U0TL0001:2026-11-23"]
        assert date.fromisoformat(found[0].payload["day"]) == START.date()
        assert len(flow.sent_to(Address("slack", "U0TL0001"))) == 1
    finally:
        await flow.close()
