"""The loyalty ledger: points as signed entries; a balance is the sum, never a stored number.

Each entry has a unique `key` (e.g. `order:123:customer`, `refund:123:customer`) so awarding
or reversing the same order twice is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from storage.db import metadata
from storage.types import UTCDateTime

loyalty_ledger = sa.Table(
    "loyalty_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE")),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE")),
    sa.Column("delta", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("order_external_id", sa.String(100)),
    sa.Column("note", sa.String(300)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_loyalty_ledger_customer", "customer_id"),
    sa.Index("ix_loyalty_ledger_person", "person_id"),
)
"""`customer_id` for a customer's points; `person_id` for staff points (the budtender bonus)."""


@dataclass(slots=True)
class LedgerEntry:
    key: str
    delta: int
    reason: str
    created_at: datetime
    customer_id: int | None = None
    person_id: int | None = None
    order_external_id: str | None = None
    note: str | None = None
