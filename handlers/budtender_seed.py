"""Demo budtenders: three on today's shift, three weeks of history (for watermarks), today's orders.

Runs after the store's demo seed (the plugin is listed after `handlers.store`), so it sells the
store's demo catalogue; without it the orders carry plain lines. Sarah's shift started 1 h 45 min
ago, so her first mid-shift check arrives 15 minutes after the demo starts; John's recent tickets
are weak enough for a nudge on his next small order.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from bot.app import App
from bot.model import Address, Person
from coaching.budtender_coach import BudtenderCoach
from coaching.roles import Role
from storage.budtenders import ShiftRow
from storage.catalog import CatalogRepo
from storage.customers import CustomerRepo
from storage.store_records import NewLine, NewOrder, NewStaff, StoreRecords, StoreRecordsRepo

BUDTENDERS = [
    # POS id, name, phone, typical ticket, sign-up rate
    ("E101", "Sarah Kim", "+13235550111", Decimal("52"), 0.15),
    ("E102", "John Reyes", "+13235550112", Decimal("48"), 0.10),
    ("E103", "Maria Ortiz", "+13235550113", Decimal("60"), 0.20),
]
FALLBACK = [("DEMO-FLOWER", "flower", 2, False), ("DEMO-HOUSE", "pre-rolls", 1, True), ("DEMO-TOP", "flower", 3, False)]


async def seed(app: App) -> None:
    coach: BudtenderCoach = app.deps["budtender_coach"]
    now = app.clock.now()
    rng = random.Random(7)
    tz = coach.tz

    catalogue = [(r.external_id, r.name, r.category, r.price) for r in await CatalogRepo(app.db).priced()]
    store_id = await CustomerRepo(app.db).first_store_id()
    records = StoreRecords()
    for pos_id, name, phone, ticket, signup_rate in BUDTENDERS:
        person = Person(None, name, frozenset({Role.BUDTENDER}), [Address("sms", phone)], timezone=tz,
                        external_id=f"pos-staff:{pos_id}", attributes={"demo": True})
        records.staff.append(NewStaff(pos_id, person, store_id, name, phone))
        orders = []
        for days_ago in range(1, 22):
            if days_ago % 7 in (3, 4):
                continue  # two days off a week
            day_start = now - timedelta(days=days_ago, hours=6)
            for k in range(rng.randint(10, 16)):
                orders.append((day_start + timedelta(minutes=25 * k), ticket, signup_rate))
        shift_start = now - timedelta(hours=1, minutes=45)
        # today's orders so far; John's last five are weak
        for k in range(6):
            scale = Decimal("0.55") if pos_id == "E102" and k >= 2 else Decimal("1")
            orders.append((shift_start + timedelta(minutes=15 * k + 5), ticket * scale, signup_rate))
        for n, (at, typical, rate) in enumerate(orders, 1):
            target = typical * Decimal(str(round(rng.uniform(0.7, 1.3), 2)))
            if catalogue:
                sku, pname, cat, price = rng.choice(catalogue)
                qty = max(1, int(target // price)) if price else 1
                line = NewLine(sku, pname, cat, qty, price, qty * price)
            else:
                sku, cat, _tier, _house = rng.choice(FALLBACK)
                price = target.quantize(Decimal("0.01"))
                line = NewLine(sku, sku.title(), cat, 1, price, price)
            records.orders.append(NewOrder(f"DEMO-{pos_id}-{n}", store_id, at, line.line_total,
                                           rewards_signup=rng.random() < rate, budtender_external_id=pos_id,
                                           lines=[line]))
    people = await StoreRecordsRepo(app.db, app.people).write(records, now)
    ids = [people[pos_id] for pos_id, *_ in BUDTENDERS]
    shift_start = now - timedelta(hours=1, minutes=45)
    rows = [ShiftRow(pid, shift_start + timedelta(days=d), shift_start + timedelta(days=d, hours=8), None, "demo")
            for pid in ids for d in range(7)]
    await coach.repo.upsert_shifts(rows, now)
