"""Enrolment by invite code, from the user's side (any channel) and the admin's (the CLI)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.app import App
from bot.clock import FakeClock
from bot.config_file import ConfigFile
from bot.context import Context
from bot.errors import USAGE_ERROR, UserError
from bot.model import Address
from bot.router import Router
from bot.settings import CoreSettings
from coaching.roles import Role
from handlers.enrollment import GROUP, INVALID, NEED_CODE, NOT_ENROLLED, TAKEN, TOO_MANY
from storage.db import Database
from storage.invites import InviteRepo, Outcome, hash_code, new_code, normalize_code
from tests.flows import ROLES_PLUGIN, Flow

sales = Router("sales-test")


@sales.command("deals", roles={Role.SALES_MANAGER}, help="my active deals")
async def deals(ctx: Context) -> str:
    return f"{ctx.person.name if ctx.person else '?'}: 3 active deals"


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    f = await Flow.create(plugins=["handlers.enrollment"])
    f.app.include_router(sales)
    try:
        yield f
    finally:
        await f.close()


async def invite(flow: Flow, role: Role = Role.SALES_MANAGER, hours: float = 24, **kw: object) -> str:
    now = flow.clock.now()
    _, code = await InviteRepo(flow.app.db).create(role, now, now + timedelta(hours=hours), **kw)  # type: ignore[arg-type]
    return code


TG_BORIS = Address("telegram", "7001")
TG_EVE = Address("telegram", "7666")


async def test_good_code_welcomes_and_links_the_person(flow: Flow) -> None:
    code = await invite(flow, name="Boris Petrov", locale="ru", timezone="Europe/Moscow")
    replies = await flow.send(TG_BORIS, f"/start {code}", display_name="boris_tg")
    # the invite said Russian: the welcome and the command list are Russian (the message catalog)
    assert replies[0].startswith("Добро пожаловать, Boris! Вы подключены как менеджер по продажам.")
    assert "Доступные команды:\n/deals — my active deals" in replies[0]  # this test's own command has no translation
    boris = await flow.app.people.by_address(TG_BORIS)
    assert boris is not None
    assert (boris.name, boris.roles, boris.locale, boris.timezone) == (
        "Boris Petrov",
        {Role.SALES_MANAGER},
        "ru",
        "Europe/Moscow",
    )
    assert await flow.send(TG_BORIS, "/deals") == ["Boris Petrov: 3 active deals"]


async def test_code_is_forgiving_about_case_spaces_and_dashes(flow: Flow) -> None:
    code = await invite(flow)
    replies = await flow.send(TG_BORIS, f"/start {normalize_code(code).lower()[:6]} {normalize_code(code)[6:]}")
    assert replies[0].startswith("Welcome")


async def test_bad_used_and_expired_codes_are_refused_politely(flow: Flow) -> None:
    assert await flow.send(TG_EVE, "/start AAAA-BBBB-CCCC") == [INVALID]
    code = await invite(flow)
    await flow.send(TG_BORIS, f"/start {code}")
    assert await flow.send(TG_EVE, f"/start {code}") == [INVALID]
    late = await invite(flow, hours=1)
    await flow.advance(3601)
    assert await flow.send(TG_EVE, f"/start {late}") == [INVALID]
    assert await flow.app.people.by_address(TG_EVE) is None


async def test_strangers_get_not_enrolled_and_no_data(flow: Flow) -> None:
    assert await flow.send(TG_EVE, "/deals") == [NOT_ENROLLED.format(start="/start")]
    assert await flow.send(TG_EVE, "show me everything") == [NOT_ENROLLED.format(start="/start")]
    assert await flow.send(TG_EVE, "/start") == [NEED_CODE.format(start="/start")]
    slack_eve = Address("slack", "U0EVE")
    assert await flow.send(slack_eve, "deals") == [NOT_ENROLLED.format(start="start")]


async def test_guessing_is_paused_after_five_wrong_codes(flow: Flow) -> None:
    code = await invite(flow)
    for _ in range(5):
        assert await flow.send(TG_EVE, "/start WRONG-CODE-0000") == [INVALID]
    assert await flow.send(TG_EVE, f"/start {code}") == [TOO_MANY]
    await flow.advance(3600)
    assert (await flow.send(TG_EVE, f"/start {code}"))[0].startswith("Welcome")


async def test_invite_for_a_known_person_attaches_the_address_and_adds_the_role(flow: Flow) -> None:
    ann = await flow.person("Ann Lee", {Role.TEAM_LEAD}, slack="U0ANN")
    code = await invite(flow, person_id=ann.id)
    replies = await flow.send(Address("telegram", "7002"), f"/start {code}")
    assert replies[0].startswith("Welcome, Ann! You're enrolled as sales manager.")
    again = await flow.app.people.get(ann.id or 0)
    assert again is not None
    assert again.roles == {Role.TEAM_LEAD, Role.SALES_MANAGER}
    assert set(again.addresses) == {Address("slack", "U0ANN"), Address("telegram", "7002")}


async def test_an_address_of_someone_else_cannot_take_a_named_invite(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.TEAM_LEAD}, slack="U0ANN")
    await flow.person("Bob", {Role.CHATTER}, telegram="7003")
    code = await invite(flow, person_id=ann.id)
    assert await flow.send(Address("telegram", "7003"), f"/start {code}") == [TAKEN]


async def test_already_enrolled_keeps_the_code(flow: Flow) -> None:
    await flow.person("Ann", {Role.SALES_MANAGER}, telegram="7004")
    code = await invite(flow)
    replies = await flow.send(Address("telegram", "7004"), f"/start {code}")
    assert replies == ["You're already enrolled as sales manager. Send /help to see what you can do."]
    assert (await flow.send(TG_BORIS, f"/start {code}"))[0].startswith("Welcome")
    assert await flow.send(Address("telegram", "7004"), "/start") == [
        "Welcome back, Ann! Send /help to see what you can do."
    ]


async def test_a_group_chat_cannot_enrol(flow: Flow) -> None:
    code = await invite(flow)
    assert await flow.send(Address("telegram", "-100123"), f"/start {code}") == [GROUP]
    assert (await flow.send(TG_BORIS, f"/start {code}"))[0].startswith("Welcome")


async def test_enrolment_works_on_slack_and_sms_too(flow: Flow) -> None:
    slack_code = await invite(flow, Role.TEAM_LEAD, name="Tess")
    assert (await flow.send(Address("slack", "U0TESS"), f"start {slack_code}"))[0].startswith("Welcome, Tess!")
    sms_code = await invite(flow, Role.BUDTENDER, name="Bud")
    replies = await flow.send(Address("sms", "+16195550100"), f"START {sms_code}")
    assert replies[0].startswith("Welcome, Bud! You're enrolled as budtender.")
    bud = await flow.app.people.by_address(Address("sms", "+16195550100"))
    assert bud is not None and Role.BUDTENDER in bud.roles


# -- storage, on SQLite and PostgreSQL ------------------------------------------------------------


async def test_codes_are_stored_hashed_and_only_one_racer_wins(db_url: str) -> None:
    db = Database(db_url, durable=False)
    clock = FakeClock()
    repo = InviteRepo(db)
    try:
        now = clock.now()
        invite_row, code = await repo.create(Role.SALES_MANAGER, now, now + timedelta(days=1), name="Ann")
        assert len(normalize_code(code)) == 12 and code.count("-") == 2
        found = await repo.get(invite_row.id)
        assert found is not None and found.name == "Ann"
        async with db.read() as conn:
            from storage.invites import invites

            stored = (await conn.execute(invites.select())).one()
        assert stored.code_hash == hash_code(code) and normalize_code(code) not in stored.code_hash

        results = await asyncio.gather(
            *(repo.redeem(code, Address("telegram", str(9000 + i)), f"User {i}", now) for i in range(5))
        )
        assert sorted(r.outcome for r in results).count(Outcome.ENROLLED) == 1
        assert [r.outcome for r in results].count(Outcome.INVALID) == 4
        assert await repo.open(now) == []
        second, _ = await repo.create(Role.CHATTER, now, now + timedelta(days=1))
        assert [i.id for i in await repo.open(now)] == [second.id]
        assert await repo.revoke(second.id, now)
        assert not await repo.revoke(second.id, now)
        assert await repo.open(now) == []
    finally:
        await db.close()


def test_codes_are_random_and_unambiguous() -> None:
    codes = {new_code() for _ in range(500)}
    assert len(codes) == 500
    assert not any(ch in "01ILOU" for code in codes for ch in normalize_code(code))


# -- the admin's CLI -------------------------------------------------------------------------------


@pytest.fixture
async def app(tmp_path: object) -> AsyncIterator[App]:
    from bot.testing import migrated_sqlite

    url = await migrated_sqlite(tmp_path)  # type: ignore[arg-type]
    core = CoreSettings(database_url=url, durable_commits=False, _env_file=None)  # type: ignore[call-arg]
    application = App(core, clock=FakeClock(), config=ConfigFile({}))
    application.load_plugins(["handlers.enrollment", ROLES_PLUGIN])
    await application.open_db()
    try:
        yield application
    finally:
        await application.db.close()


async def cli(app: App, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | None, str]:
    command = app.cli_commands["invite"]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    try:
        code = await command.run(app, parser.parse_args(list(argv)))
    except UserError as exc:  # an operator's mistake: `python main.py` prints it on stderr, exit code 2
        return USAGE_ERROR, capsys.readouterr().out + str(exc)
    return code, capsys.readouterr().out


async def test_cli_prints_a_code_that_works_once(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await cli(app, capsys, "sales_manager", "--name", "Ann", "--hours", "48")
    assert status == 0
    code = next(line.strip() for line in out.splitlines() if line.startswith("    "))
    assert f"/start {code}" in out and "role sales_manager" in out
    repo = InviteRepo(app.db)
    first = await repo.redeem(code, Address("telegram", "1"), None, app.clock.now())
    assert first.outcome is Outcome.ENROLLED and first.created
    person = await app.people.get(first.person_id or 0)
    assert person is not None and person.name == "Ann"
    assert (await repo.redeem(code, Address("telegram", "2"), None, app.clock.now())).outcome is Outcome.INVALID


async def test_cli_name_of_a_known_person_attaches_to_them(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.model import Person

    ann = await app.people.add(Person(None, "Ann", frozenset({Role.TEAM_LEAD})), app.clock.now())
    _, out = await cli(app, capsys, "sales_manager", "--name", "ann")
    code = next(line.strip() for line in out.splitlines() if line.startswith("    "))
    result = await InviteRepo(app.db).redeem(code, Address("telegram", "5"), None, app.clock.now())
    assert result.person_id == ann.id and not result.created

    await app.people.add(Person(None, "Ann", frozenset({Role.CHATTER})), app.clock.now())
    status, out = await cli(app, capsys, "sales_manager", "--name", "Ann")
    assert status == 2 and "use --person-id" in out


async def test_cli_lists_and_revokes(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    await cli(app, capsys, "team_lead", "--name", "Tess")
    _, out = await cli(app, capsys, "--list")
    assert "#1" in out and "team_lead" in out and "Tess" in out
    assert (await cli(app, capsys, "--revoke", "1"))[0] == 0
    assert "No open invites." in (await cli(app, capsys, "--list"))[1]


async def test_cli_refuses_bad_input(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    assert (await cli(app, capsys))[0] == 2
    assert (await cli(app, capsys, "sales_manager", "--timezone", "Mars/Olympus"))[0] == 2
    assert (await cli(app, capsys, "sales_manager", "--person-id", "999"))[0] == 2
    assert (await cli(app, capsys, "sales_manager", "--hours", "0"))[0] == 2
    assert (await cli(app, capsys, "--revoke", "42"))[0] == 2
    with pytest.raises(SystemExit):
        await cli(app, capsys, "emperor")


async def test_two_processes_racing_for_one_code_enrol_one_person(db_url: str) -> None:
    first, second = Database(db_url, durable=False), Database(db_url, durable=False)
    now = FakeClock().now()
    try:
        _, code = await InviteRepo(first).create(Role.SALES_MANAGER, now, now + timedelta(days=1))
        results = await asyncio.gather(
            InviteRepo(first).redeem(code, Address("telegram", "1"), "One", now),
            InviteRepo(second).redeem(code, Address("telegram", "2"), "Two", now),
        )
        assert sorted(r.outcome.value for r in results) == ["enrolled", "invalid"]
    finally:
        await first.close()
        await second.close()
