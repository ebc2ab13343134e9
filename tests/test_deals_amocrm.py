"""The amoCRM source against a fake amoCRM on 127.0.0.1: paging, mapping, token rotation, pacing, 429."""

from __future__ import annotations

import asyncio
import itertools
import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.model import Person
from coaching.deals import DealStatus, EventKind
from coaching.roles import Role
from coaching.sources.amocrm import AmoCrmClient, AmoCrmError, Pacer, TokenFile, Tokens, fetch_deals, sync_amocrm
from storage.db import make_test_database
from storage.deals import DealRepo
from storage.people import PeopleRepo
from tests.fakes.amocrm_server import FakeAmoCrm

T0 = 1772000000  # 2026-02-25


@pytest.fixture
async def amo() -> AsyncIterator[FakeAmoCrm]:
    async with FakeAmoCrm() as fake:
        fake.add_lead(1, "Acme <fleet>", price=450000, status_id=102, responsible_user_id=7, created_at=T0)
        fake.add_lead(2, "Won deal", price=1000, status_id=142, responsible_user_id=7, created_at=T0)
        for i in range(3, 603):
            fake.add_lead(i, f"Lead {i}", price=i, status_id=101, responsible_user_id=8, created_at=T0)
        fake.add_call(1, T0 + 3600, 300)
        fake.add_call(1, T0 + 7200, 120, incoming=True)
        fake.notes.append({"id": 5, "entity_id": 1, "created_at": T0, "note_type": "common", "params": {}})
        fake.add_status_change(1, T0 + 4000, 101, 102)
        fake.add_task(1, T0 + 4000, T0 + 86400, done=False)
        fake.add_task(1, T0 + 100, T0 + 200, done=True)
        yield fake


async def test_fetch_maps_leads_and_events_across_pages(amo: FakeAmoCrm, tmp_path: Path) -> None:
    async with AmoCrmClient(amo.settings(tmp_path / "t.json"), pacer=Pacer(1000.0)) as client:
        deals = await fetch_deals(client)
    assert len(deals) == 602
    assert sum("/api/v4/leads?" in p for p in amo.paths) == 3  # 250 + 250 + 102
    d = {x.id: x for x in deals}[1]
    assert d.name == "Acme <fleet>" and d.stage == "Negotiation" and d.pipeline == "Sales"
    assert d.budget == Decimal("450000") and d.owner_ref == "7" and d.status is DealStatus.ACTIVE
    assert d.created_at == datetime.fromtimestamp(T0, UTC)
    kinds = sorted(e.kind for e in d.events)
    assert kinds == [EventKind.CALL, EventKind.CALL, EventKind.STAGE_CHANGE, EventKind.TASK, EventKind.TASK]
    calls = [e for e in d.events if e.kind is EventKind.CALL]
    assert {(c.duration_s, c.direction) for c in calls} == {(300, "out"), (120, "in")}
    stage = next(e for e in d.events if e.kind is EventKind.STAGE_CHANGE)
    assert (stage.from_stage, stage.to_stage) == ("New lead", "Negotiation")
    done = next(e for e in d.events if e.kind is EventKind.TASK and e.done)
    assert done.done_at is not None and done.due_at == datetime.fromtimestamp(T0 + 200, UTC)
    assert {x.id: x for x in deals}[2].status is DealStatus.WON
    assert any("filter%5Btype%5D=lead_status_changed" in p or "filter[type]=lead_status_changed" in p
               for p in amo.paths)


