"""CRM / POS CSV imports: common export headers, malformed rows with line numbers, idempotent re-runs."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.model import Role
from bot.testing import Flow
from coaching.sources.csv_rows import FileRefused
from coaching.sources.imports import ImportKind, import_kinds, register_import
from coaching.sources.store_csv import ImportOptions, StoreImporter
from handlers.store import services

START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


@pytest.fixture
async def flow(db_url: str) -> AsyncIterator[Flow]:
    f = await Flow.create(plugins=["handlers.store"], start=START, database_url=db_url)
    yield f
    await f.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def importer(flow: Flow) -> StoreImporter:
    return StoreImporter(flow.app.db, flow.app.people, flow.clock.now)


OPTS = ImportOptions(progress=False, default_store="main")

CUSTOMERS = """Customer ID,First Name,Last Name,Phone Number,Loyalty Points,VIP Status,Member Since,Favorite Categories
C1,Ann,Lee,(619) 555-0101,120,Gold,2024-03-01,flower;edibles
C2,Bob,,619.555.0102,0,,03/15/2025,
,No,Id,619-555-0103,5,,,
C4,Bad,Phone,12,5,,,
C5,Bad,Date,619-555-0105,5,,yesterday,
C6,"Multi
Line",Name,619-555-0106,not-a-number,,,
C7,Cy,Ng,,7,Silver,,vapes
"""


async def test_customers_import_reports_bad_rows_with_line_numbers(flow: Flow, tmp_path: Path) -> None:
    report = await importer(flow).run("customers", write(tmp_path, "c.csv", CUSTOMERS), OPTS)
    assert report.read == 7 and report.written == 3
    reasons = dict(report.skipped)
    assert set(reasons) == {4, 5, 6, 7}
    assert "customer id is empty" in reasons[4]
    assert "phone '12'" in reasons[5]
    assert "signup date 'yesterday'" in reasons[6]
    assert "points 'not-a-number'" in reasons[7]  # the row spans lines 7-8: reported where it starts
    svc = services(flow.app)
    ann = await svc.customers.by_external_id("C1")
    assert ann and ann.phone == "+16195550101" and ann.vip_tier == "Gold" and ann.favourite_categories == [
        "flower", "edibles"]
    assert await svc.loyalty.customer_balance(ann.id or 0) == 120
    bob = await svc.customers.by_external_id("C2")
    assert bob and bob.signup_date is not None and bob.signup_date.isoformat() == "2025-03-15"


async def test_reimport_is_idempotent_and_updates(flow: Flow, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", CUSTOMERS)
    await importer(flow).run("customers", path, OPTS)
    await importer(flow).run("customers", path, OPTS)
    svc = services(flow.app)
    assert await svc.customers.count() == 3
    ann = await svc.customers.by_external_id("C1")
    assert ann and await svc.loyalty.customer_balance(ann.id or 0) == 120  # replaced, not added twice
    write(tmp_path, "c2.csv", "Customer ID,First Name,Phone,Points\nC1,Annie,6195550101,150\n")
    await importer(flow).run("customers", tmp_path / "c2.csv", OPTS)
    ann = await svc.customers.by_external_id("C1")
    assert ann and ann.first_name == "Annie" and await svc.loyalty.customer_balance(ann.id or 0) == 150
    assert await svc.customers.count() == 3


async def test_transactions_items_products_staff(flow: Flow, tmp_path: Path) -> None:
    imp = importer(flow)
    await imp.run("customers", write(tmp_path, "c.csv", CUSTOMERS), OPTS)
    products = write(tmp_path, "p.csv", "SKU,Product Name,Category,Brand,Tier,Price,Quantity On Hand\n"
                     "P1,House OG,Flower,MOTA,mid,35.00,12\nP2,Resin,Concentrates,Connected,premium,$60.00,0\n"
                     "P3,,Flower,X,1,1,1\nP4,Thing,Flower,X,7,1,1\n")
    rep = await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run(
        "products", products, ImportOptions(progress=False, house_brands=("mota",)))
    assert rep.written == 2 and [line for line, _ in rep.skipped] == [4, 5]
    p1 = await services(flow.app).catalog.get("P1")
    p2 = await services(flow.app).catalog.get("P2")
    assert p1 and p1.house_brand and p1.price_tier == 2 and p1.in_stock and p1.category == "flower"
    assert p2 and not p2.house_brand and p2.price_tier == 3 and not p2.in_stock and p2.price == Decimal("60.00")

    staff = write(tmp_path, "s.csv", "Employee ID,First Name,Last Name,Phone\nE1,Sarah,Kim,619-555-0190\n"
                  "E2,John,Doe,\n,No,Id,\n")
    rep = await imp.run("staff", staff, OPTS)
    assert rep.written == 2 and rep.skipped == [(4, "employee id is empty")]
    sarah = await flow.app.people.by_external_id("pos-staff:E1")
    assert sarah and Role.BUDTENDER in sarah.roles and sarah.addresses[0].id == "+16195550190"
    await imp.run("staff", staff, OPTS)
    assert len(await flow.app.people.all(Role.BUDTENDER)) == 2

    txns = write(tmp_path, "t.csv", "Transaction ID,Customer ID,Employee ID,Transaction Date,Total,Status\n"
                 "T1,C1,E1,2026-11-20 14:05:00,$45.50,Completed\n"
                 "T2,C1,E2,11/21/2026 3:30 PM,20.00,refunded\n"
                 "T3,C2,E1,2026-11-22T10:00:00Z,\"1,234.10\",paid\n"
                 "T4,C9,E1,2026-11-22,5.00,\n"
                 "T5,C1,E1,2026-11-22,abc,completed\n"
                 "T6,C1,E1,someday,5,completed\n"
                 "T7,C1,E1,2026-11-22,5,lost\n")
    rep = await imp.run("transactions", txns, ImportOptions(progress=False, timezone=UTC))
    assert rep.written == 4 and [line for line, _ in rep.skipped] == [6, 7, 8]
    assert any("not imported yet" in n for n in rep.notes)
    sales = services(flow.app).sales
    t1, t2, t3 = await sales.get("T1"), await sales.get("T2"), await sales.get("T3")
    assert t1 and t1.total == Decimal("45.50") and t1.budtender_person_id == sarah.id
    assert t2 and t2.status.value == "refunded" and t2.occurred_at == datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
    assert t3 and t3.total == Decimal("1234.10")
    ann = await services(flow.app).customers.by_external_id("C1")
    assert ann and ann.visits == 1 and ann.lifetime_spend == Decimal("45.50")  # the refund does not count

    items = write(tmp_path, "i.csv", "Transaction ID,SKU,Product Name,Category,Qty,Price\n"
                  "T1,P1,House OG,Flower,1,35.00\nT1,P2,Resin,Concentrates,1,10.50\n"
                  "T404,P1,House OG,Flower,1,35.00\nT3,P1,House OG,Flower,-1,1\nT3,,Gift,,2,\n")
    rep = await imp.run("items", items, OPTS)
    assert rep.written == 2 and sorted(line for line, _ in rep.skipped) == [4, 5, 6]
    assert "unknown transaction 'T404'" in dict(rep.skipped)[4]
    await imp.run("items", items, OPTS)
    t1 = await sales.get("T1")
    assert t1 and [(i.product_external_id, i.price_tier, i.house_brand) for i in t1.items] == [
        ("P1", 2, True), ("P2", 3, False)]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("Name,Phone\nAnn,6195550101\n", "missing column(s): external_id"),
    ("Customer ID,Email\nC1,a@b.c\n", "first_name or name or phone"),
])
async def test_unusable_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    flow = await Flow.create(plugins=["handlers.store"], start=START)  # refused before any SQL: SQLite only
    try:
        with pytest.raises(FileRefused) as err:
            await importer(flow).run("customers", write(tmp_path, "bad.csv", text), OPTS)
        assert message in str(err.value)
        assert await services(flow.app).customers.count() == 0
    finally:
        await flow.close()


async def test_binary_file_and_map_override(flow: Flow, tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01\x02PK")
    with pytest.raises(FileRefused, match="not a text CSV"):
        await importer(flow).run("customers", binary, OPTS)
    odd = write(tmp_path, "odd.csv", "Kundennummer;Vorname;Handy\nK1;Jonas;+4915112345678\n")
    rep = await importer(flow).run("customers", odd, OPTS, {"external_id": "Kundennummer", "first_name": "Vorname",
                                                            "phone": "Handy"})
    assert rep.written == 1
    jonas = await services(flow.app).customers.by_external_id("K1")
    assert jonas and jonas.phone == "+4915112345678"
    with pytest.raises(FileRefused, match="no column"):
        await importer(flow).run("customers", odd, OPTS, {"external_id": "Nope"})


async def test_cli_import_and_registry(flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []

    async def deals(_app: object, args: argparse.Namespace) -> int:
        ran.append(str(args.file))
        return 0

    register_import(flow.app, ImportKind("deals", "deals from the CRM", deals))  # what another plugin does
    assert {"customers", "transactions", "items", "products", "staff", "deals"} <= set(import_kinds(flow.app))
    command = flow.app.cli_commands["import"]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    path = write(tmp_path, "c.csv", CUSTOMERS)
    report = tmp_path / "skipped.csv"
    args = parser.parse_args(["customers", str(path), "--no-progress", "--report", str(report)])
    assert await command.run(flow.app, args) == 0
    out = capsys.readouterr().out
    assert "7 rows read, 3 imported, 4 skipped" in out and "line 5: phone '12'" in out
    assert report.read_text().startswith("line,reason")
    args = parser.parse_args(["deals", "d.csv"])
    assert await command.run(flow.app, args) == 0 and ran == ["d.csv"]
    args = parser.parse_args(["customers", str(tmp_path / "missing.csv"), "--no-progress"])
    assert await command.run(flow.app, args) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="twice"):
        register_import(flow.app, ImportKind("deals", "again", deals))
