"""Chatter storage on SQLite and PostgreSQL: re-uploads update, never duplicate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.model import Person, Role
from coaching.names import normalize_name
from storage.chatters import COACHING, EXPORT, HUBSTAFF, REPORT, ChatterRepo, LeadShift, LeadShiftRepo
from storage.db import Database, make_test_database, metadata
from storage.people import PeopleRepo

CHATTER_TABLES = {"chat_teams", "chatters", "chatter_aliases", "chatter_days", "coaching_log", "chat_lead_shifts"}

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 22)


async def test_roster_days_aliases_and_log(db_url: str) -> None:
    db = make_test_database(db_url)
    repo = ChatterRepo(db, normalize_name)
    try:
        assert await repo.sync_roster({"North": ["Ana Ruiz", "Bea Costa"]}, NOW, deactivate_others=True) == 2
        old = await repo.add_chatter("Old Timer", None, NOW)
        await repo.sync_roster({"North": ["ANA RUIZ", "Bea Costa"]}, NOW, deactivate_others=True)
        chatters = {c.name: c for c in await repo.chatters()}
        assert set(chatters) == {"ANA RUIZ", "Bea Costa", "Old Timer"}  # same person, renamed; no duplicate
        assert not chatters["Old Timer"].active and chatters["Bea Costa"].team == "North"
        ana = chatters["ANA RUIZ"].id

        row = {"chatter_id": ana, "day": DAY, "sales": Decimal("1234.56"), "cvr": 0.125, "hours": 3.0,
               "group": "North"}
        await repo.upsert_days([row], ["sales", "cvr", "hours", "group"], NOW, hours_source=EXPORT)
        corrected = {**row, "hours": 7.0}
        await repo.upsert_days([corrected], ["sales", "cvr", "hours", "group"], NOW, hours_source=EXPORT)
        assert (await repo.days(DAY, DAY))[0].hours == 7.0  # a corrected export corrects its own hours
        await repo.upsert_days([{"chatter_id": ana, "day": DAY, "hours": 7.5}], ["hours"], NOW,
                               hours_source=HUBSTAFF)
        again = {**row, "sales": Decimal("99.99"), "hours": 1.0}
        await repo.upsert_days([again], ["sales", "cvr", "hours"], NOW, hours_source=EXPORT)
        days = await repo.days(DAY, DAY)
        assert len(days) == 1 and await repo.count_days() == 1
        assert days[0].sales == Decimal("99.99") and days[0].cvr == 0.125
        assert days[0].hours == 7.5 and days[0].hours_source == HUBSTAFF  # Hubstaff's hours stay
        assert await repo.latest_day() == DAY
        assert days[0].group == "North" and await repo.teams() == ["North"]

        await repo.add_alias("Ajay Adedeji", ana, None, NOW)
        await repo.add_alias("ajay  ADEDEJI", chatters["Bea Costa"].id, None, NOW)  # a correction replaces
        assert await repo.aliases() == {"ajay  ADEDEJI": chatters["Bea Costa"].id}

        await repo.log(ana, None, COACHING, "PPV pricing", NOW - timedelta(days=3))
        await repo.log(ana, None, COACHING, "reply speed", NOW)
        await repo.log(ana, None, REPORT, "late twice", NOW)
        last = await repo.last_coached()
        assert last[ana] == NOW and last[ana].tzinfo is not None
        assert next(e.notes for e in await repo.entries(ana)) in {"reply speed", "late twice"}
        assert [e.notes for e in await repo.recent(REPORT, DAY)] == ["late twice"]
        assert old not in last
    finally:
        await db.close()


def _chatter_diffs(sync_conn: sa.Connection) -> list[object]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
    return [d for d in compare_metadata(ctx, metadata)
            if any(t in repr(d if isinstance(d, tuple) else d[0]) for t in CHATTER_TABLES)]


async def test_migrations_match_the_chatter_tables_and_lead_shifts_round_trip(db_url: str) -> None:
    db = Database(db_url, durable=False)
    try:
        async with db.read() as conn:
            assert set(await conn.run_sync(lambda s: sa.inspect(s).get_table_names())) >= CHATTER_TABLES
            diffs = await conn.run_sync(_chatter_diffs)
        assert diffs == [], "\n".join(map(repr, diffs))
        lead = await PeopleRepo(db).add(Person(None, "Lia", frozenset({Role.TEAM_LEAD}), [], "UTC"), NOW)
        assert lead.id is not None
        shifts = LeadShiftRepo(db)
        await shifts.put(LeadShift(lead.id, "09:00", ["mon", "tue"], [], "Europe/Madrid"), NOW)
        await shifts.put(LeadShift(lead.id, "10:30", ["sat"], ["North"], "Europe/Madrid"), NOW)
        assert await shifts.all() == [LeadShift(lead.id, "10:30", ["sat"], ["North"], "Europe/Madrid")]
        assert await shifts.remove(lead.id) and await shifts.get(lead.id) is None
    finally:
        await db.close()