async def test_tokens_rotate_and_persist_with_0600(amo: FakeAmoCrm, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    settings = amo.settings(path)
    async with AmoCrmClient(settings, pacer=Pacer(1000.0)) as client:
        await client.get("/api/v4/leads", [("limit", 1)])
    assert amo.refreshes == 1
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] == "r1" and saved["access_token"] == "a1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # amoCRM revokes the access token: a 401 refreshes with the rotated refresh token (not the env one)
    amo.access_token = "revoked-by-server"
    async with AmoCrmClient(settings, pacer=Pacer(1000.0)) as client:
        assert await client.get("/api/v4/leads", [("limit", 1)]) is not None
    assert amo.refreshes == 2 and json.loads(path.read_text())["refresh_token"] == "r2"
    # an expired pair is refreshed before the call
    TokenFile(path).save(Tokens("a2", "r2", expires_at=0))
    async with AmoCrmClient(settings, pacer=Pacer(1000.0)) as client:
        await client.get("/api/v4/leads", [("limit", 1)])
    assert amo.refreshes == 3
    # a revoked refresh token is a clear error, not a loop
    amo.refresh_token = "someone-else"
    amo.access_token = "gone"
    async with AmoCrmClient(settings, pacer=Pacer(1000.0)) as client:
        with pytest.raises(AmoCrmError, match="token refresh refused"):
            await client.get("/api/v4/leads")
    path.write_text("{broken")
    async with AmoCrmClient(settings, pacer=Pacer(1000.0)) as client:
        with pytest.raises(AmoCrmError, match="unreadable"):
            await client.get("/api/v4/leads")


async def test_429_waits_and_retries(amo: FakeAmoCrm, tmp_path: Path) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    amo.fail_next(429, times=2)
    async with AmoCrmClient(amo.settings(tmp_path / "t.json"), sleep=sleep,
                            pacer=Pacer(1000.0)) as client:
        data = await client.get("/api/v4/leads", [("limit", 5)])
    assert data is not None and len(data["_embedded"]["leads"]) == 5
    assert slept == [0.01, 0.01]
    amo.fail_next(503, times=6)
    async with AmoCrmClient(amo.settings(tmp_path / "t.json"), sleep=sleep, pacer=Pacer(1000.0)) as client:
        with pytest.raises(AmoCrmError, match="still failing"):
            await client.get("/api/v4/leads")


async def test_pacer_keeps_under_seven_per_second() -> None:
    now = [0.0]

    async def sleep(s: float) -> None:
        now[0] += s

    pacer = Pacer(6.0, monotonic=lambda: now[0], sleep=sleep)
    times = []
    for _ in range(30):
        await pacer.wait()
        times.append(now[0])
    assert all(b - a >= 1 / 6 - 1e-9 for a, b in itertools.pairwise(times))
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 7


async def test_real_requests_are_paced(amo: FakeAmoCrm, tmp_path: Path) -> None:
    async with AmoCrmClient(amo.settings(tmp_path / "t.json", amocrm_rate=7.0)) as client:
        await asyncio.gather(*(client.get("/api/v4/leads", [("limit", 1)]) for _ in range(8)))
    gaps = [b - a for a, b in itertools.pairwise(amo.request_times)]
    assert min(gaps) >= 1 / 7 - 0.02


async def test_sync_stores_deals_for_mapped_managers(amo: FakeAmoCrm, tmp_path: Path, db_url: str) -> None:
    db = make_test_database(db_url)
    try:
        people = PeopleRepo(db)
        ivan = await people.add(Person(None, "Иван", frozenset({Role.SALES_MANAGER}), external_id="7"),
                                datetime.now(UTC))
        repo = DealRepo(db)
        result = await sync_amocrm(amo.settings(tmp_path / "t.json"), repo, datetime.now(UTC), pacer=Pacer(1000.0))
        assert result.deals == 602 and len(result.unassigned) == 600
        again = await sync_amocrm(amo.settings(tmp_path / "t.json"), repo, datetime.now(UTC), pacer=Pacer(1000.0))
        assert again.events == result.events
        mine = await repo.for_person(ivan.id)  # type: ignore[arg-type]
        assert [d.id for d in mine] == [1] and len(mine[0].events) == 5
        other = await people.add(Person(None, "Other", frozenset({Role.SALES_MANAGER})), datetime.now(UTC))
        await repo.map_owner("amocrm", "8", other.id)  # type: ignore[arg-type]
        assert len(await repo.for_person(other.id)) == 600  # type: ignore[arg-type]
    finally:
        await db.close()


def test_not_configured_is_an_error(tmp_path: Path) -> None:
    from coaching.sources.amocrm import AmoSettings

    with pytest.raises(AmoCrmError, match="not configured"):
        AmoCrmClient(AmoSettings(_env_file=None, amocrm_token_file=tmp_path / "t.json"))  # type: ignore[call-arg]


