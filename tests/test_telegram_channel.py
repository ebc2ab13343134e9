"""The Telegram channel from the user's side: real aiogram against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.clock import FakeClock, SystemClock
from bot.context import Context
from bot.model import Address, Button, Inbound, OutboundStatus
from bot.router import Greedy, Reply, Router
from bot.testing import migrated_sqlite
from channels.base import PermanentSendError, RetryableSendError
from channels.telegram import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    GroupGate,
    TelegramChannel,
    TelegramSettings,
    keyboard_for,
    send_error,
)
from coaching.roles import Role
from handlers.enrollment import NOT_ENROLLED
from storage.inbox import inbound as inbound_table
from storage.invites import InviteRepo
from storage.outbox import receipts
from storage.people import unreachable_in
from tests.fakes.telegram_server import FakeTelegram
from tests.flows import Flow

ANN = 42
LONG_LINES = [f"{i:03d} " + "x" * 85 for i in range(100)]

router = Router("telegram-test")


@router.command("echo", roles={Role.SALES_MANAGER})
async def echo(ctx: Context, text: Greedy = "") -> str:
    return text


@router.command("long", roles={Role.SALES_MANAGER})
async def long(ctx: Context) -> str:
    return "\n".join(LONG_LINES)


@router.command("bold", roles={Role.SALES_MANAGER})
async def bold(ctx: Context) -> str:
    return "<b>Deal 17</b> is 🔴 stale: 5 < 7 days & no calls"


@router.command("menu", roles={Role.SALES_MANAGER})
async def menu(ctx: Context) -> Reply:
    return Reply("Deal 17: Acme", buttons=[Button("Detailed analysis", "deal:17"), Button("Skip", "skip:17")])


@router.callback("deal:", roles={Role.SALES_MANAGER})
async def deal(ctx: Context) -> str:
    return f"Detailed analysis of deal {ctx.args} (you pressed “{ctx.text}”)"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


def _env(monkeypatch: pytest.MonkeyPatch, fake: FakeTelegram, **extra: str) -> None:
    monkeypatch.setenv("HUDDLE_TELEGRAM_TOKEN", fake.token)
    monkeypatch.setenv("HUDDLE_TELEGRAM_API_URL", fake.url)
    monkeypatch.setenv("HUDDLE_TELEGRAM_POLL_TIMEOUT", "5")
    for key, value in extra.items():
        monkeypatch.setenv(f"HUDDLE_{key.upper()}", value)


async def _flow(database_url: str | None = None) -> Flow:
    flow = await Flow.create(plugins=["channels.telegram", "handlers.enrollment"], database_url=database_url)
    flow.app.include_router(router)
    return flow


@pytest.fixture
async def tg(fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    _env(monkeypatch, fake)
    flow = await _flow()
    await flow.person("Ann", {Role.SALES_MANAGER}, telegram=str(ANN))
    try:
        yield flow
    finally:
        await flow.close()


async def until(flow: Flow, condition: Callable[[], Any], *, step: float = 1.0, within: float = 20.0) -> None:
    """Wait (real time, for real I/O) until `condition()` holds, moving the fake clock on by `step`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await flow.clock.advance(step)
        await asyncio.sleep(0.02)


def _channel(flow: Flow) -> TelegramChannel:
    channel = flow.app.channels["telegram"]
    assert isinstance(channel, TelegramChannel)
    return channel


async def _inbox(flow: Flow) -> list[Any]:
    async with flow.app.db.read() as conn:
        return (await conn.execute(sa.select(inbound_table).order_by(inbound_table.c.id))).all()


# -- receiving and replying ------------------------------------------------------------------------


async def test_message_reaches_a_handler_and_the_reply_arrives(tg: Flow, fake: FakeTelegram) -> None:
    update = fake.message(ANN, "/echo hello <world> & co")
    sent = await fake.wait_sent(1, ANN)
    assert sent[0].text == "hello <world> & co"
    assert sent[0].parse_mode == "HTML"
    rows = await _inbox(tg)
    assert [(r.channel, r.address, r.provider_id, r.display_name) for r in rows] == [
        ("telegram", str(ANN), f"{update['update_id']}:{ANN}:{update['message']['message_id']}", "Ann")
    ]
    await until(tg, lambda: _channel(tg).offset == update["update_id"] + 1)
    assert fake.calls[0][0] == "deleteWebhook"  # polling is refused while a webhook is set


