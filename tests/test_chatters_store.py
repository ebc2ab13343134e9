"""Chatter storage on SQLite and PostgreSQL: re-uploads update, never duplicate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from coaching.names import normalize_name
from storage.chatters import COACHING, REPORT, ChatterRepo
from storage.db import make_test_database

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
        await repo.upsert_days([row], ["sales", "cvr", "hours", "group"], NOW)
        await repo.upsert_days([{"chatter_id": ana, "day": DAY, "hours": 7.5}], ["hours"], NOW)
        again = {**row, "sales": Decimal("99.99"), "hours": 1.0}
        await repo.upsert_days([again], ["sales", "cvr", "hours"], NOW, keep_existing={"hours"})
        days = await repo.days(DAY, DAY)
        assert len(days) == 1 and await repo.count_days() == 1
        assert days[0].sales == Decimal("99.99") and days[0].cvr == 0.125
        assert days[0].hours == 7.5  # Hubstaff's hours stay
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
