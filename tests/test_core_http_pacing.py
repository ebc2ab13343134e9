"""The HTTP skeleton and the outbox's pacing, from the operator's and the provider's side."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.model import Address
from coaching.roles import Role
from tests.flows import Flow


async def test_healthz_and_admin_routes_need_the_token() -> None:
    flow = await Flow.create(admin_token=SecretStr("s3cret-admin"))
    try:

        async def secret(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        flow.app.http.route("GET", "/api/secret", secret, admin=True)
        port = await flow.app.http.start(port=0)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json())["ok"] is True
            async with http.get(f"{base}/api/secret") as r:
                assert r.status == 401
            async with http.get(f"{base}/api/secret", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.get(f"{base}/api/secret", headers={"Authorization": "Bearer s3cret-admin"}) as r:
                assert r.status == 200
    finally:
        await flow.close()


async def test_telegram_is_paced_one_per_second_per_chat() -> None:
    flow = await Flow.create(paced=True, telegram_rate=30.0, telegram_per_chat_rate=1.0)
    try:
        ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
        bob = await flow.person("Bob", {Role.SALES_MANAGER}, telegram="43")
        for i in range(3):
            await flow.app.send(ann.addresses[0], f"a{i}", key=f"a{i}")
            await flow.app.send(bob.addresses[0], f"b{i}", key=f"b{i}")
        await flow.settle()
        assert flow.sent_to(ann) == ["a0"] and flow.sent_to(bob) == ["b0"]  # other chats go concurrently
        await flow.advance(1.0)
        assert flow.sent_to(ann) == ["a0", "a1"]
        await flow.advance(1.0)
        assert flow.sent_to(ann) == ["a0", "a1", "a2"] and flow.sent_to(bob) == ["b0", "b1", "b2"]
    finally:
        await flow.close()


async def test_order_is_kept_for_one_recipient_across_a_retry(flow: Flow) -> None:
    from channels.base import RetryableSendError

    chat = Address("telegram", "42")
    flow.channels["telegram"].fail_next(RetryableSendError("flood", retry_after=5))
    for i in range(3):
        await flow.app.send(chat, f"m{i}", key=f"m{i}")
    await flow.settle()
    assert flow.channels["telegram"].bodies(chat) == []
    await flow.advance(6)
    assert flow.channels["telegram"].bodies(chat) == ["m0", "m1", "m2"]


async def test_a_delivery_report_that_overtakes_its_send_is_not_lost(flow: Flow) -> None:
    from bot.model import DeliveryReport, OutboundStatus

    chat = Address("sms", "+16195550100")
    sms = flow.channels["sms"]
    await flow.app.outbox.delivery(DeliveryReport("sms", "sms-early", True))  # before the send is recorded
    original = sms.send

    async def send_with_known_id(outbound):  # type: ignore[no-untyped-def]
        from channels.base import SendResult

        await original(outbound)
        return SendResult(["sms-early"])

    sms.send = send_with_known_id  # type: ignore[method-assign]
    await flow.app.send(chat, "Your order is ready", key="ready")
    await flow.settle()
    [row] = await flow.outbox_rows()  # the kept report is applied as the send is recorded: no timer, no retry
    assert row.status is OutboundStatus.DELIVERED
