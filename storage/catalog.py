"""The product catalogue: what a store sells, at which price tier, and whether it is in stock."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, metadata
from storage.prepared import Prepared
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


def _product(r: Any) -> Product:
    return Product(r.id, r.external_id, r.name, r.category, r.brand, bool(r.house_brand), r.price_tier, r.price,
                   bool(r.in_stock), r.store_id)


_TIERS_BY_SKU = Prepared(
    sa.select(products.c.external_id, products.c.id, products.c.price_tier, products.c.house_brand).where(
        products.c.external_id.in_(sa.bindparam("skus", expanding=True))
    )
)


class CatalogRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert_in(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        await self.db.upsert_in(conn, products, rows)

    @staticmethod
    async def priced_in(conn: AsyncConnection) -> list[Any]:
        """Every product with a price: rows of (id, external_id, name, category, price)."""
        query = sa.select(products.c.id, products.c.external_id, products.c.name, products.c.category, products.c.price)
        return [r for r in (await conn.execute(query)).all() if r.price is not None]

    async def priced(self) -> list[Any]:
        return await self.db.query(self.priced_in)

    @staticmethod
    async def tiers_in(conn: AsyncConnection, skus: set[str]) -> dict[str, tuple[int, int, bool]]:
        """sku → (product id, price tier, house brand), for the known ones among `skus`."""
        if not skus:
            return {}
        rows = await _TIERS_BY_SKU.all(conn, {"skus": sorted(skus)})
        return {r.external_id: (r.id, r.price_tier, bool(r.house_brand)) for r in rows}

    @staticmethod
    async def ids_by_external_in(conn: AsyncConnection) -> dict[str, int]:
        rows = (await conn.execute(sa.select(products.c.external_id, products.c.id))).all()
        return {r.external_id: r.id for r in rows}

    @staticmethod
    async def in_stock_in(conn: AsyncConnection, store_id: int | None = None, limit: int = 200) -> list[Product]:
        """In-stock products (of the store, or of no store in particular), house brands and top tiers first."""
        query = sa.select(products).where(products.c.in_stock.is_(True))
        if store_id is not None:
            query = query.where(sa.or_(products.c.store_id == store_id, products.c.store_id.is_(None)))
        query = query.order_by(products.c.house_brand.desc(), products.c.price_tier.desc(), products.c.name)
        query = query.limit(limit)
        return [_product(r) for r in (await conn.execute(query)).all()]

    async def in_stock(self, store_id: int | None = None, limit: int = 200) -> list[Product]:
        async with self.db.read() as conn:
            return await self.in_stock_in(conn, store_id, limit)

    async def get(self, external_id: str) -> Product | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(products).where(products.c.external_id == external_id))).first()
        return _product(row) if row else None
