"""Receipt rules (pure): what a model may answer, what a receipt is worth, and when it is refused.

The predecessor (REX) gave 1 point per $1 of house-brand products on a receipt to the customer
and 10× that to the budtender who sold them. Here:

* the model's answer must match `ReceiptReading` (strict JSON schema); `validate_reading` turns it
  into a `Receipt` with Decimal money and a real date, or says why it cannot (→ staff review);
* each line is matched against the catalogue's house-brand names with rapidfuzz
  (`token_set_ratio`, a score of at least `match_score`), so "MOTA OG 3.5G" matches "Mota OG 3.5g";
* a receipt dated more than `max_age_days` before it arrived, or after it arrived, is refused;
* a receipt counts once: by its image hash and by (store, receipt number), see `claims`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from coaching.loyalty import LoyaltyRules
from storage.loyalty import LedgerEntry

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/heic")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic")
_PHONE_RE = re.compile(r"\+?\d[\d\s().-]{8,}\d")


class ReceiptLineReading(BaseModel):
    """One line as printed: the model copies text and numbers, it does not compute."""

    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=200)
    quantity: int = Field(ge=0, le=1000)
    line_total: str = Field(max_length=20, description="the line's amount as printed, e.g. 45.00")


class ReceiptReading(BaseModel):
    """What the vision model must answer (strict Structured Outputs: every field present)."""

    model_config = ConfigDict(extra="forbid")
    is_receipt: bool = Field(description="false if the image is not a shop receipt")
    store: str | None = Field(max_length=200, description="the shop's name as printed")
    date: str | None = Field(max_length=10, description="the purchase date as YYYY-MM-DD")
    receipt_number: str | None = Field(max_length=100, description="receipt / transaction / order number")
    customer_name: str | None = Field(max_length=200)
    customer_phone: str | None = Field(max_length=32)
    lines: list[ReceiptLineReading] = Field(max_length=200)


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    product: str
    quantity: int
    line_total: Decimal
    house_product: str | None = None
    """The catalogue's house-brand name it matched, or None."""
    score: float = 0.0


@dataclass(slots=True)
class Receipt:
    store: str
    date: date
    number: str
    lines: list[ReceiptLine]
    customer_name: str | None = None
    customer_phone: str | None = None

    @property
    def house_total(self) -> Decimal:
        return sum((ln.line_total for ln in self.lines if ln.house_product), Decimal("0"))

    @property
    def house_lines(self) -> list[ReceiptLine]:
        return [ln for ln in self.lines if ln.house_product]


class Unreadable(ValueError):
    """The model's answer cannot be trusted for points: the receipt goes to staff review."""


@dataclass(frozen=True, slots=True)
class ReceiptRules:
    loyalty: LoyaltyRules = field(default_factory=LoyaltyRules)
    max_age_days: int = 30
    match_score: float = 85.0


def image_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def is_image(name: str | None, mimetype: str | None) -> bool:
    mime = (mimetype or "").split(";")[0].strip().lower()
    return mime in IMAGE_TYPES or (name or "").lower().endswith(IMAGE_SUFFIXES)


def money(text: str) -> Decimal:
    """"$1,045.50" → Decimal("1045.50"); raises Unreadable."""
    cleaned = re.sub(r"[^\d.\-]", "", text.replace(",", ""))
    try:
        value = Decimal(cleaned).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise Unreadable(f"the amount {text!r} is not a number") from None
    if value < 0 or value > Decimal("100000"):
        raise Unreadable(f"the amount {text!r} is out of range")
    return value


def match_house(product: str, house_names: Sequence[str], min_score: float) -> tuple[str | None, float]:
    """The house-brand catalogue name this printed product is, or (None, best score)."""
    from rapidfuzz import fuzz, process, utils  # loaded on the first receipt

    if not house_names or not product.strip():
        return None, 0.0
    found = process.extractOne(product, house_names, scorer=fuzz.token_set_ratio, processor=utils.default_process)
    if found is None:
        return None, 0.0
    name, score, _ = found
    return (name, float(score)) if score >= min_score else (None, float(score))


