"""Sales: staff (budtenders as the POS knows them), transactions and their line items.

Coaching consumes `Transaction` (with its items): budtender, customer, total as Decimal, time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa

from storage.db import metadata
from storage.types import Money, UTCDateTime

staff = sa.Table(
    "store_staff",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), nullable=False, unique=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32)),
    sa.Column("role", sa.String(32), nullable=False, server_default="budtender"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""The POS's employee id → Huddle person (role budtender), so orders name a person to coach."""

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), nullable=False, unique=True),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="SET NULL")),
    sa.Column("customer_external_id", sa.String(100)),
    sa.Column("budtender_person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
    sa.Column("budtender_external_id", sa.String(100)),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("total", Money, nullable=False),
    sa.Column("discount", Money, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="completed"),
    sa.Column("rewards_signup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(16), nullable=False, server_default="import"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_transactions_budtender_time", "budtender_person_id", "occurred_at"),
    sa.Index("ix_transactions_customer_time", "customer_id", "occurred_at"),
    sa.Index("ix_transactions_store_time", "store_id", "occurred_at"),
)

transaction_items = sa.Table(
    "transaction_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(150), nullable=False, unique=True),
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="SET NULL")),
    sa.Column("product_external_id", sa.String(100)),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("category", sa.String(100), nullable=False, server_default=""),
    sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
    sa.Column("unit_price", Money, nullable=False),
    sa.Column("line_total", Money, nullable=False),
    sa.Index("ix_transaction_items_transaction", "transaction_id"),
)
"""`external_id` is the POS line id, or `<order external id>:<line number>` when it has none."""


class TransactionStatus(StrEnum):
    COMPLETED = "completed"
    PENDING = "pending"
    REFUNDED = "refunded"
    VOIDED = "voided"


@dataclass(slots=True)
class TransactionItem:
    product_external_id: str | None
    name: str
    category: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    product_id: int | None = None
    price_tier: int | None = None
    house_brand: bool = False


@dataclass(slots=True)
class Transaction:
    """One order as coaching consumes it (money is Decimal, times are aware UTC)."""

    id: int | None
    external_id: str
    store_id: int | None
    customer_id: int | None
    budtender_person_id: int | None
    occurred_at: datetime
    total: Decimal
    status: TransactionStatus = TransactionStatus.COMPLETED
    rewards_signup: bool = False
    items: list[TransactionItem] = field(default_factory=list)
    customer_external_id: str | None = None
    budtender_external_id: str | None = None

    @property
    def counts(self) -> bool:
        """Whether the order counts towards sales (refunded and voided ones do not)."""
        return self.status in (TransactionStatus.COMPLETED, TransactionStatus.PENDING)
