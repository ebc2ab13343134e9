"""A briefing is "sent late" only when Huddle was running before and missed it: tried on a fake clock.

The demo's first lead (Ezekiel, a 09:00 shift in Madrid) is briefed at 08:30 Madrid (07:30 UTC in
November). A fresh demo database started after that time has nothing to catch up: the job was
not Huddle's before the database existed. Real downtime across the time gets exactly one late
briefing that says so, and restarts do not repeat it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.model import Address
from bot.testing import migrated_sqlite
from storage.job_runs import SINCE
from tests.flows import Flow

EZEKIEL = Address("slack", "U0TL0001")
MONDAY_0750 = datetime(2026, 11, 23, 7, 50, tzinfo=UTC)  # 08:50 Madrid: 20 minutes after the briefing was due
PLUGINS = ["handlers.team_leads"]


async def start(url: str, at: datetime) -> Flow:
    return await Flow.create(plugins=PLUGINS, demo=True, start=at, database_url=url)


def briefings(flow: Flow) -> list[str]:
    return [m for m in flow.sent_to(EZEKIEL) if m.startswith("Hi Ezekiel")]


async def briefing_rows(flow: Flow, day: str) -> int:
    return sum(1 for r in await flow.outbox_rows() if r.idempotency_key == f"briefing:U0TL0001:{day}")


async def test_fresh_demo_start_sends_nothing_late_and_real_downtime_one_late_briefing(db_url: str) -> None:
    url = db_url  # SQLite and PostgreSQL: the "scheduled since" rows are plain upserts on both
    first = await start(url, MONDAY_0750)  # the first `python main.py` on a fresh demo database
    try:
        assert await first.app.people.by_address(EZEKIEL) is not None  # the demo seeded its leads
        assert [r for r in await first.app.scheduler.catch_up() if r.job == "chatter_briefing"] == []
        await first.settle()
        assert first.sent_to(EZEKIEL) == []  # not "sent late": Huddle never had Monday's 08:30
        await first.advance(timedelta(hours=23, minutes=39))  # Tuesday 08:29 Madrid
        assert first.sent_to(EZEKIEL) == []
        await first.advance(timedelta(minutes=1))  # Tuesday 08:30 Madrid: on time
        [tuesday] = briefings(first)
        assert tuesday.startswith("Hi Ezekiel — your briefing for the 09:00 shift") and "sent late" not in tuesday
    finally:
        await first.close()

    # Huddle is down over Wednesday 08:30 Madrid and back at 08:45: one late briefing, saying so.
    wednesday = datetime(2026, 11, 25, 7, 45, tzinfo=UTC)
    second = await start(url, wednesday)
    try:
        caught = await second.app.scheduler.catch_up()
        assert [r.scope for r in caught if r.job == "chatter_briefing"] == ["slack:U0TL0001"]
        await second.settle()
        [late] = briefings(second)
        assert "(sent late: Huddle was offline at 08:30, when this briefing was due)" in late
    finally:
        await second.close()

    # Restarted twice more within the grace period: nothing is repeated.
    for minutes in (5, 10):
        again = await start(url, wednesday + timedelta(minutes=minutes))
        try:
            assert [r for r in await again.app.scheduler.catch_up() if r.job == "chatter_briefing"] == []
            await again.settle()
            assert again.sent_to(EZEKIEL) == []
            assert await briefing_rows(again, "2026-11-25") == 1
            assert await briefing_rows(again, "2026-11-23") == 0  # the fresh start's Monday never went out
        finally:
            await again.close()

    # Down for longer than the catch-up window (1 hour by default): Thursday's briefing is not sent late.
    thursday = datetime(2026, 11, 26, 9, 45, tzinfo=UTC)  # 10:45 Madrid, 2 h 15 after it was due
    late_again = await start(url, thursday)
    try:
        assert [r for r in await late_again.app.scheduler.catch_up() if r.job == "chatter_briefing"] == []
        await late_again.settle()
        assert late_again.sent_to(EZEKIEL) == []
    finally:
        await late_again.close()


async def test_a_shift_set_after_its_briefing_time_is_not_caught_up_after_a_restart(tmp_path: Path) -> None:
    """An invited lead who sets a shift at 08:40 for an 08:30 briefing gets none "late" on a restart."""
    url = await migrated_sqlite(tmp_path)
    flow = await start(url, MONDAY_0750 - timedelta(minutes=10))  # 08:40 Madrid
    try:
        lead = await flow.person("Lia Park", {"team_lead"}, slack="U0LIA", timezone="Europe/Madrid")
        reply = (await flow.send(lead, "shift 09:00"))[-1]
        assert reply.startswith("Got it: your shift starts at 09:00 every day")
        since = await flow.app.scheduler.runs.scheduled_since("chatter_briefing", f"person:{lead.id}",
                                                               flow.clock.now())
        assert since == MONDAY_0750 - timedelta(minutes=10)
        assert SINCE not in {r.period for r in await flow.app.scheduler.catch_up()}
        assert flow.sent_to(lead) == [reply]
    finally:
        await flow.close()
    again = await start(url, MONDAY_0750)
    try:
        assert await again.app.scheduler.catch_up() == []
        await again.settle()
        assert again.sent_to(Address("slack", "U0LIA")) == []
    finally:
        await again.close()
