"""The product catalogue: what a store sells, at which price tier, and whether it is in stock."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from storage.db import metadata
from storage.types import Money, UTCDateTime

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(100), nullable=False, unique=True),
    sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("category", sa.String(100), nullable=False, server_default=""),
    sa.Column("brand", sa.String(200)),
    sa.Column("house_brand", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("price_tier", sa.Integer, nullable=False, server_default="2"),
    sa.Column("price", Money),
    sa.Column("in_stock", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_products_category_stock", "category", "in_stock"),
)
"""`price_tier`: 1 value, 2 mid, 3 premium. An upsell is choosing a higher tier than usual."""

PRICE_TIERS = {"value": 1, "budget": 1, "low": 1, "mid": 2, "standard": 2, "premium": 3, "top": 3, "high": 3}


@dataclass(slots=True)
class Product:
    id: int | None
    external_id: str
    name: str
    category: str = ""
    brand: str | None = None
    house_brand: bool = False
    price_tier: int = 2
    price: Decimal | None = None
    in_stock: bool = True
    store_id: int | None = None
