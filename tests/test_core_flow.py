"""The core from the user's side: a message in, the right message out, the right rows stored."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.context import Context
from bot.model import Address, Button, OutboundKind, OutboundStatus, Role
from bot.router import Greedy, Reply, Router
from bot.testing import Flow
from channels.base import PermanentSendError, RetryableSendError
from storage.inbox import inbound as inbox

router = Router("test")
calls: list[str] = []


@router.command("stale", roles={Role.SALES_MANAGER}, help="deals with no activity")
async def stale(ctx: Context, days: int = 3) -> str:
    calls.append(f"stale {days}")
    return f"No stale deals older than {days} days."


@router.command("note", roles={Role.TEAM_LEAD}, help="log a note")
async def note(ctx: Context, who: str, text: Greedy) -> str:
    return f"noted for {who}: {text}"


@router.command("secret", roles={Role.ADMIN}, help="admin only")
async def secret(ctx: Context) -> str:
    return "the vault code is 1234"


@router.command("boom", roles={Role.SALES_MANAGER})
async def boom(ctx: Context) -> str:
    raise RuntimeError("database on fire")


@router.command("slow", roles={Role.SALES_MANAGER})
async def slow(ctx: Context, n: int) -> str:
    await asyncio.sleep(0.02 if n == 1 else 0)
    calls.append(f"slow {n}")
    return f"slow {n}"


@router.command("pick", roles={Role.CUSTOMER})
async def pick(ctx: Context) -> Reply:
    return Reply("Which one?", [Button("Gummies", "pick:gummies"), Button("Pre-rolls", "pick:prerolls")])


@router.callback("pick:", roles={Role.CUSTOMER})
async def picked(ctx: Context) -> str:
    return f"You picked {ctx.args}."


@router.message(roles={Role.CUSTOMER})
async def remember(ctx: Context) -> str:
    ctx.state["count"] = ctx.state.get("count", 0) + 1
    return f"message {ctx.state['count']}"


plugin = types.ModuleType("tests_core_plugin")
plugin.setup = lambda app: app.include_router(router)  # type: ignore[attr-defined]
sys.modules["tests_core_plugin"] = plugin


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    f = await Flow.create(plugins=["bot.builtin", "tests_core_plugin"])
    calls.clear()
    try:
        yield f
    finally:
        await f.close()


async def test_one_command_text_works_in_every_spelling(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    assert await flow.send(ann, "/stale 5") == ["No stale deals older than 5 days."]
    assert await flow.send(ann, "stale 6") == ["No stale deals older than 6 days."]
    assert await flow.send(ann, "STALE 7") == ["No stale deals older than 7 days."]
    assert await flow.send(ann, "/stale@huddle_bot 8") == ["No stale deals older than 8 days."]
    assert await flow.send(ann, "stale") == ["No stale deals older than 3 days."]
    rows = await flow.outbox_rows()
    assert [r.status for r in rows] == [OutboundStatus.SENT] * 5
    assert all(r.kind is OutboundKind.REPLY for r in rows)


async def test_bad_argument_gets_usage(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "/stale soon")
    assert "Usage: /stale [DAYS]" in reply
    assert calls == []


async def test_greedy_takes_the_rest(flow: Flow) -> None:
    tl = await flow.person("Tia", {Role.TEAM_LEAD}, slack="U1")
    assert await flow.send(tl, 'note Ana "talked about" PPV pricing') == ['noted for Ana: "talked about" PPV pricing']
    [usage] = await flow.send(tl, "note")
    assert "Usage: note WHO TEXT" in usage


async def test_unknown_command_lists_only_allowed_commands(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "/frobnicate")
    assert "frobnicate" in reply and "/stale" in reply
    assert "secret" not in reply and "note" not in reply


async def test_role_refusal_reveals_nothing(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "/secret")
    assert "1234" not in reply and "isn't available" in reply


async def test_stranger_on_telegram_reaches_no_data(flow: Flow) -> None:
    [reply] = await flow.send(Address("telegram", "999"), "/stale 5")
    assert "don't know you" in reply
    assert calls == []
    assert await flow.app.people.count() == 0


async def test_handler_failure_gets_fallback_and_is_recorded(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "boom")
    assert "went wrong on our side" in reply
    async with flow.app.db.read() as conn:
        row = (await conn.execute(sa.select(inbox.c.status, inbox.c.error, inbox.c.handler))).one()
    assert row.status == "failed" and "database on fire" in row.error and row.handler.endswith("boom")


async def test_redelivered_message_is_handled_once(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    await flow.receive(ann, "stale 5", provider_id="update-77")
    await flow.receive(ann, "stale 5", provider_id="update-77")
    await flow.settle()
    assert calls == ["stale 5"]
    assert flow.sent_to(ann) == ["No stale deals older than 5 days."]


async def test_one_conversation_in_order_others_concurrently(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    await flow.receive(ann, "slow 1")
    await flow.receive(ann, "slow 2")
    await flow.settle()
    assert calls == ["slow 1", "slow 2"]
    assert flow.sent_to(ann) == ["slow 1", "slow 2"]


async def test_conversation_state_persists(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    assert await flow.send(cus, "hi") == ["message 1"]
    assert await flow.send(cus, "hello again") == ["message 2"]


async def test_buttons_become_numbered_lines_on_sms_and_a_number_picks(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    [menu] = await flow.send(cus, "pick")
    assert "1. Gummies" in menu and "2. Pre-rolls" in menu
    assert await flow.send(cus, "2") == ["You picked prerolls."]


async def test_stop_then_proactive_is_refused_but_stored(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    [confirm] = await flow.send(cus, "stop")
    assert "unsubscribed" in confirm
    await flow.send(cus, "Stop")  # a second STOP does not confirm again
    await flow.app.send(cus.addresses[0], "20% off today!", key="promo-1")
    await flow.settle()
    assert flow.sent_to(cus) == [confirm]
    [promo] = [r for r in await flow.outbox_rows() if r.idempotency_key == "promo-1"]
    assert promo.status is OutboundStatus.REFUSED and promo.reason == "opted out"
    [back] = await flow.send(cus, "START")
    assert "subscribed again" in back


async def test_a_negated_stop_is_not_an_opt_out(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    await flow.send(cus, "please don't stop texting me")
    assert not await flow.app.people.is_opted_out(cus.addresses[0])


async def test_help_answers_with_store_contact(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    [reply] = await flow.send(cus, "HELP")
    assert flow.app.settings.store_contact in reply


async def test_retry_after_is_honoured(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    flow.channels["telegram"].fail_next(RetryableSendError("429 Too Many Requests", retry_after=30))
    assert await flow.send(ann, "stale 5") == []
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.QUEUED and row.attempts == 1
    await flow.advance(29)
    assert flow.sent_to(ann) == []
    await flow.advance(2)
    assert flow.sent_to(ann) == ["No stale deals older than 5 days."]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.SENT and row.attempts == 2


async def test_permanent_error_is_one_attempt(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    flow.channels["telegram"].fail_next(PermanentSendError("Forbidden: bot was blocked by the user", unreachable=True))
    await flow.send(ann, "stale 5")
    await flow.advance(3600)
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED and "blocked" in (row.reason or "")
    assert flow.channels["telegram"].calls == 1
    await flow.app.send(ann.addresses[0], "later")  # unreachable now: refused without a provider call
    await flow.settle()
    assert flow.channels["telegram"].calls == 1


async def test_proactive_to_customer_waits_for_quiet_hours_but_replies_do_not() -> None:
    flow = await Flow.create(plugins=["tests_core_plugin"], start=datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    try:
        cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100", timezone="America/Los_Angeles")
        await flow.app.send(cus.addresses[0], "Your order is ready", key="ready-1")
        assert await flow.send(cus, "hi") == ["message 1"]  # a reply at 21:00 local goes now
        assert flow.sent_to(cus) == ["message 1"]
        await flow.advance(10 * 3600)  # 07:00 local: still quiet
        assert flow.sent_to(cus) == ["message 1"]
        await flow.advance(3600 + 60)  # after 08:00 local
        assert flow.sent_to(cus) == ["message 1", "Your order is ready"]
    finally:
        await flow.close()


async def test_same_idempotency_key_sends_once(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    for _ in range(3):
        await flow.app.send(ann.addresses[0], "Your briefing", key="briefing:1:2026-01-05")
    await flow.settle()
    assert flow.sent_to(ann) == ["Your briefing"]


async def test_help_command_lists_what_the_sender_may_use(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "/help")
    assert "/stale" in reply and "secret" not in reply


async def test_five_thousand_character_emoji_text_is_handled(flow: Flow) -> None:
    cus = await flow.person("Cara", {Role.CUSTOMER}, sms="+16195550100")
    text = "🌿" * 2500 + "x" * 2500
    assert await flow.send(cus, text) == ["message 1"]
    stored = await flow.app.dispatcher.inbox.get(1)
    assert stored is not None and stored[0].text == text


async def test_a_huge_bad_argument_is_not_echoed_whole(flow: Flow) -> None:
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    [reply] = await flow.send(ann, "/stale " + "🔥" * 5000)
    assert len(reply) < 120 and "Usage: /stale [DAYS]" in reply
