"""Every sender understood: phone numbers as networks and people write them, and senders that are not people.

Numbers from the world, not made up here: Ofcom's drama range (+44 7700 900xxx, reserved for
fiction), the Australian ACMA fictional mobile +61 491 570 156, NANP 555-01xx, the example
`020 8366 1177` of the phonenumbers README, and the originating addresses of the test set of Perl's
SMS::PDU (`+33612345678`, `0612345678`, `12`, `123`). Alphanumeric senders as the simulator's
PDU test already carries them (`StoreAlert`) and as carriers send them (`AMAZON`, `O2`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from bot import phones
from bot.directory import normalize_address
from bot.model import Address, OutboundKind, OutboundStatus
from bot.phones import SenderKind, normalize_phone, sender_kind
from bot.settings import CoreSettings
from bot.testing import Flow
from channels.sms.simulator import SimulatedModem
from storage.inbox import inbound
from storage.people import persons
from tests.sms_support import eventually, sms_flow


@pytest.fixture(autouse=True)
def _region_back() -> Iterator[None]:
    """The region is process-wide: put it back whatever a test set."""
    yield
    phones.set_default_region("US")


@pytest.mark.parametrize(("text", "region", "e164"), [
    ("(619) 555-0100", "US", "+16195550100"),       # national, as people type it
    ("619.555.0100", "US", "+16195550100"),
    ("16195550100", "US", "+16195550100"),          # with the trunk prefix, no plus (TON unknown)
    ("+1 619 555 0100", "GB", "+16195550100"),      # international wins over any region
    ("011 44 20 8366 1177", "US", "+442083661177"),  # the US international prefix
    ("00 44 20 8366 1177", "US", "+442083661177"),   # 00, the prefix of most of the world
    ("0016195550100", "US", "+16195550100"),
    ("442083661177", "US", "+442083661177"),         # international digits without the plus (TON intl)
    ("447700900123", "US", "+447700900123"),
    ("33612345678", "US", "+33612345678"),           # SMS::PDU test sender without its plus
    ("020 8366 1177", "GB", "+442083661177"),        # national, in the store's country
    ("07700 900123", "GB", "+447700900123"),
    ("0612345678", "FR", "+33612345678"),            # SMS::PDU test sender, national
    ("0491 570 156", "AU", "+61491570156"),
    ("+15551234567", "US", "+15551234567"),          # fictional but possible: demos and tests keep working
    ("5551234567", "US", "+15551234567"),            # ...and is never read as a Brazilian number
])
def test_numbers_as_written_in_the_world(text: str, region: str, e164: str) -> None:
    assert normalize_phone(text, region) == e164
    assert sender_kind(text, region) is SenderKind.PHONE


@pytest.mark.parametrize(("sender", "kind"), [
    ("AMAZON", SenderKind.ALPHANUMERIC), ("O2", SenderKind.ALPHANUMERIC), ("Store 42", SenderKind.ALPHANUMERIC),
    ("StoreAlert", SenderKind.ALPHANUMERIC), ("", SenderKind.ALPHANUMERIC), ("12", SenderKind.ALPHANUMERIC),
    ("22000", SenderKind.SHORT_CODE), ("898287", SenderKind.SHORT_CODE), ("611", SenderKind.SHORT_CODE),
    ("+22000", SenderKind.SHORT_CODE), ("5550100", SenderKind.ALPHANUMERIC),  # local-only: cannot be answered
    ("123456789012345678", SenderKind.ALPHANUMERIC),
])
def test_senders_that_are_not_phone_numbers(sender: str, kind: SenderKind) -> None:
    assert sender_kind(sender, "US") is kind


@pytest.mark.parametrize("bad", ["", "   ", "not a number", "+", "+0", "12", "☎️", "x" * 300])
def test_bad_numbers_are_a_plain_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone(bad)


def test_default_region_setting_is_validated() -> None:
    assert CoreSettings(default_region="gb", _env_file=None).default_region == "GB"  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown region"):
        CoreSettings(default_region="XX", _env_file=None)  # type: ignore[call-arg]


def test_region_from_settings_then_from_the_store() -> None:
    phones.set_default_region("DE")
    assert normalize_address(Address("sms", "030 901820")) == Address("sms", "+4930901820")
    assert normalize_address(Address("sms", "AMAZON")) == Address("sms", "AMAZON")
    assert normalize_address(Address("sms", " 22 000 ")) == Address("sms", "22000")


# -- from the user's side ------------------------------------------------------------------------


@pytest.fixture
async def store(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flow]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    flow = await Flow.create(plugins=["handlers.store", "handlers.customers"], demo=False,
                             config={"stores": [{"code": "ldn", "name": "Camden Green", "country": "GB",
                                                 "timezone": "Europe/London", "hours": "10-22"}]})
    try:
        yield flow
    finally:
        await flow.close()


async def _inbox(flow: Flow) -> list[tuple[str, str, str | None, int | None]]:
    async with flow.app.db.read() as conn:
        rows = (await conn.execute(sa.select(inbound.c.address, inbound.c.status, inbound.c.handler,
                                             inbound.c.person_id).order_by(inbound.c.id))).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_a_national_number_is_read_in_the_stores_country(store: Flow) -> None:
    await store.send(Address("sms", "07700 900123"), "hours?")  # a PDU with TON national
    [reply] = store.sent_to(Address("sms", "+447700900123"))
    assert "10-22" in reply
    person = await store.app.people.by_address(Address("sms", "+447700900123"))
    assert person is not None and person.attributes.get("lead") and person.timezone == "Europe/London"
    assert [r[0] for r in await _inbox(store)] == ["+447700900123"]


@pytest.mark.parametrize("sender", ["AMAZON", "O2", "Store 42", "22000"])
async def test_business_senders_are_stored_shown_and_never_answered(store: Flow, sender: str) -> None:
    kind = sender_kind(sender)
    replies = await store.send(Address("sms", sender), "Your parcel has been delivered. Reply STOP to opt out")
    assert replies == []
    stored = normalize_address(Address("sms", sender)).id
    assert await _inbox(store) == [(stored, "ignored", f"sender:{kind.value}", None)]
    assert await store.outbox_rows() == []  # no failed reply waiting in the outbox
    async with store.app.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(persons))).scalar() == 0  # no lead
    assert not await store.app.people.is_opted_out(Address("sms", stored))  # their "STOP" is not ours


async def test_status_shows_the_texts_of_business_senders(store: Flow, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.builtin import status

    await store.send(Address("sms", "AMAZON"), "Your parcel is out for delivery today")
    await store.send(Address("sms", "22000"), "Your code is 123456")
    await status(store.app, None)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "Texts from senders that are not people (kept, never answered, never leads): 2" in out
    assert "AMAZON" in out and "alphanumeric" in out and "22000" in out and "short_code" in out


async def test_short_codes_may_be_answered_but_get_no_marketing(store: Flow) -> None:
    code = Address("sms", "22000")
    await store.app.send(code, "20% off!", key="promo", kind=OutboundKind.PROACTIVE)
    await store.app.send(code, "HELP", key="reply", kind=OutboundKind.REPLY)
    await store.app.send(Address("sms", "AMAZON"), "hello?", key="alpha", kind=OutboundKind.REPLY)
    await store.settle()
    rows = {r.idempotency_key: r for r in await store.outbox_rows()}
    assert rows["promo"].status is OutboundStatus.REFUSED and "no marketing" in (rows["promo"].reason or "")
    assert rows["reply"].status is OutboundStatus.SENT
    assert rows["alpha"].status is OutboundStatus.REFUSED and "alphanumeric" in (rows["alpha"].reason or "")
    assert store.channels["sms"].bodies() == ["HELP"]


async def test_an_alphanumeric_text_through_the_real_modem_is_kept_and_not_answered() -> None:
    """The real stack: a PDU from AMAZON on the simulated SIM7600 pty, the rows, and nothing sent."""
    sim = SimulatedModem(seed=3)
    await sim.start()
    try:
        flow, _ = await sms_flow(sim)
        try:
            sim.deliver("AMAZON", "Your order has shipped")
            sim.deliver("StoreAlert", "from an alphanumeric sender, in parts " * 8)  # multipart
            sim.deliver("+15551234567", "hello")

            async def both() -> bool:
                return len([r for r in await _inbox(flow) if r[1] != "received"]) == 3

            await eventually(both, what="both texts handled")
            await flow.settle()
            rows = await _inbox(flow)
            by_sender = {r[0]: r for r in rows}
            assert by_sender["AMAZON"] == ("AMAZON", "ignored", "sender:alphanumeric", None)
            assert by_sender["StoreAlert"] == ("StoreAlert", "ignored", "sender:alphanumeric", None)
            assert by_sender["+15551234567"][3] is not None  # a person: a lead
            answered = {r.address.id for r in await flow.outbox_rows()}
            assert "AMAZON" not in answered and "StoreAlert" not in answered  # no reply tried, none failed
            await eventually(lambda: not sim.stored(), what="slots freed after commit")
        finally:
            await flow.close()
    finally:
        await sim.stop()