async def test_scheduled_sync_feeds_the_commands(amo: FakeAmoCrm, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from tests.deals_support import make_flow

    for key, value in {"BASE_URL": amo.base_url, "CLIENT_ID": "cid", "CLIENT_SECRET": "shh", "REFRESH_TOKEN": "r0",
                       "TOKEN_FILE": str(tmp_path / "tokens.json"), "SYNC_MINUTES": "30", "RATE": "7"}.items():
        monkeypatch.setenv(f"HUDDLE_AMOCRM_{key}", value)
    amo.leads = amo.leads[:2]
    flow, ann, _ = await make_flow(start=datetime.fromtimestamp(T0 + 86400 * 5, UTC))
    try:
        await DealRepo(flow.app.db).map_owner("amocrm", "7", ann.id)  # type: ignore[arg-type]
        assert "#1 " not in (await flow.send(ann, "/deals"))[0]
        await flow.advance(timedelta(minutes=30))
        [reply] = await flow.send(ann, "/deals")
        assert "<b>#1</b> Acme &lt;fleet&gt;" in reply and "Negotiation" in reply
    finally:
        await flow.close()


async def test_operator_maps_crm_users_to_people_and_sync_names_the_unmapped(amo: FakeAmoCrm, tmp_path: Path) -> None:
    """`people add … --external amocrm:555`, `amocrm-sync`, `people link`: as an operator types them."""
    import asyncio

    from bot.model import Address
    from tests.flows import Flow
    from tests.test_core_cli import huddle

    amo.leads = [lead for lead in amo.leads if lead["id"] <= 4]
    for lead in amo.leads:
        lead["responsible_user_id"] = 555 if lead["id"] <= 2 else 556
    env = {"HUDDLE_DEMO": "false", "HUDDLE_AMOCRM_BASE_URL": amo.base_url, "HUDDLE_AMOCRM_CLIENT_ID": "cid",
           "HUDDLE_AMOCRM_CLIENT_SECRET": "shh", "HUDDLE_AMOCRM_REFRESH_TOKEN": "r0",
           "HUDDLE_AMOCRM_TOKEN_FILE": str(tmp_path / "tokens.json"), "HUDDLE_AMOCRM_RATE": "7"}

    def run(*args: str) -> tuple[int, str, str]:
        out = huddle(tmp_path, *args, **env)
        return out.returncode, out.stdout, out.stderr

    code, _, err = await asyncio.to_thread(run, "db", "upgrade")  # only run / db upgrade create a database
    assert code == 0, err
    code, out, err = await asyncio.to_thread(run, "people", "add", "Ann Lee", "--role", "sales_manager",
                                             "--telegram", "100001", "--external", "amocrm:555")
    assert code == 0 and "linked amoCRM user 555 to #1 Ann Lee" in out, err
    code, out, err = await asyncio.to_thread(run, "amocrm-sync")
    assert code == 0, err
    assert "1 amocrm user(s) are linked to nobody, so their deals reach no one: 556 (2 deals)" in out
    assert "people link NAME --external amocrm:556" in out
    for bad, needle in ((("--external", "amocrm"),), "SOURCE:ID"), ((("--external", "salesforce:1"),), "unknown"):
        code, _, err = await asyncio.to_thread(run, "people", "link", "Ann Lee", *bad[0])
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    code, out, err = await asyncio.to_thread(run, "people", "add", "Boris Orlov", "--role", "sales_manager",
                                             "--telegram", "100002")
    code, out, err = await asyncio.to_thread(run, "people", "link", "Boris Orlov", "--external", "amocrm:556")
    assert code == 0 and "linked amoCRM user 556 to #2 Boris Orlov (2 stored deal(s) now theirs)" in out, err

    # and from the managers' side: each sees exactly the CRM user's deals
    flow = await Flow.create(plugins=["handlers.sales_managers"], database_url=str(tmp_path / "h.db"),
                             start=datetime.fromtimestamp(T0 + 86400 * 5, UTC))
    try:
        [ann] = await flow.send(Address("telegram", "100001"), "/deals")
        [boris] = await flow.send(Address("telegram", "100002"), "/deals")
        assert "<b>#1</b> Acme &lt;fleet&gt;" in ann and "#3</b>" not in ann
        assert "#3</b>" in boris and "#4</b>" in boris and "#1</b>" not in boris
    finally:
        await flow.close()
