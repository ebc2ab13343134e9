"""Demo data: one store, a small catalogue, and three customers with history and points."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from bot.app import App
from bot.model import Address, Person
from coaching.loyalty import order_points
from coaching.roles import Role
from storage.catalog import Product
from storage.customers import Store
from storage.loyalty import LedgerEntry
from storage.store_records import NewCustomer, NewLine, NewOrder, StoreRecords, StoreRecordsRepo

PRODUCTS = [
    # sku, name, category, brand, house, tier, price, in stock
    ("MOTA-OG35", "MOTA House OG 3.5g", "flower", "MOTA", True, 2, "35.00", True),
    ("MOTA-PR5", "MOTA Sunset Pre-Roll 5-pack", "pre-rolls", "MOTA", True, 1, "25.00", True),
    ("GLS-GG35", "Glass House Gorilla Glue 3.5g", "flower", "Glass House", False, 1, "28.00", True),
    ("CNX-RES1", "Connected Live Resin 1g", "concentrates", "Connected", False, 3, "60.00", True),
    ("KIVA-CB", "Kiva Camino Gummies 100mg", "edibles", "Kiva", False, 2, "22.00", True),
    ("STIIIZY-PD", "STIIIZY Pod 1g", "vapes", "STIIIZY", False, 2, "45.00", True),
    ("ALIEN-35", "Alien Labs Atomic Apple 3.5g", "flower", "Alien Labs", False, 3, "65.00", False),
]

CUSTOMERS = [
    # external id, first, last, phone, tier, favourites, days since signup, orders [(days ago, [(sku, qty)])]
    ("C1001", "Maria", "Lopez", "+13235550101", "Gold", ["flower", "pre-rolls"], 400,
     [(3, [("MOTA-OG35", 1), ("MOTA-PR5", 1)]), (17, [("GLS-GG35", 2)]), (40, [("MOTA-OG35", 1)])]),
    ("C1002", "Devon", "Price", "+13235550102", "Silver", ["edibles"], 120,
     [(9, [("KIVA-CB", 2)]), (30, [("KIVA-CB", 1), ("MOTA-PR5", 1)])]),
    ("C1003", "Aiko", "Tanaka", "+13235550103", "Platinum", ["concentrates", "vapes"], 700,
     [(1, [("CNX-RES1", 1), ("STIIIZY-PD", 1)]), (12, [("CNX-RES1", 2)])]),
]


async def seed(app: App) -> None:
    from handlers.store_services import services

    svc = services(app)
    now = app.clock.now()
    s = svc.default_store
    ids = await svc.customers.ensure_stores([Store(None, s.code, s.name, s.timezone, s.address, s.phone, s.hours)],
                                            now)
    store_id = ids[s.code]
    prices = {p[0]: Decimal(p[6]) for p in PRODUCTS}
    names = {p[0]: (p[1], p[2]) for p in PRODUCTS}
    rules = svc.settings.loyalty
    records = StoreRecords(products=[
        Product(None, sku, name, cat, brand, house, tier, Decimal(price), stock, store_id)
        for sku, name, cat, brand, house, tier, price, stock in PRODUCTS
    ])
    for ext, first, last, phone, tier, favs, age, orders in CUSTOMERS:
        person = Person(None, f"{first} {last}", frozenset({Role.CUSTOMER}), [Address("sms", phone)],
                        timezone=s.timezone, attributes={"demo": True})
        records.customers.append(NewCustomer(
            ext, person, store_id, first, last, phone, tier, date.fromordinal(now.date().toordinal() - age),
            rewards_member=True, favourite_categories=favs, attributes={"demo": True}))
        for n, (days_ago, lines) in enumerate(orders, 1):
            at = now - timedelta(days=days_ago, hours=2)
            total = sum((prices[sku] * qty for sku, qty in lines), Decimal("0"))
            order_ext = f"DEMO-{ext}-{n}"
            records.orders.append(NewOrder(
                order_ext, store_id, at, total, customer_external_id=ext,
                lines=[NewLine(sku, *names[sku], qty, prices[sku], prices[sku] * qty) for sku, qty in lines],
                points=[LedgerEntry(f"order:{order_ext}:customer", order_points(total, rules), "purchase", at,
                                    order_external_id=order_ext)]))
    await StoreRecordsRepo(app.db, app.people).write(records, now)
