"""Demo data that makes each ready playbook fire: a lapsed regular, and POS orders through the real ingest.

* Sam Rivera came every ~10 days (six visits) and has not come for 25: `visit.overdue` → win-back.
* Jordan Ellis signs up at the counter with a $64 first order: `signup` → welcome, and
  `order.created` (first order over $50) → thank-you the next morning.
* Priya Shah signs up with a $280 first order: her points reach silver → `points.tier_up` → VIP.

The orders go through `PosIngest.accept` with the webhook's own JSON, so the demo runs the same
path (stored event, order, points, event log) a signed POS webhook does.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from bot.app import App
from bot.model import Address, Person
from coaching.loyalty import order_points
from coaching.roles import Role
from storage.loyalty import LedgerEntry
from storage.store_records import NewCustomer, NewLine, NewOrder, StoreRecords, StoreRecordsRepo

LAPSED = ("C1004", "Sam", "Rivera", "+13235550104")
NEWCOMERS = [
    # POS customer id, name, phone, total, sku, name, category, quantity
    ("C2001", "Jordan Ellis", "+13235550105", "64.00", "MOTA-OG35", "MOTA House OG 3.5g", "flower", 1),
    ("C2002", "Priya Shah", "+13235550106", "280.00", "CNX-RES1", "Connected Live Resin 1g", "concentrates", 4),
]


async def seed(app: App) -> None:
    from handlers.store_services import services

    svc = services(app)
    now = app.clock.now()
    s = svc.default_store
    store_id = (await svc.customers.store_ids()).get(s.code)
    ext, first, last, phone = LAPSED
    person = Person(None, f"{first} {last}", frozenset({Role.CUSTOMER}), [Address("sms", phone)],
                    timezone=s.timezone, attributes={"demo": True})
    records = StoreRecords()
    records.customers.append(NewCustomer(ext, person, store_id, first, last, phone, None,
                                         (now - timedelta(days=90)).date(), rewards_member=True,
                                         favourite_categories=["pre-rolls"], attributes={"demo": True}))
    for n, days_ago in enumerate((75, 65, 55, 45, 35, 25), 1):
        at = now - timedelta(days=days_ago, hours=3)
        total = Decimal("25.00")
        order_ext = f"DEMO-{ext}-{n}"
        records.orders.append(NewOrder(
            order_ext, store_id, at, total, customer_external_id=ext,
            lines=[NewLine("MOTA-PR5", "MOTA Sunset Pre-Roll 5-pack", "pre-rolls", 1, total, total)],
            points=[LedgerEntry(f"order:{order_ext}:customer", order_points(total, svc.settings.loyalty),
                                "purchase", at, order_external_id=order_ext)]))
    await StoreRecordsRepo(app.db, app.people).write(records, now)
    for n, (cid, name, tel, total, sku, item, category, qty) in enumerate(NEWCOMERS, 1):
        body = {"id": f"demo-evt-{cid}", "type": "order.created", "created_at": now.isoformat(),
                "data": {"id": f"DEMO-POS-{n}", "store": s.code, "customer_id": cid, "customer_phone": tel,
                         "customer_name": name, "occurred_at": (now - timedelta(minutes=30 * n)).isoformat(),
                         "total": total, "rewards_signup": True,
                         "items": [{"sku": sku, "name": item, "category": category, "quantity": qty,
                                    "unit_price": str(Decimal(total) / qty)}]}}
        await svc.ingest.accept(json.dumps(body).encode())
    await svc.ingest.idle()