async def test_handler_html_is_kept_and_plain_text_escaped(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(ANN, "/bold")
    [sent] = await fake.wait_sent(1, ANN)
    assert sent.raw == "<b>Deal 17</b> is 🔴 stale: 5 &lt; 7 days &amp; no calls"
    assert sent.text == "Deal 17 is 🔴 stale: 5 < 7 days & no calls"


async def test_a_stranger_is_told_to_enrol_and_gets_no_data(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(999, "/echo secrets please", first_name="Eve")
    [sent] = await fake.wait_sent(1, 999)
    assert sent.text == NOT_ENROLLED.format(start="/start")
    assert "secrets" not in sent.text
    assert await tg.app.people.by_address(Address("telegram", "999")) is None


async def test_start_with_a_good_code_enrols_and_links_the_telegram_user(tg: Flow, fake: FakeTelegram) -> None:
    now = tg.clock.now()
    _, code = await InviteRepo(tg.app.db).create(Role.SALES_MANAGER, now, now.replace(year=now.year + 1))
    fake.message(77, f"/start {code}", first_name="Boris", last_name="Petrov")
    [welcome] = await fake.wait_sent(1, 77)
    assert welcome.text.startswith("Welcome, Boris! You're enrolled as sales manager.")
    assert "/echo" in welcome.text
    boris = await tg.app.people.by_address(Address("telegram", "77"))
    assert boris is not None and boris.name == "Boris Petrov" and boris.roles == {Role.SALES_MANAGER}

    fake.message(77, "/echo now I'm in")
    sent = await fake.wait_sent(2, 77)
    assert sent[1].text == "now I'm in"

    fake.message(78, f"/start {code}", first_name="Mallory")
    [refused] = await fake.wait_sent(1, 78)
    assert "isn't valid" in refused.text
    assert await tg.app.people.by_address(Address("telegram", "78")) is None


async def test_a_long_reply_is_split_in_three_on_line_boundaries(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(ANN, "/long")
    sent = await fake.wait_sent(3, ANN)
    assert len(sent) == 3
    assert all(len(s.text) <= 4096 for s in sent)
    assert [line for s in sent for line in s.text.split("\n")] == LONG_LINES
    await tg.settle()
    [row] = await tg.outbox_rows(OutboundStatus.DELIVERED)
    async with tg.app.db.read() as conn:
        ids = (await conn.execute(sa.select(receipts.c.provider_id).where(receipts.c.outbox_id == row.id))).scalars()
        assert sorted(ids) == sorted(f"{ANN}:{s.message_id}" for s in sent)


async def test_five_thousand_emoji_echo_back_in_parts(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(ANN, "/echo " + "🙂" * 5000)
    sent = await fake.wait_sent(3, ANN)
    assert "".join(s.text for s in sent) == "🙂" * 5000


async def test_button_press_round_trip(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(ANN, "/menu")
    [menu_msg] = await fake.wait_sent(1, ANN)
    assert menu_msg.buttons == [("Detailed analysis", "deal:17"), ("Skip", "skip:17")]

    update = fake.press(ANN, menu_msg, "deal:17")
    sent = await fake.wait_sent(2, ANN)
    assert sent[1].text == "Detailed analysis of deal 17 (you pressed “Detailed analysis”)"
    await fake.wait_for(lambda: len(fake.answered) == 1)
    assert fake.answered[0]["callback_query_id"] == update["callback_query"]["id"]
    rows = await _inbox(tg)
    assert rows[-1].callback_data == "deal:17"


# -- failures --------------------------------------------------------------------------------------


async def test_flood_control_429_is_retried_after_retry_after(tg: Flow, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 429, retry_after=3)
    fake.message(ANN, "/echo patience")
    await fake.wait_for(lambda: sum(m == "sendMessage" for m, _ in fake.calls) == 1)
    await tg.app.dispatcher.idle()

    async def waiting() -> bool:
        rows = await tg.outbox_rows(OutboundStatus.QUEUED)
        return bool(rows) and "flood" in (rows[0].reason or "")

    await until(tg, waiting, step=0)
    [row] = await tg.outbox_rows(OutboundStatus.QUEUED)
    assert (row.next_attempt_at - tg.clock.now()).total_seconds() >= 3 - 0.01
    assert fake.sent_to(ANN) == []

    await until(tg, lambda: fake.sent_to(ANN), step=1.0)
    assert [s.text for s in fake.sent_to(ANN)] == ["patience"]


async def test_a_blocked_user_fails_permanently_and_is_marked_unreachable(tg: Flow, fake: FakeTelegram) -> None:
    fake.block(ANN)
    ann = Address("telegram", str(ANN))
    await tg.app.send(ann, "Your stale deals", key="alert-1")

    async def failed() -> bool:
        return bool(await tg.outbox_rows(OutboundStatus.FAILED))

    await until(tg, failed, step=0)
    [row] = await tg.outbox_rows(OutboundStatus.FAILED)
    assert "blocked" in (row.reason or "")
    async with tg.app.db.read() as conn:
        assert "blocked" in (await unreachable_in(conn, ann) or "")

    calls = len(fake.calls)
    await tg.app.send(ann, "Another alert", key="alert-2")
    await tg.settle()
    assert [r.status for r in await tg.outbox_rows()] == [OutboundStatus.FAILED, OutboundStatus.REFUSED]
    assert len(fake.calls) - calls <= 1  # at most a getUpdates: no new sendMessage


async def test_chat_not_found_is_unreachable_too(tg: Flow, fake: FakeTelegram) -> None:
    ghost = Address("telegram", "5550001")
    await tg.person("Ghost", {Role.SALES_MANAGER}, telegram=ghost.id)
    await tg.app.send(ghost, "hello?", key="ghost-1")

    async def failed() -> bool:
        return bool(await tg.outbox_rows(OutboundStatus.FAILED))

    await until(tg, failed, step=0)
    async with tg.app.db.read() as conn:
        assert "chat not found" in (await unreachable_in(conn, ghost) or "")


async def test_a_redelivered_update_is_handled_once(tg: Flow, fake: FakeTelegram) -> None:
    update = fake.message(ANN, "/echo once")
    await fake.wait_sent(1, ANN)
    fake.redeliver(update)
    uid = update["update_id"]
    await fake.wait_for(lambda: sum(u == uid for _, u in fake.served) == 2)
    second = max(c for c, u in fake.served if u == uid)
    await fake.wait_for(lambda: len(fake.offsets) > second)  # polled again: the copy went through
    await tg.settle()
    assert [s.text for s in fake.sent_to(ANN)] == ["once"]
    assert len(await _inbox(tg)) == 1


async def test_updates_not_confirmed_before_a_crash_are_handled_once_after_restart(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _env(monkeypatch, fake)
    url = await migrated_sqlite(tmp_path)
    first = await _flow(url)
    await first.person("Ann", {Role.SALES_MANAGER}, telegram=str(ANN))
    update = fake.message(ANN, "/echo exactly once")
    await fake.wait_sent(1, ANN)
    await first.close()
    fake.unconfirm()  # Telegram never heard that we had it

    second = await _flow(url)
    try:
        await until(second, lambda: _channel(second).offset == update["update_id"] + 1, step=0)
        await second.settle()
        assert [s.text for s in fake.sent_to(ANN)] == ["exactly once"]
    finally:
        await second.close()


async def test_offset_moves_past_an_update_only_after_it_is_stored(fake: FakeTelegram) -> None:
    settings = TelegramSettings(
        telegram_token=fake.token, telegram_api_url=fake.url, telegram_poll_timeout=1, _env_file=None
    )  # type: ignore[call-arg]
    channel = TelegramChannel(settings, SystemClock(), backoff=(0.01, 0.05))
    stored: list[Inbound] = []
    failures = [RuntimeError("database is locked")]

    async def on_inbound(message: Inbound) -> None:
        if failures:
            raise failures.pop()
        stored.append(message)

    update = fake.message(ANN, "hello")
    await channel.start(on_inbound, lambda _r: asyncio.sleep(0))
    try:
        await fake.wait_for(lambda: len(stored) == 1)
        assert fake.offsets[:2] == [None, None]  # the update that failed to store was fetched again
        assert [u for _, u in fake.served] == [update["update_id"]] * 2
    finally:
        await channel.stop()
    assert fake.confirmed == update["update_id"] + 1  # confirmed on stop


async def test_commands_for_another_bot_in_a_group_are_left_alone(tg: Flow, fake: FakeTelegram) -> None:
    fake.message(ANN, "/echo@some_other_bot hi", chat_id=-100500)
    fake.message(ANN, "/echo@huddle_test_bot mine", chat_id=-100500)
    sent = await fake.wait_sent(1, -100500)
    last = max(u for _, u in fake.served)
    await until(tg, lambda: (_channel(tg).offset or 0) > last)
    await tg.settle()
    assert [s.text for s in sent] == [NOT_ENROLLED.format(start="/start")]  # the group itself is no one we know
    assert [r.text for r in await _inbox(tg)] == ["/echo@huddle_test_bot mine"]


async def test_html_telegram_refuses_is_sent_again_as_plain_text(tg: Flow, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 400, 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0')
    fake.message(ANN, "/bold")
    [sent] = await fake.wait_sent(1, ANN)
    assert sent.parse_mode is None
    assert sent.text == "Deal 17 is 🔴 stale: 5 < 7 days & no calls"


async def test_stopping_lets_the_update_being_stored_finish(fake: FakeTelegram) -> None:
    settings = TelegramSettings(
        telegram_token=fake.token,
        telegram_api_url=fake.url,
        _env_file=None,  # type: ignore[call-arg]
    )
    channel = TelegramChannel(settings, SystemClock())
    storing = asyncio.Event()
    stored: list[str] = []

    async def slow_store(message: Inbound) -> None:
        storing.set()
        await asyncio.sleep(0.2)
        stored.append(message.text)

    update = fake.message(ANN, "in flight at shutdown")
    await channel.start(slow_store, lambda _r: asyncio.sleep(0))
    await asyncio.wait_for(storing.wait(), 5)
    await channel.stop()
    assert stored == ["in flight at shutdown"]
    assert fake.confirmed == update["update_id"] + 1


# -- webhook mode ----------------------------------------------------------------------------------


async def test_webhook_checks_the_secret_and_stores_before_answering(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(
        monkeypatch,
        fake,
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example/telegram/webhook",
        telegram_webhook_secret="s3cret-token",
    )
    flow = await _flow()
    port = await flow.app.http.start(port=0)
    try:
        await flow.person("Ann", {Role.SALES_MANAGER}, telegram=str(ANN))
        await fake.wait_for(lambda: fake.webhook is not None)
        assert fake.webhook is not None and fake.webhook["secret_token"] == "s3cret-token"
        assert fake.webhook["url"] == "https://bot.example/telegram/webhook"
        update = fake.message(ANN, "/echo via webhook")
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as r:
                assert r.status == 401
            async with http.post(url, json=update, headers={SECRET_HEADER: "wrong"}) as r:
                assert r.status == 401
            async with http.post(url, data="{not json", headers={SECRET_HEADER: "s3cret-token"}) as r:
                assert r.status == 400
            for _ in range(2):  # Telegram redelivers: handled once
                async with http.post(url, json=update, headers={SECRET_HEADER: "s3cret-token"}) as r:
                    assert r.status == 200
        await flow.settle()
        await fake.wait_sent(1, ANN)
        assert [s.text for s in fake.sent_to(ANN)] == ["via webhook"]
        assert len(await _inbox(flow)) == 1
    finally:
        await flow.close()


@pytest.mark.parametrize("empty", ["", "   "])
async def test_an_empty_webhook_secret_falls_back_to_the_derived_one(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    """Issue 17: HUDDLE_TELEGRAM_WEBHOOK_SECRET="" registered no secret and took unsigned POSTs."""
    _env(monkeypatch, fake, telegram_mode="webhook", telegram_webhook_url="https://bot.example/telegram/webhook",
         telegram_webhook_secret=empty)
    derived = TelegramSettings(telegram_token=fake.token, _env_file=None).webhook_secret()  # type: ignore[call-arg]
    assert derived and len(derived) == 64
    flow = await _flow()
    port = await flow.app.http.start(port=0)
    try:
        await flow.person("Ann", {Role.SALES_MANAGER}, telegram=str(ANN))
        await fake.wait_for(lambda: fake.webhook is not None)
        assert fake.webhook is not None and fake.webhook["secret_token"] == derived
        update = fake.message(ANN, "/echo signed")
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: ""}, {SECRET_HEADER: empty}):
                async with http.post(url, json=update, headers=headers) as r:
                    assert r.status == 401  # an unsigned update is never accepted in webhook mode
            async with http.post(url, json=update, headers={SECRET_HEADER: derived}) as r:
                assert r.status == 200
        await fake.wait_sent(1, ANN)
        assert len(await _inbox(flow)) == 1
    finally:
        await flow.close()


def test_a_webhook_secret_telegram_would_refuse_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="A-Z, a-z, 0-9"):
        TelegramSettings(telegram_token="1:x", telegram_webhook_secret="with spaces", _env_file=None)  # type: ignore[call-arg]
    ok = TelegramSettings(telegram_token="1:x", telegram_webhook_secret="Ab_9-x", _env_file=None)  # type: ignore[call-arg]
    assert ok.webhook_secret() == "Ab_9-x"


async def test_healthz_shows_telegram_polling_and_its_last_error(tg: Flow, fake: FakeTelegram) -> None:
    port = await tg.app.http.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        await until(tg, lambda: _channel(tg).health().up, step=0)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                body = await r.json()
                assert r.status == 200 and body["channels"]["telegram"]["up"] is True
                assert body["channels"]["telegram"]["mode"] == "polling" and body["channels"]["telegram"]["last_ok_at"]
            for _ in range(3):
                fake.fail_next("getUpdates", 401, "Unauthorized")
            await until(tg, lambda: not _channel(tg).health().up)
            async with http.get(url) as r:
                body = await r.json()
                assert r.status == 503 and body["channels"]["telegram"]["last_error"] == "bot token rejected"
    finally:
        await tg.app.http.stop()


# -- pacing and error mapping ----------------------------------------------------------------------


async def test_groups_get_at_most_twenty_messages_a_minute() -> None:
    clock = FakeClock()
    gate = GroupGate(20, clock)
    for _ in range(20):
        await gate.wait(-1001)
    waiter = asyncio.create_task(gate.wait(-1001))
    await clock.advance(59)
    assert not waiter.done()
    await gate.wait(-1002)  # another group has its own minute
    await gate.wait(42)  # private chats are paced by the outbox
    await clock.advance(1)
    await asyncio.wait_for(waiter, 1)


def test_default_pacing_is_thirty_a_second_and_one_a_second_per_chat() -> None:
    from bot.outbox import Outbox
    from bot.settings import CoreSettings

    channel = TelegramChannel(
        TelegramSettings(telegram_token="1:x", _env_file=None),
        FakeClock(),  # type: ignore[call-arg]
    )
    pacing = Outbox(None, FakeClock(), CoreSettings(_env_file=None), None).pacing_for(channel)  # type: ignore[arg-type,call-arg]
    assert (pacing.global_rate, pacing.per_recipient_rate) == (30.0, 1.0)


def test_bot_api_errors_map_to_retry_or_give_up() -> None:
    from aiogram.exceptions import (
        TelegramBadRequest,
        TelegramForbiddenError,
        TelegramNetworkError,
        TelegramRetryAfter,
        TelegramServerError,
    )
    from aiogram.methods import SendMessage

    m = SendMessage(chat_id=1, text="x")
    flood = send_error(TelegramRetryAfter(method=m, message="Too Many Requests: retry after 7", retry_after=7))
    assert isinstance(flood, RetryableSendError) and flood.retry_after == 7
    blocked = send_error(TelegramForbiddenError(method=m, message="Forbidden: bot was blocked by the user"))
    assert isinstance(blocked, PermanentSendError) and blocked.unreachable
    gone = send_error(TelegramForbiddenError(method=m, message="Forbidden: user is deactivated"))
    assert isinstance(gone, PermanentSendError) and gone.unreachable
    missing = send_error(TelegramBadRequest(method=m, message="Bad Request: chat not found"))
    assert isinstance(missing, PermanentSendError) and missing.unreachable
    bad = send_error(TelegramBadRequest(method=m, message="Bad Request: message text is empty"))
    assert isinstance(bad, PermanentSendError) and not bad.unreachable
    assert isinstance(send_error(TelegramServerError(method=m, message="Bad Gateway")), RetryableSendError)
    assert isinstance(send_error(TelegramNetworkError(method=m, message="timeout")), RetryableSendError)


def test_button_data_over_64_bytes_is_refused_before_sending() -> None:
    with pytest.raises(PermanentSendError):
        keyboard_for([Button("Too long", "x" * 65)])
    markup = keyboard_for([Button("Ok", "deal:1")])
    assert markup is not None and markup.inline_keyboard[0][0].callback_data == "deal:1"


def test_no_token_no_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.app import App
    from bot.config_file import ConfigFile
    from bot.settings import CoreSettings
    from channels import telegram

    monkeypatch.delenv("HUDDLE_TELEGRAM_TOKEN", raising=False)
    app = App(CoreSettings(_env_file=None, database_url=":memory:"), config=ConfigFile({}))  # type: ignore[call-arg]
    telegram.setup(app)
    assert "telegram" not in app.channels
