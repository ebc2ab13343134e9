"""Generate CRM/POS CSV files at the predecessor's scale (deterministic, seeded).

    python -m bench.store_data /tmp/store-data     # customers.csv, transactions.csv, items.csv, products.csv, staff.csv
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

CUSTOMERS = 10_047
TRANSACTIONS = 186_394
ITEMS = 114_136
PRODUCTS = 320
STAFF = 14

CATEGORIES = ["flower", "pre-rolls", "vapes", "edibles", "concentrates", "tinctures", "topicals"]
BRANDS = ["MOTA", "Glass House", "STIIIZY", "Kiva", "Connected", "Raw Garden", "Jeeter", "Wyld"]
TIERS = ["Bronze", "Silver", "Gold", "Platinum"]


def phone(i: int) -> str:
    return f"+1213{(5550000 + i) % 10_000_000:07d}"


def generate(out: Path, seed: int = 7) -> dict[str, Path]:
    rnd = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{k}.csv" for k in ("customers", "transactions", "items", "products", "staff")}
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with paths["staff"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Employee ID", "First Name", "Last Name", "Phone"])
        for i in range(STAFF):
            w.writerow([f"E{i + 1}", f"Bud{i + 1}", "Tender", f"+1310555{1000 + i}"])
    prices: list[Decimal] = []
    with paths["products"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["SKU", "Product Name", "Category", "Brand", "Tier", "Price", "Quantity On Hand"])
        for i in range(PRODUCTS):
            tier = rnd.choice([1, 2, 2, 3])
            price = Decimal(rnd.choice([15, 22, 25, 35, 45, 60, 65])) + Decimal(rnd.randint(0, 99)) / 100
            prices.append(price)
            brand = rnd.choice(BRANDS)
            w.writerow([f"P{i + 1}", f"{brand} item {i + 1}", rnd.choice(CATEGORIES), brand, tier, price,
                        rnd.choice([0, 3, 12, 40])])
    with paths["customers"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Customer ID", "First Name", "Last Name", "Phone Number", "VIP Status", "Member Since",
                    "Loyalty Points", "Favorite Categories"])
        for i in range(CUSTOMERS):
            signup = start + timedelta(days=rnd.randint(0, 600))
            favs = ";".join(rnd.sample(CATEGORIES, rnd.randint(0, 3)))
            w.writerow([f"C{i + 1}", f"First{i}", f"Last{i}", phone(i), rnd.choice(TIERS), signup.date().isoformat(),
                        rnd.randint(0, 2000), favs])
    with paths["transactions"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Transaction ID", "Customer ID", "Employee ID", "Transaction Date", "Total", "Status"])
        for i in range(TRANSACTIONS):
            at = start + timedelta(minutes=rnd.randint(0, 60 * 24 * 690))
            total = Decimal(rnd.randint(800, 25000)) / 100
            status = "completed" if rnd.random() > 0.02 else "refunded"
            w.writerow([f"T{i + 1}", f"C{rnd.randint(1, CUSTOMERS)}", f"E{rnd.randint(1, STAFF)}",
                        at.strftime("%Y-%m-%d %H:%M:%S"), total, status])
    with paths["items"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Item ID", "Transaction ID", "SKU", "Product Name", "Category", "Qty", "Price"])
        for i in range(ITEMS):
            p = rnd.randint(1, PRODUCTS)
            w.writerow([f"L{i + 1}", f"T{rnd.randint(1, TRANSACTIONS)}", f"P{p}", f"item {p}", rnd.choice(CATEGORIES),
                        rnd.randint(1, 3), prices[p - 1]])
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/huddle-store-data")
    for kind, path in generate(target).items():
        print(f"{kind:<13} {path}")
