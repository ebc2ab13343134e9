"""Deal storage on SQLite and PostgreSQL: upserts, owner mapping, events, cache, monitors."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from bot.model import Address, Person
from coaching.deals import DealStatus
from coaching.roles import Role
from storage.db import make_test_database
from storage.deals import DealRepo
from storage.people import PeopleRepo
from tests.deals_support import NOW, call, deal, portfolio


async def test_upsert_is_idempotent_and_maps_owners(db_url: str) -> None:
    db = make_test_database(db_url)
    try:
        people = PeopleRepo(db)
        ann = await people.add(Person(None, "Ann Lee", frozenset({Role.SALES_MANAGER}), [], external_id="ann"), NOW)
        tg = await people.add(Person(None, "Tom", frozenset({Role.SALES_MANAGER}), [Address("telegram", "42")]), NOW)
        named = await people.add(Person(None, "Olga Petrova", frozenset({Role.SALES_MANAGER})), NOW)
        repo = DealRepo(db)
        items = [*portfolio(), deal(301, "42"), deal(302, "olga petrova"), deal(303, "nobody")]
        r = await repo.upsert(items, NOW)
        assert r.deals == 8 and r.unassigned == [201, 303]
        r2 = await repo.upsert(items, NOW)
        assert r2.events == r.events
        assert await repo.count() == 8
        d = await repo.get(101)
        assert d is not None and d.person_id == ann.id and d.budget == Decimal("50000.00")
        assert len(d.events) == 4 and d.events[0].at == call(15).at
        assert (await repo.get(301)).person_id == tg.id  # type: ignore[union-attr]
        assert (await repo.get(302)).person_id == named.id  # type: ignore[union-attr]
        mine = await repo.for_person(ann.id)  # type: ignore[arg-type]
        assert [x.id for x in mine] == [101, 102, 103]
        every = await repo.for_person(ann.id, active_only=False)  # type: ignore[arg-type]
        assert [x.id for x in every] == [101, 102, 103, 104]
        # a task done later updates the same event rather than adding one
        d.events[-1] = replace(d.events[-1], done=True, done_at=NOW)
        await repo.upsert([d], NOW)
        again = await repo.get(101)
        assert again is not None and len(again.events) == 4 and again.events[-1].done
        # mapping an owner afterwards assigns their deals
        boris = await people.add(Person(None, "Boris", frozenset({Role.SALES_MANAGER})), NOW)
        await repo.map_owner("import", "boris", boris.id)  # type: ignore[arg-type]
        assert (await repo.get(201)).person_id == boris.id  # type: ignore[union-attr]
        assert set(await repo.owners_with_active_deals()) == {ann.id, boris.id, tg.id, named.id}
        d.status = DealStatus.WON
        await repo.upsert([d], NOW)
        assert [x.id for x in await repo.all_active()] == [102, 103, 201, 301, 302, 303]
    finally:
        await db.close()


async def test_analysis_cache_and_monitors(db_url: str) -> None:
    db = make_test_database(db_url)
    try:
        people = PeopleRepo(db)
        ann = await people.add(Person(None, "Ann", frozenset({Role.SALES_MANAGER}), [], external_id="ann"), NOW)
        assert ann.id is not None
        repo = DealRepo(db)
        await repo.upsert(portfolio(), NOW)
        assert await repo.cached_analysis(101, "fp1") is None
        await repo.save_analysis(101, "fp1", "en", "ai", {"assessment": "ок ✓"}, NOW)
        await repo.save_analysis(101, "fp1", "en", "ai", {"assessment": "again"}, NOW)
        hit = await repo.cached_analysis(101, "fp1")
        assert hit == ({"assessment": "again"}, NOW)
        m = await repo.set_monitor(ann.id, 6, NOW)
        assert await repo.monitors() == [m]
        await repo.set_monitor(ann.id, 12, NOW + timedelta(hours=1))
        [m2] = await repo.monitors()
        assert m2.interval_hours == 12 and m2.started_at == NOW + timedelta(hours=1)
        assert await repo.stop_monitor(ann.id, NOW) is True
        assert await repo.stop_monitor(ann.id, NOW) is False
        assert await repo.monitors() == [] and (await repo.monitor(ann.id)).active is False  # type: ignore[union-attr]
    finally:
        await db.close()
