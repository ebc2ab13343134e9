"""A real deployment from the store's side: quiet hours in the customer's time, no demo details,
one store name, staff told the truth about their replies, and /healthz for every channel."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.model import Address, OutboundKind, OutboundStatus, Role
from bot.testing import Flow
from channels.base import ChannelHealth, PermanentSendError, RetryableSendError
from coaching.pos import sign
from coaching.sources.store_csv import ImportOptions, StoreImporter
from handlers.store import services

CARA = Address("sms", "+16195550100")
NIGHT_NY = datetime(2026, 11, 24, 3, 30, tzinfo=UTC)  # 22:30 in New York, 19:30 in Los Angeles


async def _flow(monkeypatch: pytest.MonkeyPatch, stores: list[dict[str, Any]] | None, *, start: datetime | None = None,
                **settings: Any) -> Flow:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = {"stores": stores} if stores is not None else {}
    return await Flow.create(plugins=["handlers.store", "handlers.customers"], demo=False, config=config,
                             start=start, **settings)


# -- quiet hours in the customer's time ------------------------------------------------------------


async def test_a_person_created_by_sms_gets_the_stores_timezone_and_its_night(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await _flow(monkeypatch, [{"code": "nyc", "name": "Hudson Leaf", "timezone": "America/New_York"}],
                       start=NIGHT_NY)
    try:
        await flow.send(CARA, "hi")
        person = await flow.app.people.by_address(CARA)
        assert person is not None and person.timezone == "America/New_York"
        await flow.app.send(CARA, "Weekend deal!", key="promo", kind=OutboundKind.PROACTIVE)
        await flow.settle()
        [promo] = [r for r in await flow.outbox_rows() if r.idempotency_key == "promo"]
        assert promo.status is OutboundStatus.QUEUED and promo.reason == "held for quiet hours"
        assert promo.quiet_tz == "America/New_York"
        await flow.advance(10 * 3600)  # 08:30 in New York
        assert flow.sent_to(CARA)[-1] == "Weekend deal!"
    finally:
        await flow.close()


async def test_without_stores_new_people_get_huddle_default_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await _flow(monkeypatch, None, default_timezone="America/Chicago")
    try:
        await flow.send(CARA, "hi")
        person = await flow.app.people.by_address(CARA)
        assert person is not None and person.timezone == "America/Chicago"
        assert services(flow.app).default_store.timezone == "America/Chicago"
    finally:
        await flow.close()


async def test_a_store_without_timezone_uses_the_default_not_los_angeles(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await _flow(monkeypatch, [{"code": "x", "name": "X"}], default_timezone="Europe/Berlin")
    try:
        assert services(flow.app).default_store.timezone == "Europe/Berlin"
    finally:
        await flow.close()


async def test_customers_from_an_import_and_a_pos_event_get_their_stores_timezone(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stores = [{"code": "la", "name": "LA Leaf", "timezone": "America/Los_Angeles"},
              {"code": "nyc", "name": "NYC Leaf", "timezone": "America/New_York"}]
    monkeypatch.setenv("HUDDLE_POS_WEBHOOK_SECRET", "whsec_tz_test")
    flow = await _flow(monkeypatch, stores)
    try:
        csv_file = tmp_path / "customers.csv"
        csv_file.write_text("Customer ID,First Name,Phone,Store\nC1,Ann,(212) 555-0101,nyc\n")
        await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run(
            "customers", csv_file, ImportOptions(progress=False))
        port = await flow.app.http.start("127.0.0.1", 0)
        data = {"id": "C2", "first_name": "Bo", "phone": "(212) 555-0102", "store": "nyc"}
        body = json.dumps({"id": "evt-1", "type": "customer.created", "data": data}).encode()
        async with aiohttp.ClientSession() as http:
            headers = {"X-Huddle-Signature": sign("whsec_tz_test", body, flow.clock.now().timestamp())}
            async with http.post(f"http://127.0.0.1:{port}/webhooks/pos", data=body, headers=headers) as r:
                assert r.status == 200
        await services(flow.app).ingest.idle()
        for phone in ("+12125550101", "+12125550102"):
            await flow.send(Address("sms", phone), "hi")
            person = await flow.app.people.by_address(Address("sms", phone))
            assert person is not None and person.timezone == "America/New_York", phone
        await flow.send(Address("sms", "+13105550199"), "hi")  # nobody knows them: the first store's
        person = await flow.app.people.by_address(Address("sms", "+13105550199"))
        assert person is not None and person.timezone == "America/Los_Angeles"
    finally:
        await flow.app.http.stop()
        await flow.close()


# -- no demo details in a real deployment ----------------------------------------------------------


async def test_a_real_deployment_without_stores_never_answers_with_the_demo(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.store")
    flow = await _flow(monkeypatch, None, store_name="Green Leaf")
    try:
        [hours] = await flow.send(CARA, "HOURS")
        assert hours == "Green Leaf hasn't set its opening hours here yet."
        [address] = await flow.send(CARA, "ADDRESS")
        assert address == "Green Leaf hasn't set its address here yet."
        [help_] = await flow.send(CARA, "HELP")
        assert help_.startswith("Green Leaf: ") and "MOTA" not in help_ and "Silverlake" not in help_
        [stop] = await flow.send(CARA, "STOP")
        assert stop.startswith("Green Leaf: you're unsubscribed")
        warnings = [r for r in caplog.records if "no [[stores]]" in r.getMessage()]
        assert len(warnings) == 1 and "Green Leaf" in warnings[0].getMessage()
    finally:
        await flow.close()


async def test_one_store_name_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await _flow(monkeypatch, [{"code": "m", "name": "Main St Cannabis", "phone": "+16195550199"}],
                       store_name="something else")
    try:
        [stop] = await flow.send(CARA, "stop")
        [help_] = await flow.send(CARA, "help")
        [start] = await flow.send(CARA, "start")
        for text in (stop, help_, start):
            assert text.startswith("Main St Cannabis"), text
        assert flow.app.settings.store_name == "Main St Cannabis"
    finally:
        await flow.close()


# -- staff are told the truth ---------------------------------------------------------------------


@pytest.fixture
async def handoff(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Flow, Address]]:
    flow = await _flow(monkeypatch, [{"code": "m", "name": "Green Leaf"}])
    sam = await flow.person("Sam Ortiz", {Role.ADMIN}, console="sam")
    await flow.send(CARA, "can I talk to a person?")
    try:
        yield flow, sam.addresses[0]
    finally:
        await flow.close()


async def test_a_reply_that_went_out_says_sent(handoff: tuple[Flow, Address]) -> None:
    flow, sam = handoff
    assert await flow.send(sam, "reply 1 Hi there") == [f"Sent to {CARA.id} (#1)."]
    assert flow.sent_to(CARA)[-1] == "Sam at Green Leaf: Hi there"


async def test_a_reply_to_an_opted_out_customer_says_so(handoff: tuple[Flow, Address]) -> None:
    flow, sam = handoff
    await flow.app.people.set_opt_out(CARA, True, "stop", flow.clock.now())
    [answer] = await flow.send(sam, "reply 1 Hi there")
    assert answer.startswith(f"Not sent to {CARA.id} (#1): they opted out of texts")
    assert "Hi there" not in " ".join(flow.sent_to(CARA))


async def test_a_reply_the_modem_refuses_as_too_long_says_why(handoff: tuple[Flow, Address]) -> None:
    from channels.sms.pdu import TooLong

    flow, sam = handoff
    flow.channels["sms"].fail_next(PermanentSendError(str(TooLong(12, 10))))  # the modem's own refusal
    [answer] = await flow.send(sam, "reply 1 " + "long story " * 150)
    assert answer == f"Not sent to {CARA.id} (#1): message needs 12 SMS parts, more than the limit of 10."


async def test_a_reply_that_keeps_failing_is_reported_when_the_outbox_gives_up(handoff: tuple[Flow, Address]) -> None:
    flow, sam = handoff
    flow.app.settings.outbox_max_attempts = 2
    flow.channels["sms"].fail_next(RetryableSendError("modem not connected"), RetryableSendError("modem not connected"))
    [answer] = await flow.send(sam, "reply 1 Hi there")
    assert answer == (f"Not sent to {CARA.id} (#1) yet: modem not connected. "
                      "Huddle keeps trying and will tell you if it gives up.")
    await flow.advance(60)
    assert flow.sent_to(sam)[-1] == (f"Your reply to {CARA.id} (#1) could not be sent: "
                                     "gave up after 2 attempts: modem not connected.")


# -- /healthz ---------------------------------------------------------------------------------------


class Probe:
    """A channel with a live state of its own (the contract of channels.base.ChannelHealth)."""

    name = "probe"

    def __init__(self) -> None:
        self.state = ChannelHealth(True, {"signal_dbm": -71, "registered": True})

    def health(self) -> ChannelHealth:
        return self.state


async def test_healthz_reports_every_channel_and_503_when_one_is_down(flow: Flow) -> None:
    probe = Probe()
    flow.app.channels["probe"] = probe  # type: ignore[assignment]
    port = await flow.app.http.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                body = await r.json()
                assert r.status == 200 and body["ok"] is True
                assert body["channels"]["probe"] == {"up": True, "signal_dbm": -71, "registered": True}
                assert body["channels"]["sms"] == {"up": True}  # nothing to report: up
            probe.state = ChannelHealth(False, {"registered": False, "last_contact": "2026-01-05T11:58:00+00:00"})
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                body = await r.json()
                assert r.status == 503 and body["ok"] is False
                assert body["channels"]["probe"]["up"] is False and body["channels"]["probe"]["registered"] is False

            def broken() -> ChannelHealth:
                raise RuntimeError("probe exploded")

            probe.health = broken  # type: ignore[method-assign]
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 503 and "probe failed" in (await r.json())["channels"]["probe"]["error"]
    finally:
        await flow.app.http.stop()
