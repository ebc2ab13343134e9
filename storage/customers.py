"""Stores and their customers (the CRM): who shops where, their tier, rewards membership and tastes.

A customer row is the CRM record; `person_id` links it to the core `persons` row that owns the
customer's SMS address, so the concierge can go from an inbound text to the CRM record in one
indexed lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from storage.db import metadata
from storage.types import Money, UTCDateTime

stores = sa.Table(
    "stores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("address", sa.String(500)),
    sa.Column("phone", sa.String(32)),
    sa.Column("hours", sa.String(500)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), unique=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL"), unique=True),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("phone", sa.String(32), index=True),
    sa.Column("email", sa.String(200)),
    sa.Column("vip_tier", sa.String(32)),
    sa.Column("signup_date", sa.Date),
    sa.Column("rewards_member", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("favourite_categories", sa.JSON, nullable=False),
    sa.Column("lifetime_spend", Money, nullable=False, server_default="0"),
    sa.Column("visits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_visit_at", UTCDateTime),
    sa.Column("birthday", sa.Date),
    sa.Column("sms_opt_in", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

handoffs = sa.Table(
    "store_handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_address", sa.String(200), nullable=False),
    sa.Column("staff_channel", sa.String(32), nullable=False),
    sa.Column("staff_address", sa.String(200), nullable=False),
    sa.Column("staff_thread", sa.String(200)),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(200)),
    sa.Index("ix_store_handoffs_open", "person_id", "closed_at"),
)
"""One row per HUMAN request: which staff destination got it and whether it is still open."""


@dataclass(slots=True)
class Store:
    id: int | None
    code: str
    name: str
    timezone: str = "America/Los_Angeles"
    address: str | None = None
    phone: str | None = None
    hours: str | None = None


@dataclass(slots=True)
class Customer:
    """A CRM record as the concierge and coaching see it."""

    id: int | None
    external_id: str | None
    person_id: int | None
    store_id: int | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None = None
    vip_tier: str | None = None
    signup_date: date | None = None
    rewards_member: bool = False
    favourite_categories: list[str] = field(default_factory=list)
    lifetime_spend: Decimal = Decimal("0")
    visits: int = 0
    last_visit_at: datetime | None = None
    birthday: date | None = None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p).strip()