def validate_reading(reading: ReceiptReading, house_names: Sequence[str], rules: ReceiptRules) -> Receipt:
    """A receipt with Decimal money, a date and matched lines; raises Unreadable with the reason."""
    if not reading.is_receipt:
        raise Unreadable("the model says the photo is not a receipt")
    if not reading.store or not reading.store.strip():
        raise Unreadable("no store name on the receipt")
    if not reading.receipt_number or not reading.receipt_number.strip():
        raise Unreadable("no receipt number on the receipt")
    if not reading.date:
        raise Unreadable("no date on the receipt")
    try:
        when = date.fromisoformat(reading.date)
    except ValueError:
        raise Unreadable(f"the date {reading.date!r} is not YYYY-MM-DD") from None
    if not reading.lines:
        raise Unreadable("no product lines read")
    lines = []
    for ln in reading.lines:
        name, score = match_house(ln.product, house_names, rules.match_score)
        lines.append(ReceiptLine(ln.product.strip(), ln.quantity, money(ln.line_total), name, score))
    return Receipt(" ".join(reading.store.split()), when, reading.receipt_number.strip(), lines,
                   (reading.customer_name or "").strip() or None, (reading.customer_phone or "").strip() or None)


def too_old(receipt_date: date, received: date, rules: ReceiptRules) -> str | None:
    """Why a receipt of this date cannot earn points when received on `received`, or None."""
    if receipt_date > received + timedelta(days=1):
        return f"it is dated {receipt_date:%Y-%m-%d}, in the future"
    if received - receipt_date > timedelta(days=rules.max_age_days):
        return (f"it is dated {receipt_date:%Y-%m-%d}, more than {rules.max_age_days} days ago "
                f"(receipts count for {rules.max_age_days} days)")
    return None


def claims(image_sha256: str, store: str | None, number: str | None) -> list[str]:
    """The unique keys a receipt takes: its photo, and (store, number) when both are known."""
    keys = [f"img:{image_sha256}"]
    if store and number:
        keys.append(f"num:{' '.join(store.split()).casefold()}:{number.strip().casefold()}")
    return keys


def receipt_points(house_total: Decimal, rules: ReceiptRules) -> tuple[int, int]:
    """(customer points, budtender points): floor(total × rate), and the budtender's multiple of it."""
    if house_total <= 0:
        return 0, 0
    points = int((house_total * rules.loyalty.points_per_dollar).to_integral_value(rounding=ROUND_FLOOR))
    bonus = int((Decimal(points) * rules.loyalty.budtender_multiplier).to_integral_value(rounding=ROUND_FLOOR))
    return points, bonus


def receipt_keys(receipt_id: int) -> tuple[str, str]:
    return f"receipt:{receipt_id}:customer", f"receipt:{receipt_id}:budtender"


def receipt_entries(receipt_id: int, *, customer_id: int | None, budtender_person_id: int | None,
                    customer_points: int, budtender_points: int, now: datetime,
                    note: str | None = None) -> list[LedgerEntry]:
    c_key, b_key = receipt_keys(receipt_id)
    out = []
    if customer_id is not None and customer_points:
        out.append(LedgerEntry(c_key, customer_points, "receipt", now, customer_id=customer_id, note=note,
                               receipt_id=receipt_id))
    if budtender_person_id is not None and budtender_points:
        out.append(LedgerEntry(b_key, budtender_points, "receipt_bonus", now, person_id=budtender_person_id,
                               note=note, receipt_id=receipt_id))
    return out


def phone_in(text: str | None) -> str | None:
    """The first phone-number-looking run in a caption ("customer +1 619 555 0100")."""
    if not text:
        return None
    found = _PHONE_RE.search(text)
    return found.group(0) if found else None


def name_in(text: str | None) -> str | None:
    """A caption with the phone taken out, as a customer's name ("for Maria Lopez" → "Maria Lopez")."""
    if not text:
        return None
    rest = _PHONE_RE.sub(" ", text)
    rest = re.sub(r"^\s*(for|customer|client|name)\s*[:\-]?\s*", "", rest.strip(), flags=re.I)
    rest = " ".join(rest.split())
    return rest if 2 <= len(rest) <= 80 and any(ch.isalpha() for ch in rest) else None


def dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def budtender_text(receipt_id: int, store: str | None, total: Decimal, customer: str, c_points: int,
                   b_points: int, balance: int) -> str:
    where = f" from {store}" if store else ""
    return (f"Receipt #{receipt_id}{where}: {dollars(total)} of house brand → {c_points} pts to {customer}, "
            f"{b_points} pts to you (your balance: {balance}).")


def customer_text(store: str | None, total: Decimal, points: int, balance: int) -> str:
    where = f" at {store}" if store else ""
    return (f"You earned {points} points for {dollars(total)} of our products{where}. "
            f"Your balance: {balance} points.")


__all__ = ["IMAGE_TYPES", "Receipt", "ReceiptLine", "ReceiptLineReading", "ReceiptReading", "ReceiptRules",
           "Unreadable", "budtender_text", "claims", "customer_text", "image_hash", "is_image", "match_house",
           "name_in", "phone_in", "receipt_entries", "receipt_keys", "receipt_points", "too_old",
           "validate_reading"]
