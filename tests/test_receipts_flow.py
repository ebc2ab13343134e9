"""Receipt photos from the budtender's side: points for house-brand spend, refusals, and staff review."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date

import pytest

from bot.model import Address
from coaching.roles import Role
from storage.events import EventLog
from storage.loyalty import LoyaltyRepo
from storage.receipts import RECEIPT_AWARDED, ReceiptRepo, ReceiptStatus
from tests.fakes.openai_server import FakeOpenAI
from tests.receipts_support import (
    CUSTOMER_PHONE,
    make_flow,
    network_budtender,
    photo_file,
    reading,
    receipt_photo,
)

ANN_TG = Address("telegram", "7001")
CUSTOMER_SMS = Address("sms", CUSTOMER_PHONE)


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_a_receipt_photo_gives_points_to_the_customer_and_ten_times_to_the_budtender(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai)
    try:
        ann = await network_budtender(flow)
        ai.reply_json(reading())
        photo = receipt_photo()
        replies = await flow.send(ANN_TG, f"customer {CUSTOMER_PHONE}", files=[photo_file(photo)])
        assert replies == ["Receipt #1 from Green Cross: $45.00 of house brand → 45 pts to the customer, "
                           "450 pts to you (your balance: 450)."]
        # the customer is told by SMS, through the outbox
        assert flow.sent_to(CUSTOMER_SMS) == [
            "You earned 45 points for $45.00 of our products at Green Cross. Your balance: 45 points."]
        loyalty = LoyaltyRepo(flow.app.db)
        rows = await loyalty.by_source(receipt_id=1)
        assert [(e.key, e.delta, e.reason, e.person_id == ann.id, e.customer_id is not None) for e in rows] == [
            ("receipt:1:customer", 45, "receipt", False, True),
            ("receipt:1:budtender", 450, "receipt_bonus", True, False),
        ]
        stored = await ReceiptRepo(flow.app.db).get(1)
        assert stored is not None and stored.status is ReceiptStatus.AWARDED
        assert (stored.store_name, stored.receipt_number, stored.receipt_date) == ("Green Cross", "A-1001",
                                                                                   date(2026, 11, 19))
        assert [ln["house_product"] for ln in stored.lines] == ["MOTA OG Kush 3.5g", None]
        # the model saw the image and the house-brand names, and nothing about people
        request = ai.requests[0]
        user = request.messages[1]["content"]
        assert user[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert "MOTA OG Kush 3.5g" in request.system and "MOTA Sour Gummies 100mg" in request.system
        sent = json.dumps(request.body)
        assert CUSTOMER_PHONE not in sent and "Ann" not in sent and "Stiiizy Blue Dream Pod" not in sent
        assert await flow.send(ANN_TG, "/points") == ["Ann, you have 450 points.\n#1 awarded: 450 pts"]
        # the award appended its event in the same transaction
        found = await EventLog(flow.app.db).by_source(RECEIPT_AWARDED, "1")
        assert found is not None and found.person_id == ann.id and found.customer_id == rows[0].customer_id
        assert (found.payload["customer_points"], found.payload["budtender_points"]) == (45, 450)
    finally:
        await flow.close()


async def test_the_same_receipt_twice_is_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai)
    try:
        await network_budtender(flow)
        ai.reply_json(reading())
        photo = receipt_photo()
        await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(photo)])
        # the very same photo: refused before the model is asked
        again = await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(photo)])
        assert again == ["This photo was already sent as receipt #1: a receipt earns points once."]
        assert len(ai.requests) == 1
        # another photo of the same receipt (same store and number)
        ai.reply_json(reading(store="GREEN  CROSS"))
        other = await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo("another angle"))])
        assert other == ["Receipt A-1001 from GREEN CROSS was already sent (#1): a receipt earns points once."]
        repo = ReceiptRepo(flow.app.db)
        assert [(r.id, r.status, r.duplicate_of) for r in await repo.list()] == [
            (3, ReceiptStatus.REFUSED, 1), (2, ReceiptStatus.REFUSED, 1), (1, ReceiptStatus.AWARDED, None)]
        assert len(await LoyaltyRepo(flow.app.db).entries()) == 2
        assert len(flow.sent_to(CUSTOMER_SMS)) == 1
    finally:
        await flow.close()


async def test_an_old_receipt_and_one_without_house_products_earn_nothing(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai)
    try:
        await network_budtender(flow)
        ai.reply_json(reading(when=date(2026, 9, 1)))
        old = await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo("old"))])
        assert old == ["Receipt #1 can't earn points: it is dated 2026-09-01, more than 30 days ago "
                       "(receipts count for 30 days)."]
        ai.reply_json(reading(number="B-7", lines=[("STIIIZY BLUE DREAM POD", 1, "40.00")]))
        none = await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo("no house"))])
        assert none == ["Receipt #2 can't earn points: no house-brand products were found on it."]
        assert await LoyaltyRepo(flow.app.db).entries() == []
    finally:
        await flow.close()


async def test_a_malformed_model_answer_goes_to_review_and_staff_award_it(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    flow = await make_flow(monkeypatch, ai, receipts_review_to="slack:C0STAFF")
    try:
        ann = await network_budtender(flow)
        boss = await flow.person("Rosa Diaz", {Role.TEAM_LEAD}, slack="U0ROSA")
        ai.reply_invalid()
        replies = await flow.send(ANN_TG, "", files=[photo_file(receipt_photo())])
        assert replies == ["Got it — receipt #1. A member of staff will check it; you'll both get your points "
                           "once it's confirmed."]
        assert await LoyaltyRepo(flow.app.db).entries() == []
        staff = flow.sent_to(Address("slack", "C0STAFF"))
        assert len(staff) == 1 and "Receipt #1 needs a look (the model's answer could not be used)" in staff[0]
        # a number the model made up (a bad date) goes to review too, never to points
        ai.reply_json(reading(when=date(2026, 11, 19)) | {"date": "19/11/2026", "receipt_number": "Z-2"})
        await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo("bad date"))])
        stored = await ReceiptRepo(flow.app.db).get(2)
        assert stored is not None and stored.status is ReceiptStatus.REVIEW
        assert stored.reason == "the date '19/11/2026' is not YYYY-MM-DD"
        # staff answer in Slack with the house-brand total; no customer on #1, so they are asked for one
        assert await flow.send(boss, "receipt 1 45.50") == [
            "Receipt #1: whose is it? Add the customer's phone, e.g. receipt 1 45.50 +16195550100."]
        answer = await flow.send(boss, f"receipt 1 45.50 {CUSTOMER_PHONE}")
        assert answer == ["Receipt #1 confirmed: $45.50 → 45 pts to the customer, 450 pts to you (your balance: 450)."]
        assert flow.sent_to(ANN_TG)[-1] == ("Receipt #1: $45.50 of house brand → 45 pts to the customer, 450 pts to "
                                            "you (your balance: 450).")
        assert flow.sent_to(CUSTOMER_SMS) == ["You earned 45 points for $45.50 of our products. "
                                              "Your balance: 45 points."]
        assert await LoyaltyRepo(flow.app.db).person_balance(ann.id) == 450
        assert await flow.send(boss, "receipt 1 45.50") == ["Receipt #1 is awarded, not waiting for review."]
        assert await flow.send(boss, "receipt 2 refuse photo is blurry") == ["Receipt #2 refused: photo is blurry."]
        assert flow.sent_to(ANN_TG)[-1] == "Receipt #2 can't earn points: photo is blurry."
    finally:
        await flow.close()


async def test_without_a_model_every_receipt_waits_for_staff(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await make_flow(monkeypatch)
    try:
        await network_budtender(flow)
        replies = await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo())])
        assert "receipt #1" in replies[0]
        stored = await ReceiptRepo(flow.app.db).get(1)
        assert stored is not None and stored.status is ReceiptStatus.REVIEW
        assert stored.reason == "no vision model is configured: staff read it"
        assert await flow.send(ANN_TG, "hello") == [
            "Send me a photo of a receipt with our products to earn points — add the customer's phone number as "
            "the caption. /points shows your balance."]
    finally:
        await flow.close()


async def test_a_document_that_is_not_an_image_is_not_a_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.model import InboundFile

    flow = await make_flow(monkeypatch)
    try:
        await network_budtender(flow)
        replies = await flow.send(ANN_TG, "", files=[InboundFile("sales.csv", "text/csv", 3, content=b"a,b")])
        assert replies == ["Please send a photo of the receipt (a picture, not a document)."]
        assert await ReceiptRepo(flow.app.db).list() == []
    finally:
        await flow.close()


async def test_strangers_photos_are_not_receipts(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await make_flow(monkeypatch)
    try:
        replies = await flow.send(Address("telegram", "9999"), "", files=[photo_file(receipt_photo())])
        assert "not enrolled" in replies[0]
        assert await ReceiptRepo(flow.app.db).list() == []
    finally:
        await flow.close()


async def test_receipt_points_that_reach_a_tier_move_the_customer_up_once(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    from storage.customers import CustomerRepo
    from storage.events import TIER_UP

    flow = await make_flow(monkeypatch, ai)
    try:
        await network_budtender(flow)
        ai.reply_json(reading(lines=[("MOTA OG KUSH 3.5G", 6, "270.00")]))
        await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo())])
        stored = await ReceiptRepo(flow.app.db).get(1)
        assert stored is not None and stored.customer_points == 270 and stored.customer_id is not None
        customer = await CustomerRepo(flow.app.db).get(stored.customer_id)
        assert customer is not None and customer.vip_tier == "silver"
        event = await EventLog(flow.app.db).by_source(TIER_UP, f"{stored.customer_id}:silver")
        assert event is not None and event.payload["balance"] == 270 and event.payload["via"] == "receipt"
        ai.reply_json(reading(number="A-1002", lines=[("MOTA SOUR GUMMIES", 1, "20.00")]))
        await flow.send(ANN_TG, CUSTOMER_PHONE, files=[photo_file(receipt_photo("next"))])
        assert await EventLog(flow.app.db).count(TIER_UP) == 1
    finally:
        await flow.close()


async def test_a_photo_handled_again_after_a_crash_continues_its_receipt(
        monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI) -> None:
    from coaching.receipt_service import ReceiptService
    from coaching.receipts import image_hash

    flow = await make_flow(monkeypatch, ai)
    try:
        ann = await network_budtender(flow)
        service: ReceiptService = flow.app.deps["receipts"]
        photo = receipt_photo()
        # the crash: the photo was stored, the model never answered
        rid, _ = await service.repo.add(budtender_person_id=ann.id, channel="telegram", address="7001",
                                        image_sha256=image_hash(photo), image=photo, mimetype="image/jpeg",
                                        caption=CUSTOMER_PHONE, now=flow.clock.now(), inbound_id=77)
        ai.reply_json(reading())
        first = await service.receive(budtender_person_id=ann.id, address=ANN_TG, content=photo,
                                      mimetype="image/jpeg", caption=CUSTOMER_PHONE, inbound_id=77)
        assert (first.receipt_id, first.status) == (rid, ReceiptStatus.AWARDED)
        again = await service.receive(budtender_person_id=ann.id, address=ANN_TG, content=photo,
                                      mimetype="image/jpeg", caption=CUSTOMER_PHONE, inbound_id=77)
        assert (again.receipt_id, again.reply) == (rid, f"Receipt #{rid} is awarded.")
        assert len(await ReceiptRepo(flow.app.db).list()) == 1
        assert len(await LoyaltyRepo(flow.app.db).entries()) == 2 and len(ai.requests) == 1
    finally:
        await flow.close()
