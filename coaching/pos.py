"""POS webhook events: signature and freshness checks, and the payload schema (pure, no I/O).

Envelope (JSON, money as strings or JSON numbers, parsed as Decimal — never float):

    {"id": "evt_1", "type": "order.created", "created_at": "2026-11-23T18:00:00Z",
     "data": {"id": "T1001", "store": "main", "customer_id": "C17", "customer_phone": "+16195550100",
              "budtender_id": "E5", "occurred_at": "2026-11-23T17:59:00Z", "total": "45.50",
              "status": "completed", "rewards_signup": false,
              "items": [{"sku": "P1", "name": "House OG 3.5g", "category": "flower",
                         "quantity": 1, "unit_price": "45.50"}]}}

`order.updated` carries the whole order again (e.g. `"status": "refunded"`); only a refunded or
voided order may total below zero; a discount is an amount off, its sign ignored. `store` must be a store
Huddle knows (`[[stores]]` in huddle.toml), or absent for the first one; an unknown `budtender_id`
is accepted with a warning in the answer, the order kept without a budtender. `customer.created`
carries `{"id", "first_name", "last_name", "phone", "email", "vip_tier", "signup_date", "store"}`.
Headers: `X-Huddle-Signature: sha256=<hex HMAC-SHA256 of the raw body>` and
`X-Huddle-Timestamp: <unix seconds>` within the window (5 minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SIGNATURE_HEADER = "X-Huddle-Signature"
TIMESTAMP_HEADER = "X-Huddle-Timestamp"
MAX_BODY = 1024 * 1024
EVENT_TYPES = ("order.created", "order.updated", "customer.created")
REVERSED = ("refunded", "voided")
"""Statuses that give money back; only these may carry a negative total."""


class PayloadError(ValueError):
    """A readable reason why an event was refused (sent back with the 400)."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the given `sha256=<hex>` against our own."""
    if not header:
        return False
    return hmac.compare_digest(header.strip().lower().encode(), sign(secret, body).encode())


def timestamp_ok(header: str | None, now: datetime, window: float = 300) -> bool:
    if not header:
        return False
    try:
        sent = float(header.strip())
    except ValueError:
        return False
    return abs(now.timestamp() - sent) <= window


Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
Text = Annotated[str, Field(min_length=1, max_length=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class OrderItem(_Model):
    id: Text | None = None
    sku: Text | None = None
    name: str = Field("", max_length=300)
    category: str = Field("", max_length=100)
    quantity: int = Field(1, ge=0, le=100000)
    unit_price: Money
    total: Money | None = None

    @property
    def line_total(self) -> Decimal:
        return self.total if self.total is not None else (self.unit_price * self.quantity).quantize(Decimal("0.01"))


class OrderData(_Model):
    id: Text
    store: Text | None = None
    customer_id: Text | None = None
    customer_phone: str | None = Field(None, max_length=32)
    customer_name: str | None = Field(None, max_length=200)
    budtender_id: Text | None = None
    occurred_at: datetime
    total: Money
    discount: Money = Decimal("0")
    status: Literal["completed", "pending", "refunded", "voided"] = "completed"
    rewards_signup: bool = False
    items: list[OrderItem] = Field(default_factory=list, max_length=1000)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)

    @model_validator(mode="after")
    def _no_negative_sale(self) -> OrderData:
        """A sale never totals below zero: money going back is a refund (status refunded or voided)."""
        if self.total < 0 and self.status not in REVERSED:
            raise ValueError(f"total {self.total} is negative for a {self.status} order: "
                             "send a refund as status \"refunded\" (or \"voided\")")
        return self

    @field_validator("discount")
    @classmethod
    def _amount_off(cls, value: Decimal) -> Decimal:
        """An amount off, whatever its sign: Square's exports write discounts as negative numbers."""
        return abs(value)


class CustomerData(_Model):
    id: Text
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=200)
    vip_tier: str | None = Field(None, max_length=32)
    signup_date: date | None = None
    store: Text | None = None
    rewards_member: bool = True


class Envelope(_Model):
    id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Literal["order.created", "order.updated", "customer.created"]
    created_at: datetime | None = None
    data: dict[str, Any]


def _reason(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    return f"{loc}: {err['msg'].removeprefix('Value error, ')}"


def parse_event(body: bytes) -> tuple[Envelope, OrderData | CustomerData]:
    """Parse and validate a whole event, or raise PayloadError naming the first bad field."""
    try:
        raw = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PayloadError("the body must be a JSON object")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise PayloadError(_reason(exc, "")) from None
    model: type[OrderData] | type[CustomerData] = CustomerData if envelope.type == "customer.created" else OrderData
    try:
        return envelope, model.model_validate(envelope.data)
    except ValidationError as exc:
        raise PayloadError(_reason(exc, "data")) from None
