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
Signature (Stripe's scheme, so a captured request cannot be replayed later): the header
`X-Huddle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. The timestamp is
inside the signed text, so it cannot be refreshed without the secret, and it must be within the
window (5 minutes by default). Several `v1=` may be sent (one per secret while a secret is being
rotated); one match is enough. Elements other than `t` and `v1` are ignored.

The old header `sha256=<hex HMAC of the body alone>` with `X-Huddle-Timestamp` is refused unless
HUDDLE_POS_WEBHOOK_LEGACY_SIGNATURE=true: anyone who saw one request could send it again with a
fresh timestamp (the event id still stops a second processing, but not a first one of a captured
event that never reached us).
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


SCHEME = "v1"


def sign(secret: str, body: bytes, timestamp: int | float) -> str:
    """The `X-Huddle-Signature` value for `body` sent at `timestamp`: `t=…,v1=…`."""
    t = int(timestamp)
    return f"t={t},{SCHEME}={_digest(secret, t, body)}"


def _digest(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def legacy_sign(secret: str, body: bytes) -> str:
    """The old, replayable body-only signature (`sha256=<hex>`), accepted only behind a setting."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_signature(header: str) -> tuple[int | None, list[str]]:
    """`t=1,v1=a,v1=b,v0=c` → (1, ["a", "b"]): the timestamp and the signatures of our scheme."""
    t: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                t = int(value)
            except ValueError:
                return None, []
        elif key == SCHEME:
            signatures.append(value.strip().lower())
    return t, signatures


def check_signature(secrets: list[str], body: bytes, header: str | None, now: datetime, window: float = 300, *,
                    legacy: bool = False, legacy_timestamp: str | None = None) -> str | None:
    """None when `header` proves the body came from a holder of one of `secrets` within `window`
    seconds of `now`; otherwise the reason it does not (sent back with the 401)."""
    if not header or not header.strip():
        return f"missing {SIGNATURE_HEADER}"
    header = header.strip()
    if header.lower().startswith("sha256="):
        if not legacy:
            return (f"{SIGNATURE_HEADER}: the body-only sha256= signature can be replayed and is refused; send "
                    "t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\"> (or set HUDDLE_POS_WEBHOOK_LEGACY_SIGNATURE=true)")
        if not any(hmac.compare_digest(header.lower().encode(), legacy_sign(s, body).encode()) for s in secrets):
            return f"bad {SIGNATURE_HEADER}"
        if not timestamp_ok(legacy_timestamp, now, window):
            return f"missing or stale {TIMESTAMP_HEADER}"
        return None
    t, given = parse_signature(header)
    if t is None or not given:
        return f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>"
    expected = [_digest(s, t, body).encode() for s in secrets]
    if not any(hmac.compare_digest(g.encode(), e) for g in given for e in expected):
        return f"bad {SIGNATURE_HEADER}"
    if abs(now.timestamp() - t) > window:
        return f"{SIGNATURE_HEADER} timestamp is outside the {int(window)} s window (replayed or clock skew)"
    return None


def signature_ok(secret: str, body: bytes, header: str | None, now: datetime | None = None,
                 window: float = 300) -> bool:
    """True when `header` is a valid, fresh `t=…,v1=…` signature of `body` (see `check_signature`)."""
    return check_signature([secret], body, header, now or datetime.now(UTC), window) is None


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
