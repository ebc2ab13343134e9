"""A receipt photo in → points to the customer and the budtender, or a refusal, or staff review.

The photo is stored first (nothing received is lost), then read by the vision model when one is
configured. The model sees the image and the house-brand product names — nothing about customers
or budtenders. Its answer is validated (`coaching.receipts.validate_reading`); anything it cannot
be trusted for goes to the staff review queue, never to points. Staff type the house-brand total
(`receipt N 45.50` in chat, or `python main.py receipts review N --total 45.50`).

Confirmations go through the outbox: the budtender's as the reply (or, after a review, a message
to the address the photo came from), the customer's by SMS to the phone on their record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import Clock
from bot.model import Address
from bot.phones import normalize_phone
from coaching.ai import AiClient
from coaching.loyalty import OrderLedger
from coaching.prompts import load_prompt
from coaching.receipts import (
    ReceiptReading,
    ReceiptRules,
    Unreadable,
    budtender_text,
    claims,
    customer_text,
    dollars,
    image_hash,
    name_in,
    phone_in,
    receipt_entries,
    receipt_points,
    too_old,
    validate_reading,
)
from storage.customers import Customer
from storage.db import Database
from storage.loyalty import LedgerEntry, LoyaltyRepo
from storage.receipts import (
    Award,
    ReceiptFacts,
    ReceiptLookups,
    ReceiptRepo,
    ReceiptStatus,
    StoredReceipt,
)

log = logging.getLogger(__name__)

Send = Callable[[Address, str, str], Awaitable[None]]
"""`await send(address, body, idempotency_key)`: a proactive message through the outbox."""
Review = Callable[[StoredReceipt, str], Awaitable[None]]
"""`await review(receipt, why)`: tell staff a receipt waits for them."""


@dataclass(slots=True)
class Outcome:
    receipt_id: int
    status: ReceiptStatus
    reply: str


class ReceiptService:
    def __init__(self, db: Database, clock: Clock, ai: AiClient, rules: ReceiptRules, send: Send,
                 review: Review | None = None) -> None:
        self.db = db
        self.clock = clock
        self.ai = ai
        self.rules = rules
        self.send = send
        self.review = review
        self.repo = ReceiptRepo(db)
        self.lookups = ReceiptLookups(db)
        self.loyalty = LoyaltyRepo(db)

    # -- a photo arrives ---------------------------------------------------------------------

    async def receive(self, *, budtender_person_id: int, address: Address, content: bytes, mimetype: str | None,
                      caption: str | None, inbound_id: int | None = None) -> Outcome:
        """Store the photo, then read it. The same inbound message again (handled a second time after a
        crash) continues the receipt it made, or answers what became of it."""
        now = self.clock.now()
        sha = image_hash(content)
        rid, before = await self.repo.add(budtender_person_id=budtender_person_id, channel=address.channel,
                                          address=address.id, image_sha256=sha, image=content, mimetype=mimetype,
                                          caption=caption, now=now, inbound_id=inbound_id)
        if before is not None and before.status is not ReceiptStatus.READING:
            why = f": {before.reason}" if before.reason else ""
            return Outcome(rid, before.status, f"Receipt #{rid} is {before.status.value}{why}.")
        held = await self.repo.claimed_by(claims(sha, None, None))
        if held is not None:
            await self.repo.set_status(rid, ReceiptStatus.REFUSED, now, reason=f"the same photo as #{held}",
                                       duplicate_of=held)
            return Outcome(rid, ReceiptStatus.REFUSED,
                           f"This photo was already sent as receipt #{held}: a receipt earns points once.")
        if not self.ai.enabled:
            return await self._to_review(rid, "no vision model is configured: staff read it")
        names = await self.lookups.house_brand_names()
        reading = await self.ai.structured(
            ReceiptReading, load_prompt("receipt_reader", house_names="\n".join(f"- {n}" for n in names) or "- (none)"),
            "Read this receipt.", images=[(content, mimetype or "image/jpeg")], label="receipt")
        if reading is None:
            return await self._to_review(rid, "the model's answer could not be used")
        try:
            receipt = validate_reading(reading, names, self.rules)
        except Unreadable as exc:
            return await self._to_review(rid, str(exc))
        facts = ReceiptFacts(store_name=receipt.store, receipt_number=receipt.number, receipt_date=receipt.date,
                             customer_phone=receipt.customer_phone, customer_name=receipt.customer_name,
                             lines=[{"product": ln.product, "quantity": ln.quantity, "line_total": str(ln.line_total),
                                     "house_product": ln.house_product, "score": round(ln.score, 1)}
                                    for ln in receipt.lines],
                             house_total=receipt.house_total, read_by="model")
        old = too_old(receipt.date, now.date(), self.rules)
        if old:
            return await self._refuse(rid, old, facts)
        held = await self.repo.claimed_by(claims(sha, receipt.store, receipt.number))
        if held is not None:
            await self.repo.set_status(rid, ReceiptStatus.REFUSED, now, facts=facts, duplicate_of=held,
                                       reason=f"the same receipt as #{held}")
            return Outcome(rid, ReceiptStatus.REFUSED,
                           f"Receipt {receipt.number} from {receipt.store} was already sent (#{held}): "
                           "a receipt earns points once.")
        if receipt.house_total <= 0:
            return await self._refuse(rid, "no house-brand products were found on it", facts)
        customer = await self._customer(phone_in(caption) or receipt.customer_phone,
                                        name_in(caption) or receipt.customer_name)
        if customer is None:
            return await self._to_review(rid, "the customer is not identified (send their phone number with the "
                                              "photo)", facts)
        return await self._award(rid, budtender_person_id, customer, receipt.house_total, facts,
                                 claims(sha, receipt.store, receipt.number), "model", receipt.store)

    async def _customer(self, phone_text: str | None, name: str | None) -> Customer | None:
        phone = None
        if phone_text:
            try:
                phone = normalize_phone(phone_text)
            except ValueError:
                phone = None
        if phone:
            found = await self.lookups.customer_by_phone(phone)
            if found is not None:
                return found
            new_id = await self.lookups.add_customer(phone, name, self.clock.now())
            return await self.lookups.customers.get(new_id)
        if name:
            named = await self.lookups.customers_named(name)
            if len(named) == 1:
                return named[0]
        return None

    async def _award(self, rid: int, budtender_person_id: int | None, customer: Customer, total: Decimal,
                     facts: ReceiptFacts, keys: list[str], by: str, store: str | None) -> Outcome:
        now = self.clock.now()
        c_points, b_points = receipt_points(total, self.rules)
        entries = receipt_entries(rid, customer_id=customer.id, budtender_person_id=budtender_person_id,
                                  customer_points=c_points, budtender_points=b_points, now=now,
                                  note=f"receipt #{rid}{f' from {store}' if store else ''}"[:300])
        tiers = OrderLedger(self.rules.loyalty)
        held = await self.repo.award(rid, Award(customer.id, entries, keys, c_points, b_points, by, facts,
                                                tier_up=tiers.tier_up), now)
        if held is not None:
            return Outcome(rid, ReceiptStatus.REFUSED, f"This receipt was already sent (#{held}): a receipt earns "
                                                       "points once.")
        log.info("receipt awarded receipt_id=%s customer_id=%s points=%s bonus=%s by=%s", rid, customer.id,
                 c_points, b_points, by)
        if customer.phone and customer.id is not None:
            balance = await self.loyalty.customer_balance(customer.id)
            await self.send(Address("sms", customer.phone), customer_text(store, total, c_points, balance),
                            f"receipt:{rid}:customer")
        mine = await self.loyalty.person_balance(budtender_person_id) if budtender_person_id else 0
        who = customer.name or "the customer"
        return Outcome(rid, ReceiptStatus.AWARDED, budtender_text(rid, store, total, who, c_points, b_points, mine))

    async def _to_review(self, rid: int, why: str, facts: ReceiptFacts | None = None) -> Outcome:
        now = self.clock.now()
        await self.repo.set_status(rid, ReceiptStatus.REVIEW, now, reason=why, facts=facts)
        log.info("receipt to review receipt_id=%s why=%s", rid, why)
        stored = await self.repo.get(rid)
        if self.review is not None and stored is not None:
            try:
                await self.review(stored, why)
            except Exception:
                log.exception("could not notify staff of receipt %s", rid)
        return Outcome(rid, ReceiptStatus.REVIEW, f"Got it — receipt #{rid}. A member of staff will check it; "
                                                  "you'll both get your points once it's confirmed.")

    async def _refuse(self, rid: int, why: str, facts: ReceiptFacts | None = None) -> Outcome:
        await self.repo.set_status(rid, ReceiptStatus.REFUSED, self.clock.now(), reason=why, facts=facts)
        return Outcome(rid, ReceiptStatus.REFUSED, f"Receipt #{rid} can't earn points: {why}.")

    # -- staff -------------------------------------------------------------------------------

    async def decide(self, receipt_id: int, total: Decimal, *, by: str, phone: str | None = None,
                     name: str | None = None) -> str:
        """Staff typed the house-brand total of a receipt in review: award it (or say why not)."""
        stored = await self.repo.get(receipt_id)
        if stored is None:
            return f"There is no receipt #{receipt_id}."
        if stored.status is not ReceiptStatus.REVIEW:
            return f"Receipt #{receipt_id} is {stored.status.value}, not waiting for review."
        if total <= 0:
            return await self.refuse(receipt_id, "no house-brand products on it", by=by)
        customer = await self._customer(phone or stored.customer_phone or phone_in(stored.caption),
                                        name or stored.customer_name or name_in(stored.caption))
        if customer is None:
            return (f"Receipt #{receipt_id}: whose is it? Add the customer's phone, e.g. "
                    f"receipt {receipt_id} {total} +16195550100.")
        facts = ReceiptFacts(house_total=total.quantize(Decimal("0.01")), read_by="staff")
        keys = claims(stored.image_sha256, stored.store_name, stored.receipt_number)
        out = await self._award(receipt_id, stored.budtender_person_id, customer, facts.house_total or total, facts,
                                keys, by, stored.store_name)
        if out.status is ReceiptStatus.AWARDED:
            await self.send(Address(stored.channel, stored.address), out.reply, f"receipt:{receipt_id}:budtender")
            return f"Receipt #{receipt_id} confirmed: {dollars(total)} → {out.reply.split('→', 1)[1].strip()}"
        return out.reply

    async def refuse(self, receipt_id: int, reason: str, *, by: str) -> str:
        stored = await self.repo.get(receipt_id)
        if stored is None:
            return f"There is no receipt #{receipt_id}."
        if stored.status is not ReceiptStatus.REVIEW:
            return f"Receipt #{receipt_id} is {stored.status.value}, not waiting for review."
        await self.repo.set_status(receipt_id, ReceiptStatus.REFUSED, self.clock.now(), reason=reason, decided_by=by)
        await self.send(Address(stored.channel, stored.address),
                        f"Receipt #{receipt_id} can't earn points: {reason}.", f"receipt:{receipt_id}:budtender")
        return f"Receipt #{receipt_id} refused: {reason}."

    async def reverse(self, receipt_id: int, reason: str, *, by: str) -> list[LedgerEntry]:
        """Cancel a receipt's points (the reason kept on each reversing entry)."""
        stored = await self.repo.get(receipt_id)
        if stored is None:
            raise KeyError(f"there is no receipt #{receipt_id}")
        entries = await self.loyalty.by_source(receipt_id=receipt_id)
        done = await self.loyalty.reverse([e.key for e in entries], f"{reason} (by {by})", self.clock.now())
        if done:
            await self.repo.set_status(receipt_id, ReceiptStatus.REVERSED, self.clock.now(),
                                       reason=f"reversed: {reason}", decided_by=by)
        return done


__all__ = ["Outcome", "ReceiptService", "Review", "Send"]
