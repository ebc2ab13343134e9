"""Crashes and restarts lose nothing and repeat only what was in flight; jobs never run twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.model import Address, OutboundStatus
from bot.scheduler import JobRun, ScheduleSpec, daily
from bot.testing import migrated_sqlite
from coaching.roles import Role
from storage.outbox import OutboxRepo
from tests.flows import Flow

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def test_crash_between_stored_and_sent_sends_once_after_restart_flagged_only_if_handed_over(db_url: str) -> None:
    first = await Flow.create(database_url=db_url, start=START)
    ann = await first.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    await first.app.outbox.stop()  # no sender: the message stays stored
    await first.app.send(ann.addresses[0], "Deal 17 needs a call today", key="alert:17")
    await first.app.send(ann.addresses[0], "Deal 18 too", key="alert:18")
    repo = OutboxRepo(first.app.db)
    claimed = await repo.claim("telegram", first.app.settings.worker_id, START, 10)
    claimed += await repo.claim("telegram", first.app.settings.worker_id, START, 10)  # the next in her lane
    assert [m.status for m in claimed] == [OutboundStatus.SENDING] * 2
    await repo.hand_over(claimed[0], START)
    await first.app.db.close()  # the process dies here: deal 17 handed to the provider, deal 18 not yet

    second = await Flow.create(database_url=db_url, start=START)
    try:
        await second.settle()
        if second.app.db.dialect == "postgresql":
            # Shared database: the first process's lease runs until it has missed a whole lease of
            # heartbeats; until then its send is never taken over...
            assert second.sent_to(ann) == []
            await second.advance(second.app.settings.process_lease + 1)
            assert await second.app.outbox.recover() == 2  # ...and then it is, once
            await second.settle()
        assert second.sent_to(ann) == ["Deal 17 needs a call today", "Deal 18 too"]
        rows = await second.outbox_rows()
        assert [(r.status, r.resent) for r in rows] == [(OutboundStatus.SENT, True), (OutboundStatus.SENT, False)]
        assert [r.attempts for r in rows] == [2, 1]  # deal 18 was never tried before
        await second.app.outbox.recover()
        await second.settle()
        assert second.sent_to(ann) == ["Deal 17 needs a call today", "Deal 18 too"]
    finally:
        await second.close()


async def test_inbound_stored_but_unhandled_is_handled_after_restart(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    first = await Flow.create(database_url=url, plugins=["bot.builtin"], start=START)
    ann = await first.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    first.app.dispatcher._schedule = lambda message: None  # type: ignore[method-assign]  # crash before handling
    await first.receive(ann, "/help")
    await first.app.db.close()

    second = await Flow.create(database_url=url, plugins=["bot.builtin"], start=START)
    try:
        await second.settle()
        [reply] = second.sent_to(ann)
        assert "help" in reply.lower()
    finally:
        await second.close()


async def test_scheduled_coaching_is_not_sent_twice_across_restart(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    spec = ScheduleSpec(cron="0 9 * * *", timezone="America/New_York")

    async def build() -> tuple[Flow, list[str]]:
        flow = await Flow.create(database_url=url, start=datetime(2026, 3, 2, 13, 30, tzinfo=UTC))
        runs: list[str] = []

        async def brief(run: JobRun) -> None:
            runs.append(run.period)
            await flow.app.send(Address("slack", "U1"), f"Briefing {run.period}", key=f"brief:U1:{run.period}")

        flow.app.scheduler.add("briefing", spec, brief, scope="U1", period=daily("America/New_York"))
        return flow, runs

    first, runs1 = await build()
    await first.advance(31 * 60)  # 14:01 UTC = 09:01 New York
    assert runs1 == ["2026-03-02"]
    await first.close()

    second, runs2 = await build()  # restarted at 13:30 UTC again: the clock of a replayed misfire
    try:
        await second.advance(31 * 60)
        assert runs2 == []
        assert await second.app.scheduler.catch_up() == []
        assert second.sent_to(Address("slack", "U1")) == []
        rows = await second.outbox_rows()
        assert [r.body for r in rows] == ["Briefing 2026-03-02"]
    finally:
        await second.close()


async def test_weekday_exceptions_move_a_schedule(flow: Flow) -> None:
    spec = ScheduleSpec(cron="30 7 * * *", timezone="UTC", exceptions=[{"days": ["mon"], "cron": "30 15 * * mon"}])
    trigger = spec.trigger()
    monday = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, monday)
    assert fire == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    tuesday = trigger.get_next_fire_time(fire, datetime(2026, 3, 2, 16, 0, tzinfo=UTC))
    assert tuesday == datetime(2026, 3, 3, 7, 30, tzinfo=UTC)
